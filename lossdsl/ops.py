"""THE op table: one row per IR primitive -- arity, attributes, type rule, NumPy meaning.

Backends are template tables keyed by these names (tests fail if one lacks a row). The NumPy
functions are the reference semantics, evaluated in float64 by backends/numpy_ref.py on arrays
laid out as lossdsl.axes describes:
  elementwise: every argument aligned (transposed, size-1 axes inserted) to the output's dims
  reduce:      f(x, axis=tuple of ints)          axis:  f(x, axis=int)
  gather:      f(x, idx) with x laid out as out dims + (of,), idx as out dims
  onehot:      f(idx, n)      eye: f(n)      fill: f(shape, value)      contract: einsum

Why this file is long (over the ~600-line rule): it is a table, one row per primitive, and the
single source of truth for every op; split, a reader would have to search several files for one
op's type rule and meaning, and the rows share their type-rule helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lossdsl.types import (
    Dim,
    DimError,
    TensorType,
    broadcast,
    fmt_dims,
    promote,
    remove_dims,
)


class OpTypeError(Exception):
    """A type rule failed. `arg` is the offending argument's position (None: the whole call)."""

    def __init__(self, message: str, hint: str | None = None, arg: int | None = None):
        super().__init__(message)
        self.message, self.hint, self.arg = message, hint, arg


class OpDimError(OpTypeError):
    """A type rule failed on named dims rather than on dtypes."""


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str  # elementwise reduce axis gather onehot eye fill size contract rename transpose ...
    nargs: int
    type_rule: Callable[[list[TensorType], dict], TensorType]
    ref: Callable
    doc: str
    differentiable: bool = True
    attrs: tuple[str, ...] = field(default=())
    # a reduction whose partial results over pieces of a dim merge into the whole's: the
    # numpy/torch/jax function that merges two (sum: add; the chunked and sharded schedules)
    combine: str | None = None


# ---- type rules -------------------------------------------------------------------------


def _bcast(ts: list[TensorType]) -> tuple:
    try:
        return broadcast(*(t.dims for t in ts))
    except DimError as e:
        raise OpDimError(e.message, e.hint) from None


def _numeric(ts: list[TensorType], what: str) -> None:
    for i, t in enumerate(ts):
        if t.dtype == "bool":
            raise OpTypeError(
                f"{what} expects numbers, found {t}",
                "a comparison gives a mask: turn it into numbers with float(mask) or "
                "where(mask, a, b)",
                i,
            )


def arith(ts, attrs):
    _numeric(ts, "arithmetic")
    dt = promote(*ts)
    return TensorType(dt, _bcast(ts))


def true_div(ts, attrs):
    _numeric(ts, "division")
    return TensorType("float", _bcast(ts))


def unary_float(ts, attrs):
    _numeric(ts, "this function")
    return TensorType("float", ts[0].dims)


def unary_same(ts, attrs):
    _numeric(ts, "negation")
    return TensorType(ts[0].dtype, ts[0].dims)


def unary_keep(ts, attrs):
    """abs, relu, floor, ceil, round, sign: the operand's dtype (an int stays an int)."""
    _numeric(ts, "this function")
    return TensorType(ts[0].dtype, ts[0].dims)


def same(ts, attrs):
    return ts[0]


def to_float(ts, attrs):
    return TensorType("float", ts[0].dims)


def custom_grad_rule(ts, attrs):
    """custom_grad(y, x, g): numbers (an int computes as a float), over all three's dims."""
    _numeric(ts, "a gradient rule")
    return TensorType("float", _bcast(ts))


def _custom_grad_ref(y, x, g):
    return np.broadcast_to(y, np.broadcast_shapes(np.shape(y), np.shape(x), np.shape(g))).copy()


def compare(ts, attrs):
    _numeric(ts, "comparison")
    return TensorType("bool", _bcast(ts))


def equality(ts, attrs):
    if (ts[0].dtype == "bool") != (ts[1].dtype == "bool"):
        raise OpTypeError(f"cannot compare {ts[0]} with {ts[1]}", None, 1)
    return TensorType("bool", _bcast(ts))


def logical(ts, attrs):
    for i, t in enumerate(ts):
        if t.dtype != "bool":
            raise OpTypeError(
                f"'&', '|' and '!' expect bool masks, found {t}",
                "compare first, e.g. x > 0",
                i,
            )
    return TensorType("bool", _bcast(ts))


def where_rule(ts, attrs):
    c, a, b = ts
    if c.dtype != "bool":
        raise OpTypeError(f"where's condition must be a bool mask, found {c}", "compare first", 0)
    if (a.dtype == "bool") != (b.dtype == "bool"):
        raise OpTypeError(f"where's branches differ: {a} vs {b}", None, 2)
    dt = promote(a, b)
    of = a.of if (a.of is not None and a.of == b.of) or (a.of and b.dtype == "int") else None
    of = of or (b.of if b.of is not None and a.dtype == "int" and a.of is None else None)
    # Lay the result out like the values, not the mask: masks are cheap to transpose.
    return TensorType(dt, _bcast([a, b, c]), of if dt == "int" else None)


def _check_over(t: TensorType, attrs: dict, i: int = 0) -> tuple:
    over = attrs["over"]
    missing = [d for d in over if d not in t.dims]
    if missing:
        raise OpDimError(
            f"cannot reduce over {', '.join(map(str, missing))}: the operand is {t}",
            f"its dims are {fmt_dims(t.dims)}" if t.dims else "the operand is a scalar",
            i,
        )
    return over


def reduce_rule(ts, attrs):
    _numeric(ts, "this reduction")
    over = _check_over(ts[0], attrs)
    dt = "float" if attrs.get("float_result", True) else ts[0].dtype
    return TensorType(dt, remove_dims(ts[0].dims, over))


def minmax_reduce(ts, attrs):
    _numeric(ts, "max/min")
    over = _check_over(ts[0], attrs)
    return TensorType(ts[0].dtype, remove_dims(ts[0].dims, over))


def axis_rule(ts, attrs):
    _numeric(ts, "softmax")
    _check_over(ts[0], attrs)
    return TensorType("float", ts[0].dims)


def argmax_rule(ts, attrs):
    _numeric(ts, "argmax")
    (d,) = _check_over(ts[0], attrs)
    return TensorType("int", remove_dims(ts[0].dims, (d,)), d)


def take_rule(ts, attrs):
    (d,) = _check_over(ts[0], attrs)
    k = attrs["index"]
    if d.fixed is None:
        raise OpDimError(
            f"cannot take entry {k} of {d}: only a fixed-size dim (float[B, 4]) has known entries",
            "declare the dim by its size, e.g. float[B, 4]",
            0,
        )
    if not 0 <= k < d.fixed:
        raise OpDimError(
            f"entry {k} is outside dim {d}: its entries are 0 to {d.fixed - 1}",
            f"take an index from 0 to {d.fixed - 1}",
            0,
        )
    return TensorType(ts[0].dtype, remove_dims(ts[0].dims, (d,)), ts[0].of)


def _one_dim(t: TensorType, attrs: dict, what: str, i: int = 0):
    """The single dim an order op works along. A variadic *S is one axis there, its entries in
    row-major order (the pixels of an image, as x.view(-1) numbers them)."""
    (d,) = _check_over(t, attrs, i)
    return d


def scan_rule(ts, attrs):
    """cumsum, cumprod, cummax, logcumsumexp: float, the operand's dims."""
    _numeric(ts, "a cumulative op")
    _one_dim(ts[0], attrs, "this scan")
    return TensorType("float", ts[0].dims)


def sort_rule(ts, attrs):
    _numeric(ts, "sort")
    _one_dim(ts[0], attrs, "sort")
    return TensorType(ts[0].dtype, ts[0].dims)


def argsort_rule(ts, attrs):
    """The positions that sort x along D: an int of x's dims (not an index of D's `of` kind:
    it varies along D itself)."""
    _numeric(ts, "sort's by= key")
    _one_dim(ts[0], attrs, "sort")
    return TensorType("int", ts[0].dims)


def take_along_rule(ts, attrs):
    """x read along D at the positions idx (an argsort): D must be idx's; the result is over
    both's dims (a side without a dim of the other is repeated along it), in x's dtype."""
    x, idx = ts
    if idx.dtype != "int":
        raise OpTypeError(f"take_along needs int positions, found {idx}", None, 1)
    _one_dim(idx, attrs, "sort", 1)
    return TensorType(x.dtype, _bcast(ts))


def rank_rule(ts, attrs):
    """An int of the operand's dims (not an index of D: it varies along D itself)."""
    _numeric(ts, "rank")
    _one_dim(ts[0], attrs, "rank")
    return TensorType("int", ts[0].dims)


def _scalar_arg(t: TensorType, what: str, dtypes: tuple[str, ...], i: int) -> None:
    if t.dims or t.dtype not in dtypes:
        raise OpTypeError(
            f"{what} must be a {' or '.join(dtypes)} number (a literal or a param), found {t}",
            f"e.g. {'3' if 'float' not in dtypes else '0.9'}",
            i,
        )


def topk_rule(ts, attrs):
    _numeric(ts[:1], "topk")
    _one_dim(ts[0], attrs, "topk")
    _scalar_arg(ts[1], "topk's k", ("int",), 1)
    return TensorType("bool", ts[0].dims)


def quantile_rule(ts, attrs):
    _numeric(ts, "quantile")
    d = _one_dim(ts[0], attrs, "quantile")
    _scalar_arg(ts[1], "quantile's q", ("float", "int"), 1)
    return TensorType("float", remove_dims(ts[0].dims, (d,)))


def eigvalsh_rule(ts, attrs):
    d, d2 = attrs["over"]
    _numeric(ts, "eigvalsh")
    _check_over(ts[0], attrs)
    if not d.twin_of(d2):
        raise OpDimError(
            f"eigvalsh needs a square matrix over a dim and its twin, got {d} and {d2}",
            f"e.g. eigvalsh(c, over=({d}, {d}'))",
        )
    return TensorType("float", remove_dims(ts[0].dims, (d2,)))


