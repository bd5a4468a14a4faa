"""The optimizer: every rewrite rule fires on a program written to trigger it and preserves
the program's meaning (numpy reference, float64, random inputs); the stability rules also turn
a non-finite result at extreme inputs into a finite one; the verifier accepts the IR after every
pass of every shipped spec; golden IR and source for focal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.backend import load_backend
from lossdsl.ir import format_program, verify
from lossdsl.passes import PASS_NAMES, RULE_TABLES, run_pipeline
from lossdsl.passes.rewrite import run_rules

HEAD = (
    "x: float[B, C], y: float[B, C], q: float[B, C], i: index[B] of C, w: float[C] = 1, "
    "v: float[C] = 0"
)

# rule name -> a loss body that triggers it (inputs: HEAD; y > 0, q in (0, 1) elementwise)
TRIGGERS = {
    # absent w, v are constant fills: exp(fill) folds, a constant condition picks a branch
    "fold": "exp(w) * x + where(v > 0, y, x) + where((x > 0) | (v < 1), x, y)",
    "x + 0 -> x": "x + 0.0",
    "x - 0 -> x": "x - 0.0",
    "x * 1 -> x": "x * 1.0",
    "x / 1 -> x": "x / 1.0",
    "x ^ 1 -> x": "y ^ 1.0",
    "-(-x) -> x": "-(-x)",
    "x^0 * y -> y": "y^0.0 * x",
    "fill(1) * x -> x": "w * x",
    "fill(v)[i] -> fill(v)": "w[i] * sum(x, over=C)",
    "where(true, a, b) -> a": "where(true, x, y)",
    "x^2 -> x*x": "x^2",
    "where(c, 1, 0) -> float(c)": "where(x > 0, w, 0.0) * x",
    "0 * x -> 0, 0 / size(D) -> 0": "x + 0.0 * log(y) + 0.0 / size(C)",
    "x + fill(0) -> x": "x + v",
    "s * (t * x) -> (s * t) * x": (
        "2.0 * (3.0 * x) + 2.0 * -x + 2.0 * (x / size(C)) + (2.0 * x) / size(B) - (2.0 * y)"
    ),
    "x & true -> x": "where((x > 0) & true, x, y)",
    "x | false -> x": "where((x > 0) | false, x, y)",
    "log(softmax x) -> log_softmax x": "log(softmax(x, over=C))",
    "log(sigmoid x) -> -softplus(-x)": "log(sigmoid(x))",
    "log(1 - sigmoid x) -> -softplus(x)": "log(1 - sigmoid(x))",
    "log(sum(exp x)) -> logsumexp x": "log(sum(exp(x), over=C))",
    "log(1 + x) -> log1p x": "log(1 + y)",
    "1 - exp(x) -> -expm1(x)": "1 - exp(-y)",
    "softmax(x)[i] -> exp(log_softmax(x)[i])": "softmax(x, over=C)[i]",
    "log(exp x) -> x": "log(exp(x))",
    "q * log q -> xlogy(q, q)": "q * log(q)",
    "sum(a * b, over) -> contract(a, b, over)": "sum(sum(x * x', over=C), over=B')",
    "-log_softmax(x)[t] -> cross_entropy(x, t)": "log_softmax(x, over=C)[i]",
    "mean(x, over=D) -> sum(x, over=D) / size(D)": "mean(x, over=C)",
    "softplus(x) - t * x -> bce_logits(x, t)": "softplus(x) - q * x",
}
RULES = [(table, row) for table, rows in RULE_TABLES.items() for row in rows]
EXTREME = {  # rules whose reason is an overflow/underflow: inputs where the original breaks
    "log(softmax x) -> log_softmax x": 1e4,
    "log(sigmoid x) -> -softplus(-x)": 1e3,
    "log(1 - sigmoid x) -> -softplus(x)": 1e3,
    "log(sum(exp x)) -> logsumexp x": 1e3,
    "log(exp x) -> x": 1e3,
}


def data(rng, scale=1.0):
    b, c = 5, 4
    return {
        "x": rng.standard_normal((b, c)) * scale,
        "y": rng.uniform(1e-3, 2.0, (b, c)),
        "q": rng.uniform(0.0, 1.0, (b, c)),
        "i": rng.integers(0, c, b),
    }


def test_every_rule_has_a_trigger():
    assert set(TRIGGERS) == {row.name for _, row in RULES}


def test_every_rule_states_its_reason():
    assert all(len(row.reason) > 10 for _, row in RULES)


@pytest.mark.parametrize("table,row", RULES, ids=lambda r: getattr(r, "name", r))
def test_rule_fires_and_preserves_meaning(table, row):
    spec = lossdsl.parse(f"loss t({HEAD}) {{\n    {TRIGGERS[row.name]}\n}}\n")
    ref = load_backend("numpy")
    folded = spec._lowered(frozenset({"w", "v"}))
    after = verify(run_rules(folded, (row,)))
    assert format_program(after) != format_program(folded), f"{row.name} did not fire"
    for seed in range(3):
        d = data(np.random.default_rng(seed))
        a = ref.evaluate(folded, d, {}, "none")
        b = ref.evaluate(after, d, {}, "none")
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=row.name)
    if row.name in EXTREME:
        d = data(np.random.default_rng(0), EXTREME[row.name])
        with np.errstate(all="ignore"):
            a = ref.evaluate(folded, d, {}, "none")
        b = ref.evaluate(after, d, {}, "none")
        assert not np.all(np.isfinite(a)), "the trigger should break the unrewritten form"
        assert np.all(np.isfinite(b)), row.name


@pytest.mark.parametrize("name", lossdsl.list_specs())
def test_verifier_accepts_every_pass_of_every_spec(name):
    spec = lossdsl.load(name)
    for absent in spec.variants():
        seen = []
        run_pipeline(spec._lowered(absent), lambda n, p: seen.append((n, verify(p))))
        assert [n for n, _ in seen] == list(PASS_NAMES)


def test_rules_only_rewrite_the_ops_they_declare():
    """run_rules offers a Row only equations of its `ops`: on every equation of every stage of
    every shipped spec, a row must do nothing to an op it does not declare."""
    from lossdsl.passes.library import LIBRARY_RULES, library
    from lossdsl.passes.rewrite import Rewriter

    rows = [r for r in (*(row for _, row in RULES), *LIBRARY_RULES) if r.ops is not None]
    assert len(rows) == len(RULES) + len(LIBRARY_RULES)  # every table row declares its ops
    checked = 0
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        stages = [spec._lowered(frozenset())]
        run_pipeline(stages[0], lambda n, p: stages.append(p))
        stages.append(library(stages[-1]))
        for prog in stages:
            rw = Rewriter(prog)
            for e in prog.eqns:
                for row in rows:
                    if e.op not in row.ops:
                        assert row.fn(rw, e) is None, (name, row.name, e.op)
                        checked += 1
                rw._append(e)
    assert checked > 10_000


def test_pipeline_preserves_every_spec():
    """Lowered IR vs fully optimized IR on the numpy reference."""
    from helpers import SHAPES, random_inputs

    ref = load_backend("numpy")
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        d = random_inputs(spec, SHAPES[0], np.random.default_rng(3))
        a = ref.evaluate(spec._lowered(frozenset()), d, {}, "none")
        b = ref.evaluate(spec.program(), d, {}, "none")
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=name)


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("kind", ["ir", "torch", "jax"])
def test_golden_focal(kind):
    """The IR text and generated code for the design's own example, held in tests/golden/
    (regenerate with LOSSDSL_REGEN=1 after an intended change, and review the diff)."""
    import os

    spec = lossdsl.load("focal")
    text = spec.ir(after="dce") if kind == "ir" else spec.source(kind)
    path = GOLDEN / f"focal.{kind}.txt"
    if os.environ.get("LOSSDSL_REGEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_layout_pass_removes_transposes():
    """dice's one-hot is built class-major like the probabilities it multiplies, and supcon's
    masks are built in the similarity's [B, V, B', V'] order: no transposed copies."""
    assert ".permute" not in lossdsl.load("dice").source("torch")
    supcon = lossdsl.load("supcon").source("torch")
    assert not [ln for ln in supcon.splitlines() if "torch.where" in ln and ".permute" in ln]
    before = lossdsl.load("supcon").ir(after="contract")
    after = lossdsl.load("supcon").ir(after="layout")
    assert "order=" in after and "order=" not in before


