"""Learning to rank: ListMLE and ListNet against rax (rax.listmle_loss, rax.softmax_loss).

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
    spec = lossdsl.load(name)
    r = "sum" if reduction == "none" else reduction  # the gradient of the summed output
    for b in ("torch", "jax", "numpy"):
        got = call(b, spec.compile(b), data, "float64", reduction=reduction)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=b)
        if b != "numpy":
            g = grads(b, spec.compile(b), data, ["scores"], "float64", reduction=r)["scores"]
            np.testing.assert_allclose(g, np.asarray(gref), rtol=1e-10, atol=1e-12, err_msg=b)


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
    """One sort and one reverse scan over N: no [N, N'] value in the program."""
    prog = lossdsl.load("list_mle").program()
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
