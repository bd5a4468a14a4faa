"""Peer parity with kornia 0.9.0's image-similarity losses beyond tests/peers/test_kornia.py:
`ssim_loss` / `ssim3d_loss` with kornia's default padding="same" (reflected borders) and its eps
(the `ssim` spec's padding="same", eps=1e-12), and `MS_SSIMLoss` (Zhao et al.'s MS-SSIM + L1 mix:
the `ms_ssim_l1` spec).

Golden values and cases are transcribed from kornia/kornia tests/losses/test_ssim.py (stored
commit 051261cd97dec88fb582307bd7cf81798090067f, the newest the tools hold; its TestMS_SSIMLoss
goldens are for the per-scale masks of the installed 0.9.0, which the installed kornia
reproduces: checked below). Every setting also runs against the installed kornia itself, values
and autograd gradients in float64 (MS_SSIMLoss built under torch's float64 default, the fixture
of tests/peers/conftest.py: its Gaussian masks are then float64 too). Exclusions: EXCLUDED below
(and docs/peers/kornia.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossdsl

kornia = pytest.importorskip("kornia")
import kornia.losses as KL  # noqa: E402

KORNIA_SSIM = "kornia/kornia tests/losses/test_ssim.py (051261cd)"

EXCLUDED = {
    "test_ssim.py::TestSSIM3DLoss::test_ssim (2 x 16 x 16 and 2 x 15 x 20 volumes), "
    "test_cardinality's 2 x 4 x 2 x 5 x 5": "a depth of 2 is below the entries a 5- or 11-tap "
    "reflect pads on a side (2, 5): the installed kornia 0.9.0 raises itself (torch's F.pad: "
    "'Padding size should be less than the corresponding input dimension'), and so does the "
    "spec (an InputError); its golden 0.9999 (ones vs zeros) is not (1 - SSIM) / 2 of the "
    "installed kornia either (0.49995)",
    "test_ssim.py::TestMS_SSIMLoss half / integer / bool / complex / mixed-dtype / autocast "
    "tests, test_load_legacy_state_dict, test_jit, test_exception, test_cardinality": "dtype "
    "promotion, state_dict, TorchScript and argument checks of kornia's module (the float64 "
    "reference of test_high_pixel_values_use_float32_moments runs, against kornia)",
    "test_ssim.py::TestMS_SSIMLoss batch-of-one broadcast": "x and y must have one batch size",
    "test_ssim.py::TestMS_SSIMLoss::test_gradcheck": "torch.autograd.gradcheck of kornia; the "
    "spec's gradients are compared with kornia's on 5 x 5 images instead",
}


def _grads(fn, *xs):
    xs = [x.detach().clone().requires_grad_(True) for x in xs]
    out = fn(*xs)
    return out.detach(), torch.autograd.grad(out.sum(), xs)


def _close(a, b, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def _ssim(padding="same"):
    return lossdsl.load("ssim").compile("torch", padding=padding)


# ---- ssim_loss / ssim3d_loss, padding="same" ---------------------------------------------------

SSIM_SHAPES = [(2, 3, 13, 14), (1, 1, 10, 16), (2, 4, 8, 15), (1, 2, 11, 12, 13), (2, 1, 6, 7, 8)]


@pytest.mark.parametrize("shape", SSIM_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("max_val", [1.0, 2.0])
def test_ssim_same_matches_kornia(shape, max_val):
    """kornia.losses.ssim_loss / ssim3d_loss(x, y, 11, max_val) (padding='same', eps=1e-12) =
    ssim(x, y, data_range=max_val, padding='same', eps=1e-12) / 2: values, both gradients, and
    each reduction (kornia's 'none' map averaged over (C, *S) is the spec's 'none' / 2)."""
    g = torch.Generator().manual_seed(len(shape) * 10 + shape[-1])
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    peer = KL.ssim_loss if len(shape) == 4 else KL.ssim3d_loss
    fn = _ssim()
    kw = dict(data_range=max_val, eps=1e-12)
    a, ga = _grads(lambda u, v: fn(u, v, **kw) / 2, x, y)
    b, gb = _grads(lambda u, v: peer(u, v, 11, max_val=max_val), x, y)
    _close(a, b)
    for u, v in zip(ga, gb):
        _close(u, v, rtol=1e-8, atol=1e-14)
    none = peer(x, y, 11, max_val=max_val, reduction="none")
    _close(fn(x, y, reduction="none", **kw) / 2, none.flatten(1).mean(1))
    _close(fn(x, y, reduction="sum", **kw) / 2 * none[0].numel(), none.sum())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(1, 1, 10, 16), (2, 4, 8, 15)])
def test_ssim_kornia_self_is_zero(shape, reduction):
    """kornia's TestSSIMLoss::test_ssim at window_size 11: ssim_loss(img, img) is 0 for every
    reduction (kornia's golden: zeros, to torch.testing's float64 tolerance 1e-7: eps = 1e-12
    leaves 1 - den / (den + eps) ~ 1e-11), padding='same' on images smaller than the window."""
    img = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = _ssim()(img, img, eps=1e-12, reduction=reduction)
    _close(got, torch.zeros_like(got), rtol=1e-7, atol=1e-7)
    _close(_ssim()(img, img, reduction=reduction), torch.zeros_like(got), atol=1e-14)


def test_ssim_same_keeps_defaults_and_needs_the_reflect_margin():
    """The default stays pytorch_msssim's 'valid' form; 'same' needs each axis above 5 (torch's
    reflect pad of 5), a smaller one is an InputError as in kornia (a RuntimeError there)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 12, 13, generator=g, dtype=torch.float64)
    y = torch.rand(1, 1, 12, 13, generator=g, dtype=torch.float64)
    base = lossdsl.load("ssim").compile("torch")
    _close(base(x, y), _ssim("valid")(x, y))
    _close(base(x, y) / 2, KL.ssim_loss(x, y, 11, padding="valid", eps=0.0))
    small = torch.rand(1, 1, 2, 16, 16, generator=g, dtype=torch.float64)
    with pytest.raises(lossdsl.LossError):
        _ssim()(small, small)
    with pytest.raises(RuntimeError):
        KL.ssim3d_loss(small, small, 11)


