"""Name resolution at module level: the scope of a file (its losses and the specs it imports:
search path, cycles), duplicate losses, the main loss.

The per-expression checks (names in scope, arity, dtypes, named dims) happen while lowering,
in lossdsl/lower/, because they need the types that lowering derives; both stages append to
the same error list so one run reports everything.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from lossdsl import ast
from lossdsl.backend import CALL_KEYWORDS
from lossdsl.errors import (
    DuplicateDefinition,
    LossError,
    ReservedName,
    SpecImportError,
    UnknownName,
    did_you_mean,
)
from lossdsl.lower import FUNCTIONS
from lossdsl.parser import parse_module, read_source
from lossdsl.resources import resource_dir

# Keywords of lossdsl's own methods that also take a spec's params as keywords:
# Spec.compile(backend, schedule, chunk, shard, **params), compile_linear(backend, chunk, rows),
# source(backend, shard), program(absent), ir(after), sharded_program(dim, absent). A param so
# named could not be baked (`compile("torch", chunk=2.0)` sets the chunk size), and the calls
# of a compiled function take CALL_KEYWORDS (reduction, ...) besides the inputs and params:
# a spec cannot use any of these names for a param (nor CALL_KEYWORDS for an input).
COMPILE_KEYWORDS = frozenset(
    {"self", "backend", "schedule", "chunk", "shard", "rows", "absent", "after", "dim"}
)


def shipped_specs_dir() -> Path:
    return resource_dir("specs")


def shipped_spec_names() -> list[str]:
    return sorted(p.stem for p in shipped_specs_dir().glob("*.loss"))


@dataclass(frozen=True)
class Callee:
    """A loss that can be called by name, with the scope it was defined in (its own imports)."""

    loss: ast.LossDef
    scope: Scope = field(compare=False, repr=False)


class Scope:
    """The losses callable from one module: its imports and its own losses. Built once."""

    def __init__(self) -> None:
        self.table: dict[str, Callee] = {}
        # Imports that failed (already reported), with the spec a misspelled one meant: calls
        # to them are not reported again as unknown functions.
        self.failed: set[str] = set()

    def get(self, name: str) -> Callee | None:
        return self.table.get(name)

    def names(self) -> list[str]:
        return sorted(self.table)


@dataclass(frozen=True)
class Resolved:
    module: ast.Module
    main: ast.LossDef | None
    scope: Scope = field(compare=False, repr=False)
    # (path, text) of every spec file the import closure read: the compile caches key on
    # them, so editing an imported file recompiles its importers.
    files: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)


# Deeper import chains are refused (each level costs a few stack frames while resolving
# and lowering); a chain of 200 files resolves.
MAX_IMPORT_DEPTH = 256


@dataclass
class _Loaded:
    """One imported file, parsed and resolved once per load however many files import it."""

    module: ast.Module | None
    resolved: Resolved | None
    errors: list[LossError]  # the file's own errors (its parse error, or its imports')


class _Loader:
    """Per-load memo of imported files by path and text: a diamond of imports parses and
    resolves each file once, not once per path through the diamond."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.done: dict[tuple[str, str], _Loaded] = {}


def resolve(
    module: ast.Module,
    base_dir: Path | None,
    errors: list[LossError],
    _stack: tuple[str, ...] = (),
    _loader: _Loader | None = None,
) -> Resolved:
    """Collect the module's losses and its imports' (recursively), reporting duplicates,
    missing specs and import cycles into `errors`."""
    top = _loader is None
    loader = _Loader() if _loader is None else _loader
    scope = Scope()
    filename = Path(getattr(module.source, "filename", ""))
    if not _stack and filename.suffix == ".loss":
        # The file itself, so that `a` importing `b` importing `a` is the cycle a -> b -> a.
        _stack = (filename.stem,)
    for imp in module.imports:
        callee = _import(imp, base_dir, errors, _stack, loader)
        if callee is not None:
            scope.table[imp.name] = callee
        else:
            scope.failed.add(imp.name)
            scope.failed.update(difflib.get_close_matches(imp.name, shipped_spec_names(), 1))
    seen: set[str] = set()
    for loss in module.losses:
        if loss.name in FUNCTIONS:
            # A call `min(x)` means the built-in: a loss named so could never be called.
            errors.append(
                DuplicateDefinition(
                    f"loss '{loss.name}' has the name of a built-in function",
                    loss.name_span or loss.span,
                    f"rename the loss, e.g. {loss.name}_ (a call {loss.name}(...) means the "
                    "built-in)",
                )
            )
            continue
        if loss.name in seen:
            errors.append(
                DuplicateDefinition(
                    f"loss '{loss.name}' is defined twice",
                    loss.name_span or loss.span,
                    "rename one of them",
                )
            )
            continue
        seen.add(loss.name)
        scope.table[loss.name] = Callee(loss, scope)
        _reserved_names(loss, errors)
    files = tuple(sorted(loader.files.items())) if top else ()
    return Resolved(module, _main_loss(module), scope, files)


