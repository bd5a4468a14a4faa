"""Divergences and mutual information: the KL divergence (torch's kl_div, optax), kernel MMD^2
(MMD-GAN; Gretton et al. 2012 for unequal sample sizes) and the MI bounds DV, NWJ, InfoNCE, JS and
SMILE (ermongroup/smile-mi-estimator). For mi_js and mi_smile the gradient is the JS bound's while
the value is NWJ's / SMILE's: the stop_grad semantics are checked by comparing gradients with the
reference's no_grad form.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import warnings

import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from reference import smile_official as smile
from reference.mmd_official import mix_rbf_mmd2
from torch_helpers import (
    REDUCTIONS,
    assert_same,
    assert_same_as_optax,
    compiled,
    gen,
    randn,
    soft_targets,
)

import lossdsl

# ---- B8 kl_div: F.kl_div(batchmean); optax.kl_divergence -------------------------------------


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


@pytest.mark.parametrize("dims", [(6, 5), (3, 4, 5, 2), (1, 7)])
def test_kl_div_pointwise_is_torch_kl_div(dims):
    """kl_div_pointwise: F.kl_div's elementwise reduction='none' (the [B, *S] matrix), 'mean'
    (sum / numel) and 'sum', on [B, C] and [B, C, H, W], with zero target probabilities in
    it; values and gradients w.r.t. both arguments (torch 2.13, float64). At q = 0 the target
    gradient log q + 1 is NaN in both (torch's xlogy backward): compared as NaN."""
    lp = F.log_softmax(torch.randn(*dims, generator=gen(26), dtype=torch.float64) * 2, dim=1)
    q = F.softmax(torch.randn(*dims, generator=gen(27), dtype=torch.float64) * 2, dim=1)
    q = torch.where(torch.rand(*dims, generator=gen(28), dtype=torch.float64) < 0.2, 0.0, q)
    fn = compiled("kl_div_pointwise")
    for r in REDUCTIONS:
        with warnings.catch_warnings():  # torch warns that 'mean' is not 'batchmean'
            warnings.simplefilter("ignore", UserWarning)
            assert_same(
                lambda lp, q, r=r: fn(lp, q, reduction=r),
                lambda lp, q, r=r: F.kl_div(lp, q, reduction=r),
                {"lp": lp, "q": q},
                ["lp", "q"],
                equal_nan=True,
            )


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


# ---- mmd: OctoberChang/MMD-GAN mmd.py (mix_rbf_mmd2, biased) --------------------------------


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


# ---- mi_*: ermongroup/smile-mi-estimator estimators.py (reference/smile_official.py) --------
# Mutual-information bounds (mi_dv, mi_nwj, mi_infonce, mi_js, mi_smile) against the official
# SMILE estimators (ermongroup/smile-mi-estimator estimators.py, transcribed in
# tests/reference/smile_official.py): values and gradients in float64, two batch sizes. For
# mi_js and mi_smile the gradient is the JS bound's while the value is NWJ's / SMILE's: the
# stop_grad semantics are checked by comparing gradients with the reference's no_grad form.


CASES = [
    ("mi_dv", {}, smile.dv_upper_lower_bound),
    ("mi_nwj", {}, smile.nwj_lower_bound),
    ("mi_infonce", {}, smile.infonce_lower_bound),
    ("mi_js", {}, smile.js_lower_bound),
    ("mi_smile", {"clip": 5.0}, lambda f: smile.smile_lower_bound(f, clip=5.0)),
    ("mi_smile", {"clip": 1.0}, lambda f: smile.smile_lower_bound(f, clip=1.0)),
    ("mi_smile", {"clip": float("inf")}, lambda f: smile.smile_lower_bound(f, clip=None)),
]


@pytest.mark.parametrize("b", [5, 16])
@pytest.mark.parametrize("name,params,bound", CASES, ids=[f"{n}-{p}" for n, p, _ in CASES])
def test_mi_bound_matches_official(name, params, bound, b):
    f = torch.randn(b, b, generator=torch.Generator().manual_seed(b)) * 3 + 2 * torch.eye(b)
    fn = lossdsl.load(name).compile("torch")
    x, y = f.clone().requires_grad_(True), f.clone().requires_grad_(True)
    ours, want = fn(x, **params), -bound(y)
    torch.testing.assert_close(ours, want)
    torch.testing.assert_close(torch.autograd.grad(ours, [x])[0], torch.autograd.grad(want, [y])[0])


def test_smile_gradient_is_the_js_gradient():
    """Song & Ermon 2020, eq. 17: SMILE trains with the JS bound's gradient."""
    f = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    x, y = f.clone().requires_grad_(True), f.clone().requires_grad_(True)
    g = torch.autograd.grad(lossdsl.load("mi_smile").compile("torch")(x), [x])[0]
    g_js = torch.autograd.grad(-smile.js_fgan_lower_bound(y), [y])[0]
    torch.testing.assert_close(g, g_js)
