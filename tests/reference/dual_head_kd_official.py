"""Dual-Head Knowledge Distillation losses, transcribed from the official repository.

Source
------
Repository: https://github.com/penghui-yang/DHKD (Yang, Zong, Huang, Feng, An, "Dual-Head
            Knowledge Distillation: Enhancing Logits Utilization with an Auxiliary Head",
            arXiv:2411.08937)
Commit:     7976c69d408e72b4203d04a6e82dc27792ec1469 (master, 2024-05-22)
Files:      distiller_zoo/BinaryKLNorm.py (``BinaryKLNorm.forward``: the criterion the official
            train_student.py builds for --distill dhkd), distiller_zoo/BinaryKL.py
            (``BinaryKL.forward``, the un-normalized form, not used by the official scripts),
            distiller_zoo/KD.py (``DistillKL.forward``, the --distill kd baseline),
            helper/loops.py (``train_distill``: loss = gamma * CE(logit_s[0], target)
            + alpha * criterion_kd(logit_s[1], logit_t) for dhkd).

Official code (verbatim semantics)::

    # BinaryKLNorm(temperature=2, eps=1e-8)
    diff_st = torch.sigmoid((student - teacher) / self.temperature)
    diff_st = torch.clamp(diff_st, min=self.eps, max=1-self.eps)
    target = torch.full_like(diff_st, 0.5)
    loss = (self.criterion(torch.log(diff_st), target)
            + self.criterion(torch.log(1 - diff_st), 1 - target))
    return self.temperature ** 2 * loss.sum() / N
    # BinaryKL(temperature=2, eps=1e-8)
    student = torch.clamp(torch.sigmoid(student / T), min=eps, max=1-eps)
    teacher = torch.clamp(torch.sigmoid(teacher / T), min=eps, max=1-eps)
    loss = (self.criterion(torch.log(student), teacher)
            + self.criterion(torch.log(1 - student), 1 - teacher))
    return self.temperature ** 2 * loss.sum() / N
    # criterion = KLDivLoss(reduction="none")

Defaults (train_student.py): --BinaryKL_T 2, -r/--gamma 1, -a/--alpha None (README: 1 on
CIFAR-100, 0.1 on ImageNet), --kd_T 4. The teacher logits come from torch.no_grad().

Deviations: a ``reduction`` argument on the per-sample totals (official: 'mean', i.e. sum / N);
DistillKL's deprecated ``size_average=False`` is written ``reduction="sum"`` (same value);
``dhkd_total`` adds an optional ``beta`` * DistillKL(kd_T) on head A (beta = 0 is the official
dhkd loop). The optional --ga gradient-alignment optimizer is not a loss and is not transcribed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn import KLDivLoss

_criterion = KLDivLoss(reduction="none")


def binary_kl_norm_rows(student, teacher, temperature=2.0, eps=1e-8):
    """``BinaryKLNorm.forward`` before ``.sum() / N``: per-sample sums [N], times T^2."""
    diff_st = torch.sigmoid((student - teacher) / temperature)
    diff_st = torch.clamp(diff_st, min=eps, max=1 - eps)
    target = torch.full_like(diff_st, 0.5)
    loss = _criterion(torch.log(diff_st), target) + _criterion(torch.log(1 - diff_st), 1 - target)
    return temperature**2 * loss.sum(1)


def binary_kl_rows(student, teacher, temperature=2.0, eps=1e-8):
    """``BinaryKL.forward`` before ``.sum() / N``: per-sample sums [N], times T^2."""
    student = torch.sigmoid(student / temperature)
    teacher = torch.sigmoid(teacher / temperature)
    student = torch.clamp(student, min=eps, max=1 - eps)
    teacher = torch.clamp(teacher, min=eps, max=1 - eps)
    loss = _criterion(torch.log(student), teacher) + _criterion(torch.log(1 - student), 1 - teacher)
    return temperature**2 * loss.sum(1)


def binary_kl_norm(student, teacher, temperature=2.0, eps=1e-8):
    """``BinaryKLNorm.forward`` (official value: T^2 * sum / N)."""
    n = student.shape[0]
    return binary_kl_norm_rows(student, teacher, temperature, eps).sum() / n


def binary_kl(student, teacher, temperature=2.0, eps=1e-8):
    """``BinaryKL.forward`` (official value: T^2 * sum / N)."""
    n = student.shape[0]
    return binary_kl_rows(student, teacher, temperature, eps).sum() / n


def distill_kl(y_s, y_t, T=4.0):
    """``DistillKL.forward``: batch-mean KL(p_t || p_s) times T^2."""
    p_s = F.log_softmax(y_s / T, dim=1)
    p_t = F.softmax(y_t / T, dim=1)
    return F.kl_div(p_s, p_t, reduction="sum") * (T**2) / y_s.shape[0]


def dhkd_total(
    logit_a,
    logit_b,
    logit_t,
    target,
    *,
    gamma=1.0,
    alpha=1.0,
    temperature=2.0,
    norm=True,
    eps=1e-8,
    beta=0.0,
    kd_T=4.0,
    reduction="mean",
):
    """``train_distill`` for --distill dhkd: gamma * CE(head A) + alpha * BinaryKL[Norm](head B).

    ``beta`` > 0 adds beta * DistillKL(kd_T)(head A, teacher) (not in the official dhkd loop).
    """
    logit_t = logit_t.detach()  # official: computed under torch.no_grad()
    rows = binary_kl_norm_rows if norm else binary_kl_rows
    per = (
        gamma * F.cross_entropy(logit_a, target, reduction="none")
        + alpha * rows(logit_b, logit_t, temperature, eps)
        + beta
        * kd_T**2
        * F.kl_div(
            F.log_softmax(logit_a / kd_T, dim=1),
            F.softmax(logit_t / kd_T, dim=1),
            reduction="none",
        ).sum(1)
    )
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    if reduction == "none":
        return per
    raise ValueError(f"Invalid reduction: {reduction!r}")
