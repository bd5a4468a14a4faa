"""Peer parity with optax 0.2.8: optax's OWN installed test modules, run with lossdsl specs.

optax ships its loss tests inside the package (site-packages/optax/losses/_classification_test.py,
_regression_test.py, _ranking_test.py, _fenchel_young_test.py, _self_supervised_test.py,
_smoothing_test.py; version 0.2.8, the one `pip install -e .[test]` resolves here). For each optax
loss that a lossdsl spec reproduces, SUBSTITUTIONS names the spec, its params, and an adapter
with optax's signature that calls the spec's JAX module (compile("jax")). A case:

1. replaces that ONE optax function (the module attribute the test module calls, e.g.
   optax.losses._classification.softmax_cross_entropy) by the adapter: the other optax functions
   a test compares against stay optax's own, so those comparisons are spec-vs-optax;
2. imports a fresh copy of the test module (so parameters bound at import time, such as
   _ranking_test's `loss_fn`, get the adapter too);
3. runs the one test method of optax's TestCase (their inputs, settings and golden values, their
   assertions), numpy's global RNG seeded with 0 first (optax draws some inputs unseeded);
4. asserts the test passed and that the adapter was called (a case that never calls the
   substituted function is not counted).

The adapters only move optax's `axis` to the last dim and flatten the batch, turn optax's
`where=` into the spec's mask input (or -inf logits where the spec has the masked-logit
convention), and map optax's param names to the spec's. EXCLUDED lists every case of the
substituted classes that is not run, with its reason; PASS_COUNTS the number of cases per
substitution (docs/peers/optax.md carries the same table). JAX runs in float64 around each case
(the float32 inputs optax builds stay float32).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import itertools
import math
import re
import sys
import unittest
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.special import logsumexp
from optax.losses import (
    _classification,
    _fenchel_young,
    _ranking,
    _regression,
    _self_supervised,
    _smoothing,
)

import lossdsl

OPTAX_VERSION = "0.2.8"
TESTS_DIR = Path(optax.losses.__file__).parent
_counter = itertools.count()


@functools.cache
def _jax(spec, **baked):
    return lossdsl.load(spec).compile("jax", **baked)


@functools.cache
def _torch(spec, **baked):
    return lossdsl.load(spec).compile("torch", **baked)


# ---------------------------------------------------------------------------------------------
# Adapters: optax's signature -> the spec's inputs [B, ...] and params.


def _canon(axis, ndim):
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _rows(x, axes):
    """x with `axes` moved last and merged into one dim, the rest flattened: ([B, C], batch)."""
    x = jnp.asarray(x)
    batch = tuple(i for i in range(x.ndim) if i not in axes)
    x = jnp.transpose(x, batch + axes)
    bshape = x.shape[: len(batch)]
    return x.reshape((math.prod(bshape), -1)), bshape


def _mask_rows(where, logits, axis):
    """optax's where= (a per-logit mask, or one with the class axis left out) as [B, C] rows."""
    where = jnp.asarray(where)
    if where.ndim != jnp.ndim(logits):
        where = jnp.expand_dims(where, axis)
    return _rows(jnp.broadcast_to(where, jnp.shape(logits)), _canon(axis, jnp.ndim(logits)))[0]


def _per_row(spec, logits, other, axis=-1, where=None, mask_input=None, **params):
    """A [B, C] -> [B] spec over optax's `axis`, with optax's `where` as the spec's mask input."""
    axes = _canon(axis, jnp.ndim(logits))
    x, bshape = _rows(logits, axes)
    y, _ = _rows(other, axes)
    kw = {} if where is None else {mask_input: _mask_rows(where, logits, axis)}
    return _jax(spec)(x, y, **kw, reduction="none", **params).reshape(bshape)


def _elementwise(spec, a, b, **params):
    a = jnp.asarray(a)
    b = jnp.broadcast_to(jnp.asarray(b, dtype=a.dtype), a.shape)
    out = _jax(spec)(a.reshape(1, -1), b.reshape(1, -1), reduction="none", **params)
    return out.reshape(a.shape)


def softmax_cross_entropy(logits, labels, axis=-1, where=None):
    """soft_cross_entropy; where= as -inf logits and 0 targets (the spec's masked-logit rule)."""
    if where is not None:
        m = jnp.asarray(where)
        if m.ndim != jnp.ndim(logits):
            m = jnp.expand_dims(m, axis)
        logits = jnp.where(m, logits, -jnp.inf)
        labels = jnp.where(m, labels, 0.0)
    return _per_row("soft_cross_entropy", logits, labels, axis)


