"""Audio: the segmental SNR (SNRseg) of pysepm, a loss over frames of the signal (frames()).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference.snrseg_pysepm import snrseg_loss
from torch_helpers import assert_same, compiled, gen, randn

import lossdsl


def _signals(b, t, seed):
    """A clean signal and an estimate whose noise grows along the signal: frame SNRs from
    about +80 dB to -55 dB, so that both clamps (35 and -10 dB) and the range between hold."""
    clean = randn(b, t, seed=seed)
    scale = torch.logspace(-5, 4, t)
    noise = torch.randn(b, t, generator=gen(seed + 1)) * scale
    return clean, clean + noise


# ---- segmental_snr: tests/reference/snrseg_pysepm.py (schmiph2/pysepm SNRseg) ----------------


@pytest.mark.parametrize("bt", [(3, 1000), (2, 2437), (1, 600)])
def test_segmental_snr_matches_pysepm(bt, reduction):
    clean, processed = _signals(*bt, seed=sum(bt))
    fn = compiled("segmental_snr")
    assert_same(
        lambda clean, processed: fn(clean, processed, reduction=reduction),
        lambda clean, processed: snrseg_loss(clean, processed, reduction=reduction),
        {"clean": clean, "processed": processed},
        ["clean", "processed"],
    )


def test_segmental_snr_spans_both_clamps():
    """The test signals reach both clamps and the range between (else the clamps are untested):
    the per-frame dB values of the reference's own formula."""
    clean, processed = _signals(3, 1000, seed=1003)
    w = 0.5 * (1 - torch.cos(2 * np.pi * torch.arange(1, 481) / 481))
    s = clean.unfold(-1, 480, 120) * w
    e = (clean - processed).unfold(-1, 480, 120) * w
    eps = np.finfo(np.float64).eps
    db = 10 * torch.log10((s**2).sum(-1) / ((e**2).sum(-1) + eps) + eps)[:, :-1]  # kept frames
    assert (db > 35).any() and (db < -10).any() and ((db > -10) & (db < 35)).any()


def test_segmental_snr_on_every_backend(other_backend):
    clean, processed = _signals(2, 1500, seed=5)
    want = compiled("segmental_snr")(clean, processed, reduction="none").numpy()
    got = compiled("segmental_snr", other_backend)(
        clean.numpy(), processed.numpy(), reduction="none"
    )
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)


def test_segmental_snr_edges():
    fn = compiled("segmental_snr")
    x = randn(2, 700, seed=9)
    # a perfect estimate: every frame's SNR is clamped to 35 dB (pysepm: sig / eps)
    torch.testing.assert_close(fn(x, x, reduction="none"), torch.full((2,), -35.0))
    torch.testing.assert_close(fn(x, x), snrseg_loss(x, x))
    # 480 <= T < 600: one frame, which pysepm drops: its mean of no frames is NaN (np.mean of
    # an empty array, with a RuntimeWarning); here an InputError (the docstring says so)
    y = randn(2, 599, seed=10)
    assert torch.isnan(snrseg_loss(y, 0.5 * y, reduction="none")).all()
    with pytest.raises(lossdsl.InputError, match="needs at least 600 along it"):
        fn(y, 0.5 * y)
    # exactly two frames, the second dropped: the first frame's SNR
    z = randn(1, 600, seed=11)
    torch.testing.assert_close(fn(z, 0.9 * z), snrseg_loss(z, 0.9 * z))
    torch.testing.assert_close(fn(z, 0.9 * z), torch.tensor(-20.0))  # 20 log10(1 / 0.1)
