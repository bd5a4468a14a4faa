"""Cross-backend equivalence (`lossdsl equiv`): values and gradients of a spec on torch and jax
against the float64 numpy reference, on random inputs drawn from the spec's declared types.
The test-suite uses the same samplers. torch and jax are imported only when called."""

from __future__ import annotations

import numpy as np

from lossdsl.codegen import REFERENCE, TARGETS, reference

SIZES = {"B": 4, "C": 5, "D": 3, "V": 2, "K": 3, "S": (3, 2)}


def input_types(spec, absent=frozenset()):
    return [(d.var.name, d.var.type) for d in spec._lowered(frozenset(absent)).inputs]


def _sample_float(rng, shape, lo: float, hi: float) -> np.ndarray:
    """Standard normal, or uniform inside a declared domain (away from its edges)."""
    if np.isfinite(lo) and np.isfinite(hi):
        pad = 0.05 * (hi - lo)
        return rng.uniform(lo + pad, hi - pad, shape)
    if np.isfinite(lo):
        return lo + rng.uniform(0.5, 2.0, shape)
    if np.isfinite(hi):
        return hi - rng.uniform(0.5, 2.0, shape)
    return rng.standard_normal(shape)


def _fitted(spec, sizes: dict, absent, params=None) -> dict:
    """`sizes`, and each dim it leaves out (3 by default) grown to the least size the loss
    accepts: ssim's 11-tap window needs H >= 11, ms_ssim's coarsest level ceil(H/16) >= 11. The
    sizes a caller gives stay (an edge-case test asks for B = 0 on purpose)."""
    from lossdsl.empty import empty_policy

    out = dict(sizes)
    prog = spec.program(frozenset(absent))
    values = {q.var.name: q.default for q in prog.params} | dict(params or {})
    for need in empty_policy(prog).needs:
        d, least = need.dim, need.least(values)  # (a window's size=k: at k's value)

        def size_of(by):
            return int(values.get(by[1:]) or 1) if by.startswith("$") else out.get(by, 3)

        if need.when is not None or d.fixed is not None or d.param is not None:
            continue
        if need.axes:  # a window over *S: each axis grown (one of 3 by default; 0 stays 0)
            axes = out.get(d.name, (3,))
            out[d.name] = tuple(
                next(n for n in range(k, k + 10_000) if d.size(n, size_of) >= least) if k else 0
                for k in (axes if isinstance(axes, tuple) else (axes,))
            )
            continue
        if d.name in sizes or d.variadic:
            continue
        n = out.get(d.name, 3)
        while d.size(n, size_of) < least:
            n += 1
        out[d.name] = n
    return _divisible(spec.program(frozenset(absent)), out, params or {})


def _divisible(prog, sizes: dict, params: dict) -> dict:
    """Each dim a split cuts grown to a multiple of its group size (rloo's N of the default
    num_generations = 2, prototypical's M of the C classes); an empty dim stays empty."""
    from lossdsl.ir import splits

    defaults = {q.var.name: q.default for q in prog.params} | dict(params)
    for dim, m, by in splits(prog):
        if dim.steps or dim.variadic:
            continue
        k = m * (
            int(defaults.get(by[1:]) or 2) if by.startswith("$") else sizes.get(by, 3) if by else 1
        )
        n = sizes.get(dim.name, 3)
        if n % k:
            sizes[dim.name] = n + k - n % k
    return sizes


