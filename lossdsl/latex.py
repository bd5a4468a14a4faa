r"""Spec -> LaTeX: a spec's formula as its author wrote it (`lossdsl latex NAME`, docs/specs.md).

Rendered from the AST (lossdsl/ast.py), before lowering and every rewrite of the compiler: one
line per `let` under the author's name (`\mathrm{valid} = ...`), the names a `use` binds that
the loss reads (`\mathrm{CE} = -\log p_t`), a local helper loss as `f(x, y) = ..., where` over
its own lines, a loop as its step on indented lines under the line that runs it, then the loss
`\ell = ...` and a written `reduce` as `\mathcal{L} = ...`.

Each line is a formula of its own. Two dialects differ only in how a `where` is drawn:
"latex" (`spec_latex`: an `aligned` block, for papers and the docs' MathJax) writes `cases`;
"mathtext" (`formula_lines`: one formula per line, for matplotlib, which has neither `cases`
nor `aligned`) writes a brace over a rule-less \genfrac stack. tests/test_docs.py renders every
shipped spec's lines with matplotlib's mathtext.

FUNCTIONS is the one table of LaTeX templates: one per surface function (lossdsl.lower.FUNCTIONS,
`grad` and the loops `repeat` and `scan`), and TASKS one per name a `use` binds;
tests/test_docs.py checks that they cover exactly those."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from lossdsl import ast
from lossdsl.lower import FUNCTIONS as SURFACE

# Binding strength of a rendered expression, loosest first.
OR, AND, CMP, ADD, MUL, NEG, POW, ATOM = 1, 2, 3, 4, 5, 6, 7, 8


@dataclass(frozen=True)
class R:
    r"""A rendered expression. `prec`: how tightly it binds where it ends the enclosing text;
    `tail`: where something follows it (`\sum_C x` ends open: `\sum_C x \, y` would read the y
    into the sum, so it binds as a product only at the end). `sup`/`sub`: takes a superscript
    or a subscript as it is (`p_t` has its subscript; `e^{x}` its superscript)."""

    text: str
    prec: int = ATOM
    tail: int | None = None
    sup: bool = True
    sub: bool = True

    @property
    def after(self) -> int:
        return self.prec if self.tail is None else self.tail

    def put(self, need: int, end: bool = False, script: str = "", lead: bool = False) -> str:
        r"""The text where an operand binding at least `need` goes (`end`: nothing follows it
        in the enclosing operator; `script`: "^" or "_" when it is the base of one; `lead`:
        it starts a product, where a minus sign means the same whether it binds the factor
        or the product: -a \, b)."""
        strength = self.prec if end else self.after
        bad = strength < need
        bad |= need >= MUL and self.text.startswith("-") and not lead  # a \, -b, a - -b
        bad |= script == "^" and not self.sup or script == "_" and not self.sub
        return rf"\left({self.text}\right)" if bad else self.text

    def __format__(self, spec: str) -> str:
        """In a template: `{x}` is enclosed (a fraction, braces, parentheses), `{x:6}` an operand
        binding at least 6 that something follows, `{x:6$}` one at the end, `{x:^}` / `{x:_}`
        the base of a superscript / subscript."""
        if not spec:
            return self.text
        if spec in ("^", "_"):
            return self.put(ATOM, script=spec)
        return self.put(int(spec.rstrip("$")), end=spec.endswith("$"))


EMPTY = R("")


def _paren(text: str) -> str:
    return rf"\left({text}\right)"


# ---- names ------------------------------------------------------------------------------

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega",
}  # fmt: skip
# the names the task preludes bind, as the papers write them
NAMED = {"pt": "p_t", "logpt": r"\log p_t", "logp": r"\log p", "ce": r"\mathrm{CE}"}
NAMED |= {"bce": r"\mathrm{BCE}"}


def _word(name: str) -> str:
    return name.replace("_", r"\_")


def _letter(name: str) -> str | None:
    """A one-letter or greek name as a symbol; None for a word."""
    name = "epsilon" if name == "eps" else name
    if name in GREEK:
        return "\\" + name
    return name if len(name) == 1 else None


def symbol(name: str) -> str:
    r"""A spec name as a LaTeX symbol: greek letters (`gamma` \gamma, `eps` \epsilon),
    subscripts after one letter (`alpha_t` \alpha_{t}, `x1` x_{1}, `w_pos` w_{\mathrm{pos}}),
    any other word upright (`logits` \mathrm{logits})."""
    if name in NAMED:
        return NAMED[name]
    head = _letter(name)
    if head is not None:
        return head
    m = re.fullmatch(r"([A-Za-z]+?)(\d+)", name)
    if m and _letter(m[1]):
        return f"{_letter(m[1])}_{{{m[2]}}}"
    base, _, sub = name.partition("_")
    if sub and _letter(base):
        inner = sub if sub.isdigit() else ("_" not in sub and _letter(sub)) or _mathrm(sub)
        return f"{_letter(base)}_{{{inner}}}"
    return _mathrm(name)


def _mathrm(name: str) -> str:
    return r"\mathrm{" + _word(name) + "}"


def _name(name: str) -> R:
    s = symbol(name)
    if s.startswith(r"\log"):  # logp, logpt: an open operator, as log(x) renders
        return R(s, NEG, ADD)
    return R(s, sub=re.search(r"(?<!\\)_", s) is None)


def _operator(name: str) -> str:
    """A function's name: a letter (a critic D) or \\operatorname{word}."""
    return _letter(name) or r"\operatorname{" + _word(name) + "}"


