"""Every shipped spec on the jax (and numpy) installed in this interpreter, without torch:
values against the float64 numpy reference, gradients against central finite differences of
the reference, under jax.jit, and lossdsl.jax.Loss. Run it with a newer Python/jax than the
test suite's (e.g. a Python 3.13 venv with jax 0.12, no torch):
    PYTHONPATH=. python scripts/newest_jax.py
Prints one line per failing spec and a summary; exit status 1 if any failed."""

from __future__ import annotations

import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import lossdsl  # noqa: E402
import lossdsl.jax  # noqa: E402
from lossdsl.equiv import (  # noqa: E402
    SIZES,
    call,
    fd_directional,
    fd_grads,
    float_inputs,
    grads,
    random_inputs,
    rel_err,
)


def main() -> int:
    t0 = time.perf_counter()
    bad, checked = [], 0
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        try:
            data = random_inputs(spec, SIZES, np.random.default_rng(0))
            fn, ref = spec.compile("jax"), spec.compile("numpy")
            want = call("numpy", ref, data, "float64")
            got = call("jax", fn, data, "float64")
            jitted = jax.jit(lambda *a, fn=fn: fn(*a))
            args = [data[i.name] for i in spec.inputs if i.name in data]
            if len(args) == len(data) and not spec.fns:
                np.testing.assert_allclose(np.asarray(jitted(*args)), want, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
            wrt = float_inputs(spec)
            wrt = [k for k in wrt if k in data]
            if wrt:
                g = grads("jax", fn, data, wrt, "float64", reduction="mean")
                if sum(np.size(data[k]) for k in wrt) <= 64:  # per entry
                    fd = fd_grads(spec, frozenset(), data, wrt)
                    err = max(rel_err(g[k], fd[k]) for k in wrt)
                else:  # along a random direction (tests/test_specs.py does three)
                    v = {
                        k: np.random.default_rng(1).standard_normal(np.shape(data[k])) for k in wrt
                    }
                    want_d = fd_directional(spec, frozenset(), data, v)
                    got_d = sum(float(np.sum(g[k] * v[k])) for k in wrt)
                    err = abs(got_d - want_d) / max(1.0, abs(want_d))
                if err > 1e-5:
                    raise AssertionError(f"gradient: rel err {err:.2e}")
            if not spec.fns:
                mod = lossdsl.jax.Loss(name)
                np.testing.assert_allclose(
                    call("jax", mod, data, "float64"), want, rtol=1e-7, atol=1e-9
                )
            checked += 1
        except Exception as e:  # noqa: BLE001 - a report, not a test
            bad.append(name)
            print(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    print(
        f"python {sys.version.split()[0]}, jax {jax.__version__}: {checked} specs agree "
        f"(values, gradients, jit, Loss), {len(bad)} do not, in {time.perf_counter() - t0:.0f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
