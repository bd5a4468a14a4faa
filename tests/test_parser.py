"""Parser: parse -> unparse -> parse is the identity on the AST (spans excluded from equality),
and every node of every shipped spec carries a span that points at its own text."""

from __future__ import annotations

import dataclasses

import pytest

import lossdsl
from lossdsl import ast
from lossdsl.check import shipped_specs_dir
from lossdsl.parser import parse_module
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
            if f.name in ("span", "source", "name_span", "func_span", "mode_span"):
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