def test_ssim_same_jax_agrees_with_torch():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 2, 9, 10, generator=g, dtype=torch.float64)
    y = torch.rand(2, 2, 9, 10, generator=g, dtype=torch.float64)
    j = lossdsl.load("ssim").compile("jax", padding="same")
    _close(
        np.asarray(j(x.numpy(), y.numpy(), eps=1e-12, reduction="none")),
        _ssim()(x, y, eps=1e-12, reduction="none"),
    )


# window sizes other than 11 (kornia's window_size; the spec's win_size): kornia's own cases
# (test_ssim.py: TestSSIMLoss::test_module 1 x 2 x 3 x 4 at 5, test_gradcheck 1 x 1 x 5 x 4 at 3;
# TestSSIM3DLoss::test_smoke 1 x 1 x 2 x 4 x 3 at 3, test_module 1 x 2 x 3 x 4 x 5 at 5,
# test_gradcheck 1 x 1 x 5 x 4 x 3 at 3, test_cardinality 1 x 2 x 3 x 5 x 5 at 5) and more
WINDOW_CASES = [
    ((1, 2, 3, 4), 5),
    ((1, 1, 5, 4), 3),
    ((1, 1, 10, 16), 5),
    ((2, 4, 8, 15), 5),
    ((2, 3, 13, 14), 7),
    ((1, 1, 2, 4, 3), 3),
    ((1, 2, 3, 4, 5), 5),
    ((1, 1, 5, 4, 3), 3),
    ((1, 2, 3, 5, 5), 5),
    ((2, 1, 9, 8, 7), 7),
]


# 'valid' where every axis holds a whole window (else kornia and the spec both refuse)
WINDOW_RUNS = [(s, w, "same") for s, w in WINDOW_CASES] + [
    (s, w, "valid") for s, w in WINDOW_CASES if min(s[2:]) >= w
]


@pytest.mark.parametrize("shape,window,padding", WINDOW_RUNS, ids=lambda v: str(v))
def test_ssim_window_sizes_match_kornia(shape, window, padding):
    """kornia.losses.ssim_loss / ssim3d_loss(x, y, window_size) = ssim(x, y, win_size=window,
    eps=1e-12) / 2, padding 'same' and (where every axis holds a window) 'valid': values, both
    gradients and the 'none' map, against the installed kornia in float64."""
    g = torch.Generator().manual_seed(window * 10 + len(shape))
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    peer = KL.ssim_loss if len(shape) == 4 else KL.ssim3d_loss
    fn = _ssim(padding)
    kw = dict(win_size=window, eps=1e-12)
    a, ga = _grads(lambda u, v: fn(u, v, **kw) / 2, x, y)
    b, gb = _grads(lambda u, v: peer(u, v, window, padding=padding), x, y)
    _close(a, b)
    for u, v in zip(ga, gb):
        _close(u, v, rtol=1e-8, atol=1e-14)
    none = peer(x, y, window, padding=padding, reduction="none")
    _close(fn(x, y, reduction="none", **kw) / 2, none.flatten(1).mean(1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(1, 1, 10, 16), (2, 4, 8, 15), (1, 1, 2, 4, 3)])
