"""Shared by the benchmarks: one forward + backward of a torch loss, and interleaved timing.

Candidates are timed round-robin, one sample each per round with the starting candidate
rotating, so that a slow phase of the machine (another process, a frequency change) falls on
every candidate alike; each benchmark reports medians."""

from __future__ import annotations

import statistics
import time


def fwd_bwd(fn, *args, wrt: int = 0):
    """fn(*args) and its gradient w.r.t. args[wrt] (a torch tensor), both detached."""
    import torch

    args = list(args)
    x = args[wrt] = args[wrt].detach().requires_grad_(True)
    out = fn(*args)
    (g,) = torch.autograd.grad(out, [x])
    return out.detach(), g


def interleaved(fns: dict, run, reps: int) -> dict[str, list[float]]:
    """name -> the seconds of each of `reps` calls run(fns[name]), taken round-robin."""
    samples = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        for k in names[r % len(names) :] + names[: r % len(names)]:  # rotate the start
            t = time.perf_counter()
            run(fns[k])
            samples[k].append(time.perf_counter() - t)
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in samples.items()}
