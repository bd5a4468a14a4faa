"""Declared gradients: `grad_reverse` against DANN's gradient reversal layer, `vq_commitment`
and `straight_through` against Sonnet's VectorQuantizer (both transcribed in
tests/reference/custom_grad_official.py), and `custom_grad` over every broadcasting pattern
against its definition (the value y; x's gradient g times the output's, summed over the dims x
lacks; none into y or g). numpy's gradients are finite differences of the float64 reference,
which holds y and g at the base point (backends/numpy_ref.py).

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import call, grads
from reference.custom_grad_official import dann_domain, vector_quantizer
from torch_helpers import gen

import lossdsl
from lossdsl.equiv import fd_grads
from lossdsl.errors import DimMismatch, LossError


def _torch_ref(fn, data):
    leaves = {k: v.clone().requires_grad_() for k, v in data.items()}
    val = fn(**leaves)
    val.backward()
    return float(val.detach()), {k: v.grad.numpy() for k, v in leaves.items()}


def _check(spec, data, want, gwant, **params):
    """Value and gradients of the mean on torch and jax, and the float64 reference's value
    and finite differences, against the transcription's."""
    inputs = {k: v.numpy() for k, v in data.items()}
    for backend in ("numpy", "torch", "jax"):
        fn = spec.compile(backend)
        got = call(backend, fn, inputs, "float64", **params)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=backend)
        g = (
            fd_grads(spec, frozenset(), inputs, list(inputs), **params)
            if backend == "numpy"
            else grads(backend, fn, inputs, list(inputs), "float64", **params)
        )
        tol = 1e-7 if backend == "numpy" else 1e-12
        for k in inputs:
            np.testing.assert_allclose(g[k], gwant[k], rtol=tol, atol=tol, err_msg=(backend, k))


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
@pytest.mark.parametrize("b,d", [(5, 3), (1, 1)])
def test_dann_domain_equals_the_reverse_layer(lam, b, d):
    """Features, classifier weight and bias, domain labels (soft ones too): the loss is the
    classifier's BCE, its gradient w.r.t. the classifier is BCE's, w.r.t. the features -lam
    times BCE's (ReverseLayerF, fungtion/DANN)."""
    g = gen(int(lam * 10) + b)
    data = {
        "features": torch.randn(b, d, generator=g, dtype=torch.float64),
        "weight": torch.randn(d, generator=g, dtype=torch.float64),
        "bias": torch.randn((), generator=g, dtype=torch.float64),
        "domain": torch.rand(b, generator=g, dtype=torch.float64).round(),
    }
    want, gwant = _torch_ref(lambda **kw: dann_domain(**kw, lam=lam), data)
    _check(lossdsl.load("dann_domain"), data, want, gwant, **{"lambda": lam})


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("b,k,d", [(6, 4, 3), (1, 1, 2), (3, 5, 1)])
def test_vq_commitment_equals_sonnet(beta, b, k, d):
    """Codebook + beta * commitment of Sonnet's VectorQuantizer: values and gradients w.r.t.
    the encoder outputs (beta times the commitment term's) and the codebook (the codebook
    term's, on the chosen codes only), one code (K = 1) and one sample (B = 1) included."""
    g = gen(b * 100 + k * 10 + d)
    data = {
        "z_e": torch.randn(b, d, generator=g, dtype=torch.float64),
        "codebook": torch.randn(k, d, generator=g, dtype=torch.float64),
    }
    ref = lambda z_e, codebook: vector_quantizer(z_e, codebook, beta)[0]  # noqa: E731
    want, gwant = _torch_ref(ref, data)
    _check(lossdsl.load("vq_commitment"), data, want, gwant, beta=beta)


SUBSETS = [(), ("B",), ("C",), ("B", "C"), ("C", "B")]


def _decl(dims):
    return "float" if not dims else f"float[{', '.join(dims)}]"


