"""`lossdsl latex` and docs/specs.md: formulas are rendered from the spec as written (not from
the optimized IR), every line of every formula parses with matplotlib's mathtext, they read like
the papers', and the checked-in catalog is regenerated from the specs (stale = failure)."""

from __future__ import annotations

import random
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

import lossdsl
from lossdsl import ast
from lossdsl.docs import specs_markdown
from lossdsl.latex import FUNCTIONS, TASKS, Renderer, formula_lines, loss_lines, spec_latex, symbol
from lossdsl.lower import FUNCTIONS as SURFACE
from lossdsl.lower import PRELUDES
from lossdsl.lower.loops import BLOCK_FUNCTIONS
from lossdsl.ops import OPS
from lossdsl.parser import parse_module

mathtext = pytest.importorskip("matplotlib.mathtext")

ROOT = Path(__file__).resolve().parents[1]
_PARSER = mathtext.MathTextParser("path")
_PARSED: set[str] = set()  # lines already parsed (specs share many)


def _mathtext_errors(lines: list[str]) -> list[str]:
    """The lines matplotlib's mathtext cannot parse, with its message."""
    bad = []
    for line in lines:
        if line in _PARSED:
            continue
        try:
            _PARSER.parse(f"${line}$")
        except Exception as e:  # noqa: BLE001 (pyparsing's and mathtext's own errors)
            bad.append(f"{line}\n    {str(e).splitlines()[-1]}")
        else:
            _PARSED.add(line)
    return bad


def _text(module: ast.Module, dialect: str = "mathtext") -> list[str]:
    return [line.text() for line in loss_lines(module, dialect=dialect)]


# ---- the template tables ----------------------------------------------------------------


def test_every_function_and_task_has_a_latex_template():
    # one per surface function (what lossdsl.lower resolves a call to), `grad` and the loops,
    # as the spec writes them; IR ops have none (formulas never show the optimized IR)
    assert set(FUNCTIONS) == set(SURFACE) | {"grad"} | set(BLOCK_FUNCTIONS)
    for task, prelude in PRELUDES.items():
        for kind in ("hard", "soft"):
            assert set(TASKS[task][kind]) == set(prelude.binds), (task, kind)


# an argument of each name the signatures use (dims for over=, flags, options, numbers)
_ARG = {
    "over": "(C, T)", "dim": "C", "a": "B", "b": "B'", "cond": "x > 0", "reverse": "true",
    "descending": "true", "center": "true", "padding": '"same"', "k": "3", "q": "0.9",
    "ddof": "1", "size": "3", "stride": "2", "n_fft": "1024", "hop": "256", "win": "600",
    "groups": "4", "blank": "0", "by": "y", "index": "2", "eps": "1e-8", "fill": "-inf",
    "sigma": "1.5", "scale": "0.5", "log_epsilon": "-1e5", "min": "-1", "max": "1",
    "wrt": "x", "grad": "2 * x", "mask": "m", "empty": "0", "kernel": "w",
}  # fmt: skip


def _calls() -> list[str]:
    """Each surface function called with every argument by name, and with the required ones."""
    out = []
    for name, (sig, _) in SURFACE.items():
        defaults = dict(sig.defaults)
        every = [f"{n}={_ARG.get(n, n)}" for n in sig.names[1:]]
        required = [f"{n}={_ARG.get(n, n)}" for n in sig.names[1:] if n not in defaults]
        first = _ARG.get(sig.names[0], sig.names[0])
        extra = ["D", "E"] if sig.variadic else []
        for args in (every, required):
            out.append(f"{name}({', '.join([first, *extra, *args])})")
        out.append(f"{name}({', '.join([first, *extra, *(a.split('=')[1] for a in every)])})")
    out += [
        "grad(sum(critic(x), over=B), wrt=x)",
        "max(x, y)",
        "where(x > 0, x, where(x < -1, -x, where(m, 0, y)))",
        "sort(x, over=N, descending=d)",
    ]
    return out


