"""Every op of the op table, on every backend, against the numpy reference (the op table's own
`ref` functions, evaluated in float64 by backends/numpy_ref.py). One tiny loss per op; the
test asserts that the op really survives the optimizer into the compiled program."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import call, rel_err

import lossdsl
from lossdsl.backend import ALIASES, load_backend
from lossdsl.ops import OPS

HEAD = "x: float[B, C], y: float[B, C], i: index[B] of C, m: bool[B, C], z: float[C, B]"

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
    "not": "where(!m, x, y)",
    "stop_grad": "stop_grad(x) * y",
    "to_float": "float(m) * x",
    "add": "x + y",
    "sub": "x - y",
    "mul": "x * y",
    "div": "x / y",
    "pow": "y ^ x",
    "maximum": "max(x, y) + max(x, 0.5)",
    "minimum": "min(x, y) + min(x, 0.5)",
    "xlogy": "xlogy(y, y)",
    "bce_logits": "softplus(x) - y * x",
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
    # made only by the library pass for torch: tests/test_library.py runs each one
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
}


def inputs(rng):
    b, c = 4, 3
    return {
        "x": rng.standard_normal((b, c)),
        "y": rng.uniform(0.5, 2.0, (b, c)),
        "i": rng.integers(0, c, b),
        "m": rng.random((b, c)) < 0.5,
        "z": rng.standard_normal((c, b)),
    }


def test_every_op_has_a_test_program():
    assert set(PROGRAMS) == set(OPS)


@pytest.mark.parametrize("backend", ["torch", "jax", "numpy"])
def test_every_backend_has_every_op(backend):
    """A backend that lacks a template for an op fails here, not at a user's compile."""
    target = load_backend(backend).TARGET
    ops = {
        op
        for op, d in OPS.items()
        if (d.kind != "collective" or target.shard is not None)
        and (d.kind != "library" or target.library_calls)
    }
    missing = sorted(ops - ALIASES - set(target.templates))
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


def test_fill_and_size():
    """An optional input that is not passed becomes a fill of its declared dims."""
    spec = lossdsl.parse(
        "loss t(x: float[B, C], w: float[C] = 2) {\n    sum(w * x, over=C) + w[0 * 0]\n}\n".replace(
            " + w[0 * 0]", ""
        )
    )
    prog = spec.program(frozenset({"w"}))
    data = {"x": np.random.default_rng(1).standard_normal((3, 4))}
    for backend in ("torch", "jax", "numpy"):
        got = call(backend, spec.compile(backend), data, "float64", reduction="none")
        np.testing.assert_allclose(got, 2 * data["x"].sum(1), rtol=1e-12)
    assert prog.inputs[0].var.name == "x" and len(prog.inputs) == 1


@pytest.mark.parametrize("op", ["eigvalsh", "softmax", "logsumexp", "gather", "contract"])
def test_op_gradients_agree_with_finite_differences(op):
    """Backward of the structural ops: torch and jax autograd against central differences of
    the float64 reference."""
    from helpers import fd_grads, grads

    spec = lossdsl.parse(f"loss g_{op}({HEAD}) {{\n    {PROGRAMS[op]}\n}}\n")
    data = inputs(np.random.default_rng(2))
    want = fd_grads(spec, frozenset(), data, ["x"])
    for backend in ("torch", "jax"):
        got = grads(backend, spec.compile(backend), data, ["x"], "float64")
        np.testing.assert_allclose(got["x"], want["x"], rtol=1e-6, atol=1e-8, err_msg=backend)


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
