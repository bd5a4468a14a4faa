"""Window ops (blur, box, conv, avg_pool, max_pool): the derived dims they give (names, sizes,
unification, errors), and their float64 numpy meaning against scipy.ndimage / scipy.signal and
explicit loops (an implementation lossdsl did not write). tests/test_ops.py checks every backend
against that meaning, gradients included."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal

import lossdsl
from lossdsl.ops import _window
from lossdsl.types import Dim, derived_as

H = Dim("H")


def test_derived_dim_names_and_sizes():
    cases = [
        (H.derive("-", 10), "H-10", 30, 20),
        (H.derive("-", 1).derive("-", 1), "H-2", 5, 3),  # diff twice
        (H.derive("//", 2), "H//2", 7, 3),
        (H.derive("ceil", 2).derive("ceil", 2), "ceil(H/4)", 161, 41),
        (H.derive("ceil", 4).derive("-", 10), "ceil(H/4)-10", 161, 31),
        (H.derive("-", 1).derive("//", 2), "(H-1)//2", 8, 3),
        (H.derive("-", -1, "KH"), "H-KH+1", 10, 8),
    ]
    for d, name, n, size in cases:
        assert str(d) == name
        assert d.size(n, {"KH": 3}.get) == size
        code = d.size_code("n", lambda by: "kh")
        assert eval(code, {"n": n, "kh": 3}) == size, code  # noqa: S307 (our own expression)
    assert H.derive("-", 0) == H and H.derive("//", 1) == H
    assert Dim("4").derive("-", 1).fixed == 3 and H.derive("-", 1).fixed is None


def test_same_derivation_unifies_and_over_names_the_base():
    a, b = H.derive("-", 10), H.derive("-", 10)
    assert a == b and hash(a) == hash(b) and a.prime().twin_of(b)
    assert derived_as((Dim("B"), a), H) == a
    assert derived_as((Dim("B"), H), H) == H
    c = H.derive("ceil", 2)
    assert derived_as((c.derive("-", 10),), c) == c.derive("-", 10)


def _spec(body, head="x: float[B, H, W], y: float[B, H, W]"):
    return lossdsl.parse(f"loss t({head}) {{\n    {body}\n}}\n")


def test_two_windows_of_the_same_shape_line_up():
    spec = _spec("mean(blur(x, over=(H, W)) * box(y, 11, over=(H, W)), over=(H, W))")
    rng = np.random.default_rng(0)
    x, y = rng.random((2, 12, 13)), rng.random((2, 12, 13))
    got = spec.compile("numpy")(x, y, reduction="none")
    want = np.mean(
        _window(x, (1, 2), "blur", (11, 11), (1, 1), "valid", 1.5)
        * _window(y, (1, 2), "box", (11, 11), (1, 1), "valid"),
        axis=(1, 2),
    )
    np.testing.assert_allclose(got, want, rtol=1e-14)


@pytest.mark.parametrize(
    "body,message",
    [
        ("sum(box(x, 3, over=H) - x, over=H)", "dims do not line up: [B, H-2, W] vs [B, H, W]"),
        ("sum(box(x, 3, over=H) - box(y, 5, over=H), over=H)", "[B, H-2, W] vs [B, H-4, W]"),
        ('sum(blur(x, over=H, padding="full"), over=H)', 'padding must be one of "valid"'),
        ("sum(blur(x, over=H, sigma=0), over=H)", "sigma must be positive"),
        ("sum(box(x, 0, over=H), over=H)", "size must be a positive whole number"),
        ("sum(box(x, (3, 3), over=H), over=H)", "one per dim of over (1)"),
        ("sum(box(x, 3), over=H)", "box() needs over=DIMS"),
        ("sum(conv(x, y, over=(H, W)), over=H)", "conv's kernel must have one dim per dim"),
        ('"valid" + x', '"valid" is a word, not a value'),
    ],
)
def test_window_mistakes_are_errors_at_the_call(body, message):
    with pytest.raises(lossdsl.LossError) as e:
        _spec(body).compile("numpy")
    assert message in str(e.value)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_too_small_image_is_an_input_error(backend):
    from helpers import call

    spec = _spec("mean(blur(x, over=(H, W), size=5), over=(H, W))", "x: float[B, H, W]")
    with pytest.raises(lossdsl.InputError, match="needs at least 5 along it: blur takes windows"):
        call(backend, spec.compile(backend), {"x": np.ones((2, 4, 9))}, "float64")
    spec = _spec(
        'mean(box(x, 7, over=(H, W), padding="reflect"), over=(H, W))', "x: float[B, H, W]"
    )
    with pytest.raises(lossdsl.InputError, match="reflect-padded by 3"):
        call(backend, spec.compile(backend), {"x": np.ones((2, 3, 9))}, "float64")


# ---- the meaning, against scipy and loops ----------------------------------------------------


def _taps(size, sigma):
    c = np.arange(size) - size // 2
    g = np.exp(-(c**2) / (2 * sigma**2))
    return g / g.sum()


X = np.random.default_rng(1).standard_normal((2, 3, 13, 10))


def test_blur_is_a_separable_correlation_with_normalized_gaussian_taps():
    g = _taps(5, 1.2)
    for padding, mode in (("same", "constant"), ("reflect", "mirror")):
        want = ndi.correlate1d(ndi.correlate1d(X, g, axis=2, mode=mode), g, axis=3, mode=mode)
        got = _window(X, (2, 3), "blur", (5, 5), (1, 1), padding, 1.2)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    valid = _window(X, (2, 3), "blur", (5, 5), (1, 1), "valid", 1.2)
    full = ndi.correlate1d(ndi.correlate1d(X, g, axis=2), g, axis=3)
    np.testing.assert_allclose(valid, full[..., 2:-2, 2:-2], rtol=1e-12)


def test_box_is_scipys_uniform_filter_with_zeros_counted():
    for size in (3, 4):  # an even window: the extra padding entry goes before, as scipy's
        got = _window(X, (2,), "box", (size,), (1,), "same")
        want = ndi.uniform_filter1d(X, size, axis=2, mode="constant")
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_conv_is_scipys_valid_correlation():
    k = np.random.default_rng(2).standard_normal((3, 4))
    got = _window(X, (2, 3), "conv", None, (1, 1), "valid", 0, k)
    want = np.array([[scipy.signal.correlate2d(im, k, mode="valid") for im in b] for b in X])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    same = _window(X, (2, 3), "conv", None, (1, 1), "same", 0, k)
    want = np.array([[ndi.correlate(im, k, mode="constant") for im in b] for b in X])
    np.testing.assert_allclose(same, want, rtol=1e-12, atol=1e-13)


def test_pools_against_loops():
    x = X[0, 0]  # 13 x 10
    avg = _window(x, (0, 1), "avg", (2, 2), (2, 2), "same")  # ceil: 7 x 5, a zero row before
    padded = np.pad(x, ((1, 0), (0, 0)))
    want = np.array([[padded[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() for j in range(5)]
                     for i in range(7)])  # fmt: skip
    np.testing.assert_allclose(avg, want, rtol=1e-14)
    mx = _window(x, (1, 0), "max", (3, 2), (2, 3), "valid")  # axes in the order (W, H)
    want = np.array([[x[3 * i : 3 * i + 2, 2 * j : 2 * j + 3].max() for j in range(4)]
                     for i in range(4)])  # fmt: skip
    np.testing.assert_array_equal(mx, want)


def test_a_window_over_the_sharded_dim_is_refused():
    from lossdsl.shard import shard

    spec = _spec("mean(box(x, 3, over=(H, W)), over=(H, W))", "x: float[B, H, W]")
    with pytest.raises(lossdsl.LossError, match="a window over H needs the neighbouring rows"):
        shard(spec.program(), "H")
    shard(spec.program(), "B")  # the batch rides along


def test_windows_under_jax_jit_and_grad():
    import jax

    jax.config.update("jax_enable_x64", True)
    fn = lossdsl.load("ms_ssim").compile("jax")
    rng = np.random.default_rng(3)
    x = rng.random((1, 2, 161, 170))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    v, g = jax.jit(jax.value_and_grad(lambda a: fn(a, y)))(x)
    assert np.isfinite(float(v)) and g.shape == x.shape
    np.testing.assert_allclose(float(v), float(fn(x, y)), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_nan_stays_in_its_image_and_channel(backend):
    """The backends fold the carried dims into channels (torch: groups) or a batch (jax: its
    grouped convolution on CPU spread one channel's NaN to all of them)."""
    from helpers import call

    spec = _spec(
        "mean(blur(x, over=(H, W), size=3), over=(H, W)) "
        "+ mean(conv(x, k, over=(H, W)), over=(H, W))",
        "x: float[B, C, H, W], k: float[KH, KW]",
    )
    x = np.random.default_rng(4).random((2, 3, 6, 7))
    x[1, 2, 3, 3] = np.nan
    got = call(
        backend, spec.compile(backend), {"x": x, "k": np.ones((2, 2))}, "float64", reduction="none"
    )
    got = np.asarray(got).reshape(2, 3)
    assert np.isnan(got[1, 2]) and np.isfinite(np.delete(got.ravel(), 5)).all()


# ---- frames: a dim cut into frames x hop -----------------------------------------------------

T = Dim("T")


def _frames_type(call, head="x: float[B, T]"):
    spec = lossdsl.parse(f"loss t({head}) {{\n    let f = {call}\n    sum(f, over=T)\n}}\n")
    (e,) = [e for e in spec.program().eqns if e.op == "frames"]
    return e.out.type


@pytest.mark.parametrize(
    "call,name,count",
    [
        # librosa.util.frame / Tensor.unfold: floor((T - size) / hop) + 1
        ("frames(x, 400, 160, over=T)", "(T-240)//160", lambda n: (n - 400) // 160 + 1),
        ("frames(x, 4, over=T)", "T//4", lambda n: (n - 4) // 4 + 1),  # hop = size
        ("frames(x, 3, 5, over=T)", "(T+2)//5", lambda n: (n - 3) // 5 + 1),  # gaps
        # torch.stft(center=True): T padded by size//2 on each side: T // hop + 1 (even size)
        ("frames(x, 400, 160, over=T, center=true)", "(T+160)//160", lambda n: n // 160 + 1),
        ("frames(x, 5, 2, over=T, center=true)", "(T+1)//2", lambda n: (n + 4 - 5) // 2 + 1),
        # a window's "same"/"reflect": ceil(T / hop)
        ('frames(x, 4, 3, over=T, padding="same")', "ceil(T/3)", lambda n: -(-n // 3)),
        ('frames(x, 4, 1, over=T, padding="reflect")', "T", lambda n: n),
    ],
)
def test_frame_dims_names_and_sizes(call, name, count):
    t = _frames_type(call)
    f, w = t.dims[1], t.dims[2]
    assert str(f) == name and f.base == T and w == Dim(call.split(", ")[1])
    for n in (400, 401, 559, 560, 1000, 16000):
        assert f.size(n) == count(n)


@pytest.mark.parametrize(
    "body,message",
    [
        ("sum(frames(x, 4, 2), over=T)", "frames() needs over=DIM"),
        ("sum(frames(x, 4, 2, over=(B, T)), over=T)", "cuts exactly one dim into frames"),
        ('sum(frames(x, 4, 2, over=T, padding="full"), over=T)', 'must be one of "valid"'),
        (
            'sum(frames(x, 4, 2, over=T, center=true, padding="valid"), over=T)',
            'padding with center=true must be one of "same", "reflect"',
        ),
        ("sum(frames(x, 0, over=T), over=T)", "size must be a positive whole number"),
        ("sum(frames(x, 4, 0, over=T), over=T)", "hop must be a positive whole number"),
        ("sum(frames(x, 4, 2, over=T, center=1), over=T)", "center must be true or false"),
        ("sum(frames(x, 4, 2, over=T) - x, over=T)", "dims do not line up"),
        ("sum(frames(frames(x, 4, 2, over=T), 4, over=T), over=T)", "a second dim 4"),
        ("sum(frames(x, 4, 2, over=T), over=5)", "cannot reduce over 5"),
        ("sum(x, over=0)", "no dim has the fixed size 0"),
    ],
)
def test_frames_mistakes_are_errors_at_the_call(body, message):
    with pytest.raises(lossdsl.LossError) as e:
        _spec(body, "x: float[B, T]").compile("numpy")
    assert message in str(e.value)


def _librosa_frames(x, size, hop, center=False, pad_mode="constant"):
    """librosa's framing written out (librosa.util.frame on the last axis, frames along -2; with
    center, librosa.stft's np.pad of size//2 on each side): frame f is x[f hop : f hop + size]."""
    if center:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(size // 2, size // 2)], mode=pad_mode)
    count = 1 + (x.shape[-1] - size) // hop
    return np.stack([x[..., f * hop : f * hop + size] for f in range(count)], axis=-2)


def _torch_frames(x, size, hop, center=False, pad_mode="reflect"):
    """torch.stft's framing: F.pad(x, (size//2, size//2), pad_mode) when centred, then
    Tensor.unfold (torch/functional.py stft)."""
    import torch

    x = torch.as_tensor(x)
    if center:
        x = torch.nn.functional.pad(x[:, None], (size // 2, size // 2), mode=pad_mode)[:, 0]
    return x.unfold(-1, size, hop)


FRAMINGS = [  # (size, hop, padding, center): the reference that defines it
    (4, 2, "valid", False),  # librosa.util.frame, Tensor.unfold
    (5, 3, "valid", False),
    (3, 5, "valid", False),  # hop > size: samples between frames are skipped
    (8, 3, "reflect", True),  # torch.stft(center=True), its default pad_mode="reflect"
    (7, 2, "reflect", True),
    (6, 4, "same", True),  # librosa.stft(center=True), its default pad_mode="constant"
]


@pytest.mark.parametrize("size,hop,padding,center", FRAMINGS)
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_frames_are_librosas_and_torchs_framing_values_and_gradients(
    backend, size, hop, padding, center
):
    """Every backend's frames (the identity loss over [B, F, W]) equal torch's unfold (of the
    torch.stft padding) and librosa's framing written out; the gradient of a weighted sum of
    the frames is torch autograd's through unfold (each sample: the weights of its frames)."""
    import torch
    from helpers import call

    x = np.random.default_rng(size * 10 + hop).standard_normal((2, 17))
    extra = f', padding="{padding}", center=true' if center else ""
    spec = _spec(f"frames(x, {size}, {hop}, over=T{extra})", "x: float[B, T]")
    got = np.asarray(call(backend, spec.compile(backend), {"x": x}, "float64", reduction="none"))
    ref = _torch_frames(x, size, hop, center, "reflect" if padding == "reflect" else "constant")
    np.testing.assert_array_equal(got, ref.numpy())
    mode = "reflect" if padding == "reflect" else "constant"
    np.testing.assert_array_equal(got, _librosa_frames(x, size, hop, center, mode))
    # gradients of sum(frames(x)^3 * k), k over the frame's entries: at each sample, the sum
    # over the frames that hold it (padding's mirror images included) of 3 x^2 k
    wk = np.random.default_rng(7).standard_normal((2, size))
    gspec = _spec(
        f"sum(sum(frames(x, {size}, {hop}, over=T{extra})^3 * k, over={size}), over=T)",
        f"x: float[B, T], k: float[B, {size}]",
    )
    tx = torch.tensor(x, requires_grad=True)
    (_torch_frames(tx, size, hop, center, mode) ** 3 * torch.tensor(wk)[:, None]).sum().backward()
    if backend == "numpy":
        return  # no gradients
    fn = gspec.compile(backend)
    if backend == "torch":
        ax = torch.tensor(x, requires_grad=True)
        fn(ax, torch.tensor(wk), reduction="sum").backward()
        g = ax.grad.numpy()
    else:
        import jax

        jax.config.update("jax_enable_x64", True)
        g = np.asarray(jax.grad(lambda a: fn(a, wk, reduction="sum"))(x))
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_frames_center_is_torch_stft_framing():
    """center=true frames, through a DFT, are torch.stft(center=True) with a rectangular
    window: the same frames, in the same places."""
    import torch

    x = np.random.default_rng(3).standard_normal((2, 50))
    fr = _window_free_frames(x, 16, 4)
    want = torch.stft(
        torch.tensor(x), 16, 4, window=torch.ones(16, dtype=torch.float64), center=True,
        onesided=False, return_complex=True,
    )  # fmt: skip
    np.testing.assert_allclose(np.fft.fft(fr, axis=-1), want.transpose(-1, -2).numpy(), atol=1e-12)


def _window_free_frames(x, size, hop):
    from lossdsl.ops import _frames

    return _frames(x, (1,), (size,), (hop,), "reflect", True)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_reductions_over_the_frame_dims(backend):
    """sum/mean/max over the frame's entries (over=size), then over the frames (over=T names
    the frame count, for scans and softmax too), against Tensor.unfold."""
    import torch
    from helpers import call

    x = np.random.default_rng(5).standard_normal((3, 23))
    spec = _spec(
        "let f = frames(x, 6, 4, over=T)\n"
        "    mean(max(f, over=6), over=T) + sum(mean(f^2, over=6), over=T) "
        "+ max(sum(f, over=6), over=T) "
        "+ sum(cumsum(sum(f, over=6), over=T) * softmax(max(f, over=6), over=T), over=T)",
        "x: float[B, T]",
    )
    u = torch.tensor(x).unfold(-1, 6, 4)
    want = u.amax(-1).mean(-1) + (u**2).mean(-1).sum(-1) + u.sum(-1).amax(-1)
    want = want + (u.sum(-1).cumsum(-1) * u.amax(-1).softmax(-1)).sum(-1)
    got = call(backend, spec.compile(backend), {"x": x}, "float64", reduction="none")
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_a_signal_shorter_than_a_frame_is_an_input_error(backend):
    from helpers import call

    spec = _spec("mean(frames(x, 8, 2, over=T), over=(T, 8))", "x: float[B, T]")
    with pytest.raises(lossdsl.InputError, match="needs at least 8 along it: frames takes"):
        call(backend, spec.compile(backend), {"x": np.ones((2, 7))}, "float64")
    spec = _spec("mean(frames(x, 8, 2, over=T, center=true), over=(T, 8))", "x: float[B, T]")
    with pytest.raises(lossdsl.InputError, match="reflect-padded by 4"):
        call(backend, spec.compile(backend), {"x": np.ones((2, 4))}, "float64")
    call(backend, spec.compile(backend), {"x": np.ones((2, 5))}, "float64")  # 5 > 4: fine


def test_frames_over_the_sharded_dim_is_refused():
    from lossdsl.shard import shard

    spec = _spec("mean(frames(x, 4, 2, over=T), over=(T, 4))", "x: float[B, T]")
    with pytest.raises(lossdsl.LossError, match="a window over T needs the neighbouring rows"):
        shard(spec.program(), "T")
    shard(spec.program(), "B")


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_stft_and_rfft_of_too_short_an_input_are_input_errors(backend):
    """stft_mag mirrors n_fft//2 samples on each side (torch.stft's reflect padding needs
    T > n_fft//2, and raises otherwise): T = 4 with n_fft = 8 is an InputError naming T, T = 5
    runs (fewer samples than n_fft, as torch.stft allows); rfft_mag needs one entry."""
    from helpers import call

    spec = _spec("mean(stft_mag(x, 8, 2, over=T, eps=1e-8), over=(T, 5))", "x: float[B, T]")
    with pytest.raises(lossdsl.InputError, match="reflect-padded by 4"):
        call(backend, spec.compile(backend), {"x": np.ones((2, 4))}, "float64")
    call(backend, spec.compile(backend), {"x": np.ones((2, 5))}, "float64")
    spec = _spec("mean(rfft_mag(x, over=T), over=T)", "x: float[B, T]")
    with pytest.raises(lossdsl.InputError, match="needs at least 1 along it: it takes a real FFT"):
        call(backend, spec.compile(backend), {"x": np.ones((2, 0))}, "float64")


def test_stft_and_rfft_over_the_sharded_dim_are_refused():
    from lossdsl.shard import shard

    spec = _spec("mean(stft_mag(x, 4, 2, over=T), over=(T, 3))", "x: float[B, T]")
    with pytest.raises(lossdsl.LossError, match="a window over T needs the neighbouring rows"):
        shard(spec.program(), "T")
    shard(spec.program(), "B")
    spec = _spec("mean(rfft_mag(x, over=T), over=T)", "x: float[B, T]")
    with pytest.raises(lossdsl.LossError, match="a Fourier transform over T needs every rank"):
        shard(spec.program(), "T")
    shard(spec.program(), "B")


WINDOW_CALLS = [
    "blur(x, over=(H, W), size=3)",
    "box(x, 3, over=(H, W))",
    'box(x, 3, over=(H, W), padding="reflect")',
    "avg_pool(x, 2, over=(H, W))",
    "max_pool(x, 2, over=(H, W))",
    "conv(x, k, over=(H, W))",
    "blur(x, over=H, size=1)",
]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("call_", WINDOW_CALLS)
def test_every_window_of_an_empty_batch_is_empty(backend, call_):
    """No images beside the window (B = 0): an empty result of the shape the sizes give, and a
    zero-size gradient (torch's depthwise conv refused groups=0: scripts/difffuzz.py found it
    with a blur over C beside an empty B)."""
    from helpers import call, grads

    # (summed over B too: a result along B would be empty before any op ran, lossdsl/empty.py)
    spec = _spec(
        f"sum({call_}, over=(B, H, W)) + 0 * u", "x: float[B, H, W], k: float[3, 2], u: float[D]"
    )
    args = {"x": np.ones((0, 6, 5)), "k": np.ones((3, 2)), "u": np.ones(2)}
    got = call(backend, spec.compile(backend), args, "float64", reduction="none")
    assert np.array_equal(got, [0.0, 0.0])
    if backend != "numpy":
        g = grads(backend, spec.compile(backend), args, ["x"], "float64")
        assert np.shape(g["x"]) == (0, 6, 5)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_stft_of_an_empty_batch_is_empty(backend):
    """No rows: [0, frames, bins] (torch.stft takes no empty batch: the torch helper skips it),
    and a zero gradient of the input's shape."""
    from helpers import call, grads

    spec = _spec("sum(stft_mag(x, 16, 4, over=T), over=(T, 9))", "x: float[B, T]")
    got = call(backend, spec.compile(backend), {"x": np.ones((0, 20))}, "float64", reduction="none")
    assert np.shape(got) == (0,)
    full = _spec("stft_mag(x, 16, 4, over=T)", "x: float[B, T]")
    got = call(backend, full.compile(backend), {"x": np.ones((0, 20))}, "float64", reduction="none")
    assert np.shape(got) == (0, 6, 9)  # (20 + 16 - 16) // 4 + 1 frames, 16 // 2 + 1 bins
    if backend != "numpy":
        g = grads(backend, spec.compile(backend), {"x": np.ones((0, 20))}, ["x"], "float64")
        assert np.shape(g["x"]) == (0, 20)


# ---- windows over every axis of *S -------------------------------------------------------------

_VARIADIC = [
    ("blur", "size=5, sigma=1.2", dict(kind="blur", size=5, stride=1, sigma=1.2)),
    ("box", "3", dict(kind="box", size=3, stride=1)),
    ("avg_pool", "2", dict(kind="avg", size=2, stride=2)),
    ("max_pool", "3, stride=2", dict(kind="max", size=3, stride=2)),
]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("padding", ["valid", "same", "reflect"])
@pytest.mark.parametrize("op,args,meaning", _VARIADIC, ids=[v[0] for v in _VARIADIC])
def test_a_window_over_star_s_is_the_window_over_each_of_its_axes(
    backend, padding, op, args, meaning
):
    """op(x, over=S) on x: float[B, C, *S] with *S of 0 to 3 axes (odd and even sizes): the op
    table's window over exactly those axes (scipy-checked above), with the size and stride along
    each; no axis: x itself. The per-element result keeps *S's derived axes."""
    src = f'loss t(x: float[B, C, *S]) {{\n    {op}(x, {args}, over=S, padding="{padding}")\n}}\n'
    fn = lossdsl.parse(src).compile(backend)
    rng = np.random.default_rng(len(op))
    k = meaning["size"]
    for spatial in [(), (9,), (8, 7), (6, 5, 7)]:
        x = rng.normal(size=(2, 3, *spatial))
        if spatial:
            n = len(spatial)
            want = _window(
                x, tuple(range(2, 2 + n)), meaning["kind"], (k,) * n, (meaning["stride"],) * n,
                padding, meaning.get("sigma", 1.5),
            )  # fmt: skip
        else:
            want = x
        if backend == "torch":
            import torch

            got = fn(torch.tensor(x), reduction="none").numpy()
        else:
            got = np.asarray(fn(x, reduction="none"))
        assert got.shape == want.shape, (spatial, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
