"""The wheel carries grammar/, backends/, specs/, LICENSE and py.typed, its metadata names the
license, classifiers and project URLs, and an installed lossdsl works outside the source tree:
build the wheel, unpack it in a temporary directory and import it from there; install it with
pip into a fresh virtual environment and run its console script, its import and mypy on a
user's script there. The public API is typed and documented (every exported name)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import lossdsl

ROOT = Path(__file__).resolve().parents[1]


def _env_without_repo() -> dict[str, str]:
    """The environment less PYTHONPATH: what runs with it imports an installed lossdsl."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("lossdsl-*.whl")
    return whl


def test_wheel_contains_resources_and_works_outside_the_tree(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lossdsl/grammar/lossdsl.lark" in names
    for b in ("torch_backend", "jax_backend", "numpy_backend", "numpy_ref"):
        assert f"lossdsl/backends/{b}.py" in names
    specs = {p.name for p in (ROOT / "specs").glob("*.loss")}
    assert {f"lossdsl/specs/{s}" for s in specs} <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import lossdsl, sys; assert lossdsl.__file__.startswith(sys.argv[1]), lossdsl.__file__;"
        "print(len(lossdsl.list_specs()));"
        "print(lossdsl.load('focal').source('jax').count('def focal'))"
    )
    env = _env_without_repo()
    env["PYTHONPATH"] = str(site)
    r = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(len(specs)), "1"]


