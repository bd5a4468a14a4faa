"""Audio: the segmental SNR (SNRseg) of pysepm, a loss over frames of the signal (frames()), and
the STFT losses of auraloss (stft_mag): spectral convergence, STFT and multi-resolution STFT.

The conventions every module here follows: tests/library/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from auraloss import freq as auraloss_freq
from reference.snrseg_pysepm import snrseg_loss
from torch_helpers import assert_same, compiled, gen, randn

import lossdsl


def _signals(b, t, seed):
    """A clean signal and an estimate whose noise grows along the signal: frame SNRs from
    about +80 dB to -55 dB, so that both clamps (35 and -10 dB) and the range between hold."""
    clean = randn(b, t, seed=seed)
    scale = torch.logspace(-5, 4, t)
    noise = torch.randn(b, t, generator=gen(seed + 1)) * scale
    return clean, clean + noise


# ---- segmental_snr: tests/reference/snrseg_pysepm.py (schmiph2/pysepm SNRseg) ----------------


@pytest.mark.parametrize("bt", [(3, 1000), (2, 2437), (1, 600)])
def test_segmental_snr_matches_pysepm(bt, reduction):
    clean, processed = _signals(*bt, seed=sum(bt))
    fn = compiled("segmental_snr")
    assert_same(
        lambda clean, processed: fn(clean, processed, reduction=reduction),
        lambda clean, processed: snrseg_loss(clean, processed, reduction=reduction),
        {"clean": clean, "processed": processed},
        ["clean", "processed"],
    )


def test_segmental_snr_spans_both_clamps():
    """The test signals reach both clamps and the range between (else the clamps are untested):
    the per-frame dB values of the reference's own formula."""
    clean, processed = _signals(3, 1000, seed=1003)
    w = 0.5 * (1 - torch.cos(2 * np.pi * torch.arange(1, 481) / 481))
    s = clean.unfold(-1, 480, 120) * w
    e = (clean - processed).unfold(-1, 480, 120) * w
    eps = np.finfo(np.float64).eps
    db = 10 * torch.log10((s**2).sum(-1) / ((e**2).sum(-1) + eps) + eps)[:, :-1]  # kept frames
    assert (db > 35).any() and (db < -10).any() and ((db > -10) & (db < 35)).any()


def test_segmental_snr_on_every_backend(other_backend):
    clean, processed = _signals(2, 1500, seed=5)
    want = compiled("segmental_snr")(clean, processed, reduction="none").numpy()
    got = compiled("segmental_snr", other_backend)(
        clean.numpy(), processed.numpy(), reduction="none"
    )
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)


def test_segmental_snr_edges():
    fn = compiled("segmental_snr")
    x = randn(2, 700, seed=9)
    # a perfect estimate: every frame's SNR is clamped to 35 dB (pysepm: sig / eps)
    torch.testing.assert_close(fn(x, x, reduction="none"), torch.full((2,), -35.0))
    torch.testing.assert_close(fn(x, x), snrseg_loss(x, x))
    # 480 <= T < 600: one frame, which pysepm drops: its mean of no frames is NaN (np.mean of
    # an empty array, with a RuntimeWarning); here an InputError (the docstring says so)
    y = randn(2, 599, seed=10)
    assert torch.isnan(snrseg_loss(y, 0.5 * y, reduction="none")).all()
    with pytest.raises(lossdsl.InputError, match="needs at least 600 along it"):
        fn(y, 0.5 * y)
    # exactly two frames, the second dropped: the first frame's SNR
    z = randn(1, 600, seed=11)
    torch.testing.assert_close(fn(z, 0.9 * z), snrseg_loss(z, 0.9 * z))
    torch.testing.assert_close(fn(z, 0.9 * z), torch.tensor(-20.0))  # 20 log10(1 / 0.1)


