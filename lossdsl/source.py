"""Source text, spans, and caret rendering."""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Source:
    """A spec's text and the name it is reported under (a path, or "<string>")."""

    text: str
    filename: str = "<string>"

    @cached_property
    def _lines(self) -> list[str]:
        # Lines end at "\n" only, as for the lexer: str.splitlines() also splits at \f,
        # \x1c-\x1e, \x85, U+2028 and U+2029, which may sit in a comment or a docstring, and
        # would shift every later line number. Cached: errors render lines of long files.
        return [line.removesuffix("\r") for line in self.text.split("\n")]

    def line(self, lineno: int) -> str:
        lines = self._lines
        return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A 1-based line/column range in a Source; end_col is exclusive."""

    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    @property
    def filename(self) -> str:
        return self.source.filename

    def render(self) -> str:
        """The source line with carets under the span (first line only for multi-line spans)."""
        text = self.source.line(self.line)
        end = self.end_col if self.end_line == self.line else len(text) + 1
        width = max(1, end - self.col)
        # Copy tabs from the line so the carets sit under the span however tabs are shown.
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.col - 1])
        return f"{text}\n{pad}{'^' * width}"

    def __repr__(self) -> str:
        return f"Span({self.filename}:{self.line}:{self.col})"


def point(source: Source, line: int, col: int, width: int = 1) -> Span:
    return Span(source, line, col, line, col + width)


# Python frames per level of nesting, at most, in the recursive tree walks (lowering an
# argument of a call inside a reduction inside a spec call ...), times lossdsl.parser.MAX_DEPTH.
_FRAMES = 8 * 2000 + 2000


_deep_lock = threading.Lock()
_deep_users = 0
_deep_saved = 0


@contextlib.contextmanager
def deep_recursion():
    """Run the recursive tree walks with room for the deepest tree the parser accepts. Python
    3.11+ runs Python-to-Python calls without growing the C stack, so the raised limit is
    safe. The limit is process-wide: the last of concurrent users (threads) restores it."""
    global _deep_users, _deep_saved
    with _deep_lock:
        if _deep_users == 0:
            _deep_saved = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_deep_saved, _FRAMES))
        _deep_users += 1
    try:
        yield
    finally:
        with _deep_lock:
            _deep_users -= 1
            if _deep_users == 0:
                sys.setrecursionlimit(_deep_saved)
