"""PyTorch backend: op templates over lossdsl's op table (lossdsl/codegen/ is the emitter).

Every template writes one line of eager PyTorch; the generated function runs under autograd and
torch.compile. Created tensors (onehot, eye, fill) take the dtype of the first float input and
the device of the inputs.
"""

from lossdsl.codegen import (
    INFIX_TEMPLATES,
    WINDOW_PADS,
    ShardTarget,
    Target,
    floored,
    nan_from_empty,
    scanned,
    shard_eye,
)
from lossdsl.ops import ctc_helper, log_ive_helper


def _gather(c):
    f = c.attrs["form"]
    x, i = c.raw
    if f == "take":
        return nan_from_empty(c, f"{x}[{i}]", i, "torch.full_like", 'float("nan")')
    if f == "axis":
        k, i = c.attrs["k"], c.attrs["i"]
        pick = f"torch.gather({x}, {k}, {i}.long().unsqueeze({k})).squeeze({k})"
        return nan_from_empty(c, pick, i, "torch.full_like", 'float("nan")')
    xb, ib = c.attrs["xb"], c.attrs["ib"]
    pick = f"torch.gather({xb}, -1, {ib}.long().unsqueeze(-1)).squeeze(-1)"
    return nan_from_empty(c, pick, ib, "torch.full_like", 'float("nan")')


def _cross_entropy(c):
    """F.cross_entropy when the classes are axis 1 (its layout); else logsumexp - x[t]."""
    x, k, i = c.raw[0], c.attrs["k"], c.attrs["i"]
    if k == 1:
        return f'torch.nn.functional.cross_entropy({x}, {i}.long(), reduction="none")'
    picked = f"torch.gather({x}, {k}, {i}.long().unsqueeze({k})).squeeze({k})"
    # + 0 * max: NaN on a row with a +inf, a NaN or only -inf logits, as F.cross_entropy and the
    # op table (logsumexp - x[t] alone is inf at a +inf non-target logit)
    return f"(torch.logsumexp({x}, dim={k}) - {picked} + 0.0 * {x}.detach().amax(dim={k}))"


def _cross_entropy_ignore(c):
    """F.cross_entropy with the spec's ignore_index; its mean is 0/0 = NaN on an all-ignored
    batch, where the spec says 0 (the gradient is 0 either way: nll_loss's backward writes no
    ignored row)."""
    x, t, k = c.raw
    reduce = c.attrs["reduce"]
    call = (
        f"torch.nn.functional.cross_entropy({x}, {t}.long(), ignore_index=int({k}), "
        f'reduction="{reduce}")'
    )
    return f"torch.where(({t} != {k}).any(), {call}, 0.0)" if reduce == "mean" else call


def _clamp_or(fn: str, side: str):
    """maximum/minimum: torch.clamp when one side is a literal (no tensor to allocate)."""

    def t(c):
        a, b = c.eqn.args
        if type(b).__name__ == "Lit":
            return f"torch.clamp({c[0]}, {side}={c[1]})"
        if type(a).__name__ == "Lit":
            return f"torch.clamp({c[1]}, {side}={c[0]})"
        return f"torch.{fn}({c[0]}, {c[1]})"

    return t


def _reduce(fn: str, extra: str = ""):
    def t(c):
        if c.attrs["all"] and not extra:
            return f"torch.{fn}({c[0]})"
        return f"torch.{fn}({c[0]}, dim={c.attrs['axes']}{extra.format(**c.attrs)})"

    return t


def _minmax(fn: str, sign: str):
    """torch.amax / amin, which raise on an empty reduced dim: there the identity instead
    (-inf / +inf; the int range's end for ints), as the op table's meaning says. The sizes are
    static, so the branch is a Python one (torch.compile guards on it); the identity is the
    empty sum plus a constant, so it keeps the result's shape, dtype, device and graph."""

    def t(c):
        x, axes = c[0], c.attrs["axes"]
        if c.attrs["all"]:
            red, zero, cond = f"torch.{fn}({x})", f"torch.sum({x})", f"{x}.numel()"
        else:
            red, zero = f"torch.{fn}({x}, dim={axes})", f"torch.sum({x}, dim={axes})"
            ks = axes if isinstance(axes, tuple) else (axes,)
            cond = " and ".join(f"{x}.shape[{k}]" for k in ks)
        if c.eqn.args[0].type.dtype == "float":
            ident = f'{sign}float("inf")'
        else:
            zero = f"{zero}.to({x}.dtype)"  # torch.sum of ints is int64
            ident = f"torch.iinfo({x}.dtype).{'max' if sign == '' else 'min'}"
        return f"({red} if {cond} else {zero} + {ident})"

    return t


