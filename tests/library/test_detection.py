"""Bounding-box regression: GIoU, DIoU and CIoU on paired (x1, y1, x2, y2) boxes.

Reference: torchvision.ops.{generalized,distance,complete}_box_iou_loss, transcribed in
tests/reference/box_iou_torchvision.py (torchvision does not import beside the CPU torch here).
The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference.box_iou_torchvision import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
)
from torch_helpers import assert_same, compiled, gen

import lossdsl
from lossdsl.codegen import TARGETS

REFERENCES = {
    "giou": generalized_box_iou_loss,
    "diou": distance_box_iou_loss,
    "ciou": complete_box_iou_loss,
}


def boxes(n, seed):
    """[n, 4] boxes (x1, y1, x2, y2) with positive widths and heights, spread so that pairs
    overlap, nest, touch or lie apart."""
    g = gen(seed)
    xy = torch.rand(n, 2, generator=g) * 4
    wh = torch.rand(n, 2, generator=g) * 3 + 0.1
    return torch.cat([xy, xy + wh], 1)


def pairs(seed):
    """Random pairs plus the cases where the masked intersection switches: identical, nested,
    disjoint, touching along an edge (zero overlap), and overlapping along one axis only."""
    p, t = boxes(24, seed), boxes(24, seed + 1)
    special_p = torch.tensor(
        [[0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 1], [1, 1, 3, 2]]
    )
    special_t = torch.tensor(
        [[0, 0, 2, 2], [1, 1, 2, 3], [3, 3, 5, 6], [1, 0, 2, 1], [1, 5, 3, 6], [1.5, 1.2, 2, 3]]
    )
    return torch.cat([p, special_p.double()]), torch.cat([t, special_t.double()])


@pytest.mark.parametrize("name", REFERENCES)
@pytest.mark.parametrize("eps", [1e-7, 0.0, 0.5])
def test_box_losses_match_torchvision(name, eps, reduction):
    """Values and gradients (both boxes) against torchvision's formula, every reduction, eps at
    its boundary 0 and a large one (ciou's DIoU part keeps 1e-7 whatever eps is, as
    torchvision's does: the reference shows it)."""
    p, t = pairs(3)
    fn = compiled(name)
    ref = REFERENCES[name]
    assert_same(
        lambda p, t: fn(p, t, eps=eps, reduction=reduction),
        lambda p, t: ref(p, t, reduction=reduction, eps=eps),
        {"p": p, "t": t},
        ["p", "t"],
    )


@pytest.mark.parametrize("name", REFERENCES)
@pytest.mark.parametrize("backend", [b for b in TARGETS if b != "torch"])
def test_box_losses_agree_on_every_backend(name, backend):
    p, t = pairs(5)
    want = REFERENCES[name](p, t).numpy()
    got = np.asarray(compiled(name, backend)(p.numpy(), t.numpy(), reduction="none"))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", REFERENCES)
def test_box_losses_at_known_values(name):
    """Identical boxes: 0 (torchvision's formula: IoU = 4 / (4 + eps), no hull or center term,
    v = 0). Boxes [0, 0, 1, 1] and [2, 0, 3, 1] (apart by 1 along x): I = 0, U = 2, hull 3 x 1,
    so GIoU = 1 + 1/3; centers 2 apart, hull diagonal^2 = 9 + 1, so DIoU = 1 + 4/10, and CIoU
    adds alpha v = 0 (equal aspect ratios)."""
    same = torch.tensor([[0.0, 0, 2, 2]])
    apart = torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[2.0, 0, 3, 1]])
    fn = compiled(name)
    assert abs(fn(same, same).item()) < 1e-6
    want = {"giou": 1 + 1 / 3, "diou": 1 + 4 / 10, "ciou": 1 + 4 / 10}[name]
    assert fn(*apart).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("name", REFERENCES)
@pytest.mark.parametrize("backend", TARGETS)
@pytest.mark.parametrize("coords", [3, 5])
def test_a_box_of_the_wrong_size_is_an_input_error(name, backend, coords):
    """float[B, 4] is checked at call time: a 5-coordinate box used to be silently accepted
    by hand-written box losses; here it is an InputError naming the input and the size."""
    fn = compiled(name, backend)
    x = np.ones((3, coords))
    if backend == "torch":
        x = torch.tensor(x)
    with pytest.raises(lossdsl.InputError, match="size"):
        fn(x, x)


@pytest.mark.parametrize("name", REFERENCES)
@pytest.mark.parametrize("backend", TARGETS)
def test_box_losses_on_empty_and_single_box_batches(name, backend):
    """B = 0: the mean of nothing is 0 (torchvision: 0.0 * loss.sum()); B = 1 equals the
    reference's value."""
    fn = compiled(name, backend)
    conv = torch.tensor if backend == "torch" else np.asarray
    empty = np.zeros((0, 4))
    assert float(fn(conv(empty), conv(empty))) == 0.0
    p, t = pairs(7)
    want = REFERENCES[name](p[:1], t[:1]).item()
    assert float(fn(conv(p[:1].numpy()), conv(t[:1].numpy()))) == pytest.approx(want, rel=1e-12)
