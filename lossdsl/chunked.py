"""Chunked schedules over a large class dim V for torch (issue 5), built from a chunk plan
(lossdsl/chunk.py): the [N, V] logits -- or, fused with the final linear layer, h @ W.T -- are
never held at once.

The plan splits a loss into row statistics over V and a row function of them. The compiler
turns each part into an ordinary generated torch function (the same emitter as `compile`):

  pre_u(inputs)          a row value the chunk side reads (a shifted target, a mask)
  stat_s(z, ...)         one statistic of one V-slice z (logsumexp, a sum, z[target] or 0)
  row(stats, inputs)     the loss from the combined statistics

A torch.autograd.Function runs stat_s slice by slice under no_grad and combines the partial
statistics (sum: +, logsumexp: logaddexp, max / min); backward recomputes each slice with
autograd and pulls the statistics' gradients back through it (a logsumexp slice gets
dS * exp(s_k - S)), writing the slice's gradient into dlogits, or into dh and dW[slice] when
fused with the linear layer. Peak memory: one [N, chunk] slice and its autograd graph.
"""

from __future__ import annotations

import inspect
import itertools
import linecache
import sys
import types
from dataclasses import dataclass

from lossdsl.backend import (
    _dims_needed,
    function_name,
    load_backend,
    module_source,
    public_names,
)
from lossdsl.chunk import Plan, combine, plan
from lossdsl.errors import InputError, ParamError, class_ids_message
from lossdsl.ir import Atom, Eqn, InputDecl, Program, Var, index_sources
from lossdsl.ops import OPS
from lossdsl.types import Dim, TensorType

_MODULE_IDS = itertools.count()  # unique names: sys.modules shrinks as compiled modules go


class Modules:
    """The generated modules of one chunked compile, deduplicated by source (the sum and the
    mean plans share their statistics). `names` lists (module, linecache filename) pairs: the
    compiler forgets them once nobody holds the compiled function (compiler._forget_module)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.fns: dict[str, object] = {}
        self.names: list[tuple[str, str]] = []

    def fn(self, prog: Program):
        """An ordinary generated function (torch or jax) for a sub-program."""
        src = module_source(load_backend(self.backend).TARGET, [prog], prog.doc)
        if src not in self.fns:
            n = next(_MODULE_IDS)
            filename = f"<lossdsl chunked {prog.name} {self.backend} {n}>"
            linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
            mod = types.ModuleType(f"_lossdsl_chunked_{prog.name}_{self.backend}_{n}")
            mod.__file__ = filename
            exec(compile(src, filename, "exec"), mod.__dict__)  # generated from our IR only
            mod.LossInputError, mod.LossParamError = InputError, ParamError
            sys.modules[mod.__name__] = mod  # torch.compile re-imports a function's module
            self.names.append((mod.__name__, filename))
            fn = getattr(mod, function_name(prog.name))
            # the Python name of each param (`lambda` is `lambda_`): _call passes them by name
            names = public_names(
                [d.var.name for d in prog.inputs], [q.var.name for q in prog.params]
            )
            fn.param_names = {q.var.name: names[q.var.name] for q in prog.params}
            self.fns[src] = fn
        return self.fns[src]


def _needed(eqns: tuple[Eqn, ...], wanted: set[str]) -> tuple[tuple[Eqn, ...], set[str]]:
    """The equations that compute `wanted` from each other, and the free vars they read."""
    by = {e.out.name: e for e in eqns}
    keep: dict[str, Eqn] = {}
    free: set[str] = set()
    stack = list(wanted)
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        e = by.get(n)
        if e is None:
            free.add(n)
            continue
        keep[n] = e
        stack += [a.name for a in e.args if isinstance(a, Var)]
    order = tuple(e for e in eqns if e.out.name in keep)
    return order, free


def carrier_name(dim: str) -> str:
    return f"dim_{dim}_"


def _sub(
    prog: Program, doc: str, eqns, inputs: list[Var], out: Atom, per=None, default="none"
) -> Program:
    """A sub-program of `prog` (named after it: its input checks speak of the spec). A dim
    that some equation needs (size(V), onehot over V, a fill) but no input carries comes from
    a *carrier* input float[D]: a stride-0 tensor of D's full size, passed at run time."""
    bound = {d.name for v in inputs for d in v.type.dims}
    carriers = {}
    for e in eqns:
        for d in _dims_needed(e):
            if d.name not in bound and d.name not in carriers:
                carriers[d.name] = Var(carrier_name(d.name), TensorType("float", (Dim(d.name),)))
    used = {a.name for e in eqns for a in e.args if isinstance(a, Var)} | {getattr(out, "name", "")}
    return Program(
        name=prog.name,
        doc=f"{prog.name}: {doc} (chunked schedule)",
        inputs=tuple(InputDecl(v) for v in list(inputs) + list(carriers.values())),
        params=tuple(q for q in prog.params if q.var.name in used),
        eqns=tuple(eqns),
        # `per`: the per-element loss `out` reduces (the row function's "none", so its empty
        # policy sees the rows); a call without reduction= gets `out`
        outputs=(("none", out if per is None else per), ("sum", out), ("mean", out)),
        default_reduction=default if per is not None else "none",
    )


