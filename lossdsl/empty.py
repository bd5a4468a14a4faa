"""Empty and too-small dims at call time: the policy every backend follows (README, Edge cases).

1. The per-element loss (what reduction="none" returns) has a dim of size 0: an empty batch.
   It has no elements, so "none" is an empty tensor of its shape, "sum" is 0 and "mean" is
   the spec's declared empty value (`reduce mean by w empty v`; 0 for a plain mean), with
   zero gradient. Nothing else is computed: a max over the empty batch, or a division by its
   size, would fail or give NaN, and no element needs it.
2. Otherwise every dim the loss reduces must be big enough for its formula to have a value.
   Reductions with no value over no elements (mean, max, min, logsumexp, argmax, the
   logsumexp of a cross-entropy over its classes) need one entry, var(ddof=k) k + 1; a count
   made of dim sizes may not be 0 where it divides or is logged (`size(B) * (size(B) - 1)`
   in an estimator over the off-diagonal pairs needs B >= 2). A smaller size is an
   InputError naming the dim, its size and why. A requirement that only a `where` on a bool
   param reaches holds only when the param picks that branch (mmd's unbiased estimate).

Both are decided here, from the program alone; the emitter (lossdsl/codegen/guards.py) turns
them into integer comparisons on the dim sizes at the top of the generated function (free under
jit and torch.compile: sizes are static), and the numpy reference checks them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lossdsl.graph import producers
from lossdsl.ir import Body, Lit, Program, Var
from lossdsl.ops import OPS, ref_attrs
from lossdsl.types import Dim

# ops with no value over an empty set of entries along their `over` dims
_NO_IDENTITY = ("mean", "max", "min", "logsumexp", "argmax", "var", "quantile")

Cond = frozenset  # of frozensets of (param name, value): a disjunction of conjunctions


@dataclass(frozen=True)
class Need:
    """Dim `dim` must have at least `min_size` entries (when `when` holds: None is always, else
    a disjunction of conjunctions of (bool param, value))."""

    dim: Dim
    min_size: int | Dim  # a Dim: an int param's value through its steps (size=k: k//2 + 1)
    reason: str
    when: tuple[tuple[tuple[str, bool], ...], ...] | None = None
    axes: bool = False  # a window over *S: each of its axes (else its flattened size)

    def least(self, params: dict) -> int:
        """The minimum as a number, int params at their `params` values (IR names)."""
        if isinstance(self.min_size, int):
            return self.min_size
        return self.min_size.size(param_size(params)(self.min_size.name), param_size(params))


def param_size(params: dict):
    """A dim's size by name for Dim.size, where the name is an int param's dim "$k" (a
    required param without a value: 1)."""
    return lambda by: int(params.get(by[1:]) or 1)


@dataclass(frozen=True)
class EmptyPolicy:
    out_dims: tuple[Dim, ...]  # the per-element loss's dims: any of size 0 -> case 1
    mean_empty: float  # "mean" of no elements
    needs: tuple[Need, ...]


def empty_policy(prog: Program) -> EmptyPolicy:
    none = prog.output("none")
    out_dims = none.type.dims if isinstance(none, Var) else ()
    producer = producers(prog)
    mean = dict(prog.outputs).get("mean")  # (a sub-program may have only "none")
    e = producer.get(mean.name) if isinstance(mean, Var) else None
    mean_empty = float(e.attr("empty")) if e is not None and e.op == "safe_div" else 0.0
    when = _conditions(prog)
    found: dict[tuple, Need] = {}

    def need(dim: Dim, k: int, reason: str, cond, axes: bool = False) -> None:
        # `axes`: a window over *S needs k entries along each of its axes; anything else over
        # *S needs k in all (its flattened size)
        axes = dim.variadic and axes
        d = Dim(dim.name, dim.primes if dim.name == prog.shard else 0, dim.variadic, dim.steps)
        key = (d, _when(cond), axes, k if isinstance(k, Dim) else None)
        if key not in found or (isinstance(k, int) and found[key].min_size < k):
            found[key] = Need(d, k, reason, key[1], axes)

    def visit(e, cond) -> None:
        body = e.attr("body")
        if isinstance(body, Body) and id(body) not in seen:
            # a loop's or grad's body: checked as the loss's own equations, whether or not
            # the loop takes a step (hoisting its invariant part out must change nothing)
            seen.add(id(body))
            for b in body.eqns:
                visit(b, cond)
        if e.op in _NO_IDENTITY:
            over = e.attr("over")
            over = over if isinstance(over, tuple) else (over,)
            k = 1 + int(e.attr("ddof", 0) or 0)
            what = f"var(ddof={k - 1})" if e.op == "var" else e.op
            what = ("an " if what[0] in "aeiou" else "a ") + what
            # over several dims only the product of their sizes must reach k: each needs 1
            # (a var(ddof=1) over (D, B) of sizes 1 x 2 has its value; over 1 x 1 it is NaN)
            for d in over:
                need(d, k if len(over) == 1 else 1, f"it takes {what} over {_fmt(over)}", cond)
        elif e.op in ("cross_entropy", "gather"):
            of = e.args[1].type.of
            what = "cross-entropy" if e.op == "cross_entropy" else "gather"
            need(of, 1, f"it takes a {what} over the classes {of}", cond)
        elif e.op == "cross_entropy_ignore":
            c = e.args[0].type.dims[1]
            need(c, 1, f"it takes a cross-entropy over the classes {c}", cond)
        elif e.op == "diff":
            d = e.attr("over")
            d = d[0] if isinstance(d, tuple) else d
            need(d, 1, f"it takes differences along {d}", cond)
        elif OPS[e.op].kind == "window":
            _window_needs(e, need, cond)
        elif e.op == "rfft_mag":
            (d,) = e.attr("over")
            need(d, 1, f"it takes a real FFT along {d}", cond)

    seen: set[int] = set()
    for e in prog.eqns:
        cond = when.get(e.out.name)
        if cond is not None:  # (None: dead, it reaches no output)
            visit(e, cond)
    for dim, k, reason, e in _size_counts(prog):
        if e.out.name in when:
            need(dim, k, reason, when[e.out.name])
    return EmptyPolicy(tuple(out_dims), mean_empty, tuple(found.values()))


def _window_needs(e, need, cond) -> None:
    """A valid window needs a whole window along each dim (a kernel's dim: one output entry);
    reflect padding needs more entries than it pads on a side (torch's rule; frames with
    center=true pad size//2)."""
    pad, over = e.attr("padding"), e.attr("over")
    sizes = e.attr("size") or tuple(k.fixed for k in e.attr("taps"))
    x_dims, lead = e.args[0].type.dims, len(e.out.type.dims) - len(e.args[0].type.dims)
    for d, k, out in zip(over, sizes, (e.out.type.dims[lead + x_dims.index(d)] for d in over)):
        what = f"{e.op} takes windows of {k if k is not None else 'the kernel'} along {d}"
        if isinstance(k, Dim):  # an int param's size (blur(x, size=k)): at least 1, and ...
            need(k, 1, f"{e.op} takes windows of {k} entries", cond)
            if pad == "valid":  # ... one whole window
                need(d, k, what, cond, True)
            elif pad == "reflect":  # ... more entries than k//2, reflected on a side
                half = k.derive("//", 2)
                need(d, half.derive("-", -1), f"{what}, reflect-padded by {half}", cond, True)
            else:
                need(d, 1, what, cond, True)
            continue
        if e.op in ("frames", "stft_mag") and e.attr("center"):  # size//2 a side: torch.stft
            reflect = pad == "reflect"
            extra = f", reflect-padded by {k // 2}" if reflect else ""
            need(d, k // 2 + 1 if reflect else 1, what + extra, cond, True)
        elif pad == "valid" and k is not None:
            need(d, k, what, cond, True)
        elif pad == "valid":
            need(out, 1, what, cond, True)
        elif pad == "reflect" and k is not None:
            need(
                d,
                (k - 1) - (k - 1) // 2 + 1,
                f"{what}, reflect-padded by {(k - 1) - (k - 1) // 2}",
                cond,
                True,
            )
        else:
            need(d, 1, what, cond, True)


def _fmt(dims) -> str:
    return str(dims[0]) if len(dims) == 1 else "(" + ", ".join(map(str, dims)) + ")"


def _when(cond: Cond):
    if frozenset() in cond:
        return None
    return tuple(sorted(tuple(sorted(c)) for c in cond))


def _conditions(prog: Program) -> dict[str, Cond]:
    """For each var, when an output needs its value: a `where(c, a, b)` on a bool param c
    needs a only when c is true and b only when it is false."""
    bools = {q.var.name for q in prog.params if q.var.type.dtype == "bool"}
    cond: dict[str, set] = {}
    for _, a in prog.outputs:
        if isinstance(a, Var):
            cond[a.name] = {frozenset()}
    for e in reversed(prog.eqns):
        c = cond.get(e.out.name)
        if not c:
            continue
        for k, a in enumerate(e.args):
            if not isinstance(a, Var):
                continue
            sel = e.args[0]
            if e.op == "where" and k > 0 and isinstance(sel, Var) and sel.name in bools:
                extra = (sel.name, k == 1)
                mine = {x | {extra} for x in c}
            else:
                mine = set(c)
            got = cond.setdefault(a.name, set())
            got |= mine
            if frozenset() in got or len(got) > 16:  # always (or too many cases to track)
                got.clear()
                got.add(frozenset())
    return {k: frozenset(v) for k, v in cond.items()}


def _size_counts(prog: Program):
    """Counts made only of dim sizes and literals that are 0 where they divide (or <= 0 where
    they are logged) when one dim has size 0 or 1: (dim, min size, reason, eqn)."""
    counts: dict[str, object] = {}  # var -> the eqn computing it from sizes alone
    dims: dict[str, Dim] = {}
    for e in prog.eqns:
        if e.op == "size":
            counts[e.out.name] = e
            dims[e.attr("dim").name] = e.attr("dim")
            for _, _, by in e.attr("dim").steps:  # H-KH+1: a conv kernel's dim too
                if by:
                    dims.setdefault(by, Dim(by))
        elif OPS[e.op].kind == "elementwise" and not e.out.type.dims:
            if all(isinstance(a, Lit) or a.name in counts for a in e.args):
                counts[e.out.name] = e
    if not dims:
        return
    # a count that is 0 at ordinary sizes too (size(C) - 7) is no dim's requirement: the
    # division is the user's, as written
    usual = {e.out.name for e, _ in _bad_counts(prog, counts, {n: 7 for n in dims})}
    for name in sorted(dims):
        for k in (0, 1):
            bad = _bad_counts(prog, counts, {n: (k if n == name else 7) for n in dims})
            bad = [(e, what) for e, what in bad if e.out.name not in usual]
            if bad:
                e, what = bad[0]
                reason = f"{what} a count of dim sizes that is 0 when {Dim(name)} has size {k}"
                yield Dim(name), k + 1, reason, e


def _bad_counts(prog, counts, sizes) -> list:
    """Each (eqn, what) that divides by a count that is 0, or logs one that is <= 0, at these
    sizes."""
    env: dict[str, np.ndarray] = {}
    out = []

    def val(a):
        return np.asarray(a.value) if isinstance(a, Lit) else env.get(a.name)

    with np.errstate(all="ignore"):
        for e in prog.eqns:
            args = [val(a) for a in e.args]
            is_count = [isinstance(a, Var) and a.name in env for a in e.args]
            if e.op == "div" and is_count[1] and float(args[1]) == 0:
                out.append((e, "it divides by"))
            if e.op == "log" and is_count[0] and float(args[0]) <= 0:
                out.append((e, "it takes the log of"))
            if e.out.name not in counts:
                continue
            if e.op == "size":
                env[e.out.name] = np.asarray(_split_size(e.attr("dim"), sizes))
                continue
            op = OPS[e.op]
            env[e.out.name] = np.asarray(op.ref(*args, **ref_attrs(op, e.attrs)))
    return out


def _split_size(d: Dim, sizes: dict) -> float:
    """d's size at these sizes; NaN where a split would not divide (sizes the call refuses
    before any count is taken: lossdsl/ir.py splits)."""
    n = sizes[d.name]
    for op, m, by in d.steps:
        div = m * (sizes[by] if by else 1)
        if op == "/" and (div == 0 or n % div):
            return np.nan
        n = Dim(d.name, steps=((op, m, by),)).size(n, sizes.__getitem__)
    return n


def holds(when, params: dict) -> bool:
    """Whether a Need's condition holds for these param values (a value that is not a Python
    bool, e.g. a traced one, counts as taking every branch)."""
    if when is None:
        return True
    for conj in when:
        if all(not isinstance(params.get(p), bool) or params.get(p) == v for p, v in conj):
            return True
    return False


def too_small_message(label: str, need: Need, size: str, inp: str, least=None) -> str:
    """The InputError of a dim below its minimum ({size} may be a placeholder the generated
    code formats at run time, so may `least`, the minimum, where an int param sets it)."""
    least = need.min_size if least is None else least
    if need.dim.param is not None:  # split(x, k, over=N): the dim is the param's value
        return (
            f"{label}: param '{need.dim}' is {size}, but this loss needs it at least "
            f"{least}: {need.reason}"
        )
    if need.axes:  # a window over *S: each spatial axis
        return (
            f"{label}: dim {need.dim} has an axis of size {size} in '{inp}', but this loss "
            f"needs at least {least} along each: {need.reason}"
        )
    return (
        f"{label}: dim {need.dim} has size {size} in '{inp}', but this loss needs at least "
        f"{least} along it: {need.reason}"
    )


def windowed_variadics(prog: Program) -> list[str]:
    """The variadic dims a window slides over (over=S: all its axes, 1 to 3 of them)."""
    out: dict[str, None] = {}
    for e in prog.eqns:
        if OPS[e.op].kind == "window" and e.attr("over")[0].variadic:
            out[e.attr("over")[0].name] = None
    return list(out)


def rank_message(label: str, name: str, shape: str) -> str:
    """The InputError of a window over *S with more axes than a window takes."""
    return (
        f"{label}: a window slides over *{name}'s axes, 1 to 3 of them (1-d to 3-d images), "
        f"but *{name} is {shape} here"
    )


def split_message(label: str, dim: Dim, n, by: str, div=None) -> str:
    """The InputError of a split whose group size does not divide its dim ({n}, {div}: the
    sizes, or placeholders the generated code formats at run time; no div for a number)."""
    return (
        f"{label}: dim {dim} has {n} entries, which split() cannot cut into groups of "
        f"{by}{'' if div is None else f' = {div}'}: the group size must be at least 1 and "
        "divide the dim's size"
    )


def first_input_with(prog: Program, dim: Dim) -> str:
    """The first input that has `dim` (what a message names)."""
    for d in prog.inputs:
        if any(x.name == dim.name for x in d.var.type.dims) or (
            d.var.type.of is not None and d.var.type.of.name == dim.name
        ):
            return d.var.name
    return prog.inputs[0].var.name if prog.inputs else "?"
