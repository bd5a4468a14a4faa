"""DESIGN.md section 3's examples compile (tests/design/, as written or in the refined syntax
noted in each file) and compute what the shipped specs and references compute."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import lossdsl
from lossdsl.codegen import TARGETS

DESIGN = Path(__file__).parent / "design"
pytestmark = pytest.mark.usefixtures("float64_default")  # float64 tensors, restored after


@pytest.mark.parametrize("path", sorted(DESIGN.glob("*.loss")), ids=lambda p: p.stem)
def test_design_example_compiles_on_every_backend(path):
    spec = lossdsl.load(str(path))
    for backend in TARGETS:
        assert f"def {spec.name}(" in spec.source(backend)


def test_design_focal_and_kd_are_the_shipped_specs():
    x, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    t = torch.randn(6, 4)
    for name, args in (("focal", (x, y)), ("kd", (x, t))):
        a = lossdsl.load(str(DESIGN / f"{name}.loss")).compile("torch")(*args)
        b = lossdsl.load(name).compile("torch")(*args)
        torch.testing.assert_close(a, b)


def test_design_supcon_is_official_supcon_on_normalized_features():
    """The design's supcon normalizes inside and has one view; on one view of normalized
    features it equals the shipped (official-convention) spec with base_temperature = T."""
    f, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    a = lossdsl.load(str(DESIGN / "supcon.loss")).compile("torch")(f, y)
    b = lossdsl.load("supcon").compile("torch")(F.normalize(f, dim=1)[:, None], y)
    torch.testing.assert_close(a, b)


def test_design_focal_dice_is_focal_plus_weighted_dice():
    """As written: focal [B, *S] + w * dice [B] broadcasts, and the mean over all elements is
    mean(focal) + w * mean(dice), since every sample has the same number of pixels."""
    x, y = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    got = lossdsl.load(str(DESIGN / "focal_dice.loss")).compile("torch")(x, y)
    focal = lossdsl.load(str(DESIGN / "focal.loss")).compile("torch")
    dice = lossdsl.load(str(DESIGN / "dice.loss")).compile("torch")
    flat_x = x.permute(0, 2, 3, 1).reshape(-1, 3)
    want = focal(flat_x, y.reshape(-1)) + 0.5 * dice(x, y)
    torch.testing.assert_close(got, want)
