"""Numerics at the extremes, for every shipped spec on every backend (in the spirit of optax's
_classification_stability_test.py): logits at +-1e4, all-zero inputs (zero-norm embeddings,
equal logits), domain inputs exactly at their bounds (one-hot probabilities, p = 0 and 1),
p_t = 1 and p_t = 0, all-masked and all-ignored batches, a class absent from the batch. The
value and the gradient must be finite; the few specs whose math is undefined at an extreme
declare it in EXEMPT with the reason (and the spec header says the same).

The precision policy: float16 and bfloat16 inputs are computed in float32 and the result comes
back in the input dtype. Checked for every spec against the float64 reference on the same
(rounded) inputs, within the tolerances below."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import SHAPES as _  # noqa: F401  (conftest: jax in float64)
from helpers import call, random_inputs, sizes_for

import lossdsl
from lossdsl.codegen import TARGETS
from lossdsl.equiv import ExampleFn, grads

SPECS = lossdsl.list_specs()
SIZES = {"B": 4, "C": 5, "D": 3, "V": 2, "K": 3, "S": (3, 2), "N": 4, "M": 3, "L": 3, "T": 4}


# (spec, scenario) -> {"value" or an input's name: why that value or gradient is not finite
# there}. Each is a property of the math (or of the reference implementations), not a bug.
EXEMPT: dict[tuple[str, str], dict[str, str]] = {
    ("ciou", "all-zero inputs"): {
        "value": "all-zero boxes have zero width and height: the aspect term atan(w / h) is "
        "atan(0 / 0), NaN in torchvision's complete_box_iou_loss, whose formula the spec follows "
        "(a degenerate box; the docstring says so)",
        **dict.fromkeys(["pred", "target"], "the value is NaN"),
    },
    ("clip", "logits at +-1e4"): {
        "value": "logit_scale = 1e4 is a temperature of e^-1e4: exp overflows; open_clip clamps "
        "the parameter to ln 100 after every step, outside the loss",
        **dict.fromkeys(["image", "text", "logit_scale"], "the value is NaN"),
    },
    **{
        (name, "logits at +-1e4"): {
            "value": "exp(log_input) at a log-measure of 1e4 overflows: the divergence is "
            "infinite (optax.losses.generalized_kl_divergence's exp(log_predictions) too)",
            "log_input": "d/dx exp(x) overflows with it",
        }
        for name in ("generalized_kl", "convex_kl")
    },
    ("poisson_nll", "logits at +-1e4"): {
        "value": "log_input = true: the rate exp(input) at a log-rate of 1e4 overflows, as in "
        "torch.nn.functional.poisson_nll_loss (exp(input) - target * input)",
        "input": "d/dx exp(x) overflows with it",
    },
    ("kl_div_2d", "domain inputs at their bounds"): {
        "value": "a zero prediction where the target has mass is KL = inf (t log(t / 0)), as "
        "kornia's kl_div_loss_2d; the spec's docstring says so",
        **dict.fromkeys(["pred", "target"], "the value is infinite"),
    },
    ("psnr", "all-zero inputs"): {
        "value": "identical images have MSE 0: PSNR = 10 log10(max^2 / 0) is +inf (kornia's "
        "psnr and the definition), the loss -inf",
        **dict.fromkeys(["image", "target"], "the value is infinite"),
    },
    ("p2sgrad", "all-zero inputs"): {
        "value": "a zero embedding has no direction: the cosine <e, w> / |e| is 0 / 0, NaN in "
        "pytorch-metric-learning's P2SGradLoss (input_feat.mm(w) / input_norm) too",
        **dict.fromkeys(["embeddings", "W"], "the value is NaN"),
    },
    ("hl_gauss_ce", "logits at +-1e4"): {
        "value": "targets 1e4 bins outside the support put no Gaussian mass on any bin (0 / 0), "
        "as in the paper's code; the paper clips targets to the support first",
        **dict.fromkeys(["logits", "target", "centers"], "the value is NaN"),
    },
    ("kl_div", "domain inputs at their bounds"): {
        "target": "d/dt t log t = log t + 1 is -inf at t = 0 (as torch.nn.functional.kl_div); "
        "the value is finite and the gradient to the input is",
    },
    ("kl_div_pointwise", "domain inputs at their bounds"): {
        "target": "d/dt t log t = log t + 1 is -inf at t = 0 (as torch.nn.functional.kl_div); "
        "the value is finite and the gradient to the input is",
    },
    ("mi_js", "logits at +-1e4"): {
        "value": "the reported value is the NWJ bound (SMILE's JS estimator), whose e^(T - 1) "
        "overflows at critic scores of 1e4; the JS gradient it trains with stays finite",
    },
    ("mi_nwj", "logits at +-1e4"): {
        "value": "NWJ's e^(T - 1) overflows at critic scores of 1e4: the bound is unbounded",
        "scores": "the gradient of e^(T - 1) overflows with it",
    },
    ("neural_ndcg", "logits at +-1e4"): {
        "value": "labels are relevance grades: a grade of 1e4 has the gain 2^1e4 - 1 = inf, and "
        "DCG / IDCG is inf / inf (allRank's neuralNDCG too); scores at +-1e4 with grades in "
        "0..4 give a finite value and gradient (tests/library/test_ranking.py)",
        **dict.fromkeys(["scores", "labels"], "the value is NaN"),
    },
    ("rloo", "logits at +-1e4"): {
        "value": "the importance ratio exp(logps - old_logps) at a log ratio of 2e4 overflows, as "
        "trl's coef_1 = torch.exp(log_ratio): with a negative advantage the unclipped term rho A "
        "is the min, -inf (a step that far off-policy is outside PPO's trust region)",
        "logps": "the gradient rho A overflows with it",
    },
    ("sinkhorn", "domain inputs at their bounds"): {
        "value": "a histogram row of all zeros has no transport plan: its potentials are -inf and "
        "+inf, and P = exp(-inf + inf) is NaN, as in POT's sinkhorn_log; a zero weight beside "
        "nonzero ones is finite (tests/library/test_ot.py)",
        **dict.fromkeys(["cost", "a", "b"], "the value is NaN"),
    },
    ("sinkhorn_divergence", "domain inputs at their bounds"): {
        **dict.fromkeys(
            ["a", "b"],
            "a zero weight has log 0 = -inf potentials: d log a / da at 0 times a zero plan "
            "entry is NaN, as POT's sinkhorn_log gradient (the sinkhorn spec's zero-weight test "
            "in tests/library/test_ot.py); the value and the gradient w.r.t. the points are "
            "finite",
        ),
    },
    ("vae_elbo_gaussian", "logits at +-1e4"): {
        "value": "KL needs e^logvar: a log-variance of 1e4 overflows (the KL is infinite)",
        "logvar": "d KL / d logvar = (e^logvar - 1) / 2 overflows with it",
    },
    ("z_loss_spherical", "all-zero inputs"): {
        "value": "equal logits have zero spread: the z-score (z - mean) / std is 0 / 0 in the "
        "paper's definition",
        "logits": "the value is NaN",
    },
}


def _decls(spec):
    return spec._lowered(frozenset()).inputs


def _scenarios(spec, seed=0):
    """(name, inputs) pairs: the extremes that apply to this spec's signature."""
    rng = np.random.default_rng(seed)
    base = random_inputs(spec, sizes_for(spec, SIZES), rng)
    decls = _decls(spec)
    free = [d.var.name for d in decls if d.var.type.dtype == "float" and not _bounded(d)]
    bounded = [d.var.name for d in decls if d.var.type.dtype == "float" and _bounded(d)]
    out = []
    if free:
        big = dict(base)
        for k in free:
            big[k] = np.sign(base[k] + 1e-3) * 1e4 * (1 + rng.random(base[k].shape))
        out.append(("logits at +-1e4", big))
        zero = dict(base)
        for k in free:
            zero[k] = np.zeros_like(base[k])
        out.append(("all-zero inputs", zero))
    if bounded:
        edge = dict(base)
        for d in decls:
            if d.var.name in bounded:
                lo, hi = d.domain
                lo = lo if np.isfinite(lo) else hi - 1.0
                hi = hi if np.isfinite(hi) else lo + 1.0
                # a strict bound (`x > 0`) is approached, not reached
                lo_open, hi_open = d.open_bounds
                lo += 1e-6 * (1 + abs(lo)) if lo_open else 0.0
                hi -= 1e-6 * (1 + abs(hi)) if hi_open else 0.0
                edge[d.var.name] = np.where(rng.random(base[d.var.name].shape) < 0.5, lo, hi)
        out.append(("domain inputs at their bounds", edge))
    masks = [d.var.name for d in decls if d.var.type.dtype == "bool"]
    if masks:
        out.append(("all-masked", {**base, **{k: np.zeros_like(base[k]) for k in masks}}))
    logits, target = _classification(decls)
    if logits is not None:
        y = base[target]
        c = base[logits].shape[-1]
        hot = np.eye(c)[y] if base[logits].ndim == 2 else None
        if hot is not None:
            out.append(("p_t = 1", {**base, logits: 1e4 * (2 * hot - 1)}))
            other = np.eye(c)[(y + 1) % c]
            out.append(("p_t = 0", {**base, logits: 1e4 * (2 * other - 1)}))
            out.append(("class 0 absent", {**base, target: np.maximum(y, 1)}))
    ignore = next((p for p in spec.params if p.name == "ignore_index"), None)
    if ignore is not None and target is not None:
        out.append(("all-ignored", {**base, target: np.full_like(base[target], ignore.default)}))
    return out


