"""Spec mutations and the contract every input must meet, shared by tests/test_fuzz.py
(hypothesis, small budget) and scripts/fuzz.py (large budget, counts).

The contract: parse, check and compile on every backend either succeed or raise a LossError
whose spans are valid positions in the text; no other exception escapes, and no input takes
more than a second of CPU time (CPU, not wall-clock: other processes on a loaded CI machine
must not fail the bound)."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import lossdsl
from lossdsl.codegen import TARGETS
from lossdsl.errors import LossError

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.loss"))

TOKEN = re.compile(
    r'"""[\s\S]*?"""|#[^\n]*|\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+|\d+(?:[eE][-+]?\d+)?'
    r"|[A-Za-z_]\w*|==|!=|<=|>=|\S"
)
NUMBERS = ["0", "1", "-1", "0.5", "1e309", "1e-400", "2", "1e30", "3.0", "-0.0", "10"]
WORDS = [
    "B", "C", "D", "K", "S", "x", "target", "logits", "loss", "param", "let", "use", "reduce",
    "where", "over", "sum", "mean", "max", "log", "exp", "softmax", "float", "int", "index",
    "bool", "of", "import", "inf", "true", "false", "eye", "prime", "expand", "diff", "arange",
    "os", "__import__", "eval", "self", "lambda", "None", "class", "mask", "empty", "by",
]  # fmt: skip
PUNCT = list("()[]{},:=+-*/^<>!&|'\"#.;@$`~?\\") + ["==", "!=", "<=", ">=", '"""', "\n", "\t"]


def tokens(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN.finditer(text)]


def mutate(text: str, rng: random.Random, n_edits: int = 1) -> str:
    """Delete, duplicate, swap or replace tokens (names, dims, numbers, punctuation)."""
    for _ in range(n_edits):
        toks = tokens(text)
        if not toks:
            return text + rng.choice(PUNCT)
        # mostly edits that keep the syntax (names, numbers), so the checker sees them too
        kind = rng.choices(range(7), weights=(1, 1, 1, 5, 3, 1, 0.5))[0]
        is_name = [text[x].isalpha() or text[x] == "_" for x, _ in toks]
        is_num = [text[x].isdigit() or text[x] == "." for x, _ in toks]
        pick = (
            [k for k in range(len(toks)) if (is_name, is_num)[kind - 3][k]]
            if kind in (3, 4)
            else []
        )
        i = rng.choice(pick) if pick else rng.randrange(len(toks))
        a, b = toks[i]
        tok = text[a:b]
        if kind == 0:  # delete
            text = text[:a] + text[b:]
        elif kind == 1:  # duplicate
            text = text[:b] + " " + tok + text[b:]
        elif kind == 2 and i + 1 < len(toks):  # swap with the next token
            c, d = toks[i + 1]
            text = text[:a] + text[c:d] + text[b:c] + tok + text[d:]
        elif kind == 3:  # another name: from the file itself or a keyword-ish word
            names = [text[x:y] for x, y in toks if text[x].isalpha() or text[x] == "_"]
            pool = names if names and rng.random() < 0.8 else WORDS
            text = text[:a] + rng.choice(pool) + text[b:]
        elif kind == 4:  # another number
            text = text[:a] + rng.choice(NUMBERS) + text[b:]
        elif kind == 5:  # stray punctuation
            text = text[:a] + rng.choice(PUNCT) + text[a:]
        else:  # truncate
            text = text[: rng.randrange(len(text) + 1)]
    return text


def random_text(rng: random.Random, n: int = 40) -> str:
    """Token soup from the language's own vocabulary (mostly invalid programs)."""
    parts = []
    for _ in range(rng.randrange(1, n)):
        r = rng.random()
        parts.append(rng.choice(WORDS if r < 0.5 else NUMBERS if r < 0.65 else PUNCT))
        parts.append(rng.choice([" ", "", "\n"]))
    return "".join(parts)


@dataclass
class Outcome:
    ok: bool  # compiled on every backend
    error: LossError | None
    seconds: float


def run_contract(text: str, filename: str = "<fuzz>") -> Outcome:
    """Parse, check and compile on every backend. Raises AssertionError when the contract
    fails (a non-LossError escapes, or an error has an invalid span)."""
    t0 = time.process_time()
    try:
        spec = lossdsl.parse(text, filename)
        for backend in TARGETS:
            spec.compile(backend)
    except LossError as e:
        for err in e.errors:
            check_span(err, text)
        return Outcome(False, e, time.process_time() - t0)
    return Outcome(True, None, time.process_time() - t0)


def check_span(err: LossError, text: str) -> None:
    s = err.span
    assert s is not None, f"error without a position: {err.message}"
    if s.source.text != text:  # an error inside an imported spec points into that file
        text = s.source.text
    n_lines = max(1, len(text.splitlines()) + 1)
    assert 1 <= s.line <= n_lines, (s.line, n_lines, err.message)
    assert s.col >= 1 and (s.end_line, s.end_col) >= (s.line, s.col), (s, err.message)
    assert err.message and not err.message.startswith("Traceback"), err.message


# ---- hostile families: deep, long and wide inputs at a given size ---------------------------
# Each returns the main file's text, after writing any files it imports into `folder`. Every one
# must compile or raise a LossError with valid spans within HOSTILE_SECONDS (tests/test_hostile.py,
# scripts/fuzz.py --hostile). Sizes past the parser's limits must be LossErrors, not crashes.


