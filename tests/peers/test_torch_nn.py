"""Peer parity: torch.nn's criteria against the lossdsl specs that reproduce them, on torch's
OWN criterion test cases (issue 15).

The cases are torch's, read from the installed package (torch 2.13.0) at collection time:

- ``torch/testing/_internal/common_modules.py``: ``module_db``, each loss's
  ``module_inputs_torch_nn_<Loss>`` (``ModuleInput``: constructor args and forward inputs);
- ``torch/testing/_internal/common_nn.py``: ``criterion_tests`` (the ``*_no_batch_dim_*``
  cases: a constructor and input/target makers);
- ``torch/testing/_internal/common_methods_invocations.py``: ``op_db``, the sample inputs of
  every ``nn.functional.*_loss`` OpInfo (and ``binary_cross_entropy[_with_logits]``,
  ``cross_entropy``, ``kl_div``).

Importing ``common_nn`` needs the ``expecttest`` package (a test extra). The inputs are drawn by
torch's own makers under a fixed seed. Each case runs torch (the module, or the functional for an
OpInfo sample) and the lossdsl spec with the params that reproduce the case's constructor or
keyword args, on the same float64 inputs, and compares values and gradients (w.r.t. every
floating input torch differentiates). The adapters below only change layout (a no-batch input
gets a batch of one, an elementwise loss is flattened to one row, torch's [N, C, d...] is moved
to the spec's layout, a concatenated CTC target is padded, a broadcastable weight is expanded):
what they feed the spec is a view of the case's tensors, so the gradients reach the case's own
tensors through them. ``EXCLUDED`` lists every case left out, with its reason (also in
docs/peers/torch_nn.md).
"""

from __future__ import annotations

import contextlib
import inspect
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing._internal import common_methods_invocations as cmi
from torch.testing._internal import common_modules as cm
from torch.testing._internal import common_nn as cn

import lossdsl

TORCH_VERSION = torch.__version__
SOURCES = {
    "module_db": "torch/testing/_internal/common_modules.py (module_db, module_inputs_torch_nn_*)",
    "criterion_tests": "torch/testing/_internal/common_nn.py (criterion_tests)",
    "op_db": "torch/testing/_internal/common_methods_invocations.py (op_db sample_inputs)",
}

# torch criterion -> the lossdsl spec that reproduces it (the params are set per case below)
SPEC_OF = {
    "L1Loss": "l1",
    "MSELoss": "mse",
    "SmoothL1Loss": "smooth_l1",
    "HuberLoss": "huber",
    "KLDivLoss": "kl_div",  # reduction none and mean: kl_div_pointwise
    "GaussianNLLLoss": "gaussian_nll",
    "CrossEntropyLoss": "cross_entropy",  # probability targets: soft_cross_entropy
    "NLLLoss": "nll",
    "BCELoss": "bce",
    "BCEWithLogitsLoss": "bce_with_logits",
    "PoissonNLLLoss": "poisson_nll",
    "MarginRankingLoss": "margin_ranking",
    "CosineEmbeddingLoss": "cosine_embedding",
    "HingeEmbeddingLoss": "hinge_embedding",
    "MultiLabelMarginLoss": "multilabel_margin",
    "MultiMarginLoss": "multi_margin",
    "SoftMarginLoss": "soft_margin",
    "MultiLabelSoftMarginLoss": "multilabel_soft_margin",
    "TripletMarginLoss": "triplet_margin",
    "TripletMarginWithDistanceLoss": "triplet_margin_with_distance",
    "CTCLoss": "ctc",
}

