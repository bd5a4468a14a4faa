"""Generative models: the VAE ELBO, masked diffusion (MDLM, MD4), diffusion-training weightings
(min-SNR, debiased, scheduled and iCT Pseudo-Huber), flow matching (torchcfm), the relativistic
GAN loss (R3GAN), noise-contrastive estimation (lifeitech/nce; the JMLR 2012 objective for
nu != 1), and the image-synthesis losses Gram style (pytorch/examples) and total variation
(kornia 0.9.0, SRGAN).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference.debiased_diffusion_official import (
    all_snr,
    kohya_debiased_loss,
    paper_debias_mse,
    paper_snr,
)
from reference.diffusers_official import (
    compute_snr,
    conditional_loss,
    huber_c_schedule,
    min_snr_loss,
)
from reference.flow_matching_official import cfm_loss, sample_xt
from reference.gram_style_official import gram_matrix, style_loss
from reference.ict_official import (
    improved_loss_weighting,
    kinyugo_training_loss,
    paper_pseudo_huber,
)
from reference.md4_official import md4_loss
from reference.mdlm_official import mdlm_loss
from reference.nce_logistic_official import paper_nce_loss, value
from reference.r3gan_official import discriminator_loss, generator_loss
from reference.tv_srgan import tv_loss as srgan_tv_loss
from torch.distributions import Normal, kl_divergence
from torch_helpers import REDUCTIONS, assert_same, compiled, gen, reduce_

import lossdsl

# ---- vae_elbo_gaussian: torch.distributions Normal.log_prob + kl_divergence ------------------


@pytest.mark.parametrize("b,d,z", [(8, 5, 3), (33, 17, 6)])
@pytest.mark.parametrize("beta,gamma", [(1.0, 1.0), (4.0, 0.3)])
def test_vae_elbo_matches_torch_distributions(b, d, z, beta, gamma):
    g = gen(31)
    recon, x = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    mu, logvar = torch.randn(b, z, generator=g), torch.randn(b, z, generator=g)
    fn = lossdsl.load("vae_elbo_gaussian").compile("torch")

    def ref(recon, x, mu, logvar, r):
        rec = -Normal(recon, gamma).log_prob(x).sum(-1)
        kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
        return reduce_(rec + beta * kl, r)

    for r in REDUCTIONS:
        assert_same(
            lambda recon, x, mu, logvar: fn(
                recon, x, mu, logvar, beta=beta, gamma=gamma, reduction=r
            ),
            lambda recon, x, mu, logvar: ref(recon, x, mu, logvar, r),
            {"recon": recon, "x": x, "mu": mu, "logvar": logvar},
            ["recon", "x", "mu", "logvar"],
        )


def test_vae_kl_is_pytorch_examples_kld():
    """pytorch/examples vae/main.py loss_function:
    KLD = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))."""
    g = gen(32)
    mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    x = torch.randn(6, 3, generator=g)
    ours = lossdsl.load("vae_elbo_gaussian").compile("torch")(x, x, mu, logvar, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    const = 6 * 3 / 2 * math.log(2 * math.pi)
    torch.testing.assert_close(ours, kld + const)


# ---- masked_diffusion_ce: kuleshov-group/mdlm diffusion.py (log-linear schedule) -------------


@pytest.mark.parametrize("shape", [(4, 7, 5), (9, 16, 11)])
def test_masked_diffusion_matches_mdlm(shape):
    b, length, v = shape
    g = gen(33)
    x = torch.randn(b, length, v, generator=g) * 2
    x0 = torch.randint(0, v, (b, length), generator=g)
    mask = torch.rand(b, length, generator=g) < 0.5
    mask[0] = False  # a sequence without masked tokens contributes 0
    t = torch.rand(b, generator=g) * 0.98 + 0.02
    fn = lossdsl.load("masked_diffusion_ce").compile("torch")
    assert_same(
        lambda x, t: fn(x, x0, mask, t, per_token=True),
        lambda x, t: mdlm_loss(x, x0, mask, t),
        {"x": x, "t": t},
        ["x", "t"],
        rtol=1e-9,
    )
    assert_same(
        lambda x, t: fn(x, x0, mask, t),
        lambda x, t: mdlm_loss(x, x0, mask, t, per_sequence=True),
        {"x": x, "t": t},
        ["x", "t"],
        rtol=1e-9,
    )
    assert fn(x, x0, mask, t, reduction="none")[0].item() == 0.0


def test_masked_diffusion_polynomial_schedule_weight():
    """alpha_t = 1 - t^k: -alpha'/(1 - alpha) = k / t (MD4 polynomial schedule)."""
    g = gen(34)
    x = torch.randn(3, 4, 6, generator=g)
    x0 = torch.randint(0, 6, (3, 4), generator=g)
    mask = torch.ones(3, 4, dtype=torch.bool)
    t = torch.tensor([0.2, 0.5, 0.9])
    fn = lossdsl.load("masked_diffusion_ce").compile("torch")
    ce = F.cross_entropy(x.reshape(-1, 6), x0.reshape(-1), reduction="none").reshape(3, 4).sum(1)
    torch.testing.assert_close(fn(x, x0, mask, t, exponent=3.0, reduction="none"), 3.0 / t * ce)


