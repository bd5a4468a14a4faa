"""Poly-1 cross-entropy (PolyLoss), ported from the paper's TensorFlow snippets to torch.

Source
------
Paper: Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov,
       "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions",
       ICLR 2022, arXiv:2204.12511 (v2). No official code repository was released; the paper's
       own TensorFlow code listings are the official code. I could not retrieve the paper
       PDF/TeX in this environment, so the listings below are reproduced from the paper as
       recalled and cross-checked against several independent public copies of the same snippets
       and against optax's ``optax.losses.poly_loss_cross_entropy`` (which cites the paper and
       computes ``CE(labels) + epsilon * sum(labels * (1 - softmax))``). Listing numbers are not
       quoted for that reason.

Main-text Poly-1 snippet (TF)::

    def poly1_cross_entropy(logits, labels, epsilon):
        # epsilon >=-1.
        # pt, CE, and Poly1 have shape [batch].
        pt = tf.reduce_sum(labels * tf.nn.softmax(logits), axis=-1)
        CE = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        Poly1 = CE + epsilon * (1 - pt)
        return Poly1

Appendix snippet, Poly-1 with alpha label smoothing (used for the ImageNet runs, alpha = 0.1)::

    def poly1_cross_entropy(logits, labels, epsilon, alpha=0.1):
        # epsilon >=-1.
        # one minus pt, CE, and Poly1 have shape [batch].
        num_classes = labels.get_shape().as_list()[-1]
        smooth_labels = labels * (1 - alpha) + alpha / num_classes
        one_minus_pt = tf.reduce_sum(smooth_labels * (1 - tf.nn.softmax(logits)), axis=-1)
        CE_loss = tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=alpha, reduction=None)
        CE = CE_loss(labels, logits)
        Poly1 = CE + epsilon * one_minus_pt
        return Poly1

So with label smoothing BOTH terms use the smoothed labels: CE is Keras' label-smoothed CE
(``y * (1 - alpha) + alpha / C``, the same convention as ``F.cross_entropy(label_smoothing=alpha)``)
and the poly term is ``sum(smooth_labels * (1 - softmax))`` = ``1 - <smooth_labels, softmax>``,
not ``1 - p_target``. With ``alpha = 0`` the two snippets coincide.

Main-text Poly-1 focal snippet (sigmoid focal loss, TF)::

    def poly1_focal_loss(logits, labels, epsilon, gamma):
        # epsilon >=-1.
        # p, pt, FL, and Poly1 have shape [batch, num of classes].
        p = tf.math.sigmoid(logits)
        pt = labels * p + (1 - labels) * (1 - p)
        FL = focal_loss(pt, gamma)
        Poly1 = FL + epsilon * tf.math.pow(1 - pt, gamma + 1)
        return Poly1

``focal_loss(pt, gamma)`` is not spelled out in the paper; it is the RetinaNet focal loss
``-(1 - pt)**gamma * log(pt)``. The alpha-balanced variant (``alpha`` argument below) multiplies
BOTH the focal term and the poly term by ``alpha_t = labels * alpha + (1 - labels) * (1 - alpha)``;
this follows the public copies of the paper's appendix snippet -- treat it as less certain than
the cross-entropy snippets.

Port notes / deviations
-----------------------
* TF -> torch: class axis is the LAST axis (as in TF), labels are one-hot / probability vectors
  of the same shape as logits. ``tf.nn.softmax_cross_entropy_with_logits`` is written as
  ``-(labels * log_softmax(logits)).sum(-1)``.
* ``reduction=None`` in the Keras call is the paper's intent of a per-example loss (comment
  "shape [batch]"); the port returns per-example values for ``reduction='none'`` (default, as
  the snippets return ``Poly1`` unreduced). ``'mean'`` / ``'sum'`` are added conveniences.
* ``label_smoothing`` (the appendix ``alpha``) defaults to 0.0 => the main-text snippet.
* The focal term is computed as ``BCE_with_logits * (1 - pt)**gamma`` (the torchvision form),
  which equals ``-(1 - pt)**gamma * log(pt)`` for targets in {0, 1}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return x
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    raise ValueError(f"Invalid reduction: {reduction!r}")


def poly1_cross_entropy(
    logits: torch.Tensor,
    labels_onehot: torch.Tensor,
    epsilon: float = 1.0,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "none",
) -> torch.Tensor:
    """Paper Poly-1 CE; ``label_smoothing > 0`` gives the appendix alpha-label-smoothing form."""
    labels = labels_onehot.to(logits.dtype)
    log_p = F.log_softmax(logits, dim=-1)
    p = log_p.exp()
    if label_smoothing == 0.0:
        pt = torch.sum(labels * p, dim=-1)
        ce = -torch.sum(labels * log_p, dim=-1)
        poly1 = ce + epsilon * (1 - pt)
    else:
        alpha = label_smoothing
        num_classes = labels.shape[-1]
        smooth_labels = labels * (1 - alpha) + alpha / num_classes
        one_minus_pt = torch.sum(smooth_labels * (1 - p), dim=-1)
        # tf.keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=alpha)
        ce = -torch.sum(smooth_labels * log_p, dim=-1)
        poly1 = ce + epsilon * one_minus_pt
    return _reduce(poly1, reduction)


def poly1_focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float = 1.0,
    gamma: float = 2.0,
    *,
    alpha: float | None = None,
    reduction: str = "none",
) -> torch.Tensor:
    """Paper Poly-1 (sigmoid) focal loss; elementwise, shape of ``logits``."""
    labels = labels.to(logits.dtype)
    p = torch.sigmoid(logits)
    pt = labels * p + (1 - labels) * (1 - p)
    fl = F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * (1 - pt) ** gamma
    poly = torch.pow(1 - pt, gamma + 1)
    if alpha is not None:
        weight = labels * alpha + (1 - labels) * (1 - alpha)
        fl = weight * fl
        poly = weight * poly
    return _reduce(fl + epsilon * poly, reduction)
