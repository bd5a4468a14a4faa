"""Regression: MSE, L1, Huber, smooth L1, Gaussian NLL, balanced MSE (BMC), HL-Gauss (regression
as classification), the signal Dice (SDSC), the discrete-time survival NLL (pycox), the robust
losses of kornia (Charbonnier, Cauchy, Welsch, Geman-McClure) and the von Mises NLL of angle
regression (scipy.stats.vonmises, torch.distributions.VonMises).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from reference.bmc_official import bmc_loss
from reference.discrete_hazard_nll_official import nll_logistic_hazard
from reference.hl_gauss_official import hl_gauss_loss
from reference.sdsc_official import (
    sdsc_canonical,
    sdsc_loss_canonical,
    sdsc_loss_legacy,
)
from torch_helpers import (
    REDUCTIONS,
    assert_same,
    assert_same_as_optax,
    compiled,
    gen,
    grad_of,
    randn,
)

import lossdsl

# ---- mse: F.mse_loss; optax.squared_error ---------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5), (6,)])
def test_mse_matches_torch_and_optax(shape):
    a = torch.randn(*shape, generator=gen(11))
    b = torch.randn(*shape, generator=gen(12))
    fn = lossdsl.load("mse").compile("torch")
    for r in ("mean", "sum", "none"):
        assert_same(
            lambda a, b: fn(a, b, reduction=r),
            lambda a, b: F.mse_loss(a, b, reduction=r),
            {"a": a, "b": b},
            ["a", "b"],
        )
    ours = lossdsl.load("mse").compile("jax")(a.numpy(), b.numpy(), reduction="none")
    np.testing.assert_allclose(
        np.asarray(ours), np.asarray(optax.squared_error(a.numpy(), b.numpy()))
    )


# ---- B5 l1: F.l1_loss ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5), (6,)])
def test_l1_matches_torch(shape):
    a, b = torch.randn(*shape, generator=gen(10)), torch.randn(*shape, generator=gen(11))
    fn = compiled("l1")
    for r in REDUCTIONS:
        assert_same(
            lambda a, b, r=r: fn(a, b, reduction=r),
            lambda a, b, r=r: F.l1_loss(a, b, reduction=r),
            {"a": a, "b": b},
            ["a", "b"],
        )
    ours = compiled("l1", "jax")(a.numpy(), b.numpy(), reduction="none")
    np.testing.assert_allclose(np.asarray(ours), np.abs(a.numpy() - b.numpy()))  # jnp.abs form


def test_l1_zero_residual_has_zero_gradient():
    """Edge: pred == target: torch's subgradient sign(0) = 0."""
    a = torch.randn(4, 3, generator=gen(12))
    b = a.clone()
    b[0] += 1.0
    fn = compiled("l1")
    assert_same(lambda a: fn(a, b), lambda a: F.l1_loss(a, b), {"a": a}, ["a"])


# ---- B6 huber: F.huber_loss; optax.huber_loss ------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5)])
@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_matches_torch_and_optax(shape, delta):
    a = torch.randn(*shape, generator=gen(13)) * 2
    b = torch.randn(*shape, generator=gen(14)) * 2
    fn = compiled("huber")
    for r in REDUCTIONS:
        assert_same(
            lambda a, b, r=r: fn(a, b, delta=delta, reduction=r),
            lambda a, b, r=r: F.huber_loss(a, b, delta=delta, reduction=r),
            {"a": a, "b": b},
            ["a", "b"],
        )
    ours = compiled("huber", "jax")
    assert_same_as_optax(
        lambda a, b: ours(a, b, delta=delta, reduction="none"),
        lambda a, b: optax.huber_loss(a, b, delta=delta),
        {"a": a, "b": b},
        ["a", "b"],
    )


def test_huber_is_delta_times_smooth_l1():
    """Metamorphic (catalog B6/B7): huber_delta = delta * smooth_l1_{beta = delta}."""
    a, b = torch.randn(5, 4, generator=gen(15)) * 3, torch.randn(5, 4, generator=gen(16))
    for d in (0.5, 2.0):
        h = compiled("huber")(a, b, delta=d, reduction="none")
        s = compiled("smooth_l1")(a, b, beta=d, reduction="none")
        torch.testing.assert_close(h, d * s)


