"""Domain / test-time adaptation and consistency regularization: entropy minimization (Tent),
information maximization (SHOT), the source-free segmentation loss (SFDA), the virtual-adversarial
KL (VAT) and the symmetric cross-entropy consistency of RMT.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference.info_max_official import im_loss
from reference.sfda_official import ent_kl_prop
from reference.symmetric_ce_consistency_official import (
    rmt_loss,
    rmt_self_training,
    softmax_entropy,
    symmetric_entropy,
)
from torch.distributions import Categorical
from torch_helpers import assert_same, compiled, gen, logits_target, reduce_

import lossdsl

# ---- entropy_minimization: torch.distributions.Categorical.entropy; tent softmax_entropy ------


@pytest.mark.parametrize("shape", [(8, 5), (33, 17), (3, 4, 5, 2)])
def test_entropy_minimization_matches_categorical_entropy(shape, reduction):
    x = torch.randn(*shape, generator=gen(15)) * 3
    fn = lossdsl.load("entropy_minimization").compile("torch")

    def ref(x):
        h = Categorical(logits=x.movedim(1, -1)).entropy()  # torch.distributions
        return reduce_(h, reduction)

    assert_same(lambda x: fn(x, reduction=reduction), ref, {"x": x}, ["x"])
    tent = -(x.softmax(1) * x.log_softmax(1)).sum(1)  # DequanWang/tent, tent.py softmax_entropy
    torch.testing.assert_close(fn(x, reduction="none"), tent)


# ---- info_max: tim-learn/SHOT (train_target im_loss) -----------------------------------------


@pytest.mark.parametrize("div_weight", [1.0, 0.0])
def test_info_max_matches_shot(shape, div_weight):
    x = torch.randn(*shape, generator=gen(16)) * 3
    fn = lossdsl.load("info_max").compile("torch")
    assert_same(
        lambda x: fn(x, div_weight=div_weight),
        lambda x: im_loss(x, gent=div_weight == 1.0),
        {"x": x},
        ["x"],
    )


def test_info_max_without_epsilon_is_entropy_minus_marginal_entropy():
    x = torch.randn(10, 4, generator=gen(17))
    fn = lossdsl.load("info_max").compile("torch")
    h = Categorical(logits=x).entropy().mean()
    hbar = Categorical(probs=F.softmax(x, 1).mean(0)).entropy()
    torch.testing.assert_close(fn(x, epsilon=0.0), h - hbar)


# ---- sfda_entropy_prior_kl: mathilde-b/SFDA losses.py EntKLProp + utils.norm_soft_size ------


@pytest.mark.parametrize("shape", [(2, 2, 6, 5), (3, 4, 3, 7)])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_sfda_matches_official(shape, power):
    b, c = shape[:2]
    x = torch.randn(*shape, generator=gen(18)) * 2
    prior = torch.rand(b, c, generator=gen(19))
    prior = prior / prior.sum(1, keepdim=True)
    w = torch.rand(c, generator=gen(20))
    fn = lossdsl.load("sfda_entropy_prior_kl").compile("torch")
    assert_same(
        lambda x, prior: fn(x, prior, w, power=power, lamb_consprior=0.7),
        lambda x, prior: ent_kl_prop(F.softmax(x, 1), prior, w, lamb_consprior=0.7, power=power),
        {"x": x, "prior": prior},
        ["x"],
        rtol=1e-9,
    )


# ---- vat_kl: torch.nn.functional.kl_div(batchmean) as in lyakaap/VAT-pytorch ------------------


def test_vat_kl_matches_kl_div_batchmean(shape):
    x = torch.randn(*shape, generator=gen(21)) * 3
    xa = x + torch.randn(*shape, generator=gen(22))
    fn = lossdsl.load("vat_kl").compile("torch")
    assert_same(
        lambda x, xa: fn(x, xa),
        lambda x, xa: F.kl_div(
            F.log_softmax(xa, 1), F.softmax(x, 1).detach(), reduction="batchmean"
        ),
        {"x": x, "xa": xa},
        ["xa"],
    )
    xg = x.clone().requires_grad_(True)
    # VAT: no gradient through the clean prediction (detached, as the reference's .detach())
    assert not fn(xg, xa).requires_grad
    assert_same(  # detach=false: both views get gradient
        lambda x, xa: fn(x, xa, detach=False, reduction="sum"),
        lambda x, xa: F.kl_div(F.log_softmax(xa, 1), F.softmax(x, 1), reduction="sum"),
        {"x": x, "xa": xa},
        ["x", "xa"],
    )


def test_vat_kl_zero_when_views_agree():
    x = torch.randn(5, 4, generator=gen(23))
    fn = lossdsl.load("vat_kl").compile("torch")
    torch.testing.assert_close(fn(x, x + 3.0, reduction="none"), torch.zeros(5))


# ---- symmetric_ce_consistency: mariodoebler/test-time-adaptation (RMT) --------------------------


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_symmetric_ce_consistency_matches_official(shape, reduction, alpha):
    s, _ = logits_target(shape, seed=1)
    t, _ = logits_target(shape, seed=2)
    fn = compiled("symmetric_ce_consistency")
    assert_same(
        lambda s, t: fn(s, t, alpha=alpha, reduction=reduction),
        lambda s, t: rmt_loss(s, t, alpha=alpha, reduction=reduction),
        {"s": s, "t": t},
        ["s"],
    )


def test_symmetric_ce_consistency_older_forms_and_augmented_view():
    fn = compiled("symmetric_ce_consistency")
    x, _ = logits_target((9, 6), seed=3)
    x_aug, _ = logits_target((9, 6), seed=4)
    ema, _ = logits_target((9, 6), seed=5)
    # older rmt.py (1a5a834): softmax_entropy is the alpha = 0.5 loss per sample
    torch.testing.assert_close(fn(x, ema, reduction="none"), softmax_entropy(x, ema))
    # symmetric_entropy(x, x_aug, ema) and the current self-training term average two views
    both = 0.5 * (fn(x, ema, reduction="none") + fn(x_aug, ema, reduction="none"))
    torch.testing.assert_close(both, symmetric_entropy(x, x_aug, ema))
    torch.testing.assert_close(both.mean(), rmt_self_training(x, x_aug, ema))


def test_symmetric_ce_consistency_gradients_and_edges():
    fn = compiled("symmetric_ce_consistency")
    s, _ = logits_target((7, 4), seed=6)
    t, _ = logits_target((7, 4), seed=7)
    s.requires_grad_(True)
    t.requires_grad_(True)
    fn(s, t).backward()
    assert t.grad is None  # the teacher is a constant (EMA weights detach_()ed upstream)
    # the second term differentiates through p_s: detaching p_s there changes the gradient
    s2 = s.detach().clone().requires_grad_(True)
    lt = F.log_softmax(t.detach(), 1)
    partial = (
        -0.5 * (lt.exp() * F.log_softmax(s2, 1)).sum(1)
        - 0.5 * (F.softmax(s2, 1).detach() * lt).sum(1)
    ).mean()
    (g_partial,) = torch.autograd.grad(partial, s2)
    assert not torch.allclose(s.grad, g_partial)
    # identical student and teacher: both terms are the entropy -sum p log p (by hand)
    p = F.softmax(s.detach(), 1)
    ent = -(p * p.log()).sum(1)
    torch.testing.assert_close(fn(s.detach(), s.detach(), reduction="none"), ent)
    # alpha = 0: plain CE of the student against the teacher's soft labels (by hand)
    want = -(F.softmax(t.detach(), 1) * F.log_softmax(s.detach(), 1)).sum(1)
    torch.testing.assert_close(fn(s.detach(), t.detach(), alpha=0.0, reduction="none"), want)
