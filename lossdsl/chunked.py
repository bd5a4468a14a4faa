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
from dataclasses import dataclass

from lossdsl.chunk import Plan, combine, pick_mask, plan
from lossdsl.codegen import (
    dims_needed,
    function_name,
    load_backend,
    load_module,
    module_source,
    public_names,
)
from lossdsl.errors import InputError, class_ids_message
from lossdsl.ir import Atom, Eqn, InputDecl, Program, Var, index_sources
from lossdsl.ops import OPS
from lossdsl.types import Dim, TensorType


class Modules:
    """The generated modules of one chunked compile, deduplicated by source (the sum and the
    mean plans share their statistics). `names` lists (module, linecache filename) pairs: the
    compiler forgets them once nobody holds the compiled function (codegen.forget_modules)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.fns: dict[str, object] = {}
        self.names: list[tuple[str, str]] = []

    def fn(self, prog: Program):
        """An ordinary generated function (torch or jax) for a sub-program."""
        src = module_source(load_backend(self.backend).TARGET, [prog], prog.doc)
        if src not in self.fns:
            mod = load_module(src, "chunked", prog.name, self.backend, self.names)
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
        for d in dims_needed(e):
            if d.name not in bound and d.name not in carriers and not d.unit:
                # a variadic *S is carried as float[*S]: its axes' shape, not only their product
                dim = Dim(d.name, variadic=d.variadic)
                carriers[d.name] = Var(carrier_name(d.name), TensorType("float", (dim,)))
    if not carriers and not any(v.type.dtype == "float" for v in inputs):
        # a value of params and ints only (1 + sin(pa)) is computed in the dtype of the first
        # float input: a carrier gives it the logits' (else torch's default float32)
        fl = (d for i in prog.inputs if i.var.type.dtype == "float" for d in i.var.type.dims)
        d = next(fl, None)
        if d is not None:
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
    pick: Eqn | None  # for z[t]: the pick itself (the layout of its result)
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
            out[name] = carriers(sizes.get("*" + name[4:-1], sizes[name[4:-1]]))
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
            pick = e if e.op == "gather" else None
            self.stats.append(_Stat(s.var.name, s.kind, fn, args, gather_index, pick, ties))
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
        return _full_sizes(self.inputs, self.plan.logits, values, logits_shape)

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
                inside = pick_mask((local >= 0) & (local < n), s.pick)
                r = xp.where(inside, r, xp.zeros_like(r))
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
    """float[D] of D's size at no memory: a stride-0 view of one zero (n: a size, or the
    shape of a variadic dim's axes)."""
    if backend == "torch":
        import torch

        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        return lambda n: zero.expand(n)
    import jax.numpy as jnp

    return lambda n: jnp.broadcast_to(
        jnp.zeros((), like.dtype), n if isinstance(n, tuple) else (n,)
    )


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


H_NAME = "rows_h_"  # h's name in a function run once (it binds the logits' batch dims)


