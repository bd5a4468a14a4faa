"""Loops: `scan` along a named dim against the frameworks' own running reductions (torch.cumsum,
torch.cumprod, torch.cummax, torch.logcumsumexp through the spec language's cumsum & co., and
numpy's), forwards and backwards, every backend, values and gradients, under torch.compile and
jax.jit, at T = 1 and T = 0; `repeat` with checkpoint=true against the plain loop."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import call, grads, rel_err

import lossdsl
from lossdsl.codegen import TARGETS

# running reduction -> (its scan step from the state h and the slice xt, its initial state
# from x: float[B, T]); the first step of a running reduction is x[0] itself
STEPS = {
    "cumsum": ("h + xt", "0 * sum(x, over=T)"),
    "cumprod": ("h * xt", "0 * sum(x, over=T) + 1"),
    "cummax": ("max(h, xt)", "min(x, over=T)"),
    "logcumsumexp": ("logaddexp(h, xt)", "0 * sum(x, over=T) - inf"),
}
NUMPY = {
    "cumsum": np.cumsum,
    "cumprod": np.cumprod,
    "cummax": np.maximum.accumulate,
    "logcumsumexp": np.logaddexp.accumulate,
}


def _specs(name, reverse):
    step, init = STEPS[name]
    rev = "true" if reverse else "false"
    scan = lossdsl.parse(
        "loss s(x: float[B, T], w: float[T, B]) {\n"
        f"    let c = scan(x, over=T, init={init}, reverse={rev}) (h, xt) {{\n"
        f"        {step}\n    }}\n"
        "    sum(c * w, over=T)\n}\n"
    )
    builtin = lossdsl.parse(
        "loss b(x: float[B, T], w: float[T, B]) {\n"
        f"    sum({name}(x, over=T, reverse={rev}) * w, over=T)\n}}\n"
    )
    return scan, builtin


@pytest.mark.parametrize(
    "name,reverse,t", list(itertools.product(STEPS, (False, True), (1, 2, 7))), ids=str
)
def test_scan_is_the_running_reduction(name, reverse, t):
    """scan with the running reduction's step equals the framework's own cumsum / cumprod /
    cummax / logcumsumexp (values on every backend against numpy's accumulate, gradients of
    torch and jax against the built-in op's), weighted by a random w so every entry counts."""
    scan, builtin = _specs(name, reverse)
    rng = np.random.default_rng(t + 10 * reverse)
    data = {"x": rng.standard_normal((3, t)), "w": rng.standard_normal((t, 3))}
    x = data["x"][:, ::-1] if reverse else data["x"]
    run = NUMPY[name](x, axis=1)
    run = run[:, ::-1] if reverse else run
    want = (run * data["w"].T).sum(1)
    for backend in TARGETS:
        got = call(backend, scan.compile(backend), data, "float64", reduction="none")
        assert rel_err(got, want) <= 1e-12, backend
    for backend in ("torch", "jax"):
        g = grads(backend, scan.compile(backend), data, ["x", "w"], "float64")
        gb = grads(backend, builtin.compile(backend), data, ["x", "w"], "float64")
        for k in g:
            assert rel_err(g[k], gb[k]) <= 1e-12, (backend, k)


def test_scan_over_no_entries_is_an_empty_stack():
    """T = 0: no step runs; the stacked states are [0, B] and their sum over T is 0 (as
    torch.cumsum of a [B, 0] tensor summed)."""
    scan, _ = _specs("cumsum", False)
    data = {"x": np.zeros((3, 0)), "w": np.zeros((0, 3))}
    for backend in TARGETS:
        got = call(backend, scan.compile(backend), data, "float64", reduction="none")
        np.testing.assert_array_equal(got, np.zeros(3), err_msg=backend)


def test_discounted_returns_and_two_states():
    """G_t = r_t + gamma G_{t+1} (Sutton & Barto 2018, eq. 3.9), a reverse scan, and a scan
    with two states and two sequences (a running mean: total and count), against numpy loops
    written from those definitions."""
    spec = lossdsl.parse(
        "loss ret(r: float[B, T], m: float[B, T]) {\n"
        "    param gamma: float = 0.9\n"
        "    let g = scan(r, over=T, init=0 * sum(r, over=T), reverse=true) (g, rt) {\n"
        "        rt + gamma * g\n    }\n"
        "    let s, n = scan(r, m, over=T, init=(0 * sum(r, over=T), 0 * sum(m, over=T)))"
        " (s, n, rt, mt) {\n"
        "        (s + rt * mt, n + mt)\n    }\n"
        "    sum(g, over=T) + sum(s / (n + 1), over=T)\n}\n"
    )
    rng = np.random.default_rng(1)
    r, m = rng.standard_normal((2, 5)), (rng.random((2, 5)) < 0.6).astype(float)
    want = np.zeros(2)
    for b in range(2):
        g, tot, cnt = 0.0, 0.0, 0.0
        for t in reversed(range(5)):
            g = r[b, t] + 0.9 * g
            want[b] += g
        for t in range(5):
            tot, cnt = tot + r[b, t] * m[b, t], cnt + m[b, t]
            want[b] += tot / (cnt + 1)
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), {"r": r, "m": m}, "float64", reduction="none")
        assert rel_err(got, want) <= 1e-12, backend


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("n,m", [(4, 3), (1, 5), (5, 1)])
def test_nested_scan_is_the_two_dim_prefix_sum(n, m, rev):
    """A scan whose step is a scan (the pattern of specs/soft_dtw.loss): the outer one over N
    carries the previous row [B, M], the inner one over M (forward or reverse) carries the
    running sum along the row and reads the outer state's slices. The result is the 2-D prefix
    sum S_ij = sum_{i' <= i, j' <= j} x (j' >= j reversed), numpy's cumsum along both axes;
    the gradient of sum(w * S) w.r.t. x is w's suffix sum along both (numpy again)."""
    spec = lossdsl.parse(
        "loss p2(x: float[B, N, M], w: float[B, N, M]) {\n"
        "    let rows = scan(x, over=N, init=0 * sum(x, over=N)) (up, xi) {\n"
        "        let z = 0 * sum(xi, over=M)\n"
        f"        let r, c = scan(xi, up, over=M, init=(z, z), reverse={str(rev).lower()})"
        " (r, c, xij, upj) {\n"
        "            (r + xij, upj + r + xij)\n        }\n"
        "        c\n    }\n"
        "    sum(w * rows, over=(N, M))\n}\n"
    )
    rng = np.random.default_rng(n * 10 + m)
    x, w = rng.standard_normal((3, n, m)), rng.standard_normal((3, n, m))

    def csum(a, axis, reverse):
        return np.flip(np.cumsum(np.flip(a, axis), axis), axis) if reverse else np.cumsum(a, axis)

    want = (w * csum(csum(x, 1, False), 2, rev)).sum(axis=(1, 2))
    gwant = csum(csum(w, 1, True), 2, not rev)
    for backend in TARGETS:
        fn = spec.compile(backend)
        got = call(backend, fn, {"x": x, "w": w}, "float64", reduction="none")
        assert rel_err(got, want) <= 1e-12, backend
        if backend != "numpy":
            g = grads(backend, fn, {"x": x, "w": w}, ["x"], "float64")["x"]
            assert rel_err(g, gwant / 3) <= 1e-12, backend  # reduction mean over B = 3


