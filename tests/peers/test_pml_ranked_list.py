"""Peer parity: pytorch-metric-learning's RankedListLoss against specs/ranked_list.loss.

Every case runs the installed pytorch_metric_learning 2.9.0 class itself and the spec on the same
float64 embeddings and compares the value (PML's default MeanReducer) and the gradient w.r.t. the
embeddings.

PML's own tests, KevinMusgrave/pytorch-metric-learning tests/losses/test_ranked_list_loss.py
(stored version at commit 125d9b0; the loss source is the installed 2.9.0's), draw 32 x 64
randn embeddings and 5 classes (randint), twice per dtype, and loop over four zipped settings in
each of its two tests; their expected values come from hand-written loops of PML's formula, here
PML itself recomputes them. Two of the zipped rows are special:

- test_ranked_list_loss_simpler row 4 (Tp = Tn = inf, margin 1.2, alpha 0.4): every positive
  pair's weight is exp(inf) = inf and PML's value is inf / inf = NaN (the test's own loop gives
  NaN too, and its `isclose(NaN, NaN)` is False: that row fails in PML's suite). The spec gives
  NaN as PML; the row checks that both are NaN.
- test_ranked_list_loss row 4 (Tp = inf, alpha 3, margin 1.2): no pair of normalized embeddings
  is farther than alpha - margin = 1.8 there, the positive weights are empty and the value is
  finite; the gradient is compared (the spec masks the exponent, so no NaN leaks from inf * 0).

Cases of ours follow: PML's defaults (alpha=None), several seeds, B = 1, one class, all classes
distinct, duplicate embeddings, the per-anchor losses (reduction "none" against PML's
DoNothingReducer), the imbalance constraint (PML's test_assertion_raises), and jax against
torch. Exclusions: EXCLUDED below and docs/peers/pml_proxy.md."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses, reducers
from torch_helpers import gen

import lossdsl

PML_TEST = (
    "pytorch-metric-learning tests/losses/test_ranked_list_loss.py @ 125d9b0; installed 2.9.0"
)

EXCLUDED = {
    "TEST_DTYPES float16 / float32 loops, TEST_DEVICE": (
        "dtype and device loops: every case runs in float64 (lossdsl computes half inputs in "
        "float32 by design)"
    ),
}

INF = math.inf

# test_ranked_list_loss_simpler: zip(Tp, lam, margin), alpha = 1 - margin / 2, Tn = Tp
SIMPLER = [
    (tp, lam, m, 1 - m / 2, tp)
    for tp, lam, m in zip([0, 0.5, 3, INF], [0, 0.5, 0.7, 0.9], [0, 0.4, 0.8, 1.2], strict=True)
]
# test_ranked_list_loss: zip(Tn, Tp, alpha, lam, margin)
GENERAL = [
    (tp, lam, m, alpha, tn)
    for tn, tp, alpha, lam, m in zip(
        [0.3, 0.8, 2, 10], [0, 0.5, 3, INF], [0.3, 0.8, 1, 3], [0, 0.5, 0.7, 0.9],
        [0, 0.4, 0.8, 1.2], strict=True,
    )
]  # fmt: skip
# (source, Tp, imbalance, margin, alpha, Tn)
OWN = [("simpler",) + s for s in SIMPLER] + [("general",) + s for s in GENERAL]


@functools.cache
def _spec(backend="torch"):
    return lossdsl.load("ranked_list").compile(backend)


def _params(tp, lam, margin, alpha, tn):
    return dict(Tp=float(tp), imbalance=float(lam), margin=float(margin),
                alpha=-1.0 if alpha is None else float(alpha), Tn=float(tn))  # fmt: skip


def _pml(tp, lam, margin, alpha, tn, reducer=None):
    kw = {} if reducer is None else {"reducer": reducer}
    with pytest.warns(UserWarning) if tp > 5 or tn > 5 else _nothing():
        return losses.RankedListLoss(margin=margin, Tn=tn, imbalance=lam, alpha=alpha, Tp=tp, **kw)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _run(fn, emb, labels, **kw):
    e = emb.clone().requires_grad_(True)
    out = fn(e, labels, **kw)
    (g,) = torch.autograd.grad(out.sum(), [e])
    return out.detach(), g


def check(emb, labels, tp=0.0, lam=0.5, margin=0.4, alpha=None, tn=0.5, rtol=1e-10, atol=1e-12):
    want, gwant = _run(_pml(tp, lam, margin, alpha, tn), emb, labels)
    got, ggot = _run(_spec(), emb, labels, **_params(tp, lam, margin, alpha, tn))
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True)
    torch.testing.assert_close(ggot, gwant, rtol=rtol, atol=atol, equal_nan=True)
    return got


def _pml_batch(rep):
    """PML's test batch: randn(32, 64) and randint(0, 5, (32,)); `rep` is its 'test multiple
    times' loop (2 repetitions), a seed here."""
    g = gen(1500 + rep)
    return torch.randn(32, 64, generator=g, dtype=torch.float64), torch.randint(
        0, 5, (32,), generator=g
    )


@pytest.mark.parametrize("rep", [0, 1])
@pytest.mark.parametrize(
    "source,tp,lam,margin,alpha,tn", OWN, ids=[f"{c[0]}-{i % 4}" for i, c in enumerate(OWN)]
)
def test_pml_own_settings(source, tp, lam, margin, alpha, tn, rep):
    emb, labels = _pml_batch(rep)
    got = check(emb, labels, tp, lam, margin, alpha, tn)
    if source == "simpler" and tp == INF:
        assert torch.isnan(got)  # PML's value too (inf / inf), checked by check()
    else:
        assert torch.isfinite(got)


