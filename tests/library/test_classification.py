"""Single-label classification: cross-entropy and the losses built on it (label smoothing, soft
targets, focal/poly, dual focal, ACLS, encouraging, LogitClip, squentropy, the z-losses, comp-sum,
StableMax, spectral decoupling, HarMax, RegMixup), margins (LDAM, balanced softmax, hinge,
Crammer-Singer, Weston-Watkins, LDR-KL), calibration (Brier, CA) and the implicit PRM's outcome
cross-entropy.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import importlib
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from reference.acls_official import acls_loss
from reference.brier_sklearn import brier_score_loss
from reference.ca_calibration_official import ca_loss
from reference.dual_focal_official import dual_focal_loss
from reference.edl_official import edl_digamma_loss
from reference.encouraging_official import encouraging_loss
from reference.focal_softmax import focal_loss_plain
from reference.harmonic_official import harmonic_loss
from reference.implicit_prm_ce_official import prime_loss
from reference.ldam_official import drw_weights, ldam_loss
from reference.ldr_kl_official import ldr_loss_v1
from reference.logitclip_official import logitclip_ce
from reference.poly1_paper import poly1_cross_entropy
from reference.regmixup_official import mixup_data, regmixup_loss
from reference.spectral_decoupling_official import binary_sd, multiclass_sd
from reference.squentropy_official import squentropy
from reference.stablemax_official import stablemax_cross_entropy
from reference.z_loss_t5x import weighted_z_loss
from torch_helpers import (
    REDUCTIONS,
    assert_same,
    assert_same_as_optax,
    compiled,
    gen,
    grad_of,
    logits_target,
    randn,
    reduce_,
    soft_targets,
)

import lossdsl

# ---- cross_entropy: torch.nn.functional.cross_entropy (PyTorch 2.13) ------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_cross_entropy_matches_torch(shape, reduction, weighted, eps):
    x, y = logits_target(shape)
    y[::3] = -100  # ignored samples drop out of numerator and denominator
    w = torch.rand(shape[1], generator=gen(1)) if weighted else None
    fn = lossdsl.load("cross_entropy").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, w, label_smoothing=eps, reduction=reduction),
        lambda x, y: F.cross_entropy(x, y, weight=w, label_smoothing=eps, reduction=reduction),
        {"x": x, "y": y},
        ["x"],
    )


def test_cross_entropy_all_ignored_is_zero_with_zero_gradient():
    """F.cross_entropy returns NaN here; the spec declares `empty 0`."""
    x, y = logits_target((4, 3))
    y[:] = -100
    x.requires_grad_(True)
    out = lossdsl.load("cross_entropy").compile("torch")(x, y)
    (g,) = torch.autograd.grad(out, [x])
    assert out.item() == 0.0 and torch.all(g == 0)
    assert torch.isnan(F.cross_entropy(x, y))  # the behaviour we deliberately differ from


def test_cross_entropy_matches_optax():
    x, y = logits_target((16, 7))
    ours = lossdsl.load("cross_entropy").compile("jax")(x.numpy(), y.numpy(), reduction="none")
    ref = optax.softmax_cross_entropy_with_integer_labels(x.numpy(), y.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12)


# ---- focal: F.cross_entropy-based form (tests/reference/focal_softmax.py) -------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_matches_cross_entropy_based_focal(shape, gamma):
    x, y = logits_target(shape, seed=5)
    fn = lossdsl.load("focal").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, gamma=gamma, reduction="none"),
        lambda x, y: focal_loss_plain(x, y, gamma=gamma, reduction="none"),
        {"x": x, "y": y},
        ["x"],
        rtol=1e-9,
    )


def test_focal_gamma_zero_is_cross_entropy():
    """Metamorphic: FL with gamma = 0 is CE (Lin et al. 2017, eq. 5 with gamma = 0)."""
    x, y = logits_target((10, 4), seed=6)
    fn = lossdsl.load("focal").compile("torch", gamma=0.0)
    assert_same(lambda x, y: fn(x, y), lambda x, y: F.cross_entropy(x, y), {"x": x, "y": y}, ["x"])
    assert "expm1" not in lossdsl.load("focal").source("torch", gamma=0.0)  # folded away


# ---- poly1: the paper's listing (tests/reference/poly1_paper.py); optax ---------------------


@pytest.mark.parametrize("eps", [-1.0, 0.0, 1.0, 2.5])
def test_poly1_matches_paper_listing(shape, eps):
    x, y = logits_target(shape, seed=9)
    c = shape[1]
    fn = lossdsl.load("poly1").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, epsilon=eps, reduction="none"),
        lambda x, y: poly1_cross_entropy(x, F.one_hot(y, c), epsilon=eps, reduction="none"),
        {"x": x, "y": y},
        ["x"],
    )
    ours = lossdsl.load("poly1").compile("jax")(x.numpy(), y.numpy(), epsilon=eps, reduction="none")
    ref = optax.losses.poly_loss_cross_entropy(
        x.numpy(), F.one_hot(y, c).double().numpy(), epsilon=eps
    )
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-9)


# ---- label_smoothing_ce: F.cross_entropy(label_smoothing=eps); optax.smooth_labels ---------


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.7])
def test_label_smoothing_matches_torch_and_optax(shape, eps):
    x, y = logits_target(shape, seed=10)
    fn = lossdsl.load("label_smoothing_ce").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, epsilon=eps, reduction="none"),
        lambda x, y: F.cross_entropy(x, y, label_smoothing=eps, reduction="none"),
        {"x": x, "y": y},
        ["x"],
    )
    q = optax.smooth_labels(F.one_hot(y, shape[1]).numpy().astype(np.float64), eps)
    ref = optax.softmax_cross_entropy(x.numpy(), q)
    ours = lossdsl.load("label_smoothing_ce").compile("jax")(
        x.numpy(), y.numpy(), epsilon=eps, reduction="none"
    )
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-10)


# ---- B2 soft_cross_entropy: F.cross_entropy (probability targets); optax.softmax_cross_entropy


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_cross_entropy_matches_torch(shape, reduction, weighted, eps):
    x, q = torch.randn(*shape, generator=gen(1)) * 3, soft_targets(shape, 2)
    w = torch.rand(shape[1], generator=gen(3)) * 2 if weighted else None
    fn = compiled("soft_cross_entropy")
    assert_same(
        lambda x, q: fn(x, q, w, label_smoothing=eps, reduction=reduction),
        lambda x, q: F.cross_entropy(x, q, weight=w, label_smoothing=eps, reduction=reduction),
        {"x": x, "q": q},
        ["x", "q"],
    )


def test_soft_cross_entropy_matches_optax(shape):
    x, q = torch.randn(*shape, generator=gen(4)) * 3, soft_targets(shape, 5)
    ours = compiled("soft_cross_entropy", "jax")
    assert_same_as_optax(
        lambda x, q: ours(x, q, reduction="none"),
        lambda x, q: optax.softmax_cross_entropy(x, q),
        {"x": x, "q": q},
        ["x", "q"],
    )


def test_soft_cross_entropy_one_hot_targets_is_cross_entropy():
    """Metamorphic: a one-hot target distribution gives F.cross_entropy with integer labels."""
    x, y = logits_target((12, 6), seed=6)
    fn = compiled("soft_cross_entropy")
    assert_same(
        lambda x: fn(x, F.one_hot(y, 6).double()),
        lambda x: F.cross_entropy(x, y),
        {"x": x},
        ["x"],
    )


def test_soft_cross_entropy_shift_invariant_and_finite_for_huge_logits():
    """Metamorphic: adding a constant per row over C leaves it unchanged; logits ~1e4 finite."""
    x, q = torch.randn(7, 4, generator=gen(7)) * 3, soft_targets((7, 4), 8)
    fn = compiled("soft_cross_entropy")
    shift = torch.randn(7, 1, generator=gen(9)) * 100
    torch.testing.assert_close(fn(x + shift, q, reduction="none"), fn(x, q, reduction="none"))
    big = fn(x * 1e4, q, reduction="none")
    torch.testing.assert_close(big, F.cross_entropy(x * 1e4, q, reduction="none"))
    assert torch.all(torch.isfinite(big))


# ---- the official code, one table: dual_focal (Linwei94/ICML2023-DualFocalLoss), stablemax_ce
# (LucasPrietoAl/grokking-at-the-edge-of-numerical-stability), ldr_kl (Optimization-AI/ICML2023_LDR)

# (id, spec, its params, the official function of (x, y, reduction), the logits' seed)
OFFICIAL_CASES = [
    *[
        (f"dual_focal-gamma={g}", "dual_focal", {"gamma": g}, partial(dual_focal_loss, gamma=g), 1)
        for g in (0.0, 2.0, 5.0)
    ],
    ("stablemax_ce", "stablemax_ce", {}, stablemax_cross_entropy, 1),
    *[
        (
            f"ldr_kl-margin={m}-lam={lam}-normalize={nz}",
            "ldr_kl",
            {"margin": m, "lam": lam, "normalize": nz},
            partial(ldr_loss_v1, threshold=m, Lambda=lam, normalize=nz),
            5,
        )
        # defaults; the paper's experiment.py; a sharp lam; no margin
        for m, lam in [(2.0, 1.0), (0.1, 10.0), (1.0, 0.1), (0.0, 1.0)]
        for nz in (True, False)
    ],
]


@pytest.mark.parametrize(
    "spec,params,official,seed", [c[1:] for c in OFFICIAL_CASES], ids=[c[0] for c in OFFICIAL_CASES]
)
def test_softmax_loss_matches_official(spec, params, official, seed, shape, reduction):
    x, y = logits_target(shape, seed=seed)
    fn = lossdsl.load(spec).compile("torch")
    assert_same(
        lambda x, y: fn(x, y, **params, reduction=reduction),
        lambda x, y: official(x, y, reduction=reduction),
        {"x": x, "y": y},
        ["x"],
    )


# ---- dual_focal: Linwei94/ICML2023-DualFocalLoss dual_focal_loss.py -------------------------


# against the official dual_focal_loss: test_softmax_loss_matches_official (the table above)


def test_dual_focal_default_is_sum():
    x, y = logits_target((6, 4), seed=2)
    ours = lossdsl.load("dual_focal").compile("torch")(x, y, gamma=5.0)
    torch.testing.assert_close(ours, dual_focal_loss(x, y, gamma=5.0))  # size_average=False


def test_dual_focal_edge_cases_top1_not_top1_and_minimum():
    """Target top-1 (p_j = 2nd largest), target in the middle (p_j = next below p_y, not the
    arg-max), target the smallest (p_j = 0): official code vs ours, values and gradients."""
    x = torch.tensor([[3.0, 1.0, 0.0, -1.0], [3.0, 1.0, 0.0, -1.0], [3.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([0, 2, 3])
    fn = lossdsl.load("dual_focal").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, gamma=5.0, reduction="none"),
        lambda x, y: dual_focal_loss(x, y, gamma=5.0, reduction="none"),
        {"x": x, "y": y},
        ["x"],
    )
    p = F.softmax(x[0], 0)
    want = -((1 - p[2] + p[3]) ** 5) * torch.log(p[2])  # next below p_y, not p[0]
    torch.testing.assert_close(fn(x, y, gamma=5.0, reduction="none")[1], want)
    want_min = -((1 - p[3]) ** 5) * torch.log(p[3])  # nothing below: p_j = 0
    torch.testing.assert_close(fn(x, y, gamma=5.0, reduction="none")[2], want_min)


def test_dual_focal_gamma_zero_is_cross_entropy():
    x, y = logits_target((9, 6), seed=3)
    fn = lossdsl.load("dual_focal").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, gamma=0.0),
        lambda x, y: F.cross_entropy(x, y, reduction="sum"),
        {"x": x, "y": y},
        ["x"],
    )


# ---- acls: cvlab-yonsei/ACLS calibrate/losses/acls.py ----------------------------------------


@pytest.mark.parametrize("margin", [10.0, 2.0])
def test_acls_matches_official(shape, margin):
    x, y = logits_target(shape, seed=4, scale=8.0)  # logits beyond the margin: both terms active
    fn = lossdsl.load("acls").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, margin=margin),
        lambda x, y: acls_loss(x, y, margin=margin),
        {"x": x, "y": y},
        ["x"],
    )


def test_acls_ties_count_every_max_as_positive():
    """Official indicator `max == inputs`: tied maxima are all positive (values only; the
    gradient of a tied max is split differently by torch.max(dim) and amax)."""
    x = torch.tensor([[12.0, 12.0, -3.0, 0.0], [15.0, 1.0, -9.0, 2.0]])
    y = torch.tensor([1, 0])
    ours = lossdsl.load("acls").compile("torch")(x, y)
    torch.testing.assert_close(ours, acls_loss(x, y))


# ---- encouraging: lancopku/well-classified-examples-are-underestimated EncouragingLoss.py --------


@pytest.mark.parametrize("log_end", [0.75, 0.5, 1.0])
def test_encouraging_matches_official(shape, log_end, reduction):
    x, y = logits_target(shape, seed=5)
    x[0, y[0]] = 30.0  # p_y ~ 1: the 1e-5 clamp (log_end = 1) or the linear tail
    fn = lossdsl.load("encouraging").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, log_end=log_end, reduction=reduction),
        lambda x, y: encouraging_loss(x, y, log_end=log_end, reduction=reduction),
        {"x": x, "y": y},
        ["x"],
    )


# ---- logitclip_ce: hongxin001/LogitClip algorithms/clip.py -----------------------------------


@pytest.mark.parametrize("tau", [1.0, 1.5, 0.5])
@pytest.mark.parametrize("lp", [2, 1])
@pytest.mark.parametrize("official", [True, False])
def test_logitclip_matches_official(shape, tau, lp, official):
    x, y = logits_target(shape, seed=6, scale=0.6)  # norms on both sides of the threshold
    fn = lossdsl.load("logitclip_ce").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, tau=tau, p=float(lp), official_threshold=official, reduction=r),
            lambda x, y: logitclip_ce(
                x, y, temp=tau, lp=lp, reduction=r, paper_threshold=not official
            ),
            {"x": x, "y": y},
            ["x"],
        )


def test_logitclip_small_logits_are_plain_cross_entropy():
    x, y = logits_target((7, 4), seed=7, scale=0.01)  # norm < threshold: no clipping
    fn = lossdsl.load("logitclip_ce").compile("torch")
    assert_same(lambda x, y: fn(x, y), lambda x, y: F.cross_entropy(x, y), {"x": x, "y": y}, ["x"])


# ---- squentropy: the authors' Loss_Functions.squentropy --------------------------------------


def test_squentropy_matches_official(shape):
    x, y = logits_target(shape, seed=8)
    fn = lossdsl.load("squentropy").compile("torch")
    assert_same(
        lambda x, y: fn(x, y), lambda x, y: squentropy(x, y, shape[1]), {"x": x, "y": y}, ["x"]
    )
    ours = fn(x, y, reduction="none")
    ref = F.cross_entropy(x, y, reduction="none") + (
        (x**2).sum(1) - x.gather(1, y[:, None]).squeeze(1) ** 2
    ) / (shape[1] - 1)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(fn(x, y, reduction="sum"), ref.sum())


# ---- z_loss_spherical: the paper's definition (no official code) ----------------------------


def z_loss_paper(x, y, a, b):
    """de Brebisson & Vincent 2016, sec. 3: z = (o - mean(o)) / std(o) (biased std),
    L = softplus(a (b - z_c)) / a."""
    z = (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True)
    return F.softplus(a * (b - z.gather(1, y[:, None]).squeeze(1))) / a


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (4.0, 2.5), (0.5, -1.0)])
def test_z_loss_spherical_matches_paper(shape, a, b):
    x, y = logits_target(shape, seed=9)
    fn = lossdsl.load("z_loss_spherical").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, a=a, b=b, reduction=r),
            lambda x, y: reduce_(z_loss_paper(x, y, a, b), r),
            {"x": x, "y": y},
            ["x"],
        )


def test_z_loss_spherical_shift_and_scale_invariant():
    x, y = logits_target((10, 6), seed=10)
    fn = lossdsl.load("z_loss_spherical").compile("torch")
    shift = torch.randn(10, 1, generator=gen(11)) * 5
    scale = torch.rand(10, 1, generator=gen(12)) * 4 + 0.1
    base = fn(x, y, a=2.0, b=1.5, reduction="none")
    torch.testing.assert_close(fn(x * scale + shift, y, a=2.0, b=1.5, reduction="none"), base)


# ---- comp_sum: the paper's Phi_tau(u) definition; CE / MAE members ----------------------------


def comp_sum_paper(x, y, tau):
    """Mao, Mohri, Zhong 2023: u = sum_{j != y} exp(z_j - z_y); Phi_1 = log(1+u),
    Phi_tau = ((1+u)^(1-tau) - 1)/(1-tau)."""
    zy = x.gather(1, y[:, None])
    e = torch.exp(x - zy)
    u = e.sum(1) - 1.0
    if tau == 1:
        return torch.log1p(u)
    return ((1 + u) ** (1 - tau) - 1) / (1 - tau)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.3, 1.7, 2.0])
def test_comp_sum_matches_paper(shape, tau):
    x, y = logits_target(shape, seed=13, scale=1.5)
    fn = lossdsl.load("comp_sum").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, tau=tau, reduction=r),
            lambda x, y: reduce_(comp_sum_paper(x, y, tau), r),
            {"x": x, "y": y},
            ["x"],
            rtol=1e-9,
        )


def test_comp_sum_members():
    x, y = logits_target((12, 5), seed=14)
    fn = lossdsl.load("comp_sum").compile("torch")
    inp = {"x": x, "y": y}
    assert_same(lambda x, y: fn(x, y, tau=1.0), lambda x, y: F.cross_entropy(x, y), inp, ["x"])
    py = lambda x, y: F.softmax(x, 1).gather(1, y[:, None]).squeeze(1)  # noqa: E731
    assert_same(lambda x, y: fn(x, y, tau=2.0), lambda x, y: (1 - py(x, y)).mean(), inp, ["x"])
    q = 0.7  # GCE (Zhang & Sabuncu 2018): (1 - p_y^q) / q with tau = 1 + q
    assert_same(
        lambda x, y: fn(x, y, tau=1 + q), lambda x, y: ((1 - py(x, y) ** q) / q).mean(), inp, ["x"]
    )


# ---- stablemax_ce: LucasPrietoAl/grokking-at-the-edge-of-numerical-stability utils.py ----------


# against the official stablemax_cross_entropy: test_softmax_loss_matches_official (above)


def test_stablemax_ce_hand_values_and_large_logits():
    # by hand: s(2) = 3, s(0) = 1, s(-1) = 1/2 -> P_0 = 3 / 4.5, loss = log(1.5)
    fn = lossdsl.load("stablemax_ce").compile("torch")
    x = torch.tensor([[2.0, 0.0, -1.0]])
    torch.testing.assert_close(fn(x, torch.tensor([0])), torch.tensor(math.log(1.5)))
    # large logits: the official value stays finite where softmax CE would saturate; ours too
    x = torch.tensor([[1e30, -1e30, 0.0], [1.0, 1.0 + 1e-30, 5.0]], requires_grad=True)
    y = torch.tensor([1, 0])
    out = fn(x, y, reduction="none")
    ref = stablemax_cross_entropy(x.detach(), y, reduction="none")
    torch.testing.assert_close(out.detach(), ref)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all()


def test_stablemax_ce_no_nan_gradient_at_official_pole():
    # the official branch 1 / (1 - x + eps) at x = 1 is 1e30; in float32 (the official default
    # dtype) its derivative overflows and torch.where's gradient is NaN upstream; ours evaluates
    # that branch at min(x, 0)
    fn = lossdsl.load("stablemax_ce").compile("torch")
    x = torch.tensor([[1.0, 0.5, -2.0]], dtype=torch.float32, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x, torch.tensor([2])), x)
    assert torch.isfinite(g).all()
    xr = x.detach().clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(stablemax_cross_entropy(xr, torch.tensor([2])), xr)
    assert torch.isnan(gr[0, 0])  # the upstream pitfall this spec avoids
    torch.testing.assert_close(g[0, 1:], gr[0, 1:])  # the other entries agree
    # float64 reference, where upstream is finite: same gradient, s'(1) = 1
    x64 = x.detach().double().requires_grad_(True)
    (g64,) = torch.autograd.grad(stablemax_cross_entropy(x64, torch.tensor([2])), x64)
    torch.testing.assert_close(g.double(), g64, rtol=1e-6, atol=1e-7)


# ---- spectral_decoupling: mpezeshki/Gradient_Starvation ----------------------------------------


@pytest.mark.parametrize("lam,gamma", [(0.003, 0.0), (0.5, 0.0), (0.1, 1.5)])
def test_spectral_decoupling_matches_official(shape, lam, gamma):
    x, y = logits_target(shape, seed=2)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, lam=lam, gamma=gamma),
        lambda x, y: multiclass_sd(x, y, sd_coef=lam, gamma=gamma),
        {"x": x, "y": y},
        ["x"],
    )


def test_spectral_decoupling_none_and_sum(shape):
    # per sample: F.cross_entropy(reduction="none") + lam * mean_C z^2 (official penalty, per row)
    x, y = logits_target(shape, seed=4)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    want = F.cross_entropy(x, y, reduction="none") + 0.2 * (x**2).mean(dim=1)
    torch.testing.assert_close(fn(x, y, lam=0.2, reduction="none"), want)
    torch.testing.assert_close(fn(x, y, lam=0.2, reduction="sum"), want.sum())


def test_spectral_decoupling_binary_official_equivalence():
    # the official binary form (one logit z, labels +-1) with mean(z^2) equals the spec on two
    # logits [0, z] with lam doubled: CE([0, z], y) = log(1 + exp(-y z)), mean_C [0, z]^2 = z^2 / 2
    g = gen(5)
    z = torch.randn(12, generator=g) * 2
    y01 = torch.randint(0, 2, (12,), generator=g)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    two = torch.stack([torch.zeros_like(z), z], dim=1)
    torch.testing.assert_close(fn(two, y01, lam=0.006), binary_sd(z, 2.0 * y01 - 1.0, 0.003))


def test_spectral_decoupling_lam_zero_is_cross_entropy():
    x, y = logits_target((7, 4), seed=6)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    torch.testing.assert_close(fn(x, y, lam=0.0), F.cross_entropy(x, y))


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


# ---- harmonic: KindXiaoming/grow-crystals src/utils/model.py -----------------------------------


def sq_dist(x, w):
    """The squared distances [B, C] from x [B, D] to the centers W [C, D] (difference form)."""
    return (x[:, None, :] - w[None, :, :]).pow(2).sum(-1)


@pytest.mark.parametrize("bcd", [(8, 5, 3), (33, 17, 16)])
@pytest.mark.parametrize("n,eps", [(1.0, 1e-4), (2.5, 1e-6), (28.0, 1e-4)])
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


# ---- regmixup: FrancescoPinto/RegMixup ----------------------------------------------------------


@pytest.mark.parametrize("lam", [0.5, 0.37, 0.9])
def test_regmixup_matches_official(shape, reduction, lam):
    z, y = logits_target(shape, seed=sum(shape))
    zm, _ = logits_target(shape, seed=sum(shape) + 1)
    y_perm = y[torch.randperm(shape[0], generator=gen(4))]
    fn = compiled("regmixup")
    assert_same(
        lambda z, zm: fn(z, zm, y, y_perm, torch.tensor(lam), reduction=reduction),
        lambda z, zm: regmixup_loss(z, zm, y, y_perm, lam, reduction=reduction),
        {"z": z, "zm": zm},
        ["z", "zm"],
    )


def test_regmixup_end_to_end_with_mixup_data():
    # upstream's training step: mix the inputs, one forward pass over [x; x_mix], the criterion
    g = gen(31)
    x, y = torch.randn(12, 7, generator=g), torch.randint(0, 4, (12,), generator=g)
    w = torch.randn(7, 4, generator=g, requires_grad=True)
    index = torch.randperm(12, generator=g)
    mixed_x, y_a, y_b, lam = mixup_data(x, y, 0.6, index)
    out = torch.cat([x, mixed_x]) @ w
    ref = lam * F.cross_entropy(out, torch.cat([y, y_a])) + (1 - lam) * F.cross_entropy(
        out, torch.cat([y, y_b])
    )
    fn = compiled("regmixup")
    ours = fn(x @ w, mixed_x @ w, y, y_b, torch.tensor(lam))
    torch.testing.assert_close(ours, ref)
    (ga,) = torch.autograd.grad(ours, w)
    (gb,) = torch.autograd.grad(ref, w)
    torch.testing.assert_close(ga, gb)


def test_regmixup_edges():
    fn = compiled("regmixup")
    z, y = logits_target((9, 5), seed=41)
    zm, _ = logits_target((9, 5), seed=42)
    yp = y.flip(0)
    # eta = 0: half the clean CE (by hand from F.cross_entropy)
    torch.testing.assert_close(
        fn(z, zm, y, yp, torch.tensor(0.3), eta=0.0), F.cross_entropy(z, y) / 2
    )
    # lam = 1 with target_perm = target: mixup reduces to CE on the mixed logits
    want = (F.cross_entropy(z, y) + F.cross_entropy(zm, y)) / 2
    torch.testing.assert_close(fn(z, zm, y, y, torch.tensor(1.0)), want)
    # the paper's L = CE + eta * mix is twice the official (and this spec's) value
    eta = 2.0
    paper = F.cross_entropy(z, y) + eta * (
        0.3 * F.cross_entropy(zm, y) + 0.7 * F.cross_entropy(zm, yp)
    )
    torch.testing.assert_close(2 * fn(z, zm, y, yp, torch.tensor(0.3), eta=eta), paper)


# ---- ldam: kaidic/LDAM-DRW LDAMLoss (+ DRW weights from cifar_train.py) --------------------


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


# ---- balanced_softmax_ce: F.cross_entropy on logits + log(counts) (jiawei-ren/BalancedSoftmax) --


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_balanced_softmax_matches_cross_entropy(shape, tau):
    x, y = logits_target(shape, seed=26)
    n = torch.randint(1, 500, (shape[1],), generator=gen(27)).double()
    fn = lossdsl.load("balanced_softmax_ce").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, n, tau=tau, reduction=r),
            lambda x, y: F.cross_entropy(x + tau * n.log(), y, reduction=r),
            {"x": x, "y": y},
            ["x"],
        )
    prior = n / n.sum()  # priors instead of counts: the same loss (shift invariance)
    torch.testing.assert_close(fn(x, y, prior, tau=tau), fn(x, y, n, tau=tau))


def test_balanced_softmax_uniform_counts_is_cross_entropy():
    x, y = logits_target((8, 5), seed=28)
    ours = lossdsl.load("balanced_softmax_ce").compile("torch")(x, y, torch.full((5,), 40.0))
    torch.testing.assert_close(ours, F.cross_entropy(x, y))


# ---- B9 hinge (binary): optax.hinge_loss -------------------------------------------------------


@pytest.mark.parametrize("shape", [(16,), (8, 5), (3, 4, 6)])
def test_hinge_matches_optax(shape):
    s = torch.randn(*shape, generator=gen(27)) * 2
    y = torch.where(torch.rand(*shape, generator=gen(28)) < 0.5, -1.0, 1.0)
    ours = compiled("hinge", "jax")
    assert_same_as_optax(
        lambda s, y: ours(s, y, reduction="none"),
        lambda s, y: optax.hinge_loss(s, y),
        {"s": s, "y": y},
        ["s"],
    )
    fn = compiled("hinge")
    n = s.numel()
    for r, div in (("mean", n), ("sum", 1)):
        want = float(jnp.sum(optax.hinge_loss(s.numpy(), y.numpy()))) / div
        assert math.isclose(float(fn(s, y, reduction=r)), want, rel_tol=1e-12)


def test_hinge_margin_satisfied_gives_zero_loss_and_gradient():
    """Edge: y * s >= 1 everywhere: loss 0, gradient 0; y * s < 1: gradient -y / n."""
    s = torch.tensor([2.0, -3.0, 0.5, -0.2], requires_grad=True)
    y = torch.tensor([1.0, -1.0, 1.0, 1.0])
    out = compiled("hinge")(s, y)
    (g,) = torch.autograd.grad(out, [s])
    torch.testing.assert_close(out.detach(), torch.tensor((0.5 + 1.2) / 4))
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, -0.25, -0.25]))


# ---- B9 multiclass_hinge (Crammer-Singer): optax.losses.multiclass_hinge_loss ----------------


def test_multiclass_hinge_matches_optax(shape):
    x, y = logits_target(shape, seed=29, scale=1.5)
    ours = compiled("multiclass_hinge", "jax")
    assert_same_as_optax(
        lambda x, y: ours(x, y, reduction="none"),
        lambda x, y: optax.losses.multiclass_hinge_loss(x, y),
        {"x": x, "y": y},
        ["x"],
    )
    fn = compiled("multiclass_hinge")
    per = np.asarray(optax.losses.multiclass_hinge_loss(x.numpy(), y.numpy()))
    for r, want in (("mean", per.mean()), ("sum", per.sum()), ("none", per)):
        np.testing.assert_allclose(fn(x, y, reduction=r).numpy(), want, rtol=1e-12)


def test_multiclass_hinge_target_top1_vs_not():
    """Edge: target top-1 by >= 1: loss 0, no gradient; target not top-1: 1 + best other - z_y,
    gradient +1 on the best other class and -1 on the target (divided by B)."""
    x = torch.tensor([[3.0, 0.5, -1.0], [0.2, 1.5, 0.9]], requires_grad=True)
    y = torch.tensor([0, 0])
    out = compiled("multiclass_hinge")(x, y, reduction="none")
    torch.testing.assert_close(out.detach(), torch.tensor([0.0, 1 + 1.5 - 0.2]))
    (g,) = torch.autograd.grad(out.sum(), [x])
    torch.testing.assert_close(g, torch.tensor([[0.0, 0, 0], [-1.0, 1, 0]]))
    (gj,) = [
        jax.grad(lambda v: compiled("multiclass_hinge", "jax")(v, y.numpy(), reduction="sum"))(
            x.detach().numpy()
        )
    ]
    np.testing.assert_allclose(gj, g.numpy())


def test_multiclass_hinge_margin_scales():
    """Metamorphic: with margin m, l(z; m) = m * l(z / m; 1) (the optax loss has margin 1)."""
    x, y = logits_target((9, 4), seed=30)
    fn = compiled("multiclass_hinge")
    for m in (0.5, 3.0):
        ref = m * np.asarray(optax.losses.multiclass_hinge_loss(x.numpy() / m, y.numpy()))
        got = fn(x, y, margin=m, reduction="none").numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


# ---- B9 multi_margin (Weston-Watkins): F.multi_margin_loss -------------------------------------


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_matches_torch(shape, p, margin, weighted):
    x, y = logits_target(shape, seed=31, scale=1.0)
    w = torch.rand(shape[1], generator=gen(32)) * 2 if weighted else None
    fn = compiled("multi_margin")
    for r in REDUCTIONS:
        assert_same(
            lambda x, r=r: fn(x, y, w, p=p, margin=margin, reduction=r),
            lambda x, r=r: F.multi_margin_loss(x, y, p=p, margin=margin, weight=w, reduction=r),
            {"x": x},
            ["x"],
        )


def test_multi_margin_target_top1_vs_not():
    """Edge: target top-1 by more than the margin: 0 (torch too); not top-1: every violating class
    counts (unlike Crammer-Singer's single worst class)."""
    x = torch.tensor([[4.0, 0.5, -1.0], [0.2, 1.5, 0.9]])
    y = torch.tensor([0, 0])
    ours = compiled("multi_margin")(x, y, reduction="none")
    torch.testing.assert_close(ours, F.multi_margin_loss(x, y, reduction="none"))
    torch.testing.assert_close(ours, torch.tensor([0.0, ((1 + 1.3) + (1 + 0.7)) / 3]))
    cs = compiled("multiclass_hinge")(x, y, reduction="none")
    assert cs[1] == pytest.approx(1 + 1.3) and ours[1] != cs[1]


# ---- ldr_kl: Optimization-AI/ICML2023_LDR loss.py (LDRLoss_V1) ---------------------------------


# against the official LDRLoss_V1: test_softmax_loss_matches_official (the table above)


def test_ldr_kl_limits():
    x, y = logits_target((10, 6), seed=6)
    fn = lossdsl.load("ldr_kl").compile("torch")
    # normalize = false, margin 0, lam 1: cross-entropy minus log C (by the definition)
    torch.testing.assert_close(
        fn(x, y, margin=0.0, normalize=False, reduction="none"),
        F.cross_entropy(x, y, reduction="none") - math.log(6),
    )
    # lam -> 0: the Crammer-Singer hinge max_k (margin 1[k != y] + u_k - u_y) (paper, sec. 3)
    u = x  # normalize = false
    cs = (0.5 * (1 - F.one_hot(y, 6)) + u - u.gather(1, y[:, None])).max(dim=1).values
    torch.testing.assert_close(
        fn(x, y, margin=0.5, lam=1e-4, normalize=False, reduction="none"), cs, atol=2e-4, rtol=0
    )
    # lam -> inf: the mean margin violation mean_k (margin 1[k != y] + u_k - u_y)
    avg = (0.5 * (1 - F.one_hot(y, 6)) + u - u.gather(1, y[:, None])).mean(dim=1)
    torch.testing.assert_close(
        fn(x, y, margin=0.5, lam=1e4, normalize=False, reduction="none"), avg, atol=1e-3, rtol=0
    )
    # large logits stay finite (logsumexp); the official shifts by the detached max: same value
    big = x * 1e3
    out = fn(big, y, lam=0.01, normalize=False)
    assert torch.isfinite(out)
    torch.testing.assert_close(out, ldr_loss_v1(big, y, Lambda=0.01, normalize=False))


# ---- B12 brier_score: sklearn.metrics.brier_score_loss; tests/reference/brier_sklearn.py -------


@pytest.mark.parametrize("shape", [(8, 5), (33, 17), (10, 3)])
def test_brier_score_matches_sklearn(shape):
    metrics = importlib.import_module("sklearn.metrics")
    x, y = logits_target(shape, seed=48)
    p = F.softmax(x, dim=1).numpy()
    want = metrics.brier_score_loss(y.numpy(), p, labels=list(range(shape[1])))
    got = compiled("brier_score")(x, y)
    assert math.isclose(float(got), want, rel_tol=1e-12)


def test_brier_score_binary_scale_by_half_matches_sklearn_auto():
    """sklearn halves the score for two classes (scale_by_half='auto'); scale_by_half=true here."""
    metrics = importlib.import_module("sklearn.metrics")
    x, y = logits_target((12, 2), seed=49)
    p = F.softmax(x, dim=1).numpy()
    fn = compiled("brier_score")
    want = metrics.brier_score_loss(y.numpy(), p, labels=[0, 1])  # 'auto' -> halved
    assert math.isclose(float(fn(x, y, scale_by_half=True)), want, rel_tol=1e-12)
    want_full = metrics.brier_score_loss(y.numpy(), p, labels=[0, 1], scale_by_half=False)
    assert math.isclose(float(fn(x, y)), want_full, rel_tol=1e-12)
    # the binary score on the positive-class column (sklearn's one-column form)
    want_col = metrics.brier_score_loss(y.numpy(), p[:, 1])
    assert math.isclose(float(fn(x, y, scale_by_half=True)), want_col, rel_tol=1e-12)


@pytest.mark.parametrize("half", [False, True])
def test_brier_score_gradients_match_transcription(shape, half):
    x, y = logits_target(shape, seed=50)
    fn = compiled("brier_score")
    for r in REDUCTIONS:
        assert_same(
            lambda x, r=r: fn(x, y, scale_by_half=half, reduction=r),
            lambda x, r=r: brier_score_loss(x, y, scale_by_half=half, reduction=r),
            {"x": x},
            ["x"],
        )


def test_brier_score_shift_invariant_and_bounded():
    """Metamorphic: invariant to a per-row shift of the logits; 0 <= l <= 2; a confident correct
    prediction scores ~0, a confident wrong one ~2."""
    x, y = logits_target((9, 4), seed=51)
    fn = compiled("brier_score")
    shift = torch.randn(9, 1, generator=gen(52)) * 50
    torch.testing.assert_close(fn(x + shift, y, reduction="none"), fn(x, y, reduction="none"))
    per = fn(x, y, reduction="none")
    assert torch.all((per >= 0) & (per <= 2))
    sure = F.one_hot(y, 4).double() * 60
    assert fn(sure, y) < 1e-20
    assert fn(sure, (y + 1) % 4) == pytest.approx(2.0)


# ---- ca_calibration: liuyvchi/Correctness-aware-calibration temperature_scaling_CA.py --------


@pytest.mark.parametrize("temperature", [1.0, 0.4, 2.5])
def test_ca_calibration_matches_official(shape, reduction, temperature):
    z, y = logits_target(shape, seed=1, scale=2.0)
    # make roughly half of the predictions right so both weight groups are populated
    flip = torch.rand(shape[0], generator=gen(2)) < 0.5
    y = torch.where(flip, z.argmax(dim=1), y)
    assert 0 < (z.argmax(1) == y).sum() < shape[0]
    zc = z / temperature + 0.3 * randn(*shape, seed=3)  # a calibrator's output
    fn = lossdsl.load("ca_calibration").compile("torch")
    assert_same(
        lambda zc, z: fn(zc, z, y, reduction=reduction),
        lambda zc, z: ca_loss(zc, z, y, reduction=reduction),
        {"zc": zc, "z": z},
        ["zc"],
    )


def test_ca_calibration_gradient_flows_through_a_temperature():
    # the official use: outputs = logits / T, only T trained; dL/dT matches the official
    z, y = logits_target((12, 4), seed=4, scale=2.0)
    y[:6] = z[:6].argmax(1)
    fn = lossdsl.load("ca_calibration").compile("torch")
    t = torch.tensor(1.5)
    _, (ga,) = grad_of(lambda t: fn(z / t, z, y), t)
    _, (gb,) = grad_of(lambda t: ca_loss(z / t, z, y), t)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)
    # logits carry no gradient (argmax only)
    _, (_, gz) = grad_of(lambda zc, z: fn(zc, z, y), z, z)
    assert gz is None or torch.equal(gz, torch.zeros_like(gz))