# ---- B7 smooth_l1: F.smooth_l1_loss ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5)])
@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 2.5])
def test_smooth_l1_matches_torch(shape, beta):
    a = torch.randn(*shape, generator=gen(17)) * 2
    b = torch.randn(*shape, generator=gen(18)) * 2
    fn = compiled("smooth_l1")
    for r in REDUCTIONS:
        assert_same(
            lambda a, b, r=r: fn(a, b, beta=beta, reduction=r),
            lambda a, b, r=r: F.smooth_l1_loss(a, b, beta=beta, reduction=r),
            {"a": a, "b": b},
            ["a", "b"],
        )


def test_smooth_l1_beta_zero_is_l1_without_nan():
    """Edge: beta = 0 is F.l1_loss (torch's rule), finite values and gradients on both backends,
    baked or passed per call."""
    a, b = torch.randn(6, 3, generator=gen(19)), torch.randn(6, 3, generator=gen(20))
    for fn, kw in ((compiled("smooth_l1"), {"beta": 0.0}), (compiled("smooth_l1", beta=0.0), {})):
        assert_same(
            lambda a, b, fn=fn, kw=kw: fn(a, b, **kw),
            lambda a, b: F.l1_loss(a, b),
            {"a": a, "b": b},
            ["a", "b"],
        )
    g = jax.grad(lambda a: compiled("smooth_l1", "jax")(a, b.numpy(), beta=0.0))(a.numpy())
    np.testing.assert_allclose(g, np.sign(a.numpy() - b.numpy()) / a.numel())


# ---- B10 gaussian_nll: F.gaussian_nll_loss -------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5)])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("eps", [1e-6, 0.1])
def test_gaussian_nll_matches_torch(shape, full, eps):
    mu = torch.randn(*shape, generator=gen(33))
    t = torch.randn(*shape, generator=gen(34))
    var = torch.rand(*shape, generator=gen(35)) * 2
    var.view(-1)[::4] = 1e-8  # below eps: the clamp acts (torch: straight-through gradient)
    var.view(-1)[1] = 0.0
    fn = compiled("gaussian_nll")
    for r in REDUCTIONS:
        assert_same(
            lambda mu, t, var, r=r: fn(mu, t, var, eps=eps, full=full, reduction=r),
            lambda mu, t, var, r=r: F.gaussian_nll_loss(
                mu, t, var, full=full, eps=eps, reduction=r
            ),
            {"mu": mu, "t": t, "var": var},
            ["mu", "t", "var"],
        )


def test_gaussian_nll_plain_clamp_variant():
    """straight_through=false is torch.clamp(var, min=eps) (autograd through the clamp: zero
    gradient to var below eps); above eps both conventions agree with torch."""
    mu, t = torch.randn(6, 4, generator=gen(36)), torch.randn(6, 4, generator=gen(37))
    var = torch.rand(6, 4, generator=gen(38)) + 0.05
    var[:, 0] = 1e-9
    eps = 1e-6

    def ref(mu, t, var):
        v = torch.clamp(var, min=eps)
        return (0.5 * (torch.log(v) + (t - mu) ** 2 / v)).mean()

    fn = compiled("gaussian_nll")
    inputs = {"mu": mu, "t": t, "var": var}

    def ours(mu, t, var):
        return fn(mu, t, var, straight_through=False)

    assert_same(ours, ref, inputs, ["mu", "t", "var"])
    v = var.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(mu, t, v, straight_through=False), [v])
    assert torch.all(g[:, 0] == 0) and torch.all(g[:, 1:] != 0)
    var2 = var.clone()
    var2[:, 0] = 0.5
    assert_same(
        ours,
        lambda mu, t, var: F.gaussian_nll_loss(mu, t, var),
        {**inputs, "var": var2},
        ["mu", "t", "var"],
    )


def test_gaussian_nll_homoscedastic_var_expanded():
    """torch broadcasts a var with one fewer dim; lossdsl takes it expanded: same value, and
    the gradient of the [B] var is the sum over the expanded dim."""
    mu, t = torch.randn(5, 3, generator=gen(39)), torch.randn(5, 3, generator=gen(40))
    var = torch.rand(5, generator=gen(41)) + 0.1
    fn = compiled("gaussian_nll")
    assert_same(
        lambda mu, var: fn(mu, t, var[:, None].expand(5, 3)),
        lambda mu, var: F.gaussian_nll_loss(mu, t, var),
        {"mu": mu, "var": var},
        ["mu", "var"],
    )


