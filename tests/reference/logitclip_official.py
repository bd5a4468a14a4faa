"""LogitClip, transcribed from the official repository.

Repository: https://github.com/hongxin001/LogitClip
File:       algorithms/clip.py (commit 6a57bca9)
Function:   LogitClipping.train_batch (the loss part; args.temp -> temp, args.lp -> lp,
self.loss_function -> F.cross_entropy, as in the 'ce' base loss)
Deviations: `paper_threshold=True` compares the norm with delta = 1/temp (the paper's clamp)
instead of temp (the code); added `reduction`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def logitclip_ce(logits, targets, temp=1.0, lp=2, reduction="mean", paper_threshold=False):
    delta = 1 / temp
    norms = torch.norm(logits, p=lp, dim=-1, keepdim=True) + 1e-7
    logits_norm = torch.div(logits, norms) * delta
    thr = delta if paper_threshold else temp
    clip = (norms > thr).expand(-1, logits.shape[-1])
    logits_final = torch.where(clip, logits_norm, logits)
    return F.cross_entropy(logits_final, targets, reduction=reduction)
