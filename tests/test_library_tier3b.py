"""Tier-3 losses, second batch (CATALOG.md section 5: T3.1 ldr_kl, T3.2 tcm, T3.3 mw_auc, T3.4
ca_calibration, T3.5 em_spml, T3.9 sdsc) against something lossdsl did not compute:
pytorch_metric_learning's ThresholdConsistentMarginLoss (tcm) and transcriptions of the official
code in tests/reference/ (each file names its repository, file and commit); mw_auc has no official
code and is checked against a loop-based transcription of the paper (tests/reference/
mw_auc_paper.py). Values and gradients in float64, two shapes, every reduction, plus edge cases;
each expected value names its source.

Library versions: whatever `pip install -e .[test]` resolves (pytorch-metric-learning 2.9.0
here)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import ThresholdConsistentMarginLoss
from reference.ca_calibration_official import ca_loss
from reference.em_spml_official import compute_batch_loss
from reference.ldr_kl_official import ldr_loss_v1
from reference.mw_auc_paper import mw_loss
from reference.sdsc_official import (
    sdsc_canonical,
    sdsc_loss_canonical,
    sdsc_loss_legacy,
)
from torch_helpers import assert_same, gen, logits_target, randn

import lossdsl

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]
REDUCTIONS = ["none", "sum", "mean"]


def grad_of(fn, *xs):
    xs = [x.detach().clone().requires_grad_(True) for x in xs]
    out = fn(*xs)
    return out, torch.autograd.grad(out.sum(), xs, allow_unused=True)


# ---- tcm: pytorch_metric_learning.losses.ThresholdConsistentMarginLoss (PML 2.9.0) ---------------


@pytest.mark.parametrize("bd", [(8, 5), (24, 17)])
@pytest.mark.parametrize("classes", [2, 5])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"lambda_plus": 0.5, "lambda_minus": 2.0, "margin_plus": 0.3, "margin_minus": -0.1},
        {"margin_plus": 0.6, "margin_minus": 0.6},  # both hinge sets a strict subset
    ],
)
def test_tcm_matches_pml(bd, classes, kw):
    b, d = bd
    x = randn(b, d, seed=b + classes)
    # a shared direction makes some similarities large, so both hinge sets are populated
    x = x + 1.5 * randn(1, d, seed=99)
    y = torch.randint(0, classes, (b,), generator=gen(b * classes))
    fn = lossdsl.load("tcm").compile("torch")
    pml = ThresholdConsistentMarginLoss(**kw)
    for reduction in REDUCTIONS:  # a scalar under every reduction
        assert_same(
            lambda x: fn(x, y, reduction=reduction, **kw),
            lambda x: pml(x, y),
            {"x": x},
            ["x"],
        )


def test_tcm_hand_values():
    # unit vectors at angles 0, 60, 180 degrees: s(0,1) = 0.5, s(0,2) = -1, s(1,2) = -0.5 (by hand)
    x = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2], [-2.0, 0.0]])
    fn = lossdsl.load("tcm").compile("torch")
    # labels [0, 0, 1]: positive pair (0,1) s = 0.5 <= 0.9 -> pos = 0.9 - 0.5 = 0.4 (both orders);
    # negatives s in {-1, -0.5}, none >= 0.5 -> neg = 0 (empty); L = 0.4
    y = torch.tensor([0, 0, 1])
    torch.testing.assert_close(fn(x, y), torch.tensor(0.4))
    torch.testing.assert_close(ThresholdConsistentMarginLoss()(x, y), torch.tensor(0.4))
    # labels [0, 1, 1]: positive (1,2) s = -0.5 -> 1.4; negatives (0,1) s = 0.5 >= 0.5 -> 0,
    # (0,2) s = -1 excluded -> mean over the active set {0.5 - 0.5} = 0; L = 1.4
    y = torch.tensor([0, 1, 1])
    torch.testing.assert_close(fn(x, y), torch.tensor(1.4))


def test_tcm_empty_sets_give_zero_like_pml():
    # every pair positive and above m+ (near-duplicates), no negatives: PML returns 0 (its
    # `0 if s_lte_m.sum() == 0` branch); ours 0 with zero gradient
    x = randn(1, 4, seed=3).repeat(5, 1) + 1e-3 * randn(5, 4, seed=4)
    y = torch.zeros(5, dtype=torch.long)
    fn = lossdsl.load("tcm").compile("torch")
    out, (g,) = grad_of(lambda x: fn(x, y), x)
    assert out.item() == 0.0 and ThresholdConsistentMarginLoss()(x, y).item() == 0.0
    assert torch.equal(g, torch.zeros_like(g))
    # a single sample: no pairs at all
    assert fn(x[:1], y[:1]).item() == 0.0


def test_tcm_is_scale_invariant():
    # cosine similarity: scaling an embedding changes nothing (PML normalizes too)
    x, y = randn(9, 4, seed=5), torch.randint(0, 3, (9,), generator=gen(5))
    fn = lossdsl.load("tcm").compile("torch")
    scale = torch.linspace(0.1, 10, 9)[:, None]
    torch.testing.assert_close(fn(x * scale, y), fn(x, y))


# ---- em_spml: Correr-Zhou/SPML-AckTheUnknown losses.py (loss_EM_APL, loss_EM) ------------------


def spml_observed(shape, seed, apl=True):
    """One observed positive per row (the SPML setting); some unannotated entries turned into APL
    pseudo-negatives -pred with pred in (0, 0.3) (main.py stores -unlabel_class_preds)."""
    g = gen(seed)
    b, c = shape
    obs = torch.zeros(b, c)
    obs[torch.arange(b), torch.randint(0, c, (b,), generator=g)] = 1.0
    if apl:
        pick = (torch.rand(b, c, generator=g) < 0.4) & (obs == 0)
        obs[pick] = -0.3 * torch.rand(b, c, generator=g)[pick]
    return obs


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha,beta", [(0.2, 0.02), (0.01, 0.4), (0.1, 0.9)])
def test_em_spml_matches_official_apl(shape, reduction, alpha, beta):
    x = randn(*shape, seed=1, scale=3.0)
    obs = spml_observed(shape, seed=2)
    assert (obs < 0).any() and (obs == 0).any() and (obs == 1).any()
    fn = lossdsl.load("em_spml").compile("torch")
    assert_same(
        lambda x: fn(x, obs, alpha=alpha, beta=beta, reduction=reduction),
        lambda x: compute_batch_loss(x, obs, alpha=alpha, beta=beta, reduction=reduction),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_em_spml_plain_em_matches_official_loss_em(shape):
    # observed in {0, 1}: the official loss_EM (no APL branch); beta is then irrelevant
    x = randn(*shape, seed=3, scale=3.0)
    obs = spml_observed(shape, seed=4, apl=False)
    fn = lossdsl.load("em_spml").compile("torch")
    assert_same(
        lambda x: fn(x, obs, alpha=0.1, beta=123.0),
        lambda x: compute_batch_loss(x, obs, alpha=0.1, apl=False),
        {"x": x},
        ["x"],
    )


def test_em_spml_hand_values_and_saturation():
    fn = lossdsl.load("em_spml").compile("torch")
    eps = 1e-5
    # logit 0: p = 1/2. positive: -log(0.5 + eps); unannotated: -alpha * H = alpha * log(0.5 +
    # eps); pseudo-negative q = 0.2: beta * -log(0.5 + eps) (q and 1 - q weigh the same value)
    x = torch.zeros(1, 4)
    obs = torch.tensor([[1.0, 0.0, -0.2, 0.5]])
    nl = -math.log(0.5 + eps)
    want = torch.tensor([[nl, -0.2 * nl, 0.02 * nl, 0.0]])  # 0.5: no official branch -> 0
    torch.testing.assert_close(fn(x, obs, reduction="none"), want)
    # the entropy term is maximal (most negative loss) at p = 1/2: its gradient vanishes there
    _, (g,) = grad_of(lambda x: fn(x, torch.zeros(1, 1), reduction="sum"), torch.zeros(1, 1))
    assert abs(g.item()) < 1e-12
    # saturated logits stay finite thanks to the 1e-5 inside the logs (official neg_log)
    x = torch.tensor([[-50.0, 50.0, 50.0]])
    out = fn(x, torch.tensor([[1.0, 0.0, -0.1]]), reduction="none")
    ref = compute_batch_loss(x, torch.tensor([[1.0, 0.0, -0.1]]), reduction="none")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out[0, 0], torch.tensor(-math.log(eps + torch.sigmoid(x[0, 0]))))


# ---- sdsc: CVMILab-CUK/Signal_Dice_Similarity_Coefficient sdsc_canonical.py / metrics.py -------

BT = [(8, 5), (13, 40)]


@pytest.mark.parametrize("bt", BT)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sdsc_hard_matches_canonical(bt, reduction):
    x, y = randn(*bt, seed=1), randn(*bt, seed=2, scale=2.0)
    fn = lossdsl.load("sdsc").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, reduction=reduction),
        lambda x, y: sdsc_loss_canonical(x, y, alpha=None, reduction=reduction),
        {"x": x, "y": y},
        ["x", "y"],
    )


@pytest.mark.parametrize("bt", BT)
@pytest.mark.parametrize("alpha", [1.0, 10.0, 100.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sdsc_soft_matches_canonical(bt, alpha, reduction):
    x, y = randn(*bt, seed=3), randn(*bt, seed=4, scale=0.5)
    fn = lossdsl.load("sdsc").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, alpha=alpha, reduction=reduction),
        lambda x, y: sdsc_loss_canonical(x, y, alpha=alpha, reduction=reduction),
        {"x": x, "y": y},
        ["x", "y"],
    )


@pytest.mark.parametrize("alpha", [None, 10.0])
def test_sdsc_single_sequence_matches_legacy(alpha):
    # legacy metrics.py sums over the whole tensor (one global ratio); with B = 1 that is the
    # per-sequence value; its soft gate is built under no_grad -> detach_gate = true
    x, y = randn(1, 50, seed=5), randn(1, 50, seed=6)
    fn = lossdsl.load("sdsc").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, alpha=alpha or 0.0, detach_gate=True),
        lambda x, y: sdsc_loss_legacy(x, y, alpha=alpha),
        {"x": x, "y": y},
        ["x", "y"],
    )
    # for B > 1 the legacy global ratio is a different number (documented in the spec)
    x, y = randn(4, 10, seed=7), randn(4, 10, seed=8, scale=3.0)
    assert abs(fn(x, y).item() - sdsc_loss_legacy(x, y).item()) > 1e-3


def test_sdsc_hand_values():
    fn = lossdsl.load("sdsc").compile("torch")
    x = torch.tensor([[1.0, -2.0, 3.0, 0.0]])
    # identical signals: inter = |x|, SDSC = (2*6 + eps) / (12 + eps) = 1, loss 0
    torch.testing.assert_close(fn(x, x), torch.tensor(0.0))
    # inverted polarity: no overlap, loss = 1 - eps / (12 + eps) (paper's "Inverted" example)
    torch.testing.assert_close(fn(x, -x), torch.tensor(1 - 1e-6 / (12 + 1e-6)))
    # scaled by 0.5: inter = 0.5|x|, SDSC = (6 + eps) / (9 + eps) ~ 2/3 (project page example)
    torch.testing.assert_close(fn(0.5 * x, x), torch.tensor(1 - (6 + 1e-6) / (9 + 1e-6)))
    # two zero signals: (0 + eps) / (0 + eps) = 1 -> loss 0 (eps in both, as upstream)
    z = torch.zeros(2, 3)
    torch.testing.assert_close(fn(z, z, reduction="none"), torch.zeros(2))
    # H(0) = 0 (canonical): a zero in either signal contributes no overlap
    torch.testing.assert_close(
        sdsc_canonical(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])),
        1 - fn(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])),
    )


def test_sdsc_soft_gate_carries_gradient_unless_detached():
    # the soft gate's own gradient is what separates the canonical loss from the legacy one
    x, y = randn(3, 6, seed=9), randn(3, 6, seed=10)
    fn = lossdsl.load("sdsc").compile("torch")
    _, (g_soft, _) = grad_of(lambda x, y: fn(x, y, alpha=1.0), x, y)
    _, (g_det, _) = grad_of(lambda x, y: fn(x, y, alpha=1.0, detach_gate=True), x, y)
    assert (g_soft - g_det).abs().max() > 1e-3


# ---- ca_calibration: liuyvchi/Correctness-aware-calibration temperature_scaling_CA.py --------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
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


# ---- ldr_kl: Optimization-AI/ICML2023_LDR loss.py (LDRLoss_V1) ---------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "margin,lam", [(2.0, 1.0), (0.1, 10.0), (1.0, 0.1), (0.0, 1.0)]
)  # defaults; the paper's experiment.py; a sharp lam; no margin
@pytest.mark.parametrize("normalize", [True, False])
def test_ldr_kl_matches_official(shape, reduction, margin, lam, normalize):
    x, y = logits_target(shape, seed=5)
    fn = lossdsl.load("ldr_kl").compile("torch")
    assert_same(
        lambda x: fn(x, y, margin=margin, lam=lam, normalize=normalize, reduction=reduction),
        lambda x: ldr_loss_v1(
            x, y, threshold=margin, Lambda=lam, normalize=normalize, reduction=reduction
        ),
        {"x": x},
        ["x"],
    )


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


# ---- mw_auc: the paper (no official code), tests/reference/mw_auc_paper.py ---------------------


@pytest.mark.parametrize("b", [6, 17])
@pytest.mark.parametrize("pooled", [True, False])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mw_auc_matches_paper_transcription(b, pooled, reduction):
    s = randn(b, b, seed=b, scale=2.0) + 2.0 * torch.eye(b)
    fn = lossdsl.load("mw_auc").compile("torch")
    assert_same(
        lambda s: fn(s, pooled=pooled, reduction=reduction),
        lambda s: mw_loss(s, pooled=pooled, reduction=reduction),
        {"s": s},
        ["s"],
    )


def test_mw_auc_hand_values_and_edges():
    fn = lossdsl.load("mw_auc").compile("torch")
    # all scores equal: every pair gives softplus(0) = log 2 (by hand)
    torch.testing.assert_close(fn(torch.ones(4, 4)), torch.tensor(math.log(2)))
    # B = 2, S = [[1, 0], [2, 3]]: negatives {0, 2}; pooled l_0 = mean(softplus(-1), softplus(1)),
    # l_1 = mean(softplus(-3), softplus(-1)); per query l_0 = softplus(-1), l_1 = softplus(-1)
    s = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    sp = F.softplus
    t = torch.tensor
    want = torch.stack([(sp(t(-1.0)) + sp(t(1.0))) / 2, (sp(t(-3.0)) + sp(t(-1.0))) / 2])
    torch.testing.assert_close(fn(s, reduction="none"), want)
    torch.testing.assert_close(fn(s, pooled=False, reduction="none"), sp(t([-1.0, -1.0])))
    # a single pair has no negatives: 0 with zero gradient
    out, (g,) = grad_of(lambda s: fn(s), torch.ones(1, 1))
    assert out.item() == 0.0 and torch.equal(g, torch.zeros_like(g))
    # a perfect, well-separated ranking drives the loss to 0; huge gaps stay finite
    s = torch.full((5, 5), -1e4) + 2e4 * torch.eye(5)
    assert fn(s).item() == 0.0  # softplus(-2e4) underflows to 0 (by hand)
    assert torch.isfinite(fn(-s))
    # shifting every score by a constant changes nothing (only differences enter)
    s = randn(7, 7, seed=11)
    torch.testing.assert_close(fn(s + 3.7), fn(s))
