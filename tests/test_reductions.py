"""Reduction recipes (`reduction="mean(S) sum(B, C)"`, lossdsl/reductions.py): the peers'
denominators as one call argument, checked against the peers themselves, and every shipped spec
with recipes drawn over its per-element dims against numpy reducing `reduction="none"`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import SHAPES, call, random_inputs

import lossdsl
from lossdsl.errors import LossError, ParamError

BACKENDS = ("numpy", "torch", "jax")


def _none_dims(spec) -> tuple[str, ...]:
    return tuple(str(d) for d in dict(spec.program().outputs)["none"].type.dims)


def _recipes(dims, rng, n=3):
    """Random recipes over `dims`: a random subset, split into sum and mean steps in a random
    order (dims left out stay)."""
    out = []
    for _ in range(n):
        chosen = [d for d in dims if rng.random() < 0.7] or list(dims[:1])
        rng.shuffle(chosen)
        steps, k = [], 0
        while k < len(chosen):
            m = int(rng.integers(1, len(chosen) - k + 1))
            steps.append((("sum", "mean")[int(rng.integers(2))], tuple(chosen[k : k + m])))
            k += m
        out.append(steps)
    return out


def _numpy_recipe(x: np.ndarray, dims, steps) -> np.ndarray:
    """The recipe by hand: axes of each named dim (a variadic one: those no other dim takes),
    np.sum / np.mean over them, dims dropped as they go."""
    x = np.asarray(x, dtype=np.float64)
    left = list(dims)
    for op, names in steps:
        n_var = x.ndim - (len(left) - 1) if any(d.startswith("*") for d in left) else 0
        pos, axes = 0, {}
        for d in left:
            w = n_var if d.startswith("*") else 1
            axes[d] = list(range(pos, pos + w))
            pos += w
        ax = tuple(a for d in names for a in axes[d])
        x = x.sum(axis=ax) if op == "sum" else x.mean(axis=ax) if x.size else x.sum(axis=ax)
        left = [d for d in left if d not in names]
    return x


def _text(steps) -> str:
    return " ".join(f"{op}({', '.join(ds)})" for op, ds in steps)


@pytest.mark.parametrize("name", lossdsl.list_specs())
def test_every_spec_reduces_by_any_recipe_of_its_dims(name):
    """Every recipe gives numpy's reduction of the same backend's reduction="none" (to 1e-12
    relative in float64), and summing every dim gives reduction="sum"."""
    spec = lossdsl.load(name)
    dims = _none_dims(spec)
    if not dims:  # a scalar per-element loss: nothing to reduce
        with pytest.raises(ParamError, match="has no dim B"):
            spec.compile("numpy")(**random_inputs(spec, SHAPES[0], np.random.default_rng(0)),
                                  reduction="mean(B)")  # fmt: skip
        return
    rng = np.random.default_rng(7)
    inputs = random_inputs(spec, SHAPES[0], rng)
    recipes = _recipes(dims, rng) + [[("sum", dims)]]
    for backend in BACKENDS:
        fn = spec.compile(backend)
        x = call(backend, fn, inputs, "float64", reduction="none")
        total = call(backend, fn, inputs, "float64", reduction="sum")
        for steps in recipes:
            got = call(backend, fn, inputs, "float64", reduction=_text(steps))
            want = _numpy_recipe(x, dims, steps)
            assert got.shape == want.shape, (backend, _text(steps))
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, err_msg=backend)
        got = call(backend, fn, inputs, "float64", reduction=_text([("sum", dims)]))
        np.testing.assert_allclose(got, total, rtol=1e-12, atol=1e-300, err_msg=backend)


def test_dice_recipes_match_monai_and_optax():
    """MONAI DiceLoss(reduction="sum") sums the per-(sample, class) dice: "sum(B, C)".
    optax.losses.dice_loss(reduction="mean") averages it over classes per sample: "mean(C)",
    with lossdsl's smooth_nr = smooth_dr = 2 * optax's smooth (optax 0.2.8's denominator
    I + a (P - I) + b (T - I) + s is (P + T) / 2 + s at a = b = 1/2)."""
    import jax.numpy as jnp
    import monai.losses as monai_losses
    import optax

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 6, 5))
    t = rng.integers(0, 4, (3, 6, 5))
    spec = lossdsl.load("dice")
    fn = spec.compile("torch")
    got = fn(torch.tensor(x), torch.tensor(t), reduction="sum(B, C)")
    ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, reduction="sum")(
        torch.tensor(x), torch.tensor(t)[:, None]
    )
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-12)
    onehot = np.eye(4)[t]
    ref = optax.losses.dice_loss(jnp.asarray(np.moveaxis(x, 1, -1)), jnp.asarray(onehot))
    for backend in BACKENDS:
        f = spec.compile(backend)
        got = call(backend, f, {"logits": x, "target": t}, "float32", reduction="mean(C)",
                   smooth_nr=2.0, smooth_dr=2.0)  # fmt: skip
        assert got.shape == (3,)
        np.testing.assert_allclose(got, np.asarray(ref), rtol=1e-5, err_msg=backend)


def test_sum_then_divide_by_the_batch():
    """ "sum(C) mean(B)": torch's F.binary_cross_entropy_with_logits(reduction="sum") / B, the
    per-sample sum of the VAE examples (pytorch/examples vae/main.py: reduction='sum') and of
    F.kl_div's 'batchmean'."""
    rng = np.random.default_rng(4)
    x, q = torch.tensor(rng.standard_normal((6, 7))), torch.tensor(rng.random((6, 7)))
    fn = lossdsl.load("bce_with_logits").compile("torch")
    got = fn(x, q, reduction="sum(C) mean(B)")
    ref = torch.nn.functional.binary_cross_entropy_with_logits(x, q, reduction="sum") / 6
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-13)


