"""`lossdsl plot`: the curves are the paper's formulas, the findings flag what they should, and
the CLI writes a PNG (Figure 1 of Lin et al. 2017: FL for gamma in {0, 0.5, 1, 2, 5})."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from lossdsl.plot import curves

ROOT = Path(__file__).resolve().parents[1]


def test_focal_curves_are_the_papers_formula():
    """Lin et al. 2017, eq. 4: FL(p_t) = -(1 - p_t)^gamma log(p_t)."""
    for c in curves(["focal"], {"gamma": [0.0, 0.5, 2.0, 5.0]}):
        gamma = dict(c.params)["gamma"]
        np.testing.assert_allclose(c.loss, -((1 - c.pt) ** gamma) * np.log(c.pt), rtol=1e-10)
        assert not c.findings()  # decreasing, minimum at p_t = 1


def test_sigmoid_specs_plot_against_p_t_too():
    (c,) = curves(["sigmoid_focal"], {"alpha": [-1.0], "gamma": [0.0]})
    np.testing.assert_allclose(c.loss, -np.log(c.pt), rtol=1e-9)  # alpha<0, gamma=0: BCE


def test_label_smoothing_minimum_is_flagged():
    """(1 - eps) CE + eps mean_c(-log p_c) with C = 2 is minimal at p_t = 1 - eps/2."""
    (c,) = curves(["label_smoothing_ce"], {"epsilon": [0.1]})
    assert abs(c.pt[np.argmin(c.loss)] - 0.95) < 2e-3  # the grid step is 2.5e-3
    found = " ".join(c.findings())
    assert "minimum at p_t = 0.9" in found and "not monotone" in found


def test_cli_writes_a_png(tmp_path):
    out = tmp_path / "fig1.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lossdsl",
            "plot",
            "ce",
            "focal",
            "--param",
            "gamma=0,0.5,1,2,5",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
