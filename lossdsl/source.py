"""Source text, spans, and caret rendering."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A spec's text and the name it is reported under (a path, or "<string>")."""

    text: str
    filename: str = "<string>"

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
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
