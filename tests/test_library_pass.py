"""The `library` pass (lossdsl/passes/library.py): torch gets F.cross_entropy(ignore_index=...)
and its reductions as single calls.

Each op is checked in float64 against what lossdsl did not compute through it: the numpy
reference of the unrewritten program (values), jax's gradient of the unrewritten program (the
pass is torch-only), and torch.nn.functional (torch 2.13) itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SHAPES, call, code_only, grads, random_inputs, rel_err

import lossdsl
from lossdsl.compiler import variant_programs
from lossdsl.errors import InputError
from lossdsl.ir import verify
from lossdsl.ops import OPS
from lossdsl.passes.library import library

CE_IGNORE = """loss ce(x: float[B, C], y: index[B] of C) {
    param ignore_index: int = -100
    let valid = y != ignore_index
    reduce mean by float(valid) empty 0
    where(valid, -log_softmax(x, over=C)[where(valid, y, 0)], 0)
}
"""
REDUCTIONS = ("none", "sum", "mean")


def ops_in(spec, absent=frozenset()):
    return {(e.op, dict(e.attrs).get("reduce")) for e in library(spec.program(absent)).eqns}


def ce_data(seed, b=6, c=4, ignored=2, ignore_index=-100):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, b)
    y[rng.choice(b, ignored, replace=False)] = ignore_index
    return {"x": rng.standard_normal((b, c)) * 3, "y": y}


def test_every_library_op_is_made_by_a_spec_here():
    made = ops_in(lossdsl.parse(CE_IGNORE))
    assert {op for op, _ in made if OPS[op].kind == "library"} == {
        op for op, d in OPS.items() if d.kind == "library"
    }
    assert ("cross_entropy_ignore", "mean") in made


@pytest.mark.parametrize("text,data", [(CE_IGNORE, ce_data(0))], ids=["ce"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_library_ops_match_numpy_values_and_jax_gradients(text, data, reduction):
    spec = lossdsl.parse(text)
    if data is None:
        data = random_inputs(spec, SHAPES[0], np.random.default_rng(1))
    want = call("numpy", spec.compile("numpy"), data, "float64", reduction=reduction)
    got = call("torch", spec.compile("torch"), data, "float64", reduction=reduction)
    assert rel_err(got, want) <= 1e-12
    if reduction != "none":
        wrt = ["x"]
        gt = grads("torch", spec.compile("torch"), data, wrt, "float64", reduction=reduction)
        gj = grads("jax", spec.compile("jax"), data, wrt, "float64", reduction=reduction)
        assert rel_err(gt["x"], gj["x"]) <= 1e-12


def test_the_pass_preserves_every_spec_on_the_numpy_reference():
    """Every variant of every shipped spec, all reductions: the rewritten program evaluates
    like the optimized one (float64 reference)."""
    ref = lossdsl.codegen.load_backend("numpy")
    fired = set()
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        for prog in variant_programs(spec, ()):  # (label_smoothing=0 is its own variant)
            absent = prog.absent
            after = verify(library(prog))
            fired |= {e.op for e in after.eqns if OPS[e.op].kind == "library"}
            d = random_inputs(spec, SHAPES[1], np.random.default_rng(5))
            d = {k: v for k, v in d.items() if k not in absent}
            for mode in REDUCTIONS:
                a = ref.evaluate(prog, d, {}, mode)
                b = ref.evaluate(after, d, {}, mode)
                np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=f"{name} {mode}")
    assert fired == {op for op, d in OPS.items() if d.kind == "library"}


@pytest.mark.parametrize("ignore_index", [-100, 0, 7])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spec_equals_F_cross_entropy(ignore_index, reduction):
    """cross_entropy.loss (no weight, no smoothing) against F.cross_entropy itself, value and
    gradient, with ignore_index out of range, a class id, and beyond the classes."""
    fn = lossdsl.load("cross_entropy").compile("torch")
    d = ce_data(3, b=9, c=5, ignored=3, ignore_index=ignore_index)
    x = torch.tensor(d["x"], requires_grad=True)
    y = torch.tensor(d["y"])
    ours = fn(x, y, ignore_index=ignore_index, reduction=reduction)
    ref = F.cross_entropy(x, y, ignore_index=ignore_index, reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    (g1,) = torch.autograd.grad(ours.sum(), x)
    (g2,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)
    src = lossdsl.load("cross_entropy").source("torch")
    assert f'ignore_index=int(ignore_index), reduction="{reduction}")' in src


def test_all_ignored_batch_is_zero_with_zero_gradient():
    """F.cross_entropy's mean is NaN here (0/0); the spec says 0, and the gradient is 0."""
    fn = lossdsl.load("cross_entropy").compile("torch")
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.full((4,), -100)
    assert torch.isnan(F.cross_entropy(x, y))
    for reduction in ("mean", "sum"):
        loss = fn(x, y, reduction=reduction)
        (g,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_out_of_range_class_ids_raise_in_every_reduction(reduction):
    fn = lossdsl.load("cross_entropy").compile("torch")
    x = torch.randn(4, 3)
    with pytest.raises(InputError, match=r"outside \[0, 3\).*from 0 to 3"):
        fn(x, torch.tensor([0, 3, -100, 1]), reduction=reduction)
    with pytest.raises(InputError, match=r"from -5 to 1"):
        fn(x, torch.tensor([0, -5, -100, 1]), reduction=reduction)
    fn(x, torch.tensor([0, 2, -100, 1]), reduction=reduction)  # -100 is no class: accepted


def test_class_weights_and_smoothing_keep_the_primitives():
    """F.cross_entropy gives no gradient for `weight` (the spec's weight is an input that may
    want one), and label smoothing uses log_softmax twice: neither becomes the library call."""
    spec = lossdsl.load("cross_entropy")
    assert ("cross_entropy_ignore", "none") not in ops_in(spec)  # weight given
    smoothing = {e.op for e in library(spec.program(frozenset({"weight"}))).eqns}
    assert "cross_entropy_ignore" not in smoothing
    w = torch.rand(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 3, dtype=torch.float64)
    loss = spec.compile("torch")(x, torch.tensor([0, 1, 2, -100, 1]), w)
    (g,) = torch.autograd.grad(loss, w)
    assert torch.all(torch.isfinite(g)) and g.abs().sum() > 0


def test_bce_with_logits_keeps_its_meaning_where_torchs_fused_call_does_not():
    """F.binary_cross_entropy_with_logits(x, t) computes (1 - t) x - logsigmoid(x): NaN at
    x = -inf where softplus(x) - t x is +inf; on (-x, 1 - t) it reads a t below eps/4 as 0
    (1 - t rounds to 1): at x = -inf NaN again, at x = -1e20, t = 1e-20 0 where the value is 1.
    So torch runs the spec's primitives (as fast: benchmarks/README.md). Found by
    scripts/difffuzz.py (seed 22926). Expected values: softplus(x) - t x by hand in float64."""
    fn = lossdsl.load("bce_with_logits").compile("torch")
    x = torch.tensor([-np.inf, -np.inf, -1e20, 3.0], dtype=torch.float64)
    t = torch.tensor([1e-300, 0.5, 1e-20, 0.25], dtype=torch.float64)
    want = torch.tensor([np.inf, np.inf, 1.0, np.log1p(np.exp(3.0)) - 0.75], dtype=torch.float64)
    torch.testing.assert_close(fn(x[:, None], t[:, None], reduction="none")[:, 0], want)
    assert torch.isnan(F.binary_cross_entropy_with_logits(x[:1], t[:1]))
    assert F.binary_cross_entropy_with_logits(-x[2:3], 1 - t[2:3]) == 0.0
    # the code, not the docstring (whose `verified:` field names the torch call it is tested on)
    src = code_only(lossdsl.load("bce_with_logits").source("torch"))
    assert "binary_cross_entropy_with_logits(" not in src


def test_torch_sources_get_library_calls_jax_keeps_the_primitives():
    """XLA fuses the primitives itself. A sharded torch program gets the calls after the shard
    transform split its sums: this rank's rows go through F.cross_entropy(reduction="sum")
    before the all_reduce (tests/test_distributed.py checks its value and gradients)."""
    assert lossdsl.codegen.load_backend("torch").TARGET.library_calls
    assert not lossdsl.codegen.load_backend("jax").TARGET.library_calls
    src = lossdsl.load("cross_entropy").source("torch", shard="B")
    assert 'ignore_index=int(ignore_index), reduction="sum")' in src
    assert 'reduction="mean")' not in src  # the mean divides by the global count


def test_ir_after_library_shows_the_calls():
    text = lossdsl.parse(CE_IGNORE).ir(after="library")
    assert (
        "cross_entropy_ignore[reduce=mean]" in text and "cross_entropy_ignore[reduce=sum]" in text
    )
    with pytest.raises(lossdsl.LossError, match="unknown pass 'libary'"):
        lossdsl.load("bce_with_logits").ir(after="libary")