# OpInfo name -> (criterion, the functional torch runs)
OPS = {
    "nn.functional.l1_loss": "L1Loss",
    "nn.functional.mse_loss": "MSELoss",
    "nn.functional.smooth_l1_loss": "SmoothL1Loss",
    "nn.functional.huber_loss": "HuberLoss",
    "nn.functional.kl_div": "KLDivLoss",
    "nn.functional.gaussian_nll_loss": "GaussianNLLLoss",
    "nn.functional.cross_entropy": "CrossEntropyLoss",
    "nn.functional.nll_loss": "NLLLoss",
    "nn.functional.binary_cross_entropy": "BCELoss",
    "nn.functional.binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "nn.functional.poisson_nll_loss": "PoissonNLLLoss",
    "nn.functional.margin_ranking_loss": "MarginRankingLoss",
    "nn.functional.cosine_embedding_loss": "CosineEmbeddingLoss",
    "nn.functional.hinge_embedding_loss": "HingeEmbeddingLoss",
    "nn.functional.multilabel_margin_loss": "MultiLabelMarginLoss",
    "nn.functional.multi_margin_loss": "MultiMarginLoss",
    "nn.functional.soft_margin_loss": "SoftMarginLoss",
    "nn.functional.multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss",
    "nn.functional.triplet_margin_loss": "TripletMarginLoss",
    "nn.functional.triplet_margin_with_distance_loss": "TripletMarginWithDistanceLoss",
    "nn.functional.ctc_loss": "CTCLoss",
}

# the module attributes that are constructor settings (read back from the built module)
SETTINGS = (
    "reduction margin p eps swap weight ignore_index log_input full beta delta log_target "
    "label_smoothing pos_weight blank zero_infinity distance_function"
).split()


class Case:
    """One torch test case: a criterion, its settings and named inputs, and how torch runs it."""

    def __init__(self, source, criterion, desc, settings, inputs, run_torch):
        self.source, self.criterion, self.desc = source, criterion, desc
        self.settings, self.inputs, self.run_torch = settings, inputs, run_torch

    @property
    def id(self):
        return f"{self.criterion}-{self.source}-{self.desc}"


def _named(fn, args, kwargs=None):
    """args and kwargs bound to fn's parameter names."""
    bound = inspect.signature(fn).bind(*args, **(kwargs or {}))
    return dict(bound.arguments)


def _module_settings(module):
    out = {}
    for k in SETTINGS:
        if hasattr(module, k):
            out[k] = getattr(module, k)
    return out


def _module_runner(module):
    return lambda inputs: module(**inputs)


def _from_module_db():
    cases = []
    for info in cm.module_db:
        name = info.module_cls.__name__
        if name not in SPEC_OF:
            continue
        torch.manual_seed(0)
        for i, mi in enumerate(
            info.module_inputs_func(
                info, device="cpu", dtype=torch.float64, requires_grad=False, training=True
            )
        ):
            ctor = mi.constructor_input
            module = info.module_cls(*ctor.args, **ctor.kwargs)
            inputs = _named(module.forward, mi.forward_input.args, mi.forward_input.kwargs)
            desc = mi.desc or "default"
            cases.append(
                Case(
                    "module_db",
                    name,
                    f"{i}_{desc}",
                    _module_settings(module),
                    inputs,
                    _module_runner(module),
                )
            )
    return cases


def _from_criterion_tests():
    cases = []
    for i, t in enumerate(cn.criterion_tests):
        full = t["fullname"]
        name = full.split("_")[0]
        if name not in SPEC_OF:
            continue
        torch.manual_seed(i)
        module = t["constructor"]()
        inp = t["input_fn"]() if "input_fn" in t else torch.randn(t["input_size"])
        tgt = t["target_fn"]() if "target_fn" in t else torch.randn(t["target_size"])
        args = (*inp, tgt) if isinstance(inp, tuple) else (inp, tgt)
        inputs = _named(module.forward, args)
        cases.append(
            Case(
                "criterion_tests",
                name,
                full,
                _module_settings(module),
                inputs,
                _module_runner(module),
            )
        )
    return cases


def _from_op_db():
    cases = []
    for op in cmi.op_db:
        if op.name not in OPS:
            continue
        name = OPS[op.name]
        torch.manual_seed(0)
        fn = op.op
        for i, s in enumerate(op.sample_inputs("cpu", torch.float64, requires_grad=False)):
            sig_fn = getattr(F, op.name.split(".")[-1])
            inputs = _named(sig_fn, (s.input, *s.args), s.kwargs)
            tensors = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor) or k in _DATA}
            settings = {k: v for k, v in inputs.items() if k not in tensors}
            if "weight" in inputs:
                settings["weight"] = inputs["weight"]
                tensors.pop("weight", None)
            if "pos_weight" in inputs:
                settings["pos_weight"] = inputs["pos_weight"]
                tensors.pop("pos_weight", None)
            settings.setdefault("reduction", "mean")

            def run(ts, fn=fn, settings=settings):
                return fn(**ts, **settings)

            cases.append(Case("op_db", name, f"{i}", settings, tensors, run))
            if name == "TripletMarginWithDistanceLoss":
                # the same sample with torch's documented cosine distance (the
                # TripletMarginWithDistanceLoss docstring's `1 - cosine_similarity`)
                cos = dict(settings, distance_function=_cosine_distance)
                cases.append(
                    Case(
                        "op_db",
                        name,
                        f"{i}_cosine",
                        cos,
                        tensors,
                        lambda ts, fn=fn, cos=cos: fn(**ts, **cos),
                    )
                )
    return cases


