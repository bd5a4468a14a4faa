"""Switch Transformer load-balancing loss, transcribed from Hugging Face transformers.

Source
------
Repository: https://github.com/huggingface/transformers
File:       src/transformers/models/switch_transformers/modeling_switch_transformers.py
Function:   ``load_balancing_loss_func(router_probs, expert_indices)`` (the stored version read
            here; nllb_moe and gptsan_japanese carry "Copied from" copies of it)

Semantics
---------
* ``router_probs``: ``[num_groups, tokens_per_group, num_experts]``; ``expert_indices``:
  ``[num_groups, tokens_per_group]`` (the top-1 expert of each token).
* ``expert_mask = one_hot(expert_indices)``, max over the selected-experts axis, cast to
  float32.
* ``mean(mean(expert_mask, -2) * mean(router_probs, -2)) * num_experts ** 2``: a scalar.

Deviations: the original casts the mask to float32, so its mean over tokens (a fraction such as
7/50) rounds at about 1e-8 relative; here the mask takes ``router_probs``' dtype, so a float64
comparison stays tight (the maths is unchanged).
"""

from __future__ import annotations

import torch


def load_balancing_loss_func(router_probs: torch.Tensor, expert_indices: torch.Tensor):
    num_experts = router_probs.shape[-1]
    if expert_indices.dtype != torch.int64:
        expert_indices = expert_indices.to(torch.int64)
    if len(expert_indices.shape) == 2:
        expert_indices = expert_indices.unsqueeze(2)
    expert_mask = torch.nn.functional.one_hot(expert_indices, num_experts)
    expert_mask = torch.max(expert_mask, axis=-2).values
    expert_mask = expert_mask.to(router_probs.dtype)
    tokens_per_group_and_expert = torch.mean(expert_mask, axis=-2)
    router_prob_per_group_and_expert = torch.mean(router_probs, axis=-2)
    return torch.mean(tokens_per_group_and_expert * router_prob_per_group_and_expert) * (
        num_experts**2
    )
