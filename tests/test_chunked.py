"""Issue 5: the chunked torch schedule (`compile("torch", schedule="chunked", chunk=...)`) and
the loss fused with the final linear layer (`compile_linear`). Values and gradients equal the
plain compiled spec on the materialized logits h @ W.T (float64 to 1e-10, float32 to 1e-5),
for chunk sizes that divide V, that do not, of 1 and larger than V, and for the options that
change the statistics (class weights, ignore_index, label smoothing)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.errors import LossError
from lossdsl.schedules.build import LINEAR_NAMES

SPECS = ["cross_entropy", "focal", "poly1", "label_smoothing_ce", "z_loss", "gce", "ldam"]


def _inputs(name, n=7, v=23, d=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(v, d, generator=g, dtype=dtype)
    rest = [] if name == "z_loss" else [torch.randint(0, v, (n,), generator=g)]
    if name == "ldam":
        rest.append(torch.randint(1, 100, (v,), generator=g).to(dtype))
    return h, w, rest


def _grads(fn, h, w, rest, **kw):
    h, w = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out = fn(h, w, *rest, **kw)
    return (out.detach(), *torch.autograd.grad(out, [h, w]))


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize(
    "schedule",
    [
        {"chunk": 1},
        {"chunk": 5},
        {"chunk": 23},
        {"chunk": 64},
        {"rows": 1},
        {"rows": 3},
        {"rows": 50},
    ],
    ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()),
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fused_linear_equals_the_plain_loss_on_materialized_logits(name, schedule, reduction):
    spec = lossdsl.load(name)
    plain, fused = spec.compile("torch"), spec.compile_linear("torch", **schedule)
    h, w, rest = _inputs(name)
    want = _grads(lambda h, w, *r: plain(h @ w.T, *r, reduction=reduction), h, w, rest)
    got = _grads(lambda h, w, *r: fused(h, w, *r, reduction=reduction), h, w, rest)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SPECS)
def test_chunked_schedule_on_given_logits(name):
    spec = lossdsl.load(name)
    plain, chunked = spec.compile("torch"), spec.compile("torch", schedule="chunked", chunk=6)
    h, w, rest = _inputs(name, seed=1)
    x = (h @ w.T).requires_grad_(True)
    a = plain(x, *rest)
    (ga,) = torch.autograd.grad(a, [x])
    x2 = x.detach().clone().requires_grad_(True)
    b = chunked(x2, *rest)
    (gb,) = torch.autograd.grad(b, [x2])
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gb, ga, rtol=1e-10, atol=1e-12)


def test_cross_entropy_options_in_the_chunked_schedule():
    """Class weights, ignore_index (its weighted-mean denominator) and label smoothing are
    statistics too: F.cross_entropy (torch 2.13) on the materialized logits is the reference."""
    h, w, (y,) = _inputs("cross_entropy", n=9, v=31, seed=2)
    y[2] = y[5] = -100
    cw = torch.rand(31, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.2
    ce = lossdsl.load("cross_entropy")
    for fused, kw in [
        (ce.compile_linear("torch", chunk=8), {}),
        (ce.compile_linear("torch", chunk=8), {"label_smoothing": 0.1}),
        (ce.compile_linear("torch", rows=4), {}),  # the ignore/weight denominator, by rows
        (ce.compile_linear("torch", rows=4), {"label_smoothing": 0.1}),
    ]:
        got = _grads(lambda h, w: fused(h, w, y, cw, **kw), h, w, [])
        want = _grads(
            lambda h, w: torch.nn.functional.cross_entropy(h @ w.T, y, weight=cw, **kw), h, w, []
        )
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_float32_matches_to_1e5():
    h, w, rest = _inputs("focal", n=64, v=1000, d=32, dtype=torch.float32, seed=4)
    spec = lossdsl.load("focal")
    want = _grads(lambda h, w, *r: spec.compile("torch")(h @ w.T, *r), h, w, rest)
    got = _grads(spec.compile_linear("torch", chunk=128), h, w, rest)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_losses_without_a_one_pass_plan_are_refused_clearly():
    # refused at compile time, at the spec's text: KD weighs the student's log-softmax (its
    # logsumexp known only after the last chunk) by the teacher's probabilities
    with pytest.raises(LossError, match=r"kd cannot be chunked over C: .* second pass") as e:
        lossdsl.load("kd").compile_linear("torch", chunk=8)
    assert "kd.loss:" in str(e.value) and "log_softmax(student" in str(e.value)
    h, w, _ = _inputs("kd")
    with pytest.raises(LossError, match="sum or mean"):
        lossdsl.load("focal").compile_linear("torch")(h, w, torch.zeros(7, dtype=torch.long),
                                                       reduction="none")  # fmt: skip


def test_a_pick_along_v_by_ids_over_v_is_refused():
    """v[arange(C)] and v[perm] (perm: index[C] of C) with v over the logits' C: every chunk's
    ids point into other chunks; the chunk plan took it for a chunk-local value and the chunk
    raised IndexError (found by scripts/difffuzz.py). Now a LossError at compile; the plain
    schedule computes it."""
    for pick in ("[arange(C)]", "[p]"):
        spec = lossdsl.parse(
            f"loss f(x: float[B, C], p: index[C] of C) {{\n    sum(x, over=B){pick}\n}}\n"
        )
        with pytest.raises(LossError, match=r"pick along C .* ids that vary along C"):
            spec.compile("torch", schedule="chunked", chunk=2)
        with pytest.raises(LossError, match=r"pick along C"):
            spec.compile_linear("torch", chunk=2)


def test_class_ids_are_range_checked_before_slicing():
    # the slices see shifted ids (an id outside one slice is legal there); the check runs once
    h, w, (y,) = _inputs("focal", n=5, v=23)
    y[3] = 40
    fused = lossdsl.load("focal").compile_linear("torch", chunk=8)
    with pytest.raises(lossdsl.InputError, match=r"outside \[0, 23\).*from \d+ to 40"):
        fused(h, w, y)


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "z_loss", "ldam"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("dw_slice", [8192, 3])
def test_jax_row_blocked_equals_the_plain_loss(name, reduction, jit, dw_slice, monkeypatch):
    """compile_linear("jax", rows=R): a custom_vjp that takes each block's gradient in the
    forward pass; eager and under jax.jit, against jax.value_and_grad of the plain spec. dW
    is accumulated DW_SLICE rows at a time: 3 gives several slices and a remainder."""
    import jax
    import jax.numpy as jnp

    from lossdsl.schedules import rows_jax

    monkeypatch.setattr(rows_jax, "DW_SLICE", dw_slice)

    h, w, rest = _inputs(name, seed=5)
    h, w = jnp.asarray(h.numpy()), jnp.asarray(w.numpy())
    rest = [jnp.asarray(r.numpy()) for r in rest]
    spec = lossdsl.load(name)
    plain, fused = spec.compile("jax"), spec.compile_linear("jax", rows=3)

    def grads(f):
        g = jax.value_and_grad(f, argnums=(0, 1))
        return (jax.jit(g) if jit else g)(h, w)

    want = grads(lambda h, w: plain(h @ w.T, *rest, reduction=reduction))
    got = grads(lambda h, w: fused(h, w, *rest, reduction=reduction))
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


# ---- every shipped spec, both backends: chunked == plain, or refused at compile ------------

# the chunked dim (the first input's last) gets 7 entries: chunk=3 makes slices 3, 3 and 1
CHUNK_SIZES = {"B": 4, "C": 7, "D": 7, "S": (2, 3), "K": 7, "V": 7, "N": 4, "M": 3, "T": 7, "W": 7}


def _value_and_grads(backend, fns, data, reduction):
    """Each function's loss and its gradient w.r.t. every float input (float64)."""
    floats = [k for k, v in data.items() if v.dtype.kind == "f"]
    if backend == "torch":
        out = []
        for fn in fns:
            conv = {k: torch.tensor(v, requires_grad=k in floats) for k, v in data.items()}
            y = fn(**conv, reduction=reduction)
            gs = torch.autograd.grad(y, [conv[k] for k in floats], allow_unused=True)
            gs = [np.zeros(data[k].shape) if g is None else g.numpy() for k, g in zip(floats, gs)]
            out.append([y.detach().numpy(), *gs])
        return out
    import jax
    import jax.numpy as jnp

    conv = {k: jnp.asarray(v) for k, v in data.items()}

    def both(d):  # one jit for both schedules: XLA compiles once, faster than eager jax here
        vg = [
            jax.value_and_grad(lambda d, f=f: f(**{**conv, **d}, reduction=reduction)) for f in fns
        ]
        return [v(d) for v in vg]

    res = jax.jit(both)({k: conv[k] for k in floats})
    return [[np.asarray(val), *(np.asarray(g[k]) for k in floats)] for val, g in res]


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("name", lossdsl.list_specs())
def test_every_spec_chunks_exactly_or_is_refused_at_compile(name, backend):
    """Either a LossError at compile (and `lossdsl list` / docs/specs.md say so:
    compiler.chunk_refusal), or values and gradients (every float input) equal to the plain
    schedule's to 1e-10 in float64, for every variant (absent optional inputs), sum and mean.
    Before: mse/l1/bce_with_logits returned inf (size(B) passed as 0), raw NotImplementedError
    / TypeError, silently dropped gradients of targets and class weights."""
    from helpers import random_inputs

    from lossdsl.compiler import chunk_refusal

    spec = lossdsl.load(name)
    refusal = chunk_refusal(spec)
    if refusal is not None:
        with pytest.raises(LossError) as e:
            spec.compile(backend, schedule="chunked", chunk=3)
        assert e.value.message == refusal.message and f"{name} cannot be chunked" in e.value.message
        return
    chunked, plain = spec.compile(backend, schedule="chunked", chunk=3), spec.compile(backend)
    # torch: every variant, sum and mean; jax (slow to run eagerly): every input passed, the
    # mean (the row function is the only part that differs between the reductions)
    variants = spec.variants() if backend == "torch" else [frozenset()]
    for absent in variants:
        data = random_inputs(spec, CHUNK_SIZES, np.random.default_rng(0), absent)
        for reduction in ("mean", "sum") if backend == "torch" else ("mean",):
            want, got = _value_and_grads(backend, (plain, chunked), data, reduction)
            for k, (a, b) in enumerate(zip(got, want)):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{absent} {k}")


