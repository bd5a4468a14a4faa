"""`lossdsl docs --site DIR`: a complete mkdocs-material project with one page per shipped spec
(formula, signature, the docstring's prose, paper, verified against, plot, generated code).
One site is generated (plots for three specs only) and `mkdocs build --strict` builds it:
mkdocs-material is in the test extra, so a missing mkdocs fails here rather than skipping."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lossdsl.cli import main
from lossdsl.compiler import list_specs, load
from lossdsl.docs import BLOB, prose, prose_markdown, write_site
from lossdsl.errors import LossError
from lossdsl.latex import spec_latex

ROOT = Path(__file__).resolve().parents[1]
# one spec per plot axis (pt, margin, similarity), and one that no axis fits
PLOTTED = {"focal": "pt", "bpr": "margin", "triplet_margin": "similarity"}
NO_AXIS = "ctc"
SECTIONS = (
    "## Formula",
    "## Signature",
    "## Conventions",
    "## Paper",
    "## Verified against",
    "## Plot",
    "## Generated code",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    return write_site(out, plots_for=[*PLOTTED, NO_AXIS])


@pytest.fixture(scope="module")
def pages(site) -> dict[str, str]:
    return {
        p.stem: p.read_text(encoding="utf-8") for p in (site.root / "docs" / "specs").glob("*.md")
    }


def _section(page: str, title: str) -> str:
    return page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _plain(markdown: str) -> str:
    """What the reader sees of `_inline`'s markdown: links as their text, escapes undone."""
    text = re.sub(r"\[`([^`]+)`\]\([^)]+\)", r"\1", markdown)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return html.unescape(re.sub(r"\\(.)", r"\1", text))


# ---- the pages ----------------------------------------------------------------------------


def test_one_page_per_spec_in_the_nav_and_the_index(site, pages):
    names = list_specs()
    assert sorted(pages) == names == site.pages
    cfg = (site.root / "mkdocs.yml").read_text(encoding="utf-8")
    index = (site.root / "docs" / "index.md").read_text(encoding="utf-8")
    for name in names:
        assert f"    - {name}: specs/{name}.md\n" in cfg
        meta = load(name).meta
        row = f"| [{name}](specs/{name}.md) | "
        assert row in index and index.split(row, 1)[1].split("\n")[0].endswith(
            f" | {meta.short_citation()} |"
        )
    # the README's intro, and the repo's docs pages (docs/specs.md is the spec pages here)
    assert index.startswith("# lossdsl\n\nLoss functions as small typed expressions")
    copied = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    copied.discard("specs.md")
    for rel in copied:
        assert (site.root / "docs" / rel).is_file(), rel
        assert f": {rel}\n" in cfg
    for need in ("name: material", "pymdownx.arithmatex", "pymdownx.details", "- search"):
        assert need in cfg


def test_every_page_has_each_section_in_order(pages):
    for name, page in pages.items():
        assert page.startswith(f"# {name}\n"), name
        at = [page.find(f"\n{s}\n") for s in SECTIONS]
        assert -1 not in at and at == sorted(at), (name, at)
        assert f'??? abstract "The spec: `specs/{name}.loss`"' in page
        for backend in ("torch", "jax"):
            assert f"`lossdsl compile {name} --backend {backend}`" in page, name


def test_formula_verified_and_paper_match_the_spec(pages):
    for name in list_specs():
        spec = load(name)
        page, m = pages[name], spec.meta
        assert f"\n$$\n{spec_latex(spec)}\n$$\n" in _section(page, "Formula"), name
        bullets = re.findall(r"^- (.*)$", _section(page, "Verified against"), re.M)
        assert [_plain(b) for b in bullets] == list(m.verified), name
        paper = _section(page, "Paper")
        code = re.findall(r"^- (.*)$", paper, re.M)
        assert [_plain(c) for c in code] == (list(m.code) or ["n/a"]), name
        if m.arxiv:
            assert f"(https://arxiv.org/abs/{m.arxiv})" in paper
        if m.doi:
            assert f"(https://doi.org/{m.doi})" in paper
        if m.paper:
            assert f"*{m.paper}*" in paper


def test_conventions_are_the_docstring_without_its_field_block(pages):
    for name in list_specs():
        spec = load(name)
        text = _section(pages[name], "Conventions")
        assert "\nverified: " not in text and "\nsummary: " not in text, name
        first = prose(spec.doc).split("\n")[0]
        assert " ".join(first.split()) in _plain(text), name
        # every "Label:" line of the docstring opens a paragraph of its own
        for label in re.findall(r"^(Inputs|Params|Reduction|Stability):", prose(spec.doc), re.M):
            assert f"\n**{label}:** " in text, (name, label)


