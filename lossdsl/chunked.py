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

import itertools
import sys
import types
from dataclasses import dataclass

from lossdsl.backend import function_name, load_backend, module_source
from lossdsl.chunk import Plan, combine, plan
from lossdsl.errors import InputError, ParamError, class_ids_message
from lossdsl.ir import Eqn, InputDecl, Lit, ParamDecl, Program, Var, index_sources
from lossdsl.types import Dim

_MODULE_IDS = itertools.count()  # unique names: sys.modules shrinks as compiled modules go


def _torch_fn(prog: Program, backend: str = "torch"):
    """An ordinary generated function (torch, or jax) for a sub-program."""
    src = module_source(load_backend(backend).TARGET, [prog], prog.name)
    mod = types.ModuleType(f"_lossdsl_chunked_{prog.name}_{next(_MODULE_IDS)}")
    exec(compile(src, f"<lossdsl chunked {prog.name}>", "exec"), mod.__dict__)  # our IR only
    mod.LossInputError, mod.LossParamError = InputError, ParamError
    sys.modules[mod.__name__] = mod
    return getattr(mod, function_name(prog.name))


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


def _sub(prog: Program, name: str, eqns, inputs: list[Var], out: Var) -> Program:
    params = tuple(q for q in prog.params if any(q.var in e.args for e in eqns) or q.var == out)
    return Program(
        name=name,
        doc=name,
        inputs=tuple(InputDecl(v) for v in inputs),
        params=params,
        eqns=tuple(eqns),
        outputs=(("none", out), ("sum", out), ("mean", out)),
        default_reduction="none",
    )


def _sizes_as_params(eqns, inputs: list[Var]):
    """size(V) in a sub-program none of whose inputs is over V (the row function sees only
    statistics): the size becomes an int param, passed in at run time as `size_V`."""
    have = {d.name for v in inputs for d in v.type.dims}
    kept, params = [], []
    for e in eqns:
        if e.op == "size" and e.attr("dim").name not in have:
            params.append(ParamDecl(Var(f"size_{e.attr('dim').name}", e.out.type), 0))
            kept.append(Eqn(e.out, "add", (params[-1].var, Lit(0, e.out.type)), ()))
        else:
            kept.append(e)
    uniq = tuple({p.var.name: p for p in params}.values())
    return tuple(kept), uniq


@dataclass
class _Stat:
    name: str
    kind: str
    fn: object
    args: list[str]  # the stat function's inputs after the slice: names of row values
    gather_index: str | None  # for z[t]: the row value holding t (shifted per slice)


class ChunkedLoss:
    """The chunked form of one spec variant for one reduction (torch)."""

    def __init__(self, prog: Program, logits: str, reduction: str, chunk: int):
        self.plan: Plan = plan(prog, logits, reduction)
        self.reduction, self.chunk = reduction, chunk
        p = self.plan.prog
        self.v = self.plan.dim
        vars_ = {d.var.name: d.var for d in p.inputs}
        vars_ |= {e.out.name: e.out for e in p.eqns}
        self.vars = vars_
        stat_names = {s.var.name for s in self.plan.stats}
        # row values the chunk side reads, computed before the slices
        chunk_eqns = self.plan.chunk_side
        inputs = {d.var.name for d in p.inputs}
        self.pre: dict[str, object] = {}
        reads: set[str] = set()
        self.stats: list[_Stat] = []
        for s in self.plan.stats:
            e = s.eqn
            eqns, free = _needed(chunk_eqns + (e,), {s.var.name})
            free -= {q.var.name for q in p.params}
            gather_index = None
            if e.op == "gather":
                gather_index = e.args[1].name if isinstance(e.args[1], Var) else None
            args = sorted(free - {logits})
            reads |= set(args)
            fn = _torch_fn(
                _sub(
                    p, f"stat_{s.var.name}", eqns, [vars_[logits]] + [vars_[a] for a in args], s.var
                )
            )
            self.stats.append(_Stat(s.var.name, s.kind, fn, args, gather_index))
        for name in sorted(reads - inputs):
            eqns, free = _needed(self.plan.row_side, {name})
            free -= {q.var.name for q in p.params}
            ins = sorted(free)
            self.pre[name] = (
                _torch_fn(_sub(p, f"pre_{name}", eqns, [vars_[a] for a in ins], vars_[name])),
                ins,
            )
        # the row function: every row-side equation, from the inputs and the statistics
        out = p.output(reduction)
        row_eqns, free = _needed(self.plan.row_side, {out.name} if isinstance(out, Var) else set())
        free -= {q.var.name for q in p.params}
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
        row_eqns, sizes = _sizes_as_params(row_eqns, row_ins)
        row_prog = Program(
            name="row",
            doc="row",
            inputs=tuple(InputDecl(v) for v in row_ins),
            params=p.params + sizes,
            eqns=row_eqns,
            outputs=((reduction, out), ("none", per))
            + tuple((m, out) for m in ("sum", "mean") if m != reduction),
            default_reduction=reduction,
        )
        self.row = _torch_fn(row_prog)
        self.params = [q.var.name for q in p.params]

    # -- running
    def __call__(self, inputs: dict, params: dict, linear=None):
        """inputs: name -> tensor (the logits among them unless `linear` = (h, W))."""

        logits = self.plan.logits
        values = dict(inputs)
        kw = {k: v for k, v in params.items() if k in self.params}
        total = linear[1].shape[0] if linear is not None else values[logits].shape[-1]
        kw[f"size_{self.v.name}"] = int(total)
        for name, (fn, ins) in self.pre.items():
            values[name] = fn(*(values[a] for a in ins), **self._kw(fn, kw))
        for s in self.stats:  # the slices see shifted ids: check the class ids here, once
            if s.gather_index is not None:
                self._check_ids(values[s.gather_index], s.gather_index, int(total))
        extra = sorted({a for s in self.stats for a in s.args})
        tensors = [values[a] for a in extra]
        if linear is not None:
            h, w = linear
            stats = _Chunked.apply(self, kw, extra, h, w, *tensors)
        else:
            stats = _Chunked.apply(self, kw, extra, values[logits], None, *tensors)
        by = dict(zip([s.name for s in self.stats], stats))
        args = [values[n] for n in self.row_inputs] + [by[n] for n in self.row_stats]
        return self.row(*args, reduction=self.reduction, **self._kw(self.row, kw))

    def _check_ids(self, t, name: str, n: int) -> None:
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            sources = index_sources(self.plan.prog, self.vars[name])
            lo, hi = int(t.min()), int(t.max())
            label = self.plan.prog.name
            raise InputError(class_ids_message(label, sources, self.v, n, lo, hi, opt_out=False))

    @staticmethod
    def _kw(fn, kw):
        import inspect

        names = inspect.signature(fn).parameters
        out = {k: v for k, v in kw.items() if k in names}
        if "check_indices" in names:
            out["check_indices"] = False
        return out

    def slice_stats(self, z, lo: int, kw: dict, values: dict):
        """Every statistic of one V-slice z = logits[..., lo:lo+n]."""
        import torch

        n = z.shape[-1]
        out = []
        for s in self.stats:
            args = []
            for a in s.args:
                x = values[a]
                dims = self.vars[a].type.dims
                if a == s.gather_index:
                    local = x - lo
                    inside = (local >= 0) & (local < n)
                    x = torch.where(inside, local, 0)
                elif self.v in dims:
                    k = len(dims) - 1 - dims.index(self.v)  # axis counted from the end
                    x = x.narrow(x.ndim - 1 - k, lo, n)
                args.append(x)
            r = s.fn(z, *args, **self._kw(s.fn, kw))
            if s.gather_index is not None:
                local = values[s.gather_index] - lo
                r = torch.where((local >= 0) & (local < n), r, torch.zeros_like(r))
            out.append(r)
        return out


