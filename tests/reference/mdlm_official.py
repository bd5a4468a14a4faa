"""Masked-diffusion loss (MDLM), transcribed from the official repository.

Repository: https://github.com/kuleshov-group/mdlm
File:       diffusion.py (Diffusion._forward_pass_diffusion and Diffusion._loss) and
            noise_schedule.py (LogLinearNoise); not pinned to a commit.
Function:   loss = -log_p_theta * (dsigma / expm1(sigma))[:, None]; token mean over the
            attention mask. LogLinearNoise: sigma(t) = -log1p(-(1 - eps) t),
            dsigma(t) = (1 - eps) / (1 - (1 - eps) t), eps = 1e-3.
Deviations: the SUBS parameterization (log p = 0 at unmasked tokens, mask logit = -inf) is
replaced by an explicit mask over tokens, which gives the same sum; logits are over the clean
vocabulary; no padding (attention mask all ones); `per_sequence=True` returns MD4's per-sequence
sum (mean over B) instead of the token mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mdlm_loss(logits, x0, mask, t, eps=1e-3, per_sequence=False):
    sigma = -torch.log1p(-(1 - eps) * t)
    dsigma = (1 - eps) / (1 - (1 - eps) * t)
    log_p_theta = torch.gather(F.log_softmax(logits, -1), -1, x0[:, :, None]).squeeze(-1)
    log_p_theta = torch.where(mask, log_p_theta, torch.zeros_like(log_p_theta))
    loss = -log_p_theta * (dsigma / torch.expm1(sigma))[:, None]
    if per_sequence:
        return loss.sum(-1).mean()
    attention_mask = torch.ones_like(loss)
    return (loss * attention_mask).sum() / attention_mask.sum()
