"""Every op of the op table, on every backend, against the numpy reference (the op table's own
`ref` functions, evaluated in float64 by backends/numpy_ref.py). One tiny loss per op; the
test asserts that the op really survives the optimizer into the compiled program."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from helpers import call, grads, rel_err

import lossdsl
from lossdsl.codegen import ALIASES, INFIX, TARGETS, load_backend
from lossdsl.codegen.target import STRUCTURED
from lossdsl.ops import OPS

HEAD = (
    "x: float[B, C], y: float[B, C], i: index[B] of C, m: bool[B, C], z: float[C, B], "
    "q: float[B, 2], k: float[K, 2]"
)

# op -> the body of a loss over HEAD's inputs that compiles to (at least) that op
PROGRAMS = {
    "neg": "-x",
    "exp": "exp(x)",
    "log": "log(y)",
    "log1p": "log1p(y)",
    "expm1": "expm1(x)",
    "sqrt": "sqrt(y)",
    "abs": "abs(x)",
    "sigmoid": "sigmoid(x)",
    "softplus": "softplus(x)",
    "relu": "relu(x)",
    "erf": "erf(x)",
    "tanh": "tanh(x)",
    "sin": "sin(x)",
    "cos": "cos(x)",
    "atan": "atan(x)",
    "asin": "asin(tanh(x))",
    "acos": "acos(tanh(x))",
    "log2": "log2(y)",
    "log10": "log10(y)",
    "atan2": "atan2(x, y) + atan2(y, -x)",
    "sinh": "sinh(x)",
    "cosh": "cosh(x)",
    "asinh": "asinh(x)",
    "acosh": "acosh(1 + y * y)",  # the domain is [1, inf)
    "atanh": "atanh(tanh(x))",  # the domain is (-1, 1)
    "lgamma": "lgamma(y + 0.5)",  # away from the poles (0, -1, ...): negatives in test_special
    "digamma": "digamma(y + 0.5)",
    # both branches (x <= 1: the series; above: Debye's expansion and the recurrence), and the
    # derivative in the order (abs(x) * 3) as well as in x
    "log_ive": "log_ive(abs(x) * 3, y * 5) + log_ive(0.5, y)",
    # rounding: zero gradient w.r.t. x, the rounded value w.r.t. y (x * 3 away from the steps)
    "floor": "floor(x * 3) * y",
    "ceil": "ceil(x * 3) * y",
    "round": "round(x * 3) * y",
    "sign": "sign(x) * y",
    "logaddexp": "logaddexp(x, y) + logaddexp(y, -x)",
    "not": "where(!m, x, y)",
    "stop_grad": "stop_grad(x) * y",
    # declared gradients (the finite difference holds y and g, moves x: numpy_ref): a
    # straight-through rounding, a reversal scaled by an expression, a rule into another input
    "custom_grad": (
        "custom_grad(x ^ 3, wrt=y, grad=x) + straight_through(round(x * 3), x) * y"
        " + grad_reverse(x, 0.5 + sum(y, over=C)) * y"
    ),
    "to_float": "float(m) * x",
    "add": "x + y",
    "sub": "x - y",
    "mul": "x * y",
    "div": "x / y",
    "pow": "y ^ x",
    # floored, as Python's // and %: a float divisor, a negative dividend, a divisor input
    "floordiv": "(x // 0.75) * y + x // (abs(y) + 0.5)",
    "mod": "x % 0.75 + x % (abs(y) + 0.5) + (-x) % 2 * y",
    "maximum": "max(x, y) + max(x, 0.5)",
    "minimum": "min(x, y) + min(x, 0.5)",
    "xlogy": "xlogy(y, y) + xlogy(abs(x), y)",
    "eq": "where(x == y, 1.0, x)",
    "ne": "where(x != 0.25, x, y)",
    "lt": "where(x < y, x, y)",
    "le": "where(x <= y, x, y)",
    "gt": "where(x > y, x, y)",
    "ge": "where(x >= y, x, y)",
    "and": "where(m & (x > 0), x, y)",
    "or": "where(m | (x > 0), x, y)",
    "safe_div": "mean(x, over=C, mask=m)",
    "where": "where(m, x, y)",
    "sum": "sum(x, over=C)",
    "mean": "mean(x, over=C)",
    "max": "max(x, over=C)",
    "min": "min(x, over=C)",
    "logsumexp": "logsumexp(x, over=C)",
    "var": "var(x, over=C, ddof=1) + var(x, over=C)",
    "softmax": "softmax(x, over=C)",
    "log_softmax": "log_softmax(x, over=C)",
    "gather": "x[i] + sum(z, over=B)[i]",
    # classes on axis 1 (F.cross_entropy) and on axis 0 (the logsumexp - x[t] form)
    "cross_entropy": "-log_softmax(x, over=C)[i] - log_softmax(z, over=C)[i]",
    "onehot": "onehot(i) * x",
    "eye": "sum(where(eye(B, B'), 2.0, 1.0), over=B') * x",
    "fill": None,  # an absent optional input: see test_fill_and_size
    # made only by the shard transform: every one runs in tests/test_shard.py (numpy ranks)
    # and tests/test_distributed.py (torch gloo processes, jax host devices)
    **{op: None for op, d in OPS.items() if d.kind == "collective"},
    # made only by the library pass for torch: tests/test_library_pass.py runs each one
    **{op: None for op, d in OPS.items() if d.kind == "library"},
    "size": "x / size(C)",
    # positions along C compared with a class id: the mask c <= i (a cumulative mask)
    "arange": "where(expand(arange(C), B) <= i, x, y) + float(arange(C))[i]",
    "contract": "sum(sum(x * x', over=C), over=B')",
    "transpose": "z + x",
    "argmax": "x[argmax(x, over=C)] + float(argmax(z, over=C))",
    # a Gram matrix [C, C'] (symmetric), and its [C', C] layout (operand transposed first)
    "eigvalsh": (
        "eigvalsh(sum(x * x', over=B), over=(C, C')) + eigvalsh(sum(x' * x, over=B), over=(C, C'))"
    ),
    "rename": "sum(sum(x' * 2.0, over=C'), over=B') + x",
    # an outer difference of unrelated dims ([B] vs [C]), and two new dims at once
    "expand": (
        "(expand(sum(x, over=C), C) - sum(z, over=B))^2 * x + sum(expand(y[i], C, B')[i], over=B')"
    ),
    # the first difference along C (over C-1), and along B with C reduced
    "diff": "sum(diff(x, over=C)^2, over=C) + mean(abs(diff(z * y, over=B)))",
    # the coordinates of a fixed-size dim (float[B, 2])
    "take": "take(q, 0, over=2) * x + take(q, 1, over=2)^2",
    # scans along C and, reversed, along B of a [C, B] operand (axis 1)
    "cumsum": "cumsum(x, over=C) + cumsum(z * y, over=B, reverse=true)",
    "cumprod": "cumprod(y, over=C) + cumprod(x, over=B, reverse=true)",
    "cummax": "cummax(x, over=C) + cummax(z, over=B, reverse=true)",
    "logcumsumexp": "logcumsumexp(x, over=C) + logcumsumexp(z, over=B, reverse=true)",
    "sort": "sort(x, over=C) * y + sort(z, over=B, descending=true)",
    # the block reading outer values (y, and a sum of them), a logsumexp inside
    "repeat": (
        "repeat(3, init=x) (s) { 0.5 * s + y * logsumexp(s, over=C) / sum(y, over=C) } "
        "+ repeat(0, init=y) (s) { s * x }"
    ),
    # later and earlier, by more than the dim's size, with -inf, along a transposed input's B
    "shift": (
        "logaddexp(shift(x, 1, over=C, fill=-inf), shift(y, -2, over=C, fill=0.5))"
        " + shift(z, 7, over=B, fill=3) + float(shift(m, 1, over=B))"
    ),
    # two sequences and an outer value, a scalar param-free state; backwards over a transposed
    # input with a state of its slice's dims
    "scan": (
        "scan(x, y, over=C, init=sum(x, over=C)) (h, a, b) { 0.5 * h + a * b } "
        "+ scan(z, over=B, init=min(z, over=B), reverse=true) (g, c) { logaddexp(g, c) }"
    ),
    # with respect to an input, its body reading outer values (x, y: free values), transposed
    "grad": "grad(sum(sin(z) * y, over=(B, C)), wrt=z) * x + grad(sum(z ^ 3, over=(C, B)), wrt=z)",
    # a callable input: tests/test_derivs.py (every signature form, every backend)
    "call_fn": None,
    # by a key of the same dims, of transposed dims, and a value broadcast along the key's B
    "argsort": "sort(x * y, over=C, by=y, descending=true) + sort(x, over=B, by=z)",
    "take_along": (
        "sort(y, over=C, by=x) + sort(x * y, over=B, by=z, descending=true)"
        " + sort(sum(y, over=B), over=C, by=x)"
    ),
    "rank": "float(rank(x, over=C)) * y + float(rank(z, over=B))",
    "topk": "where(topk(x, 2, over=C), x, y) + where(topk(z, 1, over=B), 1.0, 0.0)",
    # between two entries (C of 3 at 0.3), a median over B of 4, the largest (q = 1), over C
    # of a [C, B] operand (axis 0)
    "quantile": (
        "quantile(x, 0.3, over=C) + median(y, over=C) + quantile(y, 1, over=C) * sum(x, over=C)"
        " + sum(z * median(z, over=B) + quantile(z, 0.75, over=C), over=C)"
    ),
    # windows over (B, C) as if they were (H, W): every padding, a stride, derived dims (C-1,
    # ceil(B/2), B-K+1) reduced by over= with the base dims' names
    "blur": (
        'sum(blur(x, over=(B, C), sigma=0.8, size=3, padding="same")^2, over=C) '
        "+ sum(blur(y, over=C, sigma=2, size=2), over=C)"
    ),
    "box": 'box(x, 2, over=(B, C), padding="reflect") * y + sum(box(x * y, 3, over=B), over=B)',
    "avg_pool": 'sum(avg_pool(x * y, 2, over=(B, C), padding="same")^2, over=(B, C))',
    "max_pool": (
        "sum(max_pool(x * y, 2, over=B, stride=1), over=B) "
        '+ sum(max_pool(x + y, (3, 2), over=(B, C), stride=(2, 1), padding="same"), over=B)'
    ),
    "conv": (
        "sum(conv(x, k, over=(B, C))^2, over=(B, C)) "
        '+ sum(conv(y, k, over=(B, C), padding="same") * x, over=C)'
    ),
    # frames: valid over B (its max over the frame's entries, dim 2), center=true (reflect)
    # and "same" over C, every frame dim reduced by its name (over=B, C reach the frame count)
    "frames": (
        "sum(max(frames(x * y, 2, 1, over=B), over=2), over=(B, C)) "
        "+ sum(mean(frames(x, 3, 2, over=C, center=true)^2, over=3), over=C) "
        '+ sum(frames(y, 2, over=C, padding="same")^2, over=(C, 2)) '
        '+ sum(mean(frames(x - y, 3, 2, over=B, padding="reflect")^2, over=(B, 3)) * y, over=C)'
    ),
    # stft_mag over B (4 entries, reflect-padded by 2): n_fft 4, hop 2 and a 3-tap Hann window
    # padded to 4 (its (B+2)//2 frames and 3 bins), and eps's floor of a zero frame's power
    "stft_mag": (
        "sum(sum(stft_mag(x, 4, 2, win=3, over=B, eps=1e-8), over=(B, 3)) * y, over=(B, C)) "
        "+ sum(stft_mag(x * y, 4, over=B), over=(B, 3, C))"
    ),
    # rfft_mag over q's fixed dim 2 (2 bins), over C (3 entries: (C+2)//2 bins, over=C reaches
    # them) and over B
    # split by a size and into groups (sizes that divide every B: 1 here, the special-value
    # batch has 7 rows), merged back; a merge across (B, C) split again into B groups (B*C)/B;
    # merges in both orders (one needs a transpose first)
    "reshape": (
        "sum(merge(split(x, 1, over=B) * split(y, groups=1, over=B), over=(B, 1)) * x, "
        "over=(B, C)) + sum(split(merge(x * y * y, over=(B, C)), groups=B, over=B)^2) "
        "+ sum(merge(x, over=(C, B)) * merge(y, over=(C, B)), over=C)"
    ),
    # CTC over K = 2 frames of log-probabilities of C = 3 classes, 2 labels per sequence, the
    # lengths from i; then unnormalized ones with log_epsilon = -30, where 1 frame cannot
    # align 2 labels (a cost near 30: finite differences of ~1e5 would be noise)
    "ctc_nll": (
        "ctc_nll(log_softmax(expand(x * y, K), over=C), expand(i, 2), i * 0 + 2, i % 2) "
        "+ ctc_nll(expand(x, K), expand(i, 2), i % 2 + 1, i % 3, blank=2, log_epsilon=-30)"
    ),
    "rfft_mag": (
        "sum(rfft_mag(q, over=2), over=(B, 2)) + sum(rfft_mag(x, over=C)^2, over=(B, C)) "
        "+ sum(rfft_mag(x * y, over=B, eps=1e-8), over=(B, C))"
    ),
}


def inputs(rng):
    b, c = 4, 3
    return {
        "x": rng.standard_normal((b, c)),
        "y": rng.uniform(0.5, 2.0, (b, c)),
        "i": rng.integers(0, c, b),
        "m": rng.random((b, c)) < 0.5,
        "z": rng.standard_normal((c, b)),
        "q": rng.standard_normal((b, 2)),
        "k": rng.standard_normal((2, 2)),
    }


def test_every_op_has_a_test_program():
    assert set(PROGRAMS) == set(OPS)


@pytest.mark.parametrize("backend", TARGETS)
def test_every_backend_has_every_op(backend):
    """A backend that lacks a template for an op fails here, not at a user's compile."""
    target = load_backend(backend).TARGET
    ops = {
        op
        for op, d in OPS.items()
        if (d.kind != "collective" or target.shard is not None)
        and (d.kind != "library" or target.library_calls)
    }
    missing = sorted(ops - ALIASES - STRUCTURED - set(target.templates))
    assert not missing, f"{backend} lacks templates for {missing}"