def _outcome(fn, data, reduction):
    from helpers import call

    try:
        return call("torch", fn, data, "float64", reduction=reduction)
    except LossError as e:
        return type(e).__name__


@pytest.mark.parametrize("name", lossdsl.list_specs())
def test_every_spec_chunks_like_the_plain_schedule_at_every_empty_dim(name):
    """Each dim of each chunkable spec empty in turn (the inputs drawn at size 1 there, then
    cut to 0), torch, sum and mean: the chunked value is the plain one (its declared empty
    values, README "Edge cases"), or both raise the same LossError. Before: V empty crashed
    in the slices (TypeError, no statistic to combine), a mean over B = 0 raised an
    InputError naming the internal 'dim_B_', and logcumsumexp over B = 0 an IndexError
    (scripts/difffuzz.py, seed 22926)."""
    from helpers import random_inputs

    from lossdsl.compiler import chunk_refusal

    spec = lossdsl.load(name)
    if chunk_refusal(spec) is not None:
        return  # refused at compile (test_every_spec_chunks_exactly_or_is_refused_at_compile)
    chunked, plain = spec.compile("torch", schedule="chunked", chunk=3), spec.compile("torch")
    decls = spec._lowered(frozenset()).inputs
    names = {d.name for i in decls for d in i.var.type.dims if not d.fixed and not d.variadic}
    for dim in sorted(names):
        data = random_inputs(spec, {**CHUNK_SIZES, dim: 1}, np.random.default_rng(0))
        for i in decls:
            dims = [d.name for d in i.var.type.dims]
            if dim in dims:  # no variadic dim before a named one here (checked: names)
                data[i.var.name] = np.take(data[i.var.name], [], axis=dims.index(dim))
        for reduction in ("sum", "mean"):
            want, got = _outcome(plain, data, reduction), _outcome(chunked, data, reduction)
            if isinstance(want, str) or isinstance(got, str):
                assert got == want, (dim, reduction)
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"{dim} {reduction}")


