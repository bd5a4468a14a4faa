"""Self-supervised and representation learning: InfoNCE/NT-Xent, CLIP, Barlow Twins, VICReg,
alignment/uniformity, BYOL/SimSiam, the von Neumann entropy and dispersive regularizers, the MAE
reconstruction loss and the Forward-Forward goodness loss (layer-local, positive vs negative
data). pytorch_metric_learning 2.9.0 here (NTXentLoss).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import NTXentLoss
from reference.align_uniform_official import align_uniform_loss
from reference.barlow_twins_official import barlow_twins_loss
from reference.byol_cosine_official import byol_loss, simsiam_loss
from reference.clip_official import clip_loss
from reference.dispersive_official import disp_loss, disp_loss_cosine_paper
from reference.forward_forward_goodness_official import loewex_loss, mpezeshki_loss
from reference.mae_official import forward_loss
from reference.supcon_official import supcon_loss
from reference.vicreg_official import vicreg_loss
from reference.vne_official import get_vne
from torch_helpers import assert_same, compiled, gen, randn

import lossdsl

# ---- info_nce: pytorch_metric_learning.losses.NTXentLoss (PML 2.9.0) ------------------------


def concat_views(f):
    """[B, V, D] -> the [V*B, D] view-major concatenation and its repeated sample labels."""
    b, v, _ = f.shape
    return torch.cat(torch.unbind(f, dim=1), dim=0), torch.arange(b).repeat(v)


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


# ---- align_uniform: SsnL/align_uniform ------------------------------------------------------


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


# ---- vne: jaeill/CVPR23-VNE vne/__init__.py (reference/vne_official.py) ------------------------
# vne against the official get_vne (jaeill/CVPR23-VNE vne/__init__.py, transcribed in
# tests/reference/vne_official.py): values and gradients in float64, N > D and N < D (the latter
# has D - N zero eigenvalues that nansum skips).


@pytest.mark.parametrize("n,d", [(40, 8), (6, 16), (32, 32)])
@pytest.mark.parametrize("alpha", [1.0, -0.5])
def test_vne_matches_official(n, d, alpha):
    h = torch.randn(n, d, generator=torch.Generator().manual_seed(n * d))
    fn = lossdsl.load("vne").compile("torch")
    a, b = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    ours, ref = fn(a, alpha=alpha), -alpha * get_vne(b)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    (ga,), (gb,) = torch.autograd.grad(ours, [a]), torch.autograd.grad(ref, [b])
    assert torch.isfinite(ga).all()
    torch.testing.assert_close(ga, gb, rtol=1e-6, atol=1e-9)


def test_vne_of_isotropic_embeddings_is_log_d():
    """Orthonormal rows (N = D): rho = I / D, VNE = log D (paper, section 3)."""
    d = 8
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
    out = lossdsl.load("vne").compile("torch")(q)
    torch.testing.assert_close(out, -torch.log(torch.tensor(float(d))))


def test_vne_backend_matches_torch(other_backend):
    import numpy as np

    h = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    a = lossdsl.load("vne").compile(other_backend)(h.numpy())
    b = lossdsl.load("vne").compile("torch")(h)
    np.testing.assert_allclose(np.asarray(a), b.item(), rtol=1e-10)


# ---- dispersive: raywang4/DispLoss transport/transport.py --------------------------------------


@pytest.mark.parametrize("shape", [(8, 5), (33, 4, 6), (16, 3, 2, 4)])
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_dispersive_matches_official(shape, tau, reduction):
    z = torch.randn(*shape, generator=gen(sum(shape)))
    fn = lossdsl.load("dispersive").compile("torch")
    # one scalar per batch: every reduction returns the official value
    assert_same(
        lambda z: fn(z, tau=tau, reduction=reduction),
        lambda z: disp_loss(z, tau=tau),
        {"z": z},
        ["z"],
    )


@pytest.mark.parametrize("shape", [(8, 5), (21, 3, 7)])
@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_dispersive_cosine_matches_paper_formula(shape, tau):
    z = torch.randn(*shape, generator=gen(7 + shape[0]))
    fn = lossdsl.load("dispersive").compile("torch")
    assert_same(
        lambda z: fn(z, tau=tau, cosine=True),
        lambda z: disp_loss_cosine_paper(z, tau=tau),
        {"z": z},
        ["z"],
    )


def test_dispersive_bounds_and_collapse():
    fn = lossdsl.load("dispersive").compile("torch")
    # collapsed batch (all z_i equal): every D = 0, L = log 1 = 0 (by hand; the official too),
    # and by symmetry the gradient is 0 (finite: no sqrt at zero distance)
    z = torch.ones(6, 5).requires_grad_(True)
    out = fn(z)
    (gz,) = torch.autograd.grad(out, z)
    assert out.item() == pytest.approx(0.0, abs=1e-15)
    assert disp_loss(z.detach()).item() == pytest.approx(0.0, abs=1e-15)
    torch.testing.assert_close(gz, torch.zeros_like(gz))
    # far apart: only the B diagonal terms survive, L = log(B / B^2) = -log B (by hand; official)
    z = 100.0 * torch.eye(7)
    torch.testing.assert_close(fn(z), torch.tensor(-math.log(7)))
    torch.testing.assert_close(disp_loss(z), torch.tensor(-math.log(7)))
    # a single sample: L = 0
    torch.testing.assert_close(fn(torch.randn(1, 4, generator=gen(8))), torch.tensor(0.0))
    # the official weight in the diffusion objective is 0.25 (recorded, not part of the loss)


def test_dispersive_float32_close_to_float64():
    # the expanded |a|^2 + |b|^2 - 2ab form loses a little to cancellation in float32
    z = torch.randn(64, 8, 16, generator=gen(9)) * 3
    fn = lossdsl.load("dispersive").compile("torch")
    torch.testing.assert_close(fn(z.float()).double(), disp_loss(z), rtol=1e-5, atol=1e-5)


# ---- mae_masked_mse: facebookresearch/mae models_mae.py (reference/mae_official.py) ------------
# mae_masked_mse against the official forward_loss (facebookresearch/mae models_mae.py,
# transcribed in tests/reference/mae_official.py): values and gradients, float64, two shapes,
# both norm_pix_loss settings, and a nothing-masked batch (declared 0, official NaN).


@pytest.mark.parametrize("b,n,p", [(2, 16, 12), (3, 5, 48)])
@pytest.mark.parametrize("norm", [True, False])
def test_mae_matches_official(b, n, p, norm):
    g = torch.Generator().manual_seed(b * n * p)
    pred, target = torch.randn(b, n, p, generator=g), torch.randn(b, n, p, generator=g)
    mask = (torch.rand(b, n, generator=g) < 0.75).double()  # mask ratio 0.75, 1 = removed
    fn = lossdsl.load("mae_masked_mse").compile("torch")
    a = [pred.clone().requires_grad_(True), target.clone().requires_grad_(True)]
    r = [pred.clone().requires_grad_(True), target.clone().requires_grad_(True)]
    ours = fn(a[0], a[1], mask, norm_pix_loss=norm)
    ref = forward_loss(r[1], r[0], mask, norm_pix_loss=norm)
    torch.testing.assert_close(ours, ref)
    for x, y in zip(torch.autograd.grad(ours, a), torch.autograd.grad(ref, r)):
        torch.testing.assert_close(x, y)


def test_mae_nothing_masked_is_zero():
    pred = torch.randn(2, 4, 3, requires_grad=True)
    out = lossdsl.load("mae_masked_mse").compile("torch")(
        pred, torch.randn(2, 4, 3), torch.zeros(2, 4)
    )
    (g,) = torch.autograd.grad(out, [pred])
    assert out.item() == 0.0 and torch.all(g == 0)


# ---- forward_forward_goodness: mpezeshki/pytorch_forward_forward, loeweX/Forward-Forward --------


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
