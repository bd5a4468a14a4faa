"""Barlow Twins loss, transcribed from the official code.

Source
------
Repository: https://github.com/facebookresearch/barlowtwins
File:       main.py
Functions:  ``BarlowTwins.forward`` (loss part) and ``off_diagonal``
Commit:     046eec3c7f5c098b42cdf43e04df332957637d6a

Deviations
----------
* Takes the projector outputs z1, z2 instead of images; ``self.bn`` is
  ``nn.BatchNorm1d(D, affine=False)`` in training mode (biased batch variance, eps=1e-5), as in
  the official module (built fresh here, so running statistics play no role).
* Single process: no ``torch.distributed.all_reduce(c)``; ``batch_size`` is the local batch.
* ``lambd`` is an argument (official ``--lambd`` default 0.0051). Out-of-place ops instead of
  ``add_`` / ``pow_`` (same values, autograd-safe).
"""

from __future__ import annotations

import torch
from torch import nn


def off_diagonal(x):
    # return a flattened view of the off-diagonal elements of a square matrix
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins_loss(z1, z2, *, lambd=0.0051):
    bn = nn.BatchNorm1d(z1.shape[1], affine=False).to(z1.dtype).train()
    c = bn(z1).T @ bn(z2)
    c = c / z1.shape[0]
    on_diag = torch.diagonal(c).add(-1).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag
