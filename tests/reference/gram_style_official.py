"""Gram-matrix style loss, transcribed from pytorch/examples' fast_neural_style.

Repository: pytorch/examples, files fast_neural_style/neural_style/utils.py (gram_matrix, read at
commit 2b456e809fe249f2153616578c116e4b2954ca18) and fast_neural_style/neural_style/neural_style.py
(train: style_loss += mse_loss(gram_y, gm_s[:n_batch, :, :]) with mse_loss = torch.nn.MSELoss()).
Deviations: takes the two feature maps of one layer (upstream: VGG-16 features of each image
and a sum over four layers times style_weight); `reduction` added ("mean" is upstream's).
"""

from __future__ import annotations

import torch


def gram_matrix(y):
    (b, ch, h, w) = y.size()
    features = y.view(b, ch, w * h)
    features_t = features.transpose(1, 2)
    gram = features.bmm(features_t) / (ch * h * w)
    return gram


def style_loss(features_y, features_style, reduction="mean"):
    gram_y = gram_matrix(features_y)
    gm_s = gram_matrix(features_style)
    return torch.nn.functional.mse_loss(gram_y, gm_s, reduction=reduction)