def test_pml_own_nan_row_is_nan_in_pml_itself():
    """The NaN of simpler row 4 is PML's: its own value, not only the spec's."""
    emb, labels = _pml_batch(0)
    assert torch.isnan(_pml(INF, 0.9, 1.2, 0.4, INF)(emb, labels))


def test_pml_defaults_and_alpha_none():
    """alpha=None (the spec's alpha < 0) is 1 + margin / 2, Tp = 0, imbalance = 0.5 (PML's
    defaults); margin = 0.4, Tn = 0.5 are the spec's defaults (PML requires them)."""
    emb = torch.randn(16, 8, generator=gen(3), dtype=torch.float64)
    labels = torch.randint(0, 4, (16,), generator=gen(4))
    want, gwant = _run(losses.RankedListLoss(margin=0.4, Tn=0.5), emb, labels)
    got, ggot = _run(_spec(), emb, labels)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ggot, gwant, rtol=1e-10, atol=1e-12)
    for margin in [0.0, 0.4, 1.0]:
        check(emb, labels, margin=margin, alpha=None, tn=10.0)


SETTINGS = [
    dict(),
    dict(tp=0.0, tn=0.0),  # RLL-Simpler
    dict(margin=0.4, alpha=1.2, tn=10.0),  # the paper's
    dict(tp=2.0, lam=0.2, margin=0.8, alpha=1.0, tn=3.0),
    dict(tp=1.0, lam=1.0, margin=0.1, alpha=0.9, tn=0.0),
]


@pytest.mark.parametrize("kw", SETTINGS, ids=[f"setting{i}" for i in range(len(SETTINGS))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches(kw, seed):
    emb = torch.randn(12, 5, generator=gen(seed), dtype=torch.float64)
    labels = torch.randint(0, 4, (12,), generator=gen(seed + 100))
    check(emb, labels, **kw)


BOUNDARIES = {
    "B1": torch.tensor([3]),
    "all_same": torch.zeros(5, dtype=torch.long),
    "all_distinct": torch.arange(5),
}


@pytest.mark.parametrize("kw", SETTINGS[:4], ids=[f"setting{i}" for i in range(4)])
@pytest.mark.parametrize("case", list(BOUNDARIES))
def test_boundaries(kw, case):
    """B = 1, no negative pair, no positive pair: PML's value and gradient (finite)."""
    labels = BOUNDARIES[case]
    emb = torch.randn(len(labels), 5, generator=gen(9), dtype=torch.float64)
    assert torch.isfinite(check(emb, labels, **kw))


@pytest.mark.parametrize("margin,alpha", [(0.4, None), (1.5, 0.5)])
def test_duplicate_embeddings(margin, alpha):
    """Identical embeddings: distance exactly 0, not a violating pair (PML's `P_star > 0` /
    `N_star > 0`), also where alpha - margin < 0 would let a zero distance in; finite gradient."""
    emb = torch.randn(6, 4, generator=gen(5), dtype=torch.float64)
    emb[1] = emb[0]
    emb[3] = emb[2]
    labels = torch.tensor([0, 0, 1, 0, 2, 2])
    check(emb, labels, margin=margin, alpha=alpha)


@pytest.mark.parametrize("kw", SETTINGS[:4], ids=[f"setting{i}" for i in range(4)])
def test_per_anchor_losses(kw):
    """reduction="none": PML's per-anchor losses (DoNothingReducer); "sum" is their sum."""
    emb = torch.randn(10, 6, generator=gen(11), dtype=torch.float64)
    labels = torch.randint(0, 3, (10,), generator=gen(12))
    p = dict(dict(tp=0.0, lam=0.5, margin=0.4, alpha=None, tn=0.5), **kw)
    pml = _pml(p["tp"], p["lam"], p["margin"], p["alpha"], p["tn"], reducers.DoNothingReducer())
    want = pml(emb, labels)["loss"]["losses"]  # DoNothingReducer returns the loss dict
    params = _params(**p)
    got = _spec()(emb, labels, reduction="none", **params)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        _spec()(emb, labels, reduction="sum", **params), want.sum(), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("imbalance", [-1.0, 2.0])
def test_imbalance_outside_0_1_is_a_param_error(imbalance):
    """PML's test_assertion_raises (imbalance -1 and 2): an AssertionError there, a ParamError
    (a LossError) naming the constraint here."""
    with pytest.raises(AssertionError):
        losses.RankedListLoss(margin=1, Tn=0, imbalance=imbalance)
    emb = torch.randn(4, 3, generator=gen(0), dtype=torch.float64)
    with pytest.raises(lossdsl.LossError, match="imbalance"):
        _spec()(emb, torch.tensor([0, 0, 1, 1]), margin=1.0, Tn=0.0, imbalance=imbalance)


@pytest.mark.parametrize("kw", SETTINGS, ids=[f"setting{i}" for i in range(len(SETTINGS))])
def test_jax_matches_torch(kw, _x64):
    import jax
    import jax.numpy as jnp

    emb = torch.randn(9, 4, generator=gen(21), dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3])
    p = dict(dict(tp=0.0, lam=0.5, margin=0.4, alpha=None, tn=0.5), **kw)
    params = _params(**p)
    out, g = _run(_spec(), emb, y, **params)
    j_fn = _spec("jax")
    ej, yj = jnp.asarray(emb.numpy()), jnp.asarray(y.numpy())
    np.testing.assert_allclose(np.asarray(j_fn(ej, yj, **params)), out.item(), rtol=1e-10)
    gj = jax.grad(lambda v: j_fn(v, yj, **params))(ej)
    np.testing.assert_allclose(np.asarray(gj), g.numpy(), rtol=1e-9, atol=1e-12)
