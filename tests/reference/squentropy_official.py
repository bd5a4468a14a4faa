"""Squentropy, transcribed from the authors' code.

Repository: the squentropy authors' experiment code (Hui, Belkin, Wright), e.g. the
`Loss_Functions.squentropy` method found in several copies of it (not pinned to a commit).
Function:   squentropy(outputs, targets)
Deviations: device handling dropped; one-hot via scatter_ kept.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def squentropy(outputs, targets, num_classes):
    target_final = torch.zeros([targets.size()[0], num_classes], dtype=outputs.dtype).scatter_(
        1, targets.reshape(targets.size()[0], 1), 1
    )
    ce_func = nn.CrossEntropyLoss()
    return (torch.sum(outputs**2) - torch.sum((outputs[target_final == 1]) ** 2)) / (
        num_classes - 1
    ) / target_final.size()[0] + ce_func(outputs, targets)
