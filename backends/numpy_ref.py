"""NumPy float64 reference: an interpreter of the IR built only on the op table's `ref`
functions (the meaning of every op). `compile("numpy")` runs it; the NumPy code target that
`lossdsl compile --backend numpy` prints is backends/numpy_backend.py (the tests hold its output
to this interpreter).
"""

from __future__ import annotations

import threading

import numpy as np

from lossdsl import axes
from lossdsl.empty import (
    empty_policy,
    first_input_with,
    holds,
    rank_message,
    split_message,
    too_small_message,
    windowed_variadics,
)
from lossdsl.errors import InputError, class_ids_message
from lossdsl.graph import index_sources
from lossdsl.ir import Lit, Program, Var, param_dims, splits, unit_dims
from lossdsl.ops import OPS, ref_attrs


def evaluate(
    prog: Program,
    inputs: dict,
    params: dict,
    reduction: str | None = None,
    frozen=None,
    check_indices: bool = False,
    comm=None,
):
    """Run `prog` in float64 on named numpy arrays; returns the `reduction` output.

    `frozen` (a dict, filled on first use) holds the values of stop_grad equations: a second
    call with the same dict reuses them, which is what stop_grad means to a finite-difference
    gradient (the value of x, held constant).

    A sharded program (lossdsl/shard.py) runs as one rank of `comm` (see `evaluate_sharded`)."""
    env: dict[str, np.ndarray] = {}
    sizes: dict = {}
    shapes: dict[str, tuple] = {}
    for d in prog.inputs:
        x = np.asarray(inputs[d.var.name])
        x = x.astype(np.float64) if d.var.type.dtype == "float" else x
        env[d.var.name] = _flatten(x, d.var.type.dims, sizes, shapes, d.var.name, prog.shard)
    for q in prog.params:
        env[q.var.name] = np.asarray(params.get(q.var.name, q.default))
    calls = {f.name: (inputs[f.name], f) for f in prog.fns}  # function inputs
    sizes[_CALLS] = (calls, shapes, prog.name)
    sizes[_FROZEN] = frozen  # stop_grad values inside loops, held as the top level's are
    for d in unit_dims(prog):  # a helper's *S with no axes
        sizes[d.name], shapes[d.name] = 1, ()
    if prog.shard is not None:
        n = comm.world * sizes[prog.shard]
        if sizes.setdefault(("global", prog.shard), n) != n:
            raise InputError(
                f"dim {prog.shard}' is {sizes[('global', prog.shard)]}, but {comm.world} ranks "
                f"of {sizes[prog.shard]} rows make {n}"
            )

    for q in param_dims(prog):  # split(x, k, over=N): the dim "$k" has k's value
        sizes["$" + q] = int(params.get(q, _default(prog, q)))
    for q, v in prog.dim_values:  # ... baked
        sizes["$" + q] = v
    for dim, m, by in splits(prog):
        div = m * (sizes[by] if by else 1)
        if div < 1 or _n(sizes, dim) % div:
            group = by.lstrip("$") if by else str(m)
            raise InputError(
                split_message(prog.name, dim, _n(sizes, dim), group, div if by else None)
            )
    mode = reduction or prog.default_reduction
    empty = _empty(prog, inputs, params, mode, sizes, shapes)
    if empty is not None:
        return empty

    def val(a):
        return np.asarray(a.value) if isinstance(a, Lit) else env[a.name]

    with np.errstate(all="ignore"):
        for e in prog.eqns:
            if e.op == "stop_grad" and frozen is not None and e.out.name in frozen:
                env[e.out.name] = frozen[e.out.name]
                continue
            if check_indices and e.op in ("gather", "cross_entropy", "onehot"):
                i = e.args[0 if e.op == "onehot" else 1]
                _check_range(prog, i, val(i), sizes)
            if check_indices and e.op == "cross_entropy_ignore":  # ignore_index is no class
                i, k = e.args[1], val(e.args[2])
                _check_range(prog, i, np.where(val(i) != k, val(i), 0), sizes)
            if e.op == "custom_grad" and frozen is not None and e.out.name in frozen:
                # the declared derivative to a finite difference: y and g held at the base
                # point, x's change times g: y0 + g0 (x - x0)
                y0, x0, g0 = frozen[e.out.name]
                x = _aligned(e, [val(a) for a in e.args])[1]
                env[e.out.name] = np.asarray(y0 + g0 * (x - x0)) + np.zeros_like(y0 + x + g0)
                continue
            env[e.out.name] = _apply(e, [val(a) for a in e.args], sizes, comm)
            if e.op == "stop_grad" and frozen is not None:
                frozen[e.out.name] = env[e.out.name]
            if e.op == "custom_grad" and frozen is not None:
                frozen[e.out.name] = _aligned(e, [val(a) for a in e.args])
    out = prog.output(mode)
    res = val(out)
    if mode == "none" and isinstance(out, Var):
        shape = []
        for d in out.type.dims:
            shape += (
                list(d.shape(shapes[d.name], sizes.__getitem__)) if d.variadic else [_n(sizes, d)]
            )
        res = res.reshape(shape)
    return res


