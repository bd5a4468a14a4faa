"""trl's preference losses (DPO and its loss types, KTO, CPO/SimPO, ORPO), transcribed from trl.

Repository: huggingface/trl, tag v0.24.0 (commit 04fd1203af4fc1e629f58e0ac0d0c5bb95f82a45), the
last release with all four trainers under trl/trainer/ (later releases move CPO, ORPO and KTO to
trl/experimental/ with the same loss code).
- trl/trainer/dpo_trainer.py DPOTrainer.dpo_loss (every loss_type but "sft", the f-divergences)
  and the ipo length normalization of DPOTrainer.concatenated_forward
  (`if "ipo" in self.loss_type: all_logps = all_logps / loss_mask.sum(-1)`), as `dpo_loss`;
  trl/trainer/utils.py RunningMoments.update (bco_pair's running reward mean) and cap_exp, as
  `RunningMoments` and `cap_exp`; DPOTrainer.get_batch_loss_metrics: `losses.mean()`.
- trl/trainer/kto_trainer.py KTOTrainer.kto_loss (loss_type "kto" and "apo_zero_unpaired") and
  its `losses.nanmean()`, as `kto_loss`.
- trl/trainer/cpo_trainer.py CPOTrainer.cpo_loss (loss_type sigmoid, hinge, ipo, simpo; the
  AlphaPO reward of `alpha != 0`), CPOTrainer.get_batch_logps (average_log_prob for ipo and
  simpo), the nll of CPOTrainer.concatenated_forward (cross_entropy_loss on the chosen half) and
  get_batch_loss_metrics' `losses.mean() + self.cpo_alpha * policy_nll_loss`, as `cpo_loss` and
  `cpo_objective`.
- trl/trainer/orpo_trainer.py ORPOTrainer.odds_ratio_loss, get_batch_logps with
  average_log_prob=True, the chosen nll, and `policy_nll_loss - losses.mean()`, as
  `odds_ratio_loss` and `orpo_objective`.
- DPOTrainer's token-level knobs (rpo_alpha's nll_loss, use_weighting's WPO weights, ld_alpha)
  from concatenated_forward and get_batch_loss_metrics, as `dpo_token_objective`; its LD-DPO
  masks are trl main's (commit f2cd577, DPOTrainer._compute_loss), see its docstring.
Defaults are those of trl/trainer/{dpo,kto,cpo,orpo}_config.py at the same tag.
Deviations: plain functions of tensors instead of trainer methods (self.beta etc. become
arguments); accelerator.device moves and gather_for_metrics (one process) are the identity;
selective_log_softmax is written as log_softmax + gather (trl's float64 branch computes the same
thing); the decoder-only shift (labels[:, 1:], logits[:, :-1]) is kept.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cap_exp(value, cap=-1):
    # trl/trainer/utils.py get_exp_cap / cap_exp
    if cap < 0:
        vdtype_max = torch.zeros([1]).to(value.dtype) + torch.finfo(value.dtype).max
        vdtype_log_max = torch.log(vdtype_max).to(value.device)
        cap = torch.floor(vdtype_log_max * 10**4) / 10**4
    return torch.exp(torch.clamp(value, max=cap))


class RunningMoments:
    """trl/trainer/utils.py RunningMoments (one process): bco_pair's running reward mean."""

    def __init__(self):
        self.mean, self.std, self.var, self.count = 0.0, 1.0, 1.0, 1e-24

    @torch.no_grad()
    def update(self, xs):
        xs_count = xs.numel()
        xs_var, xs_mean = torch.var_mean(xs, unbiased=False)
        xs_mean, xs_var = xs_mean.float(), xs_var.float()
        delta = xs_mean - self.mean
        tot_count = self.count + xs_count
        new_sum = xs_var * xs_count
        old_sum = self.var * self.count + delta**2 * self.count * xs_count / tot_count
        tot_sum = old_sum + new_sum
        self.mean += (delta * xs_count / tot_count).item()
        new_var = tot_sum / tot_count
        self.std = (new_var * tot_count / (tot_count - 1)).float().sqrt().item()
        self.var = new_var.item()
        self.count = tot_count


