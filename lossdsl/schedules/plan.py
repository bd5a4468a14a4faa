"""Row statistics over a large class dim (issue 5, step one): when does a loss depend on its
logits [..., V] only through statistics that can be accumulated V-chunk by V-chunk?

`plan(prog, "logits")` rewrites the program into *stat form* -- log_softmax(z) becomes
z - logsumexp(z), a gather or a sum over V is pushed through terms that do not vary along V --
and then splits it in three:

  chunk side  equations over V (terms of the logits, of a per-class weight[V], of a multilabel
              target[B, V]) that need no statistic: evaluated on a slice of V at a time;
  statistics  reductions over V of chunk-side values (sum, logsumexp, max, min) and gathers
              along V (x[target]), each with the associative rule that combines two chunks;
  row side    everything else: a function of the statistics, the other inputs and the params.

If a chunk-side equation needs a statistic (softmax(z) * w summed with something that is not
linear in it), the program is not chunkable in one pass and `plan` raises ChunkError with the
reason. The V-sliced schedule (lossdsl/schedules/vsliced.py) builds on this plan; the plan
itself is checked here on the float64 reference (`evaluate_chunked`: the stat form computes the
same values). The row plan, for blocks of batch rows, is lossdsl/schedules/rowplan.py."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lossdsl.errors import LossError
from lossdsl.graph import depends_on, producers, walk
from lossdsl.ir import Atom, Eqn, Lit, Program, Var, verify
from lossdsl.ops import OPS, OpTypeError
from lossdsl.passes.cleanup import cse, dce
from lossdsl.passes.rewrite import Rewriter, Row, is_lit, run_rules
from lossdsl.types import Dim, DimError, TensorType, broadcast

# reduction op over V -> how two chunks' partial results combine: the function of that name in
# numpy, torch and jax alike (the op table's `combine`)
COMBINE = {op: d.combine for op, d in OPS.items() if d.combine}


def combine(kind: str, a, b, xp):
    """Two chunks' partial statistics of one kind; `xp` is numpy or torch."""
    return getattr(xp, COMBINE[kind])(a, b)


class ChunkError(LossError):
    """A loss that cannot run chunk by chunk over the chunked dim in one pass (the message
    names the construct, the span points at it in the spec)."""


@dataclass(frozen=True)
class Stat:
    var: Var  # the statistic's value (no V dim)
    kind: str  # "sum", "logsumexp", "max", "min" (gathers are "sum": one chunk holds the id)
    eqn: Eqn  # the equation that computes it from chunk-side values


@dataclass(frozen=True)
class Plan:
    prog: Program  # the program in stat form
    logits: str
    dim: Dim  # V
    chunk_side: tuple[Eqn, ...]
    stats: tuple[Stat, ...]
    row_side: tuple[Eqn, ...]


def pick_mask(inside, e: Eqn):
    """`inside` (over the id's dims, in their order) laid out to broadcast against the pick
    e = x[t], whose result also has x's other dims (x[B, C, D][t] is [B, D]): transposed to
    the result's order, a new axis for each other dim. Works on numpy, torch and jax arrays."""
    td, od = e.args[1].type.dims, e.out.type.dims
    if td == od:
        return inside
    order = sorted(range(len(td)), key=lambda k: od.index(td[k]))
    if order != list(range(len(td))):
        inside = inside.permute(*order) if hasattr(inside, "permute") else inside.transpose(order)
    return inside[tuple(slice(None) if d in td else None for d in od)]


def _lacks(a: Atom, v: Dim) -> bool:
    return not isinstance(a, Var) or v not in a.type.dims


def _fits(e: Eqn, w: Atom, a: Atom, b: Atom) -> bool:
    """w a and w b line up, and (w a) op (w b) has e's exact type."""
    try:
        wa, wb = (broadcast(w.type.dims, x.type.dims) for x in (a, b))
        return broadcast(wa, wb) == e.out.type.dims
    except DimError:
        return False


