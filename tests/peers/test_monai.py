"""MONAI's own loss test cases (monai.losses, installed 1.6.1) run against the lossdsl specs.

Source of every table: the GitHub repository Project-MONAI/MONAI, its tests/losses/ files named
at each table, at commit d388d1c6fec8cb3a0eebee5b5a0b9776ca59ca83 (main, 2025-06-13: the newest
snapshot the tools hold; it has no 1.6.x tag, so its TEST_CASES stand for 1.6.1's), except the
ignore_index cases, which are from the stored version 01c9ad1ad0e814355fe0f338e3160eb22d17d728
of tests/losses/test_dice_loss.py (class TestDiceLossIgnoreIndex). A row is (MONAI constructor
args, input, target, MONAI's golden value): the settings and figures carry over, the test code
does not. Each case runs the spec against the golden value (MONAI's tolerance, rtol 1e-5: the
goldens are float32 results rounded to 6 digits) and against the installed MONAI 1.6.1 as a
second check, values and autograd gradients in float64.

MONAI argument -> spec: sigmoid=True / softmax=True -> activation="sigmoid" / "softmax"
(softmax with one channel is ignored by MONAI: "none"), neither -> "none"; other_act (tanh,
log_softmax) is applied to the input before the spec (activation "none"); to_onehot_y=True -> the
one-hot of the [B, 1, *S] class ids; weight= without background -> a [C] weight whose entry 0
is unused; the rest by name. Exclusions: EXCLUDED below (and docs/peers/monai.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossdsl

monai = pytest.importorskip("monai")
from monai.losses import (  # noqa: E402
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    GeneralizedDiceLoss,
    TverskyLoss,
)

COMMIT = "d388d1c6fec8cb3a0eebee5b5a0b9776ca59ca83"

# MONAI test code that does not exercise loss math: argument errors, warnings, TorchScript
EXCLUDED = {
    "test_dice_loss.py::test_ill_shape": "shape-mismatch AssertionError (argument check)",
    "test_dice_loss.py::test_ill_opts": "ValueError on sigmoid+softmax / a bad reduction",
    "test_dice_loss.py::test_input_warnings": "warnings on a single-channel input",
    "test_dice_loss.py::test_script": "TorchScript export",
    "test_generalized_dice_loss.py::test_ill_shape": "shape-mismatch AssertionError",
    "test_generalized_dice_loss.py::test_ill_opts": "ValueError on bad options",
    "test_generalized_dice_loss.py::test_input_warnings": "warnings on a single-channel input",
    "test_generalized_dice_loss.py::test_script": "TorchScript export",
    "test_tversky_loss.py::test_ill_shape": "shape-mismatch AssertionError",
    "test_tversky_loss.py::test_input_warnings": "warnings on a single-channel input",
    "test_tversky_loss.py::test_script": "TorchScript export",
    "test_dice_ce_loss.py::test_ill_shape": "shape-mismatch ValueError",
    "test_dice_ce_loss.py::test_ill_reduction": "ValueError on a bad reduction",
    "test_dice_ce_loss.py::test_script": "TorchScript export",
    "test_dice_focal_loss.py::test_ill_shape/2/3": "shape-mismatch errors",
    "test_dice_focal_loss.py::test_ill_lambda": "ValueError on a negative lambda",
    "test_dice_focal_loss.py::test_script": "TorchScript export",
    "test_generalized_dice_focal_loss.py::test_ill_shape/2/3": "shape-mismatch errors",
    "test_generalized_dice_focal_loss.py::test_ill_lambda": "ValueError on a negative lambda",
    "test_generalized_dice_focal_loss.py::test_script": "TorchScript export",
}


def _t(v, dtype=torch.float64):
    return torch.as_tensor(v, dtype=dtype)


OTHER_ACT = {"tanh": torch.tanh, "log_softmax": lambda x: torch.log_softmax(x, dim=1)}


def _onehot(y, c):
    return torch.nn.functional.one_hot(y[:, 0].long(), c).movedim(-1, 1).to(torch.float64)


def _split(kw, x):
    """MONAI kwargs -> (activation, other_act name, the spec's params, MONAI's kwargs)."""
    kw = dict(kw)
    c = x.shape[1]
    sig, soft = kw.pop("sigmoid", False), kw.pop("softmax", False)
    act = "sigmoid" if sig else ("softmax" if soft and c > 1 else "none")
    other = kw.pop("other_act", None)
    monai_kw = {**kw, "sigmoid": sig, "softmax": soft}
    if other is not None:
        monai_kw["other_act"] = OTHER_ACT[other]
    return act, other, kw, monai_kw


def _grads(fn, x):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    (g,) = torch.autograd.grad(out.sum(), [x])
    return out.detach(), g


def _run(spec, monai_cls, kw, x, y, want, rtol=1e-5, atol=1e-7, rtol_monai=1e-10, baked=()):
    """The spec against MONAI's golden value and against installed MONAI (values, gradients)."""
    x, y0 = _t(x), _t(y)
    c = x.shape[1]
    act, other, params, monai_kw = _split(kw, x)
    y = _onehot(y0, c) if params.pop("to_onehot_y", False) and c > 1 else y0
    red = params.pop("reduction", "mean")
    bake = {"activation": act, **{k: params.pop(k) for k in baked if k in params}}
    if "weight" in params:
        w = _t(params.pop("weight")).reshape(-1)
        if spec in ("dense_dice",) and not params.get("include_background", True) and c > 1:
            w = torch.cat([torch.zeros(1), w])
        params["weight"] = w
    fn = lossdsl.load(spec).compile("torch", **bake)
    pre = OTHER_ACT[other] if other is not None else (lambda v: v)

    def ours(v):
        return fn(pre(v), y, reduction=red, **params)

    def theirs(v):
        return monai_cls(**monai_kw)(v, y0)

    a, ga = _grads(ours, x)
    b, gb = _grads(theirs, x)
    if red == "none":
        a = _as_monai_none(spec, a, params, c)
        b = b.reshape(a.shape)
    np.testing.assert_allclose(a.numpy(), np.reshape(want, a.shape), rtol=rtol, atol=atol)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=rtol_monai, atol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=max(rtol_monai, 1e-8), atol=1e-10)


