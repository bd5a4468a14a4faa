"""Sanity checks of the transcribed reference losses in tests/reference/.

Each check compares a transcription with an independent, pip-installed implementation or with a
closed form built from torch.nn.functional; every assertion message says where the expected
value comes from. Everything runs in float64.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference.focal_softmax import focal_loss_plain, kornia_focal_loss
from reference.kd_mdistiller import kd_loss
from reference.poly1_paper import poly1_cross_entropy, poly1_focal_loss
from reference.sigmoid_focal_torchvision import sigmoid_focal_loss
from reference.supcon_official import supcon_loss

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


# --------------------------------------------------------------------------------------------
# SupCon (HobbitLong/SupContrast) vs pytorch_metric_learning.losses.SupConLoss
#
# Conventions that differ between the two:
#  * PML normalises embeddings (CosineSimilarity); the official loss uses raw dot products.
#    -> feed pre-normalised features.
#  * PML takes one view [N, D]; the official loss takes [bsz, n_views, D]. Official 'all' mode
#    equals PML on torch.cat(torch.unbind(features, 1)) with labels.repeat(n_views).
#  * PML has no base_temperature (equivalent to base_temperature == temperature).
#  * PML's default reducer (AvgNonZeroReducer) averages only anchors with non-zero loss; the
#    official code averages over all anchors (those without positives contribute 0).
#  * PML default temperature is 0.1, official default 0.07.
# --------------------------------------------------------------------------------------------

pml_losses = importlib.import_module("pytorch_metric_learning.losses")


def _pml_supcon(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    return pml_losses.SupConLoss(temperature=temperature)(emb, labels)


def test_supcon_single_view_matches_pml():
    g = _gen(1)
    feats = _unit(torch.randn(8, 1, 5, generator=g, dtype=DT)).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    t = 0.1
    ours = supcon_loss(feats, labels, temperature=t, base_temperature=t)
    emb = feats[:, 0].detach().clone().requires_grad_(True)
    theirs = _pml_supcon(emb, labels, t)
    assert_close(
        ours,
        theirs,
        msg="expected: pytorch_metric_learning SupConLoss(temperature=0.1) on the single view",
    )
    (g_ours,) = torch.autograd.grad(ours, feats)
    (g_theirs,) = torch.autograd.grad(theirs, emb)
    # PML differentiates through its own L2 normalisation; for unit-norm inputs the two gradients
    # agree up to the radial component, so compare the tangential parts.
    u = emb.detach()

    def tang(v):
        return v - (v * u).sum(-1, keepdim=True) * u

    assert_close(
        tang(g_ours[:, 0]),
        tang(g_theirs),
        msg="expected: tangential gradient of pytorch_metric_learning SupConLoss",
    )


def test_supcon_two_views_all_mode_matches_pml_on_concatenated_views():
    g = _gen(2)
    bsz, views = 6, 2
    feats = _unit(torch.randn(bsz, views, 4, generator=g, dtype=DT))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    t = 0.2
    ours = supcon_loss(feats, labels, temperature=t, base_temperature=t)
    emb = torch.cat(torch.unbind(feats, dim=1), dim=0)
    theirs = _pml_supcon(emb, labels.repeat(views), t)
    assert_close(
        ours,
        theirs,
        msg="expected: PML SupConLoss on cat(unbind(features, 1)) with labels.repeat(n_views)",
    )


def test_supcon_simclr_mode_matches_pml_with_instance_labels():
    g = _gen(3)
    bsz, views = 5, 2
    feats = _unit(torch.randn(bsz, views, 3, generator=g, dtype=DT))
    t = 0.5
    ours = supcon_loss(feats, None, temperature=t, base_temperature=t)
    emb = torch.cat(torch.unbind(feats, dim=1), dim=0)
    theirs = _pml_supcon(emb, torch.arange(bsz).repeat(views), t)
    assert_close(
        ours, theirs, msg="expected: PML SupConLoss with one label per instance (SimCLR/NT-Xent)"
    )


def test_supcon_anchor_without_positive_is_zero_but_counted_in_mean():
    g = _gen(4)
    feats = _unit(torch.randn(4, 1, 3, generator=g, dtype=DT))
    labels = torch.tensor([0, 1, 1, 2])  # the official comment's edge case
    t = 0.1
    per_anchor = supcon_loss(feats, labels, temperature=t, base_temperature=t, reduction="none")
    assert torch.isfinite(per_anchor).all()
    assert_close(
        per_anchor[[0, 3]],
        torch.zeros(2, dtype=DT),
        msg="expected: 0 for anchors without positives (official mask_pos_pairs -> 1)",
    )
    ours = supcon_loss(feats, labels, temperature=t, base_temperature=t)
    theirs = _pml_supcon(feats[:, 0], labels, t)
    # PML's AvgNonZeroReducer averages over the 2 anchors that have positives; the official code
    # divides by all 4 anchors.
    assert_close(
        ours,
        theirs * 2 / 4,
        msg="expected: PML SupConLoss * (#anchors with positives / #anchors)",
    )


def test_supcon_temperature_over_base_temperature_scaling():
    g = _gen(5)
    feats = _unit(torch.randn(6, 2, 4, generator=g, dtype=DT))
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    t = 0.1
    ours = supcon_loss(feats, labels, temperature=t)  # base_temperature stays 0.07
    emb = torch.cat(torch.unbind(feats, dim=1), dim=0)
    theirs = _pml_supcon(emb, labels.repeat(2), t)
    assert_close(
        ours,
        theirs * (t / 0.07),
        msg="expected: PML SupConLoss(temperature=0.1) * temperature / base_temperature(0.07)",
    )


def _supcon_one_mode_loop(feats, labels, t, bt):
    """Direct per-anchor formula for contrast_mode='one' (written from the SupCon paper eq. 2)."""
    bsz, views, _ = feats.shape
    contrast = torch.cat(torch.unbind(feats, dim=1), dim=0)
    clabels = labels.repeat(views)
    losses = []
    for i in range(bsz):
        sims = contrast @ feats[i, 0] / t
        others = [j for j in range(bsz * views) if j != i]
        log_den = torch.logsumexp(sims[others], dim=0)
        pos = [j for j in others if clabels[j] == labels[i]]
        lp = torch.stack([sims[j] - log_den for j in pos]).mean() if pos else sims.new_zeros(())
        losses.append(-(t / bt) * lp)
    return torch.stack(losses).mean()


def test_supcon_one_mode_matches_direct_formula():
    g = _gen(6)
    feats = torch.randn(5, 3, 4, generator=g, dtype=DT)  # not normalised: official doesn't care
    labels = torch.tensor([0, 1, 0, 2, 1])
    ours = supcon_loss(feats, labels, contrast_mode="one", temperature=0.3, base_temperature=0.07)
    expected = _supcon_one_mode_loop(feats, labels, 0.3, 0.07)
    assert_close(ours, expected, msg="expected: per-anchor loop of SupCon eq. 2 (anchors=view 0)")


def test_supcon_gradcheck():
    g = _gen(7)
    feats = torch.randn(4, 2, 3, generator=g, dtype=DT, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2])
    assert torch.autograd.gradcheck(
        lambda f: supcon_loss(f, labels, temperature=0.5, base_temperature=0.5), (feats,)
    )


# --------------------------------------------------------------------------------------------
# KD (mdistiller)
# --------------------------------------------------------------------------------------------


def test_kd_2d_equals_kl_div_batchmean_times_t2():
    g = _gen(10)
    s = torch.randn(7, 5, generator=g, dtype=DT)
    te = torch.randn(7, 5, generator=g, dtype=DT)
    T = 4.0
    expected = F.kl_div(F.log_softmax(s / T, 1), F.softmax(te / T, 1), reduction="batchmean") * T**2
    assert_close(
        kd_loss(s, te, T),
        expected,
        msg="expected: F.kl_div(log_softmax(s/T), softmax(t/T), 'batchmean') * T**2",
    )
    p_t = F.softmax(te / T, 1)
    closed = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean() * T**2
    assert_close(kd_loss(s, te, T), closed, msg="expected: mean_i sum_c p_t (log p_t - log p_s)")


def test_kd_4d_averages_over_spatial_positions_not_batchmean():
    g = _gen(11)
    s = torch.randn(2, 4, 3, 5, generator=g, dtype=DT)
    te = torch.randn(2, 4, 3, 5, generator=g, dtype=DT)
    T = 2.0
    total = F.kl_div(F.log_softmax(s / T, 1), F.softmax(te / T, 1), reduction="sum")
    assert_close(
        kd_loss(s, te, T),
        total / (2 * 3 * 5) * T**2,
        msg="expected: kl_div(..., 'sum') / (N*H*W) * T**2 (official .sum(1).mean())",
    )
    batchmean = F.kl_div(F.log_softmax(s / T, 1), F.softmax(te / T, 1), reduction="batchmean")
    assert_close(kd_loss(s, te, T) * (3 * 5), batchmean * T**2)
    assert kd_loss(s, te, T, reduction="none").shape == (2, 3, 5)


def test_kd_teacher_not_detached():
    g = _gen(12)
    s = torch.randn(3, 4, generator=g, dtype=DT, requires_grad=True)
    te = torch.randn(3, 4, generator=g, dtype=DT, requires_grad=True)
    gs, gt = torch.autograd.grad(kd_loss(s, te, 3.0), (s, te))
    assert gt.abs().sum() > 0, "official kd_loss does not detach the teacher"
    # d/ds of T^2 * KL: T * (softmax(s/T) - softmax(t/T)) / N
    expected = 3.0 * (F.softmax(s / 3.0, 1) - F.softmax(te / 3.0, 1)) / 3
    assert_close(gs, expected.detach(), msg="expected: analytic KD gradient T*(p_s - p_t)/N")


# --------------------------------------------------------------------------------------------
# Sigmoid focal (torchvision)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_sigmoid_focal_gamma0_no_alpha_is_bce(reduction):
    g = _gen(20)
    x = torch.randn(4, 3, 2, generator=g, dtype=DT)
    y = (torch.rand(4, 3, 2, generator=g, dtype=DT) > 0.5).to(DT)
    assert_close(
        sigmoid_focal_loss(x, y, alpha=-1, gamma=0, reduction=reduction),
        F.binary_cross_entropy_with_logits(x, y, reduction=reduction),
        msg="expected: F.binary_cross_entropy_with_logits",
    )


def test_sigmoid_focal_closed_form_and_alpha_semantics():
    g = _gen(21)
    x = torch.randn(50, generator=g, dtype=DT)
    y = (torch.rand(50, generator=g, dtype=DT) > 0.5).to(DT)
    p = torch.sigmoid(x)
    p_t = torch.where(y == 1, p, 1 - p)
    alpha_t = torch.where(y == 1, 0.25, 0.75).to(DT)
    expected = -alpha_t * (1 - p_t) ** 2 * torch.log(p_t)
    assert_close(
        sigmoid_focal_loss(x, y),
        expected,
        msg="expected: -alpha_t (1-p_t)^2 log p_t, alpha_t = 0.25 (pos) / 0.75 (neg)",
    )


def test_sigmoid_focal_matches_monai_and_optax():
    monai_focal = importlib.import_module("monai.losses.focal_loss")
    g = _gen(22)
    x = torch.randn(3, 4, 5, generator=g, dtype=DT)
    y = (torch.rand(3, 4, 5, generator=g, dtype=DT) > 0.3).to(DT)
    ours = sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)
    assert_close(
        ours,
        monai_focal.sigmoid_focal_loss(x, y, gamma=2.0, alpha=0.25),
        msg="expected: monai.losses.focal_loss.sigmoid_focal_loss(gamma=2, alpha=0.25)",
    )
    jax = importlib.import_module("jax")
    optax = importlib.import_module("optax")
    import numpy as np

    with jax.enable_x64(True):
        ref = optax.sigmoid_focal_loss(
            jax.numpy.asarray(x.numpy()), jax.numpy.asarray(y.numpy()), alpha=0.25, gamma=2.0
        )
        ref = torch.from_numpy(np.array(ref))
    assert ref.dtype == DT
    assert_close(ours, ref, msg="expected: optax.sigmoid_focal_loss(alpha=0.25, gamma=2)")


def test_sigmoid_focal_bad_reduction_raises():
    with pytest.raises(ValueError):
        sigmoid_focal_loss(torch.zeros(2, dtype=DT), torch.zeros(2, dtype=DT), reduction="avg")


# --------------------------------------------------------------------------------------------
# Softmax focal: plain form and kornia
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_focal_plain_gamma0_is_cross_entropy(reduction):
    g = _gen(30)
    x = torch.randn(4, 5, 3, generator=g, dtype=DT)
    y = torch.randint(5, (4, 3), generator=g)
    assert_close(
        focal_loss_plain(x, y, gamma=0.0, reduction=reduction),
        F.cross_entropy(x, y, reduction=reduction),
        msg="expected: F.cross_entropy",
    )


def test_focal_plain_matches_monai_softmax_focal_summed_over_classes():
    monai_focal = importlib.import_module("monai.losses.focal_loss")
    g = _gen(31)
    x = torch.randn(4, 5, 2, 3, generator=g, dtype=DT)
    y = torch.randint(5, (4, 2, 3), generator=g)
    onehot = F.one_hot(y, 5).permute(0, 3, 1, 2).to(DT)
    assert_close(
        focal_loss_plain(x, y, gamma=2.0),
        monai_focal.softmax_focal_loss(x, onehot, gamma=2.0).sum(1),
        msg="expected: monai softmax_focal_loss(gamma=2) summed over the class dim",
    )


def test_kornia_focal_shape_is_per_class():
    g = _gen(32)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=DT)
    y = torch.randint(3, (2, 4, 5), generator=g)
    assert kornia_focal_loss(x, y, alpha=0.25).shape == (2, 3, 4, 5)
    assert kornia_focal_loss(x, y, alpha=0.25, reduction="mean").shape == ()
    x2 = torch.randn(2, 3, generator=g, dtype=DT)
    assert kornia_focal_loss(x2, torch.tensor([0, 2]), alpha=0.1).shape == (2, 3)


def test_kornia_focal_exact_onehot_gamma0_is_ce_and_mean_divides_by_c():
    g = _gen(33)
    x = torch.randn(6, 4, 3, generator=g, dtype=DT)
    y = torch.randint(4, (6, 3), generator=g)
    k = kornia_focal_loss(x, y, alpha=None, gamma=0.0, one_hot_eps=0.0)
    assert_close(k.sum(1), F.cross_entropy(x, y, reduction="none"), msg="expected: F.cross_entropy")
    km = kornia_focal_loss(x, y, alpha=None, gamma=2.0, reduction="mean", one_hot_eps=0.0)
    assert_close(
        km,
        focal_loss_plain(x, y, gamma=2.0, reduction="mean") / 4,
        msg="expected: plain focal mean / C (kornia 'mean' averages over N*C*spatial)",
    )


def test_kornia_focal_default_onehot_eps_leaks_into_other_classes():
    g = _gen(34)
    x = torch.randn(5, 4, generator=g, dtype=DT)
    y = torch.randint(4, (5,), generator=g)
    k = kornia_focal_loss(x, y, alpha=None, gamma=0.0)  # kornia's one_hot eps = 1e-6
    logp = F.log_softmax(x, 1)
    other = (-logp).sum(1) - (-logp).gather(1, y[:, None])[:, 0]
    assert_close(
        k.sum(1),
        F.cross_entropy(x, y, reduction="none") + 1e-6 * other,
        msg="expected: CE + 1e-6 * sum_{c != target} -log p_c (kornia one_hot eps)",
    )


def test_kornia_alpha_convention_matches_monai_scalar_alpha():
    monai_focal = importlib.import_module("monai.losses.focal_loss")
    g = _gen(35)
    x = torch.randn(3, 4, 2, generator=g, dtype=DT)
    y = torch.randint(4, (3, 2), generator=g)
    onehot = F.one_hot(y, 4).permute(0, 2, 1).to(DT)
    k = kornia_focal_loss(x, y, alpha=0.3, gamma=1.5, one_hot_eps=0.0)
    assert_close(
        k,
        monai_focal.softmax_focal_loss(x, onehot, gamma=1.5, alpha=0.3),
        msg="expected: monai softmax_focal_loss(alpha=0.3): class 0 * (1-alpha), others * alpha",
    )
    # explicit: class-0 entries are scaled by 0.7, others by 0.3 relative to alpha=None
    k_none = kornia_focal_loss(x, y, alpha=None, gamma=1.5, one_hot_eps=0.0)
    fac = torch.tensor([0.7, 0.3, 0.3, 0.3], dtype=DT).view(-1, 1)
    assert_close(k, k_none * fac, msg="expected: per-class factor [1-alpha, alpha, alpha, alpha]")


def test_kornia_focal_ignore_index_and_weight():
    g = _gen(36)
    x = torch.randn(4, 3, generator=g, dtype=DT)
    y = torch.tensor([0, -100, 2, 1])
    k = kornia_focal_loss(x, y, alpha=0.25, gamma=2.0)
    assert_close(
        k[1], torch.zeros(3, dtype=DT), msg="expected: ignored position has an all-zero row"
    )
    w = torch.tensor([1.0, 2.0, 3.0], dtype=DT)
    assert_close(
        kornia_focal_loss(x, y, alpha=0.25, gamma=2.0, weight=w),
        k * w,
        msg="expected: per-class weight multiplies the [N, C] tensor",
    )


def test_kornia_focal_gradcheck():
    g = _gen(37)
    x = torch.randn(3, 4, 2, generator=g, dtype=DT, requires_grad=True)
    y = torch.randint(4, (3, 2), generator=g)
    assert torch.autograd.gradcheck(
        lambda z: kornia_focal_loss(z, y, alpha=0.25, gamma=2.0, reduction="sum"), (x,)
    )


# --------------------------------------------------------------------------------------------
# Poly-1 (paper snippet)
# --------------------------------------------------------------------------------------------


def test_poly1_epsilon0_is_cross_entropy():
    g = _gen(40)
    x = torch.randn(6, 5, generator=g, dtype=DT)
    y = torch.randint(5, (6,), generator=g)
    oh = F.one_hot(y, 5).to(DT)
    assert_close(
        poly1_cross_entropy(x, oh, epsilon=0.0),
        F.cross_entropy(x, y, reduction="none"),
        msg="expected: F.cross_entropy",
    )
    pt = F.softmax(x, -1).gather(1, y[:, None])[:, 0]
    assert_close(
        poly1_cross_entropy(x, oh, epsilon=2.0),
        F.cross_entropy(x, y, reduction="none") + 2.0 * (1 - pt),
        msg="expected: CE + epsilon * (1 - p_target)",
    )


def _optax_poly(x: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    jax = importlib.import_module("jax")
    optax = importlib.import_module("optax")
    import numpy as np

    with jax.enable_x64(True):
        out = optax.losses.poly_loss_cross_entropy(
            jax.numpy.asarray(x.numpy()), jax.numpy.asarray(labels.numpy()), epsilon=epsilon
        )
        out = torch.from_numpy(np.array(out))
    assert out.dtype == DT
    return out


def test_poly1_matches_optax():
    g = _gen(41)
    x = torch.randn(2, 6, 7, generator=g, dtype=DT)  # class axis last, like TF / optax
    y = torch.randint(7, (2, 6), generator=g)
    oh = F.one_hot(y, 7).to(DT)
    assert_close(
        poly1_cross_entropy(x, oh, epsilon=1.0),
        _optax_poly(x, oh, 1.0),
        msg="expected: optax.losses.poly_loss_cross_entropy(epsilon=1)",
    )


def test_poly1_label_smoothing_variant():
    g = _gen(42)
    x = torch.randn(8, 5, generator=g, dtype=DT)
    y = torch.randint(5, (8,), generator=g)
    oh = F.one_hot(y, 5).to(DT)
    a = 0.1
    smooth = oh * (1 - a) + a / 5
    ours = poly1_cross_entropy(x, oh, epsilon=2.0, label_smoothing=a)
    assert_close(
        ours,
        _optax_poly(x, smooth, 2.0),
        msg="expected: optax poly_loss_cross_entropy on smoothed labels y*(1-a)+a/C",
    )
    one_minus_pt = (smooth * (1 - F.softmax(x, -1))).sum(-1)
    assert_close(
        ours,
        F.cross_entropy(x, y, reduction="none", label_smoothing=a) + 2.0 * one_minus_pt,
        msg="expected: F.cross_entropy(label_smoothing=0.1) + eps * sum(smooth*(1-softmax))",
    )


def test_poly1_focal_epsilon0_is_torchvision_focal():
    g = _gen(43)
    x = torch.randn(5, 4, generator=g, dtype=DT)
    y = (torch.rand(5, 4, generator=g, dtype=DT) > 0.5).to(DT)
    assert_close(
        poly1_focal_loss(x, y, epsilon=0.0, gamma=2.0),
        sigmoid_focal_loss(x, y, alpha=-1, gamma=2.0),
        msg="expected: transcribed torchvision sigmoid_focal_loss(alpha=-1)",
    )
    assert_close(
        poly1_focal_loss(x, y, epsilon=0.0, gamma=2.0, alpha=0.25),
        sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0),
        msg="expected: transcribed torchvision sigmoid_focal_loss(alpha=0.25)",
    )
    p = torch.sigmoid(x)
    pt = y * p + (1 - y) * (1 - p)
    assert_close(
        poly1_focal_loss(x, y, epsilon=1.0, gamma=2.0),
        sigmoid_focal_loss(x, y, alpha=-1, gamma=2.0) + (1 - pt) ** 3,
        msg="expected: FL + epsilon * (1 - pt)^(gamma+1)",
    )
