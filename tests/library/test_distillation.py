"""Knowledge distillation: Hinton KD (mdistiller), Dual-Head KD (DHKD) and BD-KD (no official code:
an independent transcription of its formula, tests/reference/bd_kd_paper.py).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference.bd_kd_paper import bd_kd_student
from reference.dual_head_kd_official import binary_kl, binary_kl_norm, dhkd_total, distill_kl
from reference.kd_mdistiller import kd_loss
from torch_helpers import assert_same, gen, logits_target

import lossdsl

# ---- kd: mdistiller kd_loss (tests/reference/kd_mdistiller.py) -------------------------------


@pytest.mark.parametrize("T", [1.0, 4.0, 10.0])
def test_kd_matches_mdistiller(shape, T):
    s = torch.randn(*shape, generator=gen(13)) * 2
    t = torch.randn(*shape, generator=gen(14)) * 2
    fn = lossdsl.load("kd").compile("torch")
    # Student gradient only: mdistiller protects the teacher with no_grad, lossdsl with stop_grad.
    assert_same(
        lambda s, t: fn(s, t, T=T),
        lambda s, t: kd_loss(s, t.detach(), T),
        {"s": s, "t": t},
        ["s"],
    )


def test_kd_teacher_gets_no_gradient():
    s, t = torch.randn(4, 3), torch.randn(4, 3, requires_grad=True)
    out = lossdsl.load("kd").compile("torch")(s, t)
    assert not out.requires_grad  # stop_grad(teacher): nothing flows back


# ---- dual_head_kd: penghui-yang/DHKD -----------------------------------------------------------


def _heads(shape, seed):
    g = gen(seed)
    b, c = shape
    a, aux, t = (torch.randn(b, c, generator=g) * 3 for _ in range(3))
    return a, aux, t, torch.randint(0, c, (b,), generator=g)


@pytest.mark.parametrize("shape", [(8, 5), (33, 17)])
@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("T,alpha,gamma,beta", [(2.0, 1.0, 1.0, 0.0), (4.0, 0.1, 0.7, 0.5)])
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
