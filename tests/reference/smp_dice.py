"""segmentation_models_pytorch's DiceLoss (multiclass and multilabel modes), transcribed.

Repository: qubvel-org/segmentation_models.pytorch.
Files and functions transcribed:
- segmentation_models_pytorch/losses/dice.py (commit 0d8c7a63f2484085709b6173354277836359911b):
  DiceLoss.forward for mode="multiclass" / "multilabel" (from_logits: log_softmax(dim=1).exp() /
  logsigmoid().exp(); dims=(0, 2), i.e. the sums run over the batch and the pixels; the loss of
  a class with no true pixel in the batch is multiplied by 0 and still counted by the final
  mean) and DiceLoss.aggregate_loss (loss.mean()) -> smp_dice_loss.
- segmentation_models_pytorch/losses/_functional.py (commit
  14c60e202bad4b0f5a14927950a1cab72f3af42e): soft_dice_score
  ((2 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)) -> soft_dice_score.
Deviations: a function instead of an nn.Module; classes=None, log_loss=False and
ignore_index=None only (the branches for the others are not transcribed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_score(output, target, smooth=0.0, eps=1e-7, dims=None):
    assert output.size() == target.size()
    if dims is not None:
        intersection = torch.sum(output * target, dim=dims)
        cardinality = torch.sum(output + target, dim=dims)
    else:
        intersection = torch.sum(output * target)
        cardinality = torch.sum(output + target)
    return (2.0 * intersection + smooth) / (cardinality + smooth).clamp_min(eps)


def smp_dice_loss(y_pred, y_true, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7):
    """y_pred [N, C, *]; y_true [N, *] class ids (multiclass) or [N, C, *] (multilabel)."""
    if from_logits:
        if mode == "multiclass":
            y_pred = y_pred.log_softmax(dim=1).exp()
        else:
            y_pred = F.logsigmoid(y_pred).exp()
    bs = y_true.size(0)
    num_classes = y_pred.size(1)
    dims = (0, 2)
    if mode == "multiclass":
        y_true = y_true.view(bs, -1)
        y_pred = y_pred.view(bs, num_classes, -1)
        y_true = F.one_hot(y_true, num_classes)
        y_true = y_true.permute(0, 2, 1)
    else:
        y_true = y_true.view(bs, num_classes, -1)
        y_pred = y_pred.view(bs, num_classes, -1)
    scores = soft_dice_score(y_pred, y_true.type_as(y_pred), smooth=smooth, eps=eps, dims=dims)
    loss = 1.0 - scores
    mask = y_true.sum(dims) > 0
    loss *= mask.to(loss.dtype)
    return loss.mean()