@dataclass
class _Stat:
    name: str
    kind: str
    fn: object
    args: list[str]  # the stat function's inputs after the slice: names of row values
    gather_index: str | None  # for z[t]: the row value holding t (shifted per slice)
    ties: object = None  # max/min: the function counting a slice's entries equal to its max


def _call(fn, args: list, kw: dict, sizes: dict, carriers, checks: bool):
    """Call a generated sub-function: its params and carriers by keyword."""
    names = fn.signature.parameters if hasattr(fn, "signature") else _signature(fn)
    py = getattr(fn, "param_names", {})
    out = {py.get(k, k): v for k, v in kw.items() if py.get(k, k) in names}
    if "check_indices" in names:
        out["check_indices"] = checks
    for name in names:
        if name.startswith("dim_") and name.endswith("_") and name not in out:
            out[name] = carriers(sizes[name[4:-1]])
    return fn(*args, **out)


_SIGS: dict = {}


def _signature(fn):
    if fn not in _SIGS:
        _SIGS[fn] = inspect.signature(fn).parameters
    return _SIGS[fn]


class ChunkedLoss:
    """The chunked form of one spec variant for one reduction (torch, or jax)."""

    def __init__(self, prog: Program, logits: str, reduction: str, chunk: int, mods: Modules):
        self.plan: Plan = plan(prog, logits, reduction)
        self.reduction, self.chunk, self.backend = reduction, chunk, mods.backend
        p = self.plan.prog
        self.v = self.plan.dim
        vars_ = {d.var.name: d.var for d in p.inputs}
        vars_ |= {e.out.name: e.out for e in p.eqns}
        self.vars = vars_
        self.inputs = [d.var for d in p.inputs]
        params = {q.var.name for q in p.params}
        stat_names = {s.var.name for s in self.plan.stats}
        chunk_eqns = self.plan.chunk_side
        inputs = {d.var.name for d in p.inputs}
        self.pre: dict[str, tuple] = {}
        reads: set[str] = set()
        self.stats: list[_Stat] = []
        for s in self.plan.stats:
            e = s.eqn
            eqns, free = _needed(chunk_eqns + (e,), {s.var.name})
            args = sorted(free - params - {logits})
            reads |= set(args)
            ins = [vars_[logits]] + [vars_[a] for a in args]
            fn = mods.fn(_sub(p, f"statistic {s.var.name}", eqns, ins, s.var))
            gather_index = e.args[1].name if e.op == "gather" else None
            ties = None
            if s.kind in ("max", "min"):
                teqns, tout = _ties(eqns, e)
                ties = mods.fn(_sub(p, f"ties of {s.var.name}", teqns, ins, tout))
            self.stats.append(_Stat(s.var.name, s.kind, fn, args, gather_index, ties))
        for name in sorted(reads - inputs):
            eqns, free = _needed(self.plan.row_side, {name})
            ins = sorted(free - params)
            sub = _sub(p, f"row value {name}", eqns, [vars_[a] for a in ins], vars_[name])
            self.pre[name] = (mods.fn(sub), ins)
        # the row function: every row-side equation, from the inputs and the statistics
        out = p.output(reduction)
        want = {out.name} if isinstance(out, Var) else set()
        row_eqns, free = _needed(self.plan.row_side, want)
        free -= params
        self.row_inputs = sorted(free - stat_names)
        self.row_stats = [s.name for s in self.stats if s.name in free]
        row_ins = [vars_[n] for n in self.row_inputs + self.row_stats]
        # its per-element loss stays the "none" output, so that an empty batch gives the
        # declared values (lossdsl/empty.py) rather than a mean over no rows
        by = {e.out.name: e for e in row_eqns}
        per = out
        e = by.get(out.name) if isinstance(out, Var) else None
        if e is not None and e.op == "safe_div":  # a weighted mean: sum(loss) / sum(w)
            e = by.get(e.args[0].name) if isinstance(e.args[0], Var) else None
        if e is not None and e.op in ("sum", "mean") and isinstance(e.args[0], Var):
            per = e.args[0]
        self.row = mods.fn(_sub(p, "row function", row_eqns, row_ins, out, per, reduction))
        self.extra = sorted({a for s in self.stats for a in s.args})
        self.params = [q.var.name for q in p.params]

    # -- running
    def sizes(self, values: dict, logits_shape: tuple) -> dict:
        """Every dim's full size, from the inputs' shapes (a variadic dim: its axes' product)."""
        out: dict[str, int] = {}
        for var in self.inputs:
            x = values.get(var.name)
            shape = (
                tuple(logits_shape) if var.name == self.plan.logits else getattr(x, "shape", None)
            )
            if shape is None:
                continue
            dims = var.type.dims
            k = len(shape) - (len(dims) - 1)  # the axes of a variadic dim
            pos = 0
            for dm in dims:
                n = 1
                for a in range(pos, pos + (k if dm.variadic else 1)):
                    n *= int(shape[a]) if a < len(shape) else 1
                pos += k if dm.variadic else 1
                out.setdefault(dm.name, n)
        return out

    def __call__(self, inputs: dict, params: dict, linear=None):
        """inputs: name -> tensor (the logits among them unless `linear` = (h, W))."""
        logits = self.plan.logits
        values = dict(inputs)
        kw = {k: v for k, v in params.items() if k in self.params}
        if linear is not None:
            h, w = linear
            lshape = tuple(h.shape[:-1]) + (w.shape[0],)
        else:
            lshape = tuple(values[logits].shape)
        total = int(lshape[-1])
        sizes = self.sizes(values, lshape)
        ref = linear[0] if linear is not None else values[logits]
        carriers = _carrier_maker(self.backend, ref)
        for name, (fn, ins) in self.pre.items():
            x = _call(fn, [values[a] for a in ins], kw, sizes, carriers, True)
            values[name] = _as_type(x, self.vars[name].type.dtype, ref, self.backend)
        for s in self.stats:  # the slices see shifted ids: check the class ids here, once
            if s.gather_index is not None:
                self._check_ids(values[s.gather_index], s.gather_index, total)
        run = _Chunked.apply if self.backend == "torch" else _jax_chunked
        if not self.stats:
            stats = ()
        elif linear is not None:
            stats = run(self, kw, sizes, linear[0], linear[1], *(values[a] for a in self.extra))
        else:
            stats = run(self, kw, sizes, values[logits], None, *(values[a] for a in self.extra))
        by = dict(zip([s.name for s in self.stats], stats))
        args = [values[n] for n in self.row_inputs] + [by[n] for n in self.row_stats]
        return _call(self.row, args, kw, sizes, carriers, True)

    def _check_ids(self, t, name: str, n: int) -> None:
        if self.backend == "jax":
            if _traced(t):  # under jit: no value to check
                return
            import numpy as np

            t = np.asarray(t)  # a concrete array: jnp ops on it would be staged under jit
        if not t.size if self.backend == "jax" else not t.numel():
            return
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n:
            sources = index_sources(self.plan.prog, self.vars[name])
            label = self.plan.prog.name
            raise InputError(class_ids_message(label, sources, self.v, n, lo, hi, opt_out=False))

    def v_axis(self, name: str, x) -> int | None:
        """The axis of V in row value `name` as passed (a variadic dim may span several)."""
        dims = self.vars[name].type.dims
        if self.v not in dims:
            return None
        i = dims.index(self.v)
        if any(d.variadic for d in dims[:i]):
            return x.ndim - (len(dims) - i)
        return i

    def slice_stats(self, z, lo: int, kw: dict, sizes: dict, values: dict, ties=False, pieces=None):
        """Every statistic of one V-slice z = logits[..., lo:lo+n] (and, with ties=True, the
        tie counts of the max/min statistics, None for the others). `pieces`: row values
        already sliced (the backward's leaves)."""
        xp = _xp(self.backend)
        n = z.shape[-1]
        csizes = {**sizes, self.v.name: n}
        carriers = _carrier_maker(self.backend, z)
        out, counts = [], []
        for s in self.stats:
            args = []
            for a in s.args:
                x = values[a]
                if pieces and a in pieces:
                    x = pieces[a]
                elif a == s.gather_index:
                    local = x - lo
                    x = xp.where((local >= 0) & (local < n), local, 0)
                else:
                    k = self.v_axis(a, x)
                    if k is not None:
                        x = _narrow(x, k, lo, n)
                args.append(x)
            r = _call(s.fn, [z, *args], kw, csizes, carriers, False)
            if s.gather_index is not None:
                local = values[s.gather_index] - lo
                r = xp.where((local >= 0) & (local < n), r, xp.zeros_like(r))
            out.append(r)
            if ties:
                c = _call(s.ties, [z, *args], kw, csizes, carriers, False) if s.ties else None
                counts.append(c)
        return (out, counts) if ties else out


