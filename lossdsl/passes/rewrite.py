"""The machinery every pass shares: walk the equations once, let a rule replace each one, and
substitute the replacement into every later use. Passes stay pure: a new Program comes out."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace

from lossdsl.ir import Atom, Body, Eqn, Lit, Program, Var
from lossdsl.ops import OPS

RESERVED: ContextVar[set[str] | None] = ContextVar("reserved_names", default=None)


def defined_names(prog: Program) -> set[str]:
    """Every name the program defines: inputs, params, equations, and inside loop and grad
    bodies (codegen writes a torch loop's body inline, in the function's own namespace)."""
    out = {d.var.name for d in (*prog.inputs, *prog.params)}

    def walk(eqns):
        for e in eqns:
            out.add(e.out.name)
            body = e.attr("body")
            if isinstance(body, Body):
                out.update(v.name for v in (*body.state, *body.xs, *body.free))
                walk(body.eqns)

    walk(prog.eqns)
    return out


class Rewriter:
    """Builds the new equation list. Rules look at producers through `defn` and emit helpers
    through `emit`; a replacement must have exactly the type of the equation it replaces."""

    def __init__(self, prog: Program):
        self.prog = prog
        self.eqns: list[Eqn] = []
        self.defs: dict[str, Eqn] = {}
        self.subst: dict[str, Atom] = {}
        self.taken = defined_names(prog)
        # and those of the program a body is part of, while run_pipeline runs (in_bodies)
        self.shared = RESERVED.get()
        if self.shared is not None:
            self.taken |= self.shared
        self.uses = Counter(a.name for e in prog.eqns for a in e.args if isinstance(a, Var))
        self.uses.update(a.name for _, a in prog.outputs if isinstance(a, Var))
        self._n = 0
        self.changed = False
        self.span = None  # the span of the equation being rewritten: its replacement's

    def defn(self, a: Atom) -> Eqn | None:
        return self.defs.get(a.name) if isinstance(a, Var) else None

    def producer(self, a: Atom, op: str) -> Eqn | None:
        e = self.defn(a)
        return e if e is not None and e.op == op else None

    def fresh(self) -> str:
        while f"r{self._n}" in self.taken:
            self._n += 1
        self.taken.add(f"r{self._n}")
        if self.shared is not None:
            self.shared.add(f"r{self._n}")
        return f"r{self._n}"

    def emit(self, op: str, args: tuple[Atom, ...], attrs: tuple = ()) -> Var:
        t = OPS[op].type_rule([a.type for a in args], dict(attrs))
        out = Var(self.fresh(), t)
        self._append(Eqn(out, op, tuple(args), tuple(attrs), self.span))
        return out

    def _append(self, e: Eqn) -> None:
        self.eqns.append(e)
        self.defs[e.out.name] = e

    def rename(self, var: Var, name: str) -> None:
        """Rename a value this rewriter emitted (its uses so far are all in self.eqns)."""
        new = Var(name, var.type)
        ren = lambda a: new if isinstance(a, Var) and a.name == var.name else a  # noqa: E731
        self.eqns = [
            Eqn(ren(e.out), e.op, tuple(ren(a) for a in e.args), e.attrs, e.span) for e in self.eqns
        ]
        self.defs = {e.out.name: e for e in self.eqns}
        self.subst = {k: ren(v) for k, v in self.subst.items()}
        self.subst[var.name] = new

    def sub(self, a: Atom) -> Atom:
        return self.subst.get(a.name, a) if isinstance(a, Var) else a


Rule = Callable[[Rewriter, Eqn], Atom | None]


@dataclass(frozen=True)
class Row:
    """One rewrite rule: what it does, why it is right, and the function that does it.
    `ops`: the ops of the equations it can rewrite (None: any); the rewriter offers it no
    other equation (a compile makes ~30k rule calls otherwise, most returning at once)."""

    name: str
    reason: str
    fn: Rule
    ops: tuple[str, ...] | None = None


def run_rules(prog: Program, rules: tuple[Row, ...] | Rule, max_rounds: int = 8) -> Program:
    """Apply the rules to every equation until nothing changes."""
    rows = (Row("", "", rules),) if callable(rules) else rules
    by_op: dict[str, list[Rule]] = {}

    def fns(op: str) -> list[Rule]:
        if op not in by_op:
            by_op[op] = [r.fn for r in rows if r.ops is None or op in r.ops]
        return by_op[op]

    for _ in range(max_rounds):
        prog, changed = _one_round(prog, fns)
        if not changed:
            break
    return prog


def _one_round(prog: Program, fns: Callable[[str], list[Rule]]) -> tuple[Program, bool]:
    rw = Rewriter(prog)
    for e in prog.eqns:
        if rw.subst:  # (dataclasses.replace is slow; most equations keep their arguments)
            args = tuple(rw.sub(a) for a in e.args)
            if args != e.args:
                e = Eqn(e.out, e.op, args, e.attrs, e.span)
        rw.span = e.span
        new = None
        start = len(rw.eqns)
        for fn in fns(e.op):
            new = fn(rw, e)
            if new is not None:
                break
        if new is None:
            rw._append(e)
            continue
        # A rule may hand back a value it saw earlier (cse) that was renamed since (to keep a
        # user's let-name): follow the renaming.
        new = rw.sub(new)
        t = e.out.type
        if isinstance(new, Var) and new.type != t and new.type == t.with_dims(new.type.dims):
            if sorted(map(str, new.type.dims)) == sorted(map(str, t.dims)):
                # a rule's ops broadcast in their own dim order ((a * b)[t] -> a * b[t]):
                # the value keeps e's layout, so every later equation sees the same type
                new = rw.emit("transpose", (new,), (("dims", t.dims),))
        assert new.type == t, f"rule changed the type of {e.out.name}: {new.type}"
        rw.changed = True
        last = rw.eqns[-1] if rw.eqns else None
        if isinstance(new, Var) and len(rw.eqns) > start and last.out == new:
            # Keep the replaced equation's (user-facing) name for the new last equation.
            rw.eqns[-1] = Eqn(e.out, last.op, last.args, last.attrs, last.span)
            rw.defs[e.out.name] = rw.eqns[-1]
            rw.defs.pop(new.name, None)
            rw.subst[new.name] = e.out
        else:
            rw.subst[e.out.name] = new
            # keep the user's let-name on the surviving value, when an equation here made it
            # (an input or param named like a generated value, r0, keeps its name)
            if (
                isinstance(new, Var)
                and new.name in rw.defs
                and _generated(new.name)
                and not _generated(e.out.name)
            ):
                rw.rename(new, e.out.name)
    outputs = tuple((m, _materialize(rw, rw.sub(a))) for m, a in prog.outputs)
    return replace(prog, eqns=tuple(rw.eqns), outputs=outputs), rw.changed


def _materialize(rw: Rewriter, a: Atom) -> Atom:
    """A result that folded to a literal (align_uniform with both weights baked at 0) is still
    returned as a 0-d array of the input's float dtype: a fill, not a Python number."""
    if not isinstance(a, Lit):
        return a
    f = rw.emit("fill", (), (("dims", ()), ("value", a.value), ("dtype", a.type.dtype)))
    return f if f.type == a.type else a


def _generated(name: str) -> bool:
    """Names the compiler made up (t3, r0), as opposed to the spec's own let-names."""
    return re.fullmatch(r"[tr]\d+", name) is not None


def is_lit(a: Atom, value=None) -> bool:
    """Is `a` a literal (equal to `value`, if given)? Bools only match bools: 1 is not true."""
    if not isinstance(a, Lit):
        return False
    if value is None:
        return True
    return isinstance(value, bool) == (a.type.dtype == "bool") and a.value == value
