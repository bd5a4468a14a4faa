"""Every shipped spec against something lossdsl did not compute: torch.nn.functional, optax,
MONAI, or a transcription of the paper's official code (tests/reference/, each file names its
repository and file). Values and gradients, float64, at least two shapes, plus edge cases.

Library versions are whatever `pip install -e .[test]` resolves (torch 2.13.0 pinned by CI)."""

from __future__ import annotations

import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from reference.focal_softmax import focal_loss_plain
from reference.kd_mdistiller import kd_loss
from reference.poly1_paper import poly1_cross_entropy, poly1_focal_loss
from reference.sigmoid_focal_torchvision import sigmoid_focal_loss
from reference.supcon_official import supcon_loss
from torch_helpers import assert_same, gen, logits_target

import lossdsl

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]


# ---- cross_entropy: torch.nn.functional.cross_entropy (PyTorch 2.13) ------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
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


# ---- bce_with_logits: F.binary_cross_entropy_with_logits; optax.sigmoid_binary_cross_entropy --


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits_matches_torch(shape, pos):
    x = torch.randn(*shape, generator=gen(2)) * 4
    t = torch.rand(*shape, generator=gen(3))
    pw = torch.rand(shape[1], generator=gen(4)) * 3 if pos else None
    fn = lossdsl.load("bce_with_logits").compile("torch")
    for r in ("mean", "sum", "none"):
        assert_same(
            lambda x, t: fn(x, t, pw, reduction=r),
            lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction=r),
            {"x": x, "t": t},
            ["x", "t"],
        )
    ours = lossdsl.load("bce_with_logits").compile("jax")(x.numpy(), t.numpy(), reduction="none")
    ref = optax.sigmoid_binary_cross_entropy(x.numpy(), t.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-10)


# ---- focal: F.cross_entropy-based form (tests/reference/focal_softmax.py) -------------------


@pytest.mark.parametrize("shape", SHAPES)
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


# ---- sigmoid_focal: torchvision transcription; optax.sigmoid_focal_loss --------------------


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 6, 2)])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.9, 1.5)])
def test_sigmoid_focal_matches_torchvision(shape, alpha, gamma):
    x = torch.randn(*shape, generator=gen(7)) * 3
    t = (torch.rand(*shape, generator=gen(8)) < 0.3).double()
    fn = lossdsl.load("sigmoid_focal").compile("torch")
    for r in ("none", "mean", "sum"):
        assert_same(
            lambda x, t: fn(x, t, alpha=alpha, gamma=gamma, reduction=r),
            lambda x, t: sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=r),
            {"x": x, "t": t},
            ["x"],
        )


def test_sigmoid_focal_matches_optax():
    x = np.random.default_rng(0).standard_normal((6, 4)) * 3
    t = (np.random.default_rng(1).random((6, 4)) < 0.4).astype(np.float64)
    ours = lossdsl.load("sigmoid_focal").compile("jax")(x, t, reduction="none")
    ref = optax.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-9)


# ---- poly1: the paper's listing (tests/reference/poly1_paper.py); optax ---------------------


@pytest.mark.parametrize("shape", SHAPES)
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


# ---- poly1_focal: the paper's poly1_focal_loss listing; torchvision at epsilon = 0 ------------


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 7)])
@pytest.mark.parametrize("eps", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_poly1_focal_matches_paper_listing(shape, eps, alpha):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(*shape, generator=g) < 0.4).double()
    fn = lossdsl.load("poly1_focal").compile("torch")
    a = -1.0 if alpha is None else alpha
    for reduction in ("none", "sum", "mean"):
        assert_same(
            lambda x: fn(x, t, epsilon=eps, gamma=2.0, alpha=a, reduction=reduction),
            lambda x: poly1_focal_loss(x, t, eps, 2.0, alpha=alpha, reduction=reduction),
            {"x": x},
            ["x"],
        )
    if eps == 0.0 and alpha is not None:  # the epsilon = 0 case is torchvision's focal loss
        ours = fn(x, t, epsilon=0.0, alpha=0.25, reduction="none")
        ref = sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none")
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


