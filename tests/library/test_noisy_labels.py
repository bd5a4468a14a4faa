"""Losses robust to noisy labels: GCE, symmetric CE (SCE) and the active-passive losses NCE+RCE,
NFL+RCE (HanxunH/Active-Passive-Losses loss.py; SCE also against its authors' Keras code,
YisenWang/symmetric_cross_entropy... loss.py); plus the JAX modules of these (and ASL) against
the torch ones on the references' conventions.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import apl_official as apl
from torch_helpers import assert_same, compiled, gen, logits_target

# ---- generalized_ce: HanxunH/Active-Passive-Losses GeneralizedCrossEntropy -----------------


@pytest.mark.parametrize("q", [0.7, 0.3, 1.0])
def test_generalized_ce_matches_official(shape, reduction, q):
    x, y = logits_target(shape, seed=30)
    fn = compiled("gce")
    assert_same(
        lambda x: fn(x, y, q=q, reduction=reduction),
        lambda x: apl.generalized_cross_entropy(x, y, q=q, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_generalized_ce_clamp_and_limits():
    # p_y < 1e-7: upstream's clamp (value (1 - 1e-7^q) / q, zero gradient)
    x = torch.tensor([[0.0, 40.0, -3.0], [5.0, 0.0, 1.0], [-30.0, 30.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    fn = compiled("gce")
    assert_same(
        lambda x: fn(x, y, reduction="none"),
        lambda x: apl.generalized_cross_entropy(x, y, reduction="none"),
        {"x": x},
        ["x"],
    )
    # q = 1: 1 - p_y (APL MeanAbsoluteError, the reduced MAE); q -> 0: CE
    x, y = logits_target((12, 6), seed=31)
    p_y = F.softmax(x, 1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(fn(x, y, q=1.0, reduction="none"), 1 - p_y, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fn(x, y, q=1e-7, eps=0.0), F.cross_entropy(x, y), rtol=1e-5, atol=0)


# ---- symmetric_ce: the authors' Keras code; APL SCELoss --------------------------------------


@pytest.mark.parametrize("ab", [(0.1, 1.0), (6.0, 0.1)])
def test_symmetric_ce_matches_keras_official(shape, reduction, ab):
    x, y = logits_target(shape, seed=40)
    x[0, :] = torch.tensor([30.0] + [-10.0] * (shape[1] - 1))  # p < 1e-7: the clamps matter
    y[0] = 1
    fn = compiled("sce")
    a, b = ab
    assert_same(
        lambda x: fn(x, y, alpha=a, beta=b, reduction=reduction),
        lambda x: apl.sce_keras(x, y, a, b, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_symmetric_ce_matches_apl_sceloss(shape, reduction):
    x, y = logits_target(shape, seed=41)
    x[0, :] = torch.tensor([30.0] + [-10.0] * (shape[1] - 1))
    fn = compiled("sce")
    assert_same(
        lambda x: fn(
            x, y, alpha=0.1, beta=1.0, clamp_ce=False, clamp_rce=True, reduction=reduction
        ),
        lambda x: apl.sce_loss(x, y, 0.1, 1.0, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_symmetric_ce_metamorphic():
    x, y = logits_target((10, 4), seed=42)
    fn = compiled("sce")
    # beta = 0, no clamp: alpha * CE (F.cross_entropy)
    torch.testing.assert_close(
        fn(x, y, alpha=2.0, beta=0.0, clamp_ce=False),
        2.0 * F.cross_entropy(x, y),
        rtol=1e-12,
        atol=0,
    )
    # RCE = -A (1 - p_y) without clamps; the paper's A = -4
    p_y = F.softmax(x, 1).gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(
        fn(x, y, alpha=0.0, beta=1.0, A=-4.0, reduction="none"),
        4.0 * (1 - p_y),
        rtol=1e-12,
        atol=1e-14,
    )
    # shift invariance over C
    torch.testing.assert_close(fn(x + 7.0, y, reduction="none"), fn(x, y, reduction="none"))


# ---- nce_rce / nfl_rce: APL NCEandRCE, NFLandRCE ----------------------------------------------


@pytest.mark.parametrize("ab", [(1.0, 1.0), (10.0, 0.1)])
def test_nce_rce_matches_official(shape, reduction, ab):
    x, y = logits_target(shape, seed=50)
    x[0, :] = torch.tensor([30.0] + [-10.0] * (shape[1] - 1))
    fn = compiled("nce_rce")
    a, b = ab
    assert_same(
        lambda x: fn(x, y, alpha=a, beta=b, reduction=reduction),
        lambda x: apl.nce_and_rce(x, y, a, b, reduction=reduction),
        {"x": x},
        ["x"],
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_nfl_rce_matches_official(shape, reduction, gamma):
    """Default detach_focus = true: upstream takes every (1 - p)^gamma from .data."""
    x, y = logits_target(shape, seed=51)
    fn = compiled("nfl_rce")
    assert_same(
        lambda x: fn(x, y, gamma=gamma, alpha=10.0, beta=0.1, reduction=reduction),
        lambda x: apl.nfl_and_rce(x, y, 10.0, 0.1, gamma=gamma, reduction=reduction),
        {"x": x},
        ["x"],
    )


def test_nfl_rce_gamma0_is_nce_rce_and_detach_changes_only_gradient():
    x, y = logits_target((12, 5), seed=52)
    nfl, nce = compiled("nfl_rce"), compiled("nce_rce")
    assert_same(lambda x: nfl(x, y, gamma=0.0), lambda x: nce(x, y), {"x": x}, ["x"])
    a = nfl(x, y, detach_focus=False, reduction="none")
    torch.testing.assert_close(a, nfl(x, y, reduction="none"), rtol=1e-12, atol=0)
    xs = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(nfl(xs, y), [xs])
    (g2,) = torch.autograd.grad(nfl(xs, y, detach_focus=False), [xs])
    assert not torch.allclose(g1, g2)
    # shift invariance over C
    torch.testing.assert_close(nce(x - 5.0, y, reduction="none"), nce(x, y, reduction="none"))


# ---- shared: jax and numpy agree with torch on the references' conventions ----------------


@pytest.mark.parametrize(
    "name,args",
    [
        ("asl", lambda x, y, t: (x, t)),
        ("gce", lambda x, y, t: (x, y)),
        ("sce", lambda x, y, t: (x, y)),
        ("nce_rce", lambda x, y, t: (x, y)),
        ("nfl_rce", lambda x, y, t: (x, y)),
    ],
)
def test_backend_matches_torch_reference(name, args, other_backend):
    x, y = logits_target((16, 7), seed=90)
    t = (torch.rand(16, 7, generator=gen(91)) < 0.4).double()
    fn = compiled(name, other_backend)
    a = np.asarray(fn(*[v.numpy() for v in args(x, y, t)], reduction="none"))
    b = compiled(name)(*args(x, y, t), reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