def _cosine_distance(x, y):
    return 1.0 - F.cosine_similarity(x, y)


_cosine_distance.lossdsl_distance = "cosine"


# the data arguments of the functionals (everything else is a setting)
_DATA = {"input_lengths", "target_lengths"}


@contextlib.contextmanager
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


with _float64():  # torch's makers draw in the default dtype: float64, as the comparison
    CASES = _from_module_db() + _from_criterion_tests() + _from_op_db()


# ----------------------------------------------------------------------------------------------
# Exclusions: each with its reason (also listed in docs/peers/torch_nn.md).


def _excluded(case):
    """The reason a case is left out, or None."""
    s, name = case.settings, case.criterion
    if any(
        isinstance(v, torch.Tensor) and v.is_floating_point() and v.isnan().any()
        for v in case.inputs.values()
    ):
        return (
            "the case's inputs hold NaN (torch's maker takes the log of make_tensor's negative "
            "entries): torch's value is NaN, there is no loss math to compare"
        )
    if (
        name in ("NLLLoss", "CrossEntropyLoss")
        and s.get("reduction", "mean") == "mean"
        and not case.inputs["target"].is_floating_point()
        and bool((case.inputs["target"] == s.get("ignore_index", -100)).all())
    ):
        return (
            "every target is ignore_index under reduction='mean': torch's mean is 0 / 0 = NaN; "
            "the nll and cross_entropy specs declare 0 (with zero gradient) on an empty batch "
            "(their headers); checked in test_all_ignored_is_zero"
        )
    return None


KNOWN_GRAD_DIFFERENCES = {
    "PoissonNLLLoss(full=True), d/dtarget at target == 0": (
        "torch: NaN (masked_fill(target <= 1, 0) zeroes the Stirling term's value, and its "
        "backward multiplies 0 by d/dt t log t = -inf); the spec computes the term on a safe "
        "target where t <= 1, so its derivative there is the rest of the loss's, finite. The "
        "other entries are compared; the NaN-vs-finite split is asserted."
    ),
}

CASE_PARAMS = [pytest.param(c, id=c.id) for c in CASES if _excluded(c) is None]
EXCLUDED = {c.id: _excluded(c) for c in CASES if _excluded(c) is not None}


# ----------------------------------------------------------------------------------------------
# Adapters: the lossdsl call that reproduces a case (layout only; the math is the spec's).

_COMPILED = {}


def spec(name, **baked):
    key = (name, tuple(sorted(baked.items())))
    if key not in _COMPILED:
        _COMPILED[key] = lossdsl.load(name).compile("torch", **baked)
    return _COMPILED[key]


def _row(x):
    """An elementwise loss's input as one row [1, N] (B = 1, *S = every element)."""
    return x.reshape(1, -1)


def _elementwise(name, params):
    def run(ins, s):
        names = list(ins)
        first = ins[names[0]]
        ref = torch.broadcast_tensors(*[ins[k].to(first.dtype) for k in names])
        shape = ref[0].shape
        out = spec(name)(*[_row(x) for x in ref], reduction=s["reduction"], **params(s))
        return out.reshape(shape) if s["reduction"] == "none" else out

    return run


