"""The pipeline, readable top to bottom:

    text --parse--> AST --check/resolve--> losses in scope --lower--> IR --verify--> passes
         --bake params--> IR --backend--> Python source --exec--> callable

`Spec` is what `lossdsl.load` and `lossdsl.parse` return: a checked spec that can print its IR,
generate source for a backend, and compile (cached) to a callable. The work behind its methods
lives by concern: lossdsl/programs.py (cache keys, baked params, the optimized, sharded and
zero-specialized variants, generated source), lossdsl/compiled.py (the plain schedule's
callable, `CompiledLoss`, pickling) and lossdsl/schedules/build.py (the chunked schedules'
callables, `chunk_refusal`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lossdsl import ast
from lossdsl.codegen import load_backend
from lossdsl.compiled import CompiledLoss, _compiled
from lossdsl.errors import LossError, ParamError, UnknownName, did_you_mean, raise_all
from lossdsl.ir import Program, format_program, verify
from lossdsl.lower import Budget, _coerce, const_eval, lower_loss
from lossdsl.parser import parse_module, read_source
from lossdsl.passes import PASS_NAMES, run_pipeline
from lossdsl.passes.library import library
from lossdsl.programs import (
    _baked_key,
    _check_backend,
    _key,
    _optimized,
    _sharded_cached,
    _source,
    bake,
)
from lossdsl.resolve import Resolved, resolve, shipped_spec_names, shipped_specs_dir
from lossdsl.schedules.build import _chunked
from lossdsl.source import deep_recursion

# Re-exported (`as` marks it): tests, the CLI and lossdsl.docs import them from here, and a
# loss pickled before the split names lossdsl.compiler._rebuild.
from lossdsl.compiled import _rebuild as _rebuild  # isort: skip
from lossdsl.programs import variant_programs as variant_programs  # isort: skip
from lossdsl.schedules.build import _chunked_cached as _chunked_cached  # isort: skip
from lossdsl.schedules.build import chunk_refusal as chunk_refusal  # isort: skip


@dataclass(frozen=True)
class ParamInfo:
    """One declared param of a spec (`Spec.params`): its name, type, default (None where it
    is required) and constraint as written."""

    name: str
    dtype: str  # float, int, bool or choice
    default: float | int | bool | str
    constraint: str | None
    choices: tuple[str, ...] = ()  # a choice param's words, fixed when the spec compiles

    @property
    def declared(self) -> str:
        """The type as written: float, or "softmax" | "sigmoid" for a choice param."""
        return " | ".join(f'"{w}"' for w in self.choices) if self.choices else self.dtype

    @property
    def required(self) -> bool:
        """No default: the caller passes it at call time or bakes it at compile time."""
        return self.default is None

    @property
    def default_text(self) -> str:
        if self.required:
            return "(required)"
        return f'"{self.default}"' if self.choices else repr(self.default)


@dataclass(frozen=True)
class InputInfo:
    """One declared input of a spec (`Spec.inputs`, `Spec.fns`): its name, its type as written
    (`float[B, C]`), whether it may be left out, and its `where` domain."""

    name: str
    type: str
    optional: bool
    domain: tuple[float, float] | None = None
    open_bounds: tuple[bool, bool] = (False, False)  # strict bounds: `x > 0` excludes 0


class Spec:
    """A parsed and checked loss (what `lossdsl.load` and `lossdsl.parse` return).
    Construction raises LossError listing every error.

    `name`, `doc`, `inputs` (InputInfo), `fns` (function inputs), `params` (ParamInfo) and
    `default_reduction` describe it; `compile` makes the callable, `source` the standalone
    module, `ir` the typed IR after a pass."""

    name: str
    doc: str
    text: str
    filename: str
    inputs: tuple[InputInfo, ...]
    fns: tuple[InputInfo, ...]
    params: tuple[ParamInfo, ...]
    default_reduction: str

    def __init__(self, text: str, filename: str = "<string>") -> None:
        with deep_recursion():
            self._init(text, filename)

    def _init(self, text: str, filename: str) -> None:
        self.text, self.filename = text, filename
        module = parse_module(text, filename)
        errors: list[LossError] = []
        base = Path(filename).parent if filename != "<string>" else None
        self.resolved: Resolved = resolve(module, base, errors)
        loss = self.resolved.main
        if loss is None:
            raise LossError("no loss defined", None, "write `loss NAME(inputs) { ... }`")
        self.loss: ast.LossDef = loss
        # Lower every spec in the file (helpers too), so that all errors show up at once;
        # within one bound on the work (lossdsl/lower/context.py MAX_STEPS).
        budget = Budget()
        for other in module.losses:
            if other is not loss:
                lower_loss(self.resolved, other, errors, helper=True, budget=budget)
        full = lower_loss(self.resolved, loss, errors, budget=budget)
        raise_all(errors)
        assert full is not None
        self.name = loss.name
        self.doc = (loss.doc or module.doc or loss.name).strip()
        # the docstring's field block (lossdsl/meta.py): the loss's own, else the file's
        self.meta = loss.meta if loss.doc else module.meta
        decl = {d.var.name: d for d in full.inputs}
        self.inputs = tuple(
            InputInfo(
                i.name,
                str(i.type),
                i.default is not None,
                decl[i.name].domain if i.name in decl else None,
                decl[i.name].open_bounds if i.name in decl else (False, False),
            )
            for i in loss.inputs
        )
        # function inputs (after the tensor inputs): name and declared type, always passed
        self.fns = tuple(InputInfo(f.name, str(f.type), False) for f in loss.fns)
        self.params = tuple(_param_info(p) for p in loss.body if isinstance(p, ast.Param))
        self.default_reduction = full.default_reduction
        self._raw: dict[frozenset[str], Program] = {frozenset(): full}

    # ---- IR --------------------------------------------------------------------------

    def _lowered(self, absent: frozenset[str]) -> Program:
        if absent not in self._raw:
            errors: list[LossError] = []
            with deep_recursion():
                prog = lower_loss(self.resolved, self.loss, errors, absent)
            raise_all(errors)
            self._raw[absent] = verify(prog)
        return self._raw[absent]

    def variants(self) -> list[frozenset[str]]:
        """Every combination of absent optional inputs: one specialized function each."""
        opt = [i.name for i in self.inputs if i.optional]
        return [frozenset(c) for k in range(len(opt) + 1) for c in itertools.combinations(opt, k)]

    def program(self, absent: frozenset[str] = frozenset(), **baked: Any) -> Program:
        """The optimized IR for one variant, with `baked` params folded in."""
        return _optimized(self, absent, _baked_key(self, baked))

    def ir(self, after: str | None = None, **baked: Any) -> str:
        """The IR as lowered (after=None) or after the named pass (`library`: what torch's
        source is emitted from)."""
        prog = bake(self._lowered(frozenset()), dict(_baked_key(self, baked)))
        if after is None or after == "lower":
            return format_program(prog)
        names = PASS_NAMES + ("library",)
        if after not in names:
            raise UnknownName(
                f"unknown pass '{after}'",
                None,
                did_you_mean(after, names) or f"passes: lower, {', '.join(names)}",
            )
        seen: dict[str, Program] = {}
        run_pipeline(prog, lambda name, p: seen.setdefault(name, verify(p)))
        seen["library"] = verify(library(seen["dce"]))
        return format_program(seen[after])

    # ---- code ------------------------------------------------------------------------

    def source(self, backend: str, shard: str | None = None, **baked: Any) -> str:
        """The standalone Python module for `backend` (imports only its framework)."""
        backend = _check_backend(backend)
        return _source(self, backend, _baked_key(self, baked), self._shard(backend, shard))

    def compile(
        self,
        backend: str,
        schedule: str = "plain",
        chunk: int = 8192,
        shard: str | None = None,
        **baked: Any,
    ) -> CompiledLoss:
        """A callable: fn(*inputs, **unbaked_params, reduction=...). Cached; it pickles (as
        its spec files, backend, baked params and schedule) and compiles again on load.

        schedule="chunked" (torch, jax): the first input (the logits [..., V]) is consumed
        `chunk` classes at a time through row statistics, never materializing the
        log-softmax and its intermediates over V (lossdsl/schedules/vsliced.py). A LossError
        here when the spec does not chunk (lossdsl/schedules/plan.py's contract;
        `chunk_refusal`).

        shard="B": the batch dim B is split across devices (lossdsl/shard.py). Each rank
        passes its rows; the loss and the gradients are those of the whole batch. torch: call
        it on every rank of a torch.distributed process group (keywords group=None and
        grads="mean", for DDP/FSDP, which average the ranks' gradients, or "sum"). jax: call
        it inside shard_map over the mesh axis `axis_name` (keyword, "batch")."""
        if schedule == "chunked":
            if shard is not None:
                raise ParamError("a chunked schedule is not sharded", None, "drop shard=")
            return _chunked(self, backend, chunk, _baked_key(self, baked), linear=False)
        if schedule != "plain":
            raise UnknownName(f"unknown schedule '{schedule}'", None, "plain or chunked")
        backend = _check_backend(backend)
        return _compiled(self, backend, _baked_key(self, baked), self._shard(backend, shard))

    def _shard(self, backend: str, dim: str | None) -> str | None:
        """Validate shard=: a dim of an input, a backend with a distributed mode, and a
        program that splits (the transform raises ShardError at the spec's text if not)."""
        if dim is None:
            return None
        if load_backend(backend).TARGET.shard is None:
            raise ParamError(
                f"the {backend} backend has no distributed mode",
                None,
                "shard= is for torch and jax (tests simulate ranks with "
                "backends/numpy_ref.evaluate_sharded)",
            )
        if not isinstance(dim, str):
            raise ParamError(f"shard= takes a dim name, got {dim!r}", None, "e.g. shard='B'")
        self.sharded_program(dim)  # the errors, now
        return dim

    def sharded_program(
        self, dim: str, absent: frozenset[str] = frozenset(), **baked: Any
    ) -> Program:
        """The program one rank runs with `dim` split across ranks (lossdsl/shard.py)."""
        return _sharded_cached(_key(self), absent, _baked_key(self, baked), dim)

    def compile_linear(
        self, backend: str = "torch", chunk: int = 8192, rows: int | None = None, **baked: Any
    ) -> CompiledLoss:
        """The loss fused with the final linear layer: fn(h, W, *other inputs, bias=None,
        **params, reduction=...) computes the spec on logits = h @ W.T + bias (h [N, ..., D],
        W [V, D], bias [V] or None) without holding the [N, ..., V] logits at once. By
        default V-chunk by V-chunk through the spec's chunk plan (Cut Cross-Entropy's
        schedule: backward recomputes each slice); with rows=R in blocks of R batch rows over
        the whole V, each block's gradient taken at once
        (Liger-Kernel's schedule: no recomputation). Row blocks need a loss that reads its
        logits row by row and adds them up in one sum or mean (lossdsl/schedules/rowplan.py);
        anything else is a LossError here that names the construct (`chunk_refusal(rows=True)`)."""
        return _chunked(self, backend, chunk, _baked_key(self, baked), linear=True, rows=rows)

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}: {i.type}" for i in self.inputs)
        return f"<lossdsl.Spec {self.name}({ins})>"


def _param_info(p: ast.Param) -> ParamInfo:
    text = None
    if p.constraint is not None and p.constraint.span is not None:
        s = p.constraint.span
        line = s.source.line(s.line)
        text = line[s.col - 1 : s.end_col - 1] if s.end_line == s.line else line[s.col - 1 :]
    if p.choices:
        word = p.default.value if isinstance(p.default, ast.Str) else None
        return ParamInfo(p.name, "choice", word, None, p.choices)
    if p.default is None:  # required: no default (passed at call or bake time)
        return ParamInfo(p.name, p.dtype, None, text)
    # the default as the param's type (an int literal for a float param is a float)
    return ParamInfo(p.name, p.dtype, _coerce(p.dtype, const_eval(p.default)), text)


# ---- public constructors -----------------------------------------------------------------


def parse(text: str, filename: str = "<string>") -> Spec:
    """A spec from its text: parsed, resolved and checked (every error at once, as a
    `LossError`; `MultipleErrors` for several). `filename` is shown in the errors, and the
    imports (`import focal`) are looked up beside it, then in the shipped library.

        spec = lossdsl.parse("loss sq(x: float[B]) { x * x }")
        fn = spec.compile("numpy")
    """
    return Spec(text, filename)


def load(name_or_path: str | Path) -> Spec:
    """A shipped spec by name ("focal"; `list_specs()` names them all), or a .loss file by
    path (a name ending in `.loss` or holding a `/`). An unknown name is an `UnknownName` with
    the closest shipped names; an error in the file a `LossError`, as `parse`.

        fn = lossdsl.load("focal").compile("torch", gamma=2.0)
    """
    s = str(name_or_path)
    if s.endswith(".loss") or "/" in s or "\\" in s:
        path = Path(s)
        if not path.is_file():
            raise LossError(f"no such spec file: {s}", None, "check the path")
        return parse(read_source(path), str(path))
    path = shipped_specs_dir() / f"{s}.loss"
    if not s.isidentifier() or not path.is_file():
        raise UnknownName(
            f"no shipped spec named '{s}'",
            None,
            did_you_mean(s, shipped_spec_names()) or "see `lossdsl list`",
        )
    return parse(read_source(path), str(path))


def list_specs() -> list[str]:
    """The names of the shipped specs, sorted: each one `load(name)` takes (`lossdsl list`
    prints them with their summaries; docs/specs.md is the catalog)."""
    return shipped_spec_names()
