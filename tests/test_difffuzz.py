"""Differential fuzzing in CI: random well-typed losses (tests/difffuzz.py) on every backend and
schedule against an independent evaluator: a fixed number of cases from a fixed seed, so every
run checks the same programs (generation does not depend on set order or PYTHONHASHSEED; a
time budget made CI pass or fail by machine speed). Failures of the known open bug classes
(difffuzz.KNOWN_BUGS, printed) are xfails; any other fails the test.
A longer run: `python scripts/difffuzz.py --seconds 1200 --seed N` (README, "Fuzzing")."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import warnings

import difffuzz as dfz
import numpy as np
import pytest

CASES, SEED = 80, 20261125


def _ev(src_prog, inputs, sizes, reduction="none", params=None):
    v, _ = dfz.evaluate(src_prog, inputs, params or {}, sizes, reduction)
    return v


def _prog(body, inputs, stmts=(), reduce=None):
    return dfz.Prog(dfz.LossDef("f", list(inputs), [], list(stmts), body, reduce))


X = dfz.Inp("x", "float", ("B", "C"))
V = dfz.Inp("v", "float", ("B",))
REF_X = dfz.E("ref", (), (("name", "x"), ("fixed", False)), "float", frozenset({"B", "C"}))
REF_V = dfz.E("ref", (), (("name", "v"), ("fixed", False)), "float", frozenset({"B"}))


def test_evaluator_masked_mean_counts_the_mask_broadcast_over_the_operand():
    # mean(x, over=(B, C), mask=v > 0): x = [[1, 2], [3, 4]], v = [1, -1] -> row 0 only:
    # (1 + 2) / 2 = 1.5 (the mask [B] counts once per C element; hand computation)
    m = dfz.E("bin", (REF_V, dfz.E("num", (), (("v", 0.0),))), (("op", ">"),), "bool",
              frozenset({"B"}))  # fmt: skip
    e = dfz.E("mmean", (REF_X, m), (("over", ("B", "C")), ("empty", None)), "float")
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = _ev(_prog(e, [X, V]), {"x": x, "v": np.array([1.0, -1.0])}, {"B": 2, "C": 2})
    assert out == 1.5
    # all masked: the declared empty value (0 by default)
    out = _ev(_prog(e, [X, V]), {"x": x, "v": np.array([-1.0, -1.0])}, {"B": 2, "C": 2})
    assert out == 0.0


def test_evaluator_primes_inside_a_reduction_keep_the_summed_dim():
    # sum(x * x', over=C) is the [B, B'] Gram matrix x @ x.T (README, "Primes")
    xp = dfz.E("prime", (REF_X,), (), "float", frozenset({"B'", "C"}))
    prod = dfz.E("bin", (REF_X, xp), (("op", "*"),), "float", frozenset({"B", "B'", "C"}))
    gram = dfz.E("red", (prod,), (("fn", "sum"), ("over", ("C",))), "float",
                 frozenset({"B", "B'"}))  # fmt: skip
    body = dfz.E("red", (gram,), (("fn", "sum"), ("over", ("B'",))), "float", frozenset({"B"}))
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    out = _ev(_prog(body, [X]), {"x": x}, {"B": 2, "C": 2, "B'": 2})
    assert np.array_equal(out, (x @ x.T).sum(axis=1))  # [5 + 13, 13 + 34]


def test_evaluator_weighted_mean_and_its_empty_value():
    # reduce mean by w empty 7: sum(loss) / sum(w) = (1 + 2) / (0.5 + 1) = 2; sum(w) = 0 -> 7
    w = dfz.E("ref", (), (("name", "w"), ("fixed", False)), "float", frozenset({"B"}))
    prog = _prog(REF_V, [V, dfz.Inp("w", "float", ("B",))], reduce=("mean", w, 7.0))
    v = np.array([1.0, 2.0])
    assert _ev(prog, {"v": v, "w": np.array([0.5, 1.0])}, {"B": 2}, None) == 2.0
    assert _ev(prog, {"v": v, "w": np.array([0.0, 0.0])}, {"B": 2}, None) == 7.0


def test_close_treats_nan_as_equal_and_uses_the_long_double_value():
    nan = np.array(math.nan)
    assert dfz.close(nan, nan, nan.astype(np.longdouble), 0.0)
    assert not dfz.close(np.array(1.0), nan, nan.astype(np.longdouble), 0.0)
    # float64 overflowed (-inf) where long double did not: a finite backend value matches
    ld = np.asarray(-745.5, dtype=np.longdouble)
    assert dfz.close(np.array(-745.5), np.array(-math.inf), ld, 0.0)
    assert not dfz.close(np.array(-745.4), np.array(-745.5), ld, 0.0)


def test_renderings_are_alpha_renamings_of_each_other():
    rng = random.Random(SEED)
    for _ in range(20):
        prog = dfz.gen_prog(rng)
        nm = dfz.renaming(prog, rng)
        a, b = dfz.render_prog(prog), dfz.render_prog(prog, nm)
        assert a.count("\n") == b.count("\n")
        assert (a == b) == (not any(k != v for k, v in {**nm.ids, **nm.dims}.items()))


def test_generated_programs_do_not_depend_on_the_hash_seed():
    """Two processes with different PYTHONHASHSEED generate the same 100 programs (a generator
    that iterates a set while drawing random numbers does not)."""
    code = (
        "import hashlib, random, difffuzz as d\n"
        f"rng = random.Random({SEED}); h = hashlib.sha256()\n"
        "for _ in range(100): h.update(d.render_prog(d.gen_prog(rng)).encode())\n"
        "print(h.hexdigest())\n"
    )
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join([here, root])},
            capture_output=True,
            text=True,
            check=True,
            cwd=here,
        ).stdout  # fmt: skip
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and len(next(iter(outs))) == 65, outs


def test_difffuzz_finds_no_failure_outside_the_known_bug_list(capsys):
    warnings.filterwarnings("ignore")
    r = dfz.Runner(SEED).run(math.inf, max_cases=CASES)
    rep = dfz.report(r)
    new = {k: v for k, v in r.failures.items() if "[xfail" not in k}
    with capsys.disabled():
        print("\n" + rep)
        for k, fs in sorted(r.failures.items()):
            print(("XFAIL " if "[xfail" in k else "FAIL ") + f"{k}: {len(fs)}")
    assert r.counts["programs"] >= 3 and r.counts["calls/torch"] > 0
    assert r.counts["calls/jax"] > 0 and r.counts["renamings"] > 0
    assert not new, "\n\n".join(dfz.describe(fs[0]) for fs in new.values())


def test_evaluator_a_plus_inf_logit_makes_the_row_nan():
    # README, "Masked logits": a +inf logit makes softmax / log_softmax / ce NaN on its row (as
    # torch.log_softmax([inf, 1]) = [nan, nan]); the evaluator gave x - inf = -inf there, so ce
    # = inf (fuzz classes nan/*) and pt = 0 (value/*) where every backend gives NaN.
    # Row 1: ce = logsumexp([0, 1, 2]) - 1 = 1.4076059644443801 (scipy 1.x, float64).
    t = dfz.Inp("t", "index", ("B",), "C")
    ce = dfz.E("ref", (), (("name", "ce"), ("fixed", False)), "float", frozenset({"B"}))
    prog = _prog(ce, [X, t], [("use", "classification", ("x", "t"))])
    x = np.array([[-1.0, -1.5, np.inf, -1.8], [0.0, 1.0, 2.0, -np.inf]])
    out = _ev(prog, {"x": x, "t": np.array([1, 1])}, {"B": 2, "C": 4})
    assert np.isnan(out[0]) and abs(out[1] - 1.4076059644443801) < 1e-12, out


def _too_small(prog, inputs, sizes):
    found: list = []
    dfz.evaluate(prog, inputs, {}, sizes, None, too_small=found)
    return found


def test_evaluator_a_count_of_dim_sizes_that_is_0_where_it_divides_is_too_small():
    # README, "Edge cases": `(1 / size(B)) / sum(z)` at B = 0 is an InputError on every backend
    # (fuzz class error/*/InputError: the evaluator expected inf); at B = 2 it is 1 / 2 / 3.
    z = dfz.Inp("z", "float", ("B", "D"))
    ref_z = dfz.E("ref", (), (("name", "z"), ("fixed", False)), "float", frozenset({"B", "D"}))
    size_b = dfz.E("size", (), (("d", "B"),), "int")
    one = dfz.E("num", (), (("v", 1.0),))
    inv = dfz.E("bin", (one, size_b), (("op", "/"),), "float")
    tot = dfz.E("red", (ref_z,), (("fn", "sum"), ("over", ("B", "D"))), "float")
    prog = _prog(dfz.E("bin", (inv, tot), (("op", "/"),), "float"), [z])
    assert _too_small(prog, {"z": np.zeros((0, 1))}, {"B": 0, "D": 1})
    assert not _too_small(prog, {"z": np.full((2, 1), 1.5)}, {"B": 2, "D": 1})
    assert _ev(prog, {"z": np.full((2, 1), 1.5)}, {"B": 2, "D": 1}) == 0.5 / 3.0
    # log(size(B) - 1) at B = 1 takes the log of 0: too small as well
    lg = dfz.E("f1", (dfz.E("bin", (size_b, one), (("op", "-"),), "float"),), (("fn", "log"),))
    prog = _prog(dfz.E("bin", (lg, tot), (("op", "+"),), "float"), [z])
    assert _too_small(prog, {"z": np.zeros((1, 1))}, {"B": 1, "D": 1})
    assert not _too_small(prog, {"z": np.zeros((3, 1))}, {"B": 3, "D": 1})


def test_evaluator_argmax_over_an_empty_dim_is_too_small_not_a_crash():
    # README, "Edge cases": argmax over a dim needs one entry (every backend: InputError); the
    # evaluator crashed in np.argmax (fuzz class fuzzer-error).
    am = dfz.E("argmax", (REF_X,), (("over", "C"),), "index", frozenset({"B"}))
    body = dfz.E("float", (am,), (), "float", frozenset({"B"}))
    prog = _prog(body, [X])
    assert _too_small(prog, {"x": np.zeros((2, 0))}, {"B": 2, "C": 0}) == ["argmax over C of 0"]
    x = np.array([[1.0, 3.0], [np.nan, 0.0]])  # first max; NaN counts as the largest
    assert np.array_equal(_ev(prog, {"x": x}, {"B": 2, "C": 2}), [1.0, 0.0])


def test_generated_dims_are_the_evaluated_dims():
    """The dims the generator gives each node are the dims the evaluator (the README's
    semantics) computes for it, on 2000 generated programs (about 2 s). The generator once drew
    a reduction's over=None after typing its operand with the sampled over= dims protected from
    primes: `logsumexp(xlogy(w, y'))` with y' typed [B', C] where it is [B', C'], which the
    compiler rightly rejects (fuzz class reject/DimMismatch; seed 9, program 62 here)."""
    bad = []

    class Ev(dfz.Ev):
        def ev(self, e, env, protect=frozenset()):
            r = super().ev(e, env, protect)
            internal = any(a.op == "ref" and a.a("name").startswith("__") for a in e.args)
            if e.op != "ref" and not internal and set(r.dims) != set(e.dims):
                bad.append((e.op, sorted(r.dims), sorted(e.dims)))
            return r

    real, dfz.Ev = dfz.Ev, Ev
    try:
        for seed in range(10):
            rng = random.Random(seed)
            for i in range(200):
                p = dfz.gen_prog(rng)
                arrs, sizes, sp = dfz.make_inputs(p, np.random.default_rng(i), "safe")
                n = len(bad)
                dfz.evaluate(p, dfz.flat(p, arrs, sp), {}, sizes, None)
                if len(bad) > n:
                    bad.append(dfz.render_prog(p))
    finally:
        dfz.Ev = real
    assert not bad, bad[:2]


def test_evaluator_special_functions_at_their_edges():
    """The evaluator's sinh ... logaddexp (numpy, scipy.special) give README's edge values, in
    float64 and in long double (lgamma and digamma compute in float64 there: scipy has no long
    double). By hand: lgamma(1) = 0, lgamma(0) = lgamma(-2) = lgamma(-inf) = +inf,
    lgamma(2.5) = log(3 sqrt(pi) / 4); digamma(1) = -0.5772156649015329 (Euler-Mascheroni),
    -inf at +0, +inf at -0, NaN at -1; round(+-2.5) = +-2; sign(NaN) = NaN; acosh(1) = 0;
    atanh(+-1) = +-inf; logaddexp(-inf, -inf) = -inf, (inf, inf) = inf."""
    x = [1.0, 0.0, -0.0, -2.0, -1.0, -np.inf, np.nan, 2.5, -2.5]
    want = {
        "lgamma": [0.0, np.inf, np.inf, np.inf, np.inf, np.inf, np.nan, 0.2846828704729192],
        "digamma": [-0.5772156649015329, -np.inf, np.inf, np.nan, np.nan, np.nan, np.nan],
        "round": [1.0, 0.0, -0.0, -2.0, -1.0, -np.inf, np.nan, 2.0, -2.0],
        "sign": [1.0, 0.0, 0.0, -1.0, -1.0, -1.0, np.nan, 1.0, -1.0],
        "acosh": [0.0, np.nan],
        "atanh": [np.inf, 0.0, -0.0, np.nan, -np.inf],
    }
    for dt in (np.float64, np.longdouble):
        for fn, w in want.items():
            with np.errstate(all="ignore"):
                got = dfz.UNARY_FN[fn](np.array(x[: len(w)], dtype=dt))
            assert got.dtype == dt, fn
            np.testing.assert_allclose(got.astype(float), w, rtol=1e-15, err_msg=f"{fn} {dt}")
        a = np.array([-np.inf, np.inf, np.inf, 0.0], dtype=dt)
        got = dfz.BINARY_FN["logaddexp"](a, np.array([-np.inf, np.inf, -np.inf, 0.0], dtype=dt))
        np.testing.assert_allclose(got.astype(float), [-np.inf, np.inf, np.inf, np.log(2)])


def test_the_generator_draws_every_elementwise_function_of_the_language():
    """An elementwise op with a surface function (lossdsl/lower/functions.py FUNCTIONS) that the
    generator never draws is a construct the fuzzer does not test: a new op must join the pools
    (and the evaluator's independent meaning) with its row."""
    from lossdsl.lower.functions import FUNCTIONS
    from lossdsl.ops import OPS

    surface = {n for n in FUNCTIONS if n in OPS and OPS[n].kind == "elementwise"}
    unary = {n for n in surface if OPS[n].nargs == 1} - {"stop_grad"}  # drawn as its own node
    binary = {n for n in surface if OPS[n].nargs == 2}
    assert unary <= set(dfz.UNARY) and unary <= set(dfz.UNARY_FN), unary - set(dfz.UNARY)
    assert binary <= set(dfz.BINARY_FN), binary - set(dfz.BINARY_FN)


def test_evaluator_a_quotient_by_0_is_a_singular_point():
    # README, "Edge cases": atan(v / sum(diff(v, over=B), over=B)) at B = 1 divides by an exact
    # 0 (a sum over the empty diff): the value is atan(+-inf) = +-pi/2, the gradient 0 * 1/0 =
    # NaN on torch and jax (difffuzz, seed 11873, class grad/*); a nonzero divisor is not singular.
    sb = dfz.E("red", (REF_V,), (("fn", "sum"), ("over", ("B",))), "float")
    q = dfz.E("bin", (REF_V, sb), (("op", "/"),), "float", frozenset({"B"}))
    prog = _prog(dfz.E("f1", (q,), (("fn", "atan"),), "float", frozenset({"B"})), [V])
    found: list = []
    zero = dfz.E("bin", (REF_V, dfz.E("num", (), (("v", 0.0),))), (("op", "*"),), "float",
                 frozenset({"B"}))  # fmt: skip
    by0 = dfz.E("bin", (REF_V, dfz.E("red", (zero,), (("fn", "sum"), ("over", ("B",))), "float")),
                (("op", "/"),), "float", frozenset({"B"}))  # fmt: skip
    prog0 = _prog(dfz.E("f1", (by0,), (("fn", "atan"),), "float", frozenset({"B"})), [V])
    v = np.array([0.5, -2.0])
    out, _ = dfz.evaluate(prog0, {"v": v}, {}, {"B": 2}, "none", singular=found)
    assert np.array_equal(out, [np.pi / 2, -np.pi / 2]) and "a quotient by 0" in found
    found.clear()
    dfz.evaluate(prog, {"v": v}, {}, {"B": 2}, "none", singular=found)
    assert "a quotient by 0" not in found


def test_a_sum_of_infinite_products_may_take_a_factor_out_first():
    # README, "Numerics": sum(expand(a, C) * expand(b, B), over=B) is b * sum(a) compiled (an
    # einsum sums B out of a first), so a = [inf, -1], b = [inf, 1] gives (inf - 1) * inf = inf
    # at c = 0 where term by term inf * inf + -1 * inf is NaN (difffuzz seed 4591, value/*).
    import lossdsl

    src = "loss f(a: float[B], b: float[C]) { sum(expand(a, C) * expand(b, B), over=B) }"
    a, b = np.array([math.inf, -1.0]), np.array([math.inf, 1.0])
    got = lossdsl.parse(src).compile("numpy")(a, b, reduction="none")
    assert np.array_equal(got, [math.inf, math.inf])
    A, B_ = dfz.Inp("a", "float", ("B",)), dfz.Inp("b", "float", ("C",))
    ra = dfz.E("ref", (), (("name", "a"), ("fixed", False)), "float", frozenset({"B"}))
    rb = dfz.E("ref", (), (("name", "b"), ("fixed", False)), "float", frozenset({"C"}))
    ea = dfz.E("expand", (ra,), (("dims", ("C",)),), "float", frozenset({"B", "C"}))
    eb = dfz.E("expand", (rb,), (("dims", ("B",)),), "float", frozenset({"B", "C"}))
    prod = dfz.E("bin", (ea, eb), (("op", "*"),), "float", frozenset({"B", "C"}))
    body = dfz.E("red", (prod,), (("fn", "sum"), ("over", ("B",))), "float", frozenset({"C"}))
    prog = _prog(body, [A, B_])
    v64, vld, scale, alt = dfz.expected(prog, {"a": a, "b": b}, (), {}, {"B": 2, "C": 2}, "none")
    assert np.isnan(v64[0]) and v64[1] == math.inf and alt["inf_cancel"]
    assert dfz.close(got, v64, vld, scale, alt)
    assert not dfz.close(np.array([math.inf, 1.0]), v64, vld, scale, alt)  # only the NaN may move
    assert not dfz.close(
        got, v64, vld, scale, {"inf_cancel": False, "zero_sign": False, "signed": None}
    )
    # finite terms never flag it
    ones = np.ones(2)
    *_, alt = dfz.expected(prog, {"a": -ones, "b": ones}, (), {}, {"B": 2, "C": 2}, "none")
    assert not alt["inf_cancel"]


def test_a_zero_times_inf_term_of_the_loss_sum_may_take_its_factor_out_first():
    # The torch chunked schedule (over C) sums w * S over C as S * sum(w) for the statistic
    # S = sum(y) constant along C: w = [-0, 1.7, 1], S = inf gives inf where term by term
    # -0 * inf is NaN (difffuzz seed 28625, value/torch-chunked; README, "Infinite terms").
    import torch

    import lossdsl

    src = "loss f(x: float[B, C], y: float[B, C], w: float[C]) { w * sum(y', over=(B', C')) }"
    x, y = np.zeros((2, 3)), np.array([[math.inf, 1, 1], [1, 1, 1.0]])
    w = np.array([-0.0, 1.7, 1.0])
    fn = lossdsl.parse(src).compile("torch", schedule="chunked", chunk=2)
    got = fn(*map(torch.tensor, (x, y, w)), reduction="sum").numpy()
    assert got == math.inf
    X, Y = dfz.Inp("x", "float", ("B", "C")), dfz.Inp("y", "float", ("B", "C"))
    W = dfz.Inp("w", "float", ("C",))
    rw = dfz.E("ref", (), (("name", "w"), ("fixed", False)), "float", frozenset({"C"}))
    ry = dfz.E("ref", (), (("name", "y"), ("fixed", False)), "float", frozenset({"B", "C"}))
    s = dfz.E("red", (ry,), (("fn", "sum"), ("over", ("B", "C"))), "float", frozenset())
    body = dfz.E("bin", (rw, s), (("op", "*"),), "float", frozenset({"C"}))
    prog = _prog(body, [X, Y, W])
    arrs, sizes = {"x": x, "y": y, "w": w}, {"B": 2, "C": 3}
    v64, vld, scale, alt = dfz.expected(prog, arrs, (), {}, sizes, "sum")
    assert np.isnan(v64) and alt["inf_cancel"]
    assert dfz.close(got, v64, vld, scale, alt)
    # per element (reduction="none") nothing is summed: the NaN stays
    *_, alt = dfz.expected(prog, arrs, (), {}, sizes, "none")
    assert not alt["inf_cancel"]
    # the terms -inf, inf, -inf (S = -inf, w of both signs): their sum's NaN is -inf factored
    # (difffuzz seed 5)
    a2 = dict(arrs, y=-y, w=np.array([1.0, -1.0, 0.5]))
    got = fn(*map(torch.tensor, (a2["x"], a2["y"], a2["w"])), reduction="sum").numpy()
    v64, vld, scale, alt = dfz.expected(prog, a2, (), {}, sizes, "sum")
    assert got == -math.inf and np.isnan(v64) and alt["inf_cancel"]
    assert dfz.close(got, v64, vld, scale, alt)
    # a product without 0 * inf never flags it
    *_, alt = dfz.expected(prog, dict(arrs, w=np.ones(3)), (), {}, sizes, "sum")
    assert not alt["inf_cancel"]


def test_a_gradient_is_not_compared_where_the_value_is_rounding_noise():
    # `reduce mean by var(expand(sum(x, over=B), C', D), over=C', ddof=1) empty 0`: weights
    # that are the variance of equal entries, 0 exactly but 1e-33 after jax's rounded mean,
    # so its gradient through 1 / sum(w) was 1e30 against the finite difference's 0
    # (difffuzz seed 4591, grad/jax). The value is noise (not compared), so is its derivative.
    import lossdsl

    src = (
        "loss f(x: float[B, C], u: float[D]) {\n"
        "    reduce mean by var(expand(sum(x, over=B), C', D), over=C', ddof=1) empty 0\n"
        "    expand(sum(x, over=B), D)\n}"
    )
    D = dfz.Inp("u", "float", ("D",))
    s = dfz.E("red", (REF_X,), (("fn", "sum"), ("over", ("B",))), "float", frozenset({"C"}))
    w = dfz.E("red", (dfz.E("expand", (s,), (("dims", ("C'", "D")),), "float",
                            frozenset({"C", "C'", "D"})),),
              (("fn", "var"), ("over", ("C'",)), ("ddof", 1)), "float",
              frozenset({"C", "D"}))  # fmt: skip
    body = dfz.E("expand", (s,), (("dims", ("D",)),), "float", frozenset({"C", "D"}))
    prog = _prog(body, [X, D], reduce=("mean", w, 0.0))
    sizes = {"B": 2, "C": 3, "C'": 3, "D": 2}
    arrs = {"x": np.full((2, 3), 0.1 / 6), "u": np.zeros(2)}
    assert math.isinf(dfz.expected(prog, arrs, (), {}, sizes, None)[2])  # noise: scale inf
    r = dfz.Runner(SEED)
    r.crng = random.Random(0)
    r.check_grad(lossdsl.parse(src), prog, src, "jax", arrs, sizes, (), {})
    assert r.counts["grad: skipped (the value is rounding noise)"] == 1 and not r.found


def test_evaluator_log_softmax_keeps_log_n_beside_huge_entries():
    # log_softmax([1e300, 1e300]) = -log 2 exactly (equal entries: softmax 1/2); x - logsumexp(x)
    # loses the log 2 to rounding (difffuzz seed 7, value/*: the compiled -log 2 looked wrong)
    v = np.array([1e300, 1e300])
    e = dfz.E("axis", (REF_V,), (("fn", "log_softmax"), ("over", "B"), ("eps", None)), "float",
              frozenset({"B"}))  # fmt: skip
    out = _ev(_prog(e, [V]), {"v": v}, {"B": 2})
    assert np.array_equal(out, [-math.log(2), -math.log(2)])


def test_evaluator_declared_gradients_mean_y0_plus_g0_times_the_change_of_x():
    # docs/language.md, "Declared gradients": custom_grad(v ^ 2, wrt=v, grad=3) is v^2 at the base
    # point and moves by 3 dv under a finite difference; grad_reverse(v, 2) by -2 dv
    sq = dfz.E("bin", (REF_V, dfz.E("num", (), (("v", 2.0),))), (("op", "^"),), "float",
               frozenset({"B"}))  # fmt: skip
    three = dfz.E("num", (), (("v", 3.0),))
    two = dfz.E("num", (), (("v", 2.0),))
    v0, h = np.array([0.5, -1.5]), 1e-3
    for e, slope in (
        (dfz.E("cg", (sq, REF_V, three), (("form", "custom"),), "float", frozenset({"B"})), 3.0),
        (dfz.E("cg", (REF_V, two), (("form", "rev"),), "float", frozenset({"B"})), -2.0),
    ):
        prog = _prog(e, [V])
        base = _ev(prog, {"v": v0}, {"B": 2})
        moved, _ = dfz.evaluate(prog, {"v": v0 + h}, {}, {"B": 2}, "none", frozen=({"v": v0}, {}))
        np.testing.assert_allclose((moved - base) / h, [slope, slope], rtol=1e-9)
    assert np.array_equal(base, v0)  # grad_reverse's value is v's


def test_evaluator_a_count_may_hold_constants_made_of_literals():
    # sum(v, over=B) / xlogy(size(B), exp(1)) at B = 0 divides by the count 0 * log e = 0: the
    # compiler's InputError (README, "Edge cases"); exp(1) is a literal too (seed 19859)
    e1 = dfz.E("f1", (dfz.E("num", (), (("v", 1.0),)),), (("fn", "exp"),), "float")
    cnt = dfz.E("f2", (dfz.E("size", (), (("d", "B"),), "int"), e1), (("fn", "xlogy"),), "float")
    s = dfz.E("red", (REF_V,), (("fn", "sum"), ("over", ("B",))), "float")
    prog = _prog(dfz.E("bin", (s, cnt), (("op", "/"),), "float"), [V])
    found: list = []
    dfz.evaluate(prog, {"v": np.zeros(0)}, {}, {"B": 0}, "none", too_small=found)
    assert found == ["a division by a count of dim sizes that is 0"]
    found.clear()
    dfz.evaluate(prog, {"v": np.ones(3)}, {}, {"B": 3}, "none", too_small=found)
    assert not found


def test_a_gradient_below_the_finite_difference_resolution_is_not_compared():
    # 1e300 - w: d/dw = -1, but long double's ulp at 1e300 is 1e281 and a step of 1e-4 in w
    # changes nothing, so the finite difference is 0 (seed 19859, grad/torch and grad/jax)
    import lossdsl

    src = "loss f(w: float[C]) { 1e300 - w }"
    W = dfz.Inp("w", "float", ("C",))
    rw = dfz.E("ref", (), (("name", "w"), ("fixed", False)), "float", frozenset({"C"}))
    body = dfz.E("bin", (dfz.E("num", (), (("v", 1e300),)), rw), (("op", "-"),), "float",
                 frozenset({"C"}))  # fmt: skip
    prog = _prog(body, [W])
    for backend in ("torch", "jax"):
        r = dfz.Runner(SEED)
        r.crng = random.Random(0)
        r.check_grad(lossdsl.parse(src), prog, src, backend, {"w": np.ones(3)}, {"C": 3}, (), {})
        key = "grad: not resolved (a finite difference beside a huge intermediate)"
        assert r.counts[key] == 1 and not r.found, backend


def test_evaluator_a_quotient_by_a_number_whose_square_underflows_is_singular():
    # README, "Edge cases": 1 / (0.001 / q) at q = 1e-300 is 1e-297 (finite), but autodiff's
    # d(0.001 / q)/dq = -0.001 / q^2 overflows and d(1 / r)/dr at r = 1e297 underflows: 0 * inf
    # = NaN on torch and jax (difffuzz seed 9852, grad/*); at q = 0.5 nothing is singular
    k = dfz.E("num", (), (("v", 0.001),))
    inner = dfz.E("bin", (k, REF_V), (("op", "/"),), "float", frozenset({"B"}))
    one = dfz.E("num", (), (("v", 1.0),))
    prog = _prog(dfz.E("bin", (one, inner), (("op", "/"),), "float", frozenset({"B"})), [V])
    key = "a quotient by a number whose square over/underflows"
    found: list = []
    dfz.evaluate(prog, {"v": np.array([1e-300, 0.5])}, {}, {"B": 2}, "none", singular=found)
    assert key in found
    found.clear()
    dfz.evaluate(prog, {"v": np.array([0.25, 0.5])}, {}, {"B": 2}, "none", singular=found)
    assert key not in found


def test_a_division_by_a_zero_of_either_sign_is_accepted_as_either_infinity():
    # README, "Signed zeros": cross_entropy over one class is -0 by -log_softmax and +0 by
    # logsumexp - x, so log2(ce) / ce is +inf or -inf (difffuzz seed 9852, value/*): the sign of
    # an infinity made by x / 0 may differ, nothing else may
    ce = dfz.E("ref", (), (("name", "v"), ("fixed", False)), "float", frozenset({"B"}))
    k = dfz.E("num", (), (("v", -1.0),))
    prog = _prog(dfz.E("bin", (k, ce), (("op", "/"),), "float", frozenset({"B"})), [V])
    v64, vld, scale, alt = dfz.expected(
        prog, {"v": np.array([-0.0, 2.0])}, (), {}, {"B": 2}, "none"
    )
    assert v64[0] == math.inf and alt["zero_sign"]
    assert dfz.close(np.array([-math.inf, -0.5]), v64, vld, scale, alt)
    assert not dfz.close(np.array([-math.inf, 0.5]), v64, vld, scale, alt)
    assert not dfz.close(np.array([-math.inf, -0.5]), v64, vld, scale, {**alt, "zero_sign": False})


def test_evaluator_log_of_sigmoid_is_minus_softplus():
    # docs/language.md: log(sigmoid(x)) computes as -softplus(-x): -1e300 at x = -1e300, where
    # sigmoid underflows to 0 and its log is -inf (difffuzz seed 28625, value/*)
    s = dfz.E("f1", (REF_V,), (("fn", "sigmoid"),), "float", frozenset({"B"}))
    prog = _prog(dfz.E("f1", (s,), (("fn", "log"),), "float", frozenset({"B"})), [V])
    out = _ev(prog, {"v": np.array([-1e300, 0.0])}, {"B": 2})
    assert np.array_equal(out, [-1e300, -math.log(2)])


def test_evaluator_atan2_of_an_infinite_argument_is_singular():
    # d/dy atan2(y, inf) is inf / inf^2 = NaN in torch's and jax's autodiff (seed 28625, grad/*)
    inf = dfz.E("num", (), (("v", math.inf),))
    prog = _prog(dfz.E("f2", (REF_V, inf), (("fn", "atan2"),), "float", frozenset({"B"})), [V])
    found: list = []
    dfz.evaluate(prog, {"v": np.array([0.5, 1.0])}, {}, {"B": 2}, "none", singular=found)
    assert "atan2 of an infinite argument" in found
    one = dfz.E("num", (), (("v", 1.0),))
    prog = _prog(dfz.E("f2", (REF_V, one), (("fn", "atan2"),), "float", frozenset({"B"})), [V])
    found.clear()
    dfz.evaluate(prog, {"v": np.array([0.5, 1.0])}, {}, {"B": 2}, "none", singular=found)
    assert not found


def test_evaluator_order_and_window_ops_match_numpy_and_torch():
    # The evaluator's order ops and windows (written from docs/language.md) against numpy 2
    # (np.sort kind="stable", np.cumsum/cumprod, np.maximum.accumulate, np.logaddexp.accumulate,
    # np.quantile method="linear") and torch 2.13's F.avg_pool1d / F.max_pool1d / F.conv1d
    # (valid windows; "same" at stride 1 is F.pad(zeros, (k - 1) - (k - 1) // 2 before) first).
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 7))
    a[0, 2] = a[0, 4]  # a tie
    for fn, want in (
        ("cumsum", np.cumsum(a, 1)),
        ("cumprod", np.cumprod(a, 1)),
        ("cummax", np.maximum.accumulate(a, 1)),
        ("logcumsumexp", np.logaddexp.accumulate(a, 1)),
        ("sort", np.sort(a, 1, kind="stable")),
    ):
        np.testing.assert_allclose(dfz._order(fn, a, 1, False), want, rtol=1e-14, err_msg=fn)
        rev = np.flip(dfz._order(fn, np.flip(a, 1), 1, False), 1)
        if fn != "sort":
            np.testing.assert_allclose(dfz._order(fn, a, 1, True), rev, rtol=1e-14)
    np.testing.assert_array_equal(dfz._order("sort", a, 1, True), np.flip(np.sort(a, 1), 1))
    for q in (0.0, 0.25, 0.5, 0.9, 1.0):
        got = dfz._quantile(a, 1, q, np.float64)
        np.testing.assert_allclose(got, np.quantile(a, q, axis=1), rtol=1e-14)
    t = torch.tensor(a)[:, None]  # [N, 1, L]
    for k, s in ((1, 1), (2, 2), (3, 1), (3, 2)):
        pool = dfz._window(a, 1, "avg_pool", k, s, "valid", None)[0]
        np.testing.assert_allclose(pool, F.avg_pool1d(t, k, s)[:, 0].numpy(), rtol=1e-14)
        mx = dfz._window(a, 1, "max_pool", k, s, "valid", None)[0]
        np.testing.assert_array_equal(mx, F.max_pool1d(t, k, s)[:, 0].numpy())
        i = np.arange(k) - k // 2
        taps = np.exp(-(i * i) / (2 * 1.5**2))
        taps = torch.tensor(taps / taps.sum())[None, None]
        blur = dfz._window(a, 1, "blur", k, s, "valid", 1.5)[0]
        np.testing.assert_allclose(blur, F.conv1d(t, taps, stride=s)[:, 0].numpy(), rtol=1e-13)
        padded = F.pad(t, ((k - 1) - (k - 1) // 2, (k - 1) // 2))
        box = dfz._window(a, 1, "box", k, 1, "same", None)[0]
        np.testing.assert_allclose(box, F.avg_pool1d(padded, k, 1)[:, 0].numpy(), rtol=1e-14)
    # too small: a valid window longer than the dim, reflect padding as long as the dim
    assert dfz._window(a[:, :2], 1, "box", 3, 1, "valid", None)[1]
    assert dfz._window(a[:, :1], 1, "box", 3, 2, "reflect", None)[1]
    assert dfz._window(a[:, :2], 1, "box", 3, 2, "reflect", None)[1] is None


def test_evaluator_eigenvalues_within_rounding_of_zero_are_noise():
    # eigvalsh(sum(z * z', over=D)) for z: [B=3, D=1] has rank 1: two eigenvalues are 0, which
    # LAPACK returns as +-1e-17 with either sign (jax -1e-17: log10 NaN; numpy 1.6e-18: -17.8;
    # difffuzz seed 2553, value/jax). The value is then not compared.
    Z = dfz.Inp("z", "float", ("B", "D"))
    rz = dfz.E("ref", (), (("name", "z"), ("fixed", False)), "float", frozenset({"B", "D"}))
    rzp = dfz.E("prime", (rz,), (), "float", frozenset({"B'", "D"}))
    prod = dfz.E("bin", (rz, rzp), (("op", "*"),), "float", frozenset({"B", "B'", "D"}))
    gram = dfz.E("red", (prod,), (("fn", "sum"), ("over", ("D",))), "float", frozenset({"B", "B'"}))
    body = dfz.E("eigvalsh", (gram,), (("d", "B"),), "float", frozenset({"B"}))
    prog = _prog(body, [Z])
    z = np.array([[-0.146], [1.856], [0.963]])
    *_, scale, _ = dfz.expected(prog, {"z": z}, (), {}, {"B": 3, "D": 1}, "none")
    assert math.isinf(scale)  # noise: not compared
    z2 = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # rank 2 of 3: one 0 again
    *_, scale, _ = dfz.expected(prog, {"z": z2}, (), {}, {"B": 3, "D": 2}, "none")
    assert math.isinf(scale)
    z3 = np.eye(3)  # full rank: compared
    *_, scale, _ = dfz.expected(prog, {"z": z3}, (), {}, {"B": 3, "D": 3}, "none")
    assert not math.isinf(scale)


class _Mean:
    """A stand-in for Runner.crng: the reduction drawn is "mean" (the spec's weighted mean)."""

    def choice(self, xs):
        return "mean"


def test_a_declared_gradient_too_steep_for_the_step_is_not_compared():
    # `reduce mean by custom_grad(w, wrt=w, grad=1e300)` over one w = 0.27: sum(w) / sum(cw), whose
    # gradient 1/w - 1e300/w torch computes right (-3.8e300), but a step of 1e-4 moves cw by 1e296,
    # far out of the linear regime the quotient sees: the difference was 7.9e-293 and passed the
    # smoothness check (seed 23209, grad/torch). Such a step is no derivative; w ^ 2's is.
    import lossdsl

    src = (
        "loss f(w: float[C]) {\n"
        "    reduce mean by custom_grad(w, wrt=w, grad=1e300) empty -1\n    w\n}"
    )
    W = dfz.Inp("w", "float", ("C",))
    rw = dfz.E("ref", (), (("name", "w"), ("fixed", False)), "float", frozenset({"C"}))
    cg = dfz.E("cg", (rw, rw, dfz.E("num", (), (("v", 1e300),))), (("form", "custom"),), "float",
               frozenset({"C"}))  # fmt: skip
    prog = _prog(rw, [W], reduce=("mean", cg, -1.0))
    key = "grad: skipped (a declared gradient too steep for the step)"
    for backend in ("torch", "jax"):
        r = dfz.Runner(SEED)
        r.crng = _Mean()
        r.check_grad(
            lossdsl.parse(src), prog, src, backend, {"w": np.array([0.27])}, {"C": 1}, (), {}
        )
        assert r.counts[key] == 1 and not r.found, backend
    # the same weights with a gradient of 3: compared, and right
    cg3 = dfz.E("cg", (rw, rw, dfz.E("num", (), (("v", 3.0),))), (("form", "custom"),), "float",
                frozenset({"C"}))  # fmt: skip
    src3 = src.replace("1e300", "3")
    r = dfz.Runner(SEED)
    r.crng = _Mean()
    arrs = {"w": np.array([0.27, 0.5])}
    r.check_grad(lossdsl.parse(src3), _prog(rw, [W], reduce=("mean", cg3, -1.0)), src3, "torch",
                 arrs, {"C": 2}, (), {})  # fmt: skip
    assert r.counts["grads/torch"] == 1 and r.counts[key] == 0 and not r.found


def test_evaluator_pow_is_ieee_but_sqrt_at_minus_inf():
    # docs/language.md "Operators": (-inf) ^ 0.5 and (-inf) ^ -0.5 are NaN as sqrt(-inf); the
    # rest is IEEE's pow (math.pow: (-inf) ^ 1.5 is inf, (-0) ^ 0.5 is 0); numpy's own power with
    # a number exponent 0.5 runs sqrt, with an array one IEEE's (seed 23209, nan/numpy)
    a = np.array([-math.inf, -0.0, 4.0])
    np.testing.assert_array_equal(dfz._pow(a, 0.5), [math.nan, 0.0, 2.0])
    np.testing.assert_array_equal(dfz._pow(a, -0.5), [math.nan, math.inf, 0.5])
    np.testing.assert_array_equal(dfz._pow(a, 1.5), [math.pow(-math.inf, 1.5), 0.0, 8.0])
    np.testing.assert_array_equal(dfz._pow(a, np.array([0.5, 0.5, 0.5])), [math.nan, 0.0, 2.0])


def test_a_step_function_jumping_within_the_step_is_not_compared():
    # ceil(-1 / w^3) at w = 0.08: a step of 1e-4 in w moves -1 / w^3 by ~7, across ~7 of ceil's
    # steps, so the difference is the underlying slope (3333 here) where the derivative is 0
    # (seed 17485, grad/torch); at w = 2 no step is crossed and the 0 is compared
    import lossdsl

    src = "loss f(w: float[C]) { ceil((-1) / (w ^ 3)) }"
    W = dfz.Inp("w", "float", ("C",))
    rw = dfz.E("ref", (), (("name", "w"), ("fixed", False)), "float", frozenset({"C"}))
    cube = dfz.E("bin", (rw, dfz.E("num", (), (("v", 3.0),))), (("op", "^"),), "float",
                 frozenset({"C"}))  # fmt: skip
    q = dfz.E("bin", (dfz.E("num", (), (("v", -1.0),)), cube), (("op", "/"),), "float",
              frozenset({"C"}))  # fmt: skip
    prog = _prog(dfz.E("f1", (q,), (("fn", "ceil"),), "float", frozenset({"C"})), [W])
    for w, skipped in ((0.0797, 1), (2.0, 0)):
        r = dfz.Runner(SEED)
        r.crng = _Mean()
        r.check_grad(lossdsl.parse(src), prog, src, "torch", {"w": np.array([w])}, {"C": 1}, (), {})
        key = "grad: skipped (a step function's value jumps within the step)"
        assert r.counts[key] == skipped and r.counts["grads/torch"] == 1 - skipped
        assert not r.found


def test_an_operand_at_a_clamp_bound_is_not_compared():
    # clamp(v, min=0) at v = 0 exactly (a straight_through of float(1 <= w) made one, seed
    # 17485, grad/jax): the difference is the mean of the one-sided slopes, 1/2, where torch and
    # jax give 1 (README, "Gradients at kinks"); at v = 0.5 it is compared
    import lossdsl

    src = "loss f(v: float[B]) { clamp(v, min=0) }"
    clamp = dfz.E("clamp", (REF_V, dfz.E("num", (), (("v", 0.0),))), (("keys", ("min",)),),
                  "float", frozenset({"B"}))  # fmt: skip
    prog = _prog(clamp, [V])
    for v, skipped in ((0.0, 1), (0.5, 0)):
        for backend in ("torch", "jax"):
            r = dfz.Runner(SEED)
            r.crng = _Mean()
            r.check_grad(lossdsl.parse(src), prog, src, backend, {"v": np.array([v, 1.0])},
                         {"B": 2}, (), {})  # fmt: skip
            key = "grad: skipped (an operand at a clamp bound moves)"
            assert r.counts[key] == skipped and r.counts[f"grads/{backend}"] == 1 - skipped
            assert not r.found


def test_the_generator_never_expands_a_constant():
    # docs/language.md "expand": x must have dims; the generator's constant along a dim that no
    # float input has was expand(c, B'), which the compiler rightly rejects (seed 17485,
    # reject/DimMismatch); it is c + 0 * float(arange(B')) now, and compiles to the evaluator's
    import lossdsl

    g = dfz.Gen(random.Random(0), dfz.Cfg())
    for _ in range(20):  # each constant the generator draws
        e = g.single("B'", {}, {"protect": frozenset(), "outer": frozenset()})
        assert e.dims == frozenset({"B'"})
        s = dfz.E("red", (e,), (("fn", "sum"), ("over", ("B'",))), "float", frozenset())
        prog = _prog(dfz.E("bin", (REF_V, s), (("op", "+"),), "float", frozenset({"B"})), [V])
        src = dfz.render_prog(prog)
        v = np.array([0.5, -2.0])
        got = lossdsl.parse(src).compile("numpy")(v, reduction="none")
        np.testing.assert_array_equal(got, _ev(prog, {"v": v}, {"B": 2, "B'": 2}), err_msg=src)


def test_evaluator_picks_through_an_argmax_over_an_empty_dim():
    # x[argmax(x, over=C)] with C = 0: the compiled loss raises InputError (README, "Edge
    # cases": argmax needs one entry), so the evaluator records the too-small dim and gives no
    # value; it crashed in take_along_axis (seed 22926, fuzzer-error)
    am = dfz.E("argmax", (REF_X,), (("over", "C"),), "index", frozenset({"B"}), "C")
    prog = _prog(dfz.E("gather", (REF_X, am), (), "float", frozenset({"B"})), [X])
    found: list = []
    x = np.zeros((2, 0))
    v, _ = dfz.evaluate(prog, {"x": x}, {}, {"B": 2, "C": 0}, "none", np.float64, too_small=found)
    assert found == ["argmax over C of 0"] and v.shape == (2,) and np.isnan(v).all()
    import lossdsl

    with pytest.raises(lossdsl.InputError, match="argmax"):
        lossdsl.parse(dfz.render_prog(prog)).compile("numpy")(x, reduction="none")


def test_evaluator_reads_integer_literals_as_integers():
    # u / (-0): in the language -0 is the int 0 (as in Python), so u / -0 is u / +0 = +inf for
    # u > 0, and a mask u >= u / -0 keeps the negative entries; the evaluator read the literal
    # as the float -0.0 (seed 31337: value/numpy, torch, jax and torch-chunked all agreed on
    # the int reading). Expected: numpy's u / 0.0, and the compiled loss's own value
    import lossdsl

    neg0 = dfz.E("neg", (dfz.E("num", (), (("v", 0.0),)),), (), "float", frozenset())
    q = dfz.E("bin", (REF_V, neg0), (("op", "/"),), "float", frozenset({"B"}))
    prog = _prog(q, [V])
    v = np.array([2.0, -3.0])
    with np.errstate(divide="ignore"):
        want = v / 0.0
    np.testing.assert_array_equal(_ev(prog, {"v": v}, {"B": 2}), want)
    got = lossdsl.parse(dfz.render_prog(prog)).compile("numpy")(v, reduction="none")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_weighted_mean_whose_weight_sum_is_nan_may_divide_by_its_factored_inf(backend):
    # `reduce mean by expand(x, D) * u empty -1` over a loss of 1s: the weights hold -inf * 0 (a
    # NaN, so their sum is NaN), and every backend sums them as sum(x) * sum(u) (an einsum,
    # README "Infinite terms"): -inf, so the mean is 6 / -inf = -0 (difffuzz seed 5, value/*)
    import lossdsl

    src = (
        "loss f(x: float[C], u: float[D]) {\n"
        "    reduce mean by expand(x, D) * u empty -1\n"
        "    expand(u * 0 + 1, C)\n}"
    )
    XC, UD = dfz.Inp("x", "float", ("C",)), dfz.Inp("u", "float", ("D",))
    rx = dfz.E("ref", (), (("name", "x"), ("fixed", False)), "float", frozenset({"C"}))
    ru = dfz.E("ref", (), (("name", "u"), ("fixed", False)), "float", frozenset({"D"}))
    ex = dfz.E("expand", (rx,), (("dims", ("D",)),), "float", frozenset({"C", "D"}))
    w = dfz.E("bin", (ex, ru), (("op", "*"),), "float", frozenset({"C", "D"}))
    one = dfz.E("bin", (dfz.E("bin", (ru, dfz.E("num", (), (("v", 0.0),))), (("op", "*"),),
                              "float", frozenset({"D"})), dfz.E("num", (), (("v", 1.0),))),
                (("op", "+"),), "float", frozenset({"D"}))  # fmt: skip
    body = dfz.E("expand", (one,), (("dims", ("C",)),), "float", frozenset({"C", "D"}))
    prog = _prog(body, [XC, UD], reduce=("mean", w, -1.0))
    arrs = {"x": np.array([-math.inf, 0.5, 1.0]), "u": np.array([math.inf, 0.0])}
    sizes = {"C": 3, "D": 2}
    v64, vld, scale, alt = dfz.expected(prog, arrs, (), {}, sizes, None)
    assert np.isnan(v64) and alt["den_inf"]  # sum(w) adds -inf * inf and -inf * 0
    assert dfz.close(np.array(-0.0), v64, vld, scale, alt)
    assert not dfz.close(np.array(1.0), v64, vld, scale, alt)  # the loss's mean: no
    r = dfz.Runner(SEED)
    r.check_plain(lossdsl.parse(src), prog, src, backend, arrs, sizes, (), {}, [None], "py")
    assert not r.found, [f.cls for f in r.found]


def test_a_comparison_at_a_rounding_tie_makes_the_value_noise():
    # `where(x / x < 1, x, 0)`: x / x is 1 in numpy and torch but 1 - 2^-53 in jax on CPU at
    # x = -1.3880309688733106 (XLA divides by multiplying with a reciprocal; difffuzz seed 11,
    # value/jax and grad/jax), so the where picks x there: the value is decided by the last
    # bit, not compared. `x < x` (exact on every framework) stays compared.
    x = np.array([[-1.3880309688733106]])
    one = dfz.E("num", (), (("v", 1.0),))
    ratio = dfz.E("bin", (REF_X, REF_X), (("op", "/"),), "float", frozenset({"B", "C"}))
    for lhs, noise in ((ratio, True), (REF_X, False)):
        rhs = one if noise else REF_X
        cmp = dfz.E("bin", (lhs, rhs), (("op", "<"),), "bool", frozenset({"B", "C"}))
        body = dfz.E("where", (cmp, REF_X, dfz.E("num", (), (("v", 0.0),))), (), "float",
                     frozenset({"B", "C"}))  # fmt: skip
        scale = dfz.expected(_prog(body, [X]), {"x": x}, (), {}, {"B": 1, "C": 1}, None)[2]
        assert math.isinf(scale) == noise


def test_a_softmax_over_the_chunked_dim_beyond_2_52_is_not_compared_chunked():
    # softmax(expand(u, C), over=C) at u = -1e300: 1/4 each (C = 4), but the chunked schedule's
    # exp(z - logsumexp(z)) is exp(0) = 1 there, logsumexp(z) = -1e300 + log 4 = -1e300 in
    # float64 (README, "Large vocabularies"; difffuzz seed 11, value/torch-chunked)
    import torch

    import lossdsl

    src = (
        "loss f(x: float[B, C], u: float[D]) {\n"
        "    sum(softmax(expand(u, C), over=C), over=D) + 0 * x\n}"
    )
    spec = lossdsl.parse(src)
    x, u = np.zeros((1, 4)), np.array([-1e300])
    args = (torch.tensor(x), torch.tensor(u))
    plain = float(spec.compile("torch")(*args, reduction="sum"))
    chunked = float(spec.compile("torch", schedule="chunked")(*args, reduction="sum"))
    assert plain == 1.0 and chunked == 4.0  # the limit the README states
    UD = dfz.Inp("u", "float", ("D",))
    ru = dfz.E("ref", (), (("name", "u"), ("fixed", False)), "float", frozenset({"D"}))
    ex = dfz.E("expand", (ru,), (("dims", ("C",)),), "float", frozenset({"C", "D"}))
    sm = dfz.E("axis", (ex,), (("fn", "softmax"), ("over", "C")), "float", frozenset({"C", "D"}))
    alt = dfz.expected(_prog(sm, [X, UD]), {"x": x, "u": u}, (), {}, {"B": 1, "C": 4, "D": 1},
                       "sum")[3]  # fmt: skip
    assert alt["lse_absorbs"]


def test_a_mask_by_multiplication_over_nan_may_be_xlas_select():
    # `x * float(x > 1)` at x = NaN: NaN (numpy, torch, jax eager), but XLA makes it
    # where(x > 1, x, 0) = 0 inside a lax.scan body or jax.jit (difffuzz seed 3 with scans,
    # value/jax; README "Masks by multiplication on jax"): the evaluator accepts both
    import jax
    import jax.numpy as jnp

    a = jnp.array([jnp.nan])
    assert np.isnan(a * (a > 1).astype(a.dtype))[0]
    assert jax.jit(lambda a: a * (a > 1).astype(a.dtype))(a)[0] == 0.0  # the XLA rewrite
    cmp = dfz.E("bin", (REF_V, dfz.E("num", (), (("v", 1.0),))), (("op", ">"),), "bool",
                frozenset({"B"}))  # fmt: skip
    body = dfz.E("bin", (REF_V, dfz.E("float", (cmp,), (), "float", frozenset({"B"}))),
                 (("op", "*"),), "float", frozenset({"B"}))  # fmt: skip
    v64, vld, scale, alt = dfz.expected(_prog(body, [V]), {"v": np.array([np.nan, 2.0])}, (),
                                        {}, {"B": 2}, "none")  # fmt: skip
    assert np.isnan(v64[0]) and v64[1] == 2.0
    assert dfz.close(np.array([0.0, 2.0]), v64, vld, scale, alt)
    assert dfz.close(np.array([np.nan, 2.0]), v64, vld, scale, alt)
    assert not dfz.close(np.array([1.0, 2.0]), v64, vld, scale, alt)


def test_a_masked_mean_over_one_minus_zero_keeps_its_sign_the_jax_way():
    # 1 / mean(x, over=C, mask=m) at C = 1, x = -0, m = true: +inf on numpy and torch (a sum
    # adds -0 to +0), -inf on jax (XLA returns the one entry); README "Signed zeros": both
    # (difffuzz seed 21, nan/jax: the mean of such entries was inf + -inf)
    mask = dfz.E("bin", (REF_X, dfz.E("num", (), (("v", 1.0),))), (("op", "<"),), "bool",
                 frozenset({"B", "C"}))  # fmt: skip
    mm = dfz.E("mmean", (REF_X, mask), (("over", ("C",)), ("empty", 1.0)), "float",
               frozenset({"B"}))  # fmt: skip
    body = dfz.E("bin", (dfz.E("num", (), (("v", 1.0),)), mm), (("op", "/"),), "float",
                 frozenset({"B"}))  # fmt: skip
    v64, vld, scale, alt = dfz.expected(_prog(body, [X]), {"x": np.array([[-0.0]])}, (), {},
                                        {"B": 1, "C": 1}, "none")  # fmt: skip
    assert v64[0] == math.inf
    assert dfz.close(np.array([-math.inf]), v64, vld, scale, alt)
    assert not dfz.close(np.array([1.0]), v64, vld, scale, alt)
