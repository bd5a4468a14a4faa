"""Segmentation: soft Dice, batch Dice and Focal+Dice (MONAI's DiceLoss), the Jaccard metric loss
(JDTLosses).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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
