"""What a code target is: a framework's imports, dtype tests and one template per op
(backends/*_backend.py define one each), and the templates every target shares (Python's
operators, the param-constraint templates, the numpy-like gather and the sharded eye)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lossdsl import constraints
from lossdsl.ir import Eqn

INFIX = frozenset({"add", "sub", "mul", "div", "pow", "neg", "eq", "ne", "lt", "le", "gt", "ge"})
ALIASES = frozenset({"rename", "size"})  # no line of code: a new name for an existing value
# ops the function emitter writes itself, from the target's settings (a loop: Target.loop; a
# derivative: Target.grad), or as a plain Python call (a function input)
STRUCTURED = frozenset({"repeat", "scan", "grad", "call_fn"})

# Python operators: the same text for tensors of every framework and for plain numbers.
INFIX_TEMPLATES = {
    "add": "{0} + {1}",
    "sub": "{0} - {1}",
    "mul": "{0} * {1}",
    "div": "{0} / {1}",
    "pow": "{0} ** {1}",
    "neg": "-{0}",
    "eq": "{0} == {1}",
    "ne": "{0} != {1}",
    "lt": "{0} < {1}",
    "le": "{0} <= {1}",
    "gt": "{0} > {1}",
    "ge": "{0} >= {1}",
}

# Param constraints run on Python numbers before any tensor work: the one table of
# lossdsl/constraints.py (every op a constraint may use; the checker rejects the others).
SCALAR_TEMPLATES = constraints.TEMPLATES

Template = str | Callable[["EqnContext"], str]

# What no framework takes as a tensor: None, text, containers and Python numbers (exact types:
# numpy's float64, a float subclass, is an array scalar). jnp.asarray/np.asarray would turn a
# list into an array silently; an input check then fails with an attribute error.
NOT_ARRAY_TYPES = (str, bytes, list, tuple, dict, set, bool, int, float, complex)
NOT_AN_ARRAY = (
    "{x} is None or type({x}) in (" + ", ".join(t.__name__ for t in NOT_ARRAY_TYPES) + ")"
)


def take_along_axis_gather(np_like: str) -> Callable[[EqnContext], str]:
    """The gather template of a numpy-like module (jnp, np): x[i] along i's `of` axis."""

    def gather(c):
        f = c.attrs["form"]
        x, i = c.raw
        if f == "take":
            return nan_from_empty(c, f"{x}[{i}]", i, f"{np_like}.full_like", f"{np_like}.nan")
        if f == "axis":
            k, ia = c.attrs["k"], c.attrs["i"]
            idx = f"{np_like}.expand_dims({ia}, {k})"
            pick = f"{np_like}.take_along_axis({x}, {idx}, axis={k}).squeeze({k})"
            return nan_from_empty(c, pick, ia, f"{np_like}.full_like", f"{np_like}.nan")
        xb, ib = c.attrs["xb"], c.attrs["ib"]
        pick = f"{np_like}.take_along_axis({xb}, {ib}[..., None], axis=-1)[..., 0]"
        return nan_from_empty(c, pick, ib, f"{np_like}.full_like", f"{np_like}.nan")

    return gather


def nan_from_empty(c: EqnContext, pick: str, idx: str, full_like: str, nan: str) -> str:
    """A gather by a computed index (attrs._gather's `src`): NaN shaped as the index where
    the source dim is empty (a static size, so a Python branch jit and torch.compile fold)."""
    if c.attrs.get("src") is None:
        return pick
    fill = f"{full_like}({idx}, {nan}, dtype={c.raw[0]}.dtype)"
    return f"({pick} if {c.attrs['src']} else {fill})"


