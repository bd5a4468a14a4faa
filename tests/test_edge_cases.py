"""Call-time edge cases on every shipped spec and every backend: empty and single-element
batches (the policy of lossdsl/empty.py, README "Edge cases"), inputs and params of the wrong
kind, and the class-id range check under torch.func.vmap and on meta tensors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.codegen import TARGETS
from lossdsl.equiv import ExampleFn, random_inputs
from lossdsl.shard import batch_dim as shard_batch_dim

SPECS = lossdsl.list_specs()
SIZES = {"B": 4, "C": 5, "D": 3, "V": 2, "K": 3, "S": (3, 2)}

# Specs whose per-element loss has no batch dim (a statistic of the whole batch) and whose
# formula has no value on an empty batch: a mean, max or logsumexp over it, or a division by
# its size. They raise InputError at B = 0 (N = 0 for mmd and vne).
RAISE_AT_0 = {
    "align_uniform": "logsumexp over the pairs, mean over B",
    "barlow_twins": "mean and var over B (BatchNorm statistics)",
    "dispersive": "logsumexp over (B, B'), log(size(B))",
    "mi_dv": "logsumexp over the off-diagonal pairs",
    "mi_infonce": "logsumexp over B'",
    "mi_js": "logsumexp over the off-diagonal pairs",
    "mi_nwj": "logsumexp over the off-diagonal pairs",
    "mi_smile": "logsumexp over the off-diagonal pairs",
    "mmd": "mean over N",
    "mr_stft": "mean over (B, frames, bins) of the log-magnitude L1",
    "prototypical": "a prototype is the mean of a class's M/C shots: none from no support",
    "vicreg": "mean over (B, D), var over B",
    "vne": "sum over N / size(N)",
    "stft_loss": "mean over (B, frames, bins) of the log-magnitude L1",
    # PML returns its zero loss for an empty batch; the per-proxy logsumexp over B has none
    "proxy_anchor": "logsumexp over B for each proxy",
    "psnr": "mean over (B, *S) of the squared error (kornia: NaN, mse of no entry)",
}
# Batch statistics made only of sums and declared-empty means: a value at B = 0 (by hand:
# batch_dice 1 - (0 + s) / (0 + s) = 0 per class; jaccard_metric: no class present, its masked
# mean declares empty=0; tcm: no pair, both masked means declare empty=0).
VALUE_AT_0 = {"batch_dice": np.zeros(5), "jaccard_metric": 0.0, "tcm": 0.0}
# spectral_convergence: the ratio of two norms over the batch, 0 / 0 at B = 0 (auraloss raises:
# torch.stft takes no empty batch)
VALUE_AT_0["spectral_convergence"] = np.nan
# cl_dice: the batch's sums are 0, Tprec = Tsens = smooth / smooth = 1, 1 - 2 * 1 / 2 = 0
VALUE_AT_0["cl_dice"] = 0.0
# histogram (PML HistogramLoss): one scalar over the batch's triplets, 0 when there is none
# (PML's zero loss for a batch without a positive and a negative pair)
VALUE_AT_0["histogram"] = 0.0
# At B = 1 there is no off-diagonal pair (the estimators divide by B(B-1) or take its log) and
# no unbiased variance (vicreg's ddof=1 and B - 1 covariance denominator): InputError.
RAISE_AT_1 = {"align_uniform", "mi_dv", "mi_js", "mi_nwj", "mi_smile", "vicreg"}


def batch_dim(spec) -> str:
    # B where a spec has one (ctc's log_probs[T, B, C] puts it second), as a data-parallel run
    return shard_batch_dim(spec.program())


def to(backend, d: dict, grad=False):
    fns = {k: v.on(backend) for k, v in d.items() if isinstance(v, ExampleFn)}
    d = {k: v for k, v in d.items() if k not in fns}
    if backend == "numpy":
        return {**d, **fns}
    if backend == "torch":
        return {
            **{
                k: torch.tensor(v, requires_grad=grad and v.dtype.kind == "f") for k, v in d.items()
            },
            **fns,
        }
    return {**{k: jnp.asarray(v) for k, v in d.items()}, **fns}


def value(backend, fn, d, **kw):
    out = fn(**to(backend, d), **kw)
    return out.detach().numpy() if backend == "torch" else np.asarray(out)


def float_names(d):
    return [k for k, v in d.items() if v.dtype.kind == "f"]


def grads(backend, fn, d, **kw) -> dict:
    """Gradients w.r.t. every float input (torch: through backward(), which needs a graph)."""
    if backend == "torch":
        conv = to("torch", d, grad=True)
        out = fn(**conv, **kw)
        assert out.requires_grad, "the result must stay in the graph (backward() would fail)"
        out.backward()
        # None: the input does not reach the loss (a detached target), its gradient is 0
        return {
            k: np.zeros(d[k].shape) if conv[k].grad is None else conv[k].grad.numpy()
            for k in float_names(d)
        }
    conv = to("jax", d)
    wrt = {k: conv[k] for k in float_names(d)}
    g = jax.grad(lambda w: fn(**{**conv, **w}, **kw))(wrt)
    return {k: np.asarray(v) for k, v in g.items()}


def cases(spec, n: int):
    """Inputs with every optional input passed, and with none passed."""
    variants = spec.variants()
    for absent in dict.fromkeys((variants[0], variants[-1])):
        sizes = {**SIZES, batch_dim(spec): n}
        yield absent, random_inputs(spec, sizes, np.random.default_rng(0), absent)


# ---- empty batch ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", TARGETS)
def test_empty_batch_every_spec(backend):
    """B = 0: a per-sample loss gives an empty "none" (the B = 4 shape with B = 0), sum 0 and
    mean 0 (every shipped spec's mean is plain or declares `empty 0`), with finite zero
    gradients that backward() reaches; a batch statistic gives its value or an InputError."""
    stats = set()
    for name in SPECS:
        spec = lossdsl.load(name)
        fn = spec.compile(backend)
        for absent, d in cases(spec, 0):
            if name in RAISE_AT_0:
                for red in ("none", "sum", "mean"):
                    with pytest.raises(lossdsl.InputError, match="needs at least [12] along it"):
                        fn(**to(backend, d), reduction=red)
                continue
            full = dict(cases(spec, 4))[absent]  # its shape at B = 4, from the reference
            shape4 = value("numpy", spec.compile("numpy"), full, reduction="none").shape
            none = value(backend, fn, d, reduction="none")
            if 4 not in shape4:  # no batch dim in the per-element loss: a batch statistic
                stats.add(name)
                want = VALUE_AT_0[name]
                for red in ("none", "sum", "mean"):
                    got = value(backend, fn, d, reduction=red)
                    np.testing.assert_array_equal(got, want if red == "none" else np.sum(want))
            else:
                assert none.shape == tuple(0 if k == 4 else k for k in shape4), (name, absent)
                assert float(value(backend, fn, d, reduction="sum")) == 0.0
                assert float(value(backend, fn, d, reduction="mean")) == 0.0
            if backend == "numpy" or not float_names(d):
                continue
            for red in ("sum", "mean"):
                for k, g in grads(backend, fn, d, reduction=red).items():
                    assert g.shape == d[k].shape and not np.any(g), (name, absent, k, red)
    assert stats == set(VALUE_AT_0)


def test_empty_batch_regressions():
    """nce_logistic divided by size(B) in Python (ZeroDivisionError), triplet_batch_hard took a
    max over the empty batch (torch IndexError, numpy ValueError): now none empty, sum 0,
    mean 0 on every backend."""
    for name in ("nce_logistic", "triplet_batch_hard"):
        spec = lossdsl.load(name)
        d = random_inputs(spec, {"B": 0, "N": 3, "D": 3}, np.random.default_rng(0))
        for backend in TARGETS:
            fn = spec.compile(backend)
            assert value(backend, fn, d, reduction="none").shape == (0,)
            assert float(value(backend, fn, d)) == 0.0


def test_too_small_dims_say_which_and_why():
    spec = lossdsl.load("vicreg")
    z = np.ones((1, 3))
    for backend in TARGETS:
        with pytest.raises(lossdsl.InputError) as e:
            spec.compile(backend)(**to(backend, {"z1": z, "z2": z}))
        assert "vicreg: dim B has size 1 in 'z1', but this loss needs at least 2 along it: it " in (
            str(e.value)
        )
    # coefficients of 0 do not switch the variance terms off: 0 * NaN is NaN (IEEE, and the
    # official VICReg code, facebookresearch/vicreg main_vicreg.py, gives NaN at B = 1 too)
    t = torch.ones(1, 3)
    with pytest.raises(lossdsl.InputError, match="dim B has size 1"):
        spec.compile("torch")(t, t, std_coeff=0.0, cov_coeff=0.0)
    # mmd's unbiased estimate divides by n (n - 1); the biased one (the default) does not
    mmd = lossdsl.load("mmd")
    x, y = np.zeros((1, 2)), np.zeros((3, 2))
    for backend in TARGETS:
        fn = mmd.compile(backend)
        # biased, all points equal: k = 1 everywhere, 1 + 1 - 2 * 1 = 0
        assert float(value(backend, fn, {"x": x, "y": y})) == 0.0
        with pytest.raises(lossdsl.InputError, match="dim N has size 1 .* at least 2"):
            fn(**to(backend, {"x": x, "y": y}), biased=False)
    # a class dim of size 0: the cross-entropy's logsumexp over no class
    ce = lossdsl.load("cross_entropy").compile("torch")
    with pytest.raises(lossdsl.InputError, match="dim C has size 0 .* cross-entropy over"):
        ce(torch.zeros(2, 0), torch.zeros(2, dtype=torch.long), check_indices=False)


def test_a_count_that_is_zero_at_ordinary_sizes_is_no_dims_requirement():
    """The size probes (lossdsl/empty.py) set one dim to 0 or 1 and the others to 7: a divisor
    size(C) - 7 is 0 there whatever D is, so it says nothing about D (it made D = 0 an
    InputError). At C = 3, D = 0 the value is sum over C + 0 * 1 / (3 - 7) = sum over C (IEEE:
    0 / -4 is -0)."""
    spec = lossdsl.parse(
        "loss f(x: float[B, C], y: float[D]) {\n"
        "    sum(x, over=C) + sum(y, over=D) * float(size(D) + 1) / float(size(C) - 7)\n}\n"
    )
    x = np.arange(6.0).reshape(2, 3)
    for backend in TARGETS:
        got = value(backend, spec.compile(backend), {"x": x, "y": np.zeros(0)}, reduction="none")
        np.testing.assert_array_equal(np.asarray(got), [3.0, 12.0], err_msg=backend)


# ---- single-element batch ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ("torch", "jax"))
def test_single_element_batch_every_spec(backend):
    """B = 1: every spec's value is finite and equal to the numpy reference (float64), and
    torch's gradient finite; or, where the formula needs two rows, an InputError on every
    backend. (jax: the per-element values of the full-input variant only; each op-by-op jax
    call costs ~0.1 s here.)"""
    for name in SPECS:
        spec = lossdsl.load(name)
        fn, ref = spec.compile(backend), spec.compile("numpy")
        for absent, d in cases(spec, 1):
            if name in RAISE_AT_1:
                for f, b in ((fn, backend), (ref, "numpy")):
                    with pytest.raises(lossdsl.InputError, match="needs at least 2 along it"):
                        f(**to(b, d))
                continue
            if backend == "jax" and absent:
                continue
            for red in ("none", "mean") if backend == "torch" else ("none",):
                want = value("numpy", ref, d, reduction=red)
                got = value(backend, fn, d, reduction=red)
                assert np.all(np.isfinite(got)), (name, absent, red)
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)
            if backend == "torch" and float_names(d):
                for k, g in grads("torch", fn, d).items():
                    assert np.all(np.isfinite(g)), (name, absent, k)


# ---- inputs and params of the wrong kind ----------------------------------------------------

BAD_INPUTS = {
    "list": lambda a: a.tolist(),
    "None": lambda a: None,
    "str": lambda a: "x",
    "number": lambda a: 1.5,
}


@pytest.mark.parametrize("backend", TARGETS)
def test_bad_input_kinds_every_spec(backend):
    """Every input position of every spec, each kind that is no tensor of the backend (and a
    numpy array for torch): InputError naming the input, never AttributeError/TypeError."""
    kinds = dict(BAD_INPUTS)
    if backend == "torch":
        kinds["numpy"] = lambda a: a
    for name in SPECS:
        spec = lossdsl.load(name)
        fn = spec.compile(backend)
        d = random_inputs(spec, SIZES, np.random.default_rng(0))
        optional = {i.name for i in spec.inputs if i.optional}
        good = to(backend, d)
        for k in d:
            for kind, bad in kinds.items():
                if kind == "None" and k in optional:
                    continue  # None is an absent optional input
                if isinstance(d[k], ExampleFn):  # a function input: no callable of each kind
                    bad = {"list": lambda a: [1.0], "numpy": lambda a: np.zeros(2)}.get(kind, bad)
                with pytest.raises(lossdsl.InputError, match=f"input '{k}' must be") as e:
                    fn(**{**good, k: bad(d[k])})
                assert f"{name}: input '{k}'" in str(e.value), (name, k, kind)


@pytest.mark.parametrize("backend", TARGETS)
def test_bad_param_kinds_every_spec(backend):
    """Every param of every spec given a list, None or a str: ParamError naming it."""
    for name in SPECS:
        spec = lossdsl.load(name)
        if not spec.params:
            continue
        fn = spec.compile(backend)
        good = to(backend, random_inputs(spec, SIZES, np.random.default_rng(0)))
        for p in spec.params:
            for bad in ([1.0], None, "1.0"):
                if p.choices:  # fixed when the spec compiles: no call takes it
                    with pytest.raises(lossdsl.ArityError, match=p.name) as info:
                        fn(**good, **{p.name: bad})
                    assert "choice param, fixed when the spec compiles" in info.value.hint
                    continue
                with pytest.raises(lossdsl.ParamError, match=f"param '{p.name}' must be"):
                    fn(**good, **{p.name: bad})


# ---- the class-id check where values do not exist --------------------------------------------

INDEXED = [n for n in SPECS if any(i.type.startswith("index") for i in lossdsl.load(n).inputs)]


def test_class_id_check_under_vmap_and_on_meta_tensors():
    """torch.func.vmap over 3 batches equals the 3 calls (the check ran on real values before;
    .item() under vmap raised); meta tensors give a meta result of the real result's shape
    (.item() on meta raised). Out-of-range ids outside vmap still raise."""
    assert len(INDEXED) > 20
    for name in INDEXED:
        spec = lossdsl.load(name)
        fn = spec.compile("torch")
        ds = [random_inputs(spec, SIZES, np.random.default_rng(s)) for s in range(3)]
        stacked = {k: torch.tensor(np.stack([d[k] for d in ds])) for k in ds[0]}
        keys = list(ds[0])
        out = torch.func.vmap(lambda *a: fn(**dict(zip(keys, a))))(*stacked.values())
        loop = torch.stack([fn(**to("torch", d)) for d in ds])
        torch.testing.assert_close(out, loop, rtol=1e-12, atol=1e-12, msg=name)
        meta = {k: v.to("meta") for k, v in to("torch", ds[0]).items()}
        for red in ("none", "mean"):
            got = fn(**meta, reduction=red)
            assert got.is_meta and got.shape == fn(**to("torch", ds[0]), reduction=red).shape
    fn = lossdsl.load("focal").compile("torch")
    with pytest.raises(lossdsl.InputError, match="class ids outside"):
        fn(torch.zeros(2, 5), torch.tensor([0, 5]))


def test_empty_batch_chunked_and_linear_fused_schedules():
    """The V-chunked and linear-fused schedules run the spec's sub-programs, whose outputs are
    index values too (where(valid, target, 0)): at B = 0 they gave a float where an index was
    declared (an InputError); now 0 with a zero gradient, like the plain schedule."""
    for name in ("cross_entropy", "focal"):
        spec = lossdsl.load(name)
        t = torch.zeros(0, dtype=torch.long)
        for fn, x in (
            (spec.compile("torch", schedule="chunked", chunk=2), (torch.randn(0, 5),)),
            (spec.compile_linear("torch", chunk=2), (torch.randn(0, 3), torch.randn(5, 3))),
            (spec.compile_linear("torch", rows=2), (torch.randn(0, 3), torch.randn(5, 3))),
        ):
            x = [a.requires_grad_() for a in x]
            out = fn(*x, t)
            out.backward()
            assert float(out.detach()) == 0.0 and all(not a.grad.any() for a in x), name
