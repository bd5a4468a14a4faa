"""Batch "ssl_metric": self-supervised and metric-learning specs against something lossdsl did not
compute: pytorch_metric_learning (NTXentLoss, CircleLoss, TripletMarginLoss + BatchHardMiner) and
transcriptions of the official code in tests/reference/ (each file names its repository, file and
commit). Values and gradients in float64, at least two shapes, plus edge cases and metamorphic
checks.

Library versions: whatever `pip install -e .[test]` resolves (pytorch-metric-learning 2.9.0
here)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import CircleLoss, NTXentLoss, TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner
from reference.align_uniform_official import align_uniform_loss
from reference.barlow_twins_official import barlow_twins_loss
from reference.byol_cosine_official import byol_loss, simsiam_loss
from reference.clip_official import clip_loss
from reference.mmd_official import mix_rbf_mmd2
from reference.supcon_official import supcon_loss
from reference.triplet_batch_hard_official import triplet_loss
from reference.vicreg_official import vicreg_loss
from torch_helpers import assert_same, gen, randn

import lossdsl

torch.set_default_dtype(torch.float64)
BD = [(8, 5), (13, 17)]  # (B, D)


def concat_views(f):
    """[B, V, D] -> the [V*B, D] view-major concatenation and its repeated sample labels."""
    b, v, _ = f.shape
    return torch.cat(torch.unbind(f, dim=1), dim=0), torch.arange(b).repeat(v)


# ---- info_nce: pytorch_metric_learning.losses.NTXentLoss (PML 2.9.0) ------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("views", [2, 3])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_info_nce_matches_pml_ntxent(bd, views, tau):
    b, d = bd
    f = randn(b, views, d, seed=1, scale=2.0)
    fn = lossdsl.load("info_nce").compile("torch")
    pml = NTXentLoss(temperature=tau)
    assert_same(
        lambda f: fn(f, temperature=tau),
        lambda f: pml(*concat_views(f)),
        {"f": f},
        ["f"],
        rtol=1e-9,
        atol=1e-10,
    )


def test_info_nce_sum_is_simclr_official_convention():
    """google-research/simclr tf2/objective.py returns mean_B(loss_a + loss_b) = sum / B; with
    V = 2 the per-anchor losses are also PML's (mean reduction * 2B = sum)."""
    f = randn(6, 2, 4, seed=2)
    fn = lossdsl.load("info_nce").compile("torch")
    ref = NTXentLoss(temperature=0.1)(*concat_views(f)) * 2
    torch.testing.assert_close(fn(f, reduction="sum") / 6, ref, rtol=1e-12, atol=0)
    assert fn(f, reduction="none").shape == (6, 2)


@pytest.mark.parametrize("views", [2, 3])
def test_info_nce_all_denominator_is_supcon_simclr_mode(views):
    """other_positives_in_denominator=true is SupContrast's SimCLR mode (labels=None) on normalized
    features with base_temperature = temperature (HobbitLong/SupContrast losses.py)."""
    f = randn(7, views, 5, seed=3, scale=1.5)
    fn = lossdsl.load("info_nce").compile("torch")
    for r in ("mean", "sum", "none"):
        assert_same(
            lambda f: fn(f, temperature=0.2, other_positives_in_denominator=True, reduction=r),
            lambda f: _supcon_views(
                supcon_loss(
                    F.normalize(f, dim=-1), None, temperature=0.2, base_temperature=0.2, reduction=r
                ),
                r,
                f.shape[0],
            ),
            {"f": f},
            ["f"],
        )


def _supcon_views(x, r, b):
    return x.view(-1, b).T if r == "none" else x  # official order is view-major


def test_info_nce_views_agree_for_two_views():
    f = randn(5, 2, 3, seed=4)
    fn = lossdsl.load("info_nce").compile("torch")
    a = fn(f, other_positives_in_denominator=True, reduction="none")
    b = fn(f, other_positives_in_denominator=False, reduction="none")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_info_nce_single_view_is_zero():
    """V = 1: no positives; PML returns a zero loss."""
    f = randn(5, 1, 3, seed=5).requires_grad_(True)
    out = lossdsl.load("info_nce").compile("torch")(f)
    (g,) = torch.autograd.grad(out, [f])
    assert out.item() == 0.0 and torch.all(g == 0)
    assert NTXentLoss()(*concat_views(f.detach())).item() == 0.0


