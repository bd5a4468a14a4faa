"""Robust losses of the Active-Passive Loss repository, and the Keras SCE of the SCE authors,
transcribed from the official code.

Repository: HanxunH/Active-Passive-Losses, file loss.py @ 0c207f77b8139a6af4c47a1a995e8cf30cca4e60.
Transcribed: GeneralizedCrossEntropy, SCELoss, ReverseCrossEntropy, NormalizedCrossEntropy,
NCEandRCE, NormalizedFocalLoss, NFLandRCE (forward methods).
Repository: YisenWang/symmetric_cross_entropy_for_noisy_labels, file loss.py
@ 235d93b25fdaab0e106d6f8c782a03ec175f9bc1. Transcribed: symmetric_cross_entropy (Keras/TF 1)
as `sce_keras`, with y_pred = softmax(logits) (the authors' models end in a softmax layer).
Deviations: functions instead of nn.Modules / Keras closures; `pred` logits [B, C] and integer
labels [B]; one-hot built in the logits' dtype (upstream: .float(), i.e. float32, so the
clipped log(1e-4) is float32 upstream and float64 here); no device handling; `.data` and
torch.autograd.Variable(x.data) written as .detach(); a `reduction` argument applied where
upstream takes each batch mean ("mean", upstream's, is the default; "none" returns the
per-sample alpha * a_b + beta * b_b; "sum" sums it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean()


def _one_hot(labels, num_classes, like):
    return F.one_hot(labels, num_classes).to(like.dtype)


def generalized_cross_entropy(pred, labels, q=0.7, reduction="mean"):
    num_classes = pred.shape[1]
    pred = F.softmax(pred, dim=1)
    pred = torch.clamp(pred, min=1e-7, max=1.0)
    label_one_hot = _one_hot(labels, num_classes, pred)
    gce = (1.0 - torch.pow(torch.sum(label_one_hot * pred, dim=1), q)) / q
    return _reduce(gce, reduction)


def reverse_cross_entropy(pred, labels, scale=1.0, reduction="mean"):
    num_classes = pred.shape[1]
    pred = F.softmax(pred, dim=1)
    pred = torch.clamp(pred, min=1e-7, max=1.0)
    label_one_hot = _one_hot(labels, num_classes, pred)
    label_one_hot = torch.clamp(label_one_hot, min=1e-4, max=1.0)
    rce = -1 * torch.sum(pred * torch.log(label_one_hot), dim=1)
    return scale * _reduce(rce, reduction)


def sce_loss(pred, labels, alpha, beta, reduction="mean"):
    """SCELoss.forward: alpha * CrossEntropyLoss() + beta * mean RCE."""
    ce = F.cross_entropy(pred, labels, reduction=reduction)
    return alpha * ce + reverse_cross_entropy(pred, labels, scale=beta, reduction=reduction)


def normalized_cross_entropy(pred, labels, scale=1.0, reduction="mean"):
    num_classes = pred.shape[1]
    pred = F.log_softmax(pred, dim=1)
    label_one_hot = _one_hot(labels, num_classes, pred)
    nce = -1 * torch.sum(label_one_hot * pred, dim=1) / (-pred.sum(dim=1))
    return scale * _reduce(nce, reduction)


def nce_and_rce(pred, labels, alpha, beta, reduction="mean"):
    return normalized_cross_entropy(
        pred, labels, scale=alpha, reduction=reduction
    ) + reverse_cross_entropy(pred, labels, scale=beta, reduction=reduction)


def normalized_focal_loss(input, target, scale=1.0, gamma=0, reduction="mean"):
    target = target.view(-1, 1)
    logpt = F.log_softmax(input, dim=1)
    normalizor = torch.sum(-1 * (1 - logpt.detach().exp()) ** gamma * logpt, dim=1)
    logpt = logpt.gather(1, target)
    logpt = logpt.view(-1)
    pt = logpt.detach().exp()
    loss = -1 * (1 - pt) ** gamma * logpt
    loss = scale * loss / normalizor
    return _reduce(loss, reduction)


def nfl_and_rce(pred, labels, alpha, beta, gamma=0.5, reduction="mean"):
    return normalized_focal_loss(
        pred, labels, scale=alpha, gamma=gamma, reduction=reduction
    ) + reverse_cross_entropy(pred, labels, scale=beta, reduction=reduction)


def sce_keras(logits, labels, alpha, beta, reduction="mean"):
    """symmetric_cross_entropy(alpha, beta)(y_true, y_pred), TF ops mapped to torch."""
    y_true = _one_hot(labels, logits.shape[1], logits)
    y_pred = F.softmax(logits, dim=1)
    y_true_1 = y_true
    y_pred_1 = y_pred
    y_true_2 = y_true
    y_pred_2 = y_pred
    y_pred_1 = torch.clamp(y_pred_1, 1e-7, 1.0)
    y_true_2 = torch.clamp(y_true_2, 1e-4, 1.0)
    ce = -torch.sum(y_true_1 * torch.log(y_pred_1), dim=-1)
    rce = -torch.sum(y_pred_2 * torch.log(y_true_2), dim=-1)
    return alpha * _reduce(ce, reduction) + beta * _reduce(rce, reduction)
