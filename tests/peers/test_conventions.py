"""Peer conventions exposed on existing specs (issue 15): one table per convention, each case
computed by the peer library itself (torch.nn.functional of torch 2.13, kornia 0.9.0, monai 1.6.1,
optax 0.2.8, pytorch-metric-learning 2.9.0) or, for the peers that are not installed (timm,
segmentation_models_pytorch), by a transcription in tests/reference/ that names repository, file
and commit. Peer golden values (their own test files) carry the file and the version they come
from. The docs page is docs/peers/conventions.md.

float64 throughout (tests/peers/conftest.py); monai computes in float32 whatever its input
(FocalLoss casts `input.float()`), so its cases compare at float32 tolerances."""

from __future__ import annotations

import jax.numpy as jnp
import kornia
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from monai.losses import FocalLoss as MonaiFocalLoss
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import NTXentLoss, SupConLoss, TripletMarginLoss
from reference.bce_timm import timm_binary_cross_entropy
from reference.poly1_paper import poly1_cross_entropy
from reference.sigmoid_focal_torchvision import sigmoid_focal_loss as tv_sigmoid_focal
from reference.soft_bce_smp import smp_soft_bce_with_logits
from torch_helpers import assert_same, compiled, gen, randn

import lossdsl

# Peer test cases left out, with the reason (also in docs/peers/conventions.md).
EXCLUDED = {
    "kornia tests/losses/test_total_variation.py::test_tv_on_invalid_types": (
        "argument-type errors of kornia's Python API (lists, ints), not loss math"
    ),
    "all-ignored batch of F.cross_entropy (NaN)": (
        "documented difference: the spec gives 0 with zero gradient (specs/cross_entropy.loss)"
    ),
}


def _flat(x, t):
    """torch's [N, C, d1, ...] layout as the spec's [B, C] (C last), and its [N, d1, ...] target."""
    c = x.shape[1]
    return x.movedim(1, -1).reshape(-1, c), t.reshape(-1)


# ---- 1. cross_entropy: torch's [N, C, d1, ...] layout, options as F.cross_entropy ------------

CE_ND = [  # (shape [N, C, d...], ignore some, weight, label_smoothing); F.cross_entropy 2.13
    ((3, 4, 5), False, False, 0.0),
    ((2, 5, 3, 4), True, False, 0.0),
    ((2, 5, 3, 4), True, True, 0.0),
    ((2, 5, 3, 4), True, True, 0.2),
    ((1, 3, 2, 2, 2), True, True, 1.0),
    ((1, 4), False, True, 0.3),  # B = 1, no trailing dims
]


@pytest.mark.parametrize("shape,ignore,weighted,ls", CE_ND)
def test_cross_entropy_nd_layout_matches_torch(shape, ignore, weighted, ls):
    g = gen(1)
    x = torch.randn(*shape, generator=g) * 2
    t = torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=g)
    if ignore:
        t[torch.rand(t.shape, generator=g) < 0.3] = -100
        t.view(-1)[0] = 1  # at least one kept
    w = torch.rand(shape[1], generator=g) + 0.1 if weighted else None
    fn = compiled("cross_entropy")

    def ours(x, t):
        xf, tf = _flat(x, t)
        kw = {"weight": w} if weighted else {}
        return fn(xf, tf, label_smoothing=ls, **kw)

    def peer(x, t):
        return F.cross_entropy(x, t, weight=w, label_smoothing=ls)

    assert_same(ours, peer, {"x": x, "t": t}, ["x"])


# ---- 1b. probability targets: soft_cross_entropy as F.cross_entropy(x, q) -------------------

SOFT_ND = [  # (shape, weight, label_smoothing); F.cross_entropy with probability targets
    ((4, 3), False, 0.0),
    ((2, 4, 3, 2), True, 0.0),
    ((2, 4, 3, 2), True, 0.25),
    ((1, 5, 2), False, 1.0),
]


@pytest.mark.parametrize("shape,weighted,ls", SOFT_ND)
def test_soft_cross_entropy_nd_matches_torch_probability_targets(shape, weighted, ls):
    g = gen(2)
    x = torch.randn(*shape, generator=g)
    q = torch.softmax(torch.randn(*shape, generator=g) * 2, dim=1)
    w = torch.rand(shape[1], generator=g) + 0.1 if weighted else None
    fn = compiled("soft_cross_entropy")
    kw = {"weight": w} if weighted else {}
    assert_same(
        lambda x, q: fn(x, q, label_smoothing=ls, **kw),
        lambda x, q: F.cross_entropy(x, q, weight=w, label_smoothing=ls),
        {"x": x, "q": q},
        ["x", "q"],
    )
    # the weighted mean of probability targets divides by N * d, not by the weights (torch)
    per = fn(x, q, label_smoothing=ls, reduction="none", **kw)
    torch.testing.assert_close(
        per, F.cross_entropy(x, q, weight=w, label_smoothing=ls, reduction="none")
    )


