#!/usr/bin/env python
"""Entropic OT: compiled sinkhorn (torch eager, forward + backward w.r.t. the cost) against POT's
`ot.sinkhorn2(a, b, M, reg, method="sinkhorn_log", numItermax=100, stopThr=0)` (torch backend,
autodiff through its loop), the call a user would otherwise make; POT takes one problem per call,
so a batch is a Python loop over POT calls. Also lossdsl with `checkpoint=true` on its loop (the
spec's text with that one argument added): each step recomputed in the backward pass.

Besides time, `saved MB` is what the forward pass leaves for the backward pass (the bytes of every
tensor autograd saves, counted by torch.autograd.graph.saved_tensors_hooks): 100 steps keep 100
copies of the [B, N, M] intermediates, unless checkpointed.

Before timing, each candidate's loss and gradient are checked against lossdsl's in float64.
Candidates are timed round-robin (one sample each, the starting one rotating), medians reported,
ratio = candidate / POT.

    PYTHONPATH=. python benchmarks/bench_ot.py [--reps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ot  # noqa: E402
import torch  # noqa: E402
from timing import fwd_bwd, interleaved  # noqa: E402

import lossdsl  # noqa: E402

SPEC = REPO / "specs" / "sinkhorn.loss"


def candidates():
    plain = lossdsl.load("sinkhorn").compile("torch")
    text = SPEC.read_text().replace("init=(0 * a, 0 * b))", "init=(0 * a, 0 * b), checkpoint=true)")
    assert "checkpoint=true" in text
    ckpt = lossdsl.parse(text, "sinkhorn_checkpoint.loss").compile("torch")

    def pot(cost, a, b):
        return torch.stack(
            [
                ot.sinkhorn2(a[i], b[i], cost[i], 0.1, method="sinkhorn_log", numItermax=100,
                             stopThr=0.0)
                for i in range(cost.shape[0])
            ]
        ).mean()  # fmt: skip

    return {"POT": pot, "lossdsl": plain, "lossdsl checkpoint": ckpt}


def problem(b, n, m, dtype, g):
    x, y = torch.randn(b, n, 2, generator=g), torch.randn(b, m, 2, generator=g)
    cost = torch.cdist(x, y) ** 2
    a = torch.softmax(torch.randn(b, n, generator=g), 1)
    w = torch.softmax(torch.randn(b, m, generator=g), 1)
    return [t.to(dtype) for t in (cost, a, w)]


def saved_mb(fn, cost, a, b) -> float:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    cost = cost.detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(cost, a, b)
    torch.autograd.grad(out, [cost])
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fns = candidates()
    print(f"torch {torch.__version__}, POT {ot.__version__}, float32, reg 0.1, 100 steps, "
          f"{args.threads} threads, {args.reps} reps\n")  # fmt: skip
    print(f"{'case':24s} {'candidate':20s} {'ms':>9s} {'ratio':>6s} {'saved MB':>9s}")
    g = torch.Generator().manual_seed(0)
    for b, n, m in ((1, 1024, 1024), (8, 256, 256), (64, 32, 32)):
        wide = problem(b, n, m, torch.float64, g)
        want, gw = fwd_bwd(fns["lossdsl"], *wide)
        for k, f in fns.items():
            got, gg = fwd_bwd(f, *wide)
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=k)
            torch.testing.assert_close(gg, gw, rtol=1e-7, atol=1e-12, msg=k)
        inputs = [t.float() for t in wide]
        samples = interleaved(fns, lambda f: fwd_bwd(f, *inputs), args.reps)
        names = list(fns)
        ref = statistics.median(samples["POT"])
        for k in names:
            ms = statistics.median(samples[k])
            mb = saved_mb(fns[k], *inputs)
            print(f"{f'[{b}, {n}, {m}]':24s} {k:20s} {ms * 1e3:9.1f} {ms / ref:6.2f} {mb:9.1f}")


if __name__ == "__main__":
    main()