class ExampleFn:
    """A smooth function of a function input's declared signature, the same on every backend:
    each argument x_i (its dims D_i, a *S flattened) becomes z_i = x_i tanh(a_i x_i) + b_i x_i,
    contracted with a fixed random W_i over the dims it drops and the result dims it lacks:
    y = sum_i einsum(z_i, W_i) over the result's dims R. Nonlinear (a second derivative for the
    double backward of a gradient penalty) and mixing entries (not elementwise). Called on
    numpy arrays; `.on(backend)` gives the torch or jax version."""

    dtype = np.dtype(object)  # neither float nor int to the samplers' `v.dtype.kind` tests
    shape = ()

    def __init__(self, decl, sizes: dict, rng: np.random.Generator):
        self.decl, self.sizes = decl, sizes
        self.ab = [tuple(rng.uniform(0.3, 1.2, 2)) for _ in decl.params]
        letters = {}

        def let(d):
            return letters.setdefault(d, "abcdefghijklmnopqrstuvwxyz"[len(letters)])

        r = decl.result.dims
        self.specs, self.ws = [], []
        for p in decl.params:
            wd = [d for d in p.dims if d not in r] + [d for d in r if d not in p.dims]
            shape = [self._n(d) for d in wd]
            self.ws.append(rng.standard_normal(shape) / np.sqrt(max(1, np.prod(shape[:1]))))
            lhs = "".join(map(let, p.dims)) + "," + "".join(map(let, wd))
            self.specs.append(lhs + "->" + "".join(map(let, r)))
        self.backend = "numpy"

    def _n(self, d) -> int:
        n = d.fixed or self.sizes.get(d.name, 3)
        return int(np.prod(n)) if isinstance(n, tuple) else int(n)

    def on(self, backend: str) -> ExampleFn:
        twin = object.__new__(ExampleFn)
        twin.__dict__.update(self.__dict__, backend=backend)
        return twin

    def __call__(self, *xs):
        if self.backend == "torch":
            import torch as xp

            asarray = lambda w, x: xp.as_tensor(w, dtype=x.dtype)  # noqa: E731
        elif self.backend == "jax":
            import jax.numpy as xp

            asarray = lambda w, x: xp.asarray(w, dtype=x.dtype)  # noqa: E731
        else:
            xp, asarray = np, lambda w, x: np.asarray(w, dtype=np.float64)  # noqa: E731
        y, axes = 0.0, {}  # axes: each dim's sizes as passed (a *S: several)
        for x, p, (a, b), spec, w in zip(xs, self.decl.params, self.ab, self.specs, self.ws):
            k = 0
            for d in p.dims:
                m = x.ndim - len(p.dims) + 1 if d.variadic else 1
                axes[d] = tuple(x.shape[k : k + m])
                k += m
            z = x.reshape(tuple(int(np.prod(axes[d], dtype=np.int64)) for d in p.dims))
            z = z * xp.tanh(a * z) + b * z
            y = y + xp.einsum(spec, z, asarray(w, z))
        out = [n for d in self.decl.result.dims for n in axes.get(d, (self._n(d),))]
        return y.reshape(tuple(out))


def random_inputs(
    spec, sizes: dict, rng: np.random.Generator, absent=frozenset(), params=None
) -> dict:
    """Inputs drawn from each declared type and domain (`where 0 <= t <= 1`): normal floats,
    indices in range, few distinct int labels (so that equal labels happen). A split's dim is a
    multiple of its group size: at `params` (the defaults where not given)."""
    out = {}
    decls = spec._lowered(frozenset(absent)).inputs
    sizes = _fitted(spec, sizes, absent, params or {})
    for d in decls:
        name, t = d.var.name, d.var.type
        shape: list[int] = []
        for dim in t.dims:
            n = dim.fixed or sizes.get(dim.name, 3)  # float[B, 4]: its size, whatever else
            shape += list(n) if isinstance(n, tuple) else [n]
        if t.of is not None:
            out[name] = rng.integers(0, sizes.get(t.of.name, 3), size=shape)
        elif t.dtype == "int":
            out[name] = rng.integers(0, 3, size=shape)
        elif t.dtype == "bool":
            out[name] = rng.random(shape) < 0.5
        else:
            out[name] = _sample_float(rng, shape, *d.domain)
    for f in spec._lowered(frozenset(absent)).fns:
        out[f.name] = ExampleFn(f, sizes, rng)
    return out


def _on(v, backend: str, convert):
    return v.on(backend) if isinstance(v, ExampleFn) else convert(v)


def float_inputs(spec, absent=frozenset()) -> list[str]:
    return [n for n, t in input_types(spec, absent) if t.dtype == "float" and t.of is None]


def call(backend: str, fn, inputs: dict, dtype: str, **kw) -> np.ndarray:
    """Call a compiled loss on numpy inputs converted for `backend`; a numpy result."""
    if backend == "numpy":
        return np.asarray(fn(**inputs, **kw))
    if backend == "torch":
        import torch

        conv = {
            k: _on(
                v,
                backend,
                lambda v: (
                    torch.tensor(v, dtype=getattr(torch, dtype))
                    if v.dtype.kind == "f"
                    else torch.tensor(v)
                ),
            )
            for k, v in inputs.items()
        }
        return fn(**conv, **kw).detach().numpy()
    import jax.numpy as jnp

    conv = {
        k: _on(
            v,
            backend,
            lambda v: jnp.asarray(v, dtype=dtype) if v.dtype.kind == "f" else jnp.asarray(v),
        )
        for k, v in inputs.items()
    }
    return np.asarray(fn(**conv, **kw))