@pytest.mark.parametrize("op", [o for o in PROGRAMS if PROGRAMS[o] is not None])
def test_op_on_every_backend_matches_numpy_reference(op):
    spec = lossdsl.parse(f"loss t_{op}({HEAD}) {{\n    {PROGRAMS[op]}\n}}\n")
    prog = spec.program()
    assert op in {e.op for e in prog.eqns}, f"{op} was optimized away:\n{spec.ir(after='dce')}"
    data = inputs(np.random.default_rng(0))
    want = call("numpy", spec.compile("numpy"), data, "float64", reduction="none")
    for backend in ("torch", "jax"):
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        assert rel_err(got, want) <= 1e-12, backend
    ns: dict = {}
    exec(spec.source("numpy"), ns)
    assert rel_err(ns[spec.name](**data, reduction="none"), want) <= 1e-12, "numpy source"


# The same programs with x and y made int inputs (n: int tensors, sizes, int params): every
# op must compute in the float inputs' dtype exactly as on the ints written as floats.
IHEAD = HEAD.replace("x: float[B, C], y: float[B, C]", "x: int[B, C], y: int[B, C], f: float[B, C]")
FHEAD = HEAD.replace(
    "x: float[B, C], y: float[B, C]", "x: float[B, C], y: float[B, C], f: float[B, C]"
)


@pytest.mark.parametrize("op", [o for o in PROGRAMS if PROGRAMS[o] is not None])
def test_op_on_int_operands_equals_the_op_on_their_float_values(op):
    """softplus(n), logsumexp(n), n / k, n ^ -1, xlogy(n, k) and n + 0.5 with int n, k: the
    value of the same program on float(n), float(k) in the numpy reference (no torch int64
    kernel error, no int overflow, no default-dtype float32 result)."""
    body = f"({PROGRAMS[op]}) + f"  # + f: a float input to differentiate (or it is an error)
    rng = np.random.default_rng(3)
    data = {**inputs(rng), "x": rng.integers(-3, 4, (4, 3)), "y": rng.integers(1, 4, (4, 3))}
    data["f"] = rng.standard_normal((4, 3))
    floats = {**data, "x": data["x"].astype(float), "y": data["y"].astype(float)}
    want = call(
        "numpy", lossdsl.parse(f"loss t({FHEAD}) {{\n    {body}\n}}\n").compile("numpy"),
        floats, "float64", reduction="none",
    )  # fmt: skip
    spec = lossdsl.parse(f"loss t({IHEAD}) {{\n    {body}\n}}\n")
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        assert got.dtype == np.float64 and rel_err(got, want) <= 1e-12, backend


@pytest.mark.parametrize("op", [o for o in PROGRAMS if PROGRAMS[o] is not None])
def test_op_gradients_with_int_operands_and_literals(op):
    """Every op's program with an int operand beside the float one (x and y int inputs, or
    one of them an int literal such as xlogy(3, f)): torch and jax gradients w.r.t. the float
    input agree with central differences of the numpy reference, and the values with it. jax's
    xlogy is a custom_jvp: an int operand (an int input, a literal, a hoisted size(C)) got a
    float0 tangent and jax.grad raised TypeError; torch.atan2(3, f) raised TypeError on the
    int literal (found by scripts/difffuzz.py)."""
    from helpers import fd_grads, grads

    rng = np.random.default_rng(4)
    data = {**inputs(rng), "x": rng.integers(-3, 4, (4, 3)), "y": rng.integers(1, 4, (4, 3))}
    data["f"] = rng.uniform(0.5, 2.0, (4, 3))
    fdata = {**data, "x": rng.standard_normal((4, 3)), "y": rng.uniform(0.5, 2.0, (4, 3))}
    body = PROGRAMS[op]
    cases = [(IHEAD, f"({body}) * f", data)]  # int inputs only, then times a float
    for name, lit in (("x", "3"), ("y", "2")):  # one operand int (an input, a literal), one f
        other = "y" if name == "x" else "x"
        text = re.sub(rf"\b{other}\b", "f", body)
        cases.append((IHEAD, f"({text}) + f", data))
        literal = re.sub(rf"\b{name}\b", lit, text)
        cases.append((FHEAD, f"({literal}) + f", fdata))
    ran = 0
    for head, text, d in cases:
        try:
            spec = lossdsl.parse(f"loss t({head}) {{\n    {text}\n}}\n")
        except lossdsl.LossError:
            continue  # a literal where the op needs a tensor (x[i], x'): no such program
        ran += 1
        want = call("numpy", spec.compile("numpy"), d, "float64", reduction="none")
        wg = fd_grads(spec, frozenset(), d, ["f"])["f"]
        for backend in ("torch", "jax"):
            got = call(backend, spec.compile(backend), d, "float64", reduction="none")
            assert rel_err(got, want) <= 1e-12, (backend, text)
            g = grads(backend, spec.compile(backend), d, ["f"], "float64")["f"]
            rtol, atol = FD_TOL.get(op, (1e-6, 1e-8))
            np.testing.assert_allclose(g, wg, rtol=rtol, atol=atol, err_msg=f"{backend} {text}")
    assert ran >= (5 if op in ("xlogy", "atan2", "pow", "div") else 1), op


