"""The lowering of everyday constructs (lossdsl/lower/): masked means, primed twins beside
their unprimed input, spec calls that rename a helper's dims. Each generator test draws random
dim layouts and compares every backend with a numpy computation written here from the
documented meaning (README.md, "The language")."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from helpers import call

import lossdsl
from lossdsl.codegen import TARGETS

SIZES = {"A": 2, "B": 3, "C": 4, "D": 5}  # distinct sizes: a wrong axis cannot hide


def run(spec, backend: str, inputs: dict, reduction: str = "none") -> np.ndarray:
    fn = spec.compile(backend)
    return call(backend, fn, inputs, "float64", reduction=reduction)


def _dims(names) -> str:
    return "[" + ", ".join(names) + "]" if names else ""


def _to(v: np.ndarray, src: tuple, dst: tuple) -> np.ndarray:
    """v laid out over dims `src`, broadcast (by name) to dims `dst`."""
    v = np.transpose(v, [src.index(d) for d in sorted(src, key=dst.index)])
    shape = [SIZES[d] if d in src else 1 for d in dst]
    return np.broadcast_to(v.reshape(shape), [SIZES[d] for d in dst])


# ---- masked mean -------------------------------------------------------------------------


def test_masked_mean_counts_the_mask_broadcast_over_the_reduced_dims():
    # x = [[0, 1, 2], [3, 4, 5]], m = [T, T]: every element of each row is selected, so the
    # masked mean over C is the row mean (hand computation): [1, 4]. Counting m itself (one per
    # row) instead of its broadcast over C gave the row sums [3, 12].
    spec = lossdsl.parse("loss f(x: float[B, C], m: bool[B]) { mean(x, over=C, mask=m, empty=0) }")
    inputs = {"x": np.arange(6.0).reshape(2, 3), "m": np.array([True, False])}
    for backend in TARGETS:
        np.testing.assert_allclose(run(spec, backend, inputs), [1.0, 0.0], err_msg=backend)


def _masked_mean_case(rng):
    names = list(SIZES)
    xd = tuple(rng.permutation(names)[: rng.integers(1, 5)])
    md = tuple(d for d in rng.permutation(xd) if rng.random() < 0.5)
    od = tuple(d for d in rng.permutation(xd) if rng.random() < 0.6)
    return xd, md, od


def test_masked_mean_over_random_dim_subsets_matches_its_documented_meaning():
    """mean(x, over=O, mask=m, empty=e) is documented as the mean of the elements m selects
    (m broadcast by name over x), e where it selects none: sum_O(where(m, x, 0)) /
    sum_O(broadcast(m)), computed here with plain numpy. x over a random subset and order of
    {A, B, C, D}, m over any subset of x's dims (a scalar mask too), O any subset (none: all)."""
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        xd, md, od = _masked_mean_case(rng)
        if (xd, md, od) in seen:
            continue
        seen.add((xd, md, od))
        empty = float(rng.choice([0.0, -1.0, 2.5]))
        over = f", over=({', '.join(od)})" if od else ""
        text = (
            f"loss f(x: float{_dims(xd)}, m: bool{_dims(md)}) "
            f"{{ mean(x{over}, mask=m, empty={empty}) }}"
        )
        spec = lossdsl.parse(text)
        x = rng.standard_normal([SIZES[d] for d in xd])
        m = rng.random([SIZES[d] for d in md]) < 0.4  # often a whole row unselected
        mb = _to(np.asarray(m), md, xd)
        axes = tuple(xd.index(d) for d in (od or xd))
        num = np.where(mb, x, 0.0).sum(axis=axes)
        cnt = mb.sum(axis=axes)
        want = np.where(cnt > 0, num / np.where(cnt > 0, cnt, 1), empty)
        for backend in TARGETS:
            got = run(spec, backend, {"x": x, "m": m})
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=text + backend)
    assert len(seen) >= 20


# ---- primed twins inside a reduction ------------------------------------------------------