def floored(call: str, where: str) -> Callable[[EqnContext], str]:
    """// or % ({call} on {0}, {1}): on ints a zero divisor gives 0, the op table's meaning
    (torch raises ZeroDivisionError, jax returns -1), by dividing by 1 there (a literal 0
    written by the user is an error, lossdsl/lower/expr.py; one a rewrite made gives 0s)."""

    def t(c):
        b = c.eqn.args[1]
        if c.eqn.out.type.dtype != "int" or type(b).__name__ == "Lit":
            int_zero = c.eqn.out.type.dtype == "int" and type(b).__name__ == "Lit" and b.value == 0
            return f"{c[0]} * 0" if int_zero else call.format(c[0], c[1])
        safe = call.format(c[0], f"{where}({c[1]} == 0, 1, {c[1]})")
        return f"{where}({c[1]} == 0, 0, {safe})"

    return t


def scanned(fn: str, flip: str) -> Callable[[EqnContext], str]:
    """A cumulative op ({fn}: a call of {x} along axis {a}) of a framework without a reverse
    scan: reverse=True flips ({flip}: {x} flipped along {a}), scans and flips back."""

    def t(c):
        a = c.attrs["axis"]
        if not c.attrs["reverse"]:
            return fn.format(x=c[0], a=a)
        return flip.format(x=fn.format(x=flip.format(x=c[0], a=a), a=a), a=a)

    return t


# The padding of a window op along each of its axes (the op table's rule, lossdsl/ops.py
# _window): (out - 1) * stride + size - n in all, out = ceil(n / stride), the odd one before;
# none for "valid". Emitted inside each framework's _window helper.
WINDOW_PADS = """
def _window_pads(n, size, stride, padding):
    pads = ()
    for k in n:
        i = len(pads)
        t = (-(-k // stride[i]) - 1) * stride[i] + size[i] - k
        t = max(t, 0) if padding != "valid" else 0
        pads = pads + ((t - t // 2, t // 2),)
    return pads
"""


def shard_eye(arange: str) -> Callable[[EqnContext], str]:
    """The shard_eye template of a framework whose `arange` ({n}: a size) numbers positions:
    this rank's rows, offset by rank * B, against every global row."""

    def eye(c):
        n, g = c.attrs["nl"], c.attrs["ng"]
        rows = f"({arange.format(n=n)} + rank * {n})"
        cols = arange.format(n=g)
        a, b = (rows, cols) if c.attrs["local_first"] else (cols, rows)
        return f"{a}[:, None] == {b}[None, :]"

    return eye


@dataclass(frozen=True)
class ShardTarget:
    """How a framework runs a program sharded over its batch (lossdsl/shard.py): the keyword
    arguments the function takes (with defaults), the lines that bind `world` and `rank` (and
    check those arguments; {label} is the loss's name), and module-level helpers the templates
    call, by name (emitted once, when used)."""

    kwargs: tuple[str, ...]
    prelude: tuple[str, ...]
    helpers: tuple[tuple[str, str], ...] = ()
    imports: tuple[str, ...] = ()
    # true when the ranks' local sizes {n} of the sharded dim differ ({x}: the input they come
    # from); None where the framework makes equal shards itself (jax's shard_map)
    sizes_differ: str | None = None


