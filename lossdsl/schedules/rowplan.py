"""The row plan (`compile_linear(rows=R)`, lossdsl/schedules/rows.py): when can a loss over
logits [B, ..., V] run in blocks of batch rows, each block's gradient taken at once? The
contract and its refusals (ChunkError naming the construct) live here."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lossdsl.ir import Eqn, Program, Var
from lossdsl.ops import OPS
from lossdsl.passes.cleanup import dce
from lossdsl.schedules.plan import AXIS_KINDS, LOCAL_KINDS, ChunkError, op_axes
from lossdsl.types import Dim

_ROWS_HINT = (
    "use the plain schedule (or compile_linear(chunk=...)); a row-blocked loss reads its "
    "logits row by row (elementwise terms, reductions over dims other than {b}) and adds them "
    "up over {b} (and the other dims) in one sum or mean; terms without {b} and anything "
    "computed from that total are evaluated once"
)


@dataclass(frozen=True)
class RowPlan:
    """A loss split along the batch dim B of its logits [B, ..., V] (the row-blocking
    contract): the block side (every value computed from the logits: row-local along B, each
    keeping B), one statistic (a sum -- or a mean -- over every dim of a block-side value: the
    blocks' sums add up), and the row side (everything else: values free of the logits, which
    are computed once at full size and sliced along B where a block reads them, and the
    function of the statistic that gives the loss, run once)."""

    prog: Program  # the program for one reduction
    logits: str
    batch: Dim  # B
    block: tuple[Eqn, ...]  # run per block: values of the logits, row-local values free of them
    stat: Eqn | None  # the statistic as a sum over every dim (None: the loss ignores the logits)
    mean_over: tuple[Dim, ...] | None  # the statistic was a mean over these dims
    row: tuple[Eqn, ...]  # every equation free of the logits (the functions run once)


def row_plan(prog: Program, logits: str, reduction: str) -> RowPlan:
    """The row-block plan of `prog` for `reduction` ("sum" or "mean") along the first dim of
    input `logits`; ChunkError naming the construct when a block of rows cannot be computed
    without the other blocks (a reduction, pick, shift or pairing along B of a value computed
    from the logits; a statistic over B flowing back into per-row terms)."""
    inp = next((d for d in prog.inputs if d.var.name == logits), None)
    t = inp.var.type if inp is not None else None
    if t is None or t.dtype != "float" or t.of or len(t.dims) < 2 or t.dims[0].variadic:
        raise ChunkError(
            f"{prog.name} cannot run in row blocks: its first input '{logits}' is {t}, not "
            "float logits [B, ..., V] (h @ W.T) with a batch dim B first",
            None,
            "the row-blocked schedule is for a loss over logits = h @ W.T: use the plain schedule",
        )
    b = t.dims[0]
    hint = _ROWS_HINT.format(b=b)
    name = prog.name

    def refuse(e: Eqn | None, what: str) -> ChunkError:
        return ChunkError(f"{name} cannot run in row blocks of {b}: {what}", e and e.span, hint)

    prog = dce(replace(prog, outputs=((reduction, prog.output(reduction)),)))
    regroup = next((e for e in prog.eqns if e.op == "reshape"), None)
    if regroup is not None:
        raise refuse(regroup, "split() and merge() regroup whole dims, never a block of one")
    spatial = next(
        (e for e in prog.eqns if OPS[e.op].kind == "window" and e.attr("over")[0].variadic), None
    )
    if spatial is not None:  # (its blocks would need *S's axes, which they do not carry)
        raise refuse(spatial, "a window over *S unflattens its axes, which row blocks do not carry")
    dep = {logits}  # values computed from the logits (each keeps B: one per row)
    after: set[str] = set()  # values computed from the statistic
    block: list[Eqn] = []
    row: list[Eqn] = []
    stat = None
    inputs = {d.var.name for d in prog.inputs} | {q.var.name for q in prog.params}
    local: set[str] = set()  # free of the logits and row-local: as well computed per block

    def row_local(e: Eqn) -> bool:
        kind = OPS[e.op].kind
        return kind in LOCAL_KINDS or (kind in AXIS_KINDS and b not in op_axes(e))

    for e in prog.eqns:
        vars_ = [a for a in e.args if isinstance(a, Var)]
        kin = sorted({d for a in vars_ + [e.out] for d in a.type.dims if d.name == b.name} - {b})
        if not any(a.name in dep for a in vars_):
            row.append(e)  # free of the logits: once, at full size
            if any(a.name in after for a in vars_):
                after.add(e.out.name)
            elif (
                not kin and row_local(e) and all(a.name in inputs or a.name in local for a in vars_)
            ):
                # a block computes it from its rows of the inputs (a one-hot target [B, V]
                # is never held whole); what needs the whole batch (a mean over B, size(B),
                # a fill over B) is computed once and sliced
                local.add(e.out.name)
                block.append(e)
            continue
        if kin:
            raise refuse(
                e,
                f"{e.op} pairs the logits' {b} with {', '.join(map(str, kin))} (another copy of "
                f"{b}): a block of rows would need every other block",
            )
        if any(a.name in after for a in vars_):
            raise refuse(
                e,
                f"this {e.op} combines a total over {b} of the logits (known only after the "
                f"last block) with per-row values of the logits: that needs a second pass",
            )
        if row_local(e) and b in e.out.type.dims:
            block.append(e)
            dep.add(e.out.name)
            continue
        total = e.op in ("sum", "mean", "contract") and b in op_axes(e) and not e.out.type.dims
        if not total:
            raise refuse(
                e,
                f"{e.op} over {b} of the logits mixes rows (only one sum or mean over every "
                f"dim, {b} among them, adds up block by block)",
            )
        if stat is not None:
            raise refuse(
                e,
                f"a second total over {b} of the logits (a block's gradient is taken for one "
                "total)",
            )
        stat = e
        after.add(e.out.name)
    mean_over = None
    if stat is not None and stat.op == "mean":
        mean_over = tuple(stat.args[0].type.dims)
        stat = replace(stat, op="sum")
    out = prog.output(reduction)
    if isinstance(out, Var) and out.name in dep:
        raise refuse(None, f"the loss keeps {b} in its reduction='{reduction}' result")
    return RowPlan(prog, logits, b, tuple(block), stat, mean_over, tuple(row))