def _default(prog, name):
    return next(q.default for q in prog.params if q.var.name == name)


def _empty(prog, inputs, params, mode, sizes, shapes):
    """The empty-dim policy (lossdsl/empty.py): the declared value of an empty per-element loss,
    an InputError for a reduced dim below what the formula needs, else None (compute)."""
    pol = empty_policy(prog)
    if any(_n(sizes, d) == 0 for d in pol.out_dims):
        if mode != "none":
            return np.asarray(pol.mean_empty if mode == "mean" else 0.0)
        shape: list[int] = []
        for d in pol.out_dims:
            shape += (
                list(d.shape(shapes[d.name], sizes.__getitem__)) if d.variadic else [_n(sizes, d)]
            )
        return np.zeros(shape)
    for name in windowed_variadics(prog):
        if len(shapes[name]) > 3:
            raise InputError(rank_message(prog.name, name, str(shapes[name])))
    values = {q.var.name: params.get(q.var.name, q.default) for q in prog.params}
    for need in pol.needs:
        n = _n(sizes, need.dim)
        least = need.min_size if isinstance(need.min_size, int) else _n(sizes, need.min_size)
        if need.axes:  # a window over *S: its smallest axis (none: no window)
            n = min(need.dim.shape(shapes[need.dim.name], sizes.__getitem__), default=least)
        if n < least and holds(need.when, values):
            inp = first_input_with(prog, need.dim)
            raise InputError(too_small_message(prog.name, need, n, inp, least))
    return None


def _check_range(prog, i, v, sizes) -> None:
    """Class ids outside their dim: the message of the generated code's check."""
    sources = index_sources(prog, i) if isinstance(i, Var) else []
    n = _n(sizes, i.type.of) if i.type.of is not None else None
    if not sources or n is None or v.size == 0 or (v.min() >= 0 and v.max() < n):
        return
    raise InputError(
        class_ids_message(prog.name, sources, i.type.of, n, int(v.min()), int(v.max()))
    )


def _flatten(x, dims, sizes, shapes, name, shard=None):
    fixed = [d for d in dims if not d.variadic]
    if x.ndim < len(fixed) or (len(fixed) == len(dims) and x.ndim != len(dims)):
        raise InputError(f"input '{name}' has shape {x.shape}, declared {list(map(str, dims))}")
    shape, k = [], 0
    for d in dims:
        if d.variadic:
            n = x.ndim - len(fixed)
            shapes[d.name] = tuple(x.shape[k : k + n])
            shape.append(int(np.prod(x.shape[k : k + n], dtype=np.int64)))
            k += n
        else:
            shape.append(x.shape[k])
            k += 1
    for k, (d, n) in enumerate(zip(dims, shape)):
        if d.fixed is not None and n != d.fixed:
            raise InputError(
                f"input '{name}' must have size {d.fixed} along its axis {k} (dim {d}), "
                f"got shape {x.shape}"
            )
        key = ("global", d.name) if d.name == shard and d.primes else d.name
        if sizes.setdefault(key, n) != n:
            raise InputError(f"dim {d} is {sizes[key]} elsewhere but {n} in '{name}'")
    return x.reshape(shape)


