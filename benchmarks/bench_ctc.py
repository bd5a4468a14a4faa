#!/usr/bin/env python
"""CTC: the compiled `ctc` spec (a `scan` along T) against the calls a user would otherwise make,
forward + backward w.r.t. the logits (each candidate takes log_softmax first: F.ctc_loss's own
gradient w.r.t. log-probabilities assumes that, pytorch#52241), each candidate checked against
F.ctc_loss in float64 before timing:

- torch eager: `torch.nn.functional.ctc_loss(..., reduction="mean")` (a fused C++ kernel) vs the
  lossdsl torch module (the ctc_nll op: the same kernels, with the gradient w.r.t. log_probs and
  the checks around them), per_token=true (torch's mean).
- jax under jax.jit: `optax.ctc_loss` (lax.scan) vs the lossdsl jax module (lax.scan), both the
  per-sequence loss averaged.

Candidates are timed round-robin (one sample each, the starting one rotating), medians reported,
ratio = candidate / the library reference of its framework.

    PYTHONPATH=. python benchmarks/bench_ctc.py [--reps 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from timing import fwd_bwd, interleaved, medians  # noqa: E402

import lossdsl  # noqa: E402

jax.config.update("jax_enable_x64", True)


def problem(t, b, c, n_lab, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(t, b, c, generator=g, dtype=torch.float64)  # logits
    targets = torch.randint(1, c, (b, n_lab), generator=g)
    il = torch.randint(t // 2, t + 1, (b,), generator=g)
    il[0] = t
    tl = torch.randint(1, n_lab + 1, (b,), generator=g)
    tl[0] = n_lab
    return lp.to(dtype), targets, il, tl


def torch_candidates():
    spec = lossdsl.load("ctc").compile("torch")

    def ours(lp, tg, il, tl):
        return spec(torch.log_softmax(lp, -1), tg, il, tl, per_token=True)

    def ref(lp, tg, il, tl):
        return F.ctc_loss(torch.log_softmax(lp, -1), tg, il, tl, reduction="mean")

    return {"F.ctc_loss": ref, "lossdsl torch": ours}


def jax_candidates(t, n_lab):
    spec = lossdsl.load("ctc").compile("jax")

    def ours(lp, tg, il, tl):
        return spec(jax.nn.log_softmax(lp, -1), tg, il, tl, reduction="mean")

    def ref(lp, tg, il, tl):
        logits = jnp.moveaxis(lp, 0, 1)
        lpad = (jnp.arange(t)[None, :] >= il[:, None]).astype(lp.dtype)
        ypad = (jnp.arange(n_lab)[None, :] >= tl[:, None]).astype(lp.dtype)
        return optax.ctc_loss(logits, lpad, tg, ypad).mean()

    return {
        "optax.ctc_loss": jax.jit(jax.value_and_grad(ref)),
        "lossdsl jax": jax.jit(jax.value_and_grad(ours)),
    }


def timed(fns, run, reps):
    return medians(interleaved(fns, run, reps))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, jax {jax.__version__}, optax {optax.__version__}, "
          f"float32, {args.threads} threads, {args.reps} reps\n")  # fmt: skip
    print(f"{'case [T, B, C, L]':22s} {'candidate':16s} {'ms':>9s} {'ratio':>6s}")
    for t, b, c, n_lab in ((200, 16, 50, 30), (200, 1, 50, 30), (50, 64, 28, 12)):
        wide = problem(t, b, c, n_lab, torch.float64)
        tfns = torch_candidates()
        want, gw = fwd_bwd(tfns["F.ctc_loss"], *wide)
        got, gg = fwd_bwd(tfns["lossdsl torch"], *wide)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(gg, gw, rtol=1e-7, atol=1e-10)
        jfns = jax_candidates(t, n_lab)
        jw = [jnp.asarray(x.numpy()) for x in wide]
        for k, f in jfns.items():  # (per-sequence mean: F.ctc_loss's "sum" / B)
            v, _ = f(*jw)
            s = F.ctc_loss(torch.log_softmax(wide[0], -1), *wide[1:], reduction="sum").item() / b
            np.testing.assert_allclose(float(v), s, rtol=1e-7, err_msg=k)
        inputs = [wide[0].float(), *wide[1:]]
        tt = timed(tfns, lambda f: fwd_bwd(f, *inputs), args.reps)
        jin = [jnp.asarray(x.numpy()) for x in inputs]
        for f in jfns.values():  # compile outside the timing
            jax.block_until_ready(f(*jin))
        jt = timed(jfns, lambda f: jax.block_until_ready(f(*jin)), args.reps)
        case = f"[{t}, {b}, {c}, {n_lab}]"
        for times, ref in ((tt, "F.ctc_loss"), (jt, "optax.ctc_loss")):
            for k, ms in times.items():
                print(f"{case:22s} {k:16s} {ms * 1e3:9.2f} {ms / times[ref]:6.2f}")


if __name__ == "__main__":
    main()
