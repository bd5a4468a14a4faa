"""Fixtures of the peer-parity suites (issue 15): one module per peer library.

Each module turns a peer's own test cases (inputs, settings, golden values) into table-driven
tests of the lossdsl spec that reproduces the peer's loss, or runs the peer's installed test
module with the spec substituted. Every table names the peer's source file and version; every
exclusion is listed with its reason in the module and in docs/peers/<peer>.md. Tensors are
float64 unless a case asks otherwise."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _float64(float64_default):
    yield float64_default


@pytest.fixture
def _x64():
    """jax in float64 for one test (the peers' float64 comparisons), restored afterwards."""
    import jax

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)
