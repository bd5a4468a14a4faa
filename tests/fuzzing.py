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
        for backend in ("numpy", "torch", "jax"):
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
