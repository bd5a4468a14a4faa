"""JAX backend: op templates over lossdsl's op table (lossdsl/codegen/ is the emitter).

The generated function is pure: it works under jax.jit, jax.grad and jax.vmap. Shapes are
static under jit, so the input checks run once at trace time.
"""

from lossdsl.codegen import (
    INFIX_TEMPLATES,
    NOT_AN_ARRAY,
    WINDOW_PADS,
    ShardTarget,
    Target,
    floored,
    shard_eye,
    take_along_axis_gather,
)
from lossdsl.ops import ctc_helper, log_ive_helper

EIGVALSH = '''
def _eigvalsh(m):
    """Eigenvalues of symmetric matrices; all NaN for a matrix with a non-finite entry (jax
    gives a mix of NaN and numbers there)."""
    ok = jnp.isfinite(m).all((-2, -1))
    w = jnp.linalg.eigvalsh(jnp.where(ok[..., None, None], m, 0.0))
    return jnp.where(ok[..., None], w, jnp.nan)
'''

CTC = ctc_helper('''
def _ctc(lp, targets, il, tl, blank, log_eps, check):
    """ctc_nll: _ctc_core with lax.scan over the frames. The blank and the targets are checked
    where they are numbers; under jax.jit (tracers) they are not."""
    targets = _ctc_padding(targets, tl, blank, jnp, jnp.arange)
    traced = (blank, targets) + ((targets.min(),) if targets.size else ())  # staged: a tracer
    if not any(isinstance(a, jax.core.Tracer) for a in traced):
        bad = _ctc_bad(lp, targets, tl, blank, check)
        if bad:
            raise (LossParamError if bad[0] == "param" else LossInputError)(bad[1])

    def scan(step, init, lpe):
        def body(a, x):
            return step(a, x[0], x[1]), None

        return jax.lax.scan(body, init, (lpe, jnp.arange(lpe.shape[0])))[0]

    return _ctc_core(lp, targets, il, tl, blank, log_eps, jnp, scan, jnp.arange)
''')

