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
from lossdsl.codegen import TARGETS, load_backend
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
    "fill(v)[i] -> fill(v)": "w[i] * sum(x, over=C) + sort(w, over=C, by=x)",
    "where(true, a, b) -> a": "where(true, x, y)",
    "sum(fill(v)) -> v * size": "sum(w, over=C) * x + sum(v - 2.5, over=C)",
    "repeat(0, init) -> init": "repeat(0, init=x) (r) { r * y }",
    "x^2 -> x*x": "x^2",
    "where(c, 1, 0) -> float(c)": "where(x > 0, w, 0.0) * x",
    # fires on the finite factors (a mask as numbers, a one-hot) and on an absent input's zero
    # ((w - 1) with w absent), keeps 0 * log(y) (NaN at y = 0)
    "0 * x -> 0 (x finite, or an absent input's 0), 0 / size(D) -> 0": (
        "x + 0.0 * float(y > 0) + 0.0 * onehot(i) + 0.0 * log(y) + (w - 1) * log(y) + 0.0 / size(C)"
    ),
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
    "1 - (p t + q (1 - t)) -> (1 - p) t + (1 - q) (1 - t), p, q sigmoids": (
        "1 - (sigmoid(x) * q + (1 - sigmoid(x)) * (1 - q))"
    ),
    "softmax(x)[i] -> exp(log_softmax(x)[i])": "softmax(x, over=C)[i]",
    "log(exp x) -> x": "log(exp(x))",
    "q * log q -> xlogy(q, q)": "q * log(q)",
    "(1 - p)^gamma -> where(1 - p > tiny, 1 - p, stop_grad(1 - p))^gamma": ("(1 - sigmoid(x))^0.5"),
    "sum(a * b, over) -> contract(a, b, over)": "sum(sum(x * x', over=C), over=B')",
    "-log_softmax(x)[t] -> cross_entropy(x, t)": "log_softmax(x, over=C)[i]",
    "mean(x, over=D) -> sum(x, over=D) / size(D)": "mean(x, over=C)",
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


def _in_a_loop(body):
    """The trigger as one step of a repeat (its inputs are the body's free values)."""
    return (
        f"loss t({HEAD}) {{\n    let h = repeat(1, init=0 * ({body})) (s) {{\n"
        f"        s + ({body})\n    }}\n    h\n}}\n"
    )


@pytest.mark.parametrize("table,row", RULES, ids=lambda r: getattr(r, "name", r))
def test_rule_fires_inside_a_loop_body_and_preserves_meaning(table, row):
    """A loop's body is closed (lossdsl/ir.py Body): passes/loops.py in_bodies runs every
    rule inside it too, absent inputs' constant fills and baked literals put in first. Before,
    log(softmax(s)) in a repeat stayed -inf at large logits."""
    from lossdsl.passes.loops import in_bodies

    spec = lossdsl.parse(_in_a_loop(TRIGGERS[row.name]))
    ref = load_backend("numpy")
    folded = spec._lowered(frozenset({"w", "v"}))
    base = verify(in_bodies(lambda p: p)(folded))  # (the fills moved in, no rule)
    after = verify(in_bodies(lambda p: run_rules(p, (row,)))(folded))
    assert format_program(after) != format_program(base), f"{row.name} did not fire"
    for seed in range(2):
        d = data(np.random.default_rng(seed))
        a = ref.evaluate(folded, d, {}, "none")
        np.testing.assert_allclose(ref.evaluate(after, d, {}, "none"), a, rtol=1e-12, atol=1e-14)
    if row.name in EXTREME:
        d = data(np.random.default_rng(0), EXTREME[row.name])
        with np.errstate(all="ignore"):
            a = ref.evaluate(folded, d, {}, "none")
        assert not np.all(np.isfinite(a)), "the trigger should break the unrewritten form"
        assert np.all(np.isfinite(ref.evaluate(after, d, {}, "none"))), row.name


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_log_softmax_inside_a_repeat_is_stable_on_every_backend(backend):
    # two steps of log(softmax(s)) from x = [1000, 0]: log_softmax gives [0, -1000] both times
    # (-log(1 + e^-1000) is 0 in float64; hand computation), the sum -1000; unstabilized,
    # softmax underflows to [1, 0] and the log gives -inf
    from helpers import call

    spec = lossdsl.parse(
        "loss t(x: float[B, C]) {\n    let h = repeat(2, init=x) (s) {\n"
        "        log(softmax(s, over=C))\n    }\n    sum(h, over=C)\n}\n"
    )
    got = call(backend, spec.compile(backend), {"x": np.array([[1000.0, 0.0]])}, "float64",
               reduction="none")  # fmt: skip
    np.testing.assert_array_equal(np.asarray(got), [-1000.0])