# Rows of logits the chunked statistics must treat as the plain ops do: a +inf logit (softmax,
# log_softmax and cross_entropy NaN on the row: the op table, torch.log_softmax), a +inf target
# logit, every logit -inf, a NaN, one masked -inf, huge finite values.
SPECIAL_ROWS = {
    "+inf": {2: np.inf},
    "+inf at 0": {0: np.inf},
    "all -inf": dict.fromkeys(range(7), -np.inf),
    "nan": {3: np.nan},
    "-inf": {4: -np.inf},
    "+-1e300": {1: 1e300, 5: -1e300},
}


@pytest.mark.parametrize("name", lossdsl.list_specs())
def test_every_spec_chunks_exactly_at_non_finite_logits(name):
    """The chunked schedule's value equals the plain one's (NaN where it is NaN, inf's sign)
    when row 0 of the logits holds each of SPECIAL_ROWS, torch, sum. Before: a +inf logit gave
    inf (z - logsumexp(z)) where the plain cross-entropy is NaN (difffuzz, seed 80527)."""
    from helpers import call, random_inputs

    from lossdsl.compiler import chunk_refusal

    spec = lossdsl.load(name)
    if chunk_refusal(spec) is not None:
        return  # refused at compile: test_every_spec_chunks_exactly_or_is_refused_at_compile
    chunked, plain = spec.compile("torch", schedule="chunked", chunk=3), spec.compile("torch")
    logits = spec.inputs[0].name
    for absent in spec.variants():
        base = random_inputs(spec, CHUNK_SIZES, np.random.default_rng(0), absent)
        for label, entries in SPECIAL_ROWS.items():
            data = dict(base)
            z = data[logits] = base[logits].copy()
            for c, v in entries.items():
                z.reshape(-1, z.shape[-1])[0, c % z.shape[-1]] = v
            with np.errstate(all="ignore"):
                want, got = (
                    call("torch", f, data, "float64", reduction="sum") for f in (plain, chunked)
                )
            np.testing.assert_allclose(
                got, want, rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=f"{absent} {label}"
            )


def test_chunked_compiles_are_cached_and_their_modules_go_with_them():
    """compile(schedule="chunked") returns the cached function for the same (spec text,
    backend, chunk, baked params), and the generated modules (sys.modules, linecache) go once
    nobody holds the function. Before: ~5 new modules per call, never freed, never cached."""
    import gc
    import linecache
    import sys

    from lossdsl.compiler import _chunked_cached

    text = lossdsl.load("focal").text
    spec = lossdsl.parse(text + "\n# cached\n")
    lossdsl.parse(text + "\n# warm\n").compile("torch", schedule="chunked")  # imports
    before = len(sys.modules)
    first = spec.compile("torch", schedule="chunked", chunk=5)
    per_compile = len(sys.modules) - before
    assert per_compile > 0
    for _ in range(50):
        assert spec.compile("torch", schedule="chunked", chunk=5) is first
    assert len(sys.modules) - before == per_compile
    assert spec.compile("torch", schedule="chunked", chunk=6) is not first  # another chunk
    # distinct specs, dropped by the caller and by the cache: every module and source goes
    # (`first`, still held, keeps its own)
    before, lines = len(sys.modules), len(linecache.cache)
    for i in range(20):
        lossdsl.parse(text + f"\n# {i}\n").compile("torch", schedule="chunked", chunk=5)
    assert len(sys.modules) - before >= 20 * per_compile
    _chunked_cached.cache_clear()
    gc.collect()
    assert len(sys.modules) <= before and len(linecache.cache) <= lines
    y = torch.tensor([1, 2])
    x = torch.randn(2, 4, dtype=torch.float64)
    # focal at gamma=0 is cross-entropy: torch.nn.functional.cross_entropy (torch 2.13)
    torch.testing.assert_close(first(x, y, gamma=0.0), torch.nn.functional.cross_entropy(x, y))