WINDOW = (
    WINDOW_PADS
    + '''

def _window(x, axes, last, kind, size, stride, padding, sigma, kernel):
    """A sliding window over `axes` (the op table's _window): those axes moved last, the others
    folded into a batch of single-channel images (not groups: XLA's grouped convolution on CPU
    mixes them, a NaN in one channel made every channel NaN), padded by the rule of the op
    table (the odd one before), then separable 1-d convolutions (blur, box), a reduce_window
    (avg, max) or a conv. blur's sigma may be an array: one blur per entry (jax.vmap over
    them), its dims first."""
    if kind == "blur" and jnp.ndim(sigma) > 0:
        flat = jnp.reshape(sigma, (-1,))
        if flat.shape[0] == 0:  # vmap over no entries: one blur's shape, none of them
            y = _window(x, axes, last, kind, size, stride, padding, 1.0, kernel)[None][:0]
        else:
            y = jax.vmap(
                lambda s: _window(x, axes, last, kind, size, stride, padding, s, kernel)
            )(flat)
        return jnp.reshape(y, jnp.shape(sigma) + y.shape[1:])
    nd = len(axes)
    ids = tuple(k + nd for k in last)
    y = jnp.moveaxis(x, axes, last)
    lead = tuple(y.shape[: y.ndim - nd])
    c = 1
    for k in lead:
        c = c * k
    y = y.reshape((c, 1) + tuple(y.shape[y.ndim - nd :]))
    if kernel is not None:
        size = tuple(kernel.shape)
    pads = _window_pads(tuple(y.shape[2:]), size, stride, padding)
    if padding == "reflect":
        y = jnp.pad(y, ((0, 0), (0, 0)) + pads, mode="reflect")
        pads = tuple((0, 0) for i in ids)
    if kind in ("max", "avg"):
        count = 1
        for i in ids:
            count = count * size[i]
        dims, steps, sides = (1, 1) + size, (1, 1) + stride, ((0, 0), (0, 0)) + pads
        if kind == "max":
            y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, dims, steps, sides)
        else:
            y = jax.lax.reduce_window(y, 0.0, jax.lax.add, dims, steps, sides) / count
    elif kind == "conv":
        y = jax.lax.conv_general_dilated(y, kernel.reshape((1, 1) + size), stride, pads)
    else:
        for i in ids:
            u = jnp.arange(size[i], dtype=y.dtype) - size[i] // 2
            g = jnp.exp(-(u**2) / (2.0 * sigma**2)) if kind == "blur" else jnp.ones_like(u)
            shape = tuple(size[i] if j == i else 1 for j in ids)
            w = (g / g.sum()).reshape((1, 1) + shape)
            step = tuple(stride[i] if j == i else 1 for j in ids)
            side = tuple(pads[j] if j == i else (0, 0) for j in ids)
            y = jax.lax.conv_general_dilated(y, w, step, side)
    return jnp.moveaxis(y.reshape(lead + tuple(y.shape[2:])), last, axes)
'''
)
FRAMES = '''
def _frames(x, axes, size, stride, padding, center):
    """x's axis axes[0] cut into frames (the op table's _frames): padded (center: size//2 on
    each side, as torch.stft; else a window's padding), then one gather of the frames'
    positions (frame f, entry j: f * hop + j), which puts the frame count and the frame's
    entries where the axis was."""
    a, k, s = axes[0], size[0], stride[0]
    n = x.shape[a]
    t = max((-(-n // s) - 1) * s + k - n, 0) if padding != "valid" else 0
    pads = (k // 2, k // 2) if center else (t - t // 2, t // 2)
    width = ((0, 0),) * a + (pads,) + ((0, 0),) * (x.ndim - a - 1)
    y = jnp.pad(x, width, mode="reflect" if padding == "reflect" else "constant")
    count = (n + pads[0] + pads[1] - k) // s + 1
    at = jnp.arange(count)[:, None] * s + jnp.arange(k)[None, :]
    return jnp.take(y, at, axis=a)
'''

FFT = '''
def _rfft_mag(x, axis, eps):
    """|rFFT(x)| along axis (the op table's _rfft_mag): sqrt(max(re^2 + im^2, eps))."""
    if x.shape[axis] == 0:  # NaN in the one bin: an untaken branch's (lossdsl/empty.py)
        return jnp.sum(x, axis=axis, keepdims=True) + jnp.nan
    y = jnp.fft.rfft(x, axis=axis)
    return jnp.sqrt(jnp.maximum(y.real**2 + y.imag**2, eps))
'''
STFT = '''
def _stft_mag(x, axes, size, stride, win, eps):
    """The magnitude STFT along axes[0] (the op table's _stft_mag, torch.stft's conventions:
    jax.scipy.signal.stft scales and pads otherwise): x mirrored by n_fft//2 on each side, one
    gather of the frames (frame f, entry j: f * hop + j), a periodic Hann window of win entries
    zero-padded to n_fft, centred, jnp.fft.rfft, sqrt(max(re^2 + im^2, eps))."""
    a, k, s = axes[0], size[0], stride[0]
    n = x.shape[a]
    y = jnp.moveaxis(x, a, -1)
    y = jnp.pad(y, ((0, 0),) * (y.ndim - 1) + ((k // 2, k // 2),), mode="reflect")
    at = jnp.arange((n + 2 * (k // 2) - k) // s + 1)[:, None] * s + jnp.arange(k)[None, :]
    lo = (k - win) // 2
    hann = 0.5 - 0.5 * jnp.cos(2 * jnp.pi * jnp.arange(win, dtype=x.dtype) / win)
    if win == 1:  # torch.hann_window(1) is [1], not the formula's [0]
        hann = jnp.ones(1, dtype=x.dtype)
    z = jnp.fft.rfft(y[..., at] * jnp.pad(hann, (lo, k - win - lo)), axis=-1)
    m = jnp.sqrt(jnp.maximum(z.real**2 + z.imag**2, eps))
    return jnp.moveaxis(m, (-2, -1), (a, a + 1))
'''

