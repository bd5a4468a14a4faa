"""Segmentation: soft Dice, batch Dice and Focal+Dice (MONAI's DiceLoss), the Jaccard metric loss
(JDTLosses).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import call, grads
from reference.jml_official import jaccard_metric_loss
from torch_helpers import assert_same, gen

import lossdsl

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


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "none"])
@pytest.mark.parametrize("squared_pred", [False, True])
def test_dice_activation_and_squared_pred_match_monai(activation, squared_pred):
    """The choice param `activation` against monai.losses.DiceLoss(softmax= / sigmoid= / neither,
    squared_pred=), values and gradients, on torch; jax and numpy against torch. MONAI 1.x
    computes squared_pred's intersection through vector norms, (|p|^2 + |g|^2 - |p - g|^2) / 2,
    3.4e-8 off the direct float64 sum here (lossdsl: 1.1e-16 off it), hence 1e-7 there."""
    import monai
    import numpy as np

    x = torch.randn(2, 3, 5, 4, generator=gen(41), dtype=torch.float64)
    if activation == "none":  # the input holds probabilities already
        x = torch.softmax(x, 1)
    y = torch.randint(0, 3, (2, 5, 4), generator=gen(42))
    spec = lossdsl.load("dice")
    fn = spec.compile("torch", activation=activation)
    m = monai.losses.DiceLoss(
        softmax=activation == "softmax",
        sigmoid=activation == "sigmoid",
        squared_pred=squared_pred,
        to_onehot_y=True,
        reduction="none",
    )
    assert_same(
        lambda x, y: fn(x, y, squared_pred=squared_pred, reduction="none"),
        lambda x, y: m(x, y[:, None]).reshape(2, 3),
        {"x": x, "y": y},
        ["x"],
        rtol=1e-7 if squared_pred else 1e-10,
        atol=1e-8 if squared_pred else 1e-12,  # its gradient: 4.8e-10 off (entries ~1e-2)
    )
    want = fn(x, y, squared_pred=squared_pred, reduction="none").numpy()
    for backend in ("jax", "numpy"):
        got = spec.compile(backend, activation=activation)(
            x.numpy(), y.numpy(), squared_pred=squared_pred, reduction="none"
        )
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6 if backend == "jax" else 1e-12)


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


# ---- jaccard_metric: zifuwanggg/JDTLosses (reference/jml_official.py) --------------------------
# jaccard_metric against the official JaccardMetricLoss (zifuwanggg/JDTLosses, transcribed in
# tests/reference/jml_official.py): values and gradients in float64, two shapes, a class absent
# from the batch (excluded from the mean), log_loss and temperature variants.


@pytest.mark.parametrize("shape", [(2, 4, 6, 5), (3, 3, 8, 8)])
@pytest.mark.parametrize("params", [{}, {"log_loss": True}, {"T": 2.0, "smooth": 0.5}])
def test_jml_matches_official(shape, params):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g) * 2
    c = shape[1]
    y = torch.randint(0, c - 1, (shape[0], *shape[2:]), generator=g)  # class c-1 absent
    fn = lossdsl.load("jaccard_metric").compile("torch")
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, ref = fn(a, y, **params), jaccard_metric_loss(b, y, **params)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, [a])[0], torch.autograd.grad(ref, [b])[0])


# ---- lovasz_hinge, lovasz_softmax: bermanmaxim/LovaszSoftmax (tests/reference/lovasz_official.py)


def _lovasz_reduce(per_image, reduction):
    return {"none": per_image, "sum": per_image.sum(), "mean": per_image.mean()}[reduction]


@pytest.mark.parametrize("shape", [(3, 5, 7), (2, 16), (4, 6, 5, 3)])
def test_lovasz_hinge_matches_official(shape, reduction):
    """Per image: the official lovasz_hinge_flat of each image (its per_image=True is the mean
    over B); values and gradients w.r.t. the logits, float64."""
    from reference.lovasz_official import flatten_binary_scores, lovasz_hinge, lovasz_hinge_flat

    g = gen(41)
    x = torch.randn(*shape, generator=g) * 2
    y = (torch.rand(*shape, generator=g) < 0.4).to(x.dtype)
    fn = lossdsl.load("lovasz_hinge").compile("torch")

    def ref(x, y):
        per = torch.stack([lovasz_hinge_flat(*flatten_binary_scores(a, b)) for a, b in zip(x, y)])
        return _lovasz_reduce(per, reduction)

    assert_same(lambda x, y: fn(x, y, reduction=reduction), ref, {"x": x, "y": y}, ["x"])
    if reduction == "mean":  # the official entry point, per_image=True (its default)
        assert_same(lambda x, y: fn(x, y), lambda x, y: lovasz_hinge(x, y), {"x": x, "y": y}, ["x"])


def test_lovasz_hinge_per_batch_is_the_batch_as_one_image():
    """The official per_image=False: this loss of the batch flattened into one image."""
    from reference.lovasz_official import lovasz_hinge

    g = gen(43)
    x = torch.randn(3, 4, 5, generator=g)
    y = (torch.rand(3, 4, 5, generator=g) < 0.5).to(x.dtype)
    fn = lossdsl.load("lovasz_hinge").compile("torch")
    assert_same(
        lambda x, y: fn(x.reshape(1, -1), y.reshape(1, -1)),
        lambda x, y: lovasz_hinge(x, y, per_image=False),
        {"x": x, "y": y},
        ["x"],
    )


def test_lovasz_hinge_image_without_foreground_and_single_pixel():
    """No foreground (the union starts at 0 before the first pixel) and one-pixel images
    (lovasz_grad's p == 1 case): the official values, gradients included."""
    from reference.lovasz_official import flatten_binary_scores, lovasz_hinge_flat

    fn = lossdsl.load("lovasz_hinge").compile("torch")
    for x, y in (
        (torch.randn(2, 6, generator=gen(44)), torch.zeros(2, 6)),
        (torch.randn(2, 6, generator=gen(45)), torch.ones(2, 6)),
        (torch.tensor([[0.3], [-2.0]]), torch.tensor([[1.0], [0.0]])),
    ):
        assert_same(
            lambda x, y: fn(x, y, reduction="none"),
            lambda x, y: torch.stack(
                [lovasz_hinge_flat(*flatten_binary_scores(a, b)) for a, b in zip(x, y)]
            ),
            {"x": x, "y": y},
            ["x"],
        )


def _probas(x):
    return torch.softmax(x, dim=1)


@pytest.mark.parametrize("shape", [(2, 3, 6, 5), (3, 4, 7, 2), (1, 2, 4, 4)])
@pytest.mark.parametrize("only_present", [True, False])
def test_lovasz_softmax_matches_official(shape, only_present, reduction):
    """Per image: the official lovasz_softmax_flat of each image's softmax probabilities with
    classes='present' (its default) or 'all'; the mean over B is its per_image=True. Values and
    gradients w.r.t. the logits (through the softmax), float64."""
    from reference.lovasz_official import flatten_probas, lovasz_softmax, lovasz_softmax_flat

    g = gen(47)
    b, c = shape[:2]
    x = torch.randn(*shape, generator=g) * 2
    y = torch.randint(0, c - 1 if c > 2 else c, (b, *shape[2:]), generator=g)  # one class absent
    classes = "present" if only_present else "all"
    fn = lossdsl.load("lovasz_softmax").compile("torch", only_present=only_present)

    def ref(x, y):
        p = _probas(x)
        per = torch.stack(
            [
                lovasz_softmax_flat(*flatten_probas(a[None], b_[None]), classes=classes)
                for a, b_ in zip(p, y)
            ]
        )
        return _lovasz_reduce(per, reduction)

    assert_same(lambda x, y: fn(x, y, reduction=reduction), ref, {"x": x, "y": y}, ["x"])
    if reduction == "mean":
        assert_same(
            lambda x, y: fn(x, y),
            lambda x, y: lovasz_softmax(_probas(x), y, classes=classes, per_image=True),
            {"x": x, "y": y},
            ["x"],
        )


def test_lovasz_softmax_per_batch_is_the_batch_as_one_image():
    """The official default (per_image=False, classes='present'): this loss of the batch
    flattened into one image, logits [1, C, B*H*W] in the official pixel order (b, h, w)."""
    from reference.lovasz_official import lovasz_softmax

    g = gen(49)
    x = torch.randn(3, 4, 5, 6, generator=g) * 2
    y = torch.randint(0, 4, (3, 5, 6), generator=g)
    fn = lossdsl.load("lovasz_softmax").compile("torch")
    assert_same(
        lambda x, y: fn(x.transpose(0, 1).reshape(1, 4, -1), y.reshape(1, -1)),
        lambda x, y: lovasz_softmax(_probas(x), y),
        {"x": x, "y": y},
        ["x"],
    )


# ignore= of the official code: flatten_binary_scores / flatten_probas drop the pixels whose
# label is the void id before the loss. Each batch below has ignored pixels in every image,
# one image with every pixel ignored, and (softmax) a class absent or present only at ignored
# pixels. The official per-image loss of an all-ignored image is 0 (lovasz_hinge_flat returns
# logits.sum() * 0; lovasz_softmax_flat returns probas * 0, an empty [0, C] tensor, commented
# "the gradients should be 0", on which its per_image mean raises), so the per-image references
# below are the official flat losses of the kept pixels, and 0 for an all-ignored image.


def _void(shape, seed, frac=0.3, all_void=1):
    """A mask of ignored pixels: about `frac` of each image, image `all_void` entirely."""
    v = torch.rand(*shape, generator=gen(seed)) < frac
    v[all_void] = True
    return v


@pytest.mark.parametrize("ignore", [255, -1])
def test_lovasz_hinge_ignore_matches_official(ignore):
    """Per image (reduction none/sum/mean; mean is the official per_image=True) and the batch as
    one image (the official per_image=False), ignore= void pixels, float64 values and gradients."""
    from reference.lovasz_official import flatten_binary_scores, lovasz_hinge, lovasz_hinge_flat

    g = gen(53)
    x = torch.randn(4, 6, 5, generator=g) * 2
    y = (torch.rand(4, 6, 5, generator=g) < 0.4).to(x.dtype)
    y[_void(y.shape, 54)] = ignore
    fn = lossdsl.load("lovasz_hinge").compile("torch")
    for reduction in ("none", "sum", "mean"):

        def ref(x, y, reduction=reduction):
            per = [lovasz_hinge_flat(*flatten_binary_scores(a, b, ignore)) for a, b in zip(x, y)]
            return _lovasz_reduce(torch.stack(per), reduction)

        def ours(x, y, reduction=reduction):
            return fn(x, y, ignore_index=ignore, reduction=reduction)

        assert_same(ours, ref, {"x": x, "y": y}, ["x"])
    assert_same(
        lambda x, y: fn(x, y, ignore_index=ignore),
        lambda x, y: lovasz_hinge(x, y, per_image=True, ignore=ignore),
        {"x": x, "y": y},
        ["x"],
    )
    assert_same(
        lambda x, y: fn(x.reshape(1, -1), y.reshape(1, -1), ignore_index=ignore),
        lambda x, y: lovasz_hinge(x, y, per_image=False, ignore=ignore),
        {"x": x, "y": y},
        ["x"],
    )
    # the image with every pixel ignored: loss 0, zero gradient; ignored pixels get none
    xg = x.clone().requires_grad_(True)
    out = fn(xg, y, ignore_index=ignore, reduction="none")
    (gx,) = torch.autograd.grad(out.sum(), [xg])
    assert out[1].item() == 0.0 and torch.all(gx[y == ignore] == 0)
    assert torch.isfinite(gx).all()


def test_lovasz_hinge_ignore_default_ignores_nothing():
    """ignore_index's default (-100) keeps every pixel: the official ignore=None."""
    from reference.lovasz_official import lovasz_hinge

    g = gen(55)
    x = torch.randn(3, 7, generator=g)
    y = (torch.rand(3, 7, generator=g) < 0.5).to(x.dtype)
    fn = lossdsl.load("lovasz_hinge").compile("torch")
    assert_same(lambda x, y: fn(x, y), lambda x, y: lovasz_hinge(x, y), {"x": x, "y": y}, ["x"])


@pytest.mark.parametrize("only_present", [True, False])
@pytest.mark.parametrize("ignore", [255, 1])
def test_lovasz_softmax_ignore_matches_official(only_present, ignore):
    """Per image (reduction none/sum/mean; mean is the official per_image=True) and the batch as
    one image (the official default per_image=False), ignore= void pixels, classes='present' or
    'all', float64 values and gradients w.r.t. the logits. ignore=1 is a class id: class 1 then
    occurs only at ignored pixels and is absent (official: labels == c over the kept pixels);
    class 3 is absent from the targets."""
    from reference.lovasz_official import flatten_probas, lovasz_softmax, lovasz_softmax_flat

    g = gen(57)
    b, c, h, w = 4, 4, 6, 5
    x = torch.randn(b, c, h, w, generator=g) * 2
    y = torch.randint(0, c - 1, (b, h, w), generator=g)
    y[_void(y.shape, 58, all_void=2)] = ignore
    classes = "present" if only_present else "all"
    fn = lossdsl.load("lovasz_softmax").compile("torch", only_present=only_present)

    def flat(p, y):  # the official loss of one image; 0 when every pixel is ignored
        if not (y != ignore).any():
            return p.sum() * 0.0
        return lovasz_softmax_flat(*flatten_probas(p[None], y[None], ignore), classes=classes)

    for reduction in ("none", "sum", "mean"):

        def ref(x, y, reduction=reduction):
            per = torch.stack([flat(a, b_) for a, b_ in zip(_probas(x), y)])
            return _lovasz_reduce(per, reduction)

        def ours(x, y, reduction=reduction):
            return fn(x, y, ignore_index=ignore, reduction=reduction)

        assert_same(ours, ref, {"x": x, "y": y}, ["x"])
    # the official per_image=True on the images with kept pixels, times (B - 1) / B: the
    # all-ignored image adds a 0 to the mean over B
    keep = [0, 1, 3]
    assert_same(
        lambda x, y: fn(x, y, ignore_index=ignore),
        lambda x, y: (
            lovasz_softmax(
                _probas(x)[keep], y[keep], classes=classes, per_image=True, ignore=ignore
            )
            * 3
            / 4
        ),
        {"x": x, "y": y},
        ["x"],
    )
    assert_same(
        lambda x, y: fn(x.transpose(0, 1).reshape(1, c, -1), y.reshape(1, -1), ignore_index=ignore),
        lambda x, y: lovasz_softmax(_probas(x), y, classes=classes, ignore=ignore),
        {"x": x, "y": y},
        ["x"],
    )
    xg = x.clone().requires_grad_(True)
    out = fn(xg, y, ignore_index=ignore, reduction="none")
    (gx,) = torch.autograd.grad(out.sum(), [xg])
    assert out[2].item() == 0.0 and torch.all(gx.transpose(0, 1)[:, y == ignore] == 0)
    assert torch.isfinite(gx).all()


def test_lovasz_one_kept_pixel():
    """An image with one kept pixel (lovasz_grad's p == 1 case after the void pixels go): the
    official flat losses of that pixel (flatten_probas would squeeze its index to 0-d, so the
    softmax reference flattens it by hand, as flatten_probas does for two or more)."""
    from reference.lovasz_official import (
        flatten_binary_scores,
        lovasz_hinge_flat,
        lovasz_softmax_flat,
    )

    x = torch.randn(2, 3, 2, 3, generator=gen(60))
    y = torch.full((2, 2, 3), 255)
    y[0, 1, 2], y[1, 0, 0], y[1, 1, 1] = 2, 0, 1
    for only_present in (True, False):
        classes = "present" if only_present else "all"
        fn = lossdsl.load("lovasz_softmax").compile("torch", only_present=only_present)

        def ref(x, y, classes=classes):
            p = _probas(x).permute(0, 2, 3, 1)
            return torch.stack(
                [lovasz_softmax_flat(a[b != 255], b[b != 255], classes) for a, b in zip(p, y)]
            )

        ours = lambda x, y, fn=fn: fn(x, y, ignore_index=255, reduction="none")  # noqa: E731
        assert_same(ours, ref, {"x": x, "y": y}, ["x"])
    hinge = lossdsl.load("lovasz_hinge").compile("torch")
    yh = torch.where(y == 255, 255, (y > 0).long()).to(x.dtype)
    assert_same(
        lambda x, y: hinge(x, y, ignore_index=255, reduction="none"),
        lambda x, y: torch.stack(
            [lovasz_hinge_flat(*flatten_binary_scores(a, b, 255)) for a, b in zip(x, y)]
        ),
        {"x": x[:, 0], "y": yh},
        ["x"],
    )


def test_lovasz_all_ignored_batch_is_zero():
    """Every pixel ignored: 0 with zero gradient for every reduction (the official
    lovasz_hinge(per_image=False) returns logits.sum() * 0)."""
    from reference.lovasz_official import lovasz_hinge

    x = torch.randn(2, 3, 4, 5, generator=gen(59))
    y = torch.full((2, 4, 5), 255)
    soft = lossdsl.load("lovasz_softmax").compile("torch")
    hinge = lossdsl.load("lovasz_hinge").compile("torch")
    for only_present in (True, False):
        for r in ("none", "sum", "mean"):
            xg = x.clone().requires_grad_(True)
            out = soft(xg, y, ignore_index=255, only_present=only_present, reduction=r)
            (gx,) = torch.autograd.grad(out.sum(), [xg])
            assert torch.all(out == 0) and torch.all(gx == 0)
    xh, yh = x[:, 0], y.to(x.dtype)
    assert_same(
        lambda x, y: hinge(x, y, ignore_index=255),
        lambda x, y: lovasz_hinge(x, y, per_image=False, ignore=255),
        {"x": xh, "y": yh},
        ["x"],
    )


@pytest.mark.parametrize("ignore", [None, 255])
@pytest.mark.parametrize("name", ["lovasz_hinge", "lovasz_softmax"])
def test_lovasz_other_backends_match_torch(name, ignore, other_backend):
    """jax and numpy against the torch module checked above (values; jax's gradients too);
    with ignore: void pixels in every image and image 1 all void."""
    import numpy as np
    from helpers import call, grads

    g = gen(51)
    if name == "lovasz_hinge":
        data = {"logits": torch.randn(3, 5, 4, generator=g).numpy()}
        data["labels"] = (torch.rand(3, 5, 4, generator=g) < 0.4).double().numpy()
        lab = "labels"
    else:
        data = {"logits": torch.randn(3, 3, 5, 4, generator=g).numpy()}
        data["target"] = torch.randint(0, 3, (3, 5, 4), generator=g).numpy()
        lab = "target"
    kw = {}
    if ignore is not None:
        data[lab][_void(data[lab].shape, 52).numpy()] = ignore
        kw = {"ignore_index": ignore}
    spec = lossdsl.load(name)
    for r in ("none", "sum", "mean"):
        want = call("torch", spec.compile("torch"), data, "float64", reduction=r, **kw)
        got = call(other_backend, spec.compile(other_backend), data, "float64", reduction=r, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    if other_backend == "jax":
        want = grads("torch", spec.compile("torch"), data, ["logits"], "float64", **kw)
        got = grads("jax", spec.compile("jax"), data, ["logits"], "float64", **kw)
        np.testing.assert_allclose(got["logits"], want["logits"], rtol=1e-10, atol=1e-12)
        assert np.isfinite(got["logits"]).all()


# ---- clDice (official code) ----------------------------------------------------------------


@pytest.mark.parametrize("n_iters", [0, 3, 10])
@pytest.mark.parametrize("exclude_background", [False, True])
def test_cl_dice_equals_the_official_code(n_iters, exclude_background):
    """Soft skeletons by repeated min/max pooling (-inf padded, stride 1), topology precision and
    sensitivity over the whole batch: values and gradients w.r.t. both masks on every backend
    against jocpae/clDice (tests/reference/cldice_official.py), a soft prediction against a
    binary target with thin structures (lines of width 1-2, where the skeleton matters)."""
    from reference.cldice_official import soft_cldice

    g = gen(n_iters + 7 * exclude_background)
    pred = torch.rand(2, 2, 9, 11, generator=g, dtype=torch.float64)
    target = torch.zeros(2, 2, 9, 11, dtype=torch.float64)
    target[:, :, 4, 1:10] = 1.0  # a horizontal line
    target[0, 1, 1:8, 6:8] = 1.0  # a vertical bar of width 2
    target[1, 0] = (torch.rand(9, 11, generator=g) > 0.6).double()
    leaves = {"pred": pred.clone().requires_grad_(), "target": target.clone().requires_grad_()}
    want = soft_cldice(leaves["target"], leaves["pred"], n_iters, 1.0, exclude_background)
    gref = dict(zip(leaves, torch.autograd.grad(want, list(leaves.values()))))
    spec = lossdsl.load("cl_dice")
    data = {"pred": pred.numpy(), "target": target.numpy()}
    params = {"n_iters": n_iters, "exclude_background": exclude_background}
    for b in ("torch", "jax", "numpy"):
        fn = spec.compile(b)
        got = call(b, fn, data, "float64", **params)
        np.testing.assert_allclose(got, want.item(), rtol=1e-12, err_msg=b)
        if b != "numpy":
            gs = grads(b, fn, data, ["pred", "target"], "float64", **params)
            for k in gs:
                np.testing.assert_allclose(gs[k], gref[k].numpy(), rtol=1e-10, atol=1e-14,
                                           err_msg=(b, k))  # fmt: skip