def _bounded(d) -> bool:
    lo, hi = d.domain if d.domain is not None else (-np.inf, np.inf)
    return bool(np.isfinite(lo) or np.isfinite(hi))


def _classification(decls):
    """(logits, target) when the spec takes float[B, C] logits and an index[B] of C."""
    for t in decls:
        of = t.var.type.of
        if of is None:
            continue
        for x in decls:
            dims = x.var.type.dims
            # a class index per row: [B] of C against [B, C] (a [B, K] multi-label index list
            # against [B, K] is not one, nor embeddings whose last dim happens to be C)
            if (
                x.var.type.dtype == "float"
                and len(dims) == 2
                and dims[-1] == of
                and tuple(t.var.type.dims) == tuple(dims[:-1])
            ):
                return x.var.name, t.var.name
    return None, None


def _finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=np.float64))))


@pytest.mark.parametrize("name", SPECS)
def test_extremes_give_finite_values_and_gradients(name):
    spec = lossdsl.load(name)
    wrt = [d.var.name for d in _decls(spec) if d.var.type.dtype == "float"]
    failures = []
    for scenario, inputs in _scenarios(spec):
        exempt = EXEMPT.get((name, scenario), {})
        for backend in TARGETS:
            value = call(backend, spec.compile(backend), inputs, "float64")
            if not _finite(value) and "value" not in exempt:
                failures.append(f"{scenario}: {backend} value {value}")
        for backend in ("torch", "jax"):
            g = grads(backend, spec.compile(backend), inputs, wrt, "float64")
            bad = [k for k, v in g.items() if not _finite(v) and k not in exempt]
            if bad:
                failures.append(f"{scenario}: {backend} gradient of {bad} not finite")
    assert not failures, f"{name}:\n  " + "\n  ".join(failures)