def _eigvalsh(c):
    r = f"_eigvalsh({c.attrs['mat']})"
    p = c.attrs["unperm"]
    return r if p is None else f"{r}.permute{p}"


# ---- sharded programs (lossdsl/shard.py): torch.distributed collectives in autograd Functions
# (torch.distributed.nn's all_gather is deprecated since torch 2.6, and its gloo backward gave
# wrong gradients in torch 2.13: benchmarks/README.md, Distributed)

_ACROSS = {
    "sum": "torch.sum",
    "max": "torch.amax",
    "min": "torch.amin",
    "logsumexp": "torch.logsumexp",
}


def _all_reduce(c):
    """Every rank's partial result stacked on a new axis 0, then combined over it."""
    return f"{_ACROSS[c.attrs['kind']]}(_AllGather.apply({c[0]}[None], 0, group), dim=0)"


ALL_GATHER = '''
# torch 2.13 deprecates all_gather_into_tensor for all_gather_single (absent before 2.13)
def _gather_single(out, rows, group):
    if hasattr(torch.distributed, "all_gather_single"):
        return torch.distributed.all_gather_single(out, rows, group=group)
    return torch.distributed.all_gather_into_tensor(out, rows, group=group)


class _AllGather(torch.autograd.Function):
    """Every rank's x, concatenated along `dim` in rank order. Backward: each rank's rows get
    the sum over ranks of their gradients (every rank used them)."""

    @staticmethod
    def forward(ctx, x, dim, group):
        ctx.dim, ctx.group = dim, group
        rows = x.movedim(dim, 0).contiguous()  # rank r's row i lands at r * n + i
        world = torch.distributed.get_world_size(group)
        out = rows.new_empty((world * rows.shape[0], *rows.shape[1:]))
        _gather_single(out, rows, group=group)
        return out.movedim(0, dim)

    @staticmethod
    def backward(ctx, g):
        g = g.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(g, group=ctx.group)
        n = g.shape[ctx.dim] // torch.distributed.get_world_size(ctx.group)
        rank = torch.distributed.get_rank(ctx.group)
        return g.narrow(ctx.dim, rank * n, n), None, None
'''

GRAD_SCALE = '''
class _GradScale(torch.autograd.Function):
    """The identity, with its gradient scaled: a result every rank holds whole is
    backpropagated on every rank, so with grads="sum" each rank takes 1/world of it."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * ctx.scale, None
'''

SIZES_DIFFER = '''
def _sizes_differ(n, group, device):
    """Do the ranks' local batch sizes differ? One all_reduce of (n, -n) with MAX: every rank
    learns the largest and the smallest size, so all of them raise together."""
    t = torch.tensor([n, -n], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX, group=group)
    return int(t[0]) != -int(t[1])
'''

SHARD = ShardTarget(
    kwargs=("group=None", 'grads="mean"', "check_sizes=True"),
    prelude=(
        'if grads not in ("mean", "sum"):',
        "    raise LossParamError(f\"{label}: grads must be 'mean' (DDP and FSDP average the "
        "ranks' gradients) or 'sum' (they are added), got {grads!r}\")",
        "world = torch.distributed.get_world_size(group)",
        "rank = torch.distributed.get_rank(group)",
    ),
    helpers=(
        ("_AllGather", ALL_GATHER),
        ("_GradScale", GRAD_SCALE),
        ("_sizes_differ", SIZES_DIFFER),
    ),
    # skipped inside torch.compile, as the index checks (a host sync, a data-dependent branch)
    sizes_differ=(
        "check_sizes and not torch.compiler.is_compiling() and "
        "_sizes_differ({n}, group, {x}.device)"
    ),
)

NO_AUTOCAST = '''
import contextlib

def _no_autocast(x, on):
    """Autocast off while the loss computes (its inputs are float32 by now), as for torch's
    own losses; nothing to switch where it is off."""
    return torch.autocast(x.device.type, enabled=False) if on else contextlib.nullcontext()
'''


IDS_OUT_OF_RANGE = '''
def _ids_out_of_range(i, n, host=None):
    """Whether class ids i fall outside [0, n): one host sync on the CPU, where it is free. On
    an accelerator a device-side assert instead (no sync, nothing to wait for per step; a bad id
    stops the stream with this message, where the gather would have read out of bounds).
    Skipped where the values do not exist: meta tensors, torch.compile traces (a data-dependent
    branch would break the graph), and functorch transforms (torch.func.vmap), whose value
    reads raise RuntimeError."""
    if i.numel() == 0 or i.is_meta or torch.compiler.is_compiling():
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(i):
        return False
    if not (i.device.type == "cpu" if host is None else host):
        ok = ((i >= 0) & (i < n)).all()
        torch._assert_async(ok, f"lossdsl: class ids outside [0, {n}) (check_indices=False: none)")
        return False
    lo, hi = torch.stack(torch.aminmax(i)).tolist()
    return lo < 0 or hi >= n
'''