# ---- masked_diffusion_ce: google-deepmind/md4 md4.py (MaskingSchedule, cont-time loss) -------


@pytest.mark.parametrize("shape", [(4, 7, 5), (9, 16, 11)])
@pytest.mark.parametrize(
    "schedule,kw",
    [
        ("cosine", {"cosine": True}),
        ("linear", {}),
        ("poly2", {"exponent": 2.0}),
    ],
)
@pytest.mark.parametrize("eps", [1e-4, 0.0])
def test_masked_diffusion_matches_md4(shape, schedule, kw, eps):
    b, length, v = shape
    g = gen(37)
    x = torch.randn(b, length, v, generator=g) * 2
    x0 = torch.randint(0, v, (b, length), generator=g)
    mask = torch.rand(b, length, generator=g) < 0.6
    t = torch.rand(b, generator=g) * 0.98 + 0.02
    fn = lossdsl.load("masked_diffusion_ce").compile("torch")
    assert_same(
        lambda x, t: fn(x, x0, mask, t, eps=eps, reduction="none", **kw),
        lambda x, t: md4_loss(x, x0, mask, t, schedule=schedule, eps=eps),
        {"x": x, "t": t},
        ["x", "t"],
        rtol=1e-9,
    )


def test_masked_diffusion_cosine_weight_is_half_pi_tan():
    """MD4 paper, Table 1: cosine schedule weight (pi/2) tan(pi/2 (1 - t)), eps = 0."""
    x = torch.zeros(3, 1, 4)  # uniform logits: ce = log 4 on the one masked token
    x0 = torch.zeros(3, 1, dtype=torch.long)
    mask = torch.ones(3, 1, dtype=torch.bool)
    t = torch.tensor([0.1, 0.5, 0.9])
    fn = lossdsl.load("masked_diffusion_ce").compile("torch")
    want = math.pi / 2 * torch.tan(math.pi / 2 * (1 - t)) * math.log(4)
    torch.testing.assert_close(fn(x, x0, mask, t, cosine=True, reduction="none"), want)


# ---- min_snr_weighted_mse: diffusers compute_snr + the --snr_gamma branch ---------------------


def _linear_alphas_cumprod(n=1000):
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, n) ** 2  # SD "scaled_linear"
    return torch.cumprod(1.0 - betas, dim=0)


@pytest.mark.parametrize("shape", [(6, 4, 3, 3), (9, 2, 5)])
@pytest.mark.parametrize("ptype", [(0, "epsilon"), (1, "v_prediction"), (2, "sample")])
def test_min_snr_matches_diffusers(shape, ptype, reduction):
    g = gen(60)
    ac = _linear_alphas_cumprod()
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    t[0], t[1] = 0, 999  # snr far above and far below gamma
    snr = compute_snr(ac, t)
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    fn = compiled("min_snr_mse")
    red = {"mean": torch.mean, "sum": torch.sum, "none": lambda v: v}[reduction]
    assert_same(
        lambda pred, target: fn(pred, target, snr, prediction_type=ptype[0], reduction=reduction),
        lambda pred, target: red(min_snr_loss(pred, target, snr, 5.0, ptype[1], timesteps=t)),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )


