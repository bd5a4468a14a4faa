"""Pseudo-Huber metric of improved consistency training (iCT), two transcriptions.

1. The paper: Song and Dhariwal, Improved Techniques for Training Consistency Models, ICLR 2024,
   arXiv:2310.14189, Section 3.3: d(x, y) = sqrt(||x - y||_2^2 + c^2) - c with c = 0.00054 sqrt(d),
   d the data dimension; Section 3.4: lambda(sigma_i) = 1 / (sigma_{i+1} - sigma_i). OpenAI released
   no iCT code, so `paper_pseudo_huber` is the equation written out in torch.
2. Kinyugo/consistency_models, consistency_models/consistency_models.py at commit
   2e6618d4b908f7ef7f5424d83afe0eb5c6c85957: pseudo_huber_loss (elementwise) and
   improved_loss_weighting, combined as its README's training step does:
   (pseudo_huber_loss(predicted, target) * loss_weights).mean().
Deviations: none in the arithmetic; the per-sample weights are passed in (upstream indexes
improved_loss_weighting(sigmas) by the sampled timesteps and pads them to the data's rank).
"""

from __future__ import annotations

import math

import torch


def paper_pseudo_huber(x, y, weight=None, c0=0.00054):
    """Per-sample lambda * d(x, y), shape [B]."""
    c = c0 * math.sqrt(math.prod(x.shape[1:]))
    d = torch.sqrt(((x - y) ** 2).flatten(1).sum(1) + c**2) - c
    return d if weight is None else weight * d


def improved_loss_weighting(sigmas):
    return 1 / (sigmas[1:] - sigmas[:-1])


def pseudo_huber_loss(input, target):
    c = 0.00054 * math.sqrt(math.prod(input.shape[1:]))
    return torch.sqrt((input - target) ** 2 + c**2) - c


def pad_dims_like(x, other):
    ndim = other.ndim - x.ndim
    return x.view(*x.shape, *((1,) * ndim))


def kinyugo_training_loss(predicted, target, loss_weights):
    return (pseudo_huber_loss(predicted, target) * pad_dims_like(loss_weights, predicted)).mean()