def test_twin_summed_beside_its_unprimed_input():
    # x = [1, 2]: mean over H' of x[h] * x[h'] is x[h] * 1.5, plus x[h]: [2.5, 5] (by hand);
    # sum(x * prime(x, H), over=H') + x is x[h] * 3 + x[h]: [4, 8]. The contraction over a dim
    # only its second operand has used to crash the torch and jax emitters.
    x = {"x": np.array([1.0, 2.0])}
    for body, want in [
        ("mean(x * x', over=H') + x", [2.5, 5.0]),
        ("sum(x * prime(x, H), over=H') + x", [4.0, 8.0]),
        ("sum(prime(x, H) * x, over=H') + x", [4.0, 8.0]),
    ]:
        spec = lossdsl.parse(f"loss f(x: float[H]) {{ {body} }}")
        for backend in TARGETS:
            np.testing.assert_allclose(run(spec, backend, x), want, err_msg=body + backend)


def _primed(operand: str, over: set) -> dict:
    """x's dims under `operand` ({dim: axis letter}), by the documented rule: x' primes every
    dim except those the enclosing reduction sums; prime(x, D) primes D alone."""
    if operand == "x":
        return {"A": "a", "B": "b"}
    if operand == "x'":
        return {d if d in over else d + "'": d.lower() for d in "AB"}
    d = operand[-2]  # prime(x, A)
    return {e + "'" * (e == d): e.lower() for e in "AB"}


