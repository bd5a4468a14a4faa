"""The catalog's baselines (section 2: B2, B5-B13) against something lossdsl did not compute:
torch.nn.functional, optax (values, and gradients through jax.grad), scikit-learn, or a
transcription of the official code (tests/reference/bpr_official.py, brier_sklearn.py).
Values and gradients in float64, at least two shapes, every reduction, plus edge cases.

Library versions are whatever `pip install -e .[test]` resolves (torch 2.13.0 pinned by CI)."""

from __future__ import annotations

import importlib
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from reference.bpr_official import lightgcn_bpr_loss, recbole_bpr_loss
from reference.brier_sklearn import brier_score_loss
from torch_helpers import assert_same, compiled, gen, logits_target

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]
REDUCTIONS = ["mean", "sum", "none"]


def assert_same_as_optax(ours_jax, optax_fn, inputs: dict, wrt: list[str], rtol=1e-10):
    """Values and gradients (jax.grad of the summed output) of lossdsl's JAX module and an optax
    function, on float64 numpy inputs."""
    xs = {
        k: jnp.asarray(v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()
    }
    np.testing.assert_allclose(ours_jax(**xs), optax_fn(**xs), rtol=rtol, atol=1e-12)
    for k in wrt:
        g_ours = jax.grad(lambda v, k=k: jnp.sum(ours_jax(**{**xs, k: v})))(xs[k])
        g_ref = jax.grad(lambda v, k=k: jnp.sum(optax_fn(**{**xs, k: v})))(xs[k])
        np.testing.assert_allclose(g_ours, g_ref, rtol=rtol, atol=1e-12)


def soft_targets(shape, seed):
    return F.softmax(torch.randn(*shape, generator=gen(seed)) * 2, dim=1)


# ---- B2 soft_cross_entropy: F.cross_entropy (probability targets); optax.softmax_cross_entropy


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_cross_entropy_matches_torch(shape, reduction, weighted, eps):
    x, q = torch.randn(*shape, generator=gen(1)) * 3, soft_targets(shape, 2)
    w = torch.rand(shape[1], generator=gen(3)) * 2 if weighted else None
    fn = compiled("soft_cross_entropy")
    assert_same(
        lambda x, q: fn(x, q, w, label_smoothing=eps, reduction=reduction),
        lambda x, q: F.cross_entropy(x, q, weight=w, label_smoothing=eps, reduction=reduction),
        {"x": x, "q": q},
        ["x", "q"],
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_soft_cross_entropy_matches_optax(shape):
    x, q = torch.randn(*shape, generator=gen(4)) * 3, soft_targets(shape, 5)
    ours = compiled("soft_cross_entropy", "jax")
    assert_same_as_optax(
        lambda x, q: ours(x, q, reduction="none"),
        lambda x, q: optax.softmax_cross_entropy(x, q),
        {"x": x, "q": q},
        ["x", "q"],
    )


def test_soft_cross_entropy_one_hot_targets_is_cross_entropy():
    """Metamorphic: a one-hot target distribution gives F.cross_entropy with integer labels."""
    x, y = logits_target((12, 6), seed=6)
    fn = compiled("soft_cross_entropy")
    assert_same(
        lambda x: fn(x, F.one_hot(y, 6).double()),
        lambda x: F.cross_entropy(x, y),
        {"x": x},
        ["x"],
    )


def test_soft_cross_entropy_shift_invariant_and_finite_for_huge_logits():
    """Metamorphic: adding a constant per row over C leaves it unchanged; logits ~1e4 finite."""
    x, q = torch.randn(7, 4, generator=gen(7)) * 3, soft_targets((7, 4), 8)
    fn = compiled("soft_cross_entropy")
    shift = torch.randn(7, 1, generator=gen(9)) * 100
    torch.testing.assert_close(fn(x + shift, q, reduction="none"), fn(x, q, reduction="none"))
    big = fn(x * 1e4, q, reduction="none")
    torch.testing.assert_close(big, F.cross_entropy(x * 1e4, q, reduction="none"))
    assert torch.all(torch.isfinite(big))


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


# ---- B8 kl_div: F.kl_div(batchmean); optax.kl_divergence -------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_kl_div_matches_torch(shape):
    lp = F.log_softmax(torch.randn(*shape, generator=gen(21)) * 2, dim=1)
    q = soft_targets(shape, 22)
    fn = compiled("kl_div")
    ref = {
        "mean": lambda lp, q: F.kl_div(lp, q, reduction="batchmean"),
        "sum": lambda lp, q: F.kl_div(lp, q, reduction="sum"),
        "none": lambda lp, q: F.kl_div(lp, q, reduction="none").sum(1),
    }
    for r in REDUCTIONS:
        assert_same(
            lambda lp, q, r=r: fn(lp, q, reduction=r), ref[r], {"lp": lp, "q": q}, ["lp", "q"]
        )
    # torch's reduction='mean' (the pitfall) is the sum over B * C elements
    b, c = shape
    with warnings.catch_warnings():  # torch warns that 'mean' is not 'batchmean'
        warnings.simplefilter("ignore", UserWarning)
        torch_mean = F.kl_div(lp, q, reduction="mean")
    torch.testing.assert_close(fn(lp, q, reduction="sum") / (b * c), torch_mean)


@pytest.mark.parametrize("shape", SHAPES)
def test_kl_div_matches_optax(shape):
    lp = F.log_softmax(torch.randn(*shape, generator=gen(23)) * 2, dim=1)
    q = soft_targets(shape, 24)
    ours = compiled("kl_div", "jax")
    assert_same_as_optax(
        lambda lp, q: ours(lp, q, reduction="none"),
        lambda lp, q: optax.kl_divergence(lp, q),
        {"lp": lp, "q": q},
        ["lp", "q"],
    )


def test_kl_div_zero_target_probabilities():
    """Edge: q = 0 entries contribute exactly 0 (0 log 0 = 0), like torch's xlogy; the gradient
    w.r.t. the model log-probs is -q/B there, i.e. 0."""
    lp = F.log_softmax(torch.randn(5, 4, generator=gen(25)), dim=1)
    q = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4, [0, 0, 0, 1.0], [0, 1.0, 0, 0]])
    fn = compiled("kl_div")
    assert_same(
        lambda lp: fn(lp, q), lambda lp: F.kl_div(lp, q, reduction="batchmean"), {"lp": lp}, ["lp"]
    )
    assert torch.isfinite(fn(lp, q))
    np.testing.assert_allclose(
        np.asarray(compiled("kl_div", "jax")(lp.numpy(), q.numpy(), reduction="none")),
        np.asarray(optax.kl_divergence(lp.numpy(), q.numpy())),
        rtol=1e-12,
    )