def test_ssim_window_5_and_3_self_is_zero(shape, reduction):
    """kornia's TestSSIMLoss::test_ssim_equal_none and test_ssim[5-*] (window 5), and
    TestSSIM3DLoss::test_smoke (window 3 on 1 x 1 x 2 x 4 x 3): an image against itself is 0
    (kornia's goldens: zeros, torch.testing's float64 tolerance)."""
    img = torch.rand(shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    window = 3 if len(shape) == 5 else 5
    got = _ssim()(img, img, win_size=window, eps=1e-12, reduction=reduction)
    _close(got, torch.zeros_like(got), rtol=1e-7, atol=1e-7)


def test_ssim_depth_two_volumes_are_refused_as_kornia_refuses_them():
    """TestSSIM3DLoss::test_ssim's and test_cardinality's depth-2 volumes at window 5: reflect
    pads 2 on an axis of 2, which torch's F.pad (so the installed kornia) refuses; the spec
    refuses them as an InputError, naming the margin."""
    vol = torch.rand(2, 4, 2, 5, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with pytest.raises(RuntimeError):
        KL.ssim3d_loss(vol, vol, 5)
    with pytest.raises(lossdsl.InputError, match="reflect-padded by"):
        _ssim()(vol, vol, win_size=5)


def test_ssim_win_sigma_matches_pytorch_msssim_and_monai():
    """win_size / win_sigma are pytorch_msssim.ssim's and MONAI SSIMLoss's (win_size,
    kernel_sigma): against the installed pytorch-msssim 1.0.0 (its window in float32: 1e-6)
    and MONAI 1.6.1 (its result float32 here: 1e-5)."""
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    monai_losses = pytest.importorskip("monai.losses")
    g = torch.Generator().manual_seed(10)
    x = torch.rand(2, 3, 20, 18, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(2, 3, 20, 18, generator=g, dtype=torch.float64)).clamp(0, 1)
    fn = _ssim("valid")
    for w, s in ((7, 1.0), (9, 2.0), (11, 1.5)):
        got = fn(x, y, win_size=w, win_sigma=s)
        _close(got, 1 - pytorch_msssim.ssim(x, y, data_range=1.0, win_size=w, win_sigma=s), 1e-6)
        peer = monai_losses.SSIMLoss(spatial_dims=2, data_range=1.0, win_size=w, kernel_sigma=s)
        _close(got, peer(x, y), rtol=1e-5)


# ---- MS_SSIMLoss: ms_ssim_l1 -------------------------------------------------------------------

SCALES = {"five": (0.5, 1.0, 2.0, 4.0, 8.0), "three": (0.5, 1.0, 2.0)}


def _ms(scales="five", backend="torch"):
    return lossdsl.load("ms_ssim_l1").compile(backend, scales=scales)


def _kornia_ms(scales="five", **kw):
    return KL.MS_SSIMLoss(sigmas=SCALES[scales], **kw)


def _reference_images(channels):
    """test_reference's inputs: (arange(60) reshaped (1, 3, 4, 5) * (1, 3, 7) % 11) / 10 and its
    square."""
    img1 = torch.arange(60, dtype=torch.float64).reshape(1, 3, 4, 5)
    img1 = (img1 * torch.tensor([1.0, 3.0, 7.0], dtype=torch.float64).view(1, 3, 1, 1) % 11) / 10
    img1 = img1[:, :channels]
    return img1, img1**2


# test_reference: MS_SSIMLoss(sigmas=(0.5, 1.0, 2.0), alpha=1.0, compensation=1.0, 'none')
MS_REFERENCE = {
    1: [
        [0.37865300, 0.31442640, 0.26742503, 0.25432102, 0.27785429],
        [0.27414722, 0.26719022, 0.20145665, 0.17667983, 0.18669405],
        [0.20643671, 0.23914177, 0.22795677, 0.17534234, 0.19646084],
        [0.27640491, 0.33963748, 0.28366937, 0.22100261, 0.19366287],
    ],
    3: [
        [0.30440426, 0.23147867, 0.22960489, 0.25790863, 0.31691969],
        [0.21193412, 0.20488162, 0.19946196, 0.19401123, 0.22219212],
        [0.18556347, 0.20465673, 0.18753592, 0.18937725, 0.21497141],
        [0.22266887, 0.23662971, 0.21462762, 0.23004896, 0.21928525],
    ],
}
# test_reference_gaussian_l1: the same with alpha=0.0
MS_REFERENCE_L1 = {
    1: [
        [0.04841360, 0.06432695, 0.07315782, 0.07117095, 0.05873239],
        [0.05998628, 0.07880676, 0.08869681, 0.08553489, 0.07010512],
        [0.06226608, 0.08101300, 0.09034629, 0.08643698, 0.07039810],
        [0.05424314, 0.06998091, 0.07739282, 0.07348809, 0.05948054],
    ],
    3: [
        [0.05252443, 0.06618850, 0.07189183, 0.06754884, 0.05445936],
        [0.06308681, 0.07960642, 0.08649714, 0.08128649, 0.06559485],
        [0.06331894, 0.08003596, 0.08705040, 0.08188926, 0.06620053],
        [0.05316348, 0.06731125, 0.07329963, 0.06904758, 0.05593615],
    ],
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "alpha,table",
    [(1.0, MS_REFERENCE), (0.0, MS_REFERENCE_L1)],
    ids=["reference", "reference_gaussian_l1"],
)
def test_ms_ssim_l1_kornia_goldens(channels, alpha, table):
    """kornia's test_reference / test_reference_gaussian_l1 (kornia's tolerance 1e-4: goldens
    printed to 8 digits), and the installed kornia on the same inputs to 1e-12."""
    x, y = _reference_images(channels)
    got = _ms("three")(x, y, alpha=alpha, compensation=1.0, reduction="none")
    _close(got, torch.tensor([table[channels]], dtype=torch.float64), rtol=1e-4, atol=1e-4)
    peer = _kornia_ms("three", alpha=alpha, compensation=1.0, reduction="none")
    _close(got, peer(x, y))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(2, 1, 2, 3), (1, 3, 10, 16)])