def test_every_function_renders_in_mathtext():
    bad = []
    for call in _calls():
        module = parse_module(f"loss t(x: float[B]) {{\n    let v = {call}\n    v * 2\n}}\n")
        lines = _text(module)
        assert len(lines) == 2 and "v = " in lines[0], (call, lines)
        bad += _mathtext_errors(lines)
    assert not bad, "\n".join(bad)


def test_loops_render_their_step_below_the_line_that_runs_them():
    module = parse_module(
        "loss t(r: float[B, T]) {\n"
        "    param gamma: float = 0.99\n"
        "    let g = scan(r, over=T, init=0 * sum(r, over=T), reverse=true) (g, rt) {\n"
        "        let next = rt + gamma * g\n"
        "        next\n"
        "    }\n"
        "    let u, v = repeat(5, init=(g, g)) (u, v) { (v, u + v) }\n"
        "    u\n"
        "}\n"
    )
    assert _text(module, "latex") == [
        r"g = \operatorname{scan}^{\leftarrow}_{T}\left(0 \, \sum_{T} r;\ r\right)",
        r"\quad \left(g;\ \mathrm{rt}\right) \mapsto \mathrm{next}",
        r"\quad \quad \mathrm{next} = \mathrm{rt} + \gamma \, g",
        r"\left(u, v\right) = \operatorname{repeat}^{5}\left(g, g\right)",
        r"\quad \left(u, v\right) \mapsto \left(v, u + v\right)",
        r"\ell = u",
    ]
    assert not _mathtext_errors(_text(module))


# ---- shipped specs --------------------------------------------------------------------


def test_focal_formula_reads_like_the_paper():
    """Lin et al. 2017, eq. 5: FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t), with p_t the
    softmax's probability of the target class and alpha_t the class weight."""
    tex = spec_latex(lossdsl.load("focal"))
    assert r"p &= \operatorname{softmax}_{C}\left(" in tex
    assert "p_t &= p_{t}" in tex
    assert r"\mathrm{CE} &= -\log p_t" in tex
    assert r"\alpha_{t} &= \begin{cases}" in tex
    assert r"\ell &= \left(1 - p_t\right)^{\gamma} \, \mathrm{CE} \, \begin{cases}" in tex
    assert r"\alpha_{t} \, \mathrm{weight}_{t} & \mathrm{if}\ \mathrm{valid}" in tex
    # the spec's own `reduce mean by float(valid) empty 0`: the mean over the kept rows
    assert (
        r"\mathcal{L} &= \frac{\sum_{B} \ell}{\sum_{B} \mathbb{1}\left[\mathrm{valid}\right]}"
        in tex
    )


def test_every_spec_renders_in_mathtext():
    """Every line of every shipped spec's formula parses with matplotlib's mathtext; the LaTeX
    dialect (`spec_latex`, the docs) is the same lines, with `cases` for the brace stacks."""
    bad = []
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        lines = formula_lines(spec)
        bad += [f"{name}: {b}" for b in _mathtext_errors(lines)]
        tex = spec_latex(spec)
        assert tex.startswith("\\begin{aligned}\n") and tex.endswith("\n\\end{aligned}"), name
        rows = [row.removesuffix(r" \\") for row in tex.split("\n")[1:-1]]
        latex = formula_lines(spec, "latex")
        assert len(rows) == len(lines) == len(latex) and r"\ell &= " in tex, name
        for row, line, mt in zip(rows, latex, lines, strict=True):
            assert row in ("& " + line, line.replace(" = ", " &= ", 1)), (name, row, line)
            assert row.count("{") == row.count("}"), (name, row)
            assert (line == mt) == ("cases" not in line), (name, line, mt)
    assert not bad, "\n".join(bad)


