"""Dispersive loss (InfoNCE-L2 variant), transcribed from the official repository.

Source
------
Repository: https://github.com/raywang4/DispLoss (Wang, He, "Diffuse and Disperse: Image
            Generation with Representation Regularization", arXiv:2506.09027). The repository
            itself is not in the code mirror; it was read in the copy
            https://github.com/whaletech-ai/Disperse-Loss at commit
            24a50442d9ba219b3205f66f95c91b4a605e4e95 ("Add files via upload", the upstream
            files before that fork's own edits; its README carries the same snippet as the
            upstream README).
File:       transport/transport.py
Functions:  ``Transport.disp_loss``; ``Transport.training_losses`` adds ``0.25 * disp_loss`` of
            the last block's activations ``act[-1]`` to the diffusion loss (the weight is
            recorded here, not applied).

Official code (verbatim semantics)::

    z = z.reshape((z.shape[0],-1)) # flatten
    diff = th.nn.functional.pdist(z).pow(2)/z.shape[1] # pairwise distance
    diff = th.concat((diff, diff, th.zeros(z.shape[0]).cuda()))  # match JAX ... full BxB matrix
    return th.log(th.exp(-diff).mean()) # calculate loss

Deviations: the B diagonal zeros are created on z's device and dtype (upstream: ``.cuda()``,
default dtype); ``tau`` added (upstream has none: tau = 1 is the official value).

``disp_loss_cosine_paper`` is NOT official code (the repository only has the L2 variant): it is
the paper's cosine-dissimilarity variant, D(z_i, z_j) = -cos(z_i, z_j), in the same log-mean-exp
over all ordered pairs including the diagonal, written plainly for the tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LAMBDA_OFFICIAL = 0.25  # training_losses: terms['loss'] += 0.25*disp_loss


def disp_loss(z, tau=1.0):
    """``Transport.disp_loss`` (InfoNCE-L2)."""
    z = z.reshape((z.shape[0], -1))  # flatten
    diff = F.pdist(z).pow(2) / z.shape[1]  # pairwise distance
    diff = torch.concat((diff, diff, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)))
    return torch.log(torch.exp(-diff / tau).mean())  # calculate loss


def disp_loss_cosine_paper(z, tau=1.0):
    """Paper's cosine variant (not official code): log mean_{i,j} exp(cos(z_i, z_j) / tau)."""
    z = z.reshape((z.shape[0], -1))
    h = F.normalize(z, dim=1)
    cos = h @ h.t()
    return torch.log(torch.exp(cos / tau).mean())
