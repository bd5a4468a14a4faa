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


def test_margin_curves_are_the_closed_forms():
    """Two-class CE and BPR at score margin m are softplus(-m) = log(1 + e^-m) (Rendle et al.
    2009, eq. for -ln sigma(x_uij)); the hinge loss is max(0, 1 - m) (Cortes and Vapnik 1995)."""
    (ce,) = curves(["ce"], {}, over="margin")
    np.testing.assert_allclose(ce.loss, np.logaddexp(0.0, -ce.pt), rtol=1e-12)
    (bpr,) = curves(["bpr"], {}, over="margin")
    np.testing.assert_allclose(bpr.loss, np.logaddexp(0.0, -bpr.pt), rtol=1e-12)
    (hinge,) = curves(["hinge"], {}, over="margin")
    np.testing.assert_allclose(hinge.loss, np.maximum(0.0, 1.0 - hinge.pt), atol=1e-12)
    assert not ce.findings() and not bpr.findings() and not hinge.findings()


def test_similarity_curve_of_the_triplet_loss():
    """Unit anchor a, positive at cosine s (|a - p| = sqrt(2 - 2s)), negative orthogonal
    (|a - n| = sqrt(2)): max(sqrt(2 - 2s) - sqrt(2) + margin, 0) (Schroff et al. 2015, eq. 1
    with distances, as torch.nn.TripletMarginLoss; its eps = 1e-6 shifts it by < 1e-5)."""
    for c in curves(["triplet_margin"], {"margin": [0.2, 1.0]}, over="similarity"):
        margin = dict(c.params)["margin"]
        want = np.maximum(np.sqrt(2 - 2 * c.pt) - np.sqrt(2) + margin, 0.0)
        np.testing.assert_allclose(c.loss, want, atol=1e-5)
        assert not c.findings()  # decreasing in s, zero once the margin is met


def test_similarity_axis_covers_the_batch_shapes_of_contrastive_specs():
    # every family the axis documents: labelled batches, two views, paired batches
    for name in ["circle", "supcon", "info_nce", "triplet_batch_hard", "align_uniform"]:
        (c,) = curves([name], {}, over="similarity")
        assert np.isfinite(c.loss).all() and c.loss[0] > c.loss[-1], name


def test_plot_axis_errors_name_the_signature(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "lossdsl", "plot", "clip", "--over", "similarity", "-o",
         str(tmp_path / "x.png")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 1
    assert "plot --over similarity needs" in r.stderr and "logit_scale" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_plots_over_similarity(tmp_path):
    out = tmp_path / "sim.png"
    r = subprocess.run(
        [sys.executable, "-m", "lossdsl", "plot", "triplet_margin", "supcon", "--over",
         "similarity", "--param", "margin=0.2,1", "-o", str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_misspelt_param_of_every_plotted_spec_is_refused_with_its_name():
    """A generator over the params of specs that plot over p_t: each name with its last letter
    dropped is refused (not drawn as the unswept curve) and the hint names the param."""
    import pytest

    import lossdsl
    from lossdsl.errors import LossError

    tried = 0
    for name in ("focal", "poly1", "cross_entropy", "sigmoid_focal", "asl"):
        for p in lossdsl.load(name).params:
            if len(p.name) < 4 or p.choices:
                continue
            typo = p.name[:-1]
            if typo in {q.name for q in lossdsl.load(name).params}:
                continue
            with pytest.raises(LossError, match=f"no param '{typo}' in {name}") as e:
                curves([name], {typo: [0.0, 1.0]}, n=5)
            assert e.value.hint == f"did you mean '{p.name}'?", (name, e.value.hint)
            tried += 1
    assert tried >= 10


def test_cli_param_sweeps_that_are_not_numbers_are_messages(tmp_path):
    for sweep, message in [
        ("gama=0,1", "no param 'gama' in focal"),
        ("gamma=a,b", "must be a number"),
        ("gamma=", "a sweep takes numbers"),
        ("gamma", "--param takes NAME=V1,V2"),
    ]:
        r = subprocess.run(
            [sys.executable, "-m", "lossdsl", "plot", "focal", "--param", sweep, "-o",
             str(tmp_path / "x.png")],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert r.returncode == 1 and message in r.stderr, (sweep, r.stderr)
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "x.png").exists()


def test_every_spec_on_every_axis_plots_or_says_why():
    """A generator over every shipped spec and every axis: a curve, or a LossError naming the
    spec (batch_dice's "none" is per class, not per row: it once raised numpy's ValueError)."""
    import lossdsl
    from lossdsl.errors import LossError
    from lossdsl.plot import AXES

    drawn = refused = 0
    for name in lossdsl.list_specs():
        for over in AXES:
            try:
                cs = curves([name], {}, n=5, over=over)
            except LossError as e:
                assert name in e.message, e.message
                refused += 1
                continue
            assert all(c.loss.shape == (5,) for c in cs), name
            drawn += 1
    assert drawn > 100 and refused > 100
