"""AST -> typed IR.

Lowering resolves every name (inputs, params, lets, task preludes, dims, functions, spec calls),
derives every type from the op table's rules, and emits one IR equation per primitive. It never
stops at the first mistake: a failed sub-expression reports a LossError and lowers to None, and
whatever uses None is skipped silently, so one run reports each independent error once.

Surface functions that are not primitives (normalize, count, clamp, logsigmoid, norm, masked
mean, ...) are expanded here into primitives, so the op table stays small and every backend gets
them for free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from lossdsl import ast, constraints
from lossdsl.errors import (
    ArityError,
    ConstantError,
    DimMismatch,
    DuplicateDefinition,
    LimitError,
    LossError,
    ParamError,
    TypeMismatch,
    UnknownName,
    did_you_mean,
)
from lossdsl.ir import Atom, Check, Eqn, InputDecl, Lit, ParamDecl, Program, Var
from lossdsl.ops import (
    FOLDABLE_KINDS,
    OPS,
    FoldError,
    OpDimError,
    OpTypeError,
    check_representable,
    fold_value,
    short_number,
)
from lossdsl.parser import MAX_DEPTH
from lossdsl.resolve import Callee, Resolved, Scope
from lossdsl.source import Span
from lossdsl.types import BOOL, FLOAT, INT, UNIT_DIM, Dim, TensorType, fmt_dims

REDUCTIONS = ("none", "sum", "mean")


def lit(value: float | int | bool) -> Lit:
    if isinstance(value, bool):
        return Lit(value, BOOL)
    return Lit(value, INT if isinstance(value, int) else FLOAT)


# Bounds on lowering's work. Inlining multiplies a spec's body by the number of distinct
# argument values it is called with (h(x * 2) + h(x * 3), nested n deep: 2^n bodies that no
# sharing can merge), and each loss of a file is lowered alone too. MAX_STEPS counts the
# expression nodes lowered for one spec, all its losses and inlined bodies together (about
# 10 us each; shipped specs take at most ~400, 8,000 lets 40,000); MAX_EQNS bounds the
# program one loss lowers to (8,000 lets: 16,000 equations).
MAX_STEPS = 100_000
MAX_EQNS = 50_000


class Budget:
    """The lowering steps left to one spec (shared by the lower_loss calls that build it)."""

    def __init__(self, steps: int = MAX_STEPS):
        self.left = steps

    def step(self, span: Span | None) -> None:
        self.left -= 1
        if self.left < 0:
            raise LimitError(
                f"the loss is too large to lower: more than {MAX_STEPS} expression nodes, "
                "counting each inlined spec call's body",
                span,
                "split it into smaller specs, or call fewer specs inside one another",
            )


_FLOAT_LITERAL_OPS = frozenset({"add", "sub", "mul", "div", "maximum", "minimum", "where"})
# Ops every backend promotes to a float operand's dtype itself (an int operand beside a float
# value needs no cast).
_PROMOTING_OPS = _FLOAT_LITERAL_OPS | {"pow", "safe_div", "xlogy", "bce_logits"}
# Kinds that compute on every operand in float (gather, cross_entropy... take index operands).
_FLOAT_KINDS = frozenset({"elementwise", "reduce", "axis", "contract", "diff", "eigvalsh"})

# ---- the equation builder ---------------------------------------------------------------


class Builder:
    """Appends equations; names temporaries t0, t1, ... and keeps user names readable."""

    def __init__(self, taken: set[str] | None = None, budget: Budget | None = None):
        self.budget = Budget() if budget is None else budget
        self.eqns: list[Eqn] = []
        self.taken: set[str] = set(taken or ())
        self._n = 0
        self.fold = False  # return constants as literals (param constraints)
        self.depth = 0  # lower_expr's nesting, through inlined spec calls
        # Hash-consing: an equation identical to an earlier one (same op, arguments and
        # attributes) returns that one's result. With the spec-call memo (`inlined`, in
        # lower_spec_call) this keeps inlining polynomial: h(x) + h(x + 1), nested 30 deep,
        # lowers x + 1 + 1 once, not once per path to it.
        self.known: dict[tuple, Var] = {}
        self.inlined: dict[tuple, Atom | None] = {}
        self.renamed: dict[str, Var] = {}  # a temporary -> the let-name it was given

    def fresh(self, hint: str | None = None) -> str:
        if hint and hint not in self.taken:
            self.taken.add(hint)
            return hint
        base = hint or "t"
        while True:
            name = f"{base}{self._n}" if hint is None else f"{base}_{self._n}"
            self._n += 1
            if name not in self.taken:
                self.taken.add(name)
                return name

    def emit(
        self, op: str, args: tuple[Atom, ...], attrs: tuple = (), hint: str | None = None, span=None
    ):
        """Type the equation with the op's rule (raises OpTypeError) and append it."""
        t = OPS[op].type_rule([a.type for a in args], dict(attrs))
        twice = [d for d in t.dims if t.dims.count(d) > 1]
        if twice:
            raise OpDimError(
                f"the result would have dim {twice[0]} twice: {fmt_dims(t.dims)}",
                f"an index into {twice[0]} used along {twice[0]} itself? declare it over the "
                f"primed twin ({twice[0]}') or prime one side",
            )
        floats = any(isinstance(a, Var) and a.type.dtype == "float" for a in args)
        if (
            t.dtype == "float"
            and op != "to_float"
            and OPS[op].kind in _FLOAT_KINDS
            and not (floats and op in _PROMOTING_OPS)
        ):
            # A float op on int values (softplus(size(D)), logsumexp(n), n / k, n + 0.5)
            # computes in the inputs' float dtype: torch has no softplus or mean for int64,
            # int / int and int + 0.5 give torch's default dtype, not the inputs' float64,
            # and numpy's reference would overflow in int64.
            cast = tuple(
                self.emit("to_float", (a,), hint=None, span=span)
                if isinstance(a, Var) and a.type.dtype == "int"
                else a
                for a in args
            )
            if cast != args:
                return self.emit(op, cast, attrs, hint, span)
        if t.dtype == "float" and op in _FLOAT_LITERAL_OPS:
            # `1 - x` and `1.0 - x` are one value once x is float: one literal, so CSE sees it.
            args = tuple(
                Lit(float(a.value), FLOAT) if isinstance(a, Lit) and a.type.dtype == "int" else a
                for a in args
            )
        if args and OPS[op].kind in FOLDABLE_KINDS and all(isinstance(a, Lit) for a in args):
            # A constant the IR cannot hold (int64, float64) is reported here, at its
            # expression. The body keeps the equation (formulas show log(2), not 0.693; the
            # fold pass folds it); a constraint folds now (`g <= 2 ^ 3` needs no pow).
            v = fold_value(op, [a.value for a in args], dict(attrs), t.dtype)
            if self.fold:
                return Lit(v, t)
        # Literals by repr: -0.0 == 0.0 in Python, but x * -0.0 is not x * 0.0.
        key = (op, tuple(a if isinstance(a, Var) else repr(a) for a in args), repr(attrs))
        if key in self.known:
            return self.current(self.known[key])
        if len(self.eqns) >= MAX_EQNS:
            raise LimitError(
                f"the loss lowers to more than {MAX_EQNS} equations (its spec calls inlined)",
                span,
                "split it into smaller specs, or call fewer specs inside one another",
            )
        out = Var(self.fresh(hint), t)
        self.eqns.append(Eqn(out, op, tuple(args), tuple(attrs), span))
        self.known[key] = out
        return out

    def current(self, var: Var) -> Var:
        """`var` under the let-name rename_last gave it, if any."""
        while var.name in self.renamed:
            var = self.renamed[var.name]
        return var

    def rename_last(self, var: Var, name: str) -> Var:
        """Give the equation that just produced `var` a user's let-name."""
        last = self.eqns[-1] if self.eqns else None
        if last is None or last.out != var or var.name == name:
            return var
        new = Var(self.fresh(name), var.type)
        self.taken.discard(var.name)
        self.eqns[-1] = Eqn(new, last.op, last.args, last.attrs, last.span)
        self.renamed[var.name] = new
        return new


# ---- lowering context ---------------------------------------------------------------------


@dataclass
class Ctx:
    """State for lowering one loss body (a spec call gets a fresh Ctx on the same Builder)."""

    b: Builder
    errors: list[LossError]
    scope: Scope
    env: dict[str, Atom] = field(default_factory=dict)
    dims: dict[str, Dim] = field(default_factory=dict)  # dim name as written -> IR dim
    origin: dict[str, str] = field(default_factory=dict)  # name -> what bound it (for hints)
    contracting: tuple[Dim, ...] = ()  # dims the innermost enclosing reduction sums over
    stack: tuple[str, ...] = ()  # losses being inlined (recursion guard)
    checks: list[Check] = field(default_factory=list)
    loss_name: str = ""
    # Names whose definition failed (a bad param or input, a failed `use`): the failure was
    # reported, so uses of them stay quiet instead of repeating it as "not defined".
    silent: set[str] = field(default_factory=set)

    def error(self, cls: type[LossError], msg: str, span: Span | None, hint: str | None = None):
        # One mistake can be met twice (a helper lowered alone and inlined, the middle operand
        # of a < b < c, several equations of a prelude): report it once.
        if not any(type(e) is cls and e.message == msg and e.span == span for e in self.errors):
            self.errors.append(cls(msg, span, hint))
        return None

    def emit(self, op: str, args, attrs=(), span: Span | None = None, arg_spans=(), hint=None):
        """Emit, turning a type-rule failure into a user error at the offending argument."""
        if any(a is None for a in args):
            return None
        try:
            return self.b.emit(op, tuple(args), tuple(attrs), hint, span)
        except OpTypeError as e:
            sp = arg_spans[e.arg] if e.arg is not None and e.arg < len(arg_spans) else span
            cls = (
                ConstantError
                if isinstance(e, FoldError)
                else DimMismatch
                if isinstance(e, OpDimError)
                else TypeMismatch
            )
            hint = e.hint or _OP_HINTS.get(op)
            if isinstance(e, OpDimError) and OPS[op].kind == "elementwise":
                hint = _line_up_hint(args, arg_spans) or hint
            return self.error(cls, e.message, sp or span, hint)