def test_mean_over_every_element_counts_ignored_ones():
    """ "mean(B)" averages every per-element loss, an ignored one's 0 included: the denominator
    of segmentation_models_pytorch's label_smoothed_nll_loss (losses/_functional.py: the ignored
    entries masked to 0, then .mean()); torch's F.cross_entropy(reduction="none").mean() here.
    reduction="mean" divides by the kept rows instead, as F.cross_entropy(reduction="mean")."""
    rng = np.random.default_rng(5)
    x, t = torch.tensor(rng.standard_normal((8, 5))), torch.tensor([0, 1, 2, 3, 4, 1, 2, 3])
    fn = lossdsl.load("cross_entropy").compile("torch")
    f = torch.nn.functional.cross_entropy
    got = fn(x, t, ignore_index=2, reduction="mean(B)")
    ref = f(x, t, ignore_index=2, reduction="none").mean()
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-13)
    got = fn(x, t, ignore_index=2, reduction="mean")
    np.testing.assert_allclose(got.numpy(), f(x, t, ignore_index=2).numpy(), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_recipe_over_an_empty_batch_is_zero_with_a_zero_gradient(backend):
    """A mean over a dim of size 0 is 0, as reduction="mean" of an empty batch (README, "Edge
    cases"), never 0 / 0."""
    spec = lossdsl.load("bce_with_logits")
    inputs = {"logits": np.zeros((0, 3)), "target": np.zeros((0, 3))}
    got = call(backend, spec.compile(backend), inputs, "float64", reduction="sum(C) mean(B)")
    assert got.shape == () and got == 0.0
    if backend == "torch":
        x = torch.zeros((0, 3), requires_grad=True)
        spec.compile("torch")(x, torch.zeros((0, 3)), reduction="mean(B, C)").backward()
        assert x.grad is not None and x.grad.shape == (0, 3)


def test_half_precision_is_reduced_in_float32():
    """A float16 per-element loss is reduced in float32 and returned as float16 (the generated
    code's policy, README "Precision"): 2048 entries of float16(0.1) sum to 2048 * 0.0999755859375
    = 204.75, within float16's spacing of 0.125 there."""
    fn = lossdsl.load("l1").compile("torch")
    x = torch.full((2048, 1), 0.1, dtype=torch.float16)
    got = fn(x, torch.zeros_like(x), reduction="sum(B, S)")
    assert got.dtype == torch.float16
    assert abs(float(got) - 2048 * 0.0999755859375) <= 0.125


def test_recipes_work_under_jit_and_torch_compile():
    import jax

    spec = lossdsl.load("bce_with_logits")
    x, q = np.random.default_rng(6).standard_normal((4, 3)), np.full((4, 3), 0.5)
    want = call("numpy", spec.compile("numpy"), {"logits": x, "target": q}, "float64",
                reduction="sum(C) mean(B)")  # fmt: skip
    fj = spec.compile("jax")
    got = jax.jit(lambda a, b: fj(a, b, reduction="sum(C) mean(B)"))(x, q)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    ft = spec.compile("torch")
    compiled = torch.compile(lambda a, b: ft(a, b, reduction="sum(C) mean(B)"), backend="eager")
    np.testing.assert_allclose(compiled(torch.tensor(x), torch.tensor(q)).numpy(), want,
                               rtol=1e-12)  # fmt: skip


BAD = {  # recipe -> what the message says
    "meen": "none of 'none', 'sum', 'mean'",
    "mean(C)": "has no dim C",
    "sum(B) mean(B)": "B is reduced twice",
    "mean()": "names no dims",
    "mean(B": "cannot read it",
    "mean(B) then": "cannot read it",
    "max(B)": "cannot read it",
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("text", BAD)
def test_a_bad_recipe_is_a_param_error_with_a_hint(backend, text):
    spec = lossdsl.load("focal")
    inputs = random_inputs(spec, SHAPES[0], np.random.default_rng(0))
    with pytest.raises(ParamError, match=BAD[text]) as info:
        call(backend, spec.compile(backend), inputs, "float64", reduction=text)
    assert info.value.hint and "[B]" in info.value.hint or "mean" in info.value.hint


def test_a_sharded_loss_refuses_a_recipe():
    fn = lossdsl.load("focal").compile("torch", shard="B")
    with pytest.raises(LossError, match="sharded over B"):
        fn(torch.zeros((2, 3)), torch.zeros(2, dtype=torch.long), reduction="mean(B)")


def test_the_chunked_schedule_refuses_a_recipe():
    fn = lossdsl.load("cross_entropy").compile("torch", schedule="chunked", chunk=2)
    with pytest.raises(ParamError, match="chunked schedule never holds") as info:
        fn(torch.zeros((2, 3)), torch.zeros(2, dtype=torch.long), reduction="mean(B)")
    assert "plain schedule" in info.value.hint