def dpo_loss(
    chosen_logps,
    rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    loss_type="sigmoid",
    beta=0.1,
    label_smoothing=0.0,
    reference_free=False,
    f_divergence_type="reverse_kl",
    f_alpha_divergence_coef=1.0,
    discopop_tau=0.05,
    running=None,
):
    """DPOTrainer.dpo_loss: the per-pair losses [B] (trl returns them with the rewards)."""
    chosen_logratios = chosen_logps - (not reference_free) * ref_chosen_logps
    rejected_logratios = rejected_logps - (not reference_free) * ref_rejected_logps
    if f_divergence_type == "alpha_divergence":
        alpha_coef = f_alpha_divergence_coef
        logits = (
            cap_exp(rejected_logratios * -alpha_coef) - cap_exp(chosen_logratios * -alpha_coef)
        ) / alpha_coef
    else:
        logratios = chosen_logps - rejected_logps
        if reference_free:
            ref_logratios = torch.tensor([0], dtype=logratios.dtype, device=logratios.device)
        else:
            ref_logratios = ref_chosen_logps - ref_rejected_logps
        logits = logratios - ref_logratios
        if f_divergence_type == "js_divergence":
            logits -= F.softplus(chosen_logratios) - F.softplus(rejected_logratios)

    if loss_type == "sigmoid":
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            - F.logsigmoid(-beta * logits) * label_smoothing
        )
    elif loss_type == "robust":
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            + F.logsigmoid(-beta * logits) * label_smoothing
        ) / (1 - 2 * label_smoothing)
    elif loss_type == "exo_pair":
        if label_smoothing == 0:
            label_smoothing = 1e-3
        losses = (beta * logits).sigmoid() * (
            F.logsigmoid(beta * logits) - math.log(1 - label_smoothing)
        ) + (-beta * logits).sigmoid() * (F.logsigmoid(-beta * logits) - math.log(label_smoothing))
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    elif loss_type == "bco_pair":
        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        chosen_rewards = beta * chosen_logratios
        rejected_rewards = beta * rejected_logratios
        rewards = torch.cat((chosen_rewards, rejected_rewards), 0).mean().detach()
        running = RunningMoments() if running is None else running
        running.update(rewards)
        delta = running.mean
        losses = -F.logsigmoid((beta * chosen_logratios) - delta) - F.logsigmoid(
            -(beta * rejected_logratios - delta)
        )
    elif loss_type == "sppo_hard":
        a = chosen_logps - ref_chosen_logps
        b = rejected_logps - ref_rejected_logps
        losses = (a - 0.5 / beta) ** 2 + (b + 0.5 / beta) ** 2
    elif loss_type == "nca_pair":
        chosen_rewards = (chosen_logps - ref_chosen_logps) * beta
        rejected_rewards = (rejected_logps - ref_rejected_logps) * beta
        losses = (
            -F.logsigmoid(chosen_rewards)
            - 0.5 * F.logsigmoid(-chosen_rewards)
            - 0.5 * F.logsigmoid(-rejected_rewards)
        )
    elif loss_type == "aot_pair":
        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        chosen_logratios_sorted, _ = torch.sort(chosen_logratios, dim=0)
        rejected_logratios_sorted, _ = torch.sort(rejected_logratios, dim=0)
        delta = chosen_logratios_sorted - rejected_logratios_sorted
        losses = (
            -F.logsigmoid(beta * delta) * (1 - label_smoothing)
            - F.logsigmoid(-beta * delta) * label_smoothing
        )
    elif loss_type == "aot":
        logratios = chosen_logps - rejected_logps
        ref_logratios = ref_chosen_logps - ref_rejected_logps
        logratios_sorted, _ = torch.sort(logratios, dim=0)
        ref_logratios_sorted, _ = torch.sort(ref_logratios, dim=0)
        delta = logratios_sorted - ref_logratios_sorted
        losses = (
            -F.logsigmoid(beta * delta) * (1 - label_smoothing)
            - F.logsigmoid(-beta * delta) * label_smoothing
        )
    elif loss_type == "apo_zero":
        losses_chosen = 1 - F.sigmoid(beta * chosen_logratios)
        losses_rejected = F.sigmoid(beta * rejected_logratios)
        losses = losses_chosen + losses_rejected
    elif loss_type == "apo_down":
        losses_chosen = F.sigmoid(beta * chosen_logratios)
        losses_rejected = 1 - F.sigmoid(beta * (chosen_logratios - rejected_logratios))
        losses = losses_chosen + losses_rejected
    elif loss_type == "discopop":
        logratios = chosen_logps - rejected_logps
        ref_logratios = ref_chosen_logps - ref_rejected_logps
        logits = logratios - ref_logratios
        logits = logits * beta
        log_ratio_modulation = torch.sigmoid(logits / discopop_tau)
        logistic_component = -F.logsigmoid(logits)
        exp_component = torch.exp(-logits)
        losses = (
            logistic_component * (1 - log_ratio_modulation) + exp_component * log_ratio_modulation
        )
    else:
        raise ValueError(loss_type)
    return losses