# ---- precision policy ---------------------------------------------------------------------

# relative error of the result (rounded to the output dtype once, computed in float32):
# float16 has a 2^-11 unit roundoff, bfloat16 2^-8; a few ulps of slack for the float32 work
TOL = {"float16": 4e-3, "bfloat16": 3e-2}


def _round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    import torch

    return torch.tensor(x).to(getattr(torch, dtype)).double().numpy()


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_compute_in_float32_and_return_their_dtype(name, dtype):
    import jax.numpy as jnp
    import torch

    spec = lossdsl.load(name)
    inputs = random_inputs(spec, sizes_for(spec, SIZES), np.random.default_rng(1))
    floats = [k for k, v in inputs.items() if v.dtype.kind == "f"]
    inputs = {k: _round_to(v, dtype) if k in floats else v for k, v in inputs.items()}
    want = np.asarray(call("numpy", spec.compile("numpy"), inputs, "float64"))
    tol = TOL[dtype] * max(1.0, float(np.max(np.abs(want))))
    tfn, jfn = spec.compile("torch"), spec.compile("jax")
    targs = {
        k: v.on("torch")
        if isinstance(v, ExampleFn)
        else torch.tensor(v).to(getattr(torch, dtype))
        if k in floats
        else torch.tensor(v)
        for k, v in inputs.items()
    }
    got = tfn(**targs)
    assert got.dtype == getattr(torch, dtype)
    np.testing.assert_allclose(
        got.detach().double().numpy(), want, rtol=0, atol=tol, err_msg="torch"
    )
    jargs = {
        k: v.on("jax")
        if isinstance(v, ExampleFn)
        else jnp.asarray(v, dtype=getattr(jnp, dtype))
        if k in floats
        else jnp.asarray(v)
        for k, v in inputs.items()
    }
    got = jfn(**jargs)
    assert got.dtype == getattr(jnp, dtype)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=tol, err_msg="jax")