def softmax_cross_entropy_poly(logits, labels, axis=-1, where=None):
    """poly1_soft, epsilon = 0 (optax's identity: test_equals_to_cross_entropy_when_eps0)."""
    return _per_row("poly1_soft", logits, labels, axis, where, "mask", epsilon=0.0)


def safe_softmax_cross_entropy(logits, labels):
    return _per_row("soft_cross_entropy", logits, labels)


def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None):
    """cross_entropy; a row whose logits are all masked is ignore_index (optax: 0)."""
    axes = _canon(axis, jnp.ndim(logits))
    x, bshape = _rows(logits, axes)
    t = jnp.asarray(labels).reshape(-1)
    if where is not None:
        m = _mask_rows(where, logits, axis)
        valid = jnp.any(m, axis=-1)
        x = jnp.where(m, x, jnp.where(valid[:, None], -jnp.inf, 0.0))
        t = jnp.where(valid, t, -100)
    return _jax("cross_entropy")(x, t, reduction="none").reshape(bshape)


def sigmoid_binary_cross_entropy(logits, labels):
    return _elementwise("bce_with_logits", logits, labels)


def sigmoid_focal_loss(logits, labels, *, alpha=None, gamma=2.0):
    """sigmoid_focal; optax's alpha=None is the spec's alpha < 0 (torchvision's: no weighting)."""
    return _elementwise(
        "sigmoid_focal", logits, labels, alpha=-1.0 if alpha is None else alpha, gamma=gamma
    )


def poly_loss_cross_entropy(logits, labels, *, epsilon=2.0, axis=-1, where=None):
    return _per_row("poly1_soft", logits, labels, axis, where, "mask", epsilon=epsilon)


def hinge_loss(predictor_outputs, targets):
    return _elementwise("hinge", predictor_outputs, targets)


def perceptron_loss(predictor_outputs, targets):
    return _elementwise("perceptron", predictor_outputs, targets)


def sparsemax_loss(logits, labels):
    return _elementwise("binary_sparsemax", logits, labels)


def _per_row_index(spec, scores, labels):
    x, bshape = _rows(scores, (jnp.ndim(scores) - 1,))
    return _jax(spec)(x, jnp.asarray(labels).reshape(-1), reduction="none").reshape(bshape)


multiclass_hinge_loss = functools.partial(_per_row_index, "multiclass_hinge")
multiclass_perceptron_loss = functools.partial(_per_row_index, "multiclass_perceptron")
multiclass_sparsemax_loss = functools.partial(_per_row_index, "sparsemax")


def generalized_kl_divergence(log_predictions, targets, axis=-1, where=None):
    return _per_row("generalized_kl", log_predictions, targets, axis, where, "mask")


def convex_kl_divergence(log_predictions, targets, axis=-1, where=None):
    """convex_kl, with the DeprecationWarning of optax's alias (its signature, not loss math)."""
    warnings.warn(
        "convex_kl_divergence is deprecated: use generalized_kl_divergence",
        DeprecationWarning,
        stacklevel=2,
    )
    return _per_row("convex_kl", log_predictions, targets, axis, where, "mask")


def kl_divergence(log_predictions, targets, axis=-1, where=None):
    """kl_div; where= as 0 targets and 0 log-inputs (their term is then exactly 0)."""
    if where is not None:
        m = jnp.broadcast_to(jnp.asarray(where), jnp.shape(log_predictions))
        log_predictions = jnp.where(m, log_predictions, 0.0)
        targets = jnp.where(m, targets, 0.0)
    return _per_row("kl_div", log_predictions, targets, axis)


def kl_divergence_with_log_targets(log_predictions, log_targets, axis=-1, where=None):
    """kl_div with target = exp(log_targets) (the spec's header: torch's log_target=True)."""
    return kl_divergence(log_predictions, jnp.exp(log_targets), axis, where)


def ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id=0, log_epsilon=-1e5):
    """ctc on log_softmax(logits) [T, B, C]; optax's right-padding as lengths."""
    lp = jax.nn.log_softmax(jnp.asarray(logits), axis=-1).transpose(1, 0, 2)
    t_len = jnp.round(jnp.sum(1 - jnp.asarray(logit_paddings), axis=-1)).astype(jnp.int32)
    l_len = jnp.round(jnp.sum(1 - jnp.asarray(label_paddings), axis=-1)).astype(jnp.int32)
    return _jax("ctc")(
        lp,
        jnp.asarray(labels),
        t_len,
        l_len,
        reduction="none",
        blank=blank_id,
        log_epsilon=log_epsilon,
    )


