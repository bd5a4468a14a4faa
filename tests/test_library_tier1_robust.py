"""Tier-1 robust / auxiliary losses against something lossdsl did not compute: transcriptions of
the official code in tests/reference/ (each file names its repository, file and commit) and
torch.nn.functional. Values and gradients in float64, two shapes, every reduction, plus the
catalog's edge cases and metamorphic checks.

asl                   Alibaba-MIIL/ASL src/loss_functions/losses.py   reference/asl_official.py
ldam                  kaidic/LDAM-DRW losses.py (+ DRW weights)       reference/ldam_official.py
gce                   HanxunH/Active-Passive-Losses loss.py           reference/apl_official.py
sce                   YisenWang/symmetric_cross_entropy... loss.py (Keras); APL SCELoss
nce_rce, nfl_rce      HanxunH/Active-Passive-Losses loss.py           reference/apl_official.py
min_snr_mse           diffusers compute_snr + --snr_gamma     reference/diffusers_official.py
pseudo_huber          diffusers scheduled_huber_loss_training reference/diffusers_official.py
z_loss                google-research/t5x t5x/losses.py               reference/z_loss_t5x.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import apl_official as apl
from reference.asl_official import asymmetric_loss, asymmetric_loss_optimized
from reference.diffusers_official import (
    compute_snr,
    conditional_loss,
    huber_c_schedule,
    min_snr_loss,
)
from reference.ict_official import (
    improved_loss_weighting,
    kinyugo_training_loss,
    paper_pseudo_huber,
)
from reference.ldam_official import drw_weights, ldam_loss
from reference.z_loss_t5x import weighted_z_loss
from torch_helpers import assert_same, compiled, gen, logits_target

import lossdsl

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]
REDUCTIONS = ["mean", "sum", "none"]


# ---- asymmetric: Alibaba-MIIL/ASL AsymmetricLoss / AsymmetricLossOptimized -----------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "gammas",
    [
        dict(gamma_neg=4, gamma_pos=1),
        dict(gamma_neg=4, gamma_pos=0),
        dict(gamma_neg=2, gamma_pos=3),
    ],
)
def test_asymmetric_matches_official(shape, reduction, gammas):
    g = gen(10)
    x = torch.randn(*shape, generator=g) * 3
    t = (torch.rand(*shape, generator=g) < 0.3).double()
    fn = compiled("asl")
    assert_same(
        lambda x, t: fn(x, t, **gammas, reduction=reduction),
        lambda x, t: asymmetric_loss(x, t, **gammas, reduction=reduction),
        {"x": x, "t": t},
        ["x"],
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("detach", [False, True])
def test_asymmetric_detach_matches_optimized(shape, detach):
    """detach_focus = AsymmetricLossOptimized(disable_torch_grad_focal_loss=...)."""
    g = gen(11)
    x = torch.randn(*shape, generator=g) * 3
    t = (torch.rand(*shape, generator=g) < 0.3).double()
    fn = compiled("asl")
    assert_same(
        lambda x, t: fn(x, t, detach_focus=detach),
        lambda x, t: asymmetric_loss_optimized(x, t, disable_torch_grad_focal_loss=detach),
        {"x": x, "t": t},
        ["x"],
    )


def test_asymmetric_default_reduction_is_sum_and_saturated_logits():
    """Upstream returns -loss.sum(); saturated logits hit the eps clamp and the clip (w = 0)."""
    x = torch.tensor([[30.0, -30.0, -1e4, 1e4], [0.0, -3.5, 2.0, -40.0]])
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    fn = compiled("asl")
    assert_same(lambda x, t: fn(x, t), lambda x, t: asymmetric_loss(x, t), {"x": x, "t": t}, ["x"])
    assert torch.isfinite(fn(x, t))


def test_asymmetric_no_focus_no_clip_is_bce_sum():
    """gamma_pos = gamma_neg = 0, clip = 0, eps = 0: BCE summed
    (F.binary_cross_entropy_with_logits)."""
    x, _ = logits_target((9, 6), seed=12)
    t = (torch.rand(9, 6, generator=gen(13)) < 0.5).double()
    fn = compiled("asl")
    assert_same(
        lambda x, t: fn(x, t, gamma_pos=0.0, gamma_neg=0.0, clip=0.0, eps=0.0),
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
        {"x": x, "t": t},
        ["x"],
        rtol=1e-9,
    )


# ---- ldam: kaidic/LDAM-DRW LDAMLoss (+ DRW weights from cifar_train.py) --------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("drw", [False, True])
def test_ldam_matches_official(shape, reduction, drw):
    x, y = logits_target(shape, seed=20, scale=0.5)  # cosine-like logits, as the official head
    counts = torch.tensor(
        [float(int(5000 * 0.01 ** (i / (shape[1] - 1)))) for i in range(shape[1])]
    )
    w = drw_weights(counts.numpy()) if drw else None
    fn = compiled("ldam")
    assert_same(
        lambda x: fn(x, y, counts, w, reduction=reduction),
        lambda x: ldam_loss(x, y, counts.numpy(), weight=w, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_ldam_params_and_zero_margin_is_scaled_ce():
    x, y = logits_target((16, 7), seed=21, scale=0.5)
    counts = torch.rand(7, generator=gen(22)) * 100 + 1
    fn = compiled("ldam")
    assert_same(
        lambda x: fn(x, y, counts, max_m=0.3, s=10.0),
        lambda x: ldam_loss(x, y, counts.numpy(), max_m=0.3, s=10),
        {"x": x},
        ["x"],
    )
    # max_m = 0: no margin, CE of s * logits (F.cross_entropy)
    assert_same(
        lambda x: fn(x, y, counts, max_m=0.0, s=30.0),
        lambda x: F.cross_entropy(30.0 * x, y),
        {"x": x},
        ["x"],
    )


def test_ldam_all_zero_weight_is_zero():
    """Weighted mean with every target class weighted 0: 0 with zero gradient
    (F.cross_entropy: NaN)."""
    x, y = logits_target((5, 4), seed=23)
    y[:] = 2
    w = torch.tensor([1.0, 1.0, 0.0, 1.0])
    x.requires_grad_(True)
    out = compiled("ldam")(x, y, torch.tensor([10.0, 20.0, 30.0, 40.0]), w)
    (g,) = torch.autograd.grad(out, [x])
    assert out.item() == 0.0 and torch.all(g == 0)


# ---- generalized_ce: HanxunH/Active-Passive-Losses GeneralizedCrossEntropy -----------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("q", [0.7, 0.3, 1.0])
def test_generalized_ce_matches_official(shape, reduction, q):
    x, y = logits_target(shape, seed=30)
    fn = compiled("gce")
    assert_same(
        lambda x: fn(x, y, q=q, reduction=reduction),
        lambda x: apl.generalized_cross_entropy(x, y, q=q, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_generalized_ce_clamp_and_limits():
    # p_y < 1e-7: upstream's clamp (value (1 - 1e-7^q) / q, zero gradient)
    x = torch.tensor([[0.0, 40.0, -3.0], [5.0, 0.0, 1.0], [-30.0, 30.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    fn = compiled("gce")
    assert_same(
        lambda x: fn(x, y, reduction="none"),
        lambda x: apl.generalized_cross_entropy(x, y, reduction="none"),
        {"x": x},
        ["x"],
    )
    # q = 1: 1 - p_y (APL MeanAbsoluteError, the reduced MAE); q -> 0: CE
    x, y = logits_target((12, 6), seed=31)
    p_y = F.softmax(x, 1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(fn(x, y, q=1.0, reduction="none"), 1 - p_y, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fn(x, y, q=1e-7, eps=0.0), F.cross_entropy(x, y), rtol=1e-5, atol=0)


# ---- symmetric_ce: the authors' Keras code; APL SCELoss --------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ab", [(0.1, 1.0), (6.0, 0.1)])
def test_symmetric_ce_matches_keras_official(shape, reduction, ab):
    x, y = logits_target(shape, seed=40)
    x[0, :] = torch.tensor([30.0] + [-10.0] * (shape[1] - 1))  # p < 1e-7: the clamps matter
    y[0] = 1
    fn = compiled("sce")
    a, b = ab
    assert_same(
        lambda x: fn(x, y, alpha=a, beta=b, reduction=reduction),
        lambda x: apl.sce_keras(x, y, a, b, reduction=reduction),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_symmetric_ce_matches_apl_sceloss(shape, reduction):
    x, y = logits_target(shape, seed=41)
    x[0, :] = torch.tensor([30.0] + [-10.0] * (shape[1] - 1))
    fn = compiled("sce")
    assert_same(
        lambda x: fn(
            x, y, alpha=0.1, beta=1.0, clamp_ce=False, clamp_rce=True, reduction=reduction
        ),
        lambda x: apl.sce_loss(x, y, 0.1, 1.0, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_symmetric_ce_metamorphic():
    x, y = logits_target((10, 4), seed=42)
    fn = compiled("sce")
    # beta = 0, no clamp: alpha * CE (F.cross_entropy)
    torch.testing.assert_close(
        fn(x, y, alpha=2.0, beta=0.0, clamp_ce=False),
        2.0 * F.cross_entropy(x, y),
        rtol=1e-12,
        atol=0,
    )
    # RCE = -A (1 - p_y) without clamps; the paper's A = -4
    p_y = F.softmax(x, 1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(
        fn(x, y, alpha=0.0, beta=1.0, A=-4.0, reduction="none"),
        4.0 * (1 - p_y),
        rtol=1e-12,
        atol=1e-14,
    )
    # shift invariance over C
    torch.testing.assert_close(fn(x + 7.0, y, reduction="none"), fn(x, y, reduction="none"))


# ---- nce_rce / nfl_rce: APL NCEandRCE, NFLandRCE ----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ab", [(1.0, 1.0), (10.0, 0.1)])
def test_nce_rce_matches_official(shape, reduction, ab):
    x, y = logits_target(shape, seed=50)
    x[0, :] = torch.tensor([30.0] + [-10.0] * (shape[1] - 1))
    fn = compiled("nce_rce")
    a, b = ab
    assert_same(
        lambda x: fn(x, y, alpha=a, beta=b, reduction=reduction),
        lambda x: apl.nce_and_rce(x, y, a, b, reduction=reduction),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_nfl_rce_matches_official(shape, reduction, gamma):
    """Default detach_focus = true: upstream takes every (1 - p)^gamma from .data."""
    x, y = logits_target(shape, seed=51)
    fn = compiled("nfl_rce")
    assert_same(
        lambda x: fn(x, y, gamma=gamma, alpha=10.0, beta=0.1, reduction=reduction),
        lambda x: apl.nfl_and_rce(x, y, 10.0, 0.1, gamma=gamma, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_nfl_rce_gamma0_is_nce_rce_and_detach_changes_only_gradient():
    x, y = logits_target((12, 5), seed=52)
    nfl, nce = compiled("nfl_rce"), compiled("nce_rce")
    assert_same(lambda x: nfl(x, y, gamma=0.0), lambda x: nce(x, y), {"x": x}, ["x"])
    a = nfl(x, y, detach_focus=False, reduction="none")
    torch.testing.assert_close(a, nfl(x, y, reduction="none"), rtol=1e-12, atol=0)
    xs = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(nfl(xs, y), [xs])
    (g2,) = torch.autograd.grad(nfl(xs, y, detach_focus=False), [xs])
    assert not torch.allclose(g1, g2)
    # shift invariance over C
    torch.testing.assert_close(nce(x - 5.0, y, reduction="none"), nce(x, y, reduction="none"))


# ---- min_snr_weighted_mse: diffusers compute_snr + the --snr_gamma branch ---------------------


def _linear_alphas_cumprod(n=1000):
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, n) ** 2  # SD "scaled_linear"
    return torch.cumprod(1.0 - betas, dim=0)


@pytest.mark.parametrize("shape", [(6, 4, 3, 3), (9, 2, 5)])
@pytest.mark.parametrize("ptype", [(0, "epsilon"), (1, "v_prediction"), (2, "sample")])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_min_snr_matches_diffusers(shape, ptype, reduction):
    g = gen(60)
    ac = _linear_alphas_cumprod()
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    t[0], t[1] = 0, 999  # snr far above and far below gamma
    snr = compute_snr(ac, t)
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    fn = compiled("min_snr_mse")
    red = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    assert_same(
        lambda pred, target: fn(pred, target, snr, prediction_type=ptype[0], reduction=reduction),
        lambda pred, target: red(min_snr_loss(pred, target, snr, 5.0, ptype[1], timesteps=t)),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )


def test_min_snr_large_gamma_is_mse_for_eps():
    """gamma >= every snr: epsilon weights are 1, the loss is F.mse_loss."""
    g = gen(61)
    pred, target = torch.randn(5, 3, 4, generator=g), torch.randn(5, 3, 4, generator=g)
    snr = torch.rand(5, generator=g) + 0.1
    out = compiled("min_snr_mse")(pred, target, snr, gamma=10.0)
    torch.testing.assert_close(out, F.mse_loss(pred, target), rtol=1e-12, atol=0)


# ---- pseudo_huber: diffusers scheduled_huber_loss_training conditional_loss ------------------


@pytest.mark.parametrize("shape", [(6, 4, 3, 3), (9, 7)])
@pytest.mark.parametrize("schedule", ["snr", "exponential", "constant"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_pseudo_huber_matches_diffusers(shape, schedule, reduction):
    g = gen(70)
    ac = _linear_alphas_cumprod()
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    c = torch.tensor([huber_c_schedule(schedule, int(s), 0.1, 1000, ac) for s in t])
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    fn = compiled("pseudo_huber")
    assert_same(
        lambda pred, target: fn(pred, target, c, reduction=reduction),
        lambda pred, target: conditional_loss(pred, target, reduction, "huber", c),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )
    assert_same(  # loss_type="smooth_l1"
        lambda pred, target: fn(pred, target, c, scale_by_c=False, reduction=reduction),
        lambda pred, target: conditional_loss(pred, target, reduction, "smooth_l1", c),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )


def test_pseudo_huber_default_c_and_limits():
    g = gen(71)
    pred, target = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    fn = compiled("pseudo_huber")
    # absent c = the constant schedule with huber_c = 0.1 (a python float upstream)
    assert_same(
        lambda pred: fn(pred, target),
        lambda pred: conditional_loss(pred, target, "mean", "huber", 0.1),
        {"pred": pred},
        ["pred"],
    )
    # |d| << c: k = 2 makes it MSE; |d| >> c (smooth_l1 form, k = 1): |d| - c
    c = torch.full((4,), 1e4)
    torch.testing.assert_close(fn(pred, target, c), F.mse_loss(pred, target), rtol=1e-6, atol=0)
    c = torch.full((4,), 1e-6)
    torch.testing.assert_close(
        fn(pred, target, c, k=1.0, scale_by_c=False, reduction="none"),
        (pred - target).abs() - 1e-6,
        rtol=1e-9,
        atol=1e-9,  # + c^2 / (2|d|)
    )
    # d = 0: finite zero gradient
    p = target.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(fn(p, target), [p])
    assert torch.all(gr == 0)


# ---- z_loss_logsumexp: t5x cross_entropy_with_logits / compute_weighted_cross_entropy --------


@pytest.mark.parametrize("shape", [(8, 5), (3, 7, 11)])
@pytest.mark.parametrize("masked", [False, True])
def test_z_loss_matches_t5x(shape, masked):
    g = gen(80)
    x = torch.randn(*shape, generator=g) * 4
    w = (torch.rand(*shape[:-1], generator=g) < 0.7).double() if masked else None
    fn = compiled("z_loss")
    assert_same(  # reduction="sum" is t5x's (un-normalized) weighted sum
        lambda x: fn(x, w, reduction="sum"),
        lambda x: weighted_z_loss(x, w)[0],
        {"x": x},
        ["x"],
    )
    assert_same(  # mean = sum / weight_sum (t5x's third output)
        lambda x: fn(x, w),
        lambda x: weighted_z_loss(x, w)[0] / weighted_z_loss(x, w)[1],
        {"x": x},
        ["x"],
    )
    assert_same(
        lambda x: fn(x, w, z_loss=1e-3, reduction="none"),
        lambda x: 1e-3 * torch.logsumexp(x, -1) ** 2 * (1 if w is None else w),
        {"x": x},
        ["x"],
    )


def test_z_loss_large_logits_and_all_masked():
    x = torch.tensor([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]])
    fn = compiled("z_loss")
    want = 1e-4 * torch.tensor([1e4, -1e4 + math.log(3.0)]) ** 2
    torch.testing.assert_close(fn(x, reduction="none"), want, rtol=1e-12, atol=0)
    xs = x.clone().requires_grad_(True)
    out = fn(xs, torch.zeros(2))
    (g,) = torch.autograd.grad(out, [xs])
    assert out.item() == 0.0 and torch.all(g == 0)


# ---- shared: jax agrees with torch on the references' conventions ------------------------


@pytest.mark.parametrize(
    "name,args",
    [
        ("asl", lambda x, y, t: (x, t)),
        ("gce", lambda x, y, t: (x, y)),
        ("sce", lambda x, y, t: (x, y)),
        ("nce_rce", lambda x, y, t: (x, y)),
        ("nfl_rce", lambda x, y, t: (x, y)),
    ],
)
def test_jax_matches_torch_reference(name, args):
    x, y = logits_target((16, 7), seed=90)
    t = (torch.rand(16, 7, generator=gen(91)) < 0.4).double()
    a = np.asarray(compiled(name, "jax")(*[v.numpy() for v in args(x, y, t)], reduction="none"))
    b = compiled(name)(*args(x, y, t), reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# ---- pseudo_huber_ict: iCT paper Sec. 3.3/3.4 and Kinyugo/consistency_models -----------------

ICT_SHAPES = [(4, 3, 8, 8), (6, 10)]


@pytest.mark.parametrize("shape", ICT_SHAPES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_pseudo_huber_ict_vector_form_matches_paper(shape, reduction):
    g = gen(51)
    x, y = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    sigmas = torch.linspace(0.002, 80.0, shape[0] + 1) ** 1.5  # an increasing discretization
    w = improved_loss_weighting(sigmas)
    fn = lossdsl.load("pseudo_huber_ict").compile("torch")
    red = {"none": lambda v: v, "sum": torch.sum, "mean": torch.mean}[reduction]
    assert_same(
        lambda x, y: fn(x, y, w, reduction=reduction),
        lambda x, y: red(paper_pseudo_huber(x, y, w)),
        {"x": x, "y": y},
        ["x", "y"],
    )


@pytest.mark.parametrize("shape", ICT_SHAPES)
def test_pseudo_huber_ict_elementwise_matches_kinyugo(shape):
    g = gen(52)
    x = torch.randn(*shape, generator=g)
    y = x + torch.randn(*shape, generator=g) * 0.01  # near x: both regimes of |d| vs c
    w = torch.rand(shape[0], generator=g) + 0.5
    fn = lossdsl.load("pseudo_huber_ict").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, w, vector=False),
        lambda x, y: kinyugo_training_loss(x, y, w),
        {"x": x, "y": y},
        ["x", "y"],
    )


def test_pseudo_huber_ict_c_scales_with_dimension():
    # the paper's CIFAR-10 value: c = 0.00054 * sqrt(3 * 32 * 32) = 0.0299 (Sec. 3.3, "0.03")
    fn = lossdsl.load("pseudo_huber_ict").compile("torch")
    x = torch.zeros(1, 3, 32, 32)
    y = x.clone()
    y[0, 0, 0, 0] = 1.0
    c = 0.00054 * math.sqrt(3 * 32 * 32)
    assert abs(c - 0.03) < 3e-4
    torch.testing.assert_close(fn(x, y), torch.tensor(math.sqrt(1 + c**2) - c))
    # equal inputs: zero loss, zero (finite) gradient
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(xr, x), xr)
    assert torch.equal(g, torch.zeros_like(g))
