"""Loops: `repeat(n, init=(f0, g0)) (f, g) { ... (f2, g2) }` lowered to one `repeat` equation
per state value, sharing one closed Body (lossdsl/ir.py): the block is lowered on a builder of
its own, and every outer value it reads becomes a free var of the body. `checkpoint=true`
(an attribute) asks the backends to keep only the state of each step for the backward pass.

`scan(x, y, over=T, init=h0) (h, xt, yt) { ... }` is the same loop run once per entry of T: the
names after the state's bind x's and y's slices at that entry (the body's xs), and the result is
the state after every step, stacked along T (T first)."""

from __future__ import annotations

from lossdsl import ast
from lossdsl.errors import ArityError, DuplicateDefinition, TypeMismatch
from lossdsl.ir import Atom, Body, Lit, Var
from lossdsl.lower.context import Builder, Ctx, _sp, close_body, resolve_dim
from lossdsl.lower.expr import lower_expr
from lossdsl.lower.results import _new_name, lower_stmts
from lossdsl.types import INT, TensorType

BLOCK_FUNCTIONS = ("repeat", "scan")


def lower_block_call(ctx: Ctx, node: ast.BlockCall, count: int = 1) -> list[Atom | None] | None:
    """The `count` values a block call binds (its state after the loop), or None after an
    error."""
    if node.func not in BLOCK_FUNCTIONS:
        return ctx.error(
            TypeMismatch,
            f"{node.func}(...) takes no block",
            node.func_span or node.span,
            "a block { ... } follows repeat(n, init=...) (state names) only",
        )
    state = node.state
    if node.func == "scan":
        return _lower_scan(ctx, node, count)
    if len(state) != count:
        return ctx.error(
            ArityError,
            f"the loop carries {len(state)} value{'s' if len(state) != 1 else ''} "
            f"({', '.join(state)}), but {count} name{'s are' if count != 1 else ' is'} bound",
            node.span,
            f"bind one name per state value: let {', '.join(state)} = repeat(...)",
        )
    if not _new_names(ctx, node):
        return None
    kws = {k.name: k for k in node.kwargs}
    bad = next((k for k in node.kwargs if k.name not in ("n", "init", "checkpoint")), None)
    if bad is not None or len(node.args) > 1 or ("n" in kws and node.args):
        where = bad.span if bad is not None else node.span
        return ctx.error(
            ArityError,
            "repeat() takes the number of steps and init=",
            where,
            "repeat(50, init=(f0, g0)) (f, g) { ... }",
        )
    n_node = kws["n"].value if "n" in kws else node.args[0] if node.args else None
    if n_node is None or "init" not in kws:
        return ctx.error(
            ArityError,
            "repeat() needs the number of steps and the state's first value (init=)",
            node.span,
            "repeat(50, init=(f0, g0)) (f, g) { ... }",
        )
    ckpt = kws["checkpoint"].value if "checkpoint" in kws else ast.Bool(False)
    if not isinstance(ckpt, ast.Bool):
        return ctx.error(
            TypeMismatch,
            "checkpoint= is true or false, written out",
            _sp(ckpt),
            "repeat(50, init=u0, checkpoint=true) (u) { ... }: each step recomputed in the "
            "backward pass, only the state kept",
        )
    n = lower_expr(ctx, n_node)
    if n is None:
        return None
    if n.type != INT:
        return ctx.error(
            TypeMismatch,
            f"repeat() runs a whole number of steps: the count is {n.type}",
            _sp(n_node),
            "pass an int: a number like 50, or an int param",
        )
    if isinstance(n, Lit) and n.value < 0:
        return ctx.error(
            TypeMismatch, f"repeat() cannot run {n.value} steps", _sp(n_node), "pass n >= 0"
        )
    init = _init(ctx, node, kws["init"].value, state)
    if init is None:
        return None
    return _finish(ctx, node, "repeat", init, state, (n,), (), (("checkpoint", ckpt.value),))


def _new_names(ctx: Ctx, node: ast.BlockCall) -> bool:
    """The block's names (state, then slices) are new: not twice, not an outer name."""
    spans = node.state_spans or (node.span,) * len(node.state)
    for i, (name, sp) in enumerate(zip(node.state, spans)):
        if name in node.state[:i]:
            ctx.error(
                DuplicateDefinition,
                f"the loop's state names '{name}' twice",
                sp or node.span,
                "give each state value its own name: (u, v)",
            )
            return False
        if not _new_name(ctx, name, sp or node.span):
            return False
    return True