def test_random_twin_contractions_match_einsum():
    """sum/mean(P * Q, over=O) for P, Q among x, x', prime(x, A), prime(x, B) (x: [A, B]) and
    O any subset of the dims the product has, the result's primed dims summed and x added:
    every backend against an einsum written from the prime rule (README, "Primes")."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((SIZES["A"], SIZES["B"]))
    operands = ["x", "x'", "prime(x, A)", "prime(x, B)"]
    all_dims = ["A", "B", "A'", "B'"]
    checked = 0
    for p, q in itertools.product(operands, repeat=2):
        for k in (1, 2, 3):
            over = tuple(rng.permutation(all_dims)[:k])
            dp, dq = _primed(p, set(over)), _primed(q, set(over))
            if not set(over) <= set(dp) | set(dq) or (p == q == "x'" and set(dp) == {"A", "B"}):
                continue  # a sum over a dim the product lacks; x' that primes nothing
            fn = str(rng.choice(["sum", "mean"]))
            letter = {d: chr(ord("a") + i) for i, d in enumerate(all_dims)}
            keep = [d for d in ("A", "B") if d in (set(dp) | set(dq)) - set(over)]
            spec_ = (
                "".join(letter[d] for d in dp)
                + ","
                + "".join(letter[d] for d in dq)
                + "->"
                + "".join(letter[d] for d in keep)
            )
            want = np.einsum(spec_, x, x)
            if fn == "mean":
                want = want / np.prod([SIZES[d[0]] for d in over])
            want = _to(want, tuple(keep), ("A", "B")) + x
            o = over[0] if len(over) == 1 else "(" + ", ".join(over) + ")"
            inner = f"{fn}({p} * {q}, over={o})"
            primed = [d for d in (set(dp) | set(dq)) - set(over) if d.endswith("'")]
            body = f"sum({inner}, over=({', '.join(sorted(primed))}))" if primed else inner
            spec = lossdsl.parse(f"loss f(x: float[A, B]) {{ {body} + x }}")
            for backend in TARGETS:
                got = run(spec, backend, {"x": x})
                np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=body + backend)
            checked += 1
    assert checked >= 30


# ---- spec calls bind the helper's dims by position -----------------------------------------


def test_helper_called_with_its_dim_names_swapped_binds_by_position():
    # r = [[0, 1, 2], [3, 4, 5]] is [M, N] here; colsum's N is the caller's M (its first
    # axis), so colsum sums the columns (by hand): [3, 5, 7]. Binding by name summed the rows.
    spec = lossdsl.parse(
        "loss colsum(r: float[N, M]) { sum(r, over=N) }\nloss swapped(r: float[M, N]) { colsum(r) }"
    )
    for backend in TARGETS:
        got = run(spec, backend, {"r": np.arange(6.0).reshape(2, 3)})
        np.testing.assert_allclose(got, [3.0, 5.0, 7.0], err_msg=backend)


HELPER_BODIES = [
    "sum(r, over=N) * v",
    "mean(r * v, over=(M, K))",
    "sum(r[t], over=M)",
    "sum(sum(r * r', over=K), over=(N', M'))",
    "sum(r * prime(r, M), over=(K, M'))",
    "sum(v * v', over=M') * sum(r, over=(N, K))",
    "sum(onehot(t) * r, over=(M, K)) + sum(softmax(r, over=K)[t] * v, over=M)",
]
CALL_SIZES = {"N": 2, "M": 3, "K": 4, "P": 5, "Q": 6, "R": 7}


def _subst(text: str, names: dict) -> str:
    """Every helper dim name replaced at once (N -> M and M -> N swap them)."""
    return re.sub(r"\b[NMK]\b", lambda m: names[m.group()], text)


def test_random_dim_renamings_at_a_call_equal_the_helper_written_inline():
    """A helper over (r: [N, M, K], v: [M], t: index[N] of K) called with arguments whose dims
    are a random injective renaming of N, M, K among N, M, K, P, Q (swaps, cycles, chains like
    N -> M, M -> K), sometimes with an extra trailing dim riding along, equals the helper's body
    written inline with the caller's names (one simultaneous substitution of the text)."""
    rng = np.random.default_rng(2)
    cases = 0
    for body in HELPER_BODIES:
        for _ in range(3):
            names = dict(zip("NMK", rng.permutation(["N", "M", "K", "P", "Q"])[:3]))
            ride = ", R" if rng.random() < 0.3 and "onehot" not in body else ""
            head = (
                f"a: float[{names['N']}, {names['M']}, {names['K']}{ride}], "
                f"w: float[{names['M']}], i: index[{names['N']}] of {names['K']}"
            )
            helper = f"loss h(r: float[N, M, K], v: float[M], t: index[N] of K) {{ {body} }}\n"
            called = lossdsl.parse(helper + f"loss f({head}) {{ h(a, w, i) }}")
            inline = lossdsl.parse(
                f"loss f({head}) {{ "
                + re.sub(
                    r"\b[rvt]\b",
                    lambda m: {"r": "a", "v": "w", "t": "i"}[m.group()],
                    _subst(body, names),
                )
                + " }"
            )
            shape = [CALL_SIZES[names[d]] for d in "NMK"] + ([CALL_SIZES["R"]] if ride else [])
            inputs = {
                "a": rng.standard_normal(shape),
                "w": rng.standard_normal(CALL_SIZES[names["M"]]),
                "i": rng.integers(0, CALL_SIZES[names["K"]], CALL_SIZES[names["N"]]),
            }
            want = run(inline, "numpy", inputs)
            for backend in TARGETS:
                got = run(called, backend, inputs)
                np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{names} {body}")
            cases += 1
    assert cases == 3 * len(HELPER_BODIES)


@pytest.mark.parametrize(
    "helper, caller, inline, shape",
    [
        # a variadic *S bound to the caller's *T, and to a plain dim H
        (
            "loss h(r: float[N, *S]) { mean(r, over=S) * sum(r, over=(N, S)) }",
            "loss g(a: float[M, *T]) { h(a) }",
            "loss g(a: float[M, *T]) { mean(a, over=T) * sum(a, over=(M, T)) }",
            (2, 3, 4),
        ),
        (
            "loss h(r: float[N, *S]) { mean(r, over=S) * sum(r, over=(N, S)) }",
            "loss g(a: float[M, H]) { h(a) }",
            "loss g(a: float[M, H]) { mean(a, over=H) * sum(a, over=(M, H)) }",
            (2, 3),
        ),
        # a declared twin [N, N'] bound to the caller's [M, M'], N and M swapped with v's dim
        (
            "loss h(p: float[N, N'], q: float[M]) { sum(p, over=N') * sum(q) }",
            "loss g(a: float[M], v: float[N]) { h(a * a', v) + 0 * sum(v) }",
            "loss g(a: float[M], v: float[N]) { sum(a * a', over=M') * sum(v) + 0 * sum(v) }",
            (3,),
        ),
    ],
)
def test_variadic_and_twin_dims_bind_like_the_inline_body(helper, caller, inline, shape):
    rng = np.random.default_rng(3)
    inputs = {"a": rng.standard_normal(shape)}
    if "v:" in caller:
        inputs["v"] = rng.standard_normal(4)
    want = run(lossdsl.parse(inline), "numpy", inputs)
    called = lossdsl.parse(helper + "\n" + caller)
    for backend in TARGETS:
        np.testing.assert_allclose(run(called, backend, inputs), want, rtol=1e-12)


