"""The optimization pipeline: pure Program -> Program passes, listed once.

`lossdsl ir SPEC --after NAME` prints the IR after the pass of that name."""

from __future__ import annotations

from collections.abc import Callable

from lossdsl.ir import Program
from lossdsl.passes.cleanup import cse, dce
from lossdsl.passes.contract import CONTRACT_RULES, contract
from lossdsl.passes.fuse import FUSE_RULES, fuse
from lossdsl.passes.layout import layout
from lossdsl.passes.loops import hoist, in_bodies
from lossdsl.passes.rewrite import RESERVED, defined_names
from lossdsl.passes.simplify import SIMPLIFY_RULES, fold, simplify
from lossdsl.passes.stabilize import STABILIZE_RULES, stabilize

Pass = Callable[[Program], Program]

# Every pass but layout also runs inside loop and grad bodies (a body's state is typed: its
# axis order cannot move); hoist then moves a loop's invariant equations out of it.
PIPELINE: tuple[tuple[str, Pass], ...] = (
    ("fold", in_bodies(fold)),
    ("simplify", in_bodies(simplify)),
    ("stabilize", in_bodies(stabilize)),
    ("fuse", in_bodies(fuse)),
    ("contract", in_bodies(contract)),
    ("layout", layout),
    ("cse", in_bodies(cse)),
    ("hoist", hoist),
    ("dce", in_bodies(dce)),
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
    token = RESERVED.set(defined_names(prog))
    try:
        for name, p in PIPELINE:
            prog = p(prog)
            if after is not None:
                after(name, prog)
    finally:
        RESERVED.reset(token)
    return prog
