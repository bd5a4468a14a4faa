"""Alignment and uniformity losses, transcribed from the official code.

Source
------
Repository: https://github.com/SsnL/align_uniform
Files:      align_uniform/__init__.py (``align_loss``, ``uniform_loss``, verbatim) and
            examples/stl10/main.py (``main``: how the two are weighted and combined)
Commit:     505907b9112e5e9927bec666ff6858c3f6649d05

Deviations: ``align_uniform_loss`` wraps the training-loop lines of main.py into a function with
the argparse defaults as keyword arguments.
"""

from __future__ import annotations

import torch


def align_loss(x, y, alpha=2):
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def uniform_loss(x, t=2):
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def align_uniform_loss(x, y, *, align_w=1.0, unif_w=1.0, align_alpha=2.0, unif_t=2.0):
    align_loss_val = align_loss(x, y, alpha=align_alpha)
    unif_loss_val = (uniform_loss(x, t=unif_t) + uniform_loss(y, t=unif_t)) / 2
    return align_loss_val * align_w + unif_loss_val * unif_w