def _as_monai_none(spec, a, params, c):
    """Our reduction="none" in MONAI's layout: class 0 dropped without background; GDL [B]."""
    if spec == "generalized_dice":
        return a
    if not params.get("include_background", True) and c > 1:
        a = a[:, 1:]
    return a


# Project-MONAI/MONAI tests/losses/test_dice_loss.py (commit d388d1c6), TEST_CASES:
# (MONAI constructor args, input, target, golden value)
DICE_CASES = [
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-06, "smooth_dr": 1e-06},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.307576,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001},
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.416657,
    ),
    (
        {"include_background": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001, "soft_label": True},
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        0.0,
    ),
    (
        {"include_background": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001, "soft_label": False},
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        0.307773,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.0,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.43505,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "reduction": "none",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        [[[0.296529], [0.415136]], [[0.599976], [0.428559]]],
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.383713,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "sum",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        1.534853,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-06, "smooth_dr": 1e-06},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.307576,
    ),
    (
        {"include_background": True, "sigmoid": True, "squared_pred": True},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.178337,
    ),
    (
        {"include_background": True, "sigmoid": True, "jaccard": True},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.470451,
    ),
    (
        {"include_background": True, "other_act": "tanh", "smooth_nr": 0.0001, "smooth_dr": 0.0001},
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.999963,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "other_act": "log_softmax",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        -8.522593,
    ),
    (
        {
            "include_background": True,
            "other_act": "tanh",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
            "batch": True,
        },
        [[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.774718,
    ),
    (
        {
            "include_background": True,
            "other_act": "tanh",
            "smooth_nr": 0,
            "smooth_dr": 0.0001,
            "batch": True,
        },
        [[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.774733,
    ),
    (
        {
            "include_background": True,
            "other_act": "tanh",
            "smooth_nr": 0,
            "smooth_dr": 0.0001,
            "batch": False,
        },
        [[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.840058,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "other_act": "log_softmax",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
            "weight": [0, 1],
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        -8.268515,
    ),
]

# Project-MONAI/MONAI tests/losses/test_generalized_dice_loss.py (commit d388d1c6), TEST_CASES:
# (MONAI constructor args, input, target, golden value)
GDL_CASES = [
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-06, "smooth_dr": 1e-06},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.307576,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001},
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.416597,
    ),
    (
        {"include_background": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001, "soft_label": True},
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        0.0,
    ),
    (
        {"include_background": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001, "soft_label": False},
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        0.307748,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0.0, "smooth_dr": 0.0},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.0,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.469964,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.414507,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "sum",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.829015,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "none",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        [[[0.273476]], [[0.555539]]],
    ),
    (
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 1e-08, "smooth_dr": 1e-08},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]],
        0.0,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-06, "smooth_dr": 1e-06},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.307576,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "w_type": "simple",
            "smooth_nr": 0,
            "smooth_dr": 0,
        },
        [[[0.0, 10.0, 10.0, 10.0], [10.0, 0.0, 0.0, 0.0]]],
        [[[1, 1, 0, 0]]],
        0.250023,
    ),
    (
        {"include_background": True, "other_act": "tanh", "smooth_nr": 0.0001, "smooth_dr": 0.0001},
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.9997,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "other_act": "log_softmax",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        -0.097833,
    ),
]

# Project-MONAI/MONAI tests/losses/test_tversky_loss.py (commit d388d1c6), TEST_CASES:
# (MONAI constructor args, input, target, golden value)
TVERSKY_CASES = [
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 1e-06, "smooth_dr": 1e-06},
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.307576,
    ),
    (
        {"include_background": True, "sigmoid": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001},
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.416657,
    ),
    (
        {"include_background": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001, "soft_label": True},
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        0.0,
    ),
    (
        {"include_background": True, "smooth_nr": 0.0001, "smooth_dr": 0.0001, "soft_label": False},
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]],
        0.307773,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.0,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0.001},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.000999,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.43505,
    ),
    (
        {"include_background": True, "to_onehot_y": True, "sigmoid": True, "batch": True},
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.422979,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "sigmoid": True,
            "reduction": "sum",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        1.74013,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        0.383713,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "none",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        [[0.210961, 0.295339], [0.599952, 0.428547]],
    ),
    (
        {
            "include_background": True,
            "sigmoid": True,
            "alpha": 0.3,
            "beta": 0.7,
            "smooth_nr": 1e-06,
            "smooth_dr": 1e-06,
        },
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.3589,
    ),
    (
        {
            "include_background": True,
            "sigmoid": True,
            "alpha": 0.7,
            "beta": 0.3,
            "smooth_nr": 1e-06,
            "smooth_dr": 1e-06,
        },
        [[[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 0.0], [1.0, 1.0]]]],
        0.247366,
    ),
    (
        {"include_background": True, "other_act": "tanh", "smooth_nr": 0.0001, "smooth_dr": 0.0001},
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.999963,
    ),
    (
        {
            "include_background": True,
            "other_act": "tanh",
            "smooth_nr": 0,
            "smooth_dr": 0.001,
            "batch": True,
        },
        [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]],
        0.999963,
    ),
    (
        {
            "include_background": True,
            "to_onehot_y": True,
            "other_act": "log_softmax",
            "smooth_nr": 0.0001,
            "smooth_dr": 0.0001,
        },
        [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]],
        [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]],
        -8.533317,
    ),
]

