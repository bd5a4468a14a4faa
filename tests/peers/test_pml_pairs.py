"""Peer parity: pytorch-metric-learning's pair- and tuple-based losses and its reducers.

Every case runs the installed pytorch_metric_learning 2.9.0 class itself and the lossdsl spec on
the same float64 embeddings and compares values and gradients w.r.t. the embeddings.

The tables transcribe the settings and label patterns of PML's own tests,
KevinMusgrave/pytorch-metric-learning tests/losses/test_<name>.py and tests/reducers/*.py at tag
v2.8.1 (commit 216a792), the newest tag stored beside the installed 2.9.0; SmoothAPLoss, new in
2.9.0, from tests/losses/test_smooth_ap_loss.py at commit 23b4cf1. Each table names its file.
Their expected values are recomputed by PML itself here (their hand-written loops are PML's own
formulas), so every case compares lossdsl with the installed class. Cases of ours (several
seeds, empty sets, B = 1) follow; one jax case per spec.

What PML's tests do that is not loss math is excluded, each with its reason: EXCLUDED below and
docs/peers/pml_pairs.md."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, reducers
from torch_helpers import assert_same, gen

import lossdsl

PML_TAG = "pytorch-metric-learning tests @ v2.8.1 (216a792); installed 2.9.0"

EXCLUDED = {
    "test_*_with_ref (multi_similarity, margin, triplet_margin, angular)": (
        "ref_emb/ref_labels: queries against a separate reference set; the specs pair the batch "
        "with itself (ref_emb=None), a different input signature"
    ),
    "test_npairs_loss lossB, test_snr_contrastive_loss regularizer part": (
        "embedding_regularizer (LpRegularizer, ZeroMeanRegularizer): PML's regularizer mixin, "
        "added to any loss, not the pair loss; the cases run without it"
    ),
    "test_beta_datatype, is_not_none_if_condition (stats)": "attribute/record checks, no math",
    "test_histogram_loss test_assertion_raises": (
        "HistogramLoss's n_bins/delta consistency assert: the spec takes n_bins only"
    ),
    "test_fast_ap_loss ref_emb ValueError": "ref_emb plumbing (refused by PML), no math",
    "TEST_DTYPES float16/float32 loops, TEST_DEVICE": "dtype/device loops: every case is float64",
    "tests/reducers random indices": (
        "the reducer tests feed random loss tensors with random indices (plumbing); their "
        "settings (thresholds, inner reducers, class weights, batch 100, 10 classes) run here "
        "on contrastive_pair and pml_triplet_margin with the reducer as a choice param"
    ),
    "test_per_anchor_reducer triplet": (
        "PML raises NotImplementedError; pml_triplet_margin has no per_anchor reducer (checked)"
    ),
    "test_smooth_ap_loss labels": (
        "PML 2.9.0 takes consecutive blocks of (number of classes) rows as the positive sets, "
        "the classes only when every class has as many samples as there are classes; the "
        "test's reference (the official code) and PML agree on 6 blocks of 10 rows, so the spec "
        "gets those blocks as labels"
    ),
}


def angle_to_coord(angles):
    """PML's tests' 2-D embeddings: (2 cos a, 0.5 sin a), a in degrees (testing_utils.py)."""
    a = np.radians(np.asarray(angles, dtype=np.float64))
    return torch.tensor(np.stack([2 * np.cos(a), 0.5 * np.sin(a)], axis=1))


def rand_normalized(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=gen(seed), dtype=torch.float64))


@functools.cache
def _spec(name, backend="torch", choices=()):
    return lossdsl.load(name).compile(backend, **dict(choices))


def _split(kw):
    choices = tuple(sorted((k, v) for k, v in kw.items() if isinstance(v, str)))
    return choices, {k: v for k, v in kw.items() if not isinstance(v, str)}


def check(name, make_pml, kw, emb, labels, weights=None, pml_labels=None):
    """The spec (choices compiled in, params passed) against PML on the same embeddings."""
    choices, params = _split(kw)
    fn = _spec(name, "torch", choices)
    pml = make_pml()
    y_pml = labels if pml_labels is None else pml_labels
    extra = {} if weights is None else {"weights": weights}
    assert_same(
        lambda e, y: fn(e, y, **params, **extra),
        lambda e, y: pml(e, y_pml),
        {"e": emb, "y": labels},
        ["e"],
    )
    return fn(emb, labels, **params, **extra)


L5 = torch.tensor([0, 0, 1, 1, 2])
ANG5 = [0, 20, 40, 60, 80]

# ---- tests/losses/test_contrastive_loss.py + test_signal_to_noise_ratio_losses.py ----------
CONTRASTIVE = [
    # (case, PML kwargs, spec kwargs, embeddings, labels)
    (
        "lossA_lp_power2",
        dict(pos_margin=0.25, neg_margin=1.5, distance=distances.LpDistance(power=2)),
        dict(pos_margin=0.25, neg_margin=1.5, power=2.0),
        "ang5",
        L5,
    ),
    (
        "lossB_cosine",
        dict(pos_margin=1.5, neg_margin=0.6, distance=distances.CosineSimilarity()),
        dict(pos_margin=1.5, neg_margin=0.6, distance="cosine"),
        "ang5",
        L5,
    ),
    (
        "lossC_lp_power2_mean",
        dict(
            pos_margin=0.25,
            neg_margin=1.5,
            distance=distances.LpDistance(power=2),
            reducer=reducers.MeanReducer(),
        ),
        dict(pos_margin=0.25, neg_margin=1.5, power=2.0, reducer="mean"),
        "ang5",
        L5,
    ),
    (
        "lossD_cosine_mean",
        dict(
            pos_margin=1.5,
            neg_margin=0.6,
            distance=distances.CosineSimilarity(),
            reducer=reducers.MeanReducer(),
        ),
        dict(pos_margin=1.5, neg_margin=0.6, distance="cosine", reducer="mean"),
        "ang5",
        L5,
    ),
    ("no_valid_pairs_A", {}, {}, "ang1", torch.tensor([0])),
    (
        "no_valid_pairs_B",
        dict(distance=distances.CosineSimilarity()),
        dict(distance="cosine"),
        "ang1",
        torch.tensor([0]),
    ),
]

SNR = [  # test_signal_to_noise_ratio_losses.py (regularizer excluded, see EXCLUDED)
    ("snr_contrastive", dict(pos_margin=0, neg_margin=0.1), dict(neg_margin=0.1), "ang5", L5),
    ("no_valid_pairs", dict(pos_margin=0, neg_margin=0.5), dict(neg_margin=0.5), "ang1", L5[:1]),
]


def _emb(kind):
    return {
        "ang5": angle_to_coord(ANG5),
        "ang1": angle_to_coord([0]),
        "rand5x32": rand_normalized(5, 32, 7),
        "ang7x2.3": angle_to_coord(list(range(0, 180, 20))[:7]) * 2.3,
        "ang7": angle_to_coord(list(range(0, 180, 20))[:7]),
    }[kind]


@pytest.mark.parametrize("case,pml_kw,kw,emb,labels", CONTRASTIVE, ids=[c[0] for c in CONTRASTIVE])
def test_contrastive_loss_cases(case, pml_kw, kw, emb, labels):
    out = check("contrastive_pair", lambda: losses.ContrastiveLoss(**pml_kw), kw, _emb(emb), labels)
    if case.startswith("no_valid"):
        assert out.item() == 0


@pytest.mark.parametrize("case,pml_kw,kw,emb,labels", SNR, ids=[c[0] for c in SNR])
def test_snr_contrastive_loss_cases(case, pml_kw, kw, emb, labels):
    out = check(
        "contrastive_pair",
        lambda: losses.SignalToNoiseRatioContrastiveLoss(**pml_kw),
        {**kw, "distance": "snr"},
        _emb(emb),
        labels,
    )
    if case.startswith("no_valid"):
        assert out.item() == 0


# ---- tests/losses/test_{multi_similarity,lifted_structure,npairs,tuplet_margin,
#      intra_pair_variance,angular,margin,triplet_margin}_loss.py -------------------------------
L7 = torch.tensor([0, 0, 1, 1, 1, 2, 3])
LOSS_CASES = [
    # (spec, case, PML class, PML kwargs, spec kwargs, embeddings, labels)
    # test_multi_similarity_loss.py (alpha, beta, base; float16's beta = 10 as a setting)
    ("multi_similarity", "ms", losses.MultiSimilarityLoss, dict(alpha=0.1, beta=40, base=0.5),
     dict(alpha=0.1, beta=40.0, base=0.5), "ang5", L5),
    ("multi_similarity", "ms_beta10", losses.MultiSimilarityLoss,
     dict(alpha=0.1, beta=10, base=0.5), dict(alpha=0.1, beta=10.0, base=0.5), "ang5", L5),
    ("multi_similarity", "no_valid_pairs", losses.MultiSimilarityLoss,
     dict(alpha=0.1, beta=40, base=0.5), dict(alpha=0.1, beta=40.0, base=0.5), "ang1", L5[:1]),
    # test_lifted_structure_loss.py
    ("lifted_structure", "lifted", losses.LiftedStructureLoss, dict(neg_margin=0.5),
     dict(neg_margin=0.5), "ang5", L5),
    ("lifted_structure", "no_valid_pairs", losses.LiftedStructureLoss, dict(neg_margin=0.5),
     dict(neg_margin=0.5), "ang1", L5[:1]),
    ("generalized_lifted_structure", "generalized", losses.GeneralizedLiftedStructureLoss,
     dict(neg_margin=0.5), dict(neg_margin=0.5), "ang5", L5),
    ("generalized_lifted_structure", "no_valid_pairs", losses.GeneralizedLiftedStructureLoss,
     dict(neg_margin=0.5), dict(neg_margin=0.5), "ang1", L5[:1]),
    # test_npairs_loss.py (lossA; test_backward: the same angles unscaled)
    ("n_pairs", "npairs", losses.NPairsLoss, {}, {}, "ang7x2.3", L7),
    ("n_pairs", "backward", losses.NPairsLoss, {}, {}, "ang7", L7),
    ("n_pairs", "no_valid_pairs", losses.NPairsLoss, {}, {}, "ang1", L5[:1]),
    # test_tuplet_margin_loss.py
    ("tuplet_margin", "tuplet", losses.TupletMarginLoss, dict(margin=5, scale=64),
     dict(margin=5.0, scale=64.0), "ang5", L5),
    ("tuplet_margin", "no_valid_pairs", losses.TupletMarginLoss, dict(margin=0.1, scale=64),
     dict(margin=0.1, scale=64.0), "ang1", L5[:1]),
    # test_intra_pair_variance_loss.py
    ("intra_pair_variance", "ipv", losses.IntraPairVarianceLoss,
     dict(pos_eps=0.01, neg_eps=0.02), dict(pos_eps=0.01, neg_eps=0.02), "ang5", L5),
    ("intra_pair_variance", "no_valid_pairs", losses.IntraPairVarianceLoss,
     dict(pos_eps=0.01, neg_eps=0.01), dict(pos_eps=0.01, neg_eps=0.01), "ang1", L5[:1]),
    # test_angular_loss.py
    ("angular", "without_ref", losses.AngularLoss, dict(alpha=40), dict(alpha=40.0),
     "rand5x32", L5),
    ("angular", "no_valid_triplets", losses.AngularLoss, dict(alpha=40), dict(alpha=40.0),
     "ang5", torch.arange(5)),
    # test_margin_loss.py: (learn_beta, num_classes) in (F, None), (T, None), (F, 3)
    ("pml_margin", "margin_F_None", losses.MarginLoss, dict(margin=0.1, nu=0.1, beta=1),
     dict(margin=0.1, nu=0.1, beta=1.0), "rand5x32", L5),
    ("pml_margin", "margin_T_None", losses.MarginLoss,
     dict(margin=0.1, nu=0.1, beta=1, learn_beta=True),
     dict(margin=0.1, nu=0.1, beta=1.0, learn_beta=True), "rand5x32", L5),
    ("pml_margin", "margin_F_3", losses.MarginLoss,
     dict(margin=0.1, nu=0.1, beta=1, num_classes=3),
     dict(margin=0.1, nu=0.1, beta=1.0), "rand5x32", L5),
    ("pml_margin", "no_valid_triplets", losses.MarginLoss, dict(margin=0.1, nu=0, beta=1),
     dict(margin=0.1, nu=0.0, beta=1.0), "ang5", torch.arange(5)),
    # test_triplet_margin_loss.py: loss_funcA..E; no_valid: A, B; test_backward: A, B, C
    ("pml_triplet_margin", "A", losses.TripletMarginLoss, dict(margin=0.2), dict(margin=0.2),
     "rand5x32", L5),
    ("pml_triplet_margin", "B_mean", losses.TripletMarginLoss,
     dict(margin=0.2, reducer=reducers.MeanReducer()), dict(margin=0.2, reducer="mean"),
     "rand5x32", L5),
    ("pml_triplet_margin", "C_cosine", losses.TripletMarginLoss,
     dict(margin=0.2, distance=distances.CosineSimilarity()),
     dict(margin=0.2, distance="cosine"), "rand5x32", L5),
    ("pml_triplet_margin", "D_cosine_mean", losses.TripletMarginLoss,
     dict(margin=0.2, reducer=reducers.MeanReducer(), distance=distances.CosineSimilarity()),
     dict(margin=0.2, reducer="mean", distance="cosine"), "rand5x32", L5),
    ("pml_triplet_margin", "E_smooth", losses.TripletMarginLoss,
     dict(margin=0.2, smooth_loss=True), dict(margin=0.2, smooth_loss=True), "rand5x32", L5),
    ("pml_triplet_margin", "no_valid_A", losses.TripletMarginLoss, dict(margin=0.2),
     dict(margin=0.2), "ang5", torch.arange(5)),
    ("pml_triplet_margin", "no_valid_B_mean", losses.TripletMarginLoss,
     dict(margin=0.2, reducer=reducers.MeanReducer()), dict(margin=0.2, reducer="mean"),
     "ang5", torch.arange(5)),
    ("pml_triplet_margin", "backward_A", losses.TripletMarginLoss, dict(margin=0.2),
     dict(margin=0.2), "ang5", L5),
    ("pml_triplet_margin", "backward_B_mean", losses.TripletMarginLoss,
     dict(margin=0.2, reducer=reducers.MeanReducer()), dict(margin=0.2, reducer="mean"),
     "ang5", L5),
    ("pml_triplet_margin", "backward_C_smooth", losses.TripletMarginLoss,
     dict(smooth_loss=True), dict(smooth_loss=True), "ang5", L5),
]  # fmt: skip


@pytest.mark.parametrize(
    "name,case,cls,pml_kw,kw,emb,labels", LOSS_CASES, ids=[f"{c[0]}-{c[1]}" for c in LOSS_CASES]
)
def test_pml_loss_cases(name, case, cls, pml_kw, kw, emb, labels):
    out = check(name, lambda: cls(**pml_kw), kw, _emb(emb), labels)
    if case.startswith("no_valid"):
        assert out.item() == 0


# ---- tests/losses/test_pnp_loss.py ----------------------------------------------------------


@pytest.mark.parametrize("variant", ["Ds", "Dq", "Iu", "Ib", "O"])
def test_pnp_loss_cases(variant):
    """PML's test: bs 180, 30 classes of 6, embeddings randn(180, 32), b 2, alpha 4, anneal
    0.01 (PML against the official code). Here the first 60 rows (10 classes of 6, the same
    pattern): the [B, B', B''] ranks of 180 cost 8 s a variant on the suite's shared core."""
    emb = torch.randn(60, 32, generator=gen(30293), dtype=torch.float64)
    labels = torch.arange(10).repeat_interleave(6)
    check(
        "pnp",
        lambda: losses.PNPLoss(2, 4, 0.01, variant),
        dict(b=2.0, alpha=4.0, anneal=0.01, variant=variant),
        emb,
        labels,
    )


def test_pnp_negatives_that_have_no_positives():
    """labels [1, 1, 2]: the sample of class 2 has no positive (PML: not NaN)."""
    emb = torch.randn(3, 32, generator=gen(3), dtype=torch.float64)
    out = check("pnp", losses.PNPLoss, {}, emb, torch.tensor([1, 1, 2]))
    assert torch.isfinite(out)


def test_pnp_unknown_variant_is_refused():
    """PML raises ValueError for variant 'PNP'; the spec's choice param refuses it."""
    with pytest.raises(ValueError):
        losses.PNPLoss(2, 4, 0.01, "PNP")
    with pytest.raises(lossdsl.errors.ParamError):
        lossdsl.load("pnp").compile("torch", variant="PNP")


# ---- tests/losses/test_smooth_ap_loss.py (commit 23b4cf1, 2.9.0) -------------------------------


@pytest.mark.parametrize("seed", [42, 1234, 5642, 9999, 3459])
def test_smooth_ap_loss_cases(seed):
    """temp 0.01, batch 60, feat 256, PML's labels: 10 classes of 6 consecutive rows. PML (and
    the official code the test compares it with) take 6 blocks of 10 rows as the positive sets
    (EXCLUDED, 'labels'): the spec gets those blocks as its labels."""
    emb = torch.randn(60, 256, generator=gen(seed), dtype=torch.float64)
    check(
        "smooth_ap",
        lambda: losses.SmoothAPLoss(temperature=0.01),
        dict(temperature=0.01),
        emb,
        torch.arange(6).repeat_interleave(10),
        pml_labels=torch.arange(10).repeat_interleave(6),
    )


@pytest.mark.parametrize("k", [2, 3, 4])
def test_smooth_ap_square_batches_use_the_labels(k):
    """k classes of k samples: PML's blocks are the classes, labels passed unchanged."""
    emb = torch.randn(k * k, 8, generator=gen(k), dtype=torch.float64)
    check("smooth_ap", losses.SmoothAPLoss, {}, emb, torch.arange(k).repeat_interleave(k))


# ---- tests/losses/test_fastap_loss.py, test_histogram_loss.py -----------------------------------


def test_fast_ap_loss_case():
    """num_bins 5, the 180 embeddings angle_to_coord(0 .. 179), labels randint(0, 10, 180)
    (PML's test compares FastAPLoss with the official code on these)."""
    emb = angle_to_coord(list(range(180)))
    labels = torch.randint(0, 10, (180,), generator=gen(180))
    check("fast_ap", lambda: losses.FastAPLoss(5), dict(num_bins=5), emb, labels)


@pytest.mark.parametrize("rep", [0, 1])
def test_histogram_loss_case(rep):
    """batch 32, embedding 64, labels randint(0, 5), n_bins = num_steps - 1 = 20, two draws
    (PML's test compares HistogramLoss with the official code on these)."""
    emb = torch.randn(32, 64, generator=gen(32 + rep), dtype=torch.float64)
    labels = torch.randint(0, 5, (32,), generator=gen(64 + rep))
    check("histogram", lambda: losses.HistogramLoss(n_bins=20), dict(n_bins=20), emb, labels)


def test_histogram_no_valid_triplets():
    emb = torch.randn(5, 32, generator=gen(5), dtype=torch.float64)
    out = check(
        "histogram", lambda: losses.HistogramLoss(n_bins=4), dict(n_bins=4), emb, torch.arange(5)
    )
    assert out.item() == 0


# ---- tests/reducers/*.py: their settings on real pair / triplet losses ------------------------
R_EMB = torch.randn(100, 64, generator=gen(99114), dtype=torch.float64)
R_LABELS = torch.randint(0, 10, (100,), generator=gen(99115))
CLASS_WEIGHTS = torch.tensor([1, 0.9, 1, 0.1, 0, 0, 0, 0, 0, 0], dtype=torch.float64)
INF = float("inf")

REDUCER_CASES = [
    # (case, PML reducer, spec kwargs)   test_avg_non_zero_reducer.py
    ("avg_non_zero", reducers.AvgNonZeroReducer, dict(reducer="avg_nonzero")),
    # test_mean_reducer.py
    ("mean", reducers.MeanReducer, dict(reducer="mean")),
    # test_threshold_reducer.py: (low, high) in (0.1, None), (None, 0.2), (0.1, 0.2)
    ("threshold_0.1_None", lambda: reducers.ThresholdReducer(0.1, None),
     dict(reducer="threshold", low=0.1, high=INF)),
    ("threshold_None_0.2", lambda: reducers.ThresholdReducer(None, 0.2),
     dict(reducer="threshold", low=-INF, high=0.2)),
    ("threshold_0.1_0.2", lambda: reducers.ThresholdReducer(0.1, 0.2),
     dict(reducer="threshold", low=0.1, high=0.2)),
    # test_class_weighted_reducer.py: class_weights [1, 0.9, 1, 0.1, 0 x 6]
    ("class_weighted", lambda: reducers.ClassWeightedReducer(CLASS_WEIGHTS),
     dict(reducer="class_weighted")),
]  # fmt: skip
PER_ANCHOR = [  # test_per_anchor_reducer.py: inner MeanReducer, AvgNonZeroReducer
    ("per_anchor_mean", reducers.MeanReducer, dict(reducer="per_anchor_mean")),
    ("per_anchor_avg_non_zero", reducers.AvgNonZeroReducer, dict(reducer="per_anchor_avg_nonzero")),
]


@pytest.mark.parametrize("case,make,kw", REDUCER_CASES, ids=[c[0] for c in REDUCER_CASES])
@pytest.mark.parametrize("loss", ["contrastive_pair", "pml_triplet_margin"])
def test_reducer_settings(loss, case, make, kw):
    weights = CLASS_WEIGHTS[R_LABELS] if case == "class_weighted" else None
    cls = losses.ContrastiveLoss if loss == "contrastive_pair" else losses.TripletMarginLoss
    # neg_margin 1.2 / margin 0.3 put the losses on both sides of the thresholds
    margin = dict(neg_margin=1.2) if loss == "contrastive_pair" else dict(margin=0.3)
    # the triplet loss on the first 40 rows: its [B, B', B''] at 100 is the suite's slowest case
    n = 100 if loss == "contrastive_pair" else 40
    w = None if weights is None else weights[:n]
    check(loss, lambda: cls(reducer=make(), **margin), {**kw, **margin}, R_EMB[:n], R_LABELS[:n], w)


@pytest.mark.parametrize("case,inner,kw", PER_ANCHOR, ids=[c[0] for c in PER_ANCHOR])
@pytest.mark.parametrize("pos_margin", [0.0, 1.0])
def test_per_anchor_reducer_settings(case, inner, kw, pos_margin):
    """pos_margin 1: many anchors' positive means are 0 (AvgNonZero inside drops them)."""
    check(
        "contrastive_pair",
        lambda: losses.ContrastiveLoss(
            pos_margin=pos_margin, reducer=reducers.PerAnchorReducer(inner())
        ),
        {**kw, "pos_margin": pos_margin},
        R_EMB[:40],
        R_LABELS[:40],
    )


def test_per_anchor_reducer_refuses_triplets():
    with pytest.raises(NotImplementedError):
        losses.TripletMarginLoss(reducer=reducers.PerAnchorReducer())(R_EMB[:8], R_LABELS[:8])
    with pytest.raises(lossdsl.errors.ParamError):
        lossdsl.load("pml_triplet_margin").compile("torch", reducer="per_anchor_mean")


# ---- ours: several seeds, every distance, the boundaries ---------------------------------------
SPECS = [
    # (spec, PML factory, spec kwargs)
    ("contrastive_pair", losses.ContrastiveLoss, {}),
    ("contrastive_pair", lambda: losses.ContrastiveLoss(distance=distances.CosineSimilarity(),
                                                        pos_margin=0.8, neg_margin=0.2),
     dict(distance="cosine", pos_margin=0.8, neg_margin=0.2)),
    ("contrastive_pair", lambda: losses.ContrastiveLoss(
        distance=distances.LpDistance(normalize_embeddings=False), neg_margin=2.0),
     dict(normalize_embeddings=False, neg_margin=2.0)),
    ("contrastive_pair", losses.SignalToNoiseRatioContrastiveLoss, dict(distance="snr")),
    ("multi_similarity", losses.MultiSimilarityLoss, {}),
    ("multi_similarity", lambda: losses.MultiSimilarityLoss(distance=distances.LpDistance()),
     dict(distance="lp")),
    ("lifted_structure", losses.LiftedStructureLoss, {}),
    ("lifted_structure", lambda: losses.LiftedStructureLoss(
        neg_margin=0.3, pos_margin=0.9, distance=distances.CosineSimilarity()),
     dict(neg_margin=0.3, pos_margin=0.9, distance="cosine")),
    ("generalized_lifted_structure", losses.GeneralizedLiftedStructureLoss, {}),
    ("generalized_lifted_structure", lambda: losses.GeneralizedLiftedStructureLoss(
        distance=distances.CosineSimilarity()), dict(distance="cosine")),
    ("n_pairs", losses.NPairsLoss, {}),
    ("n_pairs", lambda: losses.NPairsLoss(
        distance=distances.DotProductSimilarity(normalize_embeddings=False)),
     dict(normalize_embeddings=False)),
    ("pml_margin", losses.MarginLoss, {}),
    ("pml_margin", lambda: losses.MarginLoss(beta=0.4, distance=distances.CosineSimilarity()),
     dict(beta=0.4, distance="cosine")),
    ("pml_triplet_margin", losses.TripletMarginLoss, {}),
    ("pml_triplet_margin", lambda: losses.TripletMarginLoss(margin=0.3, swap=True),
     dict(margin=0.3, swap=True)),
    ("pml_triplet_margin", lambda: losses.TripletMarginLoss(
        margin=0.3, swap=True, distance=distances.CosineSimilarity()),
     dict(margin=0.3, swap=True, distance="cosine")),
    ("tuplet_margin", losses.TupletMarginLoss, {}),
    ("intra_pair_variance", losses.IntraPairVarianceLoss, {}),
    ("intra_pair_variance", lambda: losses.IntraPairVarianceLoss(
        pos_eps=0.1, neg_eps=0.2, distance=distances.LpDistance()),
     dict(pos_eps=0.1, neg_eps=0.2, distance="lp")),
    ("angular", losses.AngularLoss, {}),
    ("fast_ap", losses.FastAPLoss, {}),
    ("fast_ap", lambda: losses.FastAPLoss(num_bins=3), dict(num_bins=3)),
    ("histogram", losses.HistogramLoss, {}),
    ("histogram", lambda: losses.HistogramLoss(n_bins=7), dict(n_bins=7)),
    ("pnp", losses.PNPLoss, {}),
    ("pnp", lambda: losses.PNPLoss(variant="Dq", anneal=0.3), dict(variant="Dq", anneal=0.3)),
]  # fmt: skip
SPEC_IDS = [f"{s[0]}-{i}" for i, s in enumerate(SPECS)]


@pytest.mark.parametrize("name,make,kw", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches(name, make, kw, seed):
    emb = torch.randn(12, 5, generator=gen(seed), dtype=torch.float64)
    labels = torch.randint(0, 4, (12,), generator=gen(seed + 100))
    check(name, make, kw, emb, labels)


BOUNDARIES = {
    "B1": torch.tensor([3]),
    "all_same": torch.zeros(5, dtype=torch.long),
    "all_distinct": torch.arange(5),
}


@pytest.mark.parametrize("name,make,kw", SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("case", list(BOUNDARIES))
def test_boundaries(name, make, kw, case):
    """B = 1, no negative pair, no positive pair: PML's value (mostly 0) and gradient."""
    labels = BOUNDARIES[case]
    emb = torch.randn(len(labels), 5, generator=gen(9), dtype=torch.float64)
    out = check(name, make, kw, emb, labels)
    assert torch.isfinite(out)


def test_duplicate_embeddings_have_zero_distance():
    """Two identical embeddings of one class: distance exactly 0 (AvgNonZero drops the pair;
    torch.cdist's direct path at B <= 25 gives 0 too) and a finite gradient."""
    emb = torch.randn(6, 4, generator=gen(5), dtype=torch.float64)
    emb[1] = emb[0]
    check("contrastive_pair", losses.ContrastiveLoss, {}, emb, torch.tensor([0, 0, 1, 1, 2, 2]))


# LpDistance(p=...): PML normalizes the embeddings in the p-norm (BaseDistance.normalize) and
# takes torch.cdist(..., p=p); the specs' p. Every PML loss here that accepts an LpDistance.
LP_LOSSES = [
    ("contrastive_pair", losses.ContrastiveLoss),
    ("generalized_lifted_structure", losses.GeneralizedLiftedStructureLoss),
    ("intra_pair_variance", losses.IntraPairVarianceLoss),
    ("lifted_structure", losses.LiftedStructureLoss),
    ("multi_similarity", losses.MultiSimilarityLoss),
    ("pml_margin", losses.MarginLoss),
    ("pml_triplet_margin", losses.TripletMarginLoss),
    ("ranked_list", functools.partial(losses.RankedListLoss, margin=0.4, Tn=0.5)),
]


@pytest.mark.parametrize("name,cls", LP_LOSSES, ids=[n for n, _ in LP_LOSSES])
@pytest.mark.parametrize("p", [1.0, 1.5, 3.0, math.inf])
def test_lp_distance_p(name, cls, p):
    """LpDistance(p) against the installed PML, values and gradients, on a batch with a
    duplicated embedding (distance 0: the p-norm's guarded zero) and one with a repeated
    coordinate (a zero difference inside a nonzero one: |x|^p's slope at 0)."""
    kw = {} if name == "ranked_list" else {"distance": "lp"}
    emb = torch.randn(10, 5, generator=gen(31), dtype=torch.float64)
    emb[3] = emb[1]
    emb[6, :2] = emb[2, :2]
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 1, 0, 3, 3])
    check(name, lambda: cls(distance=distances.LpDistance(p=p)), {**kw, "p": p}, emb, labels)


@pytest.mark.parametrize("name", [n for n, _ in LP_LOSSES])
def test_lp_distance_p_below_1_is_a_param_error(name):
    """p < 1 is not a norm (the triangle inequality fails, and |x|^p's slope at 0 is infinite)."""
    fn = _spec(name)
    emb, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    with pytest.raises(lossdsl.errors.ParamError, match="p"):
        fn(emb, y, p=0.5)


def test_smooth_ap_single_class_and_pairs():
    emb = torch.randn(4, 5, generator=gen(4), dtype=torch.float64)
    check("smooth_ap", losses.SmoothAPLoss, {}, emb[:1], torch.tensor([0]))
    check("smooth_ap", losses.SmoothAPLoss, {}, emb, torch.tensor([0, 0, 1, 1]))


def test_per_element_shares_sum_to_the_pml_value():
    """reduce sum specs: the [B] shares sum to PML's value; reduce mean specs: their mean."""
    emb = torch.randn(10, 6, generator=gen(11), dtype=torch.float64)
    y = torch.randint(0, 3, (10,), generator=gen(12))
    for name, cls in [
        ("contrastive_pair", losses.ContrastiveLoss),
        ("pml_margin", losses.MarginLoss),
        ("intra_pair_variance", losses.IntraPairVarianceLoss),
    ]:
        per = _spec(name)(emb, y, reduction="none")
        assert per.shape == (10,)
        torch.testing.assert_close(per.sum(), cls()(emb, y), rtol=1e-12, atol=1e-14)


# ---- jax: one case per spec against the torch module -------------------------------------------
JAX_CASES = [
    ("contrastive_pair", dict(distance="cosine", pos_margin=0.8, neg_margin=0.2)),
    ("contrastive_pair", dict(reducer="per_anchor_avg_nonzero")),
    ("contrastive_pair", dict(p=1.0)),
    ("pml_triplet_margin", dict(p=math.inf)),
    ("multi_similarity", {}),
    ("lifted_structure", {}),
    ("generalized_lifted_structure", {}),
    ("n_pairs", {}),
    ("pml_margin", dict(learn_beta=True, nu=0.1)),
    ("pml_triplet_margin", dict(swap=True, margin=0.3)),
    ("tuplet_margin", {}),
    ("intra_pair_variance", {}),
    ("angular", {}),
    ("pnp", dict(variant="Ib")),
    ("smooth_ap", {}),
    ("fast_ap", {}),
    ("histogram", dict(n_bins=10)),
]


@pytest.mark.parametrize("name,kw", JAX_CASES, ids=[c[0] for c in JAX_CASES])
def test_jax_matches_torch(name, kw, _x64):
    import jax
    import jax.numpy as jnp

    emb = torch.randn(9, 4, generator=gen(21), dtype=torch.float64)
    y = (
        torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3])
        if name != "smooth_ap"
        else torch.arange(3).repeat_interleave(3)
    )
    choices, params = _split(kw)
    t_fn, j_fn = _spec(name, "torch", choices), _spec(name, "jax", choices)
    e = emb.clone().requires_grad_(True)
    out = t_fn(e, y, **params)
    (g,) = torch.autograd.grad(out, e)
    ej, yj = jnp.asarray(emb.numpy()), jnp.asarray(y.numpy())
    np.testing.assert_allclose(np.asarray(j_fn(ej, yj, **params)), out.item(), rtol=1e-10)
    gj = jax.grad(lambda v: j_fn(v, yj, **params))(ej)
    np.testing.assert_allclose(np.asarray(gj), g.numpy(), rtol=1e-9, atol=1e-12)


