"""Correctness-aware (CA) calibration loss, transcribed from the official repository.

Repository: liuyvchi/Correctness-aware-calibration, commit
d843d4b98b119d3a80bbb50a1f83a057f8635057.
File: src/cal_metrics/temperature_scaling_CA.py, Temperature_adaptive.set_temperature (the
training-loop body: `_, first_predicts = b_logits.max(dim=-1)`, correctness = eq(first_predicts,
labels), weight_correct = correctness.sum() / len, weights[correctness] = 1 - weight_correct,
weights[~correctness] = weight_correct, conf_out = softmax(outputs).max(dim=1)[0],
loss_CA = MSELoss(reduction='none')(conf_out, correctness.float()),
loss = (loss_CA * weights).sum() / weights.sum()).
Transcribed: ca_loss(outputs, b_logits, labels) with outputs the calibrated logits.
Deviations: the calibrator network (temperature/correctness heads) and the training loop are left
out; `.cuda()` calls dropped; the accuracy and the weights are computed in the logits' dtype
(upstream: `correctness.float()` and torch.zeros, float32, so with float64 logits its weights
carry float32 rounding, e.g. 1/33, a relative 3e-8); a `reduction` argument is added ("mean" =
upstream; "none" = loss_CA * weights per sample; "sum" = its sum). An all-correct or all-wrong
batch gives 0/0 = NaN upstream (kept).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def ca_loss(outputs, b_logits, batch_labels, reduction="mean"):
    mse_criterion = nn.MSELoss(reduction="none")
    _, first_predicts = b_logits.max(dim=-1)
    correctness = torch.eq(first_predicts, batch_labels)
    weight_correct = correctness.to(outputs.dtype).sum() / len(correctness)
    weights = torch.zeros(len(correctness), dtype=outputs.dtype)
    weights[correctness] = 1 - weight_correct
    weights[~correctness] = weight_correct
    softmax_vector = F.softmax(outputs, dim=1)
    conf_out = softmax_vector.max(dim=1)[0]
    loss_ca = mse_criterion(conf_out, correctness.to(outputs.dtype))
    loss = loss_ca * weights
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    loss = loss.sum() / weights.sum()
    return loss.mean()
