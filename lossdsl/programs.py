"""A spec's programs, cached: the cache keys (the texts of the spec and of every file it
imports), params baked in as literals, the optimized program of each variant (absent optional
inputs; params worth a specialization at 0), the sharded program, and the generated source of
a backend's module. lossdsl/compiler.py's `Spec` methods and both schedules' callables
(lossdsl/compiled.py, lossdsl/schedules/build.py) read their programs from here.
"""

from __future__ import annotations

import functools
import itertools
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING

from lossdsl import constraints
from lossdsl.codegen import cache_by_target, load_backend, module_source, registered
from lossdsl.errors import LimitError, LossError, ParamError, UnknownName, did_you_mean
from lossdsl.ir import Lit, Program, Var, param_dims, verify
from lossdsl.lower import check_param_value
from lossdsl.passes import run_pipeline
from lossdsl.passes.cleanup import dce
from lossdsl.passes.library import library
from lossdsl.passes.simplify import fold, simplify
from lossdsl.shard import shard

if TYPE_CHECKING:
    from lossdsl.compiler import Spec


def _check_backend(backend: str) -> str:
    known = registered()  # lossdsl/codegen/targets.py
    if backend not in known:
        raise UnknownName(
            f"unknown backend '{backend}'",
            None,
            did_you_mean(backend, known) or f"backends: {', '.join(known)}",
        )
    return backend


def _baked_key(spec: Spec, baked: dict) -> tuple:
    """Validate compile-time params; a sorted tuple so it can key the caches."""
    known = {p.name: p for p in spec.params}
    for k, v in baked.items():
        if k == "reduction":
            raise ParamError(
                "reduction is chosen per call, not at compile time",
                None,
                f"call fn(..., reduction={v!r})",
            )
        if k not in known:
            raise ParamError(
                f"{spec.name} has no param '{k}'",
                None,
                did_you_mean(k, known) or f"params: {', '.join(known) or 'none'}",
            )
        if known[k].choices:
            continue
        check_param_value(k, known[k].dtype, v)
    out = {k: v for k, v in baked.items() if not known[k].choices}
    # a choice param is always fixed when the spec compiles: its word (the default when not
    # given; bake() takes the word's index), a word so that a pickled recipe compiles again
    for p in spec.params:
        if p.choices:
            word = baked.get(p.name, p.default)
            if not isinstance(word, str) or word not in p.choices:
                raise ParamError(
                    f"param '{p.name}' is one of {p.declared}, got {word!r}",
                    None,
                    did_you_mean(str(word), p.choices) or f"e.g. {p.name}={p.choices[0]!r}",
                )
            out[p.name] = word
    return tuple(sorted(out.items()))


def bake(prog: Program, values: dict) -> Program:
    """Replace params by literals. Constraints that become constant are checked now."""
    if not values:
        return prog
    choices = {q.var.name: q.choices for q in prog.params if q.choices}
    values = {k: choices[k].index(v) if k in choices else v for k, v in values.items()}
    sub = {
        q.var.name: Lit(v if q.var.type.dtype != "float" else float(v), q.var.type)
        for q in prog.params
        for k, v in values.items()
        if q.var.name == k
    }

    def s(a):
        return sub.get(a.name, a) if hasattr(a, "name") else a

    eqns = tuple(replace(e, args=tuple(s(a) for a in e.args)) for e in prog.eqns)
    checks = []
    for c in prog.checks:
        c2 = replace(c, eqns=tuple(replace(e, args=tuple(s(a) for a in e.args)) for e in c.eqns))
        ok = constraints.evaluate(c2, {})
        if ok is None:
            checks.append(c2)
        elif not ok:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ParamError(
                f"param value violates `{c.text}`: {shown}", c.span, "change the value"
            )
    params = tuple(q for q in prog.params if q.var.name not in sub)
    outputs = tuple((m, s(a)) for m, a in prog.outputs)
    sized = [(k, int(sub[k].value)) for k in param_dims(prog) if k in sub]  # split(x, k, ..)
    return replace(
        prog,
        eqns=eqns,
        params=params,
        checks=tuple(checks),
        outputs=outputs,
        dim_values=prog.dim_values + tuple(sized),
    )


@functools.lru_cache(maxsize=512)
def _optimized_cached(spec_key, absent, baked) -> Program:
    spec = _SPECS[spec_key]
    # dead lets go first: every pass is linear in the equations (8000 unused lets: 0.6 s)
    return verify(run_pipeline(dce(bake(spec._lowered(absent), dict(baked)))))


