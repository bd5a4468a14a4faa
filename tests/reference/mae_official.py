"""MAE reconstruction loss, transcribed from the official code.

Repository: facebookresearch/mae, file models_mae.py, method MaskedAutoencoderViT.forward_loss.
Deviation: takes the target already patchified ([N, L, p*p*3]) instead of calling
self.patchify(imgs); norm_pix_loss is an argument instead of a module attribute.
"""

import torch


def forward_loss(target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, norm_pix_loss=True):
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = (pred - target) ** 2
    loss = loss.mean(dim=-1)  # [N, L], mean loss per patch
    loss = (loss * mask).sum() / mask.sum()  # mean loss on removed patches
    return loss
