"""Soft-DTW (specs/soft_dtw.loss) against the authors' code and tslearn.

Values and gradients w.r.t. x and y against tests/reference/soft_dtw_official.py (a numpy
transcription of mblondel/soft-dtw's forward DP, backward DP E = dR/dD and squared-euclidean
Jacobian product, Cuturi & Blondel 2017 Algorithms 1-2), and against tslearn 0.10's
`tslearn.metrics.SoftDTWLossPyTorch` (its own torch autograd Function over numba kernels;
`normalize=True` is the soft-DTW divergence). tslearn pairs series one to one over the batch,
as the spec does.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import call, grads, rel_err
from reference.soft_dtw_official import soft_dtw_batch, soft_dtw_divergence_batch

import lossdsl

# (B pairs, N steps of x, M steps of y, D features): one-step series on either side included
SHAPES = [(3, 5, 4, 2), (2, 1, 6, 3), (2, 6, 1, 3), (1, 1, 1, 1), (2, 9, 7, 2)]
GAMMAS = [0.01, 0.1, 1.0, 10.0]
FORMS = {"sdtw": soft_dtw_batch, "divergence": soft_dtw_divergence_batch}


def _series(shape, seed):
    b, n, m, d = shape
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, n, d)), rng.standard_normal((b, m, d))


# each shape once, each gamma at least once (their product took a minute of CI for no class
# of input the pairs miss: gamma only scales the soft-min)
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize(
    "shape,gamma",
    list(zip(SHAPES, [*GAMMAS, GAMMAS[0]])),
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
def test_soft_dtw_matches_official(shape, gamma, form):
    """Per-pair value (reduction="none") on every backend and gradients of the sum w.r.t. x
    and y on torch and jax, float64, against the transcription of the authors' forward and
    backward dynamic programs (the divergence: three of them, Blondel et al. 2021 eq. 4)."""
    x, y = _series(shape, 7 + len(GAMMAS) * shape[1] + shape[2])
    want, gx, gy = FORMS[form](x, y, gamma)
    spec = lossdsl.load("soft_dtw")
    inputs = {"x": x, "y": y}
    for backend in ("numpy", "torch", "jax"):
        fn = spec.compile(backend, form=form)
        got = call(backend, fn, inputs, "float64", reduction="none", gamma=gamma)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=backend)
        if backend == "numpy":
            continue
        g = grads(backend, fn, inputs, ["x", "y"], "float64", reduction="sum", gamma=gamma)
        np.testing.assert_allclose(g["x"], gx, rtol=1e-9, atol=1e-11, err_msg=(backend, "x"))
        np.testing.assert_allclose(g["y"], gy, rtol=1e-9, atol=1e-11, err_msg=(backend, "y"))


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("gamma", GAMMAS)
def test_soft_dtw_matches_tslearn(gamma, form, reduction):
    """tslearn's SoftDTWLossPyTorch (normalize=True: the divergence), value and torch
    gradients, every reduction (tslearn returns per pair: its mean / sum is taken here)."""
    from tslearn.metrics import SoftDTWLossPyTorch

    x, y = _series((4, 7, 5, 3), 11)
    ref = SoftDTWLossPyTorch(gamma=gamma, normalize=form == "divergence")
    fn = lossdsl.load("soft_dtw").compile("torch", form=form)
    outs, gs = [], []
    for f in (lambda a, b: ref(a, b), lambda a, b: fn(a, b, gamma=gamma, reduction="none")):
        a, b = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
        per = f(a, b)
        out = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
        out.sum().backward()
        outs.append(out.detach().numpy())
        gs.append((a.grad.numpy(), b.grad.numpy()))
    got = fn(torch.tensor(x), torch.tensor(y), gamma=gamma, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), outs[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(gs[1], gs[0]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-11)


def test_soft_dtw_one_step_each_is_the_squared_distance():
    """N = M = 1: R_11 = D_11 + softmin(R_00 = 0, inf, inf) = ||x_1 - y_1||^2 at every gamma
    (Cuturi & Blondel Alg. 1); the gradient w.r.t. x is 2 (x - y)."""
    x, y = _series((3, 1, 1, 4), 5)
    want = ((x - y) ** 2).sum(axis=(1, 2))
    fn = lossdsl.load("soft_dtw").compile("torch")
    for gamma in (1e-3, 1.0, 100.0):
        a = torch.tensor(x, requires_grad=True)
        got = fn(a, torch.tensor(y), gamma=gamma, reduction="none")
        got.sum().backward()
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-14)
        np.testing.assert_allclose(a.grad.numpy(), 2 * (x - y), rtol=1e-14)


def test_soft_dtw_divergence_of_a_series_with_itself_is_zero():
    """Blondel et al. 2021, Prop. 1: the divergence D(x, x) = 0 (with a zero gradient w.r.t.
    the second argument: x is a minimizer), and D(x, y) >= 0 for x != y."""
    x, y = _series((3, 6, 4, 2), 9)
    fn = lossdsl.load("soft_dtw").compile("torch", form="divergence")
    for gamma in (0.1, 1.0):
        b = torch.tensor(x, requires_grad=True)
        same = fn(torch.tensor(x), b, gamma=gamma, reduction="none")
        same.sum().backward()
        np.testing.assert_allclose(same.detach().numpy(), 0.0, atol=1e-12)
        np.testing.assert_allclose(b.grad.numpy(), 0.0, atol=1e-10)
        assert (
            fn(torch.tensor(x), torch.tensor(y[:, :4]), gamma=gamma, reduction="none") > 0
        ).all()


def test_soft_dtw_small_gamma_is_dtw():
    """gamma -> 0: soft-DTW tends to DTW (min over alignments, Cuturi & Blondel section 2):
    within gamma log(3) (N + M) of the hard DP, computed here by the textbook recurrence."""
    x, y = _series((2, 6, 5, 2), 13)
    d = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    want = []
    for k in range(2):
        r = np.full((7, 6), np.inf)
        r[0, 0] = 0.0
        for i in range(1, 7):
            for j in range(1, 6):
                r[i, j] = d[k, i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
        want.append(r[6, 5])
    got = lossdsl.load("soft_dtw").compile("numpy")(x, y, gamma=1e-4, reduction="none")
    assert np.all(np.abs(got - np.array(want)) <= 1e-4 * np.log(3) * 11)


def test_soft_dtw_runs_under_torch_compile_and_jax_jit():
    """torch.compile (it unrolls the N M steps while tracing: a small problem) and jax.jit of
    value_and_grad (two nested lax.scan), against the transcription."""
    x, y = _series((2, 4, 3, 2), 17)
    want, gx, gy = soft_dtw_batch(x, y, 0.5)
    spec = lossdsl.load("soft_dtw")
    got = torch.compile(spec.compile("torch"))(torch.tensor(x), torch.tensor(y), gamma=0.5,
                                               reduction="sum")  # fmt: skip
    assert rel_err(got.numpy(), want.sum()) <= 1e-12
    fn = jax.jit(jax.value_and_grad(spec.compile("jax"), argnums=(0, 1)),
                 static_argnames=("gamma", "reduction"))  # fmt: skip
    v, (jx, jy) = fn(jnp.asarray(x), jnp.asarray(y), gamma=0.5, reduction="sum")
    assert rel_err(np.asarray(v), want.sum()) <= 1e-12
    assert rel_err(np.asarray(jx), gx) <= 1e-10 and rel_err(np.asarray(jy), gy) <= 1e-10
    assert "jax.lax.scan" in spec.source("jax")


def test_soft_dtw_is_two_nested_scans_not_unrolled():
    """The IR holds one scan over N whose body holds a scan over M, whatever N and M: O(N M)
    steps without an N M-sized graph."""
    prog = lossdsl.load("soft_dtw").program()
    outer = [e for e in prog.eqns if e.op == "scan"]
    assert len(outer) == 1
    inner = [e for e in dict(outer[0].attrs)["body"].eqns if e.op == "scan"]
    assert inner and all("scan" not in [e.op for e in dict(s.attrs)["body"].eqns] for s in inner)