def _rules(v: Dim) -> tuple[Row, ...]:
    over_v = (("over", (v,)),)

    def over_only_v(e: Eqn) -> bool:
        return tuple(e.attr("over") or ()) == (v,)

    def needs_stat(rw: Rewriter, a: Atom) -> bool:
        """Whether `a` (constant along V) is computed from a statistic over V, so that a chunk
        cannot read it and a sum over V must be split around it: sum(q (z - lse)) = sum(q z) -
        lse sum(q). A term the chunks can read (params, inputs without V) stays inside the sum:
        the split is not exact in IEEE arithmetic ((z - g)^2 = inf at z = -inf, g = 0, but
        z z - g z - g (z - g) is NaN)."""
        return any(
            e is not None
            and v in op_axes(e)
            and any(isinstance(x, Var) and v in x.type.dims for x in e.args)
            for _, e in walk([a], rw.defs)
        )

    def lse(rw: Rewriter, z: Atom) -> Var:
        """logsumexp(z) as log_softmax, softmax and cross_entropy use it: NaN where it is
        +-inf (a +inf logit, or every logit -inf), since they are NaN on that whole row (the op
        table, torch, jax); z - logsumexp(z) alone is inf there. 0 * s is NaN exactly there."""
        s = rw.emit("logsumexp", (z,), over_v)
        return rw.emit("add", (s, rw.emit("mul", (Lit(0.0, TensorType("float")), s))))

    def log_softmax(rw, e):
        if e.op == "log_softmax" and tuple(e.attr("over")) == (v,):
            return rw.emit("sub", (e.args[0], lse(rw, e.args[0])))
        return None

    def softmax(rw, e):
        if e.op == "softmax" and tuple(e.attr("over")) == (v,):
            return rw.emit("exp", (rw.emit("sub", (e.args[0], lse(rw, e.args[0]))),))
        return None

    def cross_entropy(rw, e):
        if e.op == "cross_entropy" and e.args[1].type.of == v:
            z, t = e.args
            return rw.emit("sub", (lse(rw, z), rw.emit("gather", (z, t))))
        return None

    def gather_through(rw, e):
        """x[t] of (a op b), b constant along V: a[t] op b (and of -a: -(a[t]))."""
        if e.op != "gather" or e.args[1].type.of != v:
            return None
        x, t = e.args
        d = rw.defn(x)
        if d is None:
            return None
        if d.op == "neg":
            return rw.emit("neg", (rw.emit("gather", (d.args[0], t)),))
        if d.op in ("add", "sub", "mul") and len(d.args) == 2:
            a, b = d.args
            if _lacks(b, v) and not _lacks(a, v):
                return rw.emit(d.op, (rw.emit("gather", (a, t)), b))
            if _lacks(a, v) and not _lacks(b, v) and d.op != "sub":
                return rw.emit(d.op, (a, rw.emit("gather", (b, t))))
            if _lacks(a, v) and not _lacks(b, v):
                return rw.emit("sub", (a, rw.emit("gather", (b, t))))
        return None

    def mean_to_sum(rw, e):
        """mean over dims that include V = sum / the product of their sizes."""
        over = tuple(e.attr("over") or ())
        if e.op == "mean" and v in over:
            n = rw.emit("size", (), (("dim", over[0]),))
            for d in over[1:]:
                n = rw.emit("mul", (n, rw.emit("size", (), (("dim", d),))))
            return rw.emit("div", (rw.emit("sum", e.args, e.attrs), n))
        return None

    def sum_linear(rw, e):
        """sum over V is linear: through +, -, negation, and factors constant along V."""
        if e.op != "sum" or not over_only_v(e):
            return None
        d = rw.defn(e.args[0])
        if d is None:
            return None
        if d.op == "neg":
            return rw.emit("neg", (rw.emit("sum", (d.args[0],), over_v),))
        if d.op in ("add", "sub"):
            a, b = d.args
            parts = []
            for x in (a, b):
                if _lacks(x, v):  # sum over V of a term constant along V: size(V) times it
                    parts.append(rw.emit("mul", (x, rw.emit("size", (), (("dim", v),)))))
                else:
                    parts.append(rw.emit("sum", (x,), over_v))
            return rw.emit(d.op, tuple(parts))
        if d.op == "mul":
            a, b = d.args
            for x, s in ((a, b), (b, a)):
                if _lacks(s, v) and not _lacks(x, v) and needs_stat(rw, s):
                    return count_times(rw, rw.emit("sum", (x,), over_v), s)
            for w, x in ((a, b), (b, a)):
                # sum(w (y - s)) with s constant along V: sum(w y) - s sum(w)
                inner = rw.defn(x)
                if inner is None or inner.op not in ("add", "sub") or _lacks(w, v):
                    continue
                y, s = inner.args
                if _lacks(y, v):
                    continue
                if _lacks(s, v) and needs_stat(rw, s):
                    wy = rw.emit("sum", (rw.emit("mul", (w, y)),), over_v)
                    ws = rw.emit("mul", (s, rw.emit("sum", (w,), over_v)))
                    return rw.emit(inner.op, (wy, ws))
                # sum(w (y - s f)), s constant along V: sum(w y) - s sum(w f) (where_through's
                # masked log_softmax under a class weight)
                sf = rw.producer(s, "mul")
                for t, f in (sf.args, sf.args[::-1]) if sf is not None else ():
                    if _lacks(t, v) and not _lacks(f, v) and needs_stat(rw, t):
                        wy = rw.emit("sum", (rw.emit("mul", (w, y)),), over_v)
                        ws = rw.emit("mul", (t, rw.emit("sum", (rw.emit("mul", (w, f)),), over_v)))
                        return rw.emit(inner.op, (wy, ws))
        return None

    def count_times(rw, n: Var, s: Atom) -> Var:
        """sum(x) * s, where s (a statistic) may be NaN: logsumexp is NaN on a row with a +inf
        logit. Where x is a mask (float(c): where_through's), a row that keeps no class has 0,
        as the plain where(c, z - lse, 0) summed over V (an adaptive softmax row whose head
        target falls outside the head), not NaN * 0."""
        prod = rw.emit("mul", (n, s))
        x = rw.defn(rw.defn(n).args[0])
        if x is None or x.op != "to_float":
            return prod
        empty = rw.emit("eq", (n, Lit(0.0, TensorType("float"))))
        return rw.emit("where", (empty, Lit(0.0, TensorType("float")), prod))

    def distribute(rw, e):
        """w * (z - s) with s constant along V: w * z - w * s (so that a sum splits)."""
        if e.op != "mul":
            return None
        for i in (0, 1):
            d = rw.defn(e.args[1 - i])
            w = e.args[i]
            if d is not None and d.op in ("add", "sub") and not _lacks(w, v):
                a, b = d.args
                const = a if _lacks(a, v) else b
                if _lacks(a, v) != _lacks(b, v) and needs_stat(rw, const) and _fits(e, w, a, b):
                    return rw.emit(d.op, (rw.emit("mul", (w, a)), rw.emit("mul", (w, b))))
        return None

    def where_through(rw, e):
        """where(c, a - s, 0), s constant along V: where(c, a, 0) - s * float(c) (a log_softmax
        masked where z = -inf: z - logsumexp(z) on the classes kept)."""
        if e.op != "where" or not is_lit(e.args[2], 0):
            return None
        c, d = e.args[0], rw.defn(e.args[1])
        if d is None or d.op not in ("add", "sub") or c.type.dtype != "bool":
            return None
        a, s = d.args
        if not _lacks(s, v) or _lacks(a, v) or not needs_stat(rw, s):
            return None
        try:
            kept = rw.emit("where", (c, a, e.args[2]))
            out = rw.emit(d.op, (kept, rw.emit("mul", (s, rw.emit("to_float", (c,))))))
        except OpTypeError:  # s and c have unrelated dims: s * float(c) is not a value
            return None
        return out if out.type == e.out.type else None

    return (
        Row("log_softmax", "log_softmax(z) = z - logsumexp(z): a statistic", log_softmax),
        Row("softmax", "softmax(z) = exp(z - logsumexp(z))", softmax),
        Row("cross_entropy", "CE(z, t) = logsumexp(z) - z[t]: two statistics", cross_entropy),
        Row("gather_through", "(a op b)[t] = a[t] op b when b is constant along V", gather_through),
        Row("mean_to_sum", "mean over V = sum over V / size(V)", mean_to_sum),
        Row("sum_linear", "sum over V is linear", sum_linear),
        Row("distribute", "w (a - b) = w a - w b, to split a sum over V", distribute),
        Row("where_through", "where(c, a - s, 0) = where(c, a, 0) - s c", where_through),
    )


