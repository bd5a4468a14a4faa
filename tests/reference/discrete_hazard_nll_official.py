"""Logistic-hazard negative log-likelihood, transcribed from pycox.

Repository: havakv/pycox @ 3eccdd7fd9844a060f50fdcc315659f33a2d2dc1, pycox/models/loss.py:
_reduction and nll_logistic_hazard (verbatim but for the type hints).
Deviations: none in the arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduction(loss, reduction="mean"):
    if reduction == "none":
        return loss
    elif reduction == "mean":
        return loss.mean()
    elif reduction == "sum":
        return loss.sum()
    raise ValueError(f"`reduction` = {reduction} is not valid. Use 'none', 'mean' or 'sum'.")


def nll_logistic_hazard(phi, idx_durations, events, reduction="mean"):
    if phi.shape[1] <= idx_durations.max():
        raise ValueError(
            "Network output `phi` is too small for `idx_durations`."
            + f" Need at least `phi.shape[1] = {idx_durations.max().item() + 1}`,"
            + f" but got `phi.shape[1] = {phi.shape[1]}`"
        )
    if events.dtype is torch.bool:
        events = events.float()
    events = events.view(-1, 1)
    idx_durations = idx_durations.view(-1, 1)
    y_bce = torch.zeros_like(phi).scatter(1, idx_durations, events)
    bce = F.binary_cross_entropy_with_logits(phi, y_bce, reduction="none")
    loss = bce.cumsum(1).gather(1, idx_durations).view(-1)
    return _reduction(loss, reduction)
