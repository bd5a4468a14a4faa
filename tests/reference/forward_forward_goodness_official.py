"""Forward-Forward layer losses, transcribed from two widely used implementations.

- mpezeshki/pytorch_forward_forward @ 1c7a2114bbf85a055dfb50bb13f1516534e9f35d, main.py:
  the loss of Layer.train (g = forward(x).pow(2).mean(1), self.threshold = 2.0,
  loss = log(1 + exp(cat[-g_pos + threshold, g_neg - threshold])).mean()), as `mpezeshki_loss`
  on the layer's outputs h_pos, h_neg.
- loeweX/Forward-Forward @ da516f094c70a4a92042fbbc7ab33303aa7dbfd9, src/ff_model.py:
  FF_model._calc_ff_loss (sum_of_squares - z.shape[1] as logits, nn.BCEWithLogitsLoss against
  1 for the positive and 0 for the negative half of the concatenated batch; the accuracy is
  dropped), as `loewex_loss`.
Deviations: functions of the layer outputs instead of module methods; reduction "none" / "sum"
added as the per-pair mean of the positive and negative terms / their sum (upstream: the mean
over the 2B concatenated rows).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _reduce_pairs(per_row, b, reduction):
    if reduction == "mean":
        return per_row.mean()
    per_pair = (per_row[:b] + per_row[b:]) / 2
    return per_pair.sum() if reduction == "sum" else per_pair


def mpezeshki_loss(h_pos, h_neg, threshold=2.0, reduction="mean"):
    g_pos = h_pos.pow(2).mean(1)
    g_neg = h_neg.pow(2).mean(1)
    per_row = torch.log(1 + torch.exp(torch.cat([-g_pos + threshold, g_neg - threshold])))
    return _reduce_pairs(per_row, h_pos.shape[0], reduction)


def loewex_loss(h_pos, h_neg, reduction="mean"):
    z = torch.cat([h_pos, h_neg], dim=0)
    labels = torch.zeros(z.shape[0], dtype=z.dtype)
    labels[: h_pos.shape[0]] = 1
    sum_of_squares = torch.sum(z**2, dim=-1)
    logits = sum_of_squares - z.shape[1]
    ff_loss = nn.BCEWithLogitsLoss(reduction="mean" if reduction == "mean" else "none")
    per_row = ff_loss(logits, labels.float().to(z.dtype))
    if reduction == "mean":
        return per_row
    return _reduce_pairs(per_row, h_pos.shape[0], reduction)
