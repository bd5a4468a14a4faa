"""Issue 5: the chunked torch schedule (`compile("torch", schedule="chunked", chunk=...)`) and
the loss fused with the final linear layer (`compile_linear`). Values and gradients equal the
plain compiled spec on the materialized logits h @ W.T (float64 to 1e-10, float32 to 1e-5),
for chunk sizes that divide V, that do not, of 1 and larger than V, and for the options that
change the statistics (class weights, ignore_index, label smoothing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.errors import LossError

SPECS = ["cross_entropy", "focal", "poly1", "label_smoothing_ce", "z_loss", "gce", "ldam"]


def _inputs(name, n=7, v=23, d=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(v, d, generator=g, dtype=dtype)
    rest = [] if name == "z_loss" else [torch.randint(0, v, (n,), generator=g)]
    if name == "ldam":
        rest.append(torch.randint(1, 100, (v,), generator=g).to(dtype))
    return h, w, rest


def _grads(fn, h, w, rest, **kw):
    h, w = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out = fn(h, w, *rest, **kw)
    return (out.detach(), *torch.autograd.grad(out, [h, w]))


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize(
    "schedule",
    [
        {"chunk": 1},
        {"chunk": 5},
        {"chunk": 23},
        {"chunk": 64},
        {"rows": 1},
        {"rows": 3},
        {"rows": 50},
    ],
    ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()),
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_linear_equals_the_plain_loss_on_materialized_logits(name, schedule, reduction):
    spec = lossdsl.load(name)
    plain, fused = spec.compile("torch"), spec.compile_linear("torch", **schedule)
    h, w, rest = _inputs(name)
    want = _grads(lambda h, w, *r: plain(h @ w.T, *r, reduction=reduction), h, w, rest)
    got = _grads(lambda h, w, *r: fused(h, w, *r, reduction=reduction), h, w, rest)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SPECS)
def test_chunked_schedule_on_given_logits(name):
    spec = lossdsl.load(name)
    plain, chunked = spec.compile("torch"), spec.compile("torch", schedule="chunked", chunk=6)
    h, w, rest = _inputs(name, seed=1)
    x = (h @ w.T).requires_grad_(True)
    a = plain(x, *rest)
    (ga,) = torch.autograd.grad(a, [x])
    x2 = x.detach().clone().requires_grad_(True)
    b = chunked(x2, *rest)
    (gb,) = torch.autograd.grad(b, [x2])
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gb, ga, rtol=1e-10, atol=1e-12)


def test_cross_entropy_options_in_the_chunked_schedule():
    """Class weights, ignore_index (its weighted-mean denominator) and label smoothing are
    statistics too: F.cross_entropy (torch 2.13) on the materialized logits is the reference."""
    h, w, (y,) = _inputs("cross_entropy", n=9, v=31, seed=2)
    y[2] = y[5] = -100
    cw = torch.rand(31, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.2
    ce = lossdsl.load("cross_entropy")
    for fused, kw in [
        (ce.compile_linear("torch", chunk=8), {}),
        (ce.compile_linear("torch", chunk=8), {"label_smoothing": 0.1}),
        (ce.compile_linear("torch", rows=4), {}),  # the ignore/weight denominator, by rows
        (ce.compile_linear("torch", rows=4), {"label_smoothing": 0.1}),
    ]:
        got = _grads(lambda h, w: fused(h, w, y, cw, **kw), h, w, [])
        want = _grads(
            lambda h, w: torch.nn.functional.cross_entropy(h @ w.T, y, weight=cw, **kw), h, w, []
        )
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_float32_matches_to_1e5():
    h, w, rest = _inputs("focal", n=64, v=1000, d=32, dtype=torch.float32, seed=4)
    spec = lossdsl.load("focal")
    want = _grads(lambda h, w, *r: spec.compile("torch")(h @ w.T, *r), h, w, rest)
    got = _grads(spec.compile_linear("torch", chunk=128), h, w, rest)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_losses_without_a_one_pass_plan_are_refused_clearly():
    fused = lossdsl.load("kd").compile_linear("torch", chunk=8)
    h, w, _ = _inputs("kd")
    with pytest.raises(LossError, match="no one-pass chunk plan"):
        fused(h, w, torch.randn(7, 23, dtype=torch.float64))
    with pytest.raises(LossError, match="sum or mean"):
        lossdsl.load("focal").compile_linear("torch")(h, w, torch.zeros(7, dtype=torch.long),
                                                       reduction="none")  # fmt: skip


def test_class_ids_are_range_checked_before_slicing():
    # the slices see shifted ids (an id outside one slice is legal there); the check runs once
    h, w, (y,) = _inputs("focal", n=5, v=23)
    y[3] = 40
    fused = lossdsl.load("focal").compile_linear("torch", chunk=8)
    with pytest.raises(lossdsl.InputError, match=r"outside \[0, 23\).*from \d+ to 40"):
        fused(h, w, y)


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "z_loss", "ldam"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("dw_slice", [8192, 3])
def test_jax_row_blocked_equals_the_plain_loss(name, reduction, jit, dw_slice, monkeypatch):
    """compile_linear("jax", rows=R): a custom_vjp that takes each block's gradient in the
    forward pass; eager and under jax.jit, against jax.value_and_grad of the plain spec. dW
    is accumulated DW_SLICE rows at a time: 3 gives several slices and a remainder."""
    import jax
    import jax.numpy as jnp

    from lossdsl import chunked

    monkeypatch.setattr(chunked, "DW_SLICE", dw_slice)

    h, w, rest = _inputs(name, seed=5)
    h, w = jnp.asarray(h.numpy()), jnp.asarray(w.numpy())
    rest = [jnp.asarray(r.numpy()) for r in rest]
    spec = lossdsl.load(name)
    plain, fused = spec.compile("jax"), spec.compile_linear("jax", rows=3)

    def grads(f):
        g = jax.value_and_grad(f, argnums=(0, 1))
        return (jax.jit(g) if jit else g)(h, w)

    want = grads(lambda h, w: plain(h @ w.T, *rest, reduction=reduction))
    got = grads(lambda h, w: fused(h, w, *rest, reduction=reduction))
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_masked_logits_in_the_chunked_schedule():
    """-inf logits (a vocabulary mask) with label smoothing and class weights: the chunked
    schedule equals the plain one, value and gradient finite (cross_entropy.loss: a -inf class
    takes no smoothing mass)."""
    h, w, (y,) = _inputs("cross_entropy", n=9, v=31, seed=4)
    x = h @ w.T
    x[:, 3] = x[1, 7] = -torch.inf
    y[y == 3] = 0
    y[1] = 2
    cw = torch.rand(31, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.2
    ce = lossdsl.load("cross_entropy")
    plain, chunked = ce.compile("torch"), ce.compile("torch", schedule="chunked", chunk=8)
    for args in ((y,), (y, cw)):
        got = []
        for f in (plain, chunked):
            xl = x.detach().clone().requires_grad_(True)
            out = f(xl, *args, label_smoothing=0.1)
            got.append((out.detach(), *torch.autograd.grad(out, [xl])))
        for a, b in zip(*got):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