# ---- balanced_mse: jiawei-ren/BalancedMSE bmc_loss -------------------------------------------


@pytest.mark.parametrize("b", [8, 33])
def test_balanced_mse_matches_official(b):
    pred = torch.randn(b, generator=gen(29))
    target = torch.randn(b, generator=gen(30))
    nv = torch.tensor(0.7)
    fn = lossdsl.load("balanced_mse").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda pred, target, nv: fn(pred, target, nv, reduction=r),
            lambda pred, target, nv: bmc_loss(pred[:, None], target[:, None], nv, reduction=r),
            {"pred": pred, "target": target, "nv": nv},
            ["pred", "target", "nv"],
        )


# ---- hl_gauss_ce: Stop Regressing, Appendix A (HLGaussLoss) ----------------------------------


@pytest.mark.parametrize("bins", [11, 51])
def test_hl_gauss_matches_paper_code(bins, reduction):
    vmin, vmax, b = -3.0, 5.0, 9
    width = (vmax - vmin) / bins
    sigma = 0.75 * width
    support = torch.linspace(vmin, vmax, bins + 1)
    centers = (support[:-1] + support[1:]) / 2
    x = torch.randn(b, bins, generator=gen(24)) * 2
    t = torch.rand(b, generator=gen(25)) * 7 - 2.5
    fn = lossdsl.load("hl_gauss_ce").compile("torch")
    assert_same(
        lambda x, t: fn(x, t, centers, bin_width=width, sigma_ratio=0.75, reduction=reduction),
        lambda x, t: hl_gauss_loss(x, t, vmin, vmax, bins, sigma, reduction=reduction),
        {"x": x, "t": t},
        ["x", "t"],
        rtol=1e-8,
    )


# ---- sdsc: CVMILab-CUK/Signal_Dice_Similarity_Coefficient sdsc_canonical.py / metrics.py -------

BT = [(8, 5), (13, 40)]


@pytest.mark.parametrize("bt", BT)
def test_sdsc_hard_matches_canonical(bt, reduction):
    x, y = randn(*bt, seed=1), randn(*bt, seed=2, scale=2.0)
    fn = lossdsl.load("sdsc").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, reduction=reduction),
        lambda x, y: sdsc_loss_canonical(x, y, alpha=None, reduction=reduction),
        {"x": x, "y": y},
        ["x", "y"],
    )


@pytest.mark.parametrize("bt", BT)
@pytest.mark.parametrize("alpha", [1.0, 10.0, 100.0])
def test_sdsc_soft_matches_canonical(bt, alpha, reduction):
    x, y = randn(*bt, seed=3), randn(*bt, seed=4, scale=0.5)
    fn = lossdsl.load("sdsc").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, alpha=alpha, reduction=reduction),
        lambda x, y: sdsc_loss_canonical(x, y, alpha=alpha, reduction=reduction),
        {"x": x, "y": y},
        ["x", "y"],
    )


@pytest.mark.parametrize("alpha", [None, 10.0])
def test_sdsc_single_sequence_matches_legacy(alpha):
    # legacy metrics.py sums over the whole tensor (one global ratio); with B = 1 that is the
    # per-sequence value; its soft gate is built under no_grad -> detach_gate = true
    x, y = randn(1, 50, seed=5), randn(1, 50, seed=6)
    fn = lossdsl.load("sdsc").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, alpha=alpha or 0.0, detach_gate=True),
        lambda x, y: sdsc_loss_legacy(x, y, alpha=alpha),
        {"x": x, "y": y},
        ["x", "y"],
    )
    # for B > 1 the legacy global ratio is a different number (documented in the spec)
    x, y = randn(4, 10, seed=7), randn(4, 10, seed=8, scale=3.0)
    assert abs(fn(x, y).item() - sdsc_loss_legacy(x, y).item()) > 1e-3


