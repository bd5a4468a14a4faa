"""The state every part of lowering shares: the equation Builder (fresh names, hash-consing,
int operands cast for float ops), the per-body Ctx (scope, env, dims, error reporting), the
work Budget, the helpers for spans and dims as written, constant folding of defaults, and
LIBRARY, through which expressions reach the calls lowered above them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from lossdsl import ast
from lossdsl.errors import (
    ConstantError,
    DimMismatch,
    LimitError,
    LossError,
    TypeMismatch,
    UnknownName,
    did_you_mean,
)
from lossdsl.ir import Atom, Check, Eqn, Lit, Var
from lossdsl.ops import FOLDABLE_KINDS, OPS, FoldError, OpDimError, OpTypeError, fold_value
from lossdsl.source import Span
from lossdsl.types import BOOL, FLOAT, INT, Dim, TensorType, fmt_dims

if TYPE_CHECKING:
    from lossdsl.resolve import Scope


REDUCTIONS = ("none", "sum", "mean")


def lit(value: float | int | bool) -> Lit:
    if isinstance(value, bool):
        return Lit(value, BOOL)
    return Lit(value, INT if isinstance(value, int) else FLOAT)


# Bounds on lowering's work. Inlining multiplies a spec's body by the number of distinct
# argument values it is called with (h(x * 2) + h(x * 3), nested n deep: 2^n bodies that no
# sharing can merge), and each loss of a file is lowered alone too. MAX_STEPS counts the
# expression nodes lowered for one spec, all its losses and inlined bodies together (about
# 10 us each; shipped specs take at most ~400, 8,000 lets 40,000: the limit stops an
# exponential inlining within ~1 s); MAX_EQNS bounds the program one loss lowers to (8,000
# lets: 16,000 equations).
MAX_STEPS = 50_000
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


_FLOAT_LITERAL_OPS = frozenset(
    {"add", "sub", "mul", "div", "floordiv", "mod", "maximum", "minimum", "where"}
)
# Ops every backend promotes to a float operand's dtype itself (an int operand beside a float
# value needs no cast). Not xlogy: jax's is a custom_jvp, whose int operand gets a float0
# tangent that its jvp rule multiplies (a TypeError under jax.grad).
_PROMOTING_OPS = _FLOAT_LITERAL_OPS | {"pow", "safe_div"}
# Kinds that compute on every operand in float (gather, cross_entropy... take index operands).
_FLOAT_KINDS = frozenset(
    {"elementwise", "reduce", "axis", "contract", "diff", "eigvalsh", "scan", "quantile"}
    | {"window", "rfft"}
)

# ---- the equation builder ---------------------------------------------------------------


class Builder:
    """Appends equations; names temporaries t0, t1, ... and keeps user names readable."""

    def __init__(self, taken: set[str] | None = None, budget: Budget | None = None):
        self.budget = Budget() if budget is None else budget
        self.eqns: list[Eqn] = []
        self.taken: set[str] = set(taken or ())
        self._n = 0
        self.fold = False  # return constants as literals (param constraints)
        self.params: set[str] = set()  # the IR names of the program's params
        # values computed from params, sizes and literals alone: Python numbers in the generated
        # code when the params are (weakly typed: int64 ** 0.5 is torch's default float32)
        self.weak: set[str] = set()
        self.consts: dict[str, object] = {}  # the value of each equation made of constants
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
        weak = [
            not isinstance(a, Var) or a.name in self.params or a.name in self.weak for a in args
        ]
        # a float tensor operand promotes an int one to its dtype; a param (a Python float) does not
        floats = any(
            isinstance(a, Var) and a.type.dtype == "float" and not w for a, w in zip(args, weak)
        )
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
        if t.dtype == "float" and (
            op in _FLOAT_LITERAL_OPS or (OPS[op].kind in _FLOAT_KINDS and op != "pow")
        ):
            # `1 - x` and `1.0 - x` are one value once x is float: one literal, so CSE sees it.
            # A float op's int literal is a float literal too: torch.atan2(3, x) rejects the
            # int, and jax's xlogy(3, x) differentiates it (a float0 tangent, a TypeError).
            # pow keeps an int exponent (x ^ 2 is exact on every backend).
            args = tuple(
                Lit(float(a.value), FLOAT) if isinstance(a, Lit) and a.type.dtype == "int" else a
                for a in args
            )
        values = [a.value if isinstance(a, Lit) else self.consts.get(a.name) for a in args]
        v = None
        if args and OPS[op].kind in FOLDABLE_KINDS and all(x is not None for x in values):
            # A constant the IR cannot hold (int64, float64) is reported here, at its
            # expression, also when it is built from constant equations (exp(stop_grad(1e300))).
            # The body keeps the equation (formulas show log(2), not 0.693; the fold pass folds
            # it); a constraint folds now (`g <= 2 ^ 3` needs no pow).
            v = fold_value(op, values, dict(attrs), t.dtype)
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
        if all(weak):
            self.weak.add(out.name)
        if v is not None:
            self.consts[out.name] = v
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
        if var.name in self.weak:
            self.weak.add(new.name)
        if var.name in self.consts:
            self.consts[new.name] = self.consts[var.name]
        # the old name stays taken: `renamed` maps it to the let-name for good, so a later
        # value given the same name would be read as this one (a helper `let a = ...; a`
        # called twice, each call bound by a let, returned the first call's value twice)
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
    # choice params in scope: name -> their words (the value is the int index of one)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # In an inlined helper: the call's binding of the dims the helper declares, (name, primes)
    # as written -> the caller's dim (colsum's (N, 0) -> the caller's M; ha(x: [B', B]) called
    # with [B, B'] has (B, 1) -> B and (B, 0) -> B'), and the caller's Ctx, through whose twin()
    # a prime the helper makes goes. None at the top, where B' is simply B primed.
    levels: dict[tuple[str, int], Dim] | None = None
    parent: Ctx | None = None
    fns: dict = field(default_factory=dict)  # function inputs: name -> FnDecl (ir.py)

    def dim(self, name: str, primes: int = 0) -> Dim | None:
        """The IR dim that `name` with `primes` primes, as written in this body, stands for."""
        if self.levels is None:
            base = self.dims.get(name)
            return None if base is None else replace(base, primes=base.primes + primes)
        bound = sorted(p for n, p in self.levels if n == name)
        if not bound:
            return None
        if (name, primes) not in self.levels:
            # A twin the call binds to no argument dim: primed on from the nearest bound level
            # below (the caller's B' for the helper's B', B bound to B), skipping the dims the
            # helper's others are bound to, so that it never stands for one of them (dims riding
            # along are primed with the rest, as the body written inline would prime them).
            below = [p for p in bound if p < primes]
            p0 = below[-1] if below else bound[-1]
            d = self.levels[(name, p0)]
            taken = set(self.levels.values())
            for _ in range(max(primes - p0, 1)):
                d = self.parent.twin(d)
            while d in taken:
                d = self.parent.twin(d)
            self.levels[(name, primes)] = d
        return self.levels[(name, primes)]

    def twin(self, d: Dim) -> Dim:
        """d's primed twin in this body: inside a helper, the caller's dim that the helper's
        own prime of d stands for (a dim derived from a bound one, e.g. a window's H-10, keeps
        its steps; one riding along the call is primed as the caller primes it)."""
        if self.levels is None:
            return d.prime()
        for (name, p), v in list(self.levels.items()):
            if (v.name, v.primes, v.variadic, v.unit) == (d.name, d.primes, d.variadic, d.unit):
                if d.steps[: len(v.steps)] == v.steps:
                    t = self.dim(name, p + 1)
                    return replace(t, steps=t.steps + d.steps[len(v.steps) :])
        return self.parent.twin(d)

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
    if isinstance(node, ast.Num) and isinstance(node.value, int) and not primes:
        if str(node.value) in ctx.dims:  # a fixed-size dim: over=4 in float[B, 4]
            node = ast.Name(str(node.value), node.span)
        elif node.value > 0:  # one no input has: the entries of frames(x, 400, ...) are over 400
            return Dim(str(node.value))
        else:
            return ctx.error(
                UnknownName,
                f"no dim has the fixed size {node.value}",
                _sp(node),
                f"the dims in scope are {', '.join(sorted(ctx.dims)) or 'none'}",
            )
    if not isinstance(node, ast.Name):
        return ctx.error(TypeMismatch, "expected a dimension name here", _sp(node), example)
    d = ctx.dims.get(node.name)
    if d is not None and primes:
        return ctx.dim(node.name, primes)
    v = ctx.env.get(node.name)
    if d is None and not primes and isinstance(v, Var) and _int_param(ctx, v):
        return Dim("$" + v.name)  # the dim an int param sizes (split(x, k, over=N))
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
    return d


def _int_param(ctx: Ctx, v: Var) -> bool:
    return v.name in ctx.b.params and v.type.dtype == "int" and not v.type.dims


def resolve_dims(ctx: Ctx, node) -> tuple[Dim, ...] | None:
    items = node.items if isinstance(node, ast.Tuple) else (node,)
    dims = tuple(resolve_dim(ctx, i) for i in items)
    return None if any(d is None for d in dims) else dims


# Named constants: a name that nothing in scope binds (an input, a param, a let, a loop's
# state) is one of these; a binding of the same name shadows it.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def const_eval(node) -> float | int | bool | None:
    """Evaluate a constant expression (param defaults, eps): numbers, +-*/^ and unary minus,
    with the language's types (the op table's folding: ints exact, `/` true division, so
    `4 / 2` is 2.0). None when it is not constant or not representable (int64, float64)."""
    match node:
        case ast.Num(value=v) | ast.Bool(value=v):
            if isinstance(v, float) and math.isinf(v) and node.text != "inf":
                return None  # a literal that overflowed float64
            return v
        case ast.Name(name=n) if n in CONSTANTS:
            return CONSTANTS[n]
        case ast.Unary(op="-", operand=x):
            v = const_eval(x)
            return None if v is None or isinstance(v, bool) else -v
        case ast.Binary(op=op, left=l, right=r) if op in ("+", "-", "*", "/", "//", "%", "^"):
            a, b = const_eval(l), const_eval(r)
            if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
                return None
            name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow"}.get(op)
            name = name or {"//": "floordiv", "%": "mod"}[op]
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


def _coerce(dtype: str, v):
    if dtype == "float":
        return float(v)
    if dtype == "int":
        return int(v)
    return bool(v)


# ---- what expressions reach above them ----------------------------------------------------


@dataclass
class Library:
    """What an expression calls or names that is lowered above lossdsl/lower/expr.py: a call
    (functions.lower_call: a built-in function or another spec), the built-ins by name
    (functions.FUNCTIONS) and the task preludes (preludes.PRELUDES), for the hints of an unknown
    name. Those lower their own operands as expressions, so expr.py cannot import them:
    lossdsl/lower/__init__.py fills this in once every module is loaded."""

    call: Callable | None = None
    functions: dict[str, tuple] = field(default_factory=dict)
    preludes: dict[str, object] = field(default_factory=dict)


LIBRARY = Library()


def close_body(b: Builder, own: set[str], results) -> tuple:
    """Close a block lowered on `b` (a loop's, a grad's body): every outer value its equations
    or results read becomes a free var, a fresh name in b. Returns the equations and results
    reading the free vars, the free vars, and the outer values they stand for (in order)."""
    free: dict[str, Var] = {}

    def close(a: Atom) -> Atom:
        if isinstance(a, Lit) or a.name in own:
            return a
        if a.name not in free:
            free[a.name] = Var(b.fresh(a.name), a.type)
        return free[a.name]

    eqns = tuple(replace(e, args=tuple(close(a) for a in e.args)) for e in b.eqns)
    results = [close(r) for r in results]
    return eqns, results, tuple(free.values()), [Var(n, v.type) for n, v in free.items()]
