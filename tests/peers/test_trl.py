"""Peer parity with trl's preference losses: specs dpo, kto, cpo, simpo, orpo.

trl is not installed (it pulls transformers): every expected value comes from the transcription
tests/reference/trl_official.py (huggingface/trl v0.24.0, commit
04fd1203af4fc1e629f58e0ac0d0c5bb95f82a45: trl/trainer/dpo_trainer.py dpo_loss, kto_trainer.py
kto_loss, cpo_trainer.py cpo_loss, orpo_trainer.py odds_ratio_loss, with the batch log-prob and
nll code of their concatenated_forward). trl's own tests (tests/test_dpo_trainer.py,
test_kto_trainer.py, test_cpo_trainer.py, test_orpo_trainer.py at v0.24.0) train tiny models
from the Hub; the only closed-form loss cases are test_dpo_loss_alpha_div_f and
test_dpo_loss_js_div_f (fixed log-probs, the losses must be finite), transcribed in
TRL_OWN_CASES. Every other case is a table over trl's options on random inputs, values and
gradients in float64, plus boundaries. CPO, SimPO and ORPO are checked from the logits: the test
turns logits and labels into the token log-probs and masks the specs take, and compares the
whole pipeline (and its gradient w.r.t. the logits) with trl's get_batch_logps + nll + loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference.trl_official import (
    RunningMoments,
    cpo_objective,
    dpo_loss,
    dpo_token_objective,
    kto_loss,
    orpo_objective,
)
from torch_helpers import assert_same, compiled, gen

import lossdsl

TRL = "huggingface/trl v0.24.0 (04fd1203)"

# trl's own test cases excluded from this table, with the reason (also in docs/peers/trl.md).
EXCLUDED = {
    "tests/test_dpo_trainer.py (every test but the two below)": (
        "trains a tiny Hub model (trl-internal-testing/tiny-*) and asserts only that a loss was "
        "logged or parameters changed: no loss value to transcribe"
    ),
    "tests/test_kto_trainer.py, tests/test_cpo_trainer.py, tests/test_orpo_trainer.py": (
        "training runs on Hub models and datasets only; no closed-form loss case"
    ),
    "dpo loss_type='sft' and multiple loss_type with loss_weights (MPO)": (
        "'sft' is the model's token nll, not a function of the sequence log-probs; a weighted "
        "mixture is a sum of dpo calls with different loss_type (a spec per mixture)"
    ),
}

DPO_TYPES = [
    "sigmoid",
    "robust",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_pair",
    "apo_zero",
    "apo_down",
    "discopop",
]
# the loss types whose z goes through trl's reference_free and f-divergence code
USES_Z = {"sigmoid", "robust", "hinge", "ipo", "exo_pair"}
SMOOTHED = {"sigmoid", "robust", "exo_pair", "aot", "aot_pair"}


def _pairs(b, seed, scale=3.0):
    g = gen(seed)
    base = -20 * torch.rand(4, b, generator=g) - 1
    noise = scale * torch.randn(4, b, generator=g)
    c, r, rc, rr = base + noise
    return {
        "chosen_logps": c,
        "rejected_logps": r,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
    }


DPO_ARGS = ["chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps"]


def _dpo_cases():
    for lt in DPO_TYPES:
        yield lt, {}
        yield lt, {"beta": 0.5}
        if lt in SMOOTHED:
            yield lt, {"label_smoothing": 0.2}
        if lt in USES_Z or lt in {"apo_zero", "apo_down"}:
            yield lt, {"reference_free": True}
        if lt in USES_Z:
            yield lt, {"f_divergence": "js_divergence"}
            yield lt, {"f_divergence": "alpha_divergence", "f_alpha": 0.5}


def _trl_kw(params):
    kw = dict(params)
    if "f_divergence" in kw:
        kw["f_divergence_type"] = kw.pop("f_divergence")
    if "f_alpha" in kw:
        kw["f_alpha_divergence_coef"] = kw.pop("f_alpha")
    return kw


# bco_pair: trl's RunningMoments rounds the batch mean to float32 (xs_mean.float().item()) before
# it becomes delta; the spec keeps float64. The rounding moves the value by ~1e-8 relative.
# js_divergence: torch's F.softplus is x itself above threshold=20 (value off by < e^-20 = 2e-9,
# its gradient exactly 1); the spec's softplus is exact there.
def _tol(lt, params):
    if lt == "bco_pair":
        return {"rtol": 1e-6, "atol": 1e-12}
    if params.get("f_divergence") == "js_divergence":
        return {"rtol": 1e-10, "atol": 1e-8}
    return {"rtol": 1e-10, "atol": 1e-12}


@pytest.mark.parametrize("b", [1, 7])
@pytest.mark.parametrize("lt,params", list(_dpo_cases()), ids=lambda x: str(x))
def test_dpo_matches_trl(lt, params, b):
    """dpo_trainer.py DPOTrainer.dpo_loss, per pair ("none") and trl's losses.mean()."""
    choice = {k: v for k, v in params.items() if k in ("f_divergence",)}
    call = {k: v for k, v in params.items() if k not in choice}
    fn = compiled("dpo", loss_type=lt, **choice)
    inputs = _pairs(b, seed=len(lt) + b)
    kw = _trl_kw(params)
    # reference_free drops the reference from these losses: no gradient reaches it in trl
    wrt = DPO_ARGS[:2] if params.get("reference_free") else DPO_ARGS
    for red, agg in [("none", lambda x: x), ("mean", torch.mean), ("sum", torch.sum)]:
        assert_same(
            lambda red=red, **x: fn(**x, reduction=red, **call),
            lambda agg=agg, **x: agg(dpo_loss(*[x[k] for k in DPO_ARGS], loss_type=lt, **kw)),
            inputs,
            wrt=wrt,
            **_tol(lt, params),
        )


