"""Mann-Whitney (MW) loss for dual-encoder retrieval, written from the paper (no official code).

Paper: N. Sheikholeslami, E. Hosseini, P. Bechard, S. Daruru, S. Rajeswar, "Optimizing What
Matters: AUC-Driven Learning for Robust Neural Retrieval", arXiv:2510.00137 (v1, 2025). No code
repository was found (GitHub code search for the title, "MW loss", Mann-Whitney retrieval
losses, ServiceNow repositories). The paper's equations could not be retrieved in this
environment; this file follows its abstract ("minimizing binary cross entropy over score
differences" of positive-negative pairs, maximizing the Mann-Whitney U statistic = AUC) and its
Fig. 2 caption (every in-batch positive compared with negatives from the whole query x passage
score matrix), i.e. the catalog's reading:
    L = mean_i mean_{(j, k), j != k} BCE(sigmoid(S_ii - S_jk), 1)
and, as a second variant, the per-query U statistic (negatives of query i only).
Written with explicit loops over the pairs and F.binary_cross_entropy_with_logits (independent
of the spec's vectorized form). reduction: "mean" (over the B positives), "sum", "none" ([B]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mw_loss(scores, pooled=True, reduction="mean"):
    b = scores.shape[0]
    per_query = []
    for i in range(b):
        pos = scores[i, i]
        if pooled:
            negs = [scores[j, k] for j in range(b) for k in range(b) if j != k]
        else:
            negs = [scores[i, k] for k in range(b) if k != i]
        if not negs:
            per_query.append(scores.sum() * 0.0)
            continue
        diff = pos - torch.stack(negs)
        per_query.append(
            F.binary_cross_entropy_with_logits(diff, torch.ones_like(diff), reduction="mean")
        )
    out = torch.stack(per_query)
    if reduction == "none":
        return out
    if reduction == "sum":
        return out.sum()
    return out.mean()