def grads(backend: str, fn, inputs: dict, wrt: list[str], dtype: str, **kw) -> dict:
    """Gradient of the (scalar) loss w.r.t. each float input in `wrt`."""
    if backend == "torch":
        import torch

        conv = {}
        for k, v in inputs.items():
            if isinstance(v, ExampleFn):
                conv[k] = v.on("torch")
            elif v.dtype.kind == "f":
                conv[k] = torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=k in wrt)
            else:
                conv[k] = torch.tensor(v)
        out = fn(**conv, **kw)
        if not out.requires_grad:  # e.g. onehot(i): nothing differentiable reaches the loss
            return {k: np.zeros(inputs[k].shape) for k in wrt}
        gs = torch.autograd.grad(out, [conv[k] for k in wrt], allow_unused=True)
        return {k: np.zeros(inputs[k].shape) if g is None else g.numpy() for k, g in zip(wrt, gs)}
    import jax
    import jax.numpy as jnp

    conv = {
        k: _on(
            v,
            "jax",
            lambda v: jnp.asarray(v, dtype=dtype) if v.dtype.kind == "f" else jnp.asarray(v),
        )
        for k, v in inputs.items()
    }
    # under jax.jit: one XLA compilation of the whole gradient, where eager jax compiles each
    # primitive of each shape (neural_ndcg's: 132 compilations, 6 of the test's 10 s)
    g = jax.jit(jax.grad(lambda diff: fn(**{**conv, **diff}, **kw)))({k: conv[k] for k in wrt})
    return {k: np.asarray(v) for k, v in g.items()}


def fd_grads(spec, absent, inputs: dict, wrt: list[str], h: float = 1e-6, **params) -> dict:
    """Central finite differences of the float64 numpy reference (reduction="mean": compare
    with grads(..., reduction="mean")), every stop_grad value held at its unperturbed value
    (what stop_grad means)."""
    ref = reference()
    prog = spec.program(frozenset(absent))
    frozen: dict = {}
    ref.evaluate(prog, inputs, params, "mean", frozen)
    out = {}
    for k in wrt:
        x = np.array(inputs[k], dtype=np.float64)  # scalar inputs too
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


def fd_directional(spec, absent, inputs: dict, direction: dict, h: float = 1e-6) -> float:
    """The central difference of the float64 reference (reduction="mean") along `direction`
    (a dict of arrays over some float inputs): the gradient's dot product with it, for inputs
    too big for one difference per entry (ms_ssim's images are at least 161 x 161)."""
    ref = reference()
    prog = spec.program(frozenset(absent))
    frozen: dict = {}
    ref.evaluate(prog, inputs, {}, "mean", frozen)
    f = []
    for s in (h, -h):
        moved = {k: np.asarray(inputs[k], np.float64) + s * v for k, v in direction.items()}
        f.append(float(ref.evaluate(prog, {**inputs, **moved}, {}, "mean", frozen)))
    return (f[0] - f[1]) / (2 * h)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(np.linalg.norm(b.ravel()), 1e-12)
    return float(np.linalg.norm((a - b).ravel()) / scale)


def equivalence_table(names: list[str], out=print, seed: int = 0) -> bool:
    """One row per spec: worst relative error of float32 torch/jax values against the float64
    reference over every reduction, and of float64 gradients against finite differences."""
    import jax

    from lossdsl.compiler import load

    jax.config.update("jax_enable_x64", True)  # float64 gradients to compare with the reference
    compared = [b for b in TARGETS if b != REFERENCE]  # the registry's order: torch, jax
    heads = [f"value {b}" for b in compared] + [f"grad {b}" for b in compared]
    out(f"{'spec':22s} " + " ".join(f"{h:>12s}" for h in heads))
    ok = True
    for name in names:
        spec = load(name)
        worst = dict.fromkeys(heads, 0.0)
        for absent in spec.variants():
            d = random_inputs(spec, SIZES, np.random.default_rng(seed), absent)
            for red in ("none", "sum", "mean"):
                want = call(REFERENCE, spec.compile(REFERENCE), d, "float64", reduction=red)
                for b in compared:
                    got = call(b, spec.compile(b), d, "float32", reduction=red)
                    worst[f"value {b}"] = max(worst[f"value {b}"], rel_err(got, want))
            wrt = float_inputs(spec, absent)
            fd = fd_grads(spec, absent, d, wrt)
            for b in compared:
                g = grads(b, spec.compile(b), d, wrt, "float64", reduction="mean")
                for k in wrt:
                    worst[f"grad {b}"] = max(worst[f"grad {b}"], rel_err(g[k], fd[k]))
        good = all(worst[f"value {b}"] <= 1e-5 and worst[f"grad {b}"] <= 1e-6 for b in compared)
        ok &= good
        row = " ".join(f"{worst[h]:12.2e}" for h in heads)
        out(f"{name:22s} {row}  {'ok' if good else 'MISMATCH'}")
    return ok
