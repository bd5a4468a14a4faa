"""IR -> LaTeX: a spec's formula rendered from its lowered IR (`lossdsl latex NAME`, docs).

One template per op, like a backend. Single-use temporaries are inlined into their consumer;
the spec's own let-names and task names (p, p_t, ce) become definitions, so the output reads
like the paper: a few named quantities and the loss."""

from __future__ import annotations

import math
import re
from dataclasses import replace

from lossdsl.graph import producers
from lossdsl.ir import Atom, Lit, Program
from lossdsl.passes.cleanup import dce

# op -> (template, precedence of the result). {0} {1} {2}: arguments; {over}: the dims.
# Precedence: 1 logic, 2 comparison, 3 sum, 4 product, 5 unary minus, 6 power, 7 atom.
TEMPLATES: dict[str, tuple[str, int]] = {
    "neg": ("-{0}", 5),
    "exp": ("e^{{{0}}}", 6),
    "log": (r"\log {0}", 5),
    "log1p": (r"\log(1 + {0})", 7),
    "expm1": (r"(e^{{{0}}} - 1)", 7),
    "sqrt": (r"\sqrt{{{0}}}", 7),
    "abs": (r"\left|{0}\right|", 7),
    "sigmoid": (r"\sigma({0})", 7),
    "softplus": (r"\operatorname{{softplus}}({0})", 7),
    "relu": (r"[{0}]_+", 7),
    "erf": (r"\operatorname{{erf}}({0})", 7),
    "tanh": (r"\tanh({0})", 7),
    "sin": (r"\sin({0})", 7),
    "cos": (r"\cos({0})", 7),
    "atan": (r"\arctan({0})", 7),
    "asin": (r"\arcsin({0})", 7),
    "acos": (r"\arccos({0})", 7),
    "log2": (r"\log_2 {0}", 5),
    "log10": (r"\log_{{10}} {0}", 5),
    "atan2": (r"\operatorname{{atan2}}({0}, {1})", 7),
    "sinh": (r"\sinh({0})", 7),
    "cosh": (r"\cosh({0})", 7),
    "asinh": (r"\operatorname{{arsinh}}({0})", 7),
    "acosh": (r"\operatorname{{arcosh}}({0})", 7),
    "atanh": (r"\operatorname{{artanh}}({0})", 7),
    "lgamma": (r"\log \Gamma({0})", 5),
    "digamma": (r"\psi({0})", 7),
    "log_ive": (r"\log \tilde{{I}}_{{{0}}}({1})", 7),
    "floor": (r"\lfloor {0} \rfloor", 7),
    "ceil": (r"\lceil {0} \rceil", 7),
    "round": (r"\operatorname{{round}}({0})", 7),
    "sign": (r"\operatorname{{sgn}}({0})", 7),
    "logaddexp": (r"\log(e^{{{0}}} + e^{{{1}}})", 7),
    "not": (r"\lnot {0}", 5),
    "stop_grad": (r"\operatorname{{sg}}[{0}]", 7),
    # y's value with d/dx declared g: y + sg(g)(x - sg(x)) to first order
    "custom_grad": (r"\left[{0}\right]_{{\partial {1} = {2}}}", 7),
    "to_float": (r"[{0}]", 7),
    "add": ("{0} + {1}", 3),
    "sub": ("{0} - {1}", 3),
    "mul": (r"{0} \, {1}", 4),
    "div": (r"\frac{{{0}}}{{{1}}}", 7),
    "pow": ("{0}^{{{1}}}", 6),
    "floordiv": (r"\left\lfloor \frac{{{0}}}{{{1}}} \right\rfloor", 7),
    "mod": (r"{0} \bmod {1}", 4),
    "maximum": (r"\max({0}, {1})", 7),
    "minimum": (r"\min({0}, {1})", 7),
    "xlogy": (r"{0} \log {1}", 4),
    "eq": ("{0} = {1}", 2),
    "ne": (r"{0} \neq {1}", 2),
    "lt": ("{0} < {1}", 2),
    "le": (r"{0} \le {1}", 2),
    "gt": ("{0} > {1}", 2),
    "ge": (r"{0} \ge {1}", 2),
    "and": (r"{0} \land {1}", 1),
    "or": (r"{0} \lor {1}", 1),
    "safe_div": (r"\frac{{{0}}}{{{1}}}", 7),
    "where": (r"\begin{{cases}} {1} & {0} \\ {2} & \text{{otherwise}} \end{{cases}}", 7),
    "sum": (r"\sum_{{{over}}} {0}", 4),
    "mean": (r"\frac{{1}}{{|{over}|}} \sum_{{{over}}} {0}", 4),
    "max": (r"\max_{{{over}}} {0}", 4),
    "min": (r"\min_{{{over}}} {0}", 4),
    "logsumexp": (r"\log \sum_{{{over}}} e^{{{0}}}", 4),
    "var": (r"\operatorname{{Var}}_{{{over}}}[{0}]", 7),
    "softmax": (r"\operatorname{{softmax}}_{{{over}}}({0})", 7),
    "log_softmax": (r"\log \operatorname{{softmax}}_{{{over}}}({0})", 5),
    "gather": ("{0}_{{{1}}}", 7),
    "cross_entropy": (r"-\log \operatorname{{softmax}}({0})_{{{1}}}", 5),
    "onehot": (r"\mathbb{{1}}[{over} = {0}]", 7),
    "eye": (r"\mathbb{{1}}[{over}]", 7),
    "arange": ("{over}", 7),
    "fill": ("{value}", 7),
    "size": ("|{over}|", 7),
    "contract": (r"\sum_{{{over}}} {0} \, {1}", 4),
    "rename": ("{0}'", 7),
    "transpose": ("{0}", 7),
    "take": (r"{0}_{{{over}={index}}}", 6),
    "argmax": (r"\operatorname{{argmax}}_{{{over}}} {0}", 5),
    "eigvalsh": (r"\lambda({0})", 7),
    # -log p(targets | log_probs) over every alignment (Graves et al. 2006, eq. 8)
    "ctc_nll": (r"-\log p_{{\mathrm{{CTC}}}}({1} \mid {0})", 5),
    "expand": ("{0}", 7),
    # split and merge regroup the entries, not their values
    "reshape": ("{0}", 7),
    "diff": (r"\Delta_{{{over}}} {0}", 5),
    # x moved k entries along N: S^{1}_N(x)
    "shift": (r"\operatorname{{S}}^{{{steps}}}_{{{over}}}({0})", 7),
    "cumsum": (r"\operatorname{{cumsum}}{rev}_{{{over}}}({0})", 7),
    "cumprod": (r"\operatorname{{cumprod}}{rev}_{{{over}}}({0})", 7),
    "cummax": (r"\operatorname{{cummax}}{rev}_{{{over}}}({0})", 7),
    "logcumsumexp": (r"\operatorname{{logcumsumexp}}{rev}_{{{over}}}({0})", 7),
    "sort": (r"\operatorname{{sort}}{desc}_{{{over}}}({0})", 7),
    "argsort": (r"\operatorname{{argsort}}{desc}_{{{over}}}({0})", 7),
    "take_along": (r"{0}_{{{1}}}", 7),
    "rank": (r"\operatorname{{rank}}_{{{over}}}({0})", 7),
    "topk": (r"\operatorname{{top}}_{{{1}, {over}}}({0})", 7),
    "quantile": (r"Q_{{{1}, {over}}}({0})", 7),
    # windows over named dims: the filter (its size, sigma) sliding over them
    "blur": (r"G_{{\sigma={sigma}}}^{{{size}}} \ast_{{{over}}} {0}", 5),
    "box": (r"\operatorname{{box}}^{{{size}}} \ast_{{{over}}} {0}", 5),
    "conv": (r"{1} \star_{{{over}}} {0}", 5),
    "avg_pool": (r"\operatorname{{avgpool}}^{{{size}}}_{{{over}}}({0})", 7),
    "max_pool": (r"\operatorname{{maxpool}}^{{{size}}}_{{{over}}}({0})", 7),
    # frames of `size` every `hop` along a dim: \mathcal{F}^{400/160}_T(x)
    "frames": (r"\mathcal{{F}}^{{{size}/{hop}}}_{{{over}}}({0})", 7),
    # the magnitude STFT (n_fft / hop) and the magnitude of a real FFT: |STFT^{1024/256}_T(x)|
    "stft_mag": (r"\left|\operatorname{{STFT}}^{{{size}/{hop}}}_{{{over}}}({0})\right|", 7),
    "rfft_mag": (r"\left|\operatorname{{rFFT}}_{{{over}}}({0})\right|", 7),
    # a loop's state value after {0} steps from its init: \operatorname{repeat}^{n}(0, 0)_{u}
    "repeat": (r"\operatorname{{repeat}}^{{{0}}}\left({init}\right)_{{{out}}}", 7),
    # the state after each step along T from its init, over sequences x: scan_T(0; x)_g
    "scan": (r"\operatorname{{scan}}{rev}_{{{over}}}\left({init}; {seqs}\right)_{{{out}}}", 7),
    # a function input on its arguments, and the gradient of a scalar: nabla_x [sum D(x)]
    "call_fn": (r"\operatorname{{{fn}}}\left({args}\right)", 7),
    "grad": (r"\nabla_{{{0}}}\left[{body}\right]", 7),
}