def _number(text: str) -> R:
    if text == "inf":
        return R(r"\infty")
    if text == "nan":
        return R(r"\mathrm{NaN}")
    if text.startswith("3.14159265") and float(text) == math.pi:  # pi written out
        return R(r"\pi")
    mant, _, exp = text.lower().partition("e")
    if mant.startswith("."):
        mant = "0" + mant
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".") or "0"
    if not exp:
        return R(mant, sub=False)
    power = f"10^{{{int(exp)}}}"
    if mant == "1":
        return R(power, POW, sup=False, sub=False)
    return R(rf"{mant} \cdot {power}", MUL)


# ---- what a name holds: masks (float(m) is an Iverson bracket), indices and their dims --


@dataclass(frozen=True)
class Info:
    dtype: str = "float"  # float | int | bool | index | choice
    of: str | None = None  # the dim an index points into
    dims: tuple[str, ...] | None = None


def _type_info(t) -> Info:
    if isinstance(t, ast.TypeExpr):
        dims = tuple(d.name for d in t.dims) if t.dims is not None else ()
        return Info(t.dtype, t.of.name if t.of is not None else None, dims)
    return Info("fn")


_KEEPS = {"where", "expand", "prime", "shift", "stop_grad", "sort", "take", "clamp", "abs"}
_KEEPS |= {"relu", "max", "min", "unstack"}
_BOOL = {"topk", "eye"}


# ---- lines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """`lhs = rhs` (or `rhs` alone), `indent` steps in."""

    rhs: str
    lhs: str | None = None
    indent: int = 0

    def text(self) -> str:
        eq = f"{self.lhs} = {self.rhs}" if self.lhs is not None else self.rhs
        return r"\quad " * self.indent + eq

    def aligned(self) -> str:
        if self.indent == 0 and self.lhs is not None:
            return f"{self.lhs} &= {self.rhs}"
        return (
            "& "
            + r"\quad " * self.indent
            + (f"{self.lhs} = {self.rhs}" if self.lhs is not None else self.rhs)
        )


# ---- templates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class T:
    """A string template over a call's bound arguments (see R.__format__; a dim argument such as
    over= is its dims, `{over}`); an absent argument is empty, and so is a `_{}` or `^{}` left
    by it."""

    fmt: str
    prec: int = ATOM
    tail: int | None = None
    sup: bool = True
    sub: bool = True

    def __call__(self, r: Renderer, a: Args) -> R:
        fields = {k: a.dims(k) if k in DIM_ARGS else a.r(k) for k in _fields(self.fmt)}
        text = self.fmt.format(**fields)
        text = text.replace("_{}", "").replace("^{}", "")
        return R(text, self.prec, self.tail, self.sup, self.sub)


def _fields(fmt: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(fmt) if f}


DIM_ARGS = {"over", "dim", "a", "b"}  # (eye's a and b are dims)


def _literal(tex: str) -> str:
    return tex.replace("{", "{{").replace("}", "}}")


def _fn(name: str) -> T:
    """name(x), with the parentheses."""
    return T(_literal(name) + r"\left({x}\right)")


def _op(name: str) -> T:
    """A prefix operator on x (\\log x, \\log_{2} x): open to the right."""
    return T(_literal(name) + " {x:8$}", NEG, ADD)


def _cases(r: Renderer, a: Args) -> R:
    """where(c, x, y): a brace over `x if c` and `y otherwise`; where(c2, ...) in the else
    branch adds a row."""
    rows = []
    node = a.call
    while True:
        b = r.bind(node)
        if b is None or b.node("cond") is None:
            break
        rows.append((b.r("x").text, b.r("cond").text))
        y = b.node("y")
        if isinstance(y, ast.Call) and y.func == "where" and r.builtin(y.func):
            node = y
            continue
        rows.append((b.r("y").text, None))
        break
    if not rows:  # not where(cond, x, y): as the call it is
        return r._spec_call(a.call)
    if r.dialect == "latex":
        body = r" \\ ".join(
            rf"{x} & \mathrm{{if}}\ {c}" if c is not None else rf"{x} & \mathrm{{otherwise}}"
            for x, c in rows
        )
        return R(rf"\begin{{cases}} {body} \end{{cases}}", ATOM, 0)
    cells = [
        rf"{x} \quad \mathrm{{if}}\ {c}" if c is not None else rf"{x} \quad \mathrm{{otherwise}}"
        for x, c in rows
    ]
    stack = cells[-1]
    for cell in reversed(cells[:-1]):
        stack = rf"\genfrac{{}}{{}}{{0}}{{0}}{{{cell}}}{{{stack}}}"
    return R(rf"\left\{{{stack}\right.", ATOM, 0)


def _log1p(r: Renderer, a: Args) -> R:
    x = a.node("x")
    if isinstance(x, ast.Unary) and x.op == "-":  # log1p(-p): log(1 - p)
        return R(rf"\log\left(1 - {r.expr(x.operand):5$}\right)")
    return R(rf"\log\left(1 + {a.r('x')}\right)")


