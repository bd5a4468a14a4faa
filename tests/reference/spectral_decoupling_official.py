"""Spectral decoupling, transcribed from the official Gradient Starvation code.

Repository: mpezeshki/Gradient_Starvation, commit 67808b895822b554337cc7a1fb74775bfab18d75.
Files: Figure_3/moon_fig_3.py (loss = log(1 + exp(-y_hat * y)).mean(); loss += sd_coef *
(y_hat ** 2).mean()) and Figure_4_and_table_1/cmnist.py (train_nll = BCE-with-logits mean,
sd = (logits ** 2).mean(), loss = train_nll + sd_coef * sd).
Transcribed: binary_sd (the official binary form, as written) and multiclass_sd (the same
objective with F.cross_entropy over C logits in place of the logistic loss: the catalog's form).
Deviations: the annealing schedule of cmnist.py (loss = sd_coef * (sd + nll) after
penalty_anneal_iters) is a training-loop choice and is left out; `gamma` is the paper's
||z - gamma||^2 variant (0 reproduces the code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_sd(y_hat, y_pm1, sd_coef=0.003):
    loss = torch.log(1.0 + torch.exp(-y_hat * y_pm1)).mean()
    loss = loss + sd_coef * (y_hat**2).mean()
    return loss


def multiclass_sd(logits, labels, sd_coef=0.003, gamma=0.0):
    return F.cross_entropy(logits, labels) + sd_coef * ((logits - gamma) ** 2).mean()
