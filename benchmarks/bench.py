#!/usr/bin/env python
"""lossdsl benchmark: compiled specs against the hand-written losses a user would pick instead.

Every case times forward + backward (the loss and its gradient w.r.t. the logits / features) of
the lossdsl-compiled function and of one or more references on the same inputs.  Before timing,
each reference's loss and gradient are checked against lossdsl's.  The candidates of a case are
timed round-robin (one sample of each, the starting candidate rotating every repetition), so
machine noise hits all of them alike; the table reports medians.

    PYTHONPATH=. python benchmarks/bench.py             # full run (a few minutes on 2 cores)
    PYTHONPATH=. python benchmarks/bench.py --quick     # smaller subset, fewer reps (< 1 min)
    PYTHONPATH=. python benchmarks/bench.py --only focal,kd --backend torch

Sections: torch eager, jax (jit(value_and_grad)), parse->source per shipped spec, and a check
that `import lossdsl` imports neither torch nor jax.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# the transcribed official references the tests compare specs with (tests/reference/); appended,
# so that nothing in tests/ shadows an installed module
if str(REPO / "tests") not in sys.path:
    sys.path.append(str(REPO / "tests"))

import numpy as np  # noqa: E402

import lossdsl  # noqa: E402

THREADS = 2
CLS_SHAPES = [(4096, 1000), (1024, 32000), (64, 10)]
QUICK_CLS_SHAPES = [(4096, 1000), (64, 10)]
CLS_LOSSES = ["cross_entropy", "focal", "poly1", "label_smoothing_ce", "bce_with_logits", "kd"]
OTHER_LOSSES = ["sigmoid_focal", "dice", "supcon"]
ALL_LOSSES = CLS_LOSSES + OTHER_LOSSES
TARGET_LARGE, TARGET_SMALL, TARGET_PARSE_MS = 1.1, 1.2, 20.0

GAMMA, POLY_EPS, LS_EPS, KD_T, ALPHA = 2.0, 1.0, 0.1, 4.0, 0.25
SUPCON_TEMP = 0.07


# ---- timing ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    label: str
    run: Callable[[], tuple]  # one forward+backward; returns (loss, grad), synchronized
    is_dsl: bool = False
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the interquartile range, relative to the median."""
        if len(self.samples) < 4:
            return float("nan")
        q = statistics.quantiles(self.samples, n=4)
        return (q[2] - q[0]) / 2 / self.median


@dataclass
class Case:
    backend: str
    loss: str
    shape: str
    target: float
    candidates: list[Candidate]
    status: str = ""
    note: str = ""
    reps: int = 0
    inner: int = 0
    foreign: float = float("nan")  # share of the CPUs other processes used while timing

    @property
    def dsl(self) -> Candidate:
        return next(c for c in self.candidates if c.is_dsl)

    @property
    def refs(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.is_dsl and c.samples]

    @property
    def best_ref(self) -> Candidate | None:
        refs = self.refs
        return min(refs, key=lambda c: c.median) if refs else None


@dataclass
class Budget:
    case_s: float  # wall time to spend sampling one case
    min_reps: int
    max_reps: int
    sample_s: float  # a sample repeats the call until it lasts about this long


class LoadMeter:
    """CPU time that other processes used while we measured, as a share of all cores (Linux).

    System-wide busy time from /proc/stat minus this process's own CPU time (all threads)."""

    def __init__(self) -> None:
        self.ok = Path("/proc/stat").exists()
        self.hz = os.sysconf("SC_CLK_TCK") if self.ok else 100
        self.start()

    def _busy(self) -> float:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(f) - f[3] - f[4]) / self.hz  # all but idle and iowait, in seconds

    def _own(self) -> float:
        t = os.times()
        return t.user + t.system

    def start(self) -> None:
        if self.ok:
            self.t0, self.b0, self.o0 = time.perf_counter(), self._busy(), self._own()

    def foreign(self) -> float:
        if not self.ok:
            return float("nan")
        wall = time.perf_counter() - self.t0
        other = (self._busy() - self.b0) - (self._own() - self.o0)
        return max(0.0, other) / (wall * (os.cpu_count() or 1))