# ---- stft_mag, spectral_convergence, stft_loss, mr_stft: auraloss (csteinmetz1/auraloss) -------
# auraloss 0.4.0 (pip), auraloss/freq.py: STFTLoss.stft is torch.stft(x, fft_size, hop_size,
# win_length, hann_window(win_length), return_complex=True) (center=True, pad_mode="reflect")
# and sqrt(clamp(re^2 + im^2, min=eps)); its modules take [B, C, T] and flatten B * C rows.


def _f64(module, dtype=torch.float64):
    """auraloss builds its Hann windows in torch's default dtype (float32 outside this suite,
    whose autouse fixture makes it float64); torch.stft needs the window in the signal's dtype,
    so the comparisons cast them."""
    for m in module.modules():
        if isinstance(m, auraloss_freq.STFTLoss):
            m.window = m.window.to(dtype)
    return module


def _mag_program(n_fft, hop, win, eps):
    return lossdsl.parse(
        f"loss m(x: float[B, T]) {{\n    stft_mag(x, {n_fft}, {hop}, win={win}, over=T, "
        f"eps={eps!r})\n}}\n"
    )


def test_stft_mag_is_torch_stft_magnitude_on_every_backend():
    """The op against torch.stft (center=True, reflect) for random sizes: even and odd n_fft,
    hops above and below the window, windows shorter than n_fft by an odd and an even count
    (torch.stft zero-pads the window, (n_fft - win) // 2 zeros before), T from just over
    n_fft // 2 (the shortest torch takes) up; values everywhere, gradients on torch and jax."""
    import jax

    # (n_fft, win, hop, T, B): n_fft even and odd; the window as long, shorter by an odd and by
    # an even count, one entry; hops below the window, equal, above n_fft; T the shortest
    # torch takes (n_fft // 2 + 1), T below n_fft, longer signals; one and several rows
    cases = [
        (16, 16, 4, 9, 1),
        (15, 12, 5, 8, 2),
        (20, 14, 21, 47, 3),
        (9, 1, 2, 30, 2),
        (32, 31, 31, 100, 1),
        (5, 4, 7, 3, 2),
    ]
    for case, (n_fft, win, hop, t, b) in enumerate(cases):
        x = randn(b, t, seed=100 + case)
        w = torch.hann_window(win, dtype=torch.float64)
        z = torch.stft(x, n_fft, hop, win, w, return_complex=True)  # [B, bins, frames]
        want = torch.sqrt(torch.clamp(z.real**2 + z.imag**2, min=1e-8)).transpose(1, 2)
        spec = _mag_program(n_fft, hop, win, 1e-8)
        what = (n_fft, hop, win, t, b)
        tf = spec.compile("torch")

        def ours(a, tf=tf):
            return tf(a, reduction="none")

        np.testing.assert_allclose(ours(x).numpy(), want.numpy(), rtol=1e-10, atol=1e-12)
        for backend in ("jax", "numpy"):
            got = np.asarray(spec.compile(backend)(x.numpy(), reduction="none"))
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12, err_msg=what)
        # gradients of a weighted sum (so that every bin's magnitude counts differently)
        c = randn(*want.shape, seed=200 + case)
        xg = x.clone().requires_grad_(True)
        z = torch.stft(xg, n_fft, hop, win, w, return_complex=True)
        ref = (torch.sqrt(torch.clamp(z.real**2 + z.imag**2, min=1e-8)).transpose(1, 2) * c).sum()
        (g_ref,) = torch.autograd.grad(ref, xg)
        xo = x.clone().requires_grad_(True)
        (g_ours,) = torch.autograd.grad((ours(xo) * c).sum(), xo)
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)
        jf = spec.compile("jax")
        g_jax = jax.grad(lambda a: (jf(a, reduction="none") * c.numpy()).sum())(x.numpy())
        np.testing.assert_allclose(np.asarray(g_jax), g_ref.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bt", [(3, 3000), (1, 2437), (2, 700)])
def test_stft_loss_matches_auraloss(bt, reduction):
    """(2, 700): shorter than n_fft = 1024 (but over 512, which torch.stft mirrors)."""
    x, y = randn(*bt, seed=sum(bt)), randn(*bt, seed=sum(bt) + 1)
    fn, ref = compiled("stft_loss"), _f64(auraloss_freq.STFTLoss())
    assert_same(
        lambda input, target: fn(input, target, reduction=reduction),
        lambda input, target: ref(input.unsqueeze(1), target.unsqueeze(1)),
        {"input": x, "target": 0.5 * y + 0.5 * x},
        ["input", "target"],
    )


@pytest.mark.parametrize("w", [(1.0, 0.0), (0.0, 1.0), (0.3, 2.0)])
def test_stft_loss_weights_match_auraloss(w):
    x, y = randn(2, 1800, seed=7), randn(2, 1800, seed=8)
    fn = compiled("stft_loss")
    ref = _f64(auraloss_freq.STFTLoss(w_sc=w[0], w_log_mag=w[1]))
    assert_same(
        lambda input, target: fn(input, target, w_sc=w[0], w_log_mag=w[1]),
        lambda input, target: ref(input.unsqueeze(1), target.unsqueeze(1)),
        {"input": x, "target": y},
        ["input", "target"],
    )


@pytest.mark.parametrize("bt", [(3, 3000), (1, 1300)])
def test_spectral_convergence_matches_auraloss(bt):
    x, y = randn(*bt, seed=sum(bt) + 2), randn(*bt, seed=sum(bt) + 3)
    fn, stft = compiled("spectral_convergence"), _f64(auraloss_freq.STFTLoss())
    sc = auraloss_freq.SpectralConvergenceLoss()

    def ref(input, target):
        return sc(stft.stft(input)[0], stft.stft(target)[0])

    assert_same(fn, ref, {"input": x, "target": y}, ["input", "target"])


@pytest.mark.parametrize("bt", [(2, 4000), (1, 1500)])
def test_mr_stft_matches_auraloss(bt, reduction):
    """(1, 1500): shorter than the 2048-point resolution's n_fft (over its 1024 mirrored)."""
    x, y = randn(*bt, seed=sum(bt) + 4), randn(*bt, seed=sum(bt) + 5)
    fn, ref = compiled("mr_stft"), _f64(auraloss_freq.MultiResolutionSTFTLoss())
    assert_same(
        lambda input, target: fn(input, target, reduction=reduction),
        lambda input, target: ref(input.unsqueeze(1), target.unsqueeze(1)),
        {"input": x, "target": 0.8 * x + 0.2 * y},
        ["input", "target"],
    )


@pytest.mark.parametrize("name", ["stft_loss", "mr_stft", "spectral_convergence"])
def test_stft_losses_on_every_backend(name, other_backend):
    """jax and numpy against the torch module checked above: values; jax's gradients too."""
    import jax

    x, y = randn(2, 2100, seed=31), randn(2, 2100, seed=32)
    fn = compiled(name)
    want = fn(x, y).numpy()
    got = compiled(name, other_backend)(x.numpy(), y.numpy())
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)
    if other_backend == "jax":
        xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        gt = torch.autograd.grad(fn(xg, yg), [xg, yg])
        jf = compiled(name, "jax")
        gj = jax.grad(lambda a, b: jf(a, b), argnums=(0, 1))(x.numpy(), y.numpy())
        for a, b in zip(gj, gt, strict=True):
            np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-9, atol=1e-14)