def squared_error(predictions, targets=None):
    return _elementwise("mse", predictions, 0.0 if targets is None else targets)


def l2_loss(predictions, targets=None):
    """0.5 * mse (optax.l2_loss is half the squared error; mse.loss's header)."""
    return 0.5 * squared_error(predictions, targets)


def huber_loss(predictions, targets=None, delta=1.0):
    return _elementwise("huber", predictions, 0.0 if targets is None else targets, delta=delta)


def log_cosh(predictions, targets=None):
    return _elementwise("log_cosh", predictions, 0.0 if targets is None else targets)


def cosine_similarity(predictions, targets, *, epsilon=0.0, axis=-1, where=None):
    return _per_row("cosine_similarity", predictions, targets, axis, where, "mask", epsilon=epsilon)


def cosine_distance(predictions, targets, *, epsilon=0.0, axis=-1, where=None):
    return _per_row("cosine_distance", predictions, targets, axis, where, "mask", epsilon=epsilon)


def ranking_softmax_loss(logits, labels, *, where=None, weights=None, reduce_fn=jnp.mean):
    """ranking_softmax; reduce_fn jnp.mean / jnp.sum / None as reduction mean / sum / none."""
    logits = jnp.asarray(logits)
    x, bshape = _rows(logits, (logits.ndim - 1,))
    kw = {}
    if where is not None:
        kw["mask"] = _rows(jnp.broadcast_to(where, logits.shape), (logits.ndim - 1,))[0]
    if weights is not None:
        kw["weights"] = _rows(jnp.broadcast_to(weights, logits.shape), (logits.ndim - 1,))[0]
    y = _rows(
        jnp.broadcast_to(jnp.asarray(labels, logits.dtype), logits.shape), (logits.ndim - 1,)
    )[0]
    reduction = {jnp.mean: "mean", jnp.sum: "sum", None: "none"}[reduce_fn]
    out = _jax("ranking_softmax")(x, y, **kw, reduction=reduction)
    return out.reshape(bshape) if reduction == "none" else out


def make_fenchel_young_loss(max_fun):
    """fenchel_young(max_fun="logsumexp") for optax's logsumexp (the only max_fun optax tests)."""
    assert max_fun is logsumexp, max_fun

    def fy_loss(scores, targets):
        return _per_row_index_free("fenchel_young", scores, targets, max_fun="logsumexp")

    return fy_loss


def _per_row_index_free(spec, scores, targets, **baked):
    x, bshape = _rows(scores, (jnp.ndim(scores) - 1,))
    y, _ = _rows(targets, (jnp.ndim(targets) - 1,))
    return _jax(spec, **baked)(x, y, reduction="none").reshape(bshape)


def ntxent(embeddings, labels, temperature=0.07):
    e = jnp.asarray(embeddings)
    eps = float(jnp.finfo(e.dtype).eps)  # optax's finfo(dtype).eps on the squared norm
    return _jax("ntxent")(e, jnp.asarray(labels), temperature=temperature, epsilon=eps)


def triplet_margin_loss(
    anchors, positives, negatives, axis=-1, norm_degree=2, margin=1.0, eps=1e-6
):
    """triplet_margin(eps_placement="optax"): eps under the root, added to the sum of powers."""
    a = jnp.asarray(anchors)
    axes = _canon(axis, a.ndim)
    (x, bshape), (p, _), (n, _) = (_rows(v, axes) for v in (a, positives, negatives))
    return _jax("triplet_margin", eps_placement="optax")(
        x, p, n, reduction="none", p=norm_degree, margin=margin, eps=eps
    ).reshape(bshape)


def smooth_labels(labels, alpha, *, axis=-1, where=None):
    """The smoothed target of soft_cross_entropy(label_smoothing=alpha), read off its gradient:
    at zero logits d/dz = softmax(0) - q' = 1/C - q', so q' = 1/C - grad (the spec's epsilon/C
    convention, optax.smooth_labels's)."""
    assert where is None and axis == -1
    q = jnp.asarray(labels)
    x, bshape = _rows(q, (q.ndim - 1,))
    g = jax.grad(
        lambda z: jnp.sum(_jax("soft_cross_entropy")(z, x, reduction="none", label_smoothing=alpha))
    )(jnp.zeros_like(x))
    return (1.0 / x.shape[-1] - g).reshape(q.shape)