def test_min_snr_large_gamma_is_mse_for_eps():
    """gamma >= every snr: epsilon weights are 1, the loss is F.mse_loss."""
    g = gen(61)
    pred, target = torch.randn(5, 3, 4, generator=g), torch.randn(5, 3, 4, generator=g)
    snr = torch.rand(5, generator=g) + 0.1
    out = compiled("min_snr_mse")(pred, target, snr, gamma=10.0)
    torch.testing.assert_close(out, F.mse_loss(pred, target), rtol=1e-12, atol=0)


# ---- debiased_diffusion: yuhuUSTC/Debias (paper) and kohya-ss/sd-scripts ------------------------


def linear_alphas_cumprod(n=1000):
    # guided_diffusion's "linear" schedule: betas = linspace(1e-4, 0.02, 1000) scaled by 1000 / n
    betas = torch.linspace(1e-4 * 1000 / n, 0.02 * 1000 / n, n)
    return torch.cumprod(1 - betas, 0)


def diffusion_inputs(shape, seed):
    g = gen(seed)
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    t[0] = 0  # snr ~ 1e4 > 1000: kohya's clamp is active
    t[1] = 999
    return pred, target, t


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (9, 2, 5, 5)])
def test_debiased_diffusion_matches_paper_code(shape, reduction):
    ac = linear_alphas_cumprod()
    pred, target, t = diffusion_inputs(shape, seed=sum(shape))
    snr = paper_snr(ac)[t]
    fn = compiled("debiased_diffusion")
    # the paper's code does not clamp: the default snr_max = inf
    assert_same(
        lambda p, y: fn(p, y, snr, reduction=reduction),
        lambda p, y: paper_debias_mse(p, y, t, ac, reduction=reduction),
        {"p": pred, "y": target},
        ["p", "y"],
    )


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (9, 2, 5, 5)])
@pytest.mark.parametrize("v_prediction", [False, True])
def test_debiased_diffusion_matches_kohya(shape, reduction, v_prediction):
    ac = linear_alphas_cumprod()
    pred, target, t = diffusion_inputs(shape, seed=sum(shape) + 1)
    snr = all_snr(ac)[t]
    fn = compiled("debiased_diffusion")
    assert_same(
        lambda p, y: fn(p, y, snr, snr_max=1000.0, v_prediction=v_prediction, reduction=reduction),
        lambda p, y: kohya_debiased_loss(p, y, t, ac, v_prediction, reduction=reduction),
        {"p": pred, "y": target},
        ["p", "y"],
    )


def test_debiased_diffusion_edges():
    fn = compiled("debiased_diffusion")
    pred, target = torch.ones(3, 2, 2), torch.zeros(3, 2, 2)  # per-sample MSE = 1
    snr = torch.tensor([4.0, 1e4, 0.25], requires_grad=True)
    # by hand: 1 / sqrt(4) = 0.5; clamped 1 / sqrt(1000); 1 / sqrt(0.25) = 2
    want = torch.tensor([0.5, 1 / math.sqrt(1000), 2.0])
    out = fn(pred, target, snr, snr_max=1000.0, reduction="none")
    torch.testing.assert_close(out, want)
    assert not out.requires_grad  # snr is data: stop_grad
    # the two SNR formulas (paper: 1 / (1 - ac) - 1, kohya: ac / (1 - ac)) agree
    ac = linear_alphas_cumprod()
    torch.testing.assert_close(paper_snr(ac), all_snr(ac))
    # v-prediction weight 1 / (snr + 1) (by hand: 0.2, 1 / 1001, 0.8)
    out = fn(pred, target, snr.detach(), snr_max=1000.0, v_prediction=True, reduction="none")
    torch.testing.assert_close(out, torch.tensor([0.2, 1 / 1001, 0.8]))


