"""Under jax.jit the gradient of every spec that takes a max or a min over a dim is the eager
one: finite where eager jax's is, and equal to it within fusion rounding.

jax's derivative of a max (or min) reduction divides by the number of entries equal to the
result. Under jax.jit, XLA may recompute the operand in another fusion with other rounding bits,
find no entry equal to the max, divide by 0 and make the gradient NaN where eager jax is finite.
That happened to the p-norm's scale (norm(x, p=...): pml_margin and lifted_structure at p = 2,
eager finite, jit NaN), which now carries no gradient (lossdsl/lower/functions.py, _lp_norm).
The specs are picked by their program (a `max[`/`min[` reduction in the IR), so a new spec
with one is checked without being listed. Two shapes of helpers.SHAPES, float64, mean."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import SHAPES, float_inputs, random_inputs

import lossdsl


def _takes_a_max(name: str) -> bool:
    return re.search(r"= (max|min)\[", lossdsl.load(name).ir()) is not None


SPECS = [n for n in lossdsl.list_specs() if _takes_a_max(n)]


def test_the_generator_finds_the_max_specs():
    """The selection is not empty and holds the specs where the class was found."""
    assert {"pml_margin", "lifted_structure", "triplet_batch_hard"} <= set(SPECS)


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("shape", [0, 1])
def test_jit_gradient_is_the_eager_gradient(name, shape):
    """w.r.t. each float input alone (what XLA fuses depends on what is differentiated: the
    NaN above showed w.r.t. the embeddings alone, not beside pml_margin's anchor_beta)."""
    import jax

    spec = lossdsl.load(name)
    inputs = random_inputs(spec, SHAPES[shape], np.random.default_rng(100 + shape))
    fn = spec.compile("jax")
    for k in float_inputs(spec, frozenset()):

        def loss(v, k=k):
            return fn(**{**inputs, k: v}, reduction="mean")

        v = np.asarray(inputs[k], dtype=np.float64)
        a = np.asarray(jax.grad(loss)(v))
        b = np.asarray(jax.jit(jax.grad(loss))(v))
        assert np.isfinite(a).all(), (name, k, "eager")
        assert np.isfinite(b).all(), (name, k, "jit")
        scale = 1 + np.max(np.abs(a), initial=0.0)
        assert np.max(np.abs(a - b), initial=0.0) <= 1e-8 * scale, (name, k)
