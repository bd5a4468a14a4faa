"""BPR loss, transcribed from two recommender code bases (plain torch, float64-friendly).

Sources
-------
1. Repository: https://github.com/gusye1234/LightGCN-PyTorch (the LightGCN authors' PyTorch port)
   File:       code/model.py
   Function:   ``LightGCN.bpr_loss(users, pos, neg)`` (also ``PureMF.bpr_loss``), the loss line::

       pos_scores = torch.sum(users_emb * pos_emb, dim=1)
       neg_scores = torch.sum(users_emb * neg_emb, dim=1)
       loss = torch.mean(torch.nn.functional.softplus(neg_scores - pos_scores))

   Read at the version stored with commit 024317535ae27cf07817795b37f95cf6c12a96a5 (the loss
   line is the same in every version of the file). Deviations: takes the scores directly (the
   embedding look-up and dot products are the model, not the loss); ``reg_loss`` (L2 on the
   ego embeddings, returned separately) is not transcribed; ``neg_scores`` may carry a trailing
   K dim (several negatives per sample), reduced by the same ``torch.mean``.

2. Repository: https://github.com/RUCAIBox/RecBole
   File:       recbole/model/loss.py
   Class:      ``BPRLoss(gamma=1e-10).forward(pos_score, neg_score)``, read at commit
               251c660ee3b582b9370c5b1cdf35b2c33b0ea49d::

       loss = -torch.log(self.gamma + torch.sigmoid(pos_score - neg_score)).mean()

   No deviation. Note the gamma inside the log: not the softplus form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def lightgcn_bpr_loss(pos_scores, neg_scores, reduction: str = "mean"):
    """LightGCN-PyTorch: mean(softplus(neg - pos)); pos [N], neg [N] or [N, K]."""
    if neg_scores.dim() > pos_scores.dim():
        pos_scores = pos_scores.unsqueeze(-1)
    return _reduce(F.softplus(neg_scores - pos_scores), reduction)


def recbole_bpr_loss(pos_score, neg_score, gamma: float = 1e-10):
    """RecBole BPRLoss: -log(gamma + sigmoid(pos - neg)).mean()."""
    return -torch.log(gamma + torch.sigmoid(pos_score - neg_score)).mean()