def kto_loss(
    policy_chosen_logps,
    policy_rejected_logps,
    policy_KL_logps,
    reference_chosen_logps,
    reference_rejected_logps,
    reference_KL_logps,
    loss_type="kto",
    beta=0.1,
    desirable_weight=1.0,
    undesirable_weight=1.0,
):
    """KTOTrainer.kto_loss: the losses of the chosen examples, then of the rejected ones."""
    if loss_type != "apo_zero_unpaired":  # calculate_KL
        kl = (policy_KL_logps - reference_KL_logps).mean().detach()
        kl = kl.mean().clamp(min=0)
    else:
        kl = torch.zeros(1).to(policy_chosen_logps.device)
    if policy_chosen_logps.shape[0] != 0 or reference_chosen_logps.shape[0] != 0:
        chosen_logratios = policy_chosen_logps - reference_chosen_logps
        if loss_type == "kto":
            chosen_losses = 1 - F.sigmoid(beta * (chosen_logratios - kl))
        elif loss_type == "apo_zero_unpaired":
            chosen_losses = 1 - F.sigmoid(beta * chosen_logratios)
    else:
        chosen_losses = torch.Tensor([]).to(policy_chosen_logps)
    if policy_rejected_logps.shape[0] != 0 or reference_rejected_logps.shape[0] != 0:
        rejected_logratios = policy_rejected_logps - reference_rejected_logps
        if loss_type == "kto":
            rejected_losses = 1 - F.sigmoid(beta * (kl - rejected_logratios))
        elif loss_type == "apo_zero_unpaired":
            rejected_losses = F.sigmoid(beta * rejected_logratios)
    else:
        rejected_losses = torch.Tensor([]).to(policy_chosen_logps)
    return torch.cat((desirable_weight * chosen_losses, undesirable_weight * rejected_losses), 0)


def get_batch_logps(logits, labels, average_log_prob=False, label_pad_token_id=-100):
    """CPOTrainer.get_batch_logps / ORPOTrainer.get_batch_logps (decoder-only)."""
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    loss_mask = labels != label_pad_token_id
    labels[labels == label_pad_token_id] = 0
    per_token_logps = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    if average_log_prob:
        return (per_token_logps * loss_mask).sum(-1) / loss_mask.sum(-1)
    return (per_token_logps * loss_mask).sum(-1)


