"""Tier-2 classification batch (CATALOG.md section 4) against references lossdsl did not compute:
torch.nn.functional, torch.distributions, or transcriptions of the official code in
tests/reference/ (each file names its repository and file). Values and gradients in float64,
at least two shapes, every reduction where meaningful, plus the catalog's edge cases and
metamorphic checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from reference.acls_official import acls_loss
from reference.bmc_official import bmc_loss
from reference.dual_focal_official import dual_focal_loss
from reference.encouraging_official import encouraging_loss
from reference.hl_gauss_official import hl_gauss_loss
from reference.info_max_official import im_loss
from reference.logitclip_official import logitclip_ce
from reference.md4_official import md4_loss
from reference.mdlm_official import mdlm_loss
from reference.sfda_official import ent_kl_prop
from reference.squentropy_official import squentropy
from torch.distributions import Categorical, Normal, kl_divergence
from torch_helpers import assert_same, gen, logits_target

import lossdsl

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]
REDUCTIONS = ["none", "sum", "mean"]


def reduce_(x, reduction):
    return {"none": x, "sum": x.sum(), "mean": x.mean()}[reduction]


# ---- dual_focal: Linwei94/ICML2023-DualFocalLoss dual_focal_loss.py -------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma", [0.0, 2.0, 5.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dual_focal_matches_official(shape, gamma, reduction):
    x, y = logits_target(shape, seed=1)
    fn = lossdsl.load("dual_focal").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, gamma=gamma, reduction=reduction),
        lambda x, y: dual_focal_loss(x, y, gamma=gamma, reduction=reduction),
        {"x": x, "y": y},
        ["x"],
    )


def test_dual_focal_default_is_sum():
    x, y = logits_target((6, 4), seed=2)
    ours = lossdsl.load("dual_focal").compile("torch")(x, y, gamma=5.0)
    torch.testing.assert_close(ours, dual_focal_loss(x, y, gamma=5.0))  # size_average=False


def test_dual_focal_edge_cases_top1_not_top1_and_minimum():
    """Target top-1 (p_j = 2nd largest), target in the middle (p_j = next below p_y, not the
    arg-max), target the smallest (p_j = 0): official code vs ours, values and gradients."""
    x = torch.tensor([[3.0, 1.0, 0.0, -1.0], [3.0, 1.0, 0.0, -1.0], [3.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([0, 2, 3])
    fn = lossdsl.load("dual_focal").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, gamma=5.0, reduction="none"),
        lambda x, y: dual_focal_loss(x, y, gamma=5.0, reduction="none"),
        {"x": x, "y": y},
        ["x"],
    )
    p = F.softmax(x[0], 0)
    want = -((1 - p[2] + p[3]) ** 5) * torch.log(p[2])  # next below p_y, not p[0]
    torch.testing.assert_close(fn(x, y, gamma=5.0, reduction="none")[1], want)
    want_min = -((1 - p[3]) ** 5) * torch.log(p[3])  # nothing below: p_j = 0
    torch.testing.assert_close(fn(x, y, gamma=5.0, reduction="none")[2], want_min)


def test_dual_focal_gamma_zero_is_cross_entropy():
    x, y = logits_target((9, 6), seed=3)
    fn = lossdsl.load("dual_focal").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, gamma=0.0),
        lambda x, y: F.cross_entropy(x, y, reduction="sum"),
        {"x": x, "y": y},
        ["x"],
    )


# ---- acls: cvlab-yonsei/ACLS calibrate/losses/acls.py ----------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("margin", [10.0, 2.0])
def test_acls_matches_official(shape, margin):
    x, y = logits_target(shape, seed=4, scale=8.0)  # logits beyond the margin: both terms active
    fn = lossdsl.load("acls").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, margin=margin),
        lambda x, y: acls_loss(x, y, margin=margin),
        {"x": x, "y": y},
        ["x"],
    )


def test_acls_ties_count_every_max_as_positive():
    """Official indicator `max == inputs`: tied maxima are all positive (values only; the
    gradient of a tied max is split differently by torch.max(dim) and amax)."""
    x = torch.tensor([[12.0, 12.0, -3.0, 0.0], [15.0, 1.0, -9.0, 2.0]])
    y = torch.tensor([1, 0])
    ours = lossdsl.load("acls").compile("torch")(x, y)
    torch.testing.assert_close(ours, acls_loss(x, y))


# ---- encouraging: lancopku/well-classified-examples-are-underestimated EncouragingLoss.py --------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("log_end", [0.75, 0.5, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_encouraging_matches_official(shape, log_end, reduction):
    x, y = logits_target(shape, seed=5)
    x[0, y[0]] = 30.0  # p_y ~ 1: the 1e-5 clamp (log_end = 1) or the linear tail
    fn = lossdsl.load("encouraging").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, log_end=log_end, reduction=reduction),
        lambda x, y: encouraging_loss(x, y, log_end=log_end, reduction=reduction),
        {"x": x, "y": y},
        ["x"],
    )


# ---- logitclip_ce: hongxin001/LogitClip algorithms/clip.py -----------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tau", [1.0, 1.5, 0.5])
@pytest.mark.parametrize("lp", [2, 1])
@pytest.mark.parametrize("official", [True, False])
def test_logitclip_matches_official(shape, tau, lp, official):
    x, y = logits_target(shape, seed=6, scale=0.6)  # norms on both sides of the threshold
    fn = lossdsl.load("logitclip_ce").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, tau=tau, p=float(lp), official_threshold=official, reduction=r),
            lambda x, y: logitclip_ce(
                x, y, temp=tau, lp=lp, reduction=r, paper_threshold=not official
            ),
            {"x": x, "y": y},
            ["x"],
        )


def test_logitclip_small_logits_are_plain_cross_entropy():
    x, y = logits_target((7, 4), seed=7, scale=0.01)  # norm < threshold: no clipping
    fn = lossdsl.load("logitclip_ce").compile("torch")
    assert_same(lambda x, y: fn(x, y), lambda x, y: F.cross_entropy(x, y), {"x": x, "y": y}, ["x"])


# ---- squentropy: the authors' Loss_Functions.squentropy --------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_squentropy_matches_official(shape):
    x, y = logits_target(shape, seed=8)
    fn = lossdsl.load("squentropy").compile("torch")
    assert_same(
        lambda x, y: fn(x, y), lambda x, y: squentropy(x, y, shape[1]), {"x": x, "y": y}, ["x"]
    )
    ours = fn(x, y, reduction="none")
    ref = F.cross_entropy(x, y, reduction="none") + (
        (x**2).sum(1) - x.gather(1, y[:, None]).squeeze(1) ** 2
    ) / (shape[1] - 1)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(fn(x, y, reduction="sum"), ref.sum())


# ---- z_loss_spherical: the paper's definition (no official code) ----------------------------


def z_loss_paper(x, y, a, b):
    """de Brebisson & Vincent 2016, sec. 3: z = (o - mean(o)) / std(o) (biased std),
    L = softplus(a (b - z_c)) / a."""
    z = (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True)
    return F.softplus(a * (b - z.gather(1, y[:, None]).squeeze(1))) / a


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("a,b", [(1.0, 1.0), (4.0, 2.5), (0.5, -1.0)])
def test_z_loss_spherical_matches_paper(shape, a, b):
    x, y = logits_target(shape, seed=9)
    fn = lossdsl.load("z_loss_spherical").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, a=a, b=b, reduction=r),
            lambda x, y: reduce_(z_loss_paper(x, y, a, b), r),
            {"x": x, "y": y},
            ["x"],
        )


def test_z_loss_spherical_shift_and_scale_invariant():
    x, y = logits_target((10, 6), seed=10)
    fn = lossdsl.load("z_loss_spherical").compile("torch")
    shift = torch.randn(10, 1, generator=gen(11)) * 5
    scale = torch.rand(10, 1, generator=gen(12)) * 4 + 0.1
    base = fn(x, y, a=2.0, b=1.5, reduction="none")
    torch.testing.assert_close(fn(x * scale + shift, y, a=2.0, b=1.5, reduction="none"), base)


# ---- comp_sum: the paper's Phi_tau(u) definition; CE / MAE members ----------------------------


def comp_sum_paper(x, y, tau):
    """Mao, Mohri, Zhong 2023: u = sum_{j != y} exp(z_j - z_y); Phi_1 = log(1+u),
    Phi_tau = ((1+u)^(1-tau) - 1)/(1-tau)."""
    zy = x.gather(1, y[:, None])
    e = torch.exp(x - zy)
    u = e.sum(1) - 1.0
    if tau == 1:
        return torch.log1p(u)
    return ((1 + u) ** (1 - tau) - 1) / (1 - tau)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.3, 1.7, 2.0])
def test_comp_sum_matches_paper(shape, tau):
    x, y = logits_target(shape, seed=13, scale=1.5)
    fn = lossdsl.load("comp_sum").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, tau=tau, reduction=r),
            lambda x, y: reduce_(comp_sum_paper(x, y, tau), r),
            {"x": x, "y": y},
            ["x"],
            rtol=1e-9,
        )


def test_comp_sum_members():
    x, y = logits_target((12, 5), seed=14)
    fn = lossdsl.load("comp_sum").compile("torch")
    inp = {"x": x, "y": y}
    assert_same(lambda x, y: fn(x, y, tau=1.0), lambda x, y: F.cross_entropy(x, y), inp, ["x"])
    py = lambda x, y: F.softmax(x, 1).gather(1, y[:, None]).squeeze(1)  # noqa: E731
    assert_same(lambda x, y: fn(x, y, tau=2.0), lambda x, y: (1 - py(x, y)).mean(), inp, ["x"])
    q = 0.7  # GCE (Zhang & Sabuncu 2018): (1 - p_y^q) / q with tau = 1 + q
    assert_same(
        lambda x, y: fn(x, y, tau=1 + q), lambda x, y: ((1 - py(x, y) ** q) / q).mean(), inp, ["x"]
    )


# ---- entropy_minimization: torch.distributions.Categorical.entropy; tent softmax_entropy ------


@pytest.mark.parametrize("shape", [(8, 5), (33, 17), (3, 4, 5, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_entropy_minimization_matches_categorical_entropy(shape, reduction):
    x = torch.randn(*shape, generator=gen(15)) * 3
    fn = lossdsl.load("entropy_minimization").compile("torch")

    def ref(x):
        h = Categorical(logits=x.movedim(1, -1)).entropy()  # torch.distributions
        return reduce_(h, reduction)

    assert_same(lambda x: fn(x, reduction=reduction), ref, {"x": x}, ["x"])
    tent = -(x.softmax(1) * x.log_softmax(1)).sum(1)  # DequanWang/tent, tent.py softmax_entropy
    torch.testing.assert_close(fn(x, reduction="none"), tent)


# ---- info_max: tim-learn/SHOT (train_target im_loss) -----------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("div_weight", [1.0, 0.0])
def test_info_max_matches_shot(shape, div_weight):
    x = torch.randn(*shape, generator=gen(16)) * 3
    fn = lossdsl.load("info_max").compile("torch")
    assert_same(
        lambda x: fn(x, div_weight=div_weight),
        lambda x: im_loss(x, gent=div_weight == 1.0),
        {"x": x},
        ["x"],
    )


def test_info_max_without_epsilon_is_entropy_minus_marginal_entropy():
    x = torch.randn(10, 4, generator=gen(17))
    fn = lossdsl.load("info_max").compile("torch")
    h = Categorical(logits=x).entropy().mean()
    hbar = Categorical(probs=F.softmax(x, 1).mean(0)).entropy()
    torch.testing.assert_close(fn(x, epsilon=0.0), h - hbar)


# ---- sfda_entropy_prior_kl: mathilde-b/SFDA losses.py EntKLProp + utils.norm_soft_size ------


@pytest.mark.parametrize("shape", [(2, 2, 6, 5), (3, 4, 3, 7)])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_sfda_matches_official(shape, power):
    b, c = shape[:2]
    x = torch.randn(*shape, generator=gen(18)) * 2
    prior = torch.rand(b, c, generator=gen(19))
    prior = prior / prior.sum(1, keepdim=True)
    w = torch.rand(c, generator=gen(20))
    fn = lossdsl.load("sfda_entropy_prior_kl").compile("torch")
    assert_same(
        lambda x, prior: fn(x, prior, w, power=power, lamb_consprior=0.7),
        lambda x, prior: ent_kl_prop(F.softmax(x, 1), prior, w, lamb_consprior=0.7, power=power),
        {"x": x, "prior": prior},
        ["x"],
        rtol=1e-9,
    )


# ---- vat_kl: torch.nn.functional.kl_div(batchmean) as in lyakaap/VAT-pytorch ------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_vat_kl_matches_kl_div_batchmean(shape):
    x = torch.randn(*shape, generator=gen(21)) * 3
    xa = x + torch.randn(*shape, generator=gen(22))
    fn = lossdsl.load("vat_kl").compile("torch")
    assert_same(
        lambda x, xa: fn(x, xa),
        lambda x, xa: F.kl_div(
            F.log_softmax(xa, 1), F.softmax(x, 1).detach(), reduction="batchmean"
        ),
        {"x": x, "xa": xa},
        ["xa"],
    )
    xg = x.clone().requires_grad_(True)
    # VAT: no gradient through the clean prediction (detached, as the reference's .detach())
    assert not fn(xg, xa).requires_grad
    assert_same(  # detach=false: both views get gradient
        lambda x, xa: fn(x, xa, detach=False, reduction="sum"),
        lambda x, xa: F.kl_div(F.log_softmax(xa, 1), F.softmax(x, 1), reduction="sum"),
        {"x": x, "xa": xa},
        ["x", "xa"],
    )


def test_vat_kl_zero_when_views_agree():
    x = torch.randn(5, 4, generator=gen(23))
    fn = lossdsl.load("vat_kl").compile("torch")
    torch.testing.assert_close(fn(x, x + 3.0, reduction="none"), torch.zeros(5))


# ---- hl_gauss_ce: Stop Regressing, Appendix A (HLGaussLoss) ----------------------------------


@pytest.mark.parametrize("bins", [11, 51])
@pytest.mark.parametrize("reduction", REDUCTIONS)
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


# ---- balanced_softmax_ce: F.cross_entropy on logits + log(counts) (jiawei-ren/BalancedSoftmax) --


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_balanced_softmax_matches_cross_entropy(shape, tau):
    x, y = logits_target(shape, seed=26)
    n = torch.randint(1, 500, (shape[1],), generator=gen(27)).double()
    fn = lossdsl.load("balanced_softmax_ce").compile("torch")
    for r in REDUCTIONS:
        assert_same(
            lambda x, y: fn(x, y, n, tau=tau, reduction=r),
            lambda x, y: F.cross_entropy(x + tau * n.log(), y, reduction=r),
            {"x": x, "y": y},
            ["x"],
        )
    prior = n / n.sum()  # priors instead of counts: the same loss (shift invariance)
    torch.testing.assert_close(fn(x, y, prior, tau=tau), fn(x, y, n, tau=tau))


def test_balanced_softmax_uniform_counts_is_cross_entropy():
    x, y = logits_target((8, 5), seed=28)
    ours = lossdsl.load("balanced_softmax_ce").compile("torch")(x, y, torch.full((5,), 40.0))
    torch.testing.assert_close(ours, F.cross_entropy(x, y))


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


# ---- shift invariance of the softmax losses (metamorphic) ------------------------------------


@pytest.mark.parametrize(
    "name", ["dual_focal", "encouraging", "comp_sum", "entropy_minimization", "info_max"]
)
def test_softmax_losses_are_shift_invariant(name):
    x, y = logits_target((7, 5), seed=35)
    spec = lossdsl.load(name)
    fn = spec.compile("torch")
    shift = torch.randn(7, 1, generator=gen(36)) * 10
    args = (x,) if name in ("entropy_minimization", "info_max") else (x, y)
    args2 = (x + shift,) + args[1:]
    torch.testing.assert_close(fn(*args2, reduction="none"), fn(*args, reduction="none"))
