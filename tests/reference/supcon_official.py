"""Supervised contrastive loss, transcribed from the official SupContrast code.

Source
------
Repository: https://github.com/HobbitLong/SupContrast
File:       losses.py
Class:      ``SupConLoss`` (``__init__`` defaults + ``forward``)
Commit:     66a8fe53880d6a1084b2e4e0db0a019024d6d41a (master HEAD, 2023-12-26). ``losses.py`` was
            last changed on master by 72fd9894f39023906308a21ec404b3b01527b8f5
            ("fix: nan loss values", merged via PR #142), which introduced ``mask_pos_pairs``.

What the current official code does (and this transcription does)
-----------------------------------------------------------------
* ``features``: ``[bsz, n_views, ...]`` (flattened to ``[bsz, n_views, D]``). The loss does NOT
  L2-normalise the features; the official training script normalises them in the model head
  (``F.normalize`` in ``networks/resnet_big.py``). Callers must normalise themselves if wanted.
* ``labels=None`` and ``mask=None``: SimCLR (positives = the other views of the same sample).
* ``contrast_mode='all'``: every view is an anchor; ``'one'``: only view 0 is an anchor.
* logits = anchor . contrast^T / temperature, minus the row max. The max is ``.detach()``-ed;
  subtracting it cancels in log_prob, so neither the value nor the gradient depends on it.
* The self-contrast entry is removed from both the positive mask and the denominator.
* ``log_prob = logits - log(sum(exp(logits) * logits_mask))`` -- the current code has NO ``+1e-9``
  inside the log (an ``eps`` appears only on some non-master branches of the repo).
* Anchors with no positive: ``mask_pos_pairs = where(mask.sum(1) < 1e-6, 1, mask.sum(1))``, so
  their ``mean_log_prob_pos`` is 0/1 = 0 and their loss is exactly 0 -- but they are STILL counted
  in the final ``.mean()`` (the divisor is ``anchor_count * bsz``, not the number of anchors that
  have positives). Before commit 72fd989 this produced NaN.
* loss = -(temperature / base_temperature) * mean_log_prob_pos, then ``view(anchor_count,
  bsz).mean()``. NOTE: ``main_supcon.py`` builds ``SupConLoss(temperature=opt.temp)`` and leaves
  ``base_temperature`` at 0.07, so with the README's ``--temp 0.1`` / ``--temp 0.5`` runs the loss
  is scaled by ``temp / 0.07`` (not 1). Pass ``base_temperature`` explicitly to reproduce that.

Deviations (none change values)
-------------------------------
* Function instead of ``nn.Module``; ``temperature``, ``contrast_mode``, ``base_temperature`` are
  keyword arguments with the official defaults (0.07, 'all', 0.07).
* Masks are built in ``features.dtype`` / ``features.device`` instead of float32 + a cuda/cpu
  choice; they hold 0/1 values and integer counts, which are exact in either dtype.
* Added ``reduction``: ``'mean'`` (default) is the official scalar; ``'none'`` returns the
  per-anchor losses of shape ``[anchor_count * bsz]`` in the official (view-major) anchor order,
  i.e. the tensor right before the official ``.view(anchor_count, batch_size).mean()``;
  ``'sum'`` sums it.
"""

from __future__ import annotations

import torch


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    temperature: float = 0.07,
    contrast_mode: str = "all",
    base_temperature: float = 0.07,
    reduction: str = "mean",
) -> torch.Tensor:
    """Official ``SupConLoss.forward`` (HobbitLong/SupContrast@66a8fe5, losses.py)."""
    device = features.device
    dtype = features.dtype

    if len(features.shape) < 3:
        raise ValueError(
            "`features` needs to be [bsz, n_views, ...],at least 3 dimensions are required"
        )
    if len(features.shape) > 3:
        features = features.view(features.shape[0], features.shape[1], -1)

    batch_size = features.shape[0]
    if labels is not None and mask is not None:
        raise ValueError("Cannot define both `labels` and `mask`")
    elif labels is None and mask is None:
        mask = torch.eye(batch_size, dtype=dtype, device=device)
    elif labels is not None:
        labels = labels.contiguous().view(-1, 1)
        if labels.shape[0] != batch_size:
            raise ValueError("Num of labels does not match num of features")
        mask = torch.eq(labels, labels.T).to(dtype=dtype, device=device)
    else:
        mask = mask.to(dtype=dtype, device=device)

    contrast_count = features.shape[1]
    contrast_feature = torch.cat(torch.unbind(features, dim=1), dim=0)
    if contrast_mode == "one":
        anchor_feature = features[:, 0]
        anchor_count = 1
    elif contrast_mode == "all":
        anchor_feature = contrast_feature
        anchor_count = contrast_count
    else:
        raise ValueError(f"Unknown mode: {contrast_mode}")

    # compute logits
    anchor_dot_contrast = torch.div(torch.matmul(anchor_feature, contrast_feature.T), temperature)
    # for numerical stability
    logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
    logits = anchor_dot_contrast - logits_max.detach()

    # tile mask
    mask = mask.repeat(anchor_count, contrast_count)
    # mask-out self-contrast cases
    logits_mask = torch.scatter(
        torch.ones_like(mask),
        1,
        torch.arange(batch_size * anchor_count, device=device).view(-1, 1),
        0,
    )
    mask = mask * logits_mask

    # compute log_prob
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))

    # compute mean of log-likelihood over positive
    # (official: edge case of anchors without positives -> divide by 1 instead of 0)
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs

    # loss
    loss = -(temperature / base_temperature) * mean_log_prob_pos
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.view(anchor_count, batch_size).mean()
    raise ValueError(f"Invalid reduction: {reduction!r}")
