"""cs_divergence against the official CSD loss (JiahaoZhang666/CSD code/utils/metric.py,
transcribed in tests/reference/csd_official.py): values and gradients in float64 for all three
modalities, two shapes, two temperatures (the official create_target_matrix casts to float32;
the transcription keeps float64 so that the comparison is exact)."""

from __future__ import annotations

import pytest
import torch
from reference.csd_official import cmcl_loss

import lossdsl

torch.set_default_dtype(torch.float64)


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