# ---- MarginLoss(num_classes=K, learn_beta=True): the per-class beta -----------------------------
# test_margin_loss.py's fourth setting (learn_beta=True, num_classes=3; margin 0.1, nu 0.1, beta
# 1, its 5 x 32 normalized embeddings and labels [0, 0, 1, 1, 2]) on pml_margin with beta = 1,
# anchor_beta = PML's loss.beta[labels], per_class_beta = true; PML's betas are also set apart
# (0.9, 1.1, 1.3) so that the class indexing shows, and random batches with the cosine distance
# run too. Values, the embeddings' gradients and PML's beta.grad (through the indexing).
def _per_class_case(emb, labels, betas, distance="lp", learn_beta=True, per_class=True):
    kw = dict(margin=0.1, nu=0.1, beta=1, learn_beta=learn_beta, num_classes=3)
    if distance == "cosine":
        kw["distance"] = distances.CosineSimilarity()
    pml = losses.MarginLoss(**kw)
    if betas is not None:
        with torch.no_grad():
            pml.beta.copy_(torch.as_tensor(betas, dtype=pml.beta.dtype))
    e = emb.clone().requires_grad_(True)
    want = pml(e, labels)
    wrt = [e, pml.beta] if learn_beta else [e]
    gwant = torch.autograd.grad(want, wrt)
    fn = _spec("pml_margin", "torch", (("distance", distance),))
    e2 = emb.clone().requires_grad_(True)
    bt = pml.beta.detach().clone().to(emb.dtype).requires_grad_(True)
    got = fn(e2, labels, bt[labels], margin=0.1, nu=0.1, beta=1.0, learn_beta=learn_beta,
             per_class_beta=per_class)  # fmt: skip
    ggot = torch.autograd.grad(got, [e2, bt] if learn_beta else [e2])
    torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ggot, gwant, strict=True):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-10, atol=1e-12)
    return got


