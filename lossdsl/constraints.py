"""Param constraints (`param gamma: float = 2.0 where gamma >= 0`): the ops they may use, each
written once as a Python expression on plain numbers, and the one evaluator.

A constraint is checked before any tensor exists: at compile time on a baked value, on a
default, and at every call on the value passed. The generated code of every backend inlines
TEMPLATES; `evaluate` (bake, defaults, the numpy reference) runs the same text, compiled once
here, so the two cannot disagree. Each template is total on Python floats and gives the op
table's numpy meaning (IEEE: 1 / 0 is inf, log(0) is -inf, exp(1000) is inf, sqrt(-1) is nan)
where Python itself would raise (ZeroDivisionError, math domain and range errors). An op not in
TEMPLATES is rejected when the spec is checked (`unsupported`), never at compile or call time.
Ints compute exactly (Python ints), as constant folding does.
"""

from __future__ import annotations

import math

from lossdsl.errors import ParamError
from lossdsl.ir import Check, Eqn, Lit

# {0} {1} {2}: names or literals (each equation is bound to a name before it is used).
_LOG = "(math.log({0}) if {0} > 0 else (-math.inf if {0} == 0 else math.nan))"
_EXP = "(math.inf if {0} > 709.782712893384 else math.exp({0}))"  # log of the largest float
_SOFTPLUS = "(max({0}, 0.0) + math.log1p(math.exp(-abs({0}))))"  # max(nan, 0.0) is nan

TEMPLATES: dict[str, str] = {
    "add": "{0} + {1}",
    "sub": "{0} - {1}",
    "mul": "{0} * {1}",
    "div": (
        "({0} / {1} if {1} != 0 else (math.nan if {0} == 0 or {0} != {0} else "
        "math.copysign(math.inf, {0}) * math.copysign(1.0, {1})))"
    ),
    "neg": "-{0}",
    "eq": "{0} == {1}",
    "ne": "{0} != {1}",
    "lt": "{0} < {1}",
    "le": "{0} <= {1}",
    "gt": "{0} > {1}",
    "ge": "{0} >= {1}",
    "and": "({0} and {1})",
    "or": "({0} or {1})",
    "not": "(not {0})",
    "where": "({1} if {0} else {2})",
    "abs": "abs({0})",
    # np.maximum/np.minimum propagate nan (Python's max(0, nan) is 0)
    "maximum": "({1} if {1} > {0} or {1} != {1} else {0})",
    "minimum": "({1} if {1} < {0} or {1} != {1} else {0})",
    "relu": "(0 if {0} < 0 else {0})",
    "to_float": "float({0})",
    "stop_grad": "{0}",
    "custom_grad": "{0}",  # y's value (the gradient rule means nothing to a number)
    "exp": _EXP,
    "expm1": "(math.inf if {0} > 709.782712893384 else math.expm1({0}))",
    "log": _LOG,
    "log1p": "(math.log1p({0}) if {0} > -1 else (-math.inf if {0} == -1 else math.nan))",
    "sqrt": "(math.sqrt({0}) if {0} >= 0 else math.nan)",
    "sigmoid": ("(1 / (1 + math.exp(-{0})) if {0} >= 0 else math.exp({0}) / (1 + math.exp({0})))"),
    "softplus": _SOFTPLUS,
    "erf": "math.erf({0})",
    "tanh": "math.tanh({0})",
    "sin": "(math.sin({0}) if math.isfinite({0}) else math.nan)",
    "cos": "(math.cos({0}) if math.isfinite({0}) else math.nan)",
    "atan": "math.atan({0})",
    "asin": "(math.asin({0}) if -1 <= {0} <= 1 else math.nan)",
    "acos": "(math.acos({0}) if -1 <= {0} <= 1 else math.nan)",
    "log2": _LOG.replace("math.log(", "math.log2("),
    "log10": _LOG.replace("math.log(", "math.log10("),
    "atan2": "math.atan2({0}, {1})",
    # math.sinh/cosh raise OverflowError past 710.4758600739439, where numpy's are +-inf
    "sinh": "(math.sinh({0}) if abs({0}) <= 710.4758600739439 else {0} * math.inf)",
    "cosh": "(math.cosh({0}) if abs({0}) <= 710.4758600739439 else abs({0}) * math.inf)",
    "asinh": "math.asinh({0})",
    "acosh": "(math.acosh({0}) if {0} >= 1 else math.nan)",
    "atanh": (
        "(math.atanh({0}) if -1 < {0} < 1 else "
        "(math.copysign(math.inf, {0}) if abs({0}) == 1 else math.nan))"
    ),
    # math.lgamma raises at the poles (0, the negative integers: x % 1 == 0) and overflows
    # past 2.56e305; the op's meaning is +inf there and at -inf (-inf % 1 is nan)
    "lgamma": (
        "(math.lgamma({0}) if ({0} > 0 or {0} % 1 != 0) and abs({0}) <= 2.5599833278516383e305"
        " else ({0} if {0} != {0} else math.inf))"
    ),
    # Python's round is half to even, as np.round; copysign keeps the sign of a zero result
    # (ceil(-0.5) is -0.0). An int never gets here: floor(n) is n itself when lowered.
    "floor": "(math.copysign(float(math.floor({0})), {0}) if math.isfinite({0}) else {0})",
    "ceil": "(math.copysign(float(math.ceil({0})), {0}) if math.isfinite({0}) else {0})",
    "round": "(math.copysign(float(round({0})), {0}) if math.isfinite({0}) else {0})",
    # an int for an int (as relu's 0); NaN stays NaN
    "sign": "(({0} > 0) - ({0} < 0) if {0} == {0} else {0})",
    "logaddexp": (
        "({0} if {0} == {1} and math.isinf({0}) else "
        "max({0}, {1}) + math.log1p(math.exp(-abs({0} - {1}))))"
    ),
    "xlogy": "(0.0 if {0} == 0 else {0} * " + _LOG.replace("{0}", "{1}") + ")",
}
# Not here: pow (Python's ** raises on overflow, on 0 ^ -1, and is complex for (-8) ^ 0.5; with
# literal operands it folds before this check), digamma and log_ive (Python's math module has
# none), and every op on tensors.
HINT = "a constraint can use + - * /, comparisons, & | !, where, abs, max, min, clamp, float, " + (
    "exp, log, log1p, expm1, sqrt, sigmoid, softplus, erf, tanh, sin, cos, atan, asin, acos, "
    "log2, log10, atan2, sinh, cosh, asinh, acosh, atanh, lgamma, floor, ceil, round, sign, "
    "logaddexp (not digamma or log_ive); for x^2 write x * x"
)


