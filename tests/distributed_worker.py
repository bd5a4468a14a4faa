"""The worker processes of tests/test_distributed.py (not collected by pytest).

    python tests/distributed_worker.py torch PORT OUT   2 gloo processes (torch.distributed)
    python tests/distributed_worker.py jax OUT          4 XLA host devices (jax shard_map)

Every case compares the loss sharded over B (each rank holds 1/world of the batch) with the
single-device loss on the whole batch, both compiled by lossdsl from the same spec; the errors
(relative to max(1, |reference|)) go to OUT as JSON for the tests to check. The single-device
losses are themselves checked against the libraries in the other suites."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from lossdsl.types import Dim  # noqa: E402  (a plain script: the path is set just above)

# the distributed-aware specs: negatives gathered across ranks (info_nce, supcon, circle, clip,
# triplet_batch_hard, tcm, mi_infonce with its [B, B'] critic scores), global masked means
# (cross_entropy's ignore_index, mae_masked_mse, z_loss), global batch statistics
# (batch_dice, barlow_twins, vicreg), and two per-sample losses
CASES = [
    "info_nce", "supcon", "circle", "clip", "triplet_batch_hard", "tcm", "mi_infonce",
    "cross_entropy", "mae_masked_mse", "z_loss", "dice", "batch_dice", "barlow_twins",
    "vicreg", "focal", "gaussian_nll",
]  # fmt: skip
DDP_CASES = ["supcon", "info_nce", "cross_entropy"]
B = 8
SIZES = {"B": B, "C": 5, "D": 3, "V": 2, "S": (3,), "L": 4, "T": 3}


def case_data(name: str) -> dict:
    """Random valid inputs; the first half of the batch is masked out where the spec has a
    mask or an ignore_index, so that whole ranks hold no counted row."""
    from helpers import random_inputs

    import lossdsl

    data = random_inputs(lossdsl.load(name), SIZES, np.random.default_rng(7))
    if name == "cross_entropy":
        data["target"][: B // 2] = -100
    if "mask" in data:
        data["mask"] = np.asarray(data["mask"], dtype=float)
        data["mask"][: B // 2] = 0
    return data


def batch_inputs(spec) -> set[str]:
    prog = spec.program()
    return {d.var.name for d in prog.inputs if d.var.type.dims[:1] == (Dim("B"),)}


def none_has_rows(spec) -> bool:
    """Does reduction="none" give per-row values (this rank's rows) or a whole result?"""
    return Dim("B") in spec.program().output("none").type.dims


def rel(got, want) -> float:
    got, want = np.asarray(got, float), np.asarray(want, float)
    return float(np.max(np.abs(got - want), initial=0.0) / max(1.0, np.max(np.abs(want))))


# ---- torch ----------------------------------------------------------------------------------


def torch_rank(rank: int, world: int, port: int, out: str) -> None:
    import warnings

    import torch.distributed as dist

    # a deprecated collective (torch 2.13: all_gather_into_tensor -> all_gather_single) fails
    # the run instead of warning in users' logs
    warnings.filterwarnings("error", message=".*deprecated.*", category=FutureWarning)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {name: torch_case(name, rank, world) for name in CASES}
        results["ddp"] = {name: ddp_case(name, rank, world) for name in DDP_CASES}
        results["ce_vs_torch"] = ce_against_torch(rank, world)
        results["torch_compile"] = {name: compiled_case(name, rank, world) for name in COMPILED}
        results["unequal"] = unequal_case(rank, world)
        Path(f"{out}.{rank}").write_text(json.dumps(results))
    finally:
        dist.barrier()
        dist.destroy_process_group()


def _rows(x, rank, world):
    n = x.shape[0] // world
    return x[rank * n : (rank + 1) * n]


def torch_case(name: str, rank: int, world: int) -> dict:
    import torch
    import torch.distributed as dist

    import lossdsl

    spec = lossdsl.load(name)
    data, rows = case_data(name), batch_inputs(spec)
    full, sharded = spec.compile("torch"), spec.compile("torch", shard="B")

    def tensors(local: bool) -> dict:
        out = {}
        for k, v in data.items():
            t = torch.as_tensor(np.asarray(v))
            t = t.double() if t.is_floating_point() else t
            if local and k in rows:
                t = _rows(t, rank, world)
            out[k] = t.clone().requires_grad_(t.is_floating_point())
        return out

    err = {"value": 0.0, "grad": 0.0, "none": 0.0}
    for grads in ("sum", "mean"):
        for reduction in ("mean", "sum"):
            a, b = tensors(False), tensors(True)
            la, lb = full(**a, reduction=reduction), sharded(**b, reduction=reduction, grads=grads)
            la.backward()
            lb.backward()
            err["value"] = max(err["value"], rel(lb.detach(), la.detach()))
            for k in a:
                if a[k].grad is None:
                    continue
                g = b[k].grad.clone()
                if k in rows:
                    want = _rows(a[k].grad, rank, world)
                else:  # a replicated input (clip's logit_scale): each rank has its share
                    dist.all_reduce(g)
                    want = a[k].grad
                if grads == "mean":  # DDP averages the ranks' gradients: each holds world x
                    g = g / world
                err["grad"] = max(err["grad"], rel(g, want))
    a, b = tensors(False), tensors(True)
    la, lb = full(**a, reduction="none"), sharded(**b, reduction="none")
    whole = la.detach()
    err["none"] = rel(lb.detach(), _rows(whole, rank, world) if none_has_rows(spec) else whole)
    return err


def ddp_case(name: str, rank: int, world: int) -> dict:
    """A model under DistributedDataParallel, the loss sharded with grads="mean" (the
    default): the parameters' gradients equal those of the same model on the whole batch.
    `naive`: the same model and batch with the unsharded loss on each rank's rows (what a
    training script gets without gathering): a different gradient, the test's control."""
    import copy

    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import lossdsl

    spec = lossdsl.load(name)
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 5).double()
    single = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, 2, 6, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (B,), generator=gen)
    if name == "cross_entropy":
        x, labels = x[:, 0], torch.randint(0, 5, (B,), generator=gen)
        labels[: B // 2] = -100
    inputs = [labels] if name != "info_nce" else []
    naive_model = copy.deepcopy(model)
    full, sharded = spec.compile("torch"), spec.compile("torch", shard="B")
    full(single(x), *inputs).backward()
    local = [_rows(t, rank, world) for t in inputs]
    wrapped = DDP(model), DDP(naive_model)  # (held: DDP reduces in backward through hooks)
    sharded(wrapped[0](_rows(x, rank, world)), *local).backward()
    full(wrapped[1](_rows(x, rank, world)), *local).backward()

    def err(m):
        return max(rel(p.grad, q.grad) for p, q in zip(m.parameters(), single.parameters()))

    return {"sharded": err(model), "naive": err(naive_model)}


def ce_against_torch(rank: int, world: int) -> float:
    """cross_entropy with ignore_index, sharded, against F.cross_entropy on the whole batch
    (an independent reference for the global masked mean and its gradient)."""
    import torch
    import torch.nn.functional as F

    import lossdsl

    data = case_data("cross_entropy")
    x = torch.as_tensor(data["logits"]).double()
    y = torch.as_tensor(data["target"])
    xa = x.clone().requires_grad_()
    F.cross_entropy(xa, y, ignore_index=-100).backward()
    xb = _rows(x, rank, world).clone().requires_grad_()
    fn = lossdsl.load("cross_entropy").compile("torch", shard="B")
    lb = fn(xb, _rows(y, rank, world), grads="sum")
    lb.backward()
    want = F.cross_entropy(x, y, ignore_index=-100)
    return max(rel(lb.detach(), want), rel(xb.grad, _rows(xa.grad, rank, world)))


COMPILED = ("supcon", "cross_entropy")  # a gather with gradients; a global masked mean


def compiled_case(name: str, rank: int, world: int) -> float:
    """The sharded loss under torch.compile (the collectives' autograd Functions included):
    value and gradient against the unsharded loss on the whole batch, eager."""
    import torch
    import torch.distributed as dist

    import lossdsl

    spec = lossdsl.load(name)
    data, rows = case_data(name), batch_inputs(spec)
    full, sharded = spec.compile("torch"), torch.compile(spec.compile("torch", shard="B"))
    a = {k: torch.as_tensor(np.asarray(v)) for k, v in data.items()}
    a = {k: t.double().requires_grad_() if t.is_floating_point() else t for k, t in a.items()}
    b = {k: (_rows(t, rank, world) if k in rows else t).detach() for k, t in a.items()}
    b = {k: t.requires_grad_() if t.is_floating_point() else t for k, t in b.items()}
    la, lb = full(**a), sharded(**b, grads="sum")
    la.backward()
    lb.backward()
    err = rel(lb.detach(), la.detach())
    for k in a:
        if a[k].grad is None:
            continue
        if k in rows:
            err = max(err, rel(b[k].grad, _rows(a[k].grad, rank, world)))
        else:  # a replicated input (class weights): each rank holds its share
            g = b[k].grad.clone()
            dist.all_reduce(g)
            err = max(err, rel(g, a[k].grad))
    return err


def unequal_case(rank: int, world: int) -> str:
    """Ranks with different local batch sizes: every rank raises the same LossInputError (no
    abort or hang in all_gather), and the process group still works afterwards."""
    import torch
    import torch.distributed as dist

    import lossdsl

    fn = lossdsl.load("info_nce").compile("torch", shard="B")
    x = torch.randn(4 if rank == 0 else 3, 2, 5, dtype=torch.float64)
    try:
        fn(x)
        message = "no error"
    except lossdsl.InputError as e:
        message = str(e)
    t = torch.ones(1)
    dist.all_reduce(t)
    return message if t.item() == world else "group broken"


def run_torch(port: int, out: str) -> None:
    import torch.multiprocessing as mp

    mp.spawn(torch_rank, args=(2, port, out), nprocs=2)


# ---- jax ------------------------------------------------------------------------------------


def run_jax(out: str) -> None:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import lossdsl

    mesh = jax.make_mesh((4,), ("batch",), axis_types=(AxisType.Auto,))
    results = {}
    for name in CASES:
        spec = lossdsl.load(name)
        data, rows = case_data(name), batch_inputs(spec)
        names = [i.name for i in spec.inputs if i.name in data]
        args = [jax.numpy.asarray(data[n]) for n in names]
        floats = tuple(
            k for k, a in enumerate(args) if jax.numpy.issubdtype(a.dtype, jax.numpy.floating)
        )
        specs = tuple(P("batch") if n in rows else P() for n in names)
        placed = [jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, specs)]
        full, sharded = spec.compile("jax"), spec.compile("jax", shard="B")
        err = {"value": 0.0, "grad": 0.0, "inside": 0.0, "none": 0.0}
        # under jit: eager shard_map compiles every primitive apart (minutes for this suite);
        # the first case's mean also runs eagerly
        jit = jax.jit
        for reduction in ("mean", "sum"):

            def whole(*a, r=reduction):
                return full(*a, reduction=r)

            def local(*a, r=reduction):
                return sharded(*a, reduction=r)

            f = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())
            err["value"] = max(err["value"], rel(jit(f)(*placed), jax.jit(whole)(*args)))
            want = jax.jit(jax.grad(whole, argnums=floats))(*args)
            got = jit(jax.grad(f, argnums=floats))(*placed)
            # pmap style: each device differentiates its own program inside shard_map
            inner = jax.shard_map(
                jax.grad(local, argnums=floats),
                mesh=mesh,
                in_specs=specs,
                out_specs=tuple(specs[k] for k in floats),
            )
            inner = jit(inner)(*placed)
            for key, g in (("grad", got), ("inside", inner)):
                err[key] = max(err[key], max(rel(x, w) for x, w in zip(g, want)))
            if name == CASES[0] and reduction == "mean":
                g = jax.grad(f, argnums=floats)(*placed)
                err["eager"] = max(rel(x, w) for x, w in zip(g, want))
        none_rows = none_has_rows(spec)
        f = jax.shard_map(
            lambda *a: sharded(*a, reduction="none"),
            mesh=mesh,
            in_specs=specs,
            out_specs=P("batch") if none_rows else P(),
        )
        err["none"] = rel(jit(f)(*placed), full(*args, reduction="none"))
        results[name] = err
    Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1] == "torch":
        run_torch(int(sys.argv[2]), sys.argv[3])
    else:
        run_jax(sys.argv[2])