def test_scan_runs_under_torch_compile_and_jax_jit():
    scan, _ = _specs("logcumsumexp", True)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((3, 6)), rng.standard_normal((6, 3))
    want = scan.compile("numpy")(x, w)
    got = torch.compile(scan.compile("torch"))(torch.tensor(x), torch.tensor(w))
    assert rel_err(got.numpy(), want) <= 1e-12
    fn = jax.jit(jax.value_and_grad(scan.compile("jax")))  # float64: tests/conftest.py
    v, g = fn(jnp.asarray(x), jnp.asarray(w))
    assert rel_err(np.asarray(v), want) <= 1e-12 and g.shape == (3, 6)


def test_repeat_checkpoint_gives_the_same_value_and_gradient():
    """checkpoint=true recomputes each step in the backward pass: the same numbers as the
    plain loop (power iteration for the top singular value, against numpy.linalg.norm(a, 2))."""
    body = (
        "    let g = sum(a * prime(a, N), over=M)\n"
        "    let v = repeat(30, init=sum(a, over=M) * 0 + 1{ck}) (v) {{\n"
        "        let w = sum(g * prime(v, N), over=N')\n        w / sqrt(sum(w * w))\n    }}\n"
        "    sqrt(sum(v * sum(g * prime(v, N), over=N')))\n"
    )
    plain, ckpt = (
        lossdsl.parse("loss p(a: float[N, M]) {\n" + body.format(ck=c) + "}\n")
        for c in ("", ", checkpoint=true")
    )
    a = np.random.default_rng(3).standard_normal((5, 3))
    assert abs(plain.compile("numpy")(a) - np.linalg.norm(a, 2)) <= 1e-10
    for backend in ("torch", "jax"):
        g1 = grads(backend, plain.compile(backend), {"a": a}, ["a"], "float64")["a"]
        g2 = grads(backend, ckpt.compile(backend), {"a": a}, ["a"], "float64")["a"]
        assert rel_err(g2, g1) <= 1e-12, backend
    assert "checkpoint" in ckpt.source("torch") and "jax.checkpoint" in ckpt.source("jax")


