"""SFDA entropy + class-ratio-prior KL, transcribed from the official repository.

Repository: https://github.com/mathilde-b/SFDA
File:       losses.py (EntKLProp.__call__, commit 131d81d1) and utils.py (norm_soft_size)
Function:   EntKLProp with fn='norm_soft_size', curi=True (prior from bounds / (w * h))
Deviations: takes probabilities [b, c, w, h] and the prior gt_prop [b, c] directly (the
official derives it from `bounds`); returns lamb_se * loss_se + lamb_consprior * loss_cons_prior
(the official returns the two terms and est_prop separately); the unused est_prop_mask is dropped;
einsum float32 casts dropped (float64 throughout).
"""

from __future__ import annotations

import torch


def norm_soft_size(a, power):
    amax = a.max(dim=1, keepdim=True)[0] + 1e-10
    resp = (torch.div(a, amax)) ** power
    ress = torch.einsum("bcwh->bc", [resp])
    ress_norm = ress / (torch.sum(ress, dim=1, keepdim=True) + 1e-10)
    return ress_norm.unsqueeze(2)


def ent_kl_prop(probs, gt_prop, weights, lamb_se=1.0, lamb_consprior=1.0, power=1):
    b = probs.shape[0]
    est_prop = norm_soft_size(probs, power).squeeze(2)
    log_est_prop = (est_prop + 1e-10).log()
    log_gt_prop = (gt_prop + 1e-10).log()
    loss_cons_prior = -torch.einsum("bc,bc->", [est_prop, log_gt_prop]) + torch.einsum(
        "bc,bc->", [est_prop, log_est_prop]
    )
    loss_cons_prior /= b
    log_p = (probs + 1e-10).log()
    mask = probs
    mask_weighted = torch.einsum("bcwh,c->bcwh", [mask, weights])
    loss_se = -torch.einsum("bcwh,bcwh->", [mask_weighted, log_p])
    loss_se /= mask.sum() + 1e-10
    return lamb_se * loss_se + lamb_consprior * loss_cons_prior