# ---------------------------------------------------------------------------------------------
# The table: one substitution per optax function (and spec).


@dataclass
class Sub:
    name: str  # the optax function (optax.losses.NAME)
    spec: str  # the lossdsl spec + params that reproduce it
    module: object  # the optax module whose attribute the test module calls
    attr: str
    adapter: object
    test_file: str
    classes: tuple
    excluded: dict = field(default_factory=dict)  # "Class.test_method" -> reason


_CLS = "_classification_test.py"
_SCE_TARGET_GRAD = (
    "jaxtest.check_grads perturbs the labels too: soft_cross_entropy's 0 log 0 rule "
    "(target * where(target > 0, log p, 0)) gives d/dq = 0 at q = 0, optax's plain "
    "-sum(q * log p) gives -log p (a convention of the shipped spec; poly1_soft(epsilon=0) "
    "reproduces it and passes this case)"
)
_NOT_A_LOSS = "not loss math: checks optax's own signature"

SUBSTITUTIONS = [
    Sub(
        "softmax_cross_entropy",
        "soft_cross_entropy",
        _classification,
        "softmax_cross_entropy",
        softmax_cross_entropy,
        _CLS,
        ("SoftmaxCrossEntropyTest",),
        {"SoftmaxCrossEntropyTest.test_gradient": _SCE_TARGET_GRAD},
    ),
    Sub(
        "softmax_cross_entropy",
        "poly1_soft(epsilon=0)",
        _classification,
        "softmax_cross_entropy",
        softmax_cross_entropy_poly,
        _CLS,
        ("SoftmaxCrossEntropyTest",),
    ),
    Sub(
        "safe_softmax_cross_entropy",
        "soft_cross_entropy",
        _classification,
        "safe_softmax_cross_entropy",
        safe_softmax_cross_entropy,
        _CLS,
        ("SafeSoftmaxCrossEntropyTest",),
        {"SafeSoftmaxCrossEntropyTest.test_gradient": _SCE_TARGET_GRAD},
    ),
    Sub(
        "softmax_cross_entropy_with_integer_labels",
        "cross_entropy",
        _classification,
        "softmax_cross_entropy_with_integer_labels",
        softmax_cross_entropy_with_integer_labels,
        _CLS,
        ("SoftmaxCrossEntropyWithIntegerLabelsTest",),
    ),
    Sub(
        "sigmoid_binary_cross_entropy",
        "bce_with_logits",
        _classification,
        "sigmoid_binary_cross_entropy",
        sigmoid_binary_cross_entropy,
        _CLS,
        ("SigmoidCrossEntropyTest", "SigmoidFocalLossTest"),
    ),
    Sub(
        "sigmoid_focal_loss",
        "sigmoid_focal(alpha=-1 for alpha=None)",
        _classification,
        "sigmoid_focal_loss",
        sigmoid_focal_loss,
        _CLS,
        ("SigmoidFocalLossTest",),
    ),
    Sub(
        "poly_loss_cross_entropy",
        "poly1_soft(epsilon=2)",
        _classification,
        "poly_loss_cross_entropy",
        poly_loss_cross_entropy,
        _CLS,
        ("PolyLossTest",),
    ),
    Sub("hinge_loss", "hinge", _classification, "hinge_loss", hinge_loss, _CLS, ("HingeTest",)),
    Sub(
        "multiclass_hinge_loss",
        "multiclass_hinge",
        _classification,
        "multiclass_hinge_loss",
        multiclass_hinge_loss,
        _CLS,
        ("HingeTest",),
    ),
    Sub(
        "sparsemax_loss",
        "binary_sparsemax",
        _classification,
        "sparsemax_loss",
        sparsemax_loss,
        _CLS,
        ("SparsemaxTest",),
    ),
    Sub(
        "multiclass_sparsemax_loss",
        "sparsemax",
        _classification,
        "multiclass_sparsemax_loss",
        multiclass_sparsemax_loss,
        _CLS,
        ("SparsemaxTest",),
    ),
    Sub(
        "generalized_kl_divergence",
        "generalized_kl",
        _classification,
        "generalized_kl_divergence",
        generalized_kl_divergence,
        _CLS,
        ("GeneralizedKLDivergenceTest",),
    ),
    Sub(
        "convex_kl_divergence",
        "convex_kl",
        _classification,
        "convex_kl_divergence",
        convex_kl_divergence,
        _CLS,
        ("GeneralizedKLDivergenceTest",),
    ),
    Sub(
        "perceptron_loss",
        "perceptron",
        _classification,
        "perceptron_loss",
        perceptron_loss,
        _CLS,
        ("PerceptronTest",),
    ),
    Sub(
        "multiclass_perceptron_loss",
        "multiclass_perceptron",
        _classification,
        "multiclass_perceptron_loss",
        multiclass_perceptron_loss,
        _CLS,
        ("PerceptronTest",),
    ),
    Sub(
        "kl_divergence",
        "kl_div",
        _classification,
        "kl_divergence",
        kl_divergence,
        _CLS,
        ("KLDivergenceTest",),
    ),
    Sub(
        "kl_divergence_with_log_targets",
        "kl_div(target = exp(log_targets))",
        _classification,
        "kl_divergence_with_log_targets",
        kl_divergence_with_log_targets,
        _CLS,
        ("KLDivergenceWithLogTargetsTest",),
    ),
    Sub(
        "ctc_loss",
        "ctc(log_probs = log_softmax(logits))",
        _classification,
        "ctc_loss",
        ctc_loss,
        _CLS,
        ("CTCTest",),
    ),
    Sub(
        "squared_error",
        "mse",
        _regression,
        "squared_error",
        squared_error,
        "_regression_test.py",
        ("SquaredErrorTest",),
        {"SquaredErrorTest.test_shape_mismatch": _NOT_A_LOSS + " (a shape-mismatch error)"},
    ),
    Sub(
        "l2_loss",
        "0.5 * mse",
        _regression,
        "l2_loss",
        l2_loss,
        "_regression_test.py",
        ("L2LossTest",),
        {"L2LossTest.test_shape_mismatch": _NOT_A_LOSS + " (a shape-mismatch error)"},
    ),
    Sub(
        "huber_loss",
        "huber(delta)",
        _regression,
        "huber_loss",
        huber_loss,
        "_regression_test.py",
        ("HuberLossTest",),
    ),
    Sub(
        "log_cosh",
        "log_cosh",
        _regression,
        "log_cosh",
        log_cosh,
        "_regression_test.py",
        ("LogCoshTest",),
    ),
    Sub(
        "cosine_distance",
        "cosine_distance",
        _regression,
        "cosine_distance",
        cosine_distance,
        "_regression_test.py",
        ("CosineDistanceTest",),
    ),
    Sub(
        "cosine_similarity",
        "cosine_similarity",
        _regression,
        "cosine_similarity",
        cosine_similarity,
        "_regression_test.py",
        ("CosineDistanceTest",),
    ),
    Sub(
        "ranking_softmax_loss",
        "ranking_softmax",
        _ranking,
        "ranking_softmax_loss",
        ranking_softmax_loss,
        "_ranking_test.py",
        ("RankingLossesTest",),
    ),
    Sub(
        "make_fenchel_young_loss(logsumexp)",
        'fenchel_young(max_fun="logsumexp")',
        _fenchel_young,
        "make_fenchel_young_loss",
        make_fenchel_young_loss,
        "_fenchel_young_test.py",
        ("FenchelYoungTest",),
    ),
    Sub(
        "ntxent",
        "ntxent(epsilon = finfo(dtype).eps)",
        _self_supervised,
        "ntxent",
        ntxent,
        "_self_supervised_test.py",
        ("NtxentTest",),
    ),
    Sub(
        "triplet_margin_loss",
        'triplet_margin(eps_placement="optax")',
        _self_supervised,
        "triplet_margin_loss",
        triplet_margin_loss,
        "_self_supervised_test.py",
        ("TripletMarginLossTest",),
    ),
    Sub(
        "smooth_labels",
        "soft_cross_entropy(label_smoothing) (its smoothed target)",
        _smoothing,
        "smooth_labels",
        smooth_labels,
        "_smoothing_test.py",
        ("SmoothLabelsTest",),
    ),
]

