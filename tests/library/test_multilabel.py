"""Binary and multi-label (sigmoid) classification: BCE with logits, sigmoid focal, poly-1 focal,
the asymmetric loss (ASL) and single-positive multi-label EM/APL.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import math

import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from reference.asl_official import asymmetric_loss, asymmetric_loss_optimized
from reference.em_spml_official import compute_batch_loss
from reference.poly1_paper import poly1_focal_loss
from reference.sigmoid_focal_torchvision import sigmoid_focal_loss
from torch_helpers import assert_same, compiled, gen, grad_of, logits_target, randn

import lossdsl

# ---- bce_with_logits: F.binary_cross_entropy_with_logits; optax.sigmoid_binary_cross_entropy --


@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits_matches_torch(shape, pos):
    x = torch.randn(*shape, generator=gen(2)) * 4
    t = torch.rand(*shape, generator=gen(3))
    pw = torch.rand(shape[1], generator=gen(4)) * 3 if pos else None
    fn = lossdsl.load("bce_with_logits").compile("torch")
    for r in ("mean", "sum", "none"):
        assert_same(
            lambda x, t: fn(x, t, pw, reduction=r),
            lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction=r),
            {"x": x, "t": t},
            ["x", "t"],
        )
    ours = lossdsl.load("bce_with_logits").compile("jax")(x.numpy(), t.numpy(), reduction="none")
    ref = optax.sigmoid_binary_cross_entropy(x.numpy(), t.numpy())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-10)


# ---- sigmoid_focal: torchvision transcription; optax.sigmoid_focal_loss --------------------


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 6, 2)])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.9, 1.5)])
def test_sigmoid_focal_matches_torchvision(shape, alpha, gamma):
    x = torch.randn(*shape, generator=gen(7)) * 3
    t = (torch.rand(*shape, generator=gen(8)) < 0.3).double()
    fn = lossdsl.load("sigmoid_focal").compile("torch")
    for r in ("none", "mean", "sum"):
        assert_same(
            lambda x, t: fn(x, t, alpha=alpha, gamma=gamma, reduction=r),
            lambda x, t: sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=r),
            {"x": x, "t": t},
            ["x"],
        )


def test_sigmoid_focal_matches_optax():
    x = np.random.default_rng(0).standard_normal((6, 4)) * 3
    t = (np.random.default_rng(1).random((6, 4)) < 0.4).astype(np.float64)
    ours = lossdsl.load("sigmoid_focal").compile("jax")(x, t, reduction="none")
    ref = optax.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-9)


# ---- poly1_focal: the paper's poly1_focal_loss listing; torchvision at epsilon = 0 ------------


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 7)])
@pytest.mark.parametrize("eps", [-1.0, 0.0, 1.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_poly1_focal_matches_paper_listing(shape, eps, alpha):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(*shape, generator=g) < 0.4).double()
    fn = lossdsl.load("poly1_focal").compile("torch")
    a = -1.0 if alpha is None else alpha
    for reduction in ("none", "sum", "mean"):
        assert_same(
            lambda x: fn(x, t, epsilon=eps, gamma=2.0, alpha=a, reduction=reduction),
            lambda x: poly1_focal_loss(x, t, eps, 2.0, alpha=alpha, reduction=reduction),
            {"x": x},
            ["x"],
        )
    if eps == 0.0 and alpha is not None:  # the epsilon = 0 case is torchvision's focal loss
        ours = fn(x, t, epsilon=0.0, alpha=0.25, reduction="none")
        ref = sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none")
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


# ---- asymmetric: Alibaba-MIIL/ASL AsymmetricLoss / AsymmetricLossOptimized -----------------


@pytest.mark.parametrize(
    "gammas",
    [
        dict(gamma_neg=4, gamma_pos=1),
        dict(gamma_neg=4, gamma_pos=0),
        dict(gamma_neg=2, gamma_pos=3),
    ],
)
def test_asymmetric_matches_official(shape, reduction, gammas):
    g = gen(10)
    x = torch.randn(*shape, generator=g) * 3
    t = (torch.rand(*shape, generator=g) < 0.3).double()
    fn = compiled("asl")
    assert_same(
        lambda x, t: fn(x, t, **gammas, reduction=reduction),
        lambda x, t: asymmetric_loss(x, t, **gammas, reduction=reduction),
        {"x": x, "t": t},
        ["x"],
    )


@pytest.mark.parametrize("detach", [False, True])
def test_asymmetric_detach_matches_optimized(shape, detach):
    """detach_focus = AsymmetricLossOptimized(disable_torch_grad_focal_loss=...)."""
    g = gen(11)
    x = torch.randn(*shape, generator=g) * 3
    t = (torch.rand(*shape, generator=g) < 0.3).double()
    fn = compiled("asl")
    assert_same(
        lambda x, t: fn(x, t, detach_focus=detach),
        lambda x, t: asymmetric_loss_optimized(x, t, disable_torch_grad_focal_loss=detach),
        {"x": x, "t": t},
        ["x"],
    )


def test_asymmetric_default_reduction_is_sum_and_saturated_logits():
    """Upstream returns -loss.sum(); saturated logits hit the eps clamp and the clip (w = 0)."""
    x = torch.tensor([[30.0, -30.0, -1e4, 1e4], [0.0, -3.5, 2.0, -40.0]])
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    fn = compiled("asl")
    assert_same(lambda x, t: fn(x, t), lambda x, t: asymmetric_loss(x, t), {"x": x, "t": t}, ["x"])
    assert torch.isfinite(fn(x, t))


def test_asymmetric_no_focus_no_clip_is_bce_sum():
    """gamma_pos = gamma_neg = 0, clip = 0, eps = 0: BCE summed
    (F.binary_cross_entropy_with_logits)."""
    x, _ = logits_target((9, 6), seed=12)
    t = (torch.rand(9, 6, generator=gen(13)) < 0.5).double()
    fn = compiled("asl")
    assert_same(
        lambda x, t: fn(x, t, gamma_pos=0.0, gamma_neg=0.0, clip=0.0, eps=0.0),
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
        {"x": x, "t": t},
        ["x"],
        rtol=1e-9,
    )


# ---- em_spml: Correr-Zhou/SPML-AckTheUnknown losses.py (loss_EM_APL, loss_EM) ------------------


def spml_observed(shape, seed, apl=True):
    """One observed positive per row (the SPML setting); some unannotated entries turned into APL
    pseudo-negatives -pred with pred in (0, 0.3) (main.py stores -unlabel_class_preds)."""
    g = gen(seed)
    b, c = shape
    obs = torch.zeros(b, c)
    obs[torch.arange(b), torch.randint(0, c, (b,), generator=g)] = 1.0
    if apl:
        pick = (torch.rand(b, c, generator=g) < 0.4) & (obs == 0)
        obs[pick] = -0.3 * torch.rand(b, c, generator=g)[pick]
    return obs


@pytest.mark.parametrize("alpha,beta", [(0.2, 0.02), (0.01, 0.4), (0.1, 0.9)])
def test_em_spml_matches_official_apl(shape, reduction, alpha, beta):
    x = randn(*shape, seed=1, scale=3.0)
    obs = spml_observed(shape, seed=2)
    assert (obs < 0).any() and (obs == 0).any() and (obs == 1).any()
    fn = lossdsl.load("em_spml").compile("torch")
    assert_same(
        lambda x: fn(x, obs, alpha=alpha, beta=beta, reduction=reduction),
        lambda x: compute_batch_loss(x, obs, alpha=alpha, beta=beta, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_em_spml_plain_em_matches_official_loss_em(shape):
    # observed in {0, 1}: the official loss_EM (no APL branch); beta is then irrelevant
    x = randn(*shape, seed=3, scale=3.0)
    obs = spml_observed(shape, seed=4, apl=False)
    fn = lossdsl.load("em_spml").compile("torch")
    assert_same(
        lambda x: fn(x, obs, alpha=0.1, beta=123.0),
        lambda x: compute_batch_loss(x, obs, alpha=0.1, apl=False),
        {"x": x},
        ["x"],
    )


def test_em_spml_hand_values_and_saturation():
    fn = lossdsl.load("em_spml").compile("torch")
    eps = 1e-5
    # logit 0: p = 1/2. positive: -log(0.5 + eps); unannotated: -alpha * H = alpha * log(0.5 +
    # eps); pseudo-negative q = 0.2: beta * -log(0.5 + eps) (q and 1 - q weigh the same value)
    x = torch.zeros(1, 4)
    obs = torch.tensor([[1.0, 0.0, -0.2, 0.5]])
    nl = -math.log(0.5 + eps)
    want = torch.tensor([[nl, -0.2 * nl, 0.02 * nl, 0.0]])  # 0.5: no official branch -> 0
    torch.testing.assert_close(fn(x, obs, reduction="none"), want)
    # the entropy term is maximal (most negative loss) at p = 1/2: its gradient vanishes there
    _, (g,) = grad_of(lambda x: fn(x, torch.zeros(1, 1), reduction="sum"), torch.zeros(1, 1))
    assert abs(g.item()) < 1e-12
    # saturated logits stay finite thanks to the 1e-5 inside the logs (official neg_log)
    x = torch.tensor([[-50.0, 50.0, 50.0]])
    out = fn(x, torch.tensor([[1.0, 0.0, -0.1]]), reduction="none")
    ref = compute_batch_loss(x, torch.tensor([[1.0, 0.0, -0.1]]), reduction="none")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out[0, 0], torch.tensor(-math.log(eps + torch.sigmoid(x[0, 0]))))


def _focal64(x, t, gamma, eps=0.0):
    """The sigmoid focal (and Poly-1 focal) loss in float64 from logaddexp, no cancellation:
    bce = t log(1 + e^-x) + (1 - t) log(1 + e^x); 1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x)
    (Lin et al. 2017 eq. 5 with torchvision's soft p_t; Leng et al. 2022 eq. 5 for eps)."""
    bce = t * np.logaddexp(0.0, -x) + (1 - t) * np.logaddexp(0.0, x)
    s = lambda v: np.exp(-np.logaddexp(0.0, -v))  # noqa: E731 (sigmoid, no overflow)
    m = t * s(-x) + (1 - t) * s(x)
    return m**gamma * bce + eps * m ** (gamma + 1)


@pytest.mark.parametrize("name,kw", [("sigmoid_focal", {"alpha": -1.0}), ("poly1_focal", {})])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_multilabel_focal_is_exact_at_saturated_logits_in_float32(name, kw, gamma, backend):
    """The class behind optax's test_extreme_logits_finite_gradients: at logits +-20, 50, 75,
    100 with labels 0, 0.1, 0.9, 1, in float32, each element's loss and gradient is the float64
    closed form's to 1e-5 relative (a softplus(x) - x t BCE and a 1 - p_t were 0 there: 100%
    off), and the jax Hessian is finite up to the logit gap 50 (optax's case; beyond it, with a
    hard label, (1 - p_t)^(gamma - 2) (1 - p_t)'^2 overflows float32 times underflows: a limit
    of the power form, which optax's log-space factor does not have). Float64 reference:
    _focal64 above; its gradient by central differences in float64."""
    x64 = np.array([20.0, -20.0, 50.0, -50.0, 75.0, -75.0, 100.0, -100.0] * 4)
    t64 = np.repeat([0.0, 0.1, 0.9, 1.0], 8)
    eps = 1.0 if name == "poly1_focal" else 0.0
    want = _focal64(x64, t64, gamma, eps)
    h = 1e-4 * np.maximum(1.0, np.abs(x64))
    dwant = (_focal64(x64 + h, t64, gamma, eps) - _focal64(x64 - h, t64, gamma, eps)) / (2 * h)
    fn = lossdsl.load(name).compile(backend)
    params = dict(kw, gamma=gamma)
    if name == "poly1_focal":
        params["epsilon"] = eps
    if backend == "torch":
        x = torch.tensor(x64, dtype=torch.float32, requires_grad=True)
        out = fn(x, torch.tensor(t64, dtype=torch.float32), reduction="none", **params)
        (g,) = torch.autograd.grad(out.sum(), x)
        got, grad = out.detach().double().numpy(), g.double().numpy()
    else:
        import jax
        import jax.numpy as jnp

        t = jnp.asarray(t64, jnp.float32)

        def total(v):
            return fn(v, t, reduction="sum", **params)

        x = jnp.asarray(x64, jnp.float32)
        got = np.asarray(fn(x, t, reduction="none", **params), np.float64)
        grad = np.asarray(jax.grad(total)(x), np.float64)
        easy = (np.abs(x64) <= 50) | ((t64 > 0) & (t64 < 1))  # p_t ~ 1 - 2e-22 at most
        te = jnp.asarray(t64[easy], jnp.float32)
        hess = jax.hessian(lambda v: fn(v, te, reduction="sum", **params))(x[easy])
        assert np.isfinite(np.asarray(hess)).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-37)
    np.testing.assert_allclose(grad, dwant, rtol=1e-4, atol=1e-37)