def _softmax_rows(a):
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# Helper bodies over r: [X, Y] (X, Y twins: levels of one dim B), v: [Y], q: [X], each a scalar,
# with its value for a = r, w = v, u = q written in numpy by hand (axis 0 is X, axis 1 is Y).
TWIN_BODIES = [
    ("sum(sum(r, over=X) * v)", lambda a, w, u: (a.sum(0) * w).sum()),
    ("sum(r * v * q)", lambda a, w, u: u @ a @ w),
    (
        "sum(sum(r * prime(r, Y), over=Y) * prime(v, Y) * q)",
        lambda a, w, u: (u * a.sum(1) * (a @ w)).sum(),
    ),
    ("sum(sum(r * prime(r, X), over=Y) * q * prime(q, X))", lambda a, w, u: (a.T @ u) @ (a.T @ u)),
    ("sum(sum(r * r', over=Y) * q * q')", lambda a, w, u: (a.T @ u) @ (a.T @ u)),
    ("sum(where(eye(X, Y), r, 0) * q)", lambda a, w, u: (np.diag(a) * u).sum()),
    ("sum(softmax(r, over=Y) * v * q)", lambda a, w, u: u @ _softmax_rows(a) @ w),
    ("sum(r * r')", lambda a, w, u: a.sum() ** 2),
    (
        "sum(mean(r, over=X) * v) + sum(logsumexp(r, over=Y) * q)",
        lambda a, w, u: (a.mean(0) * w).sum() + (np.log(np.exp(a).sum(1)) * u).sum(),
    ),
]


def _level(k: int) -> str:
    return "B" + "'" * k


def test_a_helpers_twin_dims_bind_by_position_whatever_their_primes():
    """Issue: `ha(x: float[B', B])` called with `float[B, B']` was refused ("wants a primed
    dim"), though dims bind by position. Generator: a helper over twins X, Y at levels 0, 2, 4
    of B (so its own primes meet none of its declared dims), called with twins U, V at levels
    0, 1, 2 of the caller's B (the helper's X, Y, and the twins its primes make, land on other
    levels than they are written with), directly and through a second helper that passes its
    arguments on with its own twins swapped; every body's value by hand (TWIN_BODIES)."""
    rng = np.random.default_rng(11)
    n = 3
    pairs = list(itertools.permutations(range(3), 2))
    cases = 0
    for body, want_of in TWIN_BODIES:
        for k in rng.choice(len(pairs), 3, replace=False):
            x, y = (_level(2 * j) for j in pairs[k])
            u_, v_ = (_level(j) for j in pairs[rng.integers(len(pairs))])
            text = re.sub(r"\b[XY]\b", lambda m: {"X": x, "Y": y}[m.group()], body)
            helper = f"loss h(r: float[{x}, {y}], v: float[{y}], q: float[{x}]) {{ {text} }}\n"
            # g declares [B', B] and passes r on: its B' is the caller's U, h's X
            helper += "loss g(r: float[B', B], v: float[B], q: float[B']) { h(r, v, q) }\n"
            callee = rng.choice(["h", "g"])
            src = helper + (
                f"loss f(a: float[{u_}, {v_}], w: float[{v_}], u: float[{u_}]) "
                f"{{ {callee}(a, w, u) }}"
            )
            inputs = {"a": rng.standard_normal((n, n)), "w": rng.standard_normal(n)}
            inputs["u"] = rng.standard_normal(n)
            want = want_of(inputs["a"], inputs["w"], inputs["u"])
            spec = lossdsl.parse(src)
            for backend in TARGETS:
                got = run(spec, backend, inputs)
                np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{backend}: {src}")
            cases += 1
    assert cases == 3 * len(TWIN_BODIES)


