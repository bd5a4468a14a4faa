"""Conditional flow matching loss, transcribed from torchcfm.

Repository: atong01/conditional-flow-matching @ cacd4dc8a5b6f50de63780e8f73754c9371f15db.
- torchcfm/conditional_flow_matching.py: pad_t_like_x and ConditionalFlowMatcher's
  compute_mu_t, compute_sigma_t, sample_xt, compute_conditional_flow (verbatim, as functions
  with sigma an argument).
- examples/images/cifar10/train_cifar10.py: loss = torch.mean((vt - ut) ** 2), as `cfm_loss`.
Deviations: the noise epsilon is an argument (upstream: torch.randn_like inside
sample_location_and_conditional_flow); reduction "none" / "sum" added as per-sample means /
their sum (upstream: the mean only).
"""

from __future__ import annotations

import torch


def pad_t_like_x(t, x):
    if isinstance(t, (float, int)):
        return t
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def compute_mu_t(x0, x1, t):
    t = pad_t_like_x(t, x0)
    return t * x1 + (1 - t) * x0


def compute_sigma_t(t, sigma):
    del t
    return sigma


def sample_xt(x0, x1, t, epsilon, sigma=0.0):
    mu_t = compute_mu_t(x0, x1, t)
    sigma_t = compute_sigma_t(t, sigma)
    sigma_t = pad_t_like_x(sigma_t, x0)
    return mu_t + sigma_t * epsilon


def compute_conditional_flow(x0, x1, t, xt):
    del t, xt
    return x1 - x0


def cfm_loss(vt, x0, x1, t=None, xt=None, reduction="mean"):
    ut = compute_conditional_flow(x0, x1, t, xt)
    if reduction == "mean":
        return torch.mean((vt - ut) ** 2)
    per_sample = ((vt - ut) ** 2).reshape(vt.shape[0], -1).mean(1)
    return per_sample.sum() if reduction == "sum" else per_sample
