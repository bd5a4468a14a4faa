"""The V-sliced schedule (`compile(schedule="chunked")`, `compile_linear(chunk=...)`; issue 5):
a loss over logits [..., V] run V-slice by V-slice through its chunk plan
(lossdsl/schedules/plan.py), so that the [N, V] logits -- or, fused with the final linear
layer, h @ W.T -- are never held at once. This module holds `ChunkedLoss`, the
framework-neutral part; the torch autograd.Function is in vsliced_torch.py, the jax
checkpointed loop in vsliced_jax.py.

The plan splits a loss into row statistics over V and a row function of them. Each part becomes
an ordinary generated function (the same emitter as `compile`; lossdsl/schedules/subfunctions.py):

  pre_u(inputs)          a row value the chunk side reads (a shifted target, a mask)
  stat_s(z, ...)         one statistic of one V-slice z (logsumexp, a sum, z[target] or 0)
  row(stats, inputs)     the loss from the combined statistics

The slices' partial statistics are combined (sum: +, logsumexp: logaddexp, max / min);
backward recomputes each slice and pulls the statistics' gradients back through it (a
logsumexp slice gets dS * exp(s_k - S)), into dlogits, or into dh and dW[slice] when fused
with the linear layer. Peak memory: one [N, chunk] slice and its autograd graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from lossdsl.errors import InputError, class_ids_message
from lossdsl.graph import index_sources, slice_eqns
from lossdsl.ir import Eqn, Program, Var
from lossdsl.ops import OPS
from lossdsl.schedules.plan import Plan, pick_mask, plan
from lossdsl.schedules.subfunctions import (
    Modules,
    array_module,
    as_type,
    call_sub,
    carrier_maker,
    full_sizes,
    narrow,
    sub_program,
    traced,
)
from lossdsl.schedules.vsliced_jax import jax_chunked
from lossdsl.schedules.vsliced_torch import chunked_function


@dataclass
class _Stat:
    name: str
    kind: str
    fn: object
    args: list[str]  # the stat function's inputs after the slice: names of row values
    gather_index: str | None  # for z[t]: the row value holding t (shifted per slice)
    pick: Eqn | None  # for z[t]: the pick itself (the layout of its result)
    ties: object = None  # max/min: the function counting a slice's entries equal to its max


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
            eqns, free = slice_eqns(chunk_eqns + (e,), {s.var.name})
            args = sorted(free - params - {logits})
            reads |= set(args)
            ins = [vars_[logits]] + [vars_[a] for a in args]
            fn = mods.fn(sub_program(p, f"statistic {s.var.name}", eqns, ins, s.var))
            gather_index = e.args[1].name if e.op == "gather" else None
            ties = None
            if s.kind in ("max", "min"):
                teqns, tout = _ties(eqns, e)
                ties = mods.fn(sub_program(p, f"ties of {s.var.name}", teqns, ins, tout))
            pick = e if e.op == "gather" else None
            self.stats.append(_Stat(s.var.name, s.kind, fn, args, gather_index, pick, ties))
        for name in sorted(reads - inputs):
            eqns, free = slice_eqns(self.plan.row_side, {name})
            ins = sorted(free - params)
            sub = sub_program(p, f"row value {name}", eqns, [vars_[a] for a in ins], vars_[name])
            self.pre[name] = (mods.fn(sub), ins)
        # the row function: every row-side equation, from the inputs and the statistics
        out = p.output(reduction)
        want = {out.name} if isinstance(out, Var) else set()
        row_eqns, free = slice_eqns(self.plan.row_side, want)
        free -= params
        self.row_inputs = sorted(free - stat_names)
        self.row_stats = [s.name for s in self.stats if s.name in free]
        row_ins = [vars_[n] for n in self.row_inputs + self.row_stats]
        # its per-element loss stays the "none" output, so that an empty batch gives the
        # declared values (lossdsl/empty.py) rather than a mean over no rows
        # (the program's own "none" output: a sum or mean inside a scalar loss, a masked mean
        # over B', is no reduction of rows, and an empty B' gives its empty value)
        none = prog.output("none")
        row_vars = {e.out.name for e in row_eqns} | set(self.row_inputs)
        per = none if isinstance(none, Var) and none.name in row_vars else out
        self.row = mods.fn(sub_program(p, "row function", row_eqns, row_ins, out, per, reduction))
        self.extra = sorted({a for s in self.stats for a in s.args})
        self.params = [q.var.name for q in p.params]

    # -- running
    def sizes(self, values: dict, logits_shape: tuple) -> dict:
        """Every dim's full size, from the inputs' shapes (a variadic dim: its axes' product)."""
        return full_sizes(self.inputs, self.plan.logits, values, logits_shape)

    def __call__(self, inputs: dict, params: dict, linear=None):
        """inputs: name -> tensor (the logits among them unless `linear` = (h, W, bias or
        None))."""
        logits = self.plan.logits
        values = dict(inputs)
        kw = {k: v for k, v in params.items() if k in self.params}
        if linear is not None:
            h, w, _ = linear
            lshape = tuple(h.shape[:-1]) + (w.shape[0],)
        else:
            lshape = tuple(values[logits].shape)
        total = int(lshape[-1])
        sizes = self.sizes(values, lshape)
        ref = linear[0] if linear is not None else values[logits]
        carriers = carrier_maker(self.backend, ref)
        for name, (fn, ins) in self.pre.items():
            x = call_sub(fn, [values[a] for a in ins], kw, sizes, carriers, True)
            values[name] = as_type(x, self.vars[name].type.dtype, ref, self.backend)
        for s in self.stats:  # the slices see shifted ids: check the class ids here, once
            if s.gather_index is not None:
                self._check_ids(values[s.gather_index], s.gather_index, total)
        run = chunked_function.apply if self.backend == "torch" else jax_chunked
        if not self.stats:
            stats = ()
        elif linear is not None:
            stats = run(self, kw, sizes, *linear, *(values[a] for a in self.extra))
        else:
            stats = run(self, kw, sizes, values[logits], None, None,
                        *(values[a] for a in self.extra))  # fmt: skip
        by = dict(zip([s.name for s in self.stats], stats))
        args = [values[n] for n in self.row_inputs] + [by[n] for n in self.row_stats]
        return call_sub(self.row, args, kw, sizes, carriers, True)

    def _check_ids(self, t, name: str, n: int) -> None:
        if self.backend == "jax":
            if traced(t):  # under jit: no value to check
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
        xp = array_module(self.backend)
        n = z.shape[-1]
        csizes = {**sizes, self.v.name: n}
        carriers = carrier_maker(self.backend, z)
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
                        x = narrow(x, k, lo, n)
                args.append(x)
            r = call_sub(s.fn, [z, *args], kw, csizes, carriers, False)
            if s.gather_index is not None:
                local = values[s.gather_index] - lo
                inside = pick_mask((local >= 0) & (local < n), s.pick)
                r = xp.where(inside, r, xp.zeros_like(r))
            out.append(r)
            if ties:
                c = call_sub(s.ties, [z, *args], kw, csizes, carriers, False) if s.ties else None
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
