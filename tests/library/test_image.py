"""Image similarity: SSIM and MS-SSIM (pytorch_msssim; kornia's SSIM loss) and the local
normalized cross-correlation of image registration (MONAI), all over the window ops (blur,
avg_pool, box) of the language.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_helpers import REDUCTIONS, assert_same, compiled, gen

import lossdsl

pytorch_msssim = pytest.importorskip("pytorch_msssim")
kornia = pytest.importorskip("kornia")
monai_losses = pytest.importorskip("monai.losses")

SPECS = Path(__file__).resolve().parents[2] / "specs"


def _images(shape, seed, noise=0.2):
    """x in [0, 1) and y a noisy copy of it, clamped to [0, 1]: similar images (independent
    noise has SSIM about 0, where MS-SSIM's relu(cs)^w is at its kink)."""
    g = gen(seed)
    x = torch.rand(*shape, generator=g)
    return x, (x + noise * torch.randn(*shape, generator=g)).clamp(0, 1)


def _win(channels, size=11, sigma=1.5):
    """pytorch_msssim's _fspecial_gauss_1d window in float64: its own builds the taps in
    float32 (arange(dtype=torch.float)) and casts them, 1e-8 off the float64 values."""
    c = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(c**2) / (2 * sigma**2))
    return (g / g.sum()).reshape(1, 1, 1, size).repeat(channels, 1, 1, 1)


def _variant(name, old, new):
    """A shipped spec's source with one convention changed (kornia's padding, MONAI's window)."""
    text = (SPECS / f"{name}.loss").read_text()
    assert text.count(old) >= 1, old
    return lossdsl.parse(text.replace(old, new))


def _per_image(v, reduction):
    return {"none": v, "sum": v.sum(), "mean": v.mean()}[reduction]


# ---- ssim: pytorch_msssim.ssim (values and gradients) ----------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (3, 1, 23, 17), (1, 2, 11, 40)])
def test_ssim_matches_pytorch_msssim(shape, reduction):
    x, y = _images(shape, 1)
    fn = compiled("ssim")
    for rng in (1.0, 255.0):
        assert_same(
            lambda x, y: fn(x, y, data_range=rng, reduction=reduction),
            lambda x, y: _per_image(
                1
                - pytorch_msssim.ssim(x, y, data_range=rng, size_average=False, win=_win(shape[1])),
                reduction,
            ),
            {"x": x * (rng if rng > 1 else 1), "y": y * (rng if rng > 1 else 1)},
            ["x", "y"],
        )


def test_ssim_with_the_librarys_float32_window_agrees_to_its_rounding():
    """pytorch_msssim's default window (float32 taps cast to float64): 2e-7 relative here."""
    x, y = _images((2, 3, 20, 20), 2)
    ours = compiled("ssim")(x, y)
    ref = 1 - pytorch_msssim.ssim(x, y, data_range=1.0)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)


def test_ssim_of_an_image_with_itself_is_zero_and_stationary():
    x, _ = _images((2, 2, 15, 15), 3)
    xr = x.clone().requires_grad_(True)
    v = compiled("ssim")(xr, x)
    (g,) = torch.autograd.grad(v, xr)
    assert abs(float(v)) < 1e-15 and float(g.abs().max()) < 1e-12


def test_ssim_below_the_window_is_an_input_error():
    """pytorch_msssim skips the blur along a side below 11 (a warning); the spec raises."""
    x, y = _images((1, 1, 10, 30), 4)
    with pytest.raises(lossdsl.InputError, match="needs at least 11"):
        compiled("ssim")(x, y)


# ---- ssim: kornia.losses.ssim_loss (valid padding; the reflect-padded variant) ---------------


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (3, 1, 19, 24)])
def test_ssim_is_twice_kornias_valid_ssim_loss(shape):
    """kornia: mean(clamp((1 - map) / 2, 0, 1)) with eps = 1e-12 in the denominator."""
    x, y = _images(shape, 5)
    fn = compiled("ssim")
    assert_same(
        lambda x, y: fn(x, y) / 2,
        lambda x, y: kornia.losses.ssim_loss(x, y, 11, max_val=1.0, padding="valid"),
        {"x": x, "y": y},
        ["x", "y"],
        rtol=1e-9,
    )


def test_ssim_with_reflect_padding_is_kornias_default():
    """kornia's default padding="same" reflects the border: the spec with padding="reflect"."""
    spec = _variant("ssim", "size=11)", 'size=11, padding="reflect")')
    fn = spec.compile("torch")
    x, y = _images((2, 3, 14, 17), 6)
    assert_same(
        lambda x, y: fn(x, y) / 2,
        lambda x, y: kornia.losses.ssim_loss(x, y, 11, max_val=1.0),
        {"x": x, "y": y},
        ["x", "y"],
        rtol=1e-9,
    )