def wait_quiet(max_wait_s: float, threshold: float = 0.15) -> float:
    """Sleep until other processes use less than `threshold` of the CPUs (or max_wait_s)."""
    t_end = time.perf_counter() + max_wait_s
    meter = LoadMeter()
    while True:
        meter.start()
        time.sleep(0.5)
        bg = meter.foreign()
        if not bg >= threshold or time.perf_counter() >= t_end:
            return bg


def _once(c: Candidate) -> float:
    t0 = time.perf_counter()
    c.run()
    return time.perf_counter() - t0


def time_case(case: Case, budget: Budget) -> None:
    cands = case.candidates
    for c in cands:  # warm-up (jax compiles here; torch allocator settles)
        c.run()
        c.run()
    per = [min(_once(c) for _ in range(3)) for c in cands]
    inner = max(1, math.ceil(budget.sample_s / max(min(per), 1e-7)))
    round_s = sum(per) * inner
    reps = int(budget.case_s / max(round_s, 1e-9))
    reps = max(budget.min_reps, min(budget.max_reps, reps))
    n = len(cands)
    gc.collect()
    meter = LoadMeter()
    gc.disable()
    try:
        for r in range(reps):
            for k in range(n):
                c = cands[(r + k) % n]
                t0 = time.perf_counter()
                for _ in range(inner):
                    c.run()
                c.samples.append((time.perf_counter() - t0) / inner)
    finally:
        gc.enable()
    case.reps, case.inner, case.foreign = reps, inner, meter.foreign()


def check_close(case: Case) -> None:
    """Each reference must give lossdsl's loss and gradient (float32 tolerances)."""
    v0, g0 = (np.asarray(a, dtype=np.float64) for a in case.dsl.run())
    bad = []
    for c in case.candidates:
        if c.is_dsl:
            continue
        v, g = (np.asarray(a, dtype=np.float64) for a in c.run())
        scale = max(float(np.abs(g0).max()), 1e-30)
        if not np.allclose(v, v0, rtol=2e-4, atol=1e-6):
            bad.append(f"{c.label}: loss {float(v):.7g} vs lossdsl {float(v0):.7g}")
        elif g.shape != g0.shape or not np.allclose(g, g0, rtol=1e-3, atol=1e-4 * scale):
            err = float(np.abs(g - g0).max()) / scale if g.shape == g0.shape else float("nan")
            bad.append(f"{c.label}: grad differs (max rel-to-max err {err:.2e})")
    if bad:
        case.status = "MISMATCH"
        case.note = "; ".join(bad)


# ---- inputs ---------------------------------------------------------------------------------