def _float(r: Renderer, a: Args) -> R:
    """A mask as numbers is its Iverson bracket; an int stays the number it is."""
    if r.info(a.node("x")).dtype == "bool":
        return R(rf"\mathbb{{1}}\left[{a.r('x')}\right]")
    return a.r("x")


def _mean(r: Renderer, a: Args) -> R:
    over, x = a.dims("over"), a.r("x")
    if a.node("mask") is not None:
        m = a.r("mask")
        return R(rf"\frac{{\sum_{{{over}}} {m:5} \, {x:6$}}}{{\sum_{{{over}}} {m:5$}}}")
    if not over:
        return R(rf"\operatorname{{mean}}\left({x}\right)")
    sizes = r"\,".join(f"|{d}|" for d in a.dim_list("over"))
    return R(rf"\frac{{1}}{{{sizes}}} \sum_{{{over}}} {x:5$}", NEG, ADD)


def _extremum(name: str) -> Callable:
    """max(x, y) elementwise; max(x, over=C) over C."""

    def fn(r: Renderer, a: Args) -> R:
        if a.node("y") is not None:
            return R(rf"\{name}\left({a.r('x')}, {a.r('y')}\right)")
        return T("\\" + name + r"_{{{over}}} {x:8$}", NEG, ADD)(r, a)

    return fn


def _clamp(r: Renderer, a: Args) -> R:
    x, lo, hi = a.r("x"), a.node("min"), a.node("max")
    if lo is not None and hi is not None:
        return R(rf"\operatorname{{clamp}}\left({x}, {a.r('min')}, {a.r('max')}\right)")
    if lo is not None:
        return R(rf"\max\left({x}, {a.r('min')}\right)")
    return R(rf"\min\left({x}, {a.r('max')}\right)")


def _lp(a: Args) -> str:
    """The subscript of a norm: its dims, and p= when it is not 2 (||x||_{D, p=1})."""
    parts = [a.dims("over")] if a.node("over") is not None else []
    p = a.node("p")
    if p is not None and not (isinstance(p, ast.Num) and p.value == 2):
        parts.append(f"p={a.r('p')}")
    return "_{" + ", ".join(parts) + "}" if parts else ""


def _flag(a: Args, name: str, mark: str) -> tuple[str, str]:
    """A bool option as a mark (reverse=true: an arrow), or as an option when not a literal."""
    v = a.node(name)
    if v is None or isinstance(v, ast.Bool) and not v.value:
        return "", ""
    if isinstance(v, ast.Bool):
        return f"^{{{mark}}}", ""
    return "", rf";\ \mathrm{{{_word(name)}}} = {a.r(name)}"


def _running(name: str) -> Callable:
    """cumsum(x, over=T, reverse=true): \\operatorname{cumsum}^{\\leftarrow}_{T}(x)."""

    def fn(r: Renderer, a: Args) -> R:
        mark, opt = _flag(a, "reverse", r"\leftarrow")
        sub = f"_{{{a.dims('over')}}}" if a.dims("over") else ""
        return R(rf"\operatorname{{{name}}}{mark}{sub}\left({a.r('x')}{opt}\right)")

    return fn


def _sort(r: Renderer, a: Args) -> R:
    mark, opt = _flag(a, "descending", r"\downarrow")
    sub = f"_{{{a.dims('over')}}}" if a.dims("over") else ""
    if a.node("by") is not None:  # x permuted as sorting the key permutes it
        perm = rf"\operatorname{{argsort}}{mark}{sub}\left({a.r('by')}{opt}\right)"
        return R(f"{a.r('x'):_}_{{{perm}}}", sub=False)
    return R(rf"\operatorname{{sort}}{mark}{sub}\left({a.r('x')}{opt}\right)")


def _options(a: Args, names: tuple[str, ...]) -> str:
    """The options given, after a semicolon: `; \\sigma = 1.5, \\mathrm{padding} = same`."""
    given = [rf"{symbol(n)} = {a.r(n)}" for n in names if a.node(n) is not None]
    return (r";\ " + ", ".join(given)) if given else ""


def _with_options(name: str, main: tuple[str, ...], opts: tuple[str, ...], bars=False) -> Callable:
    """name_{over}(x, main...; options), the windows and the frequency transforms."""

    def fn(r: Renderer, a: Args) -> R:
        over = a.dims("over")
        args = ", ".join(a.r(k).text for k in main if a.node(k) is not None)
        body = rf"{_operator(name)}{f'_{{{over}}}' if over else ''}\left({args}"
        body += _options(a, opts) + r"\right)"
        return R(rf"\left|{body}\right|" if bars else body)

    return fn


def _prime(r: Renderer, a: Args) -> R:
    """prime(x, C): x with its dim C renamed C'."""
    dims = [r.dim(d) for d in a.rest]
    if not dims:
        return R(f"{a.r('x'):^}'")
    new = ", ".join(f"{d}'" for d in dims)
    return R(rf"\left.{a.r('x')}\right|_{{{', '.join(dims)} \to {new}}}", sup=False, sub=False)


def _take(r: Renderer, a: Args) -> R:
    return R(f"{a.r('x'):_}_{{{a.r('index')}}}", sub=False)


