"""library: a loss and its reduction as one framework library call, for backends that run each op
as its own kernel (torch eager: `Target.library_calls`). F.cross_entropy with ignore_index and its
reduction takes one kernel forward and one backward where the primitives take one each per op: at
[64, 10] that per-op overhead is most of the time. (F.binary_cross_entropy_with_logits is not
one: it is NaN at a -inf logit, and called on (-x, 1 - t) to avoid that it loses a t below
eps/4 to the rounding of 1 - t, for no speed over softplus(x) - t x.)

It runs last, on the programs torch's source is emitted from, after the shard transform (which
splits the primitives' sums across ranks); the chunked schedules and the numpy reference keep
the primitives."""

from __future__ import annotations

from lossdsl.ir import Program, Var
from lossdsl.passes.cleanup import dce
from lossdsl.passes.rewrite import Row, is_lit, run_rules


def _masked_target(rw, valid, t):
    """(target, ignore_index) when valid = target != K and t = where(valid, target, 0)."""
    ne = rw.producer(valid, "ne")
    w = rw.producer(t, "where")
    if ne is None or w is None or w.args[0] != valid or not is_lit(w.args[2], 0):
        return None
    target, k = ne.args
    if w.args[1] != target or not isinstance(target, Var) or target.type.of is None:
        return None
    if k.type.dtype != "int" or k.type.dims:
        return None
    return target, k


def _cross_entropy_ignore(rw, e):
    """where(valid, cross_entropy(x, t), 0), or with the loss times float(valid) (the
    ignore_index form of cross_entropy.loss) -> one F.cross_entropy(x, target, ignore_index=k)
    call. Class weights stay primitives: F.cross_entropy has no gradient for its `weight`, a
    spec's input may want one."""
    if e.op != "where" or not is_lit(e.args[2], 0):
        return None
    valid, r = e.args[0], e.args[1]
    m = rw.producer(r, "mul")
    if m is not None:  # float(valid) * loss: the where already zeroes what it zeroes
        w, r = m.args if rw.producer(m.args[0], "to_float") else m.args[::-1]
        f = rw.producer(w, "to_float")
        if f is None or f.args[0] != valid or rw.uses[m.out.name] != 1:
            return None
    ce = rw.producer(r, "cross_entropy")
    if ce is None or rw.uses[r.name] != 1 or not isinstance(ce.args[0], Var):
        return None
    x, t = ce.args
    found = _masked_target(rw, valid, t)
    if found is None:
        return None
    target, k = found
    # F.cross_entropy's layout: classes on axis 1 of x, the target is x without them
    if len(x.type.dims) < 2 or x.type.dims[1] != t.type.of:
        return None
    if target.type.dims != x.type.dims[:1] + x.type.dims[2:]:
        return None
    return rw.emit("cross_entropy_ignore", (x, target, k), (("reduce", "none"),))


def _reduce_call(rw, e):
    """sum over every dim of cross_entropy_ignore -> the call with reduction="sum" (its own mean
    divides by the rows kept: _ignore_mean makes that one)."""
    if e.op != "sum" or e.out.type.dims:
        return None
    call = rw.defn(e.args[0])
    if call is None or call.op != "cross_entropy_ignore":
        return None
    if call.attr("reduce") != "none":
        return None
    return rw.emit(call.op, call.args, (("reduce", "sum"),))


def _ignore_mean(rw, e):
    """safe_div(sum of the kept rows' losses, count of kept rows), empty 0 ->
    F.cross_entropy(reduction="mean"), guarded: an all-ignored batch gives 0 (its 0/0 is NaN)."""
    if e.op != "safe_div" or e.attr("empty") != 0:
        return None
    call = rw.producer(e.args[0], "cross_entropy_ignore")
    den = rw.producer(e.args[1], "sum")
    if call is None or den is None or call.attr("reduce") != "sum" or den.out.type.dims:
        return None
    _, target, k = call.args
    f = rw.producer(den.args[0], "to_float")
    ne = f and rw.producer(f.args[0], "ne")
    if ne is None or ne.args != (target, k):
        return None
    return rw.emit(call.op, call.args, (("reduce", "mean"),))


LIBRARY_RULES = (
    Row(
        "where(valid, [float(valid) *] cross_entropy(x, t), 0) -> cross_entropy_ignore",
        _cross_entropy_ignore.__doc__.strip(),
        _cross_entropy_ignore,
        ("where",),
    ),
    Row(
        "sum(cross_entropy_ignore) -> cross_entropy_ignore[reduce=sum]",
        "F.cross_entropy reduces inside its kernel, and its backward takes the scalar gradient: "
        "no [B, C] gradient of a sum materialized",
        _reduce_call,
        ("sum",),
    ),
    Row(
        "safe_div(cross_entropy_ignore[sum], count kept) -> cross_entropy_ignore[mean]",
        _ignore_mean.__doc__.strip(),
        _ignore_mean,
        ("safe_div",),
    ),
)


def library(prog: Program) -> Program:
    # dce first and last: single-use tests must not count dead uses; the primitives a call
    # replaced are dead after it.
    return dce(run_rules(dce(prog), LIBRARY_RULES))
