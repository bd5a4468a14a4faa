"""Image similarity: SSIM in 1-D, 2-D and 3-D and MS-SSIM (pytorch_msssim; kornia's SSIM loss;
MONAI's SSIMLoss with spatial_dims=2 and 3) and the local
normalized cross-correlation of image registration (MONAI), all over the window ops (blur,
avg_pool, box) of the language.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

from pathlib import Path

import kornia
import monai.losses as monai_losses
import numpy as np
import pytest
import pytorch_msssim
import torch
from reference.monai_ssim import ssim_loss as monai_ssim_loss
from torch_helpers import REDUCTIONS, assert_same, compiled, gen

import lossdsl

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


# ---- ssim over *S: MONAI SSIMLoss, spatial_dims=2 and 3 (tests/reference/monai_ssim.py) -------


@pytest.mark.parametrize(
    "shape", [(2, 3, 16, 13), (1, 2, 11, 12), (2, 1, 12, 14, 11), (1, 2, 13, 11, 15)]
)
def test_ssim_matches_monai_in_2d_and_3d(shape, reduction, other_backend):
    """One spec for images and volumes (*S): values and gradients against MONAI's SSIMLoss
    transcribed in float64 (MONAI computes in float32), and the jax and numpy modules."""
    x, y = _images(shape, 40)
    sd = len(shape) - 2
    fn = compiled("ssim")
    assert_same(
        lambda x, y: fn(x, y, reduction=reduction),
        lambda x, y: monai_ssim_loss(x, y, sd, reduction=reduction),
        {"x": x, "y": y},
        ["x", "y"],
    )
    got = compiled("ssim", other_backend)(x.numpy(), y.numpy(), reduction=reduction)
    want = monai_ssim_loss(x, y, sd, reduction=reduction).numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", [(2, 3, 16, 13), (2, 1, 12, 14, 11)])
def test_ssim_agrees_with_monai_itself_to_its_float32(shape):
    """monai.losses.SSIMLoss (MONAI 1.6.1) casts its inputs to float32: the float64 spec agrees
    to that rounding (5e-7 measured), with data_range=255 too."""
    x, y = _images(shape, 41)
    sd = len(shape) - 2
    for r in (1.0, 255.0):
        ref = monai_losses.SSIMLoss(spatial_dims=sd, data_range=r)(x * r, y * r)
        ours = compiled("ssim")(x * r, y * r, data_range=r)
        np.testing.assert_allclose(ours.item(), ref.item(), rtol=5e-6)


def test_ssim_over_star_s_takes_one_to_three_spatial_axes():
    """A 1-D signal (the separable blur along its one axis, as the 2-D one along each: checked
    against a 2-D image of one row blurred the same way by hand below), and four spatial axes
    an InputError on every backend (MONAI takes 2 or 3; torch's convolutions stop at 3)."""
    x, y = _images((2, 1, 4, 3, 12, 11), 42)
    for backend in ("torch", "jax", "numpy"):
        fn = compiled("ssim", backend)
        args = (x, y) if backend == "torch" else (x.numpy(), y.numpy())
        with pytest.raises(lossdsl.InputError, match="1 to 3 of them"):
            fn(*args)
    # 1-D: ssim of rows equals the 2-D formula with a window of one tap across (a Gaussian over
    # one entry is 1), from the transcription's own convolution
    x, y = _images((2, 3, 40), 43)
    one = torch.nn.functional.conv1d
    g = torch.exp(-((torch.arange(11.0) - 5) ** 2) / (2 * 1.5**2))
    k = (g / g.sum()).reshape(1, 1, 11).expand(3, 1, 11)

    def blur(v):
        return one(v, k, groups=3)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    m = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * (2 * sxy + c2) / (sxx + syy + c2)
    want = 1 - m.reshape(2, -1).mean(1)
    torch.testing.assert_close(compiled("ssim")(x, y, reduction="none"), want, rtol=1e-12, atol=0)


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
    """kornia's default padding="same" reflects the border: the spec's padding="same" (its
    blurs' padding="reflect")."""
    fn = lossdsl.load("ssim").compile("torch", padding="same")
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


@pytest.mark.parametrize(
    "size,sigma,shape", [(7, 1.0, (2, 2, 120, 130)), (9, 2.0, (1, 2, 141, 150))]
)
def test_ssim_and_ms_ssim_window_params_match_pytorch_msssim(size, sigma, shape):
    """win_size / win_sigma: pytorch_msssim.ssim and ms_ssim with win=_win(C, size, sigma) (its
    own window, transcribed in float64), values and gradients; the coarsest level of ms_ssim
    needs (size - 1) * 2^4 < side, pytorch_msssim's assertion."""
    x, y = _images(shape, 11, noise=0.1)
    win = _win(shape[1], size, sigma)
    kw = dict(win_size=size, win_sigma=sigma)
    for name, peer in (("ssim", pytorch_msssim.ssim), ("ms_ssim", pytorch_msssim.ms_ssim)):
        fn = compiled(name)
        assert_same(
            lambda x, y: fn(x, y, reduction="none", **kw),
            lambda x, y: 1 - peer(x, y, data_range=1.0, size_average=False, win=win),
            {"x": x, "y": y},
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
