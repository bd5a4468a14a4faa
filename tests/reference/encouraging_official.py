"""Encouraging loss, transcribed from the official repository.

Repository: https://github.com/lancopku/well-classified-examples-are-underestimated
File:       EncouragingLoss.py (commit 1474bc3c)
Function:   EncouragingLoss.forward (log_end=0.75, reduction='mean')
Deviations: function instead of module; log_softmax over dim=1 made explicit (the official
call relies on the implicit dim, which is 1 for 2-D input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def encouraging_loss(input, target, log_end=0.75, reduction="mean"):
    lprobs = F.log_softmax(input, dim=1)
    probs = torch.exp(lprobs)
    bonus = torch.log(torch.clamp((torch.ones_like(probs) - probs), min=1e-5))
    if log_end != 1.0:
        y_log_end = torch.log(torch.ones_like(probs) - log_end)
        bonus_after_log_end = 1 / (log_end - torch.ones_like(probs)) * (probs - log_end) + y_log_end
        bonus = torch.where(probs > log_end, bonus_after_log_end, bonus)
    return F.nll_loss(lprobs - bonus, target.view(-1), reduction=reduction)
