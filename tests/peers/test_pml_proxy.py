"""Peer parity: pytorch-metric-learning's proxy, class-weight and softmax-over-classes losses.

Every case runs the installed pytorch_metric_learning 2.9.0 class itself and the lossdsl spec on
the same inputs, the class's own weight matrix or proxies (drawn by the class's own init under a
fixed seed) passed to the spec as an input, and compares the reduced value (PML's default
reducer) and the gradients w.r.t. the embeddings and the weights.

The tables transcribe the settings, batch layouts and label patterns of PML's own tests,
KevinMusgrave/pytorch-metric-learning tests/losses/test_<name>_loss.py at tag v2.8.1 (commit
216a792), the newest stored beside the installed 2.9.0 (the loss sources of these classes are
the same in both, but for SubCenterArcFaceLoss copying its kwargs). Each table names its file.
Their expected values are recomputed by PML itself (their hand-written loops and the official
implementations they copy are what PML is tested against), so every case compares lossdsl with
the installed class. Cases of ours follow (several seeds, absent classes, B = 1, the per-element
losses of reduction="none", jax against torch).

What PML's tests do that is not loss math is excluded, each with its reason: EXCLUDED below and
docs/peers/pml_proxy.md."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from pytorch_metric_learning import distances, losses, reducers
from pytorch_metric_learning.regularizers import SparseCentersRegularizer
from torch_helpers import gen

import lossdsl

PML_TAG = "pytorch-metric-learning tests @ v2.8.1 (216a792); installed 2.9.0"

EXCLUDED = {
    "TEST_DTYPES float16 (all files)": (
        "half precision: PML computes in float16, lossdsl computes half inputs in float32 and "
        "casts back (a different rounding by design); the float16-only settings (proxy anchor "
        "alpha=1, proxy NCA softmax_scale=1, soft triple la=1 gamma=1) run in float64 instead"
    ),
    "TEST_DEVICE, use_autocast (test_proxy_anchor_loss)": (
        "device placement and CUDA autocast: no loss math (the float32 and float64 cases run)"
    ),
    "get_logits checks (arcface, cosface, large_margin_softmax, normalized_softmax, "
    "proxy_anchor, proxy_nca, subcenter_arcface)": (
        "loss.get_logits(embeddings) is PML's inference API for the scaled cosines, not the loss"
    ),
    "test_subcenter_arcface_loss::test_inference_subcenter_arcface": (
        "get_outliers(): a no-grad inference utility (dominant sub-centers, outlier indices)"
    ),
    "test_p2s_grad_loss: the weight's optimizer step (SGD)": (
        "the test builds an SGD optimizer only to zero the grads; the weight gradient itself "
        "is compared here"
    ),
    "test_soft_triple_loss float32 with centers_per_class > 1": (
        "the SparseCentersRegularizer term sqrt(2 - 2 cos) of near-coincident centers (11 per "
        "class in 2-D) is below float32's resolution: its gradient is rounding; the float64 "
        "cases run (at rtol 1e-6, REG_TOL) and float32 runs with K = 1"
    ),
}


def angle_to_coord(angles, factor=1.0):
    """PML's tests' 2-D embeddings: (2 cos a, 0.5 sin a), a in degrees
    (tests/zzz_testing_utils/testing_utils.py), times `factor` (the L-Softmax test's 10)."""
    a = np.radians(np.asarray(angles, dtype=np.float64))
    return torch.tensor(np.stack([2 * np.cos(a), 0.5 * np.sin(a)], axis=1)) * factor


@functools.cache
def _spec(name, backend="torch", choices=()):
    return lossdsl.load(name).compile(backend, **dict(choices))


# where each class keeps its weights, and how the spec's input is laid out:
# (attribute, spec layout from PML's tensor, back to PML's layout)
WEIGHTS = {
    "arcface": "W",
    "cosface": "W",
    "large_margin_softmax": "W",
    "sphereface": "W",
    "normalized_softmax": "W",
    "subcenter_arcface": "W",
    "soft_triple": "fc",
    "proxy_anchor": "proxies",
    "proxy_nca": "proxies",
    "p2sgrad": "weight",
}
SUBCENTERS = {"subcenter_arcface", "soft_triple"}  # W.view(D, C, K)


def _run_pml(make, name, e, y, seed):
    """PML's loss value and gradients (embeddings, weights) with its own init under `seed`."""
    torch.manual_seed(seed)
    loss = make().to(e.dtype)
    e = e.clone().requires_grad_(True)
    if name not in WEIGHTS:
        out = loss(e, y)
        return out, torch.autograd.grad(out, [e]), None
    w = getattr(loss, WEIGHTS[name])
    w0 = w.detach().clone()  # P2SGradLoss renorms its data at the call, the spec does the same
    out = loss(e, y)
    return out, torch.autograd.grad(out, [e, w]), w0


def _run_spec(name, params, e, y, w0, c, backend_choices=(), reduction="mean"):
    fn = _spec(name, "torch", backend_choices)
    e = e.clone().requires_grad_(True)
    if w0 is None:
        out = fn(e, y, reduction=reduction, **params)
        return out, torch.autograd.grad(out.sum(), [e])
    w = w0.clone()
    if name in SUBCENTERS:
        w = w.view(w.shape[0], c, -1)
    w.requires_grad_(True)
    out = fn(e, y, w, reduction=reduction, **params)
    ge, gw = torch.autograd.grad(out.sum(), [e, w])
    return out, (ge, gw.reshape(w0.shape))


def _check(name, make, params, e, y, c, seed=0, rtol=1e-10, atol=1e-12, choices=()):
    want, gwant, w0 = _run_pml(make, name, e, y, seed)
    got, ggot = _run_spec(name, params, e, y, w0, c, choices)
    torch.testing.assert_close(got, want.detach(), rtol=rtol, atol=atol)
    for a, b in zip(ggot, gwant, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    return got


def _labels(n, high, seed):
    return torch.randint(0, high, (n,), generator=gen(seed))


# float32: their rtol 1e-5 on values; the gradients of two float32 programs get 1e-4
DTYPES = [(torch.float64, 1e-10, 1e-12), (torch.float32, 1e-4, 1e-5)]

# ---- PML's own tests ----------------------------------------------------------------------------
# (source, spec, PML constructor, spec params, choice params, embeddings, labels high, classes)
ANGLES = list(range(180))
PEER_CASES = [
    # tests/losses/test_arcface_loss.py::test_arcface_loss
    (
        "test_arcface_loss.py::test_arcface_loss",
        "arcface",
        lambda: losses.ArcFaceLoss(margin=30, scale=64, num_classes=10, embedding_size=2),
        dict(margin=30.0, scale=64.0),
        (),
        angle_to_coord(ANGLES),
        10,
        10,
    ),
    # tests/losses/test_cosface_loss.py::test_cosface_loss
    (
        "test_cosface_loss.py::test_cosface_loss",
        "cosface",
        lambda: losses.CosFaceLoss(margin=0.5, scale=64, num_classes=10, embedding_size=2),
        dict(margin=0.5, scale=64.0),
        (),
        angle_to_coord(ANGLES),
        10,
        10,
    ),
    # tests/losses/test_large_margin_softmax_loss.py::test_large_margin_softmax_and_sphereface_loss
    # and ::test_backward (the same settings): lossA and lossB
    (
        "test_large_margin_softmax_loss.py (LargeMarginSoftmaxLoss)",
        "large_margin_softmax",
        lambda: losses.LargeMarginSoftmaxLoss(margin=10, scale=2, num_classes=10, embedding_size=2),
        dict(margin=10, scale=2.0),
        (),
        angle_to_coord(ANGLES, factor=10),
        10,
        10,
    ),
    (
        "test_large_margin_softmax_loss.py (SphereFaceLoss)",
        "sphereface",
        lambda: losses.SphereFaceLoss(margin=10, scale=2, num_classes=10, embedding_size=2),
        dict(margin=10, scale=2.0),
        (),
        angle_to_coord(ANGLES, factor=10),
        10,
        10,
    ),
    # tests/losses/test_normalized_softmax_loss.py::test_normalized_softmax_loss
    (
        "test_normalized_softmax_loss.py::test_normalized_softmax_loss",
        "normalized_softmax",
        lambda: losses.NormalizedSoftmaxLoss(
            temperature=0.1,
            num_classes=10,
            embedding_size=2,
            distance=distances.DotProductSimilarity(normalize_embeddings=False),
        ),
        dict(temperature=0.1),
        (("normalize_embeddings", False),),
        angle_to_coord(ANGLES),
        10,
        10,
    ),
    # tests/losses/test_proxy_anchor_loss.py::test_proxyanchor_loss: labels in 0..4 of 10
    # classes (half the proxies have no positive); alpha 32, and the float16 setting alpha 1
    *[
        (
            f"test_proxy_anchor_loss.py::test_proxyanchor_loss (alpha={alpha})",
            "proxy_anchor",
            functools.partial(losses.ProxyAnchorLoss, 10, 2, margin=0.5, alpha=alpha),
            dict(margin=0.5, alpha=float(alpha)),
            (),
            angle_to_coord(ANGLES),
            5,
            10,
        )
        for alpha in (32, 1)
    ],
    # tests/losses/test_proxy_nca_loss.py::test_proxy_nca_loss: softmax_scale 10 (1 for float16)
    *[
        (
            f"test_proxy_nca_loss.py::test_proxy_nca_loss (softmax_scale={s})",
            "proxy_nca",
            functools.partial(
                losses.ProxyNCALoss, softmax_scale=s, num_classes=10, embedding_size=2
            ),
            dict(softmax_scale=float(s)),
            (),
            angle_to_coord(ANGLES),
            10,
            10,
        )
        for s in (10, 1)
    ],
    # tests/losses/test_soft_triple_loss.py::test_soft_triple_loss: 11 classes, labels in 0..9,
    # centers_per_class 1..11, SparseCentersRegularizer (weight 0.2) when K > 1; la 20 gamma 0.1
    # (la 1 gamma 1 is the float16 setting)
    *[
        (
            f"test_soft_triple_loss.py::test_soft_triple_loss (K={k}, la={la}, gamma={g})",
            "soft_triple",
            functools.partial(
                losses.SoftTripleLoss,
                11,
                2,
                centers_per_class=k,
                la=la,
                gamma=g,
                margin=0.01,
                weight_regularizer=SparseCentersRegularizer(11, k) if k > 1 else None,
                weight_reg_weight=0.2,
            ),
            dict(la=float(la), gamma=g, margin=0.01, tau=0.2 if k > 1 else 0.0),
            (),
            angle_to_coord(ANGLES),
            10,
            11,
        )
        for la, g in ((20, 0.1), (1, 1.0))
        for k in range(1, 12)
    ],
]


# the center regularizer's sqrt(2 - 2 cos) of two near-coincident centers (11 centers per class in
# 2-D: gaps 2 - 2 cos down to 2e-9) turns the cosines' rounding (1e-16) into 1e-7 of the gradient
# between any two correct float64 programs, and float32 cannot resolve the gap at all
REG_TOL = (1e-6, 1e-8)


def _own_cases():
    for case in PEER_CASES:
        name, params = case[1], case[3]
        regularized = name == "soft_triple" and params["tau"] > 0
        for dtype, rtol, atol in DTYPES:
            if regularized and dtype == torch.float32:
                continue  # EXCLUDED: soft triple float32 with the regularizer
            if regularized:
                rtol, atol = REG_TOL
            yield pytest.param(*case, dtype, rtol, atol, id=f"{case[0]}-{str(dtype)[6:]}")


@pytest.mark.parametrize("source,name,make,params,choices,emb,high,c,dtype,rtol,atol", _own_cases())
def test_pml_own_cases(source, name, make, params, choices, emb, high, c, dtype, rtol, atol):
    """The settings of PML's test (source): value and gradients of PML and the spec."""
    y = _labels(len(emb), high, seed=len(source))
    _check(name, make, params, emb.to(dtype), y, c, rtol=rtol, atol=atol, choices=choices)


# tests/losses/test_subcenter_arcface_loss.py::test_subcenter_arcface_loss: B 64, D 32, 10
# classes, margin 30, scale 64, sub_centers 1, 3, 4, randn embeddings; K = 1 equals ArcFace
@pytest.mark.parametrize("k", [1, 3, 4])
def test_pml_subcenter_arcface(k):
    emb = torch.randn(64, 32, generator=gen(64 + k), dtype=torch.float64)
    y = _labels(64, 10, seed=k)

    def make():
        return losses.SubCenterArcFaceLoss(
            margin=30, scale=64, num_classes=10, embedding_size=32, sub_centers=k
        )

    got = _check("subcenter_arcface", make, dict(margin=30.0, scale=64.0), emb, y, 10, seed=k)
    if k == 1:  # the test's regular ArcFace with the same W
        torch.manual_seed(k)
        w = make().W.detach()
        arc = _spec("arcface")(emb, y, w, margin=30.0, scale=64.0)
        torch.testing.assert_close(got, arc, rtol=1e-12, atol=0)


# tests/losses/test_nca_loss.py::test_nca_loss (softmax_scale 10, angles 0..80 by 20, labels
# [0, 0, 1, 1, 2]) and ::test_zero_loss (NCALoss(10) on ([0, 20], [0, 0]) and ([0], [0]): 0)
NCA_CASES = [
    ("test_nca_loss", [0, 20, 40, 60, 80], [0, 0, 1, 1, 2], None),
    ("test_zero_loss two", [0, 20], [0, 0], 0.0),
    ("test_zero_loss one", [0], [0], 0.0),
]


@pytest.mark.parametrize("dtype,rtol,atol", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case,angles,labels,golden", NCA_CASES, ids=[c[0] for c in NCA_CASES])
def test_pml_nca(case, angles, labels, golden, dtype, rtol, atol):
    emb = angle_to_coord(angles).to(dtype)
    y = torch.tensor(labels)
    got = _check(
        "nca",
        lambda: losses.NCALoss(softmax_scale=10),
        dict(softmax_scale=10.0),
        emb,
        y,
        None,
        rtol=rtol,
        atol=atol,
    )
    if golden is not None:  # the test's assertEqual(loss, 0)
        assert got.item() == golden


# tests/losses/test_instance_loss.py::test_instance_loss: gamma in range(1, 256, 32), B 32,
# D 128, labels in 0..9
@pytest.mark.parametrize("gamma", list(range(1, 256, 32)))
def test_pml_instance(gamma):
    emb = torch.randn(32, 128, generator=gen(3029 + gamma), dtype=torch.float64)
    y = _labels(32, 10, seed=gamma)
    _check(
        "instance", lambda: losses.InstanceLoss(gamma=gamma), dict(gamma=float(gamma)), emb, y, None
    )


# tests/losses/test_p2s_grad_loss.py::test_p2s_grad_loss_with_trusted_implementation (value) and
# ::test_p2s_grad_loss_with_paper_formula (the weight gradient, Eq. 11 of the paper): 20
# classes, B 100, D 128, randn embeddings
@pytest.mark.parametrize("dtype,rtol,atol", DTYPES, ids=["float64", "float32"])
def test_pml_p2sgrad(dtype, rtol, atol):
    emb = torch.randn(100, 128, generator=gen(23), dtype=torch.float64).to(dtype)
    y = _labels(100, 20, seed=23)
    _check("p2sgrad", lambda: losses.P2SGradLoss(128, 20), {}, emb, y, 20, rtol=rtol, atol=atol)
    # the paper-formula test's gradient: 2 mean_b((cos_bj - [y_b = j]) e_b / |e_b|) / C (no clamp)
    torch.manual_seed(0)
    w = losses.P2SGradLoss(128, 20).weight.detach().to(dtype).requires_grad_(True)
    (gw,) = torch.autograd.grad(_spec("p2sgrad")(emb, y, w), [w])
    d = emb / emb.norm(dim=1, keepdim=True)
    lj = d @ (w.detach() / w.detach().norm(dim=0)) - torch.nn.functional.one_hot(y, 20)
    paper = 2 * (d.T @ lj) / len(emb) / 20
    torch.testing.assert_close(gw, paper, rtol=1e-3 if dtype == torch.float32 else 1e-6, atol=1e-9)


# ---- ours: seeds, absent classes, B = 1, per-element losses -----------------------------------
OURS = [
    ("arcface", lambda: losses.ArcFaceLoss(6, 5), {}),
    (
        "arcface",
        lambda: losses.ArcFaceLoss(6, 5, margin=150, scale=3),
        dict(margin=150.0, scale=3.0),
    ),
    ("cosface", lambda: losses.CosFaceLoss(6, 5), {}),
    ("large_margin_softmax", lambda: losses.LargeMarginSoftmaxLoss(6, 5), {}),
    (
        "large_margin_softmax",
        lambda: losses.LargeMarginSoftmaxLoss(6, 5, margin=1, scale=0.5),
        dict(margin=1, scale=0.5),
    ),
    ("sphereface", lambda: losses.SphereFaceLoss(6, 5, margin=3), dict(margin=3)),
    ("normalized_softmax", lambda: losses.NormalizedSoftmaxLoss(6, 5), {}),
    ("subcenter_arcface", lambda: losses.SubCenterArcFaceLoss(num_classes=6, embedding_size=5), {}),
    ("soft_triple", lambda: losses.SoftTripleLoss(6, 5, centers_per_class=3), {}),
    ("proxy_anchor", lambda: losses.ProxyAnchorLoss(6, 5), {}),
    ("proxy_nca", lambda: losses.ProxyNCALoss(6, 5), {}),
    ("p2sgrad", lambda: losses.P2SGradLoss(5, 6), {}),
    ("nca", lambda: losses.NCALoss(), {}),
    ("instance", lambda: losses.InstanceLoss(), {}),
]
LABELS = {
    "absent classes 2, 4, 5": [0, 1, 1, 3, 0, 3, 1],
    "every class, 5 twice": [5, 4, 3, 2, 1, 0, 5],
    "one class": [2, 2, 2, 2, 2, 2, 2],
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("labels", list(LABELS.values()), ids=list(LABELS))
@pytest.mark.parametrize("name,make,params", OURS, ids=[f"{c[0]}-{i}" for i, c in enumerate(OURS)])
def test_seeds_and_label_sets(name, make, params, labels, seed):
    emb = torch.randn(7, 5, generator=gen(100 + seed), dtype=torch.float64)
    _check(name, make, params, emb, torch.tensor(labels), 6, seed=seed)


@pytest.mark.parametrize("name,make,params", OURS, ids=[f"{c[0]}-{i}" for i, c in enumerate(OURS)])
def test_batch_of_one(name, make, params):
    """B = 1 (NCA: no neighbour, 0 in PML and here; proxy anchor: one positive proxy)."""
    emb = torch.randn(1, 5, generator=gen(7), dtype=torch.float64)
    _check(name, make, params, emb, torch.tensor([4]), 6, seed=3)


ELEMENT = [c for c in OURS if c[0] not in ("p2sgrad", "proxy_anchor")]


@pytest.mark.parametrize(
    "name,make,params", ELEMENT, ids=[f"{c[0]}-{i}" for i, c in enumerate(ELEMENT)]
)
def test_none_is_pmls_per_element_losses(name, make, params):
    """reduction="none" against the losses PML hands its reducer (DoNothingReducer): one per
    sample; NCA and ProxyNCA hand only the samples with a nonzero probability, the others are
    0 here."""
    emb = torch.randn(7, 5, generator=gen(5), dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 3, 0, 3, 5])  # 5 has no neighbour (NCA)
    torch.manual_seed(4)
    loss = make()
    loss.reducer = reducers.DoNothingReducer()
    info = loss(emb, y)["loss"]
    want = torch.zeros(7, dtype=torch.float64)
    want[info["indices"]] = info["losses"].detach()
    w0 = None
    if name in WEIGHTS:
        torch.manual_seed(4)
        w0 = getattr(make(), WEIGHTS[name]).detach()
    got, _ = _run_spec(name, params, emb, y, w0, 6, reduction="none")
    torch.testing.assert_close(got.detach(), want, rtol=1e-10, atol=1e-12)


def test_proxy_anchor_per_proxy_and_mean():
    """proxy_anchor's per-element loss is over the proxies: l_c = (C / |P|) pos_c + neg_c, with
    PML's pos_loss and neg_loss per proxy (DoNothingReducer); its mean is PML's value."""
    emb = torch.randn(7, 5, generator=gen(6), dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 3, 0, 3, 1])  # positives for 3 of 6 proxies
    torch.manual_seed(8)
    loss = losses.ProxyAnchorLoss(6, 5, reducer=reducers.DoNothingReducer())
    d = loss(emb, y)
    want = 6 / 3 * d["pos_loss"]["losses"] + d["neg_loss"]["losses"]
    got = _spec("proxy_anchor")(emb, y, loss.proxies.detach(), reduction="none")
    torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)


def test_nca_all_distinct_labels():
    """No sample has a neighbour of its class: 0 here; PML's MeanReducer of no element is NaN
    (a documented divergence, docs/peers/pml_proxy.md)."""
    emb = torch.randn(4, 3, generator=gen(9), dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    assert torch.isnan(losses.NCALoss()(emb, y))
    out = _spec("nca")(emb, y)
    (g,) = torch.autograd.grad(out, [emb])
    assert out.item() == 0 and torch.all(g == 0)


# ---- jax: one case per spec against the torch module --------------------------------------------
JAX_CASES = [
    ("arcface", dict(margin=150.0), "W"),
    ("cosface", {}, "W"),
    ("large_margin_softmax", dict(margin=3), "W"),
    ("sphereface", {}, "W"),
    ("normalized_softmax", {}, "W"),
    ("subcenter_arcface", {}, "W3"),
    ("soft_triple", dict(tau=0.2), "W3"),
    ("proxy_anchor", {}, "P"),
    ("proxy_nca", dict(softmax_scale=3.0), "P"),
    ("p2sgrad", {}, "W"),
    ("nca", {}, None),
    ("instance", dict(gamma=4.0), None),
]


@pytest.mark.parametrize("name,params,wkind", JAX_CASES, ids=[c[0] for c in JAX_CASES])
def test_jax_matches_torch(name, params, wkind, _x64):
    import jax
    import jax.numpy as jnp

    emb = torch.randn(7, 5, generator=gen(21), dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 3, 0, 3, 1])
    w = {
        "W": lambda: torch.randn(5, 6, generator=gen(22), dtype=torch.float64),
        "W3": lambda: torch.randn(5, 6, 3, generator=gen(22), dtype=torch.float64),
        "P": lambda: torch.randn(6, 5, generator=gen(22), dtype=torch.float64),
        None: lambda: None,
    }[wkind]()
    if name == "p2sgrad":
        w = w / w.norm(dim=0)
    t_fn, j_fn = _spec(name, "torch"), _spec(name, "jax")
    args = [emb, y] + ([w] if w is not None else [])
    targs = [a.clone().requires_grad_(True) if a.is_floating_point() else a for a in args]
    out = t_fn(*targs, **params)
    floats = [i for i, a in enumerate(args) if a.is_floating_point()]
    gt = torch.autograd.grad(out, [targs[i] for i in floats])
    jargs = [jnp.asarray(a.numpy()) for a in args]

    def f(*fl):
        full = list(jargs)
        for i, v in zip(floats, fl, strict=True):
            full[i] = v
        return j_fn(*full, **params)

    vj, gj = jax.value_and_grad(f, argnums=tuple(range(len(floats))))(*[jargs[i] for i in floats])
    np.testing.assert_allclose(np.asarray(vj), out.item(), rtol=1e-10)
    for a, b in zip(gj, gt, strict=True):
        np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-9, atol=1e-12)
