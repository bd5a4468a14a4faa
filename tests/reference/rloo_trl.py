"""RLOO's leave-one-out advantages and clipped objective, transcribed from trl.

Package: trl 1.16.0 (PyPI wheel), trl/trainer/rloo_trainer.py.
- RLOOTrainer._generate_and_score_completions: the KL penalty on the rewards, the grouping
  rewards.view(-1, num_generations), the leave-one-out baselines, the optional normalization
  (with trl/trainer/utils.py nanstd: the Bessel-corrected std), as `rloo_advantages`.
- RLOOTrainer.compute_loss: coef_1 = exp(logps - old_logps), the clipped per-sequence loss and
  its mean, as `rloo_loss`.
Deviations: tensors instead of the trainer's inputs dict; the sequence KL is passed summed
(trl: (per_token_kl * completion_mask).sum(-1) with per_token_kl = old - ref per-token
log-probs); unscorable (NaN) rewards are not modeled (the nan-aware means become plain means,
equal on finite rewards); the cross-process gather and process slice are the identity (one
process); reduction added (upstream: the mean).
"""

from __future__ import annotations

import torch


def nanstd(tensor, dim=None, keepdim=False):
    mean = torch.nanmean(tensor, dim=dim, keepdim=True)
    variance = torch.nanmean((tensor - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(tensor), dim=dim, keepdim=True)
    correction = count / (count - 1)
    correction = torch.where(count > 1, correction, torch.full_like(correction, float("nan")))
    variance *= correction  # Bessel's correction
    std = torch.sqrt(variance)
    if keepdim:
        return std
    if dim is None:
        return std.squeeze()
    return std.squeeze(dim)


def rloo_advantages(rewards, num_generations, kl=None, beta=0.05, normalize_advantages=False):
    if kl is not None and beta != 0.0:
        rewards = rewards - beta * kl
    grouped_rewards = rewards.view(-1, num_generations)
    scorable_counts = (~torch.isnan(grouped_rewards)).sum(dim=1, keepdim=True)
    grouped_sum = torch.nansum(grouped_rewards, dim=1, keepdim=True)
    baselines = (grouped_sum - grouped_rewards) / (scorable_counts - 1)
    baselines = baselines.view(-1)
    advantages = rewards - baselines
    if normalize_advantages:
        advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


def rloo_loss(logps, old_logps, advantages, epsilon_low=0.2, epsilon_high=0.2, reduction="mean"):
    log_ratio = logps - old_logps
    coef_1 = torch.exp(log_ratio)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_sequence_loss1 = coef_1 * advantages
    per_sequence_loss2 = coef_2 * advantages
    per_sequence_loss = -torch.min(per_sequence_loss1, per_sequence_loss2)
    return {"mean": per_sequence_loss.mean(), "sum": per_sequence_loss.sum()}.get(
        reduction, per_sequence_loss
    )
