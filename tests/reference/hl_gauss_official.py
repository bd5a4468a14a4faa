"""HL-Gauss loss, transcribed from the paper's appendix code.

Source:     Farebrother et al., Stop Regressing (ICML 2024, arXiv:2403.03950), Appendix A,
            PyTorch listing `HLGaussLoss`.
Function:   HLGaussLoss.__init__ (support = linspace(min, max, num_bins + 1)), transform_to_probs,
            forward = F.cross_entropy(logits, transform_to_probs(target))
Deviations: function instead of module; support in float64 (the listing uses float32); added
`reduction`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hl_gauss_loss(logits, target, min_value, max_value, num_bins, sigma, reduction="mean"):
    support = torch.linspace(min_value, max_value, num_bins + 1, dtype=torch.float64)
    cdf_evals = torch.special.erf(
        (support - target.unsqueeze(-1))
        / (torch.sqrt(torch.tensor(2.0, dtype=torch.float64)) * sigma)
    )
    z = cdf_evals[..., -1] - cdf_evals[..., 0]
    bin_probs = cdf_evals[..., 1:] - cdf_evals[..., :-1]
    probs = bin_probs / z.unsqueeze(-1)
    return F.cross_entropy(logits, probs, reduction=reduction)
