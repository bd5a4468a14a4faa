"""BYOL's regression loss and SimSiam's negative cosine, transcribed to torch.

Sources
-------
BYOL: https://github.com/google-deepmind/deepmind-research
  byol/utils/helpers.py (``l2_normalize``, ``regression_loss``)
  at 4822a45504cb05042841a358f070bba35c6fbc24
  byol/byol_experiment.py (``_loss_fn``: the two regression losses are added, then ``jnp.mean``).
  JAX -> torch: ``jax.lax.rsqrt`` -> ``torch.rsqrt``, ``jnp.maximum`` -> ``torch.clamp_min``,
  ``jax.lax.stop_gradient`` -> ``.detach()``.
SimSiam: https://github.com/facebookresearch/simsiam
  main_simsiam.py (``train``: ``criterion = nn.CosineSimilarity(dim=1)``,
  ``loss = -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5``) and
  simsiam/builder.py (``forward`` returns ``z1.detach(), z2.detach()``).
Deviations: functions of the four head outputs instead of the networks.
"""

from __future__ import annotations

import torch
from torch import nn


def l2_normalize(x, axis=None, epsilon=1e-12):
    square_sum = torch.sum(torch.square(x), dim=axis, keepdim=True)
    x_inv_norm = torch.rsqrt(torch.clamp_min(square_sum, epsilon))
    return x * x_inv_norm


def regression_loss(x, y):
    normed_x, normed_y = l2_normalize(x, axis=-1), l2_normalize(y, axis=-1)
    return torch.sum((normed_x - normed_y) ** 2, dim=-1)


def byol_loss(p1, p2, z1, z2):
    """prediction_view1 = p1, projection_view2 = z2 (target network), etc."""
    repr_loss = regression_loss(p1, z2.detach())
    repr_loss = repr_loss + regression_loss(p2, z1.detach())
    return torch.mean(repr_loss)


def simsiam_loss(p1, p2, z1, z2):
    criterion = nn.CosineSimilarity(dim=1)
    z1, z2 = z1.detach(), z2.detach()
    return -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5
