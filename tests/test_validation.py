"""Runtime input validation of compiled losses: class ids out of range are a LossError naming
the input, the dim and its size (a crash in torch, a silently clamped gather in jax otherwise);
ignore_index values pass; check_indices=False turns the check off; under jax.jit and
torch.compile the check is skipped (no data-dependent branch in a traced graph). Rank, dtype and
dim-size checks are in tests/test_api.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.codegen import TARGETS

LOGITS = np.random.default_rng(0).standard_normal((6, 5))
GOOD = np.array([0, 4, 2, 1, 3, 0])
BAD = np.array([0, 4, 7, 1, 3, 0])  # 7 is not a class of C = 5
NEG = np.array([0, -2, 2, 1, 3, 0])


def _args(backend, y):
    if backend == "torch":
        return torch.tensor(LOGITS), torch.tensor(y)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(LOGITS), jnp.asarray(y)
    return LOGITS, y


@pytest.mark.parametrize("backend", TARGETS)
@pytest.mark.parametrize("name", ["cross_entropy", "focal", "poly1", "ldam_free"])
def test_class_ids_out_of_range_raise_a_loss_error(backend, name):
    if name == "ldam_free":
        name = "label_smoothing_ce"
    fn = lossdsl.load(name).compile(backend)
    for y, lo, hi in ((BAD, 0, 7), (NEG, -2, 3)):
        with pytest.raises(lossdsl.InputError) as e:
            fn(*_args(backend, y))
        msg = str(e.value)
        assert "input 'target'" in msg and "outside [0, 5) for dim C (size 5)" in msg
        assert f"from {lo} to {hi}" in msg and "check_indices=False" in msg
    fn(*_args(backend, GOOD))  # in range: no error


@pytest.mark.parametrize("backend", TARGETS)
def test_ignore_index_is_not_out_of_range(backend):
    fn = lossdsl.load("cross_entropy").compile(backend)
    y = np.array([0, -100, 2, -100, 3, 0])
    out = fn(*_args(backend, y))
    # F.cross_entropy (torch 2.13) on the same batch: the mean over the 4 kept rows
    want = torch.nn.functional.cross_entropy(torch.tensor(LOGITS), torch.tensor(y))
    np.testing.assert_allclose(float(out), float(want), rtol=1e-12)
    with pytest.raises(lossdsl.InputError, match="from -5 to 3"):
        fn(*_args(backend, np.array([0, -5, 2, -100, 3, 0])))  # -5 is neither a class nor -100


@pytest.mark.parametrize("backend", TARGETS)
def test_a_python_number_of_the_wrong_kind_for_a_param_raises(backend):
    """ignore_index=2.5 would ignore no class (target != 2.5), and F.cross_entropy would take
    it as 2; True for a float param is a slip too. An int for a float param is fine."""
    fn = lossdsl.load("cross_entropy").compile(backend)
    args = _args(backend, GOOD)
    for kw, kind in ((dict(ignore_index=2.5), "int"), (dict(ignore_index=True), "int"),
                     (dict(label_smoothing=True), "float")):  # fmt: skip
        name = next(iter(kw))
        with pytest.raises(lossdsl.ParamError, match=f"param '{name}' must be {kind}, got"):
            fn(*args, **kw)
    fn(*args, ignore_index=-1, label_smoothing=0)


def test_check_indices_false_skips_the_check():
    import jax.numpy as jnp

    fn = lossdsl.load("cross_entropy").compile("jax")
    # jax fills an out-of-range gather with NaN instead of failing: the silent wrong answer
    # the check exists for; with check_indices=False ids in range are the caller's promise
    out = fn(jnp.asarray(LOGITS), jnp.asarray(BAD), check_indices=False)
    assert np.isnan(float(out))
    tfn = lossdsl.load("cross_entropy").compile("torch")
    with pytest.raises((IndexError, RuntimeError)):  # torch's own gather error, not ours
        tfn(torch.tensor(LOGITS), torch.tensor(BAD), check_indices=False)


def test_the_check_is_skipped_inside_jax_jit_and_torch_compile():
    import jax
    import jax.numpy as jnp

    fn = lossdsl.load("focal").compile("jax")
    val = jax.jit(fn)(jnp.asarray(LOGITS), jnp.asarray(GOOD))
    np.testing.assert_allclose(float(val), float(fn(jnp.asarray(LOGITS), jnp.asarray(GOOD))))
    tfn = lossdsl.load("focal").compile("torch")
    compiled = torch.compile(tfn, fullgraph=True)  # no graph break from the check
    x, y = torch.tensor(LOGITS), torch.tensor(GOOD)
    torch.testing.assert_close(compiled(x, y), tfn(x, y))


def test_specs_without_index_inputs_take_no_check_flag():
    sig = lossdsl.load("mse").compile("torch").signature
    assert "check_indices" not in sig.parameters
    sig = lossdsl.load("cross_entropy").compile("torch").signature
    assert sig.parameters["check_indices"].default is True


def _scalars(backend, v):
    """The concrete scalar forms a param can be passed as: numpy scalars and 0-d arrays on every
    backend, plus the backend's own 0-d tensor."""
    out = [np.float32(v), np.float64(v), np.asarray(v)]
    if backend == "torch":
        out.append(torch.tensor(v))
    if backend == "jax":
        import jax.numpy as jnp

        out.append(jnp.asarray(v))
    return out


