"""Batch-hard triplet loss, transcribed from reid-strong-baseline.

Source
------
Repository: https://github.com/michuanhaohao/reid-strong-baseline
File:       layers/triplet_loss.py
Functions:  ``normalize``, ``euclidean_dist``, ``hard_example_mining``, ``TripletLoss.__call__``
Commit:     061be381c1fb8f4ec816a7c617986d1960ae8f51

Deviations
----------
* ``dist.addmm_(1, -2, x, y.t())`` (removed positional-beta/alpha signature) is written
  ``dist.addmm(x, y.t(), beta=1, alpha=-2)``; same value.
* Returns only the loss (the official call also returns dist_ap, dist_an).
* Like the official code, it assumes every anchor has a positive and a negative (P x K batches):
  ``dist_mat[is_pos].view(N, -1)`` needs the same count per row. ``is_pos`` includes the anchor
  itself (distance ~1e-6 after the clamp), which never wins the max when a real positive exists.
"""

from __future__ import annotations

import torch
from torch import nn


def normalize(x, axis=-1):
    return 1.0 * x / (torch.norm(x, 2, axis, keepdim=True).expand_as(x) + 1e-12)


def euclidean_dist(x, y):
    m, n = x.size(0), y.size(0)
    xx = torch.pow(x, 2).sum(1, keepdim=True).expand(m, n)
    yy = torch.pow(y, 2).sum(1, keepdim=True).expand(n, m).t()
    dist = xx + yy
    dist = dist.addmm(x, y.t(), beta=1, alpha=-2)
    dist = dist.clamp(min=1e-12).sqrt()  # for numerical stability
    return dist


def hard_example_mining(dist_mat, labels):
    N = dist_mat.size(0)
    is_pos = labels.expand(N, N).eq(labels.expand(N, N).t())
    is_neg = labels.expand(N, N).ne(labels.expand(N, N).t())
    dist_ap, _ = torch.max(dist_mat[is_pos].contiguous().view(N, -1), 1, keepdim=True)
    dist_an, _ = torch.min(dist_mat[is_neg].contiguous().view(N, -1), 1, keepdim=True)
    return dist_ap.squeeze(1), dist_an.squeeze(1)


def triplet_loss(global_feat, labels, *, margin=0.3, normalize_feature=False):
    """``TripletLoss(margin)(global_feat, labels, normalize_feature)[0]``; margin=None gives
    the soft-margin form (nn.SoftMarginLoss)."""
    if normalize_feature:
        global_feat = normalize(global_feat, axis=-1)
    dist_mat = euclidean_dist(global_feat, global_feat)
    dist_ap, dist_an = hard_example_mining(dist_mat, labels)
    y = torch.ones_like(dist_an)
    if margin is not None:
        return nn.MarginRankingLoss(margin=margin)(dist_an, dist_ap, y)
    return nn.SoftMarginLoss()(dist_an - dist_ap, y)
