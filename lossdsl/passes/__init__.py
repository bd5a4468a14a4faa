"""The optimization pipeline: pure Program -> Program passes, listed once.

`lossdsl ir SPEC --after NAME` prints the IR after the pass of that name."""

from __future__ import annotations

from collections.abc import Callable

from lossdsl.ir import Program
from lossdsl.passes.cleanup import cse, dce
from lossdsl.passes.contract import CONTRACT_RULES, contract
from lossdsl.passes.fuse import FUSE_RULES, fuse
from lossdsl.passes.layout import layout
from lossdsl.passes.simplify import SIMPLIFY_RULES, fold, simplify
from lossdsl.passes.stabilize import STABILIZE_RULES, stabilize

Pass = Callable[[Program], Program]

PIPELINE: tuple[tuple[str, Pass], ...] = (
    ("fold", fold),
    ("simplify", simplify),
    ("stabilize", stabilize),
    ("fuse", fuse),
    ("contract", contract),
    ("layout", layout),
    ("cse", cse),
    ("dce", dce),
)
PASS_NAMES = tuple(n for n, _ in PIPELINE)
RULE_TABLES = {
    "simplify": SIMPLIFY_RULES,
    "stabilize": STABILIZE_RULES,
    "fuse": FUSE_RULES,
    "contract": CONTRACT_RULES,
}


def run_pipeline(prog: Program, after: Callable[[str, Program], None] | None = None) -> Program:
    """Every pass in order; `after(name, prog)` sees each intermediate program (tests verify
    each one, `lossdsl ir` prints them)."""
    for name, p in PIPELINE:
        prog = p(prog)
        if after is not None:
            after(name, prog)
    return prog
