#!/usr/bin/env python
"""stft_mag(): the mr_stft and stft_loss specs against auraloss.freq (MultiResolutionSTFTLoss
and STFTLoss at their defaults, auraloss 0.4.0), forward + backward.

Each case times the loss and its gradient w.r.t. the estimate, float32 on CPU, for the compiled
torch function and for auraloss (which takes [B, 1, T]), after checking that both give the same
loss and gradient; round-robin timing (the starting one alternating), medians, and the ratio
lossdsl / auraloss (target: within 1.1x: both run torch.stft).

    PYTHONPATH=. python benchmarks/bench_audio.py            # 8 x 2 s at 22.05 kHz, 15 reps
    PYTHONPATH=. python benchmarks/bench_audio.py --quick    # 4 x 1 s, 5 reps
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import auraloss  # noqa: E402
import torch  # noqa: E402
from timing import fwd_bwd, interleaved, medians  # noqa: E402

import lossdsl  # noqa: E402

TARGET = 1.1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 x 1 s, 5 repetitions")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    b, t = (4, 22050) if args.quick else (8, 44100)
    reps = args.reps or (5 if args.quick else 15)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, t, generator=g)
    y = x + 0.3 * torch.randn(b, t, generator=g)
    aura = importlib.metadata.version("auraloss")
    print(
        f"torch {torch.__version__}, auraloss {aura}, {args.threads} threads, float32, "
        f"x: {tuple(x.shape)}"
    )

    print(f"{'case':14s} {'lossdsl ms':>11s} {'auraloss ms':>12s} {'ratio':>7s} {'min-r':>7s}")
    status = 0
    for name, module in (
        ("mr_stft", auraloss.freq.MultiResolutionSTFTLoss()),
        ("stft_loss", auraloss.freq.STFTLoss()),
    ):
        ours = lossdsl.load(name).compile("torch")

        def ref(a, c, module=module):
            return module(a.unsqueeze(1), c.unsqueeze(1))

        (a, ga), (c, gc) = fwd_bwd(ours, x, y), fwd_bwd(ref, x, y)  # also the warm-up
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ga, gc, rtol=1e-3, atol=1e-4 * float(gc.abs().max()))
        s = interleaved({"ours": ours, "ref": ref}, lambda f: fwd_bwd(f, x, y), reps)
        (t_ours, t_ref), (mo, mr) = s.values(), medians(s).values()
        ratio = mo / mr
        print(
            f"{name:14s} {mo * 1e3:11.2f} {mr * 1e3:12.2f} {ratio:7.2f}x "
            f"{min(t_ours) / min(t_ref):6.2f}x"
        )
        status |= ratio > TARGET
    print(f"target: within {TARGET}x (status {int(status)}: 1 where a median ratio misses it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
