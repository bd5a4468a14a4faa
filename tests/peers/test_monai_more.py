"""MONAI's own loss test cases for the losses beyond the Dice family (monai.losses, installed
1.6.1) run against the lossdsl specs: bending_energy, mcc, asymmetric_unified_focal, nacl, and
MaskedDiceLoss as dense_dice with a mask.

Source of every table: the GitHub repository Project-MONAI/MONAI, the tests/losses/ file and
stored commit named at each table (the newest versions the tools hold). A row is (MONAI
constructor args, inputs, MONAI's golden value): the settings and figures carry over, the test
code does not. Each case runs the spec against the golden value (MONAI's tolerance) and against
the installed MONAI 1.6.1 itself, values and autograd gradients in float64; one case per spec
also runs the jax backend against the torch one. Exclusions: EXCLUDED below (and
docs/peers/monai.md)."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch

import lossdsl

monai = pytest.importorskip("monai")
from monai.losses import (  # noqa: E402
    AsymmetricUnifiedFocalLoss,
    AUCMLoss,
    BendingEnergyLoss,
    GeneralizedWassersteinDiceLoss,
    MaskedDiceLoss,
    MCCLoss,
    NACLLoss,
)

# MONAI test code that does not exercise loss math, or that the shipped specs do not cover
EXCLUDED = {
    "deform/test_bending_energy.py::test_ill_shape": "ValueErrors on bad ranks/sizes/channels",
    "deform/test_bending_energy.py::test_ill_opts": "ValueError on a bad reduction",
    "test_unified_focal_loss.py::test_ill_shape": "ValueError on a 3-d input",
    "test_unified_focal_loss.py::test_with_cuda": "the same perfect-prediction case on CUDA "
    "(its value, 0, is TEST_CASES[0]'s: run once here)",
    "test_unified_focal_loss.py (newest stored, commit 05142ed2)": "its cases are for a newer "
    "AsymmetricUnifiedFocalLoss (use_softmax=, include_background=, multi-class) that the "
    "installed 1.6.1 does not have; the 1.6.1-era file (below) is transcribed instead",
    "test_aucm_loss.py::test_invalid_version/imratio/input_shape/target_shape/"
    "insufficient_dimensions/shape_mismatch/non_binary_target": "ValueErrors (argument checks)",
    "test_aucm_loss.py::test_script_save": "TorchScript export",
    "test_generalized_wasserstein_dice_loss.py::test_different_target_data_type": "integer "
    "dtypes of the target (uint8 ... long): an index input here; its value is test_bin_seg_2d's",
    "test_generalized_wasserstein_dice_loss.py::test_convergence": "50 Adam steps of a one-layer "
    "net (a training check, not a value); the gradients are compared with MONAI's instead",
    "test_generalized_wasserstein_dice_loss.py::test_script": "TorchScript export",
    "test_mcc_loss.py::test_ill_shape": "shape-mismatch AssertionError / bad reduction",
    "test_mcc_loss.py::test_ill_opts": "ValueError / TypeError on bad options",
    "test_mcc_loss.py::test_input_warnings": "warnings on a single-channel input",
    "test_mcc_loss.py::test_script": "TorchScript export",
    "test_masked_dice_loss.py::test_ill_shape": "shape-mismatch AssertionError",
    "test_masked_dice_loss.py::test_ill_opts": "ValueError on bad options",
    "test_masked_dice_loss.py::test_input_warnings": "warnings on a single-channel input",
}


def _t(v):
    return torch.as_tensor(v, dtype=torch.float64)


def _grads(fn, x):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (g,) = torch.autograd.grad(out.sum(), [x])
    return out.detach(), g


@contextlib.contextmanager
def _default_float64():
    """MONAI's normalize=True scale is int / int-tensor, a float32 tensor under torch's default
    dtype: run MONAI with float64 as the default so that both sides are float64 throughout."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _onehot(y, c):
    return torch.nn.functional.one_hot(y[:, 0].long(), c).movedim(-1, 1).to(torch.float64)


# ---------------------------------------------------------------------------------------------
# bending_energy: Project-MONAI/MONAI tests/losses/deform/test_bending_energy.py, stored commit
# 0eb610ad4083386c53d7ad928a7a628f86a0875f, TEST_CASES 0 to 7 (0-based): (MONAI args, pred,
# golden value). The 3-D cases (0, 1, 2, 5: [1, 3, 5, 5, 5]) run on bending_energy_3d, the 2-D
# ones (3, 6: [1, 2, 5, 5]) on bending_energy, the 1-D ones (4, 7: [1, 1, 5]) on
# bending_energy_1d. pred = 1 (case 0), the last coordinate (case 1) or its square (the rest).
def _w2(shape=(1, 2, 5, 5), power=2):
    idx = (None,) * (len(shape) - 1) + (slice(None),)
    return (torch.arange(0, shape[-1])[idx].expand(*shape) ** power).to(torch.float64)


_BE_BY_RANK = {3: "bending_energy_1d", 4: "bending_energy", 5: "bending_energy_3d"}
_3D, _2D, _1D = (1, 3, 5, 5, 5), (1, 2, 5, 5), (1, 1, 5)
BENDING_CASES = [
    ({}, torch.ones(_3D, dtype=torch.float64), 0.0),
    ({}, _w2(_3D, power=1), 0.0),
    ({"normalize": False}, _w2(_3D), 4.0),
    ({"normalize": False}, _w2(_2D), 4.0),
    ({"normalize": False}, _w2(_1D), 4.0),
    ({"normalize": True}, _w2(_3D), 100.0),
    ({"normalize": True}, _w2(_2D), 100.0),
    ({"normalize": True}, _w2(_1D), 100.0),
]


@pytest.mark.parametrize("kw,pred,want", BENDING_CASES, ids=[f"case{i}" for i in range(8)])
def test_bending_energy_monai_cases(kw, pred, want):
    fn = lossdsl.load(_BE_BY_RANK[pred.ndim]).compile("torch")
    a, ga = _grads(lambda v: fn(v, **kw), pred)
    with _default_float64():
        b, gb = _grads(lambda v: BendingEnergyLoss(**kw)(v), pred)
    np.testing.assert_allclose(a.numpy(), want, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-10, atol=1e-12)


# beyond MONAI's table: random DDFs, B = 1 and a batch, H != W, the smallest grid (3 x 3: one
# interior pixel), every reduction, against the installed MONAI 1.6.1 (values, gradients)
@pytest.mark.parametrize("shape", [(1, 2, 3, 3), (3, 2, 5, 7), (2, 2, 6, 4)])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bending_energy_vs_monai(shape, normalize, reduction):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    fn = lossdsl.load("bending_energy").compile("torch")
    a, ga = _grads(lambda v: fn(v, normalize=normalize, reduction=reduction), x)
    with _default_float64():
        mon = BendingEnergyLoss(normalize=normalize, reduction=reduction)
        b, gb = _grads(lambda v: mon(v), x)
    if reduction == "none":  # MONAI's [B, C, H-2, W-2] map; the spec's [B, C] is its sum
        assert b.shape == (*shape[:2], shape[2] - 2, shape[3] - 2)
        b = b.sum((2, 3))
    assert a.shape == b.shape
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-10, atol=1e-12)


