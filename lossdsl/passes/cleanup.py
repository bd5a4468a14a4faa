"""cse: one equation per distinct (op, args, attrs). dce: drop what no output needs."""

from __future__ import annotations

from dataclasses import replace

from lossdsl.ir import Program, Var
from lossdsl.passes.rewrite import run_rules


def cse(prog: Program) -> Program:
    seen: dict[tuple, Var] = {}

    def rule(rw, e):
        k = e.key
        if k in seen:
            return seen[k]
        seen[k] = e.out
        return None

    return run_rules(prog, rule, max_rounds=1)


def dce(prog: Program) -> Program:
    live = {a.name for _, a in prog.outputs if isinstance(a, Var)}
    keep = []
    for e in reversed(prog.eqns):
        if e.out.name in live:
            keep.append(e)
            live.update(a.name for a in e.args if isinstance(a, Var))
    return replace(prog, eqns=tuple(reversed(keep)))