EIGVALSH = '''
def _eigvalsh(m):
    """Eigenvalues of symmetric matrices; all NaN for a matrix with a non-finite entry (LAPACK
    raises on it, failing the whole batch)."""
    ok = torch.isfinite(m).all(-1).all(-1)
    w = torch.linalg.eigvalsh(torch.where(ok[..., None, None], m, torch.zeros_like(m)))
    return torch.where(ok[..., None], w, torch.full_like(w, float("nan")))
'''

WINDOW = (
    WINDOW_PADS
    + '''

def _window(x, axes, last, kind, size, stride, padding, sigma, kernel):
    """A sliding window over `axes` (the op table's _window): those axes moved last, the others
    folded into the channels of one image (a depthwise filter: groups = channels, much faster
    on CPU than a batch of single-channel images), padded by the rule of
    the op table (the odd one before), then separable 1-d convolutions (blur, box), a pool
    (avg, max) or a conv. blur's sigma may be a tensor: one blur per entry (its own group of
    channels), its dims first."""
    nd = len(axes)
    ids = tuple(k + nd for k in last)
    y = x.movedim(axes, last)
    lead = tuple(y.shape[: y.ndim - nd])
    c = 1
    for k in lead:
        c = c * k
    # (a pool takes the c images as a batch: F.max_pool2d refuses 0 channels, an empty batch)
    y = y.reshape(((c, 1) if kind in ("max", "avg") else (1, c)) + tuple(y.shape[y.ndim - nd :]))
    sig, m = (), 1
    if kind == "blur":
        sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
        sig, m = tuple(sigma.shape), sigma.numel()
        sigma = sigma.reshape(m, 1)
        if m != 1:  # sigma j's images: channels j c ... (j + 1) c - 1
            y = y.repeat((1, m) + (1,) * nd)
    if kernel is not None:
        size = tuple(kernel.shape)
    sides = _window_pads(tuple(y.shape[2:]), size, stride, padding)
    full = tuple(n + a + b for n, (a, b) in zip(y.shape[2:], sides))
    at = tuple(k + len(sig) for k in axes)  # x's axes in the result, after sigma's dims
    # no images (an empty batch beside the window: conv's groups=0 is refused) or a window
    # longer than its padded axis: an empty result of the right shape (an untaken branch's)
    if c * m == 0 or any(n < k for n, k in zip(full, size)):
        out = tuple(max(-(-(n - k + 1) // s), 0) for n, k, s in zip(full, size, stride))
        return y.reshape(-1)[:0].reshape(sig + lead + out).movedim(last, at)
    pads = ()
    for side in sides:
        pads = side + pads  # F.pad lists the last axis first
    if padding == "reflect":
        y = torch.nn.functional.pad(y, pads, mode="reflect")
    elif max(pads + (0,)) > 0:
        y = torch.nn.functional.pad(y, pads, value=-float("inf") if kind == "max" else 0.0)
    f = torch.nn.functional
    if kind == "max":
        y = (f.max_pool1d, f.max_pool2d, f.max_pool3d)[nd - 1](y, size, stride)
    elif kind == "avg":
        y = (f.avg_pool1d, f.avg_pool2d, f.avg_pool3d)[nd - 1](y, size, stride)
    elif kind == "conv":
        w = kernel.reshape((1, 1) + size).expand((c, 1) + size)
        y = (f.conv1d, f.conv2d, f.conv3d)[nd - 1](y, w, stride=stride, groups=c)
    else:
        for i in ids:
            u = torch.arange(size[i], dtype=y.dtype, device=y.device) - size[i] // 2
            g = torch.ones_like(u)[None]  # box; blur: one row of taps per sigma
            if kind == "blur":
                g = torch.exp(-(u**2) / (2.0 * sigma**2))
            shape = tuple(size[i] if j == i else 1 for j in ids)
            w = (g / g.sum(-1, keepdim=True)).reshape((m, 1, 1) + shape)
            w = w.expand((m, c, 1) + shape).reshape((m * c, 1) + shape)
            step = tuple(stride[i] if j == i else 1 for j in ids)
            y = (f.conv1d, f.conv2d, f.conv3d)[nd - 1](y, w, stride=step, groups=m * c)
    return y.reshape(sig + lead + tuple(y.shape[2:])).movedim(last, at)
'''
)
FRAMES = '''
def _frames(x, axes, size, stride, padding, center):
    """x's axis axes[0] cut into frames (the op table's _frames): padded (center: size//2 on
    each side, as torch.stft; else a window's padding), then Tensor.unfold, whose frame axis
    goes last; it moves to right after the frame count."""
    a, k, s = axes[0], size[0], stride[0]
    n = x.shape[a]
    t = max((-(-n // s) - 1) * s + k - n, 0) if padding != "valid" else 0
    pads = (k // 2, k // 2) if center else (t - t // 2, t // 2)
    y = x.movedim(a, -1)
    if padding == "reflect":  # F.pad reflects the last axis of a 2-d or 3-d tensor
        lead = tuple(y.shape[:-1])
        y = torch.nn.functional.pad(y.reshape((-1, 1, n)), pads, mode="reflect")
        y = y.reshape(lead + (n + pads[0] + pads[1],))
    elif pads[0] + pads[1] > 0:
        y = torch.nn.functional.pad(y, pads)
    return y.unfold(-1, k, s).movedim((-2, -1), (a, a + 1))
'''

