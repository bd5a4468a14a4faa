"""Softmax (multi-class) focal loss: kornia's official form and the plain hand-written form.

1. ``kornia_focal_loss`` -- transcribed from kornia
---------------------------------------------------
Repository: https://github.com/kornia/kornia
Files:      kornia/losses/focal.py    ``focal_loss``
                (last changed in 2d4a5346135b3492b65e86fbf90ed874e5f5f38e)
            kornia/losses/one_hot.py  ``one_hot``
                (last changed in 320b7e927220ebb4ec63467d91b116e0686ece03)
            kornia/losses/_utils.py   ``mask_ignore_pixels``
                (last changed in 2fd0a252d051a6395bc1f4992f9a4cd78138b422)
Commit:     b4f5a78a13891c7ac4c1cd9695941380273e981d (main HEAD of the mirrored snapshot,
            2026-08-18)

Exact kornia semantics (these are easy to get wrong):

* ``pred``: logits ``[N, C, *]``; ``target``: int64 class indices ``[N, *]``.
* ``reduction='none'`` returns a tensor of shape ``[N, C, *]`` -- the loss is NOT summed over the
  class dim. Entry ``c`` is ``-alpha_c * w_c * (1 - p_c)**gamma * log(p_c) * onehot_c``.
  Since kornia PR #2393 (d79cd14, Jul 2023, kornia >= 0.7); before that kornia returned ``[N, *]``.
* ``reduction='mean'`` is ``torch.mean`` over ALL ``N * C * prod(*)`` entries, i.e. it is the
  per-sample focal loss averaged over samples and then DIVIDED BY C (plus the eps term below).
  ``'sum'`` sums everything (= sum of per-sample losses, plus the eps term).
* ``one_hot`` is not exactly one-hot: ``onehot * (1 - eps) + eps`` with ``eps = 1e-6`` (not
  exposed by ``focal_loss``): the target class gets 1 and every OTHER class gets 1e-6, so
  non-target classes leak ``1e-6 * -(1 - p_c)**gamma * log(p_c)`` into the loss. (Before kornia
  PR #3281, Sep 2025, the target class got ``1 + 1e-6``.) ``one_hot_eps`` below defaults to 1e-6;
  set it to 0 to get the exact one-hot form.
* alpha (``Optional[float]``): NOT the usual "alpha for the positive class". If not None, a
  per-CLASS factor ``[1 - alpha, alpha, alpha, ..., alpha]`` is applied: class index 0 is treated
  as background and weighted by ``1 - alpha``; every class ``c >= 1`` is weighted by ``alpha``.
  There is no ``alpha = -1`` switch; ``alpha=None`` disables it. (MONAI's ``softmax_focal_loss``
  uses the same ``[1 - alpha] + [alpha] * (C - 1)`` convention for a scalar alpha.)
* ``weight``: optional per-class tensor ``[C]`` multiplied in after alpha.
* ``ignore_index`` (default -100): positions whose target equals it get an all-zero one-hot row
  (hence exactly 0 loss in every class entry, eps included) but still COUNT in the 'mean'
  denominator.
* Uses ``log_softmax`` (no eps inside the log); nothing is detached, so the focal weight
  ``(1 - p)**gamma`` is differentiated through.

Deviations: the KORNIA_CHECK shape/device/dtype checks are reduced to plain asserts-by-exception;
``one_hot_eps`` is an added keyword (default = kornia's hard-coded 1e-6).

2. ``focal_loss_plain`` -- the textbook form a user would hand-write
--------------------------------------------------------------------
``ce = F.cross_entropy(logits, target, reduction="none")``; ``p_t = exp(-ce)``;
``loss = (1 - p_t)**gamma * ce`` (= ``-(1 - p_t)**gamma * log p_t``), shape ``[N, *]``, optional
scalar ``alpha`` multiplying every element (Lin et al. 2017 eq. 5 with a constant alpha_t).
``reduction``: ``'none'`` | ``'mean'`` (over all ``N * prod(*)`` elements) | ``'sum'``.
Not from a specific repository; it is the definition, built on ``F.cross_entropy``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _kornia_one_hot(labels: torch.Tensor, num_classes: int, dtype, device, eps: float = 1e-6):
    """kornia/losses/one_hot.py ``one_hot``: ``[N, *]`` int64 -> ``[N, C, *]``."""
    if labels.dtype != torch.int64:
        raise TypeError(f"labels must be of dtype torch.int64. Got: {labels.dtype}")
    one_hot_tensor = F.one_hot(labels, num_classes=num_classes)
    ndim = labels.ndim
    permute_dims = [0] + [ndim] + list(range(1, ndim))
    one_hot_tensor = one_hot_tensor.permute(*permute_dims)
    one_hot_tensor = one_hot_tensor.to(dtype=dtype, device=device)
    one_hot_tensor = one_hot_tensor * (1.0 - eps) + eps
    return one_hot_tensor


def _mask_ignore_pixels(target: torch.Tensor, ignore_index: int | None):
    """kornia/losses/_utils.py ``mask_ignore_pixels``."""
    if ignore_index is None:
        return target, None
    target_mask = target != ignore_index
    target = target.where(target_mask, target.new_zeros(1))
    return target, target_mask


def kornia_focal_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    alpha: float | None,
    gamma: float = 2.0,
    reduction: str = "none",
    weight: torch.Tensor | None = None,
    ignore_index: int | None = -100,
    *,
    one_hot_eps: float = 1e-6,
) -> torch.Tensor:
    """kornia ``kornia.losses.focal_loss`` (kornia/losses/focal.py)."""
    if pred.ndim < 2:
        raise ValueError(f"pred must be [B, C, *], got shape {tuple(pred.shape)}")
    if not (pred.shape[0] == target.shape[0] and target.shape[1:] == pred.shape[2:]):
        out_size = (pred.shape[0],) + tuple(pred.shape[2:])
        raise ValueError(f"Expected target size {out_size}, got {tuple(target.shape)}")

    target, target_mask = _mask_ignore_pixels(target, ignore_index)

    # create the labels one hot tensor
    target_one_hot = _kornia_one_hot(
        target, num_classes=pred.shape[1], dtype=pred.dtype, device=pred.device, eps=one_hot_eps
    )

    # mask ignore pixels
    if target_mask is not None:
        target_one_hot = target_one_hot * target_mask.unsqueeze(1)

    # compute F.softmax over the classes axis
    log_pred_soft = pred.log_softmax(1)

    # compute the actual focal loss
    loss_tmp = -torch.pow(1.0 - log_pred_soft.exp(), gamma) * log_pred_soft * target_one_hot

    num_of_classes = pred.shape[1]
    broadcast_dims = [-1] + [1] * len(pred.shape[2:])
    if alpha is not None:
        alpha_fac = torch.tensor(
            [1 - alpha] + [alpha] * (num_of_classes - 1),
            dtype=loss_tmp.dtype,
            device=loss_tmp.device,
        )
        alpha_fac = alpha_fac.view(broadcast_dims)
        loss_tmp = alpha_fac * loss_tmp

    if weight is not None:
        if weight.shape[0] != num_of_classes or weight.numel() != num_of_classes:
            raise ValueError(
                f"weight shape must be (num_of_classes,): ({num_of_classes},), got {weight.shape}"
            )
        weight = weight.view(broadcast_dims)
        loss_tmp = weight * loss_tmp

    if reduction == "none":
        loss = loss_tmp
    elif reduction == "mean":
        loss = torch.mean(loss_tmp)
    elif reduction == "sum":
        loss = torch.sum(loss_tmp)
    else:
        raise NotImplementedError(f"Invalid reduction mode: {reduction}")
    return loss


def focal_loss_plain(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    """``-(1 - p_t)**gamma * log(p_t)`` built on ``F.cross_entropy(reduction='none')``."""
    ce = F.cross_entropy(logits, target, reduction="none")
    p_t = torch.exp(-ce)
    loss = (1 - p_t) ** gamma * ce
    if alpha is not None:
        loss = alpha * loss
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"Invalid reduction: {reduction!r}")
