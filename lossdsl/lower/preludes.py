"""Task preludes: PRELUDES is the one table of `use TASK(a, b)` statements: the names each
binds, the handler that computes them, and the standard inputs it is written for (the CLI's
`-e EXPR --task TASK` and the README list are derived from it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lossdsl import ast
from lossdsl.errors import (
    ArityError,
    DimMismatch,
    DuplicateDefinition,
    TypeMismatch,
    UnknownName,
    did_you_mean,
)
from lossdsl.ir import Atom
from lossdsl.lower.context import Ctx, _sp, _word_span, lit
from lossdsl.lower.expr import lower_expr
from lossdsl.types import fmt_dims

# ---- task preludes --------------------------------------------------------------------


def _classification(ctx: Ctx, use: ast.Use, logits: Atom, target: Atom) -> dict[str, Atom]:
    """Softmax classification. Hard targets (index[...] of C) or soft targets (float[..., C])."""
    if target.type.of is not None:
        c = target.type.of
    else:
        c = next((d for d in reversed(logits.type.dims) if d in target.type.dims), None)
        # Soft targets are a distribution per element: the logits' shape, not a subset of it.
        if (
            c is None
            or target.type.dtype != "float"
            or set(target.type.dims) != set(logits.type.dims)
        ):
            return ctx.error(
                TypeMismatch,
                "classification needs target: index[...] of C, or float with the logits' dims "
                f"{fmt_dims(logits.type.dims)}; found {target.type}",
                _sp(use.args[1]) if len(use.args) > 1 else use.span,
                "declare `target: index[B] of C`",
            )
    if logits.type.dtype != "float" or c not in logits.type.dims:
        return ctx.error(
            DimMismatch,
            f"classification needs logits with the class dim {c}, found {logits.type}",
            _sp(use.args[0]) if use.args else use.span,
            f"declare `logits: float[B, {c}]`",
        )
    e = lambda op, args, attrs=(), hint=None: ctx.emit(op, args, attrs, span=use.span, hint=hint)  # noqa: E731
    over = (("over", (c,)),)
    out: dict[str, Atom] = {}
    out["logp"] = e("log_softmax", (logits,), over, "logp")
    out["p"] = e("softmax", (logits,), over, "p")
    if target.type.of is not None:
        out["logpt"] = e("gather", (out["logp"], target), (), "logpt")
        out["onehot"] = e("onehot", (target,), (("dim", c),), "onehot")
    else:
        out["onehot"] = target
        out["logpt"] = e("sum", (e("mul", (target, out["logp"])),), over, "logpt")
    out["ce"] = e("neg", (out["logpt"],), (), "ce")
    if target.type.of is not None:
        out["pt"] = e("exp", (out["logpt"],), (), "pt")
    else:
        out["pt"] = e("sum", (e("mul", (target, out["p"])),), over, "pt")
    return out


def _multilabel(ctx: Ctx, use: ast.Use, logits: Atom, target: Atom) -> dict[str, Atom]:
    """Independent sigmoids; targets in [0, 1] of the logits' shape."""
    e = lambda op, args, hint=None: ctx.emit(op, args, span=use.span, hint=hint)  # noqa: E731
    t = target if target.type.dtype == "float" else e("to_float", (target,))
    out: dict[str, Atom] = {}
    out["p"] = e("sigmoid", (logits,), "p")
    neg = e("neg", (logits,))
    u = e("sub", (lit(1.0), t))
    # bce = t softplus(-x) + (1 - t) softplus(x): two terms >= 0, no overflow (unlike
    # log(sigmoid(x))) and no cancellation (softplus(x) - x t is 0 at x = 20, t = 1 in
    # float32, where the loss is 2e-9 and its gradient -2e-9; optax's form)
    pos, negative = e("mul", (t, e("softplus", (neg,)))), e("mul", (u, e("softplus", (logits,))))
    out["bce"] = e("add", (pos, negative), "bce")
    out["logpt"] = e("neg", (out["bce"],), "logpt")
    q = e("sigmoid", (neg,))  # 1 - p, exact (1 - p cancels past x = 17 in float32)
    out["pt"] = e("add", (e("mul", (out["p"], t)), e("mul", (q, u))), "pt")
    return out