def test_kl_div_of_a_distribution_with_itself_is_zero():
    """Metamorphic: KL(q || q) = 0."""
    q = soft_targets((6, 5), 26)
    torch.testing.assert_close(
        compiled("kl_div")(q.log(), q, reduction="none"), torch.zeros(6), atol=1e-14, rtol=0
    )


# ---- B9 hinge (binary): optax.hinge_loss -------------------------------------------------------


@pytest.mark.parametrize("shape", [(16,), (8, 5), (3, 4, 6)])
def test_hinge_matches_optax(shape):
    s = torch.randn(*shape, generator=gen(27)) * 2
    y = torch.where(torch.rand(*shape, generator=gen(28)) < 0.5, -1.0, 1.0)
    ours = compiled("hinge", "jax")
    assert_same_as_optax(
        lambda s, y: ours(s, y, reduction="none"),
        lambda s, y: optax.hinge_loss(s, y),
        {"s": s, "y": y},
        ["s"],
    )
    fn = compiled("hinge")
    n = s.numel()
    for r, div in (("mean", n), ("sum", 1)):
        want = float(jnp.sum(optax.hinge_loss(s.numpy(), y.numpy()))) / div
        assert math.isclose(float(fn(s, y, reduction=r)), want, rel_tol=1e-12)