class RowBlocked:
    """The linear-fused loss in blocks of batch rows: each block's logits [rows, ..., V] exist
    for one step and the block's gradient is pulled back into dh and dW at once (three matmuls
    in all, as the unfused loss: Liger-Kernel's fused linear cross-entropy schedule).

    Built from the row plan (lossdsl/chunk.py `row_plan`: refused at compile time, with the
    construct, when a block would need the other blocks' rows). Generated functions:

      pre_u(inputs)           a value free of the logits that needs the whole batch (a
                              batch mean of the targets, size(B), a fill over B): once, at
                              full size, sliced along B for each block that reads it
      block(z, ...)           a block's share of the loss's one total over every dim (B
                              too), from its rows of the inputs (a one-hot target is made
                              per block: no [B, V] value is held whole)
      row(total, inputs)      the loss from that total: terms without B added once, a mean's
                              denominator (None when the loss is the total itself)

    The total's gradient w.r.t. h, W and the float values a block reads is accumulated block
    by block in the forward pass and scaled by the total's cotangent in backward."""

    def __init__(self, spec_fn, prog: Program, logits: str, reduction: str, rows: int, mods):
        from lossdsl.chunk import row_plan

        self.fn = spec_fn  # the plain function (unused by the blocks: they run the plan)
        self.reduction, self.rows, self.backend, self.logits = reduction, rows, mods.backend, logits
        self.plan = pl = row_plan(prog, logits, reduction)
        p = pl.prog
        self.batch = pl.batch
        self.inputs = [d.var for d in p.inputs]
        vars_ = {d.var.name: d.var for d in p.inputs} | {e.out.name: e.out for e in p.eqns}
        self.vars = vars_
        self.params = [q.var.name for q in p.params]
        params, inputs = set(self.params), {d.var.name for d in p.inputs}
        self.pre: dict[str, tuple] = {}
        self.block_args: list[str] = []
        self.block = None
        if pl.stat is not None:
            eqns, free = _needed(pl.block + (pl.stat,), {pl.stat.out.name})
            self.block_args = sorted(free - params - {logits})
            ins = [vars_[logits]] + [vars_[a] for a in self.block_args]
            sub = _sub(p, "row block", eqns, ins, pl.stat.out)
            if load_backend(self.backend).TARGET.library_calls:
                from lossdsl.passes.library import library

                sub = library(sub)  # F.cross_entropy(ignore_index, reduction="sum") per block
            self.block = mods.fn(sub)
            for name in sorted(set(self.block_args) - inputs):
                eqns, free = _needed(pl.row, {name})
                ins = sorted(free - params)
                self.pre[name] = self._once(mods, f"row value {name}", eqns, ins, vars_[name])
        out = p.output(reduction)
        stat = pl.stat.out.name if pl.stat is not None else None
        self.row = None
        if not (isinstance(out, Var) and out.name == stat):  # else the total is the loss
            want = {out.name} if isinstance(out, Var) else set()
            row_eqns, free = _needed(pl.row, want)
            free -= params
            ins = sorted(free - {stat}) + ([stat] if stat in free else [])
            self.row = self._once(mods, "row function", row_eqns, ins, out)

    def _once(self, mods, doc: str, eqns, ins: list[str], out) -> tuple:
        """A function run once at full size: (fn, its input names). A dim of the logits that
        no input binds (a fill over [B, *S], size(B)) is bound by h [B, ..., Dh], passed
        along for its shape (a carrier cannot carry a variadic dim's axes)."""
        p = self.plan.prog
        bound = {d for a in ins for d in self.vars[a].type.dims}
        lt = self.vars[self.logits].type
        if any(d not in bound for d in lt.dims[:-1]):
            taken = {d.name for v in self.vars.values() for d in v.type.dims}
            dh = next(f"Dh{k}" for k in itertools.count() if f"Dh{k}" not in taken)
            self.vars[H_NAME] = Var(H_NAME, lt.with_dims(lt.dims[:-1] + (Dim(dh),)))
            ins = ins + [H_NAME]
        return mods.fn(_sub(p, doc, eqns, [self.vars[a] for a in ins], out)), ins

    def __call__(self, inputs: dict, params: dict, h, w):
        values = {**inputs, H_NAME: h}
        kw = {k: v for k, v in params.items() if k in self.params}
        lshape = tuple(h.shape[:-1]) + (w.shape[0],)
        sizes = _full_sizes(self.inputs, self.logits, values, lshape)
        carriers = _carrier_maker(self.backend, h)
        for name, (fn, ins) in self.pre.items():
            x = _call(fn, [values[a] for a in ins], kw, sizes, carriers, True)
            values[name] = _as_type(x, self.vars[name].type.dtype, h, self.backend)
        total = None
        if self.block is not None:
            tensors = [values[a] for a in self.block_args]
            if self.backend == "jax":
                total = _jax_row_blocks(self, kw, sizes, h, w, tensors)
            else:
                total = _RowBlocks.apply(self, kw, sizes, h, w, *tensors)
            if self.plan.mean_over is not None:  # a mean: the total over its element count
                n = 1
                for d in self.plan.mean_over:
                    n *= sizes[d.name] - d.cut
                # an empty batch: the plain mean's empty value, 0 with zero gradient
                total = total / float(n) if n else total * 0.0
        if self.row is None:
            return total
        if self.plan.stat is not None:
            values[self.plan.stat.out.name] = total
        fn, ins = self.row
        return _call(fn, [values[a] for a in ins], kw, sizes, carriers, True)

    def axis(self, name: str, x) -> int | None:
        """The axis of B in block value `name` as passed (a variadic dim may precede it)."""
        dims = self.vars[name].type.dims
        if self.batch not in dims:
            return None
        i = dims.index(self.batch)
        if any(d.variadic for d in dims[:i]):
            return x.ndim - (len(dims) - i)
        return i

    def call_block(self, z, args: list, kw: dict, sizes: dict):
        """One block's total from its logits z [rows, ..., V] and its slices of the values."""
        bsizes = {**sizes, self.batch.name: z.shape[0]}
        return _call(self.block, [z, *args], kw, bsizes, _carrier_maker(self.backend, z), True)

    def floats(self) -> list[int]:
        """The block values (by position) that a block's gradient is taken for."""
        return [i for i, a in enumerate(self.block_args) if self.vars[a].type.dtype == "float"]


