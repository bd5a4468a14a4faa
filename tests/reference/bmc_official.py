"""Balanced MSE (BMC), transcribed from the official repository.

Repository: https://github.com/jiawei-ren/BalancedMSE
File:       the bmc_loss snippet of the README / tutorial (not pinned to a commit)
Function:   bmc_loss(pred, target, noise_var) with pred, target [B, 1]
Deviations: torch.arange on CPU instead of .cuda(); added `reduction` (official: mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bmc_loss(pred, target, noise_var, reduction="mean"):
    logits = -0.5 * (pred - target.T).pow(2) / noise_var
    loss = F.cross_entropy(logits, torch.arange(pred.shape[0]), reduction=reduction)
    return loss * (2 * noise_var).detach()
