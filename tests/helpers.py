"""Test utilities: random valid inputs for any spec (from its declared types), the three
backends called alike, and a float64 finite-difference gradient of the numpy reference."""

from __future__ import annotations

import numpy as np

import lossdsl

# Dim sizes per "shape variant"; variadic dims get a tuple (several spatial axes).
SHAPES = [
    {"B": 4, "C": 5, "D": 3, "V": 2, "S": (3, 2)},
    {"B": 7, "C": 3, "D": 6, "V": 1, "S": (5,)},
    {"B": 2, "C": 9, "D": 2, "V": 3, "S": ()},
]


def input_types(spec: lossdsl.Spec, absent=frozenset()):
    return [(d.var.name, d.var.type) for d in spec._lowered(frozenset(absent)).inputs]


def random_inputs(spec: lossdsl.Spec, sizes: dict, rng: np.random.Generator, absent=frozenset()):
    """Inputs drawn from each declared type: normal floats, indices in range, few int labels (so
    that equal labels happen), targets in [0, 1] for float targets named target/teacher-less."""
    out = {}
    for name, t in input_types(spec, absent):
        shape = []
        for d in t.dims:
            n = sizes[d.name]
            shape += list(n) if isinstance(n, tuple) else [n]
        if t.of is not None:
            out[name] = rng.integers(0, sizes[t.of.name], size=shape)
        elif t.dtype == "int":
            out[name] = rng.integers(0, 3, size=shape)
        elif t.dtype == "bool":
            out[name] = rng.random(shape) < 0.5
        elif name in ("target", "weight", "pos_weight"):
            out[name] = rng.random(shape)
        else:
            out[name] = rng.standard_normal(shape)
    return out


def float_inputs(spec, absent=frozenset()):
    return [n for n, t in input_types(spec, absent) if t.dtype == "float" and t.of is None]


def call(backend: str, fn, inputs: dict, dtype, **kw):
    """Call a compiled loss on numpy inputs converted for `backend`; returns a numpy array."""
    if backend == "numpy":
        return np.asarray(fn(**inputs, **kw))
    if backend == "torch":
        import torch

        conv = {
            k: torch.tensor(v, dtype=getattr(torch, dtype)) if v.dtype.kind == "f" else torch.tensor(v)
            for k, v in inputs.items()
        }
        return fn(**conv, **kw).detach().numpy()
    import jax.numpy as jnp

    conv = {k: jnp.asarray(v, dtype=dtype) if v.dtype.kind == "f" else jnp.asarray(v) for k, v in inputs.items()}
    return np.asarray(fn(**conv, **kw))


def grads(backend: str, fn, inputs: dict, wrt: list[str], dtype, **kw) -> dict:
    """Gradient of the (scalar) loss w.r.t. each float input in `wrt`."""
    if backend == "torch":
        import torch

        conv = {}
        for k, v in inputs.items():
            if v.dtype.kind == "f":
                conv[k] = torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=k in wrt)
            else:
                conv[k] = torch.tensor(v)
        out = fn(**conv, **kw)
        if not out.requires_grad:  # e.g. onehot(i): nothing differentiable reaches the loss
            return {k: np.zeros(inputs[k].shape) for k in wrt}
        gs = torch.autograd.grad(out, [conv[k] for k in wrt], allow_unused=True)
        return {
            k: np.zeros(inputs[k].shape) if g is None else g.numpy() for k, g in zip(wrt, gs)
        }
    import jax
    import jax.numpy as jnp

    conv = {k: jnp.asarray(v, dtype=dtype) if v.dtype.kind == "f" else jnp.asarray(v) for k, v in inputs.items()}

    def f(diff):
        return fn(**{**conv, **diff}, **kw)

    g = jax.grad(f)({k: conv[k] for k in wrt})
    return {k: np.asarray(v) for k, v in g.items()}


def fd_grads(spec, absent, inputs: dict, wrt: list[str], h: float = 1e-6, **params) -> dict:
    """Central finite differences of the float64 numpy reference (mean reduction), with every
    stop_grad value held at its unperturbed value."""
    from lossdsl.backend import load_backend

    ref = load_backend("numpy")
    prog = spec.program(frozenset(absent))
    frozen: dict = {}
    ref.evaluate(prog, inputs, params, "mean", frozen)
    out = {}
    for k in wrt:
        x = inputs[k].astype(np.float64)
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            fp = float(ref.evaluate(prog, {**inputs, k: xp}, params, "mean", frozen))
            fm = float(ref.evaluate(prog, {**inputs, k: xm}, params, "mean", frozen))
            g[i] = (fp - fm) / (2 * h)
        out[k] = g
    return out


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(np.linalg.norm(b.ravel()), 1e-12)
    return float(np.linalg.norm((a - b).ravel()) / scale)
