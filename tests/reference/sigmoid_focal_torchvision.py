"""Sigmoid (binary) focal loss, transcribed from torchvision.

Source
------
Repository: https://github.com/pytorch/vision
File:       torchvision/ops/focal_loss.py
Function:   ``sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none")``
Commit:     read at b9daa864e899706aa8f906703249cc69c5b82c70 and
            148ddaaa5d27abc8300dbb4e689d1aea31892930 (the stored versions; the full repository
            was too large to mirror here, so newer commits could not be listed). Later releases
            add ``_log_api_usage_once`` and raise ``ValueError`` for an unknown ``reduction``
            (earlier versions silently returned the unreduced loss); the maths is identical. The
            transcription follows the newer behaviour (raises).
            (The docstring credits facebookresearch/fvcore ``fvcore/nn/focal_loss.py``.)

Semantics
---------
* ``inputs`` are logits, ``targets`` are floats in [0, 1] of the same shape (soft targets are
  accepted: ``p_t`` and ``alpha_t`` are linear interpolations).
* ``ce = binary_cross_entropy_with_logits(inputs, targets, reduction="none")``
* ``p_t = p * t + (1 - p) * (1 - t)`` with ``p = sigmoid(inputs)``
* ``loss = ce * (1 - p_t) ** gamma``
* alpha: applied only ``if alpha >= 0``: ``alpha_t = alpha * t + (1 - alpha) * (1 - t)``, i.e.
  ``alpha`` weights POSITIVES and ``1 - alpha`` weights NEGATIVES (default 0.25 down-weights
  positives). ``alpha = -1`` (any negative value) disables the weighting.
* ``reduction``: ``'none'`` (default) | ``'mean'`` (mean over all elements) | ``'sum'``.
* Nothing is detached: the modulating factor ``(1 - p_t) ** gamma`` is differentiated through.

Deviations: none in value. Written as a plain function over torch tensors (torchvision is not
importable in this environment).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2,
    reduction: str = "none",
) -> torch.Tensor:
    """Official ``torchvision.ops.sigmoid_focal_loss``."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)

    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss

    # Check reduction option and return loss accordingly
    if reduction == "none":
        pass
    elif reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    else:
        raise ValueError(
            f"Invalid Value for arg 'reduction': '{reduction} \n "
            "Supported reduction modes: 'none', 'mean', 'sum'"
        )
    return loss
