"""Module-level checks: duplicate losses, spec imports (search path, cycles), the main loss.

The per-expression checks (names in scope, arity, dtypes, named dims) happen while lowering,
in lossdsl/lower.py, because they need the types that lowering derives; both stages append to
the same error list so one run reports everything.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from lossdsl import ast
from lossdsl.errors import (
    DuplicateDefinition,
    LossError,
    SpecImportError,
    UnknownName,
    did_you_mean,
)
from lossdsl.parser import parse_module
from lossdsl.resources import resource_dir


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


def resolve(
    module: ast.Module, base_dir: Path | None, errors: list[LossError], _stack: tuple[str, ...] = ()
) -> Resolved:
    """Collect the module's losses and its imports' (recursively), reporting duplicates,
    missing specs and import cycles into `errors`."""
    scope = Scope()
    filename = Path(getattr(module.source, "filename", ""))
    if not _stack and filename.suffix == ".loss":
        # The file itself, so that `a` importing `b` importing `a` is the cycle a -> b -> a.
        _stack = (filename.stem,)
    for imp in module.imports:
        callee = _import(imp, base_dir, errors, _stack)
        if callee is not None:
            scope.table[imp.name] = callee
        else:
            scope.failed.add(imp.name)
            scope.failed.update(difflib.get_close_matches(imp.name, shipped_spec_names(), 1))
    from lossdsl.lower import FUNCTIONS  # (lower imports this module)

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
    return Resolved(module, _main_loss(module), scope)


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
    imp: ast.Import, base_dir: Path | None, errors: list[LossError], stack: tuple[str, ...]
) -> Callee | None:
    """Find `import NAME` as NAME.loss beside the importing file, then in the shipped specs.
    NAME is a bare identifier (the grammar allows nothing else), so no path can escape."""
    if imp.name in stack:
        cycle = " -> ".join(stack[stack.index(imp.name) :] + (imp.name,))
        errors.append(
            SpecImportError(
                f"import cycle: {cycle}", imp.span, "a spec cannot import itself, even indirectly"
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
        sub = parse_module(path.read_text(), str(path))
    except LossError as e:
        first = e.errors[0]
        errors.append(
            SpecImportError(
                f"imported spec '{imp.name}' does not parse",
                imp.span,
                first.render().splitlines()[0],
            )
        )
        return None
    sub_errors: list[LossError] = []
    resolved = resolve(sub, path.parent, sub_errors, stack + (imp.name,))
    for e in sub_errors:
        # Report problems of the imported file at the import, so the user sees them here.
        errors.append(
            SpecImportError(e.message, imp.span, e.hint)
            if isinstance(e, SpecImportError)
            else SpecImportError(
                f"imported spec '{imp.name}' has an error: {e.message}", imp.span, e.hint
            )
        )
    callee = resolved.scope.get(imp.name)
    if callee is None:
        errors.append(
            UnknownName(
                f"{path.name} defines no loss named '{imp.name}'",
                imp.span,
                did_you_mean(imp.name, resolved.scope.names())
                or f"`import {imp.name}` takes `loss {imp.name}(...)` from {path.name}; "
                f"it defines {', '.join(sorted(loss.name for loss in sub.losses)) or 'no loss'}",
            )
        )
    return callee