# ---- masked logits: -inf classes (vocabulary masks, padding) ------------------------------

# spec -> (the logits inputs masked at the same classes, the param whose value is varied, its
# values). A -inf class has probability 0 and adds 0 to every sum over classes (0 log 0 = 0).
MASKED_LOGITS = {
    "cross_entropy": (("logits",), "label_smoothing", (0.0, 0.1, 1.0)),
    "label_smoothing_ce": (("logits",), "epsilon", (0.0, 0.1, 1.0)),
    "soft_cross_entropy": (("logits",), "label_smoothing", (0.0, 0.1, 1.0)),
    "kd": (("student", "teacher"), "T", (1.0, 4.0)),
}


def _masked_inputs(spec, absent, logits):
    """Random inputs with two classes per row at -inf (never the target: a -inf target class
    is an infinite loss), soft targets 0 there."""
    rng = np.random.default_rng(0)
    d = random_inputs(spec, sizes_for(spec, SIZES), rng, absent)
    b, c = SIZES["B"], SIZES["C"]
    cols = np.stack([rng.choice(c, 2, replace=False) for _row in range(b)])
    if "target" in d and d["target"].dtype.kind == "i":
        d["target"] = np.array([next(k for k in range(c) if k not in r) for r in cols])
    rows = np.arange(b)[:, None]
    for k in logits:
        d[k][rows, cols] = -np.inf
    if "target" in d and d["target"].dtype.kind == "f":
        d["target"][rows, cols] = 0.0
    return d


