"""A large fuzz budget for the parser, checker and compiler (tests/test_fuzz.py runs a small one).

    python scripts/fuzz.py --seconds 600 [--seed 0]

Round-robins over the shipped specs, mutating each (tests/fuzzing.py: delete / duplicate / swap
tokens, other names, dims and numbers, stray punctuation, truncation, odd characters such as NUL,
BOM, U+2028 at random positions), plus token soup, plus the hostile families (deep nesting, long
sums and let chains, helper towers, import chains and diamonds written to a temporary folder,
many optional inputs, huge literals) at random sizes up to --max-size, plus name collisions
(every 10th input: a shipped spec with its inputs, params and dims renamed to names the emitter
generates, tests/test_names.py, must give bit-identical results). Every input must compile
on numpy, torch and jax (numpy only for hostile inputs past 30) or raise a LossError with valid
spans, within a second (hostile inputs: --hostile-seconds). Prints the counts and the slowest
input of each hostile family; exits 1 on any contract failure (and prints the input)."""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # as tests/conftest.py: float64 comparisons
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import (  # noqa: E402
    HOSTILE,
    SPECS,
    check_span,
    mutate,
    odd_bytes,
    random_text,
    run_contract,
)
from test_names import check_renaming, renamings  # noqa: E402

import lossdsl  # noqa: E402
from lossdsl.codegen import TARGETS  # noqa: E402
from lossdsl.errors import LossError  # noqa: E402


def hostile_contract(family: str, n: int) -> tuple[bool, float]:
    """Write the family's files at size n, load and compile. (compiled, CPU seconds); raises
    AssertionError (or the escaped exception) when the contract fails."""
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        path = folder / "f.loss"
        path.write_text(HOSTILE[family](n, folder))
        t0 = time.process_time()
        try:
            spec = lossdsl.load(path)
            for backend in TARGETS if n <= 30 else ("numpy",):
                spec.compile(backend)
        except LossError as e:
            for err in e.errors:
                assert err.span is not None, err.message
                check_span(err, err.span.source.text)
            return False, time.process_time() - t0
        return True, time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-size", type=int, default=3000, help="largest hostile size")
    ap.add_argument("--hostile-seconds", type=float, default=5.0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    run_contract(SPECS[0].read_text(), str(SPECS[0]))  # warm up imports
    counts: Counter = Counter()
    kinds: Counter = Counter()
    worst = (0.0, "")
    failures = []
    slow: list[tuple[float, str, str]] = []
    hostile: dict[str, tuple[float, int]] = {}
    end = time.monotonic() + a.seconds
    i = 0
    while time.monotonic() < end:
        if i % 10 == 9:  # a shipped spec alpha-renamed to the emitter's own names
            i += 1
            spec = lossdsl.load(SPECS[(i // 10) % len(SPECS)])
            try:
                (mapping,) = renamings(spec, 1, rng.randrange(2**32))
                check_renaming(spec.name, mapping)
            except Exception:
                counts["contract failures"] += 1
                failures.append((f"{spec.name} renamed", "", traceback.format_exc()))
                continue
            counts["renamings (bit-identical on 3 backends)"] += 1
            continue
        if i % 5 == 3:  # a hostile family at a random size (log-uniform up to --max-size)
            family = rng.choice(sorted(HOSTILE))
            n = max(1, int(a.max_size ** rng.random()))
            if family == "big_docstring":
                n *= 3000  # characters: up to ~10 MB
            i += 1
            try:
                ok, sec = hostile_contract(family, n)
            except Exception:
                counts["contract failures"] += 1
                failures.append((f"{family}({n})", "", traceback.format_exc()))
                continue
            counts["hostile inputs"] += 1
            counts["compiled" if ok else "rejected with LossError"] += 1
            hostile[family] = max(hostile.get(family, (0.0, 0)), (sec, n))
            if sec > a.hostile_seconds:
                counts["hostile slower than --hostile-seconds"] += 1
                slow.append((sec, f"{family}({n})", ""))
            continue
        if i % 5 == 4:
            text, name = random_text(rng), "<soup>"
        else:
            spec = SPECS[i % len(SPECS)]
            text, name = mutate(spec.read_text(), rng, rng.randint(1, 4)), str(spec)
            if i % 7 == 0:
                text = odd_bytes(text, rng)
        i += 1
        try:
            out = run_contract(text, name)
        except Exception:  # the contract failed: keep the input
            counts["contract failures"] += 1
            failures.append((name, text, traceback.format_exc()))
            continue
        counts["inputs"] += 1
        counts["compiled" if out.ok else "rejected with LossError"] += 1
        if out.error is not None:
            counts["errors reported"] += len(out.error.errors)
            counts["errors without a hint"] += sum(e.hint is None for e in out.error.errors)
            kinds.update(type(e).__name__ for e in out.error.errors)
        if out.seconds > 1.0:
            counts["slower than 1 s"] += 1
            slow.append((out.seconds, name, text))
        worst = max(worst, (out.seconds, name))
    print(f"fuzz: {i} inputs in {a.seconds:.0f} s (seed {a.seed})")
    for k in ("inputs", "hostile inputs", "renamings (bit-identical on 3 backends)",
              "compiled", "rejected with LossError",
              "errors reported", "errors without a hint", "slower than 1 s",
              "hostile slower than --hostile-seconds", "contract failures"):  # fmt: skip
        print(f"  {k}: {counts[k]}")
    for family, (sec, n) in sorted(hostile.items()):
        print(f"  slowest {family}: {sec * 1000:.0f} ms at size {n}")
    print("  error classes: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    print(f"  slowest input: {worst[0] * 1000:.0f} ms ({Path(worst[1]).name})")
    for sec, name, text in sorted(slow, reverse=True)[:3]:
        print(f"--- {sec * 1000:.0f} ms on a mutation of {name}:\n{text}")
    for name, text, tb in failures[:5]:
        print(f"--- contract failure on a mutation of {name}:\n{text}\n{tb}")
    too_slow = counts["slower than 1 s"] + counts["hostile slower than --hostile-seconds"]
    return 1 if failures or too_slow else 0


if __name__ == "__main__":
    sys.exit(main())