def test_sdsc_hand_values():
    fn = lossdsl.load("sdsc").compile("torch")
    x = torch.tensor([[1.0, -2.0, 3.0, 0.0]])
    # identical signals: inter = |x|, SDSC = (2*6 + eps) / (12 + eps) = 1, loss 0
    torch.testing.assert_close(fn(x, x), torch.tensor(0.0))
    # inverted polarity: no overlap, loss = 1 - eps / (12 + eps) (paper's "Inverted" example)
    torch.testing.assert_close(fn(x, -x), torch.tensor(1 - 1e-6 / (12 + 1e-6)))
    # scaled by 0.5: inter = 0.5|x|, SDSC = (6 + eps) / (9 + eps) ~ 2/3 (project page example)
    torch.testing.assert_close(fn(0.5 * x, x), torch.tensor(1 - (6 + 1e-6) / (9 + 1e-6)))
    # two zero signals: (0 + eps) / (0 + eps) = 1 -> loss 0 (eps in both, as upstream)
    z = torch.zeros(2, 3)
    torch.testing.assert_close(fn(z, z, reduction="none"), torch.zeros(2))
    # H(0) = 0 (canonical): a zero in either signal contributes no overlap
    torch.testing.assert_close(
        sdsc_canonical(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])),
        1 - fn(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])),
    )


def test_sdsc_soft_gate_carries_gradient_unless_detached():
    # the soft gate's own gradient is what separates the canonical loss from the legacy one
    x, y = randn(3, 6, seed=9), randn(3, 6, seed=10)
    fn = lossdsl.load("sdsc").compile("torch")
    _, (g_soft, _) = grad_of(lambda x, y: fn(x, y, alpha=1.0), x, y)
    _, (g_det, _) = grad_of(lambda x, y: fn(x, y, alpha=1.0, detach_gate=True), x, y)
    assert (g_soft - g_det).abs().max() > 1e-3


# ---- discrete_hazard_nll: havakv/pycox nll_logistic_hazard -------------------------------------


def hazard_inputs(shape, seed):
    g = gen(seed)
    b, k = shape
    phi = torch.randn(b, k, generator=g) * 2
    idx = torch.randint(0, k, (b,), generator=g)
    idx[0] = 0
    idx[1] = k - 1
    events = (torch.rand(b, generator=g) < 0.6).to(phi.dtype)  # pycox casts bool to float32
    return phi, idx, events


def test_discrete_hazard_nll_matches_pycox(shape, reduction):
    phi, idx, events = hazard_inputs(shape, seed=sum(shape))
    fn = compiled("discrete_hazard_nll")
    assert_same(
        lambda phi: fn(phi, idx, events, reduction=reduction),
        lambda phi: nll_logistic_hazard(phi, idx, events, reduction=reduction),
        {"phi": phi},
        ["phi"],
    )


def test_discrete_hazard_nll_hand_values_weights_and_edges():
    fn = compiled("discrete_hazard_nll")
    phi = torch.tensor([[0.3, -1.0, 2.0], [0.3, -1.0, 2.0], [0.3, -1.0, 2.0]])
    idx = torch.tensor([0, 2, 1])
    ev = torch.tensor([1.0, 0.0, 1.0])
    sp = F.softplus
    # by hand: event in interval 0: -log h_0; censored in 2: -sum_j log(1 - h_j);
    # event in 1: -log(1 - h_0) - log h_1
    want = torch.stack([sp(-phi[0, 0]), sp(phi[1]).sum(), sp(phi[2, 0]) + sp(-phi[2, 1])])
    torch.testing.assert_close(fn(phi, idx, ev, reduction="none"), want)
    # weights multiply each sample's NLL, then the plain mean over B
    w = torch.tensor([0.5, 2.0, 0.0])
    torch.testing.assert_close(fn(phi, idx, ev, w, reduction="none"), w * want)
    torch.testing.assert_close(fn(phi, idx, ev, w), (w * want).mean())
    # huge logits stay finite and agree with pycox (BCE with logits)
    big = torch.tensor([[1e3, -1e3, 5e2], [-1e3, 1e3, 0.0]], requires_grad=True)
    i2, e2 = torch.tensor([2, 1]), torch.tensor([0.0, 1.0])
    out = fn(big, i2, e2, reduction="none")
    torch.testing.assert_close(out, nll_logistic_hazard(big, i2, e2, reduction="none"))
    (g,) = torch.autograd.grad(out.sum(), big)
    assert torch.isfinite(g).all()