def np_inputs(loss: str, shape: tuple[int, ...], seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    if loss in ("cross_entropy", "focal", "poly1", "label_smoothing_ce"):
        B, C = shape
        x = (2 * rng.standard_normal((B, C))).astype(np.float32)
        return x, rng.integers(0, C, size=B)
    if loss in ("bce_with_logits", "sigmoid_focal"):
        x = (2 * rng.standard_normal(shape)).astype(np.float32)
        return x, (rng.random(shape) < 0.05).astype(np.float32)
    if loss == "kd":
        s = (2 * rng.standard_normal(shape)).astype(np.float32)
        return s, (3 * rng.standard_normal(shape)).astype(np.float32)
    if loss == "dice":
        B, C, *S = shape
        x = (2 * rng.standard_normal(shape)).astype(np.float32)
        return x, rng.integers(0, C, size=(B, *S))
    if loss == "supcon":
        B, V, D = shape
        f = rng.standard_normal(shape).astype(np.float32)
        f /= np.linalg.norm(f, axis=-1, keepdims=True)
        return f, rng.integers(0, 10, size=B)
    raise KeyError(loss)


def shapes_for(loss: str, quick: bool) -> list[tuple[int, ...]]:
    if loss in CLS_LOSSES:
        return QUICK_CLS_SHAPES if quick else CLS_SHAPES
    return {
        "sigmoid_focal": [(4096, 80)],
        "dice": [(8, 4, 128, 128)],
        "supcon": [(256, 2, 128)],
    }[loss]


def target_for(shape: tuple[int, ...]) -> float:
    return TARGET_SMALL if shape == (64, 10) else TARGET_LARGE


# ---- torch ----------------------------------------------------------------------------------


def torch_refs(loss: str) -> list[tuple[str, Callable]]:
    import torch
    import torch.nn.functional as F
    from reference.focal_softmax import focal_loss_plain
    from reference.sigmoid_focal_torchvision import sigmoid_focal_loss
    from reference.supcon_official import supcon_loss

    def focal_ref(x, y):  # on F.cross_entropy(reduction="none"), as tests/library check focal
        return focal_loss_plain(x, y, gamma=GAMMA, reduction="mean")

    def poly1_ref(x, y):
        ce = F.cross_entropy(x, y, reduction="none")
        pt = torch.exp(-ce)
        return (ce + POLY_EPS * (1 - pt)).mean()

    def sigmoid_focal_tv(x, t):  # torchvision.ops.sigmoid_focal_loss(reduction="mean")
        return sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA, reduction="mean")

    def kd_kl_div(s, t):  # mdistiller-style
        log_ps = F.log_softmax(s / KD_T, dim=1)
        pt = F.softmax(t / KD_T, dim=1)
        return F.kl_div(log_ps, pt, reduction="batchmean") * KD_T**2

    def kd_kl_div_logt(s, t):
        log_ps = F.log_softmax(s / KD_T, dim=1)
        log_pt = F.log_softmax(t / KD_T, dim=1)
        return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * KD_T**2

    def dice_hand(x, y, smooth_nr=1e-5, smooth_dr=1e-5):
        p = torch.softmax(x, dim=1)
        g = F.one_hot(y, x.shape[1]).permute(0, 3, 1, 2).to(x.dtype)
        dims = tuple(range(2, x.ndim))
        inter = (p * g).sum(dims)
        denom = p.sum(dims) + g.sum(dims)
        return (1 - (2 * inter + smooth_nr) / (denom + smooth_dr)).mean()

    def supcon_official(features, labels):  # HobbitLong/SupContrast SupConLoss, mode 'all'
        return supcon_loss(features, labels, temperature=SUPCON_TEMP, base_temperature=SUPCON_TEMP)

    refs: dict[str, list[tuple[str, Callable]]] = {
        "cross_entropy": [("F.cross_entropy", lambda x, y: F.cross_entropy(x, y))],
        "focal": [("F.cross_entropy focal", focal_ref)],
        "poly1": [("F.cross_entropy + eps(1-pt)", poly1_ref)],
        "label_smoothing_ce": [
            ("F.cross_entropy(ls=0.1)", lambda x, y: F.cross_entropy(x, y, label_smoothing=LS_EPS))
        ],
        "bce_with_logits": [("F.bce_with_logits", F.binary_cross_entropy_with_logits)],
        "sigmoid_focal": [("torchvision formula", sigmoid_focal_tv)],
        "kd": [("F.kl_div batchmean", kd_kl_div), ("F.kl_div log_target", kd_kl_div_logt)],
        "dice": [("hand-written soft dice", dice_hand)],
        "supcon": [("SupContrast official", supcon_official)],
    }
    out = list(refs[loss])
    if loss == "dice":
        try:
            from monai.losses import DiceLoss

            monai_dice = DiceLoss(softmax=True, to_onehot_y=True)
            out.append(("monai DiceLoss", lambda x, y: monai_dice(x, y.unsqueeze(1))))
        except Exception:  # monai not installed / not importable
            pass
    return out


def torch_case(loss: str, shape: tuple[int, ...]) -> Case:
    import torch

    x_np, other_np = np_inputs(loss, shape)
    x = torch.from_numpy(x_np).requires_grad_(True)
    other = torch.from_numpy(other_np)
    dsl = lossdsl.load(loss).compile("torch")

    def make(fn):
        def run():
            val = fn(x, other)
            (g,) = torch.autograd.grad(val, x)
            return val.detach(), g

        return run

    cands = [Candidate("lossdsl", make(lambda a, b: dsl(a, b, reduction="mean")), True)]
    cands += [Candidate(label, make(fn)) for label, fn in torch_refs(loss)]
    return Case("torch", loss, "x".join(map(str, shape)), target_for(shape), cands)