# ---- 2. where / mask: optax's `where=` ------------------------------------------------------

MASKS = [
    [True, False, True, True, False],
    [True] * 5,
    [False] * 5,
    [False, True, False, False, False],
]


@pytest.mark.parametrize("keep", MASKS)
def test_cross_entropy_mask_matches_optax_where(keep):
    """optax 0.2.8 softmax_cross_entropy_with_integer_labels(where=[batch]): 0 at a masked row;
    the spec's mean leaves masked rows out of numerator and denominator (F.cross_entropy with
    those targets set to ignore_index)."""
    x, y = randn(5, 4, seed=3, scale=2), torch.randint(0, 4, (5,), generator=gen(3))
    m = torch.tensor(keep)
    ours = compiled("cross_entropy", "jax")(x.numpy(), y.numpy(), keep=m.numpy(), reduction="none")
    ref = optax.softmax_cross_entropy_with_integer_labels(x.numpy(), y.numpy(), where=m.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12, atol=0)
    fn = compiled("cross_entropy")
    w = torch.rand(4, generator=gen(4)) + 0.1
    if any(keep):
        assert_same(
            lambda x: fn(x, y, weight=w, keep=m),
            lambda x: F.cross_entropy(x, torch.where(m, y, -100), weight=w),
            {"x": x},
            ["x"],
        )
    else:
        assert fn(x, y, keep=m).item() == 0.0


def test_cross_entropy_class_mask_is_optax_logits_shaped_where():
    """optax's `where` of the logits' shape masks classes out of the softmax: the spec's -inf
    logits (its masked-logit policy) give the same per-sample loss."""
    x, y = randn(6, 5, seed=5), torch.tensor([0, 1, 2, 3, 4, 0])
    m = torch.rand(6, 5, generator=gen(6)) > 0.4
    m[torch.arange(6), y] = True
    ours = compiled("cross_entropy", "jax")(
        np.where(m.numpy(), x.numpy(), -np.inf), y.numpy(), reduction="none"
    )
    ref = optax.softmax_cross_entropy_with_integer_labels(x.numpy(), y.numpy(), where=m.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12)


@pytest.mark.parametrize("keep", MASKS[:3])
def test_soft_cross_entropy_mask_matches_optax_where(keep):
    x = randn(5, 4, seed=7)
    q = torch.softmax(randn(5, 4, seed=8) * 2, dim=1)
    m = torch.tensor(keep)
    ours = compiled("soft_cross_entropy", "jax")(
        x.numpy(), q.numpy(), keep=m.numpy(), reduction="none"
    )
    ref = optax.softmax_cross_entropy(x.numpy(), q.numpy(), where=m.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12, atol=0)
    mean = compiled("soft_cross_entropy")(x, q, keep=m)
    expect = np.asarray(ref).sum() / max(sum(keep), 1)  # masked rows leave the denominator
    np.testing.assert_allclose(mean.item(), expect, rtol=1e-12)


@pytest.mark.parametrize("p_keep", [1.0, 0.6, 0.0])
def test_kl_div_mask_matches_optax_where(p_keep):
    """optax 0.2.8 kl_divergence(where=[B, C]): jnp.sum over C of the kept entries."""
    lp = torch.log_softmax(randn(4, 6, seed=9), dim=1)
    q = torch.softmax(randn(4, 6, seed=10) * 2, dim=1)
    q[0, 0] = 0.0  # a zero target probability: 0 log 0 = 0 on both sides
    m = torch.rand(4, 6, generator=gen(11)) < p_keep
    ours = compiled("kl_div", "jax")(lp.numpy(), q.numpy(), keep=m.numpy(), reduction="none")
    ref = optax.kl_divergence(lp.numpy(), q.numpy(), where=m.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12, atol=1e-15)
    fn = compiled("kl_div")
    assert_same(
        lambda lp, q: fn(lp, q, keep=m, reduction="none"),
        lambda lp, q: (F.kl_div(lp, q, reduction="none") * m).sum(1),
        {"lp": lp, "q": q},
        ["lp"],
    )


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_kl_div_reductions_as_torch():
    """torch's reduction='none' is the [B, C] matrix: the spec's "none" is its sum over C;
    'batchmean' is the spec's mean, 'sum' its sum, 'mean' its sum / (B * C)."""
    lp = torch.log_softmax(randn(5, 3, seed=12), dim=1)
    q = torch.softmax(randn(5, 3, seed=13), dim=1)
    fn = compiled("kl_div")
    elementwise = F.kl_div(lp, q, reduction="none")
    assert elementwise.shape == (5, 3)
    torch.testing.assert_close(fn(lp, q, reduction="none"), elementwise.sum(1))
    torch.testing.assert_close(fn(lp, q), F.kl_div(lp, q, reduction="batchmean"))
    torch.testing.assert_close(fn(lp, q, reduction="sum"), F.kl_div(lp, q, reduction="sum"))
    torch.testing.assert_close(fn(lp, q, reduction="sum") / 15, F.kl_div(lp, q, reduction="mean"))


