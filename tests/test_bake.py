"""Baked params (`spec.compile(backend, gamma=0.0)`): constant folding must leave code that
every framework runs, with the value of the same param passed at call time.

The generator: every shipped spec, its params baked at their defaults and at each boundary of
their `where` constraint (`gamma >= 0` -> 0; `0 <= ls <= 1` -> 0 and 1; a strict bound `t > 0`
-> just inside it, and the bound itself must be refused), bool params at both values,
unconstrained floats also at 0 and -1 (sigmoid_focal's documented "no alpha"), ints at the
default + 1; on numpy, torch and jax, against the numpy reference with the params passed at
call time (unbaked). Before the fix, baked constants reached torch ops as Python bools
(torch.where(False, ...) is a TypeError: sigmoid_focal with alpha=-1, poly1_focal by default).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import SHAPES, call, random_inputs

import lossdsl
from lossdsl.codegen import TARGETS
from lossdsl.errors import ParamError

SPECS = lossdsl.list_specs()
NUM = r"-?(?:\d+\.?\d*(?:e-?\d+)?|inf)"
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _bounds(p) -> list[tuple[float, bool, str]]:
    """(bound, strict, side) of a constraint `NAME op NUM`, `NUM op NAME` or a chain."""
    text = p.constraint or ""
    out = []
    for m in re.finditer(rf"(?=({NUM})\s*(<=|<)\s*{p.name}\b)", text):
        out.append((float(m[1]), m[2] == "<", "lo"))
    for m in re.finditer(rf"\b{p.name}\s*(<=|<|>=|>)\s*({NUM})", text):
        side = "lo" if m[1] in (">", ">=") else "hi"
        out.append((float(m[2]), m[1] in ("<", ">"), side))
    for m in re.finditer(rf"\b{p.name}\s*!=\s*({NUM})", text):  # a point left out
        out.append((float(m[1]), True, "ne"))
    return out


def _values(p) -> list:
    """The values to bake `p` at, besides its default."""
    if p.dtype == "bool":
        return [not p.default]
    if p.choices:
        return [w for w in p.choices if w != p.default]
    bounds = _bounds(p)
    assert bounds or p.constraint is None, f"unparsed constraint `{p.constraint}`"
    if not bounds:
        return [p.default + 1] if p.dtype == "int" else [0.0, -1.0]
    out = []
    for b, strict, side in bounds:
        if side == "ne":  # either side of the point
            step = 1 if p.dtype == "int" else 0.01
            out += [b - step, b + step]
        elif not strict:
            out.append(int(b) if p.dtype == "int" else b)
        else:  # just inside: a hundredth of the way to the other bound (or of 1)
            other = [x for x, _, s in bounds if s not in (side, "ne")]
            step = 0.01 * (abs(other[0] - b) if other else 1.0)
            if (b + step if side == "lo" else b - step) == p.default:
                step /= 10  # the default sits there (ms_ssim's k1 = 0.01 > 0)
            out.append(b + step if side == "lo" else b - step)
    return [v for v in out if v != p.default]


def _split_choices(spec, values: dict) -> tuple[dict, dict]:
    """(choice params, the others) of `values`: a choice is fixed when the spec compiles."""
    chosen = {p.name for p in spec.params if p.choices}
    return (
        {k: v for k, v in values.items() if k in chosen},
        {k: v for k, v in values.items() if k not in chosen},
    )


def _strict_bounds(spec):
    return [(p.name, b) for p in spec.params for b, strict, _ in _bounds(p) if strict]


def _settings(spec) -> list[dict]:
    """Every param at its default, then the k-th extra value of every param at once (params
    with fewer extra values keep their defaults)."""
    defaults = {p.name: p.default for p in spec.params}
    extra = {p.name: _values(p) for p in spec.params}
    out = [defaults]
    for k in range(max((len(v) for v in extra.values()), default=0)):
        out.append({n: (v[k] if k < len(v) else defaults[n]) for n, v in extra.items()})
    return out


@pytest.mark.parametrize("name", SPECS)
def test_baked_params_equal_unbaked_reference(name):
    spec = lossdsl.load(name)
    for values in _settings(spec):
        # the same draw for every setting, but a split's dim a multiple of its param's value
        inputs = random_inputs(spec, SHAPES[0], np.random.default_rng(0), params=values)
        chosen, free = _split_choices(spec, values)  # a choice param is compiled in, always
        ref = spec.compile("numpy", **chosen)
        want = {r: call("numpy", ref, inputs, "float64", reduction=r, **free) for r in ("none",)}
        for backend in TARGETS:
            fn = spec.compile(backend, **values)
            got = call(backend, fn, inputs, "float64", reduction="none")
            np.testing.assert_allclose(
                got, want["none"], rtol=1e-9, atol=1e-12, err_msg=f"{name} {backend} {values}"
            )


@pytest.mark.parametrize("name", [n for n in SPECS if _strict_bounds(lossdsl.load(n))])
def test_baking_a_strict_bound_is_refused(name):
    spec = lossdsl.load(name)
    for p, b in _strict_bounds(spec):
        for backend in TARGETS:
            with pytest.raises(ParamError, match="violates"):
                spec.compile(backend, **{p: b})


def test_the_generator_covers_every_param():
    """Every param of every shipped spec is baked at a value besides its default when it can
    take one (its constraint parses), and bools at both values."""
    n = 0
    for name in SPECS:
        for p in lossdsl.load(name).params:
            at_bound = [b for b, _, _ in _bounds(p)] == [p.default]  # gamma >= 0, default 0
            assert _values(p) or at_bound, (name, p)
            n += 1
    assert n > 150


def test_the_generator_reads_a_point_left_out():
    """`alpha != 0` (a divergence's alpha): baked on either side of 0; baking 0 is refused."""
    spec = lossdsl.parse(
        "loss t(x: float[B]) {\n    param alpha: float = 0.5   where alpha != 0\n"
        "    param k: int = 2   where k != 1\n    mean(x * alpha * float(k))\n}\n"
    )
    alpha, k = spec.params
    assert _values(alpha) == [-0.01, 0.01] and _values(k) == [0]  # (k = 2: the default)
    assert _strict_bounds(spec) == [("alpha", 0.0), ("k", 1.0)]
    for p, b in _strict_bounds(spec):
        with pytest.raises(ParamError, match="violates"):
            spec.compile("numpy", **{p: int(b) if p == "k" else b})


def _as_param(backend: str, v):
    """A float param as a 0-d tensor of `backend` (the form the dispatcher cannot specialize)."""
    if backend == "torch":
        import torch

        return torch.tensor(v, dtype=torch.float64)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(v, dtype="float64")
    return np.asarray(v, dtype=np.float64)


def _zero_settings(spec) -> list[dict]:
    return [s for s in _settings(spec) if any(type(v) is float and v == 0 for v in s.values())]


@pytest.mark.parametrize("name", [n for n in SPECS if _zero_settings(lossdsl.load(n))])
def test_a_zero_param_gives_one_value_in_every_form_at_non_finite_inputs(name):
    """A float param at 0, baked, passed as a number (the zero-specialized variant) and passed
    as a 0-d tensor (the general one), at inputs holding NaN, +inf and -inf: one value, NaN where
    one is NaN. Before the fix `0 * x` was folded to 0 for a baked zero, so `var(x) * lam` with
    lam = 0 gave 0 baked and NaN passed (difffuzz, seed 80527)."""
    spec = lossdsl.load(name)
    rng = np.random.default_rng(1)
    base = random_inputs(spec, SHAPES[0], rng)
    for bad in (np.nan, np.inf, -np.inf):
        inputs = dict(base)
        for k, v in base.items():
            if v.dtype.kind == "f" and v.size:
                inputs[k] = v.copy()
                inputs[k].flat[0] = bad
        for values in _zero_settings(spec):
            floats = {k: v for k, v in values.items() if type(v) is float}
            for backend in TARGETS:
                outs = []
                with np.errstate(all="ignore"):
                    for form in ("baked", "number", "tensor"):
                        if form == "baked":
                            fn, kw = spec.compile(backend, **values), {}
                        else:
                            chosen, kw = _split_choices(spec, values)
                            fn = spec.compile(backend, **chosen)
                        if form == "tensor":
                            kw.update({k: _as_param(backend, v) for k, v in floats.items()})
                        outs.append(call(backend, fn, inputs, "float64", reduction="none", **kw))
                for form, got in zip(("number", "tensor"), outs[1:]):
                    np.testing.assert_allclose(
                        got,
                        outs[0],
                        rtol=1e-9,
                        atol=1e-12,
                        equal_nan=True,
                        err_msg=f"{name} {backend} {form} vs baked {values} at {bad}",
                    )