WINDOW_CALL = "_window({0}, {wax}, {last}, {kind}, {size}, {stride}, {padding}, {sigma}, {kern})"


SHIFT = '''
def _shift(x, k, dim, fill):
    """x moved k entries along dim (later for k > 0), the |k| entries it leaves filled."""
    n = x.shape[dim]
    m = min(abs(k), n)
    edge = jnp.full_like(jax.lax.slice_in_dim(x, 0, m, axis=dim), fill)
    if k >= 0:
        return jnp.concatenate((edge, jax.lax.slice_in_dim(x, 0, n - m, axis=dim)), dim)
    return jnp.concatenate((jax.lax.slice_in_dim(x, m, n, axis=dim), edge), dim)
'''


CUSTOM_GRAD = '''
@jax.custom_vjp
def _custom_grad(y, x, g):
    """custom_grad(y, x, g): y's value; x's gradient is g times the output's, summed over the
    dims x was broadcast along; none for y or g."""
    return jnp.broadcast_to(y, jnp.broadcast_shapes(jnp.shape(y), jnp.shape(x), jnp.shape(g)))


def _custom_grad_fwd(y, x, g):
    return _custom_grad(y, x, g), (y, x, g)


def _custom_grad_bwd(res, ct):
    y, x, g = res
    d = ct * g
    d = d.sum(axis=tuple(range(d.ndim - jnp.ndim(x))))
    wide = tuple(i for i in range(d.ndim) if jnp.shape(x)[i] == 1 and d.shape[i] != 1)
    d = d.sum(axis=wide, keepdims=True).astype(jnp.result_type(x))
    return jnp.zeros_like(y), d, jnp.zeros_like(g)


_custom_grad.defvjp(_custom_grad_fwd, _custom_grad_bwd)
'''


LOG_IVE = log_ive_helper('''
def _log_ive(v, x):
    """log(ive(v, x)): _log_ive_core on jax.numpy (a Python loop of 15 steps: unrolled under
    jax.jit, where XLA fuses it). float16 and bfloat16 compute in float32 (Debye's coefficients
    reach 1e12)."""
    dt = jnp.result_type(v, x)
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.result_type(float)
    work = jnp.float32 if dt in (jnp.float16, jnp.bfloat16) else dt
    v, x = jnp.asarray(v, dtype=work), jnp.asarray(x, dtype=work)
    return _log_ive_core(v, x, jnp, jax.scipy.special.gammaln).astype(dt)
''')


ABS = '''
@jax.custom_jvp
def _abs(x):
    """|x| with torch.abs's derivative sign(x): 0 at 0 (jnp.abs's is 1 there), NaN at NaN."""
    return jnp.abs(x)


_abs.defjvp(lambda p, t: (jnp.abs(p[0]), jnp.sign(p[0]) * t[0]))
'''


CUMMAX = '''
def _cummax(x, axis, reverse):
    """jax.lax.cummax with torch.cummax's gradient: each entry's to the latest entry (in scan
    order) that holds the running max, where jax's goes to the earliest of tied ones."""
    return _cummax_jvp(x, axis, reverse)


def _cummax_value(x, axis, reverse):
    return jax.lax.cummax(x, axis=axis, reverse=reverse)


_cummax_jvp = jax.custom_jvp(_cummax_value, nondiff_argnums=(1, 2))


@_cummax_jvp.defjvp
def _cummax_tangent(axis, reverse, primals, tangents):
    (x,), (t,) = primals, tangents
    m = jax.lax.cummax(x, axis=axis, reverse=reverse)
    n = x.shape[axis]
    at = jax.lax.broadcasted_iota(jnp.int32, x.shape, axis)
    step = n - 1 - at if reverse else at  # the position in scan order
    hit = (x == m) | (jnp.isnan(x) & jnp.isnan(m))
    src = jax.lax.cummax(jnp.where(hit, step, 0), axis=axis, reverse=reverse)
    src = n - 1 - src if reverse else src
    return m, jnp.take_along_axis(t, src, axis=axis)
'''


