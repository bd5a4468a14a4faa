"""Tier-3 losses (CATALOG.md section 5) against transcriptions of their official code in
tests/reference/ (each file names its repository, file and commit). Values and gradients in
float64, two shapes, every reduction, plus edge cases; each expected value names its source."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference.gram_style_official import gram_matrix, style_loss
from reference.r3gan_official import discriminator_loss, generator_loss
from reference.spectral_decoupling_official import binary_sd, multiclass_sd
from reference.stablemax_official import stablemax_cross_entropy
from reference.tv_srgan import tv_loss as srgan_tv_loss
from torch_helpers import assert_same, gen, logits_target

import lossdsl

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]
REDUCTIONS = ["none", "sum", "mean"]


# ---- stablemax_ce: LucasPrietoAl/grokking-at-the-edge-of-numerical-stability utils.py ----------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_stablemax_ce_matches_official(shape, reduction):
    x, y = logits_target(shape, seed=1)
    fn = lossdsl.load("stablemax_ce").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, reduction=reduction),
        lambda x, y: stablemax_cross_entropy(x, y, reduction=reduction),
        {"x": x, "y": y},
        ["x"],
    )


def test_stablemax_ce_hand_values_and_large_logits():
    # by hand: s(2) = 3, s(0) = 1, s(-1) = 1/2 -> P_0 = 3 / 4.5, loss = log(1.5)
    fn = lossdsl.load("stablemax_ce").compile("torch")
    x = torch.tensor([[2.0, 0.0, -1.0]])
    torch.testing.assert_close(fn(x, torch.tensor([0])), torch.tensor(math.log(1.5)))
    # large logits: the official value stays finite where softmax CE would saturate; ours too
    x = torch.tensor([[1e30, -1e30, 0.0], [1.0, 1.0 + 1e-30, 5.0]], requires_grad=True)
    y = torch.tensor([1, 0])
    out = fn(x, y, reduction="none")
    ref = stablemax_cross_entropy(x.detach(), y, reduction="none")
    torch.testing.assert_close(out.detach(), ref)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all()


def test_stablemax_ce_no_nan_gradient_at_official_pole():
    # the official branch 1 / (1 - x + eps) at x = 1 is 1e30; in float32 (the official default
    # dtype) its derivative overflows and torch.where's gradient is NaN upstream; ours evaluates
    # that branch at min(x, 0)
    fn = lossdsl.load("stablemax_ce").compile("torch")
    x = torch.tensor([[1.0, 0.5, -2.0]], dtype=torch.float32, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x, torch.tensor([2])), x)
    assert torch.isfinite(g).all()
    xr = x.detach().clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(stablemax_cross_entropy(xr, torch.tensor([2])), xr)
    assert torch.isnan(gr[0, 0])  # the upstream pitfall this spec avoids
    torch.testing.assert_close(g[0, 1:], gr[0, 1:])  # the other entries agree
    # float64 reference, where upstream is finite: same gradient, s'(1) = 1
    x64 = x.detach().double().requires_grad_(True)
    (g64,) = torch.autograd.grad(stablemax_cross_entropy(x64, torch.tensor([2])), x64)
    torch.testing.assert_close(g.double(), g64, rtol=1e-6, atol=1e-7)


# ---- relativistic_gan: brownvc/R3GAN R3GAN/Trainer.py ------------------------------------------


@pytest.mark.parametrize("n", [8, 33])
@pytest.mark.parametrize("generator", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_relativistic_gan_matches_official(n, generator, reduction):
    g = gen(n)
    real, fake = torch.randn(n, generator=g) * 4, torch.randn(n, generator=g) * 4
    fn = lossdsl.load("relativistic_gan").compile("torch")
    ref = generator_loss if generator else discriminator_loss
    assert_same(
        lambda real, fake: fn(real, fake, generator=generator, reduction=reduction),
        lambda real, fake: ref(real, fake, reduction=reduction),
        {"real": real, "fake": fake},
        ["real", "fake"],
    )


def test_relativistic_gan_edges():
    fn = lossdsl.load("relativistic_gan").compile("torch")
    # equal logits: softplus(0) = log 2 for both players (by hand)
    z = torch.zeros(4)
    torch.testing.assert_close(fn(z, z), torch.tensor(math.log(2)))
    torch.testing.assert_close(fn(z, z, generator=True), torch.tensor(math.log(2)))
    # huge gaps stay finite: softplus(1e4) = 1e4, softplus(-1e4) = 0 (by hand)
    real, fake = torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 1e4])
    torch.testing.assert_close(fn(real, fake, reduction="none"), torch.tensor([0.0, 2e4]))
    # symmetry: G's loss is D's loss with real and fake swapped
    g = gen(3)
    a, b = torch.randn(9, generator=g), torch.randn(9, generator=g)
    torch.testing.assert_close(fn(a, b, generator=True), fn(b, a))


# ---- spectral_decoupling: mpezeshki/Gradient_Starvation ----------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lam,gamma", [(0.003, 0.0), (0.5, 0.0), (0.1, 1.5)])
def test_spectral_decoupling_matches_official(shape, lam, gamma):
    x, y = logits_target(shape, seed=2)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, lam=lam, gamma=gamma),
        lambda x, y: multiclass_sd(x, y, sd_coef=lam, gamma=gamma),
        {"x": x, "y": y},
        ["x"],
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_spectral_decoupling_none_and_sum(shape):
    # per sample: F.cross_entropy(reduction="none") + lam * mean_C z^2 (official penalty, per row)
    x, y = logits_target(shape, seed=4)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    want = F.cross_entropy(x, y, reduction="none") + 0.2 * (x**2).mean(dim=1)
    torch.testing.assert_close(fn(x, y, lam=0.2, reduction="none"), want)
    torch.testing.assert_close(fn(x, y, lam=0.2, reduction="sum"), want.sum())


def test_spectral_decoupling_binary_official_equivalence():
    # the official binary form (one logit z, labels +-1) with mean(z^2) equals the spec on two
    # logits [0, z] with lam doubled: CE([0, z], y) = log(1 + exp(-y z)), mean_C [0, z]^2 = z^2 / 2
    g = gen(5)
    z = torch.randn(12, generator=g) * 2
    y01 = torch.randint(0, 2, (12,), generator=g)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    two = torch.stack([torch.zeros_like(z), z], dim=1)
    torch.testing.assert_close(fn(two, y01, lam=0.006), binary_sd(z, 2.0 * y01 - 1.0, 0.003))


def test_spectral_decoupling_lam_zero_is_cross_entropy():
    x, y = logits_target((7, 4), seed=6)
    fn = lossdsl.load("spectral_decoupling").compile("torch")
    torch.testing.assert_close(fn(x, y, lam=0.0), F.cross_entropy(x, y))


# ---- gram_style: pytorch/examples fast_neural_style --------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (5, 8, 7, 6)])
def test_gram_style_matches_official(shape):
    g = gen(sum(shape))
    a, b = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    fn = lossdsl.load("gram_style").compile("torch")
    assert_same(
        lambda a, b: fn(a, b),
        lambda a, b: style_loss(a, b),
        {"a": a, "b": b},
        ["a", "b"],
    )
    # reduction="none": per-image mean over C * C of the squared Gram difference
    d = (gram_matrix(a) - gram_matrix(b)) ** 2
    torch.testing.assert_close(fn(a, b, reduction="none"), d.mean(dim=(1, 2)))
    torch.testing.assert_close(fn(a, b, reduction="sum"), d.mean(dim=(1, 2)).sum())


def test_gram_style_edges():
    fn = lossdsl.load("gram_style").compile("torch")
    g = gen(9)
    a = torch.randn(3, 4, 5, 5, generator=g)
    # identical features: 0 (by definition); sign flip of a whole map leaves G unchanged
    torch.testing.assert_close(fn(a, a), torch.tensor(0.0))
    torch.testing.assert_close(fn(a, -a), torch.tensor(0.0))
    # one spatial axis (*S of rank 1): G = f f^T / (C S) by hand for a 1 x 2 x 2 map
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # B=1, C=2, S=2
    gram = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    want = (gram**2).mean()
    torch.testing.assert_close(fn(f, torch.zeros_like(f)), want)
    # batch of images: each image's Gram matrix is its own (no cross-image terms)
    b = torch.randn(3, 4, 5, 5, generator=g)
    per = torch.stack([fn(a[i : i + 1], b[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(fn(a, b, reduction="none"), per)


# ---- tv: kornia.losses.total_variation (kornia 0.9.0) and the SRGAN TVLoss of iSeeBetter ----

TV_SHAPES = [(2, 3, 5, 7), (1, 2, 8, 4)]


@pytest.mark.parametrize("shape", TV_SHAPES)
@pytest.mark.parametrize("kornia_reduction", ["sum", "mean"])
def test_tv_matches_kornia(shape, kornia_reduction):
    from kornia.losses import total_variation

    x = torch.randn(*shape, generator=gen(7))
    fn = lossdsl.load("tv").compile("torch")
    normalize = kornia_reduction == "mean"
    assert_same(
        lambda x: fn(x, normalize=normalize, reduction="none"),
        lambda x: total_variation(x, reduction=kornia_reduction),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("shape", TV_SHAPES)
def test_tv_squared_matches_srgan_tvloss(shape):
    x = torch.randn(*shape, generator=gen(8))
    fn = lossdsl.load("tv").compile("torch")
    assert_same(lambda x: fn(x, p=2.0, scale=2.0), srgan_tv_loss, {"x": x}, ["x"])


def test_tv_hand_values_and_constant_image():
    fn = lossdsl.load("tv").compile("torch")
    # by hand: rows [0, 1], [3, 5]: |dh| = 3, 4 (mean 3.5); |dw| = 1, 2 (mean 1.5)
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    torch.testing.assert_close(fn(x), torch.tensor(5.0))
    torch.testing.assert_close(fn(x, normalize=False), torch.tensor(10.0))
    # a constant image has zero variation and a zero (not NaN) gradient, for p = 1 and p = 2
    c = torch.full((2, 1, 3, 3), 0.5, requires_grad=True)
    for p in (1.0, 2.0):
        (g,) = torch.autograd.grad(fn(c, p=p), c)
        assert torch.equal(g, torch.zeros_like(g))
