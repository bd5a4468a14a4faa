"""Sequence losses: CTC against torch.nn.functional.ctc_loss (torch 2.13) and optax.ctc_loss.

torch's ctc_loss backward returns the gradient w.r.t. the logits of a log_softmax, whatever its
input (pytorch/pytorch#52241: it assumes log_probs came from log_softmax), so gradients are
compared w.r.t. logits with log_softmax in the graph on both sides. optax applies log_softmax to
its logits itself and takes [B, T, K] logits with paddings (1 = padded).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import call
from torch_helpers import gen

import lossdsl

# (T frames, B sequences, C classes with the blank, L padded target length)
SHAPES = [(12, 4, 5, 4), (30, 3, 8, 9)]


def _batch(shape, seed):
    """Random logits and padded targets with a repeated label (which needs a blank between),
    full and short input lengths, an empty target, and a target as long as L."""
    t, b, c, n = shape
    g = gen(seed)
    z = torch.randn(t, b, c, generator=g) * 2
    tg = torch.randint(1, c, (b, n), generator=g)
    tg[0, 1] = tg[0, 0]
    il = torch.randint(2 * n + 1, t + 1, (b,), generator=g)
    il[0] = t
    tl = torch.randint(0, n + 1, (b,), generator=g)
    tl[0], tl[-1] = n, 0
    return z, tg, il, tl


def _ours(backend, z, tg, il, tl, reduction, **kw):
    fn = lossdsl.load("ctc").compile(backend)
    if backend == "torch":
        z = z.clone().requires_grad_()
        out = fn(z.log_softmax(2), tg, il, tl, reduction=reduction, **kw)
        (g,) = torch.autograd.grad(out.sum(), z)
        return out.detach().numpy(), g.numpy()

    def f(zz):
        out = fn(jax.nn.log_softmax(zz, 2), *(jnp.asarray(a.numpy()) for a in (tg, il, tl)),
                 reduction=reduction, **kw)  # fmt: skip
        return out.sum(), out

    (_, out), g = jax.value_and_grad(f, has_aux=True)(jnp.asarray(z.numpy()))
    return np.asarray(out), np.asarray(g)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_ctc_matches_torch(shape, backend, reduction):
    """Values and gradients w.r.t. the logits, every reduction: torch's "none" and "sum" are
    the spec's default, torch's "mean" (each loss divided by its target length, at least 1) is
    per_token=true with "mean"."""
    z, tg, il, tl = _batch(shape, 3 + shape[0])
    zz = z.clone().requires_grad_()
    want = torch.nn.functional.ctc_loss(zz.log_softmax(2), tg, il, tl, reduction=reduction)
    (gw,) = torch.autograd.grad(want.sum(), zz)
    kw = {"per_token": True} if reduction == "mean" else {}
    got, g = _ours(backend, z, tg, il, tl, reduction, **kw)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, gw.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_ctc_matches_optax(shape):
    """optax.ctc_loss per sequence (its log_epsilon = -1e5, the spec's default), values on every
    backend and gradients (jax.grad of optax's sum) w.r.t. the logits."""
    import optax

    z, tg, il, tl = _batch(shape, 11 + shape[0])
    t, b, _, n = shape
    logits = jnp.asarray(z.numpy().transpose(1, 0, 2))
    lpad = jnp.asarray((np.arange(t)[None] >= il.numpy()[:, None]).astype(float))
    ypad = jnp.asarray((np.arange(n)[None] >= tl.numpy()[:, None]).astype(float))
    labels = jnp.asarray(tg.numpy())

    def ref(lg):
        return optax.ctc_loss(lg, lpad, labels, ypad)

    want = np.asarray(ref(logits))
    gw = np.asarray(jax.grad(lambda lg: ref(lg).sum())(logits)).transpose(1, 0, 2)
    lp = z.log_softmax(2).numpy()
    data = {"log_probs": lp, "targets": tg.numpy(), "input_lengths": il.numpy(),
            "target_lengths": tl.numpy()}  # fmt: skip
    for backend in ("numpy", "torch", "jax"):
        got = call(backend, lossdsl.load("ctc").compile(backend), data, "float64", reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=backend)
    for backend in ("torch", "jax"):
        _, g = _ours(backend, z, tg, il, tl, "none")
        np.testing.assert_allclose(g, gw, rtol=1e-7, atol=1e-10, err_msg=backend)


def test_ctc_by_hand():
    """T = 1 frame, one label a: the only alignment is (a), so the loss is -log p(a); T = 2,
    label a: alignments (a, a), (a, blank), (blank, a) (Graves et al. 2006, fig. 3's collapse
    rule): -log(pa1 pa2 + pa1 pb2 + pb1 pa2). Two frames and labels (a, a) cannot align (a
    repeat needs a blank between): about -log_epsilon, where torch gives inf."""
    fn = lossdsl.load("ctc").compile("torch")
    p = torch.tensor([[[0.2, 0.5, 0.3]], [[0.6, 0.1, 0.3]]])  # [T=2, B=1, C=3], blank 0
    lp = p.log()
    one = torch.tensor([1])
    got1 = fn(lp[:1], torch.tensor([[1]]), one, one, reduction="none")
    torch.testing.assert_close(got1, -torch.log(p[0, :, 1]))
    got2 = fn(lp, torch.tensor([[1]]), torch.tensor([2]), one, reduction="none")
    want2 = -torch.log(p[0, 0, 1] * p[1, 0, 1] + p[0, 0, 1] * p[1, 0, 0] + p[0, 0, 0] * p[1, 0, 1])
    torch.testing.assert_close(got2, want2.reshape(1))
    got3 = fn(lp, torch.tensor([[1, 1]]), torch.tensor([2]), torch.tensor([2]), reduction="none")
    assert 0.99e5 < got3.item() < 1.01e5
