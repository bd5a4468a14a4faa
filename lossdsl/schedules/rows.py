"""The row-blocked schedule (`compile_linear(rows=R)`): the loss fused with the final linear
layer, in blocks of batch rows through the row plan (lossdsl/schedules/rowplan.py). This
module holds `RowBlocked`, the framework-neutral part; the torch autograd.Function is in
rows_torch.py, the jax custom_vjp in rows_jax.py."""

from __future__ import annotations

import itertools

from lossdsl.codegen import load_backend
from lossdsl.graph import slice_eqns
from lossdsl.ir import Program, Var
from lossdsl.schedules.rowplan import row_plan
from lossdsl.schedules.rows_jax import jax_row_blocks
from lossdsl.schedules.rows_torch import row_blocks_function
from lossdsl.schedules.subfunctions import (
    as_type,
    call_sub,
    carrier_maker,
    full_sizes,
    sub_program,
)
from lossdsl.types import Dim

H_NAME = "rows_h_"  # h's name in a function run once (it binds the logits' batch dims)


class RowBlocked:
    """The linear-fused loss in blocks of batch rows: each block's logits [rows, ..., V] exist
    for one step and the block's gradient is pulled back into dh and dW at once (three matmuls
    in all, as the unfused loss: Liger-Kernel's fused linear cross-entropy schedule).

    Built from the row plan (lossdsl/schedules/rowplan.py: refused at compile time, with the
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

    def __init__(self, prog: Program, logits: str, reduction: str, rows: int, mods):
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
            eqns, free = slice_eqns(pl.block + (pl.stat,), {pl.stat.out.name})
            self.block_args = sorted(free - params - {logits})
            ins = [vars_[logits]] + [vars_[a] for a in self.block_args]
            sub = sub_program(p, "row block", eqns, ins, pl.stat.out)
            if load_backend(self.backend).TARGET.library_calls:
                from lossdsl.passes.library import library

                sub = library(sub)  # F.cross_entropy(ignore_index, reduction="sum") per block
            self.block = mods.fn(sub)
            for name in sorted(set(self.block_args) - inputs):
                eqns, free = slice_eqns(pl.row, {name})
                ins = sorted(free - params)
                self.pre[name] = self._once(mods, f"row value {name}", eqns, ins, vars_[name])
        out = p.output(reduction)
        stat = pl.stat.out.name if pl.stat is not None else None
        self.row = None
        if not (isinstance(out, Var) and out.name == stat):  # else the total is the loss
            want = {out.name} if isinstance(out, Var) else set()
            row_eqns, free = slice_eqns(pl.row, want)
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
        return mods.fn(sub_program(p, doc, eqns, [self.vars[a] for a in ins], out)), ins

    def __call__(self, inputs: dict, params: dict, h, w, b=None):
        values = {**inputs, H_NAME: h}
        kw = {k: v for k, v in params.items() if k in self.params}
        lshape = tuple(h.shape[:-1]) + (w.shape[0],)
        sizes = full_sizes(self.inputs, self.logits, values, lshape)
        carriers = carrier_maker(self.backend, h)
        for name, (fn, ins) in self.pre.items():
            x = call_sub(fn, [values[a] for a in ins], kw, sizes, carriers, True)
            values[name] = as_type(x, self.vars[name].type.dtype, h, self.backend)
        total = None
        if self.block is not None:
            tensors = [values[a] for a in self.block_args]
            if self.backend == "jax":
                total = jax_row_blocks(self, kw, sizes, h, w, b, tensors)
            else:
                total = row_blocks_function.apply(self, kw, sizes, h, w, b, *tensors)
            if self.plan.mean_over is not None:  # a mean: the total over its element count
                n = 1
                for d in self.plan.mean_over:
                    n *= d.size(sizes[d.name], sizes.__getitem__)
                # an empty batch: the plain mean's empty value, 0 with zero gradient
                total = total / float(n) if n else total * 0.0
        if self.row is None:
            return total
        if self.plan.stat is not None:
            values[self.plan.stat.out.name] = total
        fn, ins = self.row
        return call_sub(fn, [values[a] for a in ins], kw, sizes, carriers, True)

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
        return call_sub(self.block, [z, *args], kw, bsizes, carrier_maker(self.backend, z), True)

    def floats(self) -> list[int]:
        """The block values (by position) that a block's gradient is taken for."""
        return [i for i, a in enumerate(self.block_args) if self.vars[a].type.dtype == "float"]