@dataclass(frozen=True)
class Target:
    """A framework: what the generated module imports and how each op is written."""

    name: str
    imports: tuple[str, ...]
    templates: dict[str, Template]
    is_float: str  # "{x}" is a float tensor
    is_int: str
    is_bool: str
    as_array: str | None  # wraps each input on entry (jax: jnp.asarray), or None
    as_tensor: str  # a Python number as a 0-d tensor of the float dtype (for non-infix ops)
    float_dtype_default: str
    int_dtype: str
    bool_dtype: str
    permute: str  # "{x}", "{perm}"
    broadcast: str  # "{x}", "{shape}"
    device: str | None = None  # "{x}" -> its device, for tensors created inside
    float_cast: str | None = None  # numpy computes in float64 whatever comes in
    # An integer tensor passed for a float input ({x}: a uint8 image) becomes the framework's
    # default float, as its type promotion would make it in x * 1.0; None: refused
    int_to_float: str | None = None
    # Precision policy: float16/bfloat16 inputs are computed in float32, the result is returned
    # in the input's dtype. `is_half` tests an input, `upcast` lifts it, `out_cast` casts back.
    is_half: str | None = None
    upcast: str | None = None
    out_cast: str | None = None
    # A mixed-precision mode ({x}: the first float input; bound as `amp`), or None: torch's
    # autocast. Its losses are on autocast's fp32 list: computed in float32 and returned as
    # float32, whatever dtype autocast gave their inputs.
    amp: str | None = None
    # the dtype the result is cast back to ({x}: the first float input; `amp` where bound)
    out_dtype: str = "{x}.dtype"
    # what the loss's ops run inside ({x}: the first float input; `amp` where bound), or None:
    # torch switches autocast off there (a matmul inside would otherwise drop to bfloat16)
    body_context: str | None = None
    # Index range check ({i}: index tensor, {n}: its dim's size): true when a value is outside
    # [0, n). Empty tensors and traced values (jax.jit) are skipped.
    index_out_of_range: str | None = None
    # An empty batch's result (lossdsl/empty.py) keeps each float input {x} in the graph with
    # this zero (so backward() runs and gives zero gradients); None where the framework needs
    # no graph (jax differentiates a constant to zeros)
    empty_grad: str | None = None
    # true when {x} is no tensor of this framework (checked before anything touches it), and
    # what the message asks for instead
    not_array: str | None = None
    # module-level functions the templates call, by name (emitted once, when used)
    helpers: tuple[tuple[str, str], ...] = ()
    array_kind: str = "an array"
    array_hint: str = "np.asarray"
    # where(c, a, b) on a bool param c: only the chosen branch reaches the result, so the other
    # branch's gradient (say an inf next to a 0 weight) cannot turn into NaN
    select: str | None = None
    # A 0-d tensor param whose value is not known yet ({x}; traced: jax.jit, torch.compile,
    # vmap): its constraint cannot be checked now (its shape still is).
    param_traced: str = "False"
    # A param value the framework's ops do not take ({x}: a numpy scalar or 0-d array given to
    # torch, whose `np <= tensor` raises): replaced by its Python value once checked.
    param_foreign: str | None = None
    shard: ShardTarget | None = None  # None: this framework has no distributed mode
    # Emit the `library` pass's ops (a loss and its reduction as one library call): worth it
    # where each op is its own kernel launch (torch eager), not under a fusing compiler (XLA).
    library_calls: bool = False
    # A loop (the repeat op): "for", a Python for loop (torch, numpy: eager, and torch.compile
    # unrolls it); "fori", a body function run by jax.lax.fori_loop (one traced body, however
    # many steps).
    loop: str = "for"
    # grad(e, wrt=x): the derivative of the scalar function {fn} (the body) at {x}
    grad: str = "_grad({fn}, {x})"
    # repeat(..., checkpoint=true): how a step function {fn} is wrapped so that the backward
    # pass keeps only each step's state ({state}: the state's names) and recomputes the rest.
    # None: the framework keeps what it keeps (numpy has no backward pass).
    checkpoint: str | None = None
    # scan's Python loop (loop="for"): {x} split into its entries along axis {axis} once
    # before the loop (a per-step select would cost a full-size zero gradient per step in
    # torch's backward: O(T^2)), and a list {xs} of equal-shape arrays stacked on a new first axis
    split_steps: str = "np.moveaxis({x}, {axis}, 0)"
    stack_steps: str = "np.stack({xs})"


@dataclass
class EqnContext:
    """What a template can use: aligned args {0} {1} {2}, and the equation's attributes made
    concrete (axes, sizes, dtypes, einsum spec)."""

    eqn: Eqn
    args: list[str]
    raw: list[str]
    attrs: dict

    def __getitem__(self, i: int) -> str:
        return self.args[i]

    def fmt(self, template: str) -> str:
        return template.format(*self.args, **self.attrs)
