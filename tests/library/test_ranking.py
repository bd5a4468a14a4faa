"""Learning to rank: ListMLE and ListNet against rax (rax.listmle_loss, rax.softmax_loss) and
allRank (tests/reference/allrank_official.py), unpadded and padded (the optional `valid` mask).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import call, grads
from torch_helpers import gen

import lossdsl

# rax 0.4.0: reduce_fn=None gives one loss per list (the spec's reduction="none")
_REDUCE = {"none": None, "sum": jnp.sum, "mean": jnp.mean}
LISTS = [(6, 5), (4, 33)]  # (B lists, N items)


def _rax(name, reduction):
    import rax

    if name == "list_mle":
        return lambda s, y: rax.listmle_loss(s, y, reduce_fn=_REDUCE[reduction])
    # ListNet: the softmax cross-entropy against the labels' own softmax (label_fn)
    return lambda s, y: rax.softmax_loss(
        s, y, label_fn=lambda t, where=None: jax.nn.softmax(t, axis=-1),
        reduce_fn=_REDUCE[reduction],
    )  # fmt: skip


def _lists(shape, seed, ties=False):
    g = gen(seed)
    s = torch.randn(*shape, generator=g) * 2
    y = (
        torch.randint(0, 5, shape, generator=g).double()
        if ties
        else torch.rand(*shape, generator=g)
    )
    return {"scores": s.numpy(), "labels": (y * 4).numpy() if not ties else y.numpy()}


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
@pytest.mark.parametrize("shape", LISTS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("ties", [False, True])
def test_listwise_losses_match_rax(name, shape, ties, reduction):
    """Values and gradients w.r.t. the scores on every backend against rax (jax.grad of its
    summed output), float64. With ties among graded labels (0..4), ListMLE's order is rax's
    deterministic one (ties keep list order: a stable sort by -labels), which is the spec's."""
    data = _lists(shape, 71 + len(name), ties)
    ref = _rax(name, reduction)
    xs = {k: jnp.asarray(v) for k, v in data.items()}
    want = np.asarray(ref(xs["scores"], xs["labels"]))
    gref = jax.grad(lambda s: jnp.sum(ref(s, xs["labels"])))(xs["scores"])
    _agree_on_every_backend(name, data, reduction, want, gref)


def test_list_mle_by_hand():
    """Two items, scores (a, b), the first labelled higher: -log(e^a / (e^a + e^b)) - log 1 =
    softplus(b - a) (the Plackett-Luce probability of the true order); swapping the labels
    gives softplus(a - b)."""
    fn = lossdsl.load("list_mle").compile("torch")
    s = torch.tensor([[0.3, -1.2]])
    for y, d in (([2.0, 1.0], -1.5), ([1.0, 2.0], 1.5)):
        got = fn(s, torch.tensor([y]), reduction="none")
        torch.testing.assert_close(got, torch.nn.functional.softplus(torch.tensor([d])))


def test_list_mle_is_o_n_log_n():
    """One sort and one reverse scan over N: no [N, N'] value in the program (with and without
    the padding mask)."""
    for absent in (frozenset(), frozenset({"valid"})):
        prog = lossdsl.load("list_mle").program(absent=absent)
        assert {"argsort", "take_along", "logcumsumexp"} <= {e.op for e in prog.eqns}
        assert all(len(e.out.type.dims) <= 2 for e in prog.eqns)


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
def test_listwise_losses_match_allrank_with_eps_zero(name):
    """allRank's listMLE / listNet (tests/reference/allrank_official.py) with eps = 0 (its
    1e-10 inside the log is not part of the losses), on lists without tied labels (allRank
    breaks ties at random): the spec's mean, values and gradients w.r.t. the scores."""
    from reference.allrank_official import listMLE, listNet
    from torch_helpers import assert_same

    data = _lists((5, 17), 77)
    ref = {"list_mle": listMLE, "list_net": listNet}[name]
    fn = lossdsl.load(name).compile("torch")
    assert_same(
        lambda s, y: fn(s, y),
        lambda s, y: ref(s, y, eps=0.0),
        {"s": torch.from_numpy(data["scores"]), "y": torch.from_numpy(data["labels"])},
        ["s"],
    )


# ---- padded lists: the optional `valid` mask (allRank's PADDED_Y_VALUE, rax's `where`) ------