def _loop(e, args, sizes, comm):
    """repeat: the body run n times on the state; scan: once per entry along `over` (backwards
    with reverse), the body seeing each sequence's slice there, and the states after each step
    stacked along `over` (a Python loop: this is the meaning)."""
    body = e.attr("body")
    ns, nx = len(body.state), len(body.xs)
    scan = e.op == "scan"
    lead = 0 if scan else 1
    state = list(args[lead : lead + ns])
    seqs = args[lead + ns : lead + ns + nx]
    free = {v.name: x for v, x in zip(body.free, args[lead + ns + nx :])}
    if scan:
        (over,) = e.attr("over")
        axes = [list(a.type.dims).index(over) for a in e.args[ns : ns + nx]]
        steps = range(np.shape(seqs[0])[axes[0]])
        steps = reversed(steps) if e.attr("reverse") else steps
    else:
        steps = range(int(args[0]))
    out = {}
    for t in steps:
        env = {**free, **{v.name: x for v, x in zip(body.state, state)}}
        if scan:
            env |= {v.name: np.take(x, t, axis=a) for v, x, a in zip(body.xs, seqs, axes)}
        frozen = sizes.get(_FROZEN)
        for b in body.eqns:
            key = (e.out.name, t, b.out.name)  # a stop_grad's value at this step
            if b.op == "stop_grad" and frozen is not None and key in frozen:
                env[b.out.name] = frozen[key]
                continue
            vals = [np.asarray(a.value) if isinstance(a, Lit) else env[a.name] for a in b.args]
            env[b.out.name] = _apply(b, vals, sizes, comm)
            if b.op == "stop_grad" and frozen is not None:
                frozen[key] = env[b.out.name]
        state = [np.asarray(r.value) if isinstance(r, Lit) else env[r.name] for r in body.results]
        out[t] = state[e.attr("out")]
    if not scan:
        return state[e.attr("out")]
    shape = np.shape(args[lead + e.attr("out")])
    if not out:
        return np.zeros((0, *shape), dtype=np.asarray(args[lead + e.attr("out")]).dtype)
    return np.stack([np.broadcast_to(out[t], shape) for t in sorted(out)])


def _aligned(e, args) -> list:
    """An elementwise equation's argument values laid out along its output's axes."""
    out = []
    for a, v in zip(e.args, args):
        if isinstance(a, Var) and a.type.dims:
            al = axes.align(a.type.dims, e.out.type.dims)
            v = np.transpose(v, al.perm) if al.perm is not None else v
            v = v[tuple(slice(None) if i == ":" else None for i in al.index)] if al.index else v
        out.append(v)
    return out


_CALLS = ("function inputs",)  # sizes' entry for them: (name -> (callable, decl), shapes, loss)
_FROZEN = ("frozen",)  # sizes' entry for evaluate's `frozen` (None: compute every value)


def _call_fn(e, args, sizes):
    """A function input on its arguments, *S axes restored; its result checked against the
    declared type and flattened again."""
    calls, shapes, label = sizes[_CALLS]
    fn, decl = calls[e.attr("fn")]

    def shape(dims):
        return tuple(
            k
            for d in dims
            for k in (d.shape(shapes[d.name], sizes.__getitem__) if d.variadic else (_n(sizes, d),))
        )

    vals = [np.reshape(v, shape(a.type.dims)) for a, v in zip(e.args, args)]
    y = np.asarray(fn(*vals))
    kinds = {"float": "f", "int": "iu", "bool": "b"}[decl.result.dtype]
    want = shape(decl.result.dims)
    if y.shape != want or y.dtype.kind not in kinds:
        raise InputError(
            f"{label}: function input '{decl.name}' must return {decl.result} (shape {want}), "
            f"got shape {y.shape}, dtype {y.dtype}"
        )
    y = y.astype(np.float64) if decl.result.dtype == "float" else y
    return y.reshape(tuple(_n(sizes, d) for d in decl.result.dims))


