"""Losses with a derivative inside (`grad(e, wrt=x)` of a function input): the gradient
penalties r1_penalty against StyleGAN2-ADA's R1 and wgan_gp against the WGAN-GP official code
(tests/reference/gradient_penalty_official.py), and vat (a power iteration of input gradients)
against lyakaap/VAT-pytorch (tests/reference/vat_official.py). What a GAN trainer uses is the
penalty's value and its gradient with respect to the critic's parameters (a double backward),
so both are compared, in float64, with a small MLP critic; the jax module is checked on the
same critic written in jax (its parameters as a pytree), through jax.grad of the loss.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference.gradient_penalty_official import r1_official, wgan_gp_official
from reference.vat_official import vat_official
from torch_helpers import gen, reduce_

import lossdsl


class Critic(torch.nn.Module):
    """A two-layer MLP on the flattened sample: [B, *S] -> [B]."""

    def __init__(self, d: int, h: int, g: torch.Generator):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(d, h, generator=g) / d**0.5)
        self.b1 = torch.nn.Parameter(torch.randn(h, generator=g) * 0.1)
        self.w2 = torch.nn.Parameter(torch.randn(h, generator=g) / h**0.5)

    def forward(self, x):
        return torch.tanh(x.reshape(x.shape[0], -1) @ self.w1 + self.b1) @ self.w2


def jax_critic(params):
    def f(x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"]) @ params["w2"]

    return f


def _params(critic):
    return {k: jnp.asarray(v.detach().numpy()) for k, v in critic.named_parameters()}


def _param_grads(loss, critic):
    return {
        k: g.numpy()
        for k, g in zip(
            dict(critic.named_parameters()), torch.autograd.grad(loss, list(critic.parameters()))
        )
    }


SHAPES = [(4, (3, 2, 2)), (7, (5,))]


# ---- r1_penalty: NVlabs/stylegan2-ada-pytorch training/loss.py (Dr1) --------------------------


@pytest.mark.parametrize("b,s", SHAPES)
@pytest.mark.parametrize("gamma", [10.0, 0.5])
def test_r1_penalty_matches_stylegan2_ada(b, s, gamma, reduction):
    g = gen(3)
    x = torch.randn(b, *s, generator=g)
    critic = Critic(int(np.prod(s)), 6, g)
    fn = lossdsl.load("r1_penalty").compile("torch")
    got = fn(x, critic, gamma=gamma, reduction=reduction)
    want = reduce_(r1_official(x, critic, gamma), reduction)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    # the double backward: the penalty's gradient with respect to the critic's parameters
    gw = _param_grads(want.sum(), critic)
    gg = _param_grads(got.sum(), critic)
    for k in gw:
        np.testing.assert_allclose(gg[k], gw[k], rtol=1e-10, atol=1e-13, err_msg=k)
    # jax: the same critic, the gradient with respect to its parameters through jax.grad
    jfn = lossdsl.load("r1_penalty").compile("jax")
    xj = jnp.asarray(x.numpy())

    def jloss(p):
        return jnp.sum(jfn(xj, jax_critic(p), gamma=gamma, reduction=reduction))

    np.testing.assert_allclose(float(jloss(_params(critic))), float(want.sum()), rtol=1e-12)
    gj = jax.grad(jloss)(_params(critic))
    for k in gw:
        np.testing.assert_allclose(np.asarray(gj[k]), gw[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_r1_penalty_runs_under_no_grad_compile_and_jit():
    """torch.no_grad (an evaluation pass: the gradient is still taken, autograd enabled inside),
    torch.compile (autograd.grad is a graph break: it runs) and jax.jit. Expected: the eager
    value, the official's."""
    g = gen(5)
    x = torch.randn(5, 2, 3, generator=g)
    critic = Critic(6, 4, g)
    fn = lossdsl.load("r1_penalty").compile("torch")
    want = r1_official(x, critic).mean()
    with torch.no_grad():
        torch.testing.assert_close(fn(x, critic), want.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.compile(fn)(x, critic), want, rtol=1e-12, atol=0)
    jfn = lossdsl.load("r1_penalty").compile("jax")
    p = _params(critic)
    got = jax.jit(lambda x, p: jfn(x, jax_critic(p)))(jnp.asarray(x.numpy()), p)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-12)


def test_r1_penalty_of_a_critic_blind_to_its_input_is_zero():
    """D(x) = c (no path from x, and none requiring grad): the penalty is exactly 0, where
    autograd.grad alone would raise (lossdsl's _grad: zeros). Expected: 0 (R1's definition)."""
    x = torch.randn(3, 4)
    fn = lossdsl.load("r1_penalty").compile("torch")
    assert float(fn(x, lambda x: torch.zeros(x.shape[0]), reduction="sum")) == 0.0
    blind = torch.nn.Parameter(torch.ones(3))
    out = fn(x, lambda x: blind * 2.0, reduction="sum")
    assert float(out) == 0.0


# ---- wgan_gp: igul222/improved_wgan_training (gan_toy.py / gan_64x64.py) ----------------------


