"""`lossdsl latex` and docs/specs.md: every op has a LaTeX template, formulas read like the
papers', and the checked-in catalog is regenerated from the specs (stale = failure)."""

from __future__ import annotations

from pathlib import Path

import lossdsl
from lossdsl.docs import specs_markdown
from lossdsl.latex import TEMPLATES, spec_latex
from lossdsl.ops import OPS

ROOT = Path(__file__).resolve().parents[1]


def test_every_op_has_a_latex_template():
    # formulas render the lowered IR, which never holds the shard transform's collectives or
    # the library pass's calls (made for torch's source only)
    assert {op for op, d in OPS.items() if d.kind not in ("collective", "library")} <= set(
        TEMPLATES
    )


def test_focal_formula_reads_like_the_paper():
    """Lin et al. 2017, eq. 4: FL(p_t) = -(1 - p_t)^gamma log(p_t)."""
    tex = spec_latex(lossdsl.load("focal"))
    assert r"\ell &= \left(1 - p_t\right)^{\gamma} \, \mathrm{CE}" in tex
    assert r"\mathrm{CE} &= -\log p_t" in tex


def test_every_spec_renders():
    for name in lossdsl.list_specs():
        tex = spec_latex(lossdsl.load(name))
        assert tex.startswith(r"\begin{aligned}") and r"\ell &=" in tex, name
        assert tex.count("{") == tex.count("}"), name


def test_docs_catalog_is_up_to_date():
    """Regenerate with: python -m lossdsl docs -o docs/specs.md"""
    assert (ROOT / "docs" / "specs.md").read_text() == specs_markdown()


def test_readme_lists_what_each_task_prelude_binds():
    # The list in README's language section is the PRELUDES table's (lossdsl/lower/preludes.py).
    from lossdsl.lower.preludes import prelude_summary

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`use TASK(a, b)` ({prelude_summary()})" in readme
