"""BD-KD student loss, written from the catalog's reading of the paper (no code exists).

Source
------
Paper:      Amara, Sepahvand, Meyer, Gross, Clark, "BD-KD: Balancing the Divergences for Online
            Knowledge Distillation", arXiv:2212.12965 (v2, 2024).
Code:       none found. Searched the code index for the title, "BD-KD"/"bdkd" repositories, the
            authors and the method's wording; no implementation is stored, and the paper's
            method section could not be read in this environment (only its abstract). So this is
            NOT a transcription of numbered equations: it is the form recorded in CATALOG.md
            (T2.15), L_s = CE(z_s, y) + T^2 [w_f,b KL(p_t || p_s) + w_r,b KL(p_s || p_t)], with
            the sample-wise weights chosen from the sign of the entropy gap H(p_t) - H(p_s).
            Which divergence gets which weight, the temperature of the entropies and the default
            values are guesses shared with specs/bd_kd.loss and flagged there.

Written independently of lossdsl with F.softmax / F.kl_div / F.cross_entropy; the teacher is
detached (online KD updates it with its own loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def entropy(p):
    return -(torch.special.xlogy(p, p)).sum(1)


def bd_kd_student(
    z_s,
    z_t,
    y,
    *,
    T=4.0,
    fwd_if_sharper=1.0,
    rev_if_sharper=0.0,
    fwd_if_flatter=0.0,
    rev_if_flatter=1.0,
    reduction="mean",
):
    z_t = z_t.detach()
    p_s = F.softmax(z_s / T, dim=1)
    p_t = F.softmax(z_t / T, dim=1)
    log_p_s = F.log_softmax(z_s / T, dim=1)
    log_p_t = F.log_softmax(z_t / T, dim=1)
    kl_fwd = F.kl_div(log_p_s, p_t, reduction="none").sum(1)  # KL(p_t || p_s)
    kl_rev = F.kl_div(log_p_t, p_s, reduction="none").sum(1)  # KL(p_s || p_t)
    sharper = entropy(p_s) < entropy(p_t)
    w_f = torch.where(sharper, fwd_if_sharper, fwd_if_flatter)
    w_r = torch.where(sharper, rev_if_sharper, rev_if_flatter)
    per = F.cross_entropy(z_s, y, reduction="none") + T**2 * (w_f * kl_fwd + w_r * kl_rev)
    if reduction == "mean":
        return per.mean()
    if reduction == "sum":
        return per.sum()
    if reduction == "none":
        return per
    raise ValueError(f"Invalid reduction: {reduction!r}")