# ---- 3. poly1 on smoothed probability labels (the paper's appendix listing; optax) ---------

POLY = [(1.0, 0.0), (2.0, 0.1), (-1.0, 0.1), (1.0, 1.0)]  # (epsilon, label_smoothing)


@pytest.mark.parametrize("eps,ls", POLY)
def test_poly1_label_smoothing_matches_paper_and_optax(eps, ls):
    x, y = randn(6, 5, seed=14, scale=2), torch.randint(0, 5, (6,), generator=gen(14))
    fn = compiled("poly1")
    assert_same(
        lambda x: fn(x, y, epsilon=eps, label_smoothing=ls, reduction="none"),
        lambda x: poly1_cross_entropy(
            x, F.one_hot(y, 5), epsilon=eps, label_smoothing=ls, reduction="none"
        ),
        {"x": x},
        ["x"],
    )
    q = F.one_hot(y, 5).double() * (1 - ls) + ls / 5
    ours = compiled("poly1", "jax")(
        x.numpy(), y.numpy(), epsilon=eps, label_smoothing=ls, reduction="none"
    )
    ref = optax.losses.poly_loss_cross_entropy(x.numpy(), q.numpy(), epsilon=eps)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-10)


# ---- 4. focal: kornia focal_loss and MONAI FocalLoss conventions ---------------------------

FOCAL_KORNIA = [  # (alpha, ignore, gamma); kornia.losses.focal_loss 0.9.0
    (None, False, 2.0),
    (0.25, False, 2.0),
    (0.8, False, 0.5),
    (0.25, True, 2.0),
    (None, True, 0.0),
    (0.0, False, 1.0),
    (1.0, True, 3.0),
]


@pytest.mark.parametrize("alpha,ignore,gamma", FOCAL_KORNIA)
def test_focal_matches_kornia(alpha, ignore, gamma):
    """kornia's 'none' is [N, C, H, W] (one nonzero class per position): its sum over C is the
    spec's "none"; its 'sum' is the spec's sum. Scalar alpha: 1 - alpha on class 0."""
    g = gen(15)
    x = torch.randn(2, 4, 3, 2, generator=g) * 2
    t = torch.randint(0, 4, (2, 3, 2), generator=g)
    if ignore:
        t[torch.rand(t.shape, generator=g) < 0.3] = -100
    fn = compiled("focal")
    a = -1.0 if alpha is None else alpha

    def ours(x):
        xf, tf = _flat(x, t)
        return fn(xf, tf, gamma=gamma, alpha=a, reduction="none")

    def peer(x):
        # weight=ones takes kornia's dense path: the one-hot form, [N, C, H, W]
        out = kornia.losses.focal_loss(x, t, alpha, gamma, reduction="none", weight=torch.ones(4))
        return out.sum(1).reshape(-1)

    assert_same(ours, peer, {"x": x}, ["x"])
    xf, tf = _flat(x, t)
    torch.testing.assert_close(
        fn(xf, tf, gamma=gamma, alpha=a, reduction="sum"),
        kornia.losses.focal_loss(x, t, alpha, gamma, reduction="sum"),
    )