def test_where_of_numbers_computes_in_the_inputs_float_dtype():
    """where(c, a, b) with a condition of every kind (a bool tensor, a size comparison, a bool
    param) and branches that are numbers (literals, 1e300, float params) or a tensor: on every
    backend and torch's chunked schedule, exactly the numpy reference's float64 value.
    torch.where(c, 0.1, 1e300) computed in torch's default float32: 0.1 was 1.5e-9 off and
    1e300 a RuntimeError (found by scripts/difffuzz.py)."""
    head = "x: float[B, C], v: float[B]"
    conds = ("v > 0", "2 >= size(B)", "pf")
    pairs = (("0.1", "1e300"), ("1e300", "pa"), ("pa", "-2"), ("v", "0.1"), ("1e300", "v"))
    data = {"x": np.zeros((3, 2)), "v": np.array([-0.04, 0.3, 1e-3])}
    n = 0
    for c, (a, b) in itertools.product(conds, pairs):
        body = f"min(where({c}, {a}, {b}), v + 1.5) + logsumexp(x, over=C)"
        src = f"loss w({head}) {{\n    param pf: bool = true\n    param pa: float = 0.3\n"
        spec = lossdsl.parse(f"{src}    {body}\n}}\n")
        want = call("numpy", spec.compile("numpy"), data, "float64", reduction="sum")
        fns = {b: spec.compile(b) for b in TARGETS}
        fns["torch-chunked"] = spec.compile("torch", schedule="chunked", chunk=1)
        for name, fn in fns.items():
            backend = "torch" if name == "torch-chunked" else name
            got = call(backend, fn, data, "float64", reduction="sum")
            assert got.dtype == np.float64 and rel_err(got, want) <= 1e-15, (name, body, got)
        n += 1
    assert n == 15


def test_division_and_powers_of_params_follow_ieee_floats():
    """/ and ^ of params, sizes and literals alone (Python numbers at run time): inf or NaN
    like the numpy reference on every backend and torch's chunked schedule, never Python's
    ZeroDivisionError (1e300 / pa at pa = 0, found by scripts/difffuzz.py), OverflowError
    (10.0 ^ pa at pa = 400) or a complex number (pa ^ 0.5 at pa = -1)."""
    head = "x: float[B, C], v: float[B]"
    terms = ("1e300 / pa", "pa / pa", "size(B) / pk", "10.0 ^ pa", "pa ^ 0.5", "pa ^ -1")
    data = {"x": np.zeros((3, 2)), "v": np.array([-0.5, 0.3, 2.0])}
    for term, pa, pk in itertools.product(terms, (0.0, -1.0, 400.0), (0, 2)):  # 36 programs
        src = f"loss q({head}) {{\n    param pa: float = 1\n    param pk: int = 1\n"
        spec = lossdsl.parse(f"{src}    v * ({term}) + logsumexp(x, over=C)\n}}\n")
        want = call("numpy", spec.compile("numpy"), data, "float64", reduction="sum", pa=pa, pk=pk)
        fns = {b: spec.compile(b) for b in TARGETS}
        fns["torch-chunked"] = spec.compile("torch", schedule="chunked", chunk=1)
        for name, fn in fns.items():
            backend = "torch" if name == "torch-chunked" else name
            got = call(backend, fn, data, "float64", reduction="sum", pa=pa, pk=pk)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {term} {pa=} {pk=}")


def test_float_ops_of_sizes_divide_like_floats():
    """size(D) / 0 is inf and softplus(clamp(size(D), max=1)) is softplus(1.0) on every
    backend (Python ints in the generated code used to raise ZeroDivisionError, and torch has
    no int64 softplus). Expected: IEEE division and log(1 + e) by hand."""
    body = "x * (size(D) / 0) + softplus(clamp(size(D), max=1)) * x"
    src = f"loss t(x: float[B], u: float[D]) {{\n    {body}\n}}\n"
    spec = lossdsl.parse(src)
    data = {"x": np.array([1.0, -2.0]), "u": np.ones(3)}
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        assert list(got) == [np.inf, -np.inf], backend
    spec = lossdsl.parse(src.replace("x * (size(D) / 0) + ", ""))
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        np.testing.assert_allclose(got, np.log1p(np.e) * data["x"], rtol=1e-15, err_msg=backend)


# the surface form of every binary elementwise function and of the operators that are no
# Python operator on every framework's tensors (not internal ops)
BINARY_CALLS = {
    "atan2": "atan2({0}, {1})",
    "log_ive": "log_ive({0}, {1})",
    "xlogy": "xlogy({0}, {1})",
    "maximum": "max({0}, {1})",
    "minimum": "min({0}, {1})",
    "logaddexp": "logaddexp({0}, {1})",
    "floordiv": "{0} // {1}",
    "mod": "{0} % {1}",
}


@pytest.mark.parametrize("op", sorted(BINARY_CALLS))
@pytest.mark.parametrize("backend", TARGETS)
def test_binary_functions_take_numbers_in_either_position(op, backend):
    """f(x, 2.0), f(2.0, x), f(x, p) with a param, f(x, size(B)): a literal, a Python-number
    param or a size beside a tensor (torch.atan2 raised TypeError on a float). Expected: the
    op table's numpy meaning on the same numbers."""
    fn = BINARY_CALLS[op]
    assert {o for o, d in OPS.items() if d.kind == "elementwise" and d.nargs == 2} - set(
        BINARY_CALLS
    ) <= INFIX | {"safe_div", "and", "or"}  # every binary call is listed here
    x = np.array([0.3, 2.0, 1.5, np.inf, -np.inf, np.nan])
    # nan and inf literals too: jax's min/max with a literal bound was a select that dropped a
    # NaN bound (min(asin(3), size(C)) gave size(C); difffuzz, seed 669217)
    others = {"2.0": 2.0, "p": 0.75, "float(size(B))": 6.0, "nan": np.nan, "-inf": -np.inf}
    for text, v in others.items():
        for body, want in (
            (fn.format("x", text), OPS[op].ref(x, np.asarray(v))),
            (fn.format(text, "x"), OPS[op].ref(np.asarray(v), x)),
        ):
            spec = lossdsl.parse(
                f"loss t(x: float[B]) {{\n    param p: float = 0.75\n    {body} + x\n}}\n"
            )
            got = call(backend, spec.compile(backend), {"x": x}, "float64", reduction="none")
            with np.errstate(all="ignore"):
                # log_ive: a 15-step recurrence of ratios; jax's and numpy's agree to 2e-14
                rtol = 5e-14 if op == "log_ive" else 1e-14
                np.testing.assert_allclose(got, want + x, rtol=rtol, err_msg=body)


def test_fill_and_size():
    """An optional input that is not passed becomes a fill of its declared dims."""
    spec = lossdsl.parse(
        "loss t(x: float[B, C], w: float[C] = 2) {\n    sum(w * x, over=C) + w[0 * 0]\n}\n".replace(
            " + w[0 * 0]", ""
        )
    )
    prog = spec.program(frozenset({"w"}))
    data = {"x": np.random.default_rng(1).standard_normal((3, 4))}
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        np.testing.assert_allclose(got, 2 * data["x"].sum(1), rtol=1e-12)
    assert prog.inputs[0].var.name == "x" and len(prog.inputs) == 1


# The finite difference of a program holding grad() differences two of the reference's own
# derivative estimates (Ridders' extrapolation, ops._fd_grad, whose chosen step jumps as x
# moves): 1e-7 noise, so 1e-4 here; tests/test_derivs.py holds grad's double backward to the
# derivative by hand at 1e-10 instead.
FD_TOL = {"grad": (1e-4, 1e-6)}


@pytest.mark.parametrize("op", [o for o in PROGRAMS if PROGRAMS[o] is not None])
def test_op_gradients_agree_with_finite_differences(op):
    """Backward of every op (the list is the op table: a new op is checked here once it has
    a program): torch and jax autograd w.r.t. each float input the program reads, against
    central differences of the float64 reference (inputs away from kinks and ties)."""
    from helpers import fd_grads, grads

    spec = lossdsl.parse(f"loss g_{op}({HEAD}) {{\n    {PROGRAMS[op]}\n}}\n")
    data = inputs(np.random.default_rng(2))
    wrt = [n for n in ("x", "y", "z", "k") if re.search(rf"\b{n}\b", PROGRAMS[op])]
    want = fd_grads(spec, frozenset(), data, wrt)
    for backend in ("torch", "jax"):
        got = grads(backend, spec.compile(backend), data, wrt, "float64")
        rtol, atol = FD_TOL.get(op, (1e-6, 1e-8))
        for n in wrt:
            np.testing.assert_allclose(got[n], want[n], rtol=rtol, atol=atol, err_msg=backend)


def test_eigvalsh_of_a_non_finite_matrix_is_nan_beside_finite_ones():
    """A batch of Gram matrices where one row holds inf or NaN: that matrix's eigenvalues are
    all NaN, the others numpy.linalg.eigvalsh's (torch and numpy raised LinAlgError for the
    whole batch; jax mixed NaN and numbers). Found by tests/difffuzz.py."""
    spec = lossdsl.parse(
        "loss e(x: float[B, C, D]) {\n    eigvalsh(sum(x * prime(x, C), over=D), over=(C, C'))\n}\n"
    )
    x = np.random.default_rng(6).standard_normal((3, 2, 4))
    for bad in (np.inf, -np.inf, np.nan):
        x[1, 0, 2] = bad
        want = np.linalg.eigvalsh(np.einsum("bcd,bed->bce", x, x))
        want[1] = np.nan
        for backend in TARGETS:
            got = call(backend, spec.compile(backend), {"x": x}, "float64", reduction="none")
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{backend} {bad}")