def validation_case(shape: tuple[int, ...]) -> Case:
    """The cost of the runtime input checks: cross_entropy as compiled (rank, dtype and size
    checks, class ids range-checked) against the same function with check_indices=False."""
    import torch

    x_np, y_np = np_inputs("cross_entropy", shape)
    x = torch.from_numpy(x_np).requires_grad_(True)
    y = torch.from_numpy(y_np)
    dsl = lossdsl.load("cross_entropy").compile("torch")

    def make(**kw):
        def run():
            val = dsl(x, y, **kw)
            (g,) = torch.autograd.grad(val, x)
            return val.detach(), g

        return run

    cands = [
        Candidate("lossdsl", make(), True),
        Candidate("check_indices=False", make(check_indices=False)),
    ]
    return Case("torch", "validation", "x".join(map(str, shape)), 1.05, cands)


# ---- jax ------------------------------------------------------------------------------------


def jax_refs(loss: str) -> list[tuple[str, Callable]]:
    import jax
    import jax.numpy as jnp
    import optax

    def ce_int(x, y):
        return optax.softmax_cross_entropy_with_integer_labels(x, y)

    def logpt(x, y):
        return jnp.take_along_axis(jax.nn.log_softmax(x, axis=-1), y[:, None], axis=-1)[:, 0]

    def focal_hand(x, y):
        ce = ce_int(x, y)
        pt = jnp.exp(-ce)
        return jnp.mean((1 - pt) ** GAMMA * ce)

    def poly1_hand(x, y):
        ce = ce_int(x, y)
        return jnp.mean(ce + POLY_EPS * (1 - jnp.exp(-ce)))

    def poly1_optax(x, y):
        oh = jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)
        return jnp.mean(optax.losses.poly_loss_cross_entropy(x, oh, epsilon=POLY_EPS))

    def ls_optax(x, y):
        oh = optax.smooth_labels(jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype), LS_EPS)
        return jnp.mean(optax.softmax_cross_entropy(x, oh))

    def ls_hand(x, y):
        logp = jax.nn.log_softmax(x, axis=-1)
        lpt = jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
        return jnp.mean(-(1 - LS_EPS) * lpt - LS_EPS * jnp.mean(logp, axis=-1))

    def sfocal_tv(x, t):
        p = jax.nn.sigmoid(x)
        ce = optax.sigmoid_binary_cross_entropy(x, t)
        p_t = p * t + (1 - p) * (1 - t)
        alpha_t = ALPHA * t + (1 - ALPHA) * (1 - t)
        return jnp.mean(alpha_t * ce * (1 - p_t) ** GAMMA)

    def kd_optax(s, t):
        q = jax.nn.softmax(jax.lax.stop_gradient(t) / KD_T, axis=-1)
        return jnp.mean(optax.kl_divergence(jax.nn.log_softmax(s / KD_T, axis=-1), q)) * KD_T**2

    def kd_hand(s, t):
        lq = jax.nn.log_softmax(jax.lax.stop_gradient(t) / KD_T, axis=-1)
        lp = jax.nn.log_softmax(s / KD_T, axis=-1)
        return jnp.mean(jnp.sum(jnp.exp(lq) * (lq - lp), axis=-1)) * KD_T**2

    def dice_hand(x, y, smooth_nr=1e-5, smooth_dr=1e-5):
        p = jax.nn.softmax(x, axis=1)
        g = jnp.moveaxis(jax.nn.one_hot(y, x.shape[1], dtype=x.dtype), -1, 1)
        dims = tuple(range(2, x.ndim))
        inter = jnp.sum(p * g, axis=dims)
        denom = jnp.sum(p, axis=dims) + jnp.sum(g, axis=dims)
        return jnp.mean(1 - (2 * inter + smooth_nr) / (denom + smooth_dr))

    def supcon_hand(features, labels, temperature=SUPCON_TEMP, base_temperature=SUPCON_TEMP):
        B, V, _ = features.shape
        f = jnp.concatenate([features[:, v] for v in range(V)], axis=0)  # [V*B, D], view-major
        lab = jnp.tile(labels, V)
        s = f @ f.T / temperature
        n = B * V
        self_mask = jnp.eye(n, dtype=bool)
        pos = (lab[:, None] == lab[None, :]) & ~self_mask
        logits = s - jax.lax.stop_gradient(jnp.max(s, axis=1, keepdims=True))
        lse = jnp.log(jnp.sum(jnp.where(self_mask, 0.0, jnp.exp(logits)), axis=1, keepdims=True))
        log_prob = logits - lse
        npos = jnp.maximum(jnp.sum(pos, axis=1), 1)
        mlpp = jnp.sum(jnp.where(pos, log_prob, 0.0), axis=1) / npos
        return jnp.mean(-(temperature / base_temperature) * mlpp)

    refs: dict[str, list[tuple[str, Callable]]] = {
        "cross_entropy": [
            ("optax ce_integer_labels", lambda x, y: jnp.mean(ce_int(x, y))),
            ("hand -logpt", lambda x, y: -jnp.mean(logpt(x, y))),
        ],
        "focal": [("optax ce focal (hand)", focal_hand)],
        "poly1": [("optax poly_loss_ce", poly1_optax), ("optax ce + eps(1-pt)", poly1_hand)],
        "label_smoothing_ce": [("optax smooth_labels+ce", ls_optax), ("hand logp form", ls_hand)],
        "bce_with_logits": [
            ("optax sigmoid_bce", lambda x, t: jnp.mean(optax.sigmoid_binary_cross_entropy(x, t)))
        ],
        "sigmoid_focal": [
            (
                "optax sigmoid_focal_loss",
                lambda x, t: jnp.mean(optax.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA)),
            ),
            ("torchvision formula (jax)", sfocal_tv),
        ],
        "kd": [("optax kl_divergence", kd_optax), ("hand log-space KL", kd_hand)],
        "dice": [("hand-written soft dice", dice_hand)],
        "supcon": [("SupContrast matrix form", supcon_hand)],
    }
    return refs[loss]


