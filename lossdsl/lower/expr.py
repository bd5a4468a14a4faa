"""Expressions: the walker lower_expr (literals, names, operators, comparisons, primes,
gathers). A call goes to functions.lower_call, and an unknown name's hint looks at the
built-ins and preludes, all through LIBRARY: they lower their operands here, so this module
cannot import them."""

from __future__ import annotations

import math

from lossdsl import ast
from lossdsl.errors import (
    ArityError,
    ConstantError,
    DimMismatch,
    LimitError,
    TypeMismatch,
    UnknownName,
    did_you_mean,
)
from lossdsl.ir import Atom, Lit
from lossdsl.lower.context import CONSTANTS, LIBRARY, Ctx, _sp, _src, lit
from lossdsl.ops import FoldError, check_representable, short_number
from lossdsl.parser import MAX_DEPTH
from lossdsl.types import fmt_dims

# ---- expressions ----------------------------------------------------------------------

_BINOPS = {
    "+": "add",
    "-": "sub",
    "*": "mul",
    "/": "div",
    "//": "floordiv",
    "%": "mod",
    "^": "pow",
    "&": "and",
    "|": "or",
}
_CMPOPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def _choice_compare(ctx: Ctx, node, lhs, rhs, op: str) -> Atom | None:
    """`activation == "sigmoid"`: a choice param against one of its words, the int compare of
    its index (a constant once the spec compiles: where() then keeps one branch)."""
    word, other = (lhs, rhs) if isinstance(lhs, ast.Str) else (rhs, lhs)
    name = other.name if isinstance(other, ast.Name) else None
    if name not in ctx.choices:
        return ctx.error(
            TypeMismatch,
            f'"{word.value}" compared with something that is not a choice param',
            _sp(node),
            'declare one, e.g. `param mode: "a" | "b" = "a"`, and compare it: mode == "a"',
        )
    words = ctx.choices[name]
    if op not in ("==", "!="):
        return ctx.error(
            TypeMismatch,
            f"choice param '{name}' compares with == or !=, not {op}",
            _sp(node),
            f'e.g. {name} == "{words[0]}"',
        )
    if word.value not in words:
        close = did_you_mean(word.value, words)
        return ctx.error(
            TypeMismatch,
            f"\"{word.value}\" is not a choice of '{name}'",
            _sp(word),
            (close + " " if close else "") + "its choices: " + ", ".join(f'"{w}"' for w in words),
        )
    v = lower_expr(ctx, other)
    return ctx.emit(_CMPOPS[op], (v, lit(words.index(word.value))), span=_sp(node))


def _int_zero(a: Atom | None) -> bool:
    return isinstance(a, Lit) and a.type.dtype == "int" and a.value == 0


def lower_expr(ctx: Ctx, node) -> Atom | None:
    # The nesting so far, spec calls included (a call's body nests inside its call site):
    # past the parser's limit the walk stops with a LimitError, not a RecursionError.
    b = ctx.b
    if b.depth >= MAX_DEPTH:
        return ctx.error(
            LimitError,
            f"expression nested too deeply, counting the specs it calls (limit {MAX_DEPTH})",
            _sp(node),
            "split it into steps with `let`, or call fewer specs inside one another",
        )
    b.budget.step(_sp(node))
    b.depth += 1
    try:
        return _lower_expr(ctx, node)
    finally:
        b.depth -= 1


