"""Asymmetric loss (ASL), transcribed from the official code.

Repository: Alibaba-MIIL/ASL, file src/loss_functions/losses.py
@ 05b193d8a39bbc5fb2c3be7b52d5188416594544.
Transcribed: AsymmetricLoss.forward (gradient through the focusing weight: its
set_grad_enabled(False) lines are commented out upstream) and AsymmetricLossOptimized.forward
(its disable_torch_grad_focal_loss flag, default False, computes the weight without gradient).
Deviations: functions instead of nn.Modules; in-place ops written out of place (same values and
gradients); a `reduction` argument ("sum", upstream's `-loss.sum()`, is the default; "none"
returns the [B, C] matrix, "mean" divides by B*C). Plain torch, any float dtype.
"""

from __future__ import annotations

import torch


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    return loss.sum()


def asymmetric_loss(x, y, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8, reduction="sum"):
    """AsymmetricLoss.forward: x logits [B, C], y binarized targets [B, C]."""
    x_sigmoid = torch.sigmoid(x)
    xs_pos = x_sigmoid
    xs_neg = 1 - x_sigmoid
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    los_pos = y * torch.log(xs_pos.clamp(min=eps))
    los_neg = (1 - y) * torch.log(xs_neg.clamp(min=eps))
    loss = los_pos + los_neg
    if gamma_neg > 0 or gamma_pos > 0:
        pt0 = xs_pos * y
        pt1 = xs_neg * (1 - y)
        pt = pt0 + pt1
        one_sided_gamma = gamma_pos * y + gamma_neg * (1 - y)
        one_sided_w = torch.pow(1 - pt, one_sided_gamma)
        loss = loss * one_sided_w
    return _reduce(-loss, reduction)


def asymmetric_loss_optimized(
    x,
    y,
    gamma_neg=4,
    gamma_pos=1,
    clip=0.05,
    eps=1e-8,
    disable_torch_grad_focal_loss=False,
    reduction="sum",
):
    """AsymmetricLossOptimized.forward."""
    targets = y
    anti_targets = 1 - y
    xs_pos = torch.sigmoid(x)
    xs_neg = 1.0 - xs_pos
    if clip is not None and clip > 0:
        xs_neg = (xs_neg + clip).clamp(max=1)
    loss = targets * torch.log(xs_pos.clamp(min=eps))
    loss = loss + anti_targets * torch.log(xs_neg.clamp(min=eps))
    if gamma_neg > 0 or gamma_pos > 0:
        with torch.set_grad_enabled(not disable_torch_grad_focal_loss):
            xs_pos = xs_pos * targets
            xs_neg = xs_neg * anti_targets
            asymmetric_w = torch.pow(
                1 - xs_pos - xs_neg, gamma_pos * targets + gamma_neg * anti_targets
            )
        loss = loss * asymmetric_w
    return _reduce(-loss, reduction)
