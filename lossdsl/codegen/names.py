"""Literal and identifier hygiene: numbers as Python literals, docstrings escaped, and the
print context `Names` that gives every value of a generated module its own identifier (never one
the emitter writes itself: RESERVED)."""

from __future__ import annotations

import builtins
import keyword
import math
import re


def py_literal(v) -> str:
    """A Python expression for a literal: only numbers and bools, never user text."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, int):
        return f"({v})" if v < 0 else str(int(v))
    v = float(v)
    if math.isnan(v):
        return 'float("nan")'
    if math.isinf(v):
        return 'float("inf")' if v > 0 else '(-float("inf"))'
    return f"({v!r})" if v < 0 else repr(v)


def docstring(text: str, indent: str = "") -> str:
    """`text` as a docstring literal that holds exactly `text` (less surrounding newlines; the
    closing quotes of several lines go on their own line, indented).
    Backslashes are escaped, quotes where two meet or one ends the text, and every character
    that is not printable but a newline or a tab: NUL (no source may hold one) and the line
    breaks that Python's tokenizer does not know but str.splitlines does (CR, form feed, NEL,
    U+2028, ...), which would shift the module's line numbers. The one exception: a lone
    surrogate is written as its escape's text (CPython 3.13 refuses to compile a docstring
    that holds one: UnicodeEncodeError); CompiledLoss.__doc__ keeps the spec's exact text."""
    body = "".join(_doc_char(c) for c in text.strip("\n"))
    body = re.sub(r'"(?="|$)', r'\\"', body)  # no three quotes in a row, none at the end
    lines = body.split("\n")
    out = [indent + '"""' + lines[0]] + [(indent + ln) if ln.strip() else "" for ln in lines[1:]]
    if len(lines) > 1:
        out.append(indent + '"""')
    else:
        out[-1] += '"""'
    return "\n".join(out)


def _doc_char(c: str) -> str:
    if c == "\\":
        return "\\\\"
    if c in "\n\t" or c.isprintable():
        return c
    n = ord(c)
    if 0xD800 <= n < 0xE000:  # CPython 3.13 cannot compile a docstring holding a lone
        return f"\\\\u{n:04x}"  # surrogate: the docstring shows its escape as text
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


# Call keywords of every compiled function besides its inputs and params (and, sharded, the
# keywords of the targets' ShardTarget). A spec cannot declare an input or param so named
# (lossdsl/resolve.py): `fn(x, reduction=...)` must mean one thing.
CALL_KEYWORDS = frozenset(
    {"reduction", "check_indices", "group", "grads", "check_sizes", "axis_name"}
)


class Names:
    """One print context: every value of a generated module gets its own Python identifier.

    Values are keyed by what they are, never by a bare string: ("var", "t0") is the IR value t0
    (an input or param too: their IR names are the declared ones), ("dim", "t0") the size of
    dim t0, ("shape", "S") the shape tuple of variadic dim S. A dim named like a temporary, a
    let of an imported spec named like the caller's dim, an input named like a variant
    function: different keys, so different identifiers. Names the emitter writes literally
    (fdt, reduction, torch, _prod, world, ...) are RESERVED and never handed out; names of its
    own (x_checked, B_all, variant functions) come from `fresh`, so they avoid every name
    handed out before and after. A key's identifier is its own name where free, else with
    trailing underscores; dunders get a `u` prefix (they mean something to Python)."""

    RESERVED = frozenset(
        set(keyword.kwlist)
        | set(keyword.softkwlist)
        | {"torch", "jax", "jnp", "np", "numpy", "math", "lax", "F", "float", "int", "bool"}
        | {"tuple", "isinstance", "abs", "max", "min", "len", "fdt", "dev", "odt", "_prod"}
        | {"amp", "contextlib"}  # torch's autocast state and the module its helper imports
        | {"round"}  # the constraint template of round (lossdsl/constraints.py)
        | {"LossInputError", "LossParamError", "ValueError", "AssertionError"}
        | {"True", "False", "None"}
        | {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals"}
        | {"locals", "vars", "breakpoint", "input", "exit", "quit", "help", "type", "object"}
        # sharded modules (ShardTarget): the world size, the rank and the helpers
        | {"world", "rank", "_AllGather", "_GradScale", "_sizes_differ", "_gather_single"}
        # the targets' module-level helpers (Target.helpers)
        | {"_ids_out_of_range", "_eigvalsh", "_lgamma", "_digamma", "_argsort", "_quantile"}
        | {"_no_autocast"}
        | {"_window", "_blurs", "_window_pads", "_frames", "_shift", "_shift_ref", "_CustomGrad"}
        | {"_custom_grad", "_custom_grad_fwd", "_custom_grad_bwd", "_stft_mag", "_rfft_mag"}
        | {"_grad", "_fd_grad", "_log_ive", "_log_ive_core", "_debye_polys", "_DEBYE"}
        | {"_ctc", "_ctc_core", "_CtcKernel", "_unbound_scan", "_python_scan"}
        | {
            "_abs",
            "_pow",
            "_logcumsumexp",
            "_cummax",
            "_cummax_value",
            "_cummax_jvp",
            "_cummax_tangent",
        }
        # the numpy target's helpers (backends/numpy_backend.py PRELUDE)
        | {"_logsumexp", "_log_softmax", "_sigmoid", "_xlogy", "_erf", "_softplus", "_var"}
        | CALL_KEYWORDS
    )
    API_OK = frozenset({"input"})  # builtins a public argument may keep as its name

    def __init__(self, reserved=frozenset()):
        self.map: dict[tuple[str, str], str] = {}
        self.used: set[str] = set(reserved)

    def copy(self) -> Names:
        """A nested scope: the names given so far stay taken and keep their keys."""
        out = Names(self.used)
        out.map = dict(self.map)
        return out

    def fresh(self, base: str) -> str:
        """An unused Python name from `base` (for a name of the emitter's own)."""
        name = base
        if name.startswith("__") and name.endswith("__"):
            name = "u" + name  # never a dunder: those mean something to Python
        while name in self.used:
            name += "_"
        self.used.add(name)
        return name

    def __call__(self, kind: str, name: str, base: str | None = None) -> str:
        """The identifier of value `name` of `kind` (given once, on first use)."""
        key = (kind, name)
        if key not in self.map:
            base = base or name
            assert base.isidentifier(), base
            self.map[key] = self.fresh(base)
        return self.map[key]

    def claim(self, kind: str, names) -> None:
        """Give several names at once, those free as written first: with `lambda` and
        `lambda_` both declared, `lambda_` keeps its name and `lambda` becomes `lambda__`."""
        names = list(dict.fromkeys(names))
        for n in names:
            if n not in self.used and not (n.startswith("__") and n.endswith("__")):
                self(kind, n)
        for n in names:
            self(kind, n)


def public_names(inputs: list[str], params: list[str]) -> dict[str, str]:
    """Declared input and param names -> the Python names of the generated signature. The
    same for every backend and variant; compiled functions accept the declared names too
    (lossdsl/compiled.py), so `fn(x, **{"lambda": 2.0})` works where `lambda` cannot be one."""
    api = api_names(inputs, params)
    return {n: api.map[("var", n)] for n in [*inputs, *params]}


def api_names(inputs, params) -> Names:
    api = Names(Names.RESERVED - Names.API_OK)
    api.claim("var", [*inputs, *params])
    return api


def function_name(loss_name: str) -> str:
    """The Python name of a loss's function: `lambda_` for a loss named lambda, `max_` for one
    named max (a module-level def must not shadow what the generated code calls)."""
    return Names(Names.RESERVED | set(dir(builtins)))("fn", loss_name)