def _full_sizes(inputs: list[Var], logits: str, values: dict, logits_shape: tuple) -> dict:
    """Every dim's full size, from the inputs' shapes (a variadic dim: its axes' product)."""
    out: dict[str, int] = {}
    for var in inputs:
        x = values.get(var.name)
        shape = tuple(logits_shape) if var.name == logits else getattr(x, "shape", None)
        if shape is None:
            continue
        dims = var.type.dims
        k = len(shape) - (len(dims) - 1)  # the axes of a variadic dim
        pos = 0
        for dm in dims:
            n = 1
            for a in range(pos, pos + (k if dm.variadic else 1)):
                n *= int(shape[a]) if a < len(shape) else 1
            if dm.variadic:  # its axes' shape too, for a carrier of *S
                out.setdefault("*" + dm.name, tuple(int(x) for x in shape[pos : pos + k]))
            pos += k if dm.variadic else 1
            out.setdefault(dm.name, n)
    return out


def _make_rows():
    import torch

    class RowBlocks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, kw, sizes, h, w, *tensors):
            v, d = w.shape
            wd = w.detach()
            dh = torch.zeros_like(h)
            dw = torch.zeros_like(w)
            want = {i for i in loss.floats() if ctx.needs_input_grad[5 + i]}
            dt = [torch.zeros_like(t) if i in want else None for i, t in enumerate(tensors)]
            axes = [loss.axis(a, t) for a, t in zip(loss.block_args, tensors)]
            total = torch.zeros((), dtype=h.dtype, device=h.device)
            for lo in range(0, h.shape[0], loss.rows):
                hi = min(h.shape[0], lo + loss.rows)
                hr = h[lo:hi].detach()
                with torch.enable_grad():
                    z = (hr @ wd.T).requires_grad_(True)
                    args, leaves = [], [z]
                    for i, (t, k) in enumerate(zip(tensors, axes)):
                        x = t if k is None else t.narrow(k, lo, hi - lo)
                        x = x.detach() if torch.is_tensor(x) else x
                        if i in want:
                            x.requires_grad_(True)
                            leaves.append(x)
                        args.append(x)
                    s = loss.call_block(z, args, kw, sizes)
                    g = [None] * len(leaves)
                    if s.requires_grad:  # not when every use of the logits is stop_grad
                        g = torch.autograd.grad(s, leaves, allow_unused=True)
                total += s.detach()
                dz = g[0]
                if dz is not None:
                    dh[lo:hi] = dz @ wd
                    dw.addmm_(dz.reshape(-1, v).T, hr.reshape(-1, d))
                for i, gi in zip(sorted(want), g[1:]):  # the leaves' order
                    if gi is None:
                        continue
                    k = axes[i]
                    (dt[i] if k is None else dt[i].narrow(k, lo, hi - lo)).add_(gi)
            ctx.save_for_backward(dh, dw, *(x for x in dt if x is not None))
            ctx.has = [x is not None for x in dt]
            ctx.empty = h.shape[0] == 0
            return total

        @staticmethod
        def backward(ctx, g):
            dh, dw, *saved = ctx.saved_tensors
            if ctx.empty:  # no rows: the total's gradient is an empty sum (g may be inf: 1/0)
                g = torch.zeros_like(g)
            it = iter(saved)
            dt = [g * next(it) if has else None for has in ctx.has]
            return (None, None, None, g * dh, g * dw, *dt)

    return RowBlocks


_RowBlocks = _Lazy(_make_rows)


DW_SLICE = 8192  # rows of dW updated at a time by the jax row-blocked schedule


