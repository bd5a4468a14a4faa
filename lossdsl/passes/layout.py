"""layout: pick each elementwise result's axis order so that its consumers need no transpose.

Types fix a result's dims, not their order; the lowering picks an order locally (like the
largest operand). A mask built from eye(B, B') & eye(V, V') comes out [B, B', V, V'] while the
similarity it masks is [B, V, B', V']: every where() then reads a transposed copy. This pass
walks backwards and gives an elementwise result the order its multi-operand consumers use,
pinning (with the same `order` attr) every equation whose order would otherwise drift."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from lossdsl.graph import consumers
from lossdsl.ir import Eqn, Program, Var
from lossdsl.ops import OPS


def _elementwise(e: Eqn) -> bool:
    return OPS[e.op].kind == "elementwise"


def _without(dims: tuple, d) -> tuple:
    return tuple(x for x in dims if x != d)


def layout(prog: Program) -> Program:
    uses = consumers(prog)
    want: dict[str, tuple] = {}
    for e in reversed(prog.eqns):
        if not (_elementwise(e) or e.op == "onehot") or len(e.out.type.dims) < 2:
            continue
        cur = e.out.type.dims
        votes = Counter(
            want.get(c.out.name, c.out.type.dims)
            for c in uses[e.out.name]
            if _elementwise(c) and len(c.args) > 1
        )
        votes = Counter({o: n for o, n in votes.items() if set(o) == set(cur)})
        if e.op == "onehot":  # only the class dim can move: keep the index's own order
            idx_dims = e.args[0].type.dims
            votes = Counter(
                {o: n for o, n in votes.items() if _without(o, e.attr("dim")) == idx_dims}
            )
        if votes:
            best = max(votes.items(), key=lambda kv: (kv[1], kv[0] == cur))[0]
            if best != cur:
                want[e.out.name] = best
    if not want:
        return prog
    new_var: dict[str, Var] = {}

    def sub(a):
        return new_var.get(a.name, a) if isinstance(a, Var) else a

    eqns = []
    for e in prog.eqns:
        args = tuple(sub(a) for a in e.args)
        attrs = tuple(kv for kv in e.attrs if kv[0] != "order")
        order = want.get(e.out.name)
        if e.op == "onehot" and order is not None:
            attrs = tuple(kv for kv in attrs if kv[0] != "axis") + (
                ("axis", order.index(e.attr("dim"))),
            )
        if _elementwise(e):
            t = OPS[e.op].type_rule([a.type for a in args], dict(attrs))
            if order is None and t.dims != e.out.type.dims and len(args) > 1:
                # pin: a reordered operand must not move this result (a unary op just
                # follows its operand, which costs nothing)
                order = e.out.type.dims
            if order is not None and order != t.dims:
                attrs += (("order", order),)
        t = OPS[e.op].type_rule([a.type for a in args], dict(attrs))
        out = Var(e.out.name, t)
        if out != e.out:
            new_var[e.out.name] = out
        eqns.append(Eqn(out, e.op, args, attrs, e.span))
    outputs = tuple((m, sub(a)) for m, a in prog.outputs)
    return replace(prog, eqns=tuple(eqns), outputs=outputs)