# Project-MONAI/MONAI tests/losses/test_dice_ce_loss.py (commit d388d1c6), TEST_CASES:
# (MONAI constructor args, input, target, golden value)
DICE_CE_CASES = [
    (
        {"to_onehot_y": True},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.3133,
    ),
    (
        {"to_onehot_y": False},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        0.3133,
    ),
    (
        {"to_onehot_y": False},
        [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[1, 1, 0], [0, 0, 1]], [[1, 0, 1], [0, 1, 0]]],
        0.3133,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "weight": [1.0, 1.0]},
        [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.2088,
    ),
    (
        {
            "include_background": False,
            "to_onehot_y": True,
            "weight": [1.0, 1.0],
            "lambda_dice": 1.0,
            "lambda_ce": 2.0,
        },
        [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.4176,
    ),
    (
        {"include_background": False, "to_onehot_y": True, "weight": [0.0, 1.0]},
        [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        0.3133,
    ),
    (
        {"weight": [0.5], "sigmoid": True},
        [[[0.8, 0.6, 0.0]], [[0.0, 0.0, 0.9]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        1.445239,
    ),
]


# GDL tests/losses/test_generalized_dice_loss.py test_differentiability and test_batch (MONAI
# asserts a gradient exists; here it is compared with MONAI's): (args, input, target)
GDL_AUTOGRAD_CASES = [
    ({}, np.ones((1, 1, 1, 3)).tolist(), np.ones((1, 1, 1, 3)).tolist()),
    ({"batch": True}, np.zeros((2, 3, 3, 3)).tolist(), np.zeros((2, 3, 3, 3)).tolist()),
]


def _ids(cases):
    return [f"case{i}" for i in range(len(cases))]


@pytest.mark.parametrize("kw,x,y,want", DICE_CASES, ids=_ids(DICE_CASES))
def test_monai_dice_loss_cases(kw, x, y, want):
    """test_dice_loss.py TEST_CASES: monai.losses.DiceLoss -> specs/dense_dice.loss."""
    _run("dense_dice", DiceLoss, kw, x, y, want)


@pytest.mark.parametrize("kw,x,y,want", GDL_CASES, ids=_ids(GDL_CASES))
def test_monai_generalized_dice_loss_cases(kw, x, y, want):
    """test_generalized_dice_loss.py TEST_CASES -> specs/generalized_dice.loss; MONAI's class
    weights are float32 (w_func(ground_o.float())): 1e-6 against the installed MONAI."""
    _run(
        "generalized_dice", GeneralizedDiceLoss, kw, x, y, want, rtol_monai=1e-6, baked=("w_type",)
    )


@pytest.mark.parametrize("kw,x,y", GDL_AUTOGRAD_CASES, ids=_ids(GDL_AUTOGRAD_CASES))
def test_monai_generalized_dice_autograd_cases(kw, x, y):
    """test_differentiability / test_batch: the value and gradient MONAI computes (no golden)."""
    want = GeneralizedDiceLoss(**kw)(_t(x), _t(y)).item()
    _run("generalized_dice", GeneralizedDiceLoss, kw, x, y, want, rtol_monai=1e-6)


@pytest.mark.parametrize("kw,x,y,want", TVERSKY_CASES, ids=_ids(TVERSKY_CASES))
def test_monai_tversky_loss_cases(kw, x, y, want):
    """test_tversky_loss.py TEST_CASES (MONAI's tolerance there: rtol 1e-4) -> tversky."""
    _run("tversky", TverskyLoss, kw, x, y, want, rtol=1e-4)


@pytest.mark.parametrize("kw,x,y,want", DICE_CE_CASES, ids=_ids(DICE_CE_CASES))
def test_monai_dice_ce_loss_cases(kw, x, y, want):
    """test_dice_ce_loss.py TEST_CASES (MONAI's tolerance: rtol = atol = 1e-4) -> dice_ce:
    to_onehot_y=True is ce_target="index" (class-id cross-entropy), a C-channel target "probs"."""
    kw = dict(kw)
    ce_target = "index" if kw.get("to_onehot_y", False) else "probs"
    x = _t(x)
    c = x.shape[1]
    act, other, params, monai_kw = _split(kw, x)
    y0 = _t(y)
    y1 = _onehot(y0, c) if params.pop("to_onehot_y", False) and c > 1 else y0
    if "weight" in params:
        params["weight"] = monai_kw["weight"] = _t(params["weight"]).reshape(-1)
    fn = lossdsl.load("dice_ce").compile("torch", activation=act, ce_target=ce_target)
    a, ga = _grads(lambda v: fn(v, y1, **params), x)
    b, gb = _grads(lambda v: DiceCELoss(**monai_kw)(v, y0), x)
    np.testing.assert_allclose(a.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-8, atol=1e-12)


# tests/losses/test_dice_focal_loss.py (commit d388d1c6): no golden values; each test compares
# DiceFocalLoss with DiceLoss + lambda_focal * FocalLoss on random data for a grid of settings.
# The settings carry over (the data are drawn here, seeded); the expected value is that sum,
# computed by the installed MONAI. MONAI's "none" ([B, C', *S]) is compared averaged over S.
def _dice_focal_grid():
    rows = []
    # test_result_onehot_target_include_bg: [3, 3, 5, 5], gamma 1
    for red in ("sum", "mean", "none"):
        for w in (None, (1.0, 1.0, 2.0), (3, 2.0, 1)):
            for lf in (0.5, 1.0, 1.5):
                rows.append(
                    (
                        "onehot_include_bg",
                        (3, 3, 5, 5),
                        False,
                        dict(include_background=True, reduction=red, weight=w),
                        lf,
                        1.0,
                        None,
                    )
                )
    # test_result_no_onehot_no_bg: ([3, 3, 5, 5], to_onehot_y) and ([3, 2, 5, 5], one-hot)
    for size, onehot, weights in (
        ((3, 3, 5, 5), True, [(1.0, 2.0), (2.0, 1)]),
        ((3, 2, 5, 5), False, [2.0]),
    ):
        for red in ("sum", "mean", "none"):
            for w in weights:
                for lf in (0.5, 1.0, 1.5):
                    rows.append(
                        (
                            "no_onehot_no_bg",
                            size,
                            onehot,
                            dict(include_background=False, softmax=True, reduction=red, weight=w),
                            lf,
                            2.0,
                            None,
                        )
                    )
    # test_with_alpha: [3, 3, 5, 5], gamma 1, lambda_focal 0.5, alpha 0.25
    for red in ("sum", "mean", "none"):
        for w in (None, (1.0, 1.0, 2.0), (3, 2.0, 1)):
            rows.append(
                (
                    "with_alpha",
                    (3, 3, 5, 5),
                    False,
                    dict(include_background=True, reduction=red, weight=w),
                    0.5,
                    1.0,
                    0.25,
                )
            )
    return rows


DICE_FOCAL_GRID = _dice_focal_grid()


def _seg_case(seed, size, onehot, high=2):
    """MONAI's combined-loss tests' random case: a {0, .., high - 1} label of `size` (its argmax
    over C, [B, 1, *S], when MONAI one-hots it: to_onehot_y) and normal logits."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, high, size, generator=g)
    if onehot:
        label = torch.argmax(label, dim=1, keepdim=True)
    return label, torch.randn(size, generator=g), g


@pytest.mark.parametrize(
    "row", DICE_FOCAL_GRID, ids=[f"{r[0]}{i}" for i, r in enumerate(DICE_FOCAL_GRID)]
)
def test_monai_dice_focal_loss_cases(row):
    """test_dice_focal_loss.py -> specs/dice_focal.loss. MONAI's FocalLoss computes in float32
    (input.float()): 1e-6 against it (values, gradients)."""
    _, size, onehot, common, lf, gamma, alpha = row
    high = size[1] - 1 if common["include_background"] is False else 2
    label, pred, _ = _seg_case(len(str(row)), size, onehot, high)
    c = size[1]
    red, w = common["reduction"], common["weight"]
    mk = {k: v for k, v in common.items() if k not in ("softmax",)}
    mk_dice = dict(common, to_onehot_y=onehot)
    mk_focal = dict(mk, to_onehot_y=onehot)

    def theirs(v):
        dice = DiceLoss(**mk_dice)(v, label.double())
        focal = FocalLoss(gamma=gamma, alpha=alpha, **mk_focal)(v, label.double())
        out = dice + lf * focal
        return out.mean(dim=tuple(range(2, out.dim()))) if red == "none" else out

    y = _onehot(label, c) if onehot else label.double()
    ib = common["include_background"]
    params = dict(include_background=ib, lambda_focal=lf, gamma=gamma)
    if alpha is not None:
        params["alpha"] = alpha
    if w is not None:
        wt = _t(w)
        # MONAI: a scalar weighs every class; a sequence has one weight per kept class
        wt = wt.expand(c) if wt.dim() == 0 else (wt if ib else torch.cat([torch.zeros(1), wt]))
        params["weight"] = wt
    fn = lossdsl.load("dice_focal").compile(
        "torch", activation="softmax" if common.get("softmax") else "none"
    )

    def ours(v):
        out = fn(v, y, reduction=red, **params)
        return out[:, 1:] if red == "none" and not ib else out

    a, ga = _grads(ours, pred)
    b, gb = _grads(theirs, pred)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6, atol=1e-8)


# ---- optax.losses segmentation (optax 0.2.8) -------------------------------------------------
# optax ships its own tests in site-packages/optax/losses/_segmentation_test.py (DiceLossTest,
# absltest): they run here with optax's dice_loss, binary_dice_loss and
# multiclass_generalized_dice_loss replaced by the lossdsl JAX specs (specs/tversky.loss and
# specs/multiclass_generalized_dice.loss). The wrappers do only optax's plumbing: its channel
# dim added to [...] inputs, the class axis moved from last to 1, and its reduction over the
# class axis of reduction="none" (after dropping class 0 with ignore_background).
OPTAX_EXCLUDED = {
    "test_probability_validation": "optax's ValueError when apply_softmax=False and the rows do "
    "not sum to 1 (an argument check, not loss math)",
}
_OPTAX_CALLS = []


def _optax_specs():
    import jax

    jit = {}

    def spec(name, act):
        # one jitted function per spec, activation and static params (eager dispatch of the
        # unjitted module op by op made optax's shape sweep take 40 s)
        if (name, act) not in jit:
            fn = lossdsl.load(name).compile("jax", activation=act)
            jit[name, act] = jax.jit(
                lambda *a, **kw: fn(*a, **kw), static_argnames=("reduction", "include_background")
            )
        return jit[name, act]

    def plumb(predictions, targets):
        import jax.numpy as jnp

        predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
        if predictions.ndim == targets.ndim - 1:
            predictions = predictions[..., None]
        if targets.ndim == predictions.ndim - 1:
            targets = targets[..., None]
        c = predictions.shape[-1]
        return (
            jnp.moveaxis(predictions, -1, 1),
            jnp.moveaxis(targets, -1, 1).astype(predictions.dtype),
            c,
        )

    def dice_loss(
        predictions,
        targets,
        *,
        class_weights=None,
        smooth=1.0,
        alpha=0.5,
        beta=0.5,
        apply_softmax=True,
        reduction="mean",
        ignore_background=False,
        axis=None,
    ):
        import jax.numpy as jnp

        assert axis is None, "optax's axis= is not exercised by its tests"
        _OPTAX_CALLS.append("dice_loss")
        x, t, c = plumb(predictions, targets)
        act = ("sigmoid" if c == 1 else "softmax") if apply_softmax else "none"
        kw = {} if class_weights is None else {"weight": jnp.asarray(class_weights, x.dtype)}
        out = spec("tversky", act)(
            x, t, alpha=alpha, beta=beta, smooth_nr=smooth, smooth_dr=smooth, reduction="none", **kw
        )
        if ignore_background and c > 1:
            out = out[:, 1:]
        return {"mean": jnp.mean, "sum": jnp.sum}.get(reduction, lambda v, axis: v)(out, axis=-1)

    def binary_dice_loss(predictions, targets, *, smooth=1.0, apply_sigmoid=True):
        import jax.numpy as jnp

        predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
        if predictions.ndim == targets.ndim and predictions.shape[-1] != 1:
            predictions, targets = predictions[..., None], targets[..., None]
        return dice_loss(predictions, targets, smooth=smooth, apply_softmax=apply_sigmoid)

    def multiclass_generalized_dice_loss(
        predictions, targets, *, smooth=1.0, apply_softmax=True, ignore_background=False
    ):
        _OPTAX_CALLS.append("multiclass_generalized_dice_loss")
        x, t, c = plumb(predictions, targets)
        act = ("sigmoid" if c == 1 else "softmax") if apply_softmax else "none"
        return spec("multiclass_generalized_dice", act)(
            x, t, smooth=smooth, include_background=not ignore_background
        )

    return dice_loss, binary_dice_loss, multiclass_generalized_dice_loss


def _optax_test_names():
    from optax.losses import _segmentation_test

    names = dir(_segmentation_test.DiceLossTest)
    return sorted(n for n in names if n.startswith("test") and n not in OPTAX_EXCLUDED)


@pytest.mark.parametrize("name", _optax_test_names())
def test_optax_segmentation_suite_with_the_specs(name, monkeypatch):
    """optax 0.2.8's DiceLossTest, each method run with the lossdsl specs substituted."""
    import unittest

    from optax.losses import _segmentation, _segmentation_test

    dice, binary, gdl = _optax_specs()
    monkeypatch.setattr(_segmentation, "dice_loss", dice)
    monkeypatch.setattr(_segmentation, "binary_dice_loss", binary)
    monkeypatch.setattr(_segmentation, "multiclass_generalized_dice_loss", gdl)
    _OPTAX_CALLS.clear()
    result = unittest.TestResult()
    _segmentation_test.DiceLossTest(name).run(result)
    assert result.wasSuccessful(), result.failures + result.errors
    assert _OPTAX_CALLS, "the test never reached a substituted spec"


# ---- beyond the peers' own cases: conventions, boundaries, the JAX backend -------------------


def _seg(b, c, shape=(4, 5), seed=0, absent=()):
    """Logits [b, c, *shape] and the one-hot [b, c, *shape] of random class ids that avoid the
    classes in `absent`."""
    g = torch.Generator().manual_seed(seed)
    present = [k for k in range(c) if k not in absent]
    ids = torch.tensor(present)[torch.randint(0, len(present), (b, *shape), generator=g)]
    x = torch.randn(b, c, *shape, generator=g) * 2
    return x, ids, torch.nn.functional.one_hot(ids, c).movedim(-1, 1).to(torch.float64)


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_dense_dice_absent_zeroed_is_segmentation_models_pytorch(b, smooth):
    """absent_class="zeroed", batch=true: segmentation_models_pytorch's DiceLoss (multiclass,
    from logits), transcribed in tests/reference/smp_dice.py; class 2 absent from the batch."""
    from reference.smp_dice import smp_dice_loss

    x, ids, y = _seg(b, 4, seed=b, absent=(2,))
    fn = lossdsl.load("dense_dice").compile("torch", absent_class="zeroed")
    a, ga = _grads(lambda v: fn(v, y, batch=True, smooth_nr=smooth, smooth_dr=smooth), x)
    r, gr = _grads(lambda v: smp_dice_loss(v, ids, smooth=smooth), x)
    torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga, gr, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("b", [1, 2])
def test_dense_dice_boundaries_match_monai(b):
    """B = 1 and 2, an absent class kept (MONAI), include_background false, class weights,
    squared_pred and jaccard, smooth 0: against monai.losses.DiceLoss 1.6.1."""
    x, ids, y = _seg(b, 3, seed=7 + b, absent=(1,))
    w = torch.tensor([0.0, 2.0, 0.5])
    for kw, mk in [
        ({}, {}),
        (
            {"include_background": False, "weight": w},
            {"include_background": False, "weight": w[1:]},
        ),
        ({"squared_pred": True, "smooth_nr": 0.0}, {"squared_pred": True, "smooth_nr": 0.0}),
        ({"jaccard": True, "batch": True}, {"jaccard": True, "batch": True}),
    ]:
        fn = lossdsl.load("dense_dice").compile("torch")
        for red in ("mean", "sum"):
            a, ga = _grads(lambda v: fn(v, y, reduction=red, **kw), x)
            m, gm = _grads(lambda v: DiceLoss(softmax=True, reduction=red, **mk)(v, y), x)
            torch.testing.assert_close(a, m, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(ga, gm, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch", [False, True])
def test_dense_dice_dropped_empty_background_with_no_smoothing_is_monai(batch):
    """include_background=false, smooth_nr = smooth_dr = 0, probabilities in with an empty
    background channel (prediction and target 0 there): MONAI slices the class away and gives
    a finite value; the spec divided 0 by 0 there and NaN * 0 reached the mean (a case of
    MONAI's test_masked_dice_loss.py run through mask=). monai.losses.DiceLoss 1.6.1, values
    and gradients."""
    g = torch.Generator().manual_seed(31)
    p = torch.rand(2, 3, 4, 4, generator=g)
    p[:, 0] = 0
    ids = torch.randint(1, 3, (2, 4, 4), generator=g)
    y = torch.nn.functional.one_hot(ids, 3).movedim(-1, 1).double()
    kw = {"include_background": False, "smooth_nr": 0.0, "smooth_dr": 0.0, "batch": batch}
    fn = lossdsl.load("dense_dice").compile("torch", activation="none")
    for red in ("mean", "sum"):
        a, ga = _grads(lambda v: fn(v, y, reduction=red, **kw), p)
        m, gm = _grads(lambda v: DiceLoss(reduction=red, **kw)(v, y), p)
        assert torch.isfinite(a) and torch.isfinite(ga).all()
        torch.testing.assert_close(a, m, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ga, gm, rtol=1e-10, atol=1e-12)


def test_dense_dice_index_form_equals_dice_spec():
    """specs/dice.loss (index targets) is dense_dice on the one-hot target, "none" included."""
    x, ids, y = _seg(2, 3, seed=3)
    a = lossdsl.load("dice").compile("torch")(x, ids, reduction="none")
    b = lossdsl.load("dense_dice").compile("torch")(x, y, reduction="none")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "name,baked,params",
    [
        ("dense_dice", {"activation": "sigmoid"}, {"include_background": False, "batch": True}),
        ("tversky", {}, {"alpha": 0.3, "beta": 0.7, "soft_label": True}),
        ("generalized_dice", {"w_type": "simple"}, {"include_background": False}),
        ("dice_ce", {"ce_target": "probs"}, {"lambda_ce": 0.5}),
        ("dice_focal", {}, {"alpha": 0.25, "gamma": 1.5}),
        ("multiclass_generalized_dice", {}, {"include_background": False}),
    ],
)
def test_jax_backend_matches_torch(name, baked, params):
    """The JAX module on the same numpy inputs, values and gradients, against the torch module
    (itself checked against MONAI / optax above)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    x, _, y = _seg(2, 3, seed=11, absent=(2,))
    ft = lossdsl.load(name).compile("torch", **baked)
    fj = lossdsl.load(name).compile("jax", **baked)
    a, ga = _grads(lambda v: ft(v, y, **params), x)
    yj = jnp.asarray(y.numpy())
    bj, gj = jax.value_and_grad(lambda v: fj(v, yj, **params))(jnp.asarray(x.numpy()))
    np.testing.assert_allclose(np.asarray(bj), a.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gj), ga.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("alpha,beta,smooth", [(0.5, 0.5, 1.0), (0.3, 0.7, 0.0), (0.7, 0.2, 2.0)])
def test_tversky_is_optax_dice_loss(alpha, beta, smooth, ignore):
    """optax.losses.dice_loss (0.2.8), channels-last, class weights: value and jax.grad."""
    import jax
    import jax.numpy as jnp
    from optax.losses import dice_loss

    jax.config.update("jax_enable_x64", True)
    x, _, y = _seg(2, 3, seed=5, absent=(1,))
    xl, yl = jnp.asarray(x.movedim(1, -1).numpy()), jnp.asarray(y.movedim(1, -1).numpy())
    w = jnp.array([1.0, 2.0, 0.5])
    fj = lossdsl.load("tversky").compile("jax")

    def ours(v):
        out = fj(
            jnp.moveaxis(v, -1, 1),
            jnp.moveaxis(yl, -1, 1),
            weight=w,
            alpha=alpha,
            beta=beta,
            smooth_nr=smooth,
            smooth_dr=smooth,
            reduction="none",
        )
        return jnp.mean(out[:, 1:] if ignore else out, axis=-1)

    def theirs(v):
        return dice_loss(
            v, yl, class_weights=w, alpha=alpha, beta=beta, smooth=smooth, ignore_background=ignore
        )

    np.testing.assert_allclose(ours(xl), theirs(xl), rtol=1e-12)
    np.testing.assert_allclose(
        jax.grad(lambda v: ours(v).sum())(xl),
        jax.grad(lambda v: theirs(v).sum())(xl),
        rtol=1e-10,
        atol=1e-14,
    )


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("probs", [False, True])
def test_multiclass_generalized_dice_is_optax(ignore, probs):
    """optax.losses.multiclass_generalized_dice_loss (0.2.8), an absent class (weight 1e7
    before normalizing), logits or probabilities: value and jax.grad."""
    import jax
    import jax.numpy as jnp
    from optax.losses import multiclass_generalized_dice_loss

    jax.config.update("jax_enable_x64", True)
    x, _, y = _seg(2, 3, seed=9, absent=(2,))
    xl, yl = jnp.asarray(x.movedim(1, -1).numpy()), jnp.asarray(y.movedim(1, -1).numpy())
    if probs:
        xl = jax.nn.softmax(xl, axis=-1)
    fj = lossdsl.load("multiclass_generalized_dice").compile(
        "jax", activation="none" if probs else "softmax"
    )

    def ours(v):
        return fj(jnp.moveaxis(v, -1, 1), jnp.moveaxis(yl, -1, 1), include_background=not ignore)

    def theirs(v):
        return multiclass_generalized_dice_loss(
            v, yl, apply_softmax=not probs, ignore_background=ignore
        )

    np.testing.assert_allclose(ours(xl), theirs(xl), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(ours)(xl), jax.grad(theirs)(xl), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ib", [False, True])
@pytest.mark.parametrize("onehot", [False, True])
def test_monai_dice_focal_with_batch(reduction, ib, onehot):
    """DiceFocalLoss(batch=True) (installed MONAI 1.6.1: one Dice per class over the batch plus
    the focal term, unchanged by batch) = dice_focal(batch=true) with monai_reduction set to the
    same reduction; values and gradients, float32 focal in MONAI: 1e-6."""
    from monai.losses import DiceFocalLoss

    label, pred, _ = _seg_case(7 + 2 * ib + onehot, (3, 3, 4, 2), onehot)
    kw = {"include_background": ib, "to_onehot_y": onehot, "reduction": reduction}
    mon = DiceFocalLoss(batch=True, softmax=True, gamma=1.5, **kw)
    fn = lossdsl.load("dice_focal").compile(
        "torch", activation="softmax", batch=True, monai_reduction=reduction
    )
    y = _onehot(label, 3) if onehot else label.double()
    a, ga = _grads(lambda v: fn(v, y, include_background=ib, gamma=1.5, reduction=reduction), pred)
    b, gb = _grads(lambda v: mon(v, label.double()), pred)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6, atol=1e-8)


# tests/losses/test_generalized_dice_focal_loss.py (commit d388d1c6): like the DiceFocal tests,
# GeneralizedDiceFocalLoss against GeneralizedDiceLoss + lambda_focal * FocalLoss on random data
# for a grid of settings x reductions (expected: the installed MONAI). "mean" is
# generalized_dice_focal and generalized_dice_focal_nd; "sum" is generalized_dice_focal with
# monai_reduction="sum" (MONAI's sum is not a sum of its "none"); "none" is
# generalized_dice_focal_nd, whose channel 0 MONAI drops without the background.


def _gdf_grid():
    rows = []
    for reduction in ("mean", "sum", "none"):
        for w in (None, (1.0, 1.0, 2.0), (3, 2.0, 1)):  # test_result_onehot_target_include_bg
            for lf in (0.5, 1.0, 1.5):
                rows.append(("onehot_include_bg", True, False, w, lf, 1.0, reduction))
        for w in (2.0, (1.0, 2.0), (2.0, 1)):  # test_result_no_onehot_no_bg
            for lf in (0.5, 1.0, 1.5):
                rows.append(("no_onehot_no_bg", False, True, w, lf, 2.0, reduction))
    return rows


GDF_GRID = _gdf_grid()


@pytest.mark.parametrize(
    "row", GDF_GRID, ids=[f"{r[0]}_{r[-1]}{i % 18}" for i, r in enumerate(GDF_GRID)]
)
def test_monai_generalized_dice_focal_loss_cases(row):
    """test_generalized_dice_focal_loss.py, every reduction -> generalized_dice_focal(_nd);
    MONAI's weights and focal term are float32: 1e-6."""
    from monai.losses import GeneralizedDiceFocalLoss

    _, ib, onehot, w, lf, gamma, reduction = row
    size = (3, 3, 5, 5)
    label, pred, g = _seg_case(len(str(row[:-1])), size, onehot)
    common = {"include_background": ib, "to_onehot_y": onehot, "reduction": reduction}
    # "none" is compared through a fixed random cotangent (the sum of a tensor's gradients
    # would miss a wrong element that cancels)
    tangent = torch.rand(size, generator=g, dtype=torch.float64)

    def scalar(out):
        if reduction != "none":
            return out
        out = out.expand(3, 3 if ib else 2, 5, 5)  # MONAI's batch GDL broadcasts
        return (out * (tangent if ib else tangent[:, 1:])).sum()

    def theirs(v):
        gdl = GeneralizedDiceLoss(**common)(v, label.double())
        focal = FocalLoss(weight=w, gamma=gamma, **common)(v, label.double())
        return scalar(gdl + lf * focal)

    def monai_combined(v):
        return scalar(
            GeneralizedDiceFocalLoss(weight=w, gamma=gamma, lambda_focal=lf, **common)(
                v, label.double()
            )
        )

    y = _onehot(label, 3) if onehot else label.double()
    params = dict(include_background=ib, lambda_focal=lf, gamma=gamma)
    if w is not None:
        wt = _t(w)
        params["weight"] = (
            wt.expand(3) if wt.dim() == 0 else (wt if ib else torch.cat([torch.zeros(1), wt]))
        )
    if reduction == "none":
        fn = lossdsl.load("generalized_dice_focal_nd").compile("torch", activation="none")

        def ours(v):
            out = fn(v, y, reduction="none", **params)
            if not ib:  # MONAI's tensor is [:, 1:]; the dropped channel here is 0
                assert torch.all(out[:, 0] == 0)
            return (out * tangent).sum()
    else:
        name = "generalized_dice_focal"
        fn = lossdsl.load(name).compile("torch", activation="none", monai_reduction=reduction)

        def ours(v):
            return fn(v, y, reduction=reduction, **params)

    a, ga = _grads(ours, pred)
    b, gb = _grads(theirs, pred)
    c, _ = _grads(monai_combined, pred)
    np.testing.assert_allclose(b.numpy(), c.numpy(), rtol=1e-7)  # MONAI's own assertion
    # MONAI's float32 focal term rounds each element's gradient to ~1e-7 of the terms that
    # make it (up to ~2.5 here): a small entry of a "none" row's cotangent-weighted gradient
    # measured 2e-8 off; the means divide that by the 225 elements
    atol = 1e-7 if reduction == "none" else 1e-8
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6, atol=atol)


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("ib", [False, True])
def test_generalized_dice_focal_nd_mean_is_monais_mean(ib, batch):
    """generalized_dice_focal_nd's "mean" (its kept elements) is MONAI's reduction="mean", as
    generalized_dice_focal's; batch=true broadcasts the one batch GDL (MONAI 1.6.1 installed)."""
    from monai.losses import GeneralizedDiceFocalLoss

    g = torch.Generator().manual_seed(3 + 2 * ib + batch)
    pred = torch.randn(2, 4, 3, 2, generator=g, dtype=torch.float64)
    label = torch.randint(0, 4, (2, 1, 3, 2), generator=g)
    kw = {"include_background": ib, "batch": batch}
    nd = lossdsl.load("generalized_dice_focal_nd").compile("torch", activation="softmax", **kw)
    per = lossdsl.load("generalized_dice_focal").compile("torch", activation="softmax", **kw)
    y = _onehot(label, 4)
    theirs = GeneralizedDiceFocalLoss(softmax=True, to_onehot_y=True, **kw)
    a, ga = _grads(lambda v: nd(v, y), pred)
    b, gb = _grads(lambda v: theirs(v, label.double()), pred)
    c, gc = _grads(lambda v: per(v, y), pred)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ga.numpy(), gc.numpy(), rtol=1e-10, atol=1e-14)


# tests/losses/test_dice_loss.py, class TestDiceLossIgnoreIndex (stored version 01c9ad1a):
# DiceLoss(ignore_index=k) zeroes input and target at the pixels whose class id is k; the spec
# takes that as its mask input. MONAI's three tests: the masked loss equals the loss of the
# kept rows alone; one-hot and index targets give the same loss; the ignored pixels get a zero
# gradient. Each runs on the spec and on the installed MONAI.
IGNORE_PROBS = [  # test_ignore_index_index_target: softmax of log of these, (1, 3, 2, 2)
    [[[0.8, 0.1], [0.1, 0.1]], [[0.1, 0.8], [0.1, 0.1]], [[0.1, 0.1], [0.8, 0.8]]]
]
IGNORE_IDS = [[[[0, 1], [2, 2]]]]  # (1, 1, 2, 2), ignore_index = 2: the bottom row


def test_monai_dice_ignore_index_cases():
    fn = lossdsl.load("dense_dice").compile("torch")
    x = torch.log(_t(IGNORE_PROBS))
    ids = torch.tensor(IGNORE_IDS)
    y, mask = _onehot(ids, 3), ids[:, 0] != 2
    # 1. masked == the top row alone (spec), == MONAI's ignore_index loss and its crop
    ours = fn(x, y, mask=mask)
    crop = fn(x[:, :, :1], y[:, :, :1])
    theirs = DiceLoss(to_onehot_y=True, softmax=True, ignore_index=2)(x, ids)
    theirs_crop = DiceLoss(to_onehot_y=True, softmax=True)(x[:, :, :1], ids[:, :, :1])
    torch.testing.assert_close(ours, crop, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(theirs, theirs_crop, rtol=1e-10, atol=1e-12)
    # 2. test_ignore_index_one_hot_target: ignore_index=1, random (2, 4, 8, 8), values and grads
    g = torch.Generator().manual_seed(1)
    x2 = torch.randn(2, 4, 8, 8, generator=g)
    ids2 = torch.randint(0, 4, (2, 1, 8, 8), generator=g)
    y2 = _onehot(ids2, 4)
    a, ga = _grads(lambda v: fn(v, y2, mask=ids2[:, 0] != 1), x2)
    b, gb = _grads(lambda v: DiceLoss(softmax=True, ignore_index=1)(v, y2), x2)
    c, gc = _grads(lambda v: DiceLoss(to_onehot_y=True, softmax=True, ignore_index=1)(v, ids2), x2)
    for m, gm in ((b, gb), (c, gc)):
        torch.testing.assert_close(a, m, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ga, gm, rtol=1e-10, atol=1e-12)
    # 3. test_gradients_ignored: (1, 3, 4, 4), ignore_index=2 on the bottom half: zero gradient
    ids3 = torch.tensor([[[[0, 1, 0, 1], [1, 0, 1, 0], [2, 2, 2, 2], [2, 2, 2, 2]]]])
    x3 = torch.randn(1, 3, 4, 4, generator=g)
    a, ga = _grads(lambda v: fn(v, _onehot(ids3, 3), mask=ids3[:, 0] != 2), x3)
    b, gb = _grads(lambda v: DiceLoss(to_onehot_y=True, softmax=True, ignore_index=2)(v, ids3), x3)
    assert torch.all(ga[:, :, 2:] == 0) and torch.any(ga[:, :, :2] != 0)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


def test_giou_matches_monai_box_giou_loss():
    """monai.losses.BoxGIoULoss (2-D boxes, StandardMode x1, y1, x2, y2) is specs/giou.loss with
    eps = float32's machine epsilon (MONAI's torch.finfo(COMPUTE_DTYPE).eps in both divisions);
    MONAI computes in float32 (COMPUTE_DTYPE), so 1e-6 against float64 here. Overlapping,
    disjoint and nested pairs; B = 1 too."""
    from monai.losses import BoxGIoULoss

    g = torch.Generator().manual_seed(4)
    lo = torch.rand(6, 2, generator=g) * 4
    pred = torch.cat([lo, lo + 0.5 + torch.rand(6, 2, generator=g) * 3], dim=1)
    lo2 = torch.rand(6, 2, generator=g) * 4
    target = torch.cat([lo2, lo2 + 0.5 + torch.rand(6, 2, generator=g) * 3], dim=1)
    target[0] = torch.tensor([10.0, 10.0, 11.0, 12.0])  # disjoint from pred[0]
    target[1] = pred[1] + torch.tensor([0.1, 0.1, -0.1, -0.1])  # nested
    eps = float(torch.finfo(torch.float32).eps)
    fn = lossdsl.load("giou").compile("torch")
    for p, t in ((pred, target), (pred[:1], target[:1])):
        for red in ("none", "mean", "sum"):
            a, ga = _grads(lambda v: fn(v, t, eps=eps, reduction=red), p)
            b, gb = _grads(lambda v: BoxGIoULoss(reduction=red)(v, t), p)
            np.testing.assert_allclose(a.numpy(), b.double().numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(ga.numpy(), gb.double().numpy(), rtol=1e-5, atol=1e-6)