def stat_form(prog: Program, v: Dim) -> Program:
    """The program with its V-statistics made explicit (same values)."""
    prog = run_rules(prog, _rules(v), max_rounds=16)
    return verify(dce(cse(prog)))


# op kinds that compute each position of the chunked dim from that position alone, whatever
# their axes (an elementwise op; a transpose or expand only moves or adds axes)
LOCAL_KINDS = ("elementwise", "transpose", "expand")
# op kinds that work along the dims their axis attrs name: local when V is not among them
AXIS_KINDS = ("reduce", "axis", "gather", "cross_entropy", "argmax", "diff", "eigvalsh",
               "contract", "rename", "onehot", "take", "scan", "sort", "rank",
               "quantile", "window")  # fmt: skip
_HINT = (
    "use the plain schedule; a chunked loss reads its logits only through elementwise terms "
    "and row statistics over {v}: sum, mean, logsumexp, max or min over {v}, a log-softmax or "
    "softmax over {v} (made logsumexp), or a pick z[target]"
)


def op_axes(e: Eqn) -> tuple[Dim, ...]:
    """The dims an op works along (reduces, picks, shifts, renames, contracts)."""
    if e.op in ("gather", "cross_entropy"):
        return (e.args[1].type.of,)
    if e.op == "rename":
        return tuple(d for pair in e.attr("mapping") for d in pair)
    if e.op == "onehot":
        return (e.attr("dim"),)
    return tuple(e.attr("over") or ())


