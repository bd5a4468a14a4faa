"""vne against the official get_vne (jaeill/CVPR23-VNE vne/__init__.py, transcribed in
tests/reference/vne_official.py): values and gradients in float64, N > D and N < D (the latter
has D - N zero eigenvalues that nansum skips)."""

from __future__ import annotations

import pytest
import torch
from reference.vne_official import get_vne

import lossdsl

torch.set_default_dtype(torch.float64)


@pytest.mark.parametrize("n,d", [(40, 8), (6, 16), (32, 32)])
@pytest.mark.parametrize("alpha", [1.0, -0.5])
def test_vne_matches_official(n, d, alpha):
    h = torch.randn(n, d, generator=torch.Generator().manual_seed(n * d))
    fn = lossdsl.load("vne").compile("torch")
    a, b = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    ours, ref = fn(a, alpha=alpha), -alpha * get_vne(b)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    (ga,), (gb,) = torch.autograd.grad(ours, [a]), torch.autograd.grad(ref, [b])
    assert torch.isfinite(ga).all()
    torch.testing.assert_close(ga, gb, rtol=1e-6, atol=1e-9)


def test_vne_of_isotropic_embeddings_is_log_d():
    """Orthonormal rows (N = D): rho = I / D, VNE = log D (paper, section 3)."""
    d = 8
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
    out = lossdsl.load("vne").compile("torch")(q)
    torch.testing.assert_close(out, -torch.log(torch.tensor(float(d))))


def test_vne_jax_matches_torch():
    import numpy as np

    h = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    a = lossdsl.load("vne").compile("jax")(h.numpy())
    b = lossdsl.load("vne").compile("torch")(h)
    np.testing.assert_allclose(np.asarray(a), b.item(), rtol=1e-10)