def _loss(name: str, body: str, inputs: str = "x: float[B]") -> str:
    return f"loss {name}({inputs}) {{\n    {body}\n}}\n"


def long_sum(n: int, folder: Path) -> str:
    return _loss("f", " + ".join(["x"] * n))


def deep_parens(n: int, folder: Path) -> str:  # right-nested: (x + (x + (...)))
    return _loss("f", "(x + " * n + "x" + ")" * n)


def deep_calls(n: int, folder: Path) -> str:
    return _loss("f", "exp(" * n + "x" + ")" * n)


def deep_helper_calls(n: int, folder: Path) -> str:  # h(h(h(x))) with h a spec in the file
    return _loss("h", "x * 0.5") + _loss("f", "h(" * n + "x" + ")" * n)


def deep_unary(n: int, folder: Path) -> str:
    return _loss("f", "-" * n + "x")


def long_lets(n: int, folder: Path) -> str:
    lets = "\n    ".join(f"let v{i} = {'x' if i == 0 else f'v{i - 1}'} * 0.5 + 1" for i in range(n))
    return _loss("f", f"{lets}\n    v{n - 1}")


def helper_tower(n: int, folder: Path) -> str:
    """n helpers each calling the previous twice with different arguments: 2^n inlined bodies
    without sharing."""
    text = _loss("h0", "x * 2")
    for i in range(1, n):
        text += _loss(f"h{i}", f"h{i - 1}(x) + h{i - 1}(x + 1)")
    return text + _loss("f", f"h{n - 1}(x)")


def helper_explosion(n: int, folder: Path) -> str:
    """Like helper_tower, but the arguments x*2*3 and x*3*2 differ: no sharing can help, the
    equation budget must stop it."""
    text = _loss("h0", "x * 2")
    for i in range(1, n):
        text += _loss(f"h{i}", f"h{i - 1}(x * 2) + h{i - 1}(x * 3)")
    return text + _loss("f", f"h{n - 1}(x)")


def import_chain(n: int, folder: Path) -> str:
    """f imports c0, which imports c1, ... c{n-1}."""
    for i in range(n):
        body = f"c{i + 1}(x) + 1" if i + 1 < n else "x * 2"
        head = f"import c{i + 1}\n" if i + 1 < n else ""
        (folder / f"c{i}.loss").write_text(head + _loss(f"c{i}", body))
    return "import c0\n" + _loss("f", "c0(x)")


def import_diamond(n: int, folder: Path) -> str:
    """n levels, each file importing both files of the level below: 2^n paths to the bottom."""
    for i in range(n):
        for side in "ab":
            if i + 1 < n:
                text = f"import a{i + 1}, b{i + 1}\n" + _loss(
                    f"{side}{i}", f"a{i + 1}(x) + b{i + 1}(x)"
                )
            else:
                text = _loss(f"{side}{i}", "x * 0.5")
            (folder / f"{side}{i}.loss").write_text(text)
    return "import a0, b0\n" + _loss("f", "a0(x) + b0(x)")


def wide_imports(n: int, folder: Path) -> str:
    for i in range(n):
        (folder / f"w{i}.loss").write_text(_loss(f"w{i}", f"x * {i + 1}"))
    names = [f"w{i}" for i in range(n)]
    return f"import {', '.join(names)}\n" + _loss("f", " + ".join(f"{w}(x)" for w in names))


def many_optional(n: int, folder: Path) -> str:
    ins = ", ".join(["x: float[B]"] + [f"w{i}: float[B] = {i + 1}" for i in range(n)])
    return _loss("f", "x * " + " * ".join(f"w{i}" for i in range(n)), ins)


def big_literal(n: int, folder: Path) -> str:
    """A literal of n digits, and one with exponent n (past 308 both overflow a float64)."""
    return _loss("f", f"x * {'9' * n} + x * 1e{n}")


def big_docstring(n: int, folder: Path) -> str:
    return '"""' + "docs " * (n // 5) + '"""\n' + _loss("f", "x * 2")


HOSTILE = {
    f.__name__: f
    for f in (long_sum, deep_parens, deep_calls, deep_helper_calls, deep_unary, long_lets,
              helper_tower, helper_explosion, import_chain, import_diamond, wide_imports,
              many_optional, big_literal, big_docstring)
}  # fmt: skip

# Odd characters and bytes, placed at random positions by odd_bytes().
ODD = ["\x00", "\ufeff", "\u2028", "\u2029", "\x0c", "\x0b", "\x85", "\r", "\t", "\u00a0",
       "\x1c", "é", "😀", "\ud800", "\\", "\x7f"]  # fmt: skip


def odd_bytes(text: str, rng: random.Random, n: int = 3) -> str:
    """Insert odd characters (NUL, BOM, line and paragraph separators, form feed, a lone
    surrogate, ...) at random positions."""
    for _ in range(n):
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(ODD) + text[i:]
    return text


def odd_encoding(text: str, rng: random.Random) -> bytes:
    """The text as bytes that are not quite UTF-8: latin-1, a BOM, a stray invalid byte."""
    kind = rng.randrange(3)
    if kind == 0:
        return text.replace("x", "é", 1).encode("latin-1", errors="replace")
    if kind == 1:
        return b"\xef\xbb\xbf" + text.encode()
    raw = text.encode()
    i = rng.randrange(len(raw) + 1)
    return raw[:i] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE])]) + raw[i:]