def _reserved_names(loss: ast.LossDef, errors: list[LossError]) -> None:
    """Inputs and params named like a keyword of the Python API (see COMPILE_KEYWORDS)."""
    named = [("input", i, CALL_KEYWORDS) for i in (*loss.inputs, *loss.fns)]
    named += [
        ("param", p, CALL_KEYWORDS | COMPILE_KEYWORDS)
        for p in loss.body
        if isinstance(p, ast.Param)
    ]
    for what, node, reserved in named:
        if node.name in reserved:
            api = "a compiled loss's call" if node.name in CALL_KEYWORDS else "Spec.compile"
            errors.append(
                ReservedName(
                    f"{what} name '{node.name}' is reserved: {api} takes a keyword "
                    f"argument '{node.name}' of its own",
                    node.name_span or node.span,
                    f"rename the {what} (e.g. '{node.name}_'); reserved {what} names: "
                    + ", ".join(sorted(reserved)),
                )
            )


def _main_loss(module: ast.Module) -> ast.LossDef | None:
    """The loss named after the file, else the last one (helpers come first)."""
    if not module.losses:
        return None
    stem = Path(getattr(module.source, "filename", "")).stem
    for loss in module.losses:
        if loss.name == stem:
            return loss
    return module.losses[-1]


def _import(
    imp: ast.Import,
    base_dir: Path | None,
    errors: list[LossError],
    stack: tuple[str, ...],
    loader: _Loader,
) -> Callee | None:
    """Find `import NAME` as NAME.loss beside the importing file, then in the shipped specs.
    NAME is a bare identifier (the grammar allows nothing else), so no path can escape the
    search directories; a NAME.loss there that is a symlink is followed (whoever can place a
    link there can place a spec), and the linked spec's own imports are looked up beside the
    link, in the folder the user sees."""
    if imp.name in stack:
        cycle = " -> ".join(stack[stack.index(imp.name) :] + (imp.name,))
        errors.append(
            SpecImportError(
                f"import cycle: {cycle}", imp.span, "a spec cannot import itself, even indirectly"
            )
        )
        return None
    if len(stack) >= MAX_IMPORT_DEPTH:
        errors.append(
            SpecImportError(
                f"imports nested too deeply (limit {MAX_IMPORT_DEPTH} files in a chain)",
                imp.span,
                "inline some of the intermediate specs",
            )
        )
        return None
    dirs = ([base_dir] if base_dir is not None else []) + [shipped_specs_dir()]
    path = next((d / f"{imp.name}.loss" for d in dirs if (d / f"{imp.name}.loss").is_file()), None)
    if path is None:
        errors.append(
            UnknownName(
                f"no spec named '{imp.name}' to import",
                imp.span,
                did_you_mean(imp.name, shipped_spec_names())
                or "specs are looked up beside this file, then in the shipped library "
                "(`lossdsl list`)",
            )
        )
        return None
    try:
        text = read_source(path)
    except LossError as e:  # not UTF-8: reported like a parse error of that file
        text, failed = None, e
    key = (str(path.absolute()), text)
    if text is not None:
        loader.files[key[0]] = text
    done = loader.done.get(key)
    if done is None:
        try:
            if text is None:
                raise failed
            sub = parse_module(text, str(path))
        except LossError as e:
            done = _Loaded(None, None, [e])
        else:
            sub_errors: list[LossError] = []
            resolved = resolve(sub, path.parent, sub_errors, stack + (imp.name,), loader)
            done = _Loaded(sub, resolved, sub_errors)
        loader.done[key] = done
    if done.module is None:
        first = done.errors[0].errors[0]
        errors.append(
            SpecImportError(
                f"imported spec '{imp.name}' does not parse",
                imp.span,
                first.render().splitlines()[0],
            )
        )
        return None
    reported: set[str] = set()
    for e in done.errors:
        # Report problems of the imported file at the import, so the user sees them here;
        # once per message: an error deep in a diamond of imports reaches here along every
        # path (2^n copies for n levels).
        msg = (
            e.message
            if isinstance(e, SpecImportError)
            else f"imported spec '{imp.name}' has an error: {e.message}"
        )
        if msg not in reported:
            reported.add(msg)
            errors.append(SpecImportError(msg, imp.span, e.hint))
    callee = done.resolved.scope.get(imp.name)
    if callee is None:
        defined = ", ".join(sorted(loss.name for loss in done.module.losses)) or "no loss"
        errors.append(
            UnknownName(
                f"{path.name} defines no loss named '{imp.name}'",
                imp.span,
                did_you_mean(imp.name, done.resolved.scope.names())
                or f"`import {imp.name}` takes `loss {imp.name}(...)` from {path.name}; "
                f"it defines {defined}",
            )
        )
    return callee