def test_hinge_margin_satisfied_gives_zero_loss_and_gradient():
    """Edge: y * s >= 1 everywhere: loss 0, gradient 0; y * s < 1: gradient -y / n."""
    s = torch.tensor([2.0, -3.0, 0.5, -0.2], requires_grad=True)
    y = torch.tensor([1.0, -1.0, 1.0, 1.0])
    out = compiled("hinge")(s, y)
    (g,) = torch.autograd.grad(out, [s])
    torch.testing.assert_close(out.detach(), torch.tensor((0.5 + 1.2) / 4))
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, -0.25, -0.25]))


# ---- B9 multiclass_hinge (Crammer-Singer): optax.losses.multiclass_hinge_loss ----------------


@pytest.mark.parametrize("shape", SHAPES)
def test_multiclass_hinge_matches_optax(shape):
    x, y = logits_target(shape, seed=29, scale=1.5)
    ours = compiled("multiclass_hinge", "jax")
    assert_same_as_optax(
        lambda x, y: ours(x, y, reduction="none"),
        lambda x, y: optax.losses.multiclass_hinge_loss(x, y),
        {"x": x, "y": y},
        ["x"],
    )
    fn = compiled("multiclass_hinge")
    per = np.asarray(optax.losses.multiclass_hinge_loss(x.numpy(), y.numpy()))
    for r, want in (("mean", per.mean()), ("sum", per.sum()), ("none", per)):
        np.testing.assert_allclose(fn(x, y, reduction=r).numpy(), want, rtol=1e-12)


def test_multiclass_hinge_target_top1_vs_not():
    """Edge: target top-1 by >= 1: loss 0, no gradient; target not top-1: 1 + best other - z_y,
    gradient +1 on the best other class and -1 on the target (divided by B)."""
    x = torch.tensor([[3.0, 0.5, -1.0], [0.2, 1.5, 0.9]], requires_grad=True)
    y = torch.tensor([0, 0])
    out = compiled("multiclass_hinge")(x, y, reduction="none")
    torch.testing.assert_close(out.detach(), torch.tensor([0.0, 1 + 1.5 - 0.2]))
    (g,) = torch.autograd.grad(out.sum(), [x])
    torch.testing.assert_close(g, torch.tensor([[0.0, 0, 0], [-1.0, 1, 0]]))
    (gj,) = [
        jax.grad(lambda v: compiled("multiclass_hinge", "jax")(v, y.numpy(), reduction="sum"))(
            x.detach().numpy()
        )
    ]
    np.testing.assert_allclose(gj, g.numpy())


def test_multiclass_hinge_margin_scales():
    """Metamorphic: with margin m, l(z; m) = m * l(z / m; 1) (the optax loss has margin 1)."""
    x, y = logits_target((9, 4), seed=30)
    fn = compiled("multiclass_hinge")
    for m in (0.5, 3.0):
        ref = m * np.asarray(optax.losses.multiclass_hinge_loss(x.numpy() / m, y.numpy()))
        got = fn(x, y, margin=m, reduction="none").numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


# ---- B9 multi_margin (Weston-Watkins): F.multi_margin_loss -------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_matches_torch(shape, p, margin, weighted):
    x, y = logits_target(shape, seed=31, scale=1.0)
    w = torch.rand(shape[1], generator=gen(32)) * 2 if weighted else None
    fn = compiled("multi_margin")
    for r in REDUCTIONS:
        assert_same(
            lambda x, r=r: fn(x, y, w, p=p, margin=margin, reduction=r),
            lambda x, r=r: F.multi_margin_loss(x, y, p=p, margin=margin, weight=w, reduction=r),
            {"x": x},
            ["x"],
        )


def test_multi_margin_target_top1_vs_not():
    """Edge: target top-1 by more than the margin: 0 (torch too); not top-1: every violating class
    counts (unlike Crammer-Singer's single worst class)."""
    x = torch.tensor([[4.0, 0.5, -1.0], [0.2, 1.5, 0.9]])
    y = torch.tensor([0, 0])
    ours = compiled("multi_margin")(x, y, reduction="none")
    torch.testing.assert_close(ours, F.multi_margin_loss(x, y, reduction="none"))
    torch.testing.assert_close(ours, torch.tensor([0.0, ((1 + 1.3) + (1 + 0.7)) / 3]))
    cs = compiled("multiclass_hinge")(x, y, reduction="none")
    assert cs[1] == pytest.approx(1 + 1.3) and ours[1] != cs[1]


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


