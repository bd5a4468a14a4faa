"""Issue 5, distributed: the shard transform (lossdsl/shard.py) on the float64 interpreter.

Every shipped spec, split over its batch dim across simulated ranks (threads that meet at each
collective: backends/numpy_ref.Ranks), must compute what the unsharded spec computes on the
whole batch: the same mean and sum on every rank, and this rank's rows of the per-element loss.
The expected values are the single-device interpreter's on the concatenated batch. Gradients
run through the real collectives in tests/test_distributed.py (torch gloo, jax host devices).
What cannot be split is a ShardError at the spec's text."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_inputs, sizes_for

import lossdsl
from lossdsl.codegen import load_backend
from lossdsl.errors import LossError, ParamError, ShardError
from lossdsl.shard import batch_dim as shard_batch_dim
from lossdsl.shard import regrouping

# B (and N for the specs over N samples) divides into 2 and 3 ranks
SIZES = {"B": 6, "N": 6, "C": 5, "D": 3, "S": (3, 2), "K": 7, "V": 2, "M": 3, "T": 4, "L": 3}
ref = load_backend("numpy")


def batch_dim(spec) -> str:
    return shard_batch_dim(spec.program())


@pytest.mark.parametrize("name", lossdsl.list_specs())
def test_every_spec_sharded_over_its_batch_equals_the_whole_batch(name):
    spec = lossdsl.load(name)
    prog = spec.program()
    dim = batch_dim(spec)
    if spec.fns:  # a function input sees whole tensors: refused, at the call (lossdsl/shard.py)
        with pytest.raises(LossError, match="function input|grad"):
            spec.sharded_program(dim)
        return
    if regrouping(prog, dim) is not None:
        with pytest.raises(LossError, match="split"):  # groups would straddle the ranks
            spec.sharded_program(dim)
        return
    sharded = spec.sharded_program(dim)
    data = random_inputs(spec, sizes_for(spec, SIZES), np.random.default_rng(1))
    rows = [d.name for d in prog.output("none").type.dims]
    for world in (2, 3):
        for reduction in ("mean", "sum", "none"):
            want = ref.evaluate(prog, data, {}, reduction)
            got = ref.evaluate_sharded(sharded, data, {}, reduction, world)
            if reduction == "none" and dim in rows:  # each rank: its rows
                got = [np.concatenate(got, axis=rows.index(dim))]
            for g in got:
                np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12, err_msg=reduction)


def test_a_rank_whose_targets_are_all_ignored_still_gets_the_global_mean():
    """cross_entropy's mean divides by the number of non-ignored targets of the whole batch:
    rank 0 holds only ignore_index rows, so a per-rank mean averaged over ranks (the usual
    DDP mistake) would give half the loss."""
    spec = lossdsl.load("cross_entropy")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    y[:4] = -100
    data = {"logits": x, "target": y}
    absent = frozenset({"weight", "keep"})
    want = ref.evaluate(spec.program(absent), data, {}, "mean")
    shard = spec.sharded_program("B", absent)
    got = ref.evaluate_sharded(shard, data, {}, "mean", world=2)
    assert got[0] == pytest.approx(want, rel=1e-12) and got[1] == pytest.approx(want, rel=1e-12)
    # the per-rank means: rank 0 has none (0 by the spec's empty policy), rank 1 the true one
    per_rank = [
        ref.evaluate(spec.program(absent), {"logits": x[s], "target": y[s]}, {})
        for s in (slice(0, 4), slice(4, 8))
    ]
    assert np.mean(per_rank) == pytest.approx(want / 2, rel=1e-12)


def test_batch_dice_sums_over_the_global_batch():
    """Per-rank batch Dice averaged over ranks is a different number from the global one."""
    spec = lossdsl.load("batch_dice")
    data = random_inputs(spec, {"B": 4, "C": 3, "S": (5,)}, np.random.default_rng(3))
    want = ref.evaluate(spec.program(), data, {}, "mean")
    got = ref.evaluate_sharded(spec.sharded_program("B"), data, {}, "mean", world=2)
    assert got == [pytest.approx(want, rel=1e-12)] * 2
    halves = [{k: v[s] for k, v in data.items()} for s in (slice(0, 2), slice(2, 4))]
    naive = np.mean([ref.evaluate(spec.program(), h, {}, "mean") for h in halves])
    assert abs(naive - want) > 1e-3


def test_the_collectives_a_contrastive_loss_needs():
    """info_nce: the primed side is gathered, eye(B, B') offset by the rank, the mean global.
    Without labels its mean's weights are the absent labels' constant 1, whose sum is B (known
    on every rank, no collective); with labels the labels are gathered too and the weights
    (each anchor's positive count) are summed across ranks."""
    spec = lossdsl.load("info_nce")
    ops = [e.op for e in spec.sharded_program("B", frozenset({"labels"})).eqns]
    assert ops.count("all_gather") == 1 and "shard_eye" in ops and "eye" in ops
    assert ops.count("all_reduce") == 1 and ops.count("shard_result") == 2
    ops = [e.op for e in spec.sharded_program("B").eqns]
    assert ops.count("all_gather") == 2 and ops.count("all_reduce") == 2


def test_a_per_sample_loss_needs_one_all_reduce_per_reduction():
    for name in ("poly1", "sigmoid_focal", "huber"):
        prog = lossdsl.load(name).sharded_program("B")
        # the sum; the mean divides it by the global size of B
        assert [e.op for e in prog.eqns].count("all_reduce") == 1, name
        assert not any(e.op == "all_gather" for e in prog.eqns)
    # focal's mean is over the targets that are not ignore_index: their count is summed too
    prog = lossdsl.load("focal").sharded_program("B", frozenset({"weight"}))
    assert [e.op for e in prog.eqns].count("all_reduce") == 2


ERRORS = {
    # (program, the text the caret must point at, a phrase of the message)
    "diff": (
        "loss t(x: float[B, D]) {\n    mean(diff(x, over=B), over=B)\n}\n",
        "diff(x, over=B)",
        "neighbouring row",
    ),
    "argmax": (
        "loss t(x: float[B, C]) {\n    mean(x) + mean(float(argmax(x, over=B)))\n}\n",
        "argmax(x, over=B)",
        "argmax over B",
    ),
    "arange": (
        "loss t(x: float[B]) {\n    mean(x * float(arange(B)))\n}\n",
        "arange(B)",
        "arange(B)",
    ),
    # before: AssertionError "rule changed the type of t4" (the gather of an index of B)
    "gathered positions": (
        "loss t(x: float[B, D]) {\n    let s = sum(x * x', over=D)\n"
        "    sum(where(arange(B)' < arange(B), s, 0), over=B')\n}\n",
        "arange(B)",
        "arange(B)",
    ),
    "index into the batch": (
        "loss t(x: float[B], j: index[N] of B) {\n    mean(x[j])\n}\n",
        "j: index[N] of B",
        "indexes into B",
    ),
    "global input first": (
        "loss t(s: float[B', D], x: float[B, D]) {\n    mean(x) + mean(s)\n}\n",
        "s: float[B', D]",
        "comes before",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_what_cannot_be_split_is_an_error_at_the_spec_text(case, backend):
    text, at, phrase = ERRORS[case]
    spec = lossdsl.parse(text, "t.loss")
    with pytest.raises(LossError) as err:  # a ShardError, or several (MultipleErrors)
        spec.compile(backend, shard="B")
    assert all(isinstance(x, ShardError) for x in err.value.errors)
    e = err.value.errors[0]
    assert phrase in e.message and e.hint
    if case == "gathered positions":  # and the gather itself, at the prime
        assert "gathers positions along B" in err.value.errors[1].message
    line = text.splitlines()[e.span.line - 1]
    assert line[e.span.col - 1 :].startswith(at), (line, e.span.col)
    shown = e.render()
    assert shown.startswith(
        f"t.loss:{e.span.line}:{e.span.col}: error: cannot"
    ) or shown.startswith(f"t.loss:{e.span.line}:{e.span.col}: error: input")
    assert "^" in shown


def test_shard_argument_errors():
    spec = lossdsl.load("info_nce")
    with pytest.raises(ShardError, match="no input with a dim named Q") as err:
        spec.compile("torch", shard="Q")
    assert "B, V, D" in err.value.hint
    with pytest.raises(ParamError, match="numpy backend has no distributed mode"):
        spec.compile("numpy", shard="B")
    with pytest.raises(ParamError, match="not sharded"):
        lossdsl.load("cross_entropy").compile("torch", schedule="chunked", shard="B")
    with pytest.raises(ParamError, match="dim name"):
        spec.compile("jax", shard=0)
    assert isinstance(ShardError("x"), LossError)


def test_a_sharded_module_takes_the_distributed_keywords_and_nothing_else_changes():
    spec = lossdsl.load("supcon")
    torch_src = spec.source("torch", shard="B")
    assert 'group=None, grads="mean", check_sizes=True)' in torch_src
    assert "class _AllGather" in torch_src and "def _sizes_differ" in torch_src
    jax_src = spec.source("jax", shard="B")
    assert 'axis_name="batch")' in jax_src and "check_sizes" not in jax_src  # shard_map splits
    assert "world" not in spec.source("torch")  # the plain module is untouched
    sig = spec.compile("torch", shard="B").signature
    assert list(sig.parameters)[-3:] == ["group", "grads", "check_sizes"]


def test_the_interpreter_checks_a_global_input_against_the_world():
    spec = lossdsl.load("mi_infonce")
    prog = spec.sharded_program("B")
    bad = {"scores": np.zeros((4, 5))}  # 2 ranks of 2 rows need 4 columns, not 5
    with pytest.raises(LossError, match="2 ranks of 2 rows make 4"):
        ref.evaluate_sharded(prog, bad, {}, "mean", world=2)