def test_ms_ssim_l1_kornia_self_is_zero(shape, reduction):
    """kornia's test_msssim and test_msssim_equal_none: an image against itself is 0."""
    img = torch.rand(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    _close(_ms()(img, img, reduction=reduction).sum(), 0.0, atol=1e-10)


def test_ms_ssim_l1_kornia_channel_order_and_brightness():
    """kornia's test_channel_order (BGR = RGB per pixel) and test_brightness_shift_in_any_channel
    (the same cost whichever copy of a plane is brightened, and a mean above 0.05), alpha=1,
    compensation=1, kornia's tolerance 1e-4; and each against the installed kornia."""
    g = torch.Generator().manual_seed(5)
    fn = _ms()
    kw = dict(alpha=1.0, compensation=1.0, reduction="none")
    img1 = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    img2 = (img1 + 0.2 * torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)).clamp(0, 1)
    bgr = [2, 1, 0]
    _close(fn(img1[:, bgr], img2[:, bgr], **kw), fn(img1, img2, **kw), rtol=1e-4, atol=1e-4)
    _close(fn(img1, img2, **kw), _kornia_ms(**kw)(img1, img2))
    img = torch.rand(1, 1, 12, 12, generator=g, dtype=torch.float64).repeat(1, 3, 1, 1) * 0.5
    shifted = []
    for channel in range(3):
        s = img.clone()
        s[:, channel] += 0.3
        shifted.append(fn(img, s, **kw))
        _close(shifted[-1], _kornia_ms(**kw)(img, s))
    _close(shifted[1], shifted[0], rtol=1e-4, atol=1e-4)
    _close(shifted[2], shifted[0], rtol=1e-4, atol=1e-4)
    assert float(shifted[0].mean()) > 0.05


def test_ms_ssim_l1_kornia_flip_symmetry():
    """kornia's test_none_reduction_keeps_input_shape_5126 at sigmas (0.5, 1.0, 2.0): the 'none'
    map keeps (N, H, W) and flipping both inputs flips it."""
    g = torch.Generator().manual_seed(6)
    img1 = torch.rand(1, 3, 16, 20, generator=g, dtype=torch.float64)
    img2 = torch.rand(1, 3, 16, 20, generator=g, dtype=torch.float64)
    fn = _ms("three")
    out = fn(img1, img2, reduction="none")
    assert out.shape == (1, 16, 20)
    _close(out, fn(img1.flip(-1), img2.flip(-1), reduction="none").flip(-1))