# the 1-D and 3-D specs beyond MONAI's table: random DDFs, the smallest grids (3 per axis: one
# interior point), unequal sizes, every reduction, against the installed MONAI 1.6.1
@pytest.mark.parametrize(
    "shape", [(1, 1, 3), (3, 1, 7), (1, 3, 3, 3, 3), (2, 3, 4, 5, 6), (1, 3, 6, 3, 4)]
)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bending_energy_1d_3d_vs_monai(shape, normalize, reduction):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    fn = lossdsl.load(_BE_BY_RANK[len(shape)]).compile("torch")
    a, ga = _grads(lambda v: fn(v, normalize=normalize, reduction=reduction), x)
    with _default_float64(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MONAI's list indexing (torch deprecation)
        mon = BendingEnergyLoss(normalize=normalize, reduction=reduction)
        b, gb = _grads(lambda v: mon(v), x)
    if reduction == "none":  # MONAI's [B, C, *(S-2)] map; the spec's [B, C] is its sum
        assert b.shape == (*shape[:2], *(n - 2 for n in shape[2:]))
        b = b.sum(tuple(range(2, b.ndim)))
    assert a.shape == b.shape
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-10, atol=1e-12)


def test_bending_energy_1d_3d_affine_is_zero_and_jax():
    fields = [_w2((2, 1, 6), power=1), _w2((1, 3, 6, 6, 6), power=1)]
    for lin in fields:
        assert float(lossdsl.load(_BE_BY_RANK[lin.ndim]).compile("torch")(lin)) == 0.0
    rng = np.random.default_rng(4)
    for shape in [(2, 1, 6), (2, 3, 4, 5, 3)]:
        x = rng.normal(size=shape)
        name = _BE_BY_RANK[len(shape)]
        fn, j = lossdsl.load(name).compile("torch"), lossdsl.load(name).compile("jax")
        for normalize in (False, True):
            want = fn(torch.from_numpy(x), normalize=normalize, reduction="none").numpy()
            assert want.shape == shape[:2]
            got = np.asarray(j(x, normalize=normalize, reduction="none"))
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_bending_energy_affine_is_zero_and_jax():
    # an affine field has no bending energy (MONAI's case 1 in 2-D: pred = w)
    lin = torch.arange(0, 5)[None, None, None, :].expand(1, 2, 5, 5).to(torch.float64)
    fn = lossdsl.load("bending_energy").compile("torch")
    assert float(fn(lin)) == 0.0
    x = np.random.default_rng(3).normal(size=(2, 2, 5, 6))
    j = lossdsl.load("bending_energy").compile("jax")
    for normalize in (False, True):
        want = fn(torch.from_numpy(x), normalize=normalize, reduction="none").numpy()
        assert want.shape == (2, 2)
        got = np.asarray(j(x, normalize=normalize, reduction="none"))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# mcc: Project-MONAI/MONAI tests/losses/test_mcc_loss.py, stored commit
# 269a95795899d971be6167034b90234823e65718, TEST_CASES (all 13): (MONAI args, input, target,
# golden value). other_act=torch.tanh is written "tanh" here.
_X2 = [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
_Y2 = [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]]
_X4 = [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]]
_Y4 = [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]]
MCC_CASES = [
    (
        {"include_background": True, "sigmoid": True},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.733197,
    ),
    ({"include_background": True, "sigmoid": True}, _X4, _Y4, 1.0),
    ({"include_background": True}, [[[[1.0, 0.0], [0.0, 1.0]]]], [[[[1.0, 0.0], [0.0, 1.0]]]], 0.0),
    ({"include_background": True}, [[[[0.0, 1.0], [1.0, 0.0]]]], [[[[1.0, 0.0], [0.0, 1.0]]]], 2.0),
    (
        {"include_background": False, "to_onehot_y": True},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.0,
    ),
    ({"include_background": True, "to_onehot_y": True, "sigmoid": True}, _X2, _Y2, 0.836617),
    (
        {"include_background": True, "to_onehot_y": True, "sigmoid": True, "batch": True},
        _X2,
        _Y2,
        0.845961,
    ),
    (
        {"include_background": True, "to_onehot_y": True, "sigmoid": True, "reduction": "sum"},
        _X2,
        _Y2,
        3.346468,
    ),
    ({"include_background": True, "to_onehot_y": True, "softmax": True}, _X2, _Y2, 0.730736),
    (
        {"include_background": True, "to_onehot_y": True, "softmax": True, "reduction": "none"},
        _X2,
        _Y2,
        [[0.461472, 0.461472], [1.0, 1.0]],
    ),
    ({"include_background": True}, np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), 0.0),
    ({"include_background": True}, np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), 0.0),
    ({"include_background": True, "other_act": "tanh"}, _X4, _Y4, 1.0),
]


def _monai_split(kw, c):
    """MONAI kwargs -> (the spec's activation, pre-activation, spec params, MONAI kwargs)."""
    kw = dict(kw)
    sig, soft = kw.pop("sigmoid", False), kw.pop("softmax", False)
    act = "sigmoid" if sig else ("softmax" if soft and c > 1 else "none")
    other = kw.pop("other_act", None)
    monai_kw = {**kw, "sigmoid": sig, "softmax": soft}
    pre = (lambda v: v) if other is None else torch.tanh
    if other is not None:
        monai_kw["other_act"] = torch.tanh
    return act, pre, kw, monai_kw


@pytest.mark.parametrize("kw,x,y,want", MCC_CASES)
def test_mcc_monai_cases(kw, x, y, want):
    x, y0 = _t(x), _t(y)
    c = x.shape[1]
    act, pre, params, monai_kw = _monai_split(kw, c)
    y = _onehot(y0, c) if params.pop("to_onehot_y", False) and c > 1 else y0
    red = params.pop("reduction", "mean")
    fn = lossdsl.load("mcc").compile("torch", activation=act)
    a, ga = _grads(lambda v: fn(pre(v), y, reduction=red, **params), x)
    b, gb = _grads(lambda v: MCCLoss(**monai_kw)(v, y0), x)
    np.testing.assert_allclose(a.numpy(), np.reshape(want, a.shape), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-10)