def _grad(e, args, sizes, comm):
    """grad(e, wrt=x): ops._fd_grad (central differences in float64) of the body as a function
    of its state x, the free values held."""
    body = e.attr("body")
    (s,) = body.state
    free = {v.name: x for v, x in zip(body.free, args[1:])}

    def f(x):
        # (no stop_grad value held inside: the difference moves x, what the body computes)
        held, sizes[_FROZEN] = sizes.get(_FROZEN), None
        try:
            return _body(x)
        finally:
            sizes[_FROZEN] = held

    def _body(x):
        env = {**free, s.name: x}
        for b in body.eqns:
            vals = [np.asarray(a.value) if isinstance(a, Lit) else env[a.name] for a in b.args]
            env[b.out.name] = _apply(b, vals, sizes, comm)
        r = body.results[0]
        return np.asarray(r.value) if isinstance(r, Lit) else env[r.name]

    return OPS["grad"].ref(f, args[0])


def _apply(e, args, sizes, comm=None):
    op = OPS[e.op]
    attrs = dict(e.attrs)
    if op.kind == "call_fn":
        return _call_fn(e, args, sizes)
    if op.kind == "grad":
        return _grad(e, args, sizes, comm)
    if op.kind == "loop":
        return _loop(e, args, sizes, comm)
    if op.kind == "collective":
        return _collective(e, op, args, sizes, comm)
    if op.kind == "elementwise":
        return np.asarray(op.ref(*_aligned(e, args), **ref_attrs(op, attrs)))
    if op.kind == "reduce":
        ax = axes.axes(e.args[0].type.dims, attrs.pop("over"))
        return np.asarray(op.ref(args[0], axis=ax, **attrs))
    if op.kind == "argmax":
        (ax,) = axes.axes(e.args[0].type.dims, attrs["over"])
        return op.ref(args[0], ax)
    if op.kind == "take":
        (ax,) = axes.axes(e.args[0].type.dims, attrs["over"])
        return op.ref(args[0], ax, attrs["index"])
    if op.kind in ("scan", "rank", "quantile") or e.op == "sort":
        (ax,) = axes.axes(e.args[0].type.dims, attrs["over"])
        return np.asarray(op.ref(*args, axis=ax, **ref_attrs(op, attrs)))
    if e.op == "take_along":
        out = e.out.type.dims
        full = [_broadcast(v, a.type.dims, out, sizes) for a, v in zip(e.args, args)]
        (ax,) = axes.axes(out, attrs["over"])
        return op.ref(*full, axis=ax, **ref_attrs(op, attrs))
    if op.kind == "ctc":  # log_probs as [T, B, C], targets as [B, L]
        lp, tg, il, tl = e.args[:4]
        (t,) = attrs["over"]
        (b,) = il.type.dims
        x = np.transpose(args[0], axes.axes(lp.type.dims, (t, b, tg.type.of)))
        y = np.transpose(
            args[1], axes.axes(tg.type.dims, (b,) + tuple(d for d in tg.type.dims if d != b))
        )
        return op.ref(x, y, *args[2:])
    if op.kind == "eigvalsh":
        d, d2 = attrs["over"]
        dims = e.args[0].type.dims
        x = np.moveaxis(args[0], (dims.index(d), dims.index(d2)), (-2, -1))
        rest = tuple(x for x in dims if x not in (d, d2))
        out = op.ref(x)  # [..rest, d]
        want = e.out.type.dims
        return np.moveaxis(out, -1, want.index(d)) if rest else out
    if op.kind == "window":
        ax = tuple(axes.axes(e.args[0].type.dims, attrs["over"]))
        kw = {k: v for k, v in ref_attrs(op, attrs).items() if k != "taps"}
        if "size" in kw:  # an int param's size (blur(x, size=k)): its value
            kw["size"] = tuple(k if isinstance(k, int) else _n(sizes, k) for k in kw["size"])
        (d,) = attrs["over"][:1]
        lead = args[1:] if e.op == "blur" else ()  # blur's sigma
        if d.variadic:  # *S: its axes unflattened, every one windowed, flattened again
            shape = d.shape(sizes[_CALLS][1][d.name], sizes.__getitem__)
            if not shape:
                return args[0]  # no spatial axis: nothing to slide over
            kw = {**kw, **{k: kw[k] * len(shape) for k in ("size", "stride") if k in kw}}
            x, a = args[0], ax[0]
            x = x.reshape(x.shape[:a] + shape + x.shape[a + 1 :])
            y = op.ref(x, *lead, tuple(range(a, a + len(shape))), **kw)
            a += y.ndim - x.ndim  # after sigma's dims
            return y.reshape(y.shape[:a] + (-1,) + y.shape[a + len(shape) :])
        if e.op == "conv":  # the kernel's axes in over's order
            k = np.transpose(args[1], axes.axes(e.args[1].type.dims, attrs["taps"]))
            return op.ref(args[0], k, ax, **kw)
        return op.ref(args[0], *lead, ax, **kw)
    if op.kind in ("axis", "diff", "rfft"):
        (ax,) = axes.axes(e.args[0].type.dims, attrs["over"])
        return op.ref(args[0], ax, **ref_attrs(op, attrs))  # shift's steps and fill
    if op.kind in ("expand", "reshape"):
        return op.ref(args[0], tuple(_n(sizes, d) for d in e.out.type.dims))
    if op.kind == "gather":
        x, idx = e.args
        out = e.out.type.dims
        xa = _broadcast(args[0], x.type.dims, out + (idx.type.of,), sizes)
        ia = _broadcast(args[1], idx.type.dims, out, sizes)
        return op.ref(xa, ia)
    if op.kind == "cross_entropy":
        x, idx = e.args
        rest = tuple(d for d in x.type.dims if d != idx.type.of)
        ia = _broadcast(args[1], idx.type.dims, rest, sizes)
        return op.ref(args[0], ia, x.type.dims.index(idx.type.of))
    if op.kind == "library":  # the pass checked the layout: the args go as they are
        return np.asarray(op.ref(*args, **ref_attrs(op, attrs)))
    if op.kind == "onehot":
        return op.ref(args[0], _n(sizes, attrs["dim"]), attrs.get("axis", -1))
    if op.kind == "arange":
        return op.ref(_n(sizes, attrs["dim"]))
    if op.kind == "eye":
        return op.ref(_n(sizes, attrs["dims"][0]))
    if op.kind == "fill":
        shape = tuple(_n(sizes, d) for d in attrs["dims"])
        dt = {"float": np.float64, "int": np.int64, "bool": bool}[attrs["dtype"]]
        return op.ref(shape, attrs["value"]).astype(dt)
    if op.kind == "size":
        return op.ref(_n(sizes, attrs["dim"]))
    if op.kind == "contract":
        a, b = e.args
        return op.ref(axes.einsum_spec(a.type.dims, b.type.dims, e.out.type.dims), *args)
    if op.kind == "transpose":
        return op.ref(args[0], axes.axes(e.args[0].type.dims, attrs["dims"]))
    if op.kind == "rename":
        return args[0]
    raise AssertionError(f"numpy_ref has no rule for op kind {op.kind}")