QUANTILE = '''
def _quantile(x, q, axis):
    """numpy's linear quantile along axis (the op table's meaning): the sorted entries at
    q (n - 1), numpy's lerp of the two neighbours (a whole position takes its entry alone);
    NaN where the slice holds a NaN or q is outside [0, 1]."""
    n = x.shape[axis]
    if n == 0:  # NaN (no entry), shaped as the result: a discarded branch at an empty dim
        return jnp.sum(x, axis=axis) + (jnp.asarray(q, dtype=x.dtype) * 0.0 + jnp.nan)
    s = jnp.sort(x, axis=axis)
    q = jnp.asarray(q, dtype=x.dtype)
    pos = jnp.clip(jnp.where(q == q, q, 0.0), 0.0, 1.0) * (n - 1)
    lo = jnp.floor(pos)
    t = pos - lo
    i = lo.astype(jnp.int32)
    a = jnp.take(s, i, axis=axis)
    b = jnp.take(s, jnp.minimum(i + 1, n - 1), axis=axis)
    d = b - a
    v = jnp.where(t == 0, a, jnp.where(t >= 0.5, b - d * (1 - t), a + d * t))
    bad = jnp.isnan(x).any(axis) | ~((q >= 0) & (q <= 1))
    return jnp.where(bad, jnp.nan, v)
'''


def _scan(fn: str):
    def t(c):
        return f"jax.lax.{fn}({c[0]}, axis={c.attrs['axis']}, reverse={c.attrs['reverse']})"

    return t


def _positions(x, a, descending=False):
    """The position of each entry in the stable sort along a: the argsort of the argsort."""
    d = ", descending=True" if descending else ""
    return f"jnp.argsort(jnp.argsort({x}, axis={a}{d}, stable=True), axis={a}, stable=True)"


def _eigvalsh(c):
    r = f"_eigvalsh({c.attrs['mat']})"
    p = c.attrs["unperm"]
    return r if p is None else f"jnp.transpose({r}, {p})"


def _minmax(fn: str, sign: str):
    """jnp.max / jnp.min, which raise on an empty reduced dim: there the identity instead
    (-inf / +inf; the int range's end for ints), as the op table's meaning says. Shapes are
    static under jit, so the branch is a Python one; the identity is the empty sum plus a
    constant (its shape and dtype, a zero gradient)."""

    def t(c):
        x, axes = c[0], c.attrs["axes"]
        ks = axes if isinstance(axes, tuple) else (axes,)
        cond = " and ".join(f"{x}.shape[{k}]" for k in ks)
        zero = f"jnp.sum({x}, axis={axes})"
        if c.eqn.args[0].type.dtype == "float":
            ident = f"{sign}jnp.inf"
        else:
            zero = f"{zero}.astype({x}.dtype)"  # jnp.sum may widen ints
            ident = f"jnp.iinfo({x}.dtype).{'max' if sign == '' else 'min'}"
        return f"(jnp.{fn}({x}, axis={axes}) if {cond} else {zero} + {ident})"

    return t


def _pow(c):
    """x ** y, IEEE's pow (jnp.power) but NaN at (-inf) ** 0.5 and (-inf) ** -0.5, as
    sqrt(-inf) (torch's and numpy's number exponent 0.5 runs sqrt). With a param exponent, x^0
    also gets torch's gradient 0 at x = 0 (jax's y x^(y-1) is 0 * inf = NaN there: dual_focal
    at p_t = 1 with gamma = 0)."""
    x, y = c.eqn.args
    if type(y).__name__ == "Lit":
        if y.value == 0.5:
            return f"jnp.sqrt({c[0]})"
        if y.value == -0.5:
            return f"jnp.where(jnp.isneginf({c[0]}), jnp.nan, {c[0]} ** {c[1]})"
        return f"{c[0]} ** {c[1]}"
    p = f"{c[0]} ** {c[1]}"
    if x.type.dims:
        p = f"jnp.where({c[1]} == 0, 1.0, jnp.where({c[1]} == 0, 1.0, {c[0]}) ** {c[1]})"
    return f"jnp.where(jnp.isneginf({c[0]}) & (jnp.abs({c[1]}) == 0.5), jnp.nan, {p})"