def test_info_nce_scale_invariant():
    """Metamorphic: features are normalized inside, so scaling a sample changes nothing."""
    f = randn(6, 2, 4, seed=6)
    s = torch.rand(6, 2, 1, generator=gen(7)) * 5 + 0.1
    fn = lossdsl.load("info_nce").compile("torch")
    torch.testing.assert_close(fn(f * s), fn(f), rtol=1e-12, atol=1e-12)


# ---- clip: open_clip ClipLoss (tests/reference/clip_official.py) ----------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("normalize", [True, False])
def test_clip_matches_open_clip(bd, normalize):
    b, d = bd
    img, txt = randn(b, d, seed=8), randn(b, d, seed=9)
    scale = torch.tensor(math.log(1 / 0.07))
    fn = lossdsl.load("clip").compile("torch")
    assert_same(
        lambda i, t, s: fn(i, t, s, l2_normalize=normalize),
        lambda i, t, s: clip_loss(i, t, s.exp(), normalize=normalize),
        {"i": img, "t": txt, "s": scale},
        ["i", "t", "s"],
    )
    # sum and none: per-sample terms average to the official scalar
    none = fn(img, txt, scale, l2_normalize=normalize, reduction="none")
    torch.testing.assert_close(none.mean(), clip_loss(img, txt, scale.exp(), normalize=normalize))
    torch.testing.assert_close(fn(img, txt, scale, reduction="sum"), fn(img, txt, scale) * b)


def test_clip_is_shift_free_and_symmetric():
    """Metamorphic: swapping image and text gives the same loss (the two CE terms trade places)."""
    img, txt = randn(6, 4, seed=10), randn(6, 4, seed=11)
    s = torch.tensor(2.0)
    fn = lossdsl.load("clip").compile("torch")
    torch.testing.assert_close(fn(img, txt, s), fn(txt, img, s), rtol=1e-12, atol=0)


# ---- barlow_twins: facebookresearch/barlowtwins main.py -------------------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("lambd", [0.0051, 0.5])
def test_barlow_twins_matches_official(bd, lambd):
    b, d = bd
    z1, z2 = randn(b, d, seed=12, scale=2.0), randn(b, d, seed=13) + 1.0
    fn = lossdsl.load("barlow_twins").compile("torch")
    assert_same(
        lambda a, c: fn(a, c, lambd=lambd),
        lambda a, c: barlow_twins_loss(a, c, lambd=lambd),
        {"a": z1, "c": z2},
        ["a", "c"],
        rtol=1e-9,
    )
    for r in ("none", "sum"):  # a scalar loss: every reduction returns it
        torch.testing.assert_close(fn(z1, z2, lambd=lambd, reduction=r), fn(z1, z2, lambd=lambd))


def test_barlow_twins_identical_views_only_off_diagonal():
    """z1 = z2: the normalized cross-correlation has diagonal var/(var+eps) ~ 1."""
    z = randn(9, 4, seed=14)
    fn = lossdsl.load("barlow_twins").compile("torch")
    assert_same(lambda a: fn(a, a), lambda a: barlow_twins_loss(a, a), {"a": z}, ["a"], rtol=1e-9)


# ---- vicreg: facebookresearch/vicreg main_vicreg.py ----------------------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("scale", [0.3, 3.0])  # std below / above 1: relu(1 - std) on and off
def test_vicreg_matches_official(bd, scale):
    b, d = bd
    z1, z2 = randn(b, d, seed=15, scale=scale), randn(b, d, seed=16, scale=scale)
    fn = lossdsl.load("vicreg").compile("torch")
    assert_same(
        fn, lambda z1, z2: vicreg_loss(z1, z2), {"z1": z1, "z2": z2}, ["z1", "z2"], rtol=1e-9
    )
    assert_same(
        lambda z1, z2: fn(z1, z2, sim_coeff=1.0, std_coeff=2.0, cov_coeff=3.0),
        lambda z1, z2: vicreg_loss(z1, z2, sim_coeff=1.0, std_coeff=2.0, cov_coeff=3.0),
        {"z1": z1, "z2": z2},
        ["z1", "z2"],
        rtol=1e-9,
    )