def ctc_rule(ts, attrs):
    """ctc_nll(log_probs, targets, input_lengths, target_lengths, blank, log_epsilon): float
    [B]. B is the lengths' one dim, C the targets' `of` dim, L the targets' other dim, T
    (`over`) log_probs' third dim; blank an int and log_epsilon a float number."""
    lp, tg, il, tl, blank, eps = ts
    (t,) = attrs["over"]
    if tg.of is None:
        raise OpTypeError(
            f"ctc_nll's targets must be class ids (index[B, L] of C), found {tg}",
            "declare the input as `targets: index[B, L] of C`",
            1,
        )
    for i, x in ((2, il), (3, tl)):
        if x.dtype != "int" or len(x.dims) != 1:
            raise OpTypeError(
                f"ctc_nll's lengths are ints over the batch (int[B]), found {x}",
                "declare them as `input_lengths: int[B]` and `target_lengths: int[B]`",
                i,
            )
    (b,) = il.dims
    if tl.dims != (b,):
        raise OpDimError(f"input_lengths is over {b} but target_lengths is {tl}", None, 3)
    if len(tg.dims) != 2 or b not in tg.dims:
        raise OpDimError(
            f"ctc_nll's targets are over the batch and the padded label dim ([{b}, L]), found {tg}",
            None,
            1,
        )
    want = {t, b, tg.of}
    if lp.dtype == "bool" or len(lp.dims) != 3 or set(lp.dims) != want or len(want) != 3:
        raise OpDimError(
            f"ctc_nll's log_probs are numbers over frames, batch and classes "
            f"([{t}, {b}, {tg.of}]), found {lp}",
            f"the targets index {tg.of} and the lengths are over {b}",
            0,
        )
    if blank.dtype != "int" or blank.dims:
        raise OpTypeError(f"ctc_nll's blank is one class id (an int), found {blank}", None, 4)
    if eps.dtype == "bool" or eps.dims:
        raise OpTypeError(f"ctc_nll's log_epsilon is one number, found {eps}", None, 5)
    return TensorType("float", (b,))


def gather_rule(ts, attrs):
    x, idx = ts
    if idx.of is None:
        raise OpTypeError(
            f"x[i] needs i to be an index (index[...] of D), found {idx}",
            "declare the input as `index[B] of C`",
            1,
        )
    if idx.of not in x.dims:
        raise OpDimError(
            f"{idx} indexes dim {idx.of}, but the gathered tensor is {x}",
            f"gather from a tensor with a {idx.of} dim",
            0,
        )
    rest = remove_dims(x.dims, (idx.of,))
    try:
        dims = broadcast(rest, idx.dims)
    except DimError as e:
        raise OpDimError(e.message, e.hint) from None
    return TensorType(x.dtype, dims)


def cross_entropy_rule(ts, attrs):
    x, idx = ts
    _numeric([x], "cross_entropy")
    gather_rule(ts, attrs)
    return TensorType("float", gather_rule(ts, attrs).dims)


def onehot_rule(ts, attrs):
    (idx,) = ts
    if idx.of is None:
        raise OpTypeError(f"onehot needs an index tensor, found {idx}", None, 0)
    if idx.of != attrs["dim"]:
        raise OpTypeError(f"{idx} indexes {idx.of}, not {attrs['dim']}", None, 0)
    k = attrs.get("axis", len(idx.dims))  # where the new dim goes (the layout pass moves it)
    return TensorType("float", idx.dims[:k] + (attrs["dim"],) + idx.dims[k:])


def expand_rule(ts, attrs):
    (x,) = ts
    if not x.dims:
        raise OpDimError(
            f"expand() needs a tensor, found {x}",
            "a scalar broadcasts against any dims already; drop the expand",
            0,
        )
    again = [d for d in attrs["dims"] if d in x.dims]
    if again:
        raise OpDimError(
            f"cannot expand {x} by {', '.join(map(str, again))}: it has that dim already",
            "list only dims the operand lacks",
            0,
        )
    return TensorType(x.dtype, x.dims + tuple(attrs["dims"]), x.of)


def diff_rule(ts, attrs):
    _numeric(ts, "diff")
    (d,) = _check_over(ts[0], attrs)
    if d.variadic:
        raise OpDimError(
            f"diff() needs a named axis, not the variadic {d}",
            "declare the spatial axes by name, e.g. float[B, C, H, W]",
            0,
        )
    cut = d.derive("-", 1)
    return TensorType("float", tuple(cut if k == d else k for k in ts[0].dims))


PADDINGS = ("valid", "same", "reflect")


def window_dim(d, k, s: int, padding: str):
    """The dim a window of size k (an int; a conv kernel's dim or an int param's "$k") with
    stride s gives along d:
    valid: floor((d - k) / s) + 1 (d-k+1 at stride 1); same and reflect: ceil(d / s) (d itself
    at stride 1)."""
    if padding != "valid":
        return d.derive("ceil", s)
    if isinstance(k, int):
        return d.derive("-", k - s).derive("//", s)
    if k.fixed is not None:
        return d.derive("-", k.fixed - s).derive("//", s)
    return d.derive("-", -s, k.name).derive("//", s)


def window_rule(ts, attrs):
    """blur, box, avg_pool, max_pool, conv: x keeps its dims but those of `over`, each
    replaced by its window_dim; conv's kernel has one dim per `over` dim (`taps`, in order)."""
    _numeric(ts, "this window")
    x, conv = ts[0], "taps" in attrs
    over = _check_over(x, attrs)
    bad = [d for d in over if d.unit or (d.variadic and (len(over) > 1 or conv))]
    if bad:
        raise OpDimError(
            f"a window over the variadic {bad[0]} slides over all its axes alone (no other dim, "
            "no conv kernel: its taps are named per axis)",
            "window over=S alone (every spatial axis, as MONAI's spatial_dims), or declare the "
            "spatial axes by name, e.g. float[B, C, H, W]",
            0,
        )
    if len(set(over)) != len(over) or not 1 <= len(over) <= 3:
        raise OpDimError(
            f"a window slides over one to three distinct dims, got {fmt_dims(over)}",
            "e.g. over=(H, W)",
            0,
        )
    sizes = attrs.get("size") or attrs.get("taps")
    lead: tuple = ()
    if len(ts) == 2 and not conv:  # blur's sigma: one blur per entry, its dims first
        lead = ts[1].dims
        shared = [d for d in lead if d in x.dims]
        if ts[1].dtype != "float" or shared:
            raise OpDimError(
                f"blur's sigma must be a float number or a float tensor whose dims x lacks, "
                f"got {ts[1]} for x {x}",
                "e.g. sigma=1.5, or sigmas: float[M] for one blur per sigma ([M, ...x])",
                1,
            )
    if conv:  # the kernel's dims, in over's order
        kt, taps = ts[1], attrs["taps"]
        if sorted(kt.dims) != sorted(taps) or len(taps) != len(over):
            raise OpDimError(
                f"conv's kernel must have one dim per dim of over={fmt_dims(over)}, got {kt}",
                "e.g. k: float[KH, KW] with conv(x, k, over=(H, W))",
                1,
            )
        shared = [d for d in kt.dims if d in x.dims]
        if shared:
            raise OpDimError(
                f"conv's kernel {kt} shares {shared[0]} with x {x}: one kernel slides over "
                "every image",
                "give the kernel its own dims, e.g. k: float[KH, KW]",
                1,
            )
    new = {
        d: window_dim(d, k, s, attrs["padding"]) for d, k, s in zip(over, sizes, attrs["stride"])
    }
    return TensorType("float", lead + tuple(new.get(d, d) for d in x.dims))