# ---- random losses over [B, C], chunked over C ----------------------------------------------


def _random_loss(rng) -> lossdsl.Spec:
    """A loss over logits z[B, C] built only from what the chunk contract accepts: elementwise
    terms of z, a target y[B, C] and a class weight w[C]; row statistics over C (sum, mean,
    logsumexp, max, min, a pick at the class id t, log_softmax(z)[t], a soft cross-entropy
    sum(y * log_softmax(z))); and any elementwise function of the statistics."""
    used = set()

    def leaf():
        name = str(rng.choice(["z", "z", "y", "w", "0.5"]))
        used.add(name)
        return name

    def term(depth):
        if depth == 0 or rng.random() < 0.3:
            return leaf()
        k = rng.integers(7)
        a = term(depth - 1)
        if k == 0:
            return f"{rng.choice(['exp', 'softplus', 'sigmoid', 'tanh', 'relu', 'abs'])}({a})"
        if k == 1:
            return f"log1p(abs({a}))"
        if k == 2:
            return f"({a})^2"
        if k == 3:
            return f"where(z > 0, {a}, {term(depth - 1)})"
        return f"({a} {rng.choice(['+', '-', '*'])} {term(depth - 1)})"

    def stat():
        k = rng.integers(8)
        e = f"({term(2)} + z)"
        if k < 4:
            return f"{['sum', 'mean', 'logsumexp', 'max'][k]}({e}, over=C)"
        if k == 4:
            return f"min(relu({e}), over=C)"  # ties at 0
        if k == 5:
            used.add("t")
            return f"{e}[t]"
        if k == 6:
            used.add("t")
            return "log_softmax(z, over=C)[t]"
        used.add("y")
        return "sum(y * log_softmax(z, over=C), over=C)"

    body = stat()
    for _ in range(rng.integers(3)):
        wrap = str(rng.choice(["{}", "exp(-abs({}))", "log1p(abs({}))"]))
        body = f"({body} {rng.choice(['+', '-', '*'])} {wrap.format(stat())})"
    decls = ["z: float[B, C]"] + [
        d for n, d in (("y", "y: float[B, C]"), ("t", "t: index[B] of C"), ("w", "w: float[C]"))
        if n in used
    ]  # fmt: skip
    return lossdsl.parse(f"loss generated({', '.join(decls)}) {{\n    {body}\n}}\n")


def test_random_losses_chunk_exactly():
    """30 random losses (fixed seed) that the contract says chunk: values and gradients
    (w.r.t. z, y, w) on torch equal the plain schedule's to 1e-10 in float64 (C = 7, chunk 3:
    slices 3, 3, 1), and the first 4 on jax too."""
    from helpers import random_inputs

    rng = np.random.default_rng(1234)
    checked = 0
    for i in range(30):
        spec = _random_loss(rng)
        body = spec.text
        data = random_inputs(spec, {"B": 4, "C": 7}, np.random.default_rng(i))
        for backend in ("torch", "jax") if i < 4 else ("torch",):
            chunked = spec.compile(backend, schedule="chunked", chunk=3)
            plain = spec.compile(backend)
            for reduction in ("mean", "sum"):
                want, got = _value_and_grads(backend, (plain, chunked), data, reduction)
                for k, (a, b) in enumerate(zip(got, want)):
                    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{body} {k}")
            checked += 1
    assert checked == 34


@pytest.mark.parametrize(
    "term", ["sin(pa)", "exp(pa) / 3", "sqrt(float(size(C)))", "log(pa + float(pk))"]
)
def test_values_of_params_and_sizes_keep_the_logits_dtype(term):
    """A value computed from params and sizes alone that the chunks read (no float input in
    its sub-program) is float64 beside float64 logits: it was torch's default float32 (4e-9
    off the plain schedule; found by tests/difffuzz.py). Expected: the plain schedule, 1e-15."""
    spec = lossdsl.parse(
        "loss f(z: float[B, C], t: index[B] of C) {\n    param pa: float = 0.7\n"
        f"    param pk: int = 2\n    logsumexp(z * ({term}), over=C) - z[t]\n}}\n"
    )
    z = torch.randn(4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 6, 3, 3])
    want = spec.compile("torch")(z, t, reduction="sum")
    for chunk in (1, 3, 7):
        got = spec.compile("torch", schedule="chunked", chunk=chunk)(z, t, reduction="sum")
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-15, err_msg=f"{chunk=}")


