"""Differential fuzzer: random well-typed losses, an independent evaluator, every backend.

Shared by tests/test_difffuzz.py (a bounded budget, fixed seed, in CI) and scripts/difffuzz.py
(any budget, counts per failure class, minimal failing sources written to a folder).

- GENERATOR: a type-directed generator of random losses as an AST of this module's own (`E`
  nodes, `LossDef`, `Prog`), each node carrying its static type (kind, named dims), rendered to
  lossdsl source text. It covers the constructs of README.md's "The language": every function,
  primes (`x'` inside and outside reductions, `prime(x, C)`), `*S` inputs, optional inputs,
  lets, params (float/int/bool, with constraints), `use classification/regression`, masked means,
  `reduce mean|sum|none` and `reduce mean by w empty v`, comparisons and chains, `& | !`,
  gathers with index inputs / argmax / arange, onehot, eye, size, expand, diff, shift, the order
  ops (cumsum, cumprod, cummax, logcumsumexp, sort, median, quantile), declared gradients,
  helper losses (a second `loss` in the file, its dims renamed or permuted, with lets of its
  own) and imports of shipped specs.
- EVALUATOR: `evaluate()` interprets that AST with named-dim NumPy arrays, written from the
  README's language section only (NOT from backends/numpy_ref.py or lossdsl's IR). It runs in
  float64 and in x87 long double; a backend agrees when it is within tolerance of either (see
  `close`): the long-double run measures how ill-conditioned the point is, so an honest
  float64 rounding difference is never a failure, and a stabilized backend (finite where the
  naive float64 formula overflowed) matches the long-double value.
- ORACLE: every backend (numpy, torch, jax) and schedule (plain; torch chunked; linear-fused
  chunk / rows; jax rows) on extreme inputs (+-inf, NaN, +-1e300, empty and one-element
  batches, all-masked), params passed as Python numbers, NumPy scalars, 0-d arrays, backend
  tensors, or baked; gradients (torch autograd, jax.grad) against central finite differences
  of the evaluator on smooth finite points; alpha-renaming of every identifier and dim from a
  pool of risky names must give bit-identical results.

Disagreement rules: NaN vs NaN agrees; values agree within rtol 1e-9 of the long-double value
(plus 10x the evaluator's own float64-vs-long-double difference and 1e-13 of the largest
intermediate magnitude); gradients within 1e-5 of the finite differences of the long-double
run, or of the float64 one (where an intermediate overflows float64 only); renaming:
bit-identical.
"""

from __future__ import annotations

import collections
import math
import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.special

try:
    from scipy.special import erf as _erf
    from scipy.special import gammaln as _gammaln
    from scipy.special import psi as _psi
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf)
    _gammaln = _psi = None  # lgamma and digamma are then left out of the generator

# ---------------------------------------------------------------------------------------------
# Known open bug classes on main (2026-11): failures whose program/inputs carry one of these tags
# are reported as XFAIL instead of FAIL. The lead empties this dict once the fixes are merged;
# then every failure fails CI. Each tag is computed by `known_tags` from the program and inputs.
# tag: (what, failure classes it may excuse: a regex on Failure.cls)
KNOWN_BUGS: dict[str, tuple[str, str]] = {}

# ---------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True)
class E:
    """One expression node. `kind` is float|int|bool|index, `dims` a frozenset of dim names
    (primed dims end in "'"), `of` the dim an index points into."""

    op: str
    args: tuple = ()
    attrs: tuple = ()  # (key, value) pairs
    kind: str = "float"
    dims: frozenset = frozenset()
    of: str | None = None

    def a(self, key, default=None):
        return dict(self.attrs).get(key, default)


@dataclass
class Inp:
    name: str
    kind: str  # float int bool index
    dims: tuple  # declared order; "S" is the variadic *S
    of: str | None = None
    default: float | None = None  # optional input's default constant


@dataclass
class Par:
    name: str
    kind: str  # float int bool
    default: object
    lo: float | None = None  # `where name >= lo`


@dataclass
class LossDef:
    name: str
    inputs: list
    params: list
    stmts: list  # ("let", name, E) | ("use", task, (argnames), {bound: (kind, dims, of)})
    body: E
    reduce: tuple | None = None  # (mode, w: E | None, empty: float | None)


@dataclass
class Prog:
    main: LossDef
    helpers: list = field(default_factory=list)
    imports: list = field(default_factory=list)
    tags: set = field(default_factory=set)


IMPORTS = ("mse", "l1", "huber", "bce_with_logits")
USE_NAMES = ("p", "logp", "pt", "logpt", "ce", "onehot", "diff")


def prime_dim(d: str) -> str:
    return d + "'"


def base(d: str) -> str:
    return d.rstrip("'")


# ---------------------------------------------------------------------------------------------
# Rendering


class Names:
    """Identifier and dim renaming (identity by default)."""

    def __init__(self, ids=None, dims=None):
        self.ids, self.dims = ids or {}, dims or {}

    def i(self, n):
        return self.ids.get(n, n)

    def d(self, d):
        p = d.endswith("'")
        return self.dims.get(base(d), base(d)) + ("'" if p else "")


def fmt_num(v: float) -> str:
    if v == math.inf:
        return "inf"
    if v != v:
        return "nan"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def r_dims(ds, nm) -> str:
    ds = [nm.d(d) for d in ds]
    return ds[0] if len(ds) == 1 else "(" + ", ".join(ds) + ")"


def render(e: E, nm: Names) -> str:
    op, A = e.op, e.args
    R = lambda x: render(x, nm)  # noqa: E731
    if op == "num":
        v = e.a("v")
        return fmt_num(v) if v >= 0 or v != v else f"(-{fmt_num(-v)})"
    if op == "boollit":
        return "true" if e.a("v") else "false"
    if op == "ref":
        return nm.i(e.a("name")) if not e.a("fixed") else e.a("name")
    if op == "prime":
        return f"({R(A[0])})'" if A[0].op != "ref" else R(A[0]) + "'"
    if op == "primeof":
        return f"prime({R(A[0])}, {', '.join(nm.d(d) for d in e.a('dims'))})"
    if op == "neg":
        return f"(-{R(A[0])})"
    if op == "not":
        return f"(!{R(A[0])})"
    if op == "bin":
        return f"({R(A[0])} {e.a('op')} {R(A[1])})"
    if op == "chain":
        s = R(A[0])
        for o, x in zip(e.a("ops"), A[1:]):
            s += f" {o} {R(x)}"
        return f"({s})"
    if op in ("f1", "f2"):
        return f"{e.a('fn')}({', '.join(R(x) for x in A)})"
    if op == "float":
        return f"float({R(A[0])})"
    if op == "repeat":  # only as a let's value (docs/language.md, "Loops")
        return f"repeat({e.a('n')}, init={R(A[0])}) ({nm.i(e.a('state'))}) {{ {R(A[1])} }}"
    if op == "scan":  # the same; args (init, step, sequence)
        rev = "true" if e.a("reverse") else "false"
        head = f"scan({R(A[2])}, over={nm.d(e.a('over'))}, init={R(A[0])}, reverse={rev})"
        return f"{head} ({nm.i(e.a('state'))}, {nm.i(e.a('slice'))}) {{ {R(A[1])} }}"
    if op == "stop_grad":
        return f"stop_grad({R(A[0])})"
    if op == "cg":
        if e.a("form") == "custom":
            return f"custom_grad({R(A[0])}, wrt={R(A[1])}, grad={R(A[2])})"
        if e.a("form") == "st":
            return f"straight_through({R(A[0])}, {R(A[1])})"
        return f"grad_reverse({R(A[0])}, {R(A[1])})"
    if op == "where":
        return f"where({R(A[0])}, {R(A[1])}, {R(A[2])})"
    if op == "clamp":
        kw = [f"{k}={R(x)}" for k, x in zip(e.a("keys"), A[1:])]
        return f"clamp({R(A[0])}, {', '.join(kw)})"
    if op == "red" and e.a("fn") in ("median", "quantile"):
        q = f", {fmt_num(e.a('q'))}" if e.a("fn") == "quantile" else ""
        return f"{e.a('fn')}({R(A[0])}{q}, over={nm.d(e.a('over')[0])})"
    if op == "red":
        extra = f", ddof={e.a('ddof')}" if e.a("fn") == "var" else ""
        over = e.a("over")
        o = f", over={r_dims(over, nm)}" if over is not None else ""
        return f"{e.a('fn')}({R(A[0])}{o}{extra})"
    if op == "mmean":
        emp = e.a("empty")
        emp_s = (
            "" if emp is None else f", empty={fmt_num(emp) if emp >= 0 else '-' + fmt_num(-emp)}"
        )
        return f"mean({R(A[0])}, over={r_dims(e.a('over'), nm)}, mask={R(A[1])}{emp_s})"
    if op == "axis":
        if e.a("fn") == "shift":
            k, fill = e.a("eps")
            v = "inf" if np.isinf(fill) else fmt_num(abs(fill))
            return (
                f"shift({R(A[0])}, {k}, over={nm.d(e.a('over'))}, "
                f"fill={'-' if fill < 0 else ''}{v})"
            )
        if e.a("fn") == "window":
            kind, k, st, pad, sigma, kp, sp = e.a("eps")
            over = nm.d(e.a("over"))
            k = nm.i(kp) if kp else k  # a param's size: size=wk0 (docs/language.md, "Windows")
            sigma = nm.i(sp) if sp else repr(sigma)
            if kind == "blur":
                return (
                    f"blur({R(A[0])}, over={over}, sigma={sigma}, size={k}, "
                    f'padding="{pad}", stride={st})'
                )
            return f'{kind}({R(A[0])}, {k}, over={over}, stride={st}, padding="{pad}")'
        if e.a("fn") in SCANS:
            key = "descending" if e.a("fn") == "sort" else "reverse"
            flag = f", {key}=true" if e.a("eps") else ""
            return f"{e.a('fn')}({R(A[0])}, over={nm.d(e.a('over'))}{flag})"
        eps = f", eps={e.a('eps')!r}" if e.a("eps") is not None else ""
        return f"{e.a('fn')}({R(A[0])}, over={nm.d(e.a('over'))}{eps})"
    if op == "argmax":
        return f"argmax({R(A[0])}, over={nm.d(e.a('over'))})"
    if op == "gather":
        x = R(A[0])
        return f"{x}[{R(A[1])}]"
    if op == "onehot":
        return f"onehot({R(A[0])})"
    if op == "eye":
        return f"float(eye({nm.d(e.a('d'))}, {nm.d(prime_dim(e.a('d')))}))"
    if op == "size":
        return f"size({nm.d(e.a('d'))})"
    if op == "arange":
        return f"arange({nm.d(e.a('d'))})"
    if op == "expand":
        return f"expand({R(A[0])}, {', '.join(nm.d(d) for d in e.a('dims'))})"
    if op == "eigvalsh":
        return f"eigvalsh({R(A[0])}, over=({nm.d(e.a('d'))}, {nm.d(prime_dim(e.a('d')))}))"
    if op == "call":
        callee = e.a("callee")
        name = callee if callee in IMPORTS else nm.i(callee)
        args = [R(x) for x in A]
        for k, v in e.a("kw"):
            args.append(f"{k if callee in IMPORTS else nm.i(k)}={R(v)}")
        return f"{name}({', '.join(args)})"
    raise AssertionError(op)


def render_def(ld: LossDef, nm: Names, doc: str | None = None) -> str:
    ins = []
    for i in ld.inputs:
        dims = ", ".join("*" + nm.d("S") if d == "S" else nm.d(d) for d in i.dims)
        t = ("index" if i.kind == "index" else i.kind) + (f"[{dims}]" if i.dims else "")
        if i.of:
            t += f" of {nm.d(i.of)}"
        if i.default is not None:
            t += f" = {fmt_num(i.default)}"
        ins.append(f"{nm.i(i.name)}: {t}")
    lines = [f"loss {nm.i(ld.name)}({', '.join(ins)}) {{"]
    for p in ld.params:
        dv = p.default
        dv = ("true" if dv else "false") if p.kind == "bool" else fmt_num(dv)
        if dv.startswith("-"):
            dv = f"({dv})"
        w = f"   where {nm.i(p.name)} >= {fmt_num(p.lo)}" if p.lo is not None else ""
        lines.append(f"    param {nm.i(p.name)}: {p.kind} = {dv}{w}")
    for st in ld.stmts:
        if st[0] == "let":
            lines.append(f"    let {nm.i(st[1])} = {render(st[2], nm)}")
        else:
            lines.append(f"    use {st[1]}({', '.join(nm.i(a) for a in st[2])})")
    if ld.reduce is not None:
        mode, w, emp = ld.reduce
        s = f"    reduce {mode}"
        if w is not None:
            s += f" by {render(w, nm)} empty {fmt_num(emp)}"
        lines.append(s)
    lines.append(f"    {render(ld.body, nm)}")
    lines.append("}")
    return "\n".join(lines)


def render_prog(p: Prog, nm: Names | None = None) -> str:
    nm = nm or Names()
    out = []
    if p.imports:
        out.append("import " + ", ".join(p.imports))
    out += [render_def(h, nm) for h in p.helpers]
    out.append(render_def(p.main, nm))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Generator


@dataclass
class Cfg:
    max_depth: int = 4
    spatial: bool = True
    helpers: bool = True
    imports: bool = True
    uses: bool = True
    bool_consts: bool = True
    loops: bool = True


UNARY = (
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "abs",
    "sigmoid",
    "softplus",
    "logsigmoid",
    "relu",
    "erf",
    "tanh",
    "sin",
    "cos",
    "atan",
    "asin",
    "acos",
    "log2",
    "log10",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    *(("lgamma", "digamma") if _psi is not None else ()),
    "floor",
    "ceil",
    "round",
    "sign",
)
POS = ("exp", "softplus", "sigmoid")  # wrap log/sqrt arguments in these (mostly in-domain)
# arguments mostly in a function's domain: log, sqrt, lgamma, digamma (no poles) of a positive
# value, atanh of a sigmoid (in (0, 1)), acosh of 1 + softplus (> 1). Not atanh(tanh(x)) or
# acosh(cosh(x)): nearly x, an `==` or `!=` against x itself then turns on a rounding error.
IN_DOMAIN = {"log": POS, "sqrt": POS, "lgamma": POS, "digamma": POS, "atanh": ("sigmoid",)}
REDS = ("sum", "mean", "max", "min", "logsumexp", "var", "norm")
# the order ops that keep the dims (docs/language.md, "Order"): eps holds reverse= (descending=)
SCANS = ["cumsum", "cumprod", "cummax", "logcumsumexp", "sort"]
WINDOWS = ["box", "avg_pool", "max_pool", "blur"]