def _loops(eqns):
    """(equation, body) of each loop and grad, nested ones too; a loop of several state
    values (one equation each, one body) once."""
    from lossdsl.ir import Body

    seen = set()
    for e in eqns:
        body = e.attr("body")
        if isinstance(body, Body) and id(body) not in seen:
            seen.add(id(body))
            yield e, body
            yield from _loops(body.eqns)


# the shipped specs with a loop, and CTC written as a scan (specs/ctc calls the ctc_nll op)
CTC_SCAN = str(Path(__file__).resolve().parent / "programs" / "ctc_scan.loss")
LOOP_SPECS = [
    n for n in lossdsl.list_specs() if any(True for _ in _loops(lossdsl.load(n).program().eqns))
] + [CTC_SCAN]


def test_the_loop_specs_are_found():
    assert {"sinkhorn", "soft_dtw", "vat", "wgan_gp"} <= set(LOOP_SPECS)
    assert any(True for _ in _loops(lossdsl.load(CTC_SCAN).program().eqns))


@pytest.mark.parametrize("name", LOOP_SPECS)
def test_no_loop_of_a_spec_keeps_an_invariant_equation(name):
    """passes/loops.py hoist: after the pipeline no repeat or scan body holds an equation that
    reads only its free values and literals (computed once per step for nothing; CTC's scan
    rebuilt arange(L) and two masks at each of T steps); every equation name, in the program
    and its bodies, is defined once."""
    from lossdsl.ops import OPS

    for absent in lossdsl.load(name).variants():
        prog = lossdsl.load(name).program(absent)
        outs = [e.out.name for e in prog.eqns]
        for e, body in _loops(prog.eqns):
            outs += [b.out.name for b in body.eqns]
            if OPS[e.op].kind != "loop":
                continue
            inv = {v.name for v in body.free}
            for b in body.eqns:
                assert b.op == "call_fn" or not all(
                    not hasattr(a, "name") or a.name in inv for a in b.args
                ), (name, b)
        assert len(outs) == len(set(outs)), name


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


# ---- every rule at the special points ------------------------------------------------------

SPECIAL = (-np.inf, -1e300, -30.0, -1.0, 0.0, 1.0, 30.0, 1e300, np.inf, np.nan)
# The unrewritten form's own error at the special points, for rules whose reason is a
# cancellation: sigmoid(±30) is 1 - 9.4e-14 rounded to float64 (1.1e-16 absolute), so
# log(sigmoid(30)) and log(1 - sigmoid(-30)) (= -9.4e-14) are off by up to 1.1e-16 / 9.4e-14
# = 1.2e-3 relative; the rewritten forms are exact there.
SIGMOID_PT = "1 - (p t + q (1 - t)) -> (1 - p) t + (1 - q) (1 - t), p, q sigmoids"
CANCELS = {
    "log(sigmoid x) -> -softplus(-x)": 2e-3,
    "log(1 - sigmoid x) -> -softplus(x)": 2e-3,
    SIGMOID_PT: 2e-3,  # the unrewritten 1 - p_t cancels at x = +-30 (1.6e-4 off in float64)
}
# Rules on a target t in [0, 1] (the multilabel prelude's): compared where the trigger's q is
# in [0, 1]. At q = 1e300 both forms cancel catastrophically (x = 0: 1 vs 0, exactly 0.5).
UNIT_TARGET = {SIGMOID_PT}
# Rules whose reason is an overflow/underflow: where the unrewritten form is ±inf the rewritten
# may be the finite value of the same sign (log(exp(-1e300)) = -1e300, not -inf).
OVERFLOWS = set(EXTREME) | {
    "softmax(x)[i] -> exp(log_softmax(x)[i])",
    "-log_softmax(x)[t] -> cross_entropy(x, t)",
}
# Rules whose reason is an indeterminate form: where the unrewritten form is NaN, the rewritten
# may be a value (0 * log 0 = 0; a term scaled by a baked zero is absent).
INDETERMINATE = {"q * log q -> xlogy(q, q)"}
REDUCTIONS = ("none", "sum", "mean")
# The library pass (torch): the spec a rule of it fires on, and the params to call it with
# (ignore_index 0: class-0 rows are the ignored ones, every id stays in range).
LIBRARY_TRIGGERS = {
    "ce": (
        "loss t(x: float[B, C], i: index[B] of C) {\n    param ignore_index: int = -100\n"
        "    let valid = i != ignore_index\n    reduce mean by float(valid) empty 0\n"
        "    where(valid, -log_softmax(x, over=C)[where(valid, i, 0)], 0)\n}\n",
        {"ignore_index": 0},
    ),
}