@pytest.mark.parametrize("backend", TARGETS)
def test_concrete_array_scalars_are_checked_against_the_constraint(backend):
    """np.float32(-1) for focal's gamma (`where gamma >= 0`) ran with gamma = -1: only Python
    numbers were checked. Every concrete scalar is checked on its value; a valid one gives the
    value of the same Python float."""
    fn = lossdsl.load("focal").compile(backend)
    args = _args(backend, GOOD)
    for g in _scalars(backend, -1.0):
        with pytest.raises(lossdsl.ParamError, match="gamma >= 0"):
            fn(*args, gamma=g)
    want = float(fn(*args, gamma=1.5))
    for g in _scalars(backend, 1.5):
        np.testing.assert_allclose(float(fn(*args, gamma=g)), want, rtol=1e-6)
    with pytest.raises(lossdsl.ParamError, match="param 'ignore_index' must be int, got 2.5"):
        lossdsl.load("cross_entropy").compile(backend)(*args, ignore_index=np.float32(2.5))


@pytest.mark.parametrize("backend", TARGETS)
def test_a_param_with_several_elements_is_a_param_error(backend):
    """gamma=tensor([1., 2., 3.]) was a raw broadcasting RuntimeError/ValueError."""
    fn = lossdsl.load("focal").compile(backend)
    args = _args(backend, GOOD)
    three = {"numpy": np.array([1.0, 2.0, 3.0]), "torch": torch.tensor([1.0, 2.0, 3.0])}
    if backend == "jax":
        import jax.numpy as jnp

        three["jax"] = jnp.asarray([1.0, 2.0, 3.0])
    msg = r"param 'gamma' must be a scalar \(a number or a 0-d tensor\), got shape \(3,\)"
    with pytest.raises(lossdsl.ParamError, match=msg):
        fn(*args, gamma=three[backend])


def test_traced_params_skip_the_value_check_but_not_the_shape_check():
    """Under jax.jit a param passed as an argument is a tracer: its constraint cannot be checked
    (documented in README, Params); its shape still is. Under torch.func.vmap over gamma, each
    gamma is a 0-d wrapped tensor: no .item() (it would fail), the value is computed."""
    import jax
    import jax.numpy as jnp

    fn = lossdsl.load("focal").compile("jax")
    x, y = jnp.asarray(LOGITS), jnp.asarray(GOOD)
    got = jax.jit(lambda g: fn(x, y, gamma=g))(jnp.asarray(1.5))
    np.testing.assert_allclose(float(got), float(fn(x, y, gamma=1.5)), rtol=1e-6)
    with pytest.raises(lossdsl.ParamError, match="must be a scalar"):
        jax.jit(lambda g: fn(x, y, gamma=g))(jnp.ones(3))
    tfn = lossdsl.load("focal").compile("torch")
    tx, ty = torch.tensor(LOGITS), torch.tensor(GOOD)
    gammas = torch.tensor([0.5, 2.0])
    got = torch.func.vmap(lambda g: tfn(tx, ty, gamma=g))(gammas)
    want = torch.stack([tfn(tx, ty, gamma=0.5), tfn(tx, ty, gamma=2.0)])
    torch.testing.assert_close(got, want)


