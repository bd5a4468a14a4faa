#!/usr/bin/env python
"""log_ive(v, x) (the log of the exponentially scaled modified Bessel function, lossdsl's one
op for it, emitted into every module) against what a user would call instead: scipy's
`log(scipy.special.ive(v, x))` (float64, numpy arrays; -inf where ive underflows, which
log_ive does not). torch eager and jax.jit of lossdsl's module, forward only, 1e6 elements.

Before timing, each candidate's values are checked against scipy where ive is a normal number
(rtol 1e-12). Candidates are timed round-robin (one sample each per repetition, the starting
one rotating), medians reported, ratio = candidate / scipy.

    PYTHONPATH=. python benchmarks/bench_bessel.py [--reps 5] [--n 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special as sp  # noqa: E402
import torch  # noqa: E402

import lossdsl  # noqa: E402

jax.config.update("jax_enable_x64", True)
SRC = "loss t(v: float[N], x: float[N]) {\n    log_ive(v, x)\n}\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    spec = lossdsl.parse(SRC)
    ft, fj = spec.compile("torch"), spec.compile("jax")
    jf = jax.jit(lambda v, x: fj(v, x, reduction="none"))
    rng = np.random.default_rng(0)
    ok = True
    for label, v in (("v = 0", np.zeros(a.n)), ("v in [0, 500]", rng.uniform(0, 500, a.n))):
        x = rng.uniform(0, 1000, a.n)
        tv, tx, jv, jx = torch.tensor(v), torch.tensor(x), jnp.asarray(v), jnp.asarray(x)
        cands = {
            "scipy log(ive)": lambda: np.log(sp.ive(v, x)),
            "lossdsl torch eager": lambda: ft(tv, tx, reduction="none").numpy(),
            "lossdsl jax.jit": lambda: np.asarray(jf(jv, jx).block_until_ready()),
        }
        with np.errstate(divide="ignore"):
            want = cands["scipy log(ive)"]()
            normal = np.isfinite(want) & (sp.ive(v, x) > 1e-300)
            for name, f in cands.items():  # (also the warm-up: jax compiles here)
                got = f()
                if not np.allclose(got[normal], want[normal], rtol=1e-12, atol=0):
                    print(f"MISMATCH {label} {name}")
                    ok = False
            times: dict[str, list[float]] = {k: [] for k in cands}
            names = list(cands)
            for r in range(a.reps):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    t0 = time.perf_counter()
                    cands[name]()
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["scipy log(ive)"])
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{label:14s} {name:20s} {med * 1e3:9.1f} ms  {med / base:6.2f}x scipy")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
