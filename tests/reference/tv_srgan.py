"""Total-variation loss of SRGAN code bases, as used by iSeeBetter, transcribed to plain torch.

Repository: amanchadha/iSeeBetter, SRGAN/loss.py at commit
c8c6836d3f3689128e5c53be8dc10a3b3bbdf5df (the same TVLoss as leftthomas/SRGAN's loss.py and many
of its forks). Transcribed: TVLoss.forward and tensor_size (GeneratorLoss weights it by 2e-8).
Deviations: a function instead of an nn.Module; none in the arithmetic.
"""

from __future__ import annotations

import torch


def tensor_size(t):
    return t.size()[1] * t.size()[2] * t.size()[3]


def tv_loss(x, tv_loss_weight=1):
    batch_size = x.size()[0]
    h_x = x.size()[2]
    w_x = x.size()[3]
    count_h = tensor_size(x[:, :, 1:, :])
    count_w = tensor_size(x[:, :, :, 1:])
    h_tv = torch.pow((x[:, :, 1:, :] - x[:, :, : h_x - 1, :]), 2).sum()
    w_tv = torch.pow((x[:, :, :, 1:] - x[:, :, :, : w_x - 1]), 2).sum()
    return tv_loss_weight * 2 * (h_tv / count_h + w_tv / count_w) / batch_size