class Gen:
    def __init__(self, rng: random.Random, cfg: Cfg):
        self.rng, self.cfg = rng, cfg
        self.tags: set = set()

    # -- leaves ----------------------------------------------------------------------------
    def refs(self, env, kind):
        return [(n, t) for n, t in env.items() if t[0] == kind]

    def leaf(self, X: frozenset, env, ctx) -> E:
        """A leaf of exactly dims X: a ref, a primed ref, or a combination of covering leaves."""
        rng = self.rng
        cands = []
        for n, (k, ds, _of, fixed) in env.items():
            if k not in ("float", "int"):
                continue
            ds = frozenset(ds)
            if ds == X:
                cands.append(E("ref", (), (("name", n), ("fixed", fixed)), k, ds))
            pd = self.primed(ds, ctx)
            if pd is not None and pd == X and ds:
                r = E("ref", (), (("name", n), ("fixed", fixed)), k, ds)
                cands.append(E("prime", (r,), (), k, pd))
        if not X:
            cands += [self.const()] * 3
            for d in sorted(ctx["dims"]):
                if "'" not in d and d != "S":
                    cands.append(E("size", (), (("d", d),), "int"))
        if cands:
            return rng.choice(cands)
        # cover X: one dim's leaf repeated along the others (bare [B] * [C] does not line up)
        xs = sorted(X)
        d0 = "S" if "S" in X else rng.choice(xs)
        x0 = self.single(d0, env, ctx)
        rest = tuple(d for d in xs if d != d0)
        if not rest:
            return x0
        return E("expand", (x0,), (("dims", rest),), x0.kind, X)

    def single(self, d, env, ctx) -> E:
        """Exactly one dim d: sum an input that has it over its other dims, or arange."""
        bd = base(d)
        for n, (k, ds, _of, fixed) in env.items():
            if d.endswith("'") and any(q.endswith("'") for q in ds):
                continue
            if k == "float" and bd in ds:
                r = E("ref", (), (("name", n), ("fixed", fixed)), "float", frozenset(ds))
                if d.endswith("'"):
                    if (ctx["protect"] | ctx["outer"]) & frozenset(ds):
                        r = E(
                            "primeof", (r,), (("dims", (bd,)),), "float", frozenset(ds) - {bd} | {d}
                        )
                        self.tags.add("explicit_prime")
                    else:
                        r = E("prime", (r,), (), "float", frozenset(prime_dim(x) for x in ds))
                rest = tuple(sorted(r.dims - {d}))
                if not rest:
                    return r
                return E("red", (r,), (("fn", "sum"), ("over", rest)), "float", frozenset({d}))
        # no float input has it here (only masks or ids over B): a constant along d, as
        # c + 0 * float(arange(d)) (docs/language.md: expand needs an operand with dims)
        k = E("float", (E("arange", (), (("d", d),), "index", frozenset({d}), d),), (), "float",
              frozenset({d}))  # fmt: skip
        zero = E("bin", (E("num", (), (("v", 0.0),)), k), (("op", "*"),), "float", frozenset({d}))
        return E("bin", (self.const(), zero), (("op", "+"),), "float", frozenset({d}))

    def const(self) -> E:
        v = self.rng.choice([0.0, 1.0, 2.0, 0.5, 3.0, -1.0, 1e-3, 1e300, math.inf])
        return E("num", (), (("v", v),), "float")

    def primed(self, ds: frozenset, ctx):
        """Static dims of x' in this context, or None where a prime is not generated."""
        if any(d.endswith("'") for d in ds) or (ds & ctx["outer"]):
            return None
        if "S" in ds or ds <= ctx["protect"]:
            # README, "Primes": summed dims keep their names, so a prime of only summed dims
            # would change nothing; the compiler rejects it (prime them explicitly)
            return None
        return frozenset(d if d in ctx["protect"] else prime_dim(d) for d in ds)

    def repeat(self, init: E, state: str, env, ctx) -> E:
        """`repeat(n, init=init) (state) { step }`: a step of the state's dims that reads the
        state (and anything else in scope), n in 0..3 (passes/loops.py runs every rule inside
        the body and hoists what does not read the state)."""
        rng = self.rng
        init = _as_float(init)
        step = self.step(init, state, dict(env), ctx)
        self.tags.add("repeat")
        attrs = (("n", rng.choice([0, 1, 2, 3])), ("state", state))
        return E("repeat", (init, step), attrs, "float", init.dims)

    def scan(self, init: E, state: str, slc: str, env, ctx, dims) -> E:
        """`scan(seq, over=d, init=init) (state, slc) { step }` along a dim d that the state
        lacks: the states after every step, stacked ([d, ...the state's dims])."""
        rng = self.rng
        free = sorted(x for x in dims if x not in init.dims and x != "S" and "'" not in x)
        if not free:
            return init
        d = rng.choice(free)
        Q = frozenset({d} | {x for x in sorted(dims) if x != "S" and rng.random() < 0.3})
        seq, init = _as_float(self.num(Q, env, ctx, rng.randint(0, 2))), _as_float(init)
        inner = dict(env)
        inner[slc] = ("float", tuple(sorted(Q - {d})), None, False)
        step = self.step(init, state, inner, ctx)
        self.tags.add("scan")
        attrs = (("over", d), ("reverse", rng.random() < 0.3), ("state", state), ("slice", slc))
        return E("scan", (init, step, seq), attrs, "float", init.dims | {d})

    def step(self, init: E, state: str, inner: dict, ctx) -> E:
        """A loop block's result: of the state's dims, reading the state (bound in `inner`,
        beside whatever else the block may read)."""
        inner[state] = ("float", tuple(sorted(init.dims)), None, False)
        step = self.num(init.dims, inner, ctx, self.rng.randint(1, 3))
        ref = E("ref", (), (("name", state), ("fixed", False)), "float", init.dims)
        return _as_float(self.binop(ref, step, self.rng.choice(["+", "*", "-"])))

    def binop(self, a: E, b: E, op=None) -> E:
        op = op or self.rng.choice(["+", "-", "*", "/", "*"])
        k = "float" if op == "/" or "float" in (a.kind, b.kind) else "int"
        return E("bin", (a, b), (("op", op),), k, a.dims | b.dims)

    # -- expressions -----------------------------------------------------------------------
    def split(self, X: frozenset):
        """Two dim sets that line up (README: broadcasting by name): one holds the other, or
        they differ only by primed twins (`z * z'`)."""
        rng = self.rng
        pairs = sorted(d for d in X if not d.endswith("'") and prime_dim(d) in X)
        if pairs and rng.random() < 0.35:
            P = [d for d in pairs if rng.random() < 0.7] or pairs[:1]
            return X - {prime_dim(d) for d in P}, X - set(P)
        sub = frozenset(d for d in sorted(X) if rng.random() < 0.5)
        return (X, sub) if rng.random() < 0.5 else (sub, X)

    def num(self, X: frozenset, env, ctx, depth: int) -> E:
        """A numeric (float or int) expression of exactly dims X."""
        e = self._num(frozenset(X), env, ctx, depth)
        assert e.dims == X, (e.op, e.dims, X)
        return e

    def _num(self, X: frozenset, env, ctx, depth: int) -> E:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.18:
            return self.leaf(X, env, ctx)
        d1 = depth - 1
        choice = rng.choices(
            [
                "un",
                "bin",
                "pow",
                "where",
                "clamp",
                "mm",
                "red",
                "mmean",
                "axis",
                "gather",
                "onehot",
                "expand",
                "float",
                "sg",
                "xlogy",
                "diff",
                "window",
                "eye",
                "arange",
                "count",
                "primeof",
                "primelet",
                "call",
                "eig",
                "cg",
            ],
            [
                8,
                10,
                2,
                3,
                1.5,
                1.5,
                6,
                2,
                2,
                2.5,
                1,
                1,
                1.5,
                1,
                1,
                1,
                1,
                0.7,
                0.7,
                1,
                0.7,
                1.5,
                2.5,
                0.3,
                1,
            ],
        )[0]
        dims_all = ctx["dims"]
        if choice == "un":
            fn = rng.choice(UNARY)
            x = self.num(X, env, ctx, d1)
            if fn in IN_DOMAIN and rng.random() < 0.7:
                x = E("f1", (x,), (("fn", rng.choice(IN_DOMAIN[fn])),), "float", x.dims)
            elif fn == "acosh" and rng.random() < 0.7:
                x = E("f1", (x,), (("fn", "softplus"),), "float", x.dims)
                x = E("bin", (E("num", (), (("v", 1.0),)), x), (("op", "+"),), "float", x.dims)
            if rng.random() < 0.15:
                return E("neg", (x,), (), x.kind, x.dims)
            return E("f1", (x,), (("fn", fn),), "float", X)
        if choice == "bin":
            a, b = self.split(X)
            return self.binop(self.num(a, env, ctx, d1), self.num(b, env, ctx, d1))
        if choice == "pow":
            x = self.num(X, env, ctx, d1)
            if rng.random() < 0.5:
                x = E("f1", (x,), (("fn", "abs"),), "float", X)
            ps = [n for n, t in env.items() if t[0] in ("float", "int") and not t[1]]
            if ps and rng.random() < 0.4:
                p = rng.choice(ps)
                y = E("ref", (), (("name", p), ("fixed", env[p][3])), env[p][0])
            else:
                y = E("num", (), (("v", rng.choice([2.0, 3.0, 0.5, 1.5, 0.0])),))
            if rng.random() < 0.2:
                return E("f2", (x, y), (("fn", "pow"),), "float", X)
            return E("bin", (x, y), (("op", "^"),), "float", X)
        if choice == "where":
            a, b = self.split(X)
            c = frozenset(d for d in sorted(a & b) if rng.random() < 0.5)
            return E(
                "where",
                (
                    self.boolean(c, env, ctx, d1, exact=True),
                    self.num(a, env, ctx, d1),
                    self.num(b, env, ctx, d1),
                ),
                (),
                "float",
                X,
            )
        if choice == "clamp":
            x = self.num(X, env, ctx, d1)
            keys = rng.choice([("min",), ("max",), ("min", "max")])
            lo = E("num", (), (("v", rng.choice([-1.0, 0.0, 0.25])),))
            hi = E("num", (), (("v", rng.choice([1.0, 2.0])),))
            bounds = {"min": lo, "max": hi}
            return E("clamp", (x, *(bounds[k] for k in keys)), (("keys", keys),), "float", X)
        if choice == "mm":
            a, b = self.split(X)
            fn = rng.choice(["max", "min"])
            return E(
                "f2",
                (self.num(a, env, ctx, d1), self.num(b, env, ctx, d1)),
                (("fn", fn),),
                "float",
                X,
            )
        if choice in ("red", "mmean", "count"):
            free = sorted(
                d for d in dims_all if d not in X and d != "S" or d == "S" and "S" not in X
            )
            free = [d for d in free if d not in X]
            if not free:
                return self.num(X, env, ctx, d1)
            over = tuple(rng.sample(free, min(len(free), rng.choice([1, 1, 2]))))
            if "S" in over and len(over) > 1:
                over = ("S",)
            ictx = dict(ctx, protect=frozenset(over), outer=ctx["outer"] | ctx["protect"])
            Y = X | frozenset(over)
            if choice == "count":
                m = self.boolean(Y, env, ictx, d1, exact=True)
                return E("red", (m,), (("fn", "count"), ("over", over)), "int", X)
            x = self.num(Y, env, ictx, d1)
            if choice == "mmean":
                mY = frozenset(
                    d
                    for d in sorted(Y)
                    if d in over and rng.random() < 0.8 or d not in over and rng.random() < 0.5
                )
                m = self.boolean(mY, env, ctx, d1, exact=True)  # mask=: primes not protected
                if not frozenset(over) <= m.dims:
                    self.tags.add("mask_lacks_reduced_dim")
                emp = rng.choice([None, 0.0, 1.0, -2.0])
                return E("mmean", (x, m), (("over", over), ("empty", emp)), "float", X)
            fn = rng.choice(REDS)
            if len(over) == 1 and over[0] != "S" and rng.random() < 0.2:
                fn = rng.choice(["median", "quantile"])  # (over one named dim)
                self.tags.add(fn)
                q = 0.5 if fn == "median" else rng.choice([0.0, 0.25, 0.5, 0.9, 1.0])
                return E("red", (x,), (("fn", fn), ("over", over), ("q", q)), "float", X)
            # no over= (every dim) keeps no dim from a prime (docs/language.md, "Primes"): only
            # for an operand without x' typed with `over` protected (once `y'` typed [B', C]
            # under over=(C, B') became [B', C'] under no over=, a DimMismatch)
            if not X and rng.random() < 0.2 and not _has_op(x, "prime"):
                over = None  # all dims
            attrs = [("fn", fn), ("over", over)]
            if fn == "var":
                attrs.append(("ddof", rng.choice([0, 1])))
            return E("red", (x,), tuple(attrs), "float", X)
        if choice == "axis":
            cands = [d for d in X if d != "S" or True]
            if not cands:
                return self.num(X, env, ctx, d1)
            d = rng.choice(sorted(cands))
            named = d != "S"  # shift() and the order ops need a named axis
            fn = rng.choice(["softmax", "log_softmax", "normalize"] + (["shift"] + SCANS) * named)
            eps = rng.choice([None, 1e-12, 0.5]) if fn == "normalize" else None
            if fn in SCANS:  # reverse= for the scans, descending= for sort
                eps = rng.random() < 0.5
                self.tags.add(fn)
            x = self.num(X, env, ctx, d1)
            if fn == "shift":  # by any amount (past the dim's size too), an edge of any value
                k, fill = rng.randint(-3, 3), rng.choice([0.0, 1.5, -np.inf, np.inf])
                return E("axis", (x,), (("fn", fn), ("over", d), ("eps", (k, fill))), "float", X)
            return E("axis", (x,), (("fn", fn), ("over", d), ("eps", eps)), "float", X)
        if choice == "gather":
            idx = self.index(X, env, ctx, d1)
            if idx is None:
                return self.num(X, env, ctx, d1)
            c = idx.of
            if c in X:  # only w[arange(C)]-like: the index supplies C
                if idx.dims != X:
                    return self.num(X, env, ctx, d1)
                rest = frozenset()
            elif idx.dims == X and rng.random() < 0.4:
                rest = frozenset(d for d in sorted(X) if rng.random() < 0.5)
            else:
                rest = X
            x = self.num(rest | {c}, env, ctx, d1)
            return E("gather", (x, idx), (), x.kind, X)
        if choice == "onehot":
            idx = self.index(X, env, ctx, d1)
            if idx is None or idx.of not in X or idx.of in idx.dims or (idx.dims | {idx.of}) != X:
                return self.num(X, env, ctx, d1)
            return E("onehot", (idx,), (), "float", X)
        if choice == "expand":
            ds = [d for d in X if "'" not in d and d != "S"]
            if not ds or len(X) < 2:
                return self.num(X, env, ctx, d1)
            d = rng.choice(sorted(ds))
            return E("expand", (self.num(X - {d}, env, ctx, d1),), (("dims", (d,)),), "float", X)
        if choice == "float":
            return E("float", (self.boolean(X, env, ctx, d1, exact=True),), (), "float", X)
        if choice == "sg":
            return E("stop_grad", (self.num(X, env, ctx, d1),), (), "float", X)
        if choice == "cg":  # declared gradients: the value's dims X, the others within X
            form = rng.choice(["custom", "st", "rev"])
            y = self.num(X, env, ctx, d1)
            xs = [
                self.num(self.split(X)[1], env, ctx, d1)
                for _ in range(2 if form == "custom" else 1)
            ]
            return E("cg", (y, *xs), (("form", form),), "float", X)
        if choice == "xlogy":
            a, b = self.split(X)
            y = E("f1", (self.num(b, env, ctx, d1),), (("fn", rng.choice(POS)),), "float", b)
            r = rng.random()
            fn = "atan2" if r < 0.3 else ("logaddexp" if r < 0.45 else "xlogy")
            if 0.45 <= r < 0.55:  # log_ive(v, x): an order v >= 0 and x >= 0 (docs/language.md)
                v = E("f1", (self.num(a, env, ctx, d1),), (("fn", rng.choice(POS)),), "float", a)
                return E("f2", (v, y), (("fn", "log_ive"),), "float", X)
            return E("f2", (self.num(a, env, ctx, d1), y), (("fn", fn),), "float", X)
        if choice == "diff":
            along = self.along(X, env, ctx, d1)
            if along is None:
                return self.num(X, env, ctx, d1)
            d, x = along
            df = E("axis", (x,), (("fn", "diff"), ("over", d)), "float", X | {d + "~1"})
            if rng.random() < 0.5:
                df = E("f1", (df,), (("fn", "abs"),), "float", df.dims)
            # a sum: diff leaves size(d) - 1 entries, none when d has size 1 (often drawn), and
            # a mean/max over no entries is an InputError (README, "Edge cases")
            return E("red", (df,), (("fn", "sum"), ("over", (d,))), "float", X)
        if choice == "window":
            kind = rng.choice(WINDOWS)
            k, st = rng.choice([1, 2, 3]), rng.choice([1, 1, 2])
            pad = rng.choice(["valid", "same", "reflect"])
            sigma = rng.choice([0.5, 1.5]) if kind == "blur" else None
            self.tags.add(kind)
            # the size (and blur's sigma) from a param of the loss: its value drawn per call
            # (_param_value), the window's dims sized by it (main loss only: helpers have
            # their own params)
            kp = sp = None
            main = ctx["inputs"] is ctx["prog"].main.inputs
            if main and rng.random() < 0.3:
                kp = f"wk{len(ctx['prog'].main.params)}"
                ctx["prog"].main.params.append(Par(kp, "int", k, 1))
                self.tags.add("window_param_size")
            if main and kind == "blur" and rng.random() < 0.3:
                sp = f"ws{len(ctx['prog'].main.params)}"
                ctx["prog"].main.params.append(Par(sp, "float", sigma, 0.25))
                self.tags.add("blur_param_sigma")
            keep = [d for d in X if "'" not in d and d != "S"]
            if keep and rng.random() < 0.4:  # stride 1, "same": the dims stay
                d = rng.choice(sorted(keep))
                x = self.num(X, env, ctx, d1)
                w = (kind, k, 1, "same", sigma, kp, sp)
                return E("axis", (x,), (("fn", "window"), ("over", d), ("eps", w)), "float", X)
            along = self.along(X, env, ctx, d1)
            if along is None:
                return self.num(X, env, ctx, d1)
            d, x = along
            w = (kind, k, st, pad, sigma, kp, sp)
            # (stride 1, "same": the window's dim is d itself; otherwise a derived dim of d)
            wd = X | {d} if (st, pad) == (1, "same") else X | {d + "~1"}
            win = E("axis", (x,), (("fn", "window"), ("over", d), ("eps", w)), "float", wd)
            return E("red", (win,), (("fn", "sum"), ("over", (d,))), "float", X)
        if choice == "eye":
            pairs = [d for d in X if "'" not in d and prime_dim(d) in X]
            if not pairs:
                return self.num(X, env, ctx, d1)
            d = rng.choice(sorted(pairs))
            rest = X - {d, prime_dim(d)}
            e = E("eye", (), (("d", d),), "float", frozenset({d, prime_dim(d)}))
            return self.binop(e, self.num(X, env, ctx, d1), "*") if rest else e
        if choice == "arange":
            ds = [d for d in X if "'" not in d and d != "S"]
            if not ds:
                return self.num(X, env, ctx, d1)
            d = rng.choice(sorted(ds))
            a = E(
                "float",
                (E("arange", (), (("d", d),), "index", frozenset({d}), d),),
                (),
                "float",
                frozenset({d}),
            )
            rest = X - {d}
            return self.binop(a, self.num(X, env, ctx, d1)) if rest else a
        if choice == "primeof":
            # prime(x, C) of an expression: only the listed dims get primed
            ds = [d for d in X if d.endswith("'") and base(d) not in X and base(d) != "S"]
            if not ds or ctx["outer"] & {base(ds[0])}:
                return self.num(X, env, ctx, d1)
            d = rng.choice(sorted(ds))
            inner = self.num(X - {d} | {base(d)}, env, ctx, d1)
            return E("primeof", (inner,), (("dims", (base(d),)),), inner.kind, X)
        if choice == "primelet":
            lets = [n for n, t in env.items() if t[0] == "float" and not t[3] and n.startswith("a")]
            for n in lets:
                pd = self.primed(frozenset(env[n][1]), ctx)
                if pd is not None and pd == X and env[n][1]:
                    r = E("ref", (), (("name", n), ("fixed", False)), "float", frozenset(env[n][1]))
                    return E("prime", (r,), (), "float", X)
            return self.num(X, env, ctx, d1)
        if choice == "call":
            return self.call(X, env, ctx, d1)
        if choice == "eig":
            ds = [d for d in X if "'" not in d and d != "S" and prime_dim(d) not in X]
            if not ds or ctx["protect"] or ctx["outer"]:
                return self.num(X, env, ctx, d1)
            d = rng.choice(sorted(ds))
            # a symmetric matrix over (d, d'): sum over another dim of f * f'
            others = sorted(
                o for o in dims_all if "'" not in o and o != d and o != "S" and o not in X
            )
            if not others:
                return self.num(X, env, ctx, d1)
            o = rng.choice(others)
            ictx = dict(ctx, protect=frozenset({o}))
            f = self.leaf(frozenset({d, o}), env, ictx)
            if f.op != "ref":
                return self.num(X, env, ctx, d1)
            fp = E("prime", (f,), (), "float", frozenset({prime_dim(d), o}))
            gram = E(
                "red",
                (self.binop(f, fp, "*"),),
                (("fn", "sum"), ("over", (o,))),
                "float",
                frozenset({d, prime_dim(d)}),
            )
            ev = E("eigvalsh", (gram,), (("d", d),), "float", frozenset({d}))
            rest = X - {d}
            return self.binop(ev, self.num(X, env, ctx, d1)) if rest else ev
        raise AssertionError(choice)

    def index(self, X, env, ctx, depth):
        """An index expression whose dims are a subset of X (or None)."""
        rng = self.rng
        opts = []
        for n, (k, ds, of, fixed) in env.items():
            if k == "index" and frozenset(ds) <= X:
                opts.append(
                    E("ref", (), (("name", n), ("fixed", fixed)), "index", frozenset(ds), of)
                )
            pd = self.primed(frozenset(ds), ctx) if k == "index" else None
            if pd is not None and pd <= X and ds:
                r = E("ref", (), (("name", n), ("fixed", fixed)), "index", frozenset(ds), of)
                opts.append(E("prime", (r,), (), "index", pd, of))
        for d in ("C", "D"):
            if d in X and d in ctx["dims"]:
                opts.append(E("arange", (), (("d", d),), "index", frozenset({d}), d))
        if depth > 0:
            for d in ("C", "D"):
                if d in ctx["dims"] and d not in X and rng.random() < 0.3:
                    Y = frozenset(x for x in sorted(X) if rng.random() < 0.5 and x != "S")
                    if "B" in X:
                        Y |= {"B"}
                    x = self.num(Y | {d}, env, ctx, depth - 1)
                    opts.append(E("argmax", (x,), (("over", d),), "index", Y, d))
        if not opts:
            return None
        return rng.choice(opts)

    def boolean(self, X, env, ctx, depth, exact=False) -> E:
        """A bool mask with dims a subset of X (exactly X when `exact`)."""
        rng = self.rng
        if not exact:
            X = frozenset(d for d in sorted(X) if rng.random() < 0.8)
            exact = True
        c = rng.choices(
            ["cmp", "chain", "and", "not", "ref", "lit", "idx"], [6, 1, 2, 1, 2, 0.5, 1]
        )[0]
        if depth <= 0 and c in ("and", "not"):
            c = "cmp"
        if c == "ref":
            ms = [
                n
                for n, t in env.items()
                if t[0] == "bool" and (frozenset(t[1]) == X if exact else frozenset(t[1]) <= X)
            ]
            if ms:
                n = rng.choice(ms)
                if n.startswith("p"):  # a bool param: a folded constant when baked
                    self.tags.add("bool_const")
                return E(
                    "ref", (), (("name", n), ("fixed", env[n][3])), "bool", frozenset(env[n][1])
                )
            c = "cmp"
        if c == "lit" and (not exact or not X) and self.cfg.bool_consts:
            self.tags.add("bool_const")
            return E("boollit", (), (("v", rng.random() < 0.5),), "bool")
        if c == "idx":
            a = self.index(X, env, ctx, 0)
            if a is not None and (not exact or a.dims == X):
                ps = [n for n, t in env.items() if t[0] == "int" and not t[1]]
                if rng.random() < 0.5 and ps:
                    p = rng.choice(ps)
                    b = E("ref", (), (("name", p), ("fixed", False)), "int")
                else:
                    b = E("num", (), (("v", float(rng.randrange(3))),))
                op = rng.choice(["==", "!="])
                return E("bin", (a, b), (("op", op),), "bool", a.dims)
            c = "cmp"
        if c == "and":
            a, b = self.split(X) if exact else (X, X)
            op = rng.choice(["&", "|"])
            return E(
                "bin",
                (
                    self.boolean(a, env, ctx, depth - 1, exact),
                    self.boolean(b, env, ctx, depth - 1, exact),
                ),
                (("op", op),),
                "bool",
                (a | b) if exact else frozenset(),
            )
        if c == "not":
            x = self.boolean(X, env, ctx, depth - 1, exact)
            return E("not", (x,), (), "bool", x.dims)
        if c == "chain":
            x = self.num(X, env, ctx, max(depth - 1, 0))
            lo = E("num", (), (("v", -0.5),))
            hi = E("num", (), (("v", 1.0),))
            return E("chain", (lo, x, hi), (("ops", ("<=", "<")),), "bool", X)
        a, b = self.split(X)
        op = rng.choice(["<", "<=", ">", ">=", "==", "!="])
        x = self.num(a, env, ctx, max(depth - 1, 0))
        y = self.num(b, env, ctx, max(depth - 1, 0)) if b or rng.random() < 0.5 else self.const()
        return E("bin", (x, y), (("op", op),), "bool", x.dims | y.dims)

    def along(self, X, env, ctx, depth):
        """(d, x): a named dim d outside X (never the variadic *S: diff and windows need a
        named axis) and an operand of dims X + d, d protected from primes (the caller sums d
        out); None where there is no such dim."""
        free = sorted(d for d in ctx["dims"] if d not in X and "'" not in d and d != "S")
        if not free:
            return None
        d = self.rng.choice(free)
        ictx = dict(ctx, protect=frozenset({d}), outer=ctx["outer"] | ctx["protect"])
        return d, self.num(X | {d}, env, ictx, depth)

    def call(self, X, env, ctx, depth) -> E:
        """A helper loss or an imported spec, on inputs of exactly dims X (in declared order)."""
        rng = self.rng
        ins = ctx["inputs"]
        fl = [
            i
            for i in ins
            if i.kind == "float"
            and frozenset(i.dims) == X
            and i.default is None
            and "S" not in i.dims
        ]
        if not fl or ctx["outer"] or ctx["protect"]:
            return self.num(X, env, ctx, depth)
        a = rng.choice(fl)
        b = rng.choice(fl)
        ra = E("ref", (), (("name", a.name), ("fixed", False)), "float", X)
        rb = E("ref", (), (("name", b.name), ("fixed", False)), "float", X)
        prog = ctx["prog"]
        if self.cfg.imports and rng.random() < 0.4 and X:
            imp = rng.choice(IMPORTS)
            if imp == "bce_with_logits" and len(a.dims) != 2:
                imp = "mse"
            if imp not in prog.imports:
                prog.imports.append(imp)
            kw = ()
            if imp == "huber" and rng.random() < 0.5:
                kw = (("delta", E("num", (), (("v", 0.5),))),)
            if imp == "bce_with_logits":
                self.tags.add("softplus")
            return E("call", (ra, rb), (("callee", imp), ("kw", kw), ("sigma", ())), "float", X)
        if not self.cfg.helpers or len(prog.helpers) >= 2:
            return self.num(X, env, ctx, depth)
        # helper: dims renamed by sigma (identity, fresh names, or a permutation)
        decl = list(a.dims)
        mode = rng.choice(["same", "fresh", "perm"])
        if mode == "fresh":
            sig = {d: f"Q{j}" for j, d in enumerate(decl)}
        elif mode == "perm" and len(decl) >= 2:
            sig = dict(zip(decl, decl[1:] + decl[:1]))
            self.tags.add("helper_permuted_dims")
        else:
            sig = {d: d for d in decl}
        hd = tuple(sig[d] for d in decl)
        hname = f"h{len(prog.helpers)}"
        hin = [Inp("ha", "float", hd), Inp("hb", "float", hd)]
        hpar = [Par("hq", "float", 0.5)]
        henv = {
            "ha": ("float", hd, None, False),
            "hb": ("float", hd, None, False),
            "hq": ("float", (), None, False),
        }
        # a primed input dim (pw: float[B, B']) has no twin of its own: B'' is no dim
        hdims = set(hd) | {prime_dim(d) for d in hd if not d.endswith("'")}
        hctx = dict(
            dims=frozenset(hdims), protect=frozenset(), outer=frozenset(), inputs=hin, prog=prog
        )
        sub = Gen(rng, replace(self.cfg, helpers=False))
        out = frozenset(d for d in hd if rng.random() < 0.7)
        # lets inside the helper, named like the caller's (a0, a1: another scope), and a body
        # that may be just a let (`let a = x * 2; a`, a helper whose result the lowering renames)
        hstmts = []
        for j in range(rng.choice([0, 0, 1, 2])):
            le = sub.num(frozenset(d for d in hd if rng.random() < 0.5), henv, hctx, 2)
            hstmts.append(("let", f"a{j}", le))
            henv[f"a{j}"] = (le.kind, tuple(sorted(le.dims)), None, False)
        last = hstmts[-1][2] if hstmts else None
        if last is not None and last.kind == "float" and last.dims == out and rng.random() < 0.5:
            hbody = E("ref", (), (("name", hstmts[-1][1]), ("fixed", False)), "float", out)
            self.tags.add("helper_returns_a_let")
        else:
            hbody = sub.num(out, henv, hctx, 2)
        self.tags |= sub.tags
        prog.helpers.append(
            LossDef(hname, hin, hpar, hstmts, hbody, rng.choice([None, ("sum", None, None)]))
        )
        inv = {v: k for k, v in sig.items()}
        rdims = frozenset(inv[d] for d in out)
        kw = ()
        if rng.random() < 0.6:
            pv = [n for n, t in env.items() if t[0] == "float" and not t[1] and n.startswith("pa")]
            v = (
                E("ref", (), (("name", pv[0]), ("fixed", False)), "float")
                if pv and rng.random() < 0.5
                else E("num", (), (("v", rng.choice([2.0, 0.25])),))
            )
            kw = (("hq", v),)
        call = E(
            "call",
            (ra, rb),
            (("callee", hname), ("kw", kw), ("sigma", tuple(sig.items()))),
            "float",
            rdims,
        )
        rest = X - rdims
        return self.binop(call, self.num(X, env, ctx, depth)) if rest else call


