"""The wheel carries grammar/, backends/ and specs/, and an installed lossdsl works outside the
source tree: build the wheel, unpack it in a temporary directory, import it from there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_resources_and_works_outside_the_tree(tmp_path):
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
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("lossdsl-*.whl")
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
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
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