@pytest.mark.parametrize("alpha,ignore", [(None, False), (0.25, True), (0.7, False)])
def test_focal_class_weight_matches_kornia(alpha, ignore):
    """kornia.losses.focal_loss(weight=w) (0.9.0): each class's loss times w[c]; the spec's
    optional input weight, values and gradients w.r.t. the logits and the weight, and kornia's
    'mean' (over N * C * H * W) is the spec's sum / (N * C * H * W). A zero weight included."""
    g = gen(25)
    x = torch.randn(2, 4, 3, 2, generator=g) * 2
    t = torch.randint(0, 4, (2, 3, 2), generator=g)
    if ignore:
        t[torch.rand(t.shape, generator=g) < 0.3] = -100
    w = torch.tensor([0.5, 2.0, 0.0, 1.25])
    fn = compiled("focal")
    a = -1.0 if alpha is None else alpha

    def ours(x, w):
        xf, tf = _flat(x, t)
        return fn(xf, tf, w, gamma=2.0, alpha=a, reduction="none")

    def peer(x, w):
        out = kornia.losses.focal_loss(x, t, alpha, 2.0, reduction="none", weight=w)
        return out.sum(1).reshape(-1)

    assert_same(ours, peer, {"x": x, "w": w}, ["x", "w"])
    xf, tf = _flat(x, t)
    torch.testing.assert_close(
        fn(xf, tf, w, alpha=a, reduction="sum") / x.numel(),
        kornia.losses.focal_loss(x, t, alpha, 2.0, reduction="mean", weight=w),
    )


def test_focal_class_weight_matches_monai_weight_and_alpha_vector():
    """monai.losses.FocalLoss(use_softmax=True) 1.6.1 with weight=[...] (a class weight) and
    with alpha=[...] (a per-class alpha vector): both multiply class c's loss by their
    entry, which is the spec's weight input (MONAI computes in float32: rtol 2e-6)."""
    g = gen(26)
    x = torch.randn(2, 4, 3, 3, generator=g)
    t = torch.randint(0, 4, (2, 3, 3), generator=g)
    w = [0.5, 2.0, 0.1, 1.25]
    xf, tf = _flat(x, t)
    ours = compiled("focal")(xf, tf, torch.tensor(w), gamma=1.5, reduction="none")
    for kw in ({"weight": w}, {"alpha": w}):
        peer = MonaiFocalLoss(to_onehot_y=True, use_softmax=True, gamma=1.5, reduction="none", **kw)
        none = peer(x, t[:, None]).sum(1).reshape(-1).double()
        torch.testing.assert_close(ours, none, rtol=2e-6, atol=2e-7, msg=str(kw))


FOCAL_MONAI = [  # (alpha, ignore_index); monai.losses.FocalLoss 1.6.1, use_softmax=True
    (None, None),
    (0.25, None),
    (0.6, None),
    (0.25, -100),
]


@pytest.mark.parametrize("alpha,ignore_index", FOCAL_MONAI)
def test_focal_matches_monai_softmax(alpha, ignore_index):
    g = gen(16)
    x = torch.randn(2, 4, 3, 3, generator=g)
    t = torch.randint(0, 4, (2, 3, 3), generator=g)
    if ignore_index is not None:
        t[torch.rand(t.shape, generator=g) < 0.3] = ignore_index
    peer = MonaiFocalLoss(
        to_onehot_y=True,
        use_softmax=True,
        gamma=1.5,
        alpha=alpha,
        reduction="none",
        ignore_index=ignore_index,
    )
    xf, tf = _flat(x, t)
    a = -1.0 if alpha is None else alpha
    fn = compiled("focal")
    none = peer(x, t[:, None]).sum(1).reshape(-1).double()  # MONAI computes in float32
    ours = fn(xf, tf, gamma=1.5, alpha=a, reduction="none")
    torch.testing.assert_close(ours, none, rtol=2e-6, atol=2e-7)
    peer.reduction = "mean"
    mean = peer(x, t[:, None]).double()
    if ignore_index is None:  # MONAI divides by N * C * H * W
        torch.testing.assert_close(fn(xf, tf, gamma=1.5, alpha=a) / 4, mean, rtol=2e-6, atol=0)
    else:  # MONAI divides by the kept positions: the spec's mean
        torch.testing.assert_close(fn(xf, tf, gamma=1.5, alpha=a), mean, rtol=2e-6, atol=0)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_monai_sigmoid_focal_is_sigmoid_focal_on_onehot(alpha):
    """MONAI FocalLoss(use_softmax=False) = sigmoid_focal.loss on the one-hot target; scalar
    alpha as torchvision (alpha on positives); alpha=None is the spec's alpha < 0."""
    g = gen(17)
    x = torch.randn(2, 3, 4, generator=g)
    t = torch.randint(0, 3, (2, 4), generator=g)
    y = F.one_hot(t, 3).movedim(-1, 1).double()
    peer = MonaiFocalLoss(to_onehot_y=True, use_softmax=False, gamma=2.0, alpha=alpha)
    ours = compiled("sigmoid_focal")(x, y, alpha=-1.0 if alpha is None else alpha, gamma=2.0)
    torch.testing.assert_close(ours, peer(x, t[:, None]).double(), rtol=2e-6, atol=0)