def _broadcast(v, src, dst, sizes):
    al = axes.align(src, dst)
    v = np.transpose(v, al.perm) if al.perm is not None else v
    if al.index:
        v = v[tuple(slice(None) if i == ":" else None for i in al.index)]
    return np.broadcast_to(v, tuple(_n(sizes, d) for d in dst))


def _n(sizes, d) -> int:
    """A dim's size; a derived dim's (diff's D-1, a window's H-10) through its steps; a primed
    twin of the sharded dim is the whole batch."""
    if d.name not in sizes and d.fixed is not None:
        return d.fixed  # a fixed-size dim no input has (frames' entries)
    if d.variadic and d.steps:  # a window over *S: every axis through the steps
        return int(np.prod(d.shape(sizes[_CALLS][1][d.name], sizes.__getitem__), dtype=np.int64))
    g = sizes.get(("global", d.name)) if d.primes else None
    return d.size(sizes[d.name] if g is None else g, sizes.__getitem__)


def _collective(e, op, args, sizes, comm):
    attrs = dict(e.attrs)
    (x,) = args or (None,)
    if e.op in ("all_gather", "shard_slice"):
        axis = e.args[0].type.dims.index(attrs["dim"])
        if e.op == "all_gather":
            return op.ref(x, axis, comm)
        return op.ref(x, axis, _n(sizes, attrs["to"]), comm)
    if e.op == "all_reduce":
        return op.ref(x, attrs["kind"], comm)
    if e.op == "shard_eye":
        d0, d1 = attrs["dims"]
        local, other = (d0, d1) if d0 == attrs["local"] else (d1, d0)
        return op.ref(_n(sizes, local), _n(sizes, other), d0 == local, comm)
    return op.ref(x, comm)  # shard_result: its value


