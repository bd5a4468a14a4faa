"""Hinton knowledge-distillation loss, transcribed from megvii-research/mdistiller.

Source
------
Repository: https://github.com/megvii-research/mdistiller
File:       mdistiller/distillers/KD.py
Function:   ``kd_loss(logits_student, logits_teacher, temperature)``
Commit:     a08d46f10d6102bd6e3f258ca5ac880b020ea259 (master HEAD, 2023-11-05); the file is
            unchanged since e8c5bb331e78c9d79a8894ca233caae78531cf7f ("init", 2022-03-20).

Official code (verbatim semantics)::

    log_pred_student = F.log_softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    loss_kd = F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1).mean()
    loss_kd *= temperature**2

Reduction: KL is summed over the class dim (dim=1) and then averaged over EVERY remaining element.
For 2-D logits ``[N, C]`` that is exactly ``F.kl_div(..., reduction="batchmean") * T**2``
(sum / N). For logits with extra dims ``[N, C, *]`` it is ``sum / (N * prod(*))`` whereas
``batchmean`` would give ``sum / N``.

``F.kl_div(input, target)`` is pointwise ``target * (log(target) - input)`` with the 0*log(0) = 0
convention (torch uses ``xlogy``), so teacher probabilities that underflow to 0 contribute 0.

Detach: ``kd_loss`` itself does NOT detach the teacher. In the official ``KD.forward_train`` the
teacher logits are produced under ``torch.no_grad()``, so in training no gradient reaches the
teacher; this transcription is the bare ``kd_loss`` and lets gradients flow into
``logits_teacher`` if it requires grad. Compare gradients w.r.t. the student only, or pass a
detached teacher. The training loss also multiplies by ``cfg.KD.LOSS.KD_WEIGHT`` (not included).

Deviations: added ``reduction`` -- ``'mean'`` (default) is the official value; ``'none'`` returns
the per-position KL (summed over classes, times T**2) of shape ``[N, *]``; ``'sum'`` sums it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    temperature: float,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Official mdistiller ``kd_loss`` (mdistiller/distillers/KD.py)."""
    log_pred_student = F.log_softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    per_position = F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1)
    if reduction == "mean":
        loss_kd = per_position.mean()
    elif reduction == "none":
        loss_kd = per_position
    elif reduction == "sum":
        loss_kd = per_position.sum()
    else:
        raise ValueError(f"Invalid reduction: {reduction!r}")
    loss_kd = loss_kd * temperature**2
    return loss_kd
