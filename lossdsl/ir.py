"""The typed IR: one equation per primitive (jaxpr-like), a printer, and a verifier."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TypeAlias

from lossdsl.ops import OPS, OpTypeError
from lossdsl.source import Span
from lossdsl.types import UNIT_DIM, Dim, TensorType


@dataclass(frozen=True)
class Var:
    name: str
    type: TensorType

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Lit:
    """A scalar constant. `key` keeps 1 and 1.0 (and NaN) apart for folding and CSE."""

    value: float | int | bool
    type: TensorType

    @property
    def key(self) -> tuple:
        return (self.type.dtype, repr(self.value))

    def __eq__(self, other) -> bool:
        return isinstance(other, Lit) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        v = self.value
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return repr(v).lower() if isinstance(v, bool) else repr(v)


Atom: TypeAlias = Var | Lit


@dataclass(frozen=True)
class Eqn:
    out: Var
    op: str
    args: tuple[Atom, ...]
    attrs: tuple[tuple[str, object], ...] = ()
    # Where the spec wrote it (for errors found after lowering, e.g. by the shard transform);
    # a rewrite's equations inherit the span of the equation they replace.
    span: Span | None = field(default=None, compare=False)

    def attr(self, name: str, default=None):
        return dict(self.attrs).get(name, default)

    @property
    def key(self) -> tuple:
        return (self.op, tuple(a.key if isinstance(a, Lit) else a for a in self.args), self.attrs)


@dataclass(frozen=True)
class Body:
    """A loop's body (the `repeat` and `scan` ops): a closed program. `state` are the carried
    values, bound to the loop's init args and then to the previous step's `results`; `free` are
    the outer values it reads, bound to the loop's args after the init (closed, like a jaxpr's
    scan body, so that rewriting the outer program never reaches inside); `results` the next
    state, of the state's types; `xs` (scan) each step's slices of the sequences."""

    state: tuple[Var, ...]
    free: tuple[Var, ...]
    eqns: tuple[Eqn, ...]
    results: tuple[Atom, ...]
    xs: tuple[Var, ...] = ()  # scan: each step's slices of its sequences

    def __str__(self) -> str:
        return f"<body of {len(self.eqns)} eqns>"


@dataclass(frozen=True)
class InputDecl:
    var: Var
    default: Lit | None = None  # optional input: absent -> filled with this value
    domain: tuple[float, float] = (-math.inf, math.inf)  # declared value range (a precondition)
    open_bounds: tuple[bool, bool] = (False, False)  # `x > 0` excludes 0; `x >= 0` includes it

    @property
    def optional(self) -> bool:
        return self.default is not None


@dataclass(frozen=True)
class ParamDecl:
    var: Var
    default: float | int | bool
    choices: tuple[str, ...] = ()  # a choice param: var is the int index of its word


@dataclass(frozen=True)
class FnDecl:
    """A function input (`critic: fn(float[B, *S]) -> float[B]`): a callable the caller passes
    (an nn.Module, a jax function of arrays, a numpy function), called by `call_fn` equations
    with arguments of `params`' types, returning a `result`."""

    name: str
    params: tuple[TensorType, ...]
    result: TensorType


@dataclass(frozen=True)
class Check:
    """A param constraint: `eqns` compute the bool scalar `ok` from params alone."""

    eqns: tuple[Eqn, ...]
    ok: Atom
    text: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Program:
    """A compiled loss. `outputs` maps each reduction mode to its result atom; all share eqns."""

    name: str
    doc: str
    inputs: tuple[InputDecl, ...]
    params: tuple[ParamDecl, ...]
    eqns: tuple[Eqn, ...]
    outputs: tuple[tuple[str, Atom], ...]  # (("none", v), ("sum", s), ("mean", m))
    default_reduction: str = "mean"
    checks: tuple[Check, ...] = ()
    absent: tuple[str, ...] = ()  # optional inputs this specialization assumes were not passed
    zeros: tuple[str, ...] = ()  # params this specialization assumes are 0 (baked away)
    # The dim this program is sharded over (lossdsl/shard.py): B is this rank's rows, every
    # primed twin B', B'', ... is the whole batch (all ranks' rows).
    shard: str | None = None
    fns: tuple[FnDecl, ...] = ()  # function inputs, after the tensor inputs
    # int params baked that size a dim (split(x, k, over=N) compiled with k=3): ("k", 3)
    dim_values: tuple[tuple[str, int], ...] = ()

    def output(self, mode: str) -> Atom:
        return dict(self.outputs)[mode]


# ---- printer ----------------------------------------------------------------------------


def _fmt_attr(v) -> str:
    if isinstance(v, tuple):
        if v and isinstance(v[0], tuple):
            return "{" + ", ".join(f"{a}->{b}" for a, b in v) + "}"
        return "(" + ", ".join(map(str, v)) + ")"
    return str(v)


def format_eqn(e: Eqn, indent: str = "    ") -> str:
    args = " ".join(str(a) for a in e.args)
    attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in e.attrs if k != "body")
    attrs = f"[{attrs}]" if attrs else ""
    line = f"{e.out.name}:{e.out.type} = {e.op}{attrs} {args}".rstrip()
    body = e.attr("body")
    if isinstance(body, Body):  # a loop's body, nested like a jaxpr's scan
        state = ", ".join(f"{v.name}:{v.type}" for v in (*body.state, *body.xs))
        free = ", ".join(f"{v.name}:{v.type}" for v in body.free)
        inner = indent + "    "
        line += f"\n{inner}{{ lambda {state} ; {free} ."
        line += "".join(f"\n{inner}    {format_eqn(b, inner + '    ')}" for b in body.eqns)
        line += f"\n{inner}  in ( {', '.join(map(str, body.results))} ) }}"
    return line