@pytest.mark.parametrize("alpha", [-1.0, -0.5, 0.25, 0.0, 1.0])
def test_sigmoid_focal_alpha_as_torchvision(alpha):
    """torchvision.ops.sigmoid_focal_loss (tests/reference/sigmoid_focal_torchvision.py):
    `if alpha >= 0` weighs, any alpha < 0 disables."""
    x = randn(4, 3, seed=18, scale=2)
    y = (torch.rand(4, 3, generator=gen(19)) > 0.5).double()
    fn = compiled("sigmoid_focal")
    assert_same(
        lambda x: fn(x, y, alpha=alpha, reduction="none"),
        lambda x: tv_sigmoid_focal(x, y, alpha=alpha, reduction="none"),
        {"x": x},
        ["x"],
    )


def test_focal_jax_backend_matches_torch():
    x, t = randn(6, 4, seed=20), torch.tensor([0, 1, 2, 3, -100, 0])
    kw = dict(gamma=2.0, alpha=0.25, reduction="none")
    a = compiled("focal")(x, t, **kw)
    b = compiled("focal", "jax")(x.numpy(), t.numpy(), **kw)
    np.testing.assert_allclose(np.asarray(b), a.numpy(), rtol=1e-12)
    assert a[4].item() == 0.0


# ---- 5. bce_with_logits: weight, pos_weight, timm's and smp's label smoothing ---------------


@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_weight_matches_torch(with_pos_weight):
    x = randn(5, 3, seed=21, scale=3)
    t = torch.rand(5, 3, generator=gen(22))
    w = torch.rand(5, 3, generator=gen(23))
    pw = torch.tensor([0.5, 2.0, 3.0]) if with_pos_weight else None
    fn = compiled("bce_with_logits")
    kw = {"pos_weight": pw} if with_pos_weight else {}
    for reduction in ("none", "sum", "mean"):
        assert_same(
            lambda x, t: fn(x, t, weight=w, reduction=reduction, **kw),
            lambda x, t: F.binary_cross_entropy_with_logits(
                x, t, weight=w, pos_weight=pw, reduction=reduction
            ),
            {"x": x, "t": t},
            ["x", "t"],
        )


@pytest.mark.parametrize("smoothing,C", [(0.1, 5), (0.0, 3), (0.3, 2), (0.5, 1)])
def test_bce_timm_smoothing(smoothing, C):
    """timm BinaryCrossEntropy(smoothing=s) on index targets (tests/reference/bce_timm.py)."""
    x = randn(4, C, seed=24, scale=2)
    y = torch.randint(0, C, (4,), generator=gen(25))
    pw = torch.linspace(0.5, 2.0, C)
    fn = compiled("bce_with_logits", smoothing="timm")
    assert_same(
        lambda x: fn(x, F.one_hot(y, C).double(), pos_weight=pw, label_smoothing=smoothing),
        lambda x: timm_binary_cross_entropy(x, y, smoothing=smoothing, pos_weight=pw),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("smooth_factor", [0.1, 0.0, 0.45])
def test_bce_smp_smoothing(smooth_factor):
    """smp SoftBCEWithLogitsLoss(smooth_factor=s) (tests/reference/soft_bce_smp.py); its
    ignore_index is the weight input's zeros (they stay in the mean, as smp)."""
    x = randn(3, 4, seed=26, scale=2)
    y = (torch.rand(3, 4, generator=gen(27)) > 0.5).double()
    y[0, 1] = -100
    keep = (y != -100).double()
    fn = compiled("bce_with_logits", smoothing="smp")
    assert_same(
        lambda x: fn(x, y * keep, weight=keep, label_smoothing=smooth_factor),
        lambda x: smp_soft_bce_with_logits(x, y, smooth_factor=smooth_factor),
        {"x": x},
        ["x"],
    )


def test_bce_smp_golden_value():
    """segmentation_models.pytorch tests/test_losses.py::test_soft_bce_loss (commit 5006616, 0.5.1
    dev): SoftBCEWithLogitsLoss(smooth_factor=0.1, ignore_index=-100) on y_pred [-9, 9, 1, 9,
    -9], y_true [0, 1, -100, 1, 0] is 0.7201 (abs 1e-4)."""
    x = torch.tensor([[-9.0, 9.0, 1.0, 9.0, -9.0]])
    y = torch.tensor([[0.0, 1.0, -100.0, 1.0, 0.0]])
    keep = (y != -100).double()
    fn = compiled("bce_with_logits", smoothing="smp")
    out = fn(x, y * keep, weight=keep, label_smoothing=0.1)
    assert out.item() == pytest.approx(0.7201, abs=1e-4)
    ours_jax = compiled("bce_with_logits", "jax", smoothing="smp")
    b = ours_jax(x.numpy(), (y * keep).numpy(), weight=keep.numpy(), label_smoothing=0.1)
    np.testing.assert_allclose(float(b), out.item(), rtol=1e-12)


def test_bce_timm_and_smp_forms_differ():
    """Which is which: timm puts s / C on a negative, smp puts s there, whatever C (they agree
    for C = 2 with smp's s = timm's s / 2)."""
    x, t = torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    timm = compiled("bce_with_logits", smoothing="timm")
    smp = compiled("bce_with_logits", smoothing="smp")
    # logit 0: l = log 2 for any target, the gradient sigmoid(0) - t' reads the smoothed target
    for fn, on, off in ((timm, 1 - 0.2 + 0.05, 0.05), (smp, 0.8, 0.2)):
        xg = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(fn(xg, t, label_smoothing=0.2, reduction="sum"), xg)
        torch.testing.assert_close(gx, 0.5 - torch.tensor([[on, off, off, off]]))
    x2 = randn(3, 2, seed=28)
    t2 = F.one_hot(torch.tensor([0, 1, 1]), 2).double()
    torch.testing.assert_close(timm(x2, t2, label_smoothing=0.3), smp(x2, t2, label_smoothing=0.15))


# ---- 6. hinge: margin -----------------------------------------------------------------------


@pytest.mark.parametrize("margin", [1.0, 0.5, 2.0])
def test_hinge_margin_from_optax(margin):
    """optax.hinge_loss is margin 1; relu(m - y s) = m * relu(1 - y s / m) for m > 0."""
    s = randn(4, 3, seed=29, scale=2)
    y = torch.where(torch.rand(4, 3, generator=gen(30)) > 0.5, 1.0, -1.0)
    ref = margin * np.asarray(optax.hinge_loss(s.numpy() / margin, y.numpy()))
    ours = compiled("hinge", "jax")(s.numpy(), y.numpy(), margin=margin, reduction="none")
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-12)
    tch = compiled("hinge")(s, y, margin=margin, reduction="none")
    np.testing.assert_allclose(tch.numpy(), ref, rtol=1e-12)