@pytest.mark.parametrize("b,s", SHAPES)
@pytest.mark.parametrize("lam", [10.0, 0.1])
def test_wgan_gp_matches_official(b, s, lam, reduction):
    g = gen(7)
    real = torch.randn(b, *s, generator=g, requires_grad=True)
    fake = torch.randn(b, *s, generator=g, requires_grad=True)
    alpha = torch.rand(b, generator=g, requires_grad=True)
    critic = Critic(int(np.prod(s)), 5, g)
    fn = lossdsl.load("wgan_gp").compile("torch")
    got = fn(real, fake, alpha, critic, **{"lambda": lam}, reduction=reduction)
    want = reduce_(wgan_gp_official(real, fake, alpha, critic, lam), reduction)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    # gradients: the critic's parameters and, through the interpolates, real, fake and alpha
    leaves = [*critic.parameters(), real, fake, alpha]
    gw = torch.autograd.grad(want.sum(), leaves)
    for a, w in zip(torch.autograd.grad(got.sum(), leaves), gw):
        torch.testing.assert_close(a, w, rtol=1e-10, atol=1e-13)
    jfn = lossdsl.load("wgan_gp").compile("jax")
    rj, fj, aj = (jnp.asarray(t.detach().numpy()) for t in (real, fake, alpha))

    def jloss(p, rj, fj, aj):
        return jnp.sum(jfn(rj, fj, aj, jax_critic(p), **{"lambda": lam}, reduction=reduction))

    gj = jax.grad(jloss, argnums=(0, 1, 2, 3))(_params(critic), rj, fj, aj)
    names = [k for k, _ in critic.named_parameters()]
    for k, w in zip(names, gw):
        np.testing.assert_allclose(np.asarray(gj[0][k]), w.numpy(), rtol=1e-10, atol=1e-13)
    for got_j, w in zip(gj[1:], gw[len(names) :]):
        np.testing.assert_allclose(np.asarray(got_j), w.numpy(), rtol=1e-10, atol=1e-13)


def test_wgan_gp_at_a_unit_gradient_is_zero_and_alpha_picks_the_end():
    """A linear critic D(x) = <w, x> with ||w|| = 1 has gradient norm 1 everywhere: the penalty
    is 0 (the paper's optimum). alpha = 0 takes the real sample, alpha = 1 the fake one: with
    D(x) = sum(x^2) the gradient 2 xh, so the penalty is lambda (2 ||xh|| - 1)^2 at that end.
    Expected: Gulrajani et al. 2017, eq. 3, by hand."""
    g = gen(9)
    real, fake = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    w = torch.randn(3, generator=g)
    w = w / w.norm()
    fn = lossdsl.load("wgan_gp").compile("torch")
    got = fn(real, fake, torch.rand(4, generator=g), lambda x: x @ w, reduction="none")
    torch.testing.assert_close(got, torch.zeros(4), rtol=0, atol=1e-24)
    for a, end in ((0.0, real), (1.0, fake)):
        got = fn(real, fake, torch.full((4,), a), lambda x: (x * x).sum(1), reduction="none")
        torch.testing.assert_close(got, 10.0 * (2 * end.norm(dim=1) - 1) ** 2, rtol=1e-12, atol=0)


# ---- vat: lyakaap/VAT-pytorch vat.py (VATLoss) --------------------------------------------------


class Head(torch.nn.Module):
    """A two-layer MLP classifier on the flattened sample: [B, *S] -> [B, C]."""

    def __init__(self, d: int, h: int, c: int, g: torch.Generator):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(d, h, generator=g) / d**0.5)
        self.w2 = torch.nn.Parameter(torch.randn(h, c, generator=g) / h**0.5)

    def forward(self, x):
        return torch.tanh(x.reshape(x.shape[0], -1) @ self.w1) @ self.w2


def jax_head(params):
    def f(x):
        return jnp.tanh(x.reshape(x.shape[0], -1) @ params["w1"]) @ params["w2"]

    return f


@pytest.mark.parametrize("b,s", SHAPES)
@pytest.mark.parametrize("kw", [{}, {"xi": 1e-3, "eps": 8.0, "ip": 2}, {"ip": 0}])
def test_vat_matches_official(b, s, kw, reduction):
    """Values and the gradient with respect to the model's parameters, at VATLoss's defaults
    (xi 10, eps 1, ip 1), at a small xi = 1e-3 with two power steps (at the paper's 1e-6 the
    direction's norm falls below the official's + 1e-8 and the loss to rounding noise), and
    with no power step."""
    g = gen(11)
    x, u = torch.randn(b, *s, generator=g), torch.rand(b, *s, generator=g) - 0.5
    model = Head(int(np.prod(s)), 6, 4, g)
    fn = lossdsl.load("vat").compile("torch")
    got = fn(x, u, model(x), model, **kw, reduction=reduction)
    want = vat_official(model, x, u, **kw, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)
    gw = _param_grads(want.sum(), model)
    gg = _param_grads(got.sum(), model)
    for k in gw:
        np.testing.assert_allclose(gg[k], gw[k], rtol=1e-9, atol=1e-13, err_msg=k)
    jfn = lossdsl.load("vat").compile("jax")
    xj, uj = jnp.asarray(x.numpy()), jnp.asarray(u.numpy())

    def jloss(p):
        m = jax_head(p)
        return jnp.sum(jfn(xj, uj, m(xj), m, **kw, reduction=reduction))

    np.testing.assert_allclose(
        float(jloss(_params(model))), float(want.sum()), rtol=1e-10, atol=1e-15
    )
    gj = jax.grad(jloss)(_params(model))
    for k in gw:
        np.testing.assert_allclose(np.asarray(gj[k]), gw[k], rtol=1e-9, atol=1e-13, err_msg=k)
