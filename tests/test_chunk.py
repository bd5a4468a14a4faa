"""Issue 5, step one: the row-statistics plan of a loss over a large class dim
(lossdsl/schedules/plan.py). For every shipped spec whose first input is float: either the plan
exists and running it V-chunk by V-chunk on the float64 reference gives the unchunked value
(chunk sizes that divide V, that do not, of 1 and larger than V), or ChunkError says why not."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import call, random_inputs

import lossdsl
from lossdsl.codegen import load_backend
from lossdsl.schedules.plan import ChunkError, evaluate_chunked, plan

SIZES = {"B": 4, "C": 23, "D": 3, "S": (3, 2), "K": 7, "V": 2, "N": 4, "M": 3, "L": 3, "T": 4}
MUST_CHUNK = [  # the LLM-vocabulary losses of the issue, and their relatives
    "cross_entropy", "focal", "poly1", "label_smoothing_ce", "z_loss", "gce", "encouraging",
    "comp_sum", "stablemax_ce", "squentropy", "ldam", "balanced_softmax_ce",
]  # fmt: skip


# every spec whose first input is a float tensor (the chunked dim is its last)
FLOAT_FIRST = [
    n for n in lossdsl.list_specs() if lossdsl.load(n).inputs[0].type.startswith("float[")
]


@pytest.mark.parametrize("name", FLOAT_FIRST)
def test_plan_runs_chunked_or_says_why_not(name):
    spec = lossdsl.load(name)
    logits = spec.inputs[0].name
    prog = spec.program(frozenset())
    ref = load_backend("numpy")
    data = random_inputs(spec, SIZES, np.random.default_rng(0))
    for reduction in ("mean", "sum"):
        try:
            p = plan(prog, logits, reduction)
        except ChunkError as e:
            assert name not in MUST_CHUNK, f"{name}: {e}"
            assert str(e)
            continue
        want = ref.evaluate(prog, data, {}, reduction)
        n = prog.inputs[0].var.type.dims[-1].name
        for chunk in (1, 5, SIZES.get(n, 3) if not isinstance(SIZES.get(n), tuple) else 2, 100):
            got = evaluate_chunked(p, data, {}, reduction, chunk)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{chunk=}")


def test_the_ce_family_needs_only_a_few_statistics():
    """cross_entropy (weight and label smoothing included) is logsumexp, the target logit and
    three weighted sums (the smoothing sum, its denominator, and the weight of the classes not at
    -inf: a masked class takes no smoothing mass); focal and poly1 are logsumexp and the target
    logit (poly1 at label_smoothing = 0, the variant a call with the default runs; with label
    smoothing, cross_entropy's)."""
    kinds = {}
    for name in ("cross_entropy", "focal", "poly1", "z_loss"):
        spec = lossdsl.load(name)
        p = plan(spec.program(frozenset()), spec.inputs[0].name, "mean")
        kinds[name] = sorted(s.kind for s in p.stats)
    spec = lossdsl.load("poly1")
    p = plan(spec.program(frozenset(), label_smoothing=0.0), "logits", "mean")
    assert kinds["focal"] == sorted(s.kind for s in p.stats) == ["logsumexp", "sum"]
    assert kinds["z_loss"] == ["logsumexp"]
    assert kinds["cross_entropy"] == kinds["poly1"] == ["logsumexp", "sum", "sum", "sum"]


def test_losses_that_need_two_passes_are_refused_with_the_reason():
    # KD weighs the student's log-probabilities by the teacher's softmax: a term over V that
    # needs the teacher's logsumexp first
    with pytest.raises(ChunkError, match="known only after the last chunk"):
        plan(lossdsl.load("kd").program(frozenset()), "student", "mean")
    with pytest.raises(ChunkError, match="keeps C in its reduction=.none. result"):
        plan(lossdsl.load("bce_with_logits").program(frozenset()), "logits", "none")


@pytest.mark.parametrize(
    "body",
    [
        # (a * b)[t] with a constant along C: a * b[t], whose broadcast order ([D, B]) is not
        # the pick's ([B, D]); found by tests/difffuzz.py as an AssertionError in the planner
        "sum((z * expand(x, D))[t], over=D) + logsumexp(x, over=C)",
        "sum((expand(sum(z, over=B), B) * expand(x, D))[t], over=D) + logsumexp(x, over=C)",
        # a pick with more dims than its ids ([B, C, D][t] is [B, D]): each chunk's "id not
        # here" mask over [B] must broadcast along D (torch/jax raised a shape error)
        "sum(expand(x, D)[t] * z, over=D) + logsumexp(x, over=C)",
    ],
)
def test_a_pick_with_extra_dims_chunks_like_the_plain_schedule(body):
    """The planner's rules build values in their own dim order (the rewrite engine transposes
    them back), and a pick's result may carry dims its ids lack: the plan exists, and chunk by
    chunk equals the plain schedule on the float64 reference, torch and jax (values and
    torch's gradient)."""
    import torch

    spec = lossdsl.parse(
        f"loss f(x: float[B, C], z: float[D, B], t: index[B] of C) {{\n    {body}\n}}\n"
    )
    prog = spec.program(frozenset())
    rng = np.random.default_rng(4)
    data = {"x": rng.standard_normal((4, 7)), "z": rng.standard_normal((3, 4))}
    data["t"] = rng.integers(0, 7, 4)
    want = load_backend("numpy").evaluate(prog, data, {}, "sum")
    xt = torch.tensor(data["x"], requires_grad=True)
    spec.compile("torch")(
        xt, torch.tensor(data["z"]), torch.tensor(data["t"]), reduction="sum"
    ).backward()
    for chunk in (1, 3, 7, 100):
        got = evaluate_chunked(plan(prog, "x", "sum"), data, {}, "sum", chunk)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{chunk=}")
        got = call("jax", spec.compile("jax", schedule="chunked", chunk=chunk), data, "float64",
                   reduction="sum")  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"jax {chunk=}")
        fn = spec.compile("torch", schedule="chunked", chunk=chunk)
        xc = torch.tensor(data["x"], requires_grad=True)
        got = fn(xc, torch.tensor(data["z"]), torch.tensor(data["t"]), reduction="sum")
        got.backward()
        np.testing.assert_allclose(got.item(), want, rtol=1e-12, err_msg=f"torch {chunk=}")
        np.testing.assert_allclose(xc.grad, xt.grad, rtol=1e-12, atol=1e-15)
