"""ACLS loss, transcribed from the official repository.

Repository: https://github.com/cvlab-yonsei/ACLS
File:       calibrate/losses/acls.py (commit 989beb78 / dad2b069)
Function:   ACLS.get_reg + ACLS.forward (returns loss; the official also returns loss_ce, reg)
Deviations: function instead of module; 2-D logits only; CE via F.cross_entropy (mean).
"""

from __future__ import annotations

import torch.nn.functional as F


def acls_loss(inputs, targets, pos_lambda=1.0, neg_lambda=0.1, alpha=0.1, margin=10.0):
    max_values, indices = inputs.max(dim=1)
    max_values = max_values.unsqueeze(dim=1).repeat(1, inputs.shape[1])
    indicator = (max_values.clone().detach() == inputs.clone().detach()).float()
    batch_size, num_classes = inputs.size()
    num_pos = batch_size * 1.0
    num_neg = batch_size * (num_classes - 1.0)
    neg_dist = max_values.clone().detach() - inputs
    pos_dist_margin = F.relu(max_values - margin)
    neg_dist_margin = F.relu(neg_dist - margin)
    pos = indicator * pos_dist_margin**2
    neg = (1.0 - indicator) * (neg_dist_margin**2)
    reg = pos_lambda * (pos.sum() / num_pos) + neg_lambda * (neg.sum() / num_neg)
    return F.cross_entropy(inputs, targets) + alpha * reg
