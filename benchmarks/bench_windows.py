#!/usr/bin/env python
"""Window-op specs against the libraries they are verified against: ssim and ms_ssim vs
pytorch_msssim (at its default window and at win_size=7, win_sigma=1.0), lncc vs MONAI's
LocalNormalizedCrossCorrelationLoss (kernel 9), ms_ssim_l1 (its five fixed scales) and
ms_ssim_l1_sigmas (the sigmas an input: one depthwise pass per blur) vs kornia's MS_SSIMLoss.

Each case times forward + backward (the loss and its gradient w.r.t. the first image) of the
compiled torch function and of the library, float32, batch 4 x 3 channels x 512 x 512, after
checking that both give the same loss and gradient. The candidates are timed round-robin (the
starting one alternating every repetition), so machine noise hits them alike; medians, and the
ratio lossdsl / reference (target: within 1.5x).

    PYTHONPATH=. python benchmarks/bench_windows.py            # 512 x 512, 15 repetitions
    PYTHONPATH=. python benchmarks/bench_windows.py --quick    # 256 x 256, 5 repetitions
    PYTHONPATH=. python benchmarks/bench_windows.py --compile  # also torch.compile'd pairs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from timing import fwd_bwd, interleaved, medians  # noqa: E402

import lossdsl  # noqa: E402

TARGET = 1.5


def _cases(size: int):
    """name -> (the lossdsl function, the reference), both of (x, y)."""
    import kornia.losses
    import pytorch_msssim
    from monai.losses import LocalNormalizedCrossCorrelationLoss

    lncc = LocalNormalizedCrossCorrelationLoss(spatial_dims=2, kernel_size=9)
    ssim, ms = lossdsl.load("ssim").compile("torch"), lossdsl.load("ms_ssim").compile("torch")
    five = (0.5, 1.0, 2.0, 4.0, 8.0)
    sig = torch.tensor(five)
    msl1 = lossdsl.load("ms_ssim_l1").compile("torch")
    msl1_sig = lossdsl.load("ms_ssim_l1_sigmas").compile("torch")
    kornia_ms = kornia.losses.MS_SSIMLoss(sigmas=five)
    return {
        "ssim": (ssim, lambda x, y: 1 - pytorch_msssim.ssim(x, y, data_range=1.0)),
        "ssim_win7": (
            lambda x, y: ssim(x, y, win_size=7, win_sigma=1.0),
            lambda x, y: 1 - pytorch_msssim.ssim(x, y, data_range=1.0, win_size=7, win_sigma=1.0),
        ),
        "ms_ssim": (ms, lambda x, y: 1 - pytorch_msssim.ms_ssim(x, y, data_range=1.0)),
        "lncc": (lossdsl.load("lncc").compile("torch"), lambda x, y: lncc(x, y)),
        "ms_ssim_l1": (msl1, kornia_ms),
        "ms_ssim_l1_sigmas": (lambda x, y: msl1_sig(x, y, sig, win_size=33), kornia_ms),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256 x 256, 5 repetitions")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd pairs")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = 256 if args.quick else 512
    reps = args.reps or (5 if args.quick else 15)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, size, size, generator=g)
    y = (x + 0.1 * torch.randn(4, 3, size, size, generator=g)).clamp(0, 1)
    cases = _cases(size)
    names = args.only.split(",") if args.only else list(cases)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, x: {tuple(x.shape)}")
    print(f"{'case':18s} {'lossdsl ms':>11s} {'reference ms':>13s} {'ratio':>7s}")
    worst = 0.0
    for name in names:
        pairs = [("", *cases[name])]
        if args.compile:
            pairs.append((" (compile)", torch.compile(pairs[0][1]), torch.compile(cases[name])))
        for tag, ours, ref in pairs:
            (a, ga), (b, gb) = fwd_bwd(ours, x, y), fwd_bwd(ref, x, y)  # also the warm-up
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-7)
            s = interleaved({"ours": ours, "ref": ref}, lambda f: fwd_bwd(f, x, y), reps)
            mo, mr = medians(s).values()
            worst = max(worst, mo / mr)
            print(f"{name + tag:18s} {mo * 1e3:11.1f} {mr * 1e3:13.1f} {mo / mr:7.2f}x")
    print(f"worst ratio {worst:.2f}x (target: within {TARGET}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
