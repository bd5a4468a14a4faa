"""Every shipped spec on the jax (and numpy) installed in this interpreter, without torch:
values against the float64 numpy reference, under jax.jit and through lossdsl.jax.Loss, and
gradients against those another jax computed. For a newer Python/jax than the test suite's
(e.g. a Python 3.13 venv with jax 0.12 and no torch):

    PYTHONPATH=. python scripts/newest_jax.py --save /tmp/grads.npz          # suite's jax
    PYTHONPATH=. venv313/bin/python scripts/newest_jax.py --against /tmp/grads.npz

Prints one line per failing spec and a summary; exit status 1 if any failed."""

from __future__ import annotations

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import lossdsl  # noqa: E402
import lossdsl.jax  # noqa: E402
from lossdsl.equiv import SIZES, call, float_inputs, grads, random_inputs  # noqa: E402


def check(name: str, saved: dict, against) -> None:
    spec = lossdsl.load(name)
    data = random_inputs(spec, SIZES, np.random.default_rng(0))
    fn, ref = spec.compile("jax"), spec.compile("numpy")
    want = call("numpy", ref, data, "float64")
    np.testing.assert_allclose(call("jax", fn, data, "float64"), want, rtol=1e-7, atol=1e-9)
    if not spec.fns:
        args = [data[i.name] for i in spec.inputs if i.name in data]
        if len(args) == len(data):
            got = np.asarray(jax.jit(lambda *a: fn(*a))(*args))
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9, err_msg="jit")
        got = call("jax", lossdsl.jax.Loss(name), data, "float64")
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9, err_msg="Loss")
    wrt = [k for k in float_inputs(spec) if k in data]
    if wrt:
        g = grads("jax", fn, data, wrt, "float64", reduction="mean")
        for k in wrt:
            saved[f"{name}/{k}"] = g[k]
            if against is not None:
                np.testing.assert_allclose(
                    g[k], against[f"{name}/{k}"], rtol=1e-9, atol=1e-12, err_msg=f"grad {k}"
                )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--save")
    ap.add_argument("--against")
    a = ap.parse_args()
    against = dict(np.load(a.against)) if a.against else None
    t0 = time.perf_counter()
    bad, saved = [], {}
    names = a.specs or lossdsl.list_specs()
    for name in names:
        try:
            check(name, saved, against)
        except Exception as e:  # noqa: BLE001 - a report, not a test
            bad.append(name)
            print(f"{name}: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
    if a.save:
        np.savez(a.save, **saved)
    print(
        f"python {sys.version.split()[0]}, jax {jax.__version__}: {len(names) - len(bad)} of "
        f"{len(names)} specs agree (values with numpy, jit, Loss"
        f"{', gradients with ' + a.against if a.against else ''}) in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