def _ties(eqns: tuple[Eqn, ...], e: Eqn) -> tuple:
    """The equations counting, per statistic entry, the slice's entries equal to max (min)
    e: the gradient of a max splits evenly among its ties (torch.amax, jnp.max), so each
    chunk's share is its count over the total count."""
    x, over = e.args[0], e.attr("over")

    def eqn(name, op, args, attrs=()):
        t = OPS[op].type_rule([a.type for a in args], dict(attrs))
        return Eqn(Var(f"{name}_{e.out.name}_", t), op, tuple(args), tuple(attrs))

    eq = eqn("tie", "eq", (x, e.out))
    f = eqn("tief", "to_float", (eq.out,))
    n = eqn("ties", "sum", (f.out,), (("over", over),))
    return eqns + (eq, f, n), n.out


def _as_type(x, dtype: str, like, backend: str):
    """A row value as the chunk side reads it: a tensor of its IR dtype (a generated function
    returns a bool or int result as float, and a params-only value as a Python number)."""
    if backend == "torch":
        import torch

        want = {"bool": torch.bool, "int": torch.long, "float": like.dtype}[dtype]
        return torch.as_tensor(x, dtype=want, device=like.device)
    import jax.numpy as jnp

    want = {"bool": jnp.bool_, "int": jnp.int_, "float": like.dtype}[dtype]
    return jnp.asarray(x).astype(want)