# ---- pseudo_huber: diffusers scheduled_huber_loss_training conditional_loss ------------------


@pytest.mark.parametrize("shape", [(6, 4, 3, 3), (9, 7)])
@pytest.mark.parametrize("schedule", ["snr", "exponential", "constant"])
def test_pseudo_huber_matches_diffusers(shape, schedule, reduction):
    g = gen(70)
    ac = _linear_alphas_cumprod()
    t = torch.randint(0, 1000, (shape[0],), generator=g)
    c = torch.tensor([huber_c_schedule(schedule, int(s), 0.1, 1000, ac) for s in t])
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    fn = compiled("pseudo_huber")
    assert_same(
        lambda pred, target: fn(pred, target, c, reduction=reduction),
        lambda pred, target: conditional_loss(pred, target, reduction, "huber", c),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )
    assert_same(  # loss_type="smooth_l1"
        lambda pred, target: fn(pred, target, c, scale_by_c=False, reduction=reduction),
        lambda pred, target: conditional_loss(pred, target, reduction, "smooth_l1", c),
        {"pred": pred, "target": target},
        ["pred", "target"],
    )


def test_pseudo_huber_default_c_and_limits():
    g = gen(71)
    pred, target = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    fn = compiled("pseudo_huber")
    # absent c = the constant schedule with huber_c = 0.1 (a python float upstream)
    assert_same(
        lambda pred: fn(pred, target),
        lambda pred: conditional_loss(pred, target, "mean", "huber", 0.1),
        {"pred": pred},
        ["pred"],
    )
    # |d| << c: k = 2 makes it MSE; |d| >> c (smooth_l1 form, k = 1): |d| - c
    c = torch.full((4,), 1e4)
    torch.testing.assert_close(fn(pred, target, c), F.mse_loss(pred, target), rtol=1e-6, atol=0)
    c = torch.full((4,), 1e-6)
    torch.testing.assert_close(
        fn(pred, target, c, k=1.0, scale_by_c=False, reduction="none"),
        (pred - target).abs() - 1e-6,
        rtol=1e-9,
        atol=1e-9,  # + c^2 / (2|d|)
    )
    # d = 0: finite zero gradient
    p = target.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(fn(p, target), [p])
    assert torch.all(gr == 0)


# ---- pseudo_huber_ict: iCT paper Sec. 3.3/3.4 and Kinyugo/consistency_models -----------------

ICT_SHAPES = [(4, 3, 8, 8), (6, 10)]


@pytest.mark.parametrize("shape", ICT_SHAPES)
def test_pseudo_huber_ict_vector_form_matches_paper(shape, reduction):
    g = gen(51)
    x, y = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    sigmas = torch.linspace(0.002, 80.0, shape[0] + 1) ** 1.5  # an increasing discretization
    w = improved_loss_weighting(sigmas)
    fn = lossdsl.load("pseudo_huber_ict").compile("torch")
    red = {"none": lambda v: v, "sum": torch.sum, "mean": torch.mean}[reduction]
    assert_same(
        lambda x, y: fn(x, y, w, reduction=reduction),
        lambda x, y: red(paper_pseudo_huber(x, y, w)),
        {"x": x, "y": y},
        ["x", "y"],
    )


@pytest.mark.parametrize("shape", ICT_SHAPES)
def test_pseudo_huber_ict_elementwise_matches_kinyugo(shape):
    g = gen(52)
    x = torch.randn(*shape, generator=g)
    y = x + torch.randn(*shape, generator=g) * 0.01  # near x: both regimes of |d| vs c
    w = torch.rand(shape[0], generator=g) + 0.5
    fn = lossdsl.load("pseudo_huber_ict").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, w, vector=False),
        lambda x, y: kinyugo_training_loss(x, y, w),
        {"x": x, "y": y},
        ["x", "y"],
    )