@pytest.mark.parametrize("lt", DPO_TYPES)
def test_dpo_jax_matches_torch(lt):
    """The jax module on the same inputs as the torch module checked against trl above."""
    import jax.numpy as jnp

    inputs = _pairs(5, seed=3)
    t = compiled("dpo", loss_type=lt)(**inputs, reduction="none")
    j = lossdsl.load("dpo").compile("jax", loss_type=lt)(
        **{k: jnp.asarray(v.numpy()) for k, v in inputs.items()}, reduction="none"
    )
    np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-10, atol=1e-12)


# trl tests/test_dpo_trainer.py v0.24.0, test_dpo_loss_alpha_div_f and test_dpo_loss_js_div_f:
# (f_divergence_type, f_alpha_divergence_coef, policy chosen, policy rejected, ref chosen, ref
# rejected); trl asserts torch.isfinite(losses).all(). We also compare with the transcription.
TRL_OWN_CASES = [
    ("alpha_divergence", 0.5, [410.0, 0.1], [810.5, 0.2], [-610.0, -0.1], [110.6, 0.5]),
    ("js_divergence", 0.5, [410.0, 0.1], [95.5, 0.2], [-610.0, -0.1], [5.5, 0.5]),
]


@pytest.mark.parametrize("fdiv,coef,c,r,rc,rr", TRL_OWN_CASES)
def test_dpo_trl_own_fdivergence_cases(fdiv, coef, c, r, rc, rr):
    fn = compiled("dpo", f_divergence=fdiv)
    xs = [torch.tensor(v) for v in (c, r, rc, rr)]
    ours = fn(*xs, f_alpha=coef, reduction="none")
    assert torch.isfinite(ours).all()
    ref = dpo_loss(*xs, f_divergence_type=fdiv, f_alpha_divergence_coef=coef)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_dpo_boundaries():
    """chosen == rejected: every sigmoid-family loss is log 2 (DPO eq. 7 at a zero margin);
        hinge is 1, ipo (1 / (2 beta))^2, apo_zero 1 (0.5 + 0.5); label_smoothing 0.5 (cDPO's
    maximal label noise) makes the loss blind to which completion was preferred;
        beta -> 0 gives log 2 for any margin; exo_pair's label_smoothing 0 is trl's 1e-3."""
    x = torch.tensor([-3.0, -7.5, -1.25])
    same = {k: x for k in DPO_ARGS}
    log2 = torch.full((3,), math.log(2))
    for lt in ["sigmoid", "robust", "aot", "aot_pair"]:
        out = compiled("dpo", loss_type=lt)(**same, reduction="none")
        torch.testing.assert_close(out, log2)
    torch.testing.assert_close(compiled("dpo", loss_type="hinge")(**same), torch.tensor(1.0))
    torch.testing.assert_close(
        compiled("dpo", loss_type="ipo")(**same, beta=0.25), torch.tensor(4.0)
    )
    torch.testing.assert_close(compiled("dpo", loss_type="apo_zero")(**same), torch.tensor(1.0))
    inputs = _pairs(4, seed=11)
    swapped = {
        "chosen_logps": inputs["rejected_logps"],
        "rejected_logps": inputs["chosen_logps"],
        "ref_chosen_logps": inputs["ref_rejected_logps"],
        "ref_rejected_logps": inputs["ref_chosen_logps"],
    }
    fn = compiled("dpo")
    torch.testing.assert_close(
        fn(**inputs, label_smoothing=0.5, reduction="none"),
        fn(**swapped, label_smoothing=0.5, reduction="none"),
    )
    torch.testing.assert_close(
        compiled("dpo")(**inputs, beta=1e-12, reduction="none"),
        torch.full((4,), math.log(2)),
        rtol=1e-9,
        atol=1e-9,
    )
    exo = compiled("dpo", loss_type="exo_pair")
    torch.testing.assert_close(
        exo(**inputs, label_smoothing=0.0), exo(**inputs, label_smoothing=1e-3), rtol=0, atol=0
    )
    # discopop at a zero margin: -logsigmoid(0) (1 - 1/2) + exp(0) / 2 = log(2)/2 + 1/2
    torch.testing.assert_close(
        compiled("dpo", loss_type="discopop")(**same, reduction="none"),
        torch.full((3,), math.log(2) / 2 + 0.5),
    )