def _compares_declared_gradient(prog) -> bool:
    """Whether a comparison reads a declared gradient's value (directly or through lets)."""

    def has_cg(e, lets) -> bool:
        if e.op == "ref" and e.a("name") in lets:
            return True
        return e.op == "cg" or any(isinstance(a, E) and has_cg(a, lets) for a in e.args)

    def walk(e, lets) -> bool:
        cmp = e.op == "chain" or e.op == "bin" and e.a("op") in CMP
        if cmp and any(isinstance(a, E) and has_cg(a, lets) for a in e.args):
            return True
        return any(isinstance(a, E) and walk(a, lets) for a in e.args)

    for ld in [prog.main, *prog.helpers]:
        lets: set = set()
        exprs = [ld.body] + ([ld.reduce[1]] if ld.reduce and ld.reduce[1] is not None else [])
        for st in ld.stmts:
            if st[0] == "let":
                exprs.append(st[2])
                if has_cg(st[2], lets):
                    lets.add(st[1])
        if any(walk(x, lets) for x in exprs):
            return True
    return False


def _has_op(e: E, op: str) -> bool:
    return e.op == op or any(isinstance(a, E) and _has_op(a, op) for a in e.args)


def _as_float(e: E) -> E:
    return e if e.kind == "float" else E("float", (e,), (), "float", e.dims)


def gen_prog(rng: random.Random, cfg: Cfg | None = None) -> Prog:
    """A random well-typed program over the dims B (batch), C, D and optionally *S."""
    cfg = cfg or Cfg()
    g = Gen(rng, cfg)
    spatial = cfg.spatial and rng.random() < 0.25
    ins = [Inp("x", "float", ("B", "C"))]
    pool = [
        Inp("y", "float", ("B", "C")),
        Inp("z", "float", ("B", "D")),
        Inp("v", "float", ("B",)),
        Inp("u", "float", ("D",)),
        Inp("t", "index", ("B",), "C"),
        Inp("m", "bool", ("B", "C")),
        Inp("mb", "bool", ("B",)),
        Inp("s", "float", ()),
    ]
    for i in pool:
        if rng.random() < 0.6 or i.name in ("v",):
            ins.append(i)
    if not any(i.dims == ("D",) for i in ins) and any("D" in i.dims for i in ins):
        ins.append(Inp("u", "float", ("D",)))
    if spatial:
        ins.append(Inp("g", "float", ("B", "C", "S")))
    w = Inp("w", "float", ("C",), default=rng.choice([None, 1.0, 0.5]))
    ins.append(w)
    if rng.random() < 0.3:
        ins.append(Inp("pw", "float", ("B", "B'")))
    rng.shuffle(ins)  # declared order matters for reduction="none"; x stays first (chunked)
    ins.sort(key=lambda i: (i.name != "x", i.default is not None))
    params = []
    if rng.random() < 0.7:
        params.append(Par("pa", "float", rng.choice([0.5, 2.0, 0.0]), rng.choice([None, 0.0])))
    if rng.random() < 0.5:
        params.append(Par("pk", "int", rng.choice([0, 1, 2])))
    if rng.random() < 0.5:
        params.append(Par("pf", "bool", rng.random() < 0.5))
    env = {i.name: (i.kind, i.dims, i.of, False) for i in ins}
    env.update({p.name: (p.kind, (), None, False) for p in params})
    dims = set()
    for i in ins:
        dims |= set(i.dims)
    dims |= {prime_dim(d) for d in dims if d != "S" and "'" not in d}
    prog = Prog(LossDef("lf", ins, params, [], None))
    ctx = dict(dims=frozenset(dims), protect=frozenset(), outer=frozenset(), inputs=ins, prog=prog)
    stmts = []
    if cfg.uses and rng.random() < 0.2 and any(i.name == "t" for i in ins):
        stmts.append(("use", "classification", ("x", "t")))
        for n, ds in (
            ("p", ("B", "C")),
            ("logp", ("B", "C")),
            ("pt", ("B",)),
            ("logpt", ("B",)),
            ("ce", ("B",)),
            ("onehot", ("B", "C")),
        ):
            env[n] = ("float", ds, None, True)
    elif cfg.uses and rng.random() < 0.15 and any(i.name == "y" for i in ins):
        stmts.append(("use", "regression", ("x", "y")))
        env["diff"] = ("float", ("B", "C"), None, True)
    for j in range(rng.choice([0, 0, 1, 2, 3])):
        Y = frozenset(d for d in sorted(dims) if rng.random() < 0.35)
        e = g.num(Y, env, ctx, rng.randint(1, 3))
        if cfg.loops and rng.random() < 0.3:
            e = g.repeat(e, f"s{j}", env, ctx)
        elif cfg.loops and rng.random() < 0.2:
            e = g.scan(e, f"s{j}", f"q{j}", env, ctx, dims)
        stmts.append(("let", f"a{j}", e))
        env[f"a{j}"] = (e.kind, tuple(sorted(e.dims)), None, False)
    loss_dims = frozenset(d for d in sorted(dims) if "'" not in d and rng.random() < 0.5)
    body = g.num(loss_dims, env, ctx, cfg.max_depth)
    if body.kind != "float":
        body = E("float", (body,), (), "float", body.dims)
    for st in stmts:  # a loop the loss does not read is dropped unrun: read most of them
        if st[0] == "let" and st[2].op in ("repeat", "scan") and rng.random() < 0.8:
            r = E("ref", (), (("name", st[1]), ("fixed", False)), "float", st[2].dims)
            extra = tuple(sorted(r.dims - loss_dims))
            if extra:
                r = E("red", (r,), (("fn", "sum"), ("over", extra)), "float", r.dims - set(extra))
            miss = tuple(sorted(loss_dims - r.dims))
            if "S" in miss:
                continue
            if miss and r.dims:  # (a scalar broadcasts as it is)
                r = E("expand", (r,), (("dims", miss),), "float", loss_dims)
            body = E("bin", (body, r), (("op", "+"),), "float", loss_dims)
    red = None
    r = rng.random()
    if r < 0.45:
        red = (rng.choice(["mean", "sum", "none"]), None, None)
    elif r < 0.65:
        wd = loss_dims  # the checker requires the weights' dims to be the loss's
        wx = (
            g.num(wd, env, ctx, 1) if rng.random() < 0.5 else g.boolean(wd, env, ctx, 1, exact=True)
        )
        if wx.kind == "bool":
            wx = E("float", (wx,), (), "float", wx.dims)
        red = ("mean", wx, rng.choice([0.0, 1.0, -1.0]))
    prog.main.stmts, prog.main.body, prog.main.reduce = stmts, body, red
    prog.tags = g.tags
    return prog


# ---------------------------------------------------------------------------------------------
# Evaluator: named-dim arrays, semantics from README.md's language section


class NA:
    """A named-dim array: data (float, int64 or bool) with one dim name per axis."""

    __slots__ = (
        "a",
        "dims",
        "of",
        "count",
        "exp_of",
        "sig_of",
        "recount",
        "zero_inf",
        "inexact",
        "mask",
    )

    def __init__(self, a, dims, of=None, count=False):
        self.a, self.dims, self.of = np.asarray(a), tuple(dims), of
        self.exp_of = None  # exp(x): x, for log(exp(x)) = x (docs/language.md, stability)
        self.sig_of = None  # sigmoid(x): x, for log(sigmoid(x)) = -softplus(-x) (the same)
        # a product that made a NaN of 0 * inf: summed, a factor constant along the sum may
        # leave it first (README, "Infinite terms"), giving +-inf instead of the NaN
        self.zero_inf = False
        # computed by an op whose last bit differs between frameworks (see _inexact)
        self.inexact = False
        self.mask = None  # float(c): c (a product by it may be where(c, x, 0): Ev.binop)
        # a count of dim sizes: a scalar made only of size(..) and literals (README, "Edge
        # cases": one that is 0 where it divides, or <= 0 where it is logged, is too small)
        self.count = count
        # a count's value at other dim sizes (sizes -> NA): the size probes of the policy
        self.recount = None
        assert self.a.ndim == len(self.dims), (self.a.shape, dims)


def align(x: NA, dims: tuple) -> np.ndarray:
    perm = [x.dims.index(d) for d in dims if d in x.dims]
    a = np.transpose(x.a, perm) if perm else x.a
    shape, k = [], 0
    for d in dims:
        if d in x.dims:
            shape.append(a.shape[k])
            k += 1
        else:
            shape.append(1)
    return a.reshape(shape)


def udims(*xs: NA) -> tuple:
    out = []
    for x in xs:
        out += [d for d in x.dims if d not in out]
    return tuple(out)