def test_ca_calibration_hand_values_and_empty_weights():
    fn = lossdsl.load("ca_calibration").compile("torch")
    # two samples, C = 2; sample 0 right, sample 1 wrong -> acc = 1/2, both weights 1/2
    z = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([0, 1])
    zc = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # confidences 3/4 and 1/2 (by hand)
    # l = [(3/4 - 1)^2, (1/2 - 0)^2] = [1/16, 1/4]; weighted mean = (1/32 + 1/8) / 1 = 5/32
    torch.testing.assert_close(fn(zc, z, y), torch.tensor(5 / 32))
    torch.testing.assert_close(ca_loss(zc, z, y), torch.tensor(5 / 32))
    # every prediction right: all weights 0; the official 0/0 is NaN, ours 0 with zero gradient
    y = torch.tensor([0, 0])
    assert torch.isnan(ca_loss(zc, z, y))
    out, (g,) = grad_of(lambda zc: fn(zc, z, y), zc)
    assert out.item() == 0.0 and torch.equal(g, torch.zeros_like(g))


# ---- implicit_prm_ce: PRIME-RL/PRIME core_algos.compute_ce_dpo_loss_rm --------------------------


def prm_inputs(b, t, seed, soft_label=False):
    g = gen(seed)
    logp = -torch.rand(b, t, generator=g) * 4
    ref = -torch.rand(b, t, generator=g) * 4
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(logp.dtype)
    label = (
        torch.rand(b, generator=g) if soft_label else torch.randint(0, 2, (b,), generator=g) * 1.0
    )
    return logp, ref, mask, label