def uses_math(op: str) -> bool:
    return "math." in TEMPLATES[op]


def _compile(op: str, template: str):
    code = "lambda a, b=None, c=None: " + template.format("a", "b", "c")
    return eval(compile(code, f"<constraint {op}>", "eval"), {"math": math})  # our own text


_FNS = {op: _compile(op, t) for op, t in TEMPLATES.items()}


def unsupported(eqns: tuple[Eqn, ...] | list[Eqn]) -> Eqn | None:
    """The first equation of a constraint whose op has no Python-number form."""
    return next((e for e in eqns if e.op not in TEMPLATES), None)


def evaluate(check: Check, values: dict) -> bool | None:
    """Whether the constraint holds for `values` (param name -> Python number); None when it
    uses a param that `values` lacks (unbaked, or traced at call time)."""
    env: dict = {}

    def val(a):
        if isinstance(a, Lit):
            return a.value
        return env[a.name] if a.name in env else values.get(a.name)

    for e in check.eqns:
        args = [val(a) for a in e.args]
        if any(x is None for x in args):
            return None
        env[e.out.name] = _FNS[e.op](*args)
    ok = val(check.ok)
    return None if ok is None else bool(ok)


def scalar_value(label: str, name: str, v):
    """A param value as a Python number: itself, or the value of a numpy scalar, a 0-d array
    or a 0-d tensor (None when the value is not available: a traced one). Anything with more
    than one element is a ParamError, not a broadcast: a param is one number."""
    if isinstance(v, (int, float)) or not hasattr(v, "shape"):
        return v
    if tuple(v.shape) != ():
        raise ParamError(
            f"{label}: param '{name}' must be a scalar (a number or a 0-d tensor), "
            f"got shape {tuple(v.shape)}"
        )
    try:
        return v.item()
    except Exception:  # a tracer (jax.jit, vmap): its value is not known yet
        return None
