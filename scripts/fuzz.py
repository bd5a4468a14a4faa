"""A large fuzz budget for the parser, checker and compiler (tests/test_fuzz.py runs a small one).

    python scripts/fuzz.py --seconds 600 [--seed 0]

Round-robins over the shipped specs, mutating each (tests/fuzzing.py: delete / duplicate / swap
tokens, other names, dims and numbers, stray punctuation, truncation), plus token soup. Every
input must compile on numpy, torch and jax or raise a LossError with valid spans within a
second. Prints the counts; exits 1 on any contract failure (and prints the input)."""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import SPECS, mutate, random_text, run_contract  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    run_contract(SPECS[0].read_text(), str(SPECS[0]))  # warm up imports
    counts: Counter = Counter()
    kinds: Counter = Counter()
    worst = (0.0, "")
    failures = []
    slow: list[tuple[float, str, str]] = []
    end = time.monotonic() + a.seconds
    i = 0
    while time.monotonic() < end:
        if i % 5 == 4:
            text, name = random_text(rng), "<soup>"
        else:
            spec = SPECS[i % len(SPECS)]
            text, name = mutate(spec.read_text(), rng, rng.randint(1, 4)), str(spec)
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
    for k in ("inputs", "compiled", "rejected with LossError", "errors reported",
              "errors without a hint", "slower than 1 s", "contract failures"):  # fmt: skip
        print(f"  {k}: {counts[k]}")
    print("  error classes: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    print(f"  slowest input: {worst[0] * 1000:.0f} ms ({Path(worst[1]).name})")
    for sec, name, text in sorted(slow, reverse=True)[:3]:
        print(f"--- {sec * 1000:.0f} ms on a mutation of {name}:\n{text}")
    for name, text, tb in failures[:5]:
        print(f"--- contract failure on a mutation of {name}:\n{text}\n{tb}")
    return 1 if failures or counts["slower than 1 s"] else 0


if __name__ == "__main__":
    sys.exit(main())
