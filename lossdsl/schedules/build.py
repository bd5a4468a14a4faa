"""A spec's chunked schedules as callables (`Spec.compile(schedule="chunked")`,
`Spec.compile_linear`): the refusal at compile time (`chunk_refusal`: the construct that does
not chunk), a `ChunkedLoss` or `RowBlocked` per variant and reduction, and the cached callable
that dispatches a call to them.
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING

from lossdsl import ast
from lossdsl.codegen import cache_by_target, forget_modules, forget_with
from lossdsl.compiled import CompiledLoss, _aliases, _compiled, _from_python, _runtime_checks
from lossdsl.errors import (
    ArityError,
    DuplicateDefinition,
    InputError,
    LossError,
    ParamError,
    UnknownName,
    did_you_mean,
)
from lossdsl.programs import _SPECS, _check_backend, _key, _optimized, zero_params

if TYPE_CHECKING:
    from lossdsl.compiler import Spec


def _chunked(spec: Spec, backend: str, chunk: int, baked: tuple, linear: bool, rows=None):
    """The chunked schedule of a spec (lossdsl/schedules/). Cached like `_compiled`, by
    (spec, backend, chunk, rows, baked params); refused here, at compile time, when some
    variant has no chunk plan (lossdsl/schedules/plan.py: ChunkError names the construct)."""
    if _check_backend(backend) == "numpy":
        raise UnknownName(
            "the numpy reference has no chunked schedule",
            None,
            "torch or jax (lossdsl.schedules.plan.evaluate_chunked runs a chunk plan on numpy)",
        )
    for what, n in (("chunk", chunk), ("rows", 1 if rows is None else rows)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ParamError(f"{what} must be a positive int, got {n!r}", None, f"e.g. {what}=8192")
    return _chunked_cached(_key(spec), backend, chunk, baked, linear, rows)


def chunk_refusal(spec: Spec, rows: bool = False, **baked) -> LossError | None:
    """Why `spec` has no chunked schedule (the first variant's ChunkError), or None: every
    combination of absent optional inputs chunks its first input's last dim, for the sum and
    the mean. rows=True: the row-blocked schedule (compile_linear(rows=R)) along its first.
    `baked` as compile's: choice params take their defaults unless given (a choice is always
    fixed when a spec compiles, and one word may chunk where another does not)."""
    from lossdsl.programs import _baked_key
    from lossdsl.schedules.plan import ChunkError, plan
    from lossdsl.schedules.rowplan import row_plan

    logits = spec.inputs[0].name
    key = _baked_key(spec, baked)
    for absent in spec.variants():
        for reduction in ("sum", "mean"):
            try:
                (row_plan if rows else plan)(_optimized(spec, absent, key), logits, reduction)
            except ChunkError as e:
                return e
    return None


LINEAR_NAMES = ("h", "W", "bias")  # compile_linear's own arguments
CHUNKED_CACHE = 64  # chunked compiles kept (each holds a few generated modules per variant)


@cache_by_target
@functools.lru_cache(maxsize=CHUNKED_CACHE)
def _chunked_cached(spec_key, backend, chunk, baked, linear, rows):
    from lossdsl.schedules.plan import ChunkError
    from lossdsl.schedules.rows import RowBlocked
    from lossdsl.schedules.subfunctions import Modules
    from lossdsl.schedules.vsliced import ChunkedLoss

    spec = _SPECS[spec_key]
    logits = spec.inputs[0].name
    rest = [i.name for i in spec.inputs[1:]]
    # the fused function takes h, W (and the keyword bias) in place of the logits
    params_ = [st for st in spec.loss.body if isinstance(st, ast.Param)]
    own = [(i, "input") for i in spec.loss.inputs[1:]] + [(q, "param") for q in params_]
    for node, what in own if linear else ():
        if node.name in LINEAR_NAMES:
            raise DuplicateDefinition(
                f"{what} '{node.name}' is named like compile_linear's own '{node.name}' "
                "(the hidden states h, the weight W and the bias replace the logits)",
                node.name_span or node.span,
                f"rename the {what} '{node.name}'",
            )
    optional = {i.name for i in spec.inputs if i.optional}
    bake_d = dict(baked)
    free = {p.name: p.default for p in spec.params if p.name not in bake_d}
    mods = Modules(backend)
    plans: dict = {}
    back = _aliases(spec, baked)
    # row blocks run each block's loss as the plain schedule would: with the variants for
    # params at 0 (label_smoothing=0: no [rows, V] smoothing term), picked per call as the
    # generated dispatcher picks them (a Python number equal to 0)
    zeros = zero_params(spec, baked) if rows is not None else ()
    combos = [z for k in range(1, len(zeros) + 1) for z in itertools.combinations(zeros, k)]
    # every variant and reduction planned (and its code generated) now: a loss that does not
    # chunk is refused at compile time, with the construct that prevents it
    for absent in spec.variants():
        prog = _optimized(spec, absent, baked)
        for reduction in ("sum", "mean"):
            try:
                if rows is not None:
                    plans[absent, reduction] = RowBlocked(prog, logits, reduction, rows, mods)
                else:
                    plans[absent, reduction] = ChunkedLoss(prog, logits, reduction, chunk, mods)
            except ChunkError as e:
                forget_modules(tuple(mods.names))
                if absent:
                    e.message += f" (when {', '.join(sorted(absent))} is not passed)"
                raise e from None
            for z in combos:
                with_z = tuple(sorted({**bake_d, **{n: 0.0 for n in z}}.items()))
                zprog = _optimized(spec, absent, with_z)
                try:
                    plans[absent, reduction, z] = RowBlocked(zprog, logits, reduction, rows, mods)
                except ChunkError:
                    pass  # the general variant serves

    def loss_fn(*args, reduction=None, **kwargs):
        bias = kwargs.pop("bias", None) if linear else None
        kwargs = _from_python(kwargs, back)
        names = (["h", "W"] if linear else [logits]) + rest
        given = dict(zip(names, args))
        given.update({k: kwargs.pop(k) for k in list(kwargs) if k in names})
        bad = [k for k in kwargs if k not in free]
        if bad or len(args) > len(names):
            raise ArityError(
                f"{loss_fn.__name__}() got unexpected argument {bad[0] if bad else len(args)}",
                None,
                did_you_mean(bad[0], list(free) + names) if bad else f"inputs: {', '.join(names)}",
            )
        missing = [n for n in names if n not in given and n not in optional]
        if missing:
            raise ArityError(f"{loss_fn.__name__}() is missing input '{missing[0]}'")
        reduction = reduction or spec.default_reduction
        if reduction not in ("sum", "mean"):
            raise ParamError(
                f"{spec.name}: the chunked schedule reduces over the batch (sum or mean), "
                f"got reduction={reduction!r}",
                None,
                "use the plain schedule for reduction='none'",
            )
        absent = frozenset(k for k in optional if given.get(k) is None)
        params = {**free, **kwargs}
        _runtime_checks(spec, _optimized(spec, absent, baked), params)
        inputs = {k: v for k, v in given.items() if k in rest and v is not None}
        run = plans[absent, reduction]
        if bias is not None and tuple(bias.shape) != tuple(given["W"].shape[:1]):
            raise InputError(
                f"{loss_fn.__name__}(): bias has shape {tuple(bias.shape)}, W has "
                f"{given['W'].shape[0]} rows (logits = h @ W.T + bias)",
                None,
                f"pass a bias of shape ({given['W'].shape[0]},)",
            )
        empty = (
            0 in tuple(given["h"].shape[:-1]) + tuple(given["W"].shape[:1])
            if linear
            else 0 in tuple(given[logits].shape)
        )
        if empty or any(0 in tuple(getattr(v, "shape", ())) for v in inputs.values()):
            # an empty dim: the plain schedule's declared values (README, "Edge cases"), on the
            # logits (h @ W.T holds no memory when they are empty); gradients reach every
            # input as zeros. The slices would see no V at all (no statistic to combine).
            plain = _compiled(spec, backend, baked)
            x = given["h"] @ given["W"].T if linear else given[logits]
            x = x if bias is None else x + bias
            return plain(x, **inputs, **kwargs, reduction=reduction)
        if rows is not None:
            z = tuple(n for n in zeros if type(params[n]) in (int, float) and params[n] == 0)
            run = plans.get((absent, reduction, z), run)
            return run(inputs, params, given["h"], given["W"], bias)
        if linear:
            return run(inputs, params, linear=(given["h"], given["W"], bias))
        return run({**inputs, logits: given[logits]}, params)

    loss_fn.__name__ = f"{spec.name}_chunked" + ("_linear" if linear else "")
    # its generated modules (and their linecache sources) go once nobody holds loss_fn
    forget_with(loss_fn, tuple(mods.names))
    loss_fn.__doc__ = spec.doc
    recipe = ("chunked", backend, baked, chunk, linear, rows)
    return CompiledLoss(loss_fn, spec, recipe, guard=False)
