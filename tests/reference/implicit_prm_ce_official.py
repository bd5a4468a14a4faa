"""Implicit PRM cross-entropy loss, transcribed from the official PRIME code.

Repository: PRIME-RL/PRIME @ 18ad596f08d487bb546d80d738d99ec697bd2e75.
- training/verl/trainer/ppo/core_algos.py: compute_ce_dpo_loss_rm (verbatim).
- training/verl/workers/actor/dp_prime.py: compute_implicit_reward's
  q = log_probs - ref_log_probs (the reference log-probs are computed under no_grad, or are the
  stored old_log_probs), and update_policy's call prime_loss_fn(q, acc, eos_mask=..., beta=...)
  with beta = prime_model.beta_train (default 0.05), as `prime_loss`.
Deviations: tensors instead of DataProto micro-batches; the reference's no_grad is a detach;
the response slicing [:, -response_length:] is left to the caller; reduction added (upstream:
F.binary_cross_entropy's mean).
"""

from __future__ import annotations

import torch


def compute_ce_dpo_loss_rm(token_level_scores, acc, eos_mask, beta, reduction="mean"):
    cur_scores = ((token_level_scores * eos_mask).sum(dim=1) * beta).sigmoid()
    cur_dpo_loss = torch.nn.functional.binary_cross_entropy(cur_scores, acc, reduction=reduction)
    return cur_dpo_loss


def prime_loss(log_prob, ref_log_prob, eos_mask, acc, beta=0.05, reduction="mean"):
    q = log_prob - ref_log_prob.detach()
    return compute_ce_dpo_loss_rm(q, acc, eos_mask=eos_mask, beta=beta, reduction=reduction)
