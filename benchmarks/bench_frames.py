#!/usr/bin/env python
"""frames(): the segmental_snr spec against the same loss written by hand in torch (Tensor.unfold
of the batch, the Hann window, the clamp, the mean over all frames but the last, as pysepm's
SNRseg per row in tests/reference/snrseg_pysepm.py).

Each case times forward + backward (the loss and its gradient w.r.t. the estimate) of the
compiled torch function and of the hand-written one, float32, after checking that both give the
same loss and gradient; round-robin timing (the starting one alternating), medians, and the
ratio lossdsl / hand-written (target: within 1.5x).

    PYTHONPATH=. python benchmarks/bench_frames.py            # 16 x 4 s at 16 kHz, 15 reps
    PYTHONPATH=. python benchmarks/bench_frames.py --quick    # 8 x 1 s, 5 reps
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from timing import fwd_bwd, interleaved, medians  # noqa: E402

import lossdsl  # noqa: E402

TARGET = 1.5


def snrseg_by_hand(clean, processed):
    """-SNRseg per row (pysepm's defaults at 16 kHz: 480-sample frames every 120), batched."""
    n = torch.arange(1, 481, dtype=clean.dtype)
    w = 0.5 * (1 - torch.cos(2 * math.pi * n / 481))
    s = clean.unfold(-1, 480, 120) * w
    e = (clean - processed).unfold(-1, 480, 120) * w
    eps = 2.220446049250313e-16
    db = 10 * torch.log10((s**2).sum(-1) / ((e**2).sum(-1) + eps) + eps)
    return -db.clamp(-10, 35)[:, :-1].mean(-1).mean()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 x 1 s, 5 repetitions")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    b, t = (8, 16000) if args.quick else (16, 64000)
    reps = args.reps or (5 if args.quick else 15)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, t, generator=g)
    y = x + 0.3 * torch.randn(b, t, generator=g)
    ours, ref = lossdsl.load("segmental_snr").compile("torch"), snrseg_by_hand
    print(f"torch {torch.__version__}, {args.threads} threads, float32, x: {tuple(x.shape)}")
    (a, ga), (c, gc) = fwd_bwd(ours, x, y, wrt=1), fwd_bwd(ref, x, y, wrt=1)  # also the warm-up
    torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ga, gc, rtol=1e-3, atol=1e-7)
    s = interleaved({"ours": ours, "ref": ref}, lambda f: fwd_bwd(f, x, y, wrt=1), reps)
    mo, mr = medians(s).values()
    print(f"{'case':18s} {'lossdsl ms':>11s} {'by hand ms':>11s} {'ratio':>7s}")
    print(f"{'segmental_snr':18s} {mo * 1e3:11.2f} {mr * 1e3:11.2f} {mo / mr:7.2f}x")
    print(f"target: within {TARGET}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
