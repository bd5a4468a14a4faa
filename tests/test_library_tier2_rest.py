"""Tier-2 losses harmonic, dispersive, dual_head_kd and bd_kd (CATALOG.md section 4: T2.8, T2.18,
T2.16, T2.15) against tests/reference/ (each file names its repository, file and commit; bd_kd
has no code anywhere and is checked against an independent transcription of its formula).
Values and gradients in float64, at least two shapes, every reduction, plus edge cases; each
expected value names its source."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference.bd_kd_paper import bd_kd_student
from reference.dispersive_official import disp_loss, disp_loss_cosine_paper
from reference.dual_head_kd_official import binary_kl, binary_kl_norm, dhkd_total, distill_kl
from reference.harmonic_official import harmonic_loss
from reference.kd_mdistiller import kd_loss
from torch_helpers import assert_same, gen, logits_target

import lossdsl

torch.set_default_dtype(torch.float64)
REDUCTIONS = ["none", "sum", "mean"]


# ---- harmonic: KindXiaoming/grow-crystals src/utils/model.py -----------------------------------


def sq_dist(x, w):
    """The squared distances [B, C] from x [B, D] to the centers W [C, D] (difference form)."""
    return (x[:, None, :] - w[None, :, :]).pow(2).sum(-1)


@pytest.mark.parametrize("bcd", [(8, 5, 3), (33, 17, 16)])
@pytest.mark.parametrize("n,eps", [(1.0, 1e-4), (2.5, 1e-6), (28.0, 1e-4)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_harmonic_matches_official(bcd, n, eps, reduction):
    b, c, d = bcd
    g = gen(b + c)
    x, w = torch.randn(b, d, generator=g), torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (b,), generator=g)
    fn = lossdsl.load("harmonic").compile("torch")
    # gradients w.r.t. the representations AND the class centers
    assert_same(
        lambda x, w, y: fn(x, w, y, n=n, eps=eps, reduction=reduction),
        lambda x, w, y: harmonic_loss(x, w, y, n=n, eps=eps, reduction=reduction),
        {"x": x, "w": w, "y": y},
        ["x", "w"],
        rtol=1e-9,
    )


def test_harmonic_hand_values_and_paper_exponent():
    fn = lossdsl.load("harmonic").compile("torch")
    # by hand, eps = 0, n = 1: x = 0, centers 1 and 2 (1-D): squared distances (1, 4),
    # P = (1/1, 1/4) / (5/4) = (0.8, 0.2)
    x0, w0 = torch.zeros(2, 1), torch.tensor([[1.0], [2.0]])
    out = fn(x0, w0, torch.tensor([0, 1]), eps=0.0, reduction="none")
    torch.testing.assert_close(out, torch.tensor([-math.log(0.8), -math.log(0.2)]))
    # README's HarMax 1/d^n_paper on the L2 distance d equals this spec with n = n_paper / 2
    g = gen(3)
    x, w = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    d = torch.cdist(x, w)
    p = d.pow(-3.0) / d.pow(-3.0).sum(1, keepdim=True)
    want = -torch.log(p[torch.arange(6), y])
    torch.testing.assert_close(fn(x, w, y, n=1.5, eps=0.0, reduction="none"), want)


def test_harmonic_scale_invariance_and_center_hit():
    fn = lossdsl.load("harmonic").compile("torch")
    g = gen(4)
    xs, ws = torch.randn(7, 3, generator=g), torch.randn(6, 3, generator=g)
    y = torch.randint(0, 6, (7,), generator=g)
    # HarMax is scale invariant (paper, section 2): with eps = 0 scaling all distances is a no-op
    k = 30.0
    torch.testing.assert_close(fn(xs * k, ws * k, y, n=3.0, eps=0.0), fn(xs, ws, y, n=3.0, eps=0.0))
    # a representation exactly on its class center: finite loss and gradient (eps), close to 0;
    # the official expanded distance gives the same value up to its rounding
    x, w = torch.randn(1, 4, generator=g), torch.randn(3, 4, generator=g)
    x = w[1:2].clone().requires_grad_(True)
    out = fn(x, w, torch.tensor([1]))
    (gx,) = torch.autograd.grad(out, x)
    assert torch.isfinite(out) and torch.isfinite(gx).all() and 0 <= out.item() < 1e-3
    ref = harmonic_loss(x.detach(), w, torch.tensor([1]))
    torch.testing.assert_close(out.detach(), ref, rtol=1e-6, atol=1e-12)


def test_harmonic_large_exponent_no_underflow():
    # n = 768 (official GPT-2 setting): the official (dist/min)^(-n) underflows float32 to 0 for a
    # class 15% farther than the nearest (log 0 = -inf loss); in float64 it is still finite here
    # and is the expected value; ours in float32 matches it
    g = gen(5)
    x, w = torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g) * 0.3
    dsq = sq_dist(x, w)
    y = torch.randint(0, 6, (4,), generator=g)
    fn = lossdsl.load("harmonic").compile("torch")
    # the official's layer output, fed exactly these distances: x = the distances' own "layer"
    p = (dsq + 1e-4) / (dsq + 1e-4).min(1, keepdim=True)[0]
    want = -torch.log((p**-768.0) / (p**-768.0).sum(1, keepdim=True))[torch.arange(4), y]
    assert torch.isfinite(want).all()
    p32 = p.float() ** -768.0
    assert torch.isinf(torch.log(p32 / p32.sum(1, keepdim=True))).any()  # the official pitfall
    got = fn(x.float(), w.float(), y, n=768.0, reduction="none")
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=1e-3)


# ---- dispersive: raywang4/DispLoss transport/transport.py --------------------------------------


@pytest.mark.parametrize("shape", [(8, 5), (33, 4, 6), (16, 3, 2, 4)])
@pytest.mark.parametrize("tau", [1.0, 0.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dispersive_matches_official(shape, tau, reduction):
    z = torch.randn(*shape, generator=gen(sum(shape)))
    fn = lossdsl.load("dispersive").compile("torch")
    # one scalar per batch: every reduction returns the official value
    assert_same(
        lambda z: fn(z, tau=tau, reduction=reduction),
        lambda z: disp_loss(z, tau=tau),
        {"z": z},
        ["z"],
    )


@pytest.mark.parametrize("shape", [(8, 5), (21, 3, 7)])
@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_dispersive_cosine_matches_paper_formula(shape, tau):
    z = torch.randn(*shape, generator=gen(7 + shape[0]))
    fn = lossdsl.load("dispersive").compile("torch")
    assert_same(
        lambda z: fn(z, tau=tau, cosine=True),
        lambda z: disp_loss_cosine_paper(z, tau=tau),
        {"z": z},
        ["z"],
    )


def test_dispersive_bounds_and_collapse():
    fn = lossdsl.load("dispersive").compile("torch")
    # collapsed batch (all z_i equal): every D = 0, L = log 1 = 0 (by hand; the official too),
    # and by symmetry the gradient is 0 (finite: no sqrt at zero distance)
    z = torch.ones(6, 5).requires_grad_(True)
    out = fn(z)
    (gz,) = torch.autograd.grad(out, z)
    assert out.item() == pytest.approx(0.0, abs=1e-15)
    assert disp_loss(z.detach()).item() == pytest.approx(0.0, abs=1e-15)
    torch.testing.assert_close(gz, torch.zeros_like(gz))
    # far apart: only the B diagonal terms survive, L = log(B / B^2) = -log B (by hand; official)
    z = 100.0 * torch.eye(7)
    torch.testing.assert_close(fn(z), torch.tensor(-math.log(7)))
    torch.testing.assert_close(disp_loss(z), torch.tensor(-math.log(7)))
    # a single sample: L = 0
    torch.testing.assert_close(fn(torch.randn(1, 4, generator=gen(8))), torch.tensor(0.0))
    # the official weight in the diffusion objective is 0.25 (recorded, not part of the loss)


def test_dispersive_float32_close_to_float64():
    # the expanded |a|^2 + |b|^2 - 2ab form loses a little to cancellation in float32
    z = torch.randn(64, 8, 16, generator=gen(9)) * 3
    fn = lossdsl.load("dispersive").compile("torch")
    torch.testing.assert_close(fn(z.float()).double(), disp_loss(z), rtol=1e-5, atol=1e-5)


# ---- dual_head_kd: penghui-yang/DHKD -----------------------------------------------------------


def _heads(shape, seed):
    g = gen(seed)
    b, c = shape
    a, aux, t = (torch.randn(b, c, generator=g) * 3 for _ in range(3))
    return a, aux, t, torch.randint(0, c, (b,), generator=g)


@pytest.mark.parametrize("shape", [(8, 5), (33, 17)])
@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("T,alpha,gamma,beta", [(2.0, 1.0, 1.0, 0.0), (4.0, 0.1, 0.7, 0.5)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dual_head_kd_matches_official(shape, norm, T, alpha, gamma, beta, reduction):
    a, aux, t, y = _heads(shape, seed=shape[0])
    fn = lossdsl.load("dual_head_kd").compile("torch")
    kw = dict(alpha=alpha, gamma=gamma, beta=beta, reduction=reduction)
    assert_same(
        lambda a, aux, t, y: fn(a, aux, t, y, T=T, norm=norm, **kw),
        lambda a, aux, t, y: dhkd_total(a, aux, t, y, temperature=T, norm=norm, **kw),
        {"a": a, "aux": aux, "t": t, "y": y},
        ["a", "aux"],
    )


def _teacher_grad(fn, x, t, *rest):
    x, t = x.clone().requires_grad_(True), t.clone().requires_grad_(True)
    gx, gt = torch.autograd.grad(fn(x, t, *rest), [x, t], allow_unused=True)
    assert gx is not None and torch.any(gx != 0)  # the student side does get a gradient
    return gt


def test_dual_head_kd_and_bd_kd_no_gradient_to_teacher():
    # official DHKD computes the teacher under torch.no_grad(); BD-KD's student loss treats the
    # online teacher as a target (its own loss updates it)
    a, aux, t, y = _heads((5, 4), seed=2)
    dh = lossdsl.load("dual_head_kd").compile("torch")
    g = _teacher_grad(lambda aux, t, a, y: dh(a, aux, t, y, beta=1.0), aux, t, a, y)
    assert g is None or torch.all(g == 0)
    bd = lossdsl.load("bd_kd").compile("torch")
    w = dict(rev_if_sharper=0.5, fwd_if_flatter=0.5)
    g = _teacher_grad(lambda s, t, y: bd(s, t, y, **w), a, t, y)
    assert g is None or torch.all(g == 0)


@pytest.mark.parametrize("shape", [(8, 5), (33, 17)])
def test_dual_head_kd_pieces_are_the_official_modules(shape):
    # the official nn.Module forwards themselves (not the dhkd_total wrapper)
    a, aux, t, y = _heads(shape, seed=3)
    fn = lossdsl.load("dual_head_kd").compile("torch")
    torch.testing.assert_close(fn(a, aux, t, y, gamma=0.0), binary_kl_norm(aux, t, 2.0))
    torch.testing.assert_close(fn(a, aux, t, y, gamma=0.0, norm=False), binary_kl(aux, t, 2.0))
    torch.testing.assert_close(fn(a, aux, t, y, gamma=0.0, alpha=0.0, beta=1.0), distill_kl(a, t))
    torch.testing.assert_close(fn(a, aux, t, y, alpha=0.0), F.cross_entropy(a, y))


def test_dual_head_kd_edges():
    fn = lossdsl.load("dual_head_kd").compile("torch")
    a, aux, t, y = _heads((6, 4), seed=4)
    # auxiliary head equal to the teacher: KL(Bern(1/2) || Bern(1/2)) = 0 and, for BinaryKL,
    # KL(sigma(t/T) || sigma(t/T)) = 0 (by hand): only the CE of head A remains
    for norm in (True, False):
        torch.testing.assert_close(fn(a, t, t, y, norm=norm), F.cross_entropy(a, y))
    # saturated gaps (|u| = 30 > -log eps): the clamp binds; the official float64 value is finite
    aux2 = t + torch.tensor([[60.0, -60.0, 0.0, 1.0]])
    for norm in (True, False):
        want = dhkd_total(a, aux2, t, y, norm=norm)
        torch.testing.assert_close(fn(a, aux2, t, y, norm=norm), want)
        # float32: the official 1 - 1e-8 rounds to 1 and log(1 - sigmoid) = -inf; ours is finite
        got32 = fn(a.float(), aux2.float(), t.float(), y, norm=norm)
        torch.testing.assert_close(got32.double(), want, rtol=1e-5, atol=1e-5)
    assert torch.isinf(binary_kl_norm(aux2.float(), t.float(), 2.0))  # the official pitfall
    # clamped logits get zero gradient (official: torch.clamp), here the +-60 entries
    aux2 = aux2.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(a, aux2, t, y), aux2)
    assert g[0, 0] == 0 and g[0, 1] == 0 and g[0, 2] == 0  # u = 0: d/du of the KL at 1/2 is 0
    assert g[0, 3] != 0


# ---- bd_kd: no official code; tests/reference/bd_kd_paper.py ---------------------------------


WEIGHTS = [
    dict(),  # spec defaults
    dict(fwd_if_sharper=0.3, rev_if_sharper=0.7, fwd_if_flatter=0.9, rev_if_flatter=0.2),
]


@pytest.mark.parametrize("shape", [(8, 5), (33, 17)])
@pytest.mark.parametrize("T", [4.0, 1.0])
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bd_kd_matches_formula(shape, T, weights, reduction):
    s, y = logits_target(shape, seed=11)
    t, _ = logits_target(shape, seed=12)
    t = t * torch.linspace(0.2, 2.0, shape[0])[:, None]  # some teachers flatter, some sharper
    fn = lossdsl.load("bd_kd").compile("torch")
    assert_same(
        lambda s, t, y: fn(s, t, y, T=T, reduction=reduction, **weights),
        lambda s, t, y: bd_kd_student(s, t, y, T=T, reduction=reduction, **weights),
        {"s": s, "t": t, "y": y},
        ["s"],
    )


def test_bd_kd_edges():
    fn = lossdsl.load("bd_kd").compile("torch")
    s, y = logits_target((9, 6), seed=13)
    t, _ = logits_target((9, 6), seed=14)
    # forward KL only, in both branches: CE + Hinton KD (mdistiller kd_loss, T^2 * batchmean KL)
    w = dict(fwd_if_sharper=1.0, rev_if_sharper=0.0, fwd_if_flatter=1.0, rev_if_flatter=0.0)
    torch.testing.assert_close(fn(s, t, y, T=3.0, **w), F.cross_entropy(s, y) + kd_loss(s, t, 3.0))
    # student == teacher: both KLs vanish, the loss is CE (by definition)
    torch.testing.assert_close(fn(s, s, y), F.cross_entropy(s, y))
    # the branch: row 0 student sharper than its teacher, row 1 flatter (entropies by hand)
    st = torch.tensor([[5.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    te = torch.tensor([[1.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    yy = torch.tensor([0, 0])
    only_sharp = dict(fwd_if_sharper=1.0, rev_if_sharper=0.0, fwd_if_flatter=0.0)
    out = fn(st, te, yy, T=1.0, rev_if_flatter=0.0, reduction="none", **only_sharp)
    ce = F.cross_entropy(st, yy, reduction="none")
    kl0 = F.kl_div(F.log_softmax(st[:1], 1), F.softmax(te[:1], 1), reduction="sum")
    torch.testing.assert_close(out, torch.stack([ce[0] + kl0, ce[1]]))