# beyond MONAI's table: random soft predictions, every activation, background dropped, batch
# sums, every reduction (MONAI's "none" layout: class 0 dropped, [C] under batch=True)
@pytest.mark.parametrize("act", ["softmax", "sigmoid", "none"])
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_mcc_vs_monai(act, include_background, batch, reduction):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, 3, 4, 5, generator=g, dtype=torch.float64)
    if act == "none":
        x = x.sigmoid()
    y = _onehot(torch.randint(0, 3, (3, 1, 4, 5), generator=g), 3)
    fn = lossdsl.load("mcc").compile("torch", activation=act)
    kw = {"include_background": include_background, "batch": batch}
    a, ga = _grads(lambda v: fn(v, y, reduction=reduction, **kw), x)
    mon = MCCLoss(sigmoid=act == "sigmoid", softmax=act == "softmax", reduction=reduction, **kw)
    b, gb = _grads(lambda v: mon(v, y), x)
    if reduction == "none":
        a = a[:, 1:] if not include_background else a
        a = a.sum(0) if batch else a  # each class's value / B on every row
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-10)


def test_mcc_jax_matches_torch():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    y = _onehot(torch.randint(0, 3, (2, 1, 6), generator=g), 3)
    for act in ("softmax", "sigmoid"):
        want = lossdsl.load("mcc").compile("torch", activation=act)(x, y, reduction="none")
        got = lossdsl.load("mcc").compile("jax", activation=act)(
            x.numpy(), y.numpy(), reduction="none"
        )
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# MaskedDiceLoss as dense_dice: Project-MONAI/MONAI tests/losses/test_masked_dice_loss.py,
# stored commit 131788a746da18e242f5b315a9a4362ad79e0222 (its other stored version has the same
# table), TEST_CASES (all 10): (MONAI args, input, target, mask or None, golden value).
# The installed MONAI 1.6.1 activates the input, multiplies it and the target by the mask, then
# runs DiceLoss (to_onehot_y after the mask: a masked pixel is class 0 of the target):
#     dense_dice(mask * act(input), onehot(target * mask), activation="none")
# The goldens of the four masked cases are not 1.6.1's (it gives 0.333333, 0.301128, 0, 0.579185
# for 0.5, 0.422969, 0, 0.47033): they are those of masking the logits before the activation
# (MaskedLoss wrapped around a DiceLoss that activates inside):
#     dense_dice(input * mask, onehot(target * mask), activation=act)
# Each masked case checks the golden with the second recipe and the installed MONAI with the
# first; the unmasked cases are plain dense_dice against both.
MASKED_DICE_CASES = [
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        [[[[0.0, 0.0], [1.0, 1.0]]]],
        0.500,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X4,
        _Y4,
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 1.0], [0.0, 0.0]]]],
        0.422969,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        [[[1.0, 1.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.0,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X2,
        _Y2,
        [[[1.0, 1.0, 0.0]]],
        0.47033,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "reduction": "none",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X2,
        _Y2,
        None,
        [[[0.296529], [0.415136]], [[0.599976], [0.428559]]],
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X2,
        _Y2,
        None,
        0.383713,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "sum",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X2,
        _Y2,
        None,
        1.534853,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        None,
        0.307576,
    ),
    (
        {
            "include_background": True,
            "sigmoid": True,
            "squared_pred": True,
            "smooth_nr": 1e-5,
            "smooth_dr": 1e-5,
        },
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        None,
        0.178337,
    ),
    (
        {
            "include_background": True,
            "sigmoid": True,
            "jaccard": True,
            "smooth_nr": 1e-5,
            "smooth_dr": 1e-5,
        },
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        None,
        0.470451,
    ),
]


_ACT = {"sigmoid": torch.sigmoid, "softmax": lambda v: torch.softmax(v, 1)}


@pytest.mark.parametrize("kw,x,y,mask,want", MASKED_DICE_CASES)
def test_masked_dice_monai_cases(kw, x, y, mask, want):
    x, y0 = _t(x), _t(y)
    c = x.shape[1]
    act, pre, params, monai_kw = _monai_split(kw, c)
    onehot = params.pop("to_onehot_y", False) and c > 1
    red = params.pop("reduction", "mean")
    m = torch.ones(1, 1, *x.shape[2:]) if mask is None else _t(mask)
    y = _onehot(y0 * m, c) if onehot else y0 * m
    fn_act = lossdsl.load("dense_dice").compile("torch", activation=act)
    fn_none = lossdsl.load("dense_dice").compile("torch", activation="none")

    def masked_logits(v):  # the goldens' convention
        return fn_act(v * m, y, reduction=red, **params)

    def masked_probs(v):  # the installed MONAI 1.6.1
        return fn_none(m * _ACT.get(act, pre)(v), y, reduction=red, **params)

    a = masked_logits(x)
    np.testing.assert_allclose(a.numpy(), np.reshape(want, a.shape), rtol=1e-5, atol=1e-7)
    b, gb = _grads(lambda v: MaskedDiceLoss(**monai_kw)(v, y0, mask=None if mask is None else m), x)
    c_, gc = _grads(masked_probs, x)
    np.testing.assert_allclose(c_.numpy(), b.numpy().reshape(c_.shape), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gc.numpy(), gb.numpy(), rtol=1e-8, atol=1e-10)
    if mask is None:  # without a mask the two conventions are one: plain dense_dice
        np.testing.assert_allclose(a.numpy(), c_.numpy(), rtol=1e-12)


def test_masked_dice_bool_mask_is_monai_161():
    # dense_dice's own mask= (a bool [B, *S]) is MONAI 1.6.1's MaskedDiceLoss on a one-hot
    # target (no to_onehot_y), values and gradients, sigmoid and softmax, with an empty image
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64)
    y = _onehot(torch.randint(0, 3, (3, 1, 4, 4), generator=g), 3)
    m = torch.rand(3, 1, 4, 4, generator=g) > 0.4
    m[0] = False
    for act in ("sigmoid", "softmax"):
        fn = lossdsl.load("dense_dice").compile("torch", activation=act)
        a, ga = _grads(lambda v: fn(v, y, mask=m[:, 0]), x)
        mon = MaskedDiceLoss(sigmoid=act == "sigmoid", softmax=act == "softmax")
        b, gb = _grads(lambda v: mon(v, y, mask=m.to(torch.float64)), x)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# asymmetric_unified_focal: Project-MONAI/MONAI tests/losses/test_unified_focal_loss.py, the
# stored version for the binary AsymmetricUnifiedFocalLoss of 1.6.1 (stored file id 109816642;
# the newest stored version, commit 05142ed20dbfcc7098dc66b392294977d9d580ea, tests a later
# multi-class API), TEST_CASES (both): default args, y_pred = y_true = [2, 1, 2, 2] binary maps,
# golden 0.0 (MONAI's atol 1e-4). MONAI makes a one-channel map [1 - p, p].
AUF_CASES = [
    (
        [[[[1.0, 0], [0, 1.0]]], [[[1.0, 0], [0, 1.0]]]],
        [[[[1.0, 0], [0, 1.0]]], [[[1.0, 0], [0, 1.0]]]],
        0.0,
    ),
    (
        [[[[1.0, 0], [0, 1.0]]], [[[1.0, 0], [0, 1.0]]]],
        [[[[1.0, 0], [0, 1.0]]], [[[1.0, 0], [0, 1.0]]]],
        0.0,
    ),
]