@pytest.mark.parametrize("name", MASKED_LOGITS)
def test_masked_logits_give_finite_values_and_gradients(name):
    """Every variant, torch and jax, eager and jax.jit, the param as a Python number and as a
    tensor (traced under jit): the value is the numpy reference's (finite) and the gradient is
    finite. cross_entropy with label_smoothing=0 as a tensor was NaN (0 * inf in the smoothing
    term, which only the Python 0's specialized variant drops)."""
    import jax
    import jax.numpy as jnp
    import torch

    spec = lossdsl.load(name)
    logits, param, values = MASKED_LOGITS[name]
    for absent in spec.variants():
        d = _masked_inputs(spec, absent, logits)
        wrt = [k for k, v in d.items() if v.dtype.kind == "f"]
        for v in values:
            want = spec.compile("numpy")(**d, **{param: v})
            assert np.isfinite(want), (name, absent, v)
            tf = spec.compile("torch")
            for p in (v, torch.tensor(v, dtype=torch.float64)):
                conv = {
                    k: torch.tensor(x, requires_grad=k in wrt) if x.dtype.kind == "f" else
                    torch.tensor(x) for k, x in d.items()
                }  # fmt: skip
                out = tf(**conv, **{param: p})
                gs = torch.autograd.grad(out, [conv[k] for k in wrt], allow_unused=True)
                np.testing.assert_allclose(out.item(), want, rtol=1e-12, err_msg=(name, v))
                assert all(g is None or torch.isfinite(g).all() for g in gs), (name, absent, v)
            jf = spec.compile("jax")
            conv = {k: jnp.asarray(x) for k, x in d.items()}
            f = lambda diff, p: jf(**{**conv, **diff}, **{param: p})  # noqa: E731
            for fn, p in ((f, v), (jax.jit(f), jnp.float64(v))):
                out, g = jax.value_and_grad(fn)({k: conv[k] for k in wrt}, p)
                np.testing.assert_allclose(float(out), want, rtol=1e-12, err_msg=(name, v))
                assert all(np.isfinite(x).all() for x in g.values()), (name, absent, v)


# ---- the focal factor (1 - p_t)^gamma at saturation --------------------------------------

GAMMAS = (0.0, 0.25, 0.5, 0.99, 1.0, 1.5, 2.0, 5.0)
GAPS = np.array([0.0, 5.0, 17.0, 30.0, 100.0, 1e4])


def _saturating(name):
    """One row per logit gap, the true class ahead by it: softmax focal [gap, 0, 0] with
    target 0; the sigmoid ones a positive at +gap and a negative at -gap."""
    if name == "focal":
        x = np.zeros((len(GAPS), 3))
        x[:, 0] = GAPS
        return {"logits": x, "target": np.zeros(len(GAPS), dtype=np.int64)}
    x = np.stack([GAPS, -GAPS], 1)
    return {"logits": x, "target": np.stack([np.ones(len(GAPS)), np.zeros(len(GAPS))], 1)}


@pytest.mark.parametrize("name", ["focal", "sigmoid_focal", "poly1_focal"])
def test_focal_gradient_is_finite_when_the_true_class_saturates(name):
    """For 0 < gamma < 1, d/dp (1 - p)^gamma is infinite at p_t = 1, where 1 - p_t underflows
    to 0 for a logit gap > ~17 in float32 (> ~37 in float64): torch and jax gave NaN (0 * inf)
    for focal [[30, 0, 0]], gamma = 0.5. The gradient must equal the float64 central finite
    difference of the numpy reference (which is ~e^(-gap (1 + gamma)): 0 at large gaps, as
    optax.sigmoid_focal_loss and kornia.losses.focal_loss give) in float32 and float64."""
    from lossdsl.equiv import fd_grads

    spec = lossdsl.load(name)
    d = _saturating(name)
    for gamma in GAMMAS:
        absent = frozenset(i.name for i in spec.inputs if i.optional and i.name not in d)
        want = fd_grads(spec, absent, d, ["logits"], gamma=gamma)["logits"]
        for backend in ("torch", "jax"):
            fn = spec.compile(backend)
            for dtype, atol in (("float64", 1e-9), ("float32", 1e-6)):
                got = grads(backend, fn, d, ["logits"], dtype, gamma=gamma)["logits"]
                assert np.isfinite(got).all(), (backend, dtype, gamma)
                np.testing.assert_allclose(
                    got, want, rtol=1e-4, atol=atol, err_msg=f"{backend} {dtype} {gamma=}"
                )


# ---- all-masked weighted means: the declared empty value, exactly zero gradient -------------

# The specs whose `reduce mean by` weights come from an input or ignore_index (circle,
# triplet_batch_hard and ca_calibration weigh by what the batch holds: not listed here).
# spec -> (params, the inputs zeroed (weights/masks), the logits, masked classes allowed)
EMPTY_MEANS = {
    "cross_entropy": ({"ignore_index": 1, "label_smoothing": 0.1}, (), "logits", True),
    "ldam": ({}, ("weight",), "logits", True),
    "mae_masked_mse": ({}, ("mask",), "pred", False),
    "z_loss": ({}, ("mask",), "logits", True),
}


