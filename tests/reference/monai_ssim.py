"""MONAI's SSIM loss in 2-D and 3-D, transcribed in float64.

Package: monai 1.6.1 (PyPI wheel).
- monai/metrics/regression.py: _gaussian_kernel (verbatim) and compute_ssim_and_cs (its
  gaussian branch).
- monai/losses/ssim_loss.py: SSIMLoss.forward (1 - the per-image mean of the SSIM map, then
  the batch mean), with monai/metrics/regression.py SSIMMetric._compute_tensor's per-image mean
  over the channels and spatial axes.
Deviations: compute_ssim_and_cs casts its inputs to float32 (convert_data_type(...,
dtype=torch.float)); here they stay float64 (the kernel follows the input's dtype, as
convert_to_dst_type makes it); the kernel is built in float64; reduction added.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_kernel(spatial_dims, num_channels, kernel_size, kernel_sigma):
    def gaussian_1d(kernel_size, sigma):
        dist = torch.arange(
            start=(1 - kernel_size) / 2, end=(1 + kernel_size) / 2, step=1, dtype=torch.float64
        )
        gauss = torch.exp(-torch.pow(dist / sigma, 2) / 2)
        return (gauss / gauss.sum()).unsqueeze(dim=0)

    gaussian_kernel_x = gaussian_1d(kernel_size[0], kernel_sigma[0])
    gaussian_kernel_y = gaussian_1d(kernel_size[1], kernel_sigma[1])
    kernel = torch.matmul(gaussian_kernel_x.t(), gaussian_kernel_y)

    kernel_dimensions = (num_channels, 1, kernel_size[0], kernel_size[1])

    if spatial_dims == 3:
        gaussian_kernel_z = gaussian_1d(kernel_size[2], kernel_sigma[2])[None,]
        kernel = torch.mul(
            kernel.unsqueeze(-1).repeat(1, 1, kernel_size[2]),
            gaussian_kernel_z.expand(kernel_size[0], kernel_size[1], kernel_size[2]),
        )
        kernel_dimensions = (num_channels, 1, kernel_size[0], kernel_size[1], kernel_size[2])

    return kernel.expand(kernel_dimensions)


def compute_ssim_and_cs(y_pred, y, spatial_dims, data_range=1.0, k1=0.01, k2=0.03):
    kernel_size, kernel_sigma = (11,) * spatial_dims, (1.5,) * spatial_dims
    num_channels = y_pred.size(1)
    kernel = _gaussian_kernel(spatial_dims, num_channels, kernel_size, kernel_sigma)
    kernel = kernel.to(y_pred)

    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2

    conv_fn = getattr(F, f"conv{spatial_dims}d")
    mu_x = conv_fn(y_pred, kernel, groups=num_channels)
    mu_y = conv_fn(y, kernel, groups=num_channels)
    mu_xx = conv_fn(y_pred * y_pred, kernel, groups=num_channels)
    mu_yy = conv_fn(y * y, kernel, groups=num_channels)
    mu_xy = conv_fn(y_pred * y, kernel, groups=num_channels)

    sigma_x = mu_xx - mu_x * mu_x
    sigma_y = mu_yy - mu_y * mu_y
    sigma_xy = mu_xy - mu_x * mu_y

    contrast_sensitivity = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    ssim_value_full_image = (
        (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    ) * contrast_sensitivity
    return ssim_value_full_image, contrast_sensitivity


def ssim_loss(x, y, spatial_dims, data_range=1.0, reduction="mean"):
    ssim_value, _ = compute_ssim_and_cs(x, y, spatial_dims, data_range)
    ssim_per_batch = ssim_value.view(ssim_value.shape[0], -1).mean(1, keepdim=True)
    loss = 1 - ssim_per_batch.view(-1, 1)
    if reduction == "mean":
        return torch.mean(loss)
    if reduction == "sum":
        return torch.sum(loss)
    return loss.view(-1)
