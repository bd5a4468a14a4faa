"""Prototypical networks' few-shot loss, transcribed from the official code.

Repository: jakesnell/prototypical-networks @ 8fdc675e33f630999fe39c1465647a859ad69621.
- protonets/models/few_shot.py: Protonet.loss from the encoder's output on: z_proto as the mean
  of each class's support embeddings (z[:n_class*n_support].view(n_class, n_support, z_dim)),
  the query embeddings zq, log_softmax of minus the squared distances, the negative log
  probability of each query's own class (target_inds: query i of class c is row c), averaged.
- protonets/models/utils.py: euclidean_dist (verbatim).
Deviations: the encoder is left out (the loss takes the support embeddings flat, class-major,
as the official z[:n_class*n_support], and the query embeddings as [n_class, n_query, D], the
official xq layout); log_softmax's implicit dim made explicit (dim=1, the legacy choice for a 2-D
input); reduction added (upstream: the mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def euclidean_dist(x, y):
    # x: N x D
    # y: M x D
    n = x.size(0)
    m = y.size(0)
    d = x.size(1)
    assert d == y.size(1)

    x = x.unsqueeze(1).expand(n, m, d)
    y = y.unsqueeze(0).expand(n, m, d)

    return torch.pow(x - y, 2).sum(2)


def protonet_loss(z_support, z_query, reduction="mean"):
    n_class, n_query, z_dim = z_query.shape
    n_support = z_support.size(0) // n_class
    target_inds = torch.arange(0, n_class).view(n_class, 1, 1).expand(n_class, n_query, 1).long()
    z_proto = z_support.view(n_class, n_support, z_dim).mean(1)
    zq = z_query.reshape(n_class * n_query, z_dim)
    dists = euclidean_dist(zq, z_proto)
    log_p_y = F.log_softmax(-dists, dim=1).view(n_class, n_query, -1)
    per_query = -log_p_y.gather(2, target_inds).squeeze(2)
    return {"mean": per_query.view(-1).mean(), "sum": per_query.sum()}.get(reduction, per_query)
