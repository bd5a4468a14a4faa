"""Metric learning, retrieval and ranking: SupCon, triplet (margin, batch-hard), circle, TCM,
Cauchy-Schwarz divergence retrieval, the Mann-Whitney AUC loss, BPR and prototypical networks.
pytorch_metric_learning 2.9.0 here (NTXent, Circle, TripletMargin + BatchHardMiner,
ThresholdConsistentMargin).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import math

import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import (
    CircleLoss,
    ThresholdConsistentMarginLoss,
    TripletMarginLoss,
)
from pytorch_metric_learning.miners import BatchHardMiner
from reference.bpr_official import lightgcn_bpr_loss, recbole_bpr_loss
from reference.csd_official import cmcl_loss
from reference.mw_auc_paper import mw_loss
from reference.protonet_official import protonet_loss
from reference.supcon_official import supcon_loss
from reference.triplet_batch_hard_official import triplet_loss
from torch_helpers import REDUCTIONS, assert_same, compiled, gen, grad_of, randn

import lossdsl

# ---- supcon: HobbitLong/SupContrast losses.py (tests/reference/supcon_official.py) ----------


@pytest.mark.parametrize("b,v,d", [(8, 2, 16), (5, 3, 4)])
@pytest.mark.parametrize("temp", [0.07, 0.5])
def test_supcon_matches_official(b, v, d, temp):
    f = F.normalize(torch.randn(b, v, d, generator=gen(18)), dim=-1)
    y = torch.randint(0, 3, (b,), generator=gen(19))
    fn = lossdsl.load("supcon").compile("torch")
    assert_same(
        lambda f, y: fn(f, y, temperature=temp),
        lambda f, y: supcon_loss(f, y, temperature=temp),
        {"f": f, "y": y},
        ["f"],
    )


def test_supcon_anchors_without_positives():
    """Single view, all labels distinct but two: most anchors have no positive (official code
    gives them 0 and still counts them in the mean)."""
    f = F.normalize(torch.randn(6, 1, 5, generator=gen(20)), dim=-1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    fn = lossdsl.load("supcon").compile("torch")
    assert_same(lambda f, y: fn(f, y), lambda f, y: supcon_loss(f, y), {"f": f, "y": y}, ["f"])
    per = fn(f, y, reduction="none")
    assert torch.all(per[1:5, 0] == 0)


def test_supcon_never_builds_the_outer_product():
    """contract turns sum(z * z', over=D) into an einsum: no [B, V, D, B', V'] tensor."""
    src = lossdsl.load("supcon").source("torch")
    assert "torch.einsum(" in src


# ---- B11 triplet_margin: F.triplet_margin_loss ---------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 4), (21, 16)])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("margin,eps", [(1.0, 1e-6), (0.2, 0.0), (2.0, 1e-3)])
def test_triplet_margin_matches_torch(shape, p, swap, margin, eps):
    a, pos, neg = (torch.randn(*shape, generator=gen(s)) for s in (42, 43, 44))
    pos = a + 0.7 * pos  # positives near the anchors: both hinge regimes occur
    fn = compiled("triplet_margin")
    for r in REDUCTIONS:
        assert_same(
            lambda a, pos, neg, r=r: fn(
                a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=r
            ),
            lambda a, pos, neg, r=r: F.triplet_margin_loss(
                a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=r
            ),
            {"a": a, "pos": pos, "neg": neg},
            ["a", "pos", "neg"],
            rtol=1e-9,
        )


def test_triplet_margin_module_defaults_and_identical_positive():
    """torch.nn.TripletMarginLoss() defaults (margin 1, p 2, eps 1e-6); an anchor equal to its
    positive: eps inside the norm keeps the distance sqrt(D) * eps and the gradient finite."""
    a, neg = torch.randn(6, 5, generator=gen(45)), torch.randn(6, 5, generator=gen(46))
    pos = torch.randn(6, 5, generator=gen(47))
    pos[:3] = a[:3]
    fn = compiled("triplet_margin")
    inputs = {"a": a, "pos": pos, "neg": neg}
    assert_same(
        lambda **k: fn(k["a"], k["pos"], k["neg"]),
        lambda **k: torch.nn.TripletMarginLoss()(k["a"], k["pos"], k["neg"]),
        inputs,
        ["a", "pos", "neg"],
    )
    ga = torch.func.grad(lambda a: fn(a, pos, neg))(a)
    assert torch.all(torch.isfinite(ga))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_triplet_margin_eps_zero_identical_positive_has_torch_gradient(p):
    """Edge: eps = 0 and anchor == positive: the distance is 0 and torch's norm backward gives a
    zero (not NaN) gradient there; so does the spec."""
    a = torch.randn(5, 4, generator=gen(59))
    neg = a + 0.3 * torch.randn(5, 4, generator=gen(60))
    fn = compiled("triplet_margin")
    assert_same(
        lambda a, pos: fn(a, pos, neg, eps=0.0, p=p),
        lambda a, pos: F.triplet_margin_loss(a, pos, neg, eps=0.0, p=p),
        {"a": a, "pos": a.clone()},
        ["a", "pos"],
    )


# ---- triplet_batch_hard: reid-strong-baseline; PML TripletMarginLoss + BatchHardMiner -------


def pk_labels(p, k):
    return torch.arange(p).repeat_interleave(k)[torch.randperm(p * k, generator=gen(20))]


@pytest.mark.parametrize("pk,d", [((4, 2), 5), ((4, 4), 17)])
@pytest.mark.parametrize("margin", [0.3, None, 5.0])
@pytest.mark.parametrize("normalize", [False, True])
def test_triplet_batch_hard_matches_reid_strong_baseline(pk, d, margin, normalize):
    y = pk_labels(*pk)
    e = randn(len(y), d, seed=21)
    fn = lossdsl.load("triplet_batch_hard").compile("torch")
    kw = dict(margin=margin or 0.0, soft_margin=margin is None, l2_normalize=normalize)
    assert_same(
        lambda e: fn(e, y, **kw),
        lambda e: triplet_loss(e, y, margin=margin, normalize_feature=normalize),
        {"e": e},
        ["e"],
        rtol=1e-8,
    )


@pytest.mark.parametrize("margin", [0.05, 0.5])
def test_triplet_batch_hard_matches_pml(bd, margin):
    b, d = bd
    e = randn(b, d, seed=22)
    y = torch.randint(0, 3, (b,), generator=gen(23))
    y[-1] = 9  # singleton: no positive, dropped by the miner and by the spec
    fn = lossdsl.load("triplet_batch_hard").compile("torch")
    pml, miner = TripletMarginLoss(margin=margin), BatchHardMiner()
    assert_same(
        lambda e: fn(e, y, margin=margin, l2_normalize=True, avg_nonzero=True),
        lambda e: pml(e, y, miner(e, y)),
        {"e": e},
        ["e"],
        rtol=1e-9,
    )


def test_triplet_batch_hard_edge_cases():
    fn = lossdsl.load("triplet_batch_hard").compile("torch")
    for y in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        e = randn(5, 3, seed=24).requires_grad_(True)
        out = fn(e, y)
        (g,) = torch.autograd.grad(out, [e])
        assert out.item() == 0.0 and torch.all(g == 0)
    # avg_nonzero with every triplet satisfied (margin 0, well-separated classes): 0, like PML
    e = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [-1.0, 0.1]])
    y = torch.tensor([0, 0, 1, 1])
    assert fn(e, y, margin=0.0, l2_normalize=True, avg_nonzero=True).item() == 0.0
    assert TripletMarginLoss(margin=0.0)(e, y, BatchHardMiner()(e, y)).item() == 0.0


