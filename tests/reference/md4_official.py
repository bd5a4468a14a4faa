"""MD4's masking schedule and continuous-time diffusion loss, transcribed from JAX to torch.

Repository: google-deepmind/md4, md4/models/diffusion/md4.py at commit
b9fbf29216f818cccff46cb5727199f86f35593e. Transcribed: MaskingSchedule (_dalpha, dalpha, _alpha,
alpha, dgamma_times_alpha; schedules 'cosine', 'linear', 'polyK') and the cont_time branch of
MD4.diffusion_loss (dgamma_times_alpha(t) * masked_neg_cross_ent, per sequence).
Deviations: jax.lax/jnp -> torch; the network call and the sampling of z_t are replaced by the
given logits and mask (mask = z_t is the mask token). The result is positive as upstream:
dalpha < 0 times a negative cross-entropy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class MaskingSchedule:
    def __init__(self, schedule_fn_type="cosine", eps=1e-4):
        self.schedule_fn_type, self.eps = schedule_fn_type, eps

    def _dalpha(self, t):
        if self.schedule_fn_type == "cosine":
            return -math.pi / 2.0 * torch.sin(math.pi / 2.0 * (1.0 - t))
        if self.schedule_fn_type == "linear":
            return -torch.ones_like(t)
        exponent = float(self.schedule_fn_type.replace("poly", ""))
        return -exponent * t ** (exponent - 1.0)

    def dalpha(self, t):
        return (1.0 - 2 * self.eps) * self._dalpha(t)

    def _alpha(self, t):
        if self.schedule_fn_type == "linear":
            return 1.0 - t
        if "poly" in self.schedule_fn_type:
            exponent = float(self.schedule_fn_type.replace("poly", ""))
            return 1.0 - t**exponent
        return 1.0 - torch.cos(math.pi / 2.0 * (1.0 - t))

    def alpha(self, t):
        return (1.0 - 2 * self.eps) * self._alpha(t) + self.eps

    def dgamma_times_alpha(self, t):
        return self.dalpha(t) / (1.0 - self.alpha(t))


def md4_loss(logits, x, mask, t, schedule="cosine", eps=1e-4):
    """Per-sequence loss [B] (MD4 averages it over the batch outside)."""
    log_p = F.log_softmax(logits, dim=-1)
    one_hot_x = F.one_hot(x, logits.shape[-1]).to(logits.dtype)
    neg_cross_ent = torch.where(one_hot_x.bool(), one_hot_x * log_p, 0.0).sum(-1)
    masked_neg_cross_ent = (mask.to(logits.dtype) * neg_cross_ent).sum(-1)
    return MaskingSchedule(schedule, eps).dgamma_times_alpha(t) * masked_neg_cross_ent