# ---- circle: pytorch_metric_learning.losses.CircleLoss -------------------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("m,gamma", [(0.4, 80.0), (0.25, 256.0), (0.25, 2.0)])
def test_circle_matches_pml(bd, m, gamma):
    b, d = bd
    e = randn(b, d, seed=17)
    y = torch.randint(0, 3, (b,), generator=gen(18))
    y[-1] = 7  # a singleton: no positive, excluded from the mean
    fn = lossdsl.load("circle").compile("torch")
    assert_same(
        lambda e: fn(e, y, m=m, gamma=gamma),
        lambda e: CircleLoss(m=m, gamma=gamma)(e, y),
        {"e": e},
        ["e"],
        rtol=1e-9,
    )


def test_circle_edge_cases():
    """All labels distinct (no positives) and all equal (no negatives): 0 with zero gradient;
    PML returns 0 too."""
    fn = lossdsl.load("circle").compile("torch")
    for y in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        e = randn(5, 3, seed=19).requires_grad_(True)
        out = fn(e, y)
        (g,) = torch.autograd.grad(out, [e])
        assert out.item() == 0.0 and torch.all(g == 0)
        assert CircleLoss()(e.detach(), y).item() == 0.0


# ---- triplet_batch_hard: reid-strong-baseline; PML TripletMarginLoss + BatchHardMiner -------


def pk_labels(p, k):
    return torch.arange(p).repeat_interleave(k)[torch.randperm(p * k, generator=gen(20))]


@pytest.mark.parametrize("pk,d", [((4, 2), 5), ((4, 4), 17)])
@pytest.mark.parametrize("margin", [0.3, None, 5.0])
@pytest.mark.parametrize("normalize", [False, True])
def test_triplet_batch_hard_matches_reid_strong_baseline(pk, d, margin, normalize):
    y = pk_labels(*pk)
    e = randn(len(y), d, seed=21)
    fn = lossdsl.load("triplet_batch_hard").compile("torch")
    kw = dict(margin=margin or 0.0, soft_margin=margin is None, l2_normalize=normalize)
    assert_same(
        lambda e: fn(e, y, **kw),
        lambda e: triplet_loss(e, y, margin=margin, normalize_feature=normalize),
        {"e": e},
        ["e"],
        rtol=1e-8,
    )


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("margin", [0.05, 0.5])
def test_triplet_batch_hard_matches_pml(bd, margin):
    b, d = bd
    e = randn(b, d, seed=22)
    y = torch.randint(0, 3, (b,), generator=gen(23))
    y[-1] = 9  # singleton: no positive, dropped by the miner and by the spec
    fn = lossdsl.load("triplet_batch_hard").compile("torch")
    pml, miner = TripletMarginLoss(margin=margin), BatchHardMiner()
    assert_same(
        lambda e: fn(e, y, margin=margin, l2_normalize=True, avg_nonzero=True),
        lambda e: pml(e, y, miner(e, y)),
        {"e": e},
        ["e"],
        rtol=1e-9,
    )


def test_triplet_batch_hard_edge_cases():
    fn = lossdsl.load("triplet_batch_hard").compile("torch")
    for y in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        e = randn(5, 3, seed=24).requires_grad_(True)
        out = fn(e, y)
        (g,) = torch.autograd.grad(out, [e])
        assert out.item() == 0.0 and torch.all(g == 0)
    # avg_nonzero with every triplet satisfied (margin 0, well-separated classes): 0, like PML
    e = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [-1.0, 0.1]])
    y = torch.tensor([0, 0, 1, 1])
    assert fn(e, y, margin=0.0, l2_normalize=True, avg_nonzero=True).item() == 0.0
    assert TripletMarginLoss(margin=0.0)(e, y, BatchHardMiner()(e, y)).item() == 0.0


# ---- align_uniform: SsnL/align_uniform ------------------------------------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("alpha,t,uw", [(2.0, 2.0, 1.0), (1.0, 0.5, 3.0), (3.0, 5.0, 0.1)])
def test_align_uniform_matches_official(bd, alpha, t, uw):
    b, d = bd
    x = F.normalize(randn(b, d, seed=25), dim=1)
    y = F.normalize(x + 0.3 * randn(b, d, seed=26), dim=1)
    fn = lossdsl.load("align_uniform").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, alpha=alpha, t=t, unif_w=uw),
        lambda x, y: align_uniform_loss(x, y, align_alpha=alpha, unif_t=t, unif_w=uw),
        {"x": x, "y": y},
        ["x", "y"],
        rtol=1e-9,
    )