# ---- ms_ssim: pytorch_msssim.ms_ssim ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 176, 176), (1, 2, 161, 190)])
def test_ms_ssim_matches_pytorch_msssim(shape, reduction):
    """Odd sides too (161 -> 81 -> 41 -> 21 -> 11: pytorch_msssim pads a zero before)."""
    x, y = _images(shape, 7, noise=0.1)
    fn = compiled("ms_ssim")
    assert_same(
        lambda x, y: fn(x, y, reduction=reduction),
        lambda x, y: _per_image(
            1
            - pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win=_win(shape[1])),
            reduction,
        ),
        {"x": x, "y": y},
        ["x", "y"],
    )


def test_ms_ssim_data_range_and_constants():
    x, y = _images((1, 1, 170, 170), 8, noise=0.1)
    fn = compiled("ms_ssim")
    assert_same(
        lambda x, y: fn(x, y, data_range=255.0, k2=0.05),
        lambda x, y: (
            1 - pytorch_msssim.ms_ssim(x, y, data_range=255.0, K=(0.01, 0.05), win=_win(1))
        ),
        {"x": x * 255, "y": y * 255},
        ["x", "y"],
    )


def test_ms_ssim_below_160_is_an_input_error():
    """pytorch_msssim asserts the smaller side > 160 ((11 - 1) * 2^4); so does the spec."""
    x, y = _images((1, 1, 160, 200), 9)
    with pytest.raises(lossdsl.InputError, match="needs at least"):
        compiled("ms_ssim")(x, y)


# ---- lncc: monai.losses.LocalNormalizedCrossCorrelationLoss ----------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 12, 12), (3, 1, 17, 9)])
@pytest.mark.parametrize("smooth", [(0.0, 1e-5), (1e-3, 1e-2)])
def test_lncc_matches_monai(shape, reduction, smooth):
    x, y = _images(shape, 10, noise=0.3)
    nr, dr = smooth
    ref = monai_losses.LocalNormalizedCrossCorrelationLoss(
        spatial_dims=2, kernel_size=9, reduction=reduction, smooth_nr=nr, smooth_dr=dr
    )
    fn = compiled("lncc")
    assert_same(
        lambda p, t: fn(p, t, smooth_nr=nr, smooth_dr=dr, reduction=reduction),
        lambda p, t: ref(p, t),
        {"p": x, "t": y},
        ["p", "t"],
    )


def test_lncc_with_monais_default_window_of_3():
    """MONAI's default kernel_size=3: the spec with box(..., 3, ...) and n = 9."""
    text = (SPECS / "lncc.loss").read_text().replace("n = 81.0", "n = 9.0")
    fn = lossdsl.parse(text.replace("9, over=(H, W)", "3, over=(H, W)")).compile("torch")
    x, y = _images((2, 2, 10, 13), 11, noise=0.3)
    for r in REDUCTIONS:
        ref = monai_losses.LocalNormalizedCrossCorrelationLoss(spatial_dims=2, reduction=r)
        assert_same(
            lambda p, t, r=r: fn(p, t, reduction=r),
            lambda p, t, ref=ref: ref(p, t),
            {"p": x, "t": y},
            ["p", "t"],
        )


def test_lncc_of_an_affine_copy_is_minus_one_inside():
    """t = 2 p + 1: the windows' correlation is 1 wherever the variances pass the floor."""
    p, _ = _images((1, 1, 20, 20), 12)
    v = compiled("lncc")(p, 2 * p + 1, reduction="none")
    inner = v[..., 4:-4, 4:-4]  # windows inside the image: no zero padding in them
    np.testing.assert_allclose(inner.numpy(), -1.0, rtol=1e-9)


# ---- every backend: the torch module above is the one checked against the references --------


@pytest.mark.parametrize(
    "name,shape",
    [("ssim", (2, 2, 13, 12)), ("lncc", (2, 2, 10, 11)), ("ms_ssim", (1, 1, 161, 165))],
)
def test_image_specs_agree_on_every_backend(name, shape, other_backend):
    from helpers import call, grads, rel_err

    x, y = _images(shape, 13, noise=0.1)
    spec = lossdsl.load(name)
    names = [d.var.name for d in spec.program().inputs]
    data = dict(zip(names, (x.numpy(), y.numpy())))
    want = call("torch", spec.compile("torch"), data, "float64", reduction="none")
    got = call(other_backend, spec.compile(other_backend), data, "float64", reduction="none")
    assert rel_err(got, want) <= 1e-12
    if other_backend != "numpy":
        gw = grads("torch", spec.compile("torch"), data, names, "float64")
        gg = grads(other_backend, spec.compile(other_backend), data, names, "float64")
        for k in names:
            assert rel_err(gg[k], gw[k]) <= 1e-10, k