# Cases of the substituted classes that call a DIFFERENT optax function only (never the
# adapter) are not counted; those listed here call it but are not run, with the reason.
EXCLUDED = {(s.name, s.spec, k): v for s in SUBSTITUTIONS for k, v in s.excluded.items()}


def _load(test_file):
    """A fresh copy of optax's installed test module (under a private name)."""
    name = f"_optax_peer_{Path(test_file).stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, TESTS_DIR / test_file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[name]
    return mod


def _calling_methods(test_file, cls_name, attr):
    """The test methods of optax's class (their decorators included) whose source names
    `<module>.attr`: the cases that exercise the substituted function."""
    src = (TESTS_DIR / test_file).read_text()
    pat = re.compile(r"\." + re.escape(attr) + r"(?!\w)")
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    out = {}
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test"):
            start = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
            text = "\n".join(src.splitlines()[start - 1 : fn.end_lineno])
            out[fn.name] = bool(pat.search(text))
    return out


def _base(meth, bases):
    """The method a parameterized case was generated from (absl names them test_x0, test_x1)."""
    return max((b for b in bases if meth == b or meth.startswith(b)), key=len)


def _cases():
    out = []
    for sub in SUBSTITUTIONS:
        mod = _load(sub.test_file)
        for cls_name in sub.classes:
            calling = _calling_methods(sub.test_file, cls_name, sub.attr)
            for meth in unittest.TestLoader().getTestCaseNames(getattr(mod, cls_name)):
                if calling[_base(meth, calling)]:
                    out.append((sub, f"{cls_name}.{meth}"))
    return out


