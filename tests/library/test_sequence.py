"""Sequence losses: CTC against torch.nn.functional.ctc_loss (torch 2.13) and optax.ctc_loss.

torch's ctc_loss backward returns the gradient w.r.t. the logits of a log_softmax, whatever its
input (pytorch/pytorch#52241: it assumes log_probs came from log_softmax), so gradients are
compared w.r.t. logits with log_softmax in the graph on both sides. optax applies log_softmax to
its logits itself and takes [B, T, K] logits with paddings (1 = padded).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

from pathlib import Path

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


# ---- the ctc_nll op: torch's kernel path, its loop fallback, and the scan written out ---------

SCAN = Path(__file__).resolve().parents[1] / "programs" / "ctc_scan.loss"


def _lp(z):
    return z.log_softmax(2)


def _values_and_grads(fn, backend, lp, tg, il, tl, **kw):
    """Per-sequence values and the gradient of their sum w.r.t. log_probs themselves."""
    if backend == "torch":
        x = lp.clone().requires_grad_()
        out = fn(x, tg, il, tl, reduction="none", **kw)
        (g,) = torch.autograd.grad(out.sum(), x)
        return out.detach().numpy(), g.numpy()
    rest = [jnp.asarray(a.numpy()) for a in (tg, il, tl)]

    def f(x):
        out = fn(x, *rest, reduction="none", **kw)
        return out.sum(), out

    (_, out), g = jax.value_and_grad(f, has_aux=True)(jnp.asarray(lp.numpy()))
    return np.asarray(out), np.asarray(g)


def _mixed_batch(seed, t=9, b=6, c=5, n=3):
    """Possible alignments, an impossible one (2 frames for a repeat), an empty target, no
    frames at all, padding of -1 past the target lengths, and a log-probability of -inf."""
    z, tg, il, tl = _batch((t, b, c, n), seed)
    lp = _lp(z)
    tg[1, :2] = 2
    il[1], tl[1] = 2, 2  # (2, 2) needs 3 frames
    il[2], tl[2] = 0, 0
    tl[3] = 1
    tg[3, 1:] = -1
    lp[4, 0, 3] = -torch.inf
    return lp, tg, il, tl


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_ctc_nll_op_equals_the_scan_program(backend):
    """tests/programs/ctc_scan.loss is the same forward algorithm written with the language's
    scan (two states per label): values and gradients w.r.t. log_probs agree on every row
    where the alignment exists, on torch's kernel path and jax's lax.scan alike; where it does
    not, both cost about -log_epsilon (their impossible paths differ: neither is a
    probability)."""
    scan = lossdsl.parse(SCAN.read_text())
    lp, tg, il, tl = _mixed_batch(5)
    tg_scan = tg.clamp(min=0)  # the scan program gathers every entry, padding included
    got, g = _values_and_grads(lossdsl.load("ctc").compile(backend), backend, lp, tg, il, tl)
    want, gw = _values_and_grads(scan.compile(backend), backend, lp, tg_scan, il, tl)
    ok = np.arange(6) != 1
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12)
    # the op emits log_epsilon for the -inf log-probability (frame 4, class 3 of sequence 0):
    # its gradient is finite, 0 there
    assert np.isfinite(g).all() and g[4, 0, 3] == 0
    np.testing.assert_allclose(g[:, ok], np.nan_to_num(gw[:, ok]), rtol=1e-9, atol=1e-12)
    assert 0.99e5 < got[1] < 1.01e5 and 0.99e5 < want[1] < 1.01e5


def test_ctc_torch_kernel_path_equals_the_loop():
    """torch takes F.ctc_loss's kernel wherever it equals the op to float rounding and the
    loop of the op table's algorithm elsewhere (the impossible row here, and every row with a
    positive log-probability: the kernel's backward takes exp(lp)): the kernel's values
    and gradients w.r.t. log_probs on every possible row equal the numpy reference's and the
    jax lax.scan's; the gradient is minus the posterior, not pytorch#52241's exp(lp) minus it
    (compared on unnormalized log-probabilities, where the two differ)."""
    lp, tg, il, tl = _mixed_batch(7)
    lp = lp - 0.3  # not normalized: torch's own backward would be off by exp(lp)
    lp[4, 0, 3] = -torch.inf
    fn = lossdsl.load("ctc")
    src = fn.source("torch")
    assert "_CtcKernel" in src and "_unbound_scan" in src
    possible = [k != 1 for k in range(6)]  # the kernel's own rows: its autograd node
    x = lp[:, possible].clone().requires_grad_()
    out = fn.compile("torch")(x, tg[possible], il[possible], tl[possible], reduction="none")
    assert "CtcKernel" in out.grad_fn.name()
    got, g = _values_and_grads(fn.compile("torch"), "torch", lp, tg, il, tl)
    want, gw = _values_and_grads(fn.compile("jax"), "jax", lp, tg, il, tl)
    ref = call("numpy", fn.compile("numpy"),
               {"log_probs": lp.numpy(), "targets": tg.numpy(), "input_lengths": il.numpy(),
                "target_lengths": tl.numpy()}, "float64", reduction="none")  # fmt: skip
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(want, ref, rtol=1e-12)
    np.testing.assert_allclose(g, gw, rtol=1e-9, atol=1e-12)
    assert np.isfinite(g).all()
    # frames past a sequence's input length get no gradient, the -inf entry none either
    assert (g[il[0] :, 0] == 0).all() and g[4, 0, 3] == 0


def test_ctc_torch_takes_the_loop_where_log_epsilon_is_not_negligible():
    """With log_epsilon = -5 the impossible paths weigh as much as the real ones: the kernel
    (exact log 0) would differ, so every row takes the loop, equal to the numpy reference."""
    lp, tg, il, tl = _mixed_batch(9)
    fn = lossdsl.load("ctc")
    got, _ = _values_and_grads(fn.compile("torch"), "torch", lp, tg, il, tl, log_epsilon=-5.0)
    data = {"log_probs": lp.numpy(), "targets": tg.numpy(), "input_lengths": il.numpy(),
            "target_lengths": tl.numpy()}  # fmt: skip
    want = call("numpy", fn.compile("numpy"), data, "float64", reduction="none", log_epsilon=-5.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    exact = torch.nn.functional.ctc_loss(lp, tg.clamp(min=0), il, tl, reduction="none")
    assert np.abs(got[0] - exact[0].item()) > 1e-6  # the kernel's value is not the op's here


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_ctc_bad_blank_and_bad_targets(backend):
    """A blank that is no class id is a ParamError; a target class id outside the classes
    within its target length an InputError (with check_indices); padding past the target
    length may hold anything (torch's and optax's convention)."""
    lp, tg, il, tl = _mixed_batch(3)
    data = {"log_probs": lp.numpy(), "targets": tg.numpy(), "input_lengths": il.numpy(),
            "target_lengths": tl.numpy()}  # fmt: skip
    fn = lossdsl.load("ctc").compile(backend)
    assert np.isfinite(call(backend, fn, data, "float64", reduction="none")).all()
    with pytest.raises(lossdsl.ParamError, match="blank = 5 is no class id"):
        call(backend, fn, data, "float64", blank=5)
    bad = {**data, "targets": np.where(np.arange(3) == 0, 7, data["targets"])}
    with pytest.raises(lossdsl.InputError, match="class ids .*7.* outside 0..4"):
        call(backend, fn, bad, "float64")


def test_ctc_under_compile_and_jit_and_double_backward():
    """torch.compile and jax.jit run the op (values equal eager); a second derivative through
    torch's kernel path is refused by autograd (its backward is once_differentiable)."""
    lp, tg, il, tl = _mixed_batch(4)
    eager = lossdsl.load("ctc").compile("torch")
    want = eager(lp, tg, il, tl, reduction="none")
    got = torch.compile(eager)(lp, tg, il, tl, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    jf = lossdsl.load("ctc").compile("jax")
    args = [jnp.asarray(a.numpy()) for a in (lp, tg, il, tl)]
    np.testing.assert_allclose(
        np.asarray(jax.jit(lambda *a: jf(*a, reduction="none"))(*args)), want.numpy(), rtol=1e-12
    )
    x = lp.clone().requires_grad_()
    il2 = torch.full_like(il, lp.shape[0])
    tl2 = torch.ones_like(tl)
    (g,) = torch.autograd.grad(eager(x, tg.clamp(min=1), il2, tl2), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), x)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_ctc_empty_label_dim_and_no_frames(backend):
    """L = 0 (no labels at all): the only alignment is all blanks, -sum_t log p_t(blank) over
    the frames used (Graves et al. 2006: the empty labelling collapses from blanks alone).
    T = 0: an empty target costs 0, a non-empty one about -log_epsilon (no frame to emit it)."""
    g = gen(2)
    lp = torch.randn(5, 3, 4, generator=g).log_softmax(2)
    il = torch.tensor([5, 2, 0])
    want = [-lp[:5, 0, 0].sum().item(), -lp[:2, 1, 0].sum().item(), 0.0]
    fn = lossdsl.load("ctc").compile(backend)

    def run(lp, tg, il, tl):
        data = {"log_probs": lp.numpy(), "targets": tg.numpy(), "input_lengths": il.numpy(),
                "target_lengths": tl.numpy()}  # fmt: skip
        return call(backend, fn, data, "float64", reduction="none")

    got = run(lp, torch.zeros(3, 0, dtype=torch.long), il, torch.zeros(3, dtype=torch.long))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    none = run(lp[:0], torch.ones(3, 2, dtype=torch.long), il, torch.tensor([0, 1, 2]))
    assert none[0] == 0 and 0.99e5 < none[1] < 1.01e5 and 0.99e5 < none[2] < 1.01e5