def _grad(r: Renderer, a: Args) -> R:
    """grad(e, wrt=x): the gradient of the scalar e with respect to x."""
    e = a.call.args[0] if a.call.args else None
    wrt = next((k.value for k in a.call.kwargs if k.name == "wrt"), None)
    wrt_text = r.expr(wrt).text if wrt is not None else ""
    return R(rf"\nabla_{{{wrt_text}}}\left[{r.expr(e).text if e is not None else ''}\right]")


FUNCTIONS: dict[str, Callable[[Renderer, Args], R]] = {
    "exp": T(r"e^{{{x}}}", POW, sup=False),
    "log": _op(r"\log"),
    "log1p": _log1p,
    "expm1": T(r"e^{{{x}}} - 1", ADD),
    "log2": _op(r"\log_{2}"),
    "log10": _op(r"\log_{10}"),
    "sqrt": T(r"\sqrt{{{x}}}", sup=False),
    "abs": T(r"\left|{x}\right|"),
    "relu": T(r"\left[{x}\right]_{{+}}", sub=False),
    "sigmoid": _fn(r"\sigma"),
    "logsigmoid": _fn(r"\log\sigma"),
    "softplus": _fn(r"\operatorname{softplus}"),
    "erf": _fn(r"\operatorname{erf}"),
    "tanh": _fn(r"\tanh"),
    "sin": _fn(r"\sin"),
    "cos": _fn(r"\cos"),
    "atan": _fn(r"\arctan"),
    "asin": _fn(r"\arcsin"),
    "acos": _fn(r"\arccos"),
    "atan2": T(r"\operatorname{{atan2}}\left({y}, {x}\right)"),
    "sinh": _fn(r"\sinh"),
    "cosh": _fn(r"\cosh"),
    "asinh": _fn(r"\operatorname{arsinh}"),
    "acosh": _fn(r"\operatorname{arcosh}"),
    "atanh": _fn(r"\operatorname{artanh}"),
    "lgamma": _fn(r"\log\Gamma"),
    "digamma": _fn(r"\psi"),
    "log_ive": T(r"\log\tilde{{I}}_{{{v}}}\left({x}\right)"),
    "floor": T(r"\left\lfloor {x} \right\rfloor"),
    "ceil": T(r"\left\lceil {x} \right\rceil"),
    "round": _fn(r"\operatorname{round}"),
    "sign": _fn(r"\operatorname{sgn}"),
    "logaddexp": T(r"\log\left(e^{{{a}}} + e^{{{b}}}\right)"),
    "pow": T(r"{x:^}^{{{y}}}", POW, sup=False),
    "xlogy": T(r"{x:5} \log {y:8$}", MUL, ADD),
    "float": _float,
    "stop_grad": T(r"\operatorname{{sg}}\left[{x}\right]"),
    "where": _cases,
    "prime": _prime,
    "expand": lambda r, a: a.r("x"),  # named dims broadcast: the same values
    "diff": T(r"\Delta_{{{over}}} {x:6$}", NEG, ADD),  # \Delta_H \Delta_H x
    "shift": _with_options("shift", ("x", "by"), ("fill",)),
    "clamp": _clamp,
    # y's value, its gradient with respect to wrt declared to be grad
    "custom_grad": T(r"\left[{y}\right]_{{\nabla_{{{wrt}}} = {grad}}}", sub=False),
    # forward's value, backward's gradient: VQ-VAE's b + sg[f - b]
    "straight_through": T(
        r"{backward:4} + \operatorname{{sg}}\left[{forward} - {backward:5$}\right]", ADD
    ),
    # DANN's gradient reversal layer R_lambda(x)
    "grad_reverse": T(r"\operatorname{{GRL}}_{{{scale}}}\left({x}\right)"),
    # -log p(targets | log_probs) over every alignment (Graves et al. 2006, eq. 8)
    "ctc_nll": T(r"-\log p_{{\mathrm{{CTC}}}}\left({targets} \mid {log_probs}\right)", NEG),
    "max": _extremum("max"),
    "min": _extremum("min"),
    "sum": T(r"\sum_{{{over}}} {x:5$}", NEG, ADD),
    "logsumexp": T(r"\log\sum_{{{over}}} e^{{{x}}}", NEG, ADD),
    "var": T(r"\operatorname{{Var}}_{{{over}}}\left[{x}\right]"),
    "mean": _mean,
    "count": T(r"\sum_{{{over}}} \mathbb{{1}}\left[{x}\right]", NEG, ADD),
    "norm": lambda r, a: R(rf"\left\|{a.r('x')}\right\|{_lp(a)}", sub=False),
    "normalize": lambda r, a: R(
        rf"\frac{{{a.r('x')}}}{{\left\|{a.r('x')}\right\|{_lp(a)}}}", sup=False
    ),
    "argmax": T(r"\operatorname{{argmax}}_{{{over}}} {x:8$}", NEG, ADD),
    "unstack": lambda r, a: a.r("x"),  # let a, b = unstack(x, over=2): (a, b) = x
    "take": _take,
    "eigvalsh": T(r"\lambda\left({x}\right)"),
    "softmax": T(r"\operatorname{{softmax}}_{{{over}}}\left({x}\right)"),
    "log_softmax": T(r"\log\operatorname{{softmax}}_{{{over}}}\left({x}\right)"),
    "onehot": T(r"\operatorname{{onehot}}_{{{dim}}}\left({x}\right)"),
    "eye": T(r"\delta_{{{a} {b}}}", sub=False),
    "size": T(r"\left|{dim}\right|"),
    "arange": T(r"\operatorname{{arange}}\left({dim}\right)"),
    "cumsum": _running("cumsum"),
    "cumprod": _running("cumprod"),
    "cummax": _running("cummax"),
    "logcumsumexp": _running("logcumsumexp"),
    "sort": _sort,
    "rank": T(r"\operatorname{{rank}}_{{{over}}}\left({x}\right)"),
    "topk": T(r"\operatorname{{topk}}_{{{over}}}\left({x}, {k}\right)"),
    "median": T(r"\operatorname{{median}}_{{{over}}}\left({x}\right)"),
    "quantile": T(r"\operatorname{{quantile}}_{{{over}}}\left({x}, {q}\right)"),
    # windows: the filter over the named dims, its options after a semicolon
    "blur": _with_options("blur", ("x",), ("sigma", "size", "padding", "stride")),
    "box": _with_options("box", ("x", "size"), ("padding", "stride")),
    "conv": _with_options("conv", ("x", "kernel"), ("padding", "stride")),
    "avg_pool": _with_options("avgpool", ("x", "size"), ("stride", "padding")),
    "max_pool": _with_options("maxpool", ("x", "size"), ("stride", "padding")),
    "frames": _with_options("frames", ("x", "size"), ("hop", "padding", "center")),
    "split": _with_options("split", ("x", "size"), ("groups",)),
    "merge": _with_options("merge", ("x",), ()),
    # magnitudes: |STFT_T(x; n_fft, hop)|
    "stft_mag": _with_options("STFT", ("x", "n_fft"), ("hop", "win", "eps"), bars=True),
    "rfft_mag": _with_options("rFFT", ("x",), ("eps",), bars=True),
    "grad": _grad,
    # the loops (block calls): the state after the steps, the step on the lines below
    "repeat": lambda r, a: r.loop(a.call),
    "scan": lambda r, a: r.loop(a.call),
}