def test_pseudo_huber_ict_c_scales_with_dimension():
    # the paper's CIFAR-10 value: c = 0.00054 * sqrt(3 * 32 * 32) = 0.0299 (Sec. 3.3, "0.03")
    fn = lossdsl.load("pseudo_huber_ict").compile("torch")
    x = torch.zeros(1, 3, 32, 32)
    y = x.clone()
    y[0, 0, 0, 0] = 1.0
    c = 0.00054 * math.sqrt(3 * 32 * 32)
    assert abs(c - 0.03) < 3e-4
    torch.testing.assert_close(fn(x, y), torch.tensor(math.sqrt(1 + c**2) - c))
    # equal inputs: zero loss, zero (finite) gradient
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(xr, x), xr)
    assert torch.equal(g, torch.zeros_like(g))


# ---- flow_matching: atong01/conditional-flow-matching (torchcfm) -------------------------------


@pytest.mark.parametrize("shape", [(8, 2), (5, 3, 4, 4)])
def test_flow_matching_matches_torchcfm(shape, reduction):
    g = gen(sum(shape))
    x0, x1 = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g) * 2 + 1
    t = torch.rand(shape[0], generator=g)
    xt = sample_xt(x0, x1, t, torch.randn(*shape, generator=g), sigma=0.1)
    vt = torch.tanh(xt) + t.reshape(-1, *([1] * (len(shape) - 1)))  # a stand-in velocity net
    fn = compiled("flow_matching")
    assert_same(
        lambda vt, x0, x1: fn(vt, x0, x1, reduction=reduction),
        lambda vt, x0, x1: cfm_loss(vt, x0, x1, reduction=reduction),
        {"vt": vt, "x0": x0, "x1": x1},
        ["vt", "x0", "x1"],
    )


def test_flow_matching_weights_and_edges():
    fn = compiled("flow_matching")
    g = gen(21)
    x0, x1 = torch.randn(6, 3, 5, generator=g), torch.randn(6, 3, 5, generator=g)
    vt = torch.randn(6, 3, 5, generator=g)
    # the exact conditional velocity: zero loss (by definition)
    torch.testing.assert_close(fn(x1 - x0, x0, x1), torch.tensor(0.0))
    # weight 1 is the plain loss; a Gibbs-kernel weight (as weighted CFM passes it) multiplies
    # each sample's MSE before the batch mean (by hand)
    ones = torch.ones(6)
    torch.testing.assert_close(fn(vt, x0, x1, ones), fn(vt, x0, x1))
    w = torch.exp(-((x1 - x0) ** 2).sum((1, 2)) / 5.0)
    per = ((vt - (x1 - x0)) ** 2).mean((1, 2))
    torch.testing.assert_close(fn(vt, x0, x1, w), (w * per).mean())
    torch.testing.assert_close(fn(vt, x0, x1, w, reduction="none"), w * per)


# ---- relativistic_gan: brownvc/R3GAN R3GAN/Trainer.py ------------------------------------------


@pytest.mark.parametrize("n", [8, 33])
@pytest.mark.parametrize("generator", [False, True])
def test_relativistic_gan_matches_official(n, generator, reduction):
    g = gen(n)
    real, fake = torch.randn(n, generator=g) * 4, torch.randn(n, generator=g) * 4
    fn = lossdsl.load("relativistic_gan").compile("torch")
    ref = generator_loss if generator else discriminator_loss
    assert_same(
        lambda real, fake: fn(real, fake, generator=generator, reduction=reduction),
        lambda real, fake: ref(real, fake, reduction=reduction),
        {"real": real, "fake": fake},
        ["real", "fake"],
    )


def test_relativistic_gan_edges():
    fn = lossdsl.load("relativistic_gan").compile("torch")
    # equal logits: softplus(0) = log 2 for both players (by hand)
    z = torch.zeros(4)
    torch.testing.assert_close(fn(z, z), torch.tensor(math.log(2)))
    torch.testing.assert_close(fn(z, z, generator=True), torch.tensor(math.log(2)))
    # huge gaps stay finite: softplus(1e4) = 1e4, softplus(-1e4) = 0 (by hand)
    real, fake = torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 1e4])
    torch.testing.assert_close(fn(real, fake, reduction="none"), torch.tensor([0.0, 2e4]))
    # symmetry: G's loss is D's loss with real and fake swapped
    g = gen(3)
    a, b = torch.randn(9, generator=g), torch.randn(9, generator=g)
    torch.testing.assert_close(fn(a, b, generator=True), fn(b, a))


