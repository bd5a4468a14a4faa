"""The framework idioms around a compiled loss: lossdsl.torch.Loss (an nn.Module for
`criterion=` slots: extra_repr, state_dict of tensor params, device and dtype moves, trained
nn.Parameter params, torch.save of a model holding it) and lossdsl.jax.Loss (hashable and
immutable: a jax.jit static argument, a flax/equinox field; per-example form for jax.vmap);
both round-trip through JSON configs. Expected values: torch.nn.functional.cross_entropy
(torch 2.13) where the loss is plain CE, else the compiled function itself, which
tests/test_specs.py checks against the references."""

from __future__ import annotations

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import call, random_inputs, sizes_for

import lossdsl
import lossdsl.jax
import lossdsl.torch

SIZES = {"B": 3, "C": 4, "D": 3, "V": 2, "K": 3, "S": (3, 2), "N": 3, "M": 3, "L": 3, "T": 4}


def _xy(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randint(
        0, 5, (6,), generator=g
    )


def test_torch_module_is_a_criterion():
    x, y = _xy()
    crit = lossdsl.torch.Loss("focal", gamma=0.0)
    torch.testing.assert_close(crit(x, y), F.cross_entropy(x, y))
    assert repr(crit).startswith("Loss(focal, gamma=0.0, reduction='mean')")
    none = lossdsl.torch.Loss("focal", gamma=2.0, reduction="none")
    assert none(x, y).shape == (6,)
    torch.testing.assert_close(
        lossdsl.torch.Loss("focal", gamma=2.0, reduction="sum")(x, y), none(x, y).sum()
    )
    with pytest.raises(lossdsl.ParamError, match="has no param 'gama'") as e:
        lossdsl.torch.Loss("focal", gama=2.0)
    assert "gamma" in e.value.hint


def test_torch_module_tensor_params_are_state_and_move_with_the_module():
    x, y = _xy()
    crit = lossdsl.torch.Loss("focal", gamma=torch.tensor(2.0))
    assert list(crit.state_dict()) == ["params.gamma"]
    assert "gamma=tensor()" in repr(crit)
    want = lossdsl.load("focal").compile("torch")(x, y, gamma=2.0)
    torch.testing.assert_close(crit(x, y), want)
    crit.double()
    assert crit.params.gamma.dtype == torch.float64
    other = lossdsl.torch.Loss("focal", gamma=torch.tensor(0.0))
    other.load_state_dict(crit.state_dict())
    torch.testing.assert_close(other(x, y), want)


def test_torch_module_trains_a_parameter_param():
    """info_nce's temperature as an nn.Parameter: it is in parameters() and gets a gradient
    equal to autograd's through the compiled function."""
    rng = np.random.default_rng(0)
    feats = torch.tensor(rng.standard_normal((4, 2, 3)))
    t = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
    crit = lossdsl.torch.Loss("info_nce", temperature=t)
    assert [p is t for p in crit.parameters()] == [True]
    crit(feats).backward()
    t2 = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    lossdsl.load("info_nce").compile("torch")(feats, temperature=t2).backward()
    torch.testing.assert_close(t.grad, t2.grad)


def test_torch_save_of_a_model_holding_the_loss():
    x, y = _xy()
    model = torch.nn.Module()
    model.net = torch.nn.Linear(5, 5).double()
    model.crit = lossdsl.torch.Loss("focal", gamma=torch.tensor(1.5), alpha=0.25)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    torch.testing.assert_close(back.crit(back.net(x), y), model.crit(model.net(x), y))
    assert "crit.params.gamma" in back.state_dict()


def _config_params(spec):
    """Every param of a spec at a non-default value where one is cheap to pick: a choice's last
    word, a bool flipped; numbers at their defaults (a constraint may forbid others)."""
    out = {}
    for p in spec.params:
        if p.choices:
            out[p.name] = p.choices[-1]
        elif p.dtype == "bool":
            out[p.name] = not p.default
        elif p.default is not None:
            out[p.name] = p.default
    return out


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_every_spec_round_trips_through_a_json_config(backend):
    """Loss(name, **params).config() -> json -> from_config gives the same config and the same
    value on the same inputs, for every shipped spec (choices at their last word, bools
    flipped, inf defaults written as "inf"). jax evaluates every 8th spec only (op by op a jax
    call costs ~0.1 s here; the config is backend-independent and its round trip is checked on
    every spec, and a jax Loss equal to another computes what it does: its hash and equality
    are its config's)."""
    mod = lossdsl.torch if backend == "torch" else lossdsl.jax
    checked = 0
    for k, name in enumerate(lossdsl.list_specs()):
        spec = lossdsl.load(name)
        params = _config_params(spec)
        evaluate = backend == "torch" or k % 8 == 0
        try:
            loss = mod.Loss(name, **params)
            if evaluate:
                data = random_inputs(spec, sizes_for(spec, SIZES), np.random.default_rng(0))
                want = call(backend, loss, data, "float32")
        except lossdsl.LossError:
            continue  # a flipped bool or last choice this spec's inputs refuse: nothing to compare
        back = mod.Loss.from_config(json.loads(json.dumps(loss.config())))
        assert back.config() == loss.config(), name
        if evaluate:
            got = call(backend, back, data, "float32")
            np.testing.assert_array_equal(got, want, err_msg=name)
        if backend == "jax":
            assert back == loss and hash(back) == hash(loss)
        checked += 1
    assert checked > 150


def test_jax_loss_is_a_static_argument_and_vmaps_per_example():
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.standard_normal((6, 5))), jnp.asarray(rng.integers(0, 5, 6))
    loss = lossdsl.jax.Loss("focal", gamma=2.0)
    assert loss == lossdsl.jax.Loss("focal", gamma=2.0) != lossdsl.jax.Loss("focal", gamma=1.0)
    with pytest.raises(AttributeError, match="immutable"):
        loss.reduction = "sum"

    @jax.jit
    def step(x, y):
        return loss(x, y)

    ref = lossdsl.load("focal").compile("jax")
    np.testing.assert_allclose(step(x, y), ref(x, y, gamma=2.0), rtol=1e-6)
    # as a static argument: the jit cache keys on the Loss's config
    f = jax.jit(lambda fn, x, y: fn(x, y), static_argnums=0)
    np.testing.assert_allclose(f(loss, x, y), ref(x, y, gamma=2.0), rtol=1e-6)
    # one example per call: jax.vmap over the batch, and per-example gradients
    per = lossdsl.jax.Loss("focal", gamma=2.0, per_example=True)
    np.testing.assert_allclose(
        jax.vmap(per)(x, y), ref(x, y, gamma=2.0, reduction="none"), rtol=1e-6
    )
    g = jax.vmap(jax.grad(per))(x, y)
    g_all = jax.grad(lambda x: ref(x, y, gamma=2.0, reduction="sum"))(x)
    np.testing.assert_allclose(g, g_all, rtol=1e-5, atol=1e-7)
    with pytest.raises(lossdsl.ParamError, match="fixed"):
        lossdsl.jax.Loss("focal", gamma=jnp.asarray(2.0))


