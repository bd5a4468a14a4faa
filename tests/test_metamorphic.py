"""Metamorphic checks (issue 3): relations a loss must satisfy whatever its implementation.
Each relation names where it comes from (a paper's equation, or plain algebra)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import lossdsl

pytestmark = pytest.mark.usefixtures("float64_default")  # float64 tensors, restored after


def xy(b=12, c=5, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g) * scale, torch.randint(0, c, (b,), generator=g)


# Softmax losses see logits only through softmax/log_softmax: adding a constant per row
# changes nothing (softmax(x + c) = softmax(x)).
SHIFT_INVARIANT = ["cross_entropy", "focal", "poly1", "label_smoothing_ce"]


@pytest.mark.parametrize("name", SHIFT_INVARIANT)
def test_softmax_losses_are_shift_invariant(name):
    x, y = xy()
    shift = torch.randn(12, 1, generator=torch.Generator().manual_seed(1)) * 100
    fn = lossdsl.load(name).compile("torch")
    torch.testing.assert_close(fn(x + shift, y, reduction="none"), fn(x, y, reduction="none"))


@pytest.mark.parametrize(
    "name,params",
    [
        ("focal", {"gamma": 0.0}),
        ("poly1", {"epsilon": 0.0}),
        ("label_smoothing_ce", {"epsilon": 0.0}),
    ],
)
def test_reduces_to_cross_entropy(name, params):
    """FL with gamma=0 (Lin et al. 2017, eq. 5), Poly-1 with eps=0 (Leng et al. 2022, eq. 3),
    label smoothing with eps=0 are all CE."""
    x, y = xy(seed=2)
    got = lossdsl.load(name).compile("torch")(x, y, **params, reduction="none")
    torch.testing.assert_close(got, F.cross_entropy(x, y, reduction="none"))


def test_masked_is_sliced_and_ignored_get_zero_gradient():
    """cross_entropy with ignore_index: the mean over a masked batch is the mean over the batch
    with the ignored rows removed, and ignored rows get exactly zero gradient."""
    x, y = xy(b=10, seed=3)
    w = torch.rand(5, generator=torch.Generator().manual_seed(4))
    keep = torch.tensor([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=torch.bool)
    y_masked = torch.where(keep, y, torch.full_like(y, -100))
    fn = lossdsl.load("cross_entropy").compile("torch")
    for weight in (None, w):
        xm = x.clone().requires_grad_(True)
        masked = fn(xm, y_masked, weight)
        sliced = fn(x[keep], y[keep], weight)
        torch.testing.assert_close(masked, sliced)
        (g,) = torch.autograd.grad(masked, [xm])
        assert torch.all(g[~keep] == 0) and torch.all(g[keep].abs().sum(1) > 0)


def test_mae_masked_is_sliced():
    """mae_masked_mse's masked mean equals the plain per-patch mean over the masked patches."""
    g = torch.Generator().manual_seed(5)
    pred, target = torch.randn(2, 6, 4, generator=g), torch.randn(2, 6, 4, generator=g)
    mask = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 1]], dtype=torch.float64)
    fn = lossdsl.load("mae_masked_mse").compile("torch")
    full = fn(pred, target, mask, norm_pix_loss=False)
    sel = mask.bool()
    torch.testing.assert_close(full, ((pred[sel] - target[sel]) ** 2).mean())


def test_supcon_is_invariant_to_batch_order():
    """Permuting the batch permutes the per-anchor losses (SupCon is a set function)."""
    f = F.normalize(torch.randn(8, 2, 5, generator=torch.Generator().manual_seed(6)), dim=-1)
    y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(7))
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(8))
    fn = lossdsl.load("supcon").compile("torch")
    torch.testing.assert_close(
        fn(f[perm], y[perm], reduction="none"), fn(f, y, reduction="none")[perm]
    )