def test_stft_losses_silence_keep_a_finite_gradient():
    """A silent estimate: every bin's power is 0, floored at eps = 1e-8 (auraloss's clamp), so
    the log magnitude is log 1e-4 and the gradient is finite (the clamp passes none there)."""
    x, y = torch.zeros(2, 1500), randn(2, 1500, seed=41)
    for name, ref in (
        ("stft_loss", auraloss_freq.STFTLoss()),
        ("mr_stft", auraloss_freq.MultiResolutionSTFTLoss()),
    ):
        fn, ref = compiled(name), _f64(ref)
        assert_same(
            fn,
            lambda input, target, ref=ref: ref(input.unsqueeze(1), target.unsqueeze(1)),
            {"input": x, "target": y},
            ["input", "target"],
        )


@pytest.mark.parametrize(
    "name, short, ref",
    [
        ("stft_loss", 512, auraloss_freq.STFTLoss),
        ("spectral_convergence", 300, auraloss_freq.STFTLoss),
        ("mr_stft", 1024, auraloss_freq.MultiResolutionSTFTLoss),
    ],
)
def test_stft_losses_refuse_a_signal_torch_cannot_mirror(name, short, ref):
    """T <= n_fft // 2: torch.stft's reflect padding fails (auraloss raises a RuntimeError);
    lossdsl raises an InputError naming T on every backend, before any FFT."""
    x = randn(1, short, seed=51)
    with pytest.raises(RuntimeError):
        _f64(ref())(x.unsqueeze(1), x.unsqueeze(1))
    for backend in ("torch", "jax", "numpy"):
        fn = compiled(name, backend)
        a = x if backend == "torch" else x.numpy()
        with pytest.raises(lossdsl.InputError, match=r"dim T has size \d+ in 'input'"):
            fn(a, a)


