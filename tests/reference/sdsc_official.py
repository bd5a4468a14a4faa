"""Signal Dice Similarity Coefficient (SDSC) and its loss, transcribed from the official
repository.

Repository: CVMILab-CUK/Signal_Dice_Similarity_Coefficient, commit
3c0284c4842dc976b941b6f611ce33573fec2f91.
Files and functions transcribed:
- SimMTM_Forecasting/utils/sdsc_canonical.py: SignalDiceCanonical (per-sequence sum over the
  last dim, then batch mean; H(0) = 0; alpha=None -> hard Heaviside under no_grad, alpha > 0 ->
  differentiable sigmoid gate) and SignalDiceLossCanonical (1 - SDSC) -> sdsc_canonical,
  sdsc_loss_canonical.
- SimMTM_Forecasting/utils/metrics.py: the legacy SignalDice (one global ratio over the whole
  tensor; the soft gate is also built under torch.no_grad) with SimMTM_Forecasting/utils/losses.py
  SignalDiceLoss (1 - SDSC) -> sdsc_legacy, sdsc_loss_legacy.
Deviations: functions instead of nn.Modules; `alpha=None` is the hard gate as upstream; a
`reduction` argument is added to sdsc_loss_canonical ("mean" = upstream; "none" = the per-sequence
1 - SDSC_b; "sum" = their sum).
"""

from __future__ import annotations

import torch


def _calc_intersection(a_abs, b_abs, gate):
    a_g = a_abs * gate
    b_g = b_abs * gate
    return torch.where(a_g >= b_g, b_g, a_g)


def sdsc_canonical(inputs, targets, alpha=None, eps=1e-6, reduce=True):
    in_abs = torch.abs(inputs)
    tar_abs = torch.abs(targets)
    if alpha is None:
        with torch.no_grad():
            gate = torch.heaviside(
                inputs * targets, torch.tensor([0.0], device=inputs.device, dtype=inputs.dtype)
            )
    else:
        gate = torch.sigmoid(inputs * targets * alpha)
    intersection = _calc_intersection(in_abs, tar_abs, gate)
    union = in_abs + tar_abs
    per_seq_dice = (2.0 * torch.sum(intersection, dim=-1) + eps) / (torch.sum(union, dim=-1) + eps)
    return torch.mean(per_seq_dice) if reduce else per_seq_dice


def sdsc_loss_canonical(inputs, targets, alpha=10.0, eps=1e-6, reduction="mean"):
    if reduction == "mean":
        return 1.0 - sdsc_canonical(inputs, targets, alpha=alpha, eps=eps)
    per_seq = 1.0 - sdsc_canonical(inputs, targets, alpha=alpha, eps=eps, reduce=False)
    return per_seq.sum() if reduction == "sum" else per_seq


def sdsc_legacy(inputs, targets, alpha=None, eps=1e-6):
    in_abs = torch.abs(inputs)
    tar_abs = torch.abs(targets)
    with torch.no_grad():
        if alpha:
            same_sign_mat = torch.sigmoid(inputs * targets * alpha)
        else:
            same_sign_mat = torch.heaviside(
                inputs * targets, torch.tensor([0.0], device=inputs.device, dtype=inputs.dtype)
            )
    intersection = _calc_intersection(in_abs, tar_abs, same_sign_mat)
    union = in_abs + tar_abs
    return torch.mean((2 * torch.sum(intersection) + eps) / (torch.sum(union) + eps))


def sdsc_loss_legacy(inputs, targets, alpha=None, eps=1e-6):
    return 1 - sdsc_legacy(inputs, targets, alpha=alpha, eps=eps)