# The specs behind the cache keys, while someone holds them (the caches key on the texts).
_SPECS: weakref.WeakValueDictionary[tuple, Spec] = weakref.WeakValueDictionary()


def _key(spec: Spec) -> tuple:
    # The texts of the imported files too: an edited import must not hit the old entry.
    k = (spec.text, spec.filename, spec.resolved.files)
    # the caller's spec, which it holds through this call (setdefault kept an earlier equal
    # spec, which the garbage collector could take before the cached function looked it up)
    _SPECS[k] = spec
    return k


def _optimized(spec: Spec, absent, baked) -> Program:
    return _optimized_cached(_key(spec), absent, baked)


MAX_ZERO_SPECIALIZED = 2


def _work(prog: Program) -> int:
    """Equations that touch tensors bigger than the per-element loss (a [B, C] log-softmax
    for a [B] loss): what a zero-specialization must save to be worth a variant."""
    rank = len(prog.output("none").type.dims)
    big = lambda a: isinstance(a, Var) and len(a.type.dims) > rank  # noqa: E731
    return sum(1 for e in prog.eqns if big(e.out) or any(big(a) for a in e.args))


def _estimate(spec: Spec, baked: tuple) -> Program:
    return dce(simplify(fold(dce(bake(spec._lowered(frozenset()), dict(baked))))))


def zero_params(spec: Spec, baked: tuple) -> tuple[str, ...]:
    """Float params worth a specialized variant at value 0: those whose term disappears
    (label_smoothing=0 computes no smoothing term, gamma=0 makes focal plain CE). Traced or
    nonzero values take the general variant, so this is invisible except in speed."""
    # The estimate runs the cheap passes only (fold, simplify, dce): a term that a zero param
    # deletes is gone after them, and the full pipeline runs only for the chosen variants.
    full = _estimate(spec, baked)
    done = dict(baked)
    gains = []
    for p in spec.params:
        if p.dtype != "float" or p.name in done:
            continue
        try:
            with_zero = _estimate(spec, tuple(sorted({**done, p.name: 0.0}.items())))
        except LossError:
            continue  # 0 violates the param's constraint
        saved = _work(full) - _work(with_zero)
        if saved > 0:
            gains.append((-saved, p.name))
    return tuple(sorted(name for _, name in sorted(gains)[:MAX_ZERO_SPECIALIZED]))


# Spec.source() (a standalone module) still enumerates them all: up to this many.
MAX_SOURCE_OPTIONAL = 8


def variant_programs(spec: Spec, baked: tuple, only=None) -> list[Program]:
    """One optimized program per (absent optional inputs, zero-valued params) combination,
    the most specialized first within each set of absent inputs (`only`: one set)."""
    zeros = zero_params(spec, baked)
    out = []
    for absent in spec.variants() if only is None else [only]:
        for k in range(len(zeros), -1, -1):
            for z in itertools.combinations(zeros, k):
                with_z = tuple(sorted({**dict(baked), **{n: 0.0 for n in z}}.items()))
                out.append(replace(_optimized(spec, absent, with_z), zeros=z))
    return out


@functools.lru_cache(maxsize=512)
def _sharded_cached(spec_key, absent, baked, dim) -> Program:
    return shard(_optimized_cached(spec_key, absent, baked), dim, _input_spans(_SPECS[spec_key]))


def _input_spans(spec: Spec) -> dict:
    """Where each input is declared: the shard transform's errors about inputs point there."""
    return {i.name: i.span for i in spec.loss.inputs}


@cache_by_target
@functools.lru_cache(maxsize=512)
def _source_cached(spec_key, backend, baked, dim=None, only=None) -> str:
    spec = _SPECS[spec_key]
    n_opt = sum(i.optional for i in spec.inputs)
    if only is None and n_opt > MAX_SOURCE_OPTIONAL:
        raise LimitError(
            f"a standalone module of {spec.name} would hold 2^{n_opt} functions, one per "
            f"combination of its {n_opt} optional inputs (limit {MAX_SOURCE_OPTIONAL} inputs)",
            spec.loss.name_span,
            "compile() builds only the combinations that are called",
        )
    progs = variant_programs(spec, baked, only)
    target = load_backend(backend).TARGET
    if dim is not None:
        progs = [shard(p, dim, _input_spans(spec)) for p in progs]
    if target.library_calls:  # after shard: it splits the primitives' sums
        progs = [verify(library(p)) for p in progs]
    return module_source(target, progs, spec.doc)


def _source(spec: Spec, backend: str, baked, dim=None) -> str:
    return _source_cached(_key(spec), backend, baked, dim)