def test_stft_losses_under_torch_compile_and_jax_jit():
    import jax

    x, y = randn(2, 2500, seed=61), randn(2, 2500, seed=62)
    fn = compiled("stft_loss")
    xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    want = fn(xe, y)
    got = torch.compile(fn, fullgraph=True)(xc, y)  # one graph: torch.stft traces
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    (ge,), (gc,) = torch.autograd.grad(want, xe), torch.autograd.grad(got, xc)
    torch.testing.assert_close(gc, ge, rtol=1e-9, atol=1e-15)
    jf = compiled("mr_stft", "jax")
    np.testing.assert_allclose(
        np.asarray(jax.jit(jf)(x.numpy(), y.numpy())), compiled("mr_stft")(x, y).numpy(), rtol=1e-10
    )
    g = jax.jit(jax.grad(jf))(x.numpy(), y.numpy())
    xg = x.clone().requires_grad_(True)
    (gt,) = torch.autograd.grad(compiled("mr_stft")(xg, y), xg)
    np.testing.assert_allclose(np.asarray(g), gt.numpy(), rtol=1e-9, atol=1e-14)


def test_rfft_mag_is_torch_rfft_magnitude_on_every_backend():
    """rfft_mag over a named dim of even and odd sizes (its (N+2)//2 bins) and over a fixed-size
    dim (513 bins of 1024), against torch.fft.rfft's |X| (eps = 0: no floor); gradients on torch
    and jax against torch.fft.rfft(x).abs()'s."""
    import jax

    for n in (1, 2, 7, 64, 101):
        x = randn(3, n, seed=n)
        want = torch.fft.rfft(x, dim=1).abs()
        spec = lossdsl.parse("loss m(x: float[B, N]) {\n    rfft_mag(x, over=N)\n}\n")
        for backend in ("torch", "jax", "numpy"):
            a = x if backend == "torch" else x.numpy()
            got = np.asarray(spec.compile(backend)(a, reduction="none"))
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12, err_msg=n)
        c = randn(*want.shape, seed=n + 1)
        xg = x.clone().requires_grad_(True)
        (g_ref,) = torch.autograd.grad((torch.fft.rfft(xg, dim=1).abs() * c).sum(), xg)
        tf, jf = spec.compile("torch"), spec.compile("jax")
        xo = x.clone().requires_grad_(True)
        (g_ours,) = torch.autograd.grad((tf(xo, reduction="none") * c).sum(), xo)
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)
        g_jax = jax.grad(lambda a: (jf(a, reduction="none") * c.numpy()).sum())(x.numpy())
        np.testing.assert_allclose(np.asarray(g_jax), g_ref.numpy(), rtol=1e-9, atol=1e-12)
    x = randn(2, 1024, seed=5)
    spec = lossdsl.parse(
        "loss m(x: float[B, 1024]) {\n    sum(rfft_mag(x, over=1024), over=513)\n}\n"
    )
    want = torch.fft.rfft(x, dim=1).abs().sum(1)
    torch.testing.assert_close(spec.compile("torch")(x, reduction="none"), want)


