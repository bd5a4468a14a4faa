"""NumPy code target: the templates of `lossdsl compile --backend numpy` (standalone float64
NumPy source, which the tests hold to the interpreter of backends/numpy_ref.py).

`load_backend("numpy")` is this module; it also passes on the interpreter's functions
(`evaluate`, `evaluate_sharded`, `split_batch`, `Ranks`), so that one name serves both uses.
"""

from __future__ import annotations

import inspect

from lossdsl import ops
from lossdsl.codegen import (
    INFIX_TEMPLATES,
    NOT_AN_ARRAY,
    Target,
    floored,
    scanned,
    shipped_module,
    take_along_axis_gather,
)

_interpreter = shipped_module("numpy_ref")
evaluate = _interpreter.evaluate
evaluate_sharded = _interpreter.evaluate_sharded
split_batch = _interpreter.split_batch
Ranks = _interpreter.Ranks

PRELUDE = (
    "def _logsumexp(x, axis):",
    "    x = np.asarray(x, dtype=np.result_type(x, np.float32))",
    "    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)",
    "    m = np.where(np.isfinite(m), m, 0.0)",
    "    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))",
    "",
    "",
    "def _log_softmax(x, axis):",
    "    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)",
    "    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))",
    "",
    "",
    "def _var(x, axis, ddof):",
    "    # shifted by the first entry (the same variance): equal entries give exactly 0",
    "    x = np.asarray(x, dtype=np.float64)",
    "    first = x",
    "    if x.size:",
    "        for a in (axis,) if isinstance(axis, int) else axis:",
    "            first = np.take(first, [0], axis=a)",
    "    return np.var(x - first if x.size else x, axis=axis, ddof=ddof)",
    "",
    "",
    "def _sigmoid(x):",
    "    e = np.exp(-np.abs(x))",
    "    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))",
    "",
    "",
    "def _xlogy(x, y):",
    "    y0 = np.where(np.isnan(y), np.nan, 0.0)",
    "    return np.where(x == 0, y0, x * np.log(np.where(x == 0, 1.0, y)))",
    "",
    "",
    "def _erf(x):",
    "    return np.vectorize(math.erf, otypes=[float])(x)",
)


def _minmax(fn: str, sign: str):
    """np.max / np.min with the identity as `initial`: -inf / +inf over an empty dim (the int
    range's end for ints), as the op table's meaning says."""

    def t(c):
        x = c[0]
        if c.eqn.args[0].type.dtype == "float":
            ident = f"{sign}np.inf"
        else:
            ident = f"np.iinfo({x}.dtype).{'max' if sign == '' else 'min'}"
        return f"np.{fn}({x}, axis={c.attrs['axes']}, initial={ident})"

    return t


EIGVALSH = '''
def _eigvalsh(m):
    """Eigenvalues of symmetric matrices; all NaN for a matrix with a non-finite entry (LAPACK
    raises on it)."""
    ok = np.isfinite(m).all((-2, -1))
    w = np.linalg.eigvalsh(np.where(ok[..., None, None], m, 0.0))
    return np.where(ok[..., None], w, np.nan)
'''


def _eigvalsh(c):
    r = f"_eigvalsh({c.attrs['mat']})"
    p = c.attrs["unperm"]
    return r if p is None else f"np.transpose({r}, {p})"


CTC = ops.ctc_helper(
    inspect.getsource(ops._python_scan)
    + """

def _ctc(lp, targets, il, tl, blank, log_eps, check):
    targets = _ctc_padding(targets, tl, blank, np, np.arange)
    bad = _ctc_bad(lp, targets, tl, blank, check)
    if bad:
        raise (LossParamError if bad[0] == "param" else LossInputError)(bad[1])
    with np.errstate(all="ignore"):
        return _ctc_core(
            lp, targets, il, tl, int(blank), float(log_eps), np, _python_scan, np.arange
        )
"""
)


NP_FLIP = "np.flip({x}, {a})"


def _positions(x, a, descending=False):
    return f'np.argsort(_argsort({x}, {a}, {descending}), axis={a}, kind="stable")'


