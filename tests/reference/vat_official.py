"""Virtual adversarial training loss, transcribed from the official PyTorch port.

Source
------
Repository: https://github.com/lyakaap/VAT-pytorch
File:       vat.py (``VATLoss.forward``, ``_l2_normalize``; the defaults xi=10.0, eps=1.0, ip=1)

Deviations
----------
* The random start ``d = torch.rand(x.shape).sub(0.5)`` is an argument ``u`` (lossdsl draws
  nothing); ``_l2_normalize`` is applied to it as upstream.
* No ``_disable_tracking_bn_stats`` (the test models have no batch norm), and ``model.zero_grad()``
  is left out: the power step's ``backward()`` is ``torch.autograd.grad`` of the distance with
  respect to ``d`` only, which is what ``d.grad`` holds upstream (the parameters' gradients it
  also accumulated there are zeroed right after).
* Returns the per-sample KL (``reduction="none"``) or its batch mean (upstream's "batchmean").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _l2_normalize(d):
    d_reshaped = d.view(d.shape[0], -1, *(1 for _ in range(d.dim() - 2)))
    d = d / (torch.norm(d_reshaped, dim=1, keepdim=True) + 1e-8)
    return d


def vat_official(model, x, u, xi=10.0, eps=1.0, ip=1, reduction="mean"):
    with torch.no_grad():
        pred = F.softmax(model(x), dim=1)
    d = _l2_normalize(u)
    for _ in range(ip):
        d = d.detach().requires_grad_()
        pred_hat = model(x + xi * d)
        logp_hat = F.log_softmax(pred_hat, dim=1)
        adv_distance = F.kl_div(logp_hat, pred, reduction="batchmean")
        (grad,) = torch.autograd.grad(adv_distance, d)
        d = _l2_normalize(grad)
    r_adv = d * eps
    pred_hat = model(x + r_adv)
    logp_hat = F.log_softmax(pred_hat, dim=1)
    if reduction == "none":
        return F.kl_div(logp_hat, pred, reduction="none").sum(1)
    lds = F.kl_div(logp_hat, pred, reduction="batchmean")
    return lds if reduction == "mean" else lds * x.shape[0]
