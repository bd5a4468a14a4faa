"""Variational mutual-information bounds, transcribed from the official SMILE code.

Repository: ermongroup/smile-mi-estimator, file estimators.py, commit
de462a2a773d6a85697223c6e6b512956e08876c; functions logmeanexp_nodiag, tuba_lower_bound,
nwj_lower_bound, infonce_lower_bound, js_fgan_lower_bound, js_lower_bound,
dv_upper_lower_bound, smile_lower_bound. Deviations: no `device` argument (CPU), the
log of the element count is taken in the scores' dtype (the original casts it to float32), and
`scores -= log_baseline` (an in-place edit of the caller's tensor) is written out of place.
"""

import math

import torch
import torch.nn.functional as F


def logmeanexp_nodiag(x, dim=None):
    batch_size = x.size(0)
    if dim is None:
        dim = (0, 1)
    logsumexp = torch.logsumexp(
        x - torch.diag(math.inf * torch.ones(batch_size, dtype=x.dtype)), dim=dim
    )
    num_elem = batch_size - 1.0 if len(dim) == 1 else batch_size * (batch_size - 1.0)
    return logsumexp - math.log(num_elem)


def tuba_lower_bound(scores, log_baseline=None):
    if log_baseline is not None:
        scores = scores - log_baseline[:, None]
    joint_term = scores.diag().mean()
    marg_term = logmeanexp_nodiag(scores).exp()
    return 1.0 + joint_term - marg_term


def nwj_lower_bound(scores):
    return tuba_lower_bound(scores - 1.0)


def infonce_lower_bound(scores):
    nll = scores.diag().mean() - scores.logsumexp(dim=1)
    mi = math.log(scores.size(0)) + nll
    return mi.mean()


def js_fgan_lower_bound(f):
    f_diag = f.diag()
    first_term = -F.softplus(-f_diag).mean()
    n = f.size(0)
    second_term = (torch.sum(F.softplus(f)) - torch.sum(F.softplus(f_diag))) / (n * (n - 1.0))
    return first_term - second_term


def js_lower_bound(f):
    nwj = nwj_lower_bound(f)
    js = js_fgan_lower_bound(f)
    with torch.no_grad():
        nwj_js = nwj - js
    return js + nwj_js


def dv_upper_lower_bound(f):
    return f.diag().mean() - logmeanexp_nodiag(f)


def smile_lower_bound(f, clip=None):
    f_ = torch.clamp(f, -clip, clip) if clip is not None else f
    z = logmeanexp_nodiag(f_, dim=(0, 1))
    dv = f.diag().mean() - z
    js = js_fgan_lower_bound(f)
    with torch.no_grad():
        dv_js = dv - js
    return js + dv_js