def test_numpy_scalar_params_compute_like_python_numbers_on_torch():
    """A numpy 0-d array or scalar param met a tensor in `pa <= u`: numpy's operator raised
    TypeError (found by tests/difffuzz.py). Once checked it is its Python value. Expected: the
    same value as pa=-0.25 given as a Python float (and as the numpy reference gives)."""
    import torch

    spec = lossdsl.parse(
        "loss f(u: float[D]) {\n    param pa: float = 0\n    float(pa <= u) * u\n}\n"
    )
    fn = spec.compile("torch")
    u = torch.tensor([-30.0, 2.0, 5.0], dtype=torch.float64)
    want = fn(u, pa=-0.25, reduction="none")
    torch.testing.assert_close(want, torch.tensor([0.0, 2.0, 5.0], dtype=torch.float64))
    for pa in (np.asarray(-0.25), np.float32(-0.25), np.float64(-0.25)):
        torch.testing.assert_close(fn(u, pa=pa, reduction="none"), want)


# ---- integer data for float inputs ------------------------------------------------------------


@pytest.mark.parametrize("backend", TARGETS)
def test_integer_tensors_for_float_inputs_are_promoted_on_every_spec(backend):
    """Every float input of every spec, given as an int64 tensor (a uint8 image, 0/1 labels as
    longs), computes what the same integers given as the framework's default float compute
    (torch.get_default_dtype(), jax's default float, float64 in the numpy reference): the
    generated check promotes it as torch and numpy's type promotion make x * 1.0. Before: an
    InputError "must be float" (kornia's total_variation takes uint8 images; torch's
    BCEWithLogitsLoss refuses long targets, a common stumble)."""
    from helpers import call, random_inputs, sizes_for

    from lossdsl.equiv import float_inputs

    sizes = {"B": 3, "C": 4, "D": 3, "V": 2, "K": 3, "S": (3, 2), "N": 3, "M": 3, "L": 3, "T": 4}
    import jax.numpy as jnp

    fdt = {
        "torch": str(torch.get_default_dtype()).removeprefix("torch."),
        "jax": str(jnp.result_type(float)),
        "numpy": "float64",
    }[backend]
    checked = 0
    # jax: every 3rd spec (op by op a jax call costs ~0.1 s here); the promotion is one line
    # of the shared input-check template per float input, the same on every spec
    names = lossdsl.list_specs()[:: 3 if backend == "jax" else 1]
    for name in names:
        spec = lossdsl.load(name)
        fn = spec.compile(backend)
        data = random_inputs(spec, sizes_for(spec, sizes), np.random.default_rng(0))
        floats = [k for k in float_inputs(spec) if k in data]
        if not floats:
            continue
        # small integers: exact in every float dtype; a domain (x > 0) may reject 0, so the
        # integers keep the sign of the drawn values and are at least 1 in magnitude
        ints = {
            k: np.where(data[k] < 0, -1, 1) * np.maximum(np.abs(np.round(data[k])), 1)
            for k in floats
        }
        as_int = {**data, **{k: v.astype(np.int64) for k, v in ints.items()}}
        as_float = {**data, **ints}
        try:
            want = call(backend, fn, as_float, fdt)
        except lossdsl.LossError:
            continue  # integers outside this spec's domain (a probability): nothing to compare
        got = call(backend, fn, as_int, fdt)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
        checked += 1
    assert checked > 0.7 * len(names)


def test_the_accelerator_class_id_check_is_a_device_side_assert_with_the_message():
    """On an accelerator the generated check must not read the ids back to the host (a sync
    per step): it is torch._assert_async, which on CUDA fails the stream later with the
    message and costs nothing when the ids are valid. The helper takes host=False to run that
    branch here: on the CPU, _assert_async raises at once, with the same message. (No GPU on
    this machine: the no-sync property itself is torch's contract for _assert_async.)"""
    from backends.torch_backend import IDS_OUT_OF_RANGE

    ns = {"torch": torch}
    exec(IDS_OUT_OF_RANGE, ns)  # the helper text every generated torch module carries
    check = ns["_ids_out_of_range"]
    assert check(torch.tensor([0, 4, 2]), 5, host=False) is False
    with pytest.raises(RuntimeError, match=r"class ids outside \[0, 5\)"):
        check(torch.tensor([0, 7, 2]), 5, host=False)
    assert check(torch.tensor([0, 7]), 5) is True and check(torch.tensor([0, 4]), 5) is False
    src = lossdsl.load("cross_entropy").source("torch")
    assert "_assert_async" in src and "def _ids_out_of_range(i, n, host=None)" in src