# ---- circle: pytorch_metric_learning.losses.CircleLoss -------------------------------------


@pytest.mark.parametrize("m,gamma", [(0.4, 80.0), (0.25, 256.0), (0.25, 2.0)])
def test_circle_matches_pml(bd, m, gamma):
    b, d = bd
    e = randn(b, d, seed=17)
    y = torch.randint(0, 3, (b,), generator=gen(18))
    y[-1] = 7  # a singleton: no positive, excluded from the mean
    fn = lossdsl.load("circle").compile("torch")
    assert_same(
        lambda e: fn(e, y, m=m, gamma=gamma),
        lambda e: CircleLoss(m=m, gamma=gamma)(e, y),
        {"e": e},
        ["e"],
        rtol=1e-9,
    )


def test_circle_edge_cases():
    """All labels distinct (no positives) and all equal (no negatives): 0 with zero gradient;
    PML returns 0 too."""
    fn = lossdsl.load("circle").compile("torch")
    for y in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        e = randn(5, 3, seed=19).requires_grad_(True)
        out = fn(e, y)
        (g,) = torch.autograd.grad(out, [e])
        assert out.item() == 0.0 and torch.all(g == 0)
        assert CircleLoss()(e.detach(), y).item() == 0.0


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


# ---- cs_divergence: JiahaoZhang666/CSD code/utils/metric.py (reference/csd_official.py) -----
# cs_divergence against the official CSD loss (JiahaoZhang666/CSD code/utils/metric.py,
# transcribed in tests/reference/csd_official.py): values and gradients in float64 for all three
# modalities, two shapes, two temperatures (the official create_target_matrix casts to float32;
# the transcription keeps float64 so that the comparison is exact).