def _narrow(x, axis: int, lo: int, n: int):
    if hasattr(x, "narrow"):
        return x.narrow(axis, lo, n)
    return x[(slice(None),) * axis + (slice(lo, lo + n),)]


def _xp(backend: str):
    if backend == "torch":
        import torch

        return torch
    import jax.numpy as jnp

    return jnp


def _traced(x) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def _carrier_maker(backend: str, like):
    """float[D] of D's size at no memory: a stride-0 view of one zero."""
    if backend == "torch":
        import torch

        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        return lambda n: zero.expand(n)
    import jax.numpy as jnp

    return lambda n: jnp.broadcast_to(jnp.zeros((), like.dtype), (n,))


def _slices(total: int, chunk: int):
    return [(lo, min(total, lo + chunk)) for lo in range(0, total, chunk)]


def _combine_ties(kind, acc, cnt, part, c, xp):
    """max/min with its tie count: the count of the entries equal to the combined value."""
    new = combine(kind, acc, part, xp)
    return new, xp.where(acc == new, cnt, 0) + xp.where(part == new, c, 0)


def _make_function():
    import torch

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, kw, sizes, x, w, *tensors):
            values = dict(zip(loss.extra, tensors))
            total = w.shape[0] if w is not None else x.shape[-1]
            acc, cnt = None, None
            with torch.no_grad():
                for lo, hi in _slices(total, loss.chunk):
                    z = x @ w[lo:hi].T if w is not None else x[..., lo:hi]
                    part, c = loss.slice_stats(z, lo, kw, sizes, values, ties=True)
                    if acc is None:
                        acc, cnt = part, c
                        continue
                    for i, s in enumerate(loss.stats):
                        if s.ties is not None:
                            acc[i], cnt[i] = _combine_ties(s.kind, acc[i], cnt[i], part[i],
                                                           c[i], torch)  # fmt: skip
                        else:
                            acc[i] = combine(s.kind, acc[i], part[i], torch)
            ctx.loss, ctx.kw, ctx.sizes = loss, kw, sizes
            counts = [c if c is not None else a for a, c in zip(acc, cnt)]
            ctx.save_for_backward(x, w if w is not None else x, *tensors, *acc, *counts)
            ctx.fused = w is not None
            ctx.n_tensors = len(tensors)
            return tuple(acc)

        @staticmethod
        def backward(ctx, *d_stats):
            loss = ctx.loss
            saved = ctx.saved_tensors
            x, w = saved[0], saved[1] if ctx.fused else None
            nt, ns = ctx.n_tensors, len(loss.stats)
            tensors = saved[2 : 2 + nt]
            totals = saved[2 + nt : 2 + nt + ns]
            counts = saved[2 + nt + ns :]
            want = [ctx.needs_input_grad[5 + i] for i in range(nt)]
            total = w.shape[0] if w is not None else x.shape[-1]
            dx = torch.zeros_like(x) if ctx.needs_input_grad[3] else None
            dw = torch.zeros_like(w) if w is not None and ctx.needs_input_grad[4] else None
            dt = [torch.zeros_like(t) if k else None for t, k in zip(tensors, want)]
            full = dict(zip(loss.extra, tensors))
            for lo, hi in _slices(total, loss.chunk):
                with torch.enable_grad():
                    if w is not None:
                        xs = x.detach().requires_grad_(True)
                        wk = w[lo:hi].detach().requires_grad_(True)
                        z = xs @ wk.T
                        leaves = [xs, wk]
                    else:
                        z = x[..., lo:hi].detach().requires_grad_(True)
                        leaves = [z]
                    # a float row value that needs a gradient: its slice (or, without V, the
                    # whole of it) is a leaf of this slice's graph
                    pieces = {}
                    for i, name in enumerate(loss.extra):
                        if dt[i] is not None:
                            axis = loss.v_axis(name, tensors[i])
                            t = tensors[i] if axis is None else _narrow(tensors[i], axis, lo,
                                                                         hi - lo)  # fmt: skip
                            pieces[name] = t.detach().requires_grad_(True)
                            leaves.append(pieces[name])
                    parts, cs = loss.slice_stats(z, lo, ctx.kw, ctx.sizes, full, True, pieces)
                    outs, grads = [], []
                    for s, part, c, tot, cnt, d in zip(loss.stats, parts, cs, totals, counts,
                                                       d_stats):  # fmt: skip
                        if d is None or not part.requires_grad:
                            continue  # (a count of the classes kept: no gradient)
                        if s.kind == "logsumexp":
                            d = d * torch.exp(part - tot)
                        elif s.ties is not None:  # this chunk's share of the tied entries
                            d = d * torch.where(part == tot, c / cnt, 0)
                        outs.append(part)
                        grads.append(d)
                    if not outs:
                        continue
                    g = torch.autograd.grad(outs, leaves, grads, allow_unused=True)
                if w is not None:
                    if dx is not None and g[0] is not None:
                        dx += g[0]
                    if dw is not None and g[1] is not None:
                        dw[lo:hi] = g[1]
                elif dx is not None and g[0] is not None:
                    dx[..., lo:hi] = g[0]
                gs = dict(zip(pieces, g[len(leaves) - len(pieces) :]))
                for i, name in enumerate(loss.extra):
                    gi = gs.get(name)
                    if gi is None:
                        continue
                    axis = loss.v_axis(name, tensors[i])
                    if axis is None:
                        dt[i] += gi
                    else:
                        _narrow(dt[i], axis, lo, hi - lo).add_(gi)
            return (None, None, None, dx, dw, *dt)

    return Chunked