def test_jax_fused_linear_chunks_equal_the_plain_loss():
    """compile_linear("jax", chunk=...): V-slices of h @ W.T under jax.checkpoint; value and
    gradients (h, W) equal jax.value_and_grad of the plain spec on the materialized logits."""
    import jax
    import jax.numpy as jnp

    h, w, rest = _inputs("focal", seed=6)
    h, w, (y,) = jnp.asarray(h.numpy()), jnp.asarray(w.numpy()), [jnp.asarray(rest[0].numpy())]
    spec = lossdsl.load("focal")
    plain, fused = spec.compile("jax"), spec.compile_linear("jax", chunk=5)
    want = jax.value_and_grad(lambda h, w: plain(h @ w.T, y), argnums=(0, 1))(h, w)
    got = jax.value_and_grad(lambda h, w: fused(h, w, y), argnums=(0, 1))(h, w)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)


def test_masked_logits_in_the_chunked_schedule():
    """-inf logits (a vocabulary mask) with label smoothing and class weights: the chunked
    schedule equals the plain one, value and gradient finite (cross_entropy.loss: a -inf class
    takes no smoothing mass)."""
    h, w, (y,) = _inputs("cross_entropy", n=9, v=31, seed=4)
    x = h @ w.T
    x[:, 3] = x[1, 7] = -torch.inf
    y[y == 3] = 0
    y[1] = 2
    cw = torch.rand(31, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.2
    ce = lossdsl.load("cross_entropy")
    plain, chunked = ce.compile("torch"), ce.compile("torch", schedule="chunked", chunk=8)
    for args in ((y,), (y, cw)):
        got = []
        for f in (plain, chunked):
            xl = x.detach().clone().requires_grad_(True)
            out = f(xl, *args, label_smoothing=0.1)
            got.append((out.detach(), *torch.autograd.grad(out, [xl])))
        for a, b in zip(*got):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


# ---- compile_linear(rows=R): blocks of batch rows ------------------------------------------

# B = 5 rows in blocks of 2: blocks 2, 2 and 1 (jax: a lax.scan of two blocks, a remainder)
# W unset: the sampler gives it 3, or the least a window over it needs (ms_ssim: 161)
ROW_SIZES = {"B": 5, "C": 4, "D": 3, "S": (2,), "K": 3, "V": 4, "N": 5, "M": 3, "T": 3}


def _fused_and_plain(spec, fused, plain):
    """fn(h=, W=, **rest, reduction=): the fused schedule, and the plain one on h @ W.T."""
    logits = spec.inputs[0].name

    def on_logits(h, W, reduction, **rest):
        return plain(**{logits: h @ W.T}, **rest, reduction=reduction)

    def linear(h, W, reduction, **rest):
        return fused(h, W, **rest, reduction=reduction)

    return on_logits, linear


def _rows_data(spec, sizes, rng, absent=frozenset()):
    """The spec's inputs with the logits [B, ..., V] replaced by h [B, ..., 3] and W [V, 3]."""
    from helpers import random_inputs

    data = random_inputs(spec, sizes, rng, absent)
    x = data.pop(spec.inputs[0].name)
    data["h"] = rng.standard_normal(x.shape[:-1] + (3,))
    data["W"] = rng.standard_normal((x.shape[-1], 3))
    return data


def _check_rows(spec, backend, data, reductions, label, rows=2, params=None):
    plain, fused = spec.compile(backend), spec.compile_linear(backend, rows=rows)
    for reduction in reductions:
        fns = [functools.partial(f, **(params or {})) for f in _fused_and_plain(spec, fused, plain)]
        want, got = _value_and_grads(backend, fns, data, reduction)
        for k, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(
                a, b, rtol=1e-10, atol=1e-12, err_msg=f"{label} {reduction} {k}"
            )


def test_row_blocks_of_an_int_value_hoisted_beside_the_logits():
    """size(C) is an int value the row plan computes once and passes to each block: in
    xlogy(size(C), ce) jax's xlogy (a custom_jvp) got a float0 tangent for it and the block's
    jax.value_and_grad raised TypeError (found by scripts/difffuzz.py). Expected: the plain
    schedule on h @ W.T, value and gradients."""
    spec = lossdsl.parse(
        "loss f(x: float[B, C], t: index[B] of C) {\n    use classification(x, t)\n"
        "    xlogy(size(C), ce) + xlogy(3, ce)\n}\n"
    )
    rng = np.random.default_rng(5)
    data = {"h": rng.standard_normal((5, 3)), "W": rng.standard_normal((4, 3))}
    data["t"] = rng.integers(0, 4, 5)
    for backend in ("torch", "jax"):
        _check_rows(spec, backend, data, ("sum", "mean"), backend)


# jax (its plan is torch's; ~2 s of XLA compiling per spec): one spec per kind of plan -- a
# denominator free of the logits (cross_entropy), a value precomputed over the whole batch and
# sliced per block (ca_calibration), a fill over [B, *S] (z_loss), a logits dim between B and
# V (dice), a second float input with a gradient (kd)
JAX_ROWS = ("cross_entropy", "ca_calibration", "z_loss", "dice", "kd")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_every_spec_row_blocks_exactly_or_is_refused_at_compile(backend):
    """compile_linear(backend, rows=2) on B = 5: a LossError at compile (the row plan's
    reason, chunk_refusal(rows=True), or an input or param named like h/W/bias), or values
    and gradients (h, W and every other float input) equal to the plain schedule on the materialized
    logits h @ W.T to 1e-10 in float64. torch: every spec and variant, sum and mean; jax: the
    specs in JAX_ROWS, every input passed, sum and mean. Before: contrastive specs (clip,
    supcon, info_nce, circle, mw_auc, cs_divergence), batch statistics (info_max,
    batch_dice, ca_calibration) ran per block and returned wrong values; gradients of inputs
    other than h and W were dropped (torch)."""
    import helpers

    from lossdsl.compiler import chunk_refusal

    accepted = 0
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        refusal = chunk_refusal(spec, rows=True)
        own = [i.name for i in spec.inputs[1:]] + [q.name for q in spec.params]
        if refusal is not None or set(own) & set(LINEAR_NAMES):
            with pytest.raises(LossError) as e:
                spec.compile_linear(backend, rows=2)
            if set(own) & set(LINEAR_NAMES):  # the name is refused before any plan
                assert "named like compile_linear's own" in e.value.message, name
            else:
                assert e.value.message == refusal.message, name
                assert f"{name} cannot run in row blocks" in e.value.message
            continue
        accepted += 1
        if backend == "jax" and name not in JAX_ROWS:
            continue
        variants = spec.variants() if backend == "torch" else [frozenset()]
        for absent in variants:
            sizes = helpers.sizes_for(spec, ROW_SIZES)  # segmental_snr's frames: T >= 600
            data = _rows_data(spec, sizes, np.random.default_rng(0), absent)
            _check_rows(spec, backend, data, ("sum", "mean"), f"{name} {absent}")
        if backend == "torch":  # float params as tensors: the variants general in them too
            floats = {
                p.name: torch.tensor(float(p.default)) for p in spec.params if p.dtype == "float"
            }
            if floats:
                _check_rows(spec, backend, data, ("mean",), f"{name} tensor params", params=floats)
    assert accepted >= 60  # cross-entropy-like specs: most of the library


def test_rows_refusals_name_the_construct():
    # a contrastive loss pairs B with B' (info_nce); SHOT's diversity term is a batch mean of
    # the softmax (info_max); refused at compile, at the spec's text
    with pytest.raises(LossError, match=r"info_nce cannot run in row blocks of B: .* B'") as e:
        lossdsl.load("info_nce").compile_linear("torch", rows=4)
    assert "info_nce.loss:" in str(e.value)
    with pytest.raises(LossError, match=r"info_max cannot run in row blocks of B: sum over B"):
        lossdsl.load("info_max").compile_linear("jax", rows=4)
    two_pass = lossdsl.parse(
        "loss f(z: float[B, C]) {\n    let r = logsumexp(z, over=C)\n    r - mean(r, over=B)\n}\n"
    )
    with pytest.raises(LossError, match="second pass"):
        two_pass.compile_linear("torch", rows=2)


def _random_rows_loss(rng) -> tuple[lossdsl.Spec, bool]:
    """A loss over logits z[B, C] mixing per-row terms of z (elementwise, reductions over C,
    z[t]), terms without B (of u[D], params, sizes), logit-free reductions over B (of v[B]),
    totals over B of the per-row terms, and -- for half of them -- a construct that mixes rows
    of z (a normalize, max or mean over B flowing back into rows, a pairing with B'). Returns
    the spec and whether its rows are separable (the row contract says it must block)."""
    per_row = [
        "logsumexp(z, over=C) - z[t]",
        "-sum(y * log_softmax(z, over=C), over=C)",
        "(z[t] - v)^2",
        "max(z, over=C) * v",
        "softplus(z) * w",
        "z[t] * normalize(v, over=B)",
        "sigmoid(z) * mean(v, over=B)",
        "mean(z * y, over=C) + var(v, over=B)",
    ]
    free = [  # scalars
        "mean(u, over=D)",
        "sum(u^2, over=D)",
        "sum(mean(expand(u, D'), over=D'), over=D)",
        "size(D)",
        "mean(v, over=B)",
        "xlogy(size(D), var(v, over=B))",
        "0.5",
    ]
    free_d = ["mean(expand(u, D'), over=D')", "u^2"]  # over D: a per-element loss without B
    mixing = [
        "normalize(z[t], over=B)",
        "z[t] - mean(z[t], over=B)",
        "logsumexp(z, over=C) * max(z[t], over=B)",
        "sum(prime(z[t], B) * v, over=B')",
        "diff(z[t], over=B)",
    ]
    a, f, fd = str(rng.choice(per_row)), str(rng.choice(free)), str(rng.choice(free_d))
    every = "(B, C)" if _row_dims(a) == "BC" else "B"
    kind = int(rng.integers(5))
    if kind == 0:
        body = f"({a}) {rng.choice(['+', '*', '-'])} {f}"  # broadcast over the row's dims
    elif kind == 1:  # a total over every dim, then terms once
        body = f"{rng.choice(['sum', 'mean'])}({a}, over={every}) {rng.choice(['+', '*'])} {f}"
    elif kind == 2:  # a loss over D: the total broadcast, or no logits at all
        body = f"{fd} * sum({a}, over={every})" if rng.random() < 0.7 else fd
    elif kind == 3:
        body = f"expand({a}, D) * u"
    else:
        body = f"({rng.choice(mixing)}) + {f}"
    ok = kind != 4
    decls = (
        "z: float[B, C], y: float[B, C], t: index[B] of C, v: float[B], u: float[D], w: float[C]"
    )
    return lossdsl.parse(f"loss generated({decls}) {{\n    {body}\n}}\n"), ok


def _row_dims(term: str) -> str:
    return "BC" if term.startswith(("softplus", "sigmoid")) else "B"


def test_random_losses_row_block_exactly_or_are_refused():
    """40 random losses (fixed seed), B = 5 in blocks of 2 and an empty batch (B = 0): the
    separable ones compile and equal the plain schedule on h @ W.T (values; gradients of h,
    W, y, v, u, w) on torch, the first 3 on jax too; the ones that mix rows of the logits
    are refused at compile. Before: batch-free terms were added once per block (2x on jax,
    3x on torch), reductions over B ran per block, an empty batch raised ValueError (jax), a
    loss without the logits raised RuntimeError (torch)."""
    rng = np.random.default_rng(2026)
    ran = refused = 0
    for i in range(40):
        spec, ok = _random_rows_loss(rng)
        if not ok:
            with pytest.raises(LossError, match="cannot run in row blocks"):
                spec.compile_linear("torch", rows=2)
            refused += 1
            continue
        for b in (5, 0):
            data = _rows_data(spec, {"B": b, "C": 4, "D": 3}, np.random.default_rng(i))
            for backend in ("torch", "jax") if ran < 3 else ("torch",):
                try:  # a loss with no value at B = 0 (a mean over B): an InputError on both
                    plain_empty = None
                    if b == 0:
                        x = torch.tensor(data["h"]) @ torch.tensor(data["W"]).T
                        rest = {k: torch.tensor(v) for k, v in data.items() if k not in "hW"}
                        spec.compile("torch")(x, **rest)
                except lossdsl.InputError as e:
                    plain_empty = e
                if plain_empty is not None:
                    with pytest.raises(lossdsl.InputError):
                        fused = spec.compile_linear(backend, rows=2)
                        conv = torch.tensor if backend == "torch" else np.asarray
                        fused(**{k: conv(v) for k, v in data.items()})
                    continue
                _check_rows(spec, backend, data, ("sum", "mean"), f"{spec.text} B={b}")
        ran += 1
    assert ran >= 25 and refused >= 5


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_variadic_dim_no_chunk_input_carries_keeps_its_axes(backend):
    """A sub-program whose result has *S but whose inputs do not (the folded where's branch
    broadcast to the where's type, *S included) takes *S from a carrier: it was float[S] with
    the axes' product only, a KeyError in the generated code (difffuzz, seed 7001). Expected:
    the plain schedule, for *S of no, one and two axes."""
    from helpers import call

    spec = lossdsl.parse(
        "loss f(x: float[B, C], g: float[B, C, *S]) {\n"
        "    where(1 > 2, expand(sum(g, over=(B, C)), B, C), var(expand(sum(x, over=C), B', C), "
        "over=B'))\n}\n"
    )
    rng = np.random.default_rng(5)
    for s in ((), (1,), (2, 3)):
        data = {"x": rng.standard_normal((3, 4)), "g": rng.standard_normal((3, 4, *s))}
        for reduction in ("sum", "mean"):
            want, got = (
                call(backend, f, data, "float64", reduction=reduction)
                for f in (spec.compile(backend), spec.compile(backend, schedule="chunked", chunk=3))
            )
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{s} {reduction}")


def test_a_masked_mean_over_a_twin_and_the_chunked_dim_chunks_exactly():
    """mean(prime(x, B) - w[t'], over=(C, B'), mask=...) : the planner's where-through rule
    built s * float(c) from a [B'] statistic and a [C] mask, unrelated dims: a raw OpDimError
    at compile (difffuzz, seed 669217). Expected: the plain schedule."""
    from helpers import call

    spec = lossdsl.parse(
        "loss f(x: float[B, C], w: float[C], t: index[B] of C) {\n"
        "    mean(prime(x, B) - w[t'], over=(C, B'), mask=(w >= -1), empty=1)\n}\n"
    )
    rng = np.random.default_rng(6)
    data = {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal(4), "t": np.array([0, 1, 3])}
    for reduction in ("sum", "mean"):
        want, got = (
            call("torch", f, data, "float64", reduction=reduction)
            for f in (spec.compile("torch"), spec.compile("torch", schedule="chunked", chunk=3))
        )
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=reduction)