def _stat_kind(e: Eqn, v: Dim) -> str | None:
    """How two chunks' partial results of `e` (which reduces V away) combine, or None."""
    if e.op in COMBINE and v in op_axes(e):
        return e.op
    if e.op == "contract" and v in op_axes(e):
        return "sum"  # sum(a * b) over V
    if e.op == "gather" and e.args[1].type.of == v:
        return "gather"  # the id falls in exactly one chunk; the others contribute 0
    return None


def plan(prog: Program, logits: str, reduction: str | None = None) -> Plan:
    """The chunk plan of `prog` over the last dim V of input `logits`, for one reduction (its
    other outputs are dropped) or all of them; ChunkError, naming the construct, if the
    program is not chunkable over V in one pass (the contract in the module docstring)."""
    inp = next((d for d in prog.inputs if d.var.name == logits), None)
    if inp is None or inp.var.type.dtype != "float" or inp.var.type.of or not inp.var.type.dims:
        t = inp.var.type if inp is not None else None
        raise ChunkError(
            f"{prog.name} cannot be chunked: its first input '{logits}' is {t}, not a float "
            "tensor whose last dim is the one to chunk",
            None,
            "the chunked schedule is for a loss over logits [..., V]: use the plain schedule",
        )
    v = inp.var.type.dims[-1]
    if v.variadic:
        raise ChunkError(
            f"{prog.name} cannot be chunked over {v}: a variadic dim (any number of axes) is "
            "not a class dim",
            None,
            "the chunked schedule is for a loss over logits [..., V]: use the plain schedule",
        )
    hint = _HINT.format(v=v)
    name = prog.name

    def refuse(e: Eqn | None, what: str) -> ChunkError:
        return ChunkError(f"{name} cannot be chunked over {v}: {what}", e and e.span, hint)

    regroup = next((e for e in prog.eqns if e.op == "reshape"), None)
    if regroup is not None:
        raise refuse(regroup, "split() and merge() regroup whole dims, never a chunk of one")
    call = next((e for e in prog.eqns if e.op in ("call_fn", "grad")), None)
    if call is not None:  # (the function sees whole tensors; a gradient needs all of them)
        raise refuse(
            call,
            f"{'a function input' if call.op == 'call_fn' else 'grad()'} takes "
            "whole tensors, never a chunk of them",
        )

    if reduction is not None:
        prog = replace(prog, outputs=((reduction, prog.output(reduction)),))
    prog = stat_form(prog, v)
    x = inp.var.name
    chunk: dict[str, Eqn] = {}
    stats: list[Stat] = []
    row: list[Eqn] = []
    after_stat: set[str] = set()  # row values computed from a statistic
    for e in prog.eqns:
        vars_ = [a for a in e.args if isinstance(a, Var)]
        reads_chunk = any(a.name in chunk or a.name == x for a in vars_)
        if not reads_chunk:
            # no logits in it: computed once at full size (a per-class margin, a multilabel
            # target's terms, onehot(target)) and sliced along V for each chunk
            row.append(e)
            if any(a.name in after_stat for a in vars_):
                after_stat.add(e.out.name)
            continue
        kind = OPS[e.op].kind
        twins = {d for a in vars_ + [e.out] for d in a.type.dims if d.name == v.name and d != v}
        stat = _stat_kind(e, v)
        local = kind in LOCAL_KINDS or (kind in AXIS_KINDS and v not in op_axes(e))
        if stat == "gather" and v in e.out.type.dims:
            # ids over V itself (v[arange(V)], a permutation): each chunk's picks fall in
            # other chunks
            raise refuse(
                e,
                f"this pick along {v} of the logits takes ids that vary along {v}: each chunk "
                "would need values from every other chunk",
            )
        if stat is None and not (local and v in e.out.type.dims):
            raise refuse(
                e,
                f"{e.op} over {v} of the logits needs the whole of {v} at once (no rule combines "
                "two chunks' partial results)",
            )
        if twins:
            raise refuse(
                e,
                f"{e.op} pairs the logits' {v} with {', '.join(map(str, sorted(twins)))} "
                f"(another copy of {v}): a chunk would need every other chunk",
            )
        if any(a.name in after_stat for a in vars_):
            raise refuse(
                e,
                f"this {e.op} combines a row statistic over {v} of the logits (a logsumexp, "
                f"sum, max or min over {v}: known only after the last chunk) with values over "
                f"{v} computed from the logits: that needs a second pass over the logits",
            )
        if v in e.out.type.dims:
            chunk[e.out.name] = e
        else:
            stats.append(Stat(e.out, "sum" if stat == "gather" else stat, e))
            after_stat.add(e.out.name)
    for m, a in prog.outputs:
        if isinstance(a, Var) and (a.name in chunk or a.name == x):
            raise refuse(
                chunk.get(a.name),
                f"the loss keeps {v} in its reduction='{m}' result; chunking {v} needs every "
                f"use of the logits reduced over {v} (sum, mean, logsumexp, max or min over "
                f"{v}, or a pick z[target])",
            )
    return Plan(prog, x, v, tuple(chunk.values()), tuple(stats), tuple(row))