def _kl_div(ins, s):
    """batchmean and sum: kl_div on [B, C * ...]; none and mean (elementwise and over every
    element): kl_div_pointwise on one row (a 0-d case has no batch axis)."""
    x, t = ins["input"], ins["target"]
    if s.get("log_target"):
        t = torch.exp(t)  # the specs' documented log_target convention: pass exp(target)
    r = s["reduction"]
    if r in ("none", "mean"):
        out = spec("kl_div_pointwise")(_row(x), _row(t), reduction=r)
        return out.reshape(x.shape) if r == "none" else out
    b = x.shape[0] if x.dim() else 1
    x2, t2 = x.reshape(b, -1), t.reshape(b, -1)
    return spec("kl_div")(x2, t2, reduction="mean" if r == "batchmean" else r)


def _gaussian_nll(ins, s):
    x, t, v = ins["input"], ins["target"], ins["var"]
    if v.dim() == x.dim() - 1 and v.shape == x.shape[:-1]:
        v = v.unsqueeze(-1)  # torch's rule for a var with one fewer dim
    x, t, v = torch.broadcast_tensors(x, t, v)
    out = spec("gaussian_nll")(
        _row(x), _row(t), _row(v), eps=s["eps"], full=s["full"], reduction=s["reduction"]
    )
    return out.reshape(x.shape) if s["reduction"] == "none" else out


def _class_layout(x, t, prob=False):
    """torch's [C] / [N, C] / [N, C, d...] logits (and target) as the spec's [B, C] rows."""
    if x.dim() == 1:
        x, t = x.unsqueeze(0), t.unsqueeze(0)
    c = x.shape[1]
    x2 = x.movedim(1, -1).reshape(-1, c)
    t2 = t.movedim(1, -1).reshape(-1, c) if prob else t.reshape(-1)
    return x2, t2


def _weight_kw(s):
    return {} if s.get("weight") is None else {"weight": s["weight"]}


def _cross_entropy(ins, s):
    x, t = ins["input"], ins["target"]
    r = s["reduction"]
    if t.is_floating_point():  # probability targets: soft_cross_entropy ([B, C, *S] layout)
        shape = x.shape[:1] + x.shape[2:] if x.dim() > 1 else ()
        x2, t2 = _batch1(x, t)
        out = spec("soft_cross_entropy")(
            x2, t2, **_weight_kw(s), label_smoothing=s["label_smoothing"], reduction=r
        )
        return out.reshape(shape) if r == "none" else out
    shape = t.shape
    x2, t2 = _class_layout(x, t)
    out = spec("cross_entropy")(
        x2,
        t2,
        **_weight_kw(s),
        ignore_index=s["ignore_index"],
        label_smoothing=s["label_smoothing"],
        reduction=r,
    )
    return out.reshape(shape) if r == "none" else out


def _nll(ins, s):
    x, t = ins["input"], ins["target"]
    shape = t.shape
    if x.dim() == 1:
        x, t = x.unsqueeze(0), t.unsqueeze(0)
    out = spec("nll")(
        x, t, **_weight_kw(s), ignore_index=s["ignore_index"], reduction=s["reduction"]
    )
    return out.reshape(shape) if s["reduction"] == "none" else out


def _bce(ins, s):
    x, t = ins["input"], ins["target"]
    kw = {}
    if s.get("weight") is not None:
        kw["weight"] = _row(s["weight"].expand_as(x))
    out = spec("bce")(_row(x), _row(t), **kw, reduction=s["reduction"])
    return out.reshape(x.shape) if s["reduction"] == "none" else out


def _bce_with_logits(ins, s):
    x, t = ins["input"], ins["target"]
    c = x.shape[-1] if x.dim() else 1
    kw = {}
    if s.get("pos_weight") is not None:
        kw["pos_weight"] = s["pos_weight"].expand(c)
    if s.get("weight") is not None:  # torch's elementwise weight, broadcast to the input
        kw["weight"] = s["weight"].expand(x.shape).reshape(-1, c)
    out = spec("bce_with_logits")(
        x.reshape(-1, c), t.reshape(-1, c), **kw, reduction=s["reduction"]
    )
    return out.reshape(x.shape) if s["reduction"] == "none" else out


def _poisson(ins, s):
    x, t = ins["log_input"] if "log_input" in ins else ins["input"], ins["target"]
    out = spec("poisson_nll")(
        _row(x),
        _row(t),
        log_input=s["log_input"],
        full=s["full"],
        eps=s["eps"],
        reduction=s["reduction"],
    )
    return out.reshape(x.shape) if s["reduction"] == "none" else out