@pytest.mark.parametrize("betas", [None, [0.9, 1.1, 1.3]], ids=["pml_init", "set_apart"])
def test_margin_loss_per_class_beta_pml_case(betas):
    _per_class_case(_emb("rand5x32"), L5, betas)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("distance,betas", [("lp", [0.9, 1.1, 1.3]), ("cosine", [0.3, 0.4, 0.5])])
def test_margin_loss_per_class_beta_random(seed, distance, betas):
    emb = torch.randn(12, 5, generator=gen(seed), dtype=torch.float64)
    labels = torch.randint(0, 3, (12,), generator=gen(seed + 40))
    _per_class_case(emb, labels, betas, distance)


def test_margin_loss_per_class_beta_boundaries():
    """No valid triplet (all labels distinct; one class): 0, as PML (PML's zero_losses)."""
    emb = _emb("ang5")
    for labels in (torch.arange(3), torch.zeros(3, dtype=torch.long)):
        # learn_beta=False: PML returns zero_losses, its beta is not in the graph
        assert _per_class_case(emb[:3], labels, None, learn_beta=False).item() == 0


def test_margin_loss_learnable_scalar_beta_gradient():
    """MarginLoss(learn_beta=True) without num_classes: anchor_beta = beta.expand(B) gives PML's
    beta.grad (the regularizer nu * beta included)."""
    emb = torch.randn(10, 4, generator=gen(8), dtype=torch.float64)
    labels = torch.randint(0, 3, (10,), generator=gen(9))
    pml = losses.MarginLoss(margin=0.2, nu=0.3, beta=1.1, learn_beta=True)
    e = emb.clone().requires_grad_(True)
    want = pml(e, labels)
    ge, gb = torch.autograd.grad(want, [e, pml.beta])
    bt = torch.tensor([1.1], dtype=torch.float64, requires_grad=True)
    e2 = emb.clone().requires_grad_(True)
    fn = _spec("pml_margin")
    got = fn(e2, labels, bt.expand(10), margin=0.2, nu=0.3, beta=1.0, learn_beta=True)
    ge2, gb2 = torch.autograd.grad(got, [e2, bt])
    torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ge2, ge, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gb2, gb.to(torch.float64), rtol=1e-10, atol=1e-12)
