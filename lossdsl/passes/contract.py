"""contract: sum(a * b, over=D) -> contract(a, b, over=D), an einsum (through an expand of a
factor whose new dims the other factor has).

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
    whole = set(a.type.dims) | set(b.type.dims)
    # each side's expand may be dropped where the other side has its new dims, but not both
    # sides' for the same dim: sum(expand(x, C) * expand(y, C), over=C) is C * x * y
    for a2, b2 in (
        (_unexpanded(rw, a, b), _unexpanded(rw, b, a)),
        (_unexpanded(rw, a, b), b),
        (a, _unexpanded(rw, b, a)),
    ):
        if set(a2.type.dims) | set(b2.type.dims) == whole:
            a, b = a2, b2
            break
    da, db = set(a.type.dims), set(b.type.dims)
    if not (da - db and db - da) or a.type.dtype != "float" or b.type.dtype != "float":
        return None
    return rw.emit("contract", (a, b), e.attrs)


def _unexpanded(rw, a, other):
    """`a` before an expand whose new dims `other` has anyway: broadcasting by name adds them
    to the product, so sum(expand(x, H') * k[H, H'], over=H) is x contracted with k."""
    x = rw.producer(a, "expand")
    if x is None or x.args[0].type.dtype != a.type.dtype:
        return a
    new = set(a.type.dims) - set(x.args[0].type.dims)
    return x.args[0] if new <= set(other.type.dims) else a


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