def _line_up_hint(args, spans) -> str | None:
    """For operands whose dims do not line up ([N, D] - [M, D]): the expand() that pairs them on
    purpose, written with the operands' own text, and the reduction that drops the extra dims."""
    for i, j in ((0, 1), (0, 2), (1, 2)):
        if j >= len(args) or j >= len(spans):
            continue
        a, b = args[i].type.dims, args[j].type.dims
        only_a = [d for d in a if d not in b]
        only_b = [d for d in b if d not in a]
        unpaired = [d for d in only_a + only_b if not any(d.twin_of(o) for o in only_a + only_b)]
        ta, tb = _src(spans[i]), _src(spans[j])
        if not (only_a and only_b and unpaired and ta and tb):
            continue
        new = ", ".join(map(str, only_b))
        over = new if len(only_b) == 1 else f"({new})"
        return (
            f"{ta} has {', '.join(map(str, only_a))}, {tb} has {new}: different dims. To pair "
            f"each with each on purpose (an outer product), expand one side: "
            f"`expand({ta}, {new})`; or reduce the other first: `sum({tb}, over={over})`"
        )
    return None


# For the type rules in lossdsl/ops.py that raise without a hint.
_OP_HINTS = {
    "eq": "compare masks with masks and numbers with numbers, e.g. float(mask) == 1",
    "ne": "compare masks with masks and numbers with numbers, e.g. float(mask) != 1",
    "where": "both branches must be numbers or both masks, e.g. where(m, x, 0.0)",
    "onehot": "onehot(target) spreads an index over the dim it indexes (its `of` dim)",
}


def _sp(node) -> Span | None:
    return ast.span_of(node)


def _word_span(span: Span | None, word: str, after: int = 0) -> Span | None:
    """Where `word` is written on the first line of `span`, past its first `after` columns
    (for the nodes whose name has no span of its own, e.g. the task of a `use`)."""
    if span is None:
        return None
    m = re.compile(rf"\b{re.escape(word)}\b").search(
        span.source.line(span.line), span.col - 1 + after
    )
    return (
        None if m is None else Span(span.source, span.line, m.start() + 1, span.line, m.end() + 1)
    )


def _src(span: Span | None) -> str | None:
    """The source text of a one-line span (to write a hint's fix in the user's own terms)."""
    if span is None or span.end_line != span.line:
        return None
    return span.source.line(span.line)[span.col - 1 : span.end_col - 1] or None


# ---- dims -----------------------------------------------------------------------------


def resolve_dim(ctx: Ctx, node, example: str = "e.g. over=C or over=(B, C)") -> Dim | None:
    """A dim written as `C`, `B'` or `*S` (in over=..., eye(...), onehot(..., C), size(C));
    `example` shows the form this place takes, for the hint."""
    primes = 0
    while isinstance(node, ast.Prime):
        primes += 1
        node = node.operand
    if not isinstance(node, ast.Name):
        return ctx.error(TypeMismatch, "expected a dimension name here", _sp(node), example)
    d = ctx.dims.get(node.name)
    if d is None and node.name in ctx.env:
        return ctx.error(
            TypeMismatch,
            f"'{node.name}' is a value, not a dimension",
            _sp(node),
            f"the dims are the names in the input types: {', '.join(sorted(ctx.dims)) or 'none'}",
        )
    if d is None:
        hint = did_you_mean(node.name, ctx.dims) or (
            f"the dims in scope are {', '.join(sorted(ctx.dims))}"
            if ctx.dims
            else "no input declares a dim"
        )
        return ctx.error(UnknownName, f"unknown dimension '{node.name}'", _sp(node), hint)
    for _ in range(primes):
        d = d.prime()
    return d


def resolve_dims(ctx: Ctx, node) -> tuple[Dim, ...] | None:
    items = node.items if isinstance(node, ast.Tuple) else (node,)
    dims = tuple(resolve_dim(ctx, i) for i in items)
    return None if any(d is None for d in dims) else dims


# ---- expressions ----------------------------------------------------------------------

_BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow", "&": "and", "|": "or"}
_CMPOPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


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
        case ast.Unary(op="-", operand=x):
            a = lower_expr(ctx, x)
            if isinstance(a, Lit) and a.type.dtype != "bool":
                return Lit(-a.value, a.type)  # a negative literal, not an equation
            return ctx.emit("neg", (a,), span=_sp(node), arg_spans=(_sp(x),))
        case ast.Unary(op="!", operand=x):
            return ctx.emit("not", (lower_expr(ctx, x),), span=_sp(node), arg_spans=(_sp(x),))
        case ast.Binary(op=op, left=l, right=r):
            a, b = lower_expr(ctx, l), lower_expr(ctx, r)
            return ctx.emit(_BINOPS[op], (a, b), span=_sp(node), arg_spans=(_sp(l), _sp(r)))
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
            mapping = tuple((d, d.prime()) for d in a.type.dims if d not in ctx.contracting)
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
            return lower_call(ctx, node)
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
    if n in ctx.dims:
        return ctx.error(
            TypeMismatch,
            f"'{n}' is a dimension, not a value",
            _sp(node),
            f"use size({n}) for its size, or reduce over it with over={n}",
        )
    if n in _TASK_NAMES:
        tasks = ", ".join(t for t, names in _TASK_NAMES_BY_TASK.items() if n in names)
        return ctx.error(
            UnknownName,
            f"'{n}' is not defined",
            _sp(node),
            f"'{n}' is bound by `use {tasks.split(',')[0]}(...)`; add that line to the body",
        )
    if n in FUNCTIONS or ctx.scope.get(n):
        return ctx.error(TypeMismatch, f"'{n}' is a function", _sp(node), f"call it: {n}(...)")
    return ctx.error(
        UnknownName,
        f"'{n}' is not defined",
        _sp(node),
        did_you_mean(n, list(ctx.env) + list(FUNCTIONS))
        or f"declare it as an input or a param, or bind it with `let {n} = ...` before this use",
    )


# ---- calls ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sig:
    """A surface function's parameters: positional-or-keyword names, those with defaults."""

    names: tuple[str, ...]
    defaults: tuple[tuple[str, object], ...] = ()
    variadic: bool = False  # extra positional args allowed (eye)


_MISSING = object()


def bind(ctx: Ctx, call: ast.Call, sig: Sig) -> dict | None:
    """Match a call's arguments to a signature; report arity and keyword errors."""
    defaults = dict(sig.defaults)
    out: dict[str, object] = {}
    if len(call.args) > len(sig.names) and not sig.variadic:
        extra = call.args[len(sig.names)]
        return ctx.error(
            ArityError,
            f"{call.func}() takes at most {len(sig.names)} positional argument"
            f"{'s' if len(sig.names) != 1 else ''}, got {len(call.args)}",
            _sp(extra),
            f"signature: {call.func}({_fmt_sig(sig)})",
        )
    for name, a in zip(sig.names, call.args):
        out[name] = a
    for kw in call.kwargs:
        if kw.name not in sig.names:
            return ctx.error(
                ArityError,
                f"{call.func}() has no argument '{kw.name}'",
                _sp(kw),
                did_you_mean(kw.name, sig.names) or f"signature: {call.func}({_fmt_sig(sig)})",
            )
        if kw.name in out:
            return ctx.error(
                ArityError, f"{call.func}() got '{kw.name}' twice", _sp(kw), "pass it once"
            )
        out[kw.name] = kw.value
    for name in sig.names:
        if name not in out:
            if name in defaults:
                out[name] = defaults[name]
            else:
                return ctx.error(
                    ArityError,
                    f"{call.func}() is missing argument '{name}'",
                    call.span,
                    f"signature: {call.func}({_fmt_sig(sig)})",
                )
    if sig.variadic:
        out["*"] = call.args[len(sig.names) :]
    return out


def _fmt_sig(sig: Sig) -> str:
    d = dict(sig.defaults)
    parts = [n if n not in d else f"{n}={'...' if d[n] is None else d[n]}" for n in sig.names]
    return ", ".join(parts) + (", ..." if sig.variadic else "")


def lower_call(ctx: Ctx, call: ast.Call) -> Atom | None:
    fn = FUNCTIONS.get(call.func)
    if fn is not None:
        sig, handler = fn
        args = bind(ctx, call, sig)
        return None if args is None else handler(ctx, call, args)
    callee = ctx.scope.get(call.func)
    if callee is not None:
        return lower_spec_call(ctx, call, callee)
    if call.func in ctx.scope.failed:
        return None  # its import failed, and that was reported
    hint = did_you_mean(call.func, list(FUNCTIONS) + ctx.scope.names())
    if hint is None and call.func not in ctx.scope.names():
        hint = f"to call another spec, add `import {call.func}` at the top of the file"
    return ctx.error(
        UnknownName, f"unknown function '{call.func}'", call.func_span or call.span, hint
    )