def special_inputs(prog, c=4):
    """Every combination of the special points over the float inputs (and the same columns
    shuffled, so that rows mix them), laid out as [N, c]; class ids at random."""
    import itertools

    rng = np.random.default_rng(0)
    names = [i.var.name for i in prog.inputs if i.var.type.dtype == "float" and not i.optional]
    grid = np.array(list(itertools.product(SPECIAL, repeat=len(names))))
    grid = np.concatenate([grid, np.stack([rng.permutation(g) for g in grid.T], 1)])
    grid = np.concatenate([grid, grid[: -len(grid) % c]])
    d = {n: grid[:, k].reshape(-1, c) for k, n in enumerate(names)}
    for i in prog.inputs:
        if i.var.type.of is not None:
            d[i.var.name] = rng.integers(0, c, len(grid) // c)
    return d


def run_program(backend, prog, d, reduction, params):
    """`prog` as the module `backend` emits for it, called on `d` (float64)."""
    from lossdsl.codegen import function_name, module_source

    ns: dict = {}
    exec(compile(module_source(load_backend(backend).TARGET, [prog], ""), "<t>", "exec"), ns)
    fn = ns[function_name(prog.name)]
    args = [d[i.var.name] for i in prog.inputs]
    if backend == "torch":
        return fn(*map(torch.as_tensor, args), reduction=reduction, **params).numpy()
    if backend == "jax":
        import jax.numpy as jnp

        return np.asarray(fn(*map(jnp.asarray, args), reduction=reduction, **params))
    with np.errstate(all="ignore"):
        return np.asarray(fn(*args, reduction=reduction, **params))


def assert_kept(want, got, rule, where):
    """`got` (a backend on the rewritten program) keeps `want` (the numpy reference of the
    unrewritten one): no new NaN, NaN stays NaN, ±inf keeps its sign, finite values agree."""
    want, got = np.broadcast_to(want, np.shape(got)), np.asarray(got)
    nan_w, nan_g = np.isnan(want), np.isnan(got)
    assert not (nan_g & ~nan_w).any(), f"{rule} ({where}): NaN where the original is not"
    if rule not in INDETERMINATE:
        assert not (nan_w & ~nan_g).any(), f"{rule} ({where}): a NaN became a value"
    inf = np.isinf(want)
    assert (np.sign(got[inf]) == np.sign(want[inf])).all(), f"{rule} ({where}): inf's sign"
    if rule not in OVERFLOWS:
        assert np.isinf(got[inf]).all(), f"{rule} ({where}): an inf became finite"
    fin = np.isfinite(want)
    np.testing.assert_allclose(
        got[fin], want[fin], rtol=CANCELS.get(rule, 1e-9), atol=1e-300, err_msg=f"{rule} {where}"
    )


@pytest.mark.parametrize("table,row", RULES, ids=lambda r: getattr(r, "name", r))
def test_rule_keeps_the_value_at_special_points(table, row):
    """Each rule on its trigger, at every combination of ±inf, ±1e300, ±30, ±1, 0 and NaN per
    float input: the numpy reference of the unrewritten program against every backend's code
    for the rewritten one (found torch's F.binary_cross_entropy_with_logits NaN at x = -inf)."""
    spec = lossdsl.parse(f"loss t({HEAD}) {{\n    {TRIGGERS[row.name]}\n}}\n")
    before = spec._lowered(frozenset({"w", "v"}))
    after = verify(run_rules(before, (row,)))
    d = special_inputs(before)
    ref = load_backend("numpy")
    keep = (d["q"] >= 0) & (d["q"] <= 1) if row.name in UNIT_TARGET else slice(None)
    with np.errstate(all="ignore"):
        want = ref.evaluate(before, d, {}, "none")[keep]
        assert_kept(want, ref.evaluate(after, d, {}, "none")[keep], row.name, "op table")
    for backend in TARGETS:
        got = np.asarray(run_program(backend, after, d, "none", {}))[keep]
        assert_kept(want, got, row.name, backend)


@pytest.mark.parametrize("name", LIBRARY_TRIGGERS)
def test_library_rules_keep_the_value_at_special_points(name):
    from lossdsl.passes.library import LIBRARY_RULES, library

    text, params = LIBRARY_TRIGGERS[name]
    before = lossdsl.parse(text).program()
    after = verify(library(before))
    made = {e.op for e in after.eqns} - {e.op for e in before.eqns}
    assert "cross_entropy_ignore" in made, made
    d = special_inputs(before)
    ref = load_backend("numpy")
    for reduction in REDUCTIONS:
        with np.errstate(all="ignore"):
            want = ref.evaluate(before, d, params, reduction)
        got = run_program("torch", after, d, reduction, params)
        assert_kept(want, got, f"library {name}", reduction)
    assert len(LIBRARY_RULES) == 3  # all three fire on this spec (test_library_pass.py)


def test_softplus_minus_t_x_is_inf_at_a_minus_inf_logit():
    """softplus(z) - q z at z = -inf is 0 + inf = +inf for every q > 0, 1e-300 included; torch's
    F.binary_cross_entropy_with_logits is NaN there on (z, q) ((1 - q) z - logsigmoid(z)) and
    on (-z, 1 - q) for q below eps/4 (1 - q rounds to 1), so no backend calls it (scripts/
    difffuzz.py, seed 22926). z = +inf, q = 0: inf - 0 * inf, NaN as written."""
    spec = lossdsl.parse("loss f(z: float[B], q: float[B]) {\n    softplus(z) - q * z\n}\n")
    z = np.array([-np.inf, -np.inf, -np.inf, 3.0, np.inf])
    q = np.array([1.0, 0.5, 1e-300, 0.25, 0.0])
    want = [np.inf, np.inf, np.inf, np.log1p(np.exp(3.0)) - 0.75, np.nan]
    for backend in TARGETS:
        got = run_program(backend, spec.program(), {"z": z, "q": q}, "none", {})
        np.testing.assert_allclose(got, want, rtol=1e-15, err_msg=backend)


def test_a_baked_zero_times_inf_stays_nan():
    """Only a zero made of absent optional inputs drops its term (docs/language.md); any other
    folded zero times inf is NaN, as IEEE 754 says (numpy: 0.0 * -inf is nan). Here the baked
    pk makes the mask false everywhere, so the masked mean is its empty value 0, times
    sum(z) / log_softmax(z) = -1 / 0 = -inf. Found by scripts/difffuzz.py (seed 24061): the
    fold made the empty value a fill, which the `0 * x` rule took for an absent input's."""
    spec = lossdsl.parse(
        "loss f(z: float[B, D], g: float[B, C, *S]) {\n    param pk: int = 0\n"
        "    (sum(z, over=D) / log_softmax(z, over=D)) * mean(expand(sum(g, over=(B, C)), B, D),"
        " over=S, mask=(pk == 1), empty=0)\n}\n"
    )
    z, g = np.array([[-1.0]]), np.ones((1, 2, 2))
    assert np.isnan(np.float64(0.0) * -np.inf)
    for backend in TARGETS:
        for baked in (True, False):
            fn = spec.compile(backend, pk=2) if baked else spec.compile(backend)
            kw = {} if baked else {"pk": 2}
            if backend == "torch":
                got = fn(torch.as_tensor(z), torch.as_tensor(g), reduction="none", **kw).numpy()
            else:
                got = np.asarray(fn(z, g, reduction="none", **kw))
            assert got.shape == (1, 1) and np.isnan(got).all(), (backend, baked, got)


@pytest.mark.parametrize(
    "expr",
    [
        "normalize(w - 1e300, over=C)",  # difffuzz: the square of -1e300 in the norm
        "w * 1e300 * 1e300",
        "exp(w * 1000)",
        "w ^ 1000 * 1e300",
        "-exp(s * 800) * w",
        "(w + s) * 1e200 * 1e200 - 1",
    ],
)
def test_a_fold_that_overflows_gives_the_run_time_value(expr):
    """An absent input's default (w = 2) or a baked param (s = 1) folded through an op that
    overflows float64 is no constant the user wrote (those are errors at parse, README
    "Params"): it is the inf, or what follows from it, that the same program computes with w or
    s passed at run time. Before, the fold raised ConstantError at compile (difffuzz, seed
    22293). Expected: the program with both passed, on the same backend."""
    spec = lossdsl.parse(
        "loss f(x: float[B, C], w: float[C] = 2) {\n    param s: float = 1\n"
        f"    sum(x * ({expr}), over=C)\n}}\n"
    )
    x, w = np.array([[1.0, -2.0, 0.5]]), np.full(3, 2.0)
    for backend in TARGETS:
        unfolded = spec.compile(backend)
        folded = spec.compile(backend, s=1.0)
        if backend == "torch":
            want = unfolded(torch.as_tensor(x), torch.as_tensor(w), s=1.0).numpy()
            got = folded(torch.as_tensor(x)).numpy()
        else:
            want = np.asarray(unfolded(x, w, s=1.0))
            got = np.asarray(folded(x))
        np.testing.assert_array_equal(got, want, err_msg=backend)


def test_an_expanded_factor_contracts_without_its_outer_product():
    """sum(expand(x, H') * k, over=H), a blur written as a matrix along H: the contract pass
    sees through the expand (k has H' anyway), so torch and jax call einsum and never build the
    [B, C, H, W, H'] product; values against numpy's einsum."""
    spec = lossdsl.parse(
        "loss blurmat(x: float[B, C, H, W], k: float[H, H']) {\n"
        "    let y = sum(expand(x, H') * k, over=H)\n    sum(y * y, over=(C, H', W))\n}\n"
    )
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((4, 4))
    want = (np.einsum("bchw,hg->bcwg", x, k) ** 2).sum((1, 2, 3))
    for backend in ("torch", "jax"):
        src = spec.source(backend)
        assert "einsum" in src and "expand(" not in src and "broadcast_to" not in src, backend
    for backend in TARGETS:
        got = run_program(backend, spec.program(), {"x": x, "k": k}, "none", {})
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=backend)