# What `use TASK(a, b)` binds, from its two arguments: name -> (template over a, b and the
# class dim C, the names it is written with). Only the names the loss reads are defined, with
# those they are written with; `\log p` and `\log p_t` need no line of their own once p and p_t
# have one.
def _task(hard: dict, soft: dict | None = None) -> dict:
    return {"hard": hard, "soft": soft or hard}


_CLASSIFICATION = _task(
    hard={
        "p": (r"\operatorname{{softmax}}_{{{C}}}\left({a}\right)", ()),
        "logp": (None, ("p",)),
        "pt": (r"{p:_}_{{{b}}}", ("p",)),
        "logpt": (None, ("pt",)),
        "ce": (r"-\log p_t", ("pt",)),
        "onehot": (r"\operatorname{{onehot}}_{{{C}}}\left({b}\right)", ()),
    },
    soft={
        "p": (r"\operatorname{{softmax}}_{{{C}}}\left({a}\right)", ()),
        "logp": (None, ("p",)),
        "pt": (r"\sum_{{{C}}} {b:5} \, p", ("p",)),
        "logpt": (r"\sum_{{{C}}} {b:5} \log p", ("p",)),
        "ce": (r"-\log p_t", ("logpt",)),
        "onehot": (r"{b}", ()),
    },
)
TASKS: dict[str, dict] = {
    "classification": _CLASSIFICATION,
    "segmentation": _CLASSIFICATION,
    "multilabel": _task(
        {
            "p": (r"\sigma\left({a}\right)", ()),
            "bce": (r"\operatorname{{softplus}}\left({a}\right) - {a:5} \, {b:6$}", ()),
            "logpt": (r"-\mathrm{{BCE}}", ("bce",)),
            "pt": (r"p \, {b:6} + \left(1 - p\right) \left(1 - {b:5$}\right)", ("p",)),
        }
    ),
    "regression": _task({"diff": (r"{a:4} - {b:5$}", ())}),
}


# ---- the renderer --------------------------------------------------------------------------


class Args:
    """A call's arguments bound to its signature's names (absent ones are None)."""

    def __init__(self, r: Renderer, call, bound: dict, rest: tuple = ()):
        self.renderer, self.call, self.bound, self.rest = r, call, bound, rest
        self._memo: dict[str, R] = {}

    def node(self, name: str):
        return self.bound.get(name)

    def r(self, name: str) -> R:
        if name not in self._memo:
            n = self.node(name)
            self._memo[name] = EMPTY if n is None else self.renderer.expr(n)
        return self._memo[name]

    def dim_list(self, name: str) -> list[str]:
        n = self.node(name)
        if n is None:
            return []
        items = n.items if isinstance(n, ast.Tuple) else (n,)
        return [self.renderer.dim(d) for d in items]

    def dims(self, name: str) -> str:
        return ", ".join(self.dim_list(name))


