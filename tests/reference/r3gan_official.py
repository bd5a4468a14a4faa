"""Relativistic pairing GAN losses (RpGAN) of R3GAN, transcribed from the official code.

Repository: brownvc/R3GAN, file R3GAN/Trainer.py (AdversarialTraining). The copy read was the fork
Lemutisme/R3GAN (commit 328b811531b81ba71a5c2acc7dccefd85c9815ab), whose softmargin branch with
Margin = 0 is the official line; the official form (RelativisticLogits = FakeLogits - RealLogits;
softplus(-RelativisticLogits)) was confirmed in several other copies of the file.
Transcribed: the adversarial terms of AccumulateGeneratorGradients and
AccumulateDiscriminatorGradients, taking the discriminator logits instead of networks.
Deviations: no networks, no R1/R2 penalties, no backward(); returns the per-sample loss reduced
by `reduction` (upstream: AdversarialLoss.mean()).
"""

from __future__ import annotations

import torch.nn as nn


def _reduce(x, reduction):
    return {"mean": x.mean(), "sum": x.sum(), "none": x}[reduction]


def generator_loss(RealLogits, FakeLogits, reduction="mean"):
    RelativisticLogits = FakeLogits - RealLogits
    AdversarialLoss = nn.functional.softplus(-RelativisticLogits)
    return _reduce(AdversarialLoss, reduction)


def discriminator_loss(RealLogits, FakeLogits, reduction="mean"):
    RelativisticLogits = RealLogits - FakeLogits
    AdversarialLoss = nn.functional.softplus(-RelativisticLogits)
    return _reduce(AdversarialLoss, reduction)