@pytest.mark.parametrize("ydims,xdims,gdims", list(itertools.product(SUBSETS, repeat=3)))
def test_custom_grad_over_every_broadcasting_pattern(ydims, xdims, gdims):
    """custom_grad(y, wrt=x, grad=g) * k summed, for every choice of y's, x's and g's dims
    among none, B, C and both in either order (disjoint ones are a DimMismatch that hints at
    expand, as for any elementwise op): the value is sum(y * k) with y broadcast over
    the dims it lacks; x's gradient sum over the dims x lacks of g * k (the definition in
    docs/language.md); y's and g's none (both are inputs here, so a leak would show)."""
    src = (
        f"loss f(y: {_decl(ydims)}, x: {_decl(xdims)}, g: {_decl(gdims)}, k: float[B, C]) "
        "{ sum(custom_grad(y, wrt=x, grad=g) * k, over=(B, C)) }"
    )
    sets = {frozenset(ydims), frozenset(xdims), frozenset(gdims)}
    if frozenset().union(*sets) not in sets:
        # [B] beside [C] with no [B, C] to lay them out: an outer product the language asks to
        # spell with expand (lossdsl/types.py broadcast, as for *)
        with pytest.raises(DimMismatch, match="expand"):
            lossdsl.parse(src)
        return
    spec = lossdsl.parse(src)
    rng = np.random.default_rng(len(ydims) * 25 + len(xdims) * 5 + len(gdims))
    sizes = {"B": 3, "C": 2}

    def arr(dims):
        return rng.standard_normal([sizes[d] for d in dims])

    inputs = {"y": arr(ydims), "x": arr(xdims), "g": arr(gdims), "k": arr(("B", "C"))}
    full = {}
    for name in ("y", "x", "g"):  # laid out as [B, C]
        dims = {"y": ydims, "x": xdims, "g": gdims}[name]
        v = inputs[name]
        v = np.transpose(v, [dims.index(d) for d in ("B", "C") if d in dims]) if dims else v
        full[name] = v.reshape([sizes[d] if d in dims else 1 for d in ("B", "C")])
    want = float((np.broadcast_to(full["y"], (3, 2)) * inputs["k"]).sum())
    gx = np.broadcast_to(full["g"] * inputs["k"], (3, 2))
    gx = gx.sum(axis=tuple(i for i, d in enumerate(("B", "C")) if d not in xdims))
    gx = gx.T if xdims == ("C", "B") else gx
    gk = np.broadcast_to(full["y"], (3, 2))
    gwant = {"y": np.zeros_like(inputs["y"]), "x": gx, "g": np.zeros_like(inputs["g"]), "k": gk}
    _check(spec, {k: torch.from_numpy(v) for k, v in inputs.items()}, want, gwant, reduction="sum")


def test_straight_through_is_the_vq_vae_idiom_without_its_rounding():
    """straight_through(q, z) has the gradient of Sonnet's z + sg(q - z) (the identity into z,
    nothing into q) and q's value exactly, where the idiom rounds: in float32 at z = 1e8,
    q = 0.1 it gives 0 (z + (q - z) cancels q away)."""
    spec = lossdsl.parse(
        "loss st(q: float[B], z: float[B], k: float[B]) { straight_through(q, z) * k }"
    )
    q = torch.tensor([0.1, -2.0, 3.5], dtype=torch.float32)
    z = torch.tensor([1e8, 0.5, -1.0], dtype=torch.float32)
    k = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float32)
    idiom = z + (q - z).detach()
    assert idiom[0] == 0.0 != q[0]  # the idiom's rounding (torch 2.x float32)
    for backend in ("torch", "jax"):
        fn = spec.compile(backend)
        inputs = {"q": q.numpy(), "z": z.numpy(), "k": k.numpy()}
        got = call(backend, fn, inputs, "float32", reduction="none")
        np.testing.assert_array_equal(got, (q * k).numpy())
        g = grads(backend, fn, inputs, ["q", "z"], "float32", reduction="sum")
        np.testing.assert_array_equal(g["z"], k.numpy())  # the idiom's: d/dz (z + c) k = k
        np.testing.assert_array_equal(g["q"], np.zeros(3, np.float32))


