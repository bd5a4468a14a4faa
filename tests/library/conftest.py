"""Fixtures of the spec-vs-reference suites (one module per loss family).

The conventions of every module here: each test compares a shipped spec with something lossdsl
did not compute, a peer library (torch.nn.functional, optax, ...) or a transcription of the
official code in tests/reference/ (each file names its repository, file and commit). Values and
gradients in float64, at least two shapes, every reduction where meaningful, plus edge cases and
metamorphic checks; each section header names the reference, each expected value its source.
Library versions are whatever `pip install -e .[test]` resolves (torch 2.13.0 pinned by CI).

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