def _bf16(v):
    return torch.tensor(v).to(torch.bfloat16) if v.dtype.kind == "f" else torch.tensor(v)


def test_under_torch_autocast_every_spec_computes_and_returns_float32_as_torch_losses_do():
    """torch's losses are on autocast's float32 list: under torch.autocast they compute in and
    return float32 (F.cross_entropy on bfloat16 logits, torch 2.13). Every spec with a float
    input does the same: its value is the one outside autocast on the inputs lifted to float32,
    so a matmul inside (supcon, info_nce, clip) does not drop to bfloat16. Outside autocast a
    bfloat16 input still gives a bfloat16 result (tests/test_numerics.py, the precision
    policy)."""
    x = torch.randn(8, 5).bfloat16()
    y = torch.randint(0, 5, (8,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.cross_entropy(x, y).dtype == torch.float32  # the policy followed
        assert torch.equal(F.cross_entropy(x, y), F.cross_entropy(x.float(), y))
        assert (x.float() @ x.float().T).dtype == torch.bfloat16  # what a loss's matmul would do
    checked = 0
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        data = random_inputs(spec, sizes_for(spec, SIZES), np.random.default_rng(0))
        if not all(isinstance(v, np.ndarray) for v in data.values()):
            continue  # a function input (r1_penalty's critic): the framework's own function
        if not any(v.dtype.kind == "f" for v in data.values()):
            continue
        fn = spec.compile("torch")
        args = {k: _bf16(v) for k, v in data.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            try:
                out = fn(**args)
            except lossdsl.LossError:
                continue  # bfloat16 rounding moved an input out of its domain
        assert out.dtype == torch.float32, name
        lifted = {k: v.float() if v.is_floating_point() else v for k, v in args.items()}
        torch.testing.assert_close(out, fn(**lifted), rtol=0, atol=0, equal_nan=True, msg=name)
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_module_at_its_defaults_computes_what_the_compiled_spec_does(backend):
    """Loss(name) with no reduction= takes the spec's own default, as load(name).compile()
    does (asl sums over the batch: its module once returned the mean, 1/B of it). Every
    spec's default is checked; values on every spec for torch, every 8th for jax (~0.1 s per
    op-by-op jax call here)."""
    mod = lossdsl.torch if backend == "torch" else lossdsl.jax
    sums = 0
    for k, name in enumerate(lossdsl.list_specs()):
        spec = lossdsl.load(name)
        if spec.fns:
            continue
        loss = mod.Loss(name)
        assert loss.reduction == spec.default_reduction, name
        sums += spec.default_reduction != "mean"
        if backend == "jax" and k % 8:
            continue
        data = random_inputs(spec, sizes_for(spec, SIZES), np.random.default_rng(0))
        want = call(backend, spec.compile(backend), data, "float32")
        np.testing.assert_array_equal(call(backend, loss, data, "float32"), want, err_msg=name)
    assert sums > 0  # specs whose default is not the mean exist (asl, ...): the check bites
