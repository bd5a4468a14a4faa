"""Compiled losses outside the process that compiled them: pickle, a spawn worker, torch.save of
a model that holds one. They pickle as what made them (spec files, backend, baked params,
schedule) and compile again on load."""

from __future__ import annotations

import inspect
import io
import multiprocessing
import pickle

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.codegen import TARGETS


def xy(n=6, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)), rng.integers(0, c, n)


@pytest.mark.parametrize("backend", TARGETS)
def test_pickle_round_trip(backend):
    """Same values (the same function: the cache answers in this process), signature, name
    and docstring; baked params stay baked."""
    conv = {"torch": torch.tensor, "jax": jnp.asarray, "numpy": np.asarray}[backend]
    x, y = map(conv, xy())
    spec = lossdsl.load("focal")
    for fn in (spec.compile(backend), spec.compile(backend, gamma=0.5)):
        back = pickle.loads(pickle.dumps(fn))
        assert back.__name__ == fn.__name__ and back.__doc__ == fn.__doc__
        assert inspect.signature(back) == inspect.signature(fn)
        for red in ("none", "mean"):
            np.testing.assert_array_equal(
                np.asarray(back(x, y, reduction=red)), np.asarray(fn(x, y, reduction=red))
            )
    assert "gamma" not in inspect.signature(pickle.loads(pickle.dumps(fn))).parameters


def test_pickle_rebuilds_from_the_files_text_when_they_are_gone(tmp_path):
    """A spec importing a file beside it: the pickle carries both texts, so it loads after
    the directory is gone (a worker on another machine), with the same values."""
    (tmp_path / "base.loss").write_text("loss base(x: float[B], y: float[B]) {\n    (x - y)^2\n}\n")
    path = tmp_path / "top.loss"
    path.write_text(
        "import base\nloss top(x: float[B], y: float[B]) {\n"
        "    param w: float = 2.0\n    w * base(x, y) + abs(x)\n}\n"
    )
    fn = lossdsl.load(path).compile("torch", w=3.0)
    data = pickle.dumps(fn)
    (tmp_path / "base.loss").unlink()
    path.unlink()
    back = pickle.loads(data)
    x, y = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])
    # by hand: 3 * (0.25, 9) + (1, 2) = (1.75, 29)
    torch.testing.assert_close(back(x, y, reduction="none"), torch.tensor([1.75, 29.0]))
    assert "w" not in inspect.signature(back).parameters


def test_chunked_schedules_pickle():
    spec = lossdsl.load("cross_entropy")
    x, y = map(torch.tensor, xy(c=7))
    for fn in (spec.compile("torch", schedule="chunked", chunk=3),):
        # in this process the rebuilt compile is the cached one (chunked compiles are cached)
        back = pickle.loads(pickle.dumps(fn))
        assert back.__name__ == "cross_entropy_chunked"
        torch.testing.assert_close(back(x, y), torch.nn.functional.cross_entropy(x, y))
    lin = spec.compile_linear("torch", chunk=3)
    h, w = torch.randn(6, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    torch.testing.assert_close(
        pickle.loads(pickle.dumps(lin))(h, w, y), torch.nn.functional.cross_entropy(h @ w.T, y)
    )


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 5, dtype=torch.float64)
        self.loss = lossdsl.load("cross_entropy").compile("torch", label_smoothing=0.1)

    def forward(self, x, y):
        return self.loss(self.lin(x), y)


def test_torch_save_of_a_module_that_holds_the_loss():
    model = Model()
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 4, 2])
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    torch.testing.assert_close(back(x, y), model(x, y))
    # what the loss computes: F.cross_entropy(label_smoothing=0.1) (torch 2.13)
    want = torch.nn.functional.cross_entropy(model.lin(x), y, label_smoothing=0.1)
    torch.testing.assert_close(back(x, y), want)
    back(x, y).backward()
    assert back.lin.weight.grad is not None


def test_spawn_worker_runs_compiled_losses():
    """One spawn pool (slow: the worker imports torch and jax) running a torch and a jax loss:
    the values of this process."""
    t = lossdsl.load("focal").compile("torch")
    j = lossdsl.load("focal").compile("jax", gamma=1.0)
    x, y = xy()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got_t = pool.apply(t, (torch.tensor(x), torch.tensor(y)))
        got_j = pool.apply(j, (x, y))
    torch.testing.assert_close(got_t, t(torch.tensor(x), torch.tensor(y)))
    np.testing.assert_allclose(np.asarray(got_j), np.asarray(j(x, y)), rtol=1e-12)