def _cross_entropy(c):
    """logsumexp(x - m) - (x[t] - m), m = max(x) held constant: optax's logsumexp(x) - x[t]
    (whose gradient XLA runs 2x faster than that of a gathered log_softmax), without its
    rounding of logsumexp(x) to m at large logits (|x| ~ 1e4 in float32 lost 1e-3)."""
    x, k, i = c[0], c.attrs["k"], c.attrs["i"]
    m = f"jax.lax.stop_gradient(jnp.max({x}, axis={k}, keepdims=True))"
    picked = f"jnp.take_along_axis({x} - {m}, jnp.expand_dims({i}, {k}), axis={k})"
    return f"jax.nn.logsumexp({x} - {m}, axis={k}) - {picked}.squeeze({k})"


# ---- sharded programs (lossdsl/shard.py): called inside shard_map over `axis_name`;
# jax differentiates psum and all_gather itself, so a whole result needs no gradient scaling

_ACROSS = {"max": "jnp.max", "min": "jnp.min", "logsumexp": "jax.nn.logsumexp"}


def _all_reduce(c):
    if c.attrs["kind"] == "sum":
        return f"jax.lax.psum({c[0]}, axis_name)"
    return f"{_ACROSS[c.attrs['kind']]}(jax.lax.all_gather({c[0]}, axis_name), axis=0)"


SHARD = ShardTarget(
    kwargs=('axis_name="batch"',),
    # psum of a Python 1: the axis size as a Python int (jax.lax.axis_size is newer)
    prelude=("world = jax.lax.psum(1, axis_name)", "rank = jax.lax.axis_index(axis_name)"),
)


def _clamp_or(fn: str):
    """maximum/minimum with a literal bound: a select, as torch.clamp is, so its gradient is a
    select too (jnp.maximum's multiplies by a mask: an infinite gradient behind a clamped
    entry, sqrt(max(w, 0)) at w < 0, became 0 * inf = NaN). x where x is not past the bound:
    NaN stays NaN; a tie keeps x's gradient, as torch.clamp's."""
    past = "<" if fn == "maximum" else ">"

    def bound(x) -> bool:  # a literal bound, not NaN (a NaN bound makes every entry NaN)
        return type(x).__name__ == "Lit" and x.value == x.value

    def t(c):
        a, b = c.eqn.args
        if bound(b):
            return f"jnp.where({c[0]} {past} {c[1]}, {c[1]}, {c[0]})"
        if bound(a):
            return f"jnp.where({c[1]} {past} {c[0]}, {c[0]}, {c[1]})"
        return f"jnp.{fn}({c[0]}, {c[1]})"

    return t


def _sign(c):
    """jnp.sign(-0.0) is -0.0, np.sign's and torch.sign's +0.0: adding 0.0 makes it +0.0."""
    x = c[0]
    return f"jnp.sign({x}) + 0.0" if c.eqn.args[0].type.dtype == "float" else f"jnp.sign({x})"


