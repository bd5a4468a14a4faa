"""A window's size from an int param (blur(x, size=k)) and blur's sigma from a value (a float
param, an expression, or a tensor of sigmas: one blur per entry). The class of inputs: every
window op, every padding, named and variadic spatial dims, odd and even sizes, baked and
passed at call time, on every backend. A param size must give the same numbers as the literal
size (the literal form is checked against scipy in tests/test_windows.py); a sigma value must
give scipy.ndimage's Gaussian filter of that sigma, and its gradient the finite difference of
scipy's (independent of lossdsl)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from helpers import call, grads

import lossdsl

BACKENDS = ["numpy", "torch", "jax"]

# op, its call with the size written as {k}, whether a padding applies
WINDOWS = [
    ("blur", "blur(x, over={over}, size={k}, sigma=1.2, padding={pad})"),
    ("box", "box(x, {k}, over={over}, padding={pad})"),
    ("avg_pool", "avg_pool(x, {k}, over={over}, stride=1, padding={pad})"),
    ("max_pool", "max_pool(x, {k}, over={over}, stride=2, padding={pad})"),
]
LAYOUTS = [  # (head, over, the shapes x takes)
    ("x: float[B, C, H, W]", "(H, W)", [(2, 3, 9, 8)]),
    ("x: float[B, C, *S]", "S", [(2, 3, 9), (2, 1, 8, 7), (1, 2, 6, 5, 7)]),
]


def _src(call_, head, k_decl=""):
    return f"loss t({head}) {{\n{k_decl}    {call_}\n}}\n"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pad", ["valid", "same", "reflect"])
@pytest.mark.parametrize("op,form", WINDOWS, ids=[w[0] for w in WINDOWS])
@pytest.mark.parametrize("layout", LAYOUTS, ids=["named", "variadic"])
def test_a_param_size_is_the_literal_size(backend, pad, op, form, layout):
    """op(x, size=k) with `param k: int`, k passed at call time and baked, equals op(x, size=K)
    with the literal K, for K = 1, 2, 3, 4 (even sizes pad one more before), values exactly
    and (torch, jax) gradients."""
    head, over, shapes = layout
    rng = np.random.default_rng(len(op) + len(pad))
    param = lossdsl.parse(
        _src(form.format(over=over, k="k", pad=f'"{pad}"'), head, "    param k: int = 3\n")
    )
    for k in (1, 2, 3, 4):
        lit = lossdsl.parse(_src(form.format(over=over, k=k, pad=f'"{pad}"'), head))
        for shape in shapes:
            x = {"x": rng.normal(size=shape)}
            want = call(backend, lit.compile(backend), x, "float64", reduction="none")
            got = call(backend, param.compile(backend), x, "float64", reduction="none", k=k)
            baked = call(backend, param.compile(backend, k=k), x, "float64", reduction="none")
            assert got.shape == want.shape == baked.shape, (k, shape)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(baked, want)
            if backend != "numpy":
                gw = grads(backend, lit.compile(backend), x, ["x"], "float64", reduction="sum")
                gp = grads(
                    backend, param.compile(backend), x, ["x"], "float64", reduction="sum", k=k
                )
                np.testing.assert_array_equal(gp["x"], gw["x"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_param_size_below_what_the_image_allows_is_an_input_error(backend):
    """k < 1; a valid window longer than the axis; reflect padding of k//2 on an axis of at
    most k//2 entries (torch's F.pad rule): each an InputError naming the param's value."""
    head = "x: float[B, H, W]"
    valid = lossdsl.parse(_src("blur(x, over=(H, W), size=k)", head, "    param k: int = 3\n"))
    refl = lossdsl.parse(
        _src('blur(x, over=(H, W), size=k, padding="reflect")', head, "    param k: int = 3\n")
    )
    x = {"x": np.ones((2, 4, 9))}
    with pytest.raises(
        lossdsl.InputError, match="param 'k' is 0, but this loss needs it at least 1"
    ):
        call(backend, valid.compile(backend), x, "float64", k=0)
    with pytest.raises(
        lossdsl.InputError, match="dim H has size 4 in 'x', but this loss needs at least 6"
    ):
        call(backend, valid.compile(backend), x, "float64", k=6)
    call(backend, refl.compile(backend), x, "float64", k=7)  # pads 3 on an axis of 4: fine
    with pytest.raises(lossdsl.InputError, match="needs at least 5 along it.*reflect-padded"):
        call(backend, refl.compile(backend), x, "float64", k=8)


def test_a_param_size_under_jit_must_be_static():
    """Under jax.jit the size is a shape: a traced k is a LossParamError that says to pass it
    as a static argument; a static k compiles and equals the eager value."""
    import jax

    spec = lossdsl.parse(
        _src("blur(x, over=(H, W), size=k)", "x: float[B, H, W]", "    param k: int = 3\n")
    )
    fn = spec.compile("jax")
    x = np.random.default_rng(0).random((2, 7, 6))
    with pytest.raises(lossdsl.ParamError, match="static argument"):
        jax.jit(lambda x, k: fn(x, k=k))(x, 3)
    jitted = jax.jit(lambda x, k: fn(x, k=k, reduction="none"), static_argnames="k")
    np.testing.assert_allclose(jitted(x, k=5), fn(x, k=5, reduction="none"), rtol=1e-6)


def test_a_param_size_under_torch_compile():
    import torch

    spec = lossdsl.parse(
        _src("blur(x, over=(H, W), size=k)", "x: float[B, H, W]", "    param k: int = 3\n")
    )
    fn = spec.compile("torch")
    x = torch.rand(2, 7, 6, dtype=torch.float64)
    compiled = torch.compile(fn, backend="eager", fullgraph=False)
    for k in (3, 5):
        torch.testing.assert_close(compiled(x, k=k, reduction="none"), fn(x, k=k, reduction="none"))