# A plain [N, D] by [D, L] matmul written the ways users write it (issue 21: four of fifteen
# losses written from papers were 66-143x slow for materializing [N, D, L]).
_MATMULS = (
    "sum(expand(x, L) * w, over=D)",
    "sum(w * expand(x, L), over=D)",
    "sum(expand(w, N) * x, over=D)",
    "sum(expand(x, L) * expand(w, N), over=D)",
    # longer products: a scale and a mask join a side that has their dims
    "sum(2 * expand(x, L) * w, over=D)",
    "sum(expand(x, L) * w * m, over=D)",
    "sum(m * (expand(x, L) * 0.5) * (w * m), over=D)",
)
_MATMUL_WANT = {
    "sum(2 * expand(x, L) * w, over=D)": lambda x, w, m: 2 * x @ w,
    "sum(expand(x, L) * w * m, over=D)": lambda x, w, m: (x * m) @ w,
    "sum(m * (expand(x, L) * 0.5) * (w * m), over=D)": lambda x, w, m: (0.5 * x * m * m) @ w,
}


@pytest.mark.parametrize("form", _MATMULS)
def test_a_plain_matmul_is_a_contraction_after_the_contract_pass(form):
    """After the contract pass (`lossdsl ir --after contract`) the program holds a contract of
    x and w and no [N, D, L] value, dead or alive; every target computes numpy's einsum."""
    spec = lossdsl.parse(
        f"loss mm(x: float[N, D], w: float[D, L], m: float[D]) {{\n    let z = {form}\n"
        "    sum(z * z, over=L)\n}\n"
    )
    text = spec.ir(after="contract")
    assert "contract[over=(D)]" in text, text
    assert not [t for t in ("[N, D, L]", "[D, L, N]", "[N, L, D]") if t in text], text
    rng = np.random.default_rng(1)
    x, w, m = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.random(4)
    want = (_MATMUL_WANT.get(form, lambda x, w, m: x @ w)(x, w, m) ** 2).sum(1)
    for backend in TARGETS:
        got = run_program(backend, spec.program(), {"x": x, "w": w, "m": m}, "none", {})
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=backend)


