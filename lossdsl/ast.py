"""Frozen dataclasses for what the user wrote. Spans are excluded from equality."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TypeAlias

from lossdsl.meta import Meta
from lossdsl.source import Span


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


# ---- dimensions and types -------------------------------------------------------------


@dataclass(frozen=True)
class DimRef:
    name: str
    primes: int = 0
    variadic: bool = False
    span: Span | None = _span()

    def __str__(self) -> str:
        return ("*" if self.variadic else "") + self.name + "'" * self.primes


@dataclass(frozen=True)
class TypeExpr:
    dtype: str  # float | int | bool | index
    dims: tuple[DimRef, ...] | None  # None: a scalar written without brackets
    of: DimRef | None = None
    span: Span | None = _span()

    def __str__(self) -> str:
        s = self.dtype
        if self.dims is not None:
            s += "[" + ", ".join(map(str, self.dims)) + "]"
        if self.of is not None:
            s += f" of {self.of}"
        return s


# ---- expressions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: float | int
    text: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True)
class Str:
    """A quoted word: only an option's value (padding="same"), never a tensor."""

    value: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Name:
    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Unary:
    op: str  # "-" | "!"
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / ^ & |
    left: Expr
    right: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class Compare:
    """A comparison chain: a < b <= c means (a < b) & (b <= c)."""

    operands: tuple[Expr, ...]
    ops: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span | None = _span()
    func_span: Span | None = _span()


@dataclass(frozen=True)
class Gather:
    base: Expr
    index: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class Prime:
    operand: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class Tuple:
    items: tuple[Expr, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Block:
    """A loop's body: statements, then the result (the carried state's next value)."""

    stmts: tuple
    result: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class BlockCall:
    """`repeat(n, init=(f0, g0)) (f, g) { ... }`: a call whose body names the carried state."""

    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    state: tuple[str, ...]
    block: Block
    span: Span | None = _span()
    func_span: Span | None = _span()
    state_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False)


Expr: TypeAlias = (
    Num | Bool | Name | Unary | Binary | Compare | Call | Gather | Prime | Tuple | BlockCall
)


# ---- statements and definitions -------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str
    default: Expr | None  # None: a required param (passed at call or bake time)
    constraint: Expr | None
    span: Span | None = _span()
    name_span: Span | None = _span()
    choices: tuple[str, ...] = ()  # a choice param's words (dtype "choice")


@dataclass(frozen=True)
class Use:
    task: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True)
class LetTuple:
    """`let x1, y1, x2, y2 = unstack(box, over=4)`: one name per value of a tuple."""

    names: tuple[str, ...]
    value: Expr
    span: Span | None = _span()
    name_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class Reduce:
    mode: str  # mean | sum
    by: Expr | None
    empty: Expr | None
    span: Span | None = _span()
    mode_span: Span | None = _span()


Stmt: TypeAlias = Param | Use | Let | LetTuple | Reduce


@dataclass(frozen=True)
class FnTypeExpr:
    """A function input's type: `fn(float[B, *S]) -> float[B]`."""

    params: tuple[TypeExpr, ...]
    result: TypeExpr
    span: Span | None = _span()

    def __str__(self) -> str:
        return f"fn({', '.join(map(str, self.params))}) -> {self.result}"


@dataclass(frozen=True)
class Input:
    name: str
    type: TypeExpr | FnTypeExpr
    default: Expr | None  # an optional input: filled with this constant when not passed
    span: Span | None = _span()
    name_span: Span | None = _span()
    domain: Expr | None = None  # `where 0 <= t <= 1`: the values callers promise


@dataclass(frozen=True)
class LossDef:
    name: str
    inputs: tuple[Input, ...]
    body: tuple[Stmt, ...]
    result: Expr
    doc: str | None
    span: Span | None = _span()
    name_span: Span | None = _span()
    fns: tuple[Input, ...] = ()  # function inputs (`critic: fn(...) -> ...`), after `inputs`
    meta: Meta = field(default_factory=Meta)  # the docstring's field block (lossdsl/meta.py)


@dataclass(frozen=True)
class Import:
    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Module:
    doc: str | None
    imports: tuple[Import, ...]
    losses: tuple[LossDef, ...]
    meta: Meta = field(default_factory=Meta)
    source: object = field(default=None, compare=False, repr=False)  # lossdsl.source.Source


def span_of(node: object) -> Span | None:
    return getattr(node, "span", None)


_NODES = (DimRef, TypeExpr, Num, Bool, Name, Unary, Binary, Compare, Keyword, Call, Gather, Prime,
          Tuple, Param, Use, Let, Reduce, Input, LossDef, Import)  # fmt: skip


def children(node: object) -> list:
    """The AST nodes directly inside `node` (for iterative walks over deep trees)."""
    out = []
    for f in fields(node) if isinstance(node, _NODES) else ():
        v = getattr(node, f.name)
        if isinstance(v, _NODES):
            out.append(v)
        elif isinstance(v, tuple):
            out.extend(x for x in v if isinstance(x, _NODES))
    return out