def _jax_chunked(loss: ChunkedLoss, kw, sizes, x, w, *tensors):
    """The jax chunked schedule: each slice's statistics under jax.checkpoint (the backward
    pass recomputes the slice), combined so that autodiff gives the plain loss's gradient: a
    sum adds, a logsumexp folds with logaddexp (its gradient is each chunk's softmax weight),
    a max or min hands each chunk its share (its ties / all ties) of the gradient, as jnp.max
    splits it evenly among tied entries."""
    import jax
    import jax.numpy as jnp

    values = dict(zip(loss.extra, tensors))
    total = w.shape[0] if w is not None else x.shape[-1]
    parts, counts = [], []
    for lo, hi in _slices(total, loss.chunk):

        def one(x, w, vals, lo=lo, hi=hi):
            z = x @ w[lo:hi].T if w is not None else x[..., lo:hi]
            return loss.slice_stats(z, lo, kw, sizes, vals, ties=True)

        p, c = jax.checkpoint(one)(x, w, values)
        parts.append(p)
        counts.append(c)
    out = []
    for i, s in enumerate(loss.stats):
        ps = [p[i] for p in parts]
        acc = ps[0]
        for p in ps[1:]:
            acc = combine(s.kind, acc, p, jnp)
        if s.ties is not None:
            tot = jax.lax.stop_gradient(acc)
            cs = [c[i] for c in counts]
            cnt = sum(jnp.where(p == tot, c, 0) for p, c in zip(ps, cs))
            share = [jnp.where(p == tot, c / cnt, 0) for p, c in zip(ps, cs)]
            acc = tot + sum(k * (p - jax.lax.stop_gradient(p)) for k, p in zip(share, ps))
        out.append(acc)
    return tuple(out)