def _batch1(*xs):
    return [x.unsqueeze(0) for x in xs] if xs[0].dim() == 1 else list(xs)


def _cosine_embedding(ins, s):
    x1, x2, y = ins["input1"], ins["input2"], ins["target"]
    shape = y.shape
    if x1.dim() == 1:
        x1, x2, y = x1.unsqueeze(0), x2.unsqueeze(0), y.reshape(1)
    out = spec("cosine_embedding")(
        x1, x2, y.to(x1.dtype), margin=s["margin"], reduction=s["reduction"]
    )
    return out.reshape(shape) if s["reduction"] == "none" else out


def _multilabel_margin(ins, s):
    x, t = ins["input"], ins["target"]
    shape = x.shape[:-1] if x.dim() else ()
    c = x.shape[-1] if x.dim() else 1
    out = spec("multilabel_margin")(x.reshape(-1, c), t.reshape(-1, c), reduction=s["reduction"])
    return out.reshape(shape) if s["reduction"] == "none" else out


def _multi_margin(ins, s):
    x, t = ins["input"], ins["target"]
    shape = x.shape[:-1] if x.dim() else ()
    c = x.shape[-1] if x.dim() else 1
    out = spec("multi_margin")(
        x.reshape(-1, c),
        t.reshape(-1),
        **_weight_kw(s),
        p=s["p"],
        margin=s["margin"],
        reduction=s["reduction"],
    )
    return out.reshape(shape) if s["reduction"] == "none" else out


def _multilabel_soft_margin(ins, s):
    x, t = ins["input"], ins["target"]
    shape = x.shape[:-1]
    c = x.shape[-1]
    x2, t2 = x.reshape(-1, c), t.reshape(-1, c).to(x.dtype)
    kw = {} if s.get("weight") is None else {"weight": s["weight"].expand(x.shape).reshape(-1, c)}
    out = spec("multilabel_soft_margin")(x2, t2, **kw, reduction=s["reduction"])
    return out.reshape(shape) if s["reduction"] == "none" else out


def _triplet(ins, s):
    a, p, n = ins["anchor"], ins["positive"], ins["negative"]
    shape = a.shape[:-1]
    a, p, n = _batch1(a, p, n)
    out = spec("triplet_margin")(
        a,
        p,
        n,
        margin=s["margin"],
        p=float(s["p"]),
        eps=s["eps"],
        swap=s["swap"],
        reduction=s["reduction"],
    )
    return out.reshape(shape) if s["reduction"] == "none" else out


def _distance_choice(fn):
    """The spec's `distance` choice that is torch's distance_function (None: pairwise)."""
    if fn is None or isinstance(fn, nn.PairwiseDistance) or fn is F.pairwise_distance:
        if isinstance(fn, nn.PairwiseDistance):
            assert fn.norm == 2 and fn.eps == 1e-6 and not fn.keepdim
        return "pairwise"
    if getattr(fn, "lossdsl_distance", None) == "cosine":
        return "cosine"
    raise AssertionError(f"no distance choice for {fn!r}")


def _triplet_with_distance(ins, s):
    a, p, n = ins["anchor"], ins["positive"], ins["negative"]
    shape = a.shape[:-1]
    a, p, n = _batch1(a, p, n)
    out = spec("triplet_margin_with_distance", distance=_distance_choice(s["distance_function"]))(
        a, p, n, margin=s["margin"], swap=s["swap"], reduction=s["reduction"]
    )
    return out.reshape(shape) if s["reduction"] == "none" else out


def _ctc(ins, s):
    lp, tg = ins["log_probs"], ins["targets"]
    il, tl = ins["input_lengths"], ins["target_lengths"]
    il = torch.as_tensor(il, dtype=torch.long)
    tl = torch.as_tensor(tl, dtype=torch.long)
    if tg.dim() == 1:  # torch's concatenated targets, padded to [B, max length]
        ends = torch.cumsum(tl, 0)
        width = int(tl.max()) if tl.numel() else 0
        pad = torch.zeros(len(tl), width, dtype=tg.dtype)
        for b in range(len(tl)):
            pad[b, : tl[b]] = tg[ends[b] - tl[b] : ends[b]]
        tg = pad
    r = s["reduction"]
    per_token = r == "mean"  # torch's 'mean': each loss over its target length, then the mean
    return spec("ctc")(lp, tg, il, tl, blank=s["blank"], per_token=per_token, reduction=r)