PAD = -1.0  # allRank's PADDED_Y_VALUE (allrank/data/dataset_loading.py)


def _padded(shape, seed, full_row=True):
    """Lists with tied graded labels (0..4) and padding the way allRank's loader marks it (label
    -1): row 0 none, row 1 a padded tail, the others padded at random places, and (full_row) the
    last row padded everywhere. Padded scores are random too: the spec must ignore them."""
    g = gen(seed)
    b, n = shape
    s = torch.randn(b, n, generator=g) * 2
    y = torch.randint(0, 5, (b, n), generator=g).double()
    pad = torch.rand(b, n, generator=g) < 0.3
    pad[0] = False
    pad[1] = torch.arange(n) >= n - 3
    pad[2, 0] = True  # a padded head
    if full_row:
        pad[-1] = True
    y[pad] = PAD
    return s, y


def _ties_in_list_order(y):
    """The labels with ties broken by list order (the earlier item first), padded ones left at
    -1: the order the spec's stable sort gives, for allRank's sort, which breaks ties at random.
    ListMLE depends on the labels only through their order, so this fixes allRank's value to the
    spec's tie-breaking and changes nothing else."""
    n = y.shape[1]
    return torch.where(y == PAD, y, y + (n - torch.arange(n, dtype=y.dtype)) * 1e-6)


def _allrank_per_list(name, s, y):
    """allRank's loss of each list alone (its mean over one list), eps = 1e-300: its eps
    (1e-10 by default) is not part of the losses, and eps = 0 would make allRank's own 0 / 0 at
    a padded tail (log(0 + eps) and its gradient, masked afterwards) NaN; with 1e-300 each valid
    log is its exact float64 value and a padded one finite before the mask drops it."""
    from reference.allrank_official import listMLE, listNet

    ref = {"list_mle": listMLE, "list_net": listNet}[name]
    return torch.stack([ref(s[i : i + 1], y[i : i + 1], eps=1e-300) for i in range(len(s))])


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
@pytest.mark.parametrize("shape", LISTS, ids=lambda s: "x".join(map(str, s)))
def test_padded_lists_match_allrank(name, shape, reduction):
    """allRank's listMLE / listNet (tests/reference/allrank_official.py) on padded lists with
    tied labels, with valid = labels != -1 (its padding convention): each list's value and the
    gradient w.r.t. the scores, every reduction (allRank's own is the mean over every list).
    allRank's listNet of a fully padded list is NaN (a softmax of -inf only), so for ListNet that
    row is left out here and checked in test_fully_padded_list_is_zero."""
    s, y = _padded(shape, 91 + len(name), full_row=name == "list_mle")
    y_ref = _ties_in_list_order(y) if name == "list_mle" else y
    fn = lossdsl.load(name).compile("torch")
    if reduction == "mean":
        from reference.allrank_official import listMLE, listNet

        allrank = {"list_mle": listMLE, "list_net": listNet}[name]
        ref = lambda s, y: allrank(s, y_ref, eps=1e-300)  # noqa: E731
    else:
        ref = lambda s, y: _allrank_per_list(name, s, y_ref).reshape(-1)  # noqa: E731
        if reduction == "sum":
            ref = lambda s, y, f=ref: f(s, y).sum()  # noqa: E731
    from torch_helpers import assert_same

    assert_same(lambda s, y: fn(s, y, y != PAD, reduction=reduction), ref, {"s": s, "y": y}, ["s"])


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
def test_padded_lists_match_rax_on_every_backend(name, reduction):
    """rax (its `where` mask: true at the valid items) on lists with padding and ties, values and
    gradients on every backend. rax's mean leaves a list with no valid item out; allRank's (the
    spec's) counts it as 0: so the fully padded row is checked with "none" and "sum" only."""
    s, y = _padded((6, 11), 97, full_row=reduction != "mean")
    data = {"scores": s.numpy(), "labels": y.numpy(), "valid": (y != PAD).numpy()}
    import rax

    if name == "list_mle":
        ref = lambda s, y, w: rax.listmle_loss(s, y, where=w, reduce_fn=_REDUCE[reduction])  # noqa: E731
    else:  # the labels' softmax over the valid items too (label_fn gets rax's `where`)
        ref = lambda s, y, w: rax.softmax_loss(  # noqa: E731
            s, y, where=w, reduce_fn=_REDUCE[reduction],
            label_fn=lambda t, where=None: jax.nn.softmax(t, axis=-1, where=where),
        )  # fmt: skip
    xs = {k: jnp.asarray(v) for k, v in data.items()}
    want = np.asarray(ref(xs["scores"], xs["labels"], xs["valid"]))
    gref = jax.grad(lambda s: jnp.sum(ref(s, xs["labels"], xs["valid"])))(xs["scores"])
    _agree_on_every_backend(name, data, reduction, want, gref)


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
def test_fully_padded_list_is_zero(name):
    """A list with no valid item is 0 with a zero gradient w.r.t. scores and labels, on every
    backend (allRank's listMLE gives 0 there; its listNet NaN; rax leaves it out of its mean),
    and it counts in the mean over B, as allRank's torch.mean over the lists."""
    s, y = _padded((3, 7), 5)
    data = {"scores": s.numpy(), "labels": y.numpy(), "valid": (y != PAD).numpy()}
    spec = lossdsl.load(name)
    for b in ("torch", "jax", "numpy"):
        per = call(b, spec.compile(b), data, "float64", reduction="none")
        assert per[-1] == 0.0 and np.all(np.isfinite(per)), b
        mean = call(b, spec.compile(b), data, "float64", reduction="mean")
        np.testing.assert_allclose(mean, per.sum() / 3, rtol=1e-12, err_msg=b)
        if b != "numpy":
            g = grads(b, spec.compile(b), data, ["scores", "labels"], "float64", reduction="sum")
            for k, v in g.items():
                assert np.all(np.isfinite(v)) and np.all(v[-1] == 0), (b, k)


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
def test_padding_is_dropping_the_items(name):
    """Metamorphic: a padded list's loss is the loss of its valid items alone, whatever the
    padded items' scores and labels (here inf and NaN), and the padded scores get a zero
    gradient."""
    g = gen(3)
    s = torch.randn(1, 9, generator=g)
    y = torch.rand(1, 9, generator=g) * 4
    keep = torch.tensor([[True, False, True, True, False, True, True, True, False]])
    fn = lossdsl.load(name).compile("torch")
    alone = fn(s[keep][None], y[keep][None])
    s2 = s.clone().masked_fill(~keep, float("inf")).requires_grad_(True)
    y2 = y.masked_fill(~keep, float("nan"))
    got = fn(s2, y2, keep)
    torch.testing.assert_close(got, alone, rtol=1e-12, atol=0)
    got.backward()
    assert torch.all(s2.grad[~keep] == 0) and torch.all(torch.isfinite(s2.grad))


