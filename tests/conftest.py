"""Shared test setup: float64 JAX (the reference comparisons need it; float32 inputs stay
float32), and the repository root importable without an install."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def float64_default():
    """torch's default dtype float64 for one test, restored afterwards (no module flips global
    state at import: a test that wants float64 tensors asks for this fixture, or makes them with
    dtype=torch.float64)."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(before)


def pytest_make_parametrize_id(config, val, argname):
    """A set's test id in sorted order: its repr follows string hashing, which differs between
    xdist workers (PYTHONHASHSEED), and workers that collect different ids abort the run."""
    if isinstance(val, (set, frozenset)):
        return "{" + ",".join(sorted(map(str, val))) + "}"
    return None
