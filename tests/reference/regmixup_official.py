"""RegMixup loss, transcribed from the official repository.

Repository: FrancescoPinto/RegMixup @ fd7846532990da67bf56ae71f78517270252f5f5.
- models/regmixup.py: regmixup_criterion (verbatim) and RegMixupModel.training_step (the
  concatenation of the clean and the mixed batch and their targets), as `regmixup_loss`.
- models/regularizers/mixup.py: mixup_data, as `mixup_data` with lam and the permutation index
  passed in (upstream: np.random.beta and torch.randperm(...).cuda()).
Deviations: the model is applied outside: `regmixup_loss` takes the logits of the clean batch
and of the mixed batch and concatenates them, as upstream concatenates the inputs before one
forward pass; reduction "none" / "sum" added (upstream: F.cross_entropy's mean over 2B rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mixup_data(x, y, lam, index):
    mixed_x = lam * x + (1 - lam) * x[index]
    y_a, y_b = y, y[index]
    return mixed_x, y_a, y_b, lam


def regmixup_criterion(criterion, pred, y_a, y_b, lam):
    return lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)


def regmixup_loss(logits, mixed_logits, y, part_y_b, lam, reduction="mean"):
    part_y_a = y
    targets_a = torch.cat([y, part_y_a])
    targets_b = torch.cat([y, part_y_b])
    out = torch.cat([logits, mixed_logits], dim=0)

    def criterion(pred, target):
        return F.cross_entropy(pred, target, reduction="mean" if reduction == "mean" else "none")

    loss = regmixup_criterion(criterion, out, targets_a, targets_b, lam)
    if reduction == "mean":
        return loss
    b = logits.shape[0]
    per_sample = (loss[:b] + loss[b:]) / 2  # row b's clean and mixed terms over the 2B mean
    return per_sample.sum() if reduction == "sum" else per_sample