def evaluate_chunked(p: Plan, inputs: dict, params: dict, reduction: str, chunk: int):
    """The plan run V-chunk by V-chunk on the float64 reference: the semantics every chunked
    generator must reproduce. Per chunk, the chunk side and the statistics are evaluated on a
    slice of V (class ids shifted into the slice, 0 outside it), the partial statistics are
    combined with their associative rule, then the row side runs once."""
    import numpy as np

    from lossdsl.codegen import reference

    ref = reference()
    env: dict = {}
    sizes: dict = {}
    shapes: dict = {}
    for d in p.prog.inputs:
        x = np.asarray(inputs[d.var.name])
        x = x.astype(np.float64) if d.var.type.dtype == "float" else x
        env[d.var.name] = ref._flatten(x, d.var.type.dims, sizes, shapes, d.var.name)
    for q in p.prog.params:
        env[q.var.name] = np.asarray(params.get(q.var.name, q.default))

    def val(a, scope):
        return np.asarray(a.value) if not isinstance(a, Var) else scope[a.name]

    n = sizes[p.dim.name]
    combined: dict = {}
    row_done: dict = dict(env)
    _run(ref, [e for e in p.row_side if _ready(e, p)], row_done, sizes)
    over_v = {d.var.name: d.var.type.dims for d in p.prog.inputs if p.dim in d.var.type.dims}
    over_v |= {e.out.name: e.out.type.dims for e in p.row_side if p.dim in e.out.type.dims}
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        scope = dict(row_done)
        for name, dims in over_v.items():  # slice everything over V
            if name in scope:
                k = dims.index(p.dim)
                scope[name] = np.take(scope[name], np.arange(lo, hi), axis=k)
        csizes = {**sizes, p.dim.name: hi - lo}
        _run(ref, p.chunk_side, scope, csizes)
        for s in p.stats:
            e = s.eqn
            if e.op == "gather":  # the id is in this chunk, or the chunk contributes 0
                x, t = e.args
                ids = val(t, scope) - lo
                inside = (ids >= 0) & (ids < hi - lo)
                part = ref._apply(e, [val(x, scope), np.where(inside, ids, 0)], csizes)
                part = np.where(pick_mask(inside, e), part, 0.0)
            else:
                part = ref._apply(e, [val(a, scope) for a in e.args], csizes)
            prev = combined.get(s.var.name)
            combined[s.var.name] = part if prev is None else combine(s.kind, prev, part, np)
    row_done.update(combined)
    _run(ref, [e for e in p.row_side if e.out.name not in row_done], row_done, sizes)
    return val(p.prog.output(reduction), row_done)


def _ready(e: Eqn, p: Plan) -> bool:
    """Row-side equations that need no statistic (computed before the chunks)."""
    stats = {s.var.name for s in p.stats}
    producer = producers(p.prog)
    return not any(isinstance(a, Var) and depends_on(a, stats, producer) for a in e.args)


def _run(ref, eqns, scope: dict, sizes: dict) -> None:
    import numpy as np

    with np.errstate(all="ignore"):
        for e in eqns:
            args = [
                np.asarray(a.value) if not isinstance(a, Var) else scope[a.name] for a in e.args
            ]
            scope[e.out.name] = ref._apply(e, args, sizes)