ADAPTERS = {
    "L1Loss": _elementwise("l1", lambda s: {}),
    "MSELoss": _elementwise("mse", lambda s: {}),
    "SmoothL1Loss": _elementwise("smooth_l1", lambda s: {"beta": s["beta"]}),
    "HuberLoss": _elementwise("huber", lambda s: {"delta": s["delta"]}),
    "SoftMarginLoss": _elementwise("soft_margin", lambda s: {}),
    "HingeEmbeddingLoss": _elementwise("hinge_embedding", lambda s: {"margin": s["margin"]}),
    "MarginRankingLoss": _elementwise("margin_ranking", lambda s: {"margin": s["margin"]}),
    "KLDivLoss": _kl_div,
    "GaussianNLLLoss": _gaussian_nll,
    "CrossEntropyLoss": _cross_entropy,
    "NLLLoss": _nll,
    "BCELoss": _bce,
    "BCEWithLogitsLoss": _bce_with_logits,
    "PoissonNLLLoss": _poisson,
    "CosineEmbeddingLoss": _cosine_embedding,
    "MultiLabelMarginLoss": _multilabel_margin,
    "MultiMarginLoss": _multi_margin,
    "MultiLabelSoftMarginLoss": _multilabel_soft_margin,
    "TripletMarginLoss": _triplet,
    "TripletMarginWithDistanceLoss": _triplet_with_distance,
    "CTCLoss": _ctc,
}


# ----------------------------------------------------------------------------------------------
# The comparison


def _defaults(case):
    """The functional's defaults for settings an OpInfo sample leaves out."""
    s = dict(case.settings)
    if case.source == "op_db":
        fn = getattr(F, {v: k for k, v in OPS.items()}[case.criterion].split(".")[-1])
        for k, p in inspect.signature(fn).parameters.items():
            if k not in s and k not in case.inputs and p.default is not inspect.Parameter.empty:
                s[k] = p.default
    return s


def _differentiable(case):
    """The floating inputs whose gradient the case checks (torch differentiates them all)."""
    return [
        k for k, v in case.inputs.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
    ]


def _run(fn, case, wrt):
    ins = {
        k: (v.detach().clone().requires_grad_(k in wrt) if isinstance(v, torch.Tensor) else v)
        for k, v in case.inputs.items()
    }
    leaves = [ins[k] for k in wrt]
    if case.criterion == "CTCLoss":
        # torch's ctc backward is the gradient w.r.t. the logits of a log_softmax (pytorch#52241):
        # both sides read the case's log_probs through log_softmax (the same values: they are
        # log_softmax outputs), so both gradients are w.r.t. those logits
        ins = dict(ins, log_probs=torch.log_softmax(ins["log_probs"], dim=-1))
    out = fn(ins)
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True) if leaves else ()
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]
    return out.detach(), grads


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_torch_case(case):
    s = _defaults(case)
    wrt = _differentiable(case)
    while True:
        try:
            ref, ref_g = _run(case.run_torch, case, wrt)
            break
        except RuntimeError as e:  # an input torch does not differentiate: not compared
            m = re.search(r"not differentiable with respect to argument '(\w+)'", str(e))
            if not m or m.group(1) not in wrt:
                raise
            wrt.remove(m.group(1))
    ours, ours_g = _run(lambda ins: ADAPTERS[case.criterion](ins, s), case, wrt)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10)
    for k, a, b in zip(wrt, ours_g, ref_g, strict=True):
        if case.criterion == "PoissonNLLLoss" and s["full"] and k == "target":
            # KNOWN_GRAD_DIFFERENCES: where target == 0 torch's d/dtarget is 0 * log(0) = NaN
            # (masked_fill's zero times the Stirling term's derivative); the term is absent
            # there, so the spec's derivative is that of the rest of the loss, finite
            zero = case.inputs["target"] == 0
            assert ref_g[wrt.index(k)][zero].isnan().all() and a[zero].isfinite().all()
            a, b = a[~zero], b[~zero]
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=lambda m, k=k: f"d/d{k}: {m}")


