"""CLIP's symmetric contrastive loss, transcribed from open_clip.

Source
------
Repository: https://github.com/mlfoundations/open_clip
File:       src/open_clip/loss.py
Class:      ``ClipLoss.forward`` (read at 00aa464c20f60168d8220ea25da4adbbe5129eba)

Deviations
----------
* Single process only (``world_size == 1``: no feature gathering, no label caching); the
  distributed branches compute the same matrix from gathered features.
* Function instead of ``nn.Module``. ``logit_scale`` is, as in open_clip, the already
  exponentiated scale (the model passes ``self.logit_scale.exp()``).
* ClipLoss does not normalize; the CLIP model normalizes in ``encode_image``/``encode_text``.
  ``normalize=True`` applies ``F.normalize`` first, as the model's forward does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image_features, text_features, logit_scale, *, normalize=False):
    if normalize:
        image_features = F.normalize(image_features, dim=-1)
        text_features = F.normalize(text_features, dim=-1)
    logits_per_image = logit_scale * image_features @ text_features.T
    logits_per_text = logit_scale * text_features @ image_features.T
    labels = torch.arange(logits_per_image.shape[0], device=image_features.device)
    return (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
    ) / 2