TEMPLATES = {
    **INFIX_TEMPLATES,
    "exp": "np.exp({0})",
    "log": "np.log({0})",
    "log1p": "np.log1p({0})",
    "expm1": "np.expm1({0})",
    "sqrt": "np.sqrt({0})",
    "abs": "np.abs({0})",
    "sigmoid": "_sigmoid({0})",
    "softplus": "np.logaddexp(0.0, {0})",
    "relu": "np.maximum({0}, 0)",
    "erf": "_erf({0})",
    "tanh": "np.tanh({0})",
    "sin": "np.sin({0})",
    "cos": "np.cos({0})",
    "atan": "np.arctan({0})",
    "asin": "np.arcsin({0})",
    "acos": "np.arccos({0})",
    "log2": "np.log2({0})",
    "log10": "np.log10({0})",
    "atan2": "np.arctan2({0}, {1})",
    "sinh": "np.sinh({0})",
    "cosh": "np.cosh({0})",
    "asinh": "np.arcsinh({0})",
    "acosh": "np.arccosh({0})",
    "atanh": "np.arctanh({0})",
    "lgamma": "_lgamma({0})",
    "digamma": "_digamma({0})",
    "log_ive": "_log_ive({0}, {1})",
    "floor": "np.floor({0})",
    "ceil": "np.ceil({0})",
    "round": "np.round({0})",
    "sign": "np.sign({0})",
    "logaddexp": "np.logaddexp({0}, {1})",
    "not": "np.logical_not({0})",
    "stop_grad": "{0}",
    "to_float": "np.asarray({0}, dtype=np.float64)",
    "div": "np.true_divide({0}, {1})",
    "pow": "_pow({0}, {1})",
    "maximum": "np.maximum({0}, {1})",
    "minimum": "np.minimum({0}, {1})",
    "xlogy": "_xlogy({0}, {1})",
    "floordiv": floored("np.floor_divide({0}, {1})", "np.where"),
    "mod": floored("np.mod({0}, {1})", "np.where"),
    "and": "np.logical_and({0}, {1})",
    "or": "np.logical_or({0}, {1})",
    "safe_div": "np.where({1} == 0, {empty}, {0} / np.where({1} == 0, 1, {1}))",
    "where": "np.where({0}, {1}, {2})",
    "custom_grad": (
        "np.broadcast_to({0}, np.broadcast_shapes(np.shape({0}), np.shape({1}), np.shape({2})))"
    ),
    "sum": "np.sum({0}, axis={axes})",
    "mean": "np.mean({0}, axis={axes})",
    "max": _minmax("max", "-"),
    "min": _minmax("min", ""),
    "logsumexp": "_logsumexp({0}, {axes})",
    "var": "_var({0}, {axes}, {ddof})",
    "take": "np.take({0}, {index}, axis={axis})",
    # 0s over an empty dim (which raises): only an untaken branch gets there (lossdsl/empty.py)
    "argmax": "(np.argmax({0}, axis={axis}) if {0}.shape[{axis}]"
    " else np.sum({0}, axis={axis}).astype(np.int64))",
    "cumsum": scanned("np.cumsum({x}, axis={a})", NP_FLIP),
    "cumprod": scanned("np.cumprod({x}, axis={a})", NP_FLIP),
    "cummax": scanned("np.maximum.accumulate({x}, axis={a})", NP_FLIP),
    "logcumsumexp": scanned("np.logaddexp.accumulate({x}, axis={a})", NP_FLIP),
    "sort": "np.take_along_axis({0}, _argsort({0}, {axis}, {descending}), axis={axis})",
    "argsort": "_argsort({0}, {axis}, {descending})",
    "take_along": "np.take_along_axis({x}, {idx}, axis={axis})",
    "rank": lambda c: _positions(c[0], c.attrs["axis"]),
    "topk": lambda c: f"({_positions(c[0], c.attrs['axis'], True)} < {c[1]})",
    "quantile": "_quantile({0}, {1}, {axis})",
    "eigvalsh": _eigvalsh,
    "ctc_nll": "_ctc({lp}, {tg}, {2}, {3}, {4}, {5}, check_indices)",
    "softmax": "np.exp(_log_softmax({0}, {axis}))",
    "log_softmax": "_log_softmax({0}, {axis})",
    "gather": take_along_axis_gather("np"),
    "cross_entropy": (
        "-np.take_along_axis(_log_softmax({0}, {k}), np.expand_dims({i}, {k}), axis={k})"
        ".squeeze({k})"
    ),
    "onehot": "(np.expand_dims({0}, {k}) == np.arange({n}).reshape({column})).astype(np.float64)",
    "eye": "np.eye({n}, dtype=bool)",
    "arange": "np.arange({n})",
    "fill": "np.full({shape}, {value}, dtype={dtype})",
    "contract": 'np.einsum("{spec}", {0}, {1})',
    "reshape": "np.reshape({0}, {shape})",
    "transpose": "np.transpose({0}, {perm})",
    "expand": "np.broadcast_to({0}[..., {nones}], {shape})",
    "diff": "np.diff({0}, axis={axis})",
    "shift": "_shift_ref({0}, {axis}, {steps}, {value})",
    "frames": "_frames({0}, {wax}, {size}, {stride}, {padding}, {center})",
    "stft_mag": "_stft_mag({0}, {wax}, {size}, {stride}, {win}, {eps})",
    "rfft_mag": "_rfft_mag({0}, ({axis},), {eps})",
    **{
        op: "_window({0}, {wax}, {kind}, {size}, {stride}, {padding}, {sigma}, {kern})"
        for op in ("box", "conv", "avg_pool", "max_pool")
    },
    "blur": "_blurs({0}, {sigma}, {wax}, {size}, {stride}, {padding})",
}

