"""LDR-KL loss, transcribed from the official ICML 2023 repository.

Repository: Optimization-AI/ICML2023_LDR, commit 732fc85dbd8b30b6dd16cd2dfb79d6c325558d71.
File: loss.py (get_diff_logits, LDRLoss_V1.forward); experiment.py passes y_true as a one-hot
matrix and builds LDRLoss_V1(threshold=args.margin, Lambda=para).
Transcribed: get_diff_logits, ldr_loss_v1 (LDRLoss_V1.forward as written: softplus, division by
the class mean, margin on the non-target classes, detached max shift, lam * log mean exp).
Deviations: a function taking integer labels (one-hot built here, as the training loop does);
a `reduction` argument ("mean" = upstream loss.mean(); "none" = the per-sample column squeezed;
"sum"); `normalize=False` skips the softplus / mean normalization (the paper's plain formula) and
is not upstream code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def get_diff_logits(y_pred, y_true):
    y_true_logits = torch.sum(y_pred * y_true, dim=1, keepdim=True)
    return y_pred - y_true_logits


def ldr_loss_v1(logits, labels, threshold=2.0, Lambda=1.0, normalize=True, reduction="mean"):
    y_true = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    y_pred = logits
    if normalize:
        y_pred = torch.nn.functional.softplus(y_pred)
        y_denorm = torch.mean(y_pred, dim=1, keepdim=True)
        y_pred = y_pred / y_denorm
    diff_logits = threshold * (1 - y_true) + get_diff_logits(y_pred, y_true)
    diff_logits = diff_logits / Lambda
    max_diff = torch.max(diff_logits, dim=1, keepdim=True).values.detach()
    diff_logits = diff_logits - max_diff
    diff_logits = torch.exp(diff_logits)
    loss = Lambda * (torch.log(torch.mean(diff_logits, dim=1, keepdim=True)) + max_diff)
    if reduction == "none":
        return loss.squeeze(1)
    if reduction == "sum":
        return loss.sum()
    return loss.mean()
