"""Types: dtype x named shape (x kind: an index into a dim). Broadcasting is by dim name."""

from __future__ import annotations

from dataclasses import dataclass, replace

DTYPES = ("bool", "int", "float")  # promotion order


# A derived dim's size is its base dim's size through these steps, in order (all ints, so that
# dims stay orderable):
#   ("-", k, "")    n - k        (diff: k = 1; a valid window of size w: k = w - 1)
#   ("-", k, "KH")  n - k - size(KH)   (a valid conv with a kernel over KH: k = -1, H-KH+1)
#   ("//", s, "")   floor(n / s) (a valid pool)    ("ceil", s, "")  ceil(n / s) ('same' pools)
#   ("/", k, "G")   n / (k size(G)), exact: the group count of split(x, G, over=N) (checked to
#                   divide at call time; by "" for a number: split(x, 4, over=N) is N/4)
#   ("*", k, "G")   n k size(G): merge(x, over=(P, G)) of a P that is no split of G
# A dim sized by an int param k (split(x, k, over=N)) is named "$k": no user dim can be (a
# name never starts with $), and it prints as k.
Step = tuple[str, int, str]


@dataclass(frozen=True, order=True)
class Dim:
    """A named dimension. `B'` is B's primed twin: same size, a different axis. A derived dim
    (`H-10`, `H//2`: a window's output along H) has `steps` from its base dim's size; two
    results derived the same way from the same dim are the same dim (their sizes agree)."""

    name: str
    primes: int = 0
    variadic: bool = False  # *S: any number of axes, flattened to one at the function boundary
    steps: tuple[Step, ...] = ()  # derived from `name`'s size (a dim users cannot name)
    # A helper's *S bound to no axes (a [B] argument for its [B, *S] input): size 1, shape ().
    unit: bool = False

    @property
    def base(self) -> Dim:
        """The dim this one is derived from (itself when it is not derived)."""
        return replace(self, steps=()) if self.steps else self

    @property
    def fixed(self) -> int | None:
        """`float[B, 4]`: a dim written as a number has that size, checked at call time (its
        name is the number: no user name starts with a digit); derived from one, a number too."""
        if not self.name.isdigit():
            return None
        if any(by and not by.isdigit() for _, _, by in self.steps):
            return None
        for k, (op, m, by) in enumerate(self.steps):  # a fixed dim split unevenly: no size
            n = replace(self, steps=self.steps[:k]).size(int(self.name), int)
            if op == "/" and n % (m * int(by or 1)):
                return None
        return self.size(int(self.name), lambda by: int(by))

    @property
    def param(self) -> str | None:
        """The int param whose value is this dim's size (split(x, k, over=N)), if one is."""
        return self.name[1:] if self.name.startswith("$") else None

    def derive(self, op: str, k: int, by: str = "") -> Dim:
        """This dim through one more step; subtractions merge (H-1-1 is H-2), so do divisions
        rounded the same way (ceil(ceil(H/2)/2) is ceil(H/4)); - 0 and / 1 are none."""
        steps = self.steps
        if op == "-" and steps and steps[-1][0] == "-" and not (by and steps[-1][2]):
            _, k0, by0 = steps[-1]
            steps, k, by = steps[:-1], k0 + k, by or by0
        elif op in ("/", "*") and steps and steps[-1] == ({"/": "*", "*": "/"}[op], k, by):
            return replace(self, steps=steps[:-1])  # merge undoes split: (N/G)*G is N
        elif op in ("//", "ceil") and steps and steps[-1][0] == op:
            steps, k = steps[:-1], steps[-1][1] * k
        if not (op == "-" and k == 0 and not by) and not (op != "-" and k == 1 and not by):
            steps = steps + ((op, k, by),)
        return replace(self, steps=steps)

    def size(self, n, size_of=None):
        """The size given the base's size `n` (an int, or any number-like value); `size_of`
        gives another dim's size by name (a conv's kernel dims)."""
        for op, k, by in self.steps:
            if op == "-":
                n = n - k - (size_of(by) if by else 0)
            elif op == "//":
                n = n // k
            elif op == "/":
                n = n // (k * (size_of(by) if by else 1))
            elif op == "*":
                n = n * k * (size_of(by) if by else 1)
            else:
                n = -(-n // k)
        return n

    def shape(self, shape: tuple, size_of=None) -> tuple:
        """A variadic dim's axes (its base's `shape`), each through the steps: a window over
        *S of 11 taps shrinks every spatial axis by 10."""
        return tuple(self.size(n, size_of) for n in shape)

    def shape_code(self, shape: str, size_of=str) -> str:
        """`shape` as a Python expression of the base's shape expression (`size_of`: another
        dim's size expression by name, an int param's window size)."""
        if not self.steps:
            return shape
        return f"tuple({self.size_code('n_', size_of)} for n_ in {shape})"

    def size_code(self, n: str, size_of) -> str:
        """The size as a Python expression of the base's size expression `n`."""
        for op, k, by in self.steps:
            if op == "-":
                tail = f" - {k}" if k > 0 else f" + {-k}" if k else ""
                n = f"({n}{f' - {size_of(by)}' if by else ''}{tail})"
            elif op == "//":
                n = f"({n} // {k})"
            elif op in ("/", "*"):
                m = " * ".join(
                    ([str(k)] if k != 1 or not by else []) + ([size_of(by)] if by else [])
                )
                n = f"({n} {'//' if op == '/' else '*'} {f'({m})' if ' ' in m else m})"
            else:
                n = f"(-(-{n} // {k}))"
        return n

    def prime(self) -> Dim:
        return replace(self, primes=self.primes + 1)

    def twin_of(self, other: Dim) -> bool:
        return self.name == other.name and self.primes != other.primes and self.steps == other.steps

    def __str__(self) -> str:
        s = base = ("*" if self.variadic else "") + self.name.lstrip("$") + "'" * self.primes
        for op, k, by in self.steps:
            by = by.lstrip("$")
            if op == "-":
                s += (f"-{by}" if by else "") + (f"-{k}" if k > 0 else f"+{-k}" if k else "")
            elif op in ("/", "*"):
                m = "*".join(([str(k)] if k != 1 or not by else []) + ([by] if by else []))
                s = f"{s}{op}{m}" if s == base or op == "*" else f"({s}){op}{m}"
            elif op == "//":
                s = f"{s}//{k}" if s == base else f"({s})//{k}"
            else:
                s = f"ceil({s}/{k})"
        return s


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


def derived_as(dims: tuple[Dim, ...], d: Dim) -> Dim:
    """The dim of `dims` that a user's `over=H` names: H itself, else the one dim derived from
    H there (users cannot spell H-10: over=H reaches blur(x, over=H)'s result; in a helper whose
    H is the caller's ceil(H/2), over=H reaches ceil(H/2)-10); else `d`."""
    if d in dims:
        return d
    kin = [k for k in dims if k.base == d.base]  # H, H-10, ceil(H/2)-10: one family
    found = [k for k in kin if k.steps[: len(d.steps)] == d.steps] or kin
    return found[0] if len(found) == 1 else d