def _init(ctx: Ctx, node: ast.BlockCall, init_node, state) -> list[Atom] | None:
    items = init_node.items if isinstance(init_node, ast.Tuple) else (init_node,)
    if len(items) != len(state):
        return ctx.error(
            ArityError,
            f"init= gives {len(items)} value{'s' if len(items) != 1 else ''} for the "
            f"{len(state)} state value{'s' if len(state) != 1 else ''} ({', '.join(state)})",
            _sp(init_node),
            "one first value per state name, in order",
        )
    init = [lower_expr(ctx, i) for i in items]
    return None if any(a is None for a in init) else init


def _lower_scan(ctx: Ctx, node: ast.BlockCall, count: int) -> list[Atom | None] | None:
    """scan(x, ..., over=T, init=h0, reverse=false) (h, ..., xt, ...) { ... }."""
    example = "scan(x, over=T, init=h0) (h, xt) { ...the next h from h and xt... }"
    if not _new_names(ctx, node):
        return None
    kws = {k.name: k for k in node.kwargs}
    bad = next((k for k in node.kwargs if k.name not in ("over", "init", "reverse")), None)
    if bad is not None or "over" not in kws or "init" not in kws or not node.args:
        return ctx.error(
            ArityError,
            "scan() takes the sequences it walks, over=DIM and init=",
            bad.span if bad is not None else node.span,
            example,
        )
    rev = kws["reverse"].value if "reverse" in kws else ast.Bool(False)
    if not isinstance(rev, ast.Bool):
        return ctx.error(TypeMismatch, "reverse= is true or false, written out", _sp(rev), example)
    over = resolve_dim(ctx, kws["over"].value)
    seqs = [lower_expr(ctx, a) for a in node.args]
    if over is None or any(x is None for x in seqs):
        return None
    for a, x in zip(node.args, seqs):
        if over not in x.type.dims:
            return ctx.error(
                TypeMismatch,
                f"scan() walks {over}, but this sequence is {x.type}",
                _sp(a),
                f"each sequence has the dim it walks: expand(x, {over}) repeats one along it",
            )
    state, names = node.state[: len(node.state) - len(seqs)], node.state[-len(seqs) :]
    if len(state) != count or not state:
        return ctx.error(
            ArityError,
            f"the block's names ({', '.join(node.state)}) are the state ({count} value"
            f"{'s' if count != 1 else ''}, as the let binds) and one slice per sequence "
            f"({len(seqs)}): {count + len(seqs)} names",
            node.span,
            f"name the state, then one slice per sequence: let h = {example}",
        )
    init = _init(ctx, node, kws["init"].value, state)
    if init is None:
        return None
    slices = [
        (name, TensorType(x.type.dtype, tuple(d for d in x.type.dims if d != over), x.type.of))
        for name, x in zip(names, seqs)
    ]
    attrs = (("over", (over,)), ("reverse", rev.value))
    return _finish(ctx, node, "scan", init, state, (), seqs, attrs, slices)


