"""RMT's symmetric cross-entropy, transcribed from the official test-time-adaptation code.

Repository: mariodoebler/test-time-adaptation.
- classification/utils/losses.py @ 8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1: SymmetricCrossEntropy
  (alpha=0.5), as `symmetric_cross_entropy`; classification/methods/rmt.py at the same commit:
  the self-training term of forward_and_adapt, as `rmt_self_training`.
- classification/methods/rmt.py @ 1a5a8340c6af4379ab5978546bd166c488ce49ad (an older version):
  the @torch.jit.script functions softmax_entropy and symmetric_entropy.
Upstream the teacher is the EMA model whose parameters are detach_()ed, so its logits carry no
gradient; `teacher_logits(...)` reproduces that (detach) for callers that pass a tensor that
requires grad.
Deviations: the jit decorators dropped; functions of logits instead of methods; reduction added
(upstream: .mean(0)).
"""

from __future__ import annotations


def teacher_logits(x_ema):
    """The EMA model's outputs: constants (model_ema parameters are detach_()ed upstream)."""
    return x_ema.detach()


def symmetric_cross_entropy(x, x_ema, alpha=0.5):
    return -(1 - alpha) * (x_ema.softmax(1) * x.log_softmax(1)).sum(1) - alpha * (
        x.softmax(1) * x_ema.log_softmax(1)
    ).sum(1)


def rmt_self_training(outputs_test, outputs_aug_test, outputs_ema):
    return (
        0.5 * symmetric_cross_entropy(outputs_test, outputs_ema)
        + 0.5 * symmetric_cross_entropy(outputs_aug_test, outputs_ema)
    ).mean(0)


def softmax_entropy(x, x_ema):
    return -0.5 * (x_ema.softmax(1) * x.log_softmax(1)).sum(1) - 0.5 * (
        x.softmax(1) * x_ema.log_softmax(1)
    ).sum(1)


def symmetric_entropy(x, x_aug, x_ema):
    return (
        -0.25 * (x_ema.softmax(1) * x.log_softmax(1)).sum(1)
        - 0.25 * (x.softmax(1) * x_ema.log_softmax(1)).sum(1)
        - 0.25 * (x_ema.softmax(1) * x_aug.log_softmax(1)).sum(1)
        - 0.25 * (x_aug.softmax(1) * x_ema.log_softmax(1)).sum(1)
    )


def rmt_loss(x, x_ema, alpha=0.5, reduction="mean"):
    loss = symmetric_cross_entropy(x, teacher_logits(x_ema), alpha)
    if reduction == "mean":
        return loss.mean(0)
    if reduction == "sum":
        return loss.sum()
    return loss
