"""Sharding a loss over its batch dim (issue 5, distributed): the program every rank runs when
the batch B is split across devices, derived from the single-device program.

The single-device program is the meaning; the sharded one must compute the same loss and the
same gradients. Each rank holds its rows of every input with dim B (and of an input [B, B'],
its rows against every rank's columns, e.g. critic scores against the gathered batch). In the
sharded program

  B           is this rank's rows (local);
  B', B'', .. (a primed twin) is the whole batch, every rank's rows in rank order (global).

So `x'` of a local x becomes an all_gather (the negatives of info_nce, supcon, circle, clip),
a reduction over B becomes a local reduction and an all_reduce that combines the ranks' partial
results (a masked mean's global count, dice's global sums, a global logsumexp), `size(B)` is
the global batch size, and `eye(B, B')` marks row b of this rank against global row b'. A
value without a local B is the same on every rank (it was reduced over B, gathered, or never
depended on the batch).

Gradients. The collectives are differentiable (torch.distributed.nn, jax.lax): each rank's
backward sends every gathered row's gradient back to the rank that owns it, so the ranks'
backward passes together differentiate the sum of what each rank backpropagates. A result that
every rank holds whole (the mean or sum of the loss) would be counted once per rank; the
`shard_result` op at each such output scales its gradient so that the total is counted once
(torch: by 1/world with grads="sum"; by 1 with grads="mean", because DDP and FSDP then average
the ranks' gradients, which divides by the world size; jax.grad around shard_map needs no
scaling: jax transposes psum and all_gather itself). `reduction="none"` returns this rank's
rows of the per-element loss.

What cannot be split is an error at the spec's own text: an op along B that needs rows of other
ranks other than through gathers and reductions (diff, argmax, an index into the batch, ...).
"""

from __future__ import annotations

from dataclasses import replace

from lossdsl.errors import ShardError, raise_all
from lossdsl.ir import Atom, Body, Eqn, Lit, Program, Var, verify
from lossdsl.ops import OPS
from lossdsl.passes.cleanup import cse, dce
from lossdsl.passes.rewrite import Rewriter, run_rules
from lossdsl.types import INT, Dim


def shardable_dims(prog: Program) -> list[str]:
    """The unprimed named dims of the inputs (the candidates for `shard=`), in order."""
    out: list[str] = []
    for d in prog.inputs:
        for k in d.var.type.dims:
            if not k.variadic and not k.primes and not k.steps and k.name not in out:
                out.append(k.name)
    return out


def batch_dim(prog: Program) -> str:
    """The dim a data-parallel run splits: B, the batch by the shipped specs' naming (CTC's
    log_probs[T, B, C] in torch's layout puts it second), else the first candidate."""
    dims = shardable_dims(prog)
    return "B" if "B" in dims else dims[0]


def shard(prog: Program, dim: str, input_spans: dict | None = None) -> Program:
    """The program one rank runs when `dim` is split across ranks (ShardError if it cannot)."""
    b = Dim(dim)
    spans = input_spans or {}
    _check_inputs(prog, b, spans)
    e = regrouping(prog, dim)
    if e is not None:
        raise ShardError(
            f"{prog.name} cannot be sharded over {b}: split() or merge() regroups its entries "
            f"({e.args[0].type} to {e.out.type})",
            e.span,
            "run it unsharded (all_gather the inputs first), as trl gathers the rewards of "
            "every process before grouping them",
        )
    s = _Sharder(b)
    prog = run_rules(prog, s.rule, max_rounds=1)
    raise_all(s.errors)
    # a result every rank holds whole: its gradient is counted once over the ranks
    rw = Rewriter(prog)
    outputs = tuple(
        (mode, rw.emit("shard_result", (a,)) if isinstance(a, Var) and b not in a.type.dims else a)
        for mode, a in prog.outputs
    )
    out = replace(prog, eqns=prog.eqns + tuple(rw.eqns), outputs=outputs, shard=dim)
    return verify(dce(cse(out)))


def regrouping(prog: Program, dim: str):
    """The first split or merge of `dim`'s entries (whose groups would straddle the ranks'
    rows: no sharded form), or None."""
    for e in prog.eqns:
        if e.op == "reshape" and any(d.name == dim for d in e.args[0].type.dims):
            return e
    return None