def test_a_helpers_declared_twins_must_meet_twins():
    # h's B' is its B's twin: binding B to N and B' to M (unrelated dims) is a DimMismatch at
    # the call, which says what B' met
    with pytest.raises(
        lossdsl.LossError, match=r"wants dim B', a twin of its B \(= N here\), but float\[M\] has M"
    ) as e:
        lossdsl.parse(
            "loss h(p: float[B], q: float[B']) { sum(p) * sum(q) }\n"
            "loss f(a: float[N], b: float[M]) { h(a, b) + sum(a) * sum(b) * 0 }"
        )
    assert (e.value.span.line, e.value.span.col) == (2, 41)  # at the argument b


@pytest.mark.parametrize("decl", [["B", "*S"], ["*S", "C"], ["B", "*S", "C"]])
def test_a_helpers_star_s_with_no_argument_dim_has_no_axes(decl):
    """README: `*S` is any number of axes, none included. A helper over [.., *S, ..] called
    with an argument that lacks S sees S with no axes: sum and mean over S are the identity,
    size(S) is 1, and a result over S has the argument's shape. Expected values by hand: the
    helper's p * 2 + sum(p, over=S) + mean(p, over=S) * size(S) is 4 a; shipped mse(a, a / 2)
    (mean of the squared error over *S) is (a / 2)^2; C is summed, x's D adds sum(x, over=D)
    (and gives the chunked schedule a dim to chunk)."""
    have = [d for d in decl if d != "*S"]
    body = "h(a) + mse(a, a * 0.5)"
    body = f"sum({body}, over=C)" if "C" in have else body
    spec = lossdsl.parse(
        "import mse\n"
        f"loss h(p: float{_dims(decl)}) {{ p * 2 + sum(p, over=S) + mean(p, over=S) * size(S) }}\n"
        f"loss g(a: float{_dims(have)}, x: float[B, D]) {{\n    {body} + sum(x, over=D)\n}}\n"
    )
    rng = np.random.default_rng(5)
    a = rng.standard_normal([SIZES[d] for d in have])
    x = rng.standard_normal((SIZES["B"], SIZES["D"]))
    per = 4 * a + (0.5 * a) ** 2
    want = (per.sum(-1) if "C" in have else per) + x.sum(1)
    for backend in TARGETS:
        got = run(spec, backend, {"a": a, "x": x})
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=backend)
    for backend in ("torch", "jax"):
        fn = spec.compile(backend, schedule="chunked", chunk=2)
        got = call(backend, fn, {"a": a, "x": x}, "float64", reduction="sum")
        np.testing.assert_allclose(got, want.sum(), rtol=1e-12, err_msg=f"{backend} chunked")


def test_an_error_inside_a_helper_also_points_at_the_call_and_its_binding():
    # h alone is fine ([N] expanded by M); called with x for both inputs, N and M are both the
    # caller's B, and expand(a, B) of a [B] value fails inside h: the error must show the call
    # (line 2, col 23) and that N and M are B there.
    text = (
        "loss h(a: float[N], b: float[M]) { sum(expand(a, M) * b, over=M) }\n"
        "loss g(x: float[B]) { h(x, x) }"
    )
    with pytest.raises(lossdsl.LossError) as e:
        lossdsl.parse(text)
    (err,) = e.value.errors
    assert (err.span.line, err.span.col) == (1, 47)
    assert err.notes and err.notes[0][1].line == 2 and err.notes[0][1].col == 23
    assert "<string>:2:23: note: in h(...), inlined here with N = B, M = B" in err.render()


def test_a_prime_that_primes_nothing_is_an_error():
    # Inside sum(..., over=C), k' keeps C (summed dims keep their names), so k <= k' was k <= k
    # and the loss silently compiled to sum(x, over=C).
    with pytest.raises(lossdsl.LossError, match=r"k' is k here, because C is summed") as e:
        lossdsl.parse("loss f(k: float[C], x: float[B, C]) { sum(where(k <= k', x, 0), over=C) }")
    assert "`prime(k, C)`" in e.value.hint
    # a prime that keeps some dims and primes others is the documented rule, not an error
    spec = lossdsl.parse("loss f(z: float[B, D]) { sum(sum(z * z', over=D), over=B') }")
    assert spec.program().output("none").type.dims[0].name == "B"