# ---- nce_logistic: lifeitech/nce (nu = 1) and Gutmann & Hyvarinen (JMLR 2012) ------------------


def nce_inputs(b, n, seed):
    g = gen(seed)
    return (
        torch.randn(b, generator=g) * 2,
        torch.randn(b, generator=g) * 2,
        torch.randn(n, generator=g) * 2,
        torch.randn(n, generator=g) * 2,
    )


@pytest.mark.parametrize("b", [8, 33])
def test_nce_logistic_matches_lifeitech_nu_one(b):
    pm_x, pn_x, pm_y, pn_y = nce_inputs(b, b, seed=b)
    fn = compiled("nce_logistic")
    assert_same(
        lambda pm_x, pn_x, pm_y, pn_y: fn(pm_x, pn_x, pm_y, pn_y),
        lambda pm_x, pn_x, pm_y, pn_y: value(pm_x, pn_x, pm_y, pn_y),
        {"pm_x": pm_x, "pn_x": pn_x, "pm_y": pm_y, "pn_y": pn_y},
        ["pm_x", "pn_x", "pm_y", "pn_y"],
    )


@pytest.mark.parametrize("b,n", [(8, 24), (33, 5), (6, 6)])
def test_nce_logistic_matches_paper_objective(b, n):
    pm_x, pn_x, pm_y, pn_y = nce_inputs(b, n, seed=b + n)
    fn = compiled("nce_logistic")
    assert_same(
        lambda pm_x, pn_x, pm_y, pn_y: fn(pm_x, pn_x, pm_y, pn_y),
        lambda pm_x, pn_x, pm_y, pn_y: paper_nce_loss(pm_x, pn_x, pm_y, pn_y),
        {"pm_x": pm_x, "pn_x": pn_x, "pm_y": pm_y, "pn_y": pn_y},
        ["pm_x", "pn_x", "pm_y", "pn_y"],
    )


@pytest.mark.parametrize("b,n", [(8, 24), (33, 5)])
def test_nce_logistic_reductions(b, n):
    pm_x, pn_x, pm_y, pn_y = nce_inputs(b, n, seed=3 * b + n)
    fn = compiled("nce_logistic")
    nu = n / b
    g_x, g_y = pm_x - pn_x - math.log(nu), pm_y - pn_y - math.log(nu)
    # per data sample (by the spec's formula): its own term plus 1/B of the noise term
    want = -F.logsigmoid(g_x) - F.logsigmoid(-g_y).sum() / b
    torch.testing.assert_close(fn(pm_x, pn_x, pm_y, pn_y, reduction="none"), want)
    torch.testing.assert_close(fn(pm_x, pn_x, pm_y, pn_y, reduction="sum"), want.sum())
    mean = fn(pm_x, pn_x, pm_y, pn_y, reduction="mean")
    torch.testing.assert_close(mean, paper_nce_loss(pm_x, pn_x, pm_y, pn_y))


def test_nce_logistic_edges():
    fn = compiled("nce_logistic")
    # model == noise: G = -log nu; L = log(1 + nu) + nu log(1 + 1 / nu) (by hand); 2 log 2 at nu=1
    for b, n in [(4, 4), (4, 12)]:
        nu = n / b
        x, y = torch.randn(b, generator=gen(1)), torch.randn(n, generator=gen(2))
        want = math.log(1 + nu) + nu * math.log(1 + 1 / nu)
        torch.testing.assert_close(fn(x, x, y, y), torch.tensor(want))
    # |G| = 800: finite here; the paper's literal h = 1 / (1 + nu exp(-G)) gives log 0 = -inf.
    # By hand (nu = 1, G_y = 0): mean_B softplus(-G_x) + log 2 = (800 + softplus(-1)) / 2 + log 2
    x = torch.tensor([-800.0, 1.0])
    z = torch.zeros(2)
    want = (800 + math.log1p(math.exp(-1))) / 2 + math.log(2)
    torch.testing.assert_close(fn(x, z, z, z), torch.tensor(want))
    assert torch.isinf(paper_nce_loss(x, z, z, z))


