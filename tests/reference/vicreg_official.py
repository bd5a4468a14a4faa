"""VICReg loss, transcribed from the official code.

Source
------
Repository: https://github.com/facebookresearch/vicreg
File:       main_vicreg.py
Functions:  ``VICReg.forward`` (the loss lines) and ``off_diagonal``
Commit:     read at 08c8c0c0aae55f66d7c87377a46a13738cd29040 (that snapshot also computes an
            unused ``rodo_loss``; it does not enter ``loss`` and is left out here).

Deviations
----------
* Takes the expander outputs x, y instead of images; single process (no FullGatherLayer), so
  ``self.args.batch_size`` is the local batch size B and ``num_features`` is D.
* Coefficients are keyword arguments with the official defaults (25, 25, 1). Out-of-place
  ``pow`` instead of ``pow_``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def off_diagonal(x):
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_loss(x, y, *, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    batch_size, num_features = x.shape
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (batch_size - 1)
    cov_y = (y.T @ y) / (batch_size - 1)
    cov_loss = off_diagonal(cov_x).pow(2).sum().div(num_features) + off_diagonal(cov_y).pow(
        2
    ).sum().div(num_features)
    return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