@pytest.mark.parametrize("name", ["list_mle", "list_net"])
def test_absent_mask_compiles_to_the_unpadded_loss(name):
    """Left out, `valid` costs nothing: no where, no count, no sort of the mask."""
    prog = lossdsl.load(name).program(absent=frozenset({"valid"}))
    assert not {"where", "count", "fill"} & {e.op for e in prog.eqns}
    assert sum(e.op == "take_along" for e in prog.eqns) <= 1


# ---- NeuralNDCG (allRank) -----------------------------------------------------------------
# allRank's neuralNDCG runs NeuralSort's row-stochastic P_hat through sinkhorn_scaling (up to
# max_iter=50 alternating row and column normalizations, leaving early at tol=1e-6): the spec's
# `repeat` loop. The transcription is checked against allRank's own tests, the relaxation alone
# (no scaling) and the shipped spec against the transcription.


def _ndcg_allrank(y_pred, y_true, ats=None):
    """allRank's metrics.ndcg (dcg(pred) / dcg(true)), without its filler for idcg == 0."""
    from reference.allrank_official import dcg

    return (dcg(y_pred, y_true, ats) / dcg(y_true, y_true, ats)).mean().item()


@pytest.mark.parametrize(
    "y_pred,y_true,kw",
    [
        ([0.5, 0.2], [1.0, 0.0], {}),
        ([0.5, 0.2, 0.1, 0.4, 1.0, -1.0, 0.63], [1.0, 2.0, 2.0, 4.0, 1.0, 4.0, 3.0], {}),
        ([0.5, -1e30], [1.0, 0.0], {}),
        (
            [0.5, 0.2, 0.1, 0.4, 1.0, -1.0, 0.63, 1.0, 0.5, 0.3],
            [1.0, 2.0, 2.0, 4.0, 1.0, 4.0, 3.0, PAD, PAD, PAD],
            {"temperature": 0.001},
        ),
        ([0.5, 0.2, 0.1, 0.4, 1.0, -1.0, 0.63], [1.0, 2.0, 2.0, 4.0, 1.0, 4.0, 3.0], {"k": 3}),
    ],
    ids=["simple", "longer", "very_small_prediction", "ignores_padded_value", "at_3"],
)
def test_allrank_neural_ndcg_transcription_passes_allranks_tests(y_pred, y_true, kw):
    """The cases of allRank's tests/losses/test_neuralndcg.py (deterministic, not transposed;
    commit c884756), through its tests/losses/utils.py wrapper (temperature 1e-4 unless the case
    sets it): at a low temperature -neuralNDCG is allRank's NDCG of the scores' ranking."""
    from reference.allrank_official import neuralNDCG

    kw = {"temperature": 1e-4, **kw}
    got = neuralNDCG(torch.tensor([y_pred]), torch.tensor([y_true]), **kw).item()
    ats = [kw["k"]] if "k" in kw else None
    want = _ndcg_allrank(torch.tensor([y_pred]), torch.tensor([y_true]), ats)
    assert np.isfinite(got) and -got == pytest.approx(want)


