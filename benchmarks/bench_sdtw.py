#!/usr/bin/env python
"""Soft-DTW forward + backward (w.r.t. x and y): the compiled soft_dtw spec (torch eager, and
jax under jax.jit of value_and_grad) against the peers a user would otherwise call:
tslearn's `SoftDTWLossPyTorch` and pysdtw's `SoftDTW(use_cuda=False)` (both a torch autograd
Function over numba kernels of the authors' DP), and the numpy transcription of the authors'
code (tests/reference/soft_dtw_official.py, Python loops: the slow baseline).

Before timing, each candidate's value and gradients are checked against lossdsl's torch module
in float64. Candidates are timed round-robin (one sample each, the starting one rotating),
medians reported, ratio = candidate / tslearn. float64 throughout (pysdtw's CPU path rounds its
DP tables to torch's default dtype, so the default is set to float64 here). A peer that is not
installed is left out.

    PYTHONPATH=. python benchmarks/bench_sdtw.py [--reps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from reference.soft_dtw_official import soft_dtw_batch  # noqa: E402
from timing import interleaved  # noqa: E402

import lossdsl  # noqa: E402

jax.config.update("jax_enable_x64", True)
GAMMA = 0.1


def candidates():
    """name -> f(x, y) returning (sum of per-pair values, grad x, grad y) as numpy arrays."""
    spec = lossdsl.load("soft_dtw")
    tfn = spec.compile("torch")

    def torch_fn(f):
        def run(x, y):
            x, y = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
            out = f(x, y).sum()
            gx, gy = torch.autograd.grad(out, [x, y])
            return out.item(), gx.numpy(), gy.numpy()

        return run

    jfn = jax.jit(
        jax.value_and_grad(
            lambda x, y: spec.compile("jax")(x, y, gamma=GAMMA, reduction="sum"), argnums=(0, 1)
        )
    )

    def jax_run(x, y):
        v, (gx, gy) = jfn(jnp.asarray(x), jnp.asarray(y))
        return float(v), np.asarray(gx), np.asarray(gy)

    def numpy_ref(x, y):
        v, gx, gy = soft_dtw_batch(x, y, GAMMA)
        return v.sum(), gx, gy

    fns = {}
    try:
        from tslearn.metrics import SoftDTWLossPyTorch

        fns["tslearn"] = torch_fn(SoftDTWLossPyTorch(gamma=GAMMA))
    except ImportError:
        pass
    try:
        import pysdtw

        fns["pysdtw"] = torch_fn(pysdtw.SoftDTW(gamma=GAMMA, use_cuda=False))
    except ImportError:
        pass
    fns["lossdsl torch"] = torch_fn(lambda x, y: tfn(x, y, gamma=GAMMA, reduction="none"))
    fns["lossdsl jax.jit"] = jax_run
    fns["numpy reference"] = numpy_ref
    return fns


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    fns = candidates()
    print(f"torch {torch.__version__}, jax {jax.__version__}, float64, gamma {GAMMA}, "
          f"{args.threads} threads, {args.reps} reps\n")  # fmt: skip
    print(f"{'case [B, N, M, D]':20s} {'candidate':18s} {'ms':>9s} {'ratio':>7s}")
    rng = np.random.default_rng(0)
    base = "tslearn" if "tslearn" in fns else "numpy reference"
    for b, n, m, d in ((8, 16, 16, 2), (4, 64, 48, 3), (32, 32, 32, 8)):
        x, y = rng.standard_normal((b, n, d)), rng.standard_normal((b, m, d))
        want = fns["lossdsl torch"](x, y)
        for k, f in fns.items():
            got = f(x, y)  # also the jit's compile, outside the timing
            for w, g in zip(want, got):
                np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11, err_msg=k)
        samples = interleaved(fns, lambda f: f(x, y), args.reps)
        names = list(fns)
        ref = statistics.median(samples[base])
        for k in names:
            ms = statistics.median(samples[k])
            print(f"{f'[{b}, {n}, {m}, {d}]':20s} {k:18s} {ms * 1e3:9.1f} {ms / ref:7.2f}")


if __name__ == "__main__":
    main()