# ops whose template encloses each argument (a fraction, a root, brackets, parentheses): no
# parentheses added around a low-precedence one
_ENCLOSED = frozenset(
    {"div", "safe_div", "sqrt", "sigmoid", "softplus", "where", "maximum"}
    | {"sinh", "cosh", "asinh", "acosh", "atanh", "lgamma", "digamma", "floor", "ceil"}
    | {"round", "sign", "logaddexp", "log_ive"}
    | {"cumsum", "cumprod", "cummax", "logcumsumexp", "sort", "argsort", "rank", "topk"}
    | {"quantile", "avg_pool", "max_pool", "frames", "repeat", "scan", "shift", "custom_grad"}
    | {"stft_mag", "rfft_mag", "call_fn", "grad"}
)

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "eps", "lambda", "mu", "sigma", "tau",
    "theta", "omega", "kappa", "rho", "eta", "xi", "nu", "phi", "psi",
}  # fmt: skip
NAMED = {"pt": "p_t", "logpt": r"\log p_t", "logp": r"\log p", "ce": r"\mathrm{CE}"}


def symbol(name: str) -> str:
    """A spec name as a LaTeX symbol: greek letters, p_t, subscripts from underscores."""
    if name in NAMED:
        return NAMED[name]
    base, _, sub = name.partition("_")
    base = "epsilon" if base == "eps" else base
    if base not in GREEK and len(base) > 1:
        return r"\mathrm{" + name.replace("_", r"\_") + "}"
    head = f"\\{base}" if base in GREEK else base
    return head + ("_{" + sub.replace("_", r"\_") + "}" if sub else "")