class Ev:
    def __init__(self, prog: Prog, sizes: dict, dt, frozen=None):
        self.prog, self.sizes, self.dt, self.frozen = prog, sizes, dt, frozen
        self.scale = 0.0  # largest finite magnitude seen (for the absolute tolerance)
        # reductions with no value over what they got (a mean/max/min/logsumexp over no
        # entries, var(ddof=k) over k or fewer): README, "Edge cases" makes these an InputError
        self.too_small: list[str] = []
        # points where autodiff gives NaN though the derivative exists (README, "Edge cases"):
        # a function where its derivative is infinite (inf times the zero of a constant path),
        # a max/min reduction whose value is NaN
        self.singular: list[str] = []
        # a sum whose terms cancelled below their own rounding (1e300 - 1e300 + 0.2): its value
        # is noise, so is any comparison with a backend that summed in another order
        self.noise = False
        self.inf_cancel = False
        self.zero_sign = False
        self.den_inf = False  # a weighted mean's weight sum made a NaN (evaluate)
        self.mask_nan = False  # x * float(c) with x non-finite where c is false (binop)
        self.lse_absorbs = False  # a softmax over C of entries beyond 2^52 (axis)
        # why a finite difference's step is no derivative here: a declared gradient that moves
        # its value y0 + g0 (x - x0) by more than 1e-3 (1 + |y0|) (grad=1e300: out of the
        # linear regime the loss's other ops see), a step function's jump, a clamp's kink
        self.stiff: list[str] = []
        # README, "Numerics": the sign of a sum over one entry of -0 is the backend's (numpy
        # and torch add it to +0, jax returns the entry); `keep_sign` evaluates jax's way
        self.keep_sign = False
        self.signed_zero = False

    def f(self, a):
        return np.asarray(a, dtype=self.dt)

    def num(self, x: NA) -> np.ndarray:
        """x's data as numbers (bool -> 0/1, int -> float)."""
        return x.a.astype(self.dt) if x.a.dtype != self.dt else x.a

    def varies(self, e: E) -> bool:
        """Whether e reads anything a gradient flows to (not literals and params alone)."""
        params = {p.name for p in self.prog.main.params}
        return any(n.op == "ref" and n.a("name") not in params for _, n in _subexprs(e))

    def body_needs(self, step: E, env, protect) -> None:
        """docs/language.md, "Iteration": a loop body's reductions need their dims as the
        loss's own do, even when the loop takes no step: the step evaluated once, for those
        needs only (its value and other findings dropped)."""
        sub = Ev(self.prog, self.sizes, self.dt)
        with np.errstate(all="ignore"):
            sub.ev(step, env, protect)
        self.too_small += sub.too_small

    def track(self, r: NA) -> NA:
        if r.a.dtype.kind == "f" and r.a.size:
            fin = np.abs(r.a[np.isfinite(r.a)])
            if fin.size:
                self.scale = max(self.scale, float(fin.max()))
        return r

    def ew(self, fn, *xs: NA, kind="float") -> NA:
        dims = udims(*xs)
        args = [align(x, dims) for x in xs]
        if kind == "float":
            args = [a.astype(self.dt) if a.dtype != self.dt else a for a in args]
        r = np.asarray(fn(*args))
        if r.dtype.kind == "f" and np.isnan(r).any():
            had = np.zeros(r.shape, bool)
            for a in args:
                if a.dtype.kind == "f":
                    had = had | np.broadcast_to(np.isnan(a), r.shape)
            if (np.isnan(r) & ~had).any():
                # README, "Edge cases": a NaN made from numbers (x^1.5 at x < 0) has a NaN
                # derivative, which reaches the inputs even where the value drops it (an empty
                # diff, a where's other branch): 0 * NaN
                self.singular.append("a NaN made from numbers, outside a function's domain")
        return NA(r, dims)

    def ev(self, e: E, env: dict, protect=frozenset()) -> NA:
        r = self._ev(e, env, protect)
        if e.op != "ref":
            r.inexact = _inexact(e, env)
        if _int_literal(e) and r.a.dtype.kind == "f":  # integer arithmetic has no -0: `-0`
            r.a = r.a + 0.0  # is the int 0, so u / -0 is u / +0 (as Python's u / -0)
        return self.track(r)

    def counted(self, e: E, env, r: NA, xs) -> NA:
        """r, marked a count of dim sizes when it is a scalar computed from counts and
        literals only (at least one count), with how to compute it at other sizes."""
        parts = [x.count or _literal(a) for a, x in zip(e.args, xs)]
        r.count = not r.dims and all(parts) and any(x.count for x in xs)
        if r.count:
            # (the env as it is now: a let bound to this count later must not probe itself)
            r.recount = lambda sizes, env=dict(env): self.count_at(e, env, sizes)
        return r

    def count_at(self, e: E, env, sizes) -> NA:
        """A count's expression evaluated at other dim sizes (its lets' counts too)."""
        sub = Ev(self.prog, sizes, self.dt)
        probe = {k: v.recount(sizes) if v.count and v.recount else v for k, v in env.items()}
        return sub.ev(e, probe)

    def count_too_small(self, x: NA, bad) -> bool:
        """The README's policy (lossdsl/empty.py): a count that is `bad` (0 where it divides,
        <= 0 where it is logged) when one dim has size k in (0, 1) and the others 7, but not
        when all are 7, makes that dim need k + 1 entries. Is a dim here below that?"""
        if x.recount is None:
            return bool(bad(x.a))
        names = sorted(n for n, v in self.sizes.items() if not isinstance(v, tuple))
        if bad(x.recount({**self.sizes, **{n: 7 for n in names}}).a):
            return bool(bad(x.a))  # 0 at ordinary sizes: the division is as written
        for d in names:
            for k in (0, 1):
                probe = {**self.sizes, **{n: k if n == d else 7 for n in names}}
                if self.sizes[d] <= k and bad(x.recount(probe).a):
                    return True
        return False

    def _ev(self, e: E, env, protect) -> NA:
        op, A, dt = e.op, e.args, self.dt
        ev = lambda x, p=protect: self.ev(x, env, p)  # noqa: E731
        if op == "num":
            return NA(self.f(e.a("v")), ())
        if op == "boollit":
            return NA(np.asarray(bool(e.a("v"))), ())
        if op == "ref":
            return env[e.a("name")]
        if op == "repeat":
            # docs/language.md, "Loops": the block n times on the carried state, the init's
            # value after 0 steps; a float state from an int start
            name, st = e.a("state"), ev(A[0])
            st = NA(self.num(st), st.dims)
            # under finite differences, stop_grad & co. in the block read the state's value at
            # the base point: the frozen evaluator runs the same loop alongside
            if e.a("n") == 0:
                self.body_needs(A[1], {**env, name: st}, protect)
            fz, outer = self.frozen, getattr(self, "frozen_env", None)
            fst = fz.ev(A[0], outer, protect) if fz is not None else None
            try:
                for _ in range(e.a("n")):
                    if fz is not None:
                        fst = NA(fz.num(fst), fst.dims)
                        self.frozen_env = {**outer, name: fst}
                    nxt = self.ev(A[1], {**env, name: st}, protect)
                    if fz is not None:
                        fst = fz.ev(A[1], self.frozen_env, protect)
                    st = NA(self.num(nxt), nxt.dims)
            finally:
                if fz is not None:
                    self.frozen_env = outer
            return st
        if op == "scan":
            # docs/language.md, "Loops": the block once per entry of `over` (backwards with
            # reverse), the slice bound to the sequence there; the states stacked along it
            d, name, slc = e.a("over"), e.a("state"), e.a("slice")
            st, seq = ev(A[0]), ev(A[2])
            st, ax = NA(self.num(st), st.dims), seq.dims.index(d)
            steps = range(seq.a.shape[ax])
            if not steps:
                none = NA(np.zeros(np.delete(seq.a.shape, ax), self.dt),
                          [q for q in seq.dims if q != d])  # fmt: skip
                self.body_needs(A[1], {**env, name: st, slc: none}, protect)
            fz, outer = self.frozen, getattr(self, "frozen_env", None)
            if fz is not None:
                fst, fseq = fz.ev(A[0], outer, protect), fz.ev(A[2], outer, protect)
            out = {}
            try:
                for k in reversed(steps) if e.a("reverse") else steps:
                    xs = NA(np.take(seq.a, k, axis=ax), [q for q in seq.dims if q != d])
                    if fz is not None:
                        fst = NA(fz.num(fst), fst.dims)
                        fx = NA(np.take(fseq.a, k, axis=ax), xs.dims)
                        self.frozen_env = {**outer, name: fst, slc: fx}
                    nxt = self.ev(A[1], {**env, name: st, slc: xs}, protect)
                    if fz is not None:
                        fst = fz.ev(A[1], self.frozen_env, protect)
                    st = NA(self.num(nxt), nxt.dims)
                    out[k] = align(st, tuple(sorted(A[0].dims)))
            finally:
                if fz is not None:
                    self.frozen_env = outer
            shape = [seq.a.shape[ax], *align(st, tuple(sorted(A[0].dims))).shape]
            stack = np.stack([out[k] for k in steps]) if out else np.zeros(shape, self.dt)
            return NA(stack.reshape(shape).astype(self.dt), (d, *sorted(A[0].dims)))
        if op == "prime":
            x = ev(A[0])
            return NA(x.a, [d if d in protect else prime_dim(d) for d in x.dims], x.of)
        if op == "primeof":
            x = ev(A[0])
            ds = e.a("dims")
            return NA(x.a, [prime_dim(d) if d in ds else d for d in x.dims], x.of)
        if op == "neg":
            x = ev(A[0])
            return self.counted(e, env, NA(-x.a, x.dims), [x])
        if op == "not":
            x = ev(A[0])
            return NA(~x.a, x.dims)
        if op == "bin":
            a, b = ev(A[0]), ev(A[1])
            if e.a("op") == "/" and b.count and self.count_too_small(b, lambda v: v == 0):
                self.too_small.append("a division by a count of dim sizes that is 0")
            if e.a("op") == "^" and self.varies(A[1]) and (np.asarray(a.a) < 0).any():
                # README, "Edge cases": d/dp x^p = x^p log x, NaN at x < 0 even where the
                # value is defined (an integer p): torch's and jax's autodiff alike
                self.singular.append("a negative base to a power that varies")
            if e.a("op") == "^" and a.a.dtype.kind == "f" and (a.a == 0).any():
                p = np.asarray(b.a, dtype=np.float64)
                if ((p < 1) & (p != 0)).any():  # x^0.5 at 0: an infinite derivative
                    self.singular.append("a power below 1 at 0")
            if e.a("op") in ("*", "/", "^") and not all(np.isfinite(x.a).all() for x in (a, b)):
                # README, "Edge cases": a product with an infinite factor has an infinite
                # derivative (1 / (inf * s): -inf / inf^2 = NaN, as torch's and jax's autodiff)
                self.singular.append("a product, quotient or power with an infinite operand")
            if e.a("op") == "/":
                dims = udims(a, b)
                af, bf = self.num_al(a, dims), self.num_al(b, dims)
                with np.errstate(all="ignore"):
                    sq = bf * bf
                if (np.isfinite(bf) & (bf != 0) & ((sq == 0) | np.isinf(sq))).any():
                    # README, "Edge cases": the derivative -a / b^2 of a quotient by 1e297
                    # underflows to 0 (by 1e-297 overflows): times the next factor's inf, NaN
                    self.singular.append("a quotient by a number whose square over/underflows")
                if ((bf == 0) & (af != 0) & ~np.isnan(af)).any():
                    # README, "Signed zeros": x / 0 is +-inf by the zero's sign, which an equal
                    # formula may give the other way (ce at one class: -0 or +0)
                    self.zero_sign = True
            if e.a("op") == "/" and (np.asarray(b.a, dtype=np.float64) == 0).any():
                # README, "Edge cases": x / 0 has the infinite derivative 1 / 0 (atan(x / 0) is
                # pi / 2, its gradient 0 * inf = NaN, as torch's and jax's autodiff)
                self.singular.append("a quotient by 0")
            return self.counted(e, env, self.binop(e.a("op"), a, b), [a, b])
        if op == "chain":
            xs = [ev(x) for x in A]
            r = None
            for o, a, b in zip(e.a("ops"), xs, xs[1:]):
                c = self.binop(o, a, b)
                r = c if r is None else self.binop("&", r, c)
            return r
        if op == "f1":
            x = ev(A[0])
            if e.a("fn") == "log" and x.count and self.count_too_small(x, lambda v: v <= 0):
                self.too_small.append("the log of a count of dim sizes that is <= 0")
            at = SINGULAR.get(e.a("fn"))
            if at is not None and np.isin(np.abs(np.asarray(x.a, dtype=np.float64)), at).any():
                self.singular.append(f"{e.a('fn')} at {at}")
            if e.a("fn") == "log" and x.exp_of is not None:
                return x.exp_of  # log(exp(x)) is x, not -inf or inf where exp over/underflows
            if e.a("fn") == "log" and x.sig_of is not None:  # -1e300 at -1e300, not log(0)
                return self.ew(lambda a: -np.logaddexp(0, -a), x.sig_of)
            r = self.counted(e, env, self.ew(UNARY_FN[e.a("fn")], x), [x])
            if e.a("fn") in STEPS and self.frozen is not None:
                r0 = self.ew(UNARY_FN[e.a("fn")], self.frozen.ev(A[0], self.frozen_env, protect))
                if not np.array_equal(align(r0, r.dims), r.a, equal_nan=True):
                    # floor(-1 / w^3): many steps within the step, whose difference is the
                    # underlying slope, where the derivative is 0 (docs/language.md)
                    self.stiff.append("a step function's value jumps within the step")
            if e.a("fn") in ("exp", "sigmoid") and x.a.dtype.kind == "f" and r.dims == x.dims:
                setattr(r, "exp_of" if e.a("fn") == "exp" else "sig_of", x)
            return r
        if op == "f2":
            xs = [ev(A[0]), ev(A[1])]
            if e.a("fn") == "pow" and self.varies(A[1]) and (np.asarray(xs[0].a) < 0).any():
                self.singular.append("a negative base to a power that varies")
            if e.a("fn") == "log_ive" and np.any(self.ew(_log_ive_singular, *xs).a):
                # scipy's ive under- or overflows where the log is finite (large orders, tiny
                # x), and at x = 0 the derivative v / x is infinite
                self.singular.append("log_ive where scipy's ive is 0 or inf, or at x = 0")
            if e.a("fn") in ("atan2", "pow") and not all(np.isfinite(x.a).all() for x in xs):
                # README, "Edge cases": an infinite argument, as a product with an infinite
                # factor: d/dy atan2(y, inf) = inf / inf^2 = NaN in torch's and jax's autodiff
                self.singular.append(f"{e.a('fn')} of an infinite argument")
            return self.counted(e, env, self.ew(BINARY_FN[e.a("fn")], *xs), xs)
        if op == "float":
            x = ev(A[0])
            r = self.counted(e, env, NA(x.a.astype(dt), x.dims), [x])
            if x.a.dtype == bool:
                r.mask = x
            return r
        if op == "stop_grad":
            if self.frozen is not None:  # finite differences: the value at the base point
                return self.frozen.ev(A[0], self.frozen_env, protect)
            return ev(A[0])
        if op == "cg":
            # docs/language.md, "Declared gradients": y's value; to a finite difference
            # y0 + g0 (x - x0), y and g held at the base point (x0)
            form = e.a("form")
            xe = A[0] if form == "rev" else A[1]

            def parts(ev1):
                y = ev1(A[0])
                if form == "custom":
                    return y, ev1(A[2])
                if form == "st":
                    return y, NA(np.asarray(1.0, dtype=dt), ())
                return y, self.ew(np.negative, ev1(A[1]))

            if self.frozen is None:
                y, g = parts(ev)
                x = ev(xe)
                return self.ew(
                    lambda y, x, g: np.broadcast_to(y, np.broadcast(y, x, g).shape), y, x, g
                )
            y0, g0 = parts(lambda a: self.frozen.ev(a, self.frozen_env, protect))
            x0, x = self.frozen.ev(xe, self.frozen_env, protect), ev(xe)

            # (where x does not move, y0 alone: a literal wrt=1 beside grad=inf is no inf * 0)
            def lin(y, g, x0, x):
                with np.errstate(all="ignore"):
                    step = np.where(x == x0, 0, g * (x - x0))
                    if (np.abs(step) > 1e-3 * (1 + np.abs(y))).any():
                        self.stiff.append("a declared gradient too steep for the step")
                return y + step

            return self.ew(lin, y0, g0, x0, x)
        if op == "where":
            c, a, b = ev(A[0]), ev(A[1]), ev(A[2])
            dims = udims(a, b, c)
            cc, aa, bb = align(c, dims), self.num_al(a, dims), self.num_al(b, dims)
            with np.errstate(invalid="ignore"):
                other = np.where(cc, bb, aa)  # the branch not taken, per position
            if not np.isfinite(other).all():
                # README, "Edge cases": the chain rule multiplies the untaken branch's NaN or
                # infinite derivative by 0
                self.singular.append("a where whose untaken branch is not finite")
            return NA(np.where(cc, aa, bb), dims)
        if op == "clamp":
            xs = [ev(a) for a in A]
            if self.frozen is not None:
                # an operand exactly at a bound that moves: the difference is the mean of the
                # one-sided slopes, the frameworks' 1 (README, "Gradients at kinks")
                xs0 = [self.frozen.ev(a, self.frozen_env, protect) for a in A]
                for b0 in xs0[1:]:
                    dims = udims(xs0[0], b0, xs[0])
                    at = align(xs0[0], dims) == align(b0, dims)
                    if (at & (align(xs[0], dims) != align(xs0[0], dims))).any():
                        self.stiff.append("an operand at a clamp bound moves")
            x = xs[0]
            for k, b in zip(e.a("keys"), xs[1:]):
                x = self.ew(_fmax if k == "min" else _fmin, x, b)
            return self.counted(e, env, x, xs)  # clamp(size(B), min=0, max=1): still a count
        if op == "red":
            x = ev(A[0], frozenset(e.a("over") or ()))
            return self.reduce(e.a("fn"), x, e.a("over"), e.a("ddof"), e.a("q"))
        if op == "mmean":
            over = e.a("over")
            x, m = ev(A[0], frozenset(over)), ev(A[1])
            dims = udims(x, m)
            ma = np.broadcast_to(align(m, dims), [self.sizes_of(d, x, m) for d in dims])
            xa = np.broadcast_to(self.num_al(x, dims), ma.shape)
            ax = tuple(dims.index(d) for d in over)
            sel = np.where(ma, xa, self.f(0.0))
            num = sel.sum(axis=ax)
            if int(np.prod([sel.shape[i] for i in ax])) == 1 and sel.size:
                # README, "Signed zeros": a sum over one -0 is -0 on jax (keep_sign), as the
                # plain sum's (reduce)
                if (np.signbit(sel) & (sel == 0)).any():
                    self.signed_zero = True
                if self.keep_sign:
                    num = sel.reshape(num.shape)
            cnt = ma.sum(axis=ax)
            emp = 0.0 if e.a("empty") is None else e.a("empty")
            with np.errstate(all="ignore"):
                r = np.where(cnt > 0, num / np.maximum(cnt, 1), self.f(emp))
            return NA(r.astype(dt), [d for d in dims if d not in over])
        if op == "axis":
            eps = e.a("eps")
            if e.a("fn") == "window":  # a param's size and sigma: their values in this call
                kind, k, st, pad, sigma, kp, sp = eps
                k = int(env[kp].a) if kp else k
                sigma = float(env[sp].a) if sp else sigma
                eps = (kind, k, st, pad, sigma, None, None)
            return self.axis(e.a("fn"), ev(A[0]), e.a("over"), eps)
        if op == "argmax":
            x = ev(A[0])
            d = e.a("over")
            ax = x.dims.index(d)
            a = self.num(x)
            # NaN counts as the largest value (torch, jax and numpy agree); first of ties
            if a.shape[ax] == 0:  # README, "Edge cases": argmax needs one entry
                self.too_small.append(f"argmax over {d} of 0")
                a = np.zeros(a.shape[:ax] + (1,) + a.shape[ax + 1 :], dtype=a.dtype)
            key = np.where(np.isnan(a), np.inf, a)
            isn = np.isnan(a)
            idx = np.where(isn.any(axis=ax), np.argmax(isn, axis=ax), np.argmax(key, axis=ax))
            return NA(idx.astype(np.int64), [q for q in x.dims if q != d], d)
        if op == "gather":
            x, i = ev(A[0]), ev(A[1])
            c = i.of
            x = NA(x.a, ["__src" if d == c else d for d in x.dims])
            out = tuple(d for d in udims(x, i) if d != "__src")
            c = "__src"
            xa = align(x, out + (c,))
            ia = align(i, out)
            shape = [self.sizes_of(d, x, i) for d in out]
            xa = np.broadcast_to(xa, shape + [xa.shape[-1]])
            ia = np.broadcast_to(ia, shape)
            if xa.shape[-1] == 0:  # ids into an empty dim: argmax's over it (too_small) or
                return NA(np.full(shape, np.nan, dtype=xa.dtype), out)  # none to pick: no value
            r = np.take_along_axis(xa, ia[..., None].astype(np.int64), axis=-1)[..., 0]
            return NA(r, out)
        if op == "onehot":
            i = ev(A[0])
            n = self.sizes[i.of]
            return NA((i.a[..., None] == np.arange(n)).astype(dt), i.dims + (i.of,))
        if op == "eye":
            d = e.a("d")
            return NA(np.eye(self.sizes[d], dtype=dt), (d, prime_dim(d)))
        if op == "size":
            return NA(np.asarray(self.sizes[e.a("d")], dtype=np.int64), (), count=True)
        if op == "arange":
            d = e.a("d")
            return NA(np.arange(self.sizes[d], dtype=np.int64), (d,), d)
        if op == "expand":
            x = ev(A[0])
            ds = e.a("dims")
            shape = list(x.a.shape) + [self.sizes[d] for d in ds]
            return NA(np.broadcast_to(x.a[(...,) + (None,) * len(ds)], shape), x.dims + ds)
        if op == "eigvalsh":
            x = ev(A[0])
            d = e.a("d")
            a = align(x, (d, prime_dim(d))).astype(np.float64)
            if not np.isfinite(a).all():
                return NA(np.full(a.shape[0], np.nan, dtype=dt), (d,))
            lam = np.linalg.eigvalsh(a)
            # an eigenvalue within rounding of 0 (z z' of rank 1: two of three are +-1e-17)
            # has no sign to compare: log or 1 / of it is noise
            tol = a.shape[-1] * np.finfo(np.float64).eps * np.abs(lam).max(initial=0.0)
            self.noise |= bool((np.abs(lam) <= tol).any() and tol > 0)
            return NA(lam.astype(dt), (d,))
        if op == "call":
            return self.call(e, env, [ev(x) for x in A])
        raise AssertionError(op)

    def sizes_of(self, d, *xs):
        for x in xs:
            if d in x.dims:
                return x.a.shape[x.dims.index(d)]
        return self.sizes[base(d)]

    def num_al(self, x, dims):
        a = align(x, dims)
        return a.astype(self.dt) if a.dtype != self.dt else a

    def binop(self, o, a: NA, b: NA) -> NA:
        if o in ("&", "|"):
            return self.ew(np.logical_and if o == "&" else np.logical_or, a, b, kind="bool")
        if o in CMP:
            if a.a.dtype == bool or b.a.dtype == bool:
                return self.ew(CMP[o], a, b, kind="bool")
            if a.inexact or b.inexact:
                # a comparison at a tie within rounding: jax's x / x on CPU is 1 - 2^-53
                # (XLA multiplies by a reciprocal), so x / x < 1 is true there; the value
                # jumps with the last bit (README, "Numerics"), as a cancelled sum's does
                x, y = self.num_al(a, udims(a, b)), self.num_al(b, udims(a, b))
                with np.errstate(all="ignore"):
                    tie = np.abs(x - y) <= 8 * np.finfo(self.dt).eps * np.maximum(abs(x), abs(y))
                self.noise |= bool((tie & np.isfinite(x) & np.isfinite(y)).any())
            return self.ew(CMP[o], a, b)
        ints = a.a.dtype.kind in "iu" and b.a.dtype.kind in "iu"
        if ints and o in "+-*":
            return self.ew({"+": np.add, "-": np.subtract, "*": np.multiply}[o], a, b, kind="int")
        r = self.ew(ARITH[o], a, b)
        for m, x in ((a.mask, b), (b.mask, a)) if o == "*" else ():
            if m is None or x.a.dtype.kind != "f":
                continue
            # x * float(c) with x NaN or inf where c is false: NaN by IEEE, but XLA rewrites
            # it to where(c, x, 0) inside a jit or a lax.scan body (README, "Numerics"):
            # keep_sign evaluates jax's way
            c, xa = align(m, r.dims), self.num_al(x, r.dims)
            if (~c & ~np.isfinite(xa)).any():
                self.mask_nan = True
                if self.keep_sign:
                    return NA(np.broadcast_to(np.where(c, xa, self.f(0.0)), r.a.shape), r.dims)
        if o == "*" and r.a.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                r.zero_inf = bool(
                    (
                        np.isnan(r.a)
                        & ~np.isnan(self.num_al(a, r.dims))
                        & ~np.isnan(self.num_al(b, r.dims))
                    ).any()
                )
        return r

    def reduce(self, fn, x: NA, over, ddof, q=None) -> NA:
        if over is None:
            over = x.dims
        # diff's "H-1" dim is named by over=H
        over = tuple(d + "~1" if d not in x.dims and d + "~1" in x.dims else d for d in over)
        ax = tuple(x.dims.index(d) for d in over)
        keep = [d for d in x.dims if d not in over]
        a = x.a
        if fn == "count":
            return NA(a.sum(axis=ax).astype(np.int64), keep)
        a = a.astype(self.dt) if a.dtype != self.dt else a
        n = int(np.prod([a.shape[i] for i in ax])) if ax else 1
        # (var over several dims: each must be non-empty; over one, it needs ddof + 1 entries)
        short = n <= ddof if fn == "var" and len(ax) == 1 else n == 0
        if fn in ("mean", "max", "min", "logsumexp", "var", "median", "quantile") and short:
            self.too_small.append(f"{fn} over {over} of {n}")
        with np.errstate(all="ignore"):
            if fn in ("sum", "mean") and n > 1:
                mag = np.abs(a).sum(axis=ax)
                r0 = np.abs(a.sum(axis=ax))
                # (huge terms only: the extreme inputs' +-1e300; an exact 0 of [1, -1] is no noise)
                big = np.isfinite(mag) & (mag > 1e100)
                self.noise |= bool((big & (r0 < 8 * np.finfo(self.dt).eps * mag)).any())
                # a NaN made by the sum itself, +inf + -inf: README "Numerics", a factor constant
                # along the summed dim may leave the sum first (an einsum), giving +-inf there
                made = np.isnan(a.sum(axis=ax)) & ~np.isnan(a).any(axis=ax)
                self.inf_cancel |= bool(made.any()) or x.zero_inf
            if fn in ("sum", "mean") and n == 1 and (np.signbit(a) & (a == 0)).any():
                self.signed_zero = True
            if fn in ("sum", "mean") and n == 1 and self.keep_sign:
                r = a.reshape([a.shape[i] for i in range(a.ndim) if i not in ax])
            elif fn == "sum":
                r = a.sum(axis=ax)
            elif fn == "mean":
                r = a.sum(axis=ax) / self.f(n)
            elif fn in ("max", "min"):
                if n == 0:  # the identity of max/min over nothing
                    r = np.full(
                        [a.shape[i] for i in range(a.ndim) if i not in ax],
                        -np.inf if fn == "max" else np.inf,
                        dtype=self.dt,
                    )
                else:
                    r = (np.max if fn == "max" else np.min)(a, axis=ax)
                    if np.isnan(r).any():  # README: its backward is NaN even where masked
                        self.singular.append(f"a NaN {fn} over {over}")
            elif fn == "logsumexp":
                r = _lse(a, ax, self.dt)
            elif fn == "var":
                mu = a.sum(axis=ax, keepdims=True) / self.f(n)
                r = ((a - mu) ** 2).sum(axis=ax) / self.f(n - ddof)
                # equal entries have variance exactly 0 (torch's and jax's var give 0; the mean's
                # rounding left 1e-39 here, and x / var became 1e38 instead of inf)
                same = (a == a.max(axis=ax, keepdims=True) if n else a).all(axis=ax)
                same &= np.isfinite(a).all(axis=ax)  # [inf, inf] has no variance: NaN
                r = np.where(same & (n > ddof), self.f(0.0), r)
                # ...yet only up to rounding: torch's var of three equal -0.83976 is 1e-33,
                # so a division by it (0 / var: NaN or 0) is noise, not a value to compare
                self.noise |= bool((same & (n > ddof)).any())
            elif fn == "norm":
                r = np.sqrt((a * a).sum(axis=ax))
            elif fn in ("median", "quantile"):
                r = _quantile(a, ax[0], q, self.dt)
            else:
                raise AssertionError(fn)
        return NA(np.asarray(r, dtype=self.dt), keep)

    def axis(self, fn, x: NA, d, eps) -> NA:
        ax = x.dims.index(d)
        a = self.num(x)
        with np.errstate(all="ignore"):
            if fn in ("softmax", "log_softmax") and d == "C" and a.size:
                # the chunked schedule's z - logsumexp(z) (README, "Large vocabularies"):
                # beyond 2^52 the logsumexp absorbs log C, so softmax there is off by C
                big = np.abs(a[np.isfinite(a)])
                self.lse_absorbs |= bool(big.size and big.max() > 2.0**52)
            if fn == "softmax":
                m = np.max(a, axis=ax, keepdims=True) if a.shape[ax] else a
                ex = np.exp(a - m)
                return NA(ex / ex.sum(axis=ax, keepdims=True), x.dims)
            if fn == "log_softmax":
                # README, "Edge cases": a +inf entry makes its whole slice NaN (as softmax,
                # torch.log_softmax and jax.nn.log_softmax), not x - inf = -inf elsewhere
                # (shifted by the max first: x - logsumexp(x) at x = [1e300, 1e300] loses the
                # log 2 to rounding; (x - m) - log sum e^(x - m) keeps it, -log 2 exactly)
                m = np.max(a, axis=ax, keepdims=True) if a.shape[ax] else a
                with np.errstate(invalid="ignore"):
                    r = (a - m) - _lse(a - m, (ax,), self.dt, keepdims=True)
                return NA(np.where(np.isposinf(a).any(axis=ax, keepdims=True), np.nan, r), x.dims)
            if fn == "normalize":
                nrm = np.sqrt((a * a).sum(axis=ax, keepdims=True))
                return NA(a / np.maximum(nrm, self.f(1e-12 if eps is None else eps)), x.dims)
            if fn in SCANS:
                return NA(_order(fn, a, ax, eps), x.dims)
            if fn == "window":
                r, need = _window(a, ax, *eps[:5])  # (the params' values: ev above)
                if need:
                    self.too_small.append(need)
                dims = (
                    x.dims
                    if eps[2:4] == (1, "same")
                    else tuple(dd + "~1" if dd == d else dd for dd in x.dims)
                )
                return NA(r, dims)
            if fn == "shift":
                # docs/language.md: entry n is x[n - k] where that exists, else the fill
                k, fill = eps
                n = a.shape[ax]
                out = np.full(a.shape, fill, dtype=a.dtype)
                for i in range(n):
                    if 0 <= i - k < n:
                        idx = [slice(None)] * a.ndim
                        src = list(idx)
                        idx[ax], src[ax] = i, i - k
                        out[tuple(idx)] = a[tuple(src)]
                return NA(out, x.dims)
            if fn == "diff":
                if a.shape[ax] == 0:  # differences along nothing: README, "Edge cases"
                    self.too_small.append(f"diff over {d}")
                return NA(np.diff(a, axis=ax), [q + "~1" if q == d else q for q in x.dims])
        raise AssertionError(fn)

    def call(self, e: E, env, args: list) -> NA:
        callee = e.a("callee")
        kw = {k: self.ev(v, env) for k, v in e.a("kw")}
        a, b = args
        if callee in IMPORTS:
            with np.errstate(all="ignore"):
                p, t = self.num(a), self.num_al(b, a.dims)
                if callee == "mse":
                    r = (p - t) ** 2
                elif callee == "l1":
                    r = np.abs(p - t)
                elif callee == "huber":  # 0.5 d^2 if |d| <= delta else delta (|d| - 0.5 delta)
                    delta = self.num(kw["delta"]) if "delta" in kw else self.f(1.0)
                    ad = np.abs(p - t)
                    m = np.minimum(ad, delta)
                    r = 0.5 * m * m + delta * (ad - m)
                else:  # bce_with_logits: softplus(z) - y z (pos_weight 1)
                    r = _softplus(p) - t * p
            return NA(r, a.dims)
        h = next(h for h in self.prog.helpers if h.name == callee)
        sig = dict(e.a("sigma"))  # caller dim -> helper dim
        inv = {v: k for k, v in sig.items()}
        hsizes = {sig[d]: self.sizes[d] for d in sig}
        hsizes.update({prime_dim(k): v for k, v in hsizes.items()})
        henv = {}
        for inp, arg in zip(h.inputs, args):
            henv[inp.name] = NA(arg.a, [sig[d] for d in arg.dims])
        for p in h.params:
            henv[p.name] = kw.get(p.name, NA(self.f(p.default), ()))
        sub = Ev(self.prog, {**self.sizes, **hsizes}, self.dt)
        sub.keep_sign = self.keep_sign
        if self.frozen is not None:
            sub.frozen = Ev(self.prog, {**self.sizes, **hsizes}, self.dt)
            sub.frozen_env = {
                inp.name: NA(fa.a, [sig[d] for d in fa.dims])
                for inp, fa in zip(h.inputs, [self.frozen.ev(x, self.frozen_env) for x in e.args])
            }
            sub.frozen_env.update({p.name: henv[p.name] for p in h.params})
            for st in h.stmts:
                run_stmt(sub.frozen, st, sub.frozen_env, h)
        for st in h.stmts:
            run_stmt(sub, st, henv, h)
        r = sub.ev(h.body, henv)
        self.scale = max(self.scale, sub.scale)
        # what the helper's body found holds for the call: a too-small dim there is the
        # caller's InputError (README, "Edge cases"), a singular point or noise the caller's
        self.too_small += sub.too_small
        self.singular += sub.singular
        self.noise |= sub.noise
        self.inf_cancel |= sub.inf_cancel
        self.lse_absorbs |= sub.lse_absorbs
        self.mask_nan |= sub.mask_nan
        self.zero_sign |= sub.zero_sign
        self.signed_zero |= sub.signed_zero
        return NA(r.a, [_caller_dim(d, inv) for d in r.dims])


