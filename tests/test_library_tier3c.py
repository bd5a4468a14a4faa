"""Tier-3 losses, third batch (CATALOG.md section 5: T3.6 debiased_diffusion, T3.10
forward_forward_goodness, T3.11 flow_matching, T3.13 implicit_prm_ce, T3.23
symmetric_ce_consistency, T3.39 regmixup, T3.40 discrete_hazard_nll, T3.41 nce_logistic) against
transcriptions of their official or standard code in tests/reference/ (each file names its
repository, file and commit; nce_logistic with nu != 1 against the JMLR 2012 objective written
out literally). Values and gradients in float64, two shapes, every reduction, plus edge cases;
each expected value names its source."""

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
from reference.discrete_hazard_nll_official import nll_logistic_hazard
from reference.flow_matching_official import cfm_loss, sample_xt
from reference.forward_forward_goodness_official import loewex_loss, mpezeshki_loss
from reference.implicit_prm_ce_official import prime_loss
from reference.nce_logistic_official import paper_nce_loss, value
from reference.regmixup_official import mixup_data, regmixup_loss
from reference.symmetric_ce_consistency_official import (
    rmt_loss,
    rmt_self_training,
    softmax_entropy,
    symmetric_entropy,
)
from torch_helpers import assert_same, compiled, gen, logits_target

torch.set_default_dtype(torch.float64)
SHAPES = [(8, 5), (33, 17)]
REDUCTIONS = ["none", "sum", "mean"]


# ---- symmetric_ce_consistency: mariodoebler/test-time-adaptation (RMT) --------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_symmetric_ce_consistency_matches_official(shape, reduction, alpha):
    s, _ = logits_target(shape, seed=1)
    t, _ = logits_target(shape, seed=2)
    fn = compiled("symmetric_ce_consistency")
    assert_same(
        lambda s, t: fn(s, t, alpha=alpha, reduction=reduction),
        lambda s, t: rmt_loss(s, t, alpha=alpha, reduction=reduction),
        {"s": s, "t": t},
        ["s"],
    )


def test_symmetric_ce_consistency_older_forms_and_augmented_view():
    fn = compiled("symmetric_ce_consistency")
    x, _ = logits_target((9, 6), seed=3)
    x_aug, _ = logits_target((9, 6), seed=4)
    ema, _ = logits_target((9, 6), seed=5)
    # older rmt.py (1a5a834): softmax_entropy is the alpha = 0.5 loss per sample
    torch.testing.assert_close(fn(x, ema, reduction="none"), softmax_entropy(x, ema))
    # symmetric_entropy(x, x_aug, ema) and the current self-training term average two views
    both = 0.5 * (fn(x, ema, reduction="none") + fn(x_aug, ema, reduction="none"))
    torch.testing.assert_close(both, symmetric_entropy(x, x_aug, ema))
    torch.testing.assert_close(both.mean(), rmt_self_training(x, x_aug, ema))


def test_symmetric_ce_consistency_gradients_and_edges():
    fn = compiled("symmetric_ce_consistency")
    s, _ = logits_target((7, 4), seed=6)
    t, _ = logits_target((7, 4), seed=7)
    s.requires_grad_(True)
    t.requires_grad_(True)
    fn(s, t).backward()
    assert t.grad is None  # the teacher is a constant (EMA weights detach_()ed upstream)
    # the second term differentiates through p_s: detaching p_s there changes the gradient
    s2 = s.detach().clone().requires_grad_(True)
    lt = F.log_softmax(t.detach(), 1)
    partial = (
        -0.5 * (lt.exp() * F.log_softmax(s2, 1)).sum(1)
        - 0.5 * (F.softmax(s2, 1).detach() * lt).sum(1)
    ).mean()
    (g_partial,) = torch.autograd.grad(partial, s2)
    assert not torch.allclose(s.grad, g_partial)
    # identical student and teacher: both terms are the entropy -sum p log p (by hand)
    p = F.softmax(s.detach(), 1)
    ent = -(p * p.log()).sum(1)
    torch.testing.assert_close(fn(s.detach(), s.detach(), reduction="none"), ent)
    # alpha = 0: plain CE of the student against the teacher's soft labels (by hand)
    want = -(F.softmax(t.detach(), 1) * F.log_softmax(s.detach(), 1)).sum(1)
    torch.testing.assert_close(fn(s.detach(), t.detach(), alpha=0.0, reduction="none"), want)


