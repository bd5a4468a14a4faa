"""Named dims -> axis numbers, decided at compile time.

A value's array layout is its dims in the order its type lists them. These helpers say how to
line an operand up with an equation's output (permute, then insert size-1 axes), which axes a
reduction removes, and the einsum string of a contraction. The numpy reference and every code
generator use them, so all backends agree on layout by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from lossdsl.types import Dim


@dataclass(frozen=True)
class Align:
    """How to present an operand with dims `src` to an output with dims `dst`:
    `perm` (None: already in order) then `index` (":" keeps an axis, None inserts one).
    An empty `index` means nothing to insert: numpy broadcasting lines the axes up."""

    perm: tuple[int, ...] | None
    index: tuple[str | None, ...]


def align(src: tuple[Dim, ...], dst: tuple[Dim, ...]) -> Align:
    assert set(src) <= set(dst), (src, dst)
    order = sorted(src, key=dst.index)
    perm = None if list(order) == list(src) else tuple(src.index(d) for d in order)
    if not order:
        return Align(perm, ())
    first = dst.index(order[0])
    index = tuple(":" if d in src else None for d in dst[first:])
    if all(i == ":" for i in index):
        index = ()  # a suffix of dst, in order: broadcasting does the rest
    return Align(perm, index)


def axes(dims: tuple[Dim, ...], over: tuple[Dim, ...]) -> tuple[int, ...]:
    return tuple(dims.index(d) for d in over)


def einsum_spec(a: tuple[Dim, ...], b: tuple[Dim, ...], out: tuple[Dim, ...]) -> str:
    letters: dict[Dim, str] = {}
    for d in a + b + out:
        letters.setdefault(d, "abcdefghijklmnopqrstuvwxyz"[len(letters)])
    word = lambda ds: "".join(letters[d] for d in ds)  # noqa: E731
    return f"{word(a)},{word(b)}->{word(out)}"