CASES = _cases()


_CALLS = {}
_MODULES = {}


def _counting(sub):
    def counting(*a, **k):
        _CALLS[id(sub)] = _CALLS.get(id(sub), 0) + 1
        return sub.adapter(*a, **k)

    return counting


def _run(sub, case, monkeypatch):
    monkeypatch.setattr(sub.module, sub.attr, _counting(sub))
    if id(sub) not in _MODULES:  # loaded with the adapter in place (import-time parameters)
        _MODULES[id(sub)] = _load(sub.test_file)
    mod = _MODULES[id(sub)]
    cls_name, meth = case.split(".")
    np.random.seed(0)
    before = _CALLS.get(id(sub), 0)
    result = unittest.TestResult()
    getattr(mod, cls_name)(meth).run(result)
    problems = [t for _, t in result.errors + result.failures]
    return _CALLS.get(id(sub), 0) > before, problems


@pytest.mark.parametrize(
    "sub, case",
    [c for c in CASES if (c[0].name, c[0].spec, c[1]) not in EXCLUDED],
    ids=[f"{s.name}[{s.spec}]::{c}" for s, c in CASES if (s.name, s.spec, c) not in EXCLUDED],
)
def test_optax_case(sub, case, monkeypatch, _x64):
    called, problems = _run(sub, case, monkeypatch)
    assert called, f"{case} never called the substituted {sub.attr}"
    assert not problems, problems[0]


# ---------------------------------------------------------------------------------------------
# The new specs directly against optax 0.2.8 in float64: values and gradients (torch autograd of
# the torch module and jax.grad of the jax module vs jax.grad of optax), boundaries included.


def _rng(seed):
    return np.random.default_rng(seed)


def _sparsemax_fy(scores):
    p = optax.projections.projection_simplex(scores)
    return jnp.dot(p, scores) + 0.5 * jnp.dot(p, 1 - p)