# ---- byol_cosine: deepmind-research byol (transcribed); SimSiam main_simsiam.py ------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("simsiam", [False, True])
def test_byol_cosine_matches_official(bd, simsiam):
    b, d = bd
    p1, p2, z1, z2 = (randn(b, d, seed=s) for s in (27, 28, 29, 30))
    fn = lossdsl.load("byol_cosine").compile("torch")
    ref = simsiam_loss if simsiam else byol_loss
    assert_same(
        lambda p1, p2, z1, z2: fn(p1, p2, z1, z2, simsiam=simsiam),
        ref,
        {"p1": p1, "p2": p2, "z1": z1, "z2": z2},
        ["p1", "p2"],
    )
    zs = [z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)]
    # the targets are stop-gradient: the loss does not reach z1, z2 at all (the official
    # .detach() / stop_gradient), so it does not even require grad here
    assert not fn(p1, p2, *zs, simsiam=simsiam).requires_grad


def test_byol_is_affine_in_simsiam():
    """Metamorphic: BYOL's per-sample loss is 4 - 2 (cos + cos) = 4 + 4 * SimSiam's."""
    p1, p2, z1, z2 = (randn(5, 3, seed=s) for s in (31, 32, 33, 34))
    fn = lossdsl.load("byol_cosine").compile("torch")
    a = fn(p1, p2, z1, z2, reduction="none")
    s = fn(p1, p2, z1, z2, simsiam=True, reduction="none")
    torch.testing.assert_close(a, 4 + 4 * s, rtol=1e-12, atol=1e-12)
    g = torch.autograd.grad(fn(p1, p2, z1.requires_grad_(True), z2, detach_target=False), [z1])[0]
    assert torch.any(g != 0)  # detach_target=False lets the gradient into the target


# ---- mmd: OctoberChang/MMD-GAN mmd.py (mix_rbf_mmd2, biased) --------------------------------


@pytest.mark.parametrize("bd", BD)
@pytest.mark.parametrize("sigma", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("biased", [True, False])
def test_mmd_matches_mmd_gan(bd, sigma, biased):
    b, d = bd
    x, y = randn(b, d, seed=35), randn(b, d, seed=36) + 0.5
    fn = lossdsl.load("mmd").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, sigma=sigma, biased=biased),
        lambda x, y: mix_rbf_mmd2(x, y, [sigma], biased=biased),
        {"x": x, "y": y},
        ["x", "y"],
        rtol=1e-8,
        atol=1e-10,
    )


@pytest.mark.parametrize("biased", [True, False])
def test_mmd_samples_of_different_sizes_match_the_paper(biased):
    # MMD-GAN's code needs N == M; for N != M the expected value is Gretton et al. (JMLR 2012)
    # Lemma 6 (biased, eq. 5) and eq. 3 (unbiased), written out here on the kernel matrices
    x, y = randn(7, 3, seed=39), randn(4, 3, seed=40) * 2
    n, m = 7, 4

    def paper(x, y, sigma=1.5):
        k = lambda a, b: torch.exp(-(torch.cdist(a, b) ** 2) / (2 * sigma**2))
        kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
        if biased:
            return kxx.sum() / n**2 + kyy.sum() / m**2 - 2 * kxy.sum() / (n * m)
        off = lambda kk: kk.sum() - kk.diagonal().sum()
        return off(kxx) / (n * (n - 1)) + off(kyy) / (m * (m - 1)) - 2 * kxy.sum() / (n * m)

    fn = lossdsl.load("mmd").compile("torch")
    assert_same(
        lambda x, y: fn(x, y, sigma=1.5, biased=biased), paper, {"x": x, "y": y}, ["x", "y"],
        rtol=1e-8, atol=1e-10,
    )  # fmt: skip


def test_mmd_identical_samples_is_zero_and_symmetric():
    x, y = randn(6, 3, seed=37), randn(6, 3, seed=38)
    fn = lossdsl.load("mmd").compile("torch")
    assert abs(fn(x, x).item()) < 1e-14
    torch.testing.assert_close(fn(x, y), fn(y, x), rtol=1e-12, atol=0)
    mixture = fn(x, y, sigma=1.0) + fn(x, y, sigma=10.0)  # a bandwidth mixture is a sum
    torch.testing.assert_close(mixture, mix_rbf_mmd2(x, y, [1.0, 10.0]), rtol=1e-8, atol=1e-10)