class _Lazy:
    """A torch.autograd.Function class built on first use (importing lossdsl does not import
    torch)."""

    def __init__(self, make):
        self.make, self.fn = make, None

    def apply(self, *args):
        if self.fn is None:
            self.fn = self.make()
        return self.fn.apply(*args)


_Chunked = _Lazy(_make_function)


class RowBlocked:
    """The linear-fused loss in blocks of batch rows: each block's logits [rows, V] exist for
    one step, the spec's own compiled function gives the per-element loss, and the block's
    gradient is pulled back into dh and dW at once (three matmuls in all, as the unfused
    loss: Liger-Kernel's fused linear cross-entropy schedule). Valid when the loss is a sum
    over rows, or a mean whose denominator does not depend on the logits (a count, or a
    weight sum such as cross_entropy's ignore_index / class-weight denominator)."""

    def __init__(self, spec_fn, prog: Program, logits: str, reduction: str, rows: int, mods):
        from lossdsl.chunk import ChunkError

        backend = mods.backend
        self.fn, self.reduction, self.rows, self.backend = spec_fn, reduction, rows, backend
        self.logits = logits
        self.batch = next(d for d in prog.inputs if d.var.name == logits).var.type.dims[0]
        self.den = None  # None: a plain mean over the per-element loss
        mean = prog.output("mean")
        producer = {e.out.name: e for e in prog.eqns}
        e = producer.get(mean.name) if isinstance(mean, Var) else None
        if reduction == "mean" and e is not None and e.op == "safe_div":
            den = e.args[1]
            eqns, free = _needed(prog.eqns, {den.name})
            free -= {q.var.name for q in prog.params}
            if logits in free:
                raise ChunkError(
                    f"{prog.name} cannot run in row blocks: its mean's denominator depends on "
                    "the logits",
                    e.span,
                    "use the plain schedule, or reduction='sum'",
                )
            ins = sorted(free)
            vars_ = {d.var.name: d.var for d in prog.inputs}
            # h [B, ..., D] rides along only to bind the batch dims' sizes (a weight absent
            # from the call is a fill over them)
            lt = vars_[logits].type
            shape_var = Var("h", lt.with_dims(lt.dims[:-1] + (Dim("D_h"),)))
            sub = _sub(prog, "denominator", eqns, [vars_[a] for a in ins] + [shape_var], den)
            self.den = (mods.fn(sub), ins)
            self.empty = e.attr("empty")
        elif reduction == "mean" and (e is None or e.op != "mean"):
            raise ChunkError(
                f"{prog.name} cannot run in row blocks: its mean is a "
                f"{e.op if e else 'constant'}, not a mean over rows",
                e.span if e else None,
                "use the plain schedule, or reduction='sum'",
            )
        self.row_axes = {
            d.var.name: d.var.type.dims.index(self.batch)
            for d in prog.inputs
            if self.batch in d.var.type.dims and d.var.name != logits
        }
        self.order = [d.var.name for d in prog.inputs if d.var.name != logits]

    def __call__(self, inputs: dict, params: dict, h, w):
        rest = [inputs.get(n) for n in self.order]
        if self.backend == "jax":
            import jax.numpy as xp

            total, count = _jax_row_blocks(self, params, h, w, rest)
        else:
            import torch as xp

            total, count = _RowBlocks.apply(self, params, h, w, *rest)
        if self.reduction == "sum":
            return total
        if self.den is None:  # no rows: the mean's empty value 0 (lossdsl/empty.py)
            return total / (count + (count == 0))
        fn, ins = self.den
        names = _signature(fn)
        den = fn(*(inputs[a] for a in ins), h, **{k: v for k, v in params.items() if k in names})
        return xp.where(den == 0, self.empty, total / xp.where(den == 0, 1, den))

    def blocks(self, n: int):
        return [(lo, min(n, lo + self.rows)) for lo in range(0, n, self.rows)]

    def block_args(self, rest, lo: int, hi: int):
        out = []
        for name, x in zip(self.order, rest):
            k = self.row_axes.get(name)
            if x is not None and k is not None:
                idx = (slice(None),) * k + (slice(lo, hi),)
                x = x[idx]
            out.append(x)
        return out