def _two(v):
    return torch.cat([1 - v, v], dim=1)


@pytest.mark.parametrize("y_pred,y_true,want", AUF_CASES)
def test_auf_monai_cases(y_pred, y_true, want):
    p, t = _t(y_pred), _t(y_true)
    fn = lossdsl.load("asymmetric_unified_focal").compile("torch")
    a = fn(_two(p), _two(t))
    b = AsymmetricUnifiedFocalLoss()(p, t)
    np.testing.assert_allclose(a.numpy(), want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


# beyond MONAI's table: random probabilities, two-channel and one-channel inputs, 2-D and 3-D,
# B = 1, MONAI's to_onehot_y class ids, other weight / gamma / delta, values and gradients (no
# perfect foreground: its Tversky term has an infinite derivative in both)
@pytest.mark.parametrize("shape", [(1, 4, 5), (3, 3, 4, 2)])  # [B, *S]: 2-D and 3-D
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    "kw", [{}, {"weight": 0.2, "gamma": 0.75, "delta": 0.6}, {"weight": 1.0, "gamma": 0.0}]
)
def test_auf_vs_monai(shape, channels, kw):
    g = torch.Generator().manual_seed(9)
    b_, spatial = shape[0], shape[1:]
    p = torch.rand(b_, channels, *spatial, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 2, (b_, 1, *spatial), generator=g)
    fn = lossdsl.load("asymmetric_unified_focal").compile("torch")
    if channels == 1:
        t, t_ours = ids.to(torch.float64), _two(ids.to(torch.float64))
        mon = AsymmetricUnifiedFocalLoss(**kw)
        a, ga = _grads(lambda v: fn(_two(v), t_ours, **kw), p)
    else:
        t, t_ours = ids, _onehot(ids, 2)
        mon = AsymmetricUnifiedFocalLoss(to_onehot_y=True, **kw)
        a, ga = _grads(lambda v: fn(v, t_ours, **kw), p)
    b, gb = _grads(lambda v: mon(v, t), p)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-12)