# ---- pinball: sklearn.metrics.mean_pinball_loss ----------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (5, 2, 4)])
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_pinball_matches_sklearn(shape, tau, reduction):
    """The mean over every element is sklearn's mean_pinball_loss(alpha=tau) (1.9.1); per
    element and summed, its formula alpha relu(d) + (1 - alpha) relu(-d) (d = target - pred,
    sklearn/metrics/_regression.py) on each entry. Gradients w.r.t. pred and target: that
    formula differentiated by torch (residuals never exactly 0: no kink)."""
    from sklearn.metrics import mean_pinball_loss

    pred, target = randn(*shape, seed=81), randn(*shape, seed=82)
    fn = compiled("pinball", tau=tau)
    ours = fn(pred, target, reduction="mean")
    want = mean_pinball_loss(target.reshape(-1).numpy(), pred.reshape(-1).numpy(), alpha=tau)
    assert ours.item() == pytest.approx(want, rel=1e-13)

    def ref(p, t):
        d = t - p
        per = tau * torch.relu(d) + (1 - tau) * torch.relu(-d)
        return {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]

    assert_same(
        lambda p, t: fn(p, t, reduction=reduction), ref, {"p": pred, "t": target}, ["p", "t"]
    )


def test_pinball_is_minimized_at_the_quantile():
    """Metamorphic: over constant predictions c, the mean pinball loss of a sample is smallest
    at the sample's tau-quantile (the language's quantile(..., over=N), numpy's linear method):
    a grid around it never goes below, and its subgradient there brackets 0."""
    y = randn(1, 41, seed=83)
    for tau in (0.2, 0.5, 0.75):
        fn = compiled("pinball", tau=tau)
        q = lossdsl.parse(
            f"loss q(y: float[B, N]) {{\n    quantile(y, {tau}, over=N)\n}}\n"
        ).compile("torch")(y, reduction="none")
        assert q.item() == pytest.approx(np.quantile(y.numpy(), tau), rel=1e-14)
        at = fn(q.expand(1, 41), y).item()
        for c in torch.linspace(-3, 3, 61):
            assert fn(torch.full((1, 41), c.item()), y).item() >= at - 1e-15


# ---- crps_gaussian: properscoring.crps_gaussian ------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 3), (4, 2, 5)])
def test_crps_gaussian_matches_properscoring(shape, reduction):
    """Values against properscoring.crps_gaussian (0.1) per element and reduced; gradients w.r.t.
    mu and sigma against its closed-form grad=True ([1 - 2 Phi(z), 2 phi(z) - 1/sqrt(pi)]),
    and w.r.t. the observation against -d/dmu (the score depends on target - mu only through
    z), on every backend, float64."""
    import properscoring as ps
    from helpers import call, grads

    mu, target = randn(*shape, seed=85, scale=2.0), randn(*shape, seed=86, scale=2.0)
    sigma = torch.rand(*shape, generator=gen(87)) * 2 + 0.1
    data = {"mu": mu.numpy(), "sigma": sigma.numpy(), "target": target.numpy()}
    per, (dmu, dsig) = ps.crps_gaussian(data["target"], data["mu"], data["sigma"], grad=True)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    n = 1.0 if reduction != "mean" else per.size
    spec = lossdsl.load("crps_gaussian")
    r = "sum" if reduction == "none" else reduction
    for b in ("torch", "jax", "numpy"):
        got = call(b, spec.compile(b), data, "float64", reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=b)
        if b == "numpy":
            continue
        g = grads(b, spec.compile(b), data, ["mu", "sigma", "target"], "float64", reduction=r)
        np.testing.assert_allclose(g["mu"], dmu / n, rtol=1e-10, atol=1e-13, err_msg=b)
        np.testing.assert_allclose(g["sigma"], dsig / n, rtol=1e-10, atol=1e-13, err_msg=b)
        np.testing.assert_allclose(g["target"], -dmu / n, rtol=1e-10, atol=1e-13, err_msg=b)


def test_crps_gaussian_limits():
    """As sigma -> 0 the CRPS is |target - mu| (the score of a point forecast: MAE); at
    target = mu it is sigma (2 phi(0) - 1/sqrt(pi)) = sigma (sqrt(2) - 1) / sqrt(pi), by hand."""
    fn = compiled("crps_gaussian")
    mu, t = torch.tensor([0.5, -1.0]), torch.tensor([2.0, -3.5])
    got = fn(mu, torch.full((2,), 1e-9), t, reduction="none")
    torch.testing.assert_close(got, (t - mu).abs(), rtol=1e-8, atol=0)
    s = torch.tensor([0.7, 3.0])
    got = fn(mu, s, mu, reduction="none")
    torch.testing.assert_close(got, s * (2**0.5 - 1) / torch.pi**0.5, rtol=1e-15, atol=0)