GRAD = '''
def _grad(fn, x):
    """d fn(x) / dx for a scalar fn(x), differentiable again (create_graph=True: the gradient
    of a gradient penalty reaches the critic's parameters). x itself where it is part of the
    graph (its own gradient then flows through), else a fresh leaf; zeros where fn(x) does not
    depend on x; autograd enabled even under torch.no_grad (an evaluation pass)."""
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_()
        y = fn(xg)
        if not y.requires_grad:
            return torch.zeros_like(x)
        (g,) = torch.autograd.grad(y, xg, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if g is None else g
'''
FFT = '''
def _rfft_mag(x, axis, eps):
    """|rFFT(x)| along axis (the op table's _rfft_mag): sqrt(clamp(re^2 + im^2, min=eps))."""
    if x.shape[axis] == 0:  # NaN in the one bin: an untaken branch's (lossdsl/empty.py)
        return x.sum(axis, keepdim=True) + float("nan")
    y = torch.fft.rfft(x, dim=axis)
    return torch.sqrt(torch.clamp(y.real**2 + y.imag**2, min=eps))
'''
STFT = '''
def _stft_mag(x, axes, size, stride, win, eps):
    """The magnitude STFT along axes[0] (the op table's _stft_mag): torch.stft at its defaults
    (center=True, pad_mode="reflect") on the axis moved last and the others flattened, a periodic
    Hann window of win entries (torch.stft zero-pads it to n_fft, centred), then auraloss's
    sqrt(clamp(re^2 + im^2, min=eps)); [.., bins, frames] becomes [.., frames, bins] at the axis."""
    a, k, s = axes[0], size[0], stride[0]
    y = x.movedim(a, -1)
    lead = tuple(y.shape[:-1])
    n = y.shape[-1]
    y = y.reshape((-1, n))
    if y.shape[0] == 0:  # no rows (an empty batch): torch.stft (MKL's FFT) takes none
        bins, count = k // 2 + 1, (n + 2 * (k // 2) - k) // s + 1
        m = y.sum() + torch.zeros((0, bins, count), dtype=x.dtype, device=x.device)
    else:
        w = torch.hann_window(win, dtype=x.dtype, device=x.device)
        z = torch.stft(y, k, s, win, w, return_complex=True)
        m = torch.sqrt(torch.clamp(z.real**2 + z.imag**2, min=eps))
    m = m.reshape(lead + tuple(m.shape[-2:])).transpose(-1, -2)
    return m.movedim((-2, -1), (a, a + 1))
'''

WINDOW_CALL = "_window({0}, {wax}, {last}, {kind}, {size}, {stride}, {padding}, {sigma}, {kern})"


TORCH_FLIP = "torch.flip({x}, ({a},))"


def _sort(c):
    return (
        f"torch.sort({c[0]}, dim={c.attrs['axis']}, descending={c.attrs['descending']}, "
        "stable=True).values"
    )


def _positions(x, a, descending=False):
    """The position of each entry in the stable sort along a: the argsort of the argsort."""
    d = ", descending=True" if descending else ""
    return f"torch.argsort(torch.argsort({x}, dim={a}{d}, stable=True), dim={a}, stable=True)"


SHIFT = '''
def _shift(x, k, dim, fill):
    """x moved k entries along dim (later for k > 0), the |k| entries it leaves filled."""
    n = x.shape[dim]
    m = min(abs(k), n)
    edge = torch.full_like(x.narrow(dim, 0, m), fill)
    if k >= 0:
        return torch.cat((edge, x.narrow(dim, 0, n - m)), dim)
    return torch.cat((x.narrow(dim, m, n - m), edge), dim)
'''