def test_auf_reductions_and_jax():
    # "mean" is MONAI's value for every MONAI reduction; "none" is per image, "sum" B times mean
    g = torch.Generator().manual_seed(1)
    p = torch.rand(3, 2, 5, 2, generator=g, dtype=torch.float64)
    t = _onehot(torch.randint(0, 2, (3, 1, 5, 2), generator=g), 2)
    fn = lossdsl.load("asymmetric_unified_focal").compile("torch")
    none = fn(p, t, reduction="none")
    for red in ("mean", "sum", "none"):
        want = AsymmetricUnifiedFocalLoss(reduction=red)(p, t)
        np.testing.assert_allclose(none.mean().numpy(), want.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fn(p, t, reduction="sum").numpy(), 3 * none.mean().numpy())
    j = lossdsl.load("asymmetric_unified_focal").compile("jax")
    got = np.asarray(j(p.numpy(), t.numpy(), reduction="none"))
    np.testing.assert_allclose(got, none.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# nacl: Project-MONAI/MONAI tests/losses/test_nacl_loss.py, stored commit
# 0eb610ad4083386c53d7ad928a7a628f86a0875f, TEST_CASES 0, 1, 4, 5 (the kernel_ops="mean" ones):
# (MONAI args, batch repeat, golden value; MONAI's atol/rtol 1e-4) on its [1, 3, 4, 4] inputs and
# [1, 4, 4] targets. MONAI smooths a float32 one-hot (torch's .float()): 1e-9-level differences
# from the float64 spec, hence rtol 1e-7 against the installed MONAI.
NACL_X = [
    [
        [0.1498, 0.1158, 0.3996, 0.3730],
        [0.2155, 0.1585, 0.8541, 0.8579],
        [0.6640, 0.2424, 0.0774, 0.0324],
        [0.0580, 0.2180, 0.3447, 0.8722],
    ],
    [
        [0.3908, 0.9366, 0.1779, 0.1003],
        [0.9630, 0.6118, 0.4405, 0.7916],
        [0.5782, 0.9515, 0.4088, 0.3946],
        [0.7860, 0.3910, 0.0324, 0.9568],
    ],
    [
        [0.0759, 0.0238, 0.5570, 0.1691],
        [0.2703, 0.7722, 0.1611, 0.6431],
        [0.8051, 0.6596, 0.4121, 0.1125],
        [0.5283, 0.6746, 0.5528, 0.7913],
    ],
]
NACL_T = [[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
NACL_CASES = [
    ({"classes": 3, "dim": 2}, 1, 1.1442),
    ({"classes": 3, "dim": 2}, 4, 1.1442),
    ({"classes": 3, "dim": 2, "distance_type": "l2"}, 1, 1.1269),
    ({"classes": 3, "dim": 2, "alpha": 0.2}, 1, 1.1790),
]


def _nacl(kw, x, t):
    kw = dict(kw)
    kw.pop("classes"), kw.pop("dim")
    dist = kw.pop("distance_type", "l1")
    rename = {"alpha": "alpha", "kernel_size": "kernel_size"}
    fn = lossdsl.load("nacl").compile("torch", distance=dist)
    return lambda v: fn(v, t, **{rename[k]: val for k, val in kw.items()})


@pytest.mark.parametrize("kw,rep,want", NACL_CASES)
def test_nacl_monai_cases(kw, rep, want):
    x = _t([NACL_X]).repeat(rep, 1, 1, 1)
    t = torch.tensor([NACL_T]).repeat(rep, 1, 1)
    _vs_monai_nacl(_nacl(kw, x, t), kw, x, t, want)


def _vs_monai_nacl(ours, kw, x, t, want):
    """The spec's value and gradient against MONAI's NACLLoss(**kw) and its table's `want`."""
    a, ga = _grads(ours, x)
    with _default_float64():
        mon = NACLLoss(**kw)
        b, gb = _grads(lambda v: mon(v, t), x)
    np.testing.assert_allclose(a.numpy(), want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-7, atol=1e-9)


# beyond MONAI's table: random logits, 2-D and 3-D, B = 1, window sizes 3, 5 and 7 (larger than
# the image: the zero padding counts), both distances
@pytest.mark.parametrize("shape", [(1, 3, 5, 6), (2, 4, 4, 3, 5)])
@pytest.mark.parametrize("kernel_size", [3, 5, 7])
@pytest.mark.parametrize("distance_type", ["l1", "l2"])
def test_nacl_vs_monai(shape, kernel_size, distance_type):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    kw = {"classes": shape[1], "dim": len(shape) - 2, "kernel_size": kernel_size, "alpha": 0.3}
    a, ga = _grads(_nacl({**kw, "distance_type": distance_type}, x, t), x)
    with _default_float64():
        mon = NACLLoss(distance_type=distance_type, **kw)
        b, gb = _grads(lambda v: mon(v, t), x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-7, atol=1e-9)


def test_nacl_jax_matches_torch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 3, (2, 5, 4), generator=g)
    for dist in ("l1", "l2"):
        want = lossdsl.load("nacl").compile("torch", distance=dist)(x, t, reduction="none")
        j = lossdsl.load("nacl").compile("jax", distance=dist)
        got = np.asarray(j(x.numpy(), t.numpy(), reduction="none"))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


# nacl with kernel_ops="gaussian": the same file and commit, TEST_CASES 2, 3 (2-D, sigma 1 and
# 0.5, on the inputs above) and 6 (3-D, sigma 1, its own [1, 3, 4, 4, 4] inputs and targets),
# on specs nacl_gaussian_2d / nacl_gaussian_3d: (MONAI args, inputs, targets, golden value;
# MONAI's atol/rtol 1e-4). MONAI's taps and smoothing are float32: rtol 1e-7 against it.
NACL_X3 = [
    [
        [[0.5977, 0.2767, 0.0591, 0.1675], [0.4835, 0.3778, 0.8406, 0.3065],
         [0.6047, 0.2860, 0.9742, 0.2013], [0.9128, 0.8368, 0.6711, 0.4384]],
        [[0.9797, 0.1863, 0.5584, 0.6652], [0.2272, 0.2004, 0.7914, 0.4224],
         [0.5097, 0.8818, 0.2581, 0.3495], [0.1054, 0.5483, 0.3732, 0.3587]],
        [[0.3060, 0.7066, 0.7922, 0.4689], [0.1733, 0.8902, 0.6704, 0.2037],
         [0.8656, 0.5561, 0.2701, 0.0092], [0.1866, 0.7714, 0.6424, 0.9791]],
        [[0.5067, 0.3829, 0.6156, 0.8985], [0.5192, 0.8347, 0.2098, 0.2260],
         [0.8887, 0.3944, 0.6400, 0.5345], [0.1207, 0.3763, 0.5282, 0.7741]],
    ],
    [
        [[0.8499, 0.4759, 0.1964, 0.5701], [0.3190, 0.1238, 0.2368, 0.9517],
         [0.0797, 0.6185, 0.0135, 0.8672], [0.4116, 0.1683, 0.1355, 0.0545]],
        [[0.7533, 0.2658, 0.5955, 0.4498], [0.9500, 0.2317, 0.2825, 0.9763],
         [0.1493, 0.1558, 0.3743, 0.8723], [0.1723, 0.7980, 0.8816, 0.0133]],
        [[0.8426, 0.2666, 0.2077, 0.3161], [0.1725, 0.8414, 0.1515, 0.2825],
         [0.4882, 0.5159, 0.4120, 0.1585], [0.2551, 0.9073, 0.7691, 0.9898]],
        [[0.4633, 0.8717, 0.8537, 0.2899], [0.3693, 0.7953, 0.1183, 0.4596],
         [0.0087, 0.7925, 0.0989, 0.8385], [0.8261, 0.6920, 0.7069, 0.4464]],
    ],
    [
        [[0.0110, 0.1608, 0.4814, 0.6317], [0.0194, 0.9669, 0.3259, 0.0028],
         [0.5674, 0.8286, 0.0306, 0.5309], [0.3973, 0.8183, 0.0238, 0.1934]],
        [[0.8947, 0.6629, 0.9439, 0.8905], [0.0072, 0.1697, 0.4634, 0.0201],
         [0.7184, 0.2424, 0.0820, 0.7504], [0.3937, 0.1424, 0.4463, 0.5779]],
        [[0.4123, 0.6227, 0.0523, 0.8826], [0.0051, 0.0353, 0.3662, 0.7697],
         [0.4867, 0.8986, 0.2510, 0.5316], [0.1856, 0.2634, 0.9140, 0.9725]],
        [[0.2041, 0.4248, 0.2371, 0.7256], [0.2168, 0.5380, 0.4538, 0.7007],
         [0.9013, 0.2623, 0.0739, 0.2998], [0.1366, 0.5590, 0.2952, 0.4592]],
    ],
]  # fmt: skip
NACL_T3 = [
    [[0, 1, 0, 1], [1, 2, 1, 0], [2, 1, 1, 1], [1, 1, 0, 1]],
    [[2, 1, 0, 2], [1, 2, 0, 2], [1, 0, 1, 1], [1, 1, 0, 0]],
    [[1, 0, 2, 1], [0, 2, 2, 1], [1, 0, 1, 1], [0, 0, 2, 1]],
    [[2, 1, 1, 0], [1, 0, 0, 2], [1, 0, 2, 1], [2, 1, 0, 1]],
]
NACL_GAUSSIAN_CASES = [
    ({"classes": 3, "dim": 2, "kernel_ops": "gaussian"}, NACL_X, NACL_T, 1.1433),
    ({"classes": 3, "dim": 2, "kernel_ops": "gaussian", "sigma": 0.5}, NACL_X, NACL_T, 1.1469),
    ({"classes": 3, "dim": 3, "kernel_ops": "gaussian"}, NACL_X3, NACL_T3, 1.15035),
]


def _nacl_gaussian(kw, t):
    kw = dict(kw)
    dim = kw.pop("dim")
    kw.pop("classes"), kw.pop("kernel_ops")
    dist = kw.pop("distance_type", "l1")
    fn = lossdsl.load(f"nacl_gaussian_{dim}d").compile("torch", distance=dist)
    return lambda v: fn(v, t, **kw)  # sigma, alpha: the same names


@pytest.mark.parametrize(
    "kw,x,t,want", NACL_GAUSSIAN_CASES, ids=["case2_2d_sigma1", "case3_2d_sigma05", "case6_3d"]
)
def test_nacl_gaussian_monai_cases(kw, x, t, want):
    x, t = _t([x]), torch.tensor([t])
    _vs_monai_nacl(_nacl_gaussian(kw, t), kw, x, t, want)


# beyond MONAI's table: random logits, 2-D and 3-D, images smaller and larger than the 9-tap
# kernel of sigma 1, sigmas from 0.1 (one tap) to 1.3 (11 taps), both distances, alpha 0.3
@pytest.mark.parametrize("shape", [(1, 3, 5, 6), (2, 2, 13, 12), (2, 4, 4, 3, 5)])
@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0, 1.3])
@pytest.mark.parametrize("distance_type", ["l1", "l2"])
def test_nacl_gaussian_vs_monai(shape, sigma, distance_type):
    g = torch.Generator().manual_seed(16)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    kw = {"classes": shape[1], "dim": len(shape) - 2, "kernel_ops": "gaussian", "sigma": sigma,
          "alpha": 0.3, "distance_type": distance_type}  # fmt: skip
    a, ga = _grads(_nacl_gaussian(kw, t), x)
    with _default_float64():
        mon = NACLLoss(**kw)
        b, gb = _grads(lambda v: mon(v, t), x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-7, atol=1e-9)