def jax_case(loss: str, shape: tuple[int, ...]) -> Case:
    import jax
    import jax.numpy as jnp

    x_np, other_np = np_inputs(loss, shape)
    x = jnp.asarray(x_np)
    other = jnp.asarray(other_np.astype(np.int32) if other_np.dtype.kind == "i" else other_np)
    dsl = lossdsl.load(loss).compile("jax")

    def make(fn):
        f = jax.jit(jax.value_and_grad(fn))

        def run():
            out = f(x, other)
            jax.block_until_ready(out)
            return out

        return run

    cands = [Candidate("lossdsl", make(lambda a, b: dsl(a, b, reduction="mean")), True)]
    cands += [Candidate(label, make(fn)) for label, fn in jax_refs(loss)]
    return Case("jax", loss, "x".join(map(str, shape)), target_for(shape), cands)


# ---- parse -> source, import check ------------------------------------------------------------


def bench_parse(reps: int) -> list[dict]:
    rows = []
    specs_dir = REPO / "specs"
    for name in lossdsl.list_specs():
        text = (specs_dir / f"{name}.loss").read_text()
        lossdsl.parse(text + "\n# warm-up\n").source("torch")  # grammar/backend load once
        times = []
        for i in range(reps):
            fresh = text + f"\n# bench {i} {time.perf_counter_ns()}\n"  # new cache key each time
            t0 = time.perf_counter()
            lossdsl.parse(fresh).source("torch")
            times.append(time.perf_counter() - t0)
        med = statistics.median(times) * 1e3
        rows.append({"spec": name, "median_ms": med, "max_ms": max(times) * 1e3, "reps": reps})
    return rows