def test_norm_has_zero_gradient_at_zero():
    """torch: x.norm() at x = 0 has gradient 0 (a subgradient), not NaN."""
    import torch

    spec = lossdsl.parse("loss nz(x: float[B, D]) {\n    norm(x, over=D)\n}\n")
    x = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(spec.compile("torch")(x), [x])
    assert torch.all(g == 0)


def test_prime_selected_dims_is_a_batched_gram_matrix():
    """prime(f, C) primes C only: sum(f * prime(f, C), over=S) is the per-sample Gram matrix
    f f^T ([B, C, C']), computed here with torch.bmm."""
    import torch

    spec = lossdsl.parse(
        "loss g(f: float[B, C, *S]) {\n    mean(sum(f * prime(f, C), over=S), over=C')\n}\n"
    )
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    flat = f.reshape(2, 3, -1)
    gram = torch.bmm(flat, flat.transpose(1, 2))
    torch.testing.assert_close(spec.compile("torch")(f, reduction="none"), gram.mean(2))
    assert "contract" in {e.op for e in spec.program().eqns}  # a matmul, no outer product


# ---- NaN, +-inf and 0 ---------------------------------------------------------------------

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -0.5]


def _nan_cases(op):
    """(args, attrs) of `op` with at least one NaN, the others from SPECIAL."""
    d = OPS[op]
    attrs = {"empty": 0.0} if op == "safe_div" else {}
    for combo in itertools.product(SPECIAL, repeat=d.nargs):
        if any(np.isnan(v) for v in combo):
            yield combo, attrs


def _nan_ok(op, combo, got) -> bool:
    """The documented exceptions: pow(x, 0) = pow(1, y) = 1 (IEEE 754); safe_div(a, 0) is
    `empty` (its meaning: the value where b == 0); custom_grad(y, x, g) is y's value, whatever
    x and g hold (they only shape the gradient: docs/language.md, Declared gradients)."""
    if op == "pow" and (combo[1] == 0 or combo[0] == 1):
        return got == 1
    if op == "custom_grad":
        return got == combo[0] or bool(np.isnan(got) and np.isnan(combo[0]))
    if op == "safe_div" and combo[1] == 0:
        return got == 0.0
    return bool(np.isnan(got))


FLOAT_ELEMENTWISE = [
    op
    for op, d in OPS.items()
    if d.kind == "elementwise"
    # masks: NaN compares false (IEEE 754); where: tested below
    and op not in ("where", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge")
]


def test_every_elementwise_meaning_propagates_nan():
    """The op table's numpy meaning at every combination of NaN with NaN, +-inf, +-0 and finite
    values: NaN out, but for the exceptions _nan_ok lists (each with its reason)."""
    checked = 0
    for op in FLOAT_ELEMENTWISE:
        d = OPS[op]
        for combo, attrs in _nan_cases(op):
            with np.errstate(all="ignore"):
                got = float(d.ref(*(np.asarray(v) for v in combo), **attrs))
            assert _nan_ok(op, combo, got), f"{op}{combo} = {got}"
            checked += 1
    # where: NaN in the chosen branch is the result; in the other, it is dropped (by meaning)
    w = OPS["where"].ref
    assert np.isnan(w(np.asarray(True), np.asarray(np.nan), np.asarray(1.0)))
    assert w(np.asarray(False), np.asarray(np.nan), np.asarray(1.0)) == 1.0
    for op in ("sum", "mean", "max", "min", "logsumexp", "var"):
        ref = OPS[op].ref
        kw = {"ddof": 0} if op == "var" else {}
        for v in SPECIAL:
            with np.errstate(all="ignore"):
                got = ref(np.array([[np.nan, v], [v, np.nan]]), axis=(0,), **kw)
            assert np.isnan(got).all(), (op, v, got)
    for op in ("softmax", "log_softmax"):
        got = OPS[op].ref(np.array([np.nan, 1.0, -np.inf]), 0)
        assert np.isnan(got).all(), (op, got)
    # unary ops: NaN alone; binary: the 13 pairs with a NaN; ternary: the 127 triples (every
    # case ran, none skipped)
    n = len(SPECIAL)
    assert checked == sum(n ** OPS[op].nargs - (n - 1) ** OPS[op].nargs for op in FLOAT_ELEMENTWISE)


def _norm(v, axis):
    return np.sqrt(np.sum(v * v, axis=axis))


def _softmax(v):
    e = np.exp(v - v.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _masked_mean(v, m, empty):
    n = m.sum(1)
    return np.where(n == 0, empty, np.where(m, v, 0).sum(1) / np.maximum(n, 1))


# Surface functions whose lowering guards a value (a where around a sqrt, a division, a log):
# the body, and its documented meaning written here in NumPy (norm: sqrt of the sum of
# squares; normalize: F.normalize's x / max(||x||, eps); logsigmoid: -softplus(-x); masked
# mean: README's "mean of the selected elements, `empty` when none is"; xlogy: scipy 1.17's).
GUARDS = {  # one term each: a NaN from one term would hide another's swallowed NaN
    "norm": ("norm(x * y, over=C)", lambda x, y, z, m: _norm(x * y, 1)),
    "norm_t": ("norm(z, over=C)", lambda x, y, z, m: _norm(z, 0)),
    # p-norms (torch.linalg.vector_norm's ord; numpy's norm is the meaning)
    **{
        f"norm_p{p.replace('.', '_')}": (
            f"norm(x * y, over=C, p={p})",
            lambda x, y, z, m, p=float(p): np.linalg.norm(x * y, ord=p, axis=1),
        )
        for p in ("1", "1.5", "3", "inf")
    },
    "normalize_p1": (
        "normalize(x * y, over=C, p=1)",
        lambda x, y, z, m: x * y / np.maximum(np.sum(np.abs(x * y), 1), 1e-12)[:, None],
    ),
    "normalize": (
        "normalize(x * y, over=C)",
        lambda x, y, z, m: x * y / np.maximum(_norm(x * y, 1), 1e-12)[:, None],
    ),
    "normalize_eps": (
        "normalize(y, over=B, eps=0.5)",
        lambda x, y, z, m: y / np.maximum(_norm(y, 0), 0.5)[None, :],
    ),
    "logsigmoid": ("logsigmoid(x * y)", lambda x, y, z, m: -np.logaddexp(0, -x * y)),
    "clamp": (
        "clamp(x * y, min=-1, max=1)",
        lambda x, y, z, m: np.minimum(np.maximum(x * y, -1), 1),
    ),
    "masked_mean": (
        "mean(x * y, over=C, mask=m, empty=0.5)",
        lambda x, y, z, m: _masked_mean(x * y, m, 0.5),
    ),
    # rows of y without its NaN: one with +inf (x - max is inf - inf: NaN everywhere, as torch
    # 2.13 and jax 0.10 give), one with -inf (finite: e^-inf = 0)
    "softmax_inf": (
        "softmax(where((y == y) & (y > -2), y, 0.0), over=C)",
        lambda x, y, z, m: _softmax(np.where((y == y) & (y > -2), y, 0.0)),
    ),
    "log_softmax_inf": (
        "log_softmax(where((y == y) & (y < 2), y, 0.0), over=C)",
        lambda x, y, z, m: np.log(_softmax(np.where((y == y) & (y < 2), y, 0.0))),
    ),
    "xlogy": (
        "xlogy(x, y)",
        lambda x, y, z, m: __import__("scipy.special").special.xlogy(x, y),
    ),
}


def _special_inputs():
    """x[b, c] = SPECIAL[b], y[b, c] = SPECIAL[c]: every pair of special values meets once."""
    n = len(SPECIAL)
    v = np.array(SPECIAL)
    return {
        "x": np.repeat(v[:, None], n, 1),
        "y": np.repeat(v[None, :], n, 0),
        "i": np.arange(n) % n,
        "m": (np.add.outer(np.arange(n), np.arange(n)) % 3) > 0,
        "z": np.repeat(v[None, :], n, 0).T * 0.5,
        "q": np.stack([v, v[::-1]], 1),
        "k": np.array([[0.5, -1.0], [2.0, 0.25]]),
    }


def _agree(got, want, what):
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, what
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all(), f"{what}: NaN at {np.argwhere(np.isnan(got) != nan)}"
    np.testing.assert_allclose(got[~nan], want[~nan], rtol=1e-12, atol=0, err_msg=what)


NAN_PROGRAMS = {
    op: body
    for op, body in PROGRAMS.items()
    # eigvalsh: LAPACK's eigensolver has no NaN meaning (it may fail to converge); grad: the
    # reference differences the whole body, so one NaN makes every entry's derivative NaN
    # where autodiff keeps each entry's own (torch and jax are held to each other there:
    # test_grad_keeps_nan_inf_and_zero_alike_on_torch_and_jax below)
    if body is not None and op not in ("eigvalsh", "grad")
}


def test_grad_keeps_nan_inf_and_zero_alike_on_torch_and_jax():
    """grad's program at every pair of special values: torch's autograd.grad and jax.grad give
    the same values (NaN where NaN, inf with its sign); both are autodiff of one body."""
    data = _special_inputs()
    spec = lossdsl.parse(f"loss s_grad({HEAD}) {{\n    {PROGRAMS['grad']}\n}}\n")
    with np.errstate(all="ignore"):
        want = call("torch", spec.compile("torch"), data, "float64", reduction="none")
        got = call("jax", spec.compile("jax"), data, "float64", reduction="none")
    assert np.isnan(want).any() and np.isfinite(want).any()
    _agree(got, want, "jax vs torch: grad")


@pytest.mark.parametrize("name", [*NAN_PROGRAMS, *GUARDS])
def test_every_backend_keeps_nan_inf_and_zero_like_the_numpy_meaning(name):
    """Each op's test program, and each guarded function, at every pair of NaN, +-inf, +-0 and
    finite values: torch, jax and the numpy source give the meaning, NaN where it is NaN. An
    op's meaning is the op table's (the float64 interpreter of backends/numpy_ref.py over the
    ops' `ref`); a guarded function's is GUARDS' NumPy formula (not its lowering: a guard that
    swallows NaN is in the interpreter too)."""
    from backends.numpy_ref import evaluate

    data = _special_inputs()
    if name in GUARDS:
        body, meaning = GUARDS[name]
        with np.errstate(all="ignore"):
            want = meaning(data["x"], data["y"], data["z"], data["m"])
    else:
        body = NAN_PROGRAMS[name]
    spec = lossdsl.parse(f"loss s_{name}({HEAD}) {{\n    {body}\n}}\n")
    with np.errstate(all="ignore"):
        if name not in GUARDS:
            want = evaluate(spec.program(), data, {}, "none")
        for backend in TARGETS:
            got = call(backend, spec.compile(backend), data, "float64", reduction="none")
            _agree(got, want, f"{backend}: {body}")


def test_norm_of_a_nan_vector_is_nan():
    # y = [nan, 1]: the norm over B' of expand(y, B') is |y_b| sqrt(2) = [nan, sqrt(2)], so
    # max(w, norm) with w = [5, 3] is [nan, 3] (np.maximum propagates NaN). The guard
    # where(s > 0, sqrt(s), 0) gave 0 for the NaN row, hence [5, 3].
    spec = lossdsl.parse(
        "loss f(y: float[B], w: float[B]) {\n    max(w, norm(expand(y, B'), over=B'))\n}\n"
    )
    data = {"y": np.array([np.nan, 1.0]), "w": np.array([5.0, 3.0])}
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        np.testing.assert_array_equal(got, [np.nan, 3.0], err_msg=backend)


# ---- reductions over an empty dim --------------------------------------------------------

EMPTY_HEAD = "x: float[B, C], m: bool[B, C], k: int[B, C]"
# body over EMPTY_HEAD with B = 0 -> its value at each C (the identity of the reducing ufunc),
# or TOO_SMALL: a reduction with no value over nothing (a mean, a max, ...) is an InputError
# naming the dim at call time (lossdsl/empty.py; README, "Edge cases").
TOO_SMALL = "InputError"
EMPTY = {
    "sum": ("sum(x, over=B)", 0.0),
    "mean": ("mean(x, over=B)", TOO_SMALL),
    "max": ("max(x, over=B)", TOO_SMALL),
    "min": ("min(x, over=B)", TOO_SMALL),
    "max_all": ("max(x) + 0 * sum(x, over=B)", TOO_SMALL),
    "min_twin": ("min(prime(x, B), over=B')", TOO_SMALL),
    "max_int": ("float(max(k, over=B)) + sum(x, over=B)", TOO_SMALL),
    "min_int": ("float(min(k, over=B)) + sum(x, over=B)", TOO_SMALL),
    "logsumexp": ("logsumexp(x, over=B)", TOO_SMALL),
    "var": ("var(x, over=B)", TOO_SMALL),
    "count": ("float(count(m, over=B)) + sum(x, over=B)", 0.0),
    "norm": ("norm(x, over=B)", 0.0),  # sqrt of an empty sum of squares
    "norm_p": ("norm(x, over=B, p=3)", TOO_SMALL),  # scaled by the max of |x|
    "masked_mean": ("mean(x, over=B, mask=m, empty=0.5)", 0.5),  # its declared empty value
    "softmax": ("sum(softmax(x, over=B), over=B)", 0.0),  # an empty softmax, summed
}


def test_every_reduction_has_an_empty_case():
    assert {op for op, d in OPS.items() if d.kind == "reduce"} <= set(EMPTY)


@pytest.mark.parametrize("name", list(EMPTY))
def test_a_reduction_over_an_empty_dim_gives_its_identity(name):
    """max/min/logsumexp over a size-0 dim were a raw IndexError on torch and ValueError on
    numpy and jax; each reduction gives the value its numpy meaning defines, with a
    gradient (empty, like x) that does not raise."""
    from helpers import grads

    body, want = EMPTY[name]
    spec = lossdsl.parse(f"loss e_{name}({EMPTY_HEAD}) {{\n    {body}\n}}\n")
    data = {"x": np.zeros((0, 2)), "m": np.zeros((0, 2), bool), "k": np.zeros((0, 2), np.int64)}
    if want is TOO_SMALL:
        for backend in TARGETS:
            with pytest.raises(lossdsl.InputError, match="dim B has size 0"):
                call(backend, spec.compile(backend), data, "float64", reduction="none")
        return
    with np.errstate(all="ignore"):
        for backend in TARGETS:
            got = call(backend, spec.compile(backend), data, "float64", reduction="none")
            np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape), err_msg=backend)
            assert got.shape in ((), (2,)), backend
        for backend in ("torch", "jax"):
            g = grads(backend, spec.compile(backend), data, ["x"], "float64", reduction="sum")
            assert g["x"].shape == (0, 2), backend


