"""Harmonic loss (HarMax over class-center distances), transcribed from the official repository.

Source
------
Repository: https://github.com/KindXiaoming/grow-crystals (Baek, Liu, Tyagi, Tegmark, "Harmonic
            Loss Trains Interpretable AI Models", arXiv:2502.01628)
Commit:     0f2e6cd03d3211b5c93e325b6c2083afb35083c2 (master, 2025-04-02)
File:       src/utils/model.py
Functions:  ``DistLayer.forward`` (squared distances plus eps, normalized by the row minimum,
            raised to -n), ``MLP_HS.forward`` (prob = x / sum x; logits = log(prob)) and
            ``customNNModule.compute_loss`` for loss_type 'harmonic'
            (-(outputs[arange(B), targets]).mean()).

Official code (verbatim semantics)::

    wx = torch.einsum('bn,vn->bv', x, w)
    ww = torch.norm(w, dim=-1)**2
    xx = torch.norm(x, dim=-1)**2
    dist_sq = ww[None,:] + xx[:,None] - 2 * wx + self.eps
    dist_sq = dist_sq / torch.min(dist_sq, dim=-1, keepdim = True)[0]
    return (dist_sq)**(-self.n)
    ...
    prob = prob_unnorm/torch.sum(prob_unnorm, dim=1, keepdim=True)
    logits = torch.log(prob)
    ...
    return (-1)*(outputs[torch.arange(outputs.size(0)), targets.squeeze()].mean())

Defaults: ``DistLayer(n=1., eps=1e-4)``; run_exp.py ``--n`` defaults to 1; the MNIST notebook
uses n=28.

Deviations: the layer's weight is an argument ``w`` [C, D] instead of an nn.Linear parameter;
``reduction`` added ('mean' is the official value; 'none' returns -log P[b, y_b], 'sum' their
sum). The GPT-2 variant (GPT2/model_l2loss.py: dist_sq / n_embd, pow_n = n_embd, no eps, 0.01/V
added to prob, NaNs filled) is not transcribed.
"""

from __future__ import annotations

import torch


def dist_layer(x, w, n=1.0, eps=1e-4):
    """``DistLayer.forward``: unnormalized HarMax weights [B, C]."""
    wx = torch.einsum("bn,vn->bv", x, w)  # (B, V)
    ww = torch.norm(w, dim=-1) ** 2  # (V,)
    xx = torch.norm(x, dim=-1) ** 2  # (B,)
    dist_sq = ww[None, :] + xx[:, None] - 2 * wx + eps
    dist_sq = dist_sq / torch.min(dist_sq, dim=-1, keepdim=True)[0]
    return (dist_sq) ** (-n)


def harmax_log_prob(x, w, n=1.0, eps=1e-4):
    """``MLP_HS.forward`` after the last layer: log of the normalized DistLayer output."""
    prob_unnorm = dist_layer(x, w, n=n, eps=eps)
    prob = prob_unnorm / torch.sum(prob_unnorm, dim=1, keepdim=True)
    return torch.log(prob)


def harmonic_loss(x, w, targets, n=1.0, eps=1e-4, reduction="mean"):
    """``compute_loss`` with loss_type 'harmonic' on ``harmax_log_prob``."""
    outputs = harmax_log_prob(x, w, n=n, eps=eps)
    picked = outputs[torch.arange(outputs.size(0)), targets]
    if reduction == "mean":
        return (-1) * picked.mean()
    if reduction == "sum":
        return (-1) * picked.sum()
    if reduction == "none":
        return (-1) * picked
    raise ValueError(f"Invalid reduction: {reduction!r}")