TEMPLATES = {
    **INFIX_TEMPLATES,
    "pow": _pow,
    "exp": "jnp.exp({0})",
    "log": "jnp.log({0})",
    "log1p": "jnp.log1p({0})",
    "expm1": "jnp.expm1({0})",
    "sqrt": "jnp.sqrt({0})",
    "abs": "_abs({0})",
    "sigmoid": "jax.nn.sigmoid({0})",
    "softplus": "jax.nn.softplus({0})",
    "relu": "jax.nn.relu({0})",
    "erf": "jax.scipy.special.erf({0})",
    "tanh": "jnp.tanh({0})",
    "sin": "jnp.sin({0})",
    "cos": "jnp.cos({0})",
    "atan": "jnp.arctan({0})",
    "asin": "jnp.arcsin({0})",
    "acos": "jnp.arccos({0})",
    "log2": "jnp.log2({0})",
    "log10": "jnp.log10({0})",
    "atan2": "jnp.arctan2({0}, {1})",
    "sinh": "jnp.sinh({0})",
    "cosh": "jnp.cosh({0})",
    "asinh": "jnp.arcsinh({0})",
    "acosh": "jnp.arccosh({0})",
    "atanh": "jnp.arctanh({0})",
    "lgamma": "jax.scipy.special.gammaln({0})",
    # jax 0.10's digamma is NaN at +-0, where torch.digamma and scipy's psi are -inf at +0 and
    # +inf at -0 (the limits from the right and from the left)
    "log_ive": "_log_ive({0}, {1})",
    "digamma": ("jnp.where({0} == 0, -jnp.copysign(jnp.inf, {0}), jax.scipy.special.digamma({0}))"),
    "floor": "jnp.floor({0})",
    "ceil": "jnp.ceil({0})",
    "round": "jnp.round({0})",
    "sign": _sign,
    "logaddexp": "jnp.logaddexp({0}, {1})",
    "not": "jnp.logical_not({0})",
    "stop_grad": "jax.lax.stop_gradient({0})",
    "to_float": "jnp.asarray({0}).astype(fdt)",
    "maximum": _clamp_or("maximum"),
    "minimum": _clamp_or("minimum"),
    "xlogy": "jax.scipy.special.xlogy({0}, {1})",
    "floordiv": floored("jnp.floor_divide({0}, {1})", "jnp.where"),
    "mod": floored("jnp.remainder({0}, {1})", "jnp.where"),
    "and": "jnp.logical_and({0}, {1})",
    "or": "jnp.logical_or({0}, {1})",
    "safe_div": "jnp.where({1} == 0, {empty}, {0} / jnp.where({1} == 0, 1, {1}))",
    "where": "jnp.where({0}, {1}, {2})",
    "custom_grad": "_custom_grad({0}, {1}, {2})",
    "sum": "jnp.sum({0}, axis={axes})",
    "mean": "jnp.mean({0}, axis={axes})",
    "max": _minmax("max", "-"),
    "min": _minmax("min", ""),
    "logsumexp": "jax.nn.logsumexp({0}, axis={axes})",
    "var": "jnp.var({0}, axis={axes}, ddof={ddof})",
    "take": "jnp.take({0}, {index}, axis={axis})",
    # 0s over an empty dim (which raises): only an untaken branch gets there (lossdsl/empty.py)
    "argmax": "(jnp.argmax({0}, axis={axis}) if {0}.shape[{axis}]"
    " else jnp.sum({0}, axis={axis}).astype(int))",
    "cumsum": _scan("cumsum"),
    "cumprod": _scan("cumprod"),
    "cummax": lambda c: f"_cummax({c[0]}, {c.attrs['axis']}, {c.attrs['reverse']})",
    "logcumsumexp": _scan("cumlogsumexp"),
    "sort": "jnp.sort({0}, axis={axis}, descending={descending}, stable=True)",
    "argsort": "jnp.argsort({0}, axis={axis}, descending={descending}, stable=True)",
    "take_along": "jnp.take_along_axis({x}, {idx}, axis={axis})",
    "rank": lambda c: _positions(c[0], c.attrs["axis"]),
    "topk": lambda c: f"({_positions(c[0], c.attrs['axis'], True)} < {c[1]})",
    "quantile": "_quantile({0}, {1}, {axis})",
    "eigvalsh": _eigvalsh,
    "ctc_nll": "_ctc({lp}, {tg}, {2}, {3}, {4}, {5}, check_indices)",
    "softmax": "jax.nn.softmax({0}, axis={axis})",
    "log_softmax": "jax.nn.log_softmax({0}, axis={axis})",
    "gather": take_along_axis_gather("jnp"),
    "cross_entropy": _cross_entropy,
    "onehot": "jax.nn.one_hot({0}, {n}, dtype=fdt, axis={k})",
    "eye": "jnp.eye({n}, dtype=bool)",
    "arange": "jnp.arange({n})",
    "fill": "jnp.full({shape}, {value}, dtype={dtype})",
    "contract": 'jnp.einsum("{spec}", {0}, {1})',
    "reshape": "jnp.reshape({0}, {shape})",
    "transpose": "jnp.transpose({0}, {perm})",
    "expand": "jnp.broadcast_to({0}[..., {nones}], {shape})",
    "diff": "jnp.diff({0}, axis={axis})",
    "shift": "_shift({0}, {steps}, {axis}, {value})",
    **{op: WINDOW_CALL for op in ("blur", "box", "conv", "avg_pool", "max_pool")},
    "frames": "_frames({0}, {wax}, {size}, {stride}, {padding}, {center})",
    "stft_mag": "_stft_mag({0}, {wax}, {size}, {stride}, {win}, {eps})",
    "rfft_mag": "_rfft_mag({0}, {axis}, {eps})",
    "all_gather": "jax.lax.all_gather({0}, axis_name, axis={axis}, tiled=True)",
    "all_reduce": _all_reduce,
    "shard_slice": "jax.lax.dynamic_slice_in_dim({0}, rank * {nl}, {nl}, axis={axis})",
    "shard_eye": shard_eye("jnp.arange({n})"),
    "shard_result": "{0}",
}