# ---- gram_style: pytorch/examples fast_neural_style --------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (5, 8, 7, 6)])
def test_gram_style_matches_official(shape):
    g = gen(sum(shape))
    a, b = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    fn = lossdsl.load("gram_style").compile("torch")
    assert_same(
        lambda a, b: fn(a, b),
        lambda a, b: style_loss(a, b),
        {"a": a, "b": b},
        ["a", "b"],
    )
    # reduction="none": per-image mean over C * C of the squared Gram difference
    d = (gram_matrix(a) - gram_matrix(b)) ** 2
    torch.testing.assert_close(fn(a, b, reduction="none"), d.mean(dim=(1, 2)))
    torch.testing.assert_close(fn(a, b, reduction="sum"), d.mean(dim=(1, 2)).sum())


def test_gram_style_edges():
    fn = lossdsl.load("gram_style").compile("torch")
    g = gen(9)
    a = torch.randn(3, 4, 5, 5, generator=g)
    # identical features: 0 (by definition); sign flip of a whole map leaves G unchanged
    torch.testing.assert_close(fn(a, a), torch.tensor(0.0))
    torch.testing.assert_close(fn(a, -a), torch.tensor(0.0))
    # one spatial axis (*S of rank 1): G = f f^T / (C S) by hand for a 1 x 2 x 2 map
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # B=1, C=2, S=2
    gram = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    want = (gram**2).mean()
    torch.testing.assert_close(fn(f, torch.zeros_like(f)), want)
    # batch of images: each image's Gram matrix is its own (no cross-image terms)
    b = torch.randn(3, 4, 5, 5, generator=g)
    per = torch.stack([fn(a[i : i + 1], b[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(fn(a, b, reduction="none"), per)


# ---- tv: kornia.losses.total_variation (kornia 0.9.0) and the SRGAN TVLoss of iSeeBetter ----

TV_SHAPES = [(2, 3, 5, 7), (1, 2, 8, 4)]


@pytest.mark.parametrize("shape", TV_SHAPES)
@pytest.mark.parametrize("kornia_reduction", ["sum", "mean"])
def test_tv_matches_kornia(shape, kornia_reduction):
    from kornia.losses import total_variation

    x = torch.randn(*shape, generator=gen(7))
    fn = lossdsl.load("tv").compile("torch")
    normalize = kornia_reduction == "mean"
    assert_same(
        lambda x: fn(x, normalize=normalize, reduction="none"),
        lambda x: total_variation(x, reduction=kornia_reduction),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("shape", TV_SHAPES)
def test_tv_squared_matches_srgan_tvloss(shape):
    x = torch.randn(*shape, generator=gen(8))
    fn = lossdsl.load("tv").compile("torch")
    assert_same(lambda x: fn(x, p=2.0, scale=2.0), srgan_tv_loss, {"x": x}, ["x"])


def test_tv_hand_values_and_constant_image():
    fn = lossdsl.load("tv").compile("torch")
    # by hand: rows [0, 1], [3, 5]: |dh| = 3, 4 (mean 3.5); |dw| = 1, 2 (mean 1.5)
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    torch.testing.assert_close(fn(x), torch.tensor(5.0))
    torch.testing.assert_close(fn(x, normalize=False), torch.tensor(10.0))
    # a constant image has zero variation and a zero (not NaN) gradient, for p = 1 and p = 2
    c = torch.full((2, 1, 3, 3), 0.5, requires_grad=True)
    for p in (1.0, 2.0):
        (g,) = torch.autograd.grad(fn(c, p=p), c)
        assert torch.equal(g, torch.zeros_like(g))