# Products of expands summed over dims: every (operand, expanded dims, summed dims) shape of
# sum(expand(a, E1) * expand(b, E2), over=O), its expected value from a named-dim evaluator
# written here (expand = a new axis of the dim's size, * aligns by name, sum adds axes up).
_SIZES = {"B": 2, "B'": 2, "C": 4, "D": 5}  # B' is B's twin: the same size
_OPERANDS_A = {"x": ("B", "C"), "sum(x, over=C)": ("B",)}
_OPERANDS_B = {"y": ("B'", "C"), "sum(y, over=C)": ("B'",)}


def _named(arr, dims, want):
    """arr (axes `dims`) broadcast to the axes `want`: new axes of each dim's size."""
    arr = np.asarray(arr)
    for d in want:
        if d not in dims:
            arr, dims = np.broadcast_to(arr[..., None], arr.shape + (_SIZES[d],)), (*dims, d)
    return np.transpose(arr, [dims.index(d) for d in want])


def _expand_cases(n=80, seed=5):
    """Every legal case (broadcasting by name needs one factor's dims among the other's), a
    seeded sample of n of them plus the difffuzz one."""
    import itertools

    def subsets(dims):
        return [c for k in range(len(dims) + 1) for c in itertools.combinations(dims, k)]

    out = []
    for (ea, da), (eb, db) in itertools.product(_OPERANDS_A.items(), _OPERANDS_B.items()):
        for new_a in subsets([d for d in _SIZES if d not in da]):
            for new_b in subsets([d for d in _SIZES if d not in db]):
                fa, fb = {*da, *new_a}, {*db, *new_b}
                if not (fa <= fb or fb <= fa):
                    continue
                whole = list(dict.fromkeys([*da, *new_a, *db, *new_b]))
                out += [(ea, new_a, eb, new_b, o) for o in subsets(whole) if o]
    rng = np.random.default_rng(seed)
    found = ("sum(x, over=C)", ("B'", "C"), "sum(y, over=C)", ("C",), ("C", "B'"))
    return [found] + [out[i] for i in rng.choice(len(out), n, replace=False)]