CUSTOM_GRAD = '''
class _CustomGrad(torch.autograd.Function):
    """custom_grad(y, x, g): y's value; x's gradient is g times the output's, summed over the
    dims x was broadcast along; none for y or g."""

    # torch.func.vmap runs forward and backward per example (the class-id check's vmap use)
    generate_vmap_rule = True

    @staticmethod
    def forward(y, x, g):
        shape = torch.broadcast_shapes(y.shape, x.shape, torch.as_tensor(g).shape)
        return y.expand(shape).clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, x, g = inputs
        ctx.x_shape, ctx.g = x.shape, None if torch.is_tensor(g) else g
        ctx.save_for_backward(g if torch.is_tensor(g) else None)

    @staticmethod
    def backward(ctx, go):
        g = ctx.g if ctx.g is not None else ctx.saved_tensors[0]
        return None, (go * g).sum_to_size(ctx.x_shape), None
'''


QUANTILE = '''
def _quantile(x, q, dim):
    """numpy's linear quantile along dim (the op table's meaning): the sorted entries at
    q (n - 1), numpy's lerp of the two neighbours (a whole position takes its entry alone);
    NaN where the slice holds a NaN or q is outside [0, 1]."""
    n = x.shape[dim]
    q = torch.as_tensor(q, dtype=x.dtype, device=x.device)
    if n == 0:  # NaN (no entry), shaped as the result: a discarded branch at an empty dim
        return x.sum(dim) + (q * 0.0 + float("nan"))
    s = torch.sort(x, dim=dim).values
    pos = torch.where(q == q, q, 0.0).clamp(0.0, 1.0) * (n - 1)
    lo = pos.floor()
    t = pos - lo
    i = lo.long().reshape(1)
    a = s.index_select(dim, i).squeeze(dim)
    b = s.index_select(dim, (i + 1).clamp(max=n - 1)).squeeze(dim)
    d = b - a
    v = torch.where(t == 0, a, torch.where(t >= 0.5, b - d * (1 - t), a + d * t))
    bad = torch.isnan(x).any(dim) | ~((q >= 0) & (q <= 1))
    return torch.where(bad, torch.full_like(v, float("nan")), v)
'''


def _sign(c):
    """torch.sign(NaN) is 0: NaN stays NaN (np.sign), with the zero gradient there too."""
    x = c[0]
    if c.eqn.args[0].type.dtype != "float":
        return f"torch.sign({x})"
    return f"torch.where({x} == {x}, torch.sign({x}), {x}.detach())"


def _pow(c):
    """x ** y: a literal exponent runs torch's number-exponent pow (-0.5 on +0: torch's rsqrt
    is -inf at -0, IEEE's pow +inf); any other exponent may be a tensor or a number: _pow."""
    if type(c.eqn.args[1]).__name__ == "Lit":
        return f"({c[0]} + 0.0) ** {c[1]}" if c.eqn.args[1].value == -0.5 else f"{c[0]} ** {c[1]}"
    return f"_pow({c[0]}, {c[1]})"


POW = '''
def _pow(x, y):
    """x ** y, IEEE's pow but NaN at (-inf) ** 0.5 and (-inf) ** -0.5, as sqrt(-inf). Torch's
    tensor exponent runs IEEE's pow (+inf and 0 there); its number exponent 0.5 runs sqrt, and
    -0.5 rsqrt, whose -inf at -0 the + 0.0 (making it +0) turns into IEEE's +inf."""
    if isinstance(y, torch.Tensor):
        return torch.where((x == -torch.inf) & (y.abs() == 0.5), torch.nan, x ** y)
    return (x + 0.0) ** y if y == -0.5 else x ** y
'''


LOG_IVE = log_ive_helper('''
def _log_ive(v, x):
    """log(ive(v, x)): _log_ive_core on torch, differentiable in v and x by autograd through it.
    float16 and bfloat16 compute in float32 (Debye's coefficients reach 1e12)."""
    dev = (x if isinstance(x, torch.Tensor) else torch.as_tensor(v)).device
    dt = torch.result_type(v, x)  # torch's promotion: an int64 x beside a float64 v is float64
    dt = dt if dt.is_floating_point else torch.get_default_dtype()
    work = torch.float32 if dt in (torch.float16, torch.bfloat16) else dt
    v = torch.as_tensor(v, dtype=work, device=dev)
    x = torch.as_tensor(x, dtype=work, device=dev)
    return _log_ive_core(v, x, torch, torch.lgamma).to(dt)
''')


