"""Types: dtype x named shape (x kind: an index into a dim). Broadcasting is by dim name."""

from __future__ import annotations

from dataclasses import dataclass, replace

DTYPES = ("bool", "int", "float")  # promotion order


@dataclass(frozen=True, order=True)
class Dim:
    """A named dimension. `B'` is B's primed twin: same size, a different axis."""

    name: str
    primes: int = 0
    variadic: bool = False  # *S: any number of axes, flattened to one at the function boundary
    cut: int = 0  # diff(x, over=H) is over H-1: H's size minus `cut` (a dim users cannot name)
    # A helper's *S bound to no axes (a [B] argument for its [B, *S] input): size 1, shape ().
    unit: bool = False

    @property
    def fixed(self) -> int | None:
        """`float[B, 4]`: a dim written as a number has that size, checked at call time (its
        name is the number: no user name starts with a digit)."""
        return int(self.name) if self.name.isdigit() else None

    def prime(self) -> Dim:
        return replace(self, primes=self.primes + 1)

    def twin_of(self, other: Dim) -> bool:
        return self.name == other.name and self.primes != other.primes and self.cut == other.cut

    def __str__(self) -> str:
        s = ("*" if self.variadic else "") + self.name + "'" * self.primes
        return s + (f"-{self.cut}" if self.cut else "")


# Every helper's *S bound to no axes is this one dim (they all line up with each other); no
# user dim can meet it: "()" is not a name in the grammar.
UNIT_DIM = Dim("()", 0, True, unit=True)


@dataclass(frozen=True)
class TensorType:
    dtype: str  # bool | int | float
    dims: tuple[Dim, ...] = ()
    of: Dim | None = None  # set for index tensors: values in [0, size(of))

    @property
    def is_scalar(self) -> bool:
        return not self.dims

    def with_dims(self, dims: tuple[Dim, ...]) -> TensorType:
        return replace(self, dims=tuple(dims))

    def __str__(self) -> str:
        dt = "index" if self.of is not None else self.dtype
        s = dt + ("[" + ", ".join(map(str, self.dims)) + "]" if self.dims else "")
        return s + (f" of {self.of}" if self.of is not None else "")


FLOAT = TensorType("float")
INT = TensorType("int")
BOOL = TensorType("bool")


class DimError(Exception):
    """A shape rule failed; the checker turns it into a DimMismatch at the right span."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def fmt_dims(dims: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


def broadcast(*dimss: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Union of dims in order of first appearance. Two operands may each carry dims the other
    lacks only when those extras are primed twins (`z * z'` -> [B, B', D]); anything else
    (`[B, C] + [B, D]`) is almost always a bug, so it is an error."""
    # Lay the result out like the operand with the most dims ([C] * [B, C] -> [B, C]), so the
    # big operand never needs a transpose; the others' extra dims follow in order.
    base = max(dimss, key=len, default=())
    dimss = (base,) + tuple(dimss)
    out: tuple[Dim, ...] = ()
    for dims in dimss:
        extra_new = [d for d in dims if d not in out]
        extra_old = [d for d in out if d not in dims]
        if extra_new and extra_old and dims:
            # An extra dim is fine when its twin is there too (B with B', on either side):
            # that is a pairwise matrix, not two unrelated axes lined up by accident.
            both = extra_new + extra_old
            unpaired = [d for d in both if not any(d.twin_of(o) for o in both)]
            if unpaired:
                raise DimError(
                    f"dims do not line up: {fmt_dims(out)} vs {fmt_dims(dims)}",
                    f"{', '.join(map(str, extra_old))} and {', '.join(map(str, extra_new))} are "
                    f"different dims: expand(x, {extra_new[0]}) pairs each with each on purpose "
                    "(an outer product); else reduce one side first (sum(x, over=...)), or prime "
                    "a twin (x') for a pairwise matrix",
                )
        out = out + tuple(extra_new)
    return out


def promote(*types: TensorType) -> str:
    return max((t.dtype for t in types), key=DTYPES.index)


def remove_dims(dims: tuple[Dim, ...], over: tuple[Dim, ...]) -> tuple[Dim, ...]:
    return tuple(d for d in dims if d not in over)
