"""Multiclass Brier score, transcribed from scikit-learn (differentiable torch port).

Source
------
Repository: https://github.com/scikit-learn/scikit-learn
File:       sklearn/metrics/_classification.py
Function:   ``brier_score_loss(y_true, y_proba, *, sample_weight=None, pos_label=None,
            labels=None, scale_by_half="auto")`` as shipped in scikit-learn 1.9.1 (read from the
            installed package; the multiclass form exists since 1.7). Its core::

                brier_score = _average(
                    xp.sum((transformed_labels - y_proba) ** 2, axis=1), weights=sample_weight
                )
                if scale_by_half == "auto":
                    scale_by_half = y_proba.ndim == 1 or y_proba.shape[1] < 3
                if scale_by_half:
                    brier_score *= 0.5

Deviations: takes logits and applies the softmax first (sklearn takes probabilities and checks
that rows sum to 1); labels are class ids 0..C-1 (``transformed_labels`` = one-hot); no
``sample_weight``; ``scale_by_half`` is a bool (pass ``C < 3`` for sklearn's "auto");
``reduction="none"`` returns the per-sample sums (sklearn only returns the average).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def brier_score_loss(logits, target, scale_by_half: bool = False, reduction: str = "mean"):
    y_proba = F.softmax(logits, dim=1)
    transformed_labels = F.one_hot(target, logits.shape[1]).to(y_proba.dtype)
    per_sample = torch.sum((transformed_labels - y_proba) ** 2, dim=1)
    if scale_by_half:
        per_sample = 0.5 * per_sample
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