def _x(ctx: Ctx, node) -> Atom | None:
    return lower_expr(ctx, node)


def _const(ctx: Ctx, node, what: str) -> float | int | None:
    """A compile-time number (eps=1e-12, ddof=1)."""
    if isinstance(node, (int, float)):
        return node
    v = const_eval(node)
    if v is None:
        return ctx.error(
            TypeMismatch,
            f"{what} must be a number",
            _sp(node),
            f"{what} is fixed when the spec compiles: write a literal, e.g. {what}=1",
        )
    return v


def const_eval(node) -> float | int | bool | None:
    """Evaluate a constant expression (param defaults, eps): numbers, +-*/^ and unary minus,
    with the language's types (the op table's folding: ints exact, `/` true division, so
    `4 / 2` is 2.0). None when it is not constant or not representable (int64, float64)."""
    match node:
        case ast.Num(value=v) | ast.Bool(value=v):
            if isinstance(v, float) and math.isinf(v) and node.text != "inf":
                return None  # a literal that overflowed float64
            return v
        case ast.Unary(op="-", operand=x):
            v = const_eval(x)
            return None if v is None or isinstance(v, bool) else -v
        case ast.Binary(op=op, left=l, right=r) if op in "+-*/^":
            a, b = const_eval(l), const_eval(r)
            if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
                return None
            name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow"}[op]
            types = [TensorType("int" if isinstance(v, int) else "float") for v in (a, b)]
            dtype = OPS[name].type_rule(types, {}).dtype
            try:
                v = fold_value(name, [a, b], {}, dtype)
            except FoldError:
                return None
            if isinstance(v, float) and math.isinf(v) and math.isfinite(a) and math.isfinite(b):
                return None  # 1 / 0: no number
            return v
    return None


def _unary(op: str) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        x = _x(ctx, a["x"])
        return ctx.emit(op, (x,), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x",)), h


def _binary(op: str, names=("x", "y")) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        x, y = _x(ctx, a[names[0]]), _x(ctx, a[names[1]])
        return ctx.emit(op, (x, y), span=call.span, arg_spans=(_sp(a[names[0]]), _sp(a[names[1]])))

    return Sig(names), h


def _over(ctx: Ctx, a: dict, x_node) -> tuple[Dim, ...] | None:
    """The dims a reduction sums over; all of the operand's when over= is not given."""
    if a["over"] is None:
        return ()
    return resolve_dims(ctx, a["over"])


def _reduce_operand(ctx: Ctx, a: dict, over: tuple[Dim, ...]):
    """Lower the operand of a reduction; primes inside it leave the summed dims alone."""
    saved, ctx.contracting = ctx.contracting, over
    try:
        return _x(ctx, a["x"])
    finally:
        ctx.contracting = saved


def _all_dims(x: Atom | None, over: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """The dims to reduce: all of x's when none are listed. over=H also names H-1 (from
    diff(x, over=H)) when x has that and not H itself: users cannot spell H-1."""
    if x is None:
        return over
    if not over:
        return x.type.dims
    cut = {replace(d, cut=0): d for d in x.type.dims if d.cut}
    return tuple(cut.get(d, d) if d not in x.type.dims else d for d in over)


def _reduction(op: str, extra: tuple[tuple[str, object], ...] = ()) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        over = _over(ctx, a, a["x"])
        if over is None:
            return None
        x = _reduce_operand(ctx, a, over)
        if x is None:
            return None
        over = _all_dims(x, over)
        if not over:
            return x  # reducing a scalar is the identity
        attrs = [("over", over)]
        if op == "var":
            ddof = _const(ctx, a["ddof"], "ddof")
            if ddof is None:
                return None
            if ddof not in (0, 1):
                return ctx.error(
                    TypeMismatch,
                    f"ddof must be 0 (biased, BatchNorm) or 1 (unbiased, torch .var()), got {ddof}",
                    _sp(a["ddof"]),
                    "write ddof=0 or ddof=1",
                )
            attrs.append(("ddof", int(ddof)))
        return ctx.emit(op, (x,), tuple(attrs), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x", "over") + tuple(k for k, _ in extra), (("over", None),) + extra), h


def _minmax(reduce_op: str, elementwise_op: str) -> tuple[Sig, Callable]:
    """max(x, over=C) reduces; max(a, b) is elementwise."""
    red_sig, red = _reduction(reduce_op)

    def h(ctx, call, a):
        if a["y"] is not None:
            if a["over"] is not None:
                return ctx.error(
                    ArityError,
                    f"{call.func}(a, b) is elementwise and takes no over=",
                    _sp(a["over"]),
                    f"use {call.func}(x, over=...) to reduce",
                )
            x, y = _x(ctx, a["x"]), _x(ctx, a["y"])
            return ctx.emit(
                elementwise_op, (x, y), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["y"]))
            )
        return red(ctx, call, a)

    return Sig(("x", "y", "over"), (("y", None), ("over", None))), h


def _mean(ctx, call, a):
    """mean(x, over=..., mask=m, empty=0): a masked mean whose empty-set value is declared."""
    over = _over(ctx, a, a["x"])
    if over is None:
        return None
    x = _reduce_operand(ctx, a, over)
    if a["mask"] is None:
        if a["empty"] is not None:
            return ctx.error(
                ArityError, "empty= only applies with mask=", _sp(a["empty"]), "add mask=m"
            )
        over = _all_dims(x, over)
        if x is None or not over:
            return x
        return ctx.emit("mean", (x,), (("over", over),), span=call.span)
    m = _x(ctx, a["mask"])
    empty = 0.0 if a["empty"] is None else _const(ctx, a["empty"], "empty")
    if x is None or m is None or empty is None:
        return None
    if m.type.dtype != "bool":
        return ctx.error(
            TypeMismatch,
            f"mask= must be a bool mask, found {m.type}",
            _sp(a["mask"]),
            "compare first, e.g. mask=target != ignore_index",
        )
    zero = lit(0.0)
    masked = ctx.emit(
        "where", (m, x, zero), span=call.span, arg_spans=(_sp(a["mask"]), _sp(a["x"]))
    )
    if masked is None:
        return None
    over = _all_dims(masked, over)
    num = ctx.emit("sum", (masked,), (("over", over),), span=call.span)
    if num is None:
        return None
    cnt = _count(ctx, m, over, call)
    return ctx.emit("safe_div", (num, cnt), (("empty", float(empty)),), span=call.span)


def _count(ctx, m: Atom, over: tuple[Dim, ...], call) -> Atom | None:
    """How many elements of the reduced set `m` selects: the sum over `over` of m broadcast to
    the reduced value's dims. A dim of `over` that m lacks counts m once per position, so it
    multiplies the count by its size (mean(x, over=C, mask=m) with m: [B] counts size(C) per
    row, not 1)."""
    f = ctx.emit("to_float", (m,), span=call.span)
    if f is None:
        return None
    inside = tuple(d for d in over if d in f.type.dims)
    if inside:
        f = ctx.emit("sum", (f,), (("over", inside),), span=call.span)
    for d in over:
        if d not in inside:
            n = ctx.emit("size", (), (("dim", d),), span=call.span)
            f = ctx.emit("mul", (f, n), span=call.span)
    return f


def _count_fn(ctx, call, a):
    over = _over(ctx, a, a["x"])
    if over is None:
        return None
    m = _reduce_operand(ctx, a, over)
    if m is None:
        return None
    if m.type.dtype != "bool":
        return ctx.error(
            TypeMismatch,
            f"count() expects a bool mask, found {m.type}",
            _sp(a["x"]),
            "count a comparison, e.g. count(x > 0, over=C)",
        )
    missing = [d for d in over if d not in m.type.dims]
    if missing:
        names = ", ".join(map(str, missing))
        text = _src(_sp(a["x"])) or "m"
        return ctx.error(
            DimMismatch,
            f"cannot count over {names}: the mask is {m.type}",
            _sp(a["x"]),
            f"to count each of its entries once per {names}, repeat it: `expand({text}, {names})`"
            + (f"; or count over its own dims {fmt_dims(m.type.dims)}" if m.type.dims else ""),
        )
    return _count(ctx, m, _all_dims(m, over), call)


def _axis_op(op: str) -> tuple[Sig, Callable]:
    def h(ctx, call, a):
        over = resolve_dims(ctx, a["over"]) if a["over"] is not None else None
        if a["over"] is None:
            return ctx.error(
                ArityError,
                f"{call.func}() needs over=DIM",
                call.span,
                f"e.g. {call.func}(x, over=C)",
            )
        if over is None:
            return None
        if len(over) != 1:
            return ctx.error(
                DimMismatch,
                f"{call.func}() works over exactly one dim, got {len(over)}",
                _sp(a["over"]),
                f"pick the one dim, e.g. {call.func}(x, over={over[-1]})",
            )
        x = _x(ctx, a["x"])
        return ctx.emit(op, (x,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))

    return Sig(("x", "over"), (("over", None),)), h


def _eigvalsh(ctx, call, a):
    """eigvalsh(c, over=(D, D')): eigenvalues of a symmetric [.., D, D'] matrix, ascending."""
    over = resolve_dims(ctx, a["over"])
    if over is None:
        return None
    if len(over) != 2:
        return ctx.error(
            DimMismatch,
            "eigvalsh() takes a matrix: over=(D, D')",
            _sp(a["over"]),
            "name the dim and its primed twin",
        )
    x = _x(ctx, a["x"])
    return ctx.emit("eigvalsh", (x,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))


def _dim_args(ctx, call, a) -> tuple | None:
    """The dims listed after x in prime(x, H, W) and expand(x, H, W). A tuple there is the
    over=(H, W) form, which these do not take: the hint writes the call as they do."""
    tup = next((n for n in a["*"] if isinstance(n, ast.Tuple)), None)
    if tup is not None:
        flat = [i for n in a["*"] for i in (n.items if isinstance(n, ast.Tuple) else (n,))]
        x = _src(_sp(a["x"])) or "x"
        names = ", ".join(_src(_sp(i)) or "D" for i in flat)
        return ctx.error(
            TypeMismatch,
            f"{call.func}() takes its dims as separate arguments, not a tuple",
            _sp(tup),
            f"write `{call.func}({x}, {names})`",
        )
    dims = tuple(resolve_dim(ctx, n, f"e.g. {call.func}(x, C)") for n in a["*"])
    return None if any(d is None for d in dims) else dims


def _prime(ctx, call, a):
    """prime(x, C): prime only the listed dims (x' primes all but the summed ones), e.g. a
    per-sample Gram matrix sum(f * prime(f, C), over=S) is [B, C, C'], not [B, C, B', C']."""
    dims = _dim_args(ctx, call, a)
    if dims is None:
        return None
    if not dims:
        return ctx.error(ArityError, "prime() needs the dims to prime", call.span, "prime(x, C)")
    x = _x(ctx, a["x"])
    if x is None:
        return None
    missing = [d for d in dims if d not in x.type.dims]
    if missing:
        text = _src(_sp(a["x"])) or "x"
        return ctx.error(
            DimMismatch,
            f"cannot prime {', '.join(map(str, missing))}: the operand is {x.type}",
            call.span,
            f"prime a dim it has, e.g. `prime({text}, {x.type.dims[0]})`"
            if x.type.dims
            else f"a scalar has no dims to prime: `{text}`",
        )
    mapping = tuple((d, d.prime()) for d in dims)
    return ctx.emit("rename", (x,), (("mapping", mapping),), span=call.span)


def _expand(ctx, call, a):
    """expand(x, M): x repeated along new dims, so that unrelated dims may meet on purpose:
    expand(centers, B) - target is [C, B] (an implicit [C] - [B] is an error: usually a bug)."""
    dims = _dim_args(ctx, call, a)
    if dims is None:
        return None
    if not dims:
        return ctx.error(
            ArityError, "expand() needs the dims to add", call.span, "e.g. expand(x, B)"
        )
    x = _x(ctx, a["x"])
    if x is None:
        return None
    return ctx.emit("expand", (x,), (("dims", dims),), span=call.span, arg_spans=(_sp(a["x"]),))


def _where(ctx, call, a):
    c, x, y = _x(ctx, a["cond"]), _x(ctx, a["x"]), _x(ctx, a["y"])
    sp = (_sp(a["cond"]), _sp(a["x"]), _sp(a["y"]))
    return ctx.emit("where", (c, x, y), span=call.span, arg_spans=sp)


def _clamp(ctx, call, a):
    x = _x(ctx, a["x"])
    if a["min"] is None and a["max"] is None:
        return ctx.error(ArityError, "clamp() needs min= or max=", call.span, "clamp(x, min=1e-7)")
    if a["min"] is not None:
        x = ctx.emit("maximum", (x, _x(ctx, a["min"])), span=call.span)
    if a["max"] is not None:
        x = ctx.emit("minimum", (x, _x(ctx, a["max"])), span=call.span)
    return x


def _logsigmoid(ctx, call, a):
    """log(sigmoid(x)) = -softplus(-x), finite for any x."""
    x = _x(ctx, a["x"])
    nx = ctx.emit("neg", (x,), span=call.span)
    return ctx.emit("neg", (ctx.emit("softplus", (nx,), span=call.span),), span=call.span)


def _norm(ctx, call, a):
    """The L2 norm, with torch's zero (not NaN) gradient at the zero vector: sqrt is never
    evaluated at an exact zero. Only s == 0 is guarded (not `s > 0`): a NaN sum of squares
    must stay NaN, as torch's x.norm() gives."""
    over = _over(ctx, a, a["x"])
    if over is None:
        return None
    x = _reduce_operand(ctx, a, over)
    sq = ctx.emit("mul", (x, x), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["x"])))
    over = _all_dims(sq, over)
    s = ctx.emit("sum", (sq,), (("over", over),), span=call.span) if over else sq
    zero = ctx.emit("eq", (s, lit(0.0)), span=call.span)
    root = ctx.emit(
        "sqrt", (ctx.emit("where", (zero, lit(1.0), s), span=call.span),), span=call.span
    )
    return ctx.emit("where", (zero, lit(0.0), root), span=call.span)