def _direct_cases():
    r = _rng(0)
    x, y = r.normal(size=(5, 4)) * 2, r.normal(size=(5, 4))
    small = r.normal(size=(5, 4)) * 0.1  # squared norms below epsilon = 0.5: the floor acts
    m = r.random((5, 4)) > 0.3
    q = r.random((5, 4)) * 2 * (r.random((5, 4)) > 0.3)  # an unnormalized measure with zeros
    soft = np.exp(y) / np.exp(y).sum(-1, keepdims=True)
    sign = np.where(r.random((5, 4)) > 0.5, 1.0, -1.0)
    y01 = (sign + 1) / 2
    idx = r.integers(0, 4, size=5)
    rel = r.integers(0, 3, size=(5, 4)).astype(float)
    rmask = m.copy()
    rmask[1] = False  # a list with no valid item
    w = r.random((5, 4)) + 0.5
    emb, lab = r.normal(size=(6, 3)), np.array([0, 0, 1, 1, 1, 2])
    emb[2] = 0.0  # a zero embedding (optax's ys_2 case)
    onehot = np.eye(4)[idx]
    L = optax.losses
    fy = _fenchel_young.make_fenchel_young_loss
    return {
        "log_cosh": (
            "log_cosh",
            {},
            dict(pred=x, target=y),
            lambda pred, target: L.log_cosh(pred, target),
            {},
        ),
        "log_cosh_no_target_B1": (
            "log_cosh",
            {},
            dict(pred=x[:1] * 200),
            lambda pred: L.log_cosh(pred),
            {},
        ),
        "cosine_similarity": (
            "cosine_similarity",
            {},
            dict(pred=x, target=y),
            lambda pred, target: L.cosine_similarity(pred, target),
            {},
        ),
        "cosine_similarity_eps_floor": (
            "cosine_similarity",
            {},
            dict(pred=small, target=y),
            lambda pred, target: L.cosine_similarity(pred, target, epsilon=0.5),
            {"epsilon": 0.5},
        ),
        "cosine_similarity_mask": (
            "cosine_similarity",
            {},
            dict(pred=x, target=y, mask=m),
            lambda pred, target, mask: L.cosine_similarity(pred, target, where=mask),
            {},
        ),
        "cosine_distance": (
            "cosine_distance",
            {},
            dict(pred=x, target=small),
            lambda pred, target: L.cosine_distance(pred, target, epsilon=0.5),
            {"epsilon": 0.5},
        ),
        "generalized_kl": (
            "generalized_kl",
            {},
            dict(log_input=x, target=q),
            lambda log_input, target: L.generalized_kl_divergence(log_input, target),
            {},
        ),
        "generalized_kl_mask": (
            "generalized_kl",
            {},
            dict(log_input=x, target=q, mask=m),
            lambda log_input, target, mask: L.generalized_kl_divergence(
                log_input, target, where=mask
            ),
            {},
        ),
        "convex_kl": (
            "convex_kl",
            {},
            dict(log_input=x, target=q),
            lambda log_input, target: L.generalized_kl_divergence(log_input, target),
            {},
        ),
        "perceptron": (
            "perceptron",
            {},
            dict(scores=x, target=sign),
            lambda scores, target: L.perceptron_loss(scores, target),
            {},
        ),
        "multiclass_perceptron": (
            "multiclass_perceptron",
            {},
            dict(logits=x, target=idx),
            lambda logits, target: L.multiclass_perceptron_loss(logits, target),
            {},
        ),
        "binary_sparsemax": (
            "binary_sparsemax",
            {},
            dict(logits=x, target=y01),
            lambda logits, target: (
                _classification.sparsemax_loss.__wrapped__(logits, target)
                if hasattr(_classification.sparsemax_loss, "__wrapped__")
                else L.sparsemax_loss(logits, target)
            ),
            {},
        ),
        "ranking_softmax_mean": (
            "ranking_softmax",
            {},
            dict(logits=x, labels=rel, mask=rmask, weights=w),
            lambda logits, labels, mask, weights: L.ranking_softmax_loss(
                logits, labels, where=mask, weights=weights
            ),
            {"reduction": "mean"},
        ),
        "ranking_softmax_sum": (
            "ranking_softmax",
            {},
            dict(logits=x, labels=rel),
            lambda logits, labels: L.ranking_softmax_loss(logits, labels, reduce_fn=jnp.sum),
            {"reduction": "sum"},
        ),
        "ranking_softmax_none": (
            "ranking_softmax",
            {},
            dict(logits=x, labels=rel, mask=rmask),
            lambda logits, labels, mask: L.ranking_softmax_loss(
                logits, labels, where=mask, reduce_fn=None
            ),
            {},
        ),
        "ranking_softmax_all_masked": (
            "ranking_softmax",
            {},
            dict(logits=x, labels=rel, mask=np.zeros_like(m)),
            lambda logits, labels, mask: L.ranking_softmax_loss(logits, labels, where=mask),
            {"reduction": "mean"},
        ),
        "fenchel_young_logsumexp": (
            "fenchel_young",
            {},
            dict(scores=x, target=soft),
            lambda scores, target: fy(logsumexp)(scores, target),
            {},
        ),
        "fenchel_young_max": (
            "fenchel_young",
            {"max_fun": "max"},
            dict(scores=x, target=soft),
            lambda scores, target: fy(jnp.max)(scores, target),
            {},
        ),
        "fenchel_young_sparsemax": (
            "fenchel_young",
            {"max_fun": "sparsemax"},
            dict(scores=x, target=soft),
            lambda scores, target: fy(_sparsemax_fy)(scores, target),
            {},
        ),
        "fenchel_young_sparsemax_onehot": (
            "fenchel_young",
            {"max_fun": "sparsemax"},
            dict(scores=x, target=onehot),
            lambda scores, target: L.multiclass_sparsemax_loss(scores, jnp.argmax(target, -1)),
            {"_wrt": ["scores"]},
        ),
        "poly1_soft": (
            "poly1_soft",
            {},
            dict(logits=x, target=soft),
            lambda logits, target: L.poly_loss_cross_entropy(logits, target, epsilon=1.0),
            {},
        ),
        "poly1_soft_eps2_mask": (
            "poly1_soft",
            {},
            dict(logits=x, target=soft, mask=m),
            lambda logits, target, mask: L.poly_loss_cross_entropy(
                logits, target, epsilon=2.0, where=mask
            ),
            {"epsilon": 2.0},
        ),
        "triplet_margin_optax_eps": (
            "triplet_margin",
            {"eps_placement": "optax"},
            dict(anchor=x, positive=y, negative=small),
            lambda anchor, positive, negative: L.triplet_margin_loss(
                anchor, positive, negative, eps=0.5, margin=2.0
            ),
            {"eps": 0.5, "margin": 2.0},
        ),
        "ntxent": (
            "ntxent",
            {},
            dict(embeddings=emb, labels=lab),
            lambda embeddings, labels: L.ntxent(embeddings, labels),
            {"reduction": "mean"},
        ),
        "ntxent_t05": (
            "ntxent",
            {},
            dict(embeddings=emb, labels=lab),
            lambda embeddings, labels: L.ntxent(embeddings, labels, 0.5),
            {"reduction": "mean", "temperature": 0.5},
        ),
    }


