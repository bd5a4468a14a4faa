"""RL fine-tuning objectives of language models: RLOO (trl's RLOOTrainer, transcribed in
tests/reference/rloo_trl.py from trl 1.16.0).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference.rloo_trl import rloo_advantages, rloo_loss
from torch_helpers import assert_same, compiled, gen

import lossdsl

# ---- rloo: trl 1.16.0 trl/trainer/rloo_trainer.py (tests/reference/rloo_trl.py) ----------------


def _rollouts(n, seed, off_policy=0.3):
    g = gen(seed)
    logps = torch.randn(n, generator=g) * 3 - 20  # a completion's summed token log-probs
    old = logps + off_policy * torch.randn(n, generator=g)
    rewards = torch.randn(n, generator=g)
    kl = torch.randn(n, generator=g).abs()
    return logps, old, rewards, kl


@pytest.mark.parametrize("num_generations,prompts", [(2, 4), (3, 5), (4, 1), (8, 3)])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("with_kl", [False, True])
def test_rloo_matches_trl(num_generations, prompts, normalize, with_kl, reduction):
    """Values and the gradient to logps against trl's advantages and clipped loss: group sizes
    from trl's default 2 to 8, one prompt, normalized advantages, the KL penalty, every
    reduction; clipping is active (old_logps off by 0.3 nats, epsilon 0.2)."""
    logps, old, rewards, kl = _rollouts(num_generations * prompts, 70 + num_generations)
    fn = compiled("rloo")
    kw = {"num_generations": num_generations, "normalize_advantages": normalize}
    inputs = {"logps": logps, "old": old, "rewards": rewards, **({"kl": kl} if with_kl else {})}

    def ours(logps, old, rewards, kl=None):
        extra = {"kl": kl} if kl is not None else {}
        return fn(logps, old, rewards, **extra, reduction=reduction, **kw)

    def ref(logps, old, rewards, kl=None):
        adv = rloo_advantages(rewards, num_generations, kl, 0.05, normalize)
        return rloo_loss(logps, old.detach(), adv.detach(), reduction=reduction)

    assert_same(ours, ref, inputs, ["logps"])


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_rloo_on_every_backend(backend):
    logps, old, rewards, kl = _rollouts(12, 80)
    for g in (2, 3, 4, 6, 12):
        adv = rloo_advantages(rewards, g, kl, 0.1, True)
        want = rloo_loss(logps, old, adv, 0.2, 0.28).numpy()
        got = compiled("rloo", backend)(
            logps.numpy(), old.numpy(), rewards.numpy(), kl.numpy(), num_generations=g,
            beta=0.1, epsilon_high=0.28, normalize_advantages=True,
        )  # fmt: skip
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-14)


def test_rloo_on_policy_gradient_is_reinforce_with_the_leave_one_out_baseline():
    """By hand (Ahmadian et al. 2024, Eq. 6): on-policy (old_logps = logps) the ratio is 1 and
    no clip is active, so d/dlogps_i of the mean loss is -A_i / N with A_i = r_i minus the mean
    of the other rewards of its prompt: rewards [1, 2, 3 | 0, 4, 8] give A = [-1.5, 0, 1.5 |
    -6, 0, 6]."""
    logps = torch.tensor([-3.0, -2.0, -5.0, -1.0, -4.0, -2.5], requires_grad=True)
    rewards = torch.tensor([1.0, 2.0, 3.0, 0.0, 4.0, 8.0])
    out = compiled("rloo")(logps, logps.detach(), rewards, num_generations=3)
    (g,) = torch.autograd.grad(out, [logps])
    want = -torch.tensor([-1.5, 0.0, 1.5, -6.0, 0.0, 6.0]) / 6
    torch.testing.assert_close(g, want, rtol=0, atol=1e-15)
    torch.testing.assert_close(out, -torch.tensor(0.0), rtol=0, atol=1e-15)  # sum A = 0


def test_rloo_batch_must_hold_whole_groups():
    """Edge: 7 completions cannot be groups of 2; num_generations = 1 has no other completion
    to leave out (trl sets the advantage to 0 there; the spec asks for 2 or more)."""
    logps, old, rewards, _ = _rollouts(7, 81)
    fn = compiled("rloo")
    with pytest.raises(lossdsl.InputError, match="groups of num_generations = 2"):
        fn(logps, old, rewards)
    with pytest.raises(lossdsl.ParamError, match="num_generations >= 2"):
        fn(logps[:6], old[:6], rewards[:6], num_generations=1)