def test_stft_losses_in_float32_match_auraloss_at_its_defaults():
    """auraloss as a user runs it: torch's default dtype float32 (this suite's autouse fixture
    restores float64 after the test), float32 signals, auraloss's own float32 Hann windows.
    Values to float32 rounding; gradients as a whole (relative L2 distance): the log of a small
    bin's magnitude amplifies float32 rounding in single entries, equally on both sides (each is
    about 1e-3 from the float64 gradient on mr_stft, and 3e-8 from the other)."""
    torch.set_default_dtype(torch.float32)
    x = torch.randn(2, 3000, generator=gen(71))
    y = x + 0.3 * torch.randn(2, 3000, generator=gen(72))
    for name, ref in (
        ("stft_loss", auraloss_freq.STFTLoss()),
        ("mr_stft", auraloss_freq.MultiResolutionSTFTLoss()),
    ):
        fn = compiled(name)
        xo, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        vo = fn(xo, y)
        vr = ref(xr.unsqueeze(1), y.unsqueeze(1))
        assert vo.dtype == vr.dtype == torch.float32
        torch.testing.assert_close(vo, vr, rtol=1e-5, atol=0)
        (go,) = torch.autograd.grad(vo, xo)
        (gr,) = torch.autograd.grad(vr, xr)
        assert float((go - gr).norm() / gr.norm()) <= 1e-6, name


def test_stft_mag_meaning_equals_torch_stft_over_every_small_setting():
    """The op's numpy meaning (lossdsl.ops._stft_mag, which the numpy target inlines and the
    jax helper transcribes) against torch.stft over every n_fft <= 8, every window length
    1..n_fft, every hop 1..n_fft + 2, at the shortest T torch takes and a longer one: the
    edges of each setting as a class (a one-entry window once gave 0, not torch's [1])."""
    from lossdsl.ops import _stft_mag

    rng = np.random.default_rng(5)
    bad = []
    for n_fft in range(2, 9):
        for win in range(1, n_fft + 1):
            for hop in range(1, n_fft + 3):
                for t in (n_fft // 2 + 1, 2 * n_fft + 3):
                    x = rng.standard_normal((2, t))
                    w = torch.hann_window(win, dtype=torch.float64)
                    z = torch.stft(torch.tensor(x), n_fft, hop, win, w, return_complex=True)
                    want = torch.sqrt(torch.clamp(z.real**2 + z.imag**2, min=1e-12))
                    got = _stft_mag(x, (1,), (n_fft,), (hop,), win, 1e-12)
                    if not np.allclose(got, want.transpose(1, 2).numpy(), rtol=1e-10, atol=1e-12):
                        bad.append((n_fft, win, hop, t))
    assert not bad, bad[:5]


def test_rfft_mag_meaning_equals_torch_rfft_at_every_small_length():
    """The op's numpy meaning (lossdsl.ops._rfft_mag) against torch.fft.rfft's magnitude at
    every length 1..16 (odd and even: the Nyquist bin exists only for an even length)."""
    from lossdsl.ops import _rfft_mag

    rng = np.random.default_rng(6)
    for n in range(1, 17):
        x = rng.standard_normal((3, n))
        z = torch.fft.rfft(torch.tensor(x), dim=1)
        want = torch.sqrt(torch.clamp(z.real**2 + z.imag**2, min=1e-12)).numpy()
        np.testing.assert_allclose(_rfft_mag(x, (1,), 1e-12), want, rtol=1e-12, atol=1e-12)
