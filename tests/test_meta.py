"""The docstring's field block (lossdsl/meta.py): every shipped spec carries its summary,
paper and what it is verified against as data, `list`/`show`/docs read them, and every
malformed field is a LossError at the field."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lossdsl
from lossdsl import docs
from lossdsl.errors import LossError
from lossdsl.meta import FIELDS, MAX_SUMMARY

ROOT = Path(__file__).resolve().parents[1]
SPECS = lossdsl.list_specs()
GOOD = {
    "summary": "A test loss.",
    "paper": "Focal Loss for Dense Object Detection",
    "authors": "Tsung-Yi Lin, Priya Goyal",
    "venue": "ICCV",
    "year": "2017",
    "arxiv": "1708.02002",
    "doi": "10.1109/ICCV.2017.324",
    "code": "kornia.losses.focal_loss; monai.losses.FocalLoss",
    "verified": "tests/test_meta.py; numpy",
}
BAD = {
    "summary": ["no period at the end", "x" * MAX_SUMMARY + "."],
    "year": ["17", "20x7", "3017", "0999"],
    "arxiv": ["1708.2", "arXiv 1708.02002"],
    "doi": ["11.1/x", "10.1109"],
    "authors": ["A B,, C D"],
    "code": ["a;;b"],
    "verified": ["tests/x.py; "],
}


def _spec(fields: dict[str, str], prose: str = "Prose about the loss.") -> str:
    block = "\n".join(f"{k}: {v}" for k, v in fields.items())
    return f'"""\n{prose}\n\n{block}\n"""\nloss f(x: float[B]) {{ mean(x) }}\n'


@pytest.mark.parametrize("name", SPECS)
def test_every_shipped_spec_has_a_summary_and_names_what_verifies_it(name):
    spec = lossdsl.load(name)
    m = spec.meta
    assert m.summary and len(m.summary) <= MAX_SUMMARY and m.summary.endswith(".")
    assert m.verified, f"{name}: no `verified:` field"
    for entry in m.verified:
        path = entry.split()[0].rstrip(",;:")
        if path.startswith("tests/"):
            # the test file exists and names the spec it verifies
            text = (ROOT / path).read_text()
            assert re.search(rf"\b{name}\b", text), f"{name}: {path} never names it"
    # the citation and the references live in the fields, not in the prose
    prose = docs.prose(spec.doc)  # the docstring without its field block
    if "arXiv" in prose:  # a paper cited in the prose: the primary one is in the fields
        assert m.paper is not None, f"{name}: a paper in the prose but no `paper:` field"
    assert not re.search(r"^Reference", prose, re.M), f"{name}: use `code:` / `verified:`"
    if m.paper is not None:
        assert m.authors and m.year, name


def test_every_shipped_paper_is_complete_and_distinct_fields_parse():
    papers = [lossdsl.load(n).meta for n in SPECS]
    cited = [m for m in papers if m.paper]
    assert len(cited) >= 100  # the literature's losses (the rest are library conventions)
    for m in cited:
        assert m.citation().startswith(", ".join(m.authors))
        assert str(m.year) in m.short_citation()
        assert "al.." not in m.citation(), m.citation()  # "X, et al." takes one period
    assert "al.." not in (ROOT / "docs" / "specs.md").read_text()


def test_list_prints_each_summary_whole():
    r = subprocess.run(
        [sys.executable, "-m", "lossdsl", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()
    assert len(rows) == len(SPECS)
    for name, row in zip(SPECS, rows, strict=True):
        m = lossdsl.load(name).meta
        assert row.split()[0] == name
        assert m.summary in row
        if m.paper:
            assert f"[{m.short_citation()}]" in row


def test_good_fields_parse_to_data():
    m = lossdsl.parse(_spec(GOOD)).meta
    assert m.summary == "A test loss."
    assert m.authors == ("Tsung-Yi Lin", "Priya Goyal")
    assert m.year == 2017 and m.arxiv == "1708.02002" and m.doi == "10.1109/ICCV.2017.324"
    assert m.code == ("kornia.losses.focal_loss", "monai.losses.FocalLoss")
    assert m.short_citation() == "Lin and Goyal, ICCV 2017"
    assert m.citation() == (
        "Tsung-Yi Lin, Priya Goyal. Focal Loss for Dense Object Detection. ICCV 2017. "
        "arXiv:1708.02002. doi:10.1109/ICCV.2017.324."
    )


def test_a_value_runs_on_over_indented_lines():
    text = _spec({"summary": "A loss whose summary\n  wraps onto a second line.", "verified": "x"})
    assert lossdsl.parse(text).meta.summary == "A loss whose summary wraps onto a second line."


def test_prose_that_is_not_a_field_block_is_left_alone():
    # a last paragraph that opens with an unknown word and a colon is prose, not fields
    text = '"""\nSome loss.\n\nNote: the mean is over B.\n"""\nloss f(x: float[B]) { mean(x) }\n'
    assert lossdsl.parse(text).meta == lossdsl.meta.Meta()


@pytest.mark.parametrize(
    "key,value", [(k, v) for k, vs in BAD.items() for v in vs], ids=lambda x: str(x)[:20]
)
def test_every_bad_value_is_an_error_at_its_field(key, value):
    fields = dict(GOOD, **{key: value})
    text = _spec(fields)
    with pytest.raises(LossError) as e:
        lossdsl.parse(text)
    errs = e.value.errors
    line = 4 + list(fields).index(key)  # the docstring's quotes, prose, blank line
    assert any(err.span.line == line and err.hint.startswith(f"{key}:") for err in errs), [
        err.render() for err in errs
    ]


@pytest.mark.parametrize("key", list(FIELDS))
def test_every_misspelt_field_suggests_the_field(key):
    typo = key[:-1] if len(key) > 4 else key + "s"
    fields = dict(GOOD)
    fields[typo] = fields.pop(key)
    with pytest.raises(LossError) as e:
        lossdsl.parse(_spec(fields))
    hits = [err for err in e.value.errors if f"unknown docstring field '{typo}'" in err.message]
    assert hits and hits[0].hint == f"did you mean '{key}'?", e.value.render()
    assert hits[0].span.col == 1


@pytest.mark.parametrize("key", ["authors", "venue", "year", "arxiv", "doi"])
def test_paper_fields_need_the_paper_and_the_paper_needs_authors_and_year(key):
    fields = {k: v for k, v in GOOD.items() if k != "paper"}
    with pytest.raises(LossError, match="belongs to a paper"):
        lossdsl.parse(_spec(fields))
    if key in ("authors", "year"):
        fields = {k: v for k, v in GOOD.items() if k != key}
        with pytest.raises(LossError, match=f"names a paper but no {key}"):
            lossdsl.parse(_spec(fields))


def test_a_field_given_twice_and_a_stray_line_are_errors():
    text = _spec(GOOD).replace("year: 2017", "year: 2017\nyear: 2018\nnot a field")
    with pytest.raises(LossError) as e:
        lossdsl.parse(text)
    msgs = " | ".join(err.message for err in e.value.errors)
    assert "given twice" in msgs and "not `field: value`" in msgs


def test_fields_on_the_first_line_of_the_docstring_point_at_the_right_column():
    text = '"""summary: no period\n"""\nloss f(x: float[B]) { mean(x) }\n'
    with pytest.raises(LossError) as e:
        lossdsl.parse(text)
    assert (e.value.span.line, e.value.span.col) == (1, 13), e.value.render()


def test_random_field_blocks_parse_or_raise_a_loss_error():
    """A generator over field blocks: known and unknown keys, empty values, indentation,
    blank lines, unicode, quotes-free junk. Each either parses or is a LossError whose span
    lies inside the docstring; nothing else escapes."""
    rng = random.Random(0)
    keys = [*FIELDS, "Summary", "note", "x", "arxiv_id", ""]
    values = [*GOOD.values(), *(v for vs in BAD.values() for v in vs), "", "é ü ∑", ":", "a:b"]
    for _ in range(400):
        lines = []
        for _ in range(rng.randint(1, 8)):
            r = rng.random()
            if r < 0.15:
                lines.append("")
            elif r < 0.3:
                lines.append(" " * rng.randint(1, 4) + rng.choice(values))
            else:
                lines.append(
                    f"{rng.choice(keys)}:{rng.choice([' ', '', '  '])}{rng.choice(values)}"
                )
        doc = "Prose.\n\n" + "\n".join(lines)
        text = f'"""\n{doc}\n"""\nloss f(x: float[B]) {{ mean(x) }}\n'
        try:
            lossdsl.parse(text)
        except LossError as e:
            for err in e.errors:
                assert err.span is not None and 1 <= err.span.line <= doc.count("\n") + 3
                err.render()


@pytest.mark.parametrize(
    "authors,short",
    [
        ("Tsung-Yi Lin, Priya Goyal, Ross Girshick", "Lin et al., ICCV 2017"),
        ("Aaron van den Oord, Yazhe Li", "van den Oord and Li, ICCV 2017"),
        ("de Brebisson, Vincent", "de Brebisson and Vincent, ICCV 2017"),
        ("Chowdhery, et al.", "Chowdhery et al., ICCV 2017"),
        ("Cuturi", "Cuturi, ICCV 2017"),
    ],
)
def test_short_citations_keep_surname_particles(authors, short):
    m = lossdsl.parse(_spec(dict(GOOD, authors=authors))).meta
    assert m.short_citation() == short


def test_an_indented_docstring_has_the_same_fields():
    flat = _spec(GOOD)
    block = "\n".join(f"    {k}: {v}" for k, v in GOOD.items())
    indented = f'"""\n    Prose.\n\n{block}\n      (more code)\n    """\n'
    indented += "loss f(x: float[B]) { mean(x) }\n"
    m = lossdsl.parse(indented).meta
    assert m.code == lossdsl.parse(flat).meta.code
    assert m.verified[-1] == "numpy (more code)" and m.year == 2017