NEURAL_SORT_DCG = """
loss neural_sort_dcg(scores: float[B, N], labels: float[B, N], valid: bool[B, N]) {
    param tau: float = 1.0   where tau > 0
    let n = count(valid, over=N)
    let pos = float(expand(arange(N'), B))
    let a = sum(where(prime(valid, N), abs(scores - prime(scores, N)), 0), over=N')
    let p = softmax(where(valid, ((n + 1 - 2 * (pos + 1)) * scores - a) / tau, -inf), over=N)
    let gain = where(valid, 2 ^ labels - 1, 0)
    sum(where(pos < n, sum(p * gain, over=N) / log2(pos + 2), 0), over=N')
}
"""


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_neural_sort_relaxation_is_expressible(tau):
    """NeuralNDCG's DCG with NeuralSort's P_hat = softmax(((n + 1 - 2i) s - A_s 1) / tau) and no
    Sinkhorn scaling, written in the language as a pairwise [B, N', N] softmax, against allRank's
    deterministic_neural_sort (masked rows and columns zeroed, as neuralNDCG does after
    sinkhorn_scaling), gains 2^y - 1 and discounts 1 / log2(i + 2): values and gradients w.r.t. the
    scores, lists padded at the tail (where allRank's loader pads, and where its masking of the
    positions by the items' mask is right). Issue 14 adds the Sinkhorn loop between the two."""
    from reference.allrank_official import deterministic_neural_sort
    from torch_helpers import assert_same

    g = gen(11)
    s = torch.randn(5, 9, generator=g)
    y = torch.randint(0, 5, (5, 9), generator=g).double()
    y[1, 6:], y[2, 2:] = PAD, PAD
    mask = y == PAD
    discounts = 1 / torch.log2(torch.arange(9.0) + 2)

    def ref(s, y):
        p = deterministic_neural_sort(s.unsqueeze(-1), tau, mask)
        p = p.masked_fill(mask[:, :, None] | mask[:, None, :], 0.0)
        gains = torch.pow(2.0, y.masked_fill(mask, 0.0)) - 1
        return ((p @ gains.unsqueeze(-1)).squeeze(-1) * discounts).sum(-1)

    fn = lossdsl.parse(NEURAL_SORT_DCG).compile("torch", tau=tau)
    assert_same(lambda s, y: fn(s, y, ~mask, reduction="none"), ref, {"s": s, "y": y}, ["s"])


def _agree_on_every_backend(name, data, reduction, want, gref):
    """The spec's values on torch, jax and numpy, and its score gradients (of the summed output
    for "none") on torch and jax, against a reference's, to 1e-10."""
    spec = lossdsl.load(name)
    r = "sum" if reduction == "none" else reduction
    for b in ("torch", "jax", "numpy"):
        got = call(b, spec.compile(b), data, "float64", reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=b)
        if b != "numpy":
            g = grads(b, spec.compile(b), data, ["scores"], "float64", reduction=r)["scores"]
            np.testing.assert_allclose(g, np.asarray(gref), rtol=1e-10, atol=1e-12, err_msg=b)