TARGET = Target(
    name="jax",
    imports=("import jax", "import jax.numpy as jnp"),
    templates=TEMPLATES,
    is_float="jnp.issubdtype({x}.dtype, jnp.floating)",
    is_int="jnp.issubdtype({x}.dtype, jnp.integer)",
    is_bool="{x}.dtype == jnp.bool_",
    int_to_float="{x}.astype(jnp.result_type(float))",
    as_array="jnp.asarray({x})",
    as_tensor="jnp.asarray({x}, dtype={dtype})",
    float_dtype_default="jnp.float32",
    int_dtype="jnp.int32",
    bool_dtype="bool",
    permute="jnp.transpose({x}, {perm})",
    broadcast="jnp.broadcast_to({x}, {shape})",
    select="(({1} if {0} else {2}) if isinstance({0}, bool) else jnp.where({0}, {1}, {2}))",
    param_traced="isinstance({x}, jax.core.Tracer)",  # jax.jit, vmap, grad
    is_half="{x}.dtype in (jnp.float16, jnp.bfloat16)",
    upcast="{x}.astype(jnp.float32)",
    out_cast="{x}.astype(odt)",
    shard=SHARD,
    loop="fori",
    grad="jax.grad({fn})({x})",
    checkpoint="jax.checkpoint({fn})",
    # what jnp.asarray would turn into an array silently (a list) or a weak-typed scalar (a
    # Python number), or fail on; numpy arrays and scalars pass, as everywhere in jax
    not_array=NOT_AN_ARRAY,
    array_kind="a jax or numpy array",
    array_hint="jnp.asarray",
    # under jax.jit the values are tracers: nothing to check at trace time
    # (also when the ids are concrete but an enclosing transformation stages the min)
    index_out_of_range=(
        "not isinstance({i}, jax.core.Tracer) and {i}.size > 0 and "
        "not isinstance({i}.min(), jax.core.Tracer) and "
        "(int({i}.min()) < 0 or int({i}.max()) >= {n})"
    ),
    helpers=(
        ("_abs", ABS),
        ("_cummax", CUMMAX),
        ("_eigvalsh", EIGVALSH),
        ("_quantile", QUANTILE),
        ("_log_ive", LOG_IVE),
        ("_ctc", CTC),
        ("_shift", SHIFT),
        ("_custom_grad", CUSTOM_GRAD),
        ("_window", WINDOW),
        ("_frames", FRAMES),
        ("_stft_mag", STFT),
        ("_rfft_mag", FFT),
    ),
)
