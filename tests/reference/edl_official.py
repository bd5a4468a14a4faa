"""Evidential deep learning loss (digamma form), transcribed from the reference implementation.

Source
------
Repository: https://github.com/dougbrion/pytorch-classification-uncertainty (the PyTorch
            implementation the paper's community uses; the authors' original is TensorFlow)
File:       losses.py
Functions:  ``relu_evidence``, ``kl_divergence``, ``edl_loss``, ``edl_digamma_loss``
Commit:     9a613bb73e980b099c940fb90ba6b9b4f63afa7b

Semantics
---------
* ``alpha = relu(output) + 1``; ``y`` is the one-hot target (the repository's
  ``one_hot_embedding``).
* ``A = sum(y * (digamma(S) - digamma(alpha)))`` with ``S = sum(alpha)`` over classes.
* ``kl_alpha = (alpha - 1) * (1 - y) + 1``; ``kl_divergence`` against the uniform Dirichlet
  (``beta`` = ones, ``lnB_uni = sum lgamma(1) - lgamma(C)``).
* ``annealing_coef = min(1, epoch_num / annealing_step)``, computed as a float32 tensor (as the
  original; tests use epoch ratios that float32 holds exactly).
* The result is ``mean`` over the batch of ``A + annealing_coef * KL``.

Deviations: ``device`` arguments dropped (CPU); ``reduction="none"`` added to return the
per-sample vector before the official mean; ``beta`` (the uniform Dirichlet's ones) takes
``alpha``'s dtype instead of float32, whose ``lgamma(C)`` rounds at about 1e-8 relative and would
hide float64 differences (the maths is unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def relu_evidence(y):
    return F.relu(y)


def kl_divergence(alpha, num_classes):
    beta = torch.ones([1, num_classes], dtype=alpha.dtype)
    S_alpha = torch.sum(alpha, dim=1, keepdim=True)
    S_beta = torch.sum(beta, dim=1, keepdim=True)
    lnB = torch.lgamma(S_alpha) - torch.sum(torch.lgamma(alpha), dim=1, keepdim=True)
    lnB_uni = torch.sum(torch.lgamma(beta), dim=1, keepdim=True) - torch.lgamma(S_beta)
    dg0 = torch.digamma(S_alpha)
    dg1 = torch.digamma(alpha)
    kl = torch.sum((alpha - beta) * (dg1 - dg0), dim=1, keepdim=True) + lnB + lnB_uni
    return kl


def edl_loss(func, y, alpha, epoch_num, num_classes, annealing_step):
    S = torch.sum(alpha, dim=1, keepdim=True)
    A = torch.sum(y * (func(S) - func(alpha)), dim=1, keepdim=True)
    annealing_coef = torch.min(
        torch.tensor(1.0, dtype=torch.float32),
        torch.tensor(epoch_num / annealing_step, dtype=torch.float32),
    )
    kl_alpha = (alpha - 1) * (1 - y) + 1
    kl_div = annealing_coef * kl_divergence(kl_alpha, num_classes)
    return A + kl_div


def edl_digamma_loss(output, target, epoch_num, num_classes, annealing_step, reduction="mean"):
    evidence = relu_evidence(output)
    alpha = evidence + 1
    per = edl_loss(torch.digamma, target, alpha, epoch_num, num_classes, annealing_step)
    return torch.mean(per) if reduction == "mean" else per[:, 0]