def _make_rows():
    import torch

    class RowBlocks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, params, h, w, *rest):
            dh = torch.zeros_like(h)
            dw = torch.zeros_like(w)
            total = torch.zeros((), dtype=h.dtype)
            count = 0
            names = loss.order
            for lo in range(0, h.shape[0], loss.rows):
                hi = min(h.shape[0], lo + loss.rows)
                hr = h[lo:hi]
                args = []
                for n, x in zip(names, rest):
                    k = loss.row_axes.get(n)
                    args.append(x.narrow(k, lo, hi - lo) if k is not None and x is not None else x)
                with torch.enable_grad():
                    z = (hr.detach() @ w.detach().T).requires_grad_(True)
                    per = loss.fn(z, *args, reduction="none", **params)
                    s = per.sum()
                    (dz,) = torch.autograd.grad(s, [z])
                total += s.detach()
                count += per.numel()
                dh[lo:hi] = dz @ w.detach()
                dw.addmm_(dz.T, hr.detach())
            ctx.save_for_backward(dh, dw)
            ctx.n_rest = len(rest)
            return total, torch.tensor(float(count), dtype=h.dtype)

        @staticmethod
        def backward(ctx, g_total, g_count):
            dh, dw = ctx.saved_tensors
            return (None, None, g_total * dh, g_total * dw) + (None,) * ctx.n_rest

    return RowBlocks