def frame_dim(d, size: int, hop: int, padding: str, center: bool):
    """The number of frames of `size` every `hop` entries along d. center (torch.stft's and
    librosa's center=True): d padded by size//2 on each side, floor((d + 2 (size//2) - size) /
    hop) + 1 (d//hop + 1 for an even size); else a window's: floor((d - size) / hop) + 1
    ("valid", librosa.util.frame's and Tensor.unfold's count) or ceil(d / hop)."""
    if center:
        return d.derive("-", size - 2 * (size // 2) - hop).derive("//", hop)
    return window_dim(d, size, hop, padding)


def frames_rule(ts, attrs):
    """frames: x's dim `over` becomes the frame count (a derived dim of it, frame_dim) followed
    by the fixed-size dim of the frame's entries (named by its size: over=400 names it)."""
    _numeric(ts, "frames")
    x = ts[0]
    (d,) = _check_over(x, attrs)
    if d.variadic or d.unit:
        raise OpDimError(
            f"frames() needs a named axis, not the variadic {d}",
            "declare the time axis by name, e.g. float[B, T]",
            0,
        )
    (size,), (hop,) = attrs["size"], attrs["stride"]
    w = Dim(str(size))
    if w in x.dims:
        raise OpDimError(
            f"frames of size {size} would give {x} a second dim {w}",
            f"reduce over {w} first, or frame with another size",
            0,
        )
    f = frame_dim(d, size, hop, attrs["padding"], attrs["center"])
    k = x.dims.index(d)
    return TensorType("float", x.dims[:k] + (f, w) + x.dims[k + 1 :])


def bins_dim(d):
    """The dim of a real FFT's N//2 + 1 bins along d: a number for a fixed-size d (513 for
    1024), else d's derived (d+2)//2."""
    if d.fixed is not None:
        return Dim(str(d.fixed // 2 + 1))
    return d.derive("-", -2).derive("//", 2)


def rfft_rule(ts, attrs):
    """rfft_mag: x's dim `over` gives way, where it was, to the dim of its N//2 + 1 frequency
    bins (bins_dim: a number for a fixed-size dim)."""
    _numeric(ts, "rfft_mag")
    x = ts[0]
    (d,) = _check_over(x, attrs)
    if d.variadic or d.unit:
        raise OpDimError(
            f"rfft_mag() needs a named axis, not the variadic {d}",
            "declare the axis by name, e.g. float[B, N] or float[B, 1024]",
            0,
        )
    b = bins_dim(d)
    if b in x.dims and b != d:
        raise OpDimError(
            f"the {b} bins of a real FFT over {d} would give {x} a second dim {b}",
            f"reduce over {b} first, or transform another dim",
            0,
        )
    return TensorType("float", tuple(b if k == d else k for k in x.dims))


def stft_rule(ts, attrs):
    """stft_mag: x's dim `over` becomes the frame count (frame_dim with center=true, as
    torch.stft) followed by the fixed-size dim of the n_fft//2 + 1 bins (513 for n_fft=1024)."""
    _numeric(ts, "stft_mag")
    x = ts[0]
    (d,) = _check_over(x, attrs)
    if d.variadic or d.unit:
        raise OpDimError(
            f"stft_mag() needs a named axis, not the variadic {d}",
            "declare the time axis by name, e.g. float[B, T]",
            0,
        )
    (n,), (hop,) = attrs["size"], attrs["stride"]
    b = Dim(str(n // 2 + 1))
    if b in x.dims:
        raise OpDimError(
            f"the {b} bins of an STFT with n_fft={n} would give {x} a second dim {b}",
            f"reduce over {b} first, or pick another n_fft",
            0,
        )
    f = frame_dim(d, n, hop, "reflect", True)
    k = x.dims.index(d)
    return TensorType("float", x.dims[:k] + (f, b) + x.dims[k + 1 :])


def arange_rule(ts, attrs):
    d = attrs["dim"]
    return TensorType("int", (d,), d)


def eye_rule(ts, attrs):
    return TensorType("bool", attrs["dims"])


def fill_rule(ts, attrs):
    return TensorType(attrs["dtype"], attrs["dims"])


def size_rule(ts, attrs):
    return TensorType("int")


def contract_rule(ts, attrs):
    """An einsum: any two operands (the passes make it, from sum(a * b) whose product lined
    up, or from an expand of a factor: [B, C, H, W] with [H, H'] is x contracted with k). The
    result lays out the bigger operand's dims first, then the other's."""
    _numeric(ts, "contraction")
    a, b = sorted((t.dims for t in ts), key=len, reverse=True)
    dims = a + tuple(d for d in b if d not in a)
    return TensorType("float", remove_dims(dims, attrs["over"]))


def transpose_rule(ts, attrs):
    if sorted(attrs["dims"]) != sorted(ts[0].dims):
        raise OpDimError(f"transpose to {fmt_dims(attrs['dims'])} of {ts[0]}")
    return TensorType(ts[0].dtype, tuple(attrs["dims"]), ts[0].of)


def reshape_rule(ts, attrs):
    """split and merge (lossdsl/lower/functions.py): x's entries in the same row-major order
    under the listed dims; one dim of x gives way to two (split) or two adjacent ones to one
    (merge), the lowering's choice, checked here by the dims that stay."""
    x, dims = ts[0], tuple(attrs["dims"])
    kept = [d for d in dims if d in x.dims]
    if len(dims) - len(kept) > 2 or len(x.dims) - len(kept) > 2:
        raise OpDimError(f"reshape of {x} to {fmt_dims(dims)}")
    return TensorType(x.dtype, dims, x.of)


def rename_rule(ts, attrs):
    m = dict(attrs["mapping"])
    of = ts[0].of
    return TensorType(ts[0].dtype, tuple(m.get(d, d) for d in ts[0].dims), m.get(of, of))


# ---- numpy references -------------------------------------------------------------------


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return np.where(
        x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))
    )


def _var(x, axis, ddof):
    """np.var of x shifted by its first entry along the axes (the same variance; equal entries
    give exactly 0, where np.var's rounded mean left 1e-33 that a division made 1e30)."""
    x = np.asarray(x, dtype=np.float64)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    first = x[tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))]
    return np.var(x - first, axis=axis, ddof=ddof)


def _xlogy(x, y):
    """0 where x == 0 (also at y = 0 or inf), but NaN where y is NaN (scipy's and torch's
    xlogy): the guard replaces only what x == 0 defines."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, np.where(np.isnan(y), np.nan, 0.0), x * np.log(y))


def _floored(fn):
    """Floored division / remainder (Python's // and %, numpy's floor_divide and mod): on ints,
    a zero divisor gives 0 (numpy's value; torch raises, jax returns garbage) and exact Python
    ints fold exactly (a zero divisor there is a FoldError); on floats, IEEE (x // 0 = +-inf,
    x % 0 = NaN)."""

    def f(a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype == object or b.dtype == object:  # exact folding: Python ints
            if np.any(b == 0):
                raise FoldError("integer division by zero", "divide by a nonzero number")
            return fn(a, b)
        if a.dtype.kind in "iub" and b.dtype.kind in "iub":
            return np.where(b == 0, 0, fn(a, np.where(b == 0, 1, b)))
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(a, b)

    return f


def _identity(x, sign: int):
    """The value of max (sign -1) or min (sign +1) over an empty set: the identity of
    np.maximum / np.minimum in x's dtype (-inf / +inf for floats, the int range's end)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return sign * np.inf
    info = np.iinfo(x.dtype)
    return info.max if sign > 0 else info.min


def _logsumexp(x, axis):
    x = np.asarray(x, dtype=np.result_type(x, np.float32))  # ints: in floats
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # over an empty dim: -inf
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _shifted(x, axis):
    """x - max(x) over `axis`, and log(sum(exp(that))). A row of -inf shifts by 0 (its
    log-softmax is -inf - -inf = NaN); a row with +inf shifts by it and is NaN, as in torch and
    jax (whose log_softmax subtracts the max too)."""
    m = np.max(x, axis=axis, keepdims=True)
    d = x - np.where(m == -np.inf, 0.0, m)
    with np.errstate(divide="ignore"):
        return d, np.log(np.sum(np.exp(d), axis=axis, keepdims=True))


def _log_softmax(x, axis):
    """(x - m) - log(sum(e^(x - m))), m the max along the axis (as torch and jax compute it):
    an inf or a NaN anywhere on the axis makes the whole row NaN (x - lse gave [NaN, -inf] for
    [inf, 1], a 0 where torch and jax say NaN)."""
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _cross_entropy(x, idx, axis):
    """-log_softmax(x)[idx] along `axis`: log(sum(exp(x - m))) - (x[idx] - m), as above."""
    d, lse = _shifted(x, axis)
    picked = np.take_along_axis(d, np.expand_dims(idx, axis), axis=axis).squeeze(axis)
    return np.squeeze(lse, axis) - picked


def _softmax(x, axis):
    return np.exp(_log_softmax(x, axis))


def _eigvalsh(x):
    ok = np.isfinite(x).all((-2, -1))
    w = np.linalg.eigvalsh(np.where(ok[..., None, None], x, 0.0))
    return np.where(ok[..., None], w, np.nan)


def _safe_div(a, b, empty=0.0):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, empty, a / np.where(b == 0, 1, b))


_erf = np.vectorize(math.erf, otypes=[float])


def _pow(a, b):
    """a ** b, IEEE's pow (C99 F.9.4.4) except that (-inf) ** 0.5 and (-inf) ** -0.5 are NaN, as
    sqrt(-inf): torch's and numpy's pow with a number exponent of 0.5 run sqrt, with a tensor
    exponent IEEE's pow (+inf and 0), and jnp.power is IEEE's; one meaning for all."""
    a = np.asarray(a, dtype=np.float64)
    r = np.power(a, b)
    return np.where(np.isneginf(a) & (np.abs(b) == 0.5), np.nan, r)


def _lgamma(x):
    """log|Gamma(x)| in float64 by math.lgamma; +inf at the poles (0 and the negative integers,
    where math.lgamma raises), past 2.56e305 (where it overflows) and at -inf, as torch.lgamma
    and jax.lax.lgamma give (scipy 1.17's gammaln gives -inf at -inf)."""

    def one(v):
        try:
            return math.lgamma(v)
        except (ValueError, OverflowError):
            return math.inf

    return np.vectorize(one, otypes=[float])(x)


def _debye_polys(n):
    """Debye's polynomials u_1 .. u_{n-1} of the uniform expansion of I_v (DLMF 10.41.10), each
    as t^k times a polynomial in t^2 (its coefficients, lowest first), from the recurrence
    u_{k+1}(t) = t^2 (1 - t^2) u_k'(t) / 2 + (1/8) int_0^t (1 - 5 s^2) u_k(s) ds (DLMF
    10.41.9) in exact rational arithmetic."""
    from fractions import Fraction

    u, out = [Fraction(1)], []  # u_k's coefficients of t^0 .. t^(3k)
    for k in range(1, n):
        q = [Fraction(0)] * (len(u) + 3)
        for i, c in enumerate(u):
            q[i + 1] += Fraction(i) * c / 2 + c / 8 / (i + 1)
            q[i + 3] -= Fraction(i) * c / 2 + 5 * c / 8 / (i + 3)
        u = q[: 3 * k + 1]
        out.append(tuple(float(c) for c in u[k::2]))
    return tuple(out)


_DEBYE = _debye_polys(14)


def _log_ive_core(v, x, xp, lgamma):
    """log(ive(v, x)) = log(I_v(x)) - x, the log of the exponentially scaled modified Bessel
    function of the first kind, for a real order v >= 0 and x >= 0 (NaN elsewhere), on any array
    module xp (numpy, torch, jax.numpy) with its log-gamma. x <= 1: the power series
    v log(x / 2) - lgamma(v + 1) + log1p(sum_k>=1 (x^2/4)^k / (k! (v+1)_k)), ten terms (the next
    is below 2^-60 of the sum). x > 1: Debye's uniform expansion (DLMF 10.41.3, 13 terms: its
    error is below 1e-15 for orders >= 15) at the order mu = v + n >= 15 and mu + 1, then the
    ratios r_k = I_{k+1} / I_k down to v by r_k = 1 / (2 (k + 1) / x + r_{k+1}) (DLMF 10.29.1;
    stable downward, and all in ratios and logs: nothing overflows at order 500 or x = 1e300),
    log I_v = log I_mu - log(prod_k r_k).
    Both branches' other operands are kept finite so that the gradient of the one taken is
    the derivative (autodiff through the recurrence)."""
    small = x <= 1
    inf = x == xp.inf
    xt = xp.where(small, x, 1.0)  # the series' operand
    xs = xp.where(small | inf, 2.0, x)  # Debye's operand
    y = xt * xt / 4
    s = 1.0
    for k in range(10, 1, -1):
        s = 1 + y / (k * (v + k)) * s
    lx = xp.log(xp.where((v == 0) & (xt == 0), 2.0, xt) / 2)  # 0 * log(0) is 0 at v = 0
    series = v * lx - lgamma(v + 1) + xp.log1p(y / (v + 1) * s) - xt

    def debye(m):  # log(ive(m, xs)), m >= 15
        r = xp.hypot(m, xs)
        t = m / r
        t2, tk, acc = t * t, 1.0, 0.0
        terms = []
        for c in _DEBYE:
            tk = tk * t
            p = 0.0
            for a in c[::-1]:  # (slices, not builtins: the generated modules call none)
                p = p * t2 + a
            terms.append(tk * p)
        for p in terms[::-1]:  # sum_k u_k(t) / m^k, Horner in 1/m
            acc = (acc + p) / m
        d = m * m / (r + xs)  # r - x without the cancellation
        # 0.9189385332046727 = log(2 pi) / 2
        return d - m * xp.log1p((m + d) / xs) - 0.5 * xp.log(r) - 0.9189385332046727 + xp.log1p(acc)

    n = xp.where(v < 15, xp.ceil(15 - v), 0.0)
    big = debye(v + n)
    r = xp.exp(debye(v + n + 1) - big)
    prod = 1.0  # of the ratios, each in [1/32, 1) at x > 1: neither underflows nor rounds
    for j in range(14, -1, -1):  # r_k for k = v + j, where j < n
        step = j < n
        r_new = 1 / (2 * (v + j + 1) / xs + r)
        prod = prod * xp.where(step, r_new, 1.0)
        r = xp.where(step, r_new, r)
    out = xp.where(small, series, xp.where(inf, -xp.inf, big - xp.log(prod)))
    return xp.where((v >= 0) & (x >= 0), out, xp.nan)


def _log_ive(v, x):
    """log(ive(v, x)) in float64 (_log_ive_core on numpy). lgamma is taken of v + 1 >= 1 (a
    negative order's value is NaN whatever it gives)."""
    v, x = np.broadcast_arrays(np.asarray(v, dtype=np.float64), np.asarray(x, dtype=np.float64))
    lgamma = np.vectorize(lambda a: math.lgamma(max(a, 1.0)) if a == a else a, otypes=[float])
    with np.errstate(all="ignore"):
        return _log_ive_core(v, x, np, lgamma)


def log_ive_helper(wrapper: str) -> str:
    """A target's module-level `_log_ive`: the op table's own algorithm as source (one for every
    target), then the target's `wrapper` that calls _log_ive_core with its array module."""
    import inspect

    # the polynomials as numbers (the modules compute no tables and import nothing for them)
    rows = "".join(f"    ({', '.join(map(repr, u))},),\n" for u in _DEBYE)
    table = f"# Debye's u_1 .. u_13 (DLMF 10.41.9), t^k times these in t^2\n_DEBYE = (\n{rows})"
    parts = (table, inspect.getsource(_log_ive_core), wrapper.strip("\n"))
    return "\n\n".join(parts) + "\n"


def _ctc_core(lp, targets, il, tl, blank, log_eps, xp, scan, arange):
    """CTC's negative log-likelihood of each sequence (Graves et al. 2006, eq. 5-8): the
    forward algorithm in log space over the extended labels (blank, l_1, blank, .., l_L, blank)
    of S = 2 L + 1 states, on any array module xp (numpy, torch, jax.numpy). lp: [T, B, C]
    log-probabilities; targets: [B, L] class ids, entries past tl ignored; il, tl: [B] frames
    used and labels. An impossible state or emission holds log_eps (a finite stand-in for
    log 0, optax's convention, so gradients stay finite). `arange(n)` is xp.arange on lp's
    device. `scan(step, init, lpe)` runs
    step(state, lpe[t], t) for t = 0 .. T-1 and returns the last state (a Python loop, or
    lax.scan). Frames past il keep the state; the result reads the last label and the last
    blank at 2 tl - 1 and 2 tl."""
    n_b, n_l = targets.shape[0], targets.shape[1]
    n_s = 2 * n_l + 1
    il, tl = xp.clip(il, 0, lp.shape[0]), xp.clip(tl, 0, n_l)
    pos = arange(n_s)
    odd = pos % 2 == 1
    if n_l:
        ext = xp.where(odd & (pos < 2 * tl[:, None] + 1), targets[:, (pos - 1) // 2], blank)
        prev = ext[:, xp.where(pos >= 2, pos - 2, 0)]
        skip = odd & (pos >= 2) & (ext != prev)
    else:
        ext = xp.zeros_like(tl)[:, None] + blank
        skip = pos < 0
    bidx = arange(n_b)
    lpe = lp[:, bidx[:, None], ext]  # [T, B, S]
    lpe = xp.where(lpe > log_eps, lpe, log_eps)  # log 0 emits log_eps too (its gradient is 0)
    pad = xp.zeros_like(lpe[:1, :, :1].sum(0)) + log_eps  # [B, 1] (T may be 0)

    def step(a, lpe_t, t):
        a1 = xp.concatenate([pad, a[:, :-1]], 1)
        a2 = xp.concatenate([pad, pad, a[:, :-2]], 1)[:, :n_s]
        both = xp.logaddexp(xp.logaddexp(a, a1), xp.where(skip, a2, log_eps))
        return xp.where((t < il)[:, None], lpe_t + both, a)

    init = xp.where(pos == 0, xp.zeros_like(pad), pad)  # the start, before frame 0
    a = scan(step, init, lpe)
    end_blank = a[bidx, 2 * tl]
    end_label = xp.where(tl > 0, a[bidx, xp.where(tl > 0, 2 * tl - 1, 0)], log_eps)
    return -xp.logaddexp(end_blank, end_label)


def _ctc_padding(targets, tl, blank, xp, arange):
    """targets with the entries past each target length set to the blank (any padding value
    is allowed, as torch's and optax's)."""
    return xp.where(arange(targets.shape[1]) < tl[:, None], targets, blank)


def _python_scan(step, init, xs):
    """_ctc_core's loop on numpy: step over the leading axis of xs."""
    a = init
    for t in range(xs.shape[0]):
        a = step(a, xs[t], t)
    return a


def _ctc(lp, targets, il, tl, blank, log_eps):
    """ctc_nll in float64: lp laid out [T, B, C], targets [B, L] (the reference interpreter
    lays them out so)."""
    lp = np.asarray(lp, dtype=np.float64)
    il, tl = np.asarray(il), np.asarray(tl)
    from lossdsl.errors import InputError, ParamError

    targets = _ctc_padding(np.asarray(targets), tl, blank, np, np.arange)
    bad = _ctc_bad(lp, targets, tl, blank, True)
    if bad:
        raise (ParamError if bad[0] == "param" else InputError)(bad[1])
    with np.errstate(all="ignore"):
        return _ctc_core(lp, targets, il, tl, int(blank), float(log_eps), np, _python_scan,
                         np.arange)  # fmt: skip


def _ctc_bad(lp, targets, tl, blank, check):
    """ctc_nll's argument errors: ("param", message) for a blank that is no class id,
    ("input", message) for a target class id outside the classes within its target length
    (with `check`, check_indices; padding past it may hold anything), else None."""
    n_c = lp.shape[2]
    if not 0 <= int(blank) < n_c:
        return (
            "param",
            f"ctc_nll: blank = {int(blank)} is no class id (the classes are 0..{n_c - 1})",
        )
    if not check or targets.shape[0] * targets.shape[1] == 0:
        return None
    lo, hi = int(targets.min()), int(targets.max())  # padding was set to the blank
    if lo < 0 or hi >= n_c:
        return "input", (
            f"ctc_nll: targets hold class ids {lo}..{hi} within their target_lengths, outside "
            f"0..{n_c - 1} (entries past a target length are ignored: pad with any value)"
        )
    return None


def ctc_helper(wrapper: str) -> str:
    """A target's module-level `_ctc`: the op table's algorithm as source, then the target's
    `wrapper` that calls _ctc_core with its array module and loop."""
    import inspect

    parts = (_ctc_core, _ctc_padding, _ctc_bad)
    return "\n\n".join(inspect.getsource(f) for f in parts) + "\n\n" + wrapper.strip("\n") + "\n"


def _digamma(x):
    """psi(x) = d/dx log Gamma(x) in float64, as torch.digamma and scipy.special.psi: -inf at +0,
    +inf at -0, NaN at the negative integers and at -inf, +inf at +inf. x >= 0: the recurrence
    psi(x) = psi(x + 1) - 1/x taken ten times below 10, then the asymptotic series in 1/x^2 to
    the x^-14 term (the next is below 5e-17 there); x < 0: the reflection
    psi(x) = psi(1 - x) - pi cot(pi x), cot taken of x - round(x) in [-1/2, 1/2] (exact; cot has
    period 1, and pi (x - round(x)) keeps its relative precision near a pole, where pi x does
    not)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        neg = x < 0
        frac = x - np.round(x)
        z = np.where(neg, 1.0 - x, x)
        # psi(z) = psi(z + 10) - sum_k<10 1/(z + k) for z < 10, in one step (no loop: the numpy
        # target inlines this helper, and its modules call no builtins)
        small = z < 10
        acc = np.where(
            small, -1.0 / z - np.sum(1.0 / (z[..., None] + np.arange(1.0, 10.0)), axis=-1), 0.0
        )
        z = np.where(small, z + 10.0, z)
        w = 1.0 / (z * z)
        tail = 1 / 240 + w * (-1 / 132 + w * (691 / 32760 - w / 12))
        series = w * (-1 / 12 + w * (1 / 120 + w * (-1 / 252 + w * tail)))
        psi = np.log(z) - 0.5 / z + series + acc
        psi = np.where(neg, psi - np.pi / np.tan(np.pi * frac), psi)
        return np.where(neg & (frac == 0), np.nan, psi)  # the poles at the negative integers


# ---- order: scans, sorts, ranks, quantiles along one axis ----------------------------------
# Ties are stable everywhere: equal entries keep their order along the axis (descending too:
# the earlier of two equal entries comes first). NaN sorts as the largest value (numpy, torch
# and jax put it last ascending, first descending).


def _scan(f):
    """A cumulative op along `axis`; reverse=True accumulates from the end (flip, scan, flip)."""

    def ref(x, axis, reverse=False):
        x = np.asarray(x, dtype=np.float64)
        if not reverse:
            return f(x, axis)
        return np.flip(f(np.flip(x, axis), axis), axis)

    return ref


def _argsort(k, axis, descending=False):
    """The stable argsort of k along `axis`; descending: the ascending stable argsort of k
    reversed along the axis, read backwards (equal entries keep their order)."""
    if not descending:
        return np.argsort(k, axis=axis, kind="stable")
    n = np.shape(k)[axis]
    return (n - 1) - np.flip(np.argsort(np.flip(k, axis), axis=axis, kind="stable"), axis)


def _sort(x, axis, descending=False):
    return np.take_along_axis(x, _argsort(x, axis, descending), axis=axis)


def _argmax(x, axis):
    """np.argmax, but 0 over an empty dim (numpy raises): the too-small check (lossdsl/empty.py)
    refuses it unless the branch holding it is not taken, where any index will do."""
    if x.shape[axis] == 0:
        return np.zeros(np.delete(x.shape, axis), dtype=np.int64)
    return np.argmax(x, axis=axis)


def _gather(x, idx):
    """x[..., idx] along the last axis; NaN from an empty axis (an untaken branch's argmax)."""
    if x.shape[-1] == 0:
        return np.full(idx.shape, np.nan)
    return np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]


def _take_along(x, idx, axis):
    """x read along `axis` at the positions idx (x and idx of one shape)."""
    return np.take_along_axis(x, idx, axis=axis)


def _rank(x, axis):
    """The 0-based position of each entry in the stable ascending sort along `axis`."""
    return np.argsort(_argsort(x, axis), axis=axis, kind="stable")


def _topk(x, k, axis):
    """True at the k largest entries along `axis` (of equal ones, the earlier first)."""
    return np.argsort(_argsort(x, axis, True), axis=axis, kind="stable") < k


def _quantile(x, q, axis):
    """numpy's default (linear, Hyndman-Fan 7) quantile along `axis`: the sorted entries at
    position q (n - 1), interpolated between the two neighbours as numpy's _lerp does. One
    difference: a position that is a whole number takes that entry alone (numpy's lerp gives
    NaN there when the next entry is inf: 0 * inf). NaN where the slice holds a NaN or q is
    outside [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n = x.shape[axis]
    if n == 0:  # NaN (no entry), shaped as the result: a discarded branch at an empty dim
        return np.sum(x, axis=axis) + (q * 0.0 + np.nan)
    s = np.sort(x, axis=axis)
    pos = np.clip(np.where(q == q, q, 0.0), 0.0, 1.0) * (n - 1)
    lo = np.floor(pos)
    t = pos - lo
    a = np.take(s, lo.astype(np.int64), axis=axis)
    b = np.take(s, np.minimum(lo.astype(np.int64) + 1, n - 1), axis=axis)
    with np.errstate(invalid="ignore"):
        d = b - a
        v = np.where(t >= 0.5, b - d * (1 - t), a + d * t)
    v = np.where(t == 0, a, v)
    bad = np.isnan(x).any(axis=axis) | ~((q >= 0) & (q <= 1))
    return np.where(bad, np.nan, v)


def _window(x, axes, kind, size, stride, padding, sigma=1.5, kernel=None):
    """A sliding window over `axes` of x in float64 (the numpy target inlines this source: it
    calls numpy and no builtins but tuple). `padding`: "valid" (no padding), "same" (zeros;
    -inf for max) or "reflect" (x[1], x[0] | x[0], x[1], ...: torch's and np.pad's reflect,
    scipy.ndimage's "mirror"), by (out - 1) * stride + size - n in total along an axis of n,
    out = ceil(n / stride), the odd one before (scipy.ndimage's centre, pytorch_msssim's
    downsampling). Then windows every `stride` entries: blur (a separable Gaussian of `sigma`,
    normalized over its `size` taps at offsets -size//2 ..., pytorch_msssim's
    _fspecial_gauss_1d), box (separable, the window's mean with padding counted), avg and max
    (the window's mean with padding counted / max), conv (the cross-correlation with `kernel`,
    its axes in the order of `axes`, as torch's conv2d)."""
    x = np.asarray(x, dtype=np.float64)
    if kernel is not None:
        kernel = np.asarray(kernel, dtype=np.float64)
        size = kernel.shape
    at = np.asarray(axes, dtype=np.int64)
    k, s = np.asarray(size, dtype=np.int64), np.asarray(stride, dtype=np.int64)
    n = np.asarray(x.shape, dtype=np.int64)[at]
    total = np.zeros_like(k)
    if padding != "valid":
        total = np.maximum((-(-n // s) - 1) * s + k - n, 0)
    width = np.zeros((x.ndim, 2), dtype=np.int64)
    width[at, 0], width[at, 1] = total - total // 2, total // 2
    if padding == "reflect":
        x = np.pad(x, width, mode="reflect")
    else:
        x = np.pad(x, width, constant_values=-np.inf if kind == "max" else 0.0)
    shape = np.asarray(x.shape, dtype=np.int64)
    if (shape[at] < k).any():  # a window longer than its axis: none (an untaken branch's)
        shape[at] = np.maximum(-(-(shape[at] - k + 1) // s), 0)
        return np.zeros(tuple(shape))
    if kind in ("blur", "box"):
        for i in np.arange(at.size):
            c = np.arange(k[i], dtype=np.float64) - k[i] // 2
            g = np.exp(-(c**2) / (2.0 * sigma**2)) if kind == "blur" else np.ones(k[i])
            w = np.lib.stride_tricks.sliding_window_view(x, k[i], axis=at[i])
            x = np.take(w @ (g / np.sum(g)), np.arange(0, w.shape[at[i]], s[i]), axis=at[i])
        return x
    w = np.lib.stride_tricks.sliding_window_view(x, tuple(k), axis=tuple(at))
    for i in np.arange(at.size):
        w = np.take(w, np.arange(0, w.shape[at[i]], s[i]), axis=at[i])
    last = tuple(np.arange(-at.size, 0))
    if kind == "conv":
        return np.tensordot(w, kernel, axes=at.size)
    return np.max(w, axis=last) if kind == "max" else np.mean(w, axis=last)


def _blurs(x, sigma, axes, size, stride, padding):
    """blur: _window's Gaussian for each entry of `sigma` (a number: one), stacked in sigma's
    shape before x's (the numpy target inlines this source: numpy only)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    flat = sigma.reshape(-1)
    out = [_window(x, axes, "blur", size, stride, padding, s) for s in flat]
    if not out:  # no sigma: an empty stack of the blur's shape
        one = _window(x, axes, "blur", size, stride, padding, 1.0)
        return np.zeros(sigma.shape + one.shape)
    return np.reshape(np.stack(out), sigma.shape + out[0].shape)


def _frames(x, axes, size, stride, padding, center):
    """x's axis `axes[0]` cut into frames of `size[0]` entries every `stride[0]` (the hop), in
    float64: the frame count at that axis, the frame's entries right after it (the numpy target
    inlines this source: numpy only). Padding: none ("valid": librosa.util.frame, Tensor.unfold);
    with `center`, size//2 entries on each side (torch.stft's and librosa's center=True), zeros
    ("same") or mirrored ("reflect", torch.stft's default pad_mode); else a window's padding
    (_window: (ceil(n / hop) - 1) hop + size - n in all, the odd one before)."""
    x = np.asarray(x, dtype=np.float64)
    a, k, s = axes[0], size[0], stride[0]
    n = x.shape[a]
    total = np.maximum((-(-n // s) - 1) * s + k - n, 0) if padding != "valid" else 0
    before, after = total - total // 2, total // 2
    if center:
        before, after = k // 2, k // 2
    width = np.zeros((x.ndim, 2), dtype=np.int64)
    width[a, 0], width[a, 1] = before, after
    x = np.pad(x, width, mode="reflect" if padding == "reflect" else "constant")
    w = np.lib.stride_tricks.sliding_window_view(x, k, axis=a)
    return np.moveaxis(np.take(w, np.arange(0, w.shape[a], s), axis=a), -1, a + 1)


def _rfft_mag(x, axes, eps):
    """|rFFT(x)| along axis `axes[0]` in float64, the N//2 + 1 bins where the axis was:
    sqrt(max(re^2 + im^2, eps)) (eps > 0: auraloss's clamp of the power, whose gradient is
    finite where the magnitude is 0; the numpy target inlines this source: numpy only)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[axes[0]] == 0:  # NaN in the one bin: an untaken branch's (lossdsl/empty.py)
        return np.sum(x, axis=axes[0], keepdims=True) + np.nan
    y = np.fft.rfft(x, axis=axes[0])
    return np.sqrt(np.maximum(y.real**2 + y.imag**2, eps))


def _stft_mag(x, axes, size, stride, win, eps):
    """The magnitude STFT of x along axis `axes[0]` in float64, torch.stft's conventions
    (center=True, pad_mode="reflect", onesided): x mirrored by n_fft//2 on each side, frames
    of n_fft every hop, times a periodic Hann window of `win` entries zero-padded to n_fft
    ((n_fft - win)//2 zeros before), np.fft.rfft of each; then sqrt(max(re^2 + im^2, eps)),
    auraloss's magnitude. The frame count at the axis, the n_fft//2 + 1 bins after it (the
    numpy target inlines this source: numpy only)."""
    x = np.asarray(x, dtype=np.float64)
    a, k, s = axes[0], size[0], stride[0]
    width = np.zeros((x.ndim, 2), dtype=np.int64)
    width[a, 0], width[a, 1] = k // 2, k // 2
    x = np.pad(x, width, mode="reflect")
    w = np.lib.stride_tricks.sliding_window_view(x, k, axis=a)
    w = np.take(w, np.arange(0, w.shape[a], s), axis=a)
    lo = (k - win) // 2
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win, dtype=np.float64) / win)
    if win == 1:  # torch.hann_window(1) is [1], not the formula's [0]
        hann = np.ones(1)
    y = np.fft.rfft(w * np.pad(hann, (lo, k - win - lo)), axis=-1)
    return np.moveaxis(np.sqrt(np.maximum(y.real**2 + y.imag**2, eps)), -1, a + 1)


OPS: dict[str, OpDef] = {}


def _ordered(rule):
    """Elementwise results may carry an `order` attr: the same dims, laid out in that order
    (the layout pass picks it so that a consumer needs no transpose)."""

    def typed(ts, attrs):
        t = rule(ts, attrs)
        order = attrs.get("order")
        if order is None:
            return t
        if sorted(order) != sorted(t.dims):
            raise OpDimError(f"layout {fmt_dims(order)} is not a permutation of {t}")
        return TensorType(t.dtype, tuple(order), t.of)

    return typed


def _row(name, kind, nargs, rule, ref, doc, differentiable=True, attrs=(), combine=None):
    if kind == "elementwise":
        rule, attrs = _ordered(rule), tuple(attrs) + ("order",)
    OPS[name] = OpDef(name, kind, nargs, rule, ref, doc, differentiable, attrs, combine)


def ref_attrs(op: OpDef, attrs) -> dict:
    """The attrs an op's numpy `ref` takes (layout attrs are not part of the math)."""
    return {k: v for k, v in dict(attrs).items() if k in op.attrs and k not in ("order", "over")}


E = "elementwise"
# elementwise, unary
_row("neg", E, 1, unary_same, np.negative, "-x")
_row("exp", E, 1, unary_float, np.exp, "e^x")
_row("log", E, 1, unary_float, np.log, "natural log")
_row("log1p", E, 1, unary_float, np.log1p, "log(1 + x), accurate near 0")
_row("expm1", E, 1, unary_float, np.expm1, "e^x - 1, accurate near 0")
_row("sqrt", E, 1, unary_float, np.sqrt, "square root")
_row("abs", E, 1, unary_keep, np.abs, "|x|")
_row("sigmoid", E, 1, unary_float, _sigmoid, "1 / (1 + e^-x)")
_row("softplus", E, 1, unary_float, _softplus, "log(1 + e^x), stable for large |x|")
_row("relu", E, 1, unary_keep, lambda x: np.maximum(x, 0), "max(x, 0)")
_row("erf", E, 1, unary_float, _erf, "the error function")
_row("tanh", E, 1, unary_float, np.tanh, "hyperbolic tangent")
_row("sin", E, 1, unary_float, np.sin, "sine (radians)")
_row("cos", E, 1, unary_float, np.cos, "cosine (radians)")
_row("atan", E, 1, unary_float, np.arctan, "arctangent, in (-pi/2, pi/2)")
_row("asin", E, 1, unary_float, np.arcsin, "arcsine, NaN outside [-1, 1]")
_row("acos", E, 1, unary_float, np.arccos, "arccosine, NaN outside [-1, 1]")
_row("log2", E, 1, unary_float, np.log2, "base-2 log")
_row("log10", E, 1, unary_float, np.log10, "base-10 log")
_row("sinh", E, 1, unary_float, np.sinh, "hyperbolic sine")
_row("cosh", E, 1, unary_float, np.cosh, "hyperbolic cosine")
_row("asinh", E, 1, unary_float, np.arcsinh, "inverse hyperbolic sine")
_row("acosh", E, 1, unary_float, np.arccosh, "inverse hyperbolic cosine, NaN below 1")
_row("atanh", E, 1, unary_float, np.arctanh, "inverse hyperbolic tangent, +-inf at +-1, NaN beyond")
_row("lgamma", E, 1, unary_float, _lgamma, "log |Gamma(x)|, +inf at 0 and the negative integers")
_row(
    "log_ive",
    E,
    2,
    true_div,
    _log_ive,
    "log(ive(v, x)) = log(I_v(x)) - x, the modified Bessel function of real order v >= 0 at "
    "x >= 0, exponentially scaled (scipy.special.ive); NaN at v < 0 or x < 0",
)
_row(
    "digamma",
    E,
    1,
    unary_float,
    _digamma,
    "psi(x) = d/dx lgamma(x); -inf at +0, +inf at -0, NaN at the negative integers",
)
# Rounding: an int stays an int (the identity); the gradient is 0 everywhere (piecewise constant)
_row("floor", E, 1, unary_keep, np.floor, "the largest integer <= x; zero gradient")
_row("ceil", E, 1, unary_keep, np.ceil, "the smallest integer >= x; zero gradient")
_row("round", E, 1, unary_keep, np.round, "the nearest integer, halves to even; zero gradient")
_row("sign", E, 1, unary_keep, np.sign, "-1, 0 or 1 (0 at -0, NaN at NaN); zero gradient")
_row("not", E, 1, logical, np.logical_not, "boolean not", False)
_row("stop_grad", E, 1, same, lambda x: x, "value of x, zero gradient")
# a declared gradient: the value y, d/dx = g elementwise (summed over dims x lacks), nothing
# through y or g (autograd.Function / jax.custom_vjp); straight_through and grad_reverse lower here
_row("custom_grad", E, 3, custom_grad_rule, _custom_grad_ref, "value y, gradient g w.r.t. x")
_row("to_float", E, 1, to_float, lambda x: x.astype(np.float64), "bool/int -> float")
# elementwise, binary
_row("add", E, 2, arith, np.add, "a + b")
_row("sub", E, 2, arith, np.subtract, "a - b")
_row("mul", E, 2, arith, np.multiply, "a * b")
_row("div", E, 2, true_div, lambda a, b: np.true_divide(a, b), "a / b (true division)")
_row("pow", E, 2, true_div, _pow, "a ^ b (float, as 2 ^ -1); NaN at (-inf) ^ 0.5, as sqrt")
_row(
    "floordiv",
    E,
    2,
    arith,
    _floored(np.floor_divide),
    "a // b, floored (Python's); an int // 0 is 0; zero gradient",
)
_row(
    "mod",
    E,
    2,
    arith,
    _floored(np.mod),
    "a % b = a - b * (a // b), the divisor's sign (Python's); an int % 0 is 0",
)
_row("maximum", E, 2, arith, np.maximum, "elementwise max")
_row("minimum", E, 2, arith, np.minimum, "elementwise min")
_row("xlogy", E, 2, true_div, _xlogy, "x * log(y), 0 where x == 0")
_row(
    "atan2", E, 2, true_div, np.arctan2, "the angle of the point (x, y) = atan2(y, x), in [-pi, pi]"
)
_row(
    "logaddexp",
    E,
    2,
    true_div,
    np.logaddexp,
    "log(e^a + e^b) without overflow; -inf at (-inf, -inf), inf at (inf, inf)",
)
_row("eq", E, 2, equality, np.equal, "a == b", False)
_row("ne", E, 2, equality, np.not_equal, "a != b", False)
_row("lt", E, 2, compare, np.less, "a < b", False)
_row("le", E, 2, compare, np.less_equal, "a <= b", False)
_row("gt", E, 2, compare, np.greater, "a > b", False)
_row("ge", E, 2, compare, np.greater_equal, "a >= b", False)
_row("and", E, 2, logical, np.logical_and, "a & b", False)
_row("or", E, 2, logical, np.logical_or, "a | b", False)
_row(
    "safe_div",
    E,
    2,
    true_div,
    _safe_div,
    "a / b, `empty` where b == 0 (finite gradient)",
    attrs=("empty",),
)
# elementwise, ternary
_row("where", E, 3, where_rule, np.where, "c ? a : b")
# reductions over named dims
R = "reduce"
_row(
    "sum",
    R,
    1,
    reduce_rule,
    lambda x, axis: np.sum(x, axis=axis),
    "sum over dims",
    attrs=("over",),
    combine="add",
)
_row(
    "mean",
    R,
    1,
    reduce_rule,
    lambda x, axis: np.mean(x, axis=axis),
    "mean over dims",
    attrs=("over",),
)
_row(
    "max",
    R,
    1,
    minmax_reduce,
    lambda x, axis: np.max(x, axis=axis, initial=_identity(x, -1)),
    "max over dims; -inf over an empty dim (the int range's minimum for ints)",
    attrs=("over",),
    combine="maximum",
)
_row(
    "min",
    R,
    1,
    minmax_reduce,
    lambda x, axis: np.min(x, axis=axis, initial=_identity(x, 1)),
    "min over dims; +inf over an empty dim (the int range's maximum for ints)",
    attrs=("over",),
    combine="minimum",
)
_row(
    "logsumexp",
    R,
    1,
    reduce_rule,
    _logsumexp,
    "log sum exp over dims, stable; -inf over an empty dim",
    attrs=("over",),
    combine="logaddexp",
)
_row(
    "var",
    R,
    1,
    reduce_rule,
    _var,
    "variance over dims; ddof=0 biased (BatchNorm), ddof=1 unbiased (torch .var())",
    attrs=("over", "ddof"),
)
# per-axis normalizations (over exactly one dim)
_row("softmax", "axis", 1, axis_rule, _softmax, "e^x / sum e^x over a dim", attrs=("over",))
_row(
    "log_softmax",
    "axis",
    1,
    axis_rule,
    _log_softmax,
    "x - logsumexp(x) over a dim",
    attrs=("over",),
)
# structure
_row(
    "gather",
    "gather",
    2,
    gather_rule,
    _gather,
    "x[i]: pick x along i's `of` dim (NaN from an empty dim: an untaken branch's argmax there)",
)
_row(
    "onehot",
    "onehot",
    1,
    onehot_rule,
    lambda idx, n, axis=-1: np.moveaxis(
        (idx[..., None] == np.arange(n)).astype(np.float64), -1, axis
    ),
    "1.0 at the index, 0.0 elsewhere, along `dim` (placed at `axis`, default last)",
    False,
    ("dim", "axis"),
)
_row(
    "eye",
    "eye",
    0,
    eye_rule,
    lambda n: np.eye(n, dtype=bool),
    "identity mask over twin dims",
    False,
    ("dims",),
)
_row(
    "arange",
    "arange",
    0,
    arange_rule,
    lambda n: np.arange(n),
    "the positions 0 .. size(D) - 1 along a dim: an index into D",
    False,
    ("dim",),
)
_row(
    "fill",
    "fill",
    0,
    fill_rule,
    lambda shape, value: np.full(shape, value),
    "a constant tensor",
    False,
    ("dims", "value", "dtype"),
)
_row(
    "size",
    "size",
    0,
    size_rule,
    lambda n: np.int64(n),
    "the size of a dim (an int scalar)",
    False,
    ("dim",),
)
_row(
    "contract",
    "contract",
    2,
    contract_rule,
    np.einsum,
    "sum(a * b, over=dims) without building a * b (an einsum)",
    attrs=("over",),
)
_row(
    "rename",
    "rename",
    1,
    rename_rule,
    lambda x: x,
    "rename dims (x' primes every dim)",
    attrs=("mapping",),
)
_row(
    "transpose",
    "transpose",
    1,
    transpose_rule,
    lambda x, perm: np.transpose(x, perm),
    "reorder axes to the listed dims (a result's canonical order)",
    attrs=("dims",),
)
_row(
    "reshape",
    "reshape",
    1,
    reshape_rule,
    lambda x, shape: np.reshape(x, shape),
    "x's entries in row-major order under new dims: split (N to N/G, G) and merge (P, G to "
    "P*G), as torch.reshape and einops.rearrange",
    attrs=("dims",),
)
_row(
    "cross_entropy",
    "cross_entropy",
    2,
    cross_entropy_rule,
    _cross_entropy,
    "-log_softmax(x)[i] = logsumexp(x) - x[i] along i's `of` dim (one fused op per framework)",
)
_row(
    "argmax",
    "argmax",
    1,
    argmax_rule,
    _argmax,
    "the index of the largest entry along a dim (first on ties): an index into that dim "
    "(0 over an empty dim, which only an untaken branch reaches: lossdsl/empty.py)",
    False,
    ("over",),
)
_row(
    "expand",
    "expand",
    1,
    expand_rule,
    lambda x, shape: np.broadcast_to(x.reshape(x.shape + (1,) * (len(shape) - x.ndim)), shape),
    "x repeated along new dims (appended): the explicit outer product of unrelated dims",
    True,
    ("dims",),
)
_row(
    "diff",
    "diff",
    1,
    diff_rule,
    lambda x, axis: np.diff(x, axis=axis),
    "x[1:] - x[:-1] along a dim D; the result is over D-1 (D's size minus one)",
    True,
    ("over",),
)


def shift_rule(ts, attrs):
    """x moved along one dim; along a variadic *S in its row-major order, as the scans (a
    Lovász J_{n-1} is the shift of J along the sorted pixels)."""
    _one_dim(ts[0], attrs, "shift")
    return ts[0]


def _shift_ref(x, axis, steps, value):
    """Entry n of the result is x[n - steps] where 0 <= n - steps < N, else `value`."""
    n = x.shape[axis]
    src = np.arange(n) - steps
    ok = (src >= 0) & (src < n)
    taken = np.take(x, np.clip(src, 0, max(n - 1, 0)), axis=axis) if n else x
    shape = [1] * x.ndim
    shape[axis] = n
    return np.where(ok.reshape(shape), taken, np.asarray(value, dtype=x.dtype))


_row(
    "shift",
    "axis",
    1,
    shift_rule,
    _shift_ref,
    "x moved `steps` entries along a dim (later for steps > 0), the entries left at the edge "
    "filled with `value`: x[n - steps] at n",
    True,
    ("over", "steps", "value"),
)
_row(
    "take",
    "take",
    1,
    take_rule,
    lambda x, axis, index: np.take(x, index, axis=axis),
    "entry `index` along a fixed-size dim, which the result drops (unstack's coordinates)",
    True,
    ("over", "index"),
)
# sliding windows over named spatial dims (window_rule: the output's derived dims)
W = "window"
_SLIDE = ("over", "size", "stride", "padding")
_row(
    "blur",
    W,
    2,
    window_rule,
    lambda x, sigma, axes, size, stride, padding: _blurs(x, sigma, axes, size, stride, padding),
    "a Gaussian filter of `sigma` over `size` taps per dim (separable, normalized to sum 1); "
    "a tensor of sigmas gives one blur per entry, its dims first",
    True,
    _SLIDE,
)
_row(
    "box",
    W,
    1,
    window_rule,
    lambda x, axes, size, stride, padding: _window(x, axes, "box", size, stride, padding),
    "the mean over a window of `size` per dim (separable; zero padding counted)",
    True,
    _SLIDE,
)
_row(
    "avg_pool",
    W,
    1,
    window_rule,
    lambda x, axes, size, stride, padding: _window(x, axes, "avg", size, stride, padding),
    "the mean over windows of `size`, every `stride` (default: the size; zero padding counted)",
    True,
    _SLIDE,
)
_row(
    "max_pool",
    W,
    1,
    window_rule,
    lambda x, axes, size, stride, padding: _window(x, axes, "max", size, stride, padding),
    "the max over windows of `size`, every `stride` (default: the size; padding is -inf)",
    True,
    _SLIDE,
)
_row(
    "conv",
    W,
    2,
    window_rule,
    lambda x, k, axes, stride, padding: _window(x, axes, "conv", None, stride, padding, 0, k),
    "the cross-correlation of x with a kernel over `taps` (torch's conv2d, one kernel for "
    "every image and channel)",
    True,
    ("over", "taps", "stride", "padding"),
)
_row(
    "frames",
    W,
    1,
    frames_rule,
    _frames,
    "x's dim T cut into frames of `size` entries every `stride` (the hop): over the frame count "
    "(a derived dim of T) and the fixed-size dim `size` (librosa.util.frame, Tensor.unfold; "
    "center: torch.stft's center=True)",
    True,
    ("over", "size", "stride", "padding", "center"),
)
_row(
    "stft_mag",
    W,
    1,
    stft_rule,
    lambda x, axes, size, stride, padding, center, win, eps: _stft_mag(
        x, axes, size, stride, win, eps
    ),
    "the magnitude STFT of x along T (torch.stft's center=True, reflect padding, periodic Hann "
    "window of `win` zero-padded to n_fft): over the frame count (a derived dim of T) and the "
    "fixed-size dim of n_fft//2 + 1 bins; sqrt(max(re^2 + im^2, eps)), auraloss's magnitude",
    True,
    ("over", "size", "stride", "padding", "center", "win", "eps"),
)
_row(
    "rfft_mag",
    "rfft",
    1,
    rfft_rule,
    lambda x, axis, eps: _rfft_mag(x, (axis,), eps),
    "|rFFT(x)| along a dim of N entries: its N//2 + 1 bins in its place (a number for a "
    "fixed-size dim, else the derived (N+2)//2); sqrt(max(re^2 + im^2, eps))",
    True,
    ("over", "eps"),
)
_row(
    "eigvalsh",
    "eigvalsh",
    1,
    eigvalsh_rule,
    _eigvalsh,
    "eigenvalues (ascending) of a symmetric matrix over (D, D'); the result keeps D (all NaN "
    "for a matrix with a non-finite entry)",
    True,
    ("over",),
)

_row(
    "ctc_nll",
    "ctc",
    6,
    ctc_rule,
    _ctc,
    "CTC's negative log-likelihood of each target sequence (blank, repeats, padding) by the "
    "forward algorithm in log space along `over` (T): log_epsilon is log 0's finite stand-in "
    "(optax's convention); lengths clamp to [0, T] and [0, L]",
    True,
    ("over",),
)

# order along one named dim (kind "scan", "sort", "rank", "quantile"; ties stable)
_row(
    "cumsum",
    "scan",
    1,
    scan_rule,
    _scan(lambda x, axis: np.cumsum(x, axis=axis)),
    "running sum along a dim (reverse=True: from the end); keeps the dims",
    attrs=("over", "reverse"),
)
_row(
    "cumprod",
    "scan",
    1,
    scan_rule,
    _scan(lambda x, axis: np.cumprod(x, axis=axis)),
    "running product along a dim (reverse=True: from the end); keeps the dims",
    attrs=("over", "reverse"),
)
_row(
    "cummax",
    "scan",
    1,
    scan_rule,
    _scan(lambda x, axis: np.maximum.accumulate(x, axis=axis)),
    "running max along a dim (reverse=True: from the end), NaN from a NaN on; keeps the dims",
    attrs=("over", "reverse"),
)
_row(
    "logcumsumexp",
    "scan",
    1,
    scan_rule,
    _scan(lambda x, axis: np.logaddexp.accumulate(x, axis=axis)),
    "running log sum exp along a dim (reverse=True: from the end), stable; keeps the dims",
    attrs=("over", "reverse"),
)
_row(
    "sort",
    "sort",
    1,
    sort_rule,
    _sort,
    "x sorted along a dim, ascending (descending=True: largest first); NaN counts as largest",
    attrs=("over", "descending"),
)
_row(
    "argsort",
    "rank",
    1,
    argsort_rule,
    _argsort,
    "the positions that sort x along a dim, stably (ascending, or descending=True): the "
    "permutation sort(x, by=k) applies",
    False,
    ("over", "descending"),
)
_row(
    "take_along",
    "sort",
    2,
    take_along_rule,
    _take_along,
    "x read along a dim at the positions idx (an argsort): sort(x, by=k) is "
    "take_along(x, argsort(k)); idx gets no gradient",
    attrs=("over",),
)
_row(
    "rank",
    "rank",
    1,
    rank_rule,
    _rank,
    "the 0-based ascending rank along a dim (ties: the earlier entry ranks lower), an int",
    False,
    ("over",),
)
_row(
    "topk",
    "rank",
    2,
    topk_rule,
    _topk,
    "true at the k largest entries along a dim (ties: the earlier entry first); k an int scalar",
    False,
    ("over",),
)
_row(
    "quantile",
    "quantile",
    2,
    quantile_rule,
    _quantile,
    "numpy's linear quantile q along a dim, which the result drops; NaN for q outside [0, 1] "
    "or a NaN entry",
    attrs=("over",),
)


# ---- constant folding: an op's value on Python scalars --------------------------------------

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class FoldError(OpTypeError):
    """A constant the IR cannot hold: an int outside int64, a float that overflowed float64."""


def short_number(v) -> str:
    s = str(v)
    return s if len(s) <= 24 else f"{s[:8]}...{s[-4:]} ({len(s.lstrip('-'))} digits)"


def check_representable(v) -> None:
    """Raise FoldError for an int outside int64 (generated code, numpy, torch and jax hold ints
    in 64 bits; Python would silently compute with a bigger one)."""
    if isinstance(v, int) and not isinstance(v, bool) and not INT64_MIN <= v <= INT64_MAX:
        raise FoldError(
            f"the integer {short_number(v)} is outside the int64 range",
            "write it as a float (e.g. 1e20), or use smaller numbers",
        )


# Ops whose numpy meaning works on Python ints held in object arrays: exact, never wrapping.
_EXACT_INT = frozenset(
    {"neg", "abs", "relu", "add", "sub", "mul", "maximum", "minimum", "where", "stop_grad"}
    | {"floordiv", "mod"}
)


def repeat_rule(ts, attrs):
    """repeat: args (n, *init, *free); the state `out` of the body after n steps (the body
    itself is checked by the verifier: lossdsl/ir.py)."""
    body, k = attrs["body"], attrs["out"]
    ns = len(body.state)
    if ts[0].dims or ts[0].dtype != "int":
        raise OpTypeError(f"repeat() runs a whole number of steps, got {ts[0]}", arg=0)
    if len(ts) != 1 + ns + len(body.free):
        raise OpTypeError(f"repeat() takes n, {ns} init values and {len(body.free)} free values")
    for i, (t, s) in enumerate(zip(ts[1 : 1 + ns], body.state)):
        if t != s.type:
            raise OpTypeError(f"the state {s.name} is {s.type}, its init is {t}", arg=1 + i)
    for t, f in zip(ts[1 + ns :], body.free):
        if t != f.type:
            raise OpTypeError(f"the body reads {f.name} as {f.type}, it is {t}")
    return body.state[k].type


def _repeat_ref(*args, **kw):
    raise AssertionError("the numpy reference runs loops itself (backends/numpy_ref.py)")


_row(
    "repeat",
    "loop",
    -1,
    repeat_rule,
    _repeat_ref,
    "the carried state after n steps of the body (fixed iteration: Sinkhorn, power iteration)",
    attrs=("body", "out", "checkpoint"),
)


def scan_rule(ts, attrs):
    """scan: args (*init, *seqs, *free); the state `out` after every step along `over`, stacked
    (over first). Each sequence has `over`; the body's xs are their slices."""
    body, k, (over,) = attrs["body"], attrs["out"], attrs["over"]
    ns, nx = len(body.state), len(body.xs)
    if len(ts) != ns + nx + len(body.free):
        raise OpTypeError(
            f"scan() takes {ns} init, {nx} sequences and {len(body.free)} free values"
        )
    for i, (t, s) in enumerate(zip(ts[:ns], body.state)):
        if t != s.type:
            raise OpTypeError(f"the state {s.name} is {s.type}, its init is {t}", arg=i)
    for i, (t, x) in enumerate(zip(ts[ns : ns + nx], body.xs)):
        if over not in t.dims or tuple(d for d in t.dims if d != over) != x.type.dims:
            raise OpTypeError(
                f"scan() walks {over}: a sequence {t} has no slice {x.type}", arg=ns + i
            )
    for t, f in zip(ts[ns + nx :], body.free):
        if t != f.type:
            raise OpTypeError(f"the body reads {f.name} as {f.type}, it is {t}")
    s = body.state[k].type
    return TensorType(s.dtype, (over, *s.dims), s.of)


_row(
    "scan",
    "loop",
    -1,
    scan_rule,
    _repeat_ref,
    "the carried state after each step along a dim, stacked (a recurrence: CTC's forward "
    "variables, discounted returns)",
    attrs=("body", "out", "over", "reverse"),
)


def call_fn_rule(ts, attrs):
    """call_fn: a function input on its arguments (checked against its signature when the call
    was lowered: lossdsl/lower/derivs.py); the declared result."""
    return attrs["result"]


def _call_fn_ref(*args, **kw):
    raise AssertionError("the numpy reference calls function inputs itself (numpy_ref.py)")


_row(
    "call_fn",
    "call_fn",
    -1,
    call_fn_rule,
    _call_fn_ref,
    "a function input (a critic, a model head) called on tensors: its declared result",
    attrs=("fn", "result"),
)


def _fd_grad(fn, x):
    """d fn(x) / dx, the meaning of grad() in float64 (numpy has no autograd): Ridders'
    extrapolation of central differences per entry (Numerical Recipes' dfridr: steps down by
    1.4 from h0 max(1, |x|), a Neville tableau, stopping when the error estimate grows), from
    h0 = 0.1, 0.01 and 0.001, the estimate with the least error kept: about 1e-13 relative for a
    smooth fn whatever its scale of curvature. The numpy target inlines this source: numpy
    only."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros(x.shape)
    flat, gf = x.reshape(-1), g.reshape(-1)

    def central(i, h):
        y = flat.copy()
        y[i] += h
        up = float(fn(y.reshape(x.shape)))
        y[i] = flat[i] - h
        return (up - float(fn(y.reshape(x.shape)))) / (2 * h)

    def ridders(i, h):
        a = [[central(i, h)]]
        best, err = a[0][0], np.inf
        for k in np.arange(1, 10):
            h /= 1.4
            row = [central(i, h)]
            fac = 1.96
            for j in np.arange(1, k + 1):
                row.append((row[j - 1] * fac - a[k - 1][j - 1]) / (fac - 1))
                fac *= 1.96
                e = max(abs(row[j] - row[j - 1]), abs(row[j] - a[k - 1][j - 1]))
                if e <= err:
                    best, err = row[j], e
            a.append(row)
            if abs(row[k] - a[k - 1][k - 1]) >= 2 * err:
                break
        return err, best

    for i in np.arange(flat.size):
        scale = max(1.0, abs(float(flat[i])))
        # three starting steps (the curvature's scale is unknown): the smallest error estimate
        gf[i] = min(ridders(i, h0 * scale) for h0 in (0.1, 0.01, 0.001))[1]
    return g


def grad_rule(ts, attrs):
    """grad: args (x, *free); d body / d x, of x's type (the body: a float scalar of its one
    state, x, and its free values; checked by the verifier: lossdsl/ir.py)."""
    body = attrs["body"]
    if len(ts) != 1 + len(body.free) or ts[0] != body.state[0].type:
        raise OpTypeError(f"grad() takes x ({body.state[0].type}) and {len(body.free)} free values")
    for t, f in zip(ts[1:], body.free):
        if t != f.type:
            raise OpTypeError(f"the body reads {f.name} as {f.type}, it is {t}")
    return ts[0]


_row(
    "grad",
    "grad",
    -1,
    grad_rule,
    _fd_grad,
    "the gradient of a float scalar (the body) with respect to x, of x's type: autograd.grad"
    " with create_graph=True, jax.grad (differentiable again: double backward)",
    attrs=("body",),
)


FOLDABLE_KINDS = ("elementwise", "reduce")  # a reduce folds on a scalar literal (over no dims)


def fold_value(op: str, values: list, attrs, dtype: str, overflow: str = "raise"):
    """The value of `op` on constant Python scalars, by its numpy meaning, as a Python scalar of
    `dtype`. Integer results are exact (Python ints, never wrapped at 64 bits); an int outside
    int64 raises FoldError, and so does a float64 overflow unless `overflow="ieee"` (then it
    is the inf every backend computes at run time)."""
    o = OPS[op]
    kw = ref_attrs(o, attrs)
    if o.kind == "reduce":
        kw["axis"] = ()
    ints = [isinstance(v, int) and not isinstance(v, bool) for v in values]
    v = None
    if dtype == "int" and op in _EXACT_INT:
        args = [np.asarray(x, dtype=object) if i else np.asarray(x) for x, i in zip(values, ints)]
        v = np.asarray(o.ref(*args, **kw)).item()
    if v is None:
        overflow = "ignore" if overflow == "ieee" else overflow
        with np.errstate(over=overflow, divide="ignore", invalid="ignore", under="ignore"):
            try:
                v = np.asarray(o.ref(*(np.asarray(x) for x in values), **kw)).item()
            except FloatingPointError:
                raise FoldError(
                    f"{op} of {', '.join(map(short_number, values))} overflows float64",
                    "use smaller constants (the largest float is about 1.8e308)",
                ) from None
        if dtype == "int" and isinstance(v, float):
            if not math.isfinite(v):
                raise FoldError(f"{op} of {', '.join(map(short_number, values))} is {v}")
            v = int(v)
    v = {"float": float, "int": int, "bool": bool}[dtype](v)
    check_representable(v)
    return v


# ---- library calls: a loss and its reduction as one framework function ---------------------
# Made by the `library` pass (lossdsl/passes/library.py) for the programs torch's source is
# emitted from; the args are in the layout the rule checked (classes on axis 1).


def library_rule(ts, attrs):
    """A scalar for reduce=sum/mean; the per-row loss (x's dims less axis 1) for none."""
    if attrs["reduce"] != "none":
        return TensorType("float", ())
    x = ts[0]
    return TensorType("float", x.dims[:1] + x.dims[2:])


def _reduce_as(r, reduce, count=None):
    if reduce == "none":
        return r
    if reduce == "sum":
        return np.sum(r)
    return np.mean(r) if count is None else _safe_div(np.sum(r), np.sum(count))


def _cross_entropy_ignore(x, target, ignore_index, reduce):
    valid = target != ignore_index
    r = np.where(valid, _cross_entropy(x, np.where(valid, target, 0), 1), 0.0)
    return _reduce_as(r, reduce, valid)


L = "library"
_row(
    "cross_entropy_ignore",
    L,
    3,
    library_rule,
    _cross_entropy_ignore,
    "F.cross_entropy(x, target, ignore_index=k, reduction): -log_softmax(x)[target] on axis 1, "
    "0 where target == k; its mean divides by the rows kept (0 when none is)",
    attrs=("reduce",),
)

# ---- collectives: a loss sharded over its batch dim (lossdsl/shard.py) ----------------------
# Each `ref` also takes `comm`: this rank (`comm.rank`), the world size (`comm.world`) and
# `comm.gather(x)`, every rank's x in rank order. backends/numpy_ref.py simulates the ranks in
# threads; the torch and jax templates call torch.distributed and jax.lax collectives.


def regather_rule(ts, attrs):
    """all_gather and shard_slice: the same tensor with dim `dim` replaced by `to`."""
    (x,) = ts
    d, to = attrs["dim"], attrs["to"]
    if d not in x.dims or to in x.dims or not d.twin_of(to):
        raise OpDimError(f"cannot move {x} from {d} to {to}")
    return TensorType(x.dtype, tuple(to if k == d else k for k in x.dims), x.of)


def _all_gather(x, axis, comm):
    return np.concatenate(comm.gather(x), axis=axis)


def _shard_slice(x, axis, n, comm):
    return np.take(x, np.arange(comm.rank * n, (comm.rank + 1) * n), axis=axis)


_ACROSS_RANKS = {
    "sum": np.sum,
    "max": np.max,
    "min": np.min,
    "logsumexp": lambda x, axis: _logsumexp(x, (axis,)),
}


def _all_reduce(x, kind, comm):
    return np.asarray(_ACROSS_RANKS[kind](np.stack(comm.gather(x)), axis=0))


def _shard_eye(n_local, n_global, local_first, comm):
    rows = comm.rank * n_local + np.arange(n_local)
    m = rows[:, None] == np.arange(n_global)[None, :]
    return m if local_first else m.T


C = "collective"
_row(
    "all_gather",
    C,
    1,
    regather_rule,
    _all_gather,
    "every rank's rows of x along local dim `dim`, concatenated in rank order as global `to`",
    attrs=("dim", "to"),
)
_row(
    "shard_slice",
    C,
    1,
    regather_rule,
    _shard_slice,
    "this rank's rows of a global dim `dim` (every rank holds all of it), as local `to`",
    attrs=("dim", "to"),
)
_row(
    "all_reduce",
    C,
    1,
    same,
    _all_reduce,
    "combine every rank's partial reduction: `kind` is sum, max, min or logsumexp",
    attrs=("kind",),
)
_row(
    "shard_eye",
    C,
    0,
    eye_rule,
    _shard_eye,
    "eye over (local B, global B'): true where this rank's row b is global row b'",
    False,
    ("dims", "local"),
)
_row(
    "shard_result",
    C,
    1,
    same,
    lambda x, comm: x,
    "a result every rank holds whole: its value, with the gradient scaled so that the ranks' "
    "backward passes add up to the full-batch gradient once",
)
