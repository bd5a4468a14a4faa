"""Jaccard metric loss (JML1, per batch, present classes, hard labels), transcribed from the
official code.

Repository: zifuwanggg/JDTLosses, file losses/jaccard_metric_losses.py, commit
32b3f233c3086ba398fa6d2d5fbae4dff68540e7, class JaccardMetricLoss (forward,
forward_per_batch, compute_score) with loss="JML1", soft_label=False, classes="present",
per_image=False, ignore_index=None. Deviations: not_ignore is all True (no ignore index), so
the boolean indexing is dropped; the loop over classes is kept.
"""

import torch
import torch.nn.functional as F


def jaccard_metric_loss(logits, label, T=1.0, smooth=1.0, log_loss=False):
    prob = (logits / T).log_softmax(dim=1).exp()
    batch_size, num_classes = prob.shape[:2]
    classes = set(label.unique().tolist())
    prob = prob.view(batch_size, num_classes, -1)
    label = F.one_hot(label.view(batch_size, -1), num_classes + 1).permute(0, 2, 1)
    losses = []
    for j in sorted(classes):
        prob_j = prob[:, j, :].reshape(-1)
        label_j = label[:, j, :].reshape(-1)
        cardinality = torch.sum(prob_j + label_j)
        difference = torch.sum(torch.abs(prob_j - label_j))
        intersection = cardinality - difference
        union = cardinality + difference
        score = (intersection + smooth) / (union + smooth)
        losses.append(-torch.log(score) if log_loss else 1.0 - score)
    return sum(losses) / len(losses)