@pytest.mark.parametrize("case", _expand_cases(), ids=str)
def test_a_sum_of_expanded_products_keeps_every_summed_dim(case):
    """The contract pass drops an expand whose new dims the other factor has; before the fix it
    dropped both factors' expands of the same dim, so sum(expand(s, C) * expand(t, C), over=C)
    lost the factor C (difffuzz, seed 11873: min(mean(expand(sum(x, over=C), B', C) *
    expand(sum(prime(x, B), over=C), C), over=(C, B'))) was a quarter of its value, C = 4)."""
    ea, new_a, eb, new_b, over = case
    wrap = lambda e, new: f"expand({e}, {', '.join(new)})" if new else e  # noqa: E731
    src = (
        "loss f(x: float[B, C], y: float[B', C], d: float[D]) {\n"  # d brings D in scope
        f"    let p = sum({wrap(ea, new_a)} * {wrap(eb, new_b)}, over=({', '.join(over)}))\n"
        "    sum(p)\n}\n"
    )
    rng = np.random.default_rng(len(src))
    x, y = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    vals = {"x": (x, ("B", "C")), "sum(x, over=C)": (x.sum(1), ("B",))}
    vals |= {"y": (y, ("B'", "C")), "sum(y, over=C)": (y.sum(1), ("B'",))}
    whole = tuple(dict.fromkeys([*_OPERANDS_A[ea], *new_a, *_OPERANDS_B[eb], *new_b]))
    prod = _named(*vals[ea], whole) * _named(*vals[eb], whole)
    want = prod.sum()  # the loss sums what is left after `over`: the total either way
    spec = lossdsl.parse(src)
    for backend in TARGETS:
        got = run_program(backend, spec.program(), {"x": x, "y": y, "d": np.zeros(5)}, "none", {})
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=(backend, src))