# ---- B11 triplet_margin: F.triplet_margin_loss ---------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 4), (21, 16)])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("margin,eps", [(1.0, 1e-6), (0.2, 0.0), (2.0, 1e-3)])
def test_triplet_margin_matches_torch(shape, p, swap, margin, eps):
    a, pos, neg = (torch.randn(*shape, generator=gen(s)) for s in (42, 43, 44))
    pos = a + 0.7 * pos  # positives near the anchors: both hinge regimes occur
    fn = compiled("triplet_margin")
    for r in REDUCTIONS:
        assert_same(
            lambda a, pos, neg, r=r: fn(
                a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=r
            ),
            lambda a, pos, neg, r=r: F.triplet_margin_loss(
                a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=r
            ),
            {"a": a, "pos": pos, "neg": neg},
            ["a", "pos", "neg"],
            rtol=1e-9,
        )


def test_triplet_margin_module_defaults_and_identical_positive():
    """torch.nn.TripletMarginLoss() defaults (margin 1, p 2, eps 1e-6); an anchor equal to its
    positive: eps inside the norm keeps the distance sqrt(D) * eps and the gradient finite."""
    a, neg = torch.randn(6, 5, generator=gen(45)), torch.randn(6, 5, generator=gen(46))
    pos = torch.randn(6, 5, generator=gen(47))
    pos[:3] = a[:3]
    fn = compiled("triplet_margin")
    inputs = {"a": a, "pos": pos, "neg": neg}
    assert_same(
        lambda **k: fn(k["a"], k["pos"], k["neg"]),
        lambda **k: torch.nn.TripletMarginLoss()(k["a"], k["pos"], k["neg"]),
        inputs,
        ["a", "pos", "neg"],
    )
    ga = torch.func.grad(lambda a: fn(a, pos, neg))(a)
    assert torch.all(torch.isfinite(ga))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_triplet_margin_eps_zero_identical_positive_has_torch_gradient(p):
    """Edge: eps = 0 and anchor == positive: the distance is 0 and torch's norm backward gives a
    zero (not NaN) gradient there; so does the spec."""
    a = torch.randn(5, 4, generator=gen(59))
    neg = a + 0.3 * torch.randn(5, 4, generator=gen(60))
    fn = compiled("triplet_margin")
    assert_same(
        lambda a, pos: fn(a, pos, neg, eps=0.0, p=p),
        lambda a, pos: F.triplet_margin_loss(a, pos, neg, eps=0.0, p=p),
        {"a": a, "pos": a.clone()},
        ["a", "pos"],
    )


# ---- B12 brier_score: sklearn.metrics.brier_score_loss; tests/reference/brier_sklearn.py -------


@pytest.mark.parametrize("shape", [(8, 5), (33, 17), (10, 3)])
def test_brier_score_matches_sklearn(shape):
    metrics = importlib.import_module("sklearn.metrics")
    x, y = logits_target(shape, seed=48)
    p = F.softmax(x, dim=1).numpy()
    want = metrics.brier_score_loss(y.numpy(), p, labels=list(range(shape[1])))
    got = compiled("brier_score")(x, y)
    assert math.isclose(float(got), want, rel_tol=1e-12)


