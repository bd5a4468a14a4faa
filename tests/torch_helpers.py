"""Helpers the reference-comparison suites share (torch, float64)."""

from __future__ import annotations

import torch

import lossdsl


def compiled(name, backend="torch", **baked):
    """A shipped spec, compiled."""
    return lossdsl.load(name).compile(backend, **baked)


def assert_same(
    ours_fn, ref_fn, inputs: dict, wrt: list[str], rtol=1e-10, atol=1e-12, equal_nan=False
):
    """Values and gradients (w.r.t. `wrt`) of ours and the reference, both on float64 torch;
    equal_nan: a NaN must be NaN in both (a gradient undefined in the reference too)."""

    def run(fn):
        xs = {
            k: v.detach().clone().requires_grad_(k in wrt) if v.is_floating_point() else v
            for k, v in inputs.items()
        }
        out = fn(**xs)
        gs = torch.autograd.grad(out.sum(), [xs[k] for k in wrt]) if wrt else ()
        return out.detach(), gs

    (a, ga), (b, gb) = run(ours_fn), run(ref_fn)
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=gen(seed)) * scale


def logits_target(shape, seed=0, scale=3.0):
    g = gen(seed)
    b, c = shape
    return torch.randn(b, c, generator=g) * scale, torch.randint(0, c, (b,), generator=g)


# The shapes and reductions the spec-vs-reference suites (tests/library/) run on; the fixtures
# `shape`, `bd` and `reduction` of tests/library/conftest.py are parametrized over these.
SHAPES = [(8, 5), (33, 17)]  # (B, C): a small batch, and one with a prime B and many classes
BD = [(8, 5), (13, 17)]  # (B, D): batch and embedding width of the representation losses
REDUCTIONS = ["none", "sum", "mean"]


def reduce_(x, reduction):
    return {"none": x, "sum": x.sum(), "mean": x.mean()}[reduction]


def grad_of(fn, *xs):
    """fn(*xs) and its gradients (of the summed output) w.r.t. fresh copies of xs."""
    xs = [x.detach().clone().requires_grad_(True) for x in xs]
    out = fn(*xs)
    return out, torch.autograd.grad(out.sum(), xs, allow_unused=True)


def soft_targets(shape, seed):
    """Rows of a [B, C] target distribution (softmax of scaled normal logits)."""
    return torch.softmax(torch.randn(*shape, generator=gen(seed)) * 2, dim=1)


def assert_same_as_optax(ours_jax, optax_fn, inputs: dict, wrt: list[str], rtol=1e-10):
    """Values and gradients (jax.grad of the summed output) of lossdsl's JAX module and an optax
    function, on float64 numpy inputs."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    xs = {
        k: jnp.asarray(v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()
    }
    np.testing.assert_allclose(ours_jax(**xs), optax_fn(**xs), rtol=rtol, atol=1e-12)
    for k in wrt:
        g_ours = jax.grad(lambda v, k=k: jnp.sum(ours_jax(**{**xs, k: v})))(xs[k])
        g_ref = jax.grad(lambda v, k=k: jnp.sum(optax_fn(**{**xs, k: v})))(xs[k])
        np.testing.assert_allclose(g_ours, g_ref, rtol=rtol, atol=1e-12)
