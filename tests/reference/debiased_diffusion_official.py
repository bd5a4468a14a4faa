"""Debiased-estimation loss weight, transcribed from the paper's code and from kohya's sd-scripts.

- yuhuUSTC/Debias @ e4cd26086ee50cd229150e8932308bb7e9fceffa,
  guided_diffusion/gaussian_diffusion.py: GaussianDiffusion.__init__
  (self.snr = 1.0 / (1 - self.alphas_cumprod) - 1, self.sqrt_snr) and
  training_losses (the "Debias (Ours) weighting" branch:
  weight = 1 / sqrt_snr[t]; terms["mse"] = mean_flat(weight * (target - model_output) ** 2)), as
  `paper_snr` and `paper_debias_mse`.
- kohya-ss/sd-scripts @ 48d368fa557731ad0488c07304dfeba8c07910eb, library/custom_train_functions.py:
  prepare_scheduler_for_custom_training (all_snr) and apply_debiased_estimation (verbatim, with
  all_snr passed instead of the scheduler object); sdxl_train.py's call site (mse per element,
  loss.mean([1, 2, 3]), the weight, then loss.mean()), as `kohya_debiased_loss`.
Deviations: numpy arrays of the paper's code are torch float64 tensors; `_extract_into_tensor`
is plain indexing with broadcasting; no `.float()` casts; reduction added (upstream: the
training loop's mean).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def mean_flat(tensor):
    return tensor.mean(dim=list(range(1, len(tensor.shape))))


def paper_snr(alphas_cumprod):
    return 1.0 / (1 - alphas_cumprod) - 1


def paper_debias_mse(model_output, target, t, alphas_cumprod, reduction="mean"):
    sqrt_snr = torch.sqrt(paper_snr(alphas_cumprod))
    weight = (1 / sqrt_snr)[t].reshape(-1, *([1] * (target.dim() - 1)))
    return _reduce(mean_flat(weight * (target - model_output) ** 2), reduction)


def all_snr(alphas_cumprod):
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - alphas_cumprod)
    alpha = sqrt_alphas_cumprod
    sigma = sqrt_one_minus_alphas_cumprod
    return (alpha / sigma) ** 2


def apply_debiased_estimation(loss, timesteps, all_snr_, v_prediction=False):
    snr_t = torch.stack([all_snr_[t] for t in timesteps])  # batch_size
    snr_t = torch.minimum(snr_t, torch.ones_like(snr_t) * 1000)
    if v_prediction:
        weight = 1 / (snr_t + 1)
    else:
        weight = 1 / torch.sqrt(snr_t)
    loss = weight * loss
    return loss


def kohya_debiased_loss(
    noise_pred, target, timesteps, alphas_cumprod, v_prediction=False, reduction="mean"
):
    loss = F.mse_loss(noise_pred, target, reduction="none")
    loss = loss.mean(list(range(1, loss.dim())))
    loss = apply_debiased_estimation(loss, timesteps, all_snr(alphas_cumprod), v_prediction)
    return _reduce(loss, reduction)