@pytest.mark.parametrize("name", EMPTY_MEANS)
def test_an_all_masked_batch_gives_its_empty_value_with_zero_gradient(name):
    """Every weight 0 (or every target ignored), logits at +-1e4 in float32 and, where the spec
    takes class logits, one -inf (masked) class per row: the mean is the declared `empty 0`
    and every gradient is exactly 0, on torch and jax (README: an empty weighted mean)."""
    params, zeroed, logits, masked = EMPTY_MEANS[name]
    spec = lossdsl.load(name)
    rng = np.random.default_rng(0)
    d = _all_masked(spec, zeroed, params, rng)
    d[logits] = np.where(rng.random(d[logits].shape) < 0.5, 1e4, -1e4)
    if masked:
        d[logits][..., 2] = -np.inf
        if "target" in d and d["target"].dtype.kind == "i":
            d["target"][d["target"] == 2] = 0
    _assert_zero_value_and_gradient(spec, d, params)


# cross_entropy and ldam are not here yet: a row of -inf logits whose target is ignored (or
# weight 0) still has a NaN gradient (log_softmax's backward: 0 - softmax * 0, softmax NaN),
# as F.cross_entropy has (torch 2.13); masking their logits costs a select over [B, C].
@pytest.mark.parametrize("name", ["z_loss"])
def test_an_all_masked_batch_with_whole_rows_at_minus_inf_has_zero_gradient(name):
    """The same, with every logit of row 0 at -inf (a padded token whose whole vocabulary is
    masked): 0 * inf inside the per-element loss (z_loss: the derivative 2 * lse of lse^2 at
    lse = -inf; logsumexp's backward on a row of -inf) must not reach the gradient. Expected
    value: the declared `empty 0`; gradient exactly 0 (README: an empty weighted mean)."""
    params, zeroed, logits = EMPTY_MEANS[name][:3]
    spec = lossdsl.load(name)
    d = _all_masked(spec, zeroed, params, np.random.default_rng(1))
    d[logits][0] = -np.inf
    _assert_zero_value_and_gradient(spec, d, params)


def _all_masked(spec, zeroed, params, rng) -> dict:
    """Random inputs with every weight/mask in `zeroed` 0 and every target ignored."""
    d = random_inputs(spec, sizes_for(spec, SIZES), rng)
    for k in zeroed:
        d[k] = np.zeros_like(d[k])
    if "ignore_index" in params:
        d["target"] = np.full_like(d["target"], params["ignore_index"])
    return d


def _assert_zero_value_and_gradient(spec, d, params) -> None:
    wrt = [k for k, v in d.items() if v.dtype.kind == "f"]
    for backend in ("torch", "jax"):
        fn = spec.compile(backend)
        assert call(backend, fn, d, "float32", **params) == 0.0, backend
        for k, g in grads(backend, fn, d, wrt, "float32", **params).items():
            assert (g == 0).all(), (backend, k)


PLUS_INF_BODIES = {  # each is NaN on a row with a +inf logit (README, "Masked logits")
    "ce": "use classification(x, t)\n    ce",
    "pt": "use classification(x, t)\n    pt",
    "log_softmax": "sum(log_softmax(x, over=C) * y, over=C)",
    "softmax": "sum(softmax(x, over=C) * y, over=C)",
    "log(softmax)": "sum(log(softmax(x, over=C)) * y, over=C)",
}


