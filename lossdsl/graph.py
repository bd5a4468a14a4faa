"""The IR as a graph: who produces a name, who uses it, what a value is computed from, what
reaches the outputs, and the sub-program that computes a set of values.

A Program's equations are in SSA form (ir.verify: every name defined once, before its uses), so
one backward scan finds what the outputs need, and a walk from a name through its producers
finds everything it depends on. Every pass, schedule and code generator asks these questions
here rather than with its own walk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

from lossdsl.ir import Atom, Eqn, Program, Var


def producers(eqns: Program | Iterable[Eqn]) -> dict[str, Eqn]:
    """name -> the equation that computes it."""
    eqns = eqns.eqns if isinstance(eqns, Program) else eqns
    return {e.out.name: e for e in eqns}


def consumers(eqns: Program | Iterable[Eqn]) -> dict[str, list[Eqn]]:
    """name -> the equations that read it, in program order (once per argument position)."""
    eqns = eqns.eqns if isinstance(eqns, Program) else eqns
    out: dict[str, list[Eqn]] = defaultdict(list)
    for e in eqns:
        for a in e.args:
            if isinstance(a, Var):
                out[a.name].append(e)
    return out


def walk(
    roots: Iterable[Atom | str],
    producer: Mapping[str, Eqn],
    through: Callable[[Eqn], bool] | None = None,
) -> Iterator[tuple[str, Eqn | None]]:
    """Every name the roots are computed from, the roots included, each once (depth first):
    (name, its equation, or None for an input, a param or a name computed elsewhere).
    `through(e)` false: the walk does not continue into e's arguments. A generator, so that a
    search can stop at the first hit."""
    stack = [r if isinstance(r, str) else r.name for r in roots if not _is_lit(r)]
    seen: set[str] = set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        e = producer.get(n)
        yield n, e
        if e is not None and (through is None or through(e)):
            stack.extend(a.name for a in e.args if isinstance(a, Var))


def _is_lit(a) -> bool:
    return not isinstance(a, (str, Var))


def dependencies(roots: Iterable[Atom | str], producer: Mapping[str, Eqn]) -> set[str]:
    """The names of the equations the roots need (the roots' own among them), transitively."""
    return {n for n, e in walk(roots, producer) if e is not None}


def depends_on(root: Atom | str, names: set[str], producer: Mapping[str, Eqn]) -> bool:
    """Whether `root` is one of `names` or is computed from one of them."""
    return any(n in names for n, _ in walk([root], producer))


def live_eqns(prog: Program) -> tuple[Eqn, ...]:
    """The equations the outputs need (what reaches them), in program order: one backward
    scan, which in SSA form finds exactly the outputs' dependencies."""
    need = {a.name for _, a in prog.outputs if isinstance(a, Var)}
    keep = []
    for e in reversed(prog.eqns):
        if e.out.name in need:
            keep.append(e)
            need.update(a.name for a in e.args if isinstance(a, Var))
    return tuple(reversed(keep))


def slice_eqns(eqns: tuple[Eqn, ...], wanted: Iterable[str]) -> tuple[tuple[Eqn, ...], set[str]]:
    """The equations of `eqns` that compute `wanted` from each other, in their order, and the
    free names they read (inputs, params, values computed outside `eqns`)."""
    keep: set[str] = set()
    free: set[str] = set()
    for n, e in walk(wanted, producers(eqns)):
        (keep if e is not None else free).add(n)
    return tuple(e for e in eqns if e.out.name in keep), free


def index_sources(prog: Program, i: Var) -> list[str]:
    """The index inputs an index value is computed from (through where, renames, ...), for
    runtime range-check messages; empty for indices the program makes (argmax, arange)."""
    inputs = {d.var.name for d in prog.inputs if d.var.type.of is not None}
    made = lambda e: e.op in ("argmax", "arange")  # noqa: E731
    return sorted(
        n for n, _ in walk([i], producers(prog), through=lambda e: not made(e)) if n in inputs
    )
