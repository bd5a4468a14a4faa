"""segmentation_models_pytorch's SoftBCEWithLogitsLoss (smooth_factor, ignore_index), transcribed.

Repository: https://github.com/qubvel-org/segmentation_models.pytorch
File:       segmentation_models_pytorch/losses/soft_bce.py, class ``SoftBCEWithLogitsLoss``
            (``__init__`` and ``forward``)
Commit:     5006616357631a48c7c8e11977cf5abb00803590 (main HEAD of the mirrored snapshot,
            2026-08-14; segmentation_models_pytorch/__version__.py: 0.5.1.dev0)

What it does (transcribed): ``soft_targets = (1 - y_true) * smooth_factor + y_true * (1 -
smooth_factor)`` when ``smooth_factor`` is not None (0 -> s, 1 -> 1 - s, whatever the number of
classes), then ``F.binary_cross_entropy_with_logits(y_pred, soft_targets, weight,
pos_weight=pos_weight, reduction="none")``; with ``ignore_index`` not None the loss is multiplied
by ``y_true != ignore_index`` (the ignored elements still count in the mean's denominator);
``reduction`` 'mean' is ``loss.mean()`` over all elements, 'sum' ``loss.sum()``, anything else
returns the elementwise loss.

Deviation: a function instead of an nn.Module (the buffers become arguments). No other change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smp_soft_bce_with_logits(
    y_pred: torch.Tensor,
    y_true: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = -100,
    reduction: str = "mean",
    smooth_factor: float | None = None,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    if smooth_factor is not None:
        soft_targets = (1 - y_true) * smooth_factor + y_true * (1 - smooth_factor)
    else:
        soft_targets = y_true
    loss = F.binary_cross_entropy_with_logits(
        y_pred, soft_targets, weight, pos_weight=pos_weight, reduction="none"
    )
    if ignore_index is not None:
        not_ignored_mask = y_true != ignore_index
        loss *= not_ignored_mask.type_as(loss)
    if reduction == "mean":
        loss = loss.mean()
    if reduction == "sum":
        loss = loss.sum()
    return loss