@pytest.mark.parametrize("shape", [(8, 12), (33, 7)])
@pytest.mark.parametrize("beta", [0.05, 0.5])
def test_implicit_prm_ce_matches_official(shape, reduction, beta):
    logp, ref, mask, label = prm_inputs(*shape, seed=sum(shape))
    fn = compiled("implicit_prm_ce")
    assert_same(
        lambda logp, ref, mask, label: fn(logp, ref, mask, label, beta=beta, reduction=reduction),
        lambda logp, ref, mask, label: prime_loss(logp, ref, mask, label, beta, reduction),
        {"logp": logp, "ref": ref, "mask": mask, "label": label},
        ["logp"],
    )


def test_implicit_prm_ce_soft_labels_and_default_beta():
    logp, ref, mask, label = prm_inputs(10, 6, seed=11, soft_label=True)
    fn = compiled("implicit_prm_ce")
    # default beta is upstream's beta_train default, 0.05
    torch.testing.assert_close(fn(logp, ref, mask, label), prime_loss(logp, ref, mask, label))


def test_implicit_prm_ce_edges():
    fn = compiled("implicit_prm_ce")
    logp, ref, mask, label = prm_inputs(5, 4, seed=12)
    # an all-zero mask gives r = 0: log 2 for every label (by hand)
    zero = torch.zeros_like(mask)
    torch.testing.assert_close(fn(logp, ref, zero, label), torch.tensor(math.log(2)))
    # no gradient reaches the reference log-probs
    ref = ref.clone().requires_grad_(True)
    lp = logp.clone().requires_grad_(True)
    fn(lp, ref, mask, label).backward()
    assert ref.grad is None and lp.grad is not None
    # saturation: r = 0.05 * 1000 = 50, label 0. Exact loss softplus(50) = 50 + log1p(e^-50);
    # upstream's sigmoid(50) rounds to 1.0 in float64 and BCE clamps log(0) to -100 (loss 100)
    lp = torch.full((1, 1), 1000.0)
    r0 = torch.zeros(1, 1)
    m1, lab0 = torch.ones(1, 1), torch.zeros(1)
    torch.testing.assert_close(fn(lp, r0, m1, lab0), torch.tensor(50 + math.log1p(math.exp(-50))))
    assert prime_loss(lp, r0, m1, lab0).item() == 100.0  # the upstream pitfall this spec avoids