DIRECT = _direct_cases()


@pytest.mark.parametrize("case", sorted(DIRECT))
def test_new_spec_vs_optax_float64(case, _x64):
    import torch

    spec, baked, inputs, ref, kw = DIRECT[case]
    kw = {"reduction": "none", **kw}
    only = kw.pop("_wrt", None)
    floats = [k for k, v in inputs.items() if v.dtype == np.float64]
    wrt = [
        k
        for k in floats
        if k
        in (
            "pred",
            "log_input",
            "scores",
            "logits",
            "embeddings",
            "target",
            "weights",
            "anchor",
            "positive",
            "negative",
        )
    ]
    wrt = [k for k in wrt if not (k == "target" and spec in ("perceptron", "binary_sparsemax"))]
    wrt = wrt if only is None else only
    jin = {k: jnp.asarray(v) for k, v in inputs.items()}

    def grads(fn):
        """The value of fn and its gradients w.r.t. every input of wrt, in one backward pass."""
        val, gs = jax.value_and_grad(
            lambda vs: jnp.sum(fn(**{**jin, **dict(zip(wrt, vs))})), allow_int=True
        )(tuple(jin[k] for k in wrt))
        return val, dict(zip(wrt, map(np.asarray, gs)))

    want = np.asarray(ref(**jin))
    _, want_g = grads(ref)
    # torch: values and autograd
    tin = {k: torch.tensor(v, requires_grad=k in wrt) for k, v in inputs.items()}
    out = _torch(spec, **baked)(**tin, **kw)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    gs = torch.autograd.grad(out.sum(), [tin[k] for k in wrt]) if wrt else ()
    for k, g in zip(wrt, gs):
        _same_grad(g.numpy(), want_g[k], k)
    # jax: values and jax.grad
    f = _jax(spec, **baked)
    np.testing.assert_allclose(np.asarray(f(**jin, **kw)), want, rtol=1e-10, atol=1e-12)
    _, got_g = grads(lambda **a: f(**a, **kw))
    for k in wrt:
        _same_grad(got_g[k], want_g[k], k)


def _same_grad(ours, theirs, k):
    """Equal where optax's gradient is finite; where it is NaN ours is finite: optax at a masked
    entry (labels * log_softmax is 0 * -inf there before the where= of the sum: ours 0) and in
    q at q = 0 (where(q == 0, 0, log q) backpropagates 0 * inf: ours -log_input - 1)."""
    bad = ~np.isfinite(theirs)
    np.testing.assert_allclose(ours[~bad], theirs[~bad], rtol=1e-9, atol=1e-12, err_msg=k)
    assert np.isfinite(ours[bad]).all(), k


def test_table_is_complete():
    """Every excluded case exists; every optax.losses function has a row or a refusal (docs)."""
    ids = {(s.name, s.spec, c) for s, c in CASES}
    assert set(EXCLUDED) <= ids
    covered = {s.attr for s in SUBSTITUTIONS} | set(REFUSED) | set(OTHER_HELPER)
    public = {n for n in dir(optax.losses) if not n.startswith("_")}
    assert public <= covered, public - covered


REFUSED = {
    "ctc_loss_with_forward_probs": "returns CTC's forward tables (log alpha) beside the loss: "
    "not a loss output; its per-sequence loss is ctc_loss's (the ctc row)",
}
OTHER_HELPER = {"binary_dice_loss", "dice_loss", "multiclass_generalized_dice_loss"}