# ---- implicit_prm_ce: PRIME-RL/PRIME core_algos.compute_ce_dpo_loss_rm --------------------------


def prm_inputs(b, t, seed, soft_label=False):
    g = gen(seed)
    logp = -torch.rand(b, t, generator=g) * 4
    ref = -torch.rand(b, t, generator=g) * 4
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(logp.dtype)
    label = (
        torch.rand(b, generator=g) if soft_label else torch.randint(0, 2, (b,), generator=g) * 1.0
    )
    return logp, ref, mask, label


@pytest.mark.parametrize("shape", [(8, 12), (33, 7)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [0.05, 0.5])
def test_implicit_prm_ce_matches_official(shape, reduction, beta):
    logp, ref, mask, label = prm_inputs(*shape, seed=sum(shape))
    fn = compiled("implicit_prm_ce")
    assert_same(
        lambda logp, ref, mask, label: fn(logp, ref, mask, label, beta=beta, reduction=reduction),
        lambda logp, ref, mask, label: prime_loss(logp, ref, mask, label, beta, reduction),
        {"logp": logp, "ref": ref, "mask": mask, "label": label},
        ["logp"],
    )


def test_implicit_prm_ce_soft_labels_and_default_beta():
    logp, ref, mask, label = prm_inputs(10, 6, seed=11, soft_label=True)
    fn = compiled("implicit_prm_ce")
    # default beta is upstream's beta_train default, 0.05
    torch.testing.assert_close(fn(logp, ref, mask, label), prime_loss(logp, ref, mask, label))


def test_implicit_prm_ce_edges():
    fn = compiled("implicit_prm_ce")
    logp, ref, mask, label = prm_inputs(5, 4, seed=12)
    # an all-zero mask gives r = 0: log 2 for every label (by hand)
    zero = torch.zeros_like(mask)
    torch.testing.assert_close(fn(logp, ref, zero, label), torch.tensor(math.log(2)))
    # no gradient reaches the reference log-probs
    ref = ref.clone().requires_grad_(True)
    lp = logp.clone().requires_grad_(True)
    fn(lp, ref, mask, label).backward()
    assert ref.grad is None and lp.grad is not None
    # saturation: r = 0.05 * 1000 = 50, label 0. Exact loss softplus(50) = 50 + log1p(e^-50);
    # upstream's sigmoid(50) rounds to 1.0 in float64 and BCE clamps log(0) to -100 (loss 100)
    lp = torch.full((1, 1), 1000.0)
    r0 = torch.zeros(1, 1)
    m1, lab0 = torch.ones(1, 1), torch.zeros(1)
    torch.testing.assert_close(fn(lp, r0, m1, lab0), torch.tensor(50 + math.log1p(math.exp(-50))))
    assert prime_loss(lp, r0, m1, lab0).item() == 100.0  # the upstream pitfall this spec avoids


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
@pytest.mark.parametrize("reduction", REDUCTIONS)
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
@pytest.mark.parametrize("reduction", REDUCTIONS)
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


# ---- flow_matching: atong01/conditional-flow-matching (torchcfm) -------------------------------


@pytest.mark.parametrize("shape", [(8, 2), (5, 3, 4, 4)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
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


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
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


# ---- regmixup: FrancescoPinto/RegMixup ----------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lam", [0.5, 0.37, 0.9])
def test_regmixup_matches_official(shape, reduction, lam):
    z, y = logits_target(shape, seed=sum(shape))
    zm, _ = logits_target(shape, seed=sum(shape) + 1)
    y_perm = y[torch.randperm(shape[0], generator=gen(4))]
    fn = compiled("regmixup")
    assert_same(
        lambda z, zm: fn(z, zm, y, y_perm, torch.tensor(lam), reduction=reduction),
        lambda z, zm: regmixup_loss(z, zm, y, y_perm, lam, reduction=reduction),
        {"z": z, "zm": zm},
        ["z", "zm"],
    )


def test_regmixup_end_to_end_with_mixup_data():
    # upstream's training step: mix the inputs, one forward pass over [x; x_mix], the criterion
    g = gen(31)
    x, y = torch.randn(12, 7, generator=g), torch.randint(0, 4, (12,), generator=g)
    w = torch.randn(7, 4, generator=g, requires_grad=True)
    index = torch.randperm(12, generator=g)
    mixed_x, y_a, y_b, lam = mixup_data(x, y, 0.6, index)
    out = torch.cat([x, mixed_x]) @ w
    ref = lam * F.cross_entropy(out, torch.cat([y, y_a])) + (1 - lam) * F.cross_entropy(
        out, torch.cat([y, y_b])
    )
    fn = compiled("regmixup")
    ours = fn(x @ w, mixed_x @ w, y, y_b, torch.tensor(lam))
    torch.testing.assert_close(ours, ref)
    (ga,) = torch.autograd.grad(ours, w)
    (gb,) = torch.autograd.grad(ref, w)
    torch.testing.assert_close(ga, gb)


def test_regmixup_edges():
    fn = compiled("regmixup")
    z, y = logits_target((9, 5), seed=41)
    zm, _ = logits_target((9, 5), seed=42)
    yp = y.flip(0)
    # eta = 0: half the clean CE (by hand from F.cross_entropy)
    torch.testing.assert_close(
        fn(z, zm, y, yp, torch.tensor(0.3), eta=0.0), F.cross_entropy(z, y) / 2
    )
    # lam = 1 with target_perm = target: mixup reduces to CE on the mixed logits
    want = (F.cross_entropy(z, y) + F.cross_entropy(zm, y)) / 2
    torch.testing.assert_close(fn(z, zm, y, y, torch.tensor(1.0)), want)
    # the paper's L = CE + eta * mix is twice the official (and this spec's) value
    eta = 2.0
    paper = F.cross_entropy(z, y) + eta * (
        0.3 * F.cross_entropy(zm, y) + 0.7 * F.cross_entropy(zm, yp)
    )
    torch.testing.assert_close(2 * fn(z, zm, y, yp, torch.tensor(0.3), eta=eta), paper)


# ---- forward_forward_goodness: mpezeshki/pytorch_forward_forward, loeweX/Forward-Forward --------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_forward_forward_matches_mpezeshki(shape, reduction):
    g = gen(sum(shape))
    hp = torch.relu(torch.randn(*shape, generator=g) * 2)
    hn = torch.relu(torch.randn(*shape, generator=g))
    fn = compiled("forward_forward_goodness")
    assert_same(
        lambda hp, hn: fn(hp, hn, reduction=reduction),
        lambda hp, hn: mpezeshki_loss(hp, hn, reduction=reduction),
        {"hp": hp, "hn": hn},
        ["hp", "hn"],
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_forward_forward_matches_loewex(shape, reduction):
    g = gen(sum(shape) + 7)
    hp = torch.relu(torch.randn(*shape, generator=g) * 1.5)
    hn = torch.relu(torch.randn(*shape, generator=g))
    fn = compiled("forward_forward_goodness")
    d = float(shape[1])
    assert_same(
        lambda hp, hn: fn(hp, hn, threshold=d, mean_goodness=False, reduction=reduction),
        lambda hp, hn: loewex_loss(hp, hn, reduction=reduction),
        {"hp": hp, "hn": hn},
        ["hp", "hn"],
    )


def test_forward_forward_edges():
    fn = compiled("forward_forward_goodness")
    # goodness exactly at the threshold (mean of squares = 2): log 2 for both terms (by hand)
    h = torch.full((3, 4), math.sqrt(2.0))
    torch.testing.assert_close(fn(h, h), torch.tensor(math.log(2)))
    # large activities in float32: mpezeshki's log(1 + exp(.)) overflows to inf, softplus does not
    hp = torch.zeros(2, 3, dtype=torch.float32)
    hn = torch.full((2, 3), 20.0, dtype=torch.float32)  # goodness 400: margin 398
    out = fn(hp, hn)
    torch.testing.assert_close(out, torch.tensor((math.log1p(math.exp(2.0)) + 398.0) / 2).float())
    assert torch.isinf(mpezeshki_loss(hp, hn))