# ---- robust losses (Barron 2019, c = 1): kornia.losses (kornia 0.9.0) --------------------------

ROBUST = ["charbonnier", "cauchy", "welsch", "geman_mcclure"]


def robust_inputs(shape, seed):
    """Residuals spanning every regime: exactly zero, tiny (1e-9, where the naive Charbonnier
    and Welsch forms cancel), around the branch point r^2 = 1 of kornia's Charbonnier and
    Welsch, and large (1e3, 1e8)."""
    pred = randn(*shape, seed=seed, scale=2.0)
    target = randn(*shape, seed=seed + 1, scale=2.0)
    flat_p, flat_t = pred.view(-1), target.view(-1)
    flat_t[0] = flat_p[0]  # zero residual
    flat_t[1] = flat_p[1] - 1e-9
    flat_t[2] = flat_p[2] + 1.0  # r^2 = 1 exactly: kornia's large branch
    flat_t[3] = flat_p[3] - (1.0 - 1e-12)
    flat_t[4] = flat_p[4] + 1e3
    flat_t[5] = flat_p[5] - 1e8
    return pred, target


@pytest.mark.parametrize("name", ROBUST)
@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 4, 5)])
def test_robust_matches_kornia(name, shape, reduction):
    """Values and gradients (w.r.t. pred and target) of kornia.losses.<name>_loss, per element
    for 'none' (kornia's default) and over every element for 'mean' and 'sum'."""
    import kornia.losses as KL

    ref = getattr(KL, f"{name}_loss")
    pred, target = robust_inputs(shape, seed=len(shape) + 90)
    fn = compiled(name)
    assert_same(
        lambda pred, target: fn(pred, target, reduction=reduction),
        lambda pred, target: ref(pred, target, reduction=reduction),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )


@pytest.mark.parametrize("name", ROBUST)
def test_robust_other_backends_match_kornia(name, other_backend):
    """Per element, the generated jax and numpy modules against kornia."""
    import kornia.losses as KL

    pred, target = robust_inputs((4, 3, 2), seed=95)
    got = compiled(name, other_backend)(pred.numpy(), target.numpy(), reduction="none")
    want = getattr(KL, f"{name}_loss")(pred, target).numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)


def test_robust_hand_values_and_limits():
    """By hand from Barron's formulas (CVPR 2019, Eq. 1 limits at c = 1): at r = 0 every loss and
    its gradient is 0; at r = 2: Charbonnier sqrt(5) - 1, Cauchy log 3, Welsch 1 - e^-2,
    Geman-McClure 1; as r -> inf, Welsch -> 1, Geman-McClure -> 2."""
    p = torch.tensor([[0.0, 2.0, 1e9]], requires_grad=True)
    t = torch.zeros(1, 3)
    want = {
        "charbonnier": [0.0, 5**0.5 - 1, 1e9 - 1],
        "cauchy": [0.0, np.log(3.0), np.log1p(0.5e18)],
        "welsch": [0.0, 1 - np.exp(-2.0), 1.0],
        "geman_mcclure": [0.0, 1.0, 2.0],
    }
    for name, w in want.items():
        out = compiled(name)(p, t, reduction="none")
        torch.testing.assert_close(out, torch.tensor([w]), rtol=1e-12, atol=1e-15)
        (g,) = torch.autograd.grad(out.sum(), p)
        assert g[0, 0] == 0 and torch.isfinite(g).all()


def test_charbonnier_overflow_is_inf_like_kornia():
    """Edge: r^2 overflows float64 (|r| > 1.3e154): kornia's large branch gives inf and a zero
    gradient (its small branch never sees the inf); the spec takes the same two branches."""
    from kornia.losses import charbonnier_loss

    p, t = torch.tensor([[1e200, 0.5]]), torch.zeros(1, 2)
    assert_same(
        lambda p: compiled("charbonnier")(p, t, reduction="none"),
        lambda p: charbonnier_loss(p, t),
        {"p": p},
        ["p"],
    )


# ---- von_mises_nll: scipy.stats.vonmises.logpdf; torch.distributions.VonMises -------------------

# kappa from the uniform circle (0) through the range where I_0 overflows float64 (713) to 1e6
_KAPPAS = [0.0, 1e-3, 0.5, 5.0, 50.0, 88.0, 700.0, 1e4, 1e6]