class Ranks:
    """`world` ranks in threads that meet at each collective: what torch.distributed and
    jax.lax give the generated code, for the float64 interpreter."""

    def __init__(self, world: int):
        self.world = world
        self.slots: list = [None] * world
        self.barrier = threading.Barrier(world, timeout=60)

    def comm(self, rank: int) -> _Comm:
        return _Comm(self, rank)


class _Comm:
    def __init__(self, ranks: Ranks, rank: int):
        self.ranks, self.rank, self.world = ranks, rank, ranks.world

    def gather(self, x) -> list:
        r = self.ranks
        r.slots[self.rank] = np.asarray(x)
        r.barrier.wait()
        out = list(r.slots)
        r.barrier.wait()  # nobody overwrites a slot before everyone has read them all
        return out


def split_batch(prog: Program, inputs: dict, world: int) -> list[dict]:
    """Each rank's inputs: every input with the sharded dim cut into `world` equal parts."""
    b = prog.shard
    out = [dict(inputs) for _ in range(world)]
    for d in prog.inputs:
        x = inputs.get(d.var.name)
        dims = d.var.type.dims
        if x is None or not any(k.name == b and not k.primes for k in dims):
            continue
        x = np.asarray(x)
        k = next(i for i, k in enumerate(dims) if k.name == b and not k.primes)
        axis = k if not any(v.variadic for v in dims[:k]) else x.ndim - (len(dims) - k)
        if x.shape[axis] % world:
            raise InputError(
                f"input '{d.var.name}': {x.shape[axis]} rows do not split into {world} ranks"
            )
        for r, part in enumerate(np.split(x, world, axis=axis)):
            out[r][d.var.name] = part
    return out


def evaluate_sharded(prog: Program, inputs: dict, params: dict, reduction=None, world=2):
    """Run a sharded program on `world` simulated ranks, each on its rows of `inputs` (the
    full batch); returns every rank's result, in rank order."""
    ranks = Ranks(world)
    parts = split_batch(prog, inputs, world)
    results: list = [None] * world
    errors: list = []

    def run(r):
        try:
            results[r] = evaluate(prog, parts[r], params, reduction, comm=ranks.comm(r))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(err)
            ranks.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
    return results
