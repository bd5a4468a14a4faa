"""Fixtures of the spec-vs-reference suites (one module per loss family).

Every test here compares a shipped spec with something lossdsl did not compute, in float64: the
autouse fixture below makes float64 torch's default dtype around each test (and restores it), so
the tensors a test builds are float64 unless it asks for float32 explicitly. `shape`, `bd`,
`reduction` and `other_backend` parametrize the tests that take them."""

from __future__ import annotations

import pytest
from torch_helpers import BD, REDUCTIONS, SHAPES

from lossdsl.codegen import TARGETS


def _ids(shape):
    return "x".join(map(str, shape))


@pytest.fixture(autouse=True)
def _float64(float64_default):
    yield float64_default


@pytest.fixture(params=SHAPES, ids=_ids)
def shape(request):
    """(B, C) of a classification-style batch."""
    return request.param


@pytest.fixture(params=BD, ids=_ids)
def bd(request):
    """(B, D) of a batch of embeddings."""
    return request.param


@pytest.fixture(params=REDUCTIONS)
def reduction(request):
    return request.param


@pytest.fixture(params=[t for t in TARGETS if t != "torch"])
def other_backend(request):
    """Every code generator but torch (lossdsl.codegen.TARGETS): the references are torch code,
    so these backends are checked against the torch module checked against the references."""
    return request.param