def test_generated_code_is_the_specs_source(pages):
    for name in [*PLOTTED, "cross_entropy", "dice", "soft_dtw"]:
        spec = load(name)
        code = _section(pages[name], "Generated code")
        blocks = re.findall(r"\n    ```python\n(.*?)\n    ```\n", code, re.S)
        want = [spec.source(b).rstrip("\n").split("\n") for b in ("torch", "jax")]
        assert [textwrap.dedent(b).split("\n") for b in blocks] == [
            [line.rstrip() for line in w] for w in want
        ], name
        # kept out of the search index (mkdocs-material's data-search-exclude)
        assert '<section data-search-exclude markdown="1">' in code


def test_every_repo_link_resolves(site, pages):
    linked = []
    for path in (site.root / "docs").rglob("*.md"):
        for rel in re.findall(rf"\]\({re.escape(BLOB)}/([^)#\s]+)", path.read_text("utf-8")):
            assert (ROOT / rel).exists(), f"{path.name} links {rel}, not in the repo"
            linked.append(rel)
    tests = [r for r in linked if r.startswith("tests/")]
    # every spec names the tests that verify it; those paths are linked
    assert len(set(tests)) > 50 and all(f"{BLOB}/tests/" in pages[n] for n in pages)
    # another project's test file ("kornia's tests/losses/test_cauchy.py") is not linked
    assert "tests/losses/test_cauchy.py" in _plain(pages["cauchy"])
    assert "blob/main/tests/losses/" not in pages["cauchy"]


def test_plots_for_the_asked_specs_only(site, pages):
    assert site.plots == PLOTTED
    assert set(site.no_plot) == {NO_AXIS}
    for name, axis in PLOTTED.items():
        png = site.root / "docs" / "specs" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name}: loss and derivative over {axis}]({name}.png)" in pages[name]
    assert "No plot: `lossdsl plot` has no axis" in _section(pages[NO_AXIS], "Plot")
    assert "No plot: not drawn" in _section(pages["cross_entropy"], "Plot")
    assert len(list((site.root / "docs" / "specs").glob("*.png"))) == len(PLOTTED)


def test_mkdocs_build_strict(site, tmp_path):
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs-material is not installed: pip install -e '.[test]' (or '.[docs]')")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
        + ["-f", str(site.root / "mkdocs.yml"), "-d", str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    focal = (tmp_path / "html" / "specs" / "focal" / "index.html").read_text("utf-8")
    assert '<div class="arithmatex">' in focal and "<details" in focal
    assert '<img alt="focal: loss and derivative over pt" src="../focal.png"' in focal
    assert (tmp_path / "html" / "specs" / "focal.png").is_file()


# ---- the pieces -----------------------------------------------------------------------------


def test_prose_markdown():
    doc = textwrap.dedent(
        """\
        Title: a sentence with `code_span` and a_b * c.

            l = a * b   (a formula)
              continued

        Inputs: x float[B] <the scores>; see https://example.org/a_b.
        Params: p = 1 | 2, $5 (tests/test_site.py; kornia's tests/losses/test_x.py).
        Reduction: mean.

        summary: One.
        verified: tests/test_site.py"""
    )
    text = prose(doc)
    assert text.endswith("Reduction: mean.") and "summary" not in text
    md = prose_markdown(text)
    blocks = md.split("\n\n")
    assert blocks[0] == "Title: a sentence with `code_span` and a\\_b \\* c."
    assert blocks[1] == "```text\nl = a * b   (a formula)\n  continued\n```"
    assert blocks[2] == (
        "**Inputs:** x float\\[B\\] &lt;the scores&gt;; see <https://example.org/a_b>."
    )
    assert blocks[3] == (
        f"**Params:** p = 1 &#124; 2, \\$5 ([`tests/test_site.py`]({BLOB}/tests/test_site.py); "
        "kornia's tests/losses/test\\_x.py)."
    )
    assert blocks[4] == "**Reduction:** mean."
    assert prose("No field block.\n\nJust: prose") == "No field block.\n\nJust: prose"


def test_cli_site_options(tmp_path, capsys):
    assert main(["docs", "--no-plots"]) == 1
    assert "--no-plots goes with --site" in capsys.readouterr().err
    assert main(["docs", "--site", str(tmp_path / "s"), "-o", str(tmp_path / "x.md")]) == 1
    assert "exclude each other" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(LossError, match="not a site"):
        write_site(tmp_path / "mine", plots_for=())
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(LossError, match="no shipped spec nope"):
        write_site(tmp_path / "new", plots_for=["nope"])