def _quantile(a, ax, q, dt):
    """docs/language.md, "Order": numpy's linear quantile (the sorted entries at q (n - 1),
    interpolated between the two neighbours as numpy's lerp does), a position on an entry that
    entry alone; a slice with a NaN gives NaN; over nothing 0 here (the InputError is noted)."""
    n = a.shape[ax]
    if n == 0:
        return np.zeros(a.shape[:ax] + a.shape[ax + 1 :], dtype=dt)
    srt = np.sort(a, axis=ax)
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    t = dt(pos - lo)
    lo_v = np.take(srt, lo, axis=ax)
    if t == 0:
        r = lo_v
    else:
        hi_v = np.take(srt, min(lo + 1, n - 1), axis=ax)
        d = hi_v - lo_v
        r = np.where(t < 0.5, lo_v + d * t, hi_v - d * (dt(1) - t))
    return np.where(np.isnan(a).any(axis=ax), dt(np.nan), r)


def _window(a, ax, kind, k, s, pad, sigma):
    """docs/language.md, "Windows": (result, why the dim is too small or None). Windows of k
    every s entries; "valid" only whole ones, "same" zeros around x (-inf for max_pool; box and
    avg_pool count them), "reflect" x mirrored without its edge; those two pad
    (ceil(n / s) - 1) s + k - n entries, the odd one before x. blur's taps are
    exp(-(i - k//2)^2 / (2 sigma^2)), i < k, divided by their sum."""
    n = a.shape[ax]
    a = np.moveaxis(a, ax, -1)
    need = None
    if pad == "valid":
        if n < k:
            need, n_out = f"a {kind} window of {k} over {n}", 0
        else:
            n_out = (n - k) // s + 1
    else:
        n_out = -(-n // s)
        total = max(0, (n_out - 1) * s + k - n)
        before, after = total - total // 2, total // 2
        if n < 1 or pad == "reflect" and n <= max(before, after):
            need, n_out = f"a {kind} window of {k} over {n}, {pad}-padded", 0
        elif pad == "reflect":
            a = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(before, after)], mode="reflect")
        else:
            fill = -np.inf if kind == "max_pool" else 0.0
            a = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(before, after)], constant_values=fill)
    if n_out == 0:
        return np.moveaxis(np.zeros(a.shape[:-1] + (0,), a.dtype), -1, ax), need
    win = np.stack([a[..., i * s : i * s + k] for i in range(n_out)], axis=-2)  # [..., out, k]
    if kind == "max_pool":
        r = win.max(axis=-1)
    elif kind == "blur":
        i = np.arange(k, dtype=a.dtype) - k // 2
        taps = np.exp(-(i * i) / (2 * a.dtype.type(sigma) ** 2))
        r = (win * (taps / taps.sum())).sum(axis=-1)
    else:
        r = win.sum(axis=-1) / a.dtype.type(k)
    return np.moveaxis(r, -1, ax), need