# ---- sigma as a value ------------------------------------------------------------------------


def _scipy_blur(x, sigma, size, axes, mode):
    """scipy.ndimage's separable correlation with the normalized sampled Gaussian of `sigma`
    over `size` taps at offsets -size//2 ... (pytorch_msssim's _fspecial_gauss_1d)."""
    c = np.arange(size) - size // 2
    g = np.exp(-(c**2) / (2 * sigma**2))
    g = g / g.sum()
    for a in axes:
        x = ndi.correlate1d(x, g, axis=a, mode=mode, origin=-1 if size % 2 == 0 else 0)
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pad,mode", [("same", "constant"), ("reflect", "mirror")])
def test_a_sigma_param_is_scipys_gaussian_of_that_sigma(backend, pad, mode):
    """blur(x, sigma=s) with `param s: float`, and with a computed sigma (2 * s / 2), equals
    scipy's filter of that sigma, for several sigmas; its gradient w.r.t. x in torch and jax
    (numpy: values only) equals the literal-sigma program's."""
    head = "x: float[B, C, H, W]"
    call_ = f'blur(x, over=(H, W), size=5, sigma={{s}}, padding="{pad}")'
    spec = lossdsl.parse(_src(call_.format(s="s"), head, "    param s: float = 1.5\n"))
    expr = lossdsl.parse(_src(call_.format(s="2 * s / 2"), head, "    param s: float = 1.5\n"))
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 7))
    for s in (0.5, 1.3, 3.0):
        want = _scipy_blur(x, s, 5, (2, 3), mode)
        for sp in (spec, expr):
            got = call(backend, sp.compile(backend), {"x": x}, "float64", reduction="none", s=s)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        if backend != "numpy":
            lit = lossdsl.parse(_src(call_.format(s=s), head))
            g1 = grads(backend, spec.compile(backend), {"x": x}, ["x"], "float64", s=s)
            g2 = grads(backend, lit.compile(backend), {"x": x}, ["x"], "float64")
            np.testing.assert_allclose(g1["x"], g2["x"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["named", "variadic"])
@pytest.mark.parametrize("m", [1, 3])
def test_a_tensor_of_sigmas_gives_one_blur_per_entry_its_dims_first(backend, layout, m):
    """blur(x, sigma=sig) with sig: float[M]: one blur per entry, entry j scipy's blur of
    sigma sig[j]; the gradient w.r.t. sig (torch, jax) is the central difference of scipy's."""
    head, over, shapes = layout
    head += ", sig: float[M]"
    spec = lossdsl.parse(_src(f'blur(x, over={over}, size=5, sigma=sig, padding="same")', head))
    rng = np.random.default_rng(m)
    sig = rng.uniform(0.4, 2.5, m)
    for shape in shapes:
        x = rng.normal(size=shape)
        axes = tuple(range(2, len(shape)))
        # (the per-element result lists its dims in the inputs' order: M last)
        want = np.stack([_scipy_blur(x, s, 5, axes, "constant") for s in sig], axis=-1)
        got = call(
            backend, spec.compile(backend), {"x": x, "sig": sig}, "float64", reduction="none"
        )
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        if backend == "numpy":
            continue
        g = grads(
            backend,
            spec.compile(backend),
            {"x": x, "sig": sig},
            ["sig"],
            "float64",
            reduction="sum",
        )
        h = 1e-6
        fd = [
            (
                np.sum(_scipy_blur(x, s + h, 5, axes, "constant"))
                - np.sum(_scipy_blur(x, s - h, 5, axes, "constant"))
            )
            / (2 * h)
            for s in sig
        ]
        np.testing.assert_allclose(g["sig"], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_sigmas_is_an_empty_stack(backend):
    """sig with no entries: an empty [B, H-2, W-2, 0], no error (a reduction over M then
    applies its own empty rule)."""
    spec = lossdsl.parse(
        _src("blur(x, over=(H, W), size=3, sigma=sig)", "x: float[B, H, W], sig: float[M]")
    )
    got = call(
        backend,
        spec.compile(backend),
        {"x": np.ones((2, 5, 4)), "sig": np.zeros(0)},
        "float64",
        reduction="none",
    )
    assert got.shape == (2, 3, 2, 0)


@pytest.mark.parametrize(
    "body,head,message",
    [
        ("blur(x, over=H, size=s)", "param s: float = 2.0", "size must be a whole number or an"),
        (
            "avg_pool(x, k, over=H)",
            "param k: int = 2",
            "avg_pool() with a param size needs stride=",
        ),
        (
            "max_pool(x, k, over=H)",
            "param k: int = 2",
            "max_pool() with a param size needs stride=",
        ),
        ("blur(x, over=H, sigma=i)", "", "sigma must be a float"),
        ("blur(x, over=H, sigma=x)", "", "blur's sigma must be a float number or a float tensor"),
        ("blur(x, over=H, sigma=-1)", "", "sigma must be positive"),
        ("blur(x, over=H, sigma=true)", "", "sigma must be positive"),
    ],
)
def test_window_param_mistakes_are_errors_at_the_call(body, head, message):
    src = f"loss t(x: float[B, H], i: int[B]) {{\n    {head}\n    {body}\n}}\n"
    with pytest.raises(lossdsl.LossError) as e:
        lossdsl.parse(src).compile("numpy")
    assert message in str(e.value)
    assert "^" in str(e.value)  # carets under the call's argument