def cross_entropy_loss(logits, labels):
    """The nll of CPOTrainer/ORPOTrainer.concatenated_forward (decoder-only shift)."""
    logits = logits[..., :-1, :].contiguous()
    labels = labels[..., 1:].contiguous()
    loss_fct = torch.nn.CrossEntropyLoss()
    return loss_fct(logits.view(-1, logits.shape[-1]), labels.view(-1))


def cpo_loss(
    policy_chosen_logps,
    policy_rejected_logps,
    loss_type="sigmoid",
    beta=0.1,
    label_smoothing=0.0,
    simpo_gamma=0.5,
    alpha=0.0,
):
    """CPOTrainer.cpo_loss: the per-pair losses [B]."""
    if alpha != 0.0:
        chosen_probs = torch.exp(policy_chosen_logps)
        rejected_probs = torch.exp(policy_rejected_logps)
        policy_chosen_rewards = (1 - chosen_probs.pow(-alpha)) / alpha
        policy_rejected_rewards = (1 - rejected_probs.pow(-alpha)) / alpha
        logits = policy_chosen_rewards - policy_rejected_rewards
    else:
        logits = policy_chosen_logps - policy_rejected_logps
    if loss_type == "simpo":
        gamma_logratios = simpo_gamma / beta
        logits = logits - gamma_logratios
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            - F.logsigmoid(-beta * logits) * label_smoothing
        )
    elif loss_type == "sigmoid":
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            - F.logsigmoid(-beta * logits) * label_smoothing
        )
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(loss_type)
    return losses


def cpo_objective(
    chosen_logits, chosen_labels, rejected_logits, rejected_labels, cpo_alpha=1.0, **kw
):
    """CPOTrainer.get_batch_loss_metrics: losses.mean() + cpo_alpha * nll (chosen half)."""
    avg = kw.get("loss_type", "sigmoid") in ["ipo", "simpo"]
    chosen = get_batch_logps(chosen_logits, chosen_labels, average_log_prob=avg)
    rejected = get_batch_logps(rejected_logits, rejected_labels, average_log_prob=avg)
    if cpo_alpha == 0:
        nll = torch.tensor(0.0)
    else:
        nll = cross_entropy_loss(chosen_logits, chosen_labels)
    return cpo_loss(chosen, rejected, **kw).mean() + cpo_alpha * nll


def odds_ratio_loss(policy_chosen_logps, policy_rejected_logps, beta=0.1):
    """ORPOTrainer.odds_ratio_loss: beta * logsigmoid(log odds ratio), [B]."""
    log_odds = (policy_chosen_logps - policy_rejected_logps) - (
        torch.log1p(-torch.exp(policy_chosen_logps))
        - torch.log1p(-torch.exp(policy_rejected_logps))
    )
    ratio = F.logsigmoid(log_odds)
    return beta * ratio


def orpo_objective(
    chosen_logits,
    chosen_labels,
    rejected_logits,
    rejected_labels,
    chosen_input_ids,
    chosen_attention_mask,
    beta=0.1,
    label_pad_token_id=-100,
):
    """ORPOTrainer.get_batch_loss_metrics: policy_nll_loss - losses.mean(). The nll is over the
    prompt and the response (concatenated_forward: input_ids where the attention mask is 1), the
    log-probabilities over the response labels alone."""
    chosen = get_batch_logps(chosen_logits, chosen_labels, average_log_prob=True)
    rejected = get_batch_logps(rejected_logits, rejected_labels, average_log_prob=True)
    nll_labels = torch.where(chosen_attention_mask == 1, chosen_input_ids, label_pad_token_id)
    nll = cross_entropy_loss(chosen_logits, nll_labels)
    return nll - odds_ratio_loss(chosen, rejected, beta=beta).mean()