@pytest.mark.parametrize("b,d", [(6, 4), (12, 9)])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_cs_divergence_matches_official(b, d, tau):
    g = torch.Generator().manual_seed(b + d)
    t, a, i = (torch.randn(b, d, generator=g) for _ in range(3))
    y = torch.randint(0, 3, (b,), generator=g)
    fn = lossdsl.load("cs_divergence").compile("torch")
    ours_in = [x.clone().requires_grad_(True) for x in (t, a, i)]
    ref_in = [x.clone().requires_grad_(True) for x in (t, a, i)]
    ours = fn(*ours_in, y, tau=tau)
    ref = cmcl_loss(ref_in[2], ref_in[0], ref_in[1], y, tau=tau)
    torch.testing.assert_close(ours, ref)
    for x, z in zip(torch.autograd.grad(ours, ours_in), torch.autograd.grad(ref, ref_in)):
        torch.testing.assert_close(x, z)


# ---- mw_auc: the paper (no official code), tests/reference/mw_auc_paper.py ---------------------


@pytest.mark.parametrize("b", [6, 17])
@pytest.mark.parametrize("pooled", [True, False])
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


# ---- B13 bpr: LightGCN-PyTorch and RecBole (tests/reference/bpr_official.py) -------------------


@pytest.mark.parametrize("b,k", [(16, None), (9, 1), (12, 5)])
def test_bpr_matches_lightgcn(b, k):
    pos = torch.randn(b, generator=gen(53)) * 2
    neg = torch.randn(b, *(() if k is None else (k,)), generator=gen(54)) * 2
    fn = compiled("bpr")
    for r in REDUCTIONS:
        assert_same(
            lambda pos, neg, r=r: fn(pos, neg, reduction=r),
            lambda pos, neg, r=r: lightgcn_bpr_loss(pos, neg, reduction=r),
            {"pos": pos, "neg": neg},
            ["pos", "neg"],
        )


def test_bpr_matches_recbole_on_moderate_scores_and_is_stable_beyond():
    """RecBole adds gamma = 1e-10 inside the log: values and gradients equal up to a relative
    ~1e-10 / sigmoid(gap) (about 1e-7 here, where sigmoid(gap) ~ 1e-3); for a gap of -1000
    RecBole caps at -log(1e-10), the softplus form gives 1000."""
    pos = torch.randn(20, generator=gen(55)) * 2
    neg = torch.randn(20, generator=gen(56)) * 2
    fn = compiled("bpr")
    assert_same(
        lambda pos, neg: fn(pos, neg),
        lambda pos, neg: recbole_bpr_loss(pos, neg),
        {"pos": pos, "neg": neg},
        ["pos", "neg"],
        rtol=1e-6,
        atol=1e-9,
    )
    far = fn(torch.tensor([0.0]), torch.tensor([1000.0]))
    assert float(far) == pytest.approx(1000.0)
    assert float(recbole_bpr_loss(torch.tensor([0.0]), torch.tensor([1000.0]))) == pytest.approx(
        -math.log(1e-10)
    )


def test_bpr_is_bce_with_logits_on_the_score_gap():
    """Library cross-check: -log sigmoid(pos - neg) = F.binary_cross_entropy_with_logits(gap, 1);
    and the JAX module agrees with optax.sigmoid_binary_cross_entropy."""
    pos, neg = torch.randn(10, generator=gen(57)) * 3, torch.randn(10, 4, generator=gen(58)) * 3
    gap = pos[:, None] - neg
    fn = compiled("bpr")
    torch.testing.assert_close(
        fn(pos, neg, reduction="none"),
        F.binary_cross_entropy_with_logits(gap, torch.ones_like(gap), reduction="none"),
    )
    ours = compiled("bpr", "jax")(pos.numpy(), neg.numpy(), reduction="none")
    ref = optax.sigmoid_binary_cross_entropy(gap.numpy(), np.ones(gap.shape))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12)


# ---- prototypical: jakesnell/prototypical-networks (tests/reference/protonet_official.py) -----


@pytest.mark.parametrize("c,k,q,d", [(5, 1, 3, 4), (3, 5, 2, 8), (7, 2, 1, 3), (1, 3, 2, 2)])
def test_prototypical_matches_official(c, k, q, d, reduction, other_backend):
    """Values and gradients (support and query) against the official Protonet.loss on the
    encoder's output: one shot, several shots, one query, a single class (log-softmax over one
    prototype: a loss of 0)."""
    s = torch.randn(c * k, d, generator=gen(60))
    qs = torch.randn(c, q, d, generator=gen(61))
    fn = compiled("prototypical")
    assert_same(
        lambda s, qs: fn(s, qs, reduction=reduction),
        lambda s, qs: protonet_loss(s, qs, reduction),
        {"s": s, "qs": qs},
        ["s", "qs"],
    )
    got = compiled("prototypical", other_backend)(s.numpy(), qs.numpy(), reduction=reduction)
    want = protonet_loss(s, qs, reduction).numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)


def test_prototypical_support_must_hold_whole_classes():
    """Edge: 7 support embeddings cannot be 3 classes' shots: an InputError naming the split,
    where the official view(n_class, n_support, z_dim) raises a shape error."""
    fn = compiled("prototypical")
    with pytest.raises(lossdsl.InputError, match="split"):
        fn(torch.randn(7, 4), torch.randn(3, 2, 4))