def test_nacl_gaussian_jax_matches_torch_and_sigma_range():
    g = torch.Generator().manual_seed(3)
    for shape in [(2, 3, 5, 4), (1, 3, 3, 4, 5)]:
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
        t = torch.randint(0, 3, (shape[0], *shape[2:]), generator=g)
        name = f"nacl_gaussian_{len(shape) - 2}d"
        for dist in ("l1", "l2"):
            want = lossdsl.load(name).compile("torch", distance=dist)(x, t, reduction="none")
            assert want.shape == (shape[0], *shape[2:])
            j = lossdsl.load(name).compile("jax", distance=dist)
            got = np.asarray(j(x.numpy(), t.numpy(), reduction="none", sigma=0.7))
            want = lossdsl.load(name).compile("torch", distance=dist)(
                x, t, reduction="none", sigma=0.7
            )
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)
        fn = lossdsl.load(name).compile("torch")
        for bad in (0.0, 1.375, -1.0):  # tails beyond 5 taps a side: a LossError, not a wrong value
            with pytest.raises(lossdsl.LossError, match="sigma"):
                fn(x, t, sigma=bad)


# ---------------------------------------------------------------------------------------------
# aucm: Project-MONAI/MONAI tests/losses/test_aucm_loss.py, stored commit
# 07376daf76f1405c3bfe57073e0714b40b3db676. Its loss-math tests (test_v1, test_v2, test_backward)
# have no golden values: their setting (input randn(32, 1), target randint(0, 2, (32, 1)), the
# default margin and imratio, MONAI's a = b = alpha = 0 at construction) runs against the
# installed MONAI 1.6.1, values and gradients (the input's and a, b, alpha's).
def _aucm_pair(version, x, t, state, **kw):
    fn = lossdsl.load("aucm").compile("torch", version=version)
    mon = AUCMLoss(version=version, **kw).double()
    with torch.no_grad():
        for prm, v in zip((mon.a, mon.b, mon.alpha), state, strict=True):
            prm.fill_(v)
    xa = x.detach().clone().requires_grad_(True)
    st = torch.tensor(state, dtype=torch.float64, requires_grad=True)
    imr = kw.get("imratio")
    extra = {"margin": kw.get("margin", 1.0), "imratio": -1.0 if imr is None else imr}
    a = fn(xa, t == 1, st, **extra)
    ga = torch.autograd.grad(a, [xa, st])
    xb = x.detach().clone().requires_grad_(True)
    b = mon(xb, t)
    gb = torch.autograd.grad(b, [xb, mon.a, mon.b, mon.alpha], allow_unused=True)
    gb = [torch.zeros(()) if g is None else g for g in gb]  # an unused a or b: gradient 0
    return a.detach(), ga[0], ga[1], b.detach(), gb[0], torch.stack(gb[1:]).to(torch.float64)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_aucm_monai_cases(version):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(32, 1, generator=g, dtype=torch.float64)
    t = torch.randint(0, 2, (32, 1), generator=g).to(torch.float64)
    a, gx, gs, b, hx, hs = _aucm_pair(version, x, t, (0.0, 0.0, 0.0))
    assert a.ndim == 0
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx.numpy(), hx.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gs.numpy(), hs.numpy(), rtol=1e-10, atol=1e-14)


# beyond MONAI's tests: trained a, b, alpha, a margin and a fixed imratio, an image-shaped input,
# B = 1, and a batch without negatives (v2's empty class mean is 0)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("imratio", [None, 0.3])
@pytest.mark.parametrize(
    "shape,all_pos", [((32, 1), False), ((2, 1, 3, 4), False), ((1, 1, 5), True)]
)
def test_aucm_vs_monai(version, imratio, shape, all_pos):
    g = torch.Generator().manual_seed(13)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, 2, shape, generator=g).to(torch.float64)
    t = torch.ones_like(t) if all_pos else t
    a, gx, gs, b, hx, hs = _aucm_pair(version, x, t, (0.3, -0.2, 0.5), margin=0.7, imratio=imratio)
    # MONAI's v1 batch fraction is a float32 mean ((target == 1).float()): exact for 32 and 5
    # samples, float32-rounded for 24
    tol = 1e-7 if version == "v1" and imratio is None and x.numel() == 24 else 1e-10
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tol, atol=1e-14)
    np.testing.assert_allclose(gx.numpy(), hx.numpy(), rtol=tol, atol=1e-14)
    np.testing.assert_allclose(gs.numpy(), hs.numpy(), rtol=tol, atol=1e-14)


def test_aucm_jax_matches_torch():
    g = torch.Generator().manual_seed(14)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    pos = torch.rand(6, 5, generator=g) > 0.6
    st = torch.tensor([0.1, -0.4, 0.8], dtype=torch.float64)
    for version in ("v1", "v2"):
        want = lossdsl.load("aucm").compile("torch", version=version)(x, pos, st, reduction="none")
        j = lossdsl.load("aucm").compile("jax", version=version)
        got = np.asarray(j(x.numpy(), pos.numpy(), st.numpy(), reduction="none"))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# generalized_wasserstein_dice: Project-MONAI/MONAI
# tests/losses/test_generalized_wasserstein_dice_loss.py, stored commit
# 0eb610ad4083386c53d7ad928a7a628f86a0875f: test_bin_seg_2d, test_empty_class_2d,
# test_bin_seg_3d (logits 1000 * onehot of the target ("good") or of 1 - target ("poor"),
# dist [[0, 1], [1, 0]], both weighting modes; goldens 0 and 1 to 3 places), and
# test_batch_size_greater_than_one / test_batch_size_different_samples (a batch's per-sample
# losses equal the single-sample ones, to 5 places). A row: (target, "good" / "poor", golden).
_SQ = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
GWDL_CASES = [
    ("bin_seg_2d", [_SQ], "good", 0.0),
    ("bin_seg_2d", [_SQ], "poor", 1.0),
    ("empty_class_2d", [[[0] * 4] * 4], "good", 0.0),
    ("empty_class_2d", [[[0] * 4] * 4], "poor", 1.0),
    ("bin_seg_3d", [[_SQ, _SQ, _SQ]], "good", 0.0),
    ("bin_seg_3d", [[_SQ, _SQ, _SQ]], "poor", 1.0),
]
_M2 = [[0.0, 1.0], [1.0, 0.0]]


def _gwdl_logits(t, kind):
    ids = t if kind == "good" else 1 - t
    return 1000 * torch.nn.functional.one_hot(ids, 2).movedim(-1, 1).to(torch.float64)