def test_ms_ssim_l1_high_pixel_values_reference():
    """test_high_pixel_values_use_float32_moments' float64 reference: MS_SSIMLoss(data_range=255)
    on 8-bit-range images near 180..255, against the installed kornia in float64."""
    generator = torch.Generator().manual_seed(0)
    img1 = (180 + torch.rand(1, 3, 64, 64, generator=generator) * 75).round().double()
    img2 = img1 + torch.randn(1, 3, 64, 64, generator=generator).double() * 20
    img2 = img2.clamp(0, 255).round()
    _close(_ms()(img1, img2, data_range=255.0), _kornia_ms(data_range=255.0)(img1, img2), rtol=1e-9)


@pytest.mark.parametrize("scales", ["five", "three"])
@pytest.mark.parametrize(
    "kw",
    [{}, {"alpha": 0.84, "compensation": 1.0, "data_range": 2.0}, {"k1": 0.02, "k2": 0.05}],
    ids=["default", "paper_alpha", "k"],
)
@pytest.mark.parametrize("shape", [(2, 3, 10, 16), (1, 1, 5, 5), (2, 2, 20, 7)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_ms_ssim_l1_matches_kornia(scales, kw, shape, reduction):
    """MS_SSIMLoss(sigmas, data_range, K, alpha, compensation, reduction): values and both
    gradients against the installed kornia (1 x 1 x 5 x 5: test_gradcheck's shape)."""
    g = torch.Generator().manual_seed(shape[-1] + len(kw))
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = torch.rand(*shape, generator=g, dtype=torch.float64)
    fn = _ms(scales)
    pk = {k: v for k, v in kw.items() if k not in ("k1", "k2")}
    if "k1" in kw:
        pk["K"] = (kw["k1"], kw["k2"])
    peer = _kornia_ms(scales, reduction=reduction, **pk)
    a, ga = _grads(lambda u, v: fn(u, v, reduction=reduction, **kw), x, y)
    b, gb = _grads(lambda u, v: peer(u, v), x, y)
    assert a.shape == b.shape
    _close(a, b)
    for u, v in zip(ga, gb):
        _close(u, v, rtol=1e-8, atol=1e-12)


def test_ms_ssim_l1_jax_agrees_with_torch():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 2, 9, 11, generator=g, dtype=torch.float64)
    y = torch.rand(1, 2, 9, 11, generator=g, dtype=torch.float64)
    for scales in ("five", "three"):
        j = _ms(scales, "jax")
        _close(
            np.asarray(j(x.numpy(), y.numpy(), reduction="none")),
            _ms(scales)(x, y, reduction="none"),
        )


# ---- MS_SSIMLoss with any sigmas: ms_ssim_l1_sigmas --------------------------------------------

SIGMA_LISTS = [
    (0.5, 1.3),
    (1.0, 3.3),
    (0.5, 1.0, 2.0),
    (0.5, 1.0, 2.0, 4.0, 8.0),
    (2.0,),
    (3.0, 0.7),
]


def _ms_sigmas(backend="torch"):
    return lossdsl.load("ms_ssim_l1_sigmas").compile(backend)


def _window_of(sigmas):
    """kornia's window for a sigma list: 2 int(2 sigmas[-1]) + 1 taps (MS_SSIMLoss.__init__)."""
    return 2 * int(2 * sigmas[-1]) + 1


@pytest.mark.parametrize("sigmas", SIGMA_LISTS, ids=str)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("shape", [(2, 3, 10, 11), (1, 1, 5, 5)])
def test_ms_ssim_l1_sigmas_matches_kornia(sigmas, reduction, shape):
    """MS_SSIMLoss(sigmas=..., reduction) = ms_ssim_l1_sigmas(x, y, sigmas, win_size=
    2 int(2 sigmas[-1]) + 1): values and both image gradients against the installed kornia
    (its masks float64: built under torch's float64 default); the order of the list matters
    ((3.0, 0.7): the last is the luminance's and the L1 term's scale)."""
    g = torch.Generator().manual_seed(len(sigmas) * 7 + shape[-1])
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = torch.rand(*shape, generator=g, dtype=torch.float64)
    sig = torch.tensor(sigmas, dtype=torch.float64)
    fn = _ms_sigmas()
    a, ga = _grads(
        lambda u, v: fn(u, v, sig, win_size=_window_of(sigmas), reduction=reduction), x, y
    )
    b, gb = _grads(KL.MS_SSIMLoss(sigmas=sigmas, reduction=reduction), x, y)
    assert a.shape == b.shape
    _close(a, b, rtol=1e-10, atol=1e-11)
    for u, v in zip(ga, gb):
        _close(u, v, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("sigmas", [(0.5, 1.3), (1.0, 3.3), (0.5, 1.0, 2.0)], ids=str)
def test_ms_ssim_l1_sigmas_kornia_none_keeps_shape_5126(sigmas):
    """kornia's test_none_reduction_keeps_input_shape_5126: the 'none' map is (1, 16, 20) and
    flipping both inputs flips it (an odd window: no half-pixel shift), for its three lists."""
    g = torch.Generator().manual_seed(11)
    img1 = torch.rand(1, 3, 16, 20, generator=g, dtype=torch.float64)
    img2 = torch.rand(1, 3, 16, 20, generator=g, dtype=torch.float64)
    fn, sig, w = _ms_sigmas(), torch.tensor(sigmas, dtype=torch.float64), _window_of(sigmas)
    assert w % 2 == 1
    out = fn(img1, img2, sig, win_size=w, reduction="none")
    assert out.shape == (1, 16, 20)
    _close(out, fn(img1.flip(-1), img2.flip(-1), sig, win_size=w, reduction="none").flip(-1))


@pytest.mark.parametrize("channels", [1, 3])
def test_ms_ssim_l1_sigmas_kornia_goldens_and_scales(channels):
    """kornia's test_reference goldens (sigmas (0.5, 1.0, 2.0), alpha=1, compensation=1, its
    tolerance 1e-4), and the spec equals ms_ssim_l1 with scales "three" and "five" (to 1e-12):
    the sigma list as an input is the same loss as the fixed lists."""
    x, y = _reference_images(channels)
    fn = _ms_sigmas()
    three = torch.tensor(SCALES["three"], dtype=torch.float64)
    got = fn(x, y, three, win_size=9, alpha=1.0, compensation=1.0, reduction="none")
    _close(got, torch.tensor([MS_REFERENCE[channels]], dtype=torch.float64), rtol=1e-4, atol=1e-4)
    for scales, w in (("three", 9), ("five", 33)):
        sig = torch.tensor(SCALES[scales], dtype=torch.float64)
        _close(fn(x, y, sig, win_size=w, reduction="none"), _ms(scales)(x, y, reduction="none"))


def test_ms_ssim_l1_sigmas_gradient_reaches_the_sigmas_and_jax_agrees():
    """d loss / d sigmas against the central difference of the installed kornia in sigma
    (MS_SSIMLoss rebuilt at sigma +- h), and jax (values and sigma gradients) = torch."""
    import jax

    g = torch.Generator().manual_seed(12)
    x = torch.rand(1, 2, 9, 11, generator=g, dtype=torch.float64)
    y = torch.rand(1, 2, 9, 11, generator=g, dtype=torch.float64)
    sigmas = (0.8, 1.6)
    sig = torch.tensor(sigmas, dtype=torch.float64, requires_grad=True)
    w = _window_of(sigmas)
    out = _ms_sigmas()(x, y, sig, win_size=w)
    (gs,) = torch.autograd.grad(out, sig)
    h, fd = 1e-6, []
    for j in range(len(sigmas)):
        up = [s + h * (k == j) for k, s in enumerate(sigmas)]
        dn = [s - h * (k == j) for k, s in enumerate(sigmas)]
        fd.append(
            float(KL.MS_SSIMLoss(sigmas=up)(x, y) - KL.MS_SSIMLoss(sigmas=dn)(x, y)) / (2 * h)
        )
    _close(gs, fd, rtol=1e-6, atol=1e-8)
    j = _ms_sigmas("jax")
    jv, jg = jax.value_and_grad(lambda s: j(x.numpy(), y.numpy(), s, win_size=w), argnums=0)(
        np.asarray(sigmas)
    )
    _close(jv, out.detach())
    _close(jg, gs, rtol=1e-9)


def test_excluded_cases_have_reasons():
    assert all(isinstance(v, str) and len(v) > 20 for v in EXCLUDED.values())