def format_program(p: Program) -> str:
    ins = ", ".join(
        f"{i.var.name}:{i.var.type}" + (f"={i.default}" if i.default is not None else "")
        for i in p.inputs
    )
    ins += "".join(f", {f.name}:fn({', '.join(map(str, f.params))})->{f.result}" for f in p.fns)
    ps = ", ".join(f"{q.var.name}:{q.var.type}={q.default!r}" for q in p.params)
    lines = [f"{{ lambda {ins} ; {ps} ."]
    lines += ["    " + format_eqn(e) for e in p.eqns]
    outs = ", ".join(f"{m}={a}" for m, a in p.outputs)
    lines.append(f"  in ( {outs} ) }}")
    return "\n".join(lines)


# ---- verifier ---------------------------------------------------------------------------


class IRError(AssertionError):
    """The IR broke an invariant: a compiler bug, never a user error."""


def verify(p: Program) -> Program:
    """Every var defined once before use, every op in the table, every type re-derived."""
    defined: dict[str, TensorType] = {}
    for d in p.inputs:
        defined[d.var.name] = d.var.type
    for q in p.params:
        defined[q.var.name] = q.var.type

    def need(a: Atom, where: str):
        if isinstance(a, Var):
            if a.name not in defined:
                raise IRError(f"{where}: {a.name} used before definition\n{format_program(p)}")
            if defined[a.name] != a.type:
                raise IRError(f"{where}: {a.name} has type {defined[a.name]}, used as {a.type}")

    _verify_eqns(p.eqns, defined, need)
    for _, a in p.outputs:
        need(a, "output")
    return p


def _verify_eqns(eqns, defined: dict, need) -> None:
    for e in eqns:
        line = format_eqn(e)
        op = OPS.get(e.op)
        if op is None:
            raise IRError(f"unknown op in: {line}")
        if op.nargs >= 0 and len(e.args) != op.nargs:
            raise IRError(f"{e.op} takes {op.nargs} args: {line}")
        for a in e.args:
            need(a, line)
        try:
            t = op.type_rule([a.type for a in e.args], dict(e.attrs))
        except OpTypeError as err:
            raise IRError(f"ill-typed: {line}: {err.message}") from None
        if t != e.out.type:
            raise IRError(f"type of {line} should be {t}")
        if e.out.name in defined:
            raise IRError(f"{e.out.name} defined twice: {line}")
        body = e.attr("body")
        if isinstance(body, Body):
            _verify_body(body, line, e.op != "grad")
        defined[e.out.name] = e.out.type


def _verify_body(body: Body, where: str, loop: bool = True) -> None:
    """A loop's body: closed (it reads only its state and free vars), well typed, and its
    results of the state's types; a grad's body (not a loop): one float scalar."""
    defined = {v.name: v.type for v in (*body.state, *body.xs, *body.free)}

    def need(a: Atom, line: str):
        if isinstance(a, Var) and defined.get(a.name) != a.type:
            raise IRError(f"{line}: {a.name} is not a value of the body of {where}")

    _verify_eqns(body.eqns, defined, need)
    if not loop:
        (r,) = body.results
        need(r, "body result")
        if r.type != TensorType("float", ()):
            raise IRError(f"{where}: grad's body gives {r.type}, not a float scalar")
        return
    for s, r in zip(body.state, body.results, strict=True):
        need(r, "body result")
        if r.type != s.type:
            raise IRError(f"{where}: the body gives {r.type} for the state {s.name}: {s.type}")


def _all_dims(eqns, seen: set[int]):
    for e in eqns:
        yield from e.out.type.dims
        for _, v in e.attrs:
            if isinstance(v, Body) and id(v) not in seen:
                seen.add(id(v))
                yield from _all_dims(v.eqns, seen)
            elif isinstance(v, Dim):  # size(H-k+1), a reduction's over=...
                yield v
            elif isinstance(v, tuple):  # a window's size=(k, 3): an int param's "$k"
                yield from (d for d in v if isinstance(d, Dim))


def splits(prog: Program) -> list[tuple[Dim, int, str]]:
    """Each exact division a split makes (lossdsl/types.py, step "/"): (the dim divided, k,
    by) for n / (k size(by)), checked to divide at call time; in order of first use."""
    out: dict[tuple, None] = {}
    for d in _all_dims(prog.eqns, set()):
        for k, (op, m, by) in enumerate(d.steps):
            if op == "/":
                out[(replace(d, steps=d.steps[:k], primes=0), m, by)] = None
    return list(out)


def param_dims(prog: Program) -> list[str]:
    """The int params that size a dim (split(x, k, over=N): the dim "$k"), by IR name; not
    those baked (prog.dim_values)."""
    baked = dict(prog.dim_values)
    return [q for q in sizing_params(prog.eqns) if q not in baked]


def sizing_params(eqns) -> list[str]:
    """The int params whose values size a dim of these equations ("$k"), in order of use."""
    out: dict[str, None] = {}
    for d in _all_dims(eqns, set()):
        for name in (d.name, *(by for _, _, by in d.steps)):
            if name.startswith("$"):
                out[name[1:]] = None
    return list(out)


def unit_dims(prog: Program) -> list[Dim]:
    """The helpers' *S bound to no axes (_bind_dims in lossdsl/lower/inline.py): the one
    UNIT_DIM, size 1 and shape (), that no input has."""
    for e in prog.eqns:
        attrs = [v for _, v in e.attrs]
        for d in (*e.out.type.dims, *attrs, *(x for v in attrs if isinstance(v, tuple) for x in v)):
            if isinstance(d, Dim) and d.unit:
                return [UNIT_DIM]  # every helper's *S with no axes is this one dim
    return []
