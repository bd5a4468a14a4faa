"""The bad-program suite: every file in tests/errors/ is a spec with mistakes, and carries the
diagnostics it must produce as `# expect: LINE:COL: MESSAGE-SUBSTRING` comments, one per error
(`# expect: OTHER.loss:LINE:COL: ...` for an error inside a spec it imports).

Each file must raise a LossError (a Python traceback is a compiler bug) whose errors match the
expectations exactly, sorted by position, each rendered with `file:line:col: error:`, the
source line, carets, and a hint. Helper specs that only exist to be imported live in
subfolders; the entry points there are listed in SUBFOLDER_CASES.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lossdsl
from lossdsl.errors import LossError

ROOT = Path(__file__).resolve().parent.parent
ERRORS = ROOT / "tests" / "errors"
SUBFOLDER_CASES = [
    "cycle/a.loss",
    "imports/bad_import.loss",
    "imports/wrong_name.loss",
    "imports/calls_bad_helper.loss",
]
CASES = sorted(ERRORS.glob("*.loss")) + [ERRORS / c for c in SUBFOLDER_CASES]
EXPECT = re.compile(r"^\s*#\s*expect:\s*(?:([\w.]+\.loss):)?(\d+):(\d+):\s*(.+?)\s*$")


def _expectations(path: Path) -> list[tuple[str, int, int, str]]:
    """(file, line, col, message substring) for each `# expect:` line of `path`."""
    lines = path.read_text().splitlines()
    return [
        (m[1] or path.name, int(m[2]), int(m[3]), m[4])
        for m in map(EXPECT.match, lines)
        if m is not None
    ]


def _errors(path: Path) -> list[LossError]:
    text = path.read_text()
    try:
        lossdsl.parse(text, str(path))
    except LossError as e:
        return e.errors
    pytest.fail(f"{path.name}: no error raised")


def test_suite_size():
    assert len(CASES) >= 40
    assert sum(len(_expectations(p)) > 1 for p in CASES) >= 3


@pytest.mark.parametrize("path", CASES, ids=lambda p: str(p.relative_to(ERRORS)))
def test_bad_program(path: Path):
    expected = _expectations(path)
    assert expected, f"{path.name} has no `# expect:` lines"
    errors = _errors(path)
    assert all(e.span is not None for e in errors), [str(e) for e in errors]
    got = [(Path(e.span.filename).name, e.span.line, e.span.col, e.message) for e in errors]
    shown = "\n".join(f"  {f}:{ln}:{col}: {msg}" for f, ln, col, msg in got)
    assert len(got) == len(expected), f"expected {len(expected)} errors, got:\n{shown}"
    unmatched = list(got)
    for f, ln, col, sub in expected:
        hit = next((g for g in unmatched if g[:3] == (f, ln, col) and sub in g[3]), None)
        assert hit is not None, f"no error {f}:{ln}:{col}: ...{sub}... among:\n{shown}"
        unmatched.remove(hit)
    positions = [(e.span.filename, e.span.line, e.span.col) for e in errors]
    assert positions == sorted(positions), "errors are not sorted by position"
    for e in errors:
        s = e.span
        rendered = e.render()
        assert f"{s.filename}:{s.line}:{s.col}: error: " in rendered
        source_line = Path(s.filename).read_text().splitlines()[s.line - 1]
        assert source_line in rendered.splitlines(), rendered
        carets = rendered.splitlines()[2]
        assert carets.strip() and set(carets.strip()) == {"^"}, rendered
        assert carets.index("^") == s.col - 1, rendered
        assert e.hint and e.hint.strip(), f"no hint for: {rendered}"


HINT_FIXES = re.compile(r"^\s*#\s*hint fixes:\s*(.+?)\s*$", re.M)
HINT_CASES = [p for p in CASES if HINT_FIXES.search(p.read_text())]


def test_hint_fix_suite_size():
    assert len(HINT_CASES) >= 7


@pytest.mark.parametrize("path", HINT_CASES, ids=lambda p: p.name)
def test_applying_the_hint_fixes_the_program(path: Path):
    """A file with `# hint fixes: OLD` has one error whose hint names its fix in backticks:
    writing that for OLD (where the caret points on the error's line) must compile. A hint that
    points elsewhere (a form that fails again) fails here."""
    text = path.read_text()
    old = HINT_FIXES.search(text)[1]
    (err,) = _errors(path)
    fix = re.search(r"`([^`]+)`", err.hint or "")
    assert fix is not None, f"the hint names no fix in backticks: {err.hint}"
    lines = text.splitlines()
    line, col = lines[err.span.line - 1], err.span.col - 1
    starts = [m.start() for m in re.finditer(re.escape(old), line)]
    assert starts, (old, line)
    # the occurrence under the error's caret, else the first after it
    at = next((i for i in starts if i <= col < i + len(old)), None)
    at = at if at is not None else next((i for i in starts if i >= col), starts[0])
    lines[err.span.line - 1] = line[:at] + fix[1] + line[at + len(old) :]
    lossdsl.parse("\n".join(lines), str(path))  # raises on any error


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lossdsl", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_check_bad_file():
    path = ERRORS / "multi_unknown_names.loss"
    r = _cli(str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "Traceback" not in out, out
    for _, ln, col, sub in _expectations(path):
        assert f"{path}:{ln}:{col}: error: " in out, out
        assert sub in out
    assert "^" in out and "hint: " in out


def test_cli_check_good_spec():
    r = _cli(str(ROOT / "specs" / "focal.loss"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def _unknown_call_hint(name: str) -> str:
    with pytest.raises(LossError) as info:
        lossdsl.parse(f"loss f(x: float[B]) {{ sum({name}(x), over=B) }}").compile("numpy")
    text = str(info.value)
    assert f"unknown function '{name}': not a lossdsl function" in text, text
    return text.split("hint: ", 1)[1]


def test_every_foreign_spelling_points_at_a_lossdsl_form():
    """numpy/torch/scipy names (arctan, gammaln, clip, ...) get lossdsl's spelling; a bare
    spelling must itself be a lossdsl function."""
    from lossdsl.lower import FUNCTIONS
    from lossdsl.lower.functions import FOREIGN
    from lossdsl.resolve import shipped_spec_names

    specs = set(shipped_spec_names())
    for name, spelled in FOREIGN.items():
        assert name not in FUNCTIONS, name
        # a shipped spec of that name (clip) is named in the hint too
        also = f"; to call the shipped spec '{name}', add `import {name}` at the top of the file"
        want = f"lossdsl writes {name} as `{spelled}`" + (also if name in specs else "")
        assert _unknown_call_hint(name) == want
        if spelled.isidentifier():
            assert spelled in FUNCTIONS, (name, spelled)


def test_a_misspelled_function_lists_the_real_one():
    """The class: every built-in function with one letter dropped (or doubled, for short
    names) is an unknown function whose hint lists the function among the closest."""
    from lossdsl.lower import FUNCTIONS
    from lossdsl.lower.functions import FOREIGN
    from lossdsl.resolve import shipped_spec_names

    specs = set(shipped_spec_names())
    for fn in FUNCTIONS:
        typo = fn[:-1] if len(fn) > 4 else fn + fn[-1]
        if typo in FUNCTIONS or typo in FOREIGN or typo in specs:
            continue
        assert fn in _unknown_call_hint(typo).split(": ", 1)[1].split(", "), (typo, fn)


def test_a_shipped_spec_called_without_import_says_import_it():
    from lossdsl.lower.functions import FOREIGN
    from lossdsl.resolve import shipped_spec_names

    for spec in shipped_spec_names()[::7] + ["clip"]:
        hint = _unknown_call_hint(spec)
        want = f"to call the shipped spec '{spec}', add `import {spec}` at the top of the file"
        # a spec named like a framework function (clip: numpy's clip, or the CLIP loss): both
        assert (
            hint
            == (f"lossdsl writes {spec} as `{FOREIGN[spec]}`; " if spec in FOREIGN else "") + want
        )


def test_every_lowering_error_is_raised_with_a_hint():
    """Every ctx.error(kind, message, span, hint) in the compiler passes a hint, never the
    literal None (scripts/fuzz.py seed 0 found blur's `sigma must be positive` without one:
    one mutated file in 4,094). Read from the source, so a new call site is checked too."""
    import ast as pyast

    bare = []
    for path in sorted((ROOT / "lossdsl").rglob("*.py")):
        for node in pyast.walk(pyast.parse(path.read_text())):
            if not (
                isinstance(node, pyast.Call)
                and isinstance(node.func, pyast.Attribute)
                and node.func.attr == "error"
            ):
                continue
            hint = node.args[3] if len(node.args) > 3 else None
            hint = next((k.value for k in node.keywords if k.arg == "hint"), hint)
            if len(node.args) >= 3 and (
                hint is None or (isinstance(hint, pyast.Constant) and hint.value is None)
            ):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, bare


def test_an_undefined_value_is_never_answered_with_a_function_name():
    """A generator over every library function's name with one letter changed, used as a
    value: the hint suggests a value in scope or says to declare it, never a function
    ('target' once got "did you mean 'arange'?")."""
    from lossdsl.lower import LIBRARY

    names = {"target", "labels", "mask", "weights", "y_hat"}
    names |= {f[:-1] + ("x" if f[-1] != "x" else "y") for f in LIBRARY.functions if len(f) > 3}
    for n in sorted(names - set(LIBRARY.functions)):
        text = f"loss bad(logits: float[B, C]) {{\n    sum(logits * {n}, over=C)\n}}\n"
        try:
            lossdsl.parse(text).compile("numpy")
        except lossdsl.LossError as e:
            err = next(x for x in e.errors if f"'{n}'" in x.message)
            assert not any(f"'{f}'" in err.hint for f in LIBRARY.functions), (n, err.hint)