# ---- edl_digamma: dougbrion/pytorch-classification-uncertainty losses.py -------------------


@pytest.mark.parametrize("shape", [(8, 10), (33, 3)])
@pytest.mark.parametrize("epoch,step", [(0.0, 10.0), (5.0, 10.0), (30.0, 10.0), (1.0, 4.0)])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_edl_digamma_matches_official(shape, epoch, step, reduction):
    """Values and gradients against the transcription (epoch / step ratios float32 holds
    exactly: the official annealing coefficient is a float32 tensor). Logits of both signs:
    relu's kink leaves evidence 0 for half of them."""
    x, t = logits_target(shape, seed=sum(shape))
    fn = compiled("edl_digamma")
    c = shape[1]
    assert_same(
        lambda x: fn(x, t, epoch=epoch, annealing_step=step, reduction=reduction),
        lambda x: edl_digamma_loss(x, F.one_hot(t, c).double(), epoch, c, step, reduction),
        {"x": x},
        ["x"],
    )


def test_edl_digamma_on_every_backend_and_at_its_known_value():
    """jax and numpy agree with torch. Zero evidence (alpha = 1 for every class): the Bayes
    risk is digamma(C) - digamma(1) = H_{C-1} (the harmonic number: 1 + 1/2 for C = 3), and the
    KL to the uniform Dirichlet is 0 (Sensoy et al. 2018, eq. 5)."""
    x, t = logits_target((9, 4), seed=5)
    want = compiled("edl_digamma")(x, t, epoch=3.0, reduction="none").numpy()
    for backend in ("jax", "numpy"):
        got = compiled("edl_digamma", backend)(x.numpy(), t.numpy(), epoch=3.0, reduction="none")
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)
    zero = torch.full((2, 3), -1.0)
    got = compiled("edl_digamma")(zero, torch.tensor([0, 2]), epoch=10.0, reduction="none")
    torch.testing.assert_close(got, torch.full((2,), 1.5))


