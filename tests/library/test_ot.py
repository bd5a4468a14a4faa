"""Optimal transport: the entropic Sinkhorn cost against POT (PythonOT 0.9.x,
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
