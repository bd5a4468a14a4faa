"""Passes inside the bodies of loops and grads, and loop-invariant code motion.

A body (lossdsl/ir.py `Body`) is closed, so a pass over the outer program never reaches inside
it. `in_bodies(p)` runs the pass on each body too, innermost first, as a program of its own:
the state, slices and free values are its inputs, the next state its outputs. A free value that
the caller passes as a literal (a baked param) is put into the body first, so that folding sees
it, and so is a free value that is a constant array (`fill`). `log(softmax(x))` inside a scan
then becomes `log_softmax` as it does outside one.

`hoist` moves the equations of a repeat or scan body that read only free values (and the
literals) out of the loop: they run once, not once per step. Their results come back in as new
free values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lossdsl.ir import Atom, Body, Eqn, InputDecl, Lit, Program, Var
from lossdsl.ops import OPS

Pass = Callable[[Program], Program]


def _free_args(e: Eqn, body: Body) -> tuple[Atom, ...]:
    """The outer values bound to the body's free vars: the last args of every loop and grad."""
    return e.args[len(e.args) - len(body.free) :]


def _rebind(e: Eqn, body: Body, new: Body, free: tuple[Atom, ...]) -> Eqn:
    """The loop or grad e with its body `new` and its free args `free`."""
    lead = e.args[: len(e.args) - len(body.free)]
    attrs = tuple((k, new if k == "body" else v) for k, v in e.attrs)
    return replace(e, args=(*lead, *free), attrs=attrs)


def _map_bodies(eqns, fn: Callable[[Eqn, Body], tuple]) -> tuple:
    """Each equation holding a body, its body and free args replaced by fn(e, body) = (body,
    free args[, equations to put before the loop]). The equations of one loop (one per state
    value) share a body: it is rewritten once, and they keep sharing the result (codegen emits
    the loop once per body)."""
    done: dict = {}
    out: list[Eqn] = []
    for e in eqns:
        body = e.attr("body")
        if not isinstance(body, Body):
            out.append(e)
            continue
        key = (id(body), e.args)
        if key not in done:
            new, free, *before = fn(e, body)
            done[key] = new, free
            for up in before:
                out.extend(up)
        out.append(_rebind(e, body, *done[key]))
    return tuple(out)


def _inline_literals(body: Body, free: tuple[Atom, ...]) -> tuple[Body, tuple[Atom, ...]]:
    """Free vars bound to literals become those literals inside the body (where a result is
    one, the free var stays)."""
    lits = {v.name: a for v, a in zip(body.free, free) if isinstance(a, Lit)}
    if not lits:
        return body, free
    sub = lambda a: lits.get(a.name, a) if isinstance(a, Var) else a  # noqa: E731
    eqns = tuple(replace(e, args=tuple(sub(a) for a in e.args)) for e in body.eqns)
    kept = {r.name for r in body.results if isinstance(r, Var)}
    pairs = [(v, a) for v, a in zip(body.free, free) if v.name not in lits or v.name in kept]
    return (
        replace(body, eqns=eqns, free=tuple(v for v, _ in pairs)),
        tuple(a for _, a in pairs),
    )


def _inline_fills(body: Body, free: tuple[Atom, ...], fills: dict) -> tuple[Body, tuple]:
    """Free vars bound to an outer `fill` (a constant array: an absent input's default) are
    that fill inside the body, so that the rules see the constant (hoist moves it back out)."""
    inner = [
        Eqn(v, "fill", (), fills[a.name].attrs, fills[a.name].span)
        for v, a in zip(body.free, free)
        if isinstance(a, Var) and a.name in fills
    ]
    if not inner:
        return body, free
    gone = {e.out.name for e in inner}
    pairs = [(v, a) for v, a in zip(body.free, free) if v.name not in gone]
    return (
        replace(body, eqns=(*inner, *body.eqns), free=tuple(v for v, _ in pairs)),
        tuple(a for _, a in pairs),
    )


def in_bodies(p: Pass) -> Pass:
    """The pass `p` on the program and, first, on every body in it (recursively)."""

    def on_body(e: Eqn, body: Body, fills: dict):
        body, free = _inline_literals(body, _free_args(e, body))
        body, free = _inline_fills(body, free, fills)
        inputs = tuple(InputDecl(v) for v in (*body.state, *body.xs, *body.free))
        outputs = tuple((f"r{k}", r) for k, r in enumerate(body.results))
        new = run(Program("body", "", inputs, (), body.eqns, outputs))
        return replace(body, eqns=new.eqns, results=tuple(a for _, a in new.outputs)), free

    def run(prog: Program) -> Program:
        fills = {e.out.name: e for e in prog.eqns if e.op == "fill"}
        eqns = _map_bodies(prog.eqns, lambda e, body: on_body(e, body, fills))
        return p(replace(prog, eqns=eqns))

    return run


def _invariant(e: Eqn, inv: set[str]) -> bool:
    """Computed from free values and literals alone; not a function input's call (a critic
    may hold state, a dropout) nor a collective (every rank runs it at the same point)."""
    if e.op == "call_fn" or OPS[e.op].kind == "collective":
        return False
    return all(isinstance(a, Lit) or a.name in inv for a in e.args)


def hoist(prog: Program) -> Program:
    return replace(prog, eqns=_hoist(prog.eqns))


def _hoist(eqns) -> tuple:
    """The equations, each loop's invariant equations moved to just before it."""
    return _map_bodies(eqns, _hoist_loop)


def _hoist_loop(e: Eqn, body: Body) -> tuple[Body, tuple[Atom, ...], list[Eqn]]:
    """(the body without its invariant equations, its free args, those equations reading the
    outer values); a grad's body runs once: only the loops inside it move."""
    body = replace(body, eqns=_hoist(body.eqns))  # the inner loops first
    free = _free_args(e, body)
    if OPS[e.op].kind != "loop":
        return body, free, []
    bind = {v.name: a for v, a in zip(body.free, free)}
    inv = set(bind)
    up, kept = [], []
    for b in body.eqns:
        if _invariant(b, inv):
            sub = lambda a: bind.get(a.name, a) if isinstance(a, Var) else a  # noqa: E731
            up.append(replace(b, args=tuple(sub(a) for a in b.args)))
            inv.add(b.out.name)
            bind[b.out.name] = b.out  # (names are unique across the program and its bodies)
        else:
            kept.append(b)
    if not up:
        return body, free, []
    used = {a.name for b in kept for a in b.args if isinstance(a, Var)}
    used |= {r.name for r in body.results if isinstance(r, Var)}
    new = tuple(b.out for b in up if b.out.name in used)
    return replace(body, eqns=tuple(kept), free=(*body.free, *new)), (*free, *new), up