# ---- dims with no size ---------------------------------------------------------------------


def test_a_dim_only_on_an_optional_input_is_an_error_at_check():
    # Without w nothing gives S a size: this passed check and raised a raw NotImplementedError
    # from the torch and jax emitters (a KeyError from numpy) at compile.
    with pytest.raises(lossdsl.LossError, match="only on optional inputs"):
        lossdsl.parse("loss f(x: float[B], w: float[B, *S] = 1) { sum(x * mean(w, over=S)) }")
    # S on a required input too: both variants compile and agree with numpy by hand
    spec = lossdsl.parse(
        "loss f(x: float[B, *S], w: float[B, *S] = 2) { sum(x * mean(w, over=S), over=S) }"
    )
    x = np.arange(6.0).reshape(2, 3)
    for backend in TARGETS:
        # w absent: 2 * row sums of x = [6, 24]; w = 1: [3, 12]
        np.testing.assert_allclose(run(spec, backend, {"x": x}), [6.0, 24.0])
        np.testing.assert_allclose(run(spec, backend, {"x": x, "w": np.ones((2, 3))}), [3, 12])


# ---- reduce mean by w empty e --------------------------------------------------------------


def test_weighted_mean_of_a_scalar_loss_divides_by_its_weight():
    # loss = sum(v) = 1 + 3 = 4 (one element); README: mean = sum(loss) / sum(w) = 4 / w:
    # by 2 -> 2, by inf -> 0, by 0 -> the empty value 0 with zero gradient. The weight was
    # ignored (4, 4, 4), and torch's gradient at w = 0 was 1, not 0.
    from helpers import grads

    for by, want, grad in (("2", 2.0, 0.5), ("inf", 0.0, 0.0), ("0", 0.0, 0.0)):
        spec = lossdsl.parse(f"loss f(v: float[B]) {{\n reduce mean by {by} empty 0\n sum(v)\n}}")
        inputs = {"v": np.array([1.0, 3.0])}
        for backend in TARGETS:
            got = run(spec, backend, inputs, "mean")
            assert got == want, (by, backend)
            if backend != "numpy":
                g = grads(backend, spec.compile(backend), inputs, ["v"], "float64")
                np.testing.assert_array_equal(g["v"], [grad, grad], err_msg=f"{by} {backend}")


def test_random_weighted_means_match_the_readme_formula():
    """`reduce mean by w empty e` on losses of rank 0 to 3 (dims drawn from A, B, C), the
    weights over the same dims in a random order (a scalar input for a scalar loss), some all
    zero: every backend gives README's sum(loss) / sum(w), and e where sum(w) == 0."""
    rng = np.random.default_rng(5)
    cases = 0
    for rank in (0, 1, 2, 3):
        for _ in range(2):
            ld = tuple(rng.permutation(["A", "B", "C"])[:rank])
            wd = tuple(rng.permutation(ld))
            empty = float(rng.choice([0.0, -1.5]))
            spec = lossdsl.parse(
                f"loss f(x: float{_dims(ld)}, w: float{_dims(wd)}) {{\n"
                f"    reduce mean by w empty {empty}\n    x * x\n}}"
            )
            x = rng.standard_normal([SIZES[d] for d in ld])
            w = rng.uniform(0.0, 2.0, [SIZES[d] for d in wd]) * (rng.random() < 0.7)
            total = np.sum(x * x)
            want = empty if np.sum(w) == 0 else total / np.sum(w)
            for backend in TARGETS:
                got = run(spec, backend, {"x": x, "w": w}, "mean")
                np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{ld} {wd} {backend}")
            cases += 1
    assert cases == 8