def _check_inputs(prog: Program, b: Dim, spans: dict) -> None:
    errors = []
    if b.name not in shardable_dims(prog):
        cands = shardable_dims(prog)
        raise ShardError(
            f"{prog.name} has no input with a dim named {b}",
            None,
            f"shard over one of its inputs' dims: {', '.join(cands)}" if cands else None,
        )
    seen_local = False
    for d in prog.inputs:
        t = d.var.type
        span = spans.get(d.var.name)
        family = [k for k in t.dims if k.name == b.name]
        if family and family[0].primes and not seen_local:
            errors.append(
                ShardError(
                    f"input '{d.var.name}' is {t}: its {family[0]} (all ranks' rows) comes "
                    f"before any input gives this rank's {b}",
                    span,
                    f"declare an input over {b} first (its rows on this rank)",
                )
            )
        seen_local = seen_local or b in t.dims
        if t.of is not None and t.of.name == b.name:
            errors.append(
                ShardError(
                    f"input '{d.var.name}' indexes into {t.of}, the sharded dim: its values "
                    "would point at rows other ranks hold",
                    span,
                    f"shard over another dim, or compare positions (eye({b}, {b}')) instead",
                )
            )
    raise_all(errors)


class _Sharder:
    """The rewrite rule (one pass of lossdsl/passes/rewrite.py): each equation that touches
    the local B becomes its sharded form; what cannot be split is collected in `errors`."""

    def __init__(self, b: Dim):
        self.b = b
        self.glob = b.prime()  # the whole batch's dim (any primed twin reads the same size)
        self.errors: list[ShardError] = []
        self.rw: Rewriter | None = None

    def rule(self, rw: Rewriter, e: Eqn) -> Var | None:
        self.rw = rw
        return self._rewrite(e)

    def emit(self, op: str, args: tuple, attrs: tuple = ()) -> Var:
        return self.rw.emit(op, tuple(args), tuple(attrs))  # typed; the span is e's

    def refuse(self, e: Eqn, what: str, hint: str) -> None:
        self.errors.append(ShardError(f"cannot shard over {self.b}: {what}", e.span, hint))

    def _rewrite(self, e: Eqn) -> Var | None:
        b, op = self.b, e.op
        over = tuple(e.attr("over") or ())
        x = e.args[0] if e.args else None
        if op == "rename":
            return self._rename(e)
        if OPS[op].combine and b in over:  # partial results combine directly
            part = self.emit(op, e.args, e.attrs)
            return self.emit("all_reduce", (part,), (("kind", op),))
        if op == "contract" and b in over:
            part = self.emit(op, e.args, e.attrs)
            return self.emit("all_reduce", (part,), (("kind", "sum"),))
        if op == "mean" and b in over:
            return self._mean(x, over)
        if op == "var" and b in over:
            m = self._mean(x, over)
            dev = self.emit("sub", (x, m))
            ms = self._mean(self.emit("mul", (dev, dev)), over)
            ddof = e.attr("ddof") or 0
            if not ddof:
                return ms
            n = self._count(over)
            nd = self.emit("sub", (n, Lit(int(ddof), INT)))
            return self.emit("div", (self.emit("mul", (ms, n)), nd))
        if op in ("log_softmax", "softmax") and b in over:
            lse = self.emit("logsumexp", (x,), (("over", over),))
            lse = self.emit("all_reduce", (lse,), (("kind", "logsumexp"),))
            z = self.emit("sub", (x, lse))
            return z if op == "log_softmax" else self.emit("exp", (z,))
        if op == "size" and e.attr("dim") == b:
            return self.emit("size", (), (("dim", self.glob),))
        if op == "eye" and b in e.attr("dims"):
            return self.emit("shard_eye", (), (("dims", e.attr("dims")), ("local", b)))
        self._refusals(e, over)
        return None

    def _rename(self, e: Eqn) -> Var | None:
        (x,) = e.args
        mapping = dict(e.attr("mapping"))
        gather = self.b in x.type.dims and self.b in mapping
        back = [k for k, v in mapping.items() if v == self.b and k in x.type.dims]
        if gather and back:
            self.refuse(
                e,
                f"this swaps {self.b} with {mapping[self.b]} (a transpose across ranks)",
                f"write the {self.b}'-side expression with primes instead of transposing",
            )
            return None
        if not gather and not back:
            return None
        if gather and getattr(x.type, "of", None) == self.b:
            # its values number this rank's rows (arange(B), argmax over B): gathered, each
            # rank's would start at 0 again
            self.refuse(
                e,
                f"this gathers positions along {self.b}, which number each rank's rows alone",
                f"number the whole batch with arange({self.b}') or use eye({self.b}, {self.b}')",
            )
            return None
        # gather after the other renames (x[B, B']' frees B' first: [B, B''] -> [B', B'']),
        # slice before them (x[B', B'']' -> [B, B''] -> [B, B'])
        frm = self.b if gather else back[0]
        to = mapping.pop(frm)
        if gather:
            x = self._plain_rename(x, mapping)
        y = self.emit("all_gather" if gather else "shard_slice", (x,), (("dim", frm), ("to", to)))
        return y if gather else self._plain_rename(y, mapping)

    def _plain_rename(self, x: Var, mapping: dict) -> Var:
        mapping = {k: v for k, v in mapping.items() if k in x.type.dims or k == x.type.of}
        if not mapping:
            return x
        return self.emit("rename", (x,), (("mapping", tuple(mapping.items())),))

    def _count(self, over: tuple[Dim, ...]) -> Var:
        n = None
        for d in over:
            k = self.emit("size", (), (("dim", self.glob if d == self.b else d),))
            n = k if n is None else self.emit("mul", (n, k))
        return n

    def _mean(self, x: Atom, over: tuple[Dim, ...]) -> Var:
        part = self.emit("sum", (x,), (("over", over),))
        total = self.emit("all_reduce", (part,), (("kind", "sum"),))
        return self.emit("div", (total, self._count(over)))

    def _refusals(self, e: Eqn, over: tuple[Dim, ...]) -> None:
        b, op = self.b, e.op
        if OPS[op].kind == "window" and b in over:
            self.refuse(
                e,
                f"a window over {b} needs the neighbouring rows, which another rank may hold",
                "shard over the batch dim, which the loss only gathers and reduces",
            )
        if op in ("call_fn", "grad"):
            self.refuse(
                e,
                f"{'a function input' if op == 'call_fn' else 'grad()'} would see only this "
                f"rank's rows of {b} (a critic may mix rows: batch norm, attention)",
                "call the function and take the gradient outside the sharded loss, and pass "
                "the results in",
            )
        if OPS[op].kind == "loop" and (b in over or _touches(e.attr("body"), b)):
            self.refuse(
                e,
                f"the block of {op} works along {b} (a reduction, shift or scan over it), and "
                "each rank holds only its rows",
                "keep the loop's work per row; shard over the batch dim the block never reduces",
            )
        if op in ("argmax", "diff", "eigvalsh", "shift", "rfft_mag") and b in over:
            what = {
                "rfft_mag": f"a Fourier transform over {b} needs every rank's rows",
                "argmax": f"argmax over {b} picks a position among every rank's rows",
                "diff": f"diff over {b} needs the neighbouring row, which another rank may hold",
                "shift": f"shift over {b} needs the neighbouring row, which another rank may hold",
                "eigvalsh": f"an eigendecomposition over {b} needs the whole matrix on one rank",
            }[op]
            self.refuse(
                e, what, "shard over the batch dim, which the loss only gathers and reduces"
            )
        elif op == "ctc_nll" and e.args[2].type.dims != (b,):
            self.refuse(
                e,
                f"CTC's forward algorithm needs every frame, class and label of a sequence "
                f"on one rank, and {b} is not its batch dim",
                f"shard over the sequences' batch dim, {e.args[2].type.dims[0]}",
            )
        elif OPS[op].kind in ("scan", "sort", "rank", "quantile") and b in over:
            self.refuse(
                e,
                f"{op} over {b} orders the rows of every rank, which one rank does not hold",
                "shard over the batch dim, which the loss only gathers and reduces",
            )
        elif op in ("gather", "cross_entropy") and e.args[1].type.of == b:
            self.refuse(
                e,
                f"this picks rows along {b} by index, and another rank may hold them",
                f"index the gathered side instead: an index of {b}' picks among all rows",
            )
        elif op == "onehot" and e.attr("dim") == b:
            self.refuse(e, f"onehot over {b}", f"use eye({b}, {b}') for the positions")
        elif op == "arange" and e.attr("dim") == b:
            self.refuse(e, f"arange({b}) numbers this rank's rows only", f"use arange({b}') or eye")


def _touches(body, b: Dim) -> bool:
    """Whether a loop's body works along `b`: reduces, shifts or scans over it (`over`), counts
    or numbers it (size, arange, onehot: `dim`), an eye or rename of it, its nested loops'
    bodies included. Elementwise work on b's rows and expands are per rank."""
    for e in body.eqns:
        a = dict(e.attrs)
        if b in (a.get("over") or ()) or a.get("dim") == b:
            return True
        if (e.op == "eye" and b in a["dims"]) or (e.op == "rename" and b in dict(a["mapping"])):
            return True
        if isinstance(a.get("body"), Body) and _touches(a["body"], b):
            return True
    return False