def _von_mises_inputs(shape, seed):
    g = gen(seed)
    n = int(np.prod(shape))
    kappa = torch.tensor(_KAPPAS * (n // len(_KAPPAS) + 1))[:n].reshape(shape)
    mu = (torch.rand(*shape, generator=g) - 0.5) * 20  # beyond one period: the density is periodic
    target = (torch.rand(*shape, generator=g) - 0.5) * 2 * np.pi
    return mu, kappa, target


@pytest.mark.parametrize("shape", [(9,), (6, 4), (3, 5, 7)])
def test_von_mises_nll_matches_scipy(shape, reduction):
    """Values: -scipy.stats.vonmises.logpdf(t, kappa, loc=mu) (scipy 1.17, float64), elementwise
    then reduced. Gradients: the closed forms d/dkappa = I_1/I_0 - cos(t - mu) with scipy's
    i1e / i0e (the scale cancels), d/dmu = -kappa sin(t - mu), d/dt = kappa sin(t - mu)."""
    from scipy.special import i0e, i1e
    from scipy.stats import vonmises

    mu, kappa, t = _von_mises_inputs(shape, 70)
    m, k, tt = mu.numpy(), kappa.numpy(), t.numpy()
    want = -vonmises.logpdf(tt, k, loc=m)
    want = {"none": want, "sum": want.sum(), "mean": want.mean()}[reduction]
    dk = i1e(k) / i0e(k) - np.cos(tt - m)
    dm = -k * np.sin(tt - m)
    scale = 1.0 / m.size if reduction == "mean" else 1.0
    for backend in ("torch", "jax", "numpy"):
        fn = compiled("von_mises_nll", backend)
        got = fn(m, k, tt, reduction=reduction) if backend != "torch" else None
        if backend == "torch":
            xs = [x.clone().requires_grad_(True) for x in (mu, kappa, t)]
            out = fn(*xs, reduction=reduction)
            gm, gk, gt = torch.autograd.grad(out.sum(), xs)
            np.testing.assert_allclose(gk.numpy(), dk * scale, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(gm.numpy(), dm * scale, rtol=1e-10, atol=1e-9 * scale)
            np.testing.assert_allclose(gt.numpy(), -dm * scale, rtol=1e-10, atol=1e-9 * scale)
            got = out.detach().numpy()
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=1e-14)
    gj = jax.grad(lambda k: compiled("von_mises_nll", "jax")(m, k, tt, reduction="sum"))(k)
    np.testing.assert_allclose(np.asarray(gj), dk, rtol=1e-12, atol=1e-14)


def test_von_mises_nll_matches_torch_distributions():
    """-torch.distributions.VonMises(mu, kappa).log_prob(t) (torch 2.13): its log I_0 is the
    Abramowitz-Stegun polynomial (9.8.1-9.8.2), good to ~3e-7 absolute, measured 3.0e-7 on these
    inputs; the spec agrees with scipy to 1e-13 (the test above)."""
    mu, kappa, t = _von_mises_inputs((6, 4), 71)
    kappa = kappa.clamp(min=1e-9)  # torch's concentration constraint is > 0
    ref = -torch.distributions.VonMises(mu, kappa).log_prob(t)
    got = compiled("von_mises_nll")(mu, kappa, t, reduction="none")
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


def test_von_mises_nll_is_finite_where_i0_overflows_in_float32():
    """Edge: I_0(kappa) overflows float32 at kappa = 89 (e^89 / sqrt(2 pi 89) > 3.4e38); the spec's
    float32 value at kappa up to 1e6 matches scipy's float64 value to float32 rounding, with a
    finite gradient."""
    from scipy.stats import vonmises

    kappa = torch.tensor([90.0, 1e3, 1e6], dtype=torch.float32, requires_grad=True)
    mu = torch.zeros(3, dtype=torch.float32)
    t = torch.tensor([0.01, 0.001, 0.0], dtype=torch.float32)
    out = compiled("von_mises_nll")(mu, kappa, t, reduction="none")
    want = -vonmises.logpdf(t.double().numpy(), kappa.detach().double().numpy())
    np.testing.assert_allclose(out.detach().double().numpy(), want, rtol=2e-6)
    (g,) = torch.autograd.grad(out.sum(), kappa)
    assert torch.isfinite(g).all()