def test_a_masked_mean_inside_a_scalar_loss_keeps_its_empty_value_chunked():
    """The per-element loss is a scalar, a masked mean over B' whose mask selects nothing: its
    declared empty value -2 on every schedule, also at B = 0 (the chunked schedule took the
    masked mean's numerator for rows of the batch and gave "sum" = 0; difffuzz seed 31251)."""
    spec = lossdsl.parse(
        "loss f(x: float[B, C], v: float[B], t: index[B] of C) {\n    param pk: int = 1\n"
        "    mean(v', over=B', mask=(t' == pk), empty=-2)\n}\n"
    )
    chunked = spec.compile("torch", schedule="chunked", chunk=2)
    for b in (0, 3):
        x, v, t = torch.zeros(b, 2), torch.ones(b), torch.zeros(b, dtype=torch.long)
        for reduction in ("sum", "mean"):
            assert float(chunked(x, v, t, pk=2, reduction=reduction)) == -2.0, (b, reduction)
            assert float(spec.compile("torch")(x, v, t, pk=2, reduction=reduction)) == -2.0


SEQ_CE = """loss seq_ce(x: float[B, T, V], y: index[B, T] of V) {
    param label_smoothing: float = 0.0   where 0 <= label_smoothing <= 1
    let lp = log_softmax(x, over=V)
    -(1 - label_smoothing) * lp[y] - label_smoothing * mean(lp, over=V)
}
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("schedule", [{"chunk": 4}, {"chunk": 64}, {"rows": 2}, {"rows": 9}])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("seq", [False, True], ids=["h2d", "h3d"])
def test_fused_linear_with_a_bias_and_extra_output_dims(backend, schedule, bias, seq):
    """compile_linear(...)(h, W, y, bias=b) is the plain loss on h @ W.T + b, for h [N, D] and
    h [N, T, D] (a sequence: logits [N, T, V]); value and gradients w.r.t. h, W and b equal the
    same backend's autodiff of the plain spec on the materialized logits (float64, 1e-10)."""
    g = torch.Generator().manual_seed(3)
    text = SEQ_CE if seq else SEQ_CE.replace("[B, T, V]", "[B, V]").replace("[B, T]", "[B]")
    spec = lossdsl.parse(text)
    lead = (5, 3) if seq else (7,)
    h = torch.randn(*lead, 6, generator=g, dtype=torch.float64)
    w = torch.randn(11, 6, generator=g, dtype=torch.float64)
    b = torch.randn(11, generator=g, dtype=torch.float64) if bias else None
    y = torch.randint(0, 11, lead, generator=g)
    plain, fused = spec.compile(backend), spec.compile_linear(backend, **schedule)
    if backend == "torch":

        def both(fn, linear):
            leaves = [t.clone().requires_grad_(True) for t in (h, w, b) if t is not None]
            bb = leaves[2] if bias else None
            if linear:
                out = fn(leaves[0], leaves[1], y, bias=bb, label_smoothing=0.1)
            else:
                z = leaves[0] @ leaves[1].T + (0 if bb is None else bb)
                out = fn(z, y, label_smoothing=0.1)
            return [out.detach(), *torch.autograd.grad(out, leaves)]

        got, want = both(fused, True), both(plain, False)
    else:
        import jax
        import jax.numpy as jnp

        hj, wj, yj = jnp.asarray(h.numpy()), jnp.asarray(w.numpy()), jnp.asarray(y.numpy())
        bj = jnp.asarray(b.numpy()) if bias else None

        def f_fused(h, w, b):
            return fused(h, w, yj, bias=b, label_smoothing=0.1)

        def f_plain(h, w, b):
            return plain(h @ w.T + (0 if b is None else b), yj, label_smoothing=0.1)

        argnums = (0, 1, 2) if bias else (0, 1)
        got = jax.tree_util.tree_leaves(jax.value_and_grad(f_fused, argnums)(hj, wj, bj))
        want = jax.tree_util.tree_leaves(jax.value_and_grad(f_plain, argnums)(hj, wj, bj))
    assert len(got) == len(want) == (4 if bias else 3)
    for a, c in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-10, atol=1e-12)


