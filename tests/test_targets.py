"""The target registry (lossdsl/codegen/targets.py): a fourth target is one file plus its
registration, and everything that means "every backend" (compile, source, the CLI, the
completeness test of tests/test_ops.py) picks it up from the registry."""

from __future__ import annotations

import contextlib
import inspect
import io

import numpy as np
import pytest
import test_ops
from helpers import SHAPES, random_inputs

import lossdsl
from lossdsl.cli import main
from lossdsl.codegen import REFERENCE, TARGETS, load_backend, register, registered, unregister

# A target file as a user would write one: here the numpy target's templates under a new name
# (its generated code must then be the numpy target's, line for line).
NUMPY2 = '''
"""numpy2: the numpy code target under another name."""

from dataclasses import replace

from lossdsl.codegen import load_backend

TARGET = replace(load_backend("numpy").TARGET, name="numpy2")
'''

# The same, less one template: the completeness test must name the op it lacks.
BROKEN = """
from dataclasses import replace

from lossdsl.codegen import load_backend

_numpy = load_backend("numpy").TARGET
TARGET = replace(
    _numpy, name="broken", templates={k: v for k, v in _numpy.templates.items() if k != "atan2"}
)
"""


@contextlib.contextmanager
def registered_target(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}_backend.py"
    path.write_text(text)
    register(name, path)
    try:
        yield
    finally:
        unregister(name)


def test_the_shipped_targets_are_the_registry():
    assert registered() == TARGETS == ("torch", "jax", "numpy")
    assert REFERENCE in TARGETS
    for name in TARGETS:
        assert load_backend(name).TARGET.name == name


def test_a_fourth_target_is_one_file_and_its_registration(tmp_path):
    spec = lossdsl.load("focal")
    with registered_target(tmp_path, "numpy2", NUMPY2):
        assert registered() == (*TARGETS, "numpy2")
        test_ops.test_every_backend_has_every_op("numpy2")  # every op has a template
        # the numpy target's templates: the numpy target's module, byte for byte
        assert spec.source("numpy2") == spec.source("numpy")
        fn = spec.compile("numpy2")  # the generated module, exec'd (not the interpreter)
        assert fn.__module__.startswith("_lossdsl_generated_focal_numpy2_")
        data = random_inputs(spec, SHAPES[0], np.random.default_rng(0))
        ref = spec.compile("numpy")  # the float64 interpreter: the meaning
        for reduction in ("none", "sum", "mean"):
            got = fn(**data, gamma=1.5, reduction=reduction)
            want = ref(**data, gamma=1.5, reduction=reduction)
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=reduction)
        with pytest.raises(lossdsl.ParamError, match="numpy2 backend has no distributed mode"):
            spec.compile("numpy2", shard="B")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["compile", "focal", "--backend", "numpy2"]) == 0
        assert out.getvalue() == spec.source("numpy")
    assert registered() == TARGETS
    with pytest.raises(lossdsl.UnknownName, match="unknown backend 'numpy2'"):
        spec.compile("numpy2")


def test_the_completeness_test_names_a_missing_template(tmp_path):
    with registered_target(tmp_path, "broken", BROKEN):
        with pytest.raises(AssertionError, match=r"broken lacks templates for \['atan2'\]"):
            test_ops.test_every_backend_has_every_op("broken")


def test_registration_is_checked():
    with pytest.raises(ValueError, match="cannot register"):
        register("torch", "elsewhere.py")  # a shipped name is taken
    with pytest.raises(ValueError, match="cannot be unregistered"):
        unregister("numpy")


# numpy2 again, with a comment line in every generated module: a different file, same name.
NUMPY2_MARKED = (
    NUMPY2
    + """
TARGET = replace(TARGET, imports=(*TARGET.imports, "# numpy2, second registration"))
"""
)


def test_a_name_registered_again_compiles_with_its_new_file(tmp_path):
    """The compile, source and chunked caches are keyed by the target's name: after
    unregister("numpy2") and a register("numpy2", another file), source() returned the first
    file's module from the cache. unregister clears them."""
    spec = lossdsl.load("focal")
    with registered_target(tmp_path, "numpy2", NUMPY2):
        first = spec.source("numpy2")
        spec.compile("numpy2")
    (tmp_path / "again").mkdir()
    with registered_target(tmp_path / "again", "numpy2", NUMPY2_MARKED):
        again = spec.source("numpy2")
        assert again != first and "# numpy2, second registration" in again
        assert "# numpy2, second registration" in inspect.getsource(
            inspect.getmodule(spec.compile("numpy2")._fn)
        )