def _order(fn, a, ax, flag):
    """docs/language.md, "Order": entry n of a scan combines entries 0..n (reverse: n..end);
    cummax is NaN from a NaN on; logcumsumexp is stable (log-add-exp, pairwise). sort is
    ascending (descending=true: largest first), stable, NaN the largest value."""
    if fn == "sort":
        if a.shape[ax] == 0:
            return a.copy()
        # NaN largest: ascending puts it last (numpy's sort), descending first; equal entries
        # keep their order either way (-0 beside 0 too)
        key = np.where(np.isnan(a), np.inf, a)
        nan = np.isnan(a)
        pos = np.arange(a.shape[ax]).reshape([-1 if i == ax else 1 for i in range(a.ndim)])
        # np.lexsort sorts by the last key first: NaN-ness, then the value, then the position
        last = (~nan, -key) if flag else (nan, key)
        order = np.lexsort((np.broadcast_to(pos, a.shape), last[1], last[0]), axis=ax)
        return np.take_along_axis(a, order, axis=ax)
    if flag:
        return np.flip(_order(fn, np.flip(a, ax), ax, False), ax)
    if a.shape[ax] == 0:
        return a.copy()
    ufunc = {"cumsum": np.add, "cumprod": np.multiply, "cummax": np.maximum}.get(fn)
    if ufunc is not None:
        return ufunc.accumulate(a, axis=ax)
    return np.logaddexp.accumulate(a, axis=ax)


def _caller_dim(d: str, inv: dict) -> str:
    """The caller's dim for the helper's dim d (docs/language.md, "Dims bind by position"): the
    one the call binds it to, or, for a twin the call binds to nothing, the next prime of the
    caller's dim for the nearest bound twin below that none of the helper's dims is bound to."""
    if d in inv:
        return inv[d]
    k = len(d) - len(base(d))
    below = max(j for j in range(k) if base(d) + "'" * j in inv)
    c = inv[base(d) + "'" * below]
    for _ in range(k - below):
        c = prime_dim(c)
    while c in inv.values():
        c = prime_dim(c)
    return c


# ops every framework computes to the same bits from the same operands (IEEE's +, -, * and
# exact ones); anything else (a division, a sum's order, a transcendental) may differ in the last
_EXACT_BIN = {"+", "-", "*", "&", "|", "<", "<=", ">", ">=", "==", "!="}
_EXACT_FN = {"abs", "relu", "sign", "floor", "ceil", "round", "max", "min", "maximum", "minimum"}
_EXACT_NODE = {"neg", "not", "prime", "primeof", "expand", "where", "float", "stop_grad",
               "clamp", "gather", "chain", "num", "boollit", "size", "arange", "eye", "onehot",
               "argmax"}  # fmt: skip


def _inexact(e: E, env: dict) -> bool:
    """Whether e's value may differ in its last bit between frameworks (the evaluator's
    comparisons at a tie then make the value noise)."""
    if e.op == "ref":
        return getattr(env.get(e.a("name")), "inexact", False)
    kids = any(_inexact(a, env) for a in e.args if isinstance(a, E))
    if e.op == "bin":
        return e.a("op") not in _EXACT_BIN or kids
    if e.op in ("f1", "f2"):
        return e.a("fn") not in _EXACT_FN or kids
    if e.op == "red":
        return e.a("fn") not in ("max", "min") or kids
    return e.op not in _EXACT_NODE or kids


def _int_literal(e: E) -> bool:
    """An expression the compiler folds as integers: integer literals (as fmt_num writes them)
    under -, +, - and * (docs/language.md: int arithmetic stays int; `/` makes a float)."""
    if e.op == "num":
        v = e.a("v")
        return v == v and abs(v) != math.inf and float(v).is_integer() and abs(v) < 1e15
    if e.op == "neg":
        return _int_literal(e.args[0])
    return e.op == "bin" and e.a("op") in ("+", "-", "*") and all(map(_int_literal, e.args))


def _literal(e: E) -> bool:
    """An expression of literals alone (exp(1), -2 * 0.5): no dims anywhere in it."""
    return not e.dims and (e.op == "num" or (bool(e.args) and all(_literal(a) for a in e.args)))


def _lse(a, ax, dt, keepdims=False):
    with np.errstate(all="ignore"):
        if all(a.shape[i] for i in ax):
            m = np.max(a, axis=ax, keepdims=True)
        else:
            m = np.full([1 if i in ax else s for i, s in enumerate(a.shape)], -np.inf, dtype=dt)
        mf = np.where(np.isfinite(m), m, 0)
        r = np.log(np.exp(a - mf).sum(axis=ax, keepdims=True)) + mf
        # an infinite max: the result is that infinity (NaN stays NaN)
        r = np.where(np.isinf(m) & ~np.isnan(r), m, r)
        r = np.where(np.isnan(a).any(axis=ax, keepdims=True), np.nan, r)
        return r if keepdims else np.squeeze(r, axis=ax)


def _softplus(x):
    with np.errstate(all="ignore"):
        return np.logaddexp(0, x)


def _sigmoid(x):
    with np.errstate(all="ignore"):
        return np.where(np.isnan(x), x, _sigmoid_num(x))


def _sigmoid_num(x):
    with np.errstate(all="ignore"):
        return np.where(
            x >= 0,
            1 / (1 + np.exp(-np.where(x >= 0, x, 0))),
            np.exp(np.where(x < 0, x, 0)) / (1 + np.exp(np.where(x < 0, x, 0))),
        )


def _xlogy(x, y):
    with np.errstate(all="ignore"):
        return np.where((x == 0) & ~np.isnan(y), 0, x * np.log(y))


def _erf(x, _e=_erf):
    return np.asarray(_e(np.asarray(x, dtype=np.float64)), dtype=x.dtype)


def _lgamma(x):
    """scipy's gammaln in float64 (it has no long double), +inf at -inf as README says (scipy
    1.17 gives -inf there; torch and math.lgamma +inf)."""
    v = np.asarray(_gammaln(np.asarray(x, dtype=np.float64)))
    return np.where(np.asarray(x) == -np.inf, np.inf, v).astype(x.dtype)


def _digamma(x):
    """scipy's psi in float64: -inf at +0, +inf at -0, NaN at the negative integers (README)."""
    return np.asarray(_psi(np.asarray(x, dtype=np.float64)), dtype=x.dtype)


def _fmax(a, b):  # NaN-propagating elementwise max
    return np.maximum(a, b)


def _fmin(a, b):
    return np.minimum(a, b)


def _safe(f):
    def g(*a):
        with np.errstate(all="ignore"):
            return f(*a)

    return g


# piecewise-constant functions (zero derivative, docs/language.md): a finite difference that
# crosses one of their steps is no derivative
STEPS = frozenset({"floor", "ceil", "round", "sign"})
UNARY_FN = {
    k: _safe(v)
    for k, v in {
        "exp": np.exp,
        "log": np.log,
        "log1p": np.log1p,
        "expm1": np.expm1,
        "sqrt": np.sqrt,
        "abs": np.abs,
        "sigmoid": _sigmoid,
        "softplus": _softplus,
        "logsigmoid": lambda x: -_softplus(-x),
        "relu": lambda x: np.where(np.isnan(x), x, np.maximum(x, 0)),
        "erf": _erf,
        "tanh": np.tanh,
        "sin": np.sin,
        "cos": np.cos,
        "atan": np.arctan,
        "asin": np.arcsin,
        "acos": np.arccos,
        "log2": np.log2,
        "log10": np.log10,
        "sinh": np.sinh,
        "cosh": np.cosh,
        "asinh": np.arcsinh,
        "acosh": np.arccosh,
        "atanh": np.arctanh,
        "lgamma": _lgamma,
        "digamma": _digamma,
        # README: halves to even (np.round is), zero gradient (the finite differences see 0
        # or a jump, which check_grad skips as not smooth)
        "floor": np.floor,
        "ceil": np.ceil,
        "round": np.round,
        "sign": np.sign,
    }.items()
}
# |x| where a function's derivative is infinite: sqrt and the logs at 0, asin and acos at +-1,
# acosh at 1, atanh at +-1 (lgamma and digamma are infinite at their poles: no finite loss there)
SINGULAR = {
    "sqrt": (0.0,), "log": (0.0,), "log2": (0.0,), "log10": (0.0,), "asin": (1.0,), "acos": (1.0,),
    "acosh": (1.0,), "atanh": (1.0,),
}  # fmt: skip


def _pow(a, b):
    """docs/language.md "Operators": IEEE's pow (numpy's with an array exponent: its number
    exponent 0.5 runs sqrt), but NaN at (-inf) ^ 0.5 and (-inf) ^ -0.5, as sqrt(-inf)."""
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    return np.where(np.isneginf(a) & (np.abs(b) == 0.5), np.nan, np.power(a, b.copy()))


def _log_ive(v, x):
    """log_ive's meaning from scipy's ive (scipy.special.ive: I_v(x) e^-|x|), NaN for v < 0 or
    x < 0 (docs/language.md); where ive is 0 or inf, a singular point (_log_ive_singular)."""
    v, x = np.broadcast_arrays(np.asarray(v, float), np.asarray(x, float))
    out = np.log(scipy.special.ive(v, x))
    return np.where((v < 0) | (x < 0), np.nan, out)


def _log_ive_singular(v, x):
    """Where log_ive's meaning above is no reference (elementwise)."""
    v, x = np.broadcast_arrays(np.asarray(v, float), np.asarray(x, float))
    with np.errstate(all="ignore"):
        r = scipy.special.ive(v, x)
    ok = (v >= 0) & (x >= 0)
    return ok & ((r == 0) | ~np.isfinite(r) | (x == 0) | ~np.isfinite(v))


BINARY_FN = {
    k: _safe(v)
    for k, v in {
        "max": _fmax,
        "min": _fmin,
        "pow": _pow,
        "xlogy": _xlogy,
        "atan2": np.arctan2,
        "logaddexp": np.logaddexp,  # -inf at (-inf, -inf), inf at (inf, inf): README
        "log_ive": _log_ive,
    }.items()
}
ARITH = {
    k: _safe(v)
    for k, v in {
        "+": np.add,
        "-": np.subtract,
        "*": np.multiply,
        "/": np.divide,
        "^": _pow,
    }.items()
}
CMP = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def out_order(ld: LossDef) -> list:
    """reduction='none': the loss's dims in the order the inputs declare them."""
    order = []
    for i in ld.inputs:
        order += [d for d in i.dims if d not in order]
    return order


def evaluate(
    prog: Prog,
    inputs: dict,
    params: dict,
    sizes: dict,
    reduction: str,
    dt=np.float64,
    frozen: tuple | None = None,
    too_small: list | None = None,
    singular: list | None = None,
    keep_sign: bool = False,
    signed: list | None = None,
    stiff: list | None = None,
):
    """The expected value: an ndarray (reduction='none', axes in declared order, S flattened)
    or a 0-d array. `inputs` maps names to ndarrays (S already flattened), absent optional
    inputs omitted; `frozen` = (inputs, params) of the base point, for stop_grad under finite
    differences. Returns (value, largest intermediate magnitude)."""
    ld = prog.main
    ev = Ev(prog, sizes, dt)
    ev.keep_sign = keep_sign
    env = bind_env(ev, ld, inputs, params, dt)
    if frozen is not None:
        ev.frozen = Ev(prog, sizes, dt)
        ev.frozen_env = bind_env(ev.frozen, ld, frozen[0], frozen[1], dt)
        for st in ld.stmts:
            run_stmt(ev.frozen, st, ev.frozen_env, ld)
    for st in ld.stmts:
        run_stmt(ev, st, env, ld)
    loss = ev.ev(ld.body, env)
    a = ev.num(loss)
    order = [d for d in out_order(ld) if d in loss.dims]
    a = align(NA(a, loss.dims), tuple(order))
    mode = reduction or (ld.reduce[0] if ld.reduce else "mean")
    # the loss's own sum or mean (the chunked schedule sums w * s as s * sum(w)): a product's
    # 0 * inf, or +inf + -inf made by the sum, may come out +-inf there too
    if mode != "none" and a.size:
        with np.errstate(invalid="ignore"):
            made = np.isnan(a.sum()) and not np.isnan(a).any()
        ev.inf_cancel |= loss.zero_inf or bool(made)
    weighted = ld.reduce is not None and ld.reduce[1] is not None
    # the weight is part of the loss: a too-small reduction in it is an InputError (README,
    # "Edge cases") whatever the reduction asked for
    wn = ev.ev(ld.reduce[1], env) if weighted else None
    w = ev.num(wn) if weighted else None
    if stiff is not None:
        stiff.extend(ev.stiff)
    with np.errstate(all="ignore"):
        if mode == "none":
            r = a
        elif a.size == 0:
            # README, "Edge cases": an empty per-element loss is not computed; "sum" is 0 and
            # "mean" the declared empty value (`reduce mean by w empty v`; 0 for a plain mean)
            emp = ld.reduce[2] if weighted and ld.reduce[2] is not None else 0.0
            r = dt(0.0) if mode == "sum" else dt(emp)
        elif mode == "sum":
            r = a.sum()
        elif weighted:
            sw = w.sum()
            # the weights' sum made a NaN of 0 * inf or +inf + -inf: a factor taken out of it
            # (README, "Infinite terms") makes it +-inf, and the mean sum(loss) / +-inf a 0
            ev.den_inf = bool(np.isnan(sw) and not np.isnan(w).any()) or wn.zero_inf
            # a sum of weights that cancelled to rounding noise (-1e300 + 30 + 1e300: 0, not
            # 30) makes the mean noise, as a cancelled sum inside the loss does
            mag = np.abs(w).sum()
            if np.isfinite(mag) and mag > 1e100 and abs(sw) < 8 * np.finfo(dt).eps * mag:
                ev.noise = True
            r = np.where(sw != 0, a.sum() / np.where(sw != 0, sw, 1), dt(ld.reduce[2]))
            if sw == 0 and not np.isfinite(a).all():  # the empty value, beside a non-finite
                # per-element loss: its NaN or infinite derivative times the 0 of the untaken
                # branch (README, "Edge cases", as for where)
                ev.singular.append("an all-masked weighted mean over non-finite losses")
        else:
            r = a.sum() / dt(a.size)
    if too_small is not None and a.size:  # (an empty per-element loss is never computed)
        too_small.extend(ev.too_small)
    if singular is not None:
        singular.extend(ev.singular)
    if signed is not None:  # the conventions this value met (expected(): alternatives)
        flags = ("signed_zero", "inf_cancel", "zero_sign", "den_inf", "lse_absorbs", "mask_nan")
        signed.extend(f for f in flags if getattr(ev, f))
    # scale inf: a cancelled sum made the value noise (close() then accepts any value)
    return np.asarray(r, dtype=dt), math.inf if ev.noise else ev.scale


def expects_too_small(prog, arrs, sp, params, sizes, reduction) -> bool:
    """Whether the evaluation reduces some dim too small for its formula (README, "Edge
    cases": then the compiled loss raises an InputError naming it). The evaluator runs every
    `let`, the compiler only those that reach the result: a backend that returns a value here
    is still compared; one that raises InputError is right only when this holds."""
    found: list[str] = []
    evaluate(prog, flat(prog, arrs, sp), params, sizes, reduction, np.float64, too_small=found)
    return bool(found)


def bind_env(ev: Ev, ld: LossDef, inputs, params, dt):
    env = {}
    for i in ld.inputs:
        if i.name in inputs:
            a = np.asarray(inputs[i.name])
            if i.kind == "float":
                a = a.astype(dt)
            env[i.name] = NA(a, i.dims, i.of)
        else:  # absent optional input: its default, over its declared dims
            shape = [ev.sizes[d] for d in i.dims]
            env[i.name] = NA(np.full(shape, i.default, dtype=dt), i.dims)
    for p in ld.params:
        v = params.get(p.name, p.default)
        if p.kind == "float":
            env[p.name] = NA(np.asarray(float(v), dtype=dt), ())
        elif p.kind == "int":
            env[p.name] = NA(np.asarray(int(v), dtype=np.int64), ())
        else:
            env[p.name] = NA(np.asarray(bool(v)), ())
    return env


def run_stmt(ev, st, env, ld):
    if st[0] == "let":
        env[st[1]] = ev.ev(st[2], env)
        return
    task, (a, b) = st[1], st[2]
    x, y = env[a], env[b]
    if task == "regression":
        env["diff"] = ev.ew(np.subtract, x, y)
        return
    # classification with an index target into C
    c = y.of
    lsm = ev.axis("log_softmax", x, c, None)
    sm = NA(np.exp(lsm.a), lsm.dims)
    g = lambda z: ev.ev(
        E(
            "gather",
            (E("ref", (), (("name", "__z"),)), E("ref", (), (("name", "__t"),))),
        ),  # noqa: E731
        {"__z": z, "__t": y},
    )
    env.update(p=sm, logp=lsm, pt=g(sm), logpt=g(lsm))
    env["ce"] = NA(-env["logpt"].a, env["logpt"].dims)
    env["onehot"] = ev.ev(E("onehot", (E("ref", (), (("name", "__t"),)),)), {"__t": y})