def _lower_expr(ctx: Ctx, node) -> Atom | None:
    match node:
        case ast.Num(value=v):
            return _literal(ctx, node)
        case ast.Bool(value=v):
            return lit(v)
        case ast.Name():
            return lower_name(ctx, node)
        case ast.Str(value=v):
            return ctx.error(
                TypeMismatch,
                f'"{v}" is a word, not a value: quoted words are the options of functions',
                _sp(node),
                'pass it as an option, e.g. blur(x, over=(H, W), padding="same")',
            )
        case ast.Unary(op="-", operand=x):
            a = lower_expr(ctx, x)
            if isinstance(a, Lit) and a.type.dtype != "bool":
                return Lit(-a.value, a.type)  # a negative literal, not an equation
            return ctx.emit("neg", (a,), span=_sp(node), arg_spans=(_sp(x),))
        case ast.Unary(op="!", operand=x):
            return ctx.emit("not", (lower_expr(ctx, x),), span=_sp(node), arg_spans=(_sp(x),))
        case ast.Binary(op=op, left=l, right=r):
            a, b = lower_expr(ctx, l), lower_expr(ctx, r)
            if op in ("//", "%") and _int_zero(b) and a is not None and a.type.dtype == "int":
                return ctx.error(
                    ConstantError,
                    f"integer {'division' if op == '//' else 'remainder'} by the literal 0",
                    _sp(r),
                    "an int // 0 or % 0 is 0 everywhere: divide by a nonzero number, or by a "
                    "float (x // 0.0 is inf, as IEEE)",
                )
            return ctx.emit(_BINOPS[op], (a, b), span=_sp(node), arg_spans=(_sp(l), _sp(r)))
        case ast.Compare(operands=(l, r), ops=(op,)) if isinstance(l, ast.Str) or isinstance(
            r, ast.Str
        ):
            return _choice_compare(ctx, node, l, r, op)
        case ast.Compare(operands=xs, ops=ops):
            atoms = [lower_expr(ctx, x) for x in xs]
            out = None
            for i, op in enumerate(ops):
                sp = (_sp(xs[i]), _sp(xs[i + 1]))
                c = ctx.emit(_CMPOPS[op], (atoms[i], atoms[i + 1]), span=_sp(node), arg_spans=sp)
                out = c if out is None else ctx.emit("and", (out, c), span=_sp(node))
            return out
        case ast.Gather(base=x, index=i):
            a, b = lower_expr(ctx, x), lower_expr(ctx, i)
            return ctx.emit("gather", (a, b), span=_sp(node), arg_spans=(_sp(x), _sp(i)))
        case ast.Prime(operand=x):
            a = lower_expr(ctx, x)
            if a is None:
                return a
            text = _src(_sp(x)) or "x"
            if isinstance(a, Lit) or not a.type.dims:
                return ctx.error(
                    DimMismatch,
                    f"{text}' is {text}: it is a scalar, with no dims to prime",
                    _sp(node),
                    f"drop the prime: `{text}`",
                )
            mapping = tuple((d, ctx.twin(d)) for d in a.type.dims if d not in ctx.contracting)
            if not mapping:
                # Summed dims keep their names (so that z' in sum(z * z', over=D) is [B', D]);
                # when that is every dim, the prime is silently the value itself.
                dims = ", ".join(map(str, a.type.dims))
                many = len(a.type.dims) > 1
                return ctx.error(
                    DimMismatch,
                    f"{text}' is {text} here, because {dims} {'are' if many else 'is'} summed "
                    "by the enclosing reduction (summed dims keep their names)",
                    _sp(node),
                    f"prime the summed dim{'s' if many else ''} explicitly: "
                    f"`prime({text}, {dims})`, or prime it outside the reduction",
                )
            m = dict(mapping)
            new = [m.get(d, d) for d in a.type.dims]
            twice = [d for d in new if new.count(d) > 1]
            if twice:
                kept = [d for d in a.type.dims if d not in m]
                return ctx.error(
                    DimMismatch,
                    f"{a.type}' would have dim {twice[0]} twice: the enclosing reduction sums "
                    f"{fmt_dims(tuple(kept))}, so those dims keep their names while the others "
                    "get primed",
                    _sp(node),
                    "bind the primed value with `let` outside the reduction, or prime only the "
                    "dims you mean with prime(x, D)",
                )
            return ctx.emit("rename", (a,), (("mapping", mapping),), span=_sp(node))
        case ast.Call():
            return LIBRARY.call(ctx, node)
        case ast.BlockCall():
            from lossdsl.lower.loops import lower_block_call  # loops imports this module

            vals = lower_block_call(ctx, node)
            return None if vals is None else vals[0]
        case ast.Tuple():
            return ctx.error(
                TypeMismatch,
                "a tuple is not a value",
                _sp(node),
                "tuples only name several dims, as in over=(B, C)",
            )
        case ast.Keyword():
            return ctx.error(
                ArityError, "unexpected keyword argument", _sp(node), "pass it as a value"
            )
    raise AssertionError(f"unhandled AST node {node!r}")


def _literal(ctx: Ctx, node: ast.Num) -> Atom | None:
    """A number as written; one the compiled code cannot hold is an error at the literal."""
    v = node.value
    if isinstance(v, float) and math.isinf(v) and node.text != "inf":
        return ctx.error(
            ConstantError,
            f"the number {short_number(node.text)} overflows float64",
            _sp(node),
            "write inf for infinity; the largest float is about 1.8e308",
        )
    try:
        check_representable(v)
    except FoldError as e:
        return ctx.error(ConstantError, e.message, _sp(node), e.hint)
    return lit(v)


def lower_name(ctx: Ctx, node: ast.Name) -> Atom | None:
    n = node.name
    if n in ctx.env:
        return ctx.env[n]
    if n in ctx.silent:
        return None
    if n in ctx.fns:
        return ctx.error(
            TypeMismatch,
            f"'{n}' is a function input, not a value",
            _sp(node),
            f"call it: {n}(x), with arguments of its declared types",
        )
    if n in ctx.dims:
        return ctx.error(
            TypeMismatch,
            f"'{n}' is a dimension, not a value",
            _sp(node),
            f"use size({n}) for its size, or reduce over it with over={n}",
        )
    if n in CONSTANTS:
        return lit(CONSTANTS[n])
    task = next((t for t, p in LIBRARY.preludes.items() if n in p.binds), None)
    if task is not None:
        return ctx.error(
            UnknownName,
            f"'{n}' is not defined",
            _sp(node),
            f"'{n}' is bound by `use {task}(...)`; add that line to the body",
        )
    if n in LIBRARY.functions or ctx.scope.get(n):
        return ctx.error(TypeMismatch, f"'{n}' is a function", _sp(node), f"call it: {n}(...)")
    return ctx.error(
        UnknownName,
        f"'{n}' is not defined",
        _sp(node),
        # values only: a function's name is no fix for a missing value ('target' is not
        # 'arange')
        did_you_mean(n, [*ctx.env, *CONSTANTS])
        or f"declare it as an input or a param, or bind it with `let {n} = ...` before this use",
    )
