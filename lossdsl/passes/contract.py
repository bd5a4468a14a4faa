"""contract: sum(a * b, over=D) -> contract(a, b, over=D), an einsum (through an expand of a
factor whose new dims the other factor has). A longer product sum(2 * expand(x, L) * w * m,
over=D) is two sides, x * 2 * m and w, each factor multiplied into a side that has its dims.

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
    facs = _factors(rw, m)
    whole = set().union(*(f.type.dims for f in facs))
    # a factor's expand may be dropped where the others have its new dims, but not every
    # factor's for the same dim: sum(expand(x, C) * expand(y, C), over=C) is C * x * y
    for i, f in enumerate(facs):
        others = [g for j, g in enumerate(facs) if j != i]
        g = _unexpanded(rw, f, set().union(*(h.type.dims for h in others)))
        if set(g.type.dims).union(*(h.type.dims for h in others)) == whole:
            facs[i] = g
    # a factor whose dims another factor has (a scale, a mask m[D]) is multiplied into that
    # one first: an elementwise product, no new dim (a scale is not taken out of the sum,
    # where inf * 0 and overflow would differ from the product it replaces)
    groups: list[list] = []
    for f in sorted(facs, key=lambda f: -len(f.type.dims)):
        home = next((g for g in groups if set(f.type.dims) <= set(g[0].type.dims)), None)
        if home is None:
            groups.append([f])
        else:
            home.append(f)
    if len(groups) != 2:
        return None
    da, db = (set(g[0].type.dims) for g in groups)
    if not (da - db and db - da) or any(
        f.type.dtype != "float" for g in groups for f in g if f.type.dims
    ):
        return None
    return rw.emit("contract", tuple(_product(rw, g) for g in groups), e.attrs)


def _factors(rw, m) -> list:
    """The factors of a product tree x * (y * z), through muls nothing else uses."""
    out = []
    for a in m.args:
        inner = rw.producer(a, "mul")
        if inner is not None and rw.uses[a.name] == 1 and a.type.dtype == m.out.type.dtype:
            out += _factors(rw, inner)
        else:
            out.append(a)
    return out


def _product(rw, group):
    out = group[0]
    for f in group[1:]:
        out = rw.emit("mul", (out, f))
    return out


def _unexpanded(rw, a, other: set):
    """`a` before an expand whose new dims the `other` factors have anyway: broadcasting by
    name adds them to the product, so sum(expand(x, H') * k[H, H'], over=H) is x contracted
    with k."""
    x = rw.producer(a, "expand")
    if x is None or x.args[0].type.dtype != a.type.dtype:
        return a
    new = set(a.type.dims) - set(x.args[0].type.dims)
    return x.args[0] if new <= other else a


CONTRACT_RULES = (
    Row(
        "sum(a * b, over) -> contract(a, b, over)",
        "an outer product summed over a dim is a matmul; never materialize it",
        _contract,
        ("sum",),
    ),
)


def contract(prog: Program) -> Program:
    # dce first to count live uses only, and after so that `ir --after contract` shows no
    # outer product left dead behind the einsum
    return dce(run_rules(dce(prog), CONTRACT_RULES))