@pytest.mark.parametrize("mode", ["default", "GDL"])
@pytest.mark.parametrize("case,target,kind,want", GWDL_CASES)
def test_gwdl_monai_cases(mode, case, target, kind, want):
    t = torch.tensor(target)
    x = _gwdl_logits(t, kind)
    fn = lossdsl.load("generalized_wasserstein_dice").compile("torch", weighting=mode.lower())
    a, ga = _grads(lambda v: fn(v, t, _t(_M2)), x)
    mon = GeneralizedWassersteinDiceLoss(dist_matrix=np.array(_M2), weighting_mode=mode)
    b, gb = _grads(lambda v: mon(v, t), x)
    np.testing.assert_allclose(a.numpy(), want, atol=5e-4)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("mode", ["default", "GDL"])
def test_gwdl_monai_batch_cases(mode):
    fn = lossdsl.load("generalized_wasserstein_dice").compile("torch", weighting=mode.lower())
    m = _t(_M2)
    ta = torch.tensor([_SQ])
    tb = torch.tensor([[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    # test_batch_size_greater_than_one: the same sample twice, "none" and "mean" (poor)
    single = fn(_gwdl_logits(ta, "good"), ta, m, reduction="none")
    batch = fn(_gwdl_logits(ta, "good").repeat(2, 1, 1, 1), ta.repeat(2, 1, 1), m, reduction="none")
    np.testing.assert_allclose(batch.numpy(), single.repeat(2).numpy(), atol=5e-6)
    poor1 = fn(_gwdl_logits(ta, "poor"), ta, m)
    poor2 = fn(_gwdl_logits(ta, "poor").repeat(2, 1, 1, 1), ta.repeat(2, 1, 1), m)
    assert float(poor1) > 0.5
    np.testing.assert_allclose(poor2.numpy(), poor1.numpy(), atol=5e-6)
    # test_batch_size_different_samples: a good sample a and a poor sample b
    xa, xb = _gwdl_logits(ta, "good"), _gwdl_logits(tb, "poor")
    both = fn(torch.cat([xa, xb]), torch.cat([ta, tb]), m, reduction="none")
    la, lb = fn(xa, ta, m, reduction="none"), fn(xb, tb, m, reduction="none")
    np.testing.assert_allclose(both.numpy(), torch.cat([la, lb]).numpy(), atol=5e-6)
    mon = GeneralizedWassersteinDiceLoss(np.array(_M2), weighting_mode=mode, reduction="none")
    np.testing.assert_allclose(both.numpy(), mon(torch.cat([xa, xb]), torch.cat([ta, tb])).numpy())


# beyond MONAI's tests: random logits, 3 classes with an uneven distance matrix (not rescaled:
# max 2, MONAI divides by it), absent classes, B = 1, every reduction, values and gradients
@pytest.mark.parametrize("mode", ["default", "GDL"])
@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (3, 3, 6)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gwdl_vs_monai(mode, shape, reduction):
    g = torch.Generator().manual_seed(15)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, 2 if shape[0] == 1 else 3, (shape[0], *shape[2:]), generator=g)
    m = _t([[0.0, 2.0, 1.6], [2.0, 0.0, 0.6], [1.6, 0.6, 0.0]])
    fn = lossdsl.load("generalized_wasserstein_dice").compile("torch", weighting=mode.lower())
    a, ga = _grads(lambda v: fn(v, t, m, reduction=reduction), x)
    mon = GeneralizedWassersteinDiceLoss(dist_matrix=m, weighting_mode=mode, reduction=reduction)
    b, gb = _grads(lambda v: mon(v, t), x)
    # MONAI's GDL weights 1 / (volume + 1) are float32
    tol = 1e-6 if mode == "GDL" else 1e-10
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=tol, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=tol, atol=1e-10)


def test_gwdl_jax_matches_torch():
    g = torch.Generator().manual_seed(16)
    x = torch.randn(2, 3, 7, generator=g, dtype=torch.float64)
    t = torch.randint(0, 3, (2, 7), generator=g)
    m = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.7], [0.5, 0.7, 0.0]])
    for mode in ("default", "gdl"):
        want = lossdsl.load("generalized_wasserstein_dice").compile("torch", weighting=mode)(
            x, t, torch.from_numpy(m), reduction="none"
        )
        j = lossdsl.load("generalized_wasserstein_dice").compile("jax", weighting=mode)
        got = np.asarray(j(x.numpy(), t.numpy(), m, reduction="none"))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# DiceCELoss(label_smoothing=) and DiceCELoss(reduction="sum") on specs/dice_ce.loss. MONAI's
# test_dice_ce_loss.py (stored commit dd3ca76e) has no label-smoothing case: its C > 1 settings
# (TEST_CASES 0, 3, 4, 5: to_onehot_y, include_background=False, weight [1, 1] / [0, 1],
# lambda_ce 2, on its (2, 2, 3) input) run with label_smoothing 0.1 and 0.6 against the installed
# MONAI 1.6.1, and random batches (index and probability targets, class weights, 1-D and 2-D)
# for several smoothings.
_DCE_X = [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]
_DCE_X100 = [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]
_DCE_Y = [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]]
DCE_SMOOTH_CASES = [
    ({"to_onehot_y": True}, _DCE_X),
    ({"include_background": False, "to_onehot_y": True, "weight": [1.0, 1.0]}, _DCE_X100),
    ({"include_background": False, "to_onehot_y": True, "weight": [1.0, 1.0], "lambda_dice": 1.0,
      "lambda_ce": 2.0}, _DCE_X100),
    ({"include_background": False, "to_onehot_y": True, "weight": [0.0, 1.0]}, _DCE_X100),
]  # fmt: skip


def _dice_ce_pair(kw, x, y_ids, y_probs=None):
    """(spec closure, MONAI closure): MONAI's softmax=True with to_onehot_y (index ids) or a
    C-channel probability target; the spec gets the one-hot / the probabilities."""
    from monai.losses import DiceCELoss

    kw = dict(kw)
    onehot = kw.get("to_onehot_y", False)
    c = x.shape[1]
    params = {k: kw[k] for k in ("lambda_dice", "lambda_ce", "label_smoothing",
                                 "include_background") if k in kw}  # fmt: skip
    w = kw.get("weight")
    if w is not None:
        kw["weight"] = _t(w)
    fn = lossdsl.load("dice_ce").compile(
        "torch", activation="softmax", ce_target="index" if onehot else "probs"
    )
    y_spec = _onehot(y_ids, c) if onehot else y_probs
    extra = [] if w is None else [_t(w)]
    mon = DiceCELoss(softmax=True, **kw)
    y_mon = y_ids if onehot else y_probs
    return (lambda v: fn(v, y_spec, *extra, **params)), (lambda v: mon(v, y_mon))


