"""The LossError hierarchy: every user mistake is one of these, with a span and a hint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from lossdsl.source import Span


class LossError(Exception):
    """Root of all user-facing errors. Renders as `file:line:col: error: message`."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        # Where else the mistake shows: an error inside an inlined spec call gets a note at
        # each call site it was reached through (innermost first), with its dim bindings.
        self.notes: list[tuple[str, Span | None]] = []

    @property
    def errors(self) -> list[LossError]:
        return [self]

    def render(self) -> str:
        if self.span is None:
            head = f"error: {self.message}"
        else:
            s = self.span
            head = f"{s.filename}:{s.line}:{s.col}: error: {self.message}\n{s.render()}"
        if self.hint:
            head += f"\nhint: {self.hint}"
        for text, span in self.notes:
            where = f"{span.filename}:{span.line}:{span.col}: " if span is not None else ""
            head += f"\n{where}note: {text}" + (f"\n{span.render()}" if span is not None else "")
        return head

    def __str__(self) -> str:
        return self.render()


class LossSyntaxError(LossError):
    """The text does not parse."""


class ReservedWord(LossSyntaxError):
    """A declaration named with one of the grammar's keywords (`where`, `nan`, `let`, ...)."""


class UnknownName(LossError):
    """A variable, function, parameter, dimension or spec that is not defined."""


class DuplicateDefinition(LossError):
    """A name defined twice in one scope."""


class ReservedName(DuplicateDefinition):
    """An input or param named like a keyword argument of the Python API (reduction, chunk,
    backend, ...): the name is already defined there."""


class ArityError(LossError):
    """Wrong number of arguments or an unknown/missing keyword."""


class TypeMismatch(LossError):
    """An operand of the wrong dtype or kind."""


class DimMismatch(LossError):
    """Named dimensions that do not line up."""


class ConstantError(LossError):
    """A constant the compiled code cannot hold: an int outside int64, a float64 overflow."""


class ParamError(LossError, ValueError):
    """A parameter value that violates its declared type or constraint."""


class ShardError(LossError):
    """A loss that cannot be split across devices along the requested dim."""


class SpecImportError(LossError):
    """A spec import that cannot be resolved (missing, cyclic, outside the search path)."""


class LimitError(LossError):
    """A program beyond the compiler's size limits (nesting depth, size after inlining)."""


class InputError(LossError, ValueError):
    """A bad tensor passed to a compiled loss at call time."""


class MultipleErrors(LossError):
    """Several errors found in one run; sorted by position."""

    def __init__(self, errors: Iterable[LossError]):
        errs = sorted(errors, key=_position)
        super().__init__(f"{len(errs)} errors", errs[0].span if errs else None)
        self._errors = errs

    @property
    def errors(self) -> list[LossError]:
        return self._errors

    def render(self) -> str:
        return "\n".join(e.render() for e in self._errors)


def _position(e: LossError) -> tuple:
    s = e.span
    return (s.filename, s.line, s.col) if s else ("", 0, 0)


def raise_all(errors: list[LossError]) -> None:
    """Raise nothing, the single error, or a MultipleErrors for several."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise MultipleErrors(errors)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean X?' hint for the closest candidate, if any is close."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def class_ids_message(label, sources, dim, n, lo, hi, opt_out: bool = True) -> str:
    """The text of every runtime range check on class ids (generated code passes placeholders
    for the sizes and values it formats at run time)."""
    names = " / ".join(f"'{s}'" for s in sources)
    text = (
        f"{label}: input {names} holds class ids outside [0, {n}) for dim {dim} (size {n}): "
        f"found values from {lo} to {hi}"
    )
    return text + ("; pass check_indices=False to skip this check" if opt_out else "")