def _generated(name: str) -> bool:
    return re.fullmatch(r"[tr]\d+|total|average|denominator", name) is not None


def spec_latex(spec) -> str:
    """The formula of a spec (its lowered IR, every optional input present)."""
    return render(spec._lowered(frozenset()))


_NAMED = {math.pi: r"\pi", math.e: r"\mathrm{e}"}


def render(prog: Program) -> str:
    """`aligned` LaTeX: one line per named intermediate, then the per-element loss."""
    prog = dce(replace(prog, outputs=(("none", prog.output("none")),)))
    producer = producers(prog)
    memo: dict[str, tuple[str, int]] = {}
    alias: dict[str, Atom] = {}

    def atom(a: Atom) -> tuple[str, int]:
        if isinstance(a, Lit):
            v = a.value
            if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
                v = int(v)
            if isinstance(v, float) and abs(v) == float("inf"):
                text = r"\infty" if v > 0 else r"-\infty"
            elif isinstance(v, float) and abs(v) in _NAMED:  # the constants pi and e by name
                text = ("-" if v < 0 else "") + _NAMED[abs(v)]
            else:
                text = str(v).lower()
            return text, (5 if text.startswith("-") else 7)
        if a.name in alias:  # a grad body's state and free values: the outer atoms
            return atom(alias[a.name])
        if a.name in producer and _generated(a.name):
            return expr(producer[a.name])
        return symbol(a.name), 7

    def expr(e) -> tuple[str, int]:
        if e.out.name in memo:
            return memo[e.out.name]
        if e.op == "to_float" and e.args[0].type.dtype != "bool":
            return atom(e.args[0])  # an int as a float: the same number (only a mask is [..])
        tmpl, prec = TEMPLATES[e.op]
        args = []
        for a in e.args:
            text, p = atom(a)
            need = prec if e.op not in ("sub", "div") else prec + (a is e.args[1])
            if e.op in _ENCLOSED:
                need = 0
            if e.op == "pow" and a is e.args[1]:
                need = 0
            if e.op == "mul" and p == 5:
                need = 6  # w (-log p): a negated factor gets parentheses
            args.append(f"\\left({text}\\right)" if p < need else text)
        attrs = dict(e.attrs)
        over = attrs.get("over") or attrs.get("dims") or (attrs.get("dim"),)
        fill = {"over": ", ".join(str(d) for d in over if d is not None)}
        fill["value"] = attrs.get("value", "")
        fill["index"] = attrs.get("index", "")
        fill["rev"] = "^{\\leftarrow}" if attrs.get("reverse") else ""
        fill["desc"] = "^{\\downarrow}" if attrs.get("descending") else ""
        fill["sigma"] = attrs.get("sigma", "")
        fill["size"] = r" \times ".join(map(str, attrs.get("size", ())))
        fill["hop"] = r" \times ".join(map(str, attrs.get("stride", ())))
        fill["steps"] = attrs.get("steps", "")
        if e.op == "repeat":
            state = attrs["body"].state
            fill["init"] = ", ".join(args[1 : 1 + len(state)])
            fill["out"] = symbol(re.sub(r"_\d+$", "", state[attrs["out"]].name))
        if e.op == "call_fn":
            fill["fn"], fill["args"] = attrs["fn"].replace("_", r"\_"), ", ".join(args)
        if e.op == "grad":
            body = attrs["body"]
            alias.update(zip((v.name for v in (*body.state, *body.free)), e.args))
            producer.update((q.out.name, q) for q in body.eqns)
            fill["body"] = atom(body.results[0])[0]
        if e.op == "scan":
            body = attrs["body"]
            ns, nx = len(body.state), len(body.xs)
            fill["init"] = ", ".join(args[:ns])
            fill["seqs"] = ", ".join(args[ns : ns + nx])
            fill["out"] = symbol(re.sub(r"_\d+$", "", body.state[attrs["out"]].name))
        out = (tmpl.format(*args, **fill), prec)
        if e.op == "arange" and attrs["dim"].fixed is not None:  # 0 .. 479, not the number 480
            out = (rf"\operatorname{{arange}}({attrs['dim']})", 7)
        memo[e.out.name] = out
        return out

    lines = []
    for e in prog.eqns:
        if not _generated(e.out.name) and e.op != "rename":
            lines.append(f"{symbol(e.out.name)} &= {expr(e)[0]}")
    result = prog.output("none")
    lines.append(rf"\ell &= {atom(result)[0]}")
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"