def test_clamped_entries_pass_no_gradient_even_behind_an_infinite_one():
    """sqrt(clamp(w, min=0)) at w < 0: the clamp's gradient is 0 and sqrt's at 0 is inf; jax's
    jnp.maximum multiplied them (NaN, found by tests/difffuzz.py), torch.clamp selects (0).
    Expected (by hand, d/dw sqrt(w) = 0.5 / sqrt(w)): [0, 0.25] at w = [-1, 4]; NaN stays NaN."""
    from helpers import grads

    spec = lossdsl.parse("loss f(w: float[C]) {\n    clamp(w, min=0) ^ 0.5 + min(w, 9.0)\n}\n")
    data = {"w": np.array([-1.0, 4.0])}
    for backend in ("torch", "jax"):
        g = grads(backend, spec.compile(backend), data, ["w"], "float64", reduction="sum")
        np.testing.assert_array_equal(g["w"], [1.0, 1.25], err_msg=backend)
        got = call(backend, spec.compile(backend), {"w": np.array([np.nan])}, "float64")
        assert np.isnan(got), backend


# ---- special functions against an independent reference ------------------------------------

_INF, _NAN = np.inf, np.nan
# function -> the points (edges: poles, domain ends, overflow, halves, signed zeros, NaN)
SPECIAL_GRID = {
    "sinh": [-800.0, -2.0, -0.0, 0.0, 1e-8, 3.0, 710.5, _INF, -_INF, _NAN],
    "cosh": [-800.0, -2.0, -0.0, 1e-8, 3.0, 710.5, _INF, -_INF, _NAN],
    "asinh": [-1e300, -2.0, -0.0, 0.0, 1e-8, 3.0, _INF, -_INF, _NAN],
    "acosh": [0.5, 1.0, 1.0 + 1e-10, 2.0, 1e300, _INF, -_INF, _NAN],
    "atanh": [-1.5, -1.0, -0.5, -0.0, 1e-9, 0.999, 1.0, _INF, _NAN],
    "lgamma": [0.5, 1.0, 2.0, 10.0, 1e-8, 100.5, -2.5, -0.5, 0.0, -0.0, -1.0, -2.0, 3e305]
    + [1e300, -1e300, _INF, _NAN],
    "digamma": [1.0, 0.5, 10.0, -2.5, 1e-8, 100.5, 1e300, 0.0, -0.0, -1.0, -3.0, -0.5]
    + [_INF, -_INF, _NAN],
    "floor": [-2.5, -0.5, -0.0, 0.5, 2.0, 1e300, _INF, -_INF, _NAN],
    "ceil": [-2.5, -0.5, -0.0, 0.5, 2.0, 1e300, _INF, -_INF, _NAN],
    "round": [-2.5, -1.5, -0.5, -0.4, 0.5, 1.5, 2.5, 1e300, _INF, -_INF, _NAN],
    "sign": [-0.0, 0.0, _NAN, -3.0, 2.0, 1e-300, _INF, -_INF],
}
# (a, b) pairs for logaddexp: both infinite (not NaN: -inf, inf), far apart, equal and large
LOGADDEXP = [(-_INF, -_INF), (_INF, _INF), (_INF, -_INF), (-_INF, 2.0), (1000.0, 1000.0)]
LOGADDEXP += [(-1000.0, -1000.0), (0.0, 0.0), (1.0, 40.0), (-3.0, 5.0), (_NAN, 1.0), (_INF, _NAN)]


def _special_reference(fn, x):
    """The independent meaning: scipy.special (gammaln, psi) and numpy, in float64."""
    import scipy.special

    with np.errstate(all="ignore"):
        if fn == "lgamma":
            # scipy's gammaln is -inf at -inf; torch.lgamma, jax and math.lgamma give +inf
            # (lossdsl follows them, ops.py says so)
            return np.where(x == -np.inf, np.inf, scipy.special.gammaln(x))
        if fn == "digamma":
            return scipy.special.psi(x)
        name = {"asinh": "arcsinh", "acosh": "arccosh", "atanh": "arctanh"}.get(fn, fn)
        return getattr(np, name)(x)


