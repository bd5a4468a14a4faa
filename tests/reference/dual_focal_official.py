"""Dual focal loss, transcribed from the official repository.

Repository: https://github.com/Linwei94/ICML2023-DualFocalLoss
File:       dual_focal_loss.py (commit 7adf771d); identical to Losses/dual_focal_loss.py (cb1ea6d1)
Function:   DualFocalLoss.forward (gamma=0, size_average=False defaults)
Deviations: function instead of module; `reduction` ('sum' = official size_average=False,
'mean' = size_average=True, 'none' added). The [N, C, *] reshaping branch is dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dual_focal_loss(input, target, gamma=0.0, reduction="sum"):
    target = target.view(-1, 1)
    logp_k = F.log_softmax(input, dim=1)
    softmax_logits = logp_k.exp()
    logp_k = logp_k.gather(1, target)
    logp_k = logp_k.view(-1)
    p_k = logp_k.exp()
    p_j_mask = torch.lt(softmax_logits, p_k.reshape(p_k.shape[0], 1)) * 1
    p_j = torch.topk(p_j_mask * softmax_logits, 1)[0].squeeze()
    loss = -1 * (1 - p_k + p_j) ** gamma * logp_k
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()