def _neural_ndcg_ref(scores, labels, tau, k, passes=None):
    """allRank's neuralNDCG (transcription); passes: run exactly that many scaling passes (its
    tol=1e-6 early exit disabled), to tell whether the early exit changed anything."""
    import reference.allrank_official as ar

    orig = ar.sinkhorn_scaling
    if passes is not None:
        ar.sinkhorn_scaling = lambda mat, mask, tol, max_iter: orig(mat, mask, -1.0, passes)
    try:
        return ar.neuralNDCG(scores, labels, temperature=tau, k=k)
    finally:
        ar.sinkhorn_scaling = orig


@pytest.mark.parametrize("tau,k", [(1.0, None), (0.3, None), (1.0, 3), (0.5, 2)])
def test_neural_ndcg_equals_allrank(tau, k):
    """-NDCG with NeuralSort + 50 Sinkhorn passes: values (the mean over lists with relevant
    items) and gradients w.r.t. the scores on every backend, lists padded at the tail (one
    fully, one to 2 items), one list without a relevant item (left out of the mean), against
    allRank's neuralNDCG; these inputs never meet allRank's tol=1e-6 early exit (checked: its
    value equals the one with exactly 50 passes)."""
    g = gen(int(tau * 10) + (k or 0))
    s = torch.randn(6, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (6, 8), generator=g).double()
    y[1, 5:], y[2, 2:], y[3, :] = PAD, PAD, 0.0
    y[4, :] = PAD
    s_ = s.clone().requires_grad_(True)
    want = _neural_ndcg_ref(s_, y, tau, k)
    (gref,) = torch.autograd.grad(want, [s_])
    assert abs(want.item() - _neural_ndcg_ref(s, y, tau, k, passes=50).item()) < 1e-12
    data = {"scores": s.numpy(), "labels": y.numpy(), "valid": (y != PAD).numpy()}
    spec = lossdsl.load("neural_ndcg")
    params = {"tau": tau, "k": k or 0}
    for b in ("torch", "jax", "numpy"):
        fn = spec.compile(b)
        got = call(b, fn, data, "float64", **params)
        np.testing.assert_allclose(got, want.item(), rtol=1e-10, err_msg=b)
        if b != "numpy":
            gs = grads(b, fn, data, ["scores"], "float64", **params)["scores"]
            np.testing.assert_allclose(gs, gref.numpy(), rtol=1e-8, atol=1e-12, err_msg=b)


def test_neural_ndcg_at_a_low_temperature_is_ndcg():
    """allRank's own test cases (tests/losses/test_neuralndcg.py, temperature 1e-4): P is a
    permutation matrix, so -neuralNDCG is the NDCG of the scores' ranking (allRank's metric)."""
    y_pred = [0.5, 0.2, 0.1, 0.4, 1.0, -1.0, 0.63, 1.0, 0.5, 0.3]
    y_true = [1.0, 2.0, 2.0, 4.0, 1.0, 4.0, 3.0, PAD, PAD, PAD]
    want = _ndcg_allrank(torch.tensor([y_pred]), torch.tensor([y_true]))
    fn = lossdsl.load("neural_ndcg").compile("torch")
    yt = torch.tensor([y_true])
    got = fn(torch.tensor([y_pred]), yt, yt != PAD, tau=1e-4).item()
    assert -got == pytest.approx(want, rel=1e-6)


def test_neural_ndcg_at_extreme_scores_is_finite():
    """Scores at +-1e4 (test_numerics' extremes keep labels of 1e4 too, whose gain overflows):
    with grades 0..4 the value and the score gradient stay finite on torch and jax."""
    g = gen(21)
    s = torch.randn(3, 6, generator=g, dtype=torch.float64)
    data = {
        "scores": (
            s.sign() * 1e4 * (1 + torch.rand(3, 6, generator=g, dtype=torch.float64))
        ).numpy(),
        "labels": torch.randint(0, 5, (3, 6), generator=g).double().numpy(),
        "valid": np.ones((3, 6), bool),
    }
    spec = lossdsl.load("neural_ndcg")
    for b in ("torch", "jax"):
        fn = spec.compile(b)
        assert np.isfinite(call(b, fn, data, "float64")), b
        assert np.isfinite(grads(b, fn, data, ["scores"], "float64")["scores"]).all(), b