def test_dpo_bco_pair_second_step_is_a_running_mean():
    """What the spec does not model: trl's bco_pair delta after a second batch is the running
    mean of both batches' rewards, not the second batch's own mean; the spec reproduces the
    first step only (documented in the header)."""
    a, b2 = _pairs(4, seed=1), _pairs(4, seed=2)
    running = RunningMoments()
    dpo_loss(*[a[k] for k in DPO_ARGS], loss_type="bco_pair", running=running)
    second = dpo_loss(*[b2[k] for k in DPO_ARGS], loss_type="bco_pair", running=running)
    ours = compiled("dpo", loss_type="bco_pair")(**b2, reduction="none")
    assert not torch.allclose(ours, second, rtol=1e-4)


# ---- kto: trl/trainer/kto_trainer.py KTOTrainer.kto_loss --------------------------------------


def _kto_inputs(b, seed, n_desirable):
    g = gen(seed)
    x = -10 * torch.rand(4, b, generator=g) + torch.randn(4, b, generator=g)
    desirable = torch.zeros(b, dtype=torch.bool)
    desirable[torch.randperm(b, generator=g)[:n_desirable]] = True
    return {
        "logps": x[0],
        "ref_logps": x[1],
        "desirable": desirable,
        "kl_logps": x[2],
        "ref_kl_logps": x[3],
    }


def _kto_ref(lt, beta, dw, uw, order=False):
    def f(logps, ref_logps, desirable, kl_logps=None, ref_kl_logps=None):
        d, u = desirable, ~desirable
        if kl_logps is None:
            kl_logps = ref_kl_logps = torch.zeros_like(logps)
        losses = kto_loss(
            logps[d],
            logps[u],
            kl_logps,
            ref_logps[d],
            ref_logps[u],
            ref_kl_logps,
            loss_type=lt,
            beta=beta,
            desirable_weight=dw,
            undesirable_weight=uw,
        )
        return losses if order else losses.nanmean()

    return f


@pytest.mark.parametrize("lt", ["kto", "apo_zero_unpaired"])
@pytest.mark.parametrize("b,nd", [(6, 3), (5, 5), (5, 0), (1, 1), (1, 0)])
@pytest.mark.parametrize("beta,dw,uw", [(0.1, 1.0, 1.0), (0.5, 1.33, 0.7)])
def test_kto_matches_trl(lt, b, nd, beta, dw, uw):
    fn = compiled("kto", loss_type=lt)
    inputs = _kto_inputs(b, seed=b + nd, n_desirable=nd)
    kw = {"beta": beta, "desirable_weight": dw, "undesirable_weight": uw}
    wrt = ["logps", "ref_logps"]  # trl detaches the KL estimate
    assert_same(lambda **x: fn(**x, **kw), _kto_ref(lt, beta, dw, uw), inputs, wrt=wrt)
    # "none": trl puts the desirable examples first
    d = inputs["desirable"]
    order = torch.cat([torch.nonzero(d)[:, 0], torch.nonzero(~d)[:, 0]])
    torch.testing.assert_close(
        fn(**inputs, **kw, reduction="none")[order], _kto_ref(lt, beta, dw, uw, True)(**inputs)
    )


