"""Differential fuzzing with any budget (tests/test_difffuzz.py runs a small one in CI).

    OMP_NUM_THREADS=1 python scripts/difffuzz.py --seconds 1200 --seed 7 [--out difffuzz_out]
    python scripts/difffuzz.py --replay difffuzz_out/value_torch.pkl  # one failure again

Random well-typed losses (tests/difffuzz.py: generator, independent evaluator, oracle) run on
numpy, torch and jax, the chunked and linear-fused schedules, with params in every form, extreme
inputs, gradients and risky renamings. Prints counts per failure class (known ones, from
difffuzz.KNOWN_BUGS, marked xfail) and writes one shrunk failing source per class to --out.
Exits 1 on any failure not in the xfail list."""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
import warnings
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import difffuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=None, help="stop after this many programs")
    ap.add_argument("--out", default="difffuzz_out", help="folder for shrunk failing sources")
    ap.add_argument("--no-minimize", action="store_true")
    ap.add_argument("--replay", help="a .pkl that --out wrote: run that program's checks again")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    if a.replay:
        prog, sub = pickle.loads(Path(a.replay).read_bytes())
        r = difffuzz.Runner(a.seed)
        fs = r.check(prog, sub)
        for f in fs:
            print(difffuzz.describe(f))
        print(f"{len(fs)} failures")
        return 1 if fs else 0
    r = difffuzz.Runner(a.seed)
    r.run(a.seconds, max_cases=a.cases, minimize_new=not a.no_minimize)
    print(f"difffuzz: {a.seconds:.0f} s, seed {a.seed}")
    print(difffuzz.report(r))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    new = 0
    for key, fs in sorted(r.failures.items()):
        f = r.minimal.get(key) or fs[0]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:90] + ".loss"
        (out / name).write_text(difffuzz.describe(f))
        if f.replay is not None:  # (--replay runs it again)
            (out / name).with_suffix(".pkl").write_bytes(pickle.dumps(f.replay))
        tag = "XFAIL" if "[xfail" in key else "FAIL"
        new += tag == "FAIL"
        print(f"{tag} {key}: {len(fs)} (example: {out / name})")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
