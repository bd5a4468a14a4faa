"""Parser: parse -> unparse -> parse is the identity on the AST (spans excluded from equality),
and every node of every shipped spec carries a span that points at its own text."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lossdsl
from lossdsl import ast
from lossdsl.parser import parse_module
from lossdsl.resolve import shipped_specs_dir
from lossdsl.unparse import unparse_module

SPEC_FILES = sorted(shipped_specs_dir().glob("*.loss"))
SNIPPETS = [
    "loss a(x: float[B]) {\n    -x^2 + (-x)^2 - 2^-1\n}\n",
    "loss a(x: float[B], m: bool[B]) {\n    where(!m & (x > 0) | m, x, 0 <= x < 1)\n}\n",
    "loss a(x: float[B, C], i: index[B] of C) {\n    let y = x'\n    x[i] * (1 - 2) / 3\n}\n",
    "loss a(x: float[B, *S]) {\n    reduce mean by x * 0 + 1 empty 0\n    sum(x, over=(S,))\n}\n",
    'import focal\n"""doc"""\nloss a(x: float[B, C], t: index[B] of C = 0) {\n'
    "    focal(x, t, gamma=1)\n}\n",
]


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_round_trip_specs(path):
    m = parse_module(path.read_text(), str(path))
    again = parse_module(unparse_module(m))
    assert again == m
    assert unparse_module(again) == unparse_module(m)  # a fixed point


@pytest.mark.parametrize("text", SNIPPETS)
def test_round_trip_snippets(text):
    m = parse_module(text)
    assert parse_module(unparse_module(m)) == m


def _nodes(node):
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        yield node
        for f in dataclasses.fields(node):
            spans = ("span", "source", "name_span", "name_spans", "func_span", "mode_span")
            if f.name in (*spans, "state_spans", "meta"):  # meta: docstring data, no syntax
                continue
            yield from _nodes(getattr(node, f.name))
    elif isinstance(node, tuple):
        for x in node:
            yield from _nodes(x)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_every_node_has_a_span(path):
    text = path.read_text()
    m = parse_module(text, str(path))
    for node in _nodes(m):
        if isinstance(node, ast.Module):
            continue
        sp = node.span
        assert sp is not None, node
        assert sp.filename == str(path)
        line = text.splitlines()[sp.line - 1]
        if isinstance(node, ast.Name):
            assert line[sp.col - 1 : sp.end_col - 1] == node.name
        if isinstance(node, ast.Num) and node.text != "inf":
            assert line[sp.col - 1 : sp.end_col - 1] == node.text


def test_syntax_error_has_position_and_expectation():
    with pytest.raises(lossdsl.LossSyntaxError) as e:
        lossdsl.parse("loss a(x: float[B]) {\n    x +\n}\n")
    assert (e.value.span.line, e.value.span.col) >= (2, 1)
    assert e.value.hint


# ---- reserved words ----------------------------------------------------------------------

# A declaration of name {n} in each position, then uses of it in the places that position's
# names go (a value at a line's start, after an operator, primed, gathered; a dim in over=,
# prime(), size(), `of`; a loss called). `q` in every slot is the reference program.
DECLARATIONS = {
    "dim": "loss f(x: float[{n}, C]) {{\n    sum(sum(x * x', over=C), over={n}') / size({n})\n}}\n",
    "dim_of": (
        "loss f(x: float[B, {n}], i: index[B] of {n}) {{\n"
        "    x[i] + sum(prime(x, {n}), over={n}') / size({n})\n}}\n"
    ),
    "input": "loss f({n}: float[B]) {{\n    {n} * 2 + sum({n}', over=B') - {n}\n}}\n",
    "param": "loss f(x: float[B]) {{\n    param {n}: float = 2\n    {n} * x + x / {n}\n}}\n",
    "let": "loss f(x: float[B]) {{\n    let {n} = x * 2\n    {n} * {n} + sum({n}', over=B')\n}}\n",
    "loss": "loss {n}(x: float[B]) {{\n    x * 2\n}}\nloss g(x: float[B]) {{\n    {n}(x) + x\n}}\n",
}
# names that are not keywords but look like them: keyword arguments, dtypes, functions
from lossdsl.resolve import COMPILE_KEYWORDS  # noqa: E402

NOT_RESERVED = ["over", "mask", "eps", "ddof", "min", "max", "float", "int", "bool", "index"]
NOT_RESERVED += ["size", "where_", "nan_", "dim", "mean", "sum"]


def _declared_at(template: str) -> tuple[int, int]:
    """(line, col) of the declaration: the template's first {n}."""
    before = template[: template.index("{n}")].replace("{{", "{").replace("}}", "}")
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def test_the_reserved_words_are_the_grammars_keywords():
    from lossdsl.parser import reserved_words

    assert reserved_words() == {
        *("import", "loss", "param", "use", "let", "reduce", "by", "empty", "where", "of"),
        *("true", "false", "inf", "nan"),
    }


@pytest.mark.parametrize("pos", list(DECLARATIONS))
def test_a_reserved_word_is_rejected_at_its_declaration(pos):
    """Every keyword, in every declaration position, with later uses: one ReservedWord error
    at the declaration (a dim `where` parsed in float[where] and failed at `where'`; a dim
    `nan` at size(nan); a loss `nan` at its call), whatever else the uses break."""
    from lossdsl.parser import reserved_words

    for n in sorted(reserved_words()):
        text = DECLARATIONS[pos].format(n=n)
        with pytest.raises(lossdsl.LossError) as e:
            lossdsl.parse(text)
        first = e.value.errors[0]
        assert isinstance(first, lossdsl.ReservedWord), (n, e.value.render())
        assert (first.span.line, first.span.col) == _declared_at(DECLARATIONS[pos]), n
        assert f"'{n}' is a reserved word" in first.message and f"{n}_" in first.hint


@pytest.mark.parametrize("pos", list(DECLARATIONS))
def test_a_name_that_is_not_reserved_works_at_every_later_use(pos):
    """Keyword-argument names, dtypes and function names in every declaration position: either
    the program equals the one with a plain name `q` (numpy reference), or the declaration is
    rejected at the declaration. Only a loss named like a built-in function is (a call
    `min(x)` meant the built-in, silently)."""
    from lossdsl.lower import FUNCTIONS

    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]])
    want, rejected = None, set()
    for n in ["q", *NOT_RESERVED]:
        text = DECLARATIONS[pos].format(n=n)
        try:
            spec = lossdsl.parse(text)
        except lossdsl.LossError as e:
            first = e.errors[0]
            assert (first.span.line, first.span.col) == _declared_at(DECLARATIONS[pos]), n
            rejected.add(n)
            continue
        args = {"x": x, "i": np.array([2, 0])} if pos == "dim_of" else {"x": x}
        if pos not in ("dim", "dim_of"):
            args = {n if pos == "input" else "x": x[:, 0]}
        got = np.asarray(spec.compile("numpy")(**args, reduction="none"))
        if want is None:
            want = got
        np.testing.assert_array_equal(got, want, err_msg=n)
    # a loss may not take a built-in function's name; a param may not take a keyword of the
    # Python API (ReservedName: `dim` is a keyword of Spec.sharded_program)
    want_rejected = {n for n in NOT_RESERVED if n in FUNCTIONS} if pos == "loss" else set()
    if pos == "param":
        want_rejected = {n for n in NOT_RESERVED if n in COMPILE_KEYWORDS}
    assert rejected == want_rejected
