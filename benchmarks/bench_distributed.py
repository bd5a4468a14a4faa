#!/usr/bin/env python
"""Distributed losses (issue 5): the sharded lossdsl loss against the hand-written distributed
version a user would write, on 2 gloo processes (1 CPU thread each), forward + backward.

    PYTHONPATH=. python benchmarks/bench_distributed.py [--reps 30]

Hand-written references, the usual recipes: gather the features with gradients (open_clip's
gather_with_grad, the SupContrast multi-GPU forks), compute this rank's anchors against the
gathered batch, scale this rank's share by the world size for DDP; for cross-entropy with
ignore_index, F.cross_entropy(reduction="sum") over the all_reduced count of non-ignored
targets. The gather is an autograd Function over all_gather_into_tensor whose backward
all_reduces the gradient: torch.distributed.nn.functional.all_gather, the usual choice, gave
wrong gradients on gloo in torch 2.13 (up to 40-80% of the largest entry on a plain pairwise
loss) and is deprecated. Each reference's loss and input gradient are checked
against lossdsl's before timing (the sharded values are checked against the whole batch in
tests/test_distributed.py). The timed loop is synchronized by the collectives themselves;
rank 0 reports medians."""

from __future__ import annotations

import argparse
import functools
import os
import socket
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _refs():
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    class Gather(torch.autograd.Function):
        """all_gather along dim 0; backward: the all_reduced gradient's own rows."""

        @staticmethod
        def forward(ctx, x):
            out = x.new_empty((dist.get_world_size() * x.shape[0], *x.shape[1:]))
            dist.all_gather_into_tensor(out, x.contiguous())
            return out

        @staticmethod
        def backward(ctx, g):
            g = g.contiguous().clone()
            dist.all_reduce(g)
            n = g.shape[0] // dist.get_world_size()
            return g[dist.get_rank() * n : (dist.get_rank() + 1) * n]

    def gathered(x):
        return Gather.apply(x)

    def total(x):
        x = x.detach().clone()
        dist.all_reduce(x)
        return x

    def supcon(f, labels, temperature=0.07):
        """SupContrast's SupConLoss (contrast_mode all), this rank's anchors vs every row."""
        b, v, _ = f.shape
        rank, world = dist.get_rank(), dist.get_world_size()
        anchors = f.transpose(0, 1).reshape(v * b, -1)  # the official view-major order
        everyone = gathered(f)
        contrast = everyone.transpose(0, 1).reshape(v * b * world, -1)
        lab = gathered(labels)
        s = anchors @ contrast.T / temperature
        s = s - s.max(dim=1, keepdim=True).values.detach()
        rows = torch.arange(v * b) % b + rank * b  # anchor's sample in the global batch
        cols = torch.arange(v * b * world) % (b * world)
        view_a = torch.arange(v * b) // b
        view_c = torch.arange(v * b * world) // (b * world)
        self_mask = (rows[:, None] == cols[None]) & (view_a[:, None] == view_c[None])
        pos = (lab[rows][:, None] == lab[cols][None]) & ~self_mask
        logits = s.masked_fill(self_mask, float("-inf"))
        logp = s - torch.logsumexp(logits, dim=1, keepdim=True)
        mean_pos = (logp * pos).sum(1) / pos.sum(1).clamp(min=1)
        # the global mean: every rank's sum over the total number of anchors
        return -(mean_pos.sum() * world) / (v * b * world)

    def info_nce(f, temperature=0.1):
        """NT-Xent (V = 2) with negatives from every rank."""
        b, v, _ = f.shape
        rank, world = dist.get_rank(), dist.get_world_size()
        h = F.normalize(f, dim=-1)
        everyone = gathered(h)  # [B*world, V, D]
        s = torch.einsum("bvd,cwd->bvcw", h, everyone) / temperature
        mine = torch.arange(b) + rank * b
        same = mine[:, None] == torch.arange(b * world)[None]
        pos = s[torch.arange(b), :, mine][:, :, None, :]  # [B, V, 1, V']
        eye_v = torch.eye(v, dtype=torch.bool)
        neg = s.masked_fill(same[:, None, :, None], float("-inf"))
        lneg = torch.logsumexp(neg.flatten(2), dim=2)  # [B, V]
        pair = F.softplus(lneg[:, :, None, None] - pos)  # [B, V, 1, V']
        pair = pair.squeeze(2).masked_fill(eye_v[None], 0)
        per = pair.sum(-1) / (v - 1)
        return -(-per.sum() * world) / (b * v * world)

    def cross_entropy(x, y):
        s = F.cross_entropy(x, y, ignore_index=-100, reduction="sum")
        n = total((y != -100).sum().to(x.dtype))
        return s * dist.get_world_size() / n.clamp(min=1)

    return {"supcon": supcon, "info_nce": info_nce, "cross_entropy": cross_entropy}


CASES = {  # name: (local shape, label classes)
    "supcon": ((128, 2, 128), 10),
    "info_nce": ((128, 2, 128), None),
    "cross_entropy": ((2048, 1000), 1000),
}


def rank_main(rank: int, world: int, port: int, reps: int) -> None:
    import torch
    import torch.distributed as dist

    import lossdsl

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.distributed.nn
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    refs = _refs()
    rows = []
    for name, (shape, classes) in CASES.items():
        g = torch.Generator().manual_seed(100 + rank)
        x = torch.randn(*shape, generator=g)
        if name == "supcon":
            x = torch.nn.functional.normalize(x, dim=-1)
        args = [] if classes is None else [torch.randint(0, classes, shape[:1], generator=g)]
        if name == "cross_entropy":
            args[0][: shape[0] // 4] = -100
        ours = lossdsl.load(name).compile("torch", shard="B")

        def step(fn):
            xx = x.detach().requires_grad_()
            loss = fn(xx, *args)
            loss.backward()
            return loss.detach(), xx.grad

        (lv, lg), (rv, rg) = step(ours), step(refs[name])
        rv = rv.clone()
        dist.all_reduce(rv)  # the references return this rank's share x world
        rv = rv / world
        ok = torch.allclose(lv, rv, rtol=1e-4) and torch.allclose(lg, rg, rtol=1e-3, atol=1e-6)
        if not ok:
            print(
                f"rank {rank} {name}: loss {float(lv)} vs {float(rv)}, grad err "
                f"{float((lg - rg).abs().max())} of {float(rg.abs().max())}",
                flush=True,
            )
        unchecked = functools.partial(ours, check_sizes=False)
        order = [("lossdsl", ours), ("unchecked", unchecked), ("hand-written", refs[name])]
        times = {label: [] for label, _ in order}
        for r in range(reps):
            for label, fn in order[r % 3 :] + order[: r % 3]:  # rotate who goes first
                t0 = time.perf_counter()
                step(fn)
                times[label].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        rows.append((name, shape, med["lossdsl"], med["unchecked"], med["hand-written"], ok))
    if rank == 0:
        print(f"2 gloo ranks x 1 thread, torch {torch.__version__}, {reps} reps, median ms")
        print(
            "| loss | per-rank shape | lossdsl | lossdsl, check_sizes=False | hand-written "
            "| ratio | same loss and grad |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, shape, a, u, b, ok in rows:
            shp = "x".join(map(str, shape))
            print(
                f"| {name} | {shp} | {a:.2f} | {u:.2f} | {b:.2f} | {a / b:.2f} "
                f"| {'yes' if ok else 'NO'} |"
            )
    dist.destroy_process_group()


def main() -> None:
    import torch.multiprocessing as mp

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(2, port, a.reps), nprocs=2)


if __name__ == "__main__":
    main()
