"""LDAM loss and the DRW class weights, transcribed from the official code.

Repository: kaidic/LDAM-DRW, file losses.py (LDAMLoss.__init__ / forward) and cifar_train.py
(the 'DRW' train_rule's per_cls_weights; losses.py read @ 3193f05c1e6e8c4798c5419e97c5a479d991e3e9).
Deviations: a function instead of an nn.Module; the margins are kept in the input's dtype and
device (upstream: torch.cuda.FloatTensor, i.e. float32 on GPU); index built with torch.bool
(upstream uint8, the deprecated mask dtype of torch.where); a `reduction` argument passed to
F.cross_entropy (upstream: its default 'mean', the weighted mean when weight is given).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def ldam_loss(x, target, cls_num_list, max_m=0.5, weight=None, s=30, reduction="mean"):
    m_list = 1.0 / np.sqrt(np.sqrt(np.asarray(cls_num_list, dtype=np.float64)))
    m_list = m_list * (max_m / np.max(m_list))
    m_list = torch.as_tensor(m_list, dtype=x.dtype)
    index = torch.zeros_like(x, dtype=torch.bool)
    index.scatter_(1, target.data.view(-1, 1), True)
    index_float = index.to(x.dtype)
    batch_m = torch.matmul(m_list[None, :], index_float.transpose(0, 1))
    batch_m = batch_m.view((-1, 1))
    x_m = x - batch_m
    output = torch.where(index, x_m, x)
    return F.cross_entropy(s * output, target, weight=weight, reduction=reduction)


def drw_weights(cls_num_list, beta=0.9999):
    """cifar_train.py, train_rule == 'DRW' after the deferral epoch (betas[idx] = 0.9999)."""
    effective_num = 1.0 - np.power(beta, cls_num_list)
    per_cls_weights = (1.0 - beta) / np.array(effective_num)
    per_cls_weights = per_cls_weights / np.sum(per_cls_weights) * len(cls_num_list)
    return torch.as_tensor(per_cls_weights, dtype=torch.float64)
