"""mae_masked_mse against the official forward_loss (facebookresearch/mae models_mae.py,
transcribed in tests/reference/mae_official.py): values and gradients, float64, two shapes,
both norm_pix_loss settings, and a nothing-masked batch (declared 0, official NaN)."""

from __future__ import annotations

import pytest
import torch
from reference.mae_official import forward_loss

import lossdsl

torch.set_default_dtype(torch.float64)


@pytest.mark.parametrize("b,n,p", [(2, 16, 12), (3, 5, 48)])
@pytest.mark.parametrize("norm", [True, False])
def test_mae_matches_official(b, n, p, norm):
    g = torch.Generator().manual_seed(b * n * p)
    pred, target = torch.randn(b, n, p, generator=g), torch.randn(b, n, p, generator=g)
    mask = (torch.rand(b, n, generator=g) < 0.75).double()  # mask ratio 0.75, 1 = removed
    fn = lossdsl.load("mae_masked_mse").compile("torch")
    a = [pred.clone().requires_grad_(True), target.clone().requires_grad_(True)]
    r = [pred.clone().requires_grad_(True), target.clone().requires_grad_(True)]
    ours = fn(a[0], a[1], mask, norm_pix_loss=norm)
    ref = forward_loss(r[1], r[0], mask, norm_pix_loss=norm)
    torch.testing.assert_close(ours, ref)
    for x, y in zip(torch.autograd.grad(ours, a), torch.autograd.grad(ref, r)):
        torch.testing.assert_close(x, y)


def test_mae_nothing_masked_is_zero():
    pred = torch.randn(2, 4, 3, requires_grad=True)
    out = lossdsl.load("mae_masked_mse").compile("torch")(
        pred, torch.randn(2, 4, 3), torch.zeros(2, 4)
    )
    (g,) = torch.autograd.grad(out, [pred])
    assert out.item() == 0.0 and torch.all(g == 0)
