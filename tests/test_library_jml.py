"""jaccard_metric against the official JaccardMetricLoss (zifuwanggg/JDTLosses, transcribed in
tests/reference/jml_official.py): values and gradients in float64, two shapes, a class absent
from the batch (excluded from the mean), log_loss and temperature variants."""

from __future__ import annotations

import pytest
import torch
from reference.jml_official import jaccard_metric_loss

import lossdsl

torch.set_default_dtype(torch.float64)


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