def test_fused_linear_bias_errors():
    """A bias that is not [V] is an InputError naming both shapes; a spec input or param named
    like compile_linear's own arguments (h, W, bias) is refused at compile time."""
    from lossdsl.errors import DuplicateDefinition, InputError

    fused = lossdsl.parse(SEQ_CE.replace("T, ", "")).compile_linear("torch", chunk=4)
    h, w = torch.randn(3, 2), torch.randn(5, 2)
    with pytest.raises(InputError, match=r"bias has shape \(4,\), W has 5 rows"):
        fused(h, w, torch.tensor([0, 1, 2]), bias=torch.zeros(4))
    for decl in ("bias: float[B]", "W: float[B]"):
        head = f"loss l(x: float[B, V], y: index[B] of V, {decl}) {{\n"
        text = head + "    -log_softmax(x, over=V)[y]\n}\n"
        with pytest.raises(DuplicateDefinition, match="named like compile_linear's own"):
            lossdsl.parse(text).compile_linear("torch")
    text = (
        "loss l(x: float[B, V], y: index[B] of V) {\n    param bias: float = 0.0\n"
        "    -log_softmax(x + bias, over=V)[y]\n}\n"
    )
    with pytest.raises(DuplicateDefinition, match="param 'bias'"):
        lossdsl.parse(text).compile_linear("torch")