def test_declared_gradients_under_torch_compile_and_jax_jit():
    """dann_domain's generated torch module (an autograd.Function) under torch.compile and its
    jax module (a custom_vjp) under jax.jit give the eager gradients."""
    spec = lossdsl.load("dann_domain")
    g = gen(3)
    data = {
        "features": torch.randn(4, 3, generator=g, dtype=torch.float64),
        "weight": torch.randn(3, generator=g, dtype=torch.float64),
        "bias": torch.randn((), generator=g, dtype=torch.float64),
        "domain": torch.rand(4, generator=g, dtype=torch.float64).round(),
    }
    _, gwant = _torch_ref(lambda **kw: dann_domain(**kw, lam=0.7), data)
    fn = torch.compile(spec.compile("torch"))
    leaves = {k: v.clone().requires_grad_() for k, v in data.items()}
    fn(**leaves, **{"lambda": 0.7}).backward()
    for k, v in leaves.items():
        np.testing.assert_allclose(v.grad.numpy(), gwant[k], rtol=1e-12, err_msg=k)
    jfn = spec.compile("jax")
    arrays = {k: jnp.asarray(v.numpy()) for k, v in data.items()}
    gj = jax.jit(jax.grad(lambda a: jfn(**a, **{"lambda": 0.7})))(arrays)
    for k in data:
        np.testing.assert_allclose(np.asarray(gj[k]), gwant[k], rtol=1e-12, err_msg=k)


@pytest.mark.parametrize(
    "body,message",
    [
        ("custom_grad(x > 0, wrt=x, grad=x)", "expects numbers, found bool"),
        ("grad_reverse(x, x > 0)", "expects numbers, found bool"),
        ("custom_grad(x, wrt=x)", "missing argument 'grad'"),
    ],
)
def test_declared_gradient_mistakes_are_loss_errors(body, message):
    with pytest.raises(LossError, match=message) as e:
        lossdsl.parse(f"loss f(x: float[B]) {{ sum({body}, over=B) }}").compile("torch")
    assert "^" in str(e.value)  # a caret under the argument


@pytest.mark.parametrize(
    "body,value,grad",
    [  # loss sum(body * v) at v = [1, 2], pa = 0.5; the gradient w.r.t. v by hand
        ("straight_through(v, size(B))", 5.0, [1.0, 2.0]),  # v * v, only the outer v
        ("custom_grad(v, wrt=pa, grad=2)", 5.0, [1.0, 2.0]),
        ("custom_grad(v ^ 2, wrt=1.0, grad=v)", 9.0, [1.0, 4.0]),
        ("straight_through(1.5, v)", 4.5, [2.5, 3.5]),  # 1.5 v, plus d/dv of the st: v
        ("straight_through(pa, pa)", 1.5, [0.5, 0.5]),
    ],
)
def test_a_gradient_rule_into_a_constant_sends_nothing(body, value, grad):
    """wrt= a number, a param or a size: the rule's gradient goes nowhere (stop_grad of y)."""
    spec = lossdsl.parse(
        f"loss f(v: float[B]) {{ param pa: float = 0.5\n sum({body} * v, over=B) }}"
    )
    inputs = {"v": np.array([1.0, 2.0])}
    for backend in ("numpy", "torch", "jax"):
        fn = spec.compile(backend)
        assert call(backend, fn, inputs, "float64", reduction="sum") == value, backend
        g = (
            fd_grads(spec, frozenset(), inputs, ["v"])["v"]  # (a scalar loss: mean = sum)
            if backend == "numpy"
            else grads(backend, fn, inputs, ["v"], "float64", reduction="sum")["v"]
        )
        np.testing.assert_allclose(g, grad, rtol=1e-7, err_msg=backend)