def _jax_row_blocks(loss: RowBlocked, kw: dict, sizes: dict, h, w, tensors: list):
    """The jax row-blocked schedule: a custom_vjp whose forward takes every block's gradient
    (jax.value_and_grad of the block's total, w.r.t. its logits and its float values) and
    whose backward only scales them, so no block's [rows, V] logits outlive its step."""
    import jax
    import jax.numpy as jnp

    fl = loss.floats()
    axes = [loss.axis(a, t) for a, t in zip(loss.block_args, tensors)]
    v, d = w.shape

    def block(hr, w, args, dw):
        def total(z, fargs):
            full = list(args)
            for i, x in zip(fl, fargs):
                full[i] = x
            return loss.call_block(z, full, kw, sizes)

        val, (dz, dfl) = jax.value_and_grad(total, argnums=(0, 1))(hr @ w.T, [args[i] for i in fl])
        dz2, hr2 = dz.reshape(-1, v), hr.reshape(-1, d)
        return val, dz @ w, accumulate(dw, dz2, hr2), dfl

    def accumulate(dw, dz, hr):
        """dw + dz.T @ hr, V-slice by V-slice in place: the whole product would be a second
        [V, D] buffer beside the accumulator (XLA does not fuse the add into the matmul)."""
        s = min(DW_SLICE, v)

        def add(k, dw):
            start = k * s
            part = jax.lax.dynamic_slice_in_dim(dz, start, s, axis=1).T @ hr
            cur = jax.lax.dynamic_slice_in_dim(dw, start, s, axis=0)
            return jax.lax.dynamic_update_slice_in_dim(dw, cur + part, start, axis=0)

        if s:
            dw = jax.lax.fori_loop(0, v // s, add, dw)
        if s and v % s:
            rest = v - v % s
            dw = dw.at[rest:].add(dz[:, rest:].T @ hr)
        return dw

    def cut(x, k, lo, hi):
        return x if k is None else x[(slice(None),) * k + (slice(lo, hi),)]

    @jax.custom_vjp
    def total_of(h, w, *ts):
        return fwd(h, w, *ts)[0]

    def fwd(h, w, *ts):
        # whole blocks in a lax.scan (one block's buffers live at a time: an unrolled Python
        # loop lets XLA keep every block's [rows, V] logits alive), the remainder after it
        n, r = h.shape[0], loss.rows
        main = n - n % r
        total, dw = jnp.zeros((), h.dtype), jnp.zeros_like(w)
        dh: list = []
        parts: dict = {i: [] for i in fl if axes[i] is not None}  # d(values along B), by block
        whole = {i: jnp.zeros_like(ts[i]) for i in fl if axes[i] is None}
        rowed = [i for i, k in enumerate(axes) if k is not None]
        if main:

            def blocks_of(x, axis):
                x = jnp.moveaxis(cut(x, axis, 0, main), axis, 0)
                return x.reshape((main // r, r) + x.shape[1:])

            xs = [blocks_of(h, 0)] + [blocks_of(ts[i], axes[i]) for i in rowed]

            def body(carry, x):
                total, dw, acc = carry
                args = list(ts)
                for i, xi in zip(rowed, x[1:]):
                    args[i] = jnp.moveaxis(xi, 0, axes[i])
                val, dhb, dw, dfl = block(x[0], w, args, dw)
                g = dict(zip(fl, dfl))
                acc = {i: acc[i] + g[i] for i in acc}
                ys = [dhb] + [jnp.moveaxis(g[i], axes[i], 0) for i in parts]
                return (total + val, dw, acc), ys

            (total, dw, whole), ys = jax.lax.scan(body, (total, dw, whole), xs)
            dh.append(ys[0].reshape((main,) + h.shape[1:]))
            for i, y in zip(parts, ys[1:]):
                y = y.reshape((main,) + y.shape[2:])
                parts[i].append(jnp.moveaxis(y, 0, axes[i]))
        if main < n:
            args = [cut(t, k, main, n) for t, k in zip(ts, axes)]
            val, dhb, dw, dfl = block(h[main:], w, args, dw)
            total = total + val
            dh.append(dhb)
            g = dict(zip(fl, dfl))
            for i in parts:
                parts[i].append(g[i])
            whole = {i: whole[i] + g[i] for i in whole}
        dts = [None] * len(ts)
        for i in fl:
            if i in whole:
                dts[i] = whole[i]
            else:  # an empty batch has no block: a zero gradient
                ps = parts[i]
                dts[i] = jnp.concatenate(ps, axes[i]) if ps else jnp.zeros_like(ts[i])
        dh = jnp.concatenate(dh) if dh else jnp.zeros_like(h)
        return total, (dh, dw, dts)

    def bwd(res, g):
        dh, dw, dts = res
        if h.shape[0] == 0:  # no rows: the total's gradient is an empty sum (g may be inf: 1/0)
            g = jnp.zeros_like(g)
        return (g * dh, g * dw, *(None if x is None else g * x for x in dts))

    total_of.defvjp(fwd, bwd)
    return total_of(h, w, *tensors)