@pytest.mark.parametrize("fn", [*SPECIAL_GRID, "logaddexp"])
def test_special_functions_match_scipy_and_numpy_on_every_backend(fn):
    """Each of sinh cosh asinh acosh atanh lgamma digamma floor ceil round sign logaddexp, on
    every target, torch's and jax's float64 and the numpy interpreter: the value of scipy.special
    (gammaln, psi; scipy 1.17.1) or numpy (2.4.6) at the edge points above, NaN and +-inf where
    they are, zeros with their sign. Known values written out: digamma(1) = -Euler-Mascheroni,
    lgamma(1) = lgamma(2) = 0, round halves to even, sign(-0.0) = 0, sign(NaN) = NaN (torch.sign
    gave 0), digamma(+-0) = -+inf (jax gave NaN), logaddexp(-inf, -inf) = -inf."""
    import scipy

    from backends.numpy_ref import evaluate

    if fn == "logaddexp":
        a, b = (np.array(v) for v in zip(*LOGADDEXP))
        data, body = {"x": a, "y": b}, "logaddexp(x, y)"
        with np.errstate(invalid="ignore"):
            want = np.logaddexp(a, b)
        np.testing.assert_array_equal(want[:3], [-np.inf, np.inf, np.inf])
        np.testing.assert_allclose(want[4:7], [1000 + np.log(2), -1000 + np.log(2), np.log(2)])
    else:
        x = np.array(SPECIAL_GRID[fn])
        data, body = {"x": x}, f"{fn}(x)"
        want = _special_reference(fn, x)
    # values known in closed form at the first grid points (Gamma(1/2) = sqrt(pi))
    known = {
        "digamma": [-0.5772156649015329],
        "lgamma": [0.5 * np.log(np.pi), 0.0, 0.0],
        "round": [-2.0, -2.0, -0.0, -0.0, 0.0, 2.0, 2.0],
        "sign": [0.0, 0.0, np.nan],
    }.get(fn, [])
    np.testing.assert_allclose(want[: len(known)], known, rtol=2e-16, atol=0, err_msg=fn)
    if fn == "round":
        assert list(np.signbit(want[2:5])) == [True, True, False]  # -0.5 and -0.4 give -0.0
    head = ", ".join(f"{n}: float[B]" for n in data)
    spec = lossdsl.parse(f"loss s({head}) {{\n    {body}\n}}\n")
    with np.errstate(all="ignore"):
        got = {b: call(b, spec.compile(b), data, "float64", reduction="none") for b in TARGETS}
        got["interpreter"] = evaluate(spec.program(), data, {}, "none")
    for name, g in got.items():
        what = f"{name}: {fn} at {list(zip(*data.values()))} (scipy {scipy.__version__})"
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want), err_msg=what)
        np.testing.assert_allclose(g, want, rtol=1e-13, atol=0, err_msg=what)
        zero = want == 0
        np.testing.assert_array_equal(np.signbit(g[zero]), np.signbit(want[zero]), err_msg=what)


def test_rounding_and_sign_of_an_int_stay_ints():
    """floor/ceil/round of an int are the int itself and sign(k) is -1, 0 or 1 as an int:
    x[...] by an int computed with them indexes (an int index), on every backend. By hand:
    k = [-2, 0, 3] -> sign(k) + 1 = [0, 1, 2], floor(k) + ceil(k) - round(k) = k."""
    spec = lossdsl.parse(
        "loss r(x: float[B, C], k: int[B]) {\n"
        "    float(sign(k) + 1) + float(floor(k) + ceil(k) - round(k)) * sum(x, over=C)\n}\n"
    )
    prog = spec.program()
    assert "sign" in {e.op for e in prog.eqns}
    assert not {"floor", "ceil", "round"} & {e.op for e in prog.eqns}  # the identity on ints
    assert prog.output("none").type.dtype == "float"
    data = {"x": np.ones((3, 2)), "k": np.array([-2, 0, 3])}
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        np.testing.assert_array_equal(got, [0.0 - 4.0, 1.0, 2.0 + 6.0], err_msg=backend)


INT_BESIDE_PARAM = {  # a float op of an int value and a float param, as the language writes it
    "pow": "abs(size(C)) ^ p",
    "add": "abs(size(C)) + p",
    "mul": "abs(size(C)) * p",
    "div": "abs(size(C)) / p",
    "maximum": "max(abs(size(C)), p)",
    "atan2": "atan2(abs(size(C)), p)",
    "xlogy": "xlogy(p, abs(size(C)))",
    "logaddexp": "logaddexp(abs(size(C)), p)",
}


@pytest.mark.parametrize("op", sorted(INT_BESIDE_PARAM))
@pytest.mark.parametrize("backend", TARGETS)
def test_an_int_beside_a_float_param_computes_in_the_inputs_float_dtype(op, backend):
    """abs(size(C)) ^ p with p passed as a Python float, baked, or a 0-d float64 tensor: the
    float64 value (numpy on float64: 2 ^ 0.5 = 1.4142135623730951). torch computed int64 ** 0.5
    in its default float32 (1.4142135381698608), a Python-number param does not promote an int
    tensor to the inputs' dtype (difffuzz, seed 7)."""
    import jax.numpy as jnp
    import torch

    spec = lossdsl.parse(
        f"loss t(x: float[B, C]) {{\n    param p: float = 0.5\n    x + {INT_BESIDE_PARAM[op]}\n}}\n"
    )
    x = np.zeros((1, 2))
    want = OPS[op].ref(*((np.float64(0.5), np.float64(2.0)) if op == "xlogy" else (2.0, 0.5)))
    tensor = {"torch": lambda v: torch.tensor(v, dtype=torch.float64), "jax": jnp.asarray}
    forms = [({"p": 0.5}, {}), ({}, {"p": 0.5})]
    if backend in tensor:
        forms.append(({}, {"p": tensor[backend](0.5)}))
    for baked, passed in forms:
        got = call(backend, spec.compile(backend, **baked), {"x": x}, "float64", reduction="none",
                   **passed)  # fmt: skip
        np.testing.assert_allclose(got, np.full((1, 2), want), rtol=2e-16, err_msg=f"{baked}")


@pytest.mark.parametrize("backend", TARGETS)
def test_a_scalar_pick_of_a_softmax_over_its_only_dim(backend):
    """softmax(v, over=D)[argmax(u, over=D)]: the pick becomes a cross_entropy of a [D] value at
    a 0-d index, whose templates had no axis for it (KeyError 'k' in codegen; difffuzz, seed
    368778). Expected: numpy on the same numbers."""
    spec = lossdsl.parse(
        "loss t(z: float[B, D], u: float[D]) {\n"
        "    softmax(sum(z, over=B), over=D)[argmax(u, over=D)]"
        " + log_softmax(u, over=D)[argmax(u, over=D)]\n}\n"
    )
    rng = np.random.default_rng(3)
    z, u = rng.standard_normal((3, 4)), rng.standard_normal(4)
    e = np.exp(z.sum(0) - z.sum(0).max())
    k = int(np.argmax(u))
    want = e[k] / e.sum() + (u[k] - u.max() - np.log(np.exp(u - u.max()).sum()))
    got = call(backend, spec.compile(backend), {"z": z, "u": u}, "float64")
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("backend", TARGETS)
def test_order_ops_break_ties_stably(backend):
    """Equal entries keep their order along the dim: sort by a key with ties (ascending and
    descending), rank and topk. Expected, by hand for k = [2, 1, 2, 1] and v = [0, 1, 2, 3]:
    ascending by k -> [1, 3, 0, 2]; descending -> [0, 2, 1, 3] (the earlier 2 first); ranks
    [2, 0, 3, 1]; the top 1 is position 0, the top 3 positions 0, 1, 2."""
    spec = lossdsl.parse(
        "loss t(v: float[N], k: float[N]) {\n"
        "    sort(v, over=N, by=k) + 10 * sort(v, over=N, by=k, descending=true)"
        " + 100 * float(rank(k, over=N)) + 1000 * float(topk(k, 1, over=N))"
        " + 10000 * float(topk(k, 3, over=N))\n}\n"
    )
    data = {"v": np.array([0.0, 1.0, 2.0, 3.0]), "k": np.array([2.0, 1.0, 2.0, 1.0])}
    want = (
        np.array([1, 3, 0, 2]) + 10 * np.array([0, 2, 1, 3]) + 100 * np.array([2, 0, 3, 1])
        + 1000 * np.array([1, 0, 0, 0]) + 10000 * np.array([1, 1, 1, 0])
    )  # fmt: skip
    got = call(backend, spec.compile(backend), data, "float64", reduction="none")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", TARGETS)
def test_quantile_and_median_match_numpy(backend):
    """quantile(x, q) at literal and param q, median over odd and even sizes: np.quantile and
    np.median (numpy 2, method="linear"); a param q outside [0, 1] gives NaN (np.quantile
    raises)."""
    spec = lossdsl.parse(
        "loss t(x: float[B, N], y: float[B, M]) {\n    param q: float = 0.3\n"
        "    quantile(x, q, over=N) + 10 * median(x, over=N) + 100 * quantile(y, 0.9, over=M)"
        " + 1000 * median(y, over=M)\n}\n"
    )
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 7)), rng.standard_normal((3, 4))
    for q in (0.0, 0.3, 0.5, 0.95, 1.0):
        want = (
            np.quantile(x, q, axis=1) + 10 * np.median(x, axis=1)
            + 100 * np.quantile(y, 0.9, axis=1) + 1000 * np.median(y, axis=1)
        )  # fmt: skip
        got = call(backend, spec.compile(backend), {"x": x, "y": y}, "float64", reduction="none",
                   q=q)  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-13, err_msg=f"{q=}")
    got = call(backend, spec.compile(backend), {"x": x, "y": y}, "float64", reduction="none",
               q=1.5)  # fmt: skip
    assert np.isnan(got).all()