def test_kto_kl_is_clamped_and_absent_kl_is_zero():
    """trl clamps the KL estimate at 0 (kl.clamp(min=0)): a policy below the reference on the
    mismatched pairs gives the same loss as no KL inputs (kl = 0)."""
    inputs = _kto_inputs(6, seed=5, n_desirable=2)
    inputs["kl_logps"] = inputs["ref_kl_logps"] - 1.0
    fn = compiled("kto")
    absent = {k: v for k, v in inputs.items() if "kl" not in k}
    torch.testing.assert_close(fn(**inputs, reduction="none"), fn(**absent, reduction="none"))
    torch.testing.assert_close(fn(**inputs), _kto_ref("kto", 0.1, 1.0, 1.0)(**inputs))


def test_kto_jax_matches_torch():
    import jax.numpy as jnp

    inputs = _kto_inputs(6, seed=9, n_desirable=4)
    t = compiled("kto")(**inputs, reduction="none")
    j = lossdsl.load("kto").compile("jax")(
        **{k: jnp.asarray(v.numpy()) for k, v in inputs.items()}, reduction="none"
    )
    np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-10, atol=1e-12)


# ---- cpo / simpo / orpo: from logits, through trl's get_batch_logps and nll --------------------


def _sequences(b, t, v, seed, empty_prompt=False):
    """Random logits [B, T, V], input ids, prompt + completion + right padding per row."""
    g = gen(seed)
    ids = torch.randint(0, v, (b, t), generator=g)
    prompt = torch.randint(0 if empty_prompt else 1, t // 2, (b,), generator=g)
    comp = torch.randint(1, t - t // 2, (b,), generator=g)
    pos = torch.arange(t)
    completion = (pos >= prompt[:, None]) & (pos < (prompt + comp)[:, None])
    # labels[:, 1:] are the targets: the first token is never a label
    completion[:, 0] = False
    completion[torch.arange(b), (prompt + comp - 1).clamp(min=1)] = True
    attention = pos < (prompt + comp)[:, None]
    labels = torch.where(completion, ids, -100)
    logits = 2 * torch.randn(b, t, v, generator=g)
    return logits, labels, ids, attention


def _token_logps(logits, ids):
    """The per-token log-probs the specs take: log_softmax of the shifted logits at ids[:, 1:]."""
    return torch.gather(logits[:, :-1].log_softmax(-1), 2, ids[:, 1:, None])[..., 0]


CPO_CASES = [
    ("sigmoid", {}),
    ("sigmoid", {"beta": 0.5, "label_smoothing": 0.1}),
    ("sigmoid", {"cpo_alpha": 0.0}),
    ("hinge", {}),
    ("hinge", {"beta": 2.0, "cpo_alpha": 0.5}),
    ("ipo", {}),
    ("ipo", {"beta": 0.5, "cpo_alpha": 0.0}),
    ("simpo", {}),
    ("simpo", {"beta": 2.0, "simpo_gamma": 1.0, "cpo_alpha": 0.0}),
    ("simpo", {"beta": 2.5, "simpo_gamma": 0.3, "cpo_alpha": 0.0, "alpha": 0.25}),  # AlphaPO
    ("sigmoid", {"alpha": -0.5}),
]


def _pipeline_check(spec_fn, ref_fn, b, seed, rtol=1e-10):
    lc, yc, idc, _ = _sequences(b, 9, 5, seed)
    lr, yr, idr, _ = _sequences(b, 9, 5, seed + 100)

    def ours(lc, lr):
        return spec_fn(
            _token_logps(lc, idc), _token_logps(lr, idr), yc[:, 1:] != -100, yr[:, 1:] != -100
        )

    def ref(lc, lr):
        return ref_fn(lc, yc, lr, yr)

    assert_same(ours, ref, {"lc": lc, "lr": lr}, wrt=["lc", "lr"], rtol=rtol)


@pytest.mark.parametrize("b", [1, 4])
@pytest.mark.parametrize("lt,params", CPO_CASES, ids=lambda x: str(x))
def test_cpo_matches_trl(lt, params, b):
    """cpo_trainer.py: get_batch_logps (mean for ipo/simpo), cross_entropy_loss on the chosen
    half, cpo_loss, losses.mean() + cpo_alpha * nll."""
    fn = compiled("cpo", loss_type=lt)
    _pipeline_check(
        lambda *x: fn(*x, **params),
        lambda *x: cpo_objective(*x, loss_type=lt, **params),
        b,
        seed=b + len(params),
    )


@pytest.mark.parametrize("b", [1, 4])
@pytest.mark.parametrize(
    "params", [{}, {"beta": 2.0, "simpo_gamma": 1.6}, {"label_smoothing": 0.2}]
)
def test_simpo_matches_trl(params, b):
    """trl's documented SimPO: CPOTrainer with loss_type="simpo", cpo_alpha=0."""
    fn = compiled("simpo")
    _pipeline_check(
        lambda *x: fn(*x, **params),
        lambda *x: cpo_objective(*x, loss_type="simpo", cpo_alpha=0.0, **params),
        b,
        seed=7 + b,
    )


@pytest.mark.parametrize("b", [1, 4])
@pytest.mark.parametrize("beta", [0.1, 0.5, 0.0])
def test_orpo_matches_trl(beta, b):
    """orpo_trainer.py: get_batch_logps(average_log_prob=True), the chosen nll over prompt and
    response (attention mask), odds_ratio_loss, policy_nll_loss - losses.mean()."""
    lc, yc, idc, attc = _sequences(b, 9, 5, seed=b)
    lr, yr, idr, _ = _sequences(b, 9, 5, seed=b + 50)
    fn = compiled("orpo")

    def ours(lc, lr):
        return fn(
            _token_logps(lc, idc),
            _token_logps(lr, idr),
            yc[:, 1:] != -100,
            yr[:, 1:] != -100,
            attc[:, 1:],
            beta=beta,
        )

    def ref(lc, lr):
        return orpo_objective(lc, yc, lr, yr, idc, attc.long(), beta=beta)

    assert_same(ours, ref, {"lc": lc, "lr": lr}, wrt=["lc", "lr"])


def test_cpo_orpo_simpo_jax_match_torch():
    import jax.numpy as jnp

    lc, yc, idc, attc = _sequences(3, 9, 5, seed=1)
    lr, yr, idr, _ = _sequences(3, 9, 5, seed=2)
    args = [_token_logps(lc, idc), _token_logps(lr, idr), yc[:, 1:] != -100, yr[:, 1:] != -100]
    for name, extra in [("cpo", []), ("simpo", []), ("orpo", [attc[:, 1:]])]:
        t = compiled(name)(*args, *extra, reduction="none")
        j = lossdsl.load(name).compile("jax")(
            *[jnp.asarray(a.numpy()) for a in args + extra], reduction="none"
        )
        np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-10, atol=1e-12)


def test_simpo_is_cpo_with_simpo_and_no_bc():
    lc, yc, idc, _ = _sequences(4, 9, 5, seed=3)
    lr, yr, idr, _ = _sequences(4, 9, 5, seed=4)
    args = [_token_logps(lc, idc), _token_logps(lr, idr), yc[:, 1:] != -100, yr[:, 1:] != -100]
    torch.testing.assert_close(
        compiled("simpo")(*args, reduction="none"),
        compiled("cpo", loss_type="simpo")(*args, cpo_alpha=0.0, reduction="none"),
        rtol=0,
        atol=0,
    )


def test_cpo_equal_completions_closed_form():
    """chosen == rejected (same tokens, same logits): z = 0, so sigmoid is log 2 + the nll share
    (CPO eq. 3 at a zero margin), simpo -logsigmoid(-gamma) (SimPO eq. 6)."""
    lc, yc, idc, _ = _sequences(3, 9, 5, seed=5)
    tok = _token_logps(lc, idc)
    m = yc[:, 1:] != -100
    nll = -(tok * m).sum() / m.sum()
    cpo = compiled("cpo")(tok, tok, m, m)
    torch.testing.assert_close(cpo, math.log(2) + nll)
    simpo = compiled("simpo")(tok, tok, m, m, beta=2.0, simpo_gamma=1.0)
    torch.testing.assert_close(simpo, torch.nn.functional.softplus(torch.tensor(1.0)))


def test_empty_completion_rows():
    """A pair whose completion has no token: trl gives NaN (0 / 0); simpo takes its mean log-prob
    as 0 and orpo drops its odds-ratio term (documented in the spec headers); the other pairs
    keep trl's values."""
    lc, yc, idc, attc = _sequences(3, 9, 5, seed=6)
    lr, yr, idr, _ = _sequences(3, 9, 5, seed=7)
    tc, tr = _token_logps(lc, idc), _token_logps(lr, idr)
    mc, mr = yc[:, 1:] != -100, yr[:, 1:] != -100
    mr_empty = mr.clone()
    mr_empty[1] = False
    s_full = compiled("simpo")(tc, tr, mc, mr, reduction="none")
    s_empty = compiled("simpo")(tc, tr, mc, mr_empty, reduction="none")
    torch.testing.assert_close(s_empty[[0, 2]], s_full[[0, 2]])
    lc_mean = (tc * mc)[1].sum() / mc[1].sum()
    # simpo eq. with lr = 0: -logsigmoid(beta * lc - gamma)
    expected = -torch.nn.functional.logsigmoid(0.1 * lc_mean - 0.5)
    torch.testing.assert_close(s_empty[1], expected)
    o = compiled("orpo")(tc, tr, mc, mr_empty, attc[:, 1:], reduction="none")
    n = attc[:, 1:]
    torch.testing.assert_close(o[1], -(tc * n)[1].sum() * 3 / n.sum())


# ---- dpo_tokens: RPO (rpo_alpha), WPO (use_weighting), LD-DPO (ld_alpha) -----------------------
def _token_pairs(b, t, v, seed, lengths=None):
    """Chosen and rejected logits [B, T, V], ids in 1 .. V - 1 (trl's NLL ignores id 0, its
    padding label), completion masks of random lengths 1 .. T after a random prompt, and the
    reference's per-token log-probs."""
    g = gen(seed)
    out = []
    for half in range(2):
        logits = 2 * torch.randn(b, t, v, generator=g, dtype=torch.float64)
        ids = torch.randint(1, v, (b, t), generator=g)
        start = torch.randint(0, t // 2, (b,), generator=g)
        n = (
            torch.randint(1, t - t // 2 + 1, (b,), generator=g)
            if lengths is None
            else lengths[half]
        )
        pos = torch.arange(t)
        mask = (pos >= start[:, None]) & (pos < (start + n)[:, None])
        ref = torch.randn(b, t, generator=g, dtype=torch.float64) - 2.0
        out.append((logits, ids, mask, ref))
    return out


DPO_TOKEN_CASES = [
    {},
    {"rpo_alpha": 1.0},
    {"rpo_alpha": 0.3, "loss_type": "hinge", "beta": 0.5},
    {"ld_alpha": 0.5},
    {"ld_alpha": 0.0, "loss_type": "robust", "label_smoothing": 0.2},
    {"use_weighting": True},
    {"use_weighting": True, "wpo_clamp": False},
    {"use_weighting": True, "rpo_alpha": 1.0, "ld_alpha": 0.7},
    {"loss_type": "ipo", "beta": 0.5},
    {"loss_type": "ipo", "rpo_alpha": 0.5, "use_weighting": True},
    {"loss_type": "apo_zero", "ld_alpha": 0.25},
]


def _trl_token_kw(params):
    kw = {k: params[k] for k in ("loss_type", "beta", "label_smoothing") if k in params}
    kw["rpo_alpha"] = params.get("rpo_alpha")
    kw["ld_alpha"] = params.get("ld_alpha")
    kw["use_weighting"] = params.get("use_weighting", False)
    kw["clamp_weights"] = params.get("wpo_clamp", True)
    return kw


@pytest.mark.parametrize("b", [1, 4])
@pytest.mark.parametrize("params", DPO_TOKEN_CASES, ids=str)
def test_dpo_tokens_matches_trl(params, b):
    """dpo_tokens against trl's token-level DPO (tests/reference/trl_official.py
    dpo_token_objective), values and gradients w.r.t. both halves' logits, float64."""
    (lc, idc, mc, rc), (lr, idr, mr, rr) = _token_pairs(b, 7, 5, 3 + b)
    choices = {k: v for k, v in params.items() if isinstance(v, str) or isinstance(v, bool)}
    floats = {k: v for k, v in params.items() if k not in choices}
    fn = lossdsl.load("dpo_tokens").compile("torch", **choices)
    assert_same(
        lambda lc, lr: fn(lc, idc, mc, lr, idr, mr, rc, rr, **floats),
        lambda lc, lr: dpo_token_objective(
            lc, idc, mc, lr, idr, mr, rc, rr, **_trl_token_kw(params)
        ),
        {"lc": lc, "lr": lr},
        wrt=["lc", "lr"],
        rtol=1e-10,
    )


def test_dpo_tokens_ld_alpha_counts_positions_past_the_shorter_completion():
    """Equal lengths: ld_alpha changes nothing; chosen 2 tokens and rejected 5: the rejected
    sum is its first 2 tokens plus ld_alpha times the other 3 (LD-DPO, arXiv:2409.06411)."""
    lengths = (torch.tensor([2]), torch.tensor([5]))
    (lc, idc, mc, rc), (lr, idr, mr, rr) = _token_pairs(1, 8, 4, 11, lengths)
    fn = lossdsl.load("dpo_tokens").compile("torch")
    lp = torch.gather(lr.log_softmax(-1), 2, idr[..., None])[..., 0][mr]
    rp = rr[mr]
    for a in (1.0, 0.5, 0.0):
        want = dpo_loss(
            torch.gather(lc.log_softmax(-1), 2, idc[..., None])[..., 0][mc].sum()[None],
            (lp[:2].sum() + a * lp[2:].sum())[None],
            rc[mc].sum()[None],
            (rp[:2].sum() + a * rp[2:].sum())[None],
        )
        got = fn(lc, idc, mc, lr, idr, mr, rc, rr, ld_alpha=a)
        torch.testing.assert_close(got, want.mean(), rtol=1e-12, atol=1e-14)


def test_dpo_tokens_jax_matches_torch():
    import jax

    jax.config.update("jax_enable_x64", True)
    (lc, idc, mc, rc), (lr, idr, mr, rr) = _token_pairs(3, 6, 4, 21)
    kw = dict(rpo_alpha=0.5, ld_alpha=0.6)
    t = lossdsl.load("dpo_tokens").compile("torch", use_weighting=True)
    j = lossdsl.load("dpo_tokens").compile("jax", use_weighting=True)
    args = (lc, idc, mc, lr, idr, mr, rc, rr)
    want = t(*args, **kw, reduction="none").numpy()
    got = np.asarray(j(*(a.numpy() for a in args), **kw, reduction="none"))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("clamp", [True, False])
def test_dpo_tokens_wpo_weight_above_1_is_clamped_as_trl_v0_24(clamp):
    """Completions that are each position's most likely token: lp - log sum p^2 >= -log p > 0,
    so the WPO weight exceeds 1 and trl v0.24.0's clamp binds (asserted on the reference)."""
    (lc, _, mc, rc), (lr, _, mr, rr) = _token_pairs(3, 6, 4, 41)
    idc, idr = lc.argmax(-1), lr.argmax(-1)
    args = (lc, idc, mc, lr, idr, mr, rc, rr)
    kw = dict(use_weighting=True)
    clamped = dpo_token_objective(*args, **kw, clamp_weights=True)
    free = dpo_token_objective(*args, **kw, clamp_weights=False)
    assert free > clamped * 1.01
    fn = lossdsl.load("dpo_tokens").compile("torch", use_weighting=True, wpo_clamp=clamp)
    assert_same(
        lambda lc, lr: fn(lc, idc, mc, lr, idr, mr, rc, rr),
        lambda lc, lr: dpo_token_objective(
            lc, idc, mc, lr, idr, mr, rc, rr, **kw, clamp_weights=clamp
        ),
        {"lc": lc, "lr": lr},
        wrt=["lc", "lr"],
        rtol=1e-10,
    )