class Renderer:
    def __init__(self, module: ast.Module | None, dialect: str = "latex"):
        assert dialect in ("latex", "mathtext"), dialect
        self.dialect = dialect
        self.locals = {x.name: x for x in module.losses} if module is not None else {}
        self.env: dict[str, Info] = {}
        self.fns: set[str] = set()
        self.indent = 0
        self.pending: list[Line] = []
        self.helpers: list[str] = []  # local losses called, in the order first met

    # ---- names and types

    def info(self, e) -> Info:
        match e:
            case ast.Bool() | ast.Compare() | ast.Unary(op="!") | ast.Binary(op="&" | "|"):
                return Info("bool")
            case ast.Name(name=n):
                return self.env.get(n, Info())
            case ast.Num(text=t):
                return Info("int" if t.isdigit() else "float")
            case ast.Unary(operand=x) | ast.Prime(operand=x) | ast.Gather(base=x):
                return self.info(x)
            case ast.Call(func=f, args=args) if self.builtin(f):
                if f in _BOOL:
                    return Info("bool")
                if f in ("argmax", "arange"):
                    return Info("index")
                if f in _KEEPS and args:
                    if f == "where" and len(args) >= 3:
                        x, y = self.info(args[1]), self.info(args[2])
                        return x if not isinstance(args[1], ast.Num) else y
                    return self.info(args[0])
        return Info()

    def builtin(self, func: str) -> bool:
        return func in FUNCTIONS and func not in self.fns and func not in self.locals

    def dim(self, d) -> str:
        match d:
            case ast.Name(name=n):
                return _letter(n) or (n if n.isupper() and len(n) <= 3 else _mathrm(n))
            case ast.Prime(operand=x):
                return self.dim(x) + "'"
            case ast.Num(text=t):
                return t
        return self.expr(d).text

    # ---- expressions

    def bind(self, call) -> Args | None:
        """The call's arguments by the surface function's parameter names."""
        if call.func not in SURFACE:
            return Args(self, call, {})
        sig = SURFACE[call.func][0]
        bound = dict(zip(sig.names, call.args))
        for k in call.kwargs:
            if k.name not in sig.names or k.name in bound:
                return None
            bound[k.name] = k.value
        if len(call.args) > len(sig.names) and not sig.variadic:
            return None
        return Args(self, call, bound, tuple(call.args[len(sig.names) :]))

    def expr(self, e) -> R:
        match e:
            case ast.Num(text=t):
                return _number(t)
            case ast.Bool(value=v):
                return R(r"\mathrm{true}" if v else r"\mathrm{false}")
            case ast.Str(value=v):
                return R(r"\mathtt{" + _word(v) + "}")
            case ast.Name(name=n):
                return _name(n)
            case ast.Unary(op="-", operand=x):
                return self._prefix("-", self.expr(x))
            case ast.Unary(op="!", operand=x):
                return self._prefix(r"\neg ", self.expr(x))
            case ast.Binary():
                return self._binary(e)
            case ast.Compare(operands=xs, ops=ops):
                rs = [self.expr(x) for x in xs]
                parts = [rs[0].put(ADD)]
                for i, (op, x) in enumerate(zip(ops, rs[1:], strict=True)):
                    parts += [_CMP[op], x.put(ADD, end=i == len(ops) - 1)]
                return R(" ".join(parts), CMP, min(CMP, rs[-1].after))
            case ast.Gather(base=ast.Name(name="logp"), index=i):  # log p_t, as log p is written
                return R(rf"\log p_{{{self.expr(i).text}}}", NEG, ADD)
            case ast.Gather(base=b, index=i):
                return R(f"{self.expr(b):_}_{{{self.expr(i).text}}}", sub=False)
            case ast.Prime(operand=x):
                return R(f"{self.expr(x):^}'")
            case ast.Tuple(items=xs):
                return R(_paren(", ".join(self.expr(x).text for x in xs)))
            case ast.Call() | ast.BlockCall():
                return self.call(e)
        raise AssertionError(e)

    def _prefix(self, op: str, x: R) -> R:
        text = x.put(NEG, end=True)
        return R(op + text, NEG, min(NEG, x.after if text == x.text else ATOM))

    def _binary(self, e: ast.Binary) -> R:
        a, b = self.expr(e.left), self.expr(e.right)
        op = e.op
        if op == "/":
            return R(rf"\frac{{{a.text}}}{{{b.text}}}", sup=False)
        if op == "//":
            return R(rf"\left\lfloor \frac{{{a.text}}}{{{b.text}}} \right\rfloor")
        if op == "^":
            return R(f"{a:^}^{{{b.text}}}", POW, sup=False)
        prec, sep = {
            "+": (ADD, " + "),
            "-": (ADD, " - "),
            "*": (MUL, r" \, "),
            "%": (MUL, r" \;\mathrm{mod}\; "),
            "&": (AND, r" \wedge "),
            "|": (OR, r" \vee "),
        }[op]
        right = b.put(prec + 1, end=True)
        if op == "*" and right[:1].isdigit():
            sep = r" \cdot "  # 2 \cdot 3, not 2 \, 3
        elif op == "*" and right.startswith(r"\left("):
            sep = " "  # \alpha \left(a - b\right)
        tail = min(prec, b.after if right == b.text else ATOM)
        return R(a.put(prec, lead=op == "*") + sep + right, prec, tail)

    def call(self, c) -> R:
        if c.func in self.fns:  # a function input: critic(x)
            return R(_operator(c.func) + _paren(", ".join(self.expr(x).text for x in c.args)))
        if self.builtin(c.func):
            if isinstance(c, ast.BlockCall) or c.func in ("grad", "repeat", "scan"):
                return FUNCTIONS[c.func](self, Args(self, c, {}))
            a = self.bind(c)
            if a is not None:
                return FUNCTIONS[c.func](self, a)
        return self._spec_call(c)

    def _spec_call(self, c) -> R:
        """A helper loss or an imported spec: its inputs, then its params by name."""
        if c.func in self.locals and c.func not in self.helpers:
            self.helpers.append(c.func)
        args = ", ".join(self.expr(x).text for x in c.args)
        kws = ", ".join(
            symbol(k.name)  # a param passed on under its own name: gamma=gamma
            if isinstance(k.value, ast.Name) and k.value.name == k.name
            else f"{symbol(k.name)} = {self.expr(k.value).text}"
            for k in c.kwargs
        )
        inside = args + (r";\ " + kws if kws and args else kws)
        return R(_operator(c.func) + _paren(inside))

    # ---- loops

    def loop(self, node) -> R:
        r"""repeat(n, init=(f0, g0)) (f, g) {...}: \operatorname{repeat}^{n}(f_0, g_0);
        scan(x, over=T, init=h0) (h, xt) {...}: \operatorname{scan}_{T}(h_0; x). The step
        `(state; slices) \mapsto next` and its lets go on the lines below."""
        if not isinstance(node, ast.BlockCall):  # repeat(...) without a block: an error spec
            return self._spec_call(node)
        kws = {k.name: k.value for k in node.kwargs}
        init = kws.get("init")
        inits = list(init.items) if isinstance(init, ast.Tuple) else [init] if init else []
        init_text = ", ".join(self.expr(x).text for x in inits)
        names = list(node.state)
        if node.func == "scan":
            seqs = [self.expr(x).text for x in node.args]
            over = ", ".join(self.dim(d) for d in self._items(kws.get("over")))
            rev = kws.get("reverse")
            mark = r"^{\leftarrow}" if isinstance(rev, ast.Bool) and rev.value else ""
            head = rf"\operatorname{{scan}}{mark}{f'_{{{over}}}' if over else ''}"
            text = head + _paren(init_text + r";\ " + ", ".join(seqs))
            n_state = len(inits) or 1
            state = ", ".join(symbol(s) for s in names[:n_state])
            slices = ", ".join(symbol(s) for s in names[n_state:])
            params = state + (r";\ " + slices if slices else "")
        else:
            n = kws.get("n", node.args[0] if node.args else None)
            steps = self.expr(n).text if n is not None else ""
            text = rf"\operatorname{{repeat}}^{{{steps}}}" + _paren(init_text)
            params = ", ".join(symbol(s) for s in names)
        for s in names:
            self.env.setdefault(s, Info())
        saved, self.pending, self.indent = self.pending, [], self.indent + 1
        body = self.statements(node.block.stmts, self.indent + 1)
        result = self.expr(node.block.result)
        params = _paren(params) if "," in params or ";" in params else params  # (u, v), u
        step = Line(rf"{params} \mapsto {result.text}", indent=self.indent)
        steps_lines = [step, *self.pending, *body]
        self.pending, self.indent = saved, self.indent - 1
        self.pending.extend(steps_lines)
        return R(text)

    @staticmethod
    def _items(n) -> list:
        if n is None:
            return []
        return list(n.items) if isinstance(n, ast.Tuple) else [n]

    # ---- statements and losses

    def line(self, rhs: R | str, lhs: str | None, indent: int) -> list[Line]:
        """A line and the loop steps its expression left pending."""
        text = rhs.text if isinstance(rhs, R) else rhs
        out = [Line(text, lhs, indent), *self.pending]
        self.pending = []
        return out

    def statements(self, stmts, indent: int, reads: set[str] | None = None) -> list[Line]:
        out: list[Line] = []
        saved = self.indent
        self.indent = indent
        for i, st in enumerate(stmts):
            match st:
                case ast.Param(name=n, dtype=dt, choices=ch):
                    self.env[n] = Info("choice" if ch else dt)
                case ast.Let(name=n, value=v):
                    rhs = self.expr(v)
                    self.env[n] = self.info(v)
                    text = _paren(rhs.text) if rhs.prec <= CMP else rhs.text
                    out += self.line(text, symbol(n), indent)
                case ast.LetTuple(names=ns, value=v):
                    rhs = self.expr(v)
                    for n in ns:
                        self.env[n] = self.info(v)
                    out += self.line(rhs, _paren(", ".join(symbol(n) for n in ns)), indent)
                case ast.Use():
                    later = _reads(stmts[i + 1 :]) | (reads or set())
                    out += self.use(st, later, indent)
        self.indent = saved
        return out

    def use(self, st: ast.Use, reads: set[str], indent: int) -> list[Line]:
        task = TASKS.get(st.task)
        if task is None or len(st.args) != 2:
            return []
        a_node, b_node = st.args
        b_info, a_info = self.info(b_node), self.info(a_node)
        table = task["soft" if b_info.dtype == "float" and st.task != "multilabel" else "hard"]
        c = b_info.of or (a_info.dims[-1] if a_info.dims else "")
        fields = {"a": self.expr(a_node), "b": self.expr(b_node), "C": c, "p": R("p")}
        want: list[str] = []

        def need(n: str) -> None:
            if n in table and n not in want:
                for d in table[n][1]:
                    need(d)
                want.append(n)

        for n in table:
            if n in reads:
                need(n)
        out = []
        for n in table:
            self.env.setdefault(n, Info())
            fmt = table[n][0]
            if n in want and fmt is not None:
                text = fmt.format(**fields).replace("_{}", "")
                out += self.line(text, symbol(n), indent)
        return out

    def loss(self, loss: ast.LossDef, head: str | None = None) -> list[Line]:
        r"""The loss's lines: its lets, then `\ell = ...` (a helper: `f(x) = ..., where` and
        its lets indented)."""
        self.env = {i.name: _type_info(i.type) for i in loss.inputs}
        self.fns = {f.name for f in loss.fns}
        if head is None:
            body = self.statements(loss.body, 0, _reads([loss.result]))
            return body + self.line(self.expr(loss.result), r"\ell", 0)
        body = self.statements(loss.body, 1, _reads([loss.result]))
        result = self.expr(loss.result).text
        tail = r",\ \mathrm{where}" if body else ""
        return self.line(result + tail, head, 0) + body

    def reduce(self, loss: ast.LossDef, dims: list[str] | None) -> list[Line]:
        r"""The reduction the spec writes: `\mathcal{L} = \frac{1}{|B|} \sum_B \ell`."""
        red = next((s for s in loss.body if isinstance(s, ast.Reduce)), None)
        if red is None or red.mode == "none" or dims == []:  # (a scalar: its own reduction)
            return []
        over = f"_{{{', '.join(dims)}}}" if dims else ""  # (None: dims unknown, every one)
        total = rf"\sum{over} \ell"
        if red.mode == "sum":
            return [Line(total, r"\mathcal{L}")]
        if red.by is not None:
            w = self.expr(red.by)
            return self.line(rf"\frac{{{total}}}{{\sum{over} {w:5$}}}", r"\mathcal{L}", 0)
        if dims is None:
            return [Line(r"\operatorname{mean}\left(\ell\right)", r"\mathcal{L}")]
        sizes = r"\,".join(f"|{d}|" for d in dims)
        return [Line(rf"\frac{{1}}{{{sizes}}} {total}", r"\mathcal{L}")]