def _walk(node):
    """Every AST node under `node`."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        for f in fields(n) if is_dataclass(n) else ():
            v = getattr(n, f.name)
            stack += [x for x in (v if isinstance(v, tuple) else (v,)) if is_dataclass(x)]


def _authored(module: ast.Module) -> set[str]:
    """Every name the spec's author wrote: inputs, params, lets, loop states, what a `use`
    binds, the losses."""
    out = set()
    for n in _walk(module):
        match n:
            case ast.LossDef(name=x) | ast.Input(name=x) | ast.Param(name=x) | ast.Let(name=x):
                out.add(x)
            case ast.LetTuple(names=xs) | ast.BlockCall(state=xs):
                out |= set(xs)
            case ast.Use(task=t):
                out |= set(PRELUDES[t].binds)
    return out


def test_formulas_show_no_rewrite_artifacts():
    """No name the compiler made (lowering's t4, the stabilizer's r0, the reduction's total,
    an inlined helper's cost_52) and no IR-only op (safe_div, log_softmax of a log of a
    softmax, contract) reaches a formula: only what the author wrote. Choice words stay words."""
    # (sort(x, by=k) is x permuted by argsort(k), as the papers write it)
    ir_only = {op for op in OPS if op not in SURFACE} - {"grad", "scan", "repeat", "argsort"}
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        tex = "\n".join(formula_lines(spec, "latex"))
        mine = _authored(spec.resolved.module)
        made = {e.out.name for e in spec.program().eqns}
        made |= {e.out.name for e in spec._lowered(frozenset()).eqns}
        for n in sorted(made - mine):
            found = re.search(r"(?<![\\\w])" + re.escape(symbol(n)) + r"(?![\w{])", tex)
            assert not found, (name, n, symbol(n))
        words = {w.replace(r"\_", "_") for w in re.findall(r"\\operatorname\{([^}]*)\}", tex)}
        assert not words & ir_only - mine, (name, words & ir_only)
        body = [s for s in spec.loss.body if not isinstance(s, ast.Param)] + [spec.loss.result]
        for word in {n.value for s in body for n in _walk(s) if isinstance(n, ast.Str)}:
            assert r"\mathtt{" + word.replace("_", r"\_") + "}" in tex, (name, word)


# ---- every construct the language has ---------------------------------------------------


def _language_examples() -> list[str]:
    text = (ROOT / "docs" / "language.md").read_text()
    return re.findall(r"^```loss\n(.*?)^```", text, re.S | re.M)


def test_language_doc_examples_render_in_mathtext():
    """The ```loss examples of docs/language.md: every construct the reference shows (loops,
    grad, function inputs, spec calls and imports, choice params, windows, primes, ...)."""
    examples = _language_examples()
    assert len(examples) > 20
    bad = []
    for src in examples:
        module = parse_module(src)
        for loss in module.losses:
            r = Renderer(module, "mathtext")
            lines = [line.text() for line in r.loss(loss)]
            bad += _mathtext_errors(lines)
    assert not bad, "\n".join(bad)


def test_random_programs_render_in_mathtext():
    """The differential fuzzer's random well-typed programs (tests/difffuzz.py: every function,
    primes, masks, uses, loops, helpers, imports) render, and every line parses."""
    import difffuzz

    rng = random.Random(20261207)
    bad = []
    for _ in range(25):
        src = difffuzz.render_prog(difffuzz.gen_prog(rng))
        lines = _text(parse_module(src, "<fuzz>"))
        assert any(line.startswith(r"\ell = ") for line in lines), src
        bad += [f"{b}\nin:\n{src}" for b in _mathtext_errors(lines)]
    assert not bad, "\n".join(bad)


def test_symbols_read_like_the_papers():
    assert symbol("gamma") == r"\gamma" and symbol("eps") == r"\epsilon"
    assert symbol("alpha_t") == r"\alpha_{t}" and symbol("x1") == "x_{1}"
    assert symbol("w_pos") == r"w_{\mathrm{pos}}" and symbol("pt") == "p_t"
    assert symbol("logits") == r"\mathrm{logits}" and symbol("smooth_nr") == r"\mathrm{smooth\_nr}"


# ---- the catalog --------------------------------------------------------------------------


def test_docs_catalog_is_up_to_date():
    """Regenerate with: python -m lossdsl docs -o docs/specs.md"""
    assert (ROOT / "docs" / "specs.md").read_text() == specs_markdown()


def test_readme_lists_what_each_task_prelude_binds():
    # The list in README's language section is the PRELUDES table's (lossdsl/lower/preludes.py).
    from lossdsl.lower.preludes import prelude_summary

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`use TASK(a, b)` ({prelude_summary()})" in readme
