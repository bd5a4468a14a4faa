"""Optimal transport: the entropic Sinkhorn cost and the debiased Sinkhorn divergence against
POT (PythonOT 0.9.x,
`ot.sinkhorn2(a, b, M, reg, method="sinkhorn_log", numItermax=n, stopThr=0)`: the log-domain
iteration run for exactly n steps, the transport cost <P, M> it returns, gradients by torch's
autodiff through POT's own loop). POT solves one problem per call; the spec's batch B is a loop
of POT calls here.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import call, grads
from torch_helpers import gen

import lossdsl

# (B problems, N source points, M target points)
PROBLEMS = [(3, 5, 4), (2, 9, 13)]


def _problem(shape, seed, zeros=False):
    """Squared-euclidean costs between random 2-D point clouds (POT's ot.dist, as its examples
    build them) and random histograms; `zeros` puts a zero weight in each a and b."""
    g = gen(seed)
    b, n, m = shape
    x, y = torch.randn(b, n, 2, generator=g), torch.randn(b, m, 2, generator=g)
    cost = torch.cdist(x, y) ** 2
    a, w = torch.rand(b, n, generator=g) + 0.1, torch.rand(b, m, generator=g) + 0.1
    if zeros:
        a[:, 0] = 0.0
        w[:, -1] = 0.0
    return {"cost": cost, "a": a / a.sum(1, keepdim=True), "b": w / w.sum(1, keepdim=True)}


def _pot(data, reg, n_iters):
    """POT's value per problem and torch autograd's gradient of their sum w.r.t. each input."""
    import ot

    leaves = {k: v.clone().requires_grad_() for k, v in data.items()}
    vals = torch.stack(
        [
            ot.sinkhorn2(
                leaves["a"][i], leaves["b"][i], leaves["cost"][i], reg,
                method="sinkhorn_log", numItermax=n_iters, stopThr=0.0,
            )
            for i in range(data["cost"].shape[0])
        ]
    )  # fmt: skip
    vals.sum().backward()
    # no gradient reaches a and b when no step ran (the plan is exp(-C / reg)): zero
    zero = {k: torch.zeros_like(v) for k, v in leaves.items()}
    return vals.detach().numpy(), {
        k: (v.grad if v.grad is not None else zero[k]).numpy() for k, v in leaves.items()
    }


@pytest.mark.parametrize("shape", PROBLEMS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reg,n_iters", [(0.1, 100), (1.0, 7), (0.05, 0)])
def test_sinkhorn_matches_pot(shape, reg, n_iters):
    """Value per problem (reduction="none") and gradients of the sum w.r.t. cost, a and b on
    every backend, float64, at several regularizations and step counts (0 steps: the plan of
    the initial zero potentials, exp(-C / reg))."""
    data = _problem(shape, 5 + n_iters)
    want, gwant = _pot(data, reg, n_iters)
    spec = lossdsl.load("sinkhorn")
    inputs = {k: v.numpy() for k, v in data.items()}
    for backend in ("numpy", "torch", "jax"):
        fn = spec.compile(backend)
        got = call(backend, fn, inputs, "float64", reduction="none", reg=reg, n_iters=n_iters)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=backend)
        if backend == "numpy":
            continue
        g = grads(backend, fn, inputs, list(inputs), "float64", reduction="sum", reg=reg,
                  n_iters=n_iters)  # fmt: skip
        for k in inputs:
            np.testing.assert_allclose(g[k], gwant[k], rtol=1e-8, atol=1e-12, err_msg=(backend, k))


def test_sinkhorn_zero_weights_match_pot():
    """A zero weight in a and in b (a point with no mass): POT's log-domain potentials are -inf
    there, its value is finite and its gradient w.r.t. cost is finite; its gradient w.r.t. that
    weight is NaN (d log a / da at 0 times a zero plan entry). The spec gives the same."""
    data = _problem((2, 6, 5), 31, zeros=True)
    want, gwant = _pot(data, 0.1, 50)
    fn = lossdsl.load("sinkhorn").compile("torch")
    leaves = {k: v.clone().requires_grad_() for k, v in data.items()}
    got = fn(**leaves, reduction="none", n_iters=50)
    got.sum().backward()
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10)
    assert np.all(np.isfinite(want))
    for k, v in leaves.items():
        np.testing.assert_array_equal(np.isnan(v.grad.numpy()), np.isnan(gwant[k]), err_msg=k)
        ok = ~np.isnan(gwant[k])
        np.testing.assert_allclose(v.grad.numpy()[ok], gwant[k][ok], rtol=1e-8, atol=1e-14)


def test_sinkhorn_one_point_each_side():
    """N = M = 1: the only plan moves all the mass a = b = 1 from the point to the point, so the
    cost is C itself whatever reg and n_iters (the marginal constraints leave one feasible plan)."""
    fn = lossdsl.load("sinkhorn").compile("torch")
    cost = torch.tensor([[[2.5]], [[0.0]]])
    one = torch.ones(2, 1)
    for reg, n in ((0.1, 100), (3.0, 1)):
        got = fn(cost, one, one, reg=reg, n_iters=n, reduction="none")
        torch.testing.assert_close(got, torch.tensor([2.5, 0.0]))


def test_sinkhorn_runs_one_loop_not_unrolled_steps():
    """The IR holds one `repeat` whose body is a nested program (two logsumexp steps), whatever
    n_iters: the generated torch module is a Python for loop, the jax one lax.fori_loop."""
    spec = lossdsl.load("sinkhorn")
    prog = spec.program()
    loops = [e for e in prog.eqns if e.op == "repeat"]
    assert len(loops) == 2  # one eqn per carried value (u, v), sharing one body
    body = dict(loops[0].attrs)["body"]
    assert [e.op for e in body.eqns].count("logsumexp") == 2
    assert "for " in spec.source("torch")
    assert "jax.lax.fori_loop" in spec.source("jax")


# --- Debiased Sinkhorn divergence (specs/sinkhorn_divergence.loss) against POT 0.9.x: the
# three sinkhorn2(method="sinkhorn_log", stopThr=0) values on ot.dist (squared euclidean) costs,
# composed as W_xy - (W_xx + W_yy) / 2, gradients by torch autograd through POT's loops; and
# POT's own ot.bregman.empirical_sinkhorn_divergence (which returns max(0, S)).


def _clouds(shape, seed, shift=0.5):
    """Two random point clouds in D dims (y shifted, so S > 0) with random weights."""
    g = gen(seed)
    b, n, m, d = shape
    x, y = torch.randn(b, n, d, generator=g), torch.randn(b, m, d, generator=g) + shift
    a, w = torch.rand(b, n, generator=g) + 0.1, torch.rand(b, m, generator=g) + 0.1
    return {"x": x, "y": y, "a": a / a.sum(1, keepdim=True), "b": w / w.sum(1, keepdim=True)}


def _pot_divergence(data, reg, n_iters):
    import ot

    leaves = {k: v.clone().requires_grad_() for k, v in data.items()}

    def w(c, p, q):
        return ot.sinkhorn2(p, q, c, reg, method="sinkhorn_log", numItermax=n_iters, stopThr=0.0)

    vals = []
    for i in range(data["x"].shape[0]):
        x, y, a, b = (leaves[k][i] for k in ("x", "y", "a", "b"))
        wxy, wxx, wyy = w(ot.dist(x, y), a, b), w(ot.dist(x, x), a, a), w(ot.dist(y, y), b, b)
        vals.append(wxy - (wxx + wyy) / 2)
    vals = torch.stack(vals)
    vals.sum().backward()
    return vals.detach().numpy(), {k: v.grad.numpy() for k, v in leaves.items()}


DIV_PROBLEMS = [(3, 5, 7, 2), (2, 8, 4, 3), (2, 1, 6, 2)]


# each problem once, each (reg, n_iters) once: three POT solves per problem and three
# backends made the product of the two the slowest test of the suite
@pytest.mark.parametrize(
    "shape,reg,n_iters",
    [(s, *r) for s, r in zip(DIV_PROBLEMS, [(0.1, 100), (1.0, 7), (0.05, 300)])],
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
def test_sinkhorn_divergence_matches_pot(shape, reg, n_iters):
    """Value per problem and gradients of the sum w.r.t. x, y, a and b on every backend,
    float64, against three POT sinkhorn2 solves composed as Feydy et al. 2019 eq. 8."""
    data = _clouds(shape, 3 + n_iters + shape[1])
    want, gwant = _pot_divergence(data, reg, n_iters)
    spec = lossdsl.load("sinkhorn_divergence")
    inputs = {k: v.numpy() for k, v in data.items()}
    for backend in ("numpy", "torch", "jax"):
        fn = spec.compile(backend)
        got = call(backend, fn, inputs, "float64", reduction="none", reg=reg, n_iters=n_iters)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=backend)
        if backend == "numpy":
            continue
        g = grads(backend, fn, inputs, list(inputs), "float64", reduction="sum", reg=reg,
                  n_iters=n_iters)  # fmt: skip
        for k in inputs:
            # an entry near 0 is a cancellation of terms as large as the largest entry:
            # the absolute tolerance is relative to that (reg=0.05, 300 steps: 1.4e-12 on 4)
            atol = 1e-11 * np.abs(gwant[k]).max()
            np.testing.assert_allclose(g[k], gwant[k], rtol=1e-8, atol=atol, err_msg=(backend, k))


@pytest.mark.parametrize("reg", [0.1, 0.5])
def test_sinkhorn_divergence_matches_pot_empirical(reg, reduction):
    """POT's one-call ot.bregman.empirical_sinkhorn_divergence(metric="sqeuclidean",
    method="sinkhorn_log", stopThr=0), every reduction of its per-problem values (positive
    here, so its max(0, S) clamp is inactive)."""
    import ot

    data = _clouds((3, 6, 5, 2), 41)
    per = np.array([
        ot.bregman.empirical_sinkhorn_divergence(
            data["x"][i], data["y"][i], reg, data["a"][i], data["b"][i],
            method="sinkhorn_log", numIterMax=80, stopThr=0.0, warn=False,
        ).item()
        for i in range(3)
    ])  # fmt: skip
    assert np.all(per > 0)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    got = lossdsl.load("sinkhorn_divergence").compile("torch")(
        **data, reg=reg, n_iters=80, reduction=reduction
    )
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


def test_sinkhorn_divergence_of_a_cloud_with_itself_is_zero():
    """S(a, a) = 0 by its definition (the three problems are one problem), on every backend.
    (Feydy et al. 2019's Theorem 1, S >= 0 with a = b a minimizer, holds for the entropic
    value with its entropy term; this convention's <P, C> has a nonzero gradient there.)"""
    data = _clouds((2, 6, 6, 2), 7, shift=0.0)
    data["y"], data["b"] = data["x"], data["a"]
    spec = lossdsl.load("sinkhorn_divergence")
    inputs = {k: v.numpy() for k, v in data.items()}
    for backend in ("numpy", "torch", "jax"):
        got = call(backend, spec.compile(backend), inputs, "float64", reduction="none", reg=0.2)
        np.testing.assert_allclose(got, 0.0, atol=1e-14, err_msg=backend)


def test_sinkhorn_divergence_runs_under_torch_compile_and_jax_jit():
    """torch.compile (it unrolls the three loops while tracing: 5 steps each) and jax.jit of
    value_and_grad (three lax.fori_loop), against three POT solves."""
    import jax
    import jax.numpy as jnp

    data = _clouds((2, 5, 4, 2), 23)
    want, gwant = _pot_divergence(data, 0.3, 5)
    spec = lossdsl.load("sinkhorn_divergence")
    got = torch.compile(spec.compile("torch"))(**data, reg=0.3, n_iters=5, reduction="sum")
    np.testing.assert_allclose(got.numpy(), want.sum(), rtol=1e-10)
    fn = jax.jit(
        jax.value_and_grad(spec.compile("jax"), argnums=(0, 1)),
        static_argnames=("reg", "n_iters", "reduction"),
    )
    args = [jnp.asarray(data[k].numpy()) for k in ("x", "y", "a", "b")]
    v, (gx, gy) = fn(*args, reg=0.3, n_iters=5, reduction="sum")
    np.testing.assert_allclose(np.asarray(v), want.sum(), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(gx), gwant["x"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gy), gwant["y"], rtol=1e-8, atol=1e-12)