_CMP = {"==": "=", "!=": r"\neq", "<": "<", "<=": r"\leq", ">": ">", ">=": r"\geq"}


def _reads(nodes) -> set[str]:
    """Every name the statements or expressions read (iteratively: deep trees)."""
    out: set[str] = set()
    stack = list(nodes)
    while stack:
        n = stack.pop()
        match n:
            case ast.Name(name=x):
                out.add(x)
            case ast.Let(value=v) | ast.LetTuple(value=v) | ast.Keyword(value=v):
                stack.append(v)
            case ast.Reduce(by=b, empty=e):
                stack += [x for x in (b, e) if x is not None]
            case ast.Use(args=a, kwargs=k):
                stack += [*a, *k]
            case ast.BlockCall(args=a, kwargs=k, block=b):
                stack += [*a, *k, *b.stmts, b.result]
            case ast.Unary(operand=x) | ast.Prime(operand=x):
                stack.append(x)
            case ast.Binary(left=a, right=b) | ast.Gather(base=a, index=b):
                stack += [a, b]
            case ast.Compare(operands=xs) | ast.Tuple(items=xs):
                stack += list(xs)
            case ast.Call(args=a, kwargs=k):
                stack += [*a, *k]
    return out


# ---- entry points --------------------------------------------------------------------------


