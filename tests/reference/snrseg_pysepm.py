"""Segmental SNR (SNRseg) of pysepm, transcribed from numpy to plain torch (float64,
differentiable).

Repository: schmiph2/pysepm. Files: pysepm/qualityMeasures.py at commit
86b5670b0c8d6f76811546e73208c98894ffdf5a (SNRseg) and pysepm/util.py at commit
a05a59b0dc4aa386bb51cf275711df996197f420 (extract_overlapped_windows, itself from scipy 1.2.1's
spectral.py). The same code ships on PyPI as pysepm-evo 0.1.1 (pysepm_evo/qualityMeasures.py),
which imports numba at module level and so is not imported by the tests.
Transcribed: SNRseg and extract_overlapped_windows, line by line: np.lib.stride_tricks.as_strided
-> Tensor.as_strided (the same shape and strides, in elements instead of bytes), np.power ->
torch.pow, the boolean-index clamps and the `[:-1]` drop of the last frame kept as written.
Deviations: torch instead of numpy (so that autograd gives the reference gradient); the signal
is made contiguous first (as_strided's strides assume it, as numpy's did for pysepm's 1-d input);
snrseg_loss below is this test-suite's batch wrapper (-SNRseg per row, then the reduction), not
pysepm code.
"""

from __future__ import annotations

import numpy as np
import torch


def extract_overlapped_windows(x, nperseg, noverlap, window=None):
    # source: https://github.com/scipy/scipy/blob/v1.2.1/scipy/signal/spectral.py
    x = x.contiguous()
    step = nperseg - noverlap
    shape = tuple(x.shape[:-1]) + ((x.shape[-1] - noverlap) // step, nperseg)
    strides = tuple(x.stride()[:-1]) + (step * x.stride()[-1], x.stride()[-1])
    result = x.as_strided(shape, strides)
    if window is not None:
        result = window * result
    return result


def SNRseg(clean_speech, processed_speech, fs, frameLen=0.03, overlap=0.75):  # noqa: N802, N803
    eps = np.finfo(np.float64).eps

    winlength = round(frameLen * fs)  # window length in samples
    skiprate = int(np.floor((1 - overlap) * frameLen * fs))  # window skip in samples
    MIN_SNR = -10  # minimum SNR in dB  # noqa: N806
    MAX_SNR = 35  # maximum SNR in dB  # noqa: N806

    hannWin = 0.5 * (  # noqa: N806
        1
        - torch.cos(
            2 * np.pi * torch.arange(1, winlength + 1, dtype=torch.float64) / (winlength + 1)
        )
    )
    clean_speech_framed = extract_overlapped_windows(
        clean_speech, winlength, winlength - skiprate, hannWin
    )
    processed_speech_framed = extract_overlapped_windows(
        processed_speech, winlength, winlength - skiprate, hannWin
    )

    signal_energy = torch.pow(clean_speech_framed, 2).sum(-1)
    noise_energy = torch.pow(clean_speech_framed - processed_speech_framed, 2).sum(-1)

    segmental_snr = 10 * torch.log10(signal_energy / (noise_energy + eps) + eps)
    segmental_snr = segmental_snr.clone()
    segmental_snr[segmental_snr < MIN_SNR] = MIN_SNR
    segmental_snr[segmental_snr > MAX_SNR] = MAX_SNR
    segmental_snr = segmental_snr[:-1]  # remove last frame -> not valid
    return torch.mean(segmental_snr)


def snrseg_loss(clean, processed, fs=16000, reduction="mean"):
    """-SNRseg of each row of [B, T] signals (pysepm takes one 1-d signal), then reduced."""
    per = -torch.stack([SNRseg(c, p, fs) for c, p in zip(clean, processed)])
    return {"mean": per.mean, "sum": per.sum, "none": lambda: per}[reduction]()
