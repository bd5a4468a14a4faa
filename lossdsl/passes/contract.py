"""contract: sum(a * b, over=D) -> contract(a, b, over=D), an einsum.

When a and b each have a dim the other lacks (z[B, D] * z'[B', D]), the product is an outer
product ([B, D, B'] here) that a matmul never builds: supcon's similarity matrix costs B*B'
memory instead of B*B'*D."""

from __future__ import annotations

from lossdsl.ir import Program
from lossdsl.passes.cleanup import dce
from lossdsl.passes.rewrite import Row, run_rules


def _contract(rw, e):
    if e.op != "sum":
        return None
    m = rw.producer(e.args[0], "mul")
    if m is None or rw.uses[m.out.name] != 1:
        return None
    a, b = m.args
    da, db = set(a.type.dims), set(b.type.dims)
    if not (da - db and db - da) or a.type.dtype != "float" or b.type.dtype != "float":
        return None
    return rw.emit("contract", (a, b), e.attrs)


CONTRACT_RULES = (
    Row(
        "sum(a * b, over) -> contract(a, b, over)",
        "an outer product summed over a dim is a matmul; never materialize it",
        _contract,
        ("sum",),
    ),
)


def contract(prog: Program) -> Program:
    return run_rules(dce(prog), CONTRACT_RULES)  # dce first: count live uses only