def test_cse_follows_a_value_renamed_to_a_let_name():
    """Found by scripts/fuzz.py: `1 - target` computed three times, the second under a let-name.
    CSE keeps the let-name on the first value; the third copy must be pointed at the renamed
    value, not the old name (the verifier caught 'used before definition')."""
    src = """loss f(x: float[B, C], t: float[B, C]) {
    let a = sum(x * (1 - t), over=C)
    let alpha_t = 1 - t
    a + sum((1 - t)^2 * x * alpha_t, over=C)
}
"""
    spec = lossdsl.parse(src)
    verify(spec.program())
    x, t = np.random.default_rng(0).random((2, 3, 4))
    want = np.sum(x * (1 - t), axis=1) + np.sum((1 - t) ** 3 * x, axis=1)
    np.testing.assert_allclose(spec.compile("numpy")(x, t, reduction="none"), want)


def test_a_let_that_names_an_existing_value_is_an_alias():
    """Found by scripts/fuzz.py (a mutation of dual_focal): `let p = (logp)` renamed the
    equation that computes logp to p, and the later `logp[target]` pointed at nothing (the
    verifier: 'logp used before definition')."""
    src = """loss f(x: float[B, C], t: index[B] of C) {
    let logp = log_softmax(x, over=C)
    let p = (logp)
    let lpt = logp[t]
    sum(p, over=C) + lpt
}
"""
    spec = lossdsl.parse(src)
    verify(spec.program())
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 4)), rng.integers(0, 4, 3)
    logp = x - np.log(np.sum(np.exp(x), axis=1, keepdims=True))  # log_softmax by hand
    want = np.sum(logp, axis=1) + logp[np.arange(3), t]
    np.testing.assert_allclose(spec.compile("numpy")(x, t, reduction="none"), want)
    got = spec.compile("torch")(torch.as_tensor(x), torch.as_tensor(t), reduction="none")
    np.testing.assert_allclose(got.numpy(), want)


def test_a_loss_named_like_a_python_keyword_compiles():
    """Found by scripts/fuzz.py: `loss lambda(...)` generated `def lambda(...)`."""
    spec = lossdsl.parse("loss lambda(x: float[B], None_: float[B]) {\n    x * None_\n}\n")
    for backend in ("torch", "jax"):
        fn = spec.compile(backend)
        assert fn.__name__ == "lambda_"