def _normalize(ctx, call, a):
    """x / max(||x||, eps) as in F.normalize, written x / sqrt(max(||x||^2, eps^2)) so that a
    zero vector has a zero (not NaN) gradient: sqrt is never evaluated at 0."""
    if a["over"] is None:
        return ctx.error(
            ArityError, "normalize() needs over=DIM", call.span, "normalize(z, over=D)"
        )
    over = resolve_dims(ctx, a["over"])
    eps = _const(ctx, a["eps"], "eps")
    if over is None or eps is None:
        return None
    x = _x(ctx, a["x"])
    sq = ctx.emit("mul", (x, x), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["x"])))
    s = ctx.emit("sum", (sq,), (("over", over),), span=call.span, arg_spans=(_sp(a["x"]),))
    s = ctx.emit("maximum", (s, lit(float(eps) ** 2)), span=call.span)
    return ctx.emit("div", (x, ctx.emit("sqrt", (s,), span=call.span)), span=call.span)


def _onehot(ctx, call, a):
    idx = _x(ctx, a["x"])
    if idx is None:
        return None
    if idx.type.of is None:
        return ctx.error(
            TypeMismatch,
            f"onehot() needs an index tensor (index[...] of C), found {idx.type}",
            _sp(a["x"]),
            "declare the input as `index[B] of C`",
        )
    dim = idx.type.of if a["dim"] is None else resolve_dim(ctx, a["dim"])
    return ctx.emit("onehot", (idx,), (("dim", dim),), span=call.span, arg_spans=(_sp(a["x"]),))


def _eye(ctx, call, a):
    nodes = (a["a"], a["b"])
    dims = tuple(resolve_dim(ctx, n) for n in nodes)
    if None in dims:
        return None
    d0, d1 = dims
    if not d0.twin_of(d1):
        return ctx.error(
            DimMismatch,
            f"eye() needs a dim and its primed twin, got {d0} and {d1}",
            call.span,
            f"e.g. eye({d0.name}, {d0.name}')",
        )
    return ctx.emit("eye", (), (("dims", dims),), span=call.span)


def _arange(ctx, call, a):
    """arange(K): the positions 0 .. size(K) - 1, an index into K (for masks like j <= k)."""
    d = resolve_dim(ctx, a["dim"])
    return None if d is None else ctx.emit("arange", (), (("dim", d),), span=call.span)


def _size(ctx, call, a):
    d = resolve_dim(ctx, a["dim"])
    return None if d is None else ctx.emit("size", (), (("dim", d),), span=call.span)


def _xlogy(ctx, call, a):
    x, y = _x(ctx, a["x"]), _x(ctx, a["y"])
    return ctx.emit("xlogy", (x, y), span=call.span, arg_spans=(_sp(a["x"]), _sp(a["y"])))


FUNCTIONS: dict[str, tuple[Sig, Callable]] = {
    **{
        name: _unary(op)
        for name, op in {
            "exp": "exp",
            "log": "log",
            "log1p": "log1p",
            "expm1": "expm1",
            "sqrt": "sqrt",
            "abs": "abs",
            "sigmoid": "sigmoid",
            "softplus": "softplus",
            "relu": "relu",
            "erf": "erf",
            "tanh": "tanh",
            "sin": "sin",
            "cos": "cos",
            "atan": "atan",
            "asin": "asin",
            "acos": "acos",
            "log2": "log2",
            "log10": "log10",
            "stop_grad": "stop_grad",
            "float": "to_float",
        }.items()
    },
    "logsigmoid": (Sig(("x",)), _logsigmoid),
    "pow": _binary("pow"),
    "xlogy": (Sig(("x", "y")), _xlogy),
    "atan2": _binary("atan2", ("y", "x")),
    "where": (Sig(("cond", "x", "y")), _where),
    "prime": (Sig(("x",), variadic=True), _prime),
    "expand": (Sig(("x",), variadic=True), _expand),
    "diff": _axis_op("diff"),
    "clamp": (Sig(("x", "min", "max"), (("min", None), ("max", None))), _clamp),
    "max": _minmax("max", "maximum"),
    "min": _minmax("min", "minimum"),
    "sum": _reduction("sum"),
    "logsumexp": _reduction("logsumexp"),
    "var": _reduction("var", (("ddof", 0),)),
    "mean": (
        Sig(("x", "over", "mask", "empty"), (("over", None), ("mask", None), ("empty", None))),
        _mean,
    ),
    "count": (Sig(("x", "over"), (("over", None),)), _count_fn),
    "norm": (Sig(("x", "over"), (("over", None),)), _norm),
    "normalize": (Sig(("x", "over", "eps"), (("over", None), ("eps", 1e-12))), _normalize),
    "argmax": _axis_op("argmax"),
    "eigvalsh": (Sig(("x", "over")), lambda ctx, call, a: _eigvalsh(ctx, call, a)),
    "softmax": _axis_op("softmax"),
    "log_softmax": _axis_op("log_softmax"),
    "onehot": (Sig(("x", "dim"), (("dim", None),)), _onehot),
    "eye": (Sig(("a", "b")), _eye),
    "size": (Sig(("dim",)), _size),
    "arange": (Sig(("dim",)), _arange),
}


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
    # bce = softplus(x) - x*t: log(1+e^x) never overflows, unlike log(sigmoid(x)).
    out["bce"] = e("sub", (e("softplus", (logits,)), e("mul", (logits, t))), "bce")
    out["logpt"] = e("neg", (out["bce"],), "logpt")
    q = e("sub", (lit(1.0), out["p"]))
    u = e("sub", (lit(1.0), t))
    out["pt"] = e("add", (e("mul", (out["p"], t)), e("mul", (q, u))), "pt")
    return out