@pytest.mark.parametrize("ls", [0.1, 0.6])
@pytest.mark.parametrize("kw,x", DCE_SMOOTH_CASES, ids=["case0", "case3", "case4", "case5"])
def test_dice_ce_label_smoothing_monai_settings(kw, x, ls):
    ours, theirs = _dice_ce_pair({**kw, "label_smoothing": ls}, _t(x), _t(_DCE_Y))
    a, ga = _grads(ours, _t(x))
    b, gb = _grads(theirs, _t(x))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 6)])
@pytest.mark.parametrize("ls", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("target", ["index", "probs"])
@pytest.mark.parametrize("weighted", [False, True])
def test_dice_ce_label_smoothing_vs_monai(shape, ls, target, weighted):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    ids = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g).to(torch.float64)
    probs = torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64), 1)
    kw = {"to_onehot_y": target == "index", "label_smoothing": ls}
    if weighted:
        kw["weight"] = [0.5, 1.0, 2.0, 1.5][: shape[1]]
    ours, theirs = _dice_ce_pair(kw, x, ids, probs)
    a, ga = _grads(ours, x)
    b, gb = _grads(theirs, x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    "shape,target",
    [((2, 3, 4, 5), "index"), ((2, 3, 4, 5), "probs"), ((1, 2, 3), "index"), ((1, 2, 3), "probs"),
     ((3, 1, 6), "probs")],
)  # fmt: skip
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ib", [False, True])
@pytest.mark.parametrize("batch", [False, True])
def test_dice_ce_sum_is_monais_sum(shape, target, weighted, ib, batch):
    """DiceCELoss(reduction="sum") (installed MONAI 1.6.1: the Dice sum over B and C' plus
    torch's CrossEntropyLoss / BCEWithLogitsLoss sum) = dice_ce with monai_reduction="sum" and
    reduction="sum"; C = 1 is MONAI's BCE branch. Label smoothing 0.1 where C > 1."""
    from monai.losses import DiceCELoss

    g = torch.Generator().manual_seed(11)
    c = shape[1]
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    if c == 1:  # MONAI's BCE branch takes the [B, 1, *S] target as it is
        ids = torch.randint(0, 2, shape, generator=g).to(torch.float64)
        probs = ids
    else:
        ids = torch.randint(0, c, (shape[0], 1, *shape[2:]), generator=g).to(torch.float64)
        probs = torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64), 1)
    onehot = target == "index" and c > 1
    w = [0.5, 1.0, 2.0][:c] if weighted else None
    smooth = 0.1 if c > 1 else 0.0
    kw = {"include_background": ib, "batch": batch, "to_onehot_y": onehot, "reduction": "sum"}
    mon = DiceCELoss(softmax=c > 1, sigmoid=c == 1, label_smoothing=smooth, **kw,
                     weight=None if w is None else _t(w))  # fmt: skip
    fn = lossdsl.load("dice_ce").compile(
        "torch", activation="softmax" if c > 1 else "sigmoid", ce_target=target,
        include_background=ib, batch=batch, monai_reduction="sum",
    )  # fmt: skip
    y = _onehot(ids, c) if onehot else probs
    extra = [] if w is None else [_t(w)]
    a, ga = _grads(lambda v: fn(v, y, *extra, label_smoothing=smooth, reduction="sum"), x)
    b, gb = _grads(lambda v: mon(v, ids if onehot else probs), x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-12)


def test_dice_ce_label_smoothing_outside_0_1_is_a_param_error():
    """torch's CrossEntropyLoss raises on label_smoothing outside [0, 1]: a ParamError here."""
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    y = _onehot(torch.zeros(1, 1, 4), 3)
    fn = lossdsl.load("dice_ce").compile("torch")
    for bad in (-0.1, 1.5):
        with pytest.raises(lossdsl.LossError, match="label_smoothing"):
            fn(x, y, label_smoothing=bad)


# ---------------------------------------------------------------------------------------------
# FocalLoss(use_softmax=True) on specs/focal.loss (no spec change: its weight, alpha and
# ignore_index are MONAI's): MONAI's [B, C, *S] with to_onehot_y is focal(x.movedim(1, -1)
# .reshape(-1, C), ids.reshape(-1)); MONAI's "mean" divides by B C |S| (the spec's mean over the
# B |S| rows, divided by C), its "sum" sums the per-(b, c) means over S (the spec's sum / |S|).
# include_background=False drops channel 0 before the softmax: focal on x[:, 1:] with the
# background pixels ignored, its sum divided by B (C - 1) |S|. MONAI computes in float32
# (input.float()): 1e-6 relative against the float64 spec. Random inputs against the installed
# MONAI 1.6.1 (values and gradients).
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4, 6)])
@pytest.mark.parametrize("alpha", [None, 0.25, [0.2, 0.3, 0.5, 0.1]])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_softmax_focal_is_focal_spec(shape, alpha, gamma, weighted, reduction):
    from monai.losses import FocalLoss

    g = torch.Generator().manual_seed(9)
    c = shape[1]
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    ids = torch.randint(0, c, (shape[0], 1, *shape[2:]), generator=g)
    w = [1.5, 0.5, 2.0, 1.0][:c] if weighted else None
    a_vec = alpha[:c] if isinstance(alpha, list) else alpha
    mon = FocalLoss(use_softmax=True, to_onehot_y=True, gamma=gamma, alpha=a_vec, weight=w,
                    reduction=reduction)  # fmt: skip
    fn = lossdsl.load("focal").compile("torch")
    n_s = int(np.prod(shape[2:]))
    # a per-class alpha vector is a class weight: the spec's weight, times MONAI's weight=
    cw = torch.ones(c, dtype=torch.float64)
    if w is not None:
        cw = cw * _t(w)
    if isinstance(a_vec, list):
        cw = cw * _t(a_vec)
    params = {"gamma": gamma, "alpha": a_vec if isinstance(a_vec, float) else -1.0}

    def ours(v):
        rows = v.movedim(1, -1).reshape(-1, c)
        out = fn(rows, ids.reshape(-1), cw, reduction=reduction, **params)
        return out / c if reduction == "mean" else out / n_s

    a, ga = _grads(ours, x)
    b, gb = _grads(lambda v: mon(v, ids), x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_softmax_focal_without_background_is_focal_spec(gamma):
    from monai.losses import FocalLoss

    g = torch.Generator().manual_seed(10)
    x = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 4, (2, 1, 3, 5), generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mon = FocalLoss(use_softmax=True, to_onehot_y=True, include_background=False, gamma=gamma)
        b, gb = _grads(lambda v: mon(v, ids), x)
    fn = lossdsl.load("focal").compile("torch")

    def ours(v):
        rows = v[:, 1:].movedim(1, -1).reshape(-1, 3)
        t = ids.reshape(-1) - 1  # background pixels: -1, ignored (their target row is all 0)
        return fn(rows, t, ignore_index=-1, gamma=gamma, reduction="sum") / (2 * 3 * 15)

    a, ga = _grads(ours, x)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-5, atol=1e-8)
