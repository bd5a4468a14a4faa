"""Every shipped spec: values and gradients agree across torch, jax and the float64 numpy
reference, on random valid inputs of several shapes, for every reduction and every combination
of optional inputs. The numpy reference's own gradient is central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import SHAPES, call, fd_grads, float_inputs, grads, random_inputs, rel_err

import lossdsl
from lossdsl.equiv import fd_directional

SPECS = lossdsl.list_specs()


def _variants(name):
    spec = lossdsl.load(name)
    return [(name, v) for v in spec.variants()]


CASES = [c for n in SPECS for c in _variants(n)]


def _case_id(c) -> str:
    """A frozenset in sorted order (its repr follows per-process string hashing: xdist
    workers would collect different ids)."""
    if isinstance(c, frozenset):
        return "frozenset({" + ", ".join(repr(x) for x in sorted(c)) + "})" if c else "frozenset()"
    return str(c)


def _entries(name) -> int:
    spec = lossdsl.load(name)
    return sum(
        np.size(v) for v in random_inputs(spec, SHAPES[0], np.random.default_rng(0)).values()
    )


# Specs whose least inputs are big (ms_ssim's five scales need 161 x 161 images: 5e5 entries)
# run on the first shape only: their windows fix the spatial sizes anyway, and each further
# shape cost ~30 s of CPU per test.
BIG = {n for n in SPECS if _entries(n) > 100_000}
VALUE_CASES = [(n, a, k) for n, a in CASES for k in range(1 if n in BIG else len(SHAPES))]
GRAD_CASES = [(n, a, k) for n, a in CASES for k in range(1 if n in BIG else 2)]

# float32 gradients of iterated maps carry the rounding of every step: sinkhorn's 100
# log-sum-exp steps at reg = 0.1 measured 2.3e-5 against float64 (each step is a contraction
# whose rate approaches 1 as reg -> 0; POT's float32 gradients drift the same way)
# ctc: an impossible alignment's states sit near log_epsilon = -1e5, where a float32 ulp is
# 0.008: its gradient rows measured 1.2e-3 against float64 (optax's log_epsilon does the same)
# sinkhorn_divergence: three such runs, and W_xy - (W_xx + W_yy) / 2 cancels part of them (the
# divergence is a fraction of each W): 4.1e-5 and 1.0e-4 measured (w.r.t. x and b)
F32_GRAD_TOL = {"sinkhorn": 1e-4, "sinkhorn_divergence": 3e-4, "ctc": 3e-3}
# the reference gradient is a central difference of the float64 loss: ctc's impossible
# alignments (random lengths: 2 frames for 2 labels) cost about -log_epsilon = 1e5, whose
# differences lose 1e5 * 2^-52 / h of the step h, 2e-5 measured; torch.nn.functional.ctc_loss
# and optax.ctc_loss check its gradients exactly (tests/library/test_sequence.py)
FD_GRAD_TOL = {"ctc": 1e-4}
# The directional central difference's step, where 1e-6 is too coarse: the log STFT magnitudes
# of the bins a random signal leaves small are strongly curved (stft_loss, mr_stft on T = 513 and
# 1025: at h = 1e-6 the difference is 1e-2 off; it converges to the autograd gradient as h
# shrinks, 2e-6 at 1e-7, 5e-8 at 1e-8; that gradient equals auraloss's, tests/library/test_audio.py)
# and its tolerance there (mr_stft's second direction: 1.02e-6 at h = 1e-8). float32 gradients of
# those logs differ from float64 by up to 1.4e-2: a small bin's float32 FFT rounding (1e-7 of
# the frame's energy) is a large relative error in 1/|X|, as in auraloss's own float32. mr_stft's
# target gradient on shape 0, measured: torch 3.5e-3, jax eager 5.8e-3, under jax.jit 1.4e-2
# (XLA fuses the whole gradient and rounds differently; the float64 ones agree to 1e-12).
FD_STEP = {"stft_loss": 1e-8, "mr_stft": 1e-8}
FD_DIR_TOL = {"stft_loss": 1e-5, "mr_stft": 1e-5}
F32_DIR_TOL = {"stft_loss": 1e-2, "mr_stft": 2e-2, "spectral_convergence": 1e-3}


@pytest.mark.parametrize("name,absent,shape", VALUE_CASES, ids=_case_id)
def test_values_agree_across_backends(name, absent, shape):
    spec = lossdsl.load(name)
    rng = np.random.default_rng(shape)
    inputs = random_inputs(spec, SHAPES[shape], rng, absent)
    ref = spec.compile("numpy")
    for reduction in ("none", "sum", "mean"):
        want = call("numpy", ref, inputs, "float64", reduction=reduction)
        assert np.all(np.isfinite(want))
        for backend in ("torch", "jax"):
            fn = spec.compile(backend)
            got64 = call(backend, fn, inputs, "float64", reduction=reduction)
            assert got64.shape == want.shape
            assert rel_err(got64, want) <= 1e-12, (backend, reduction)
            got32 = call(backend, fn, inputs, "float32", reduction=reduction)
            assert rel_err(got32, want) <= 1e-5, (backend, reduction, "float32")


@pytest.mark.parametrize("name,absent,shape", GRAD_CASES, ids=_case_id)
def test_gradients_agree_across_backends(name, absent, shape):
    spec = lossdsl.load(name)
    rng = np.random.default_rng(100 + shape)
    inputs = random_inputs(spec, SHAPES[shape], rng, absent)
    wrt = float_inputs(spec, absent)
    # one central difference per entry (two reference runs each) only for small inputs: ssim's
    # 4840 entries took 40 s, sinkhorn_divergence's 90 (its 300 loop steps) 57 s; above 64
    # entries, along 3 random directions (a wrong entry shows in each) and float32 per entry
    n = sum(np.size(inputs[k]) for k in wrt)
    if n > 64:
        _directional_gradients(spec, absent, inputs, wrt, rng, name, 3e-5 if n > 2_000 else 1e-5)
        return
    want = fd_grads(spec, absent, inputs, wrt)
    for backend in ("torch", "jax"):
        fn = spec.compile(backend)
        g64 = grads(backend, fn, inputs, wrt, "float64", reduction="mean")
        g32 = grads(backend, fn, inputs, wrt, "float32", reduction="mean")
        for k in wrt:
            assert rel_err(g64[k], want[k]) <= FD_GRAD_TOL.get(name, 1e-6), (backend, k)
            assert rel_err(g32[k], g64[k]) <= F32_GRAD_TOL.get(name, 1e-5), (backend, k, "float32")


def _directional_gradients(spec, absent, inputs, wrt, rng, name, f32_tol):
    """Each backend's gradient along three random directions against the reference's central
    difference along them; float32 against float64 entry by entry, to f32_tol (3e-5 for big
    inputs: ms_ssim's float32 gradient on normal noise was 1.3e-5 off (jax): its variances are
    differences of blurred squares, and relu(cs)^0.0448 amplifies a small cs's rounding)."""
    dirs = [{k: rng.standard_normal(np.shape(inputs[k])) for k in wrt} for _ in range(3)]
    h = FD_STEP.get(name, 1e-6)
    want = [fd_directional(spec, absent, inputs, v, h) for v in dirs]
    for backend in ("torch", "jax"):
        fn = spec.compile(backend)
        g64 = grads(backend, fn, inputs, wrt, "float64", reduction="mean")
        g32 = grads(backend, fn, inputs, wrt, "float32", reduction="mean")
        got = [sum(float(np.sum(g64[k] * v[k])) for k in wrt) for v in dirs]
        assert rel_err(got, want) <= FD_DIR_TOL.get(name, FD_GRAD_TOL.get(name, 1e-6)), backend
        tol = F32_DIR_TOL.get(name, F32_GRAD_TOL.get(name, f32_tol))
        for k in wrt:
            assert rel_err(g32[k], g64[k]) <= tol, (backend, k, "float32")


def test_source_and_reference_interpreter_agree():
    """The numpy *source* target (lossdsl compile --backend numpy) answers to the interpreter."""
    for name in SPECS:
        spec = lossdsl.load(name)
        ns: dict = {}
        exec(spec.source("numpy"), ns)
        inputs = random_inputs(spec, SHAPES[0], np.random.default_rng(7))
        for reduction in ("none", "mean"):
            a = ns[spec.name](**inputs, reduction=reduction)
            b = spec.compile("numpy")(**inputs, reduction=reduction)
            assert rel_err(a, b) <= 1e-12, name