_RowBlocks = _Lazy(_make_rows)


DW_SLICE = 8192  # rows of dW updated at a time by the jax row-blocked schedule


def _jax_row_blocks(loss: RowBlocked, params: dict, h, w, rest):
    """The jax row-blocked schedule: a custom_vjp whose forward takes every block's gradient
    (jax.value_and_grad of the block's loss sum) and whose backward only scales them, so no
    block's [rows, V] logits outlive its step."""
    import math

    import jax
    import jax.numpy as jnp

    def per_element(z, args):
        return loss.fn(z, *args, reduction="none", **params)

    @jax.custom_vjp
    def total_of(h, w):
        return fwd(h, w)[0]

    def block(hr, w, args, dw):
        val, dz = jax.value_and_grad(lambda z: jnp.sum(per_element(z, args)))(hr @ w.T)
        return val, dz @ w, accumulate(dw, dz, hr)

    def accumulate(dw, dz, hr):
        """dw + dz.T @ hr, V-slice by V-slice in place: the whole product would be a second
        [V, D] buffer beside the accumulator (XLA does not fuse the add into the matmul)."""
        v = w.shape[0]
        s = min(DW_SLICE, v)

        def add(k, dw):
            start = k * s
            part = jax.lax.dynamic_slice_in_dim(dz, start, s, axis=1).T @ hr
            cur = jax.lax.dynamic_slice_in_dim(dw, start, s, axis=0)
            return jax.lax.dynamic_update_slice_in_dim(dw, cur + part, start, axis=0)

        dw = jax.lax.fori_loop(0, v // s, add, dw)
        if v % s:
            rest = v - v % s
            dw = dw.at[rest:].add(dz[:, rest:].T @ hr)
        return dw

    def fwd(h, w):
        # whole blocks in a lax.scan (one block's buffers live at a time: an unrolled Python
        # loop lets XLA keep every block's [rows, V] logits alive), the remainder after it
        n, r = h.shape[0], loss.rows
        main = n - n % r
        total, dw, dh = jnp.zeros((), h.dtype), jnp.zeros_like(w), []
        if main:
            rowed = [k for k, name in enumerate(loss.order) if rest[k] is not None
                     and name in loss.row_axes]  # fmt: skip

            def blocks_of(x, axis):
                x = jnp.moveaxis(x[(slice(None),) * axis + (slice(0, main),)], axis, 0)
                return x.reshape((main // r, r) + x.shape[1:])

            xs = [blocks_of(h, 0)] + [blocks_of(rest[k], loss.row_axes[loss.order[k]])
                                      for k in rowed]  # fmt: skip

            def body(carry, x):
                args = list(rest)
                for k, xk in zip(rowed, x[1:]):
                    args[k] = jnp.moveaxis(xk, 0, loss.row_axes[loss.order[k]])
                val, dhb, dw = block(x[0], w, args, carry[1])
                return (carry[0] + val, dw), dhb

            (total, dw), dhs = jax.lax.scan(body, (total, dw), xs)
            dh.append(dhs.reshape((main,) + h.shape[1:]))
        if main < n:
            val, dhb, dw = block(h[main:], w, loss.block_args(rest, main, n), dw)
            total = total + val
            dh.append(dhb)
        return total, (jnp.concatenate(dh), dw)

    def bwd(res, g):
        dh, dw = res
        return g * dh, g * dw

    total_of.defvjp(fwd, bwd)
    # the mean's count: elements of the per-element loss, from shapes alone
    logits = jax.ShapeDtypeStruct(h.shape[:-1] + (w.shape[0],), h.dtype)
    shape = jax.eval_shape(lambda z: per_element(z, rest), logits).shape
    return total_of(h, w), jnp.asarray(float(math.prod(shape)), h.dtype)