def _regression(ctx: Ctx, use: ast.Use, pred: Atom, target: Atom) -> dict[str, Atom]:
    return {"diff": ctx.emit("sub", (pred, target), span=use.span, hint="diff")}


@dataclass(frozen=True)
class Prelude:
    """`use TASK(a, b)`: the names it binds (what `handler` returns from the two lowered
    inputs), and the standard inputs it is written for, as (name, type) pairs."""

    binds: tuple[str, ...]
    handler: Callable[[Ctx, ast.Use, Atom, Atom], dict[str, Atom] | None]
    inputs: tuple[tuple[str, str], ...]


_CLASSIFICATION = ("p", "logp", "pt", "logpt", "ce", "onehot")
PRELUDES: dict[str, Prelude] = {
    "classification": Prelude(
        _CLASSIFICATION,
        _classification,
        (("logits", "float[B, C]"), ("target", "index[B] of C")),
    ),
    # the same names; spatial dims ride along as *S
    "segmentation": Prelude(
        _CLASSIFICATION,
        _classification,
        (("logits", "float[B, C, *S]"), ("target", "index[B, *S] of C")),
    ),
    "multilabel": Prelude(
        ("p", "pt", "logpt", "bce"),
        _multilabel,
        (("logits", "float[B, C]"), ("target", "float[B, C]")),
    ),
    "regression": Prelude(
        ("diff",),
        _regression,
        (("pred", "float[B, *S]"), ("target", "float[B, *S]")),
    ),
}
_BOUND = frozenset(n for p in PRELUDES.values() for n in p.binds)


def prelude_summary() -> str:
    """What each prelude binds, as README's language section lists it: tasks binding the same
    names share an entry (`classification`/`segmentation`: p, logp, ...; ...)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for task, p in PRELUDES.items():
        groups.setdefault(p.binds, []).append(task)
    return "; ".join(
        "/".join(f"`{t}`" for t in tasks) + ": " + ", ".join(binds)
        for binds, tasks in groups.items()
    )


def lower_use(ctx: Ctx, use: ast.Use) -> None:
    prelude = PRELUDES.get(use.task)
    fn = prelude.handler if prelude is not None else None
    bound = _lower_use(ctx, use, fn) if fn is not None else None
    if not bound:
        # The prelude failed (reported): the names it would bind stay quiet in the body.
        names = prelude.binds if prelude is not None else _BOUND
        ctx.silent.update(n for n in names if n not in ctx.env)
    if fn is None:
        ctx.error(
            UnknownName,
            f"unknown task '{use.task}'",
            _word_span(use.span, use.task, after=3) or use.span,
            did_you_mean(use.task, PRELUDES) or f"tasks: {', '.join(PRELUDES)}",
        )
        return
    clash = [name for name in bound or () if name in ctx.env]
    if clash:
        ctx.error(
            DuplicateDefinition,
            f"use {use.task}(...) binds {', '.join(map(repr, clash))}, "
            f"which {'is' if len(clash) == 1 else 'are'} already defined",
            use.span,
            f"remove the repeated `use`, or rename the earlier {', '.join(map(repr, clash))}",
        )
    for name, atom in (bound or {}).items():
        if name not in ctx.env:
            ctx.env[name] = atom
            ctx.origin[name] = f"use {use.task}"


def _lower_use(ctx: Ctx, use: ast.Use, fn: Callable) -> dict[str, Atom] | None:
    """The names a known task's prelude binds, or None after reporting why it cannot."""
    if len(use.args) != 2 or use.kwargs:
        ctx.error(
            ArityError,
            f"use {use.task}(...) takes 2 inputs by position"
            if use.kwargs
            else f"use {use.task}(...) takes 2 inputs, got {len(use.args)}",
            use.span,
            f"use {use.task}(logits, target)",
        )
        return None
    a, b = (lower_expr(ctx, x) for x in use.args)
    if a is None or b is None:
        return None
    return fn(ctx, use, a, b)
