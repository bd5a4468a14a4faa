"""EM loss and EM + APL loss for single-positive multi-label learning, transcribed from the
official repository.

Repository: Correr-Zhou/SPML-AckTheUnknown, commit ae1ccafe0b0328d199b09860d394f321e6279201.
Files: losses.py (neg_log, LOG_EPSILON, loss_EM, loss_EM_APL, compute_batch_loss) and main.py
(preds = torch.sigmoid(logits); alpha/beta per dataset; APL stores a pseudo-negative as
label_matrix_obs = -pred).
Transcribed: neg_log, loss_em, loss_em_apl (the per-entry loss matrices, as written, with masked
assignment into zeros_like(preds)), compute_batch_loss (sum of loss_mtx / (B*C)).
Deviations: plain functions of (preds, observed_labels, alpha, beta) instead of the batch / P / Z
dicts; the asserts on the label range are kept; a `reduction` argument is added ("mean" = the
official compute_batch_loss, "sum" = its sum without the 1/(B*C), "none" = loss_mtx).
"""

from __future__ import annotations

import torch

LOG_EPSILON = 1e-5


def neg_log(x):
    return -torch.log(x + LOG_EPSILON)


def loss_em(preds, observed_labels, alpha):
    assert torch.min(observed_labels) >= 0
    loss_mtx = torch.zeros_like(preds)
    loss_mtx[observed_labels == 1] = neg_log(preds[observed_labels == 1])
    loss_mtx[observed_labels == 0] = -alpha * (
        preds[observed_labels == 0] * neg_log(preds[observed_labels == 0])
        + (1 - preds[observed_labels == 0]) * neg_log(1 - preds[observed_labels == 0])
    )
    return loss_mtx


def loss_em_apl(preds, observed_labels, alpha, beta):
    assert torch.min(observed_labels) >= -1
    loss_mtx = torch.zeros_like(preds)
    loss_mtx[observed_labels == 1] = neg_log(preds[observed_labels == 1])
    loss_mtx[observed_labels == 0] = -alpha * (
        preds[observed_labels == 0] * neg_log(preds[observed_labels == 0])
        + (1 - preds[observed_labels == 0]) * neg_log(1 - preds[observed_labels == 0])
    )
    soft_label = -observed_labels[observed_labels < 0]
    loss_mtx[observed_labels < 0] = beta * (
        soft_label * neg_log(preds[observed_labels < 0])
        + (1 - soft_label) * neg_log(1 - preds[observed_labels < 0])
    )
    return loss_mtx


def compute_batch_loss(logits, observed_labels, alpha=0.2, beta=0.02, apl=True, reduction="mean"):
    preds = torch.sigmoid(logits)
    assert preds.dim() == 2
    batch_size, num_classes = preds.shape
    assert torch.max(observed_labels) <= 1
    assert torch.min(observed_labels) >= -1
    if apl:
        loss_mtx = loss_em_apl(preds, observed_labels, alpha, beta)
    else:
        loss_mtx = loss_em(preds, observed_labels, alpha)
    if reduction == "none":
        return loss_mtx
    if reduction == "sum":
        return loss_mtx.sum()
    loss_denom_mtx = (num_classes * batch_size) * torch.ones_like(preds)
    return (loss_mtx / loss_denom_mtx).sum()