@pytest.mark.parametrize("fn", ["median", "quantile"])
def test_quantile_and_median_leave_their_dim_unprimed_like_every_reduction(fn):
    # docs/language.md, "Primes": x' keeps the dims the enclosing reduction drops; median and
    # quantile drop over= like sum, so median(z', over=B) is the median over B of z [B, D'] (a
    # DimMismatch "cannot reduce over B: the operand is float[B', D']" before; difffuzz seed
    # 2553). Expected: np.median / np.quantile(q=0.9) over axis 0 (numpy 2).
    q = ", 0.9" if fn == "quantile" else ""
    spec = lossdsl.parse(f"loss t(z: float[B, D]) {{ sum({fn}(z'{q}, over=B), over=D') }}")
    z = np.random.default_rng(6).standard_normal((5, 3))
    want = (np.median(z, 0) if fn == "median" else np.quantile(z, 0.9, axis=0)).sum()
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), {"z": z}, "float64", reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-13, err_msg=backend)


# Gradients at kinks: where a function is not differentiable, each framework's autodiff picks a
# subgradient of its own (jax.grad(jnp.abs)(0.) is 1, torch.abs's backward sign(0) = 0), so the
# same loss trained in torch and in jax drifts apart at exact zeros (abs(x - x'), ties). lossdsl
# emits torch's choice on every backend. Expected values: torch 2.13's autograd on the torch
# module (abs'(0) = 0; ties of max/min reductions and maximum() split evenly; clamp at its bound
# keeps x's gradient; relu'(0) = 0), and the jax module must give the same. One case per
# kinked op of the op table, at its kink.
KINKS = {
    "abs": ("abs(x)", [[0.0, -0.0, 1.0]]),
    "relu": ("relu(x)", [[0.0, -1.0, 1.0]]),
    "max": ("max(x, over=N)", [[1.0, 1.0, 0.0]]),
    "min": ("min(x, over=N)", [[1.0, 0.0, 0.0]]),
    "maximum": ("max(x, 1.0 * x)", [[1.0, 0.0]]),
    "clamp": ("clamp(x, min=0, max=1)", [[0.0, 1.0, 0.5]]),
    "norm": ("norm(x, over=N)", [[0.0, 0.0]]),
    "norm_p": ("norm(x, over=N, p=3) + norm(x, over=N, p=1)", [[0.0, 0.0]]),
    "sort": ("sort(x, over=N) * arange(N)", [[1.0, 1.0, 0.5]]),
    "median": ("median(x, over=N)", [[1.0, 1.0, 1.0, 0.5]]),
    "max_pool": ("max_pool(x, 2, over=N)", [[1.0, 1.0, 0.5, 0.5]]),
    "smooth_l1": ("where(abs(x) < 1, 0.5 * x^2, abs(x) - 0.5)", [[1.0, -1.0, 0.0]]),
    "sign": ("sign(x) * x", [[0.0, 1.0]]),
    # torch.cummax's gradient goes to the latest tied entry (jax.lax.cummax's to the earliest)
    "cummax": ("cummax(x, over=N) * arange(N)", [[1.0, 1.0, 0.5, 1.0, 2.0, 2.0]]),
    "cummax_reverse": ("cummax(x, over=N, reverse=true) * arange(N)", [[2.0, 2.0, 1.0, 1.0]]),
    "cummax_nan": ("cummax(x, over=N) * arange(N)", [[1.0, 1.0, float("nan"), 3.0, 0.0]]),
}


@pytest.mark.parametrize("name", sorted(KINKS))
def test_gradients_at_kinks_are_torchs_on_every_backend(name):
    import jax
    import torch

    body, x = KINKS[name]
    spec = lossdsl.parse(f"loss k(x: float[B, N]) {{ {body} }}")
    x = np.array(x, dtype=np.float64)
    xt = torch.tensor(x, requires_grad=True)
    (want,) = torch.autograd.grad(spec.compile("torch")(xt, reduction="sum"), xt)
    jf = spec.compile("jax")
    got = jax.grad(lambda a: jf(a, reduction="sum"))(x)
    np.testing.assert_array_equal(np.asarray(got), want.numpy(), err_msg=name)
    if name == "abs":  # the documented convention itself
        np.testing.assert_array_equal(want.numpy(), [[0.0, 0.0, 1.0]])
    if name == "cummax":  # torch.cummax's indices [0, 1, 1, 3, 4, 5]: each the latest tie
        np.testing.assert_array_equal(want.numpy(), [[0.0, 3.0, 0.0, 3.0, 4.0, 5.0]])


def _ieee_pow(a: float, b: float) -> float:
    """C99 Annex F pow, as Python's math.pow implements it (a domain error is NaN, a pole or an
    overflow +-inf); at an exponent of +-0.5 the language means sqrt(a) and 1 / sqrt(a)
    (docs/language.md "Operators": NaN at -inf, where IEEE's pow gives +inf and 0)."""
    if abs(b) == 0.5 and a == -math.inf:
        return math.nan
    odd = math.isfinite(b) and b == int(b) and int(b) % 2 == 1
    if a == 0 and b < 0:  # C99 F.9.4.4: a pole, Python raises ValueError
        return math.copysign(math.inf, a) if odd else math.inf
    try:
        return math.pow(a, b)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.copysign(math.inf, a) if odd else math.inf


POW_BASES = [-math.inf, -2.0, -0.0, 0.0, 0.5, 2.0, math.inf, math.nan]
POW_EXPONENTS = [0.5, -0.5, 1.5, -1.5, 0.25, 2.0, 3.0, -1.0, -2.0, 0.0, math.inf, -math.inf]


@pytest.mark.parametrize("form", ["literal", "param", "tensor param", "tensor exponent"])
def test_pow_at_every_special_base_and_exponent_is_one_meaning_on_every_backend(form):
    """torch's and numpy's pow with a number exponent of 0.5 run sqrt (NaN at -inf), with a
    tensor exponent IEEE's pow (+inf); jnp.power is IEEE's everywhere: before, (-inf) ^ 0.5
    was NaN on numpy and torch and +inf on jax (found by scripts/difffuzz.py, seed 23209)."""
    import jax
    import torch

    a = np.array(POW_BASES)
    for b in POW_EXPONENTS:
        want = np.array([_ieee_pow(v, b) for v in POW_BASES])
        if form == "literal":
            lit = f"({b})" if math.isfinite(b) else ("(1 / 0)" if b > 0 else "(-1 / 0)")
            src, kw = f"loss p(a: float[N]) {{ a ^ {lit} }}", {}
        elif form == "tensor exponent":
            src, kw = "loss p(a: float[N], e: float[N]) { a ^ e }", {}
        else:
            src = "loss p(a: float[N]) { param e: float = 1\n a ^ e }"
            kw = {"e": b}
        spec = lossdsl.parse(src)
        for backend in ("numpy", "torch", "jax"):
            args = [a] + ([np.full_like(a, b)] if form == "tensor exponent" else [])
            kws = dict(kw)
            if backend == "torch":
                args = [torch.tensor(v) for v in args]
                if form == "tensor param":
                    kws["e"] = torch.tensor(b, dtype=torch.float64)
            elif backend == "jax":
                args = [jax.numpy.asarray(v) for v in args]
                if form == "tensor param":
                    kws["e"] = jax.numpy.asarray(b)
            got = np.asarray(spec.compile(backend)(*args, reduction="none", **kws))
            # rsqrt and IEEE's pow round differently (1 ulp); the specials must be exact
            np.testing.assert_allclose(got, want, rtol=3e-16, err_msg=f"{backend} {form} a ^ {b}")


def _logcumsumexp_grad(x, g):
    """d/dx of sum_j g_j L_j, L_j = log sum_{i<=j} e^{x_i}: sum_{j>=i} g_j softmax(x_{..j})_i,
    each softmax shifted by its own prefix's max, in float64 (NaN where the prefix is all -inf:
    undefined; not through L_j, whose rounding at 1e30 drops a log 2)."""
    n = len(x)
    out = np.zeros(n)
    with np.errstate(all="ignore"):
        for j in range(n):
            e = np.exp(x[: j + 1] - np.max(x[: j + 1]))
            out[: j + 1] += g[j] * e / e.sum()
    return out


def test_torch_logcumsumexp_fast_path_equals_torchs_own_on_every_special_row():
    """backends/torch_backend.py runs logcumsumexp on CPU as a float64 cumsum of exp(x - max)
    (CPU's torch.logcumsumexp is a scalar loop, most of list_mle's time), torch's own where a
    prefix underflows or +inf appears. Every row of 3 drawn from -inf, NaN, +inf, 0, +-1, -100,
    -700, +-1e30 (1000 rows, each alone, so that the fast path runs wherever it can), forward and
    reverse, float32 and float64: the value is torch.logcumsumexp's, and the gradient is the
    analytic one (a float64 sum of e^{x_i - L_j}) or, where that is not, torch's own, and right
    on at least every row where torch's is (torch's is 0 where it is 1 beside 1e30)."""
    import torch

    fwd = lossdsl.parse("loss l(x: float[B, N], g: float[B, N]) { logcumsumexp(x, over=N) * g }")
    rev = lossdsl.parse(
        "loss l(x: float[B, N], g: float[B, N]) { logcumsumexp(x, over=N, reverse=true) * g }"
    )
    vals = [-math.inf, math.nan, math.inf, 0.0, 1.0, -1.0, -100.0, -700.0, 1e30, -1e30]
    rows = np.array(list(itertools.product(vals, repeat=3)))
    g = np.random.default_rng(0).standard_normal(rows.shape)
    for dt, rtol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        for sp, flip in ((fwd, False), (rev, True)):
            assert "_logcumsumexp(" in sp.source("torch")
            fn = sp.compile("torch")
            ours_right = torch_right = 0
            for r, gr in zip(rows, g):
                x = torch.tensor([r], dtype=dt, requires_grad=True)
                gt = torch.tensor([gr], dtype=dt)
                got = fn(x, gt, reduction="none")
                (gx,) = torch.autograd.grad(got.sum(), x)
                xw = torch.tensor([r], dtype=dt, requires_grad=True)
                lw = torch.logcumsumexp(xw.flip(1) if flip else xw, 1)
                want = (lw.flip(1) if flip else lw) * gt
                (gw,) = torch.autograd.grad(want.sum(), xw)
                # a log-sum-exp is exact to the rounding of its largest term, |m| eps absolute
                # (log(1 + e^-100) is 0 here, log1p's 3.7e-44 in torch's)
                big = np.abs(r[np.isfinite(r)]).max(initial=0.0)
                atol = 4 * torch.finfo(dt).eps * (1 + big) * np.abs(gr).max()
                np.testing.assert_allclose(
                    got.detach(), want.detach(), rtol=rtol, atol=atol, err_msg=str(r)
                )
                xs = torch.tensor(r, dtype=dt).double().numpy()
                exact = (
                    _logcumsumexp_grad(xs[::-1].copy(), gr[::-1].copy())[::-1]
                    if flip
                    else _logcumsumexp_grad(xs, gr)
                )
                ok = np.allclose(gx[0].numpy(), exact, rtol=rtol * 100, atol=1e-30, equal_nan=True)
                own = np.allclose(gx[0].numpy(), gw[0].numpy(), rtol=rtol * 10, equal_nan=True)
                assert ok or own, (r, gx, exact, gw)
                ours_right += ok
                torch_right += np.allclose(
                    gw[0].numpy(), exact, rtol=rtol * 100, atol=1e-30, equal_nan=True
                )
            assert ours_right >= torch_right and ours_right > 600, (ours_right, torch_right)