CTC = ctc_helper('''
class _CtcKernel(torch.autograd.Function):
    """torch.nn.functional.ctc_loss's kernels (aten._ctc_loss and its backward), with the
    gradient w.r.t. the log-probabilities themselves: torch's backward returns exp(lp) minus
    the posterior, the gradient w.r.t. the logits of a log_softmax (pytorch#52241); the
    gradient of -log p w.r.t. lp is minus the posterior on the frames used, 0 past them."""

    @staticmethod
    def forward(ctx, lp, targets, il, tl, blank, log_eps):
        nll, alpha = torch.ops.aten._ctc_loss.Tensor(lp, targets, il, tl, blank, False)
        ctx.save_for_backward(lp, targets, il, tl, nll, alpha)
        ctx.blank, ctx.log_eps = blank, log_eps
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        lp, targets, il, tl, nll, alpha = ctx.saved_tensors
        # the rows whose gradient this is (the others are the loop's: g is 0 there, and their
        # log-probabilities may be inf, or large enough that exp(lp) * 0 is NaN)
        kept = torch.isfinite(nll) & (g != 0)
        g = torch.where(kept, g, 0)
        gr = torch.ops.aten._ctc_loss_backward.Tensor(
            g, lp, targets, il, tl, nll, alpha, ctx.blank, False
        )
        live = torch.arange(lp.shape[0], device=lp.device)[:, None] < il
        # an emission at or below log_eps is log_eps in the op: no gradient (the kernel's is
        # NaN at -inf)
        used = (live & kept)[..., None] & (lp > ctx.log_eps)
        return torch.where(used, gr - lp.exp() * g[:, None], 0), None, None, None, None, None


def _unbound_scan(step, init, xs):
    a = init
    for t, x in zip(range(xs.shape[0]), xs.unbind(0)):  # one unbind: a select's backward is T^2
        a = step(a, x, t)
    return a


def _ctc(lp, targets, il, tl, blank, log_eps, check):
    """ctc_nll: torch's fused kernel (_CtcKernel) on the rows where it equals the op's meaning
    to float rounding, else _ctc_core's loop. The kernel's backward takes exp(lp): it is exact
    for log-probabilities (lp <= 0) only. It computes log 0 exactly where the op has log_eps:
    they differ by the paths through an impossible state, each at most e^log_eps (the
    emissions are <= 1), 3 ways a frame: below 2^-60 of p when log p - log_eps - T log 3 > 42.
    A row that is not (an impossible alignment: inf from the kernel; a positive log_prob)
    takes the loop's value; deciding costs one host sync."""
    n_t, n_l = lp.shape[0], targets.shape[1]
    il = il.clamp(0, n_t)
    tl = tl.clamp(0, n_l)
    dev = lp.device

    def arange(n):
        return torch.arange(n, device=dev)

    targets = _ctc_padding(targets, tl, blank, torch, arange)
    # values to look at: not under vmap or grad transforms, not meta, not while compiling
    tensors = (lp, targets, il, tl) + ((blank,) if isinstance(blank, torch.Tensor) else ())
    concrete = not (
        torch.compiler.is_compiling()
        or any(torch._C._functorch.is_functorch_wrapped_tensor(a) or a.is_meta for a in tensors)
    )
    bad = _ctc_bad(lp, targets, tl, blank, check) if concrete else None
    if bad:
        raise (LossParamError if bad[0] == "param" else LossInputError)(bad[1])
    fast = concrete and lp.dtype in (torch.float32, torch.float64) and lp.numel() > 0
    if fast:
        b = int(blank)
        nll = _CtcKernel.apply(lp, targets.long(), il.long(), tl.long(), b, log_eps)
        with torch.no_grad():
            probs = lp.detach().amax((0, 2)) <= 0
            ok = probs & (-nll - log_eps - 1.0986122886681098 * n_t > 42)
        if bool(ok.all()):
            return nll
    slow = _ctc_core(lp, targets, il, tl, blank, log_eps, torch, _unbound_scan, arange)
    return torch.where(ok, nll, slow) if fast else slow
''')


LOGCUMSUMEXP = '''
def _logcumsumexp(x, dim):
    """torch.logcumsumexp, but on CPU log(cumsum(exp(x - m))) + m in float64 (m the max along
    dim): CPU's logcumsumexp is a scalar loop (10 ms for [4096, 64], a cumsum 0.3 ms) and its
    backward two more. Exact unless a prefix's sum is 1e-280 of the max's term (645 below it)
    or a row holds +inf or NaN: then torch's own, as on GPU, under torch.compile and under
    functorch transforms (their values cannot be read). The gradient is the frameworks' where
    theirs is finite, and right beside huge entries (torch's own is 0 at x = [1e30, 0], jax's
    and the derivative 1)."""
    if (
        x.device.type != "cpu"
        or torch.compiler.is_compiling()
        or torch._C._functorch.is_functorch_wrapped_tensor(x)
        or x.numel() == 0  # amax has no value over an empty dim
    ):
        return torch.logcumsumexp(x, dim)
    m = torch.amax(x, dim, keepdim=True).detach().double()
    top = m == -torch.inf  # a row of -inf: shifted by 0, its cumsum 0, its log -inf
    c = torch.cumsum(torch.exp(x.double() - torch.where(top, 0.0, m)), dim)
    if bool(((c < 1e-280) & (x > -torch.inf)).any() | (~(m < torch.inf)).any()):
        return torch.logcumsumexp(x, dim)  # an underflow, or a max of +inf or NaN
    m = torch.where(top, 0.0, m)
    return (torch.log(c) + m).to(x.dtype)
'''


