"""Fuzzing (hypothesis): random mutations of every shipped spec and random token soup either
compile on every backend or raise LossError with valid spans, within a second each. The same
mutations with a larger budget: scripts/fuzz.py (its counts are in the README)."""

from __future__ import annotations

import random

from fuzzing import SPECS, mutate, random_text, run_contract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SLOW = 1.0  # seconds: the contract's bound for one input (parse + check + 3 backends)
run_contract(SPECS[0].read_text(), str(SPECS[0]))  # import torch and jax outside the timings


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=st.sampled_from(SPECS),
    seed=st.integers(0, 2**32 - 1),
    edits=st.integers(1, 4),
)
def test_mutated_specs_compile_or_fail_with_a_loss_error(spec, seed, edits):
    text = mutate(spec.read_text(), random.Random(seed), edits)
    out = run_contract(text, str(spec))
    assert out.seconds < SLOW, f"{out.seconds:.2f} s on a mutation of {spec.name}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_token_soup_fails_with_a_loss_error(seed):
    text = random_text(random.Random(seed))
    out = run_contract(text)
    assert out.seconds < SLOW
    assert not out.ok or "loss" in text  # a program needs a loss definition


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_unicode_fails_with_a_loss_error(text):
    out = run_contract(text)
    assert out.seconds < SLOW


def test_every_shipped_spec_meets_the_contract_unmutated():
    for spec in SPECS:
        out = run_contract(spec.read_text(), str(spec))
        assert out.ok, f"{spec.name}: {out.error}"
