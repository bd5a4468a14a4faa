"""GIoU, DIoU and CIoU box losses, transcribed from torchvision.

Source
------
Repository: https://github.com/pytorch/vision
Files:      torchvision/ops/giou_loss.py (``generalized_box_iou_loss``),
            torchvision/ops/diou_loss.py (``distance_box_iou_loss``, ``_diou_iou_loss``),
            torchvision/ops/ciou_loss.py (``complete_box_iou_loss``),
            torchvision/ops/_utils.py (``_loss_inter_union``)
Version:    the stored versions read here (torchvision 0.15 and later: ``torch.pi``,
            ``_upcast_non_float``, ``ValueError`` for an unknown reduction). The giou and diou
            docstrings credit facebookresearch/fvcore and detectron2 (detectron2/layers/losses.py).

Semantics
---------
* boxes are ``(x1, y1, x2, y2)``, shape ``[N, 4]``; ``unbind(dim=-1)`` gives the coordinates.
* intersection: ``(xkis2 - xkis1) * (ykis2 - ykis1)`` where both overlaps are positive, else 0
  (a masked assignment into zeros: no gradient where masked).
* giou: ``1 - (I / (U + eps) - (C - U) / (C + eps))``.
* diou: ``1 - I / (U + eps) + rho^2 / (c^2 + eps)``.
* ciou: diou's loss (computed with the default eps 1e-7, whatever ``eps`` is passed) plus
  ``alpha * v`` with ``v = 4 / pi^2 (atan(w_gt / h_gt) - atan(w / h))^2`` and
  ``alpha = v / (1 - iou + v + eps)`` under ``torch.no_grad()``.
* ``reduction``: ``'none'`` (default) | ``'mean'`` | ``'sum'``.

Deviations: none in value. torchvision does not import beside the CPU torch of this environment,
so the functions are written out here over plain torch tensors.
"""

from __future__ import annotations

import torch


def _loss_inter_union(boxes1, boxes2):
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1 = torch.max(x1, x1g)
    ykis1 = torch.max(y1, y1g)
    xkis2 = torch.min(x2, x2g)
    ykis2 = torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    return intsctk, unionk


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"Invalid Value for arg 'reduction': '{reduction}'")


def generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    intsctk, unionk = _loss_inter_union(boxes1, boxes2)
    iouk = intsctk / (unionk + eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xc1 = torch.min(x1, x1g)
    yc1 = torch.min(y1, y1g)
    xc2 = torch.max(x2, x2g)
    yc2 = torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    miouk = iouk - ((area_c - unionk) / (area_c + eps))
    return _reduce(1 - miouk, reduction)


def _diou_iou_loss(boxes1, boxes2, eps=1e-7):
    intsct, union = _loss_inter_union(boxes1, boxes2)
    iou = intsct / (union + eps)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xc1 = torch.min(x1, x1g)
    yc1 = torch.min(y1, y1g)
    xc2 = torch.max(x2, x2g)
    yc2 = torch.max(y2, y2g)
    diagonal_distance_squared = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    x_p = (x2 + x1) / 2
    y_p = (y2 + y1) / 2
    x_g = (x1g + x2g) / 2
    y_g = (y1g + y2g) / 2
    centers_distance_squared = ((x_p - x_g) ** 2) + ((y_p - y_g) ** 2)
    loss = 1 - iou + (centers_distance_squared / diagonal_distance_squared)
    return loss, iou


def distance_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    loss, _ = _diou_iou_loss(boxes1, boxes2, eps)
    return _reduce(loss, reduction)


def complete_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    diou_loss, iou = _diou_iou_loss(boxes1, boxes2)
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    w_pred = x2 - x1
    h_pred = y2 - y1
    w_gt = x2g - x1g
    h_gt = y2g - y1g
    v = (4 / (torch.pi**2)) * torch.pow((torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    loss = diou_loss + alpha * v
    return _reduce(loss, reduction)