@pytest.mark.parametrize("lead", ["B", "B, L"])
@pytest.mark.parametrize("body", sorted(PLUS_INF_BODIES))
@pytest.mark.parametrize("backend", TARGETS)
def test_a_plus_inf_logit_makes_its_row_nan_and_leaves_the_others(backend, body, lead):
    """A +inf logit (not the target's) has no distribution: its row is NaN, as
    torch.log_softmax / F.cross_entropy / jax.nn.log_softmax give ([inf, 1] -> [nan, nan]);
    the x - logsumexp(x) formula would give -inf on the finite entries (an inf loss). The
    fuzzer's evaluator once did that (difffuzz classes nan/* and value/*). Row 1 is finite:
    ce = logsumexp([0, 1, 2]) - 1 = 1.4076059644443801 (hand computation, float64). With a
    dim L before the classes (lead "B, L", L of size 1), torch's cross-entropy off axis 1 was
    logsumexp - x[t] = inf (masked_diffusion_ce; tests/test_chunked.py's non-finite rows)."""
    import jax.numpy as jnp
    import torch

    src = (
        f"loss f(x: float[{lead}, C], y: float[{lead}, C], t: index[{lead}] of C) {{\n    "
        + PLUS_INF_BODIES[body]
        + "\n}"
    )
    x = np.array([[-1.0, -1.5, np.inf, -1.8], [0.0, 1.0, 2.0, -np.inf]])
    y, t = np.ones((2, 4)), np.array([1, 1])
    if lead == "B, L":
        x, y, t = x[:, None], y[:, None], t[:, None]
    conv = {"torch": torch.as_tensor, "jax": jnp.asarray}.get(backend, np.asarray)
    fn = lossdsl.parse(src).compile(backend)
    out = np.asarray(fn(conv(x), conv(y), conv(t), reduction="none"), dtype=np.float64)
    out = out.reshape(2)
    assert np.isnan(out[0]), (backend, body, out)
    assert np.isfinite(out[1]) or body in ("log_softmax", "log(softmax)"), (backend, body, out)
    if body == "ce":
        assert abs(out[1] - 1.4076059644443801) < 1e-12, (backend, out)


# ---- non-finite inputs: every backend agrees with the reference -----------------------------


@pytest.mark.parametrize("name", SPECS)
def test_non_finite_inputs_give_the_reference_value_on_every_backend(name):
    """Each float input in turn gets a NaN, a +inf and a -inf at its first, second and last
    entries (one at a time; the others random): every backend's per-element value equals the
    numpy reference's (float64), NaN where it is NaN and inf with its sign. The class: a
    template that is exact on finite inputs but not at inf (torch's cross-entropy off axis 1
    was logsumexp - x[t], inf where log_softmax is NaN: masked_diffusion_ce)."""
    spec = lossdsl.load(name)
    base = random_inputs(spec, sizes_for(spec, SIZES), np.random.default_rng(3))
    ref = spec.compile("numpy")
    fns = {b: spec.compile(b) for b in TARGETS if b != "numpy"}
    if spec.fns:
        # grad()'s numpy meaning is a central difference of the whole body (ops._fd_grad): a
        # NaN in one sample's critic value makes every sample's difference NaN, where autograd
        # keeps each sample's own derivative: torch and jax (both autograd) are held to each
        # other here (test_specs holds them to the reference on finite inputs)
        ref_backend, ref = "torch", fns.pop("torch")
    else:
        ref_backend = "numpy"
    for k, v in base.items():
        if v.dtype.kind != "f" or not v.size:
            continue
        for bad, at in itertools.product((np.nan, np.inf, -np.inf), (0, 1, v.size - 1)):
            d = dict(base)
            d[k] = v.copy()
            d[k].flat[at % v.size] = bad
            with np.errstate(all="ignore"):
                try:
                    want = call(ref_backend, ref, d, "float64", reduction="none")
                except lossdsl.LossError as e:  # a domain check (p in [0, 1]) refuses it
                    for b, fn in fns.items():
                        with pytest.raises(type(e)):
                            call(b, fn, d, "float64", reduction="none")
                    continue
                for b, fn in fns.items():
                    got = call(b, fn, d, "float64", reduction="none")
                    np.testing.assert_allclose(
                        got,
                        want,
                        rtol=1e-7,
                        atol=1e-9,
                        equal_nan=True,
                        err_msg=f"{name} {b}: {k}.flat[{at}] = {bad}",
                    )