def _finish(ctx, node, op, init, state, lead, seqs, attrs, slices=()):
    """Lower the block, close it and emit one `op` eqn per state value: args (*lead, *init,
    *seqs, *free)."""
    for st in node.block.stmts:
        if not isinstance(st, ast.Let | ast.LetTuple | ast.Use):
            return ctx.error(
                TypeMismatch,
                "a loop's block has lets and a result only",
                st.span,
                "declare params and the reduction in the loss, outside the loop",
            )
    res_node = node.block.result
    res_items = res_node.items if isinstance(res_node, ast.Tuple) else (res_node,)
    if len(res_items) != len(state):
        return ctx.error(
            ArityError,
            f"the block gives {len(res_items)} value{'s' if len(res_items) != 1 else ''} for "
            f"the {len(state)} state value{'s' if len(state) != 1 else ''} ({', '.join(state)})",
            _sp(res_node),
            f"end the block with the next state: ({', '.join(state)})"
            if len(state) > 1
            else f"end the block with the next {state[0]}",
        )
    # the loop's values take the state's names (`let u, v = repeat(...) (u, v)` binds u, v),
    # the block's own state vars the next free ones
    reserved = [ctx.b.fresh(name) for name in state]
    block = _lower_block(ctx, node, init, res_items, slices)
    if block is None:
        return None
    b, state_vars, xs, results = block
    if any(r.type.dtype == "float" and v.type.dtype == "int" for r, v in zip(results, state_vars)):
        # an int start (init=x of an int input, init=0) of a state the block makes float:
        # the state is float from the first step
        init = [
            ctx.emit("to_float", (a,), span=node.span)
            if r.type.dtype == "float" and a.type.dtype == "int"
            else a
            for a, r in zip(init, results)
        ]
        block = _lower_block(ctx, node, init, res_items, slices)
        if block is None:
            return None
        b, state_vars, xs, results = block
    results = [
        _as_state(ctx, b, r, s, name, rn)
        for r, s, name, rn in zip(results, state_vars, state, res_items)
    ]
    if any(r is None for r in results):
        return None

    # close the body: every outer value it reads becomes a free var
    own = {v.name for v in (*state_vars, *xs)} | {e.out.name for e in b.eqns}
    eqns, results, free, outer = close_body(b, own, results)
    body = Body(tuple(state_vars), free, eqns, tuple(results), tuple(xs))
    args = (*lead, *init, *seqs, *outer)
    ctx.b.taken.difference_update(reserved)
    return [
        ctx.emit(op, args, (("body", body), ("out", k), *attrs), span=node.span, hint=name)
        for k, name in zip(range(len(state)), reserved)
    ]


def _lower_block(ctx: Ctx, node: ast.BlockCall, init: list[Atom], res_items, slices=()):
    """The block on a builder of its own (names unique across both: they share `taken`), its
    state typed as `init`, its slices (name, type): (builder, state vars, slice vars,
    results), or None after an error."""
    b = Builder(budget=ctx.b.budget)
    b.taken = ctx.b.taken
    b.params, b.weak = set(ctx.b.params), set(ctx.b.weak)
    inner = Ctx(
        b,
        ctx.errors,
        ctx.scope,
        env=dict(ctx.env),
        dims=ctx.dims,
        origin=dict(ctx.origin),
        stack=ctx.stack,
        loss_name=ctx.loss_name,
        silent=set(ctx.silent),
        choices=ctx.choices,
        levels=ctx.levels,
        parent=ctx.parent,
        fns=ctx.fns,
    )
    state_vars = []
    for name, a in zip(node.state, init):
        v = Var(b.fresh(name), a.type)
        state_vars.append(v)
        inner.env[name] = v
        inner.origin[name] = "the loop's state"
    xs = []
    for name, t in slices:
        v = Var(b.fresh(name), t)
        xs.append(v)
        inner.env[name] = v
        inner.origin[name] = "a slice of scan's sequence"
    n_errors = len(ctx.errors)
    lower_stmts(inner, node.block.stmts)
    results = [lower_expr(inner, r) for r in res_items]
    if len(ctx.errors) > n_errors or any(r is None for r in results):
        return None
    return b, state_vars, xs, results


def _as_state(ctx: Ctx, b: Builder, r: Atom, s: Var, name: str, node) -> Atom | None:
    """The block's value for state `name`, of the state's type: an int for a float state is
    cast, dims in the state's order (a transpose); anything else is an error at the value."""
    t: TensorType = s.type
    inner = Ctx(b, ctx.errors, ctx.scope)  # to emit into the block's builder
    if r.type.dtype == "int" and t.dtype == "float":
        r = inner.emit("to_float", (r,), span=_sp(node))
    if isinstance(r, Lit) and not t.dims and r.type == t:
        return r
    if r is None or r.type.dtype != t.dtype or set(r.type.dims) != set(t.dims) or r.type.of != t.of:
        return ctx.error(
            TypeMismatch,
            f"the block's next {name} is {r.type}, but {name} is {t} (its init's type)",
            _sp(node),
            f"the state keeps its type from step to step: give init= a value of {r.type}"
            if r is not None and r.type.dtype == t.dtype
            else f"compute a {t} for {name}",
        )
    if r.type.dims != t.dims:
        r = inner.emit("transpose", (r,), (("dims", t.dims),), span=_sp(node))
    return r