# ---------------------------------------------------------------------------------------------
# Inputs


EXTREMES = [np.inf, -np.inf, np.nan, 1e300, -1e300, 0.0, -0.0, 1.0, -1.0, 1e-300, 30.0, -30.0]


def make_inputs(prog: Prog, rng: np.random.Generator, mode: str):
    """mode: 'safe' (normal values, B >= 1), 'extreme' (special values, B in 0..3),
    'batch' (normal values, B in {0, 1}). Returns (arrays by name with S unflattened,
    sizes, spatial shape)."""
    ld = prog.main
    B = int(rng.integers(1, 4)) if mode == "safe" else int(rng.choice([0, 1, 1, 2, 3]))
    if mode == "batch":
        B = int(rng.choice([0, 1]))
    sizes = {"B": B, "C": int(rng.integers(1, 5)), "D": int(rng.integers(1, 4))}
    sp = [(), (2,), (1,), (2, 3)][int(rng.integers(0, 4))]
    sizes["S"] = int(np.prod(sp)) if sp else 1
    for d in list(sizes):
        sizes[d + "'"] = sizes[d]
    arrs = {}
    for i in ld.inputs:
        if i.default is not None and rng.random() < 0.4:
            continue  # absent optional input
        shape = []
        for d in i.dims:
            shape += list(sp) if d == "S" else [sizes[d]]
        shape = tuple(shape)
        if i.kind == "index":
            arrs[i.name] = rng.integers(0, sizes[i.of], size=shape).astype(np.int64)
        elif i.kind == "bool":
            p = rng.choice([0.0, 0.5, 1.0]) if mode != "safe" else 0.5
            arrs[i.name] = rng.random(shape) < p
        else:
            a = rng.standard_normal(shape)
            if mode == "extreme":
                pick = rng.random(shape) < 0.5
                a = np.where(pick, np.asarray(EXTREMES)[rng.integers(0, len(EXTREMES), shape)], a)
            arrs[i.name] = np.asarray(a, dtype=np.float64)
    return arrs, sizes, sp


def flat(prog: Prog, arrs: dict, sp) -> dict:
    out = {}
    for i in prog.main.inputs:
        if i.name in arrs:
            a = arrs[i.name]
            if "S" in i.dims:
                k = len(i.dims) - 1
                a = a.reshape(a.shape[:k] + (int(np.prod(sp)) if sp else 1,))
            out[i.name] = a
    return out


def expected(prog, arrs, sp, params, sizes, reduction, keep_sign=False):
    """(float64 value, long-double value, scale, alternatives: {"signed": the same for a sum
    over one -0 kept -0, or None where no such sum decides anything; "inf_cancel": whether a
    sum added +inf to -inf}), S restored to the spatial shape."""
    fl = flat(prog, arrs, sp)
    signed: list = []
    v64, s1 = evaluate(prog, fl, params, sizes, reduction, np.float64, keep_sign=keep_sign)
    vld, s2 = evaluate(
        prog, fl, params, sizes, reduction, np.longdouble, keep_sign=keep_sign, signed=signed
    )
    if reduction == "none" or (
        reduction is None and prog.main.reduce and prog.main.reduce[0] == "none"
    ):
        dims = [d for d in out_order(prog.main) if d in _loss_dims(prog)]
        shape = []
        for d, n in zip(dims, v64.shape):
            shape += list(sp) if d == "S" else [n]
        v64, vld = v64.reshape(shape), vld.reshape(shape)
    alt = {k: k in signed for k in ("inf_cancel", "zero_sign", "den_inf", "lse_absorbs")}
    alt["signed"] = None
    if ("signed_zero" in signed or "mask_nan" in signed) and not keep_sign:
        alt["signed"] = expected(prog, arrs, sp, params, sizes, reduction, keep_sign=True)[:3]
    return v64, vld, max(s1, s2), alt


def _loss_dims(prog):
    return prog.main.body.dims


NOISE: collections.Counter = collections.Counter()


def close(got, v64, vld, scale, alt=None, rtol=1e-9):
    """Elementwise agreement with the float64 or the long-double value (NaN == NaN, inf == inf);
    the tolerance grows with the evaluator's own float64 error at this point. `alt`: the
    values where a sum over one -0 is -0 (either convention is right, README "Numerics"), and
    whether a sum added +inf to -inf (its NaN may be +-inf where a factor left the sum first)."""
    if _close(got, v64, vld, scale, rtol):
        return True
    signed = alt and alt["signed"]
    if signed and _close(got, *signed, rtol):
        NOISE["value: jax's way: a sum over one -0 kept -0, x * float(false) is 0 (README)"] += 1
        return True
    if alt and alt["inf_cancel"]:
        g = np.asarray(got, dtype=np.float64)
        if g.shape == v64.shape:
            g = np.where(np.isnan(v64) & np.isinf(g), np.nan, g)
            if _close(g, v64, vld, scale, rtol):
                NOISE["value: +inf + -inf in a sum of products, a factor taken out (README)"] += 1
                return True
    if alt and alt.get("den_inf"):
        g = np.asarray(got, dtype=np.float64)
        if g.shape == v64.shape:
            g = np.where(np.isnan(v64) & (g == 0), np.nan, g)
            if _close(g, v64, vld, scale, rtol):
                NOISE["value: a weighted mean's NaN weight sum was +-inf, a factor taken out"] += 1
                return True
    if alt and alt.get("zero_sign"):
        g = np.asarray(got, dtype=np.float64)
        if g.shape == v64.shape:
            g = np.where(np.isinf(v64) & np.isinf(g), v64, g)
            if _close(g, v64, vld, scale, rtol):
                NOISE["value: x / 0 took the other zero's sign (README Signed zeros)"] += 1
                return True
    return False


def _close(got, v64, vld, scale, rtol):
    got = np.asarray(got, dtype=np.float64)
    if got.shape != v64.shape:
        return False
    if math.isinf(scale):
        NOISE["value: not compared (a sum cancelled to rounding noise)"] += 1
        return True
    ld = np.asarray(vld, dtype=np.longdouble)
    with np.errstate(invalid="ignore"):  # (inf - inf where both are inf: NaN, no tolerance)
        tol = rtol * np.abs(ld) + 10 * np.abs(v64.astype(np.longdouble) - ld) + 1e-13 * scale
    tol += 1e-300
    ok = np.zeros(got.shape, dtype=bool)
    for ref in (v64.astype(np.longdouble), ld):
        g = got.astype(np.longdouble)
        same = (np.isnan(g) & np.isnan(ref)) | (g == ref)
        with np.errstate(all="ignore"):
            near = (
                np.isfinite(g) & np.isfinite(ref) & (np.abs(g - ref) <= np.nan_to_num(tol, nan=0))
            )
        ok |= same | near
    return bool(ok.all())


# ---------------------------------------------------------------------------------------------
# Backends and schedules


_BK: dict = {}


def backend_mods():
    if not _BK:
        import os

        os.environ.setdefault("JAX_ENABLE_X64", "1")
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import torch

        _BK.update(torch=torch, jax=jax, jnp=jnp)
    return _BK


def to_backend(backend, a):
    m = backend_mods()
    if backend == "numpy":
        return a
    if backend == "torch":
        return m["torch"].from_numpy(np.array(a))  # (ascontiguousarray makes 0-d arrays 1-d)
    return m["jnp"].asarray(a)


