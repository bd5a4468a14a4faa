"""Min-SNR-gamma weighting and the (scheduled) Pseudo-Huber loss of diffusers' training scripts,
transcribed from the official code.

Repository: huggingface/diffusers @ 58eb52c0803ea9af3abec60841c2a093bdf1f951.
- src/diffusers/training_utils.py: compute_snr(noise_scheduler, timesteps), here taking
  alphas_cumprod instead of the scheduler object.
- examples/text_to_image/train_text_to_image.py (and the same block in
  examples/research_projects/scheduled_huber_loss_training/text_to_image/train_text_to_image.py):
  the `args.snr_gamma` branch, as `min_snr_loss`.
- examples/research_projects/scheduled_huber_loss_training/text_to_image/train_text_to_image.py:
  conditional_loss (k = 2 since the file's first commit, #7527) and the huber_c schedule, as
  `conditional_loss` and `huber_c_schedule`; huber_c may be a per-sample tensor [B] (the form of
  the later main-repo scripts: huber_c.view(-1, 1, ...)).
Deviations: the `.float()` casts (compute_snr, mse_loss inputs) dropped (float64 here);
prediction_type is a string argument instead of noise_scheduler.config; functions of tensors
instead of training-loop code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def compute_snr(alphas_cumprod, timesteps):
    sqrt_alphas_cumprod = alphas_cumprod**0.5
    sqrt_one_minus_alphas_cumprod = (1.0 - alphas_cumprod) ** 0.5
    alpha = sqrt_alphas_cumprod[timesteps]
    sigma = sqrt_one_minus_alphas_cumprod[timesteps]
    snr = (alpha / sigma) ** 2
    return snr


def min_snr_loss(model_pred, target, snr, snr_gamma, prediction_type="epsilon", timesteps=None):
    ones = torch.ones_like(snr) if timesteps is None else torch.ones_like(timesteps)
    mse_loss_weights = torch.stack([snr, snr_gamma * ones], dim=1).min(dim=1)[0]
    if prediction_type == "epsilon":
        mse_loss_weights = mse_loss_weights / snr
    elif prediction_type == "v_prediction":
        mse_loss_weights = mse_loss_weights / (snr + 1)
    loss = F.mse_loss(model_pred, target, reduction="none")
    loss = loss.mean(dim=list(range(1, len(loss.shape)))) * mse_loss_weights
    return loss  # the script then takes loss.mean()


def conditional_loss(model_pred, target, reduction="mean", loss_type="l2", huber_c=0.1):
    if torch.is_tensor(huber_c):
        huber_c = huber_c.view(-1, *([1] * (model_pred.ndim - 1)))
    if loss_type == "l2":
        loss = F.mse_loss(model_pred, target, reduction=reduction)
    elif loss_type == "huber":
        loss = 2 * huber_c * (torch.sqrt((model_pred - target) ** 2 + huber_c**2) - huber_c)
        if reduction == "mean":
            loss = torch.mean(loss)
        elif reduction == "sum":
            loss = torch.sum(loss)
    elif loss_type == "smooth_l1":
        loss = 2 * (torch.sqrt((model_pred - target) ** 2 + huber_c**2) - huber_c)
        if reduction == "mean":
            loss = torch.mean(loss)
        elif reduction == "sum":
            loss = torch.sum(loss)
    else:
        raise NotImplementedError(f"Unsupported Loss Type {loss_type}")
    return loss


def huber_c_schedule(schedule, timestep, huber_c, num_train_timesteps, alphas_cumprod):
    """The per-batch huber_c of the training loop for one integer timestep."""
    if schedule == "exponential":
        alpha = -math.log(huber_c) / num_train_timesteps
        return math.exp(-alpha * timestep)
    if schedule == "snr":
        ac = alphas_cumprod[timestep]
        sigmas = ((1.0 - ac) / ac) ** 0.5
        return float((1 - huber_c) / (1 + sigmas) ** 2 + huber_c)
    if schedule == "constant":
        return huber_c
    raise NotImplementedError(schedule)
