"""Where the shipped grammar/, backends/ and specs/ live: inside the installed package (the
wheel force-includes them as lossdsl/<name>) or beside the package in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PKG / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"lossdsl resource directory '{name}' is missing from the install")