# ---- 7. triplet_margin: optax's eps placement; the soft-margin (softplus) form -------------

TRIPLET_OPTAX = [(1.0, 1e-6), (0.2, 1e-6), (0.5, 0.0), (1.0, 0.1)]  # (margin, eps)


@pytest.mark.parametrize("margin,eps", TRIPLET_OPTAX)
def test_triplet_eps_placement_optax(margin, eps):
    """optax.losses.triplet_margin_loss 0.2.8: (sum (a - p)^2 + eps)^(1/2), eps under the root."""
    a, p, n = randn(5, 4, seed=31), randn(5, 4, seed=32), randn(5, 4, seed=33)
    ours = compiled("triplet_margin", "jax", eps_placement="optax")
    ref = optax.losses.triplet_margin_loss(a.numpy(), p.numpy(), n.numpy(), margin=margin, eps=eps)
    got = ours(a.numpy(), p.numpy(), n.numpy(), margin=margin, eps=eps, reduction="none")
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-12)
    import jax

    def sum_ours(a):
        return jnp.sum(ours(a, p.numpy(), n.numpy(), margin=margin, eps=eps, reduction="none"))

    def sum_ref(a):
        return jnp.sum(
            optax.losses.triplet_margin_loss(a, p.numpy(), n.numpy(), margin=margin, eps=eps)
        )

    np.testing.assert_allclose(
        jax.grad(sum_ours)(jnp.asarray(a.numpy())),
        jax.grad(sum_ref)(jnp.asarray(a.numpy())),
        rtol=1e-10,
    )


def test_triplet_optax_docstring_example():
    """optax 0.2.8 triplet_margin_loss docstring: anchors [[0, 0], [1, 1]], positives [[.1, .1],
    [1.1, 1.1]], negatives [[1, 0], [0, 1]], margin 1 -> [0.1414 0.1414]."""
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    p = torch.tensor([[0.1, 0.1], [1.1, 1.1]])
    n = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fn = compiled("triplet_margin", eps_placement="optax")
    np.testing.assert_allclose(fn(a, p, n, reduction="none").numpy(), [0.1414, 0.1414], atol=1e-4)


