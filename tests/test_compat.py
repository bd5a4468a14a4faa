"""The framework API the generated code uses, against the installed torch and jax: every dotted
name (`torch.special.xlogy`, `jnp.take_along_axis`, `jax.lax.scan`) in the torch and jax modules
of every shipped spec, in their sharded forms, and in the backends' helper templates resolves,
and the set is the one recorded in tests/compat_symbols.txt. A new framework release that
removes or moves a symbol fails here (run the suite against it); a change that starts using a
new symbol fails here too, until the symbol, checked to exist in the oldest supported release
(pyproject.toml: torch >= 2.4, jax >= 0.7), is added to the file. Deprecated names with a
replacement go through a shim in the generated code (all_gather_single, torch 2.13)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from helpers import code_only

import lossdsl

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(__file__).resolve().parent / "compat_symbols.txt"
# a dotted name after a word boundary, not an attribute of something else (x.torch...)
NAME = re.compile(r"(?<![\w.])((?:torch|jnp|jax|np)(?:\.[A-Za-z_]\w*)+)")
ROOTS = {"torch": "torch", "jnp": "jax.numpy", "jax": "jax", "np": "numpy"}
# the names a shim checks with hasattr, present in some releases only
OPTIONAL = {"torch.distributed.all_gather_single", "torch.distributed.all_gather_into_tensor"}


def _resolves(dotted: str) -> bool:
    head, *rest = dotted.split(".")
    obj = importlib.import_module(ROOTS[head])
    for k, part in enumerate(rest):
        if not hasattr(obj, part):
            try:  # a submodule not imported by its package (jax.scipy.special)
                obj = importlib.import_module(".".join([ROOTS[head], *rest[: k + 1]]))
                continue
            except ImportError:
                return False
        obj = getattr(obj, part)
    return True


def _used() -> set[str]:
    texts = [(ROOT / "backends" / f).read_text() for f in ("torch_backend.py", "jax_backend.py")]
    for name in lossdsl.list_specs():
        spec = lossdsl.load(name)
        texts += [code_only(spec.source("torch")), code_only(spec.source("jax"))]
    for name in ("cross_entropy", "supcon", "dice"):  # the collectives of the sharded forms
        spec = lossdsl.load(name)
        texts += [code_only(spec.source(b, shard="B")) for b in ("torch", "jax")]
    used = {m for t in texts for m in NAME.findall(t)}
    return {u for u in used if not u.startswith("np.")} | OPTIONAL


def test_every_framework_name_the_generated_code_uses_resolves_and_is_recorded():
    used = _used()
    missing = sorted(u for u in used - OPTIONAL if not _resolves(u))
    assert not missing, f"not in the installed frameworks: {missing}"
    assert any(_resolves(u) for u in OPTIONAL)  # the shim finds one of its two names
    recorded = set(RECORD.read_text().split())
    assert used == recorded, (
        f"new: {sorted(used - recorded)}; gone: {sorted(recorded - used)} "
        "(check a new name exists in torch 2.4 / jax 0.7, then record it)"
    )
