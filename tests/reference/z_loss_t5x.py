"""Auxiliary z-loss of t5x, transcribed from the official code (JAX -> torch).

Repository: google-research/t5x, file t5x/losses.py. Transcribed: cross_entropy_with_logits
(the primal definition; t5x attaches a hand-written custom_vjp with the same derivative) and the
weighting of compute_weighted_cross_entropy (total_z_loss * weights, summed; divided by
loss_normalizing_factor when one is given).
Deviations: torch instead of jax.numpy (jax.scipy.special.logsumexp -> torch.logsumexp,
jax.lax.square -> ** 2); targets given as one-hot (as t5x's compute_weighted_cross_entropy
builds them, without label smoothing); only the z-loss part of the returned values is used by
the tests.
"""

from __future__ import annotations

import torch


def cross_entropy_with_logits(logits, targets, z_loss):
    logits_sum = torch.logsumexp(logits, dim=-1, keepdim=True)
    log_softmax = logits - logits_sum
    loss = -torch.sum(targets * log_softmax, dim=-1)
    log_z = torch.squeeze(logits_sum, dim=-1)
    total_z_loss = z_loss * log_z**2
    loss = loss + total_z_loss
    return loss, total_z_loss


def weighted_z_loss(logits, weights=None, z_loss=1e-4, loss_normalizing_factor=None):
    """The (z-loss sum, weight_sum) outputs of compute_weighted_cross_entropy (t5x returns
    jnp.sum(total_z_loss) and weight_sum = sum(weights), or the number of tokens)."""
    targets = torch.zeros_like(logits)
    _, total_z_loss = cross_entropy_with_logits(logits, targets, z_loss)
    weight_sum = torch.tensor(float(total_z_loss.numel()), dtype=logits.dtype)
    if weights is not None:
        total_z_loss = total_z_loss * weights
        weight_sum = torch.sum(weights)
    if loss_normalizing_factor is not None:
        total_z_loss = total_z_loss / loss_normalizing_factor
    return torch.sum(total_z_loss), weight_sum
