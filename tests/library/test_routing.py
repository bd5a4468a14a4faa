"""Mixture-of-experts routing: the Switch Transformer load-balancing loss.

Reference: transformers' load_balancing_loss_func, transcribed in
tests/reference/switch_transformers_hf.py. The conventions every module here follows:
tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference.switch_transformers_hf import load_balancing_loss_func
from torch_helpers import assert_same, compiled, gen

from lossdsl.codegen import TARGETS


def reference(logits):
    """transformers' router: softmax probabilities, the top-1 expert by argmax."""
    probs = torch.softmax(logits, dim=-1)
    return load_balancing_loss_func(probs, torch.argmax(probs, dim=-1))


@pytest.mark.parametrize("shape", [(1, 16, 4), (3, 50, 8), (2, 1, 5)])
def test_switch_load_balancing_matches_transformers(shape):
    logits = torch.randn(*shape, generator=gen(sum(shape))) * 2
    fn = compiled("switch_load_balancing")
    assert_same(lambda x: fn(x), lambda x: reference(x), {"x": logits}, ["x"])


@pytest.mark.parametrize("backend", [b for b in TARGETS if b != "torch"])
def test_switch_load_balancing_on_every_backend(backend):
    logits = torch.randn(2, 30, 6, generator=gen(3))
    want = compiled("switch_load_balancing")(logits, reduction="none").numpy()
    got = compiled("switch_load_balancing", backend)(logits.numpy(), reduction="none")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)


def test_switch_load_balancing_at_its_bounds():
    """Fedus et al. 2021, eq. 4: uniform routing gives 1 (f = P = 1/E), every token on one
    expert with certainty gives E (f_1 = P_1 = 1)."""
    fn = compiled("switch_load_balancing")
    # T = 4 tokens, E = 4 experts, token t prefers expert t by a wide margin: f uniform, P ~ uniform
    spread = torch.eye(4)[None] * 50.0
    assert fn(spread).item() == pytest.approx(1.0, rel=1e-12)
    collapsed = torch.zeros(1, 6, 4)
    collapsed[..., 2] = 80.0
    assert fn(collapsed).item() == pytest.approx(4.0, rel=1e-12)