# ---- label_smoothing_ce: F.cross_entropy(label_smoothing=eps); optax.smooth_labels ---------


@pytest.mark.parametrize("shape", SHAPES)
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


# ---- mse: F.mse_loss; optax.squared_error ---------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5), (6,)])
def test_mse_matches_torch_and_optax(shape):
    a = torch.randn(*shape, generator=gen(11))
    b = torch.randn(*shape, generator=gen(12))
    fn = lossdsl.load("mse").compile("torch")
    for r in ("mean", "sum", "none"):
        assert_same(
            lambda a, b: fn(a, b, reduction=r),
            lambda a, b: F.mse_loss(a, b, reduction=r),
            {"a": a, "b": b},
            ["a", "b"],
        )
    ours = lossdsl.load("mse").compile("jax")(a.numpy(), b.numpy(), reduction="none")
    np.testing.assert_allclose(
        np.asarray(ours), np.asarray(optax.squared_error(a.numpy(), b.numpy()))
    )


# ---- kd: mdistiller kd_loss (tests/reference/kd_mdistiller.py) -------------------------------


@pytest.mark.parametrize("shape", SHAPES)
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


# ---- dice: monai.losses.DiceLoss --------------------------------------------------------------


def _dice_against_monai(name, shape, seed, batch):
    """The spec against monai.losses.DiceLoss(softmax=True, to_onehot_y=True, batch=batch),
    every reduction; `none` is per (sample, class), or per class with batch=True."""
    import monai

    x = torch.randn(*shape, generator=gen(seed)) * 2
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen(seed + 1))
    fn = lossdsl.load(name).compile("torch")
    per = shape[1] if batch else shape[:2]
    for r in ("mean", "sum", "none"):
        m = monai.losses.DiceLoss(softmax=True, to_onehot_y=True, batch=batch, reduction=r)

        def ref(x, y, m=m, r=r):
            out = m(x, y[:, None])
            return out.reshape(per) if r == "none" else out

        assert_same(lambda x, y, r=r: fn(x, y, reduction=r), ref, {"x": x, "y": y}, ["x"])


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 4, 5, 6, 7), (2, 2, 10)])
def test_dice_matches_monai(shape):
    _dice_against_monai("dice", shape, 15, batch=False)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 4, 5, 6, 7), (4, 2, 10)])
def test_batch_dice_matches_monai_batch_true(shape):
    _dice_against_monai("batch_dice", shape, 35, batch=True)


def test_dice_class_absent_from_batch():
    """A class absent from target and (almost) absent from the prediction: D ~ 1, loss ~ 0."""
    import monai

    x = torch.zeros(1, 3, 4, 4)
    x[:, 2] = -30.0  # class 2 never predicted
    y = torch.randint(0, 2, (1, 4, 4), generator=gen(17))  # and never present
    ours = lossdsl.load("dice").compile("torch")(x, y, reduction="none")
    ref = monai.losses.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(x, y[:, None])
    torch.testing.assert_close(ours, ref.reshape(1, 3))
    assert ours[0, 2] < 1e-4


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


# ---- focal_dice: composition of the two references -------------------------------------------


def test_focal_dice_is_focal_plus_weighted_dice():
    import monai

    x = torch.randn(2, 3, 5, 4, generator=gen(21)) * 2
    y = torch.randint(0, 3, (2, 5, 4), generator=gen(22))

    def ref(x, y):
        ce = F.cross_entropy(x, y, reduction="none")
        focal = ((1 - torch.exp(-ce)) ** 2 * ce).mean()
        dice = monai.losses.DiceLoss(softmax=True, to_onehot_y=True)(x, y[:, None])
        return focal + 0.5 * dice

    fn = lossdsl.load("focal_dice").compile("torch")
    assert_same(lambda x, y: fn(x, y), ref, {"x": x, "y": y}, ["x"], rtol=1e-9)
