#!/usr/bin/env python
"""Large-vocabulary benchmark (issue 5): peak memory and time of forward + backward (gradients
w.r.t. h and W) at N=2048, V=131072, D=512 float32 on CPU, for

  plain     F.cross_entropy(h @ W.T, y)                     (the hand-written baseline)
  unfused   lossdsl's compiled spec on the materialized h @ W.T
  chunked   lossdsl's compile_linear(chunk=8192): V-slices, backward recomputes each slice
  rows      lossdsl's compile_linear(rows=128): blocks of batch rows over the whole V, each
            block's gradient taken at once (no recomputation); jax's at rows=128 and 256

Each candidate runs in a fresh process. Peak memory, torch: after one full-size call, the
kernel's RSS high-water mark is reset and the next call's peak RSS above the RSS before it is
taken (the gradients it returns included). jax: XLA's buffer plan for the jitted step
(temporaries + outputs, `compiled.memory_analysis()`; jax's allocator keeps what it once held,
so RSS after the first call shows nothing, and the first call's RSS includes XLA compiling).
Time = median of 3 further calls. Values and gradients of the fused runs are checked against
the plain ones (relative 1e-5).

    PYTHONPATH=. python benchmarks/bench_chunked.py [--spec focal] [--n 2048 --v 131072 --d 512]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_of(step):
    """(result, peak RSS in KiB above the RSS before the call) of one call. The kernel's
    high-water mark is reset first (Linux: 5 > /proc/self/clear_refs), so what an earlier
    call or jax's compilation touched does not count."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _rss_kib()
    res = step()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return res, hwm - base


def child_jax(kind: str, spec: str, n: int, v: int, d: int, rows: int, label: str) -> dict:
    """jax (CPU): jit(value_and_grad) of the compiled spec on h @ W.T, or of the row-blocked
    linear-fused schedule."""
    import jax
    import jax.numpy as jnp

    import lossdsl

    jax.config.update("jax_platforms", "cpu")
    s = lossdsl.load(spec)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    h = jax.random.normal(k1, (n, d), jnp.float32) / d**0.5
    w = jax.random.normal(k2, (v, d), jnp.float32) / d**0.5
    y = jax.random.randint(k3, (n,), 0, v)
    if kind == "jax-plain":
        plain = s.compile("jax")
        f = lambda h, w, y: plain(h @ w.T, y)  # noqa: E731
    else:
        fused = s.compile_linear("jax", rows=rows)
        f = lambda h, w, y: fused(h, w, y)  # noqa: E731
    step = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
    jax.block_until_ready(step(h[:2], w[:64], y[:2] % 64))  # warm up the tracing machinery
    # jax's CPU allocator keeps what it once held, so a second call's RSS shows nothing: the
    # peak is XLA's buffer plan (temporaries + outputs), and the first call's RSS (which
    # includes XLA compiling the step) is reported beside it
    mem = step.lower(h, w, y).compile().memory_analysis()
    peak = (mem.temp_size_in_bytes + mem.output_size_in_bytes) / 1024
    res, first = _peak_of(lambda: jax.block_until_ready(step(h, w, y)))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = jax.block_until_ready(step(h, w, y))
        times.append(time.perf_counter() - t0)
    import numpy as np

    np.save(f"/tmp/lossdsl_bench_chunked_{label}.npy", np.concatenate(
        [np.ravel(np.asarray(res[0]))] + [np.ravel(np.asarray(g)) for g in res[1]]))  # fmt: skip
    return {"kind": kind, "peak_mib": peak / 1024, "ms": 1000 * statistics.median(times),
            "first_call_rss_mib": first / 1024}  # fmt: skip