# ----------------------------------------------------------------------------------------------
# The jax backend on one case per new spec (the same adapters, the spec compiled for jax, against
# torch's value), and boundaries torch's cases do not reach.

JAX_CASES = {
    "NLLLoss": "NLLLoss-module_db-20_weights_ignore_index",
    "BCELoss": "BCELoss-module_db-4_weights",
    "PoissonNLLLoss": "PoissonNLLLoss-module_db-4_full",
    "MarginRankingLoss": "MarginRankingLoss-module_db-4_margin",
    "CosineEmbeddingLoss": "CosineEmbeddingLoss-module_db-4_margin",
    "HingeEmbeddingLoss": "HingeEmbeddingLoss-module_db-8_margin",
    "MultiLabelMarginLoss": "MultiLabelMarginLoss-module_db-1_default",
    "SoftMarginLoss": "SoftMarginLoss-module_db-0_default",
    "MultiLabelSoftMarginLoss": "MultiLabelSoftMarginLoss-module_db-4_weight",
    "TripletMarginWithDistanceLoss": "TripletMarginWithDistanceLoss-op_db-3_cosine",
}


class _JaxSpec:
    """spec() compiled for jax, called on the numpy values of the adapter's torch tensors."""

    def __init__(self):
        self.compiled = {}

    def __call__(self, name, **baked):
        import jax.numpy as jnp

        key = (name, tuple(sorted(baked.items())))
        if key not in self.compiled:
            self.compiled[key] = lossdsl.load(name).compile("jax", **baked)
        fn = self.compiled[key]

        def call(*args, **kw):
            conv = {
                k: (jnp.asarray(v.detach().numpy()) if isinstance(v, torch.Tensor) else v)
                for k, v in kw.items()
            }
            out = fn(*[jnp.asarray(a.detach().numpy()) for a in args], **conv)
            return torch.from_numpy(np.asarray(out).copy())

        return call


@pytest.mark.parametrize("case_id", sorted(JAX_CASES.values()))
def test_jax_backend_case(case_id, monkeypatch):
    import jax

    jax.config.update("jax_enable_x64", True)
    case = next(c for c in CASES if c.id == case_id)
    s = _defaults(case)
    ref = case.run_torch(case.inputs)
    monkeypatch.setitem(globals(), "spec", _JaxSpec())
    ours = ADAPTERS[case.criterion](dict(case.inputs), s)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-9, atol=1e-10)


def test_all_ignored_is_zero():
    """nll: every target ignored gives the declared empty value 0 with zero gradient (the
    cross_entropy spec's convention); torch's F.nll_loss gives NaN there."""
    x = torch.log_softmax(torch.randn(3, 4), dim=1).requires_grad_()
    t = torch.full((3,), 2)
    out = spec("nll")(x, t, ignore_index=2)
    (g,) = torch.autograd.grad(out, x)
    assert out.item() == 0 and (g == 0).all()
    assert F.nll_loss(x, t, ignore_index=2).isnan()


def test_bce_at_zero_and_one():
    """bce at p = 0 and 1 (torch's log clamp at -100): value and torch's declared gradient."""
    p = torch.tensor([[0.0, 1.0, 0.0, 1.0, 1e-13]])
    t = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0]])
    pa, pb = p.clone().requires_grad_(), p.clone().requires_grad_()
    ours = spec("bce")(pa, t, reduction="sum")
    ref = F.binary_cross_entropy(pb, t, reduction="sum")
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, pa)[0], torch.autograd.grad(ref, pb)[0])


def test_multilabel_margin_padding():
    """The first -1 ends the target list (what follows is ignored); an empty list costs 0."""
    x = torch.randn(3, 4, requires_grad=True)
    t = torch.tensor([[2, -1, 0, 1], [-1, 3, 3, 3], [1, 1, 3, -1]])
    ours = spec("multilabel_margin")(x, t, reduction="none")
    ref = F.multilabel_margin_loss(x, t, reduction="none")
    torch.testing.assert_close(ours, ref)
    assert ours[1].item() == 0
    torch.testing.assert_close(
        torch.autograd.grad(ours.sum(), x)[0], torch.autograd.grad(ref.sum(), x)[0]
    )