def test_triplet_torch_and_optax_eps_differ():
    """torch adds eps to every coordinate of the difference; optax under the root."""
    a, p, n = randn(3, 4, seed=34), randn(3, 4, seed=35), randn(3, 4, seed=36)
    tch = compiled("triplet_margin")(a, p, n, eps=0.1, reduction="none")
    torch.testing.assert_close(
        tch, F.triplet_margin_loss(a, p, n, eps=0.1, reduction="none"), rtol=1e-12, atol=0
    )
    opt = compiled("triplet_margin", eps_placement="optax")(a, p, n, eps=0.1, reduction="none")
    assert not torch.allclose(tch, opt)


@pytest.mark.parametrize("margin,swap", [(0.05, False), (0.5, False), (0.0, False), (0.2, True)])
def test_triplet_smooth_matches_pml(margin, swap):
    """pytorch_metric_learning TripletMarginLoss(smooth_loss=True) on explicit triplets with an
    unnormalized L2 distance: the mean of softplus(d_ap - d_an + margin) (softplus is never 0,
    so its AvgNonZeroReducer keeps every triplet)."""
    a, p, n = randn(5, 4, seed=37), randn(5, 4, seed=38), randn(5, 4, seed=39)
    idx = (torch.arange(5), torch.arange(5) + 5, torch.arange(5) + 10)
    peer = TripletMarginLoss(
        margin=margin, swap=swap, smooth_loss=True, distance=LpDistance(normalize_embeddings=False)
    )
    fn = compiled("triplet_margin", smooth=True)
    assert_same(
        lambda a, p, n: fn(a, p, n, margin=margin, eps=0.0, swap=swap),
        lambda a, p, n: peer(torch.cat([a, p, n]), indices_tuple=idx),
        {"a": a, "p": p, "n": n},
        ["a", "p", "n"],
    )


# ---- 8. supcon: PML's in-loss normalization and empty-anchor conventions; NT-Xent labels ---

SUPCON_PML = [  # labels; pytorch_metric_learning SupConLoss 2.9.0
    [0, 0, 1, 2, 2, 3],  # anchors 2 and 5 have no positive: they leave PML's mean
    [1, 1, 2, 3, 3, 3, 3],  # unequal group sizes
    [0, 0, 0, 0],  # no negative pair: PML gives 0
    [0, 1, 2, 3],  # no positive pair: 0
    [5, 5],  # B = 2
]


@pytest.mark.parametrize("labels", SUPCON_PML)
@pytest.mark.parametrize("temp", [0.1, 0.5])
def test_supcon_matches_pml(labels, temp):
    x = randn(len(labels), 5, seed=40, scale=2)
    y = torch.tensor(labels)
    fn = compiled("supcon", normalize=True, empty_anchors="pml")
    assert_same(
        lambda x: fn(x[:, None, :], y, temperature=temp, base_temperature=temp),
        lambda x: SupConLoss(temperature=temp)(x, y),
        {"x": x},
        ["x"],
        rtol=1e-9,
    )


def test_supcon_pml_jax_and_official_default_differ():
    x = randn(6, 5, seed=41)
    y = torch.tensor([0, 0, 1, 2, 2, 3])
    fn = compiled("supcon", normalize=True, empty_anchors="pml")
    a = fn(x[:, None, :], y, temperature=0.1, base_temperature=0.1)
    b = compiled("supcon", "jax", normalize=True, empty_anchors="pml")(
        x.numpy()[:, None, :], y.numpy(), temperature=0.1, base_temperature=0.1
    )
    np.testing.assert_allclose(float(b), a.item(), rtol=1e-12)
    # the official default keeps the two positive-less anchors in the mean: 4/6 of PML's value
    h = F.normalize(x, dim=1)[:, None, :]
    off = compiled("supcon")(h, y, temperature=0.1, base_temperature=0.1)
    torch.testing.assert_close(off, a * 4 / 6)


NTXENT_LABELS = [  # labels; pytorch_metric_learning NTXentLoss 2.9.0 (pos_pair mean)
    [0, 0, 1, 2, 2, 2],
    [1, 1, 2, 3, 3, 3, 3, 3],
    [0, 0, 0, 0],  # no negatives: every pair 0
    [0, 1, 2, 3],  # no positive pair: 0
]


@pytest.mark.parametrize("labels", NTXENT_LABELS)
def test_info_nce_labels_match_pml_ntxent(labels):
    x = randn(len(labels), 5, seed=42)
    y = torch.tensor(labels)
    fn = compiled("info_nce")
    assert_same(
        lambda x: fn(x[:, None, :], y, temperature=0.07),
        lambda x: NTXentLoss(temperature=0.07)(x, y),
        {"x": x},
        ["x"],
        rtol=1e-9,
    )