def test_scan_backward_work_is_linear_in_t():
    """The torch loop takes its per-step slices from one unbind before the loop: a per-step
    select's backward writes a full-size zero gradient each step, T^2 work (ctc at T = 200 spent
    2 s in fill_ and add_ that way). Counted as the elements the backward pass allocates, by
    torch.profiler: at T = 400 about twice T = 200, not four times."""
    from torch.profiler import profile

    scan, _ = _specs("cumsum", False)
    fn = scan.compile("torch")

    def allocated(t):
        x = torch.randn(3, t, requires_grad=True)
        out = fn(x, torch.randn(t, 3))
        with profile(profile_memory=True) as p:
            out.backward()
        return sum(max(ev.cpu_memory_usage, 0) for ev in p.key_averages())

    small, big = allocated(200), allocated(400)
    assert big < 3 * small, (small, big)
    assert "unbind(" in scan.source("torch") and ".select(" not in scan.source("torch")


def test_a_loop_that_some_reductions_need_runs_in_each_branch_that_needs_it():
    """The chunked schedule's row function needs the repeat in its "sum" and "mean" branches
    only: its state was named in the first branch and read, unbound, in the second
    (UnboundLocalError; scripts/difffuzz.py, crash/torch-chunked). Compared with the plain
    schedule, which is compared with numpy throughout this suite."""
    spec = lossdsl.parse(
        "loss f(x: float[B, C], g: float[B, C, *S]) {\n"
        "    let a = repeat(2, init=sum(g, over=(B, C))) (s) { s * 0.5 }\n"
        "    reduce mean by float((a > expand(sum(g, over=(B, C)), B)) | (g > a)) empty -1\n"
        "    g\n}\n"
    )
    rng = np.random.default_rng(0)
    x, g = torch.tensor(rng.standard_normal((2, 3))), torch.tensor(rng.standard_normal((2, 3, 4)))
    for red in ("sum", "mean"):
        want = spec.compile("torch")(x, g, reduction=red)
        got = spec.compile("torch", schedule="chunked")(x, g, reduction=red)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("b", [0, 2])
def test_a_reduction_in_a_body_needs_its_dim_even_when_the_loop_takes_no_step(backend, b):
    """README, "Edge cases": a logsumexp over D = 0 is an InputError naming D; inside a loop's
    body too, whether the loop takes steps (B = 2) or none (B = 0, n = 0). The hoist pass moves
    a body's invariant logsumexp out of the loop, so this keeps the answer the same either way
    (scripts/difffuzz.py found the B = 0 case: InputError after hoisting, a value before)."""
    scan = lossdsl.parse(
        "loss f(v: float[B], u: float[D]) {\n"
        "    let a = scan(v, over=B, init=0.0) (h, vt) { h + vt + logsumexp(u, over=D) }\n"
        "    sum(a, over=B)\n}\n"
    )
    rep = lossdsl.parse(
        "loss f(v: float[B], u: float[D]) {\n"
        "    let a = repeat(size(B), init=v) (h) { h + logsumexp(expand(u, B) + h, over=D) }\n"
        "    sum(a, over=B)\n}\n"
    )
    for spec in (scan, rep):
        with pytest.raises(lossdsl.InputError, match="dim D has size 0"):
            call(backend, spec.compile(backend), {"v": np.ones(b), "u": np.ones(0)}, "float64",
                 reduction="sum")  # fmt: skip
