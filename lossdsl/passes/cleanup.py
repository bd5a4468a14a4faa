"""cse: one equation per distinct (op, args, attrs). dce: drop what no output needs."""

from __future__ import annotations

from dataclasses import replace

from lossdsl.graph import live_eqns
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
    return replace(prog, eqns=live_eqns(prog))