TEMPLATES = {
    **INFIX_TEMPLATES,
    "pow": _pow,
    "exp": "torch.exp({0})",
    "log": "torch.log({0})",
    "log1p": "torch.log1p({0})",
    "expm1": "torch.expm1({0})",
    "sqrt": "torch.sqrt({0})",
    "abs": "torch.abs({0})",
    "sigmoid": "torch.sigmoid({0})",
    # threshold 40, not 20: past 20, x + log1p(e^-x) still differs from x in float64
    "softplus": "torch.nn.functional.softplus({0}, threshold=40.0)",
    "relu": "torch.relu({0})",
    "erf": "torch.special.erf({0})",
    "tanh": "torch.tanh({0})",
    "sin": "torch.sin({0})",
    "cos": "torch.cos({0})",
    "atan": "torch.atan({0})",
    "asin": "torch.asin({0})",
    "acos": "torch.acos({0})",
    "log2": "torch.log2({0})",
    "log10": "torch.log10({0})",
    "atan2": "torch.atan2({0}, {1})",
    "sinh": "torch.sinh({0})",
    "cosh": "torch.cosh({0})",
    "asinh": "torch.asinh({0})",
    "acosh": "torch.acosh({0})",
    "atanh": "torch.atanh({0})",
    "lgamma": "torch.lgamma({0})",
    "digamma": "torch.digamma({0})",
    "log_ive": "_log_ive({0}, {1})",
    "floor": "torch.floor({0})",
    "ceil": "torch.ceil({0})",
    "round": "torch.round({0})",
    "sign": _sign,
    "logaddexp": "torch.logaddexp({0}, {1})",
    "not": "torch.logical_not({0})",
    "stop_grad": "{0}.detach()",
    "to_float": "{0}.to(fdt)",
    "maximum": _clamp_or("maximum", "min"),
    "minimum": _clamp_or("minimum", "max"),
    "xlogy": "torch.special.xlogy({0}, {1})",
    "floordiv": floored('torch.div({0}, {1}, rounding_mode="floor")', "torch.where"),
    "mod": floored("torch.remainder({0}, {1})", "torch.where"),
    "cross_entropy_ignore": _cross_entropy_ignore,
    "and": "torch.logical_and({0}, {1})",
    "or": "torch.logical_or({0}, {1})",
    "safe_div": "torch.where({1} == 0, {empty}, {0} / torch.where({1} == 0, 1, {1}))",
    "where": "torch.where({0}, {1}, {2})",
    "custom_grad": "_CustomGrad.apply({0}, {1}, {2})",
    "sum": _reduce("sum"),
    "mean": _reduce("mean"),
    "max": _minmax("amax", "-"),
    "min": _minmax("amin", ""),
    "logsumexp": "torch.logsumexp({0}, dim={axes})",
    "var": _reduce("var", ", correction={ddof}"),
    "take": "torch.select({0}, {axis}, {index})",
    # 0s over an empty dim (which raises): only an untaken branch gets there (lossdsl/empty.py)
    "argmax": "(torch.argmax({0}, dim={axis}) if {0}.shape[{axis}]"
    " else torch.sum({0}, dim={axis}).long())",
    "cumsum": scanned("torch.cumsum({x}, dim={a})", TORCH_FLIP),
    "cumprod": scanned("torch.cumprod({x}, dim={a})", TORCH_FLIP),
    "cummax": scanned("torch.cummax({x}, dim={a}).values", TORCH_FLIP),
    "logcumsumexp": scanned("_logcumsumexp({x}, {a})", TORCH_FLIP),
    "sort": _sort,
    "argsort": "torch.argsort({0}, dim={axis}, descending={descending}, stable=True)",
    # torch.gather, not take_along_dim (3x slower on CPU at [8, 262144]: it broadcasts
    # first); both operands already have the result's shape (codegen/attrs.py _take_along)
    "take_along": "torch.gather({x}, {axis}, {idx})",
    "rank": lambda c: _positions(c[0], c.attrs["axis"]),
    "topk": lambda c: f"({_positions(c[0], c.attrs['axis'], True)} < {c[1]})",
    "quantile": "_quantile({0}, {1}, {axis})",
    "eigvalsh": _eigvalsh,
    "ctc_nll": "_ctc({lp}, {tg}, {2}, {3}, {4}, {5}, check_indices)",
    "softmax": "torch.softmax({0}, dim={axis})",
    "log_softmax": "torch.log_softmax({0}, dim={axis})",
    "gather": _gather,
    "cross_entropy": _cross_entropy,
    "onehot": "({0}.unsqueeze({k}) == torch.arange({n}, device=dev).reshape({column})).to(fdt)",
    "eye": "torch.eye({n}, dtype=torch.bool, device=dev)",
    "arange": "torch.arange({n}, device=dev)",
    "fill": "torch.full({shape}, {value}, dtype={dtype}, device=dev)",
    "contract": 'torch.einsum("{spec}", {0}, {1})',
    "reshape": "{0}.reshape({shape})",
    "transpose": "{0}.permute{perm}",
    "expand": "{0}[..., {nones}].expand({shape})",
    "diff": "torch.diff({0}, dim={axis})",
    "shift": "_shift({0}, {steps}, {axis}, {value})",
    **{op: WINDOW_CALL for op in ("blur", "box", "conv", "avg_pool", "max_pool")},
    "frames": "_frames({0}, {wax}, {size}, {stride}, {padding}, {center})",
    "stft_mag": "_stft_mag({0}, {wax}, {size}, {stride}, {win}, {eps})",
    "rfft_mag": "_rfft_mag({0}, {axis}, {eps})",
    "all_gather": "_AllGather.apply({0}, {axis}, group)",
    "all_reduce": _all_reduce,
    "shard_slice": "{0}.narrow({axis}, rank * {nl}, {nl})",
    "shard_eye": shard_eye("torch.arange({n}, device=dev)"),
    "shard_result": '({0} if grads == "mean" else _GradScale.apply({0}, 1.0 / world))',
}