def dpo_token_objective(
    chosen_logits,
    chosen_labels,
    chosen_mask,
    rejected_logits,
    rejected_labels,
    rejected_mask,
    ref_chosen_token_logps,
    ref_rejected_token_logps,
    loss_type="sigmoid",
    beta=0.1,
    label_smoothing=0.0,
    rpo_alpha=None,
    ld_alpha=None,
    use_weighting=False,
    clamp_weights=True,
):
    """DPOTrainer's token-level path at v0.24.0 (concatenated_forward, get_batch_loss_metrics)
    with the chosen and rejected halves concatenated as trl does, on logits already aligned with
    their labels (trl's roll by one is the caller's). The LD-DPO masks are trl main's
    (f2cd577, _compute_loss: positions within the completion, applied to the reference too);
    v0.24.0's count positions from the sequence start and skip the reference. clamp_weights:
    v0.24.0's torch.clamp(..., max=1) of the WPO weight (trl main multiplies the two exps)."""
    num_examples = chosen_logits.shape[0]
    logits = torch.cat([chosen_logits, rejected_logits], dim=0)
    labels = torch.cat([chosen_labels, rejected_labels], dim=0).clone()
    loss_mask = torch.cat([chosen_mask, rejected_mask], dim=0).bool()
    # concatenated_forward: labels[~loss_mask] = 0; selective_log_softmax; zero the rest
    labels[~loss_mask] = 0
    per_token_logps = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(-1)).squeeze(2)
    per_token_logps[~loss_mask] = 0
    ref_per_token_logps = torch.cat([ref_chosen_token_logps, ref_rejected_token_logps], dim=0)
    ref_per_token_logps = ref_per_token_logps.masked_fill(~loss_mask, 0.0)

    def sequence_logps(tok):
        if ld_alpha is None:
            return tok.sum(dim=1)
        # trl main _compute_loss / compute_ref_log_probs
        mask = loss_mask.long()
        comp_pos = mask.cumsum(dim=1)
        comp_lens = mask.sum(dim=1).long()
        chosen_lens, rejected_lens = comp_lens.chunk(2, dim=0)
        shared_lens = torch.minimum(chosen_lens, rejected_lens)
        shared_lens = torch.cat([shared_lens, shared_lens], dim=0)
        shared_mask = (comp_pos > 0) & (comp_pos <= shared_lens.unsqueeze(1))
        tail_mask = comp_pos > shared_lens.unsqueeze(1)
        return (tok * shared_mask).sum(dim=1) + ld_alpha * (tok * tail_mask).sum(dim=1)

    all_logps = sequence_logps(per_token_logps)
    ref_logps = sequence_logps(ref_per_token_logps)
    if "ipo" in loss_type:
        all_logps = all_logps / loss_mask.sum(-1)
        ref_logps = ref_logps / loss_mask.sum(-1)
    losses = dpo_loss(
        all_logps[:num_examples],
        all_logps[num_examples:],
        ref_logps[:num_examples],
        ref_logps[num_examples:],
        loss_type=loss_type,
        beta=beta,
        label_smoothing=label_smoothing,
    )
    if rpo_alpha is not None:
        # output["nll_loss"]: cross_entropy over the chosen tokens, ignore_index=0
        nll = F.cross_entropy(
            torch.flatten(logits[:num_examples], end_dim=1),
            torch.flatten(labels[:num_examples], end_dim=1),
            ignore_index=0,
        )
        losses = losses + rpo_alpha * nll
    if use_weighting:
        with torch.no_grad():
            logprobs = F.log_softmax(logits, dim=-1)
            weights_adjustment_factor = torch.logsumexp(2 * logprobs, dim=-1)
            per_token_logps_adjusted = per_token_logps - weights_adjustment_factor
            all_weights = (per_token_logps_adjusted * loss_mask).sum(-1) / loss_mask.sum(-1)
            chosen_weights = all_weights[:num_examples]
            rejected_weights = all_weights[num_examples:]
            w = torch.exp(chosen_weights + rejected_weights)
            policy_weights = torch.clamp(w, max=1) if clamp_weights else w
        losses = losses * policy_weights
    return losses.mean()