def loss_lines(
    module: ast.Module,
    loss: ast.LossDef | None = None,
    dims: list[str] | None = None,
    dialect: str = "latex",
) -> list[Line]:
    """The lines of `loss` (the module's last loss by default) as written: the local helper
    losses it calls first, then its own lines, then its `reduce` over `dims` (the per-element
    loss's dims, when known)."""
    loss = loss if loss is not None else module.losses[-1]
    r = Renderer(module, dialect)
    main = r.loss(loss) + r.reduce(loss, dims)
    helpers: dict[str, list[Line]] = {}
    done = 0
    while done < len(r.helpers):  # helpers that helpers call, until none is new
        h = r.locals[r.helpers[done]]
        done += 1
        if h is not loss:
            args = ", ".join(symbol(i.name) for i in h.inputs)
            helpers[h.name] = r.loss(h, _operator(h.name) + _paren(args))
    order = [x.name for x in module.losses if x.name in helpers]  # as the file defines them
    return [line for name in order for line in helpers[name]] + main


def _spec_lines(spec, dialect: str) -> list[Line]:
    prog = spec._lowered(frozenset())  # the per-element loss's dims (lowered at load)
    dims = [str(d).lstrip("*") for d in prog.output("none").type.dims]
    return loss_lines(spec.resolved.module, spec.loss, dims, dialect)


def formula_lines(spec, dialect: str = "mathtext") -> list[str]:
    """The spec's formula, one formula per line; each parses with matplotlib's mathtext
    (`MathTextParser("path").parse(f"${line}$")`) in the default dialect."""
    return [line.text() for line in _spec_lines(spec, dialect)]


def spec_latex(spec) -> str:
    """The spec's formula as an `aligned` block of LaTeX."""
    lines = [line.aligned() for line in _spec_lines(spec, "latex")]
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