def _regression(ctx: Ctx, use: ast.Use, pred: Atom, target: Atom) -> dict[str, Atom]:
    return {"diff": ctx.emit("sub", (pred, target), span=use.span, hint="diff")}


TASKS: dict[str, Callable] = {
    "classification": _classification,
    "segmentation": _classification,  # the same names; spatial dims ride along as *S
    "multilabel": _multilabel,
    "regression": _regression,
}
_TASK_NAMES_BY_TASK = {
    "classification": ("p", "logp", "pt", "logpt", "ce", "onehot"),
    "segmentation": ("p", "logp", "pt", "logpt", "ce", "onehot"),
    "multilabel": ("p", "pt", "logpt", "bce"),
    "regression": ("diff",),
}
_TASK_NAMES = {n for names in _TASK_NAMES_BY_TASK.values() for n in names}


def lower_use(ctx: Ctx, use: ast.Use) -> None:
    fn = TASKS.get(use.task)
    bound = _lower_use(ctx, use, fn) if fn is not None else None
    if not bound:
        # The prelude failed (reported): the names it would bind stay quiet in the body.
        names = _TASK_NAMES_BY_TASK.get(use.task, tuple(_TASK_NAMES))
        ctx.silent.update(n for n in names if n not in ctx.env)
    if fn is None:
        ctx.error(
            UnknownName,
            f"unknown task '{use.task}'",
            _word_span(use.span, use.task, after=3) or use.span,
            did_you_mean(use.task, TASKS) or f"tasks: {', '.join(TASKS)}",
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


# ---- spec calls -------------------------------------------------------------------------


def lower_spec_call(ctx: Ctx, call: ast.Call, callee: Callee) -> Atom | None:
    """Inline another loss: its per-element value (before its reduction) over the caller's dims.
    The callee's dims bind to the argument dims by position, whatever their names (colsum(r:
    [N, M]) called with [M, N] sums the caller's M), all at once: the callee's body resolves
    each of its dim names through that one map, so no renaming can capture another. Dims the
    arguments have beyond the callee's declaration (e.g. *S) ride along like a vmap."""
    loss = callee.loss
    if loss.name in ctx.stack:
        return ctx.error(
            ArityError,
            f"'{loss.name}' calls itself (through {' -> '.join(ctx.stack + (loss.name,))})",
            call.span,
            "losses cannot be recursive",
        )
    params = {p.name: p for p in loss.body if isinstance(p, ast.Param)}
    inputs = {i.name: i for i in loss.inputs}
    bound: dict[str, object] = {}
    if len(call.args) > len(loss.inputs):
        return ctx.error(
            ArityError,
            f"{loss.name}() takes {len(loss.inputs)} input{'s' if len(loss.inputs) != 1 else ''}, "
            f"got {len(call.args)}",
            _sp(call.args[len(loss.inputs)]),
            f"inputs: {', '.join(inputs)}",
        )
    for inp, node in zip(loss.inputs, call.args):
        bound[inp.name] = node
    for kw in call.kwargs:
        if kw.name in bound:
            return ctx.error(
                ArityError, f"{loss.name}() got '{kw.name}' twice", _sp(kw), "pass it once"
            )
        if kw.name not in inputs and kw.name not in params:
            return ctx.error(
                ArityError,
                f"{loss.name}() has no input or param '{kw.name}'",
                _sp(kw),
                did_you_mean(kw.name, list(inputs) + list(params))
                or f"inputs: {', '.join(inputs)}; params: {', '.join(params) or 'none'}",
            )
        bound[kw.name] = kw.value
    sub = Ctx(ctx.b, ctx.errors, callee.scope, stack=ctx.stack + (loss.name,), loss_name=loss.name)
    dim_map: dict[str, Dim] = {}
    ok = True
    for inp in loss.inputs:
        node = bound.get(inp.name)
        if node is None:
            if inp.default is None:
                return ctx.error(
                    ArityError,
                    f"{loss.name}() is missing input '{inp.name}'",
                    call.span,
                    f"inputs: {', '.join(inputs)}",
                )
            continue
        atom = lower_expr(ctx, node)
        if atom is None:
            ok = False
            continue
        atom = _bind_dims(ctx, sub, inp, atom, dim_map, node)
        if atom is None:
            ok = False
        sub.env[inp.name] = atom
    if not ok:
        return None
    sub.dims = dict(dim_map)
    for inp in loss.inputs:
        if inp.name not in sub.env:
            t = _bound_type(ctx, loss, inp, dim_map, call)
            if t is None:
                return None
            sub.env[inp.name] = _absent_input(sub, inp, t)
    for name, p in params.items():
        if name in bound:
            v = lower_expr(ctx, bound[name])
            if v is None:
                return None
            if v.type.dims:
                return ctx.error(
                    TypeMismatch,
                    f"param '{name}' of {loss.name} must be a scalar, found {v.type}",
                    _sp(bound[name]),
                    "params are one number per call; pass a per-element weight as an input",
                )
            sub.env[name] = v
        else:
            d = _param_default(sub, p)  # reported here too: an imported spec is not lowered alone
            if d is None:
                return None
            sub.env[name] = lit(_coerce(p.dtype, d))
        if p.constraint is None:
            continue
        check = _lower_check(sub, p, {n: sub.env[n] for n in params if n in sub.env})
        if _violated(check, {}) and name in bound:
            v = sub.env[name]
            ctx.error(
                ParamError,
                f"{loss.name}(): {name} = {v.value if isinstance(v, Lit) else v} violates "
                f"`{check.text}`",
                _sp(bound[name]),
                "change the value",
            )
        elif _violated(check, {}):
            _bad_default(sub, p, check)
    ctx.checks.extend(sub.checks)
    # One body per distinct binding: a call with the same loss, argument values and param
    # values as an earlier one reuses that call's result instead of inlining the body again
    # (30 helpers each calling the previous twice inlined 2^30 bodies). Absent inputs are
    # keyed as absent: their fill depends only on the loss and the argument types.
    key = (
        id(loss),
        tuple(None if bound.get(i.name) is None else sub.env[i.name] for i in loss.inputs),
        tuple(sub.env.get(n) for n in params),
    )
    if key not in ctx.b.inlined:
        n_errors = len(ctx.errors)
        ctx.b.inlined[key] = lower_body(sub, loss)
        # A mistake met inside the callee may come from this call's dims (colsum's N is the
        # caller's M here): point at the call too, with the binding.
        renamed = [f"{k} = {v}" for k, v in dim_map.items() if str(v) != k]
        note = f"in {loss.name}(...), inlined here"
        note += f" with {', '.join(renamed)}" if renamed else ""
        for e in ctx.errors[n_errors:]:
            e.notes.append((note, call.span))
    r = ctx.b.inlined[key]
    r = ctx.b.current(r) if isinstance(r, Var) else r
    if isinstance(r, Var) and UNIT_DIM in r.type.dims and r.type.dtype != "bool":
        # *S with no axes stays inside the call: the caller never names it (size 1: the sum,
        # or the max of an int, over it is the value itself).
        red = "sum" if r.type.dtype == "float" else "max"
        r = ctx.emit(red, (r,), (("over", (UNIT_DIM,)),), span=call.span)
    return r


def _bind_dims(ctx, sub, inp: ast.Input, atom: Atom, dim_map: dict, node) -> Atom | None:
    """Bind the dims `inp` declares to the argument's, position by position (the argument's
    dims in the order its type lists them: an input's declared order). A dim bound by an
    earlier input must meet the same caller dim again; a declared twin (B') binds its base B
    to the caller's dim with one prime fewer. Dims past the declaration ride along. A *S
    the argument has no dim for is *S with no axes (README): a size-1 dim the argument is
    expanded by. The argument as the callee sees it, or None after an error."""
    decl = inp.type.dims or ()
    have = atom.type.dims

    def bad(msg: str) -> None:
        ctx.error(
            DimMismatch,
            f"input '{inp.name}' of {sub.loss_name} {msg}",
            _sp(node),
            f"{sub.loss_name} declares {inp.name}: {inp.type}; its dims bind to the "
            "argument's by position",
        )
        return None

    star = next((k for k, d in enumerate(decl) if d.variadic), None)
    if have and len(have) == len(decl) - 1 and star is not None and isinstance(atom, Var):
        s = decl[star]
        unit = dim_map.get(s.name) or UNIT_DIM
        if unit.unit and s.primes == 0:
            atom = ctx.emit("expand", (atom,), (("dims", (unit,)),), span=_sp(node))
            have = have[:star] + (unit,) + have[star:]
    if len(have) < len(decl):
        return bad(f"is {inp.type}, but the argument is {atom.type}: it lacks a dimension")
    for dref, d in zip(decl, have):
        want = dim_map.get(dref.name)
        if want is not None:
            want = replace(want, primes=want.primes + dref.primes)
            if want != d:
                return bad(
                    f"wants dim {dref} (= {want} here) where the argument {atom.type} has {d}"
                )
        elif d.primes < dref.primes:
            return bad(f"wants a primed dim ({dref}) where the argument {atom.type} has {d}")
        else:
            dim_map[dref.name] = replace(d, primes=d.primes - dref.primes)
    of = inp.type.of
    if of is not None:
        if atom.type.of is None:
            return bad(f"is an index ({inp.type}), but the argument is {atom.type}")
        want = dim_map.get(of.name)
        if want is None:
            if atom.type.of.primes < of.primes:
                return bad(f"indexes {of}, but the argument indexes {atom.type.of}")
            dim_map[of.name] = replace(atom.type.of, primes=atom.type.of.primes - of.primes)
        elif replace(want, primes=want.primes + of.primes) != atom.type.of:
            return bad(
                f"indexes {of} (= {replace(want, primes=want.primes + of.primes)} here), but "
                f"the argument indexes {atom.type.of}"
            )
    return atom


def _bound_type(ctx, loss: ast.LossDef, inp: ast.Input, dim_map: dict, call) -> TensorType | None:
    """The type of a callee's optional input that the call leaves out: its declared dims
    through the call's binding. A dim no passed argument binds has no size to fill with."""
    t = inp.type
    unbound = [
        d.name for d in (*(t.dims or ()), *((t.of,) if t.of else ())) if d.name not in dim_map
    ]
    if unbound:
        return ctx.error(
            DimMismatch,
            f"{loss.name}() leaves out '{inp.name}' ({t}), and no argument binds its dim "
            f"{unbound[0]}",
            call.span,
            f"pass {inp.name}=... too, so {unbound[0]} has a size",
        )

    def sub(d):
        base = dim_map[d.name]
        return replace(base, primes=base.primes + d.primes)

    of = sub(t.of) if t.of is not None else None
    return TensorType("int" if t.dtype == "index" else t.dtype, tuple(map(sub, t.dims or ())), of)


def _coerce(dtype: str, v):
    if dtype == "float":
        return float(v)
    if dtype == "int":
        return int(v)
    return bool(v)


# ---- inputs, params, body ---------------------------------------------------------------


def input_type(ctx: Ctx, inp: ast.Input) -> TensorType | None:
    t = inp.type
    if t.of is not None and t.dtype != "index":
        return ctx.error(
            TypeMismatch,
            f"only index tensors take `of`, found {t.dtype}",
            t.span,
            f"write `index[...] of {t.of}`",
        )
    if t.dtype == "index" and t.of is None:
        return ctx.error(
            TypeMismatch,
            "an index tensor names the dim it indexes",
            t.span,
            "write e.g. `index[B] of C`",
        )
    dims = []
    seen = set()
    for d in t.dims or ():
        prev = ctx.dims.get(d.name)
        base = prev if prev is not None else Dim(d.name, 0, d.variadic)
        dim = replace(base, primes=base.primes + d.primes)
        if prev is not None and prev.variadic != d.variadic:
            return ctx.error(
                DimMismatch,
                f"dim {d.name} is {'variadic' if prev.variadic else 'not variadic'} elsewhere",
                d.span,
                f"write it as {'*' if prev.variadic else ''}{d.name} everywhere",
            )
        if dim in seen:
            return ctx.error(
                DimMismatch,
                f"dim {dim} appears twice in {t}",
                d.span,
                f"two axes of the same size are {dim} and {dim}' (its primed twin)",
            )
        seen.add(dim)
        ctx.dims.setdefault(d.name, Dim(d.name, 0, d.variadic))
        dims.append(dim)
    if sum(d.variadic for d in dims) > 1:
        return ctx.error(
            DimMismatch,
            "an input can have at most one variadic dim",
            t.span,
            "one *S stands for any number of axes; name the others",
        )
    of = None
    if t.of is not None:
        if t.of.variadic:
            return ctx.error(
                DimMismatch,
                "an index cannot point into a variadic dim",
                t.of.span,
                f"index a named dim, e.g. `index[B] of C`, not of *{t.of.name}",
            )
        base = ctx.dims.setdefault(t.of.name, Dim(t.of.name))
        of = Dim(base.name, base.primes + t.of.primes)
    dtype = "int" if t.dtype == "index" else t.dtype
    return TensorType(dtype, tuple(dims), of)


def input_domain(ctx: Ctx, inp: ast.Input) -> tuple[tuple[float, float], tuple[bool, bool]]:
    """`where lo <= x <= hi` on an input: the (lo, hi) it promises, and which bounds are
    strict (`x > 0` excludes 0). Only comparisons of the input with constants."""
    lo, hi = -math.inf, math.inf
    lo_open = hi_open = False
    d = inp.domain
    if d is None:
        return (lo, hi), (lo_open, hi_open)
    bad = (
        "an input's `where` compares the input with constants",
        _sp(d),
        f"e.g. `{inp.name}: {inp.type} where {inp.name} > 0` or `where 0 <= {inp.name} <= 1`",
    )
    if not isinstance(d, ast.Compare):
        ctx.error(TypeMismatch, *bad)
        return (lo, hi), (lo_open, hi_open)
    for left, op, right in zip(d.operands, d.ops, d.operands[1:]):
        me_left = isinstance(left, ast.Name) and left.name == inp.name
        me_right = isinstance(right, ast.Name) and right.name == inp.name
        bound = const_eval(right if me_left else left)
        if me_left == me_right or bound is None or op in ("==", "!="):
            ctx.error(TypeMismatch, *bad)
            return (-math.inf, math.inf), (False, False)
        upper = (op in ("<", "<=")) == me_left
        strict = op in ("<", ">")
        if upper and float(bound) <= hi:
            hi, hi_open = float(bound), strict or (hi_open and float(bound) == hi)
        elif not upper and float(bound) >= lo:
            lo, lo_open = float(bound), strict or (lo_open and float(bound) == lo)
    if lo >= hi:
        ctx.error(TypeMismatch, f"the domain of '{inp.name}' is empty", _sp(d), "check the bounds")
    return (lo, hi), (lo_open, hi_open)


def _absent_input(ctx: Ctx, inp: ast.Input, t: TensorType | None = None) -> Atom | None:
    """An optional input that was not passed: its default, broadcast to its declared dims
    (`t`: its type when already known, e.g. through a spec call's dim binding)."""
    v = const_eval(inp.default)
    t = t if t is not None else input_type(ctx, inp)
    if v is None or t is None:
        return None
    dtype = "int" if t.dtype == "int" else t.dtype
    if not t.dims:
        return lit(_coerce(dtype, v))
    attrs = (("dims", t.dims), ("value", _coerce(dtype, v)), ("dtype", dtype))
    return ctx.emit("fill", (), attrs, span=inp.span, hint=inp.name)


def _lower_check(ctx: Ctx, p: ast.Param, params: dict[str, Atom]) -> Check | None:
    """A param constraint, lowered over the params alone into its own small equation list."""
    b = Builder()
    b.fold = True
    b.taken = ctx.b.taken  # share the namespace: check names never collide with body names
    # The inputs are in scope only so that using one is reported as such, not as unknown.
    env = {**ctx.env, **params}
    scratch = Ctx(b, ctx.errors, ctx.scope, env, dict(ctx.dims), silent=ctx.silent)
    n_errors = len(ctx.errors)
    ok = lower_expr(scratch, p.constraint)
    if ok is None or len(ctx.errors) > n_errors:
        return
    used = {a.name for e in scratch.b.eqns for a in e.args if isinstance(a, Var)}
    used |= {ok.name} if isinstance(ok, Var) else set()
    used -= {v.name for v in params.values() if isinstance(v, Var)}
    used -= {e.out.name for e in scratch.b.eqns}
    names = {v.name: n for n, v in env.items() if isinstance(v, Var)}
    bad = [f"'{names.get(u, u)}'" for u in sorted(used)]
    # size(C) is a property of the inputs too: a constraint is checked before any input exists.
    bad += [f"size({dict(e.attrs)['dim']})" for e in scratch.b.eqns if e.op == "size"]
    if bad or ok.type.dims:
        ctx.error(
            TypeMismatch,
            "a param constraint may only use params and numbers"
            + (f", not {', '.join(bad)}" if bad else ""),
            _sp(p.constraint),
            "it is checked on the param values alone, e.g. `where gamma >= 0`; "
            "a condition on tensors belongs in the body (where(...))",
        )
        return
    if ok.type.dtype != "bool":
        ctx.error(
            TypeMismatch,
            f"a constraint must be a comparison, found {ok.type}",
            _sp(p.constraint),
            "e.g. `where gamma >= 0`",
        )
        return
    bad_op = constraints.unsupported(scratch.b.eqns)
    if bad_op is not None:
        # Checked on Python numbers before any tensor exists (lossdsl/constraints.py).
        ctx.error(
            TypeMismatch,
            f"a param constraint cannot use {_SURFACE.get(bad_op.op, bad_op.op)}",
            bad_op.span or _sp(p.constraint),
            constraints.HINT,
        )
        return
    text = p.constraint.span.source.text if p.constraint.span else ""
    if p.constraint.span is not None:
        s = p.constraint.span
        line = s.source.line(s.line)
        text = line[s.col - 1 : (s.end_col - 1 if s.end_line == s.line else None)]
    check = Check(tuple(scratch.b.eqns), ok, text, p.constraint.span)
    ctx.checks.append(check)
    return check


def _violated(check: Check | None, values: dict[str, object]) -> bool:
    """Whether a constraint already fails on constants: its params are literals (a spec call with
    gamma=-1) or have the given `values` (defaults). False when it depends on anything else."""
    return check is not None and constraints.evaluate(check, values) is False


_SURFACE = {"pow": "'^'", "safe_div": "a masked mean"}  # ops a user knows by another name


def _param_default(ctx: Ctx, p: ast.Param) -> float | int | bool | None:
    """The param's default, checked against its dtype; None after reporting an error."""
    if p.dtype not in ("float", "int", "bool"):
        return ctx.error(
            TypeMismatch,
            f"a param is float, int or bool, found {p.dtype}",
            p.span,
            "index tensors are inputs, not params",
        )
    d = const_eval(p.default)
    if d is None:
        return ctx.error(
            TypeMismatch,
            "a param default must be a constant",
            _sp(p.default),
            "write a number, or arithmetic on numbers that stays finite: "
            "e.g. `param gamma: float = 2.0`",
        )
    if p.dtype == "bool" and not isinstance(d, bool):
        return ctx.error(
            TypeMismatch,
            f"bool param '{p.name}' needs true or false, found {d}",
            _sp(p.default),
            f"write `param {p.name}: bool = {'true' if d else 'false'}`",
        )
    if p.dtype == "int" and (isinstance(d, bool) or not isinstance(d, int)):
        # One rule for every backend: the default has the param's type, as the language
        # computes it (`/` is true division: 4 / 2 is 2.0, not an int).
        whole = isinstance(d, float) and d.is_integer()
        return ctx.error(
            TypeMismatch,
            f"int param '{p.name}' needs an integer default, found {str(d).lower()}",
            _sp(p.default),
            f"write `param {p.name}: int = {int(d)}` (`/` is true division and a literal "
            "with a point is a float)"
            if whole
            else f"give an integer, or declare it `param {p.name}: float`",
        )
    if p.dtype == "float" and isinstance(d, bool):
        return ctx.error(
            TypeMismatch,
            f"float param '{p.name}' needs a number, found {str(d).lower()}",
            _sp(p.default),
            f"give a number, or declare it `param {p.name}: bool`",
        )
    if isinstance(d, float) and math.isnan(d):
        return ctx.error(
            TypeMismatch,
            f"param '{p.name}' defaults to nan",
            _sp(p.default),
            "give a number: a nan param makes every loss value nan",
        )
    return d


def declare_params(ctx: Ctx, loss: ast.LossDef) -> list[ParamDecl]:
    decls = []
    declared: dict[str, Atom] = {}
    for p in loss.body:
        if not isinstance(p, ast.Param):
            continue
        if p.name in ctx.env or p.name in ctx.dims or p.name in declared:
            ctx.error(
                DuplicateDefinition,
                f"'{p.name}' is already defined"
                + (f" ({ctx.origin[p.name]})" if p.name in ctx.origin else ""),
                p.name_span or p.span,
                "rename the param",
            )
            continue
        d = _param_default(ctx, p)
        if d is None:
            ctx.silent.add(p.name)
            continue
        var = Var(ctx.b.fresh(p.name), TensorType(p.dtype))
        ctx.env[p.name] = declared[p.name] = var
        ctx.origin[p.name] = "param"
        decls.append(ParamDecl(var, _coerce(p.dtype, d)))
    defaults = {d.var.name: d.default for d in decls}
    for p in loss.body:
        if isinstance(p, ast.Param) and p.constraint is not None and p.name in declared:
            check = _lower_check(ctx, p, declared)
            if _violated(check, defaults):
                _bad_default(ctx, p, check)
    return decls


def _bad_default(ctx: Ctx, p: ast.Param, check: Check) -> None:
    ctx.error(
        ParamError,
        f"the default {p.name} = {const_eval(p.default)} violates `{check.text}`",
        _sp(p.default),
        "change the default or the constraint",
    )


def lower_body(ctx: Ctx, loss: ast.LossDef) -> Atom | None:
    """Lets, uses and the result expression, in order. Returns the per-element result."""
    for st in loss.body:
        match st:
            case ast.Use():
                lower_use(ctx, st)
            case ast.Let(name=name, value=value):
                if name in ctx.env or name in ctx.dims:
                    what = "a dimension" if name in ctx.dims else ctx.origin.get(name, "defined")
                    ctx.error(
                        DuplicateDefinition,
                        f"'{name}' is already defined ({what})",
                        st.name_span or st.span,
                        f"pick another name than '{name}'",
                    )
                    if name not in ctx.env:
                        ctx.silent.add(name)  # uses of the rejected let stay quiet
                    continue
                before = len(ctx.b.eqns)
                v = lower_expr(ctx, value)
                # `let p = (logp)` names a value already bound: p is an alias, and the
                # equation that made logp keeps its name (later uses of logp refer to it).
                # Only a value this let's expression computed is new (and `v not in
                # env.values()` made a chain of n lets O(n^2): 8,000 lets took 12 s).
                if isinstance(v, Var) and len(ctx.b.eqns) > before:
                    v = ctx.b.rename_last(v, name)
                ctx.env[name] = v  # None marks a failed let: later uses stay silent
                ctx.origin[name] = "let"
    return lower_expr(ctx, loss.result)


def lower_loss(
    resolved: Resolved,
    loss: ast.LossDef,
    errors: list[LossError],
    absent: frozenset[str] = frozenset(),
    helper: bool = False,
    budget: Budget | None = None,
) -> Program | None:
    """Lower one loss for one set of absent optional inputs. A helper (a loss other specs in
    the file call, not the file's spec) may return a pairwise [B, B'] value. `budget`: the
    steps left to the spec (a fresh MAX_STEPS if None)."""
    b = Builder(budget=budget)
    ctx = Ctx(b, errors, resolved.scope, stack=(loss.name,), loss_name=loss.name)
    decls: list[InputDecl] = []
    seen: set[str] = set()
    for inp in loss.inputs:
        if inp.name in seen:
            ctx.error(
                DuplicateDefinition,
                f"input '{inp.name}' is declared twice",
                inp.name_span or inp.span,
                "rename one of them",
            )
            continue
        seen.add(inp.name)
        t = input_type(ctx, inp)
        default = None
        if inp.default is not None:
            dv = const_eval(inp.default)
            if dv is None:
                ctx.error(
                    TypeMismatch,
                    "an optional input's default must be a constant",
                    _sp(inp.default),
                    f"e.g. `{inp.name}: {inp.type} = 1`",
                )
                ctx.silent.add(inp.name)
                continue
            default = lit(_coerce("int" if t and t.dtype == "int" else "float", dv)) if t else None
        if t is None:
            ctx.silent.add(inp.name)
            continue
        if inp.name in absent:
            ctx.env[inp.name] = None  # filled below, after every dim is known
            continue
        var = Var(ctx.b.fresh(inp.name), t)
        ctx.env[inp.name] = var
        ctx.origin[inp.name] = "input"
        decls.append(InputDecl(var, default, *input_domain(ctx, inp)))
    for inp in loss.inputs:
        if inp.name in absent:
            ctx.env[inp.name] = _absent_input(ctx, inp)
            ctx.origin[inp.name] = "input"
    for d in ctx.dims:
        if d in ctx.env:
            inp = next(i for i in loss.inputs if i.name == d)
            ctx.error(
                DuplicateDefinition,
                f"'{d}' is both a dim and an input",
                inp.name_span or inp.span,
                f"rename the input or the dim {d}",
            )
    if not helper:
        _optional_only_dims(ctx, loss)
    params = declare_params(ctx, loss)
    result = lower_body(ctx, loss)
    reduce_stmts = [s for s in loss.body if isinstance(s, ast.Reduce)]
    if not helper:
        _unsized_dims(ctx, decls)
    if result is None:
        return None
    result = _check_result(ctx, loss, result, helper)
    if result is None:
        return None
    outputs, default_mode = _reductions(ctx, loss, result, reduce_stmts)
    if outputs is None:
        return None
    return Program(
        name=loss.name,
        doc=loss.doc or "",
        inputs=tuple(decls),
        params=tuple(params),
        eqns=tuple(ctx.b.eqns),
        outputs=outputs,
        default_reduction=default_mode,
        checks=tuple(ctx.checks),
        absent=tuple(sorted(absent)),
    )


def _optional_only_dims(ctx: Ctx, loss: ast.LossDef) -> None:
    """A dim that only optional inputs carry has no size when they are left out (the default
    fills a tensor over it): the spec cannot be called without them, so say so at check."""
    required = {d.name for i in loss.inputs if i.default is None for d in i.type.dims or ()}
    reported = set()
    for inp in loss.inputs:
        if inp.default is None:
            continue
        for d in inp.type.dims or ():
            if d.name in required or d.name in reported:
                continue
            reported.add(d.name)
            ctx.error(
                DimMismatch,
                f"dim {d} is only on optional inputs: when '{inp.name}' is left out, nothing "
                f"gives {d.name} a size",
                d.span or inp.span,
                f"declare {d.name} on a required input too, or make '{inp.name}' required "
                "(drop its `= default`)",
            )


def _unsized_dims(ctx: Ctx, decls: list[InputDecl]) -> None:
    """Every dim an equation needs the size of (fill, eye, arange, onehot, size, expand) must
    be a dim of a passed input: an `index[...] of C` alone does not say how big C is."""
    carried = {d.name for decl in decls for d in decl.var.type.dims}
    reported = set()
    for e in ctx.b.eqns:
        dims = [v for k, v in e.attrs if k == "dim"] + [
            d for k, v in e.attrs if k == "dims" for d in v
        ]
        for d in dims:
            if isinstance(d, Dim) and not d.unit and d.name not in carried | reported:
                reported.add(d.name)
                ctx.error(
                    DimMismatch,
                    f"the size of {d.name} is unknown: no input has dim {d.name}",
                    e.span,
                    f"declare an input over {d.name} (e.g. the logits float[B, {d.name}]); "
                    f"an index `of {d.name}` does not give its size",
                )


def _reaches_input(ctx: Ctx, r: Atom, differentiably: bool = False) -> bool:
    """Does `r` read an input tensor (not only params, sizes and literals)? With
    `differentiably`, only through float values and differentiable ops: not through
    comparisons, argmax, indices, the condition of a where, or stop_grad."""
    inputs = {
        ctx.env[n].name
        for n, o in ctx.origin.items()
        if o == "input" and isinstance(ctx.env.get(n), Var)
    }
    producers = {e.out.name: e for e in ctx.b.eqns}
    stack, seen = [r], set()
    while stack:
        a = stack.pop()
        if not isinstance(a, Var) or a.name in seen:
            continue
        if differentiably and a.type.dtype != "float":
            continue
        seen.add(a.name)
        if a.name in inputs:
            return True
        e = producers.get(a.name)
        if e is None:
            continue
        if differentiably:
            if e.op == "stop_grad" or not OPS[e.op].differentiable:
                continue  # (a fill too: an absent input is a constant)
            args = e.args[1:] if e.op == "where" else e.args
            stack.extend(args[:1] if e.op in ("gather", "cross_entropy") else args)
        elif e.op == "fill":
            return True  # an absent optional input still stands for an input
        else:
            stack.extend(e.args)
    return False


def _check_result(ctx: Ctx, loss: ast.LossDef, r: Atom, helper: bool = False) -> Atom | None:
    sp = _sp(loss.result)
    if r.type.dtype == "bool":
        return ctx.error(
            TypeMismatch,
            f"the loss is a comparison ({r.type}), not a number",
            sp,
            "a loss must be float; use where(mask, a, b) or float(mask)",
        )
    if not _reaches_input(ctx, r):
        return ctx.error(
            TypeMismatch,
            "the loss does not depend on any input",
            sp,
            "a loss is a function of its tensors; a constant has no gradient to train with",
        )
    if not helper and not _reaches_input(ctx, r, differentiably=True):
        return ctx.error(
            TypeMismatch,
            "the loss has no gradient: it reaches the float inputs only through integers, "
            "comparisons, indices or stop_grad",
            sp,
            "argmax, ==, onehot(i), x[i]'s index and stop_grad have zero gradient; make the loss "
            "depend smoothly on a float input (e.g. logits, not argmax(logits))",
        )
    if r.type.dtype == "int":
        r = ctx.emit("to_float", (r,), span=sp)
    # reduction="none" returns the dims in the order the inputs declare them, whatever order
    # the expression happened to build them in.
    order: list[Dim] = []
    for inp in loss.inputs:
        for d in inp.type.dims or ():
            base = ctx.dims.get(d.name)
            dim = replace(base, primes=base.primes + d.primes) if base else None
            if dim is not None and dim not in order:
                order.append(dim)
    canon = tuple(sorted(r.type.dims, key=lambda d: order.index(d) if d in order else len(order)))
    if r is not None and canon != r.type.dims:
        r = ctx.emit("transpose", (r,), (("dims", canon),), span=sp)
    primed = [d for d in r.type.dims if d.primes]
    if primed and not helper:
        return ctx.error(
            DimMismatch,
            f"the loss still has the pairwise dim{'s' if len(primed) > 1 else ''} "
            f"{', '.join(map(str, primed))}: {r.type}",
            sp,
            f"reduce over it, e.g. sum(..., over={primed[0]})",
        )
    return r


def _reductions(ctx: Ctx, loss: ast.LossDef, r: Atom, stmts: list[ast.Reduce]):
    """Outputs for reduction='none' | 'sum' | 'mean'. `reduce mean by w empty e` makes the mean
    sum(loss) / sum(w), with `e` when sum(w) == 0 (F.cross_entropy's weighted mean, without its
    NaN on an all-ignored batch)."""
    sp = _sp(loss.result)
    default = "mean"
    by = empty = None
    if len(stmts) > 1:
        ctx.error(
            DuplicateDefinition,
            "only one `reduce` per loss",
            stmts[1].span,
            "keep one; the caller picks another with reduction=...",
        )
        return None, default
    if stmts:
        st = stmts[0]
        if st.mode not in REDUCTIONS:
            ctx.error(
                UnknownName,
                f"unknown reduction '{st.mode}'",
                st.mode_span or st.span,
                did_you_mean(st.mode, REDUCTIONS) or "use mean, sum or none",
            )
            return None, default
        default = st.mode
        if st.by is not None:
            if st.mode != "mean":
                ctx.error(
                    ArityError,
                    "`by` only applies to `reduce mean`",
                    _sp(st.by),
                    f"write `reduce mean by ...`, or drop `by` from `reduce {st.mode}`",
                )
                return None, default
            if st.empty is None:
                ctx.error(
                    ArityError,
                    "a weighted mean must declare its value on an empty set",
                    st.span,
                    "add `empty 0` (what an all-masked batch returns)",
                )
                return None, default
            by = lower_expr(ctx, st.by)
            empty = const_eval(st.empty)
            if by is None:
                return None, default
            if empty is None:
                ctx.error(TypeMismatch, "`empty` must be a number", _sp(st.empty), "e.g. `empty 0`")
                return None, default
            if set(by.type.dims) != set(r.type.dims) or by.type.dtype == "bool":
                # One weight per loss element: a weight lacking a dim would count once per row
                # or once per element depending on how it is read; expand() says which.
                lacks = tuple(d for d in r.type.dims if d not in by.type.dims)
                extra = ", ".join(str(d) for d in by.type.dims if d not in r.type.dims)
                if extra:
                    fix = (
                        f"pick one weight per element along {extra} (w[i] for an index i into "
                        f"it) or reduce {extra} away"
                    )
                elif lacks:
                    names = ", ".join(map(str, lacks))
                    w = st.by.name if isinstance(st.by, ast.Name) else "w"
                    fix = f"repeat the weights along {names}: by `expand({w}, {names})`"
                else:
                    fix = "they are a mask: weigh by float(mask)"
                ctx.error(
                    DimMismatch,
                    f"the mean's weights are {by.type}, the loss is {r.type}",
                    _sp(st.by),
                    f"weights need the loss's dims {fmt_dims(r.type.dims)}, as numbers; {fix}",
                )
                return None, default
        elif st.empty is not None:
            ctx.error(
                ArityError,
                "`empty` only applies with `by`",
                _sp(st.empty),
                "an unweighted mean is never empty: drop `empty`, or add `by weights`",
            )
            return None, default
    dims = r.type.dims
    if not dims:
        # One element: sum(loss) / sum(w) is loss / w (the weights are a scalar too).
        m = r
        if by is not None:
            if isinstance(by, Lit):  # a tensor, as the sum of weights is for a ranked loss
                attrs = (("dims", ()), ("value", float(by.value)), ("dtype", "float"))
                by = ctx.emit("fill", (), attrs, span=sp)
            m = ctx.emit("safe_div", (r, by), (("empty", float(empty)),), span=sp)
        return (None if m is None else (("none", r), ("sum", r), ("mean", m))), default
    over = (("over", dims),)
    s = ctx.emit("sum", (r,), over, span=sp, hint="total")
    if by is None:
        m = ctx.emit("mean", (r,), over, span=sp, hint="average")
    else:
        w = ctx.emit("sum", (by,), over, span=sp, hint="denominator")
        m = ctx.emit("safe_div", (s, w), (("empty", float(empty)),), span=sp, hint="average")
    if s is None or m is None:
        return None, default
    return (("none", r), ("sum", s), ("mean", m)), default


def check_param_value(name: str, dtype: str, value) -> None:
    """Reject a baked param of the wrong kind (True for a float, 2.5 for an int)."""
    ok = {
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[dtype]
    if not ok or (dtype == "float" and isinstance(value, float) and math.isnan(value)):
        raise ParamError(f"param '{name}' must be {dtype}, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            check_representable(value)
        except FoldError as e:
            raise ParamError(f"param '{name}': {e.message}", None, e.hint) from None