TARGET = Target(
    name="numpy",
    imports=("import math", "", "import numpy as np", "", "", *PRELUDE),
    templates=TEMPLATES,
    is_float="np.issubdtype({x}.dtype, np.floating)",
    is_int="np.issubdtype({x}.dtype, np.integer)",
    is_bool="{x}.dtype == np.bool_",
    int_to_float="{x}.astype(np.float64)",
    as_array="np.asarray({x})",
    as_tensor="np.asarray({x}, dtype={dtype})",
    float_dtype_default="np.float64",
    int_dtype="np.int64",
    bool_dtype="bool",
    permute="np.transpose({x}, {perm})",
    broadcast="np.broadcast_to({x}, {shape})",
    float_cast="{x}.astype(np.float64)",
    select="({1} if {0} else {2})",
    grad="_fd_grad({fn}, {x})",
    index_out_of_range="{i}.size > 0 and (int({i}.min()) < 0 or int({i}.max()) >= {n})",
    not_array=NOT_AN_ARRAY,
    array_kind="a numpy array",
    array_hint="np.asarray",
    helpers=(
        ("_eigvalsh", EIGVALSH),
        # the op table's own functions: the reference meaning, as source (math and np only)
        ("_pow", inspect.getsource(ops._pow)),
        ("_lgamma", inspect.getsource(ops._lgamma)),
        ("_digamma", inspect.getsource(ops._digamma)),
        ("_log_ive", ops.log_ive_helper(inspect.getsource(ops._log_ive))),
        ("_argsort", inspect.getsource(ops._argsort)),
        ("_quantile", inspect.getsource(ops._quantile)),
        ("_blurs", inspect.getsource(ops._blurs)),  # (before _window: it calls it)
        ("_window", inspect.getsource(ops._window)),
        ("_frames", inspect.getsource(ops._frames)),
        ("_stft_mag", inspect.getsource(ops._stft_mag)),
        ("_rfft_mag", inspect.getsource(ops._rfft_mag)),
        ("_shift_ref", inspect.getsource(ops._shift_ref)),
        ("_fd_grad", inspect.getsource(ops._fd_grad)),
        ("_ctc", CTC),
    ),
)