@pytest.mark.parametrize("body", ["median(v, over=B)", "quantile(v, sum(x, over=C), over=B)"])
def test_a_discarded_quantile_over_an_empty_dim_runs(body):
    """where(pf, 1, median(v, over=B)) at B = 0 with pf = true: the too-small check rightly
    skips the untaken branch (lossdsl/empty.py), so quantile's helper runs on no entries and
    must give a value (NaN) rather than raise IndexError, on every backend (scripts/difffuzz.py,
    seed 31337, crash/torch-chunked). Expected: 1, the taken branch, as the loss says."""
    spec = lossdsl.parse(
        "loss lf(v: float[B], x: float[C]) {\n    param pf: bool = false\n"
        f"    where(pf, 1, {body}) + 0 * sum(x, over=C)\n}}\n"
    )
    data = {"v": np.zeros(0), "x": np.array([0.25, 0.5])}
    for backend in ("numpy", "torch", "jax"):
        got = call(backend, spec.compile(backend), data, "float64", pf=True, reduction="sum")
        assert float(got) == 1.0, backend
        with pytest.raises(lossdsl.InputError, match="quantile over B"):
            call(backend, spec.compile(backend), data, "float64", pf=False, reduction="sum")
    for backend in ("torch", "jax"):
        g = grads(backend, spec.compile(backend), data, ["x"], "float64", pf=True, reduction="sum")
        np.testing.assert_array_equal(g["x"], [0.0, 0.0], err_msg=backend)


# Each op with a size need (lossdsl/empty.py) at a size that needs it, in an untaken branch
DISCARDED_AT_TOO_SMALL = {
    "median": ("v: float[B]", "median(v, over=B)", {"v": np.zeros(0)}),
    "quantile": ("v: float[B]", "quantile(v, 0.25, over=B)", {"v": np.zeros(0)}),
    "max": ("v: float[B]", "max(v, over=B)", {"v": np.zeros(0)}),
    "logsumexp": ("v: float[B]", "logsumexp(v, over=B)", {"v": np.zeros(0)}),
    "var": ("v: float[B]", "var(v, over=B, ddof=1)", {"v": np.zeros(1)}),
    "argmax": ("v: float[B]", "v[argmax(v, over=B)] * 0 + max(v, over=B)", {"v": np.zeros(0)}),
    "diff": ("v: float[B]", "sum(diff(v, over=B), over=B)", {"v": np.zeros(0)}),
    "rfft_mag": ("v: float[T]", "sum(rfft_mag(v, over=T), over=T)", {"v": np.zeros(0)}),
    "avg_pool": ("v: float[H]", "sum(avg_pool(v, 2, over=H), over=H)", {"v": np.zeros(1)}),
    "max_pool": ("v: float[H]", "sum(max_pool(v, 2, over=H), over=H)", {"v": np.zeros(1)}),
    "blur": ("v: float[H]", "sum(blur(v, over=H, size=3), over=H)", {"v": np.zeros(2)}),
    "box": ("v: float[H]", "sum(box(v, 3, over=H), over=H)", {"v": np.zeros(2)}),
}


@pytest.mark.parametrize("name", DISCARDED_AT_TOO_SMALL)
def test_an_untaken_branch_runs_at_a_size_its_op_cannot_use(name):
    """where(pf, 1, op(v)) with pf = true at a size op needs more than: the too-small check
    rightly skips the untaken branch (lossdsl/empty.py), and straight-line code still runs the
    op, so every op must give some value there (NaN or an empty result), not raise. Expected:
    1, the taken branch. (difffuzz seed 31337 found median; the rest by this table.)"""
    decl, body, data = DISCARDED_AT_TOO_SMALL[name]
    spec = lossdsl.parse(
        f"loss lf({decl}) {{\n    param pf: bool = false\n    where(pf, 1, {body})\n}}\n"
    )
    for backend in ("numpy", "torch", "jax"):
        got = call(backend, spec.compile(backend), data, "float64", pf=True, reduction="sum")
        assert float(got) == 1.0, backend


# Every op along one dim, as a named dim N and as a variadic *S; over *S the entries go in
# x.reshape(B, -1)'s row-major order (docs/language.md, "Order along a dim")
ALONG_ONE_DIM = [
    "cumsum(x, over={d})",
    "cumsum(x, over={d}, reverse=true)",
    "cumprod(x, over={d})",
    "cummax(x, over={d}, reverse=true)",
    "logcumsumexp(x, over={d})",
    "sort(x, over={d})",
    "sort(x, over={d}, descending=true, by=y)",
    "float(rank(x, over={d})) * x",
    "float(topk(x, 2, over={d})) * x",
    "shift(x, 2, over={d}, fill=-1)",
    "shift(x, -1, over={d})",
    "expand(median(x, over={d}), {d})",
    "expand(quantile(x, 0.3, over={d}), {d})",
]


@pytest.mark.parametrize("expr", ALONG_ONE_DIM)
@pytest.mark.parametrize("shape", [(2,), (2, 3), (1, 3, 2), (1,)])
def test_every_op_along_a_variadic_dim_runs_in_row_major_order(expr, shape):
    """op(x, over=S) for x: float[B, *S] equals op(x, over=N) on x.reshape(B, -1) (each op in
    the table above, S of 1 to 3 axes), values and gradients, on every backend. Expected: the
    named-dim loss, which tests/test_ops.py's op table checks against numpy and the references
    named there; the numpy reference interpreter and each backend both run the *S form."""
    named = lossdsl.parse(
        f"loss fn(x: float[B, N], y: float[B, N]) {{\n    sum({expr.format(d='N')}, over=N)\n}}\n"
    )
    var = lossdsl.parse(
        f"loss fv(x: float[B, *S], y: float[B, *S]) {{\n    sum({expr.format(d='S')}, over=S)\n}}\n"
    )
    rng = np.random.default_rng(len(shape) * 7 + len(expr))
    x, y = rng.normal(size=(3, *shape)), rng.normal(size=(3, *shape))
    flat = {"x": x.reshape(3, -1), "y": y.reshape(3, -1)}
    want = call("numpy", named.compile("numpy"), flat, "float64", reduction="none")
    for backend in ("numpy", "torch", "jax"):
        got = call(backend, var.compile(backend), {"x": x, "y": y}, "float64", reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=backend)
    for backend in ("torch", "jax"):
        gw = grads(backend, named.compile(backend), flat, ["x"], "float64", reduction="sum")
        gv = grads(
            backend, var.compile(backend), {"x": x, "y": y}, ["x"], "float64", reduction="sum"
        )
        np.testing.assert_allclose(gv["x"].reshape(3, -1), gw["x"], rtol=1e-12, err_msg=backend)


INT_BRANCH, FLOAT_BRANCH = "max(size(B), 1)", "w[argmax(w, over=C)]"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("cond", ["size(C) < size(B)", "pf"])
@pytest.mark.parametrize("first", [INT_BRANCH, FLOAT_BRANCH])
def test_a_where_on_a_python_bool_promotes_an_int_branch(backend, cond, first):
    """where(c, int, float) with c a Python bool at run time (a size comparison, a bool param)
    is float whichever branch is taken: torch's softplus of the int branch raised
    NotImplementedError for 'Long' (scripts/difffuzz.py, crash/torch). Expected: softplus by
    its definition, log(1 + e^v), of the branch taken."""
    from helpers import call

    other = FLOAT_BRANCH if first == INT_BRANCH else INT_BRANCH
    spec = lossdsl.parse(
        "loss f(x: float[B, C], w: float[C]) {\n    param pf: bool = true\n"
        f"    softplus(where({cond}, {first}, {other}))\n}}\n"
    )
    w = np.array([0.5, 2.0])
    for b, taken in ((3, True), (1, False)):  # size(C) = 2 < size(B) at B = 3
        got = call(backend, spec.compile(backend), {"x": np.ones((b, 2)), "w": w}, "float64",
                   reduction="none", pf=taken)  # fmt: skip
        v = (float(b) if first == INT_BRANCH else 2.0) if taken else (
            2.0 if first == INT_BRANCH else float(b))  # fmt: skip
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(float(got), math.log1p(math.exp(v)), rtol=1e-15)
