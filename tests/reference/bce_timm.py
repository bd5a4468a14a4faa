"""timm's BinaryCrossEntropy (BCE with label smoothing of index targets), transcribed.

Repository: https://github.com/huggingface/pytorch-image-models
File:       timm/loss/binary_cross_entropy.py, class ``BinaryCrossEntropy`` (``__init__`` and
            ``forward``)
Commit:     aa4b5850c1543fa488abf260f18390eda46cf85d (main HEAD of the mirrored snapshot,
            2026-08-08; timm/version.py: 1.0.29.dev0)

What it does (transcribed, not paraphrased): when ``target.shape != x.shape`` (index targets),
it builds a dense target with ``off_value = smoothing / num_classes`` and
``on_value = 1 - smoothing + off_value`` (``num_classes = x.shape[-1]``, scattered at the
target index); dense targets are NOT smoothed ("assume smoothing ... is applied upstream").
``target_threshold`` (if set) binarizes the target with ``target.gt(threshold)``. Then
``F.binary_cross_entropy_with_logits(x, target, weight, pos_weight=pos_weight,
reduction=reduction)``; ``sum_classes=True`` runs it with reduction 'none' and returns
``loss.sum(-1).mean()``.

Deviation: a function instead of an nn.Module (the buffers become arguments); the default
``smoothing=0.1`` is timm's. No other change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def timm_binary_cross_entropy(
    x: torch.Tensor,
    target: torch.Tensor,
    smoothing: float = 0.1,
    target_threshold: float | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    sum_classes: bool = False,
    pos_weight: torch.Tensor | float | None = None,
) -> torch.Tensor:
    assert 0.0 <= smoothing < 1.0
    if pos_weight is not None and not isinstance(pos_weight, torch.Tensor):
        pos_weight = torch.tensor(pos_weight)
    reduction = "none" if sum_classes else reduction
    batch_size = x.shape[0]
    assert batch_size == target.shape[0]
    if target.shape != x.shape:
        num_classes = x.shape[-1]
        off_value = smoothing / num_classes
        on_value = 1.0 - smoothing + off_value
        target = target.long().view(-1, 1)
        target = torch.full(
            (batch_size, num_classes), off_value, device=x.device, dtype=x.dtype
        ).scatter_(1, target, on_value)
    if target_threshold is not None:
        target = target.gt(target_threshold).to(dtype=target.dtype)
    loss = F.binary_cross_entropy_with_logits(
        x, target, weight, pos_weight=pos_weight, reduction=reduction
    )
    if sum_classes:
        loss = loss.sum(-1).mean()
    return loss