# ---- shift invariance of the softmax losses (metamorphic) ------------------------------------


@pytest.mark.parametrize(
    "name", ["dual_focal", "encouraging", "comp_sum", "entropy_minimization", "info_max"]
)
def test_softmax_losses_are_shift_invariant(name):
    x, y = logits_target((7, 5), seed=35)
    spec = lossdsl.load(name)
    fn = spec.compile("torch")
    shift = torch.randn(7, 1, generator=gen(36)) * 10
    args = (x,) if name in ("entropy_minimization", "info_max") else (x, y)
    args2 = (x + shift,) + args[1:]
    torch.testing.assert_close(fn(*args2, reduction="none"), fn(*args, reduction="none"))


# ---- sparsemax: optax.losses.multiclass_sparsemax_loss -----------------------------------------


def _optax_sparsemax(reduction):
    def ref(x, y):
        r = optax.losses.multiclass_sparsemax_loss(x, y)
        return {"none": r, "sum": r.sum(), "mean": r.mean()}[reduction]

    return ref


def test_sparsemax_matches_optax(shape, reduction):
    """Values and jax.grad w.r.t. the logits of the jax module against optax; the torch and
    numpy modules against the same numbers (torch's gradient against optax's too)."""
    from helpers import call, grads

    x, y = logits_target(shape, seed=61, scale=2.0)
    ours = compiled("sparsemax", "jax")
    assert_same_as_optax(
        lambda x, y: ours(x, y, reduction=reduction), _optax_sparsemax(reduction),
        {"x": x, "y": y}, ["x"],
    )  # fmt: skip
    data = {"logits": x.numpy(), "target": y.numpy()}
    want = np.asarray(_optax_sparsemax(reduction)(jnp.asarray(x.numpy()), jnp.asarray(y.numpy())))
    spec = lossdsl.load("sparsemax")
    for b in ("torch", "numpy"):
        got = call(b, spec.compile(b), data, "float64", reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=b)
    g = jax.grad(lambda v: jnp.sum(_optax_sparsemax(reduction)(v, jnp.asarray(y.numpy()))))
    r = "sum" if reduction == "none" else reduction  # the gradient of the summed output
    gt = grads("torch", spec.compile("torch"), data, ["logits"], "float64", reduction=r)
    np.testing.assert_allclose(gt["logits"], g(jnp.asarray(x.numpy())), rtol=1e-10, atol=1e-12)


def test_sparsemax_ties_and_sparse_rows():
    """Rows with tied logits (all equal: sparsemax is uniform, the loss (1 - 1/C) / 2 by hand),
    one dominant logit (sparsemax one-hot at the target: loss 0) and a partial support, against
    optax; the gradient is sparsemax(z) - onehot(y) (Martins and Astudillo, Prop. 2)."""
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, 0.0, -1.0, 0.2], [1.0, 0.8, -3.0, 0.8]])
    y = torch.tensor([2, 0, 1])
    fn = compiled("sparsemax")
    out, (gx,) = grad_of(lambda v: fn(v, y, reduction="none"), x)
    want = optax.losses.multiclass_sparsemax_loss(jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12, atol=1e-15)
    assert out[0].item() == pytest.approx((1 - 1 / 4) / 2, abs=1e-15)
    assert out[1].item() == 0.0
    p = optax.projections.projection_simplex(jnp.asarray(x[2].numpy()))
    np.testing.assert_allclose(gx[2].numpy(), np.asarray(p) - np.eye(4)[1], atol=1e-15)
    np.testing.assert_allclose(gx.sum(1).numpy(), 0.0, atol=1e-15)