def test_info_nce_labels_with_views_and_jax():
    """Two views per sample plus labels: PML on the concatenated views with repeated labels."""
    x = randn(5, 2, 4, seed=43)
    y = torch.tensor([0, 0, 1, 1, 1])
    fn = compiled("info_nce")
    flat = lambda x: x.transpose(0, 1).reshape(10, 4)  # noqa: E731
    assert_same(
        lambda x: fn(x, y, temperature=0.2),
        lambda x: NTXentLoss(temperature=0.2)(flat(x), y.repeat(2)),
        {"x": x},
        ["x"],
        rtol=1e-9,
    )
    b = compiled("info_nce", "jax")(x.numpy(), y.numpy(), temperature=0.2)
    np.testing.assert_allclose(float(b), fn(x, y, temperature=0.2).item(), rtol=1e-12)


# ---- 9. tv: kornia.losses.total_variation on integer images --------------------------------

# kornia tests/losses/test_total_variation.py (commit b4f5a78, kornia 0.9.x), test_tv_on_4d
TV_4D = [
    (
        [
            [[[0.8756, 0.0920], [0.8034, 0.3107]], [[0.3069, 0.2981], [0.9399, 0.7944]],
             [[0.6269, 0.1494], [0.2493, 0.8490]]],
            [[[0.3256, 0.9923], [0.2856, 0.9104]], [[0.4107, 0.4387], [0.2742, 0.0095]],
             [[0.7064, 0.3674], [0.6139, 0.2487]]],
        ],
        [[1.5672, 1.2836, 2.1544], [1.4134, 0.8584, 0.9154]],
    ),
    (
        [[[[0.1104, 0.2284, 0.4371], [0.4569, 0.1906, 0.8035]]],
         [[[0.0552, 0.6831, 0.8310], [0.3589, 0.5044, 0.0802]]],
         [[[0.5078, 0.5703, 0.9110], [0.4765, 0.8401, 0.2754]]]],
        [[1.9566], [2.5787], [2.2682]],
    ),
]  # fmt: skip


@pytest.mark.parametrize("x,expected", TV_4D)
def test_tv_kornia_golden_4d(x, expected):
    out = compiled("tv")(torch.tensor(x), normalize=False, reduction="none")
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("reduction,expected", [("sum", 20.0), ("mean", 1.0)])
def test_tv_kornia_golden_reduction(reduction, expected):
    """kornia test_tv_reduction: the 5 x 5 meshgrid of arange(5) -> sum 20, mean 1."""
    grid, _ = torch.meshgrid([torch.arange(5), torch.arange(5)], indexing="ij")
    x = grid[None, None]  # int64, as kornia's test
    out = compiled("tv")(x, normalize=reduction == "mean", reduction="none")
    assert out.item() == expected


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_tv_integer_images_as_kornia(dtype):
    """kornia widens an integer image before differencing (uint8 -> int16: no wrap-around) and
    returns integers for 'sum', floats for 'mean'. The spec takes the integer tensor itself: a
    float input promotes an integer tensor to the default float (float32 here, as torch's type
    promotion), so no wrap-around either; the values are kornia's (exact: sums of at most
    2 * 4 * 5 differences of 8-bit values fit float32's 24 bits)."""
    hi = 127 if dtype == torch.int8 else 255
    x = torch.randint(0 if dtype == torch.uint8 else -hi, hi, (2, 3, 4, 5), generator=gen(44))
    x = x.to(dtype)
    fn = compiled("tv")
    s = kornia.losses.total_variation(x)
    assert not s.is_floating_point()
    got = fn(x, normalize=False, reduction="none")
    assert got.dtype == torch.get_default_dtype()
    torch.testing.assert_close(got, s.to(got.dtype), rtol=0, atol=0)
    m = kornia.losses.total_variation(x, reduction="mean")
    torch.testing.assert_close(fn(x, reduction="none").double(), m.double(), rtol=1e-6, atol=0)
    # the same promotion on every backend: jax (its default float) and the numpy reference
    for backend in ("jax", "numpy"):
        out = lossdsl.load("tv").compile(backend)(x.numpy(), normalize=False, reduction="none")
        np.testing.assert_array_equal(np.asarray(out, dtype=np.float64), s.double().numpy())


def test_tv_constant_int_is_zero():
    """kornia test_tv_on_constant_int: 2 * ones(2, 3, 4, 5) as int32, 'mean' -> zeros [2, 3]."""
    x = (2 * torch.ones(2, 3, 4, 5)).to(torch.int32)
    out = compiled("tv")(x, reduction="none")
    assert torch.equal(out, torch.zeros(2, 3))
    assert torch.equal(kornia.losses.total_variation(x, reduction="mean"), torch.zeros(2, 3))
