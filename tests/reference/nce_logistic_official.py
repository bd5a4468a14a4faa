"""Noise-contrastive estimation objective: the lifeitech/nce code (nu = 1) and the paper's J_T.

- lifeitech/nce @ 8c5c64d82c08fcfe730906022306b08008e8214b, util.py: value(energy, noise, x, gen),
  here taking the four log-densities instead of the energy network and the noise distribution
  (logp_x = energy(x), logq_x = noise.log_prob(x), ...); the accuracy it also returns is
  dropped. It uses as many noise as data samples (nu = 1).
- Gutmann, Hyvarinen. Noise-Contrastive Estimation of Unnormalized Statistical Models, with
  Applications to Natural Image Statistics. JMLR 13 (2012): the objective
  J_T = 1/T_d [sum_t ln h(x_t) + sum_t ln(1 - h(y_t))], h(u) = 1 / (1 + nu exp(-G(u))),
  G = ln p_m - ln p_n, nu = T_n / T_d, transcribed literally (sigmoid then log) as
  `paper_nce_loss` = -J_T; no public code with nu != 1 was found.
"""

from __future__ import annotations

import torch


def value(logp_x, logq_x, logp_gen, logq_gen):
    logp_x, logq_x = logp_x.unsqueeze(1), logq_x.unsqueeze(1)
    logp_gen, logq_gen = logp_gen.unsqueeze(1), logq_gen.unsqueeze(1)
    value_data = logp_x - torch.logsumexp(
        torch.cat([logp_x, logq_x], dim=1), dim=1, keepdim=True
    )  # log[p(x)/(p(x) + q(x))]
    value_gen = logq_gen - torch.logsumexp(
        torch.cat([logp_gen, logq_gen], dim=1), dim=1, keepdim=True
    )  # log[q(x~)/(p(x~) + q(x~))]
    v = value_data.mean() + value_gen.mean()
    return -v


def paper_nce_loss(log_pm_x, log_pn_x, log_pm_y, log_pn_y):
    t_d, t_n = log_pm_x.shape[0], log_pm_y.shape[0]
    nu = t_n / t_d

    def h(log_pm, log_pn):
        g = log_pm - log_pn
        return 1 / (1 + nu * torch.exp(-g))

    j = (torch.log(h(log_pm_x, log_pn_x)).sum() + torch.log(1 - h(log_pm_y, log_pn_y)).sum()) / t_d
    return -j