def test_wheel_metadata_license_and_types(wheel):
    """License (PEP 639: an SPDX expression and the file itself), classifiers, project URLs,
    the README as the long description, and the PEP 561 marker."""
    z = zipfile.ZipFile(wheel)
    names = set(z.namelist())
    assert "lossdsl/py.typed" in names
    (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    dist_info = meta_name.rsplit("/", 1)[0]
    assert f"{dist_info}/licenses/LICENSE" in names
    assert z.read(f"{dist_info}/licenses/LICENSE").decode() == (ROOT / "LICENSE").read_text()
    meta = Parser().parsestr(z.read(meta_name).decode())
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    classifiers = set(meta.get_all("Classifier"))
    for c in (
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Operating System :: OS Independent",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ):
        assert c in classifiers, c
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Source"} <= set(urls), urls
    assert all(u.startswith("https://") for u in urls.values()), urls
    assert meta["Author"] and meta["Keywords"]
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == (ROOT / "README.md").read_text().strip()


# A user's script: mypy must see lossdsl's own types (py.typed), not Any.
USER_SCRIPT = """\
import lossdsl

spec = lossdsl.load("focal")
fn = spec.compile("numpy", gamma=1.0)
reveal_type(spec)
reveal_type(fn)
reveal_type(lossdsl.list_specs())
reveal_type(lossdsl.parse("loss sq(x: float[B]) { x * x }").source("jax"))
name: int = spec.name
"""


def test_wheel_installs_in_a_fresh_venv(wheel, tmp_path):
    """pip installs the wheel (nothing downloaded: torch, jax and lark come from the system's
    site-packages), the console script runs from outside the tree, `import lossdsl` finds the
    venv's copy, and mypy on a user's script reads its types there."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True,
        capture_output=True,
    )
    bin_ = venv / "bin"
    r = subprocess.run(
        [str(bin_ / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = _env_without_repo()
    cli = bin_ / "lossdsl"
    assert cli.is_file()
    r = subprocess.run(
        [str(cli), "compile", "focal", "--backend", "jax"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "def focal" in r.stdout and "import jax" in r.stdout
    code = (
        "import sys, sysconfig, lossdsl; from pathlib import Path;"
        "site = Path(sysconfig.get_paths()['purelib']).resolve();"
        "here = Path(lossdsl.__file__).resolve();"
        "assert here.is_relative_to(site), (here, site);"
        "assert here.is_relative_to(Path(sys.prefix).resolve()), (here, sys.prefix);"
        "assert (here.parent / 'py.typed').is_file();"
        "print(here)"
    )
    r = subprocess.run(
        [str(bin_ / "python"), "-c", code], capture_output=True, text=True, cwd=work, env=env
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(venv.resolve())
    assert not Path(r.stdout.strip()).is_relative_to(ROOT)

    # mypy (the [test] extra) on a user's script, against the venv's site-packages
    (work / "user.py").write_text(USER_SCRIPT)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--verbose",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--python-executable",
            str(bin_ / "python"),
            "user.py",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    out = r.stdout
    # read from the installed copy, typed (no "missing library stubs or py.typed marker")
    assert f"Parsing {venv}" in r.stderr and "/site-packages/lossdsl/__init__.py" in r.stderr
    assert "py.typed" not in out and "import-untyped" not in out, out
    assert 'Revealed type is "lossdsl.compiler.Spec"' in out, out
    assert 'Revealed type is "lossdsl.compiled.CompiledLoss"' in out, out
    # builtins.list[builtins.str] before mypy 1.16 or so, list[str] after
    assert re.search(
        r'user.py:7: note: Revealed type is "(builtins\.)?list\[(builtins\.)?str\]"', out
    )
    assert re.search(r'user.py:8: note: Revealed type is "(builtins\.)?str"', out), out
    assert "user.py:9: error: Incompatible types in assignment" in out, out
    assert r.returncode == 1 and "Found 1 error" in out, out


# ---- the public API: documented and annotated ---------------------------------------------


# The classes whose public methods are the API (the error classes: their docstring says it).
API_CLASSES = ("Spec", "CompiledLoss", "lossdsl.torch.Loss", "lossdsl.jax.Loss")


def _public_api():
    """Every exported object, and the module forms' Loss classes."""
    import lossdsl.jax
    import lossdsl.torch

    objs = {name: getattr(lossdsl, name) for name in lossdsl.__all__}
    objs["lossdsl.torch.Loss"] = lossdsl.torch.Loss
    objs["lossdsl.jax.Loss"] = lossdsl.jax.Loss
    return objs


def _public_functions(obj):
    """A function itself; for a class, the public methods it defines (and __init__, __call__),
    properties as their getters."""
    if not inspect.isclass(obj):
        return [(obj.__name__, obj)]
    out = []
    for k, v in vars(obj).items():
        if k.startswith("_") and k not in ("__init__", "__call__"):
            continue
        if isinstance(v, property):
            v = v.fget
        elif isinstance(v, (classmethod, staticmethod)):
            v = v.__func__
        if inspect.isfunction(v):
            out.append((f"{obj.__name__}.{k}", v))
    return out


def test_every_exported_name_has_a_docstring():
    for name, obj in _public_api().items():
        doc = obj.__doc__ if not inspect.isclass(obj) else vars(obj).get("__doc__")
        assert doc and doc.strip(), f"{name} has no docstring"
        if not inspect.isclass(obj) or name in API_CLASSES:
            for fname, fn in _public_functions(obj):
                if fname.endswith("__init__") and inspect.isclass(obj) and not fn.__doc__:
                    continue  # the class's docstring says how to make one
                assert fn.__doc__ and fn.__doc__.strip(), f"{fname} has no docstring"
    for name in ("parse", "load", "list_specs"):
        assert len(getattr(lossdsl, name).__doc__.split()) >= 10, name


def test_public_api_is_annotated():
    """Every parameter (but self/cls) and every return annotated, as mypy --strict wants of a
    typed package; __init__ may leave out its `-> None` (PEP 484)."""
    missing = []
    for _, obj in _public_api().items():
        for fname, fn in _public_functions(obj):
            sig = inspect.signature(fn)
            params = list(sig.parameters.values())
            if inspect.isclass(obj) and params and params[0].name in ("self", "cls"):
                params = params[1:]
            missing += [f"{fname}({p.name})" for p in params if p.annotation is p.empty]
            if sig.return_annotation is sig.empty and not fname.endswith("__init__"):
                missing.append(f"{fname} -> ?")
    assert not missing, missing
    sig = inspect.signature(lossdsl.load("focal").compile)
    assert sig.return_annotation in ("CompiledLoss", lossdsl.CompiledLoss)
