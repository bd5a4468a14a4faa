"""StableMax cross-entropy, transcribed from the official grokking repository.

Repository: LucasPrietoAl/grokking-at-the-edge-of-numerical-stability (read in the mirror
EIFY/grokking-at-the-edge-of-numerical-stability, utils.py at commit
0761cb660451024ab589583fe7ba3a5f56c4a3bd). Transcribed: s, log_stablemax,
stablemax_cross_entropy.
Deviations: dtype defaults to the logits' own dtype (upstream: torch.float32) so float64 tests
stay in float64; reduction="sum" added (upstream: "mean", anything else = per-sample, with a
trailing singleton dim that is squeezed here).
"""

from __future__ import annotations

import torch


def s(x, epsilon=1e-30):
    return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)


def log_stablemax(x, dim=-1):
    s_x = s(x)
    return torch.log(s_x / torch.sum(s_x, dim=dim, keepdim=True))


def stablemax_cross_entropy(logits, labels, reduction="mean", dtype=None):
    logprobs = log_stablemax(logits.to(dtype or logits.dtype), dim=-1)
    prediction_logprobs = torch.gather(logprobs, index=labels[:, None], dim=-1)
    if reduction == "mean":
        return -torch.mean(prediction_logprobs)
    if reduction == "sum":
        return -torch.sum(prediction_logprobs)
    return -prediction_logprobs.squeeze(-1)