def test_cosine_embedding_zero_vector():
    """torch's EPSILON (1e-12) inside the squared norms: a zero vector has cos = 0 and a finite
    gradient, as torch."""
    x1 = torch.zeros(2, 3).requires_grad_()
    x2 = torch.randn(2, 3)
    y = torch.tensor([1.0, -1.0])
    ours = spec("cosine_embedding")(x1, x2, y, margin=-0.5, reduction="sum")
    ref = F.cosine_embedding_loss(x1, x2, y, margin=-0.5, reduction="sum")
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, x1)[0], torch.autograd.grad(ref, x1)[0])


def test_case_counts():
    """Every criterion lossdsl ships has torch cases here, and most of them run."""
    for name in SPEC_OF:
        total = sum(c.criterion == name for c in CASES)
        run = sum(p.values[0].criterion == name for p in CASE_PARAMS)
        assert total > 0, name
        assert run >= total / 2, (name, run, total)


# ----------------------------------------------------------------------------------------------
# torch.nn.AdaptiveLogSoftmaxWithLoss: torch's installed test helpers hold no case for it, so
# the settings below are chosen here (torch's module itself is the reference): cutoffs
# [5, 10, 15] of 20 classes, in_features 16, div_value 2.0, with and without head_bias; a batch
# of 64 with targets in every cluster, a batch of one, every target in the shortlist, every
# target in the last cluster. The tail input is what the module computes: each row's own
# cluster's logits `tail[k](x_b)`, left-aligned and padded with zeros (the spec ignores the pad).

ALS_CASES = [
    # (id, batch, head_bias, the targets' range)
    ("batch64_all_clusters", 64, False, (0, 20)),
    ("batch64_head_bias", 64, True, (0, 20)),
    ("batch1", 1, False, (12, 13)),
    ("shortlist_only", 8, False, (0, 5)),
    ("last_cluster_only", 8, True, (15, 20)),
]


def _als_inputs(module, x, t):
    cut = [*module.cutoffs[:-1], module.n_classes]
    width = max(cut[i + 1] - cut[i] for i in range(len(cut) - 1))
    rows = []
    for b in range(x.shape[0]):
        k = sum(int(t[b]) >= c for c in cut[:-1]) - 1
        if k < 0:
            rows.append(torch.zeros(width))
        else:
            r = module.tail[k](x[b : b + 1])[0]
            rows.append(torch.cat([r, torch.zeros(width - r.shape[0])]))
    return module.head(x), torch.stack(rows), torch.tensor(module.cutoffs)


@pytest.mark.parametrize("case", ALS_CASES, ids=[c[0] for c in ALS_CASES])
def test_adaptive_log_softmax(case):
    _, batch, head_bias, (lo, hi) = case
    torch.manual_seed(0)
    m = nn.AdaptiveLogSoftmaxWithLoss(16, 20, [5, 10, 15], div_value=2.0, head_bias=head_bias)
    x = torch.randn(batch, 16, requires_grad=True)
    t = torch.randint(lo, hi, (batch,))
    ref = m(x, t)
    head, tail, cutoffs = _als_inputs(m, x, t)
    f = spec("adaptive_log_softmax")
    none = f(head, tail, t, cutoffs, reduction="none")
    torch.testing.assert_close(none, -ref.output, rtol=1e-12, atol=1e-12)
    loss = f(head, tail, t, cutoffs)
    torch.testing.assert_close(loss, ref.loss, rtol=1e-12, atol=1e-12)
    params = [x, *m.parameters()]
    ours_g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    ref_g = torch.autograd.grad(ref.loss, params, allow_unused=True)
    for p, a, b in zip(params, ours_g, ref_g, strict=True):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    if case[0] == "batch64_all_clusters":  # the jax backend on the same inputs
        import jax

        jax.config.update("jax_enable_x64", True)
        fj = lossdsl.load("adaptive_log_softmax").compile("jax")
        out = fj(
            *[np.asarray(v.detach().numpy()) for v in (head, tail, t, cutoffs)],
            reduction="none",
        )
        np.testing.assert_allclose(np.asarray(out), -ref.output.detach().numpy(), rtol=1e-12)