def _slices(total: int, chunk: int):
    return [(lo, min(total, lo + chunk)) for lo in range(0, total, chunk)]


def _make_function():
    import torch

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, kw, extra, x, w, *tensors):
            values = dict(zip(extra, tensors))
            total = w.shape[0] if w is not None else x.shape[-1]
            acc = None
            with torch.no_grad():
                for lo, hi in _slices(total, loss.chunk):
                    z = x @ w[lo:hi].T if w is not None else x[..., lo:hi]
                    part = loss.slice_stats(z, lo, kw, values)
                    acc = (
                        part
                        if acc is None
                        else [
                            combine(s.kind, a, b, torch) for s, a, b in zip(loss.stats, acc, part)
                        ]
                    )
            ctx.loss, ctx.kw, ctx.extra = loss, kw, extra
            ctx.save_for_backward(x, w if w is not None else x, *tensors, *acc)
            ctx.fused = w is not None
            ctx.n_tensors = len(tensors)
            return tuple(acc)

        @staticmethod
        def backward(ctx, *d_stats):
            loss = ctx.loss
            saved = ctx.saved_tensors
            x, w = saved[0], saved[1] if ctx.fused else None
            tensors = saved[2 : 2 + ctx.n_tensors]
            totals = saved[2 + ctx.n_tensors :]
            values = dict(zip(ctx.extra, tensors))
            total = w.shape[0] if w is not None else x.shape[-1]
            dx = torch.zeros_like(x)
            dw = torch.zeros_like(w) if w is not None else None
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
                    parts = loss.slice_stats(z, lo, ctx.kw, values)
                    outs, grads = [], []
                    for s, part, tot, d in zip(loss.stats, parts, totals, d_stats):
                        if d is None:
                            continue
                        if s.kind == "logsumexp":
                            d = d * torch.exp(part - tot)
                        elif s.kind in ("max", "min"):
                            d = d * (part == tot).to(d.dtype)
                        outs.append(part)
                        grads.append(d)
                    if not outs:
                        continue
                    g = torch.autograd.grad(outs, leaves, grads, allow_unused=True)
                if w is not None:
                    if g[0] is not None:
                        dx += g[0]
                    if g[1] is not None:
                        dw[lo:hi] = g[1]
                elif g[0] is not None:
                    dx[..., lo:hi] = g[0]
            return (None, None, None, dx, dw) + (None,) * ctx.n_tensors

    return Chunked


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

    def __init__(
        self, spec_fn, prog: Program, logits: str, reduction: str, rows: int, backend="torch"
    ):
        from lossdsl.chunk import ChunkError

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
                raise ChunkError("the mean's denominator depends on the logits")
            ins = sorted(free)
            vars_ = {d.var.name: d.var for d in prog.inputs}
            # h [B, ..., D] rides along only to bind the batch dims' sizes (a weight absent
            # from the call is a fill over them)
            lt = vars_[logits].type
            shape_var = Var("h", lt.with_dims(lt.dims[:-1] + (Dim("D_h"),)))
            sub = _sub(prog, "denominator", eqns, [vars_[a] for a in ins] + [shape_var], den)
            self.den = (_torch_fn(sub, backend), ins)
            self.empty = e.attr("empty")
        elif reduction == "mean" and (e is None or e.op != "mean"):
            raise ChunkError(f"the mean is a {e.op if e else 'constant'}, not a mean over rows")
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
        den = fn(*(inputs[a] for a in ins), h, **ChunkedLoss._kw(fn, params))
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
