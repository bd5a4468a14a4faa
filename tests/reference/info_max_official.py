"""SHOT information-maximization loss, transcribed from the official repository.

Repository: https://github.com/tim-learn/SHOT
File:       object/image_target.py (train_target, the `if args.ent:` block) and object/loss.py
            (Entropy); not pinned to a commit.
Function:   entropy_loss = mean(Entropy(softmax_out)); entropy_loss -= gentropy_loss (args.gent);
            im_loss = entropy_loss * ent_par
Deviations: logits in, softmax inside; args.epsilon = 1e-5; ent_par = 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def entropy(input_, epsilon=1e-5):
    return torch.sum(-input_ * torch.log(input_ + epsilon), dim=1)


def im_loss(outputs, epsilon=1e-5, gent=True, ent_par=1.0):
    softmax_out = nn.Softmax(dim=1)(outputs)
    entropy_loss = torch.mean(entropy(softmax_out, epsilon))
    if gent:
        msoftmax = softmax_out.mean(dim=0)
        gentropy_loss = torch.sum(-msoftmax * torch.log(msoftmax + epsilon))
        entropy_loss = entropy_loss - gentropy_loss
    return entropy_loss * ent_par