def test_brier_score_binary_scale_by_half_matches_sklearn_auto():
    """sklearn halves the score for two classes (scale_by_half='auto'); scale_by_half=true here."""
    metrics = importlib.import_module("sklearn.metrics")
    x, y = logits_target((12, 2), seed=49)
    p = F.softmax(x, dim=1).numpy()
    fn = compiled("brier_score")
    want = metrics.brier_score_loss(y.numpy(), p, labels=[0, 1])  # 'auto' -> halved
    assert math.isclose(float(fn(x, y, scale_by_half=True)), want, rel_tol=1e-12)
    want_full = metrics.brier_score_loss(y.numpy(), p, labels=[0, 1], scale_by_half=False)
    assert math.isclose(float(fn(x, y)), want_full, rel_tol=1e-12)
    # the binary score on the positive-class column (sklearn's one-column form)
    want_col = metrics.brier_score_loss(y.numpy(), p[:, 1])
    assert math.isclose(float(fn(x, y, scale_by_half=True)), want_col, rel_tol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("half", [False, True])
def test_brier_score_gradients_match_transcription(shape, half):
    x, y = logits_target(shape, seed=50)
    fn = compiled("brier_score")
    for r in REDUCTIONS:
        assert_same(
            lambda x, r=r: fn(x, y, scale_by_half=half, reduction=r),
            lambda x, r=r: brier_score_loss(x, y, scale_by_half=half, reduction=r),
            {"x": x},
            ["x"],
        )


def test_brier_score_shift_invariant_and_bounded():
    """Metamorphic: invariant to a per-row shift of the logits; 0 <= l <= 2; a confident correct
    prediction scores ~0, a confident wrong one ~2."""
    x, y = logits_target((9, 4), seed=51)
    fn = compiled("brier_score")
    shift = torch.randn(9, 1, generator=gen(52)) * 50
    torch.testing.assert_close(fn(x + shift, y, reduction="none"), fn(x, y, reduction="none"))
    per = fn(x, y, reduction="none")
    assert torch.all((per >= 0) & (per <= 2))
    sure = F.one_hot(y, 4).double() * 60
    assert fn(sure, y) < 1e-20
    assert fn(sure, (y + 1) % 4) == pytest.approx(2.0)


# ---- B13 bpr: LightGCN-PyTorch and RecBole (tests/reference/bpr_official.py) -------------------


@pytest.mark.parametrize("b,k", [(16, None), (9, 1), (12, 5)])
def test_bpr_matches_lightgcn(b, k):
    pos = torch.randn(b, generator=gen(53)) * 2
    neg = torch.randn(b, *(() if k is None else (k,)), generator=gen(54)) * 2
    fn = compiled("bpr")
    for r in REDUCTIONS:
        assert_same(
            lambda pos, neg, r=r: fn(pos, neg, reduction=r),
            lambda pos, neg, r=r: lightgcn_bpr_loss(pos, neg, reduction=r),
            {"pos": pos, "neg": neg},
            ["pos", "neg"],
        )


def test_bpr_matches_recbole_on_moderate_scores_and_is_stable_beyond():
    """RecBole adds gamma = 1e-10 inside the log: values and gradients equal up to a relative
    ~1e-10 / sigmoid(gap) (about 1e-7 here, where sigmoid(gap) ~ 1e-3); for a gap of -1000
    RecBole caps at -log(1e-10), the softplus form gives 1000."""
    pos = torch.randn(20, generator=gen(55)) * 2
    neg = torch.randn(20, generator=gen(56)) * 2
    fn = compiled("bpr")
    assert_same(
        lambda pos, neg: fn(pos, neg),
        lambda pos, neg: recbole_bpr_loss(pos, neg),
        {"pos": pos, "neg": neg},
        ["pos", "neg"],
        rtol=1e-6,
        atol=1e-9,
    )
    far = fn(torch.tensor([0.0]), torch.tensor([1000.0]))
    assert float(far) == pytest.approx(1000.0)
    assert float(recbole_bpr_loss(torch.tensor([0.0]), torch.tensor([1000.0]))) == pytest.approx(
        -math.log(1e-10)
    )


def test_bpr_is_bce_with_logits_on_the_score_gap():
    """Library cross-check: -log sigmoid(pos - neg) = F.binary_cross_entropy_with_logits(gap, 1);
    and the JAX module agrees with optax.sigmoid_binary_cross_entropy."""
    pos, neg = torch.randn(10, generator=gen(57)) * 3, torch.randn(10, 4, generator=gen(58)) * 3
    gap = pos[:, None] - neg
    fn = compiled("bpr")
    torch.testing.assert_close(
        fn(pos, neg, reduction="none"),
        F.binary_cross_entropy_with_logits(gap, torch.ones_like(gap), reduction="none"),
    )
    ours = compiled("bpr", "jax")(pos.numpy(), neg.numpy(), reduction="none")
    ref = optax.sigmoid_binary_cross_entropy(gap.numpy(), np.ones(gap.shape))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12)