def child(kind: str, spec: str, n: int, v: int, d: int, chunk: int, rows: int, label: str):
    if kind.startswith("jax"):
        return child_jax(kind, spec, n, v, d, rows, label)
    import torch

    import lossdsl

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    h = (torch.randn(n, d, generator=g) / d**0.5).requires_grad_(True)
    w = (torch.randn(v, d, generator=g) / d**0.5).requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=g)
    s = lossdsl.load(spec)
    if kind == "plain":
        if spec == "cross_entropy":
            fn = lambda: torch.nn.functional.cross_entropy(h @ w.T, y)  # noqa: E731
        else:
            plain = s.compile("torch")
            fn = lambda: plain(h @ w.T, y)  # noqa: E731
    elif kind == "unfused":
        compiled = s.compile("torch")
        fn = lambda: compiled(h @ w.T, y)  # noqa: E731
    elif kind == "rows":
        blocked = s.compile_linear("torch", rows=rows)
        fn = lambda: blocked(h, w, y)  # noqa: E731
    else:
        fused = s.compile_linear("torch", chunk=chunk)
        fn = lambda: fused(h, w, y)  # noqa: E731

    def step():
        out = fn()
        gh, gw = torch.autograd.grad(out, [h, w])
        return out.detach(), gh, gw

    # warm up on a tiny problem (code generation, first-call allocations), then measure
    full = (h, w, y)
    h, w, y = h[:2].detach().requires_grad_(True), w[:64].detach().requires_grad_(True), y[:2] % 64
    step()
    h, w, y = full
    step()  # and one full-size call, as jax's (its first call compiles)
    (out, gh, gw), peak = _peak_of(step)
    del gh, gw
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = step()
        times.append(time.perf_counter() - t0)
    torch.save([t.clone() for t in res], f"/tmp/lossdsl_bench_chunked_{label}.pt")
    return {"kind": kind, "peak_mib": peak / 1024, "ms": 1000 * statistics.median(times)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="cross_entropy")
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--v", type=int, default=131072)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--rows", type=int, default=128, help="torch's row blocks")
    ap.add_argument("--jax-rows", default="128,256", help="jax's row blocks (each a run)")
    ap.add_argument("--child", default=None)
    ap.add_argument("--label", default=None)
    a = ap.parse_args()
    if a.child:
        res = child(a.child, a.spec, a.n, a.v, a.d, a.chunk, a.rows, a.label or a.child)
        print(json.dumps(res))
        return 0
    runs = [("plain", "plain", 0), ("unfused", "unfused", 0), ("chunked", "chunked", 0)]
    runs += [(f"rows={a.rows}", "rows", a.rows), ("jax-plain", "jax-plain", 0)]
    runs += [(f"jax-rows={r}", "jax-rows", int(r)) for r in a.jax_rows.split(",")]
    rows = {}
    for label, kind, r in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--label", label, "--spec", a.spec,
             "--n", str(a.n), "--v", str(a.v), "--d", str(a.d), "--chunk", str(a.chunk),
             "--rows", str(r)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[label] = json.loads(out.stdout.strip().splitlines()[-1])
    import numpy as np
    import torch

    ref = torch.load("/tmp/lossdsl_bench_chunked_plain.pt")
    jref = np.load("/tmp/lossdsl_bench_chunked_jax-plain.npy")
    errs = {}
    for label, kind, _ in runs:
        if kind in ("chunked", "rows"):
            got = torch.load(f"/tmp/lossdsl_bench_chunked_{label}.pt")
            errs[label] = max(float((x - r).abs().max() / r.abs().max()) for x, r in zip(got, ref))
        elif kind == "jax-rows":
            got = np.load(f"/tmp/lossdsl_bench_chunked_{label}.npy")
            errs[label] = float(np.max(np.abs(got - jref)) / np.max(np.abs(jref)))
    print(f"{a.spec}: N={a.n} V={a.v} D={a.d} float32, chunk={a.chunk}, forward+backward (CPU)")
    p = rows["plain"]
    for label, r in rows.items():
        if label == "jax-plain":
            p = r  # the jax runs compare with jax's own plain run
        print(
            f"  {label:<13} peak {r['peak_mib']:8.0f} MiB ({r['peak_mib'] / p['peak_mib']:5.2f}x)"
            f"   time {r['ms']:8.0f} ms ({r['ms'] / p['ms']:4.2f}x)"
            + (
                f"   (XLA plan; first call's RSS, compiling included: "
                f"{r['first_call_rss_mib']:.0f} MiB)"
                if "first_call_rss_mib" in r
                else ""
            )
        )
    for label, err in errs.items():
        r = rows[label]
        p = rows["jax-plain" if label.startswith("jax") else "plain"]
        ok = r["peak_mib"] <= 0.25 * p["peak_mib"] and r["ms"] <= 1.3 * p["ms"]
        print(
            f"  {label}: max relative difference of loss and gradients to plain {err:.1e}; "
            f"targets (peak <= 25%, time <= 1.3x) {'met' if ok else 'NOT met'}"
        )
    return 0 if max(errs.values()) < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