def to_np(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


PARAM_FORMS = ("py", "np_scalar", "np0d", "tensor", "baked")


def param_form(backend, kind, v, form):
    m = backend_mods()
    if form == "py":
        return {"float": float, "int": int, "bool": bool}[kind](v)
    np_t = {"float": np.float64, "int": np.int64, "bool": np.bool_}[kind]
    if form == "np_scalar":
        return np_t(v)
    if form == "np0d" or backend == "numpy":
        return np.asarray(v, dtype=np_t)
    if backend == "torch":
        t = {"float": m["torch"].float64, "int": m["torch"].int64, "bool": m["torch"].bool}[kind]
        return m["torch"].tensor(v, dtype=t)
    return m["jnp"].asarray(v, dtype=np_t)


# ---------------------------------------------------------------------------------------------
# One case


@dataclass
class Failure:
    cls: str  # value/<target> | nonfinite/<target> | grad/<target> | crash/<where>/<Exc> | ...
    detail: str
    source: str
    inputs: dict
    params: dict
    reduction: str | None
    expected: object = None
    got: object = None
    known: str | None = None  # the KNOWN_BUGS tag this failure is attributed to
    replay: tuple | None = None  # (Prog, sub): Runner.check(*replay) runs it again


def risky_pool():
    return [
        "t0",
        "t1",
        "r0",
        "n",
        "fdt",
        "dev",
        "odt",
        "reduction",
        "check_indices",
        "_prod",
        "world",
        "rank",
        "B_all",
        "lambda",
        "object",
        "eval",
        "jnp",
        "np",
        "torch",
        "F",
        "lax",
        "math",
        "input",
        "sum",
        "mean",
        "exp",
        "x_",
        "_f__general",
        "self",
        "None",
        "True",
        "def",
        "class",
        "return",
        "group",
        "grads",
        "axis_name",
        "shape",
        "float64",
        "of",
        "by",
        "empty",
        "over",
        "mask",
        "use",
        "max",
        "where",
        "loss",
        "param",
        "let",
        "reduce",
        "import",
        "index",
        "int",
        "float",
        "bool",
        "inf",
        "nan",
        "true",
        "false",
        "size",
        "__init__",
        "_",
        "x",
        "logits",
        "target",
        "weight",
        "out",
        "args",
        "kwargs",
        "mode",
        "schedule",
        "chunk",
        "shard",
        "key",
        "dim",
        "B",
    ]


_ACCEPT: dict = {}


def accepted(role: str) -> list:
    """The risky names the language accepts in `role` (input, dim, param, let, loss): probed once
    by compiling a tiny spec on numpy (a LossError rejection is the language's right)."""
    import lossdsl
    from lossdsl.errors import LossError

    if role not in _ACCEPT:
        tpl = {
            "input": "loss f({n}: float[B]) {{\n    {n}\n}}\n",
            "dim": "loss f(x: float[{n}]) {{\n    x\n}}\n",
            "param": "loss f(x: float[B]) {{\n    param {n}: float = 1.0\n    x * {n}\n}}\n",
            "let": "loss f(x: float[B]) {{\n    let {n} = x\n    {n}\n}}\n",
            "loss": "loss {n}(x: float[B]) {{\n    x\n}}\n",
        }[role]
        ok = []
        for n in risky_pool():
            try:
                lossdsl.parse(tpl.format(n=n)).compile("numpy")
                ok.append(n)
            except LossError:
                pass
            except Exception:  # a crash: the fuzz cases report it
                ok.append(n)
        _ACCEPT[role] = ok
    return _ACCEPT[role]


def renaming(prog: Prog, rng: random.Random) -> Names:
    """A random injective renaming of every identifier and dim to risky names."""
    used = set(USE_NAMES) | set(IMPORTS) | {"huber", "delta"}
    ids, dims = {}, {}
    taken = set(used)

    def pick(role, old):
        pool = [n for n in accepted(role) if n not in taken]
        if not pool or rng.random() < 0.25:
            return old
        n = rng.choice(pool)
        taken.add(n)
        return n

    all_dims = {base(d) for i in prog.main.inputs for d in i.dims}
    for h in prog.helpers:
        all_dims |= {base(d) for i in h.inputs for d in i.dims}
    for ld in [prog.main, *prog.helpers]:
        taken |= {i.name for i in ld.inputs} | {p.name for p in ld.params}
        taken |= {st[1] for st in ld.stmts if st[0] == "let"} | {ld.name}
        for st in ld.stmts:
            if st[0] == "let" and st[2].op in ("repeat", "scan"):
                taken |= {st[2].a("state"), st[2].a("slice")} - {None}
    taken |= all_dims
    for d in sorted(all_dims):
        dims[d] = pick("dim", d)
    taken |= set(dims.values())
    for ld in [prog.main, *prog.helpers]:
        ids[ld.name] = pick("loss", ld.name)
        for i in ld.inputs:
            ids[i.name] = pick("input", i.name)
        for p in ld.params:
            ids[p.name] = pick("param", p.name)
        for st in ld.stmts:
            if st[0] == "let":
                ids[st[1]] = pick("let", st[1])
                for role in ("state", "slice"):  # a loop's names: let-like
                    if st[2].op in ("repeat", "scan") and st[2].a(role):
                        ids[st[2].a(role)] = pick("let", st[2].a(role))
    # a name used as both a dim and an identifier of the same loss is an error: keep them apart
    return Names(ids, dims)


def known_tags(prog: Prog, nm: Names | None, arrs: dict, fail_cls: str, detail="") -> set:
    """The KNOWN_BUGS tags that may excuse this failure: the program's own, and the open
    classes that any program may hit (each excuses only its own failure class)."""
    import re

    tags = set(prog.tags)
    return {t for t in tags & set(KNOWN_BUGS) if re.search(KNOWN_BUGS[t][1], fail_cls)}


def _dims_used(e: E, out: set):
    out |= set(e.dims)
    for a in e.args:
        if isinstance(a, E):
            _dims_used(a, out)


class Runner:
    """Runs generated programs against every backend and schedule; collects failures."""

    def __init__(self, seed: int, cfg: Cfg | None = None, grads=True, rename=True, schedules=True):
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        self.cfg = cfg or Cfg()
        self.grads, self.rename, self.schedules = grads, rename, schedules
        self.counts: Counter = Counter()
        self.failures: dict[str, list[Failure]] = {}
        self.minimal: dict[str, Failure] = {}
        self.found: list = []

    # -- bookkeeping ---------------------------------------------------------------------
    def fail(self, f: Failure, prog: Prog, nm=None, arrs=None):
        tags = known_tags(prog, nm, arrs or {}, f.cls, str(f.detail))
        f.known = next(iter(sorted(tags)), None)  # excused by a KNOWN_BUGS entry
        self.found.append(f)

    def record(self, fs: list):
        for f in fs:
            key = f.cls + (" [xfail: " + f.known + "]" if f.known else "")
            self.counts[key] += 1
            self.failures.setdefault(key, []).append(f)

    # -- one program -----------------------------------------------------------------------
    def case(self):
        prog = gen_prog(self.rng, self.cfg)
        sub = self.rng.randrange(2**32)
        self.last = (render_prog(prog), sub)  # named by a fuzzer error (Runner.run)
        fs = self.check(prog, sub)
        self.record(fs)
        return prog, sub, fs

    def check(self, prog: Prog, sub: int) -> list:
        """Every check of one program; `sub` seeds the inputs and the choices, so a shrunk
        program with the same declarations replays the same inputs (see `minimize`)."""
        import lossdsl
        from lossdsl.errors import LossError

        self.found = []
        self.crng, self.nrng = random.Random(sub), np.random.default_rng(sub)
        src = render_prog(prog)
        self.counts["programs"] += 1
        try:
            spec = lossdsl.parse(src)
        except LossError as e:
            if "has no gradient" in str(e):  # by design: the generator made a constant loss
                self.counts["rejected: loss has no gradient (by design)"] += 1
                return self.found
            if type(e).__name__ == "ConstantError" and "overflows float64" in str(e):
                # README, "Params": a constant that overflows float64 is an error at its
                # expression (the generator multiplied 1e300 by 1e300)
                self.counts["rejected: a constant overflows float64 (by design)"] += 1
                return self.found
            self.fail(
                Failure(
                    f"reject/{type(e).__name__}: {_msg_class(e)}", str(e)[:600], src, {}, {}, None
                ),
                prog,
            )
            return self.found
        except Exception as e:
            self.fail(Failure(f"crash/parse/{type(e).__name__}", _tb(), src, {}, {}, None), prog)
            return self.found
        rng = self.crng
        mode = rng.choice(["safe", "safe", "extreme", "extreme", "batch"])
        arrs, sizes, sp = make_inputs(prog, self.nrng, mode)
        params = {p.name: self._param_value(p) for p in prog.main.params}
        reductions = [None, "none", "sum", "mean"]
        forms = {b: rng.choice(PARAM_FORMS) for b in ("numpy", "torch", "jax")}
        for backend in ("numpy", "torch", "jax"):
            self.check_plain(
                spec, prog, src, backend, arrs, sizes, sp, params, reductions, forms[backend]
            )
        if self.schedules and prog.main.inputs[0].name == "x":
            self.check_chunked(spec, prog, src, arrs, sizes, sp, params)
        if self.grads and mode == "safe":
            for backend in ("torch", "jax"):
                self.check_grad(spec, prog, src, backend, arrs, sizes, sp, params)
        if self.rename:
            self.check_rename(spec, prog, src, arrs, params)
        return self.found

    def _param_value(self, p: Par):
        if p.kind == "bool":
            return self.crng.random() < 0.5
        if p.name.startswith("wk"):  # a window's size (Gen's window): 1 to 3 taps
            return self.crng.choice([1, 2, 3])
        if p.name.startswith("ws"):  # blur's sigma
            return self.crng.choice([0.5, 1.5, 2.0])
        if p.kind == "int":
            return self.crng.choice([0, 1, 2, -100])
        vals = [0.0, 0.5, 2.0, 1.5]
        if p.lo is None:
            vals += [-0.25, -1.0]
        return self.crng.choice(vals)

    def call(self, spec, backend, prog, arrs, params, reduction, form, schedule="plain"):
        baked = {}
        kw = {}
        for p in prog.main.params:
            if form == "baked":
                baked[p.name] = params[p.name]
            else:
                kw[p.name] = param_form(backend, p.kind, params[p.name], form)
        if schedule == "plain":
            fn = spec.compile(backend, **baked)
        elif schedule == "chunked":
            fn = spec.compile("torch", schedule="chunked", chunk=2, **baked)
        else:
            fn = spec.compile_linear(*schedule, **baked)
        args = [to_backend(backend, arrs[i.name]) for i in prog.main.inputs if i.name in arrs]
        if reduction is not None:
            kw["reduction"] = reduction
        return fn(*args, **kw)

    def check_plain(self, spec, prog, src, backend, arrs, sizes, sp, params, reductions, form):
        from lossdsl.errors import LossError

        for red in reductions:
            self.counts[f"calls/{backend}"] += 1
            try:
                got = to_np(self.call(spec, backend, prog, arrs, params, red, form))
            except LossError as e:
                if type(e).__name__ == "InputError" and "needs at least" in str(e):
                    if expects_too_small(prog, arrs, sp, params, sizes, red):
                        self.counts["too-small dim: InputError as README says"] += 1
                        continue
                self.fail(
                    Failure(
                        f"error/{backend}/{type(e).__name__}", f"{e}"[:800], src, arrs, params, red
                    ),
                    prog,
                    arrs=arrs,
                )
                return
            except Exception as e:
                self.fail(
                    Failure(
                        f"crash/{backend}/{type(e).__name__}",
                        _tb(),
                        src,
                        arrs,
                        dict(params, _form=form),
                        red,
                    ),
                    prog,
                    arrs=arrs,
                )
                return
            v64, vld, scale, alt = expected(prog, arrs, sp, params, sizes, red)
            if close(got, v64, vld, scale, alt):
                continue
            cls = "value"
            if np.isnan(got).any() and not np.isnan(v64).any() and not np.isnan(vld).any():
                cls = "nan"
            elif got.shape != v64.shape:
                cls = "shape"
            if form not in ("py", "baked"):
                try:
                    got2 = to_np(self.call(spec, backend, prog, arrs, params, red, "py"))
                    if close(got2, v64, vld, scale, alt):
                        cls = f"param-form/{form}"
                except Exception:
                    pass
            self.fail(
                Failure(
                    f"{cls}/{backend}",
                    f"form={form}",
                    src,
                    arrs,
                    params,
                    red,
                    np.asarray(vld, dtype=np.float64),
                    got,
                ),
                prog,
                arrs=arrs,
            )
            return

    def check_chunked(self, spec, prog, src, arrs, sizes, sp, params):
        from lossdsl.errors import LossError

        if "x" not in arrs:
            return
        for red in ("sum", "mean"):
            v64, vld, scale, alt = expected(prog, arrs, sp, params, sizes, red)
            for sched, name in (("chunked", "torch-chunked"),):
                try:
                    got = to_np(self.call(spec, "torch", prog, arrs, params, red, "py", sched))
                except LossError:
                    self.counts["chunked: no plan (LossError)"] += 1
                    return
                except Exception as e:
                    self.fail(
                        Failure(f"crash/{name}/{type(e).__name__}", _tb(), src, arrs, params, red),
                        prog,
                        arrs=arrs,
                    )
                    return
                self.counts[f"calls/{name}"] += 1
                if alt["lse_absorbs"]:
                    self.counts["chunked: not compared (softmax beyond 2^52, README)"] += 1
                    continue
                if not close(got, v64, vld, scale, alt):
                    self.fail(
                        Failure(
                            f"value/{name}",
                            "",
                            src,
                            arrs,
                            params,
                            red,
                            np.asarray(vld, np.float64),
                            got,
                        ),
                        prog,
                        arrs=arrs,
                    )
                    return
            # the linear-fused schedules: logits = h @ W.T
            if arrs["x"].shape[1] == 0:
                continue
            B, C = arrs["x"].shape
            h = self.nrng.standard_normal((B, 2))
            W = self.nrng.standard_normal((C, 2))
            a2 = dict(arrs, x=h @ W.T)
            v64, vld, scale, alt = expected(prog, a2, sp, params, sizes, red)
            for backend, kw, name in (
                ("torch", {"chunk": 2}, "torch-linear"),
                ("torch", {"rows": 1}, "torch-linear-rows"),
                ("jax", {"rows": 2}, "jax-linear-rows"),
            ):
                try:
                    fn = spec.compile_linear(backend, **kw)
                    rest = [
                        to_backend(backend, arrs[i.name])
                        for i in prog.main.inputs[1:]
                        if i.name in arrs
                    ]
                    got = to_np(
                        fn(
                            to_backend(backend, h),
                            to_backend(backend, W),
                            *rest,
                            reduction=red,
                            **params,
                        )
                    )
                except LossError:
                    self.counts[f"{name}: rejected (LossError)"] += 1
                    continue
                except Exception as e:
                    self.fail(
                        Failure(f"crash/{name}/{type(e).__name__}", _tb(), src, a2, params, red),
                        prog,
                        arrs=a2,
                    )
                    continue
                self.counts[f"calls/{name}"] += 1
                if not close(got, v64, vld, scale, alt):
                    self.fail(
                        Failure(
                            f"value/{name}",
                            "logits = h @ W.T",
                            src,
                            a2,
                            params,
                            red,
                            np.asarray(vld, np.float64),
                            got,
                        ),
                        prog,
                        arrs=a2,
                    )

    def check_grad(self, spec, prog, src, backend, arrs, sizes, sp, params):
        """<grad, u> from the backend vs a central difference of the evaluator along u."""
        m = backend_mods()
        fl_names = [i.name for i in prog.main.inputs if i.kind == "float" and i.name in arrs]
        if not fl_names or any(arrs[n].size == 0 for n in fl_names):
            return
        red = self.crng.choice([None, "sum", "mean"])
        if prog.main.reduce and prog.main.reduce[0] == "none" and red is None:
            red = "sum"
        v0, _, scale, _ = expected(prog, arrs, sp, params, sizes, red)
        if not np.isfinite(v0).all():
            return
        # the smallest change a finite difference sees next to the largest intermediate (at
        # 1e300 - w, long double's ulp is 1e281: a step of 1e-4 in w changes nothing)
        blind = 10 * scale * float(np.finfo(np.longdouble).eps) / 5e-5
        if math.isinf(scale):  # the value is rounding noise (a cancelled sum, the variance of
            # equal entries as a weight): so is its derivative (jax's var of three equal
            # entries is 1e-33, its gradient through a weighted mean's 1 / sum(w) 1e30)
            self.counts["grad: skipped (the value is rounding noise)"] += 1
            return
        if _compares_declared_gradient(prog):
            # a finite difference holds a declared gradient's value at the base point (y0 +
            # g0 (x - x0)): compared (custom_grad(v, ..) != v), it flips where the value does not
            self.counts["grad: skipped (a declared gradient's value compared)"] += 1
            return
        u = {n: self.nrng.standard_normal(arrs[n].shape) for n in fl_names}

        stiff: list = []

        def f(h, dt):
            a = {k: (v + h * u[k] if k in u else v) for k, v in arrs.items()}
            base_pt = (flat(prog, arrs, sp), params)
            val, _ = evaluate(
                prog, flat(prog, a, sp), params, sizes, red, dt, frozen=base_pt, stiff=stiff
            )
            return val

        def diffs(dt):
            fd = []
            for h in (1e-4, 5e-5):
                fp, fm = f(h, dt), f(-h, dt)
                if not (np.isfinite(fp) and np.isfinite(fm)):
                    return None
                fd.append((fp - fm) / (2 * h))
            return fd

        fd = diffs(np.longdouble)
        if fd is None:
            return
        if stiff:
            self.counts[f"grad: skipped ({stiff[0]})"] += 1
            return
        if abs(fd[0] - fd[1]) > 1e-6 * (1 + abs(fd[1])):
            self.counts["grad: skipped (not smooth here)"] += 1
            return
        try:
            if backend == "torch":
                torch = m["torch"]
                ts = {k: torch.from_numpy(np.array(v)) for k, v in arrs.items()}
                for n in fl_names:
                    ts[n].requires_grad_(True)
                fn = spec.compile("torch")
                args = [ts[i.name] for i in prog.main.inputs if i.name in ts]
                out = fn(*args, **({} if red is None else {"reduction": red}), **params)
                gs = torch.autograd.grad(out, [ts[n] for n in fl_names], allow_unused=True)
                gs = [
                    np.zeros(arrs[n].shape) if g is None else g.numpy()
                    for n, g in zip(fl_names, gs)
                ]
            else:
                jax, jnp = m["jax"], m["jnp"]
                fn = spec.compile("jax")
                names = [i.name for i in prog.main.inputs if i.name in arrs]

                def loss(*fargs):
                    full = dict(zip(fl_names, fargs))
                    args = [full.get(n, jnp.asarray(arrs[n])) for n in names]
                    return fn(*args, **({} if red is None else {"reduction": red}), **params)

                gs = jax.grad(loss, argnums=tuple(range(len(fl_names))))(
                    *[jnp.asarray(arrs[n]) for n in fl_names]
                )
                gs = [np.asarray(g) for g in gs]
        except Exception as e:
            if "does not require grad" in str(e):  # an absent optional input made it constant
                self.counts["grad: skipped (constant loss)"] += 1
                return
            if type(e).__name__ == "InputError" and "needs at least" in str(e):
                if expects_too_small(prog, arrs, sp, params, sizes, red):  # as check_plain
                    self.counts["grad: too-small dim, InputError as README says"] += 1
                    return
            self.fail(
                Failure(f"crash/grad-{backend}/{type(e).__name__}", _tb(), src, arrs, params, red),
                prog,
                arrs=arrs,
            )
            return
        self.counts[f"grads/{backend}"] += 1
        if not all(np.isfinite(g).all() for g in gs):
            at: list[str] = []
            evaluate(prog, flat(prog, arrs, sp), params, sizes, red, np.float64, singular=at)
            if at:  # README, "Edge cases": an infinite local derivative times 0 is NaN, and
                # a NaN max/min reduction's backward is NaN even where the loss masks it
                self.counts["grad: NaN at a singular point, as README says"] += 1
                return
        dot = sum(float((g * u[n]).sum()) for g, n in zip(gs, fl_names))
        mag = sum(float(np.abs(g * u[n]).sum()) for g, n in zip(gs, fl_names))
        want = float(fd[1])

        def close(want):
            return abs(dot - want) <= 1e-5 * (abs(want) + mag) + 1e-8

        if not close(want) and abs(dot - want) <= blind:
            self.counts["grad: not resolved (a finite difference beside a huge intermediate)"] += 1
            return
        if not close(want):
            # as for values: float64's own meaning (an intermediate that overflows float64, the
            # square of 1e300 in a norm, is finite in long double) is a right answer too
            fd64 = diffs(np.float64)
            if fd64 is not None and close(float(fd64[1])):
                self.counts["grad: float64's meaning (an intermediate overflows)"] += 1
                return
            self.fail(
                Failure(
                    f"grad/{backend}",
                    f"<grad,u> {dot!r} vs finite difference {want!r}",
                    src,
                    arrs,
                    params,
                    red,
                    want,
                    dot,
                ),
                prog,
                arrs=arrs,
            )

    def check_rename(self, spec, prog, src, arrs, params):
        import lossdsl
        from lossdsl.errors import LossError

        nm = renaming(prog, self.crng)
        src2 = render_prog(prog, nm)
        backend = self.crng.choice(["numpy", "torch", "jax"])
        red = self.crng.choice([None, "none", "sum", "mean"])
        self.counts["renamings"] += 1
        try:
            ref = to_np(self.call(spec, backend, prog, arrs, params, red, "py"))
        except Exception:
            return  # reported by check_plain
        try:
            spec2 = lossdsl.parse(src2)
            fn = spec2.compile(backend)
            args = [to_backend(backend, arrs[i.name]) for i in prog.main.inputs if i.name in arrs]
            kw = {nm.i(p.name): params[p.name] for p in prog.main.params}
            if red is not None:
                kw["reduction"] = red
            got = to_np(fn(*args, **kw))
        except LossError as e:
            self.fail(
                Failure(
                    f"rename-error/{type(e).__name__}: {_msg_class(e)}",
                    str(e)[:800],
                    src2,
                    arrs,
                    params,
                    red,
                ),
                prog,
                nm,
                arrs,
            )
            return
        except Exception as e:
            self.fail(
                Failure(
                    f"rename-crash/{backend}/{type(e).__name__}", _tb(), src2, arrs, params, red
                ),
                prog,
                nm,
                arrs,
            )
            return
        if got.shape != ref.shape or not np.array_equal(got, ref, equal_nan=True):
            self.fail(
                Failure(
                    f"rename/{backend}",
                    f"unrenamed source:\n{src}",
                    src2,
                    arrs,
                    params,
                    red,
                    ref,
                    got,
                ),
                prog,
                nm,
                arrs,
            )

    def run(self, seconds: float, max_cases: int | None = None, minimize_new=False):
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end and (max_cases is None or n < max_cases):
            n += 1
            try:
                prog, sub, fs = self.case()
                for f in fs:
                    f.replay = (prog, sub)
                    key = f.cls + (" [xfail: " + f.known + "]" if f.known else "")
                    if minimize_new and key not in self.minimal:
                        self.minimal[key] = minimize(self, prog, sub, f.cls) or f
            except Exception:  # a bug of the fuzzer itself: count it, keep going
                self.counts["fuzzer errors"] += 1
                self.failures.setdefault("fuzzer-error", []).append(
                    Failure("fuzzer-error", _tb(), getattr(self, "last", ("",))[0], {}, {}, None)
                )
        return self


def _subexprs(e: E, path=()):
    yield path, e
    for k, a in enumerate(e.args):
        if isinstance(a, E):
            yield from _subexprs(a, path + (k,))


def _replace(e: E, path, new: E) -> E:
    if not path:
        return new
    args = list(e.args)
    args[path[0]] = _replace(args[path[0]], path[1:], new)
    return replace(e, args=tuple(args))


def _candidates(e: E):
    """Smaller expressions of e's type: a node replaced by a child of the same kind and dims,
    or a scalar subexpression replaced by 1."""
    one = E("num", (), (("v", 1.0),))
    for path, n in _subexprs(e):
        for c in n.args:
            if (
                isinstance(c, E)
                and c.dims == n.dims
                and (c.kind == n.kind or {c.kind, n.kind} <= {"float", "int"})
            ):
                yield _replace(e, path, c)
        if not n.dims and n.kind == "float" and n.op != "num":
            yield _replace(e, path, one)


def minimize(runner: Runner, prog: Prog, sub: int, cls: str, budget: int = 80) -> Failure | None:
    """Greedy shrinking of the body, the lets and the reduce statement while `cls` still fails
    with the same inputs (replayed from `sub`). Returns the last failure seen (or None)."""
    import copy

    best, last = prog, None
    saved = (runner.counts.copy(), runner.found)
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        cands = []
        m = best.main
        if m.reduce is not None:
            p2 = copy.deepcopy(best)
            p2.main.reduce = None
            cands.append(p2)
        for k, st in enumerate(m.stmts):
            if st[0] == "let":
                for e2 in _candidates(st[2]):
                    p2 = copy.deepcopy(best)
                    p2.main.stmts[k] = ("let", st[1], e2)
                    cands.append(p2)
        for e2 in _candidates(m.body):
            p2 = copy.deepcopy(best)
            p2.main.body = e2 if e2.kind == "float" else E("float", (e2,), (), "float", e2.dims)
            cands.append(p2)
        for p2 in cands:
            if tries >= budget:
                break
            tries += 1
            _prune(p2)
            try:
                fs = runner.check(p2, sub)
            except Exception:
                continue
            hit = [f for f in fs if f.cls == cls]
            if hit:
                best, last, improved = p2, hit[0], True
                last.replay = (p2, sub)
                break
    runner.counts, runner.found = saved
    return last


def _prune(p: Prog):
    """Drop lets, helpers and imports the program no longer uses."""
    txt = render_prog(p)
    names = set()
    for ex in (
        [p.main.body]
        + [st[2] for st in p.main.stmts if st[0] == "let"]
        + ([p.main.reduce[1]] if p.main.reduce and p.main.reduce[1] is not None else [])
    ):
        for _, n in _subexprs(ex):
            if n.op == "ref":
                names.add(n.a("name"))
            if n.op == "call":
                names.add(n.a("callee"))
    p.main.stmts = [st for st in p.main.stmts if st[0] != "let" or st[1] in names]
    p.helpers = [h for h in p.helpers if h.name in names]
    p.imports = [i for i in p.imports if i in names]
    del txt


def _msg_class(e) -> str:
    """An error message with its names and dims blanked: one class per kind of message."""
    import re

    first = str(e).split("error: ", 1)[-1].splitlines()[0]
    first = re.sub(r"'[^']*'", "'_'", first)
    first = re.sub(r"\[[^\]]*\]", "[..]", first)
    first = re.sub(r"\w*\(.*\)", "f(..)", first)
    return re.sub(r"\b\d+(\.\d+)?\b", "N", first)[:70]


def _tb() -> str:
    return "".join(traceback.format_exc().splitlines(True)[-6:])


def report(r: Runner) -> str:
    lines = ["difffuzz counts:"]
    for k, v in sorted((r.counts + NOISE).items()):
        lines.append(f"  {k}: {v}")
    fails = {k: v for k, v in r.failures.items() if "[xfail" not in k}
    xf = {k: v for k, v in r.failures.items() if "[xfail" in k}
    lines.append(f"failure classes: {len(fails)} new, {len(xf)} known (KNOWN_BUGS xfail list):")
    for k, (what, pat) in KNOWN_BUGS.items():
        lines.append(f"  xfail-list: {k}: {what} (excuses classes matching {pat!r})")
    return "\n".join(lines)


def describe(f: Failure) -> str:
    def show(a):
        if isinstance(a, np.ndarray):  # a comment on every line: the file parses as it is
            return np.array2string(a, precision=17, separator=", ", threshold=50).replace(
                "\n", "\n#     "
            )
        return repr(a)

    ins = "\n".join(f"#   {k} = {show(v)}" for k, v in f.inputs.items())
    return (
        f"# class: {f.cls}" + (f"  (known: {f.known})" if f.known else "") + "\n"
        f"# reduction={f.reduction!r} params={f.params!r}\n# inputs:\n{ins}\n"
        f"# expected: {show(f.expected)}\n# got:      {show(f.got)}\n"
        + "".join(f"# {ln}\n" for ln in str(f.detail).splitlines()[-8:])
        + f.source
    )
