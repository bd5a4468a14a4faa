"""clDice loss, transcribed from the official code.

Source
------
Repository: https://github.com/jocpae/clDice
Files:      cldice_loss/pytorch/soft_skeleton.py (``soft_erode``, ``soft_dilate``,
            ``soft_open``, ``soft_skel``; commit 017090be7df808d6d83622dc0977569f441dfed7)
            cldice_loss/pytorch/cldice.py (``soft_cldice.forward``; commit
            4b34f6c3ea365744619cb0b51e160c57ab392964)

Deviations
----------
* That cldice.py builds ``SoftSkeletonize(num_iter=10)`` (ignoring its ``iter_`` argument); the
  skeletonizer is ``soft_skel(img, num_iter)`` of soft_skeleton.py here, the 4-d (2-D image)
  branch only.
* A function instead of the nn.Module: ``num_iter``, ``smooth`` and ``exclude_background`` are
  arguments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_erode(img):
    p1 = -F.max_pool2d(-img, (3, 1), (1, 1), (1, 0))
    p2 = -F.max_pool2d(-img, (1, 3), (1, 1), (0, 1))
    return torch.min(p1, p2)


def soft_dilate(img):
    return F.max_pool2d(img, (3, 3), (1, 1), (1, 1))


def soft_open(img):
    return soft_dilate(soft_erode(img))


def soft_skel(img, iter_):
    img1 = soft_open(img)
    skel = F.relu(img - img1)
    for _j in range(iter_):  # upstream: j
        img = soft_erode(img)
        img1 = soft_open(img)
        delta = F.relu(img - img1)
        skel = skel + F.relu(delta - skel * delta)
    return skel


def soft_cldice(y_true, y_pred, num_iter=10, smooth=1.0, exclude_background=False):
    if exclude_background:
        y_true = y_true[:, 1:, :, :]
        y_pred = y_pred[:, 1:, :, :]
    skel_pred = soft_skel(y_pred, num_iter)
    skel_true = soft_skel(y_true, num_iter)
    tprec = (torch.sum(torch.multiply(skel_pred, y_true)) + smooth) / (
        torch.sum(skel_pred) + smooth
    )
    tsens = (torch.sum(torch.multiply(skel_true, y_pred)) + smooth) / (
        torch.sum(skel_true) + smooth
    )
    cl_dice = 1.0 - 2.0 * (tprec * tsens) / (tprec + tsens)
    return cl_dice