def test_each_prelude_binds_exactly_the_names_its_table_row_lists(monkeypatch):
    # lossdsl/lower/preludes.py PRELUDES is the one list of what `use TASK` binds (the CLI's
    # --task inputs and README's list are derived from it). Its handler returns exactly the
    # names of its row (recorded through a wrapper), under the task's standard inputs; each is
    # usable there, and every other prelude name is "not defined" there.
    import dataclasses

    from lossdsl.cli import inline_spec
    from lossdsl.lower import PRELUDES

    returned: dict[str, set] = {}
    for task, p in list(PRELUDES.items()):

        def record(ctx, use, a, b, task=task, handler=p.handler):
            out = handler(ctx, use, a, b)
            returned[task] = set(out)
            return out

        monkeypatch.setitem(PRELUDES, task, dataclasses.replace(p, handler=record))
    every = {n for p in PRELUDES.values() for n in p.binds}
    for task, p in PRELUDES.items():
        first = p.inputs[0][0]
        inline_spec(first, task, {}).ir()
        assert returned[task] == set(p.binds), task
        for name in sorted(every):
            expr = f"{name} + 0 * {first}"
            if name in p.binds:
                assert inline_spec(expr, task, {}).ir(), (task, name)
            else:
                with pytest.raises(lossdsl.LossError, match=f"'{name}' is not defined"):
                    inline_spec(expr, task, {}).ir()


@pytest.mark.parametrize(
    "body",
    ["exp(1e300)", "exp(stop_grad(1e300))", "exp(-(-(1e300)))", "exp(abs(1e300) + 0)"],
)
def test_a_constant_that_overflows_is_an_error_at_parse_however_it_is_built(body):
    """exp of 1e300 is no float64: a ConstantError at the expression when the spec is parsed
    (README, "Params"), also through constant equations between (stop_grad(1e300) was folded
    only by the fold pass, so the error came at compile; difffuzz, seed 368778)."""
    src = f"loss f(u: float[D]) {{\n    max(u, {body})\n}}\n"
    with pytest.raises(lossdsl.LossError, match="overflows float64") as e:
        lossdsl.parse(src)
    assert type(e.value.errors[0]).__name__ == "ConstantError"
    assert e.value.errors[0].span.line == 2


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_pi_and_e_are_constants_that_bindings_shadow(backend):
    """docs/language.md, "Constants": `pi` and `e` are math.pi and math.e (Python's own
    values, the expected ones here) in bodies, param defaults and constraints, unless an
    input, param, let or loop state of that name shadows them."""
    from helpers import call

    x = {"x": np.array([0.0, 1.0])}
    spec = lossdsl.parse(
        "loss f(x: float[B]) {\n    param theta: float = pi / 4   where theta <= pi\n"
        "    x * pi + e + theta\n}\n"
    )
    got = call(backend, spec.compile(backend), x, "float64", reduction="none")
    np.testing.assert_allclose(got, [math.e + math.pi / 4, math.pi + math.e + math.pi / 4],
                               rtol=1e-15)  # fmt: skip
    with pytest.raises(lossdsl.ParamError, match="theta"):
        call(backend, spec.compile(backend), x, "float64", reduction="none", theta=4.0)
    shadows = {
        "let": "loss f(x: float[B]) {\n    let pi = 3\n    let e = 2\n    x * pi + e\n}\n",
        "input": "loss f(x: float[B], e: float[B]) {\n    x * pi + e\n}\n",
        "param": "loss f(x: float[B]) {\n    param pi: float = 3.0\n    x * pi + e\n}\n",
        "state": "loss f(x: float[B]) {\n    let y = repeat(1, init=x) (e) { e + 1 }\n"
        "    y + 0 * e\n}\n",
    }
    want = {
        "let": [2.0, 5.0],
        "input": None,
        "param": [math.e, 3 + math.e],
        "state": [1.0, 2.0],
    }
    for kind, src in shadows.items():
        args = dict(x, e=np.array([1.0, 1.0])) if kind == "input" else x
        got = call(backend, lossdsl.parse(src).compile(backend), args, "float64",
                   reduction="none")  # fmt: skip
        np.testing.assert_allclose(got, want[kind] or [1.0, math.pi + 1.0], rtol=1e-15)