TARGET = Target(
    name="torch",
    imports=("import torch",),
    templates=TEMPLATES,
    is_float="{x}.is_floating_point()",
    is_int="(not {x}.is_floating_point() and not {x}.is_complex() and {x}.dtype != torch.bool)",
    is_bool="{x}.dtype == torch.bool",
    int_to_float="{x}.to(torch.get_default_dtype())",
    as_array=None,
    as_tensor="torch.as_tensor({x}, dtype={dtype})",
    float_dtype_default="torch.get_default_dtype()",
    int_dtype="torch.int64",
    bool_dtype="torch.bool",
    permute="{x}.permute{perm}",
    broadcast="torch.broadcast_to({x}, {shape})",
    device="{x}.device",
    select="({1} if {0} else {2})",
    # torch.compile traces a tensor param; vmap and grad wrap it (.item() fails under vmap)
    param_traced=(
        "torch.compiler.is_compiling() or (isinstance({x}, torch.Tensor) and "
        "torch._C._functorch.is_functorch_wrapped_tensor({x}))"
    ),
    param_foreign="not isinstance({x}, torch.Tensor)",
    is_half="{x}.dtype in (torch.float16, torch.bfloat16)",
    upcast="{x}.float()",
    out_cast="{x}.to(odt)",
    # under autocast a loss computes in and returns float32, as torch's built-in losses do
    # (meta tensors have no autocast state: asking raises)
    amp="not {x}.is_meta and torch.is_autocast_enabled({x}.device.type)",
    out_dtype="(torch.float32 if amp else {x}.dtype)",
    body_context="_no_autocast({x}, amp)",
    shard=SHARD,
    library_calls=True,
    split_steps="{x}.unbind({axis})",
    stack_steps="torch.stack({xs})",
    checkpoint="torch.utils.checkpoint.checkpoint({fn}, {state}, use_reentrant=False)",
    # an empty slice's sum: exactly 0 and a zero gradient whatever x holds (0 * x.sum() is NaN
    # next to an inf)
    empty_grad="{x}.reshape(-1)[:0].sum()",
    not_array="not isinstance({x}, torch.Tensor)",
    array_kind="a torch.Tensor",
    array_hint="torch.as_tensor",
    index_out_of_range="_ids_out_of_range({i}, {n})",
    helpers=(
        ("_ids_out_of_range", IDS_OUT_OF_RANGE),
        ("_no_autocast", NO_AUTOCAST),
        ("_pow", POW),
        ("_logcumsumexp", LOGCUMSUMEXP),
        ("_eigvalsh", EIGVALSH),
        ("_quantile", QUANTILE),
        ("_log_ive", LOG_IVE),
        ("_ctc", CTC),
        ("_shift", SHIFT),
        ("_CustomGrad", CUSTOM_GRAD),
        ("_window", WINDOW),
        ("_frames", FRAMES),
        ("_stft_mag", STFT),
        ("_rfft_mag", FFT),
        ("_grad", GRAD),
    ),
)