def check_import() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = (
        "import time, sys; t = time.perf_counter(); import lossdsl; "
        "dt = time.perf_counter() - t; "
        "print('torch' in sys.modules, 'jax' in sys.modules, dt * 1e3)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return {"torch": out[0] == "True", "jax": out[1] == "True", "import_ms": float(out[2])}


# ---- report ---------------------------------------------------------------------------------

HEADER = (
    f"{'backend':<7} {'loss':<19} {'shape':<14} {'lossdsl ms':>10} {'±%':>4}  "
    f"{'reference':<27} {'ref ms':>9} {'ratio':>6} {'min-r':>6} {'target':>6} {'bg%':>4}  status"
)


def case_rows(case: Case) -> list[str]:
    d, best = case.dsl, case.best_ref
    lead = (
        f"{case.backend:<7} {case.loss:<19} {case.shape:<14} "
        f"{d.median * 1e3:>10.3f} {_pct(d.spread):>4}  "
    )
    lines = []
    for r in case.refs:
        ratio = d.median / r.median
        line = (
            f"{r.label:<27} {r.median * 1e3:>9.3f} {ratio:>6.2f} "
            f"{min(d.samples) / min(r.samples):>6.2f} "
        )
        if r is best:
            status = case.status or ("ok" if ratio <= case.target else "SLOW")
            line += f"{'<=' + format(case.target, 'g'):>6} {_pct(case.foreign):>4}  {status}"
        lines.append((lead if not lines else " " * len(lead)) + line)
    if case.note:
        lines.append(" " * 10 + "! " + case.note)
    return lines


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 100:.0f}"


def env_line() -> str:
    import importlib

    parts = [f"python {platform.python_version()}", f"{os.cpu_count()} CPU cores"]
    for mod in ("torch", "jax", "optax", "monai"):
        try:
            parts.append(f"{mod} {importlib.import_module(mod).__version__}")
        except Exception:
            parts.append(f"{mod} -")
    cpu = platform.processor() or platform.machine()
    return ", ".join(parts) + f"; torch threads {THREADS}; {cpu}"


_MALLOC_FLAG = "LOSSDSL_BENCH_STEADY_MALLOC"
_MALLOC_ENV = {
    # glibc serves blocks above the mmap threshold (32 MiB at most, adjusted at run time) with a
    # fresh mmap and unmaps them on free, so a [1024, 32000] float32 tensor (131 MB) page-faults
    # on every call and the timings become a measure of the kernel's page zeroing, with a lot of
    # noise.  Keeping freed memory in the heap makes the steady state of a training loop.
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 36),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def _reexec_with_steady_malloc() -> None:
    if platform.system() != "Linux":
        return
    env = dict(os.environ, **_MALLOC_ENV, **{_MALLOC_FLAG: "1"})
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer reps, smaller subset (< 1 minute)")
    ap.add_argument("--only", default=None, help="comma-separated losses, or parse / import")
    ap.add_argument("--backend", choices=["torch", "jax"], default=None, help="one backend only")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each case, wait up to S seconds for other processes to leave the CPUs",
    )
    ap.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's default malloc settings (large tensors then page-fault on every call)",
    )
    args = ap.parse_args(argv)
    if not args.system_malloc and argv is None and os.environ.get(_MALLOC_FLAG) != "1":
        _reexec_with_steady_malloc()

    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - set(ALL_LOSSES) - {"parse", "import", "validation"}
    if unknown:
        names = ", ".join(ALL_LOSSES + ["validation", "parse", "import"])
        ap.error(f"unknown --only name(s) {sorted(unknown)}; choose from {names}")
    losses = [n for n in ALL_LOSSES if only is None or n in only]
    backends = [args.backend] if args.backend else ["torch", "jax"]
    if args.quick:
        budget = Budget(case_s=0.3, min_reps=5, max_reps=15, sample_s=0.002)
        parse_reps = 5
    else:
        budget = Budget(case_s=4.0, min_reps=9, max_reps=60, sample_s=0.005)
        parse_reps = 15

    t_start = time.perf_counter()
    print("lossdsl benchmark: forward+backward, median of interleaved samples")
    print(env_line())
    print(
        f"targets: lossdsl/best reference <= {TARGET_LARGE}x at [4096,1000] and [1024,32000] "
        f"(applied to the other large cases too), <= {TARGET_SMALL}x at [64,10]; "
        f"parse->source <= {TARGET_PARSE_MS:.0f} ms per spec"
    )
    steady = os.environ.get(_MALLOC_FLAG) == "1"
    print(
        "malloc: "
        + (
            "steady (freed memory kept in the heap; --system-malloc to turn off)"
            if steady
            else "glibc defaults (large blocks are mmap'ed and page-fault on every call)"
        )
    )
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}; other processes' CPU share now: "
        f"{_pct(wait_quiet(0.0))}%"
    )
    print(
        "ratio = lossdsl median / reference median (the target applies to the best reference); "
        "min-r = the same with the fastest samples, less sensitive to other load; "
        "bg% = CPU share other processes used during the case (above ~10%: suspect); "
        "±% = half the interquartile range of lossdsl's samples, relative to its median\n"
    )

    cases: list[Case] = []
    for backend in backends:
        if backend == "torch":
            import torch

            torch.set_num_threads(THREADS)
            build = torch_case
        else:
            import jax

            jax.config.update("jax_platforms", "cpu")
            build = jax_case
        todo = [(loss, shape) for loss in losses for shape in shapes_for(loss, args.quick)]
        if backend == "torch" and (only is None or "validation" in only):
            todo.append(("validation", (4096, 1000)))
        if not todo:
            continue
        print(HEADER)
        print("-" * len(HEADER))
        for loss, shape in todo:
            case = validation_case(shape) if loss == "validation" else build(loss, shape)
            check_close(case)
            attempts = []  # with --wait-quiet, a case timed under other load is timed again
            for _ in range(3 if args.wait_quiet else 1):
                if args.wait_quiet:
                    wait_quiet(args.wait_quiet)
                for c in case.candidates:
                    c.samples = []
                time_case(case, budget)
                attempts.append((case.foreign, [c.samples for c in case.candidates]))
                if not case.foreign > 0.1:
                    break
            case.foreign, kept = min(attempts, key=lambda a: (math.isnan(a[0]), a[0]))
            for c, smp in zip(case.candidates, kept):
                c.samples = smp
            cases.append(case)
            for line in case_rows(case):
                print(line, flush=True)
            for c in case.candidates:
                c.run = None  # keep the samples, drop the closures (and their tensors)
            gc.collect()
        print()

    parse_rows: list[dict] = []
    if only is None or "parse" in only:
        parse_rows = bench_parse(parse_reps)
        print(f"parse -> source('torch'), fresh text each time, median of {parse_reps}:")
        for r in parse_rows:
            flag = "ok" if r["median_ms"] <= TARGET_PARSE_MS else "SLOW"
            print(f"  {r['spec']:<20} {r['median_ms']:7.2f} ms  (max {r['max_ms']:6.2f})  {flag}")
        print()

    imp = None
    if only is None or "import" in only:
        imp = check_import()
        ok = not imp["torch"] and not imp["jax"]
        print(
            f"import lossdsl: torch imported={imp['torch']}, jax imported={imp['jax']}, "
            f"{imp['import_ms']:.0f} ms cold  {'ok' if ok else 'FAIL'}\n"
        )

    over = [
        c
        for c in cases
        if c.status != "MISMATCH"
        and c.best_ref is not None
        and c.dsl.median / c.best_ref.median > c.target
    ]
    bad = [c for c in cases if c.status == "MISMATCH"]
    if cases:
        print(f"over target: {len(over)} of {len(cases)} cases")
        for c in over:
            b = c.best_ref
            print(
                f"  {c.backend} {c.loss} {c.shape}: {c.dsl.median / b.median:.2f}x {b.label} "
                f"(target {c.target})"
            )
    for c in bad:
        print(f"  MISMATCH {c.backend} {c.loss} {c.shape}: {c.note}")
    print(
        f"\ntotal wall time {time.perf_counter() - t_start:.0f} s; "
        f"load average at end: {os.getloadavg()[0]:.2f}"
    )

    if args.json:
        data = {
            "env": env_line(),
            "cases": [
                {
                    "backend": c.backend,
                    "loss": c.loss,
                    "shape": c.shape,
                    "target": c.target,
                    "status": c.status,
                    "note": c.note,
                    "reps": c.reps,
                    "inner": c.inner,
                    "foreign_cpu_share": c.foreign,
                    "candidates": {
                        x.label: {
                            "median_ms": x.median * 1e3,
                            "lossdsl": x.is_dsl,
                            "samples_ms": [s * 1e3 for s in x.samples],
                        }
                        for x in c.candidates
                    },
                }
                for c in cases
            ],
            "parse": parse_rows,
            "import": imp,
        }
        Path(args.json).write_text(json.dumps(data, indent=1))
    return 1 if bad or (imp and (imp["torch"] or imp["jax"])) else 0


if __name__ == "__main__":
    sys.exit(main())
