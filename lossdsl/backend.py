"""Backend base: a template-driven emitter of standalone Python modules, and the registry.

A backend (backends/*_backend.py) is a `Target`: its imports, and one template per op name of
lossdsl/ops.py. This module does everything the targets share: layout (named dims -> axis numbers,
via lossdsl/layout.py), input validation against the declared types, variadic dims, param
checks, per-reduction tails, identifier mangling, literal and docstring escaping.

Generated code is straight-line: one line per IR equation, no loop over data, no IR at run time.
Nothing from the spec's text reaches the generated code except identifiers (validated by the
grammar and mangled here), numbers (formatted from Python values) and the docstring (escaped).
"""

from __future__ import annotations

import builtins
import importlib.util
import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lossdsl import constraints, layout
from lossdsl.empty import empty_policy, first_input_with, too_small_message
from lossdsl.errors import class_ids_message
from lossdsl.ir import Atom, Eqn, Lit, Program, Var, index_sources, unit_dims
from lossdsl.ops import OPS
from lossdsl.resources import resource_dir
from lossdsl.types import Dim, fmt_dims

INFIX = frozenset({"add", "sub", "mul", "div", "pow", "neg", "eq", "ne", "lt", "le", "gt", "ge"})
ALIASES = frozenset({"rename", "size"})  # no line of code: a new name for an existing value

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
            return f"{x}[{i}]"
        if f == "axis":
            k, ia = c.attrs["k"], c.attrs["i"]
            idx = f"{np_like}.expand_dims({ia}, {k})"
            return f"{np_like}.take_along_axis({x}, {idx}, axis={k}).squeeze({k})"
        xb, ib = c.attrs["xb"], c.attrs["ib"]
        return f"{np_like}.take_along_axis({xb}, {ib}[..., None], axis=-1)[..., 0]"

    return gather


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
    # Precision policy: float16/bfloat16 inputs are computed in float32, the result is returned
    # in the input's dtype. `is_half` tests an input, `upcast` lifts it, `out_cast` casts back.
    is_half: str | None = None
    upcast: str | None = None
    out_cast: str | None = None
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
    extra: dict[str, str] = field(default_factory=dict)


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


# ---- literal and identifier hygiene ------------------------------------------------------


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
    that is not printable but a newline or a tab: NUL (no source may hold one), lone
    surrogates (not encodable), and the line breaks that Python's tokenizer does not know but
    str.splitlines does (CR, form feed, NEL, U+2028, ...), which would shift the module's
    line numbers."""
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
        | {"LossInputError", "LossParamError", "ValueError", "AssertionError"}
        | {"True", "False", "None"}
        | {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals"}
        | {"locals", "vars", "breakpoint", "input", "exit", "quit", "help", "type", "object"}
        # sharded modules (ShardTarget): the world size, the rank and the helpers
        | {"world", "rank", "_AllGather", "_GradScale", "_sizes_differ"}
        # the targets' module-level helpers (Target.helpers)
        | {"_ids_out_of_range", "_eigvalsh"}
        # the numpy reference module's helpers (numpy_ref.PRELUDE)
        | {"_logsumexp", "_log_softmax", "_sigmoid", "_xlogy", "_erf", "_softplus"}
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
    (lossdsl/compiler.py), so `fn(x, **{"lambda": 2.0})` works where `lambda` cannot be one."""
    api = _api_names(inputs, params)
    return {n: api.map[("var", n)] for n in [*inputs, *params]}


def _api_names(inputs, params) -> Names:
    api = Names(Names.RESERVED - Names.API_OK)
    api.claim("var", [*inputs, *params])
    return api


def function_name(loss_name: str) -> str:
    """The Python name of a loss's function: `lambda_` for a loss named lambda, `max_` for one
    named max (a module-level def must not shadow what the generated code calls)."""
    return Names(Names.RESERVED | set(dir(builtins)))("fn", loss_name)


# ---- module emission ----------------------------------------------------------------------


def module_source(target: Target, programs: list[Program], doc: str) -> str:
    """The standalone module for one spec: one function per combination of absent optional
    inputs and zero-valued params (so what is absent costs nothing), and the public function
    that picks one."""
    main = max(programs, key=lambda p: (len(p.inputs), len(p.params)))
    fname = function_name(main.name)
    imports = target.imports + (target.shard.imports if main.shard is not None else ())
    lines = [docstring(doc or fname), "", *imports, ""]
    lines += [
        "",
        "class LossInputError(ValueError):",
        '    """A tensor that does not match the declared input type."""',
        "",
        "",
        "class LossParamError(ValueError):",
        '    """A param value that violates its declared constraint."""',
    ]
    full = _all_inputs(programs)
    sharded = main.shard is not None
    if sharded and target.shard is None:
        raise NotImplementedError(f"the {target.name} backend has no distributed mode")
    # Specs with index inputs take check_indices=True: class ids are range-checked where they
    # are used (a wrong id is a crash in torch and a silently clamped gather in jax).
    checks = any(d.var.type.of is not None for d in main.inputs)
    # The module's print context: the public names of inputs and params (shared by every
    # function), then the module-level functions, then (in a copy per function) its locals.
    names = _api_names([n for n, _ in full], [q.var.name for q in main.params])
    names.used.add(fname)
    body: list[str] = []
    if len(programs) == 1:
        body += ["", *emit_function(target, main, fname, full, True, doc, names, checks)]
    else:
        variants = []
        for prog in programs:
            parts = [f"no_{a}" for a in prog.absent] + [f"{z}_0" for z in prog.zeros]
            variants.append((prog, names.fresh(f"_{fname}__" + ("__".join(parts) or "general"))))
        for prog, vname in variants:
            body += [
                "",
                *emit_function(target, prog, vname, full, False, "", names, checks),
                "",
            ]
        body += ["", *_dispatcher(target, main, fname, full, variants, doc, names, checks)]
    if any("_prod(" in ln for ln in body):
        lines += ["", "", "def _prod(shape):", "    n = 1", "    for k in shape:", "        n *= k"]
        lines += ["    return n", ""]
    for name, code in target.helpers:  # the target's own helpers, where used
        if any(f"{name}(" in ln for ln in body):
            lines += ["", "", *code.strip("\n").splitlines(), ""]
    for name, code in target.shard.helpers if sharded else ():
        if any(f"{name}." in ln or f"{name}(" in ln for ln in body):
            lines += ["", "", *code.strip("\n").splitlines(), ""]
    return "\n".join(lines + body) + "\n"


def _shard_kwargs(prog: Program, target: Target) -> list[str]:
    return list(target.shard.kwargs) if prog.shard is not None else []


def _all_inputs(programs: list[Program]) -> list[tuple[str, bool]]:
    """Every declared input in order, and whether it is optional."""
    first = max(programs, key=lambda p: len(p.inputs))
    return [(d.var.name, d.optional) for d in first.inputs]


def _signature(
    prog: Program, full: list[tuple[str, bool]], names: Names, checks: bool, shard=()
) -> str:
    ins = [names("var", n) + ("=None" if opt else "") for n, opt in full]
    ps = [f"{names('var', p.var.name)}={py_literal(p.default)}" for p in prog.params]
    ps += [f'reduction="{prog.default_reduction}"'] + (["check_indices=True"] if checks else [])
    return ", ".join(ins + ["*"] + ps + list(shard))


def _dispatcher(target, main, fname, full, variants, doc, names: Names, checks) -> list[str]:
    """Pick the variant for this call: which optional inputs were passed, which specialized
    params are the number 0 (a traced or tensor value takes the general variant)."""
    names = names.copy()
    general = max((p for p, _ in variants), key=lambda p: len(p.params))
    shard = _shard_kwargs(general, target)
    sig = _signature(general, full, names, checks, shard)
    out = [f"def {fname}({sig}):", docstring(doc or fname, "    ")]
    optional = [n for n, opt in full if opt]
    for prog, vname in variants:
        absent = set(prog.absent)
        v = lambda n: names("var", n)  # noqa: E731
        conds = [f"{v(n)} is None" if n in absent else f"{v(n)} is not None" for n in optional]
        conds += [f"isinstance({v(z)}, (int, float)) and {v(z)} == 0" for z in prog.zeros]
        params = [f"{v(p.var.name)}={v(p.var.name)}" for p in prog.params]
        tail = ["reduction=reduction"] + (["check_indices=check_indices"] if checks else [])
        tail += [f"{k}={k}" for k in (s.split("=")[0] for s in shard)]
        call = ", ".join([v(d.var.name) for d in prog.inputs] + params + tail)
        if conds:
            out.append(f"    if {' and '.join(conds)}:")
            out.append(f"        return {vname}({call})")
        else:
            out.append(f"    return {vname}({call})")
            return out
    out.append("    raise AssertionError('unreachable')")
    return out


def emit_function(
    target, prog, fname, full, public: bool, doc="", names: Names | None = None, checks=False
) -> list[str]:
    if names is None:
        names = _api_names([n for n, _ in full], [q.var.name for q in prog.params])
    return _FunctionEmitter(target, prog, fname, names, checks).emit(full, public, doc)


class _FunctionEmitter:
    def __init__(self, target: Target, prog: Program, fname: str, names: Names, checks: bool):
        self.t = target
        self.p = prog
        self.fname = fname
        self.checks = checks and target.index_out_of_range is not None
        self.checked: set = set()  # index vars already range-checked
        self.masked: dict = {}  # (index, ignore_index) -> the name of the masked copy checked
        self.odt = False  # whether the output is cast back to the input dtype (odt)
        self.label = prog.name  # what messages call the loss (fname may be a variant's)
        dims = {d.name for i in prog.inputs for d in i.var.type.dims}
        dims |= {i.var.type.of.name for i in prog.inputs if i.var.type.of is not None}
        dims |= {d.name for d in unit_dims(prog)}
        # Inputs and params keep the module-wide names of the public signature, so the
        # dispatcher and every variant agree; every other name is this function's own (and
        # shadows no builtin: the module's names are public only).
        self.names = names.copy()
        self.names.used |= set(dir(builtins))
        # sharded (lossdsl/shard.py): B's rows here, the whole batch's size for B', B'', ...
        self.shard = prog.shard
        if self.shard is not None:
            self.global_size = self.names("dim_all", self.shard, f"{self.shard}_all")
        self.size: dict[str, str] = {}  # dim base name -> Python name of its size
        for d in sorted(dims):
            self.size[d] = self.names("dim", d, d if d.isidentifier() else "n")
        self.expr: dict[str, str] = {}  # IR var -> Python expression (aliases included)
        self.scalar: set[str] = set()  # IR vars that hold Python numbers at run time
        self.lines: list[str] = []

    # -- helpers
    def var(self, name: str) -> str:
        """The Python name of IR value `name` (an input, a param, an equation's result)."""
        return self.names("var", name)

    def ref(self, a: Atom) -> str:
        return py_literal(a.value) if isinstance(a, Lit) else self.expr[a.name]

    def is_scalar(self, a: Atom) -> bool:
        return isinstance(a, Lit) or a.name in self.scalar

    def dim_size(self, d: Dim) -> str:
        n = self.size[d.name]
        if d.name == self.shard and d.primes:
            n = self.global_size
        return f"({n} - {d.cut})" if d.cut else n

    def aligned(self, a: Atom, out_dims: tuple[Dim, ...]) -> str:
        if isinstance(a, Lit) or not a.type.dims:
            return self.ref(a)
        al = layout.align(a.type.dims, out_dims)
        x = self.ref(a)
        if al.perm is not None:
            x = self.t.permute.format(x=x, perm=al.perm)
        if al.index:
            x = f"{x}[{', '.join(':' if i == ':' else 'None' for i in al.index)}]"
        return x

    def line(self, text: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + text)

    # -- the function
    def emit(self, full, public: bool, doc: str) -> list[str]:
        p, n = self.p, self.var
        for i in p.inputs:
            self.expr[i.var.name] = n(i.var.name)
        for q in p.params:
            self.expr[q.var.name] = n(q.var.name)
            self.scalar.add(q.var.name)
        flag = ["check_indices"] if self.checks else []
        shard = _shard_kwargs(p, self.t)
        if public:
            head = f"def {self.fname}({_signature(p, full, self.names, bool(flag), shard)}):"
        else:
            ins = [n(d.var.name) for d in p.inputs]
            ps = [n(q.var.name) for q in p.params] + ["reduction"] + flag
            ps += [k.split("=")[0] for k in shard]
            head = f"def {self.fname}({', '.join(ins + ['*'] + ps)}):"
        out = [head]
        if public:
            out.append(docstring(doc or self.fname, "    "))
        self._validate_reduction()
        self._param_types()
        self._checks()
        if self.shard is not None:
            for ln in self.t.shard.prelude:
                self.line(ln.replace("{label}", self.label))
        self._inputs()
        self._body()
        return out + self._drop_unused_bindings()

    def _drop_unused_bindings(self) -> list[str]:
        """Dim sizes, fdt and dev are bound for every input; keep the ones the code uses."""
        optional = {"fdt", "dev", *self.size.values()}
        if self.shard is not None:
            optional |= {self.global_size, "world", "rank"}
        lines = list(self.lines)
        for k, ln in reversed(list(enumerate(lines))):
            m = re.match(r"\s*(\w+) = ", ln)
            if m and m.group(1) in optional:
                name = m.group(1)
                rest = lines[:k] + lines[k + 1 :]
                if not any(re.search(rf"\b{name}\b", r) for r in rest):
                    del lines[k]
        return lines

    def _validate_reduction(self) -> None:
        self.line('if reduction not in ("none", "sum", "mean"):')
        self.line(
            f"raise LossParamError(f\"{self.label}: reduction must be 'none', 'sum' or "
            f"'mean', got {{reduction!r}}\")",
            2,
        )

    def _param_types(self) -> None:
        """Each param as a Python number `self.value[name]` for the checks: itself, or the
        value of a numpy scalar or 0-d array/tensor (None while traced). More than one element
        is an error (a param is one number, never broadcast). A number of the wrong kind (2.5
        for an int, True for a float) would otherwise compute something: ignore_index=2.5
        ignores no class, and F.cross_entropy would take it as 2."""
        wrong = {"int": "(bool, float)", "float": "bool"}
        self.value: dict[str, str] = {}
        for q in self.p.params:
            name = q.var.name
            if q.var.type.dtype not in ("int", "float", "bool") or name not in self.expr:
                continue
            x = self.expr[name]
            v = self.value[name] = self.names.fresh(f"{x}_v")
            self.line(f"{v} = {x}")
            self.line(f"if not isinstance({x}, (int, float)):")
            self.line(f"if tuple({x}.shape) != ():", 2)
            self.line(
                f"raise LossParamError(f\"{self.label}: param '{name}' must be a scalar (a "
                f'number or a 0-d tensor), got shape {{tuple({x}.shape)}}")',
                3,
            )
            self.line(f"{v} = None if {self.t.param_traced.format(x=x)} else {x}.item()", 2)
            if self.t.param_foreign is not None:
                self.line(f"if {self.t.param_foreign.format(x=x)}:", 2)
                self.line(f"{x} = {v}", 3)
            kinds = wrong.get(q.var.type.dtype)
            if kinds is None:
                continue
            self.line(f"if isinstance({v}, {kinds}):")
            self.line(
                f"raise LossParamError(f\"{self.label}: param '{name}' must be "
                f'{q.var.type.dtype}, got {{{v}!r}}")',
                2,
            )

    def _checks(self) -> None:
        """Each constraint on the params' Python values (lossdsl/constraints.py), one line per
        equation; skipped while a value it needs is traced."""
        for chk in self.p.checks:
            params = sorted(
                {a.name for e in chk.eqns for a in e.args if isinstance(a, Var)}
                - {e.out.name for e in chk.eqns}
            )
            if isinstance(chk.ok, Var) and not chk.eqns:
                params = [chk.ok.name]
            guard = " and ".join(f"{self.value[q]} is not None" for q in params)
            indent = 1
            if guard:
                self.line(f"if {guard}:")
                indent = 2
            if any(constraints.uses_math(e.op) for e in chk.eqns):
                self.line("import math", indent)
            local: dict[str, str] = {}

            def r(a):
                if isinstance(a, Lit):
                    return py_literal(a.value)
                return local.get(a.name) or self.value[a.name]

            for e in chk.eqns:
                code = SCALAR_TEMPLATES[e.op].format(*(r(a) for a in e.args))  # checked ops
                if e.out == chk.ok:  # the last one goes in the `if`
                    local[e.out.name] = f"({code})"
                    continue
                local[e.out.name] = self.names.fresh(e.out.name)
                self.line(f"{local[e.out.name]} = {code}", indent)
            shown = ", ".join(f"{q}={{{self.value[q]}!r}}" for q in params)
            text = chk.text.replace("{", "{{").replace("}", "}}").replace('"', "'")
            text = text.replace("\\", "/")
            self.line(f"if not {r(chk.ok)}:", indent)
            self.line(
                f'raise LossParamError(f"{self.label}: params must satisfy `{text}`, got {shown}")',
                indent + 1,
            )

    def _inputs(self) -> None:
        """Check each input's rank, dtype and dim sizes; bind dim sizes; flatten *S."""
        t, n = self.t, self.var
        bound: set[str] = set()
        shapes: dict[str, str] = {}  # variadic dim -> name of its original shape tuple
        fdt = None
        for d in self.p.inputs:
            x, ty = n(d.var.name), d.var.type
            if t.not_array:  # a list, None, a str or a Python number: never an attribute error
                self.line(f"if {t.not_array.format(x=x)}:")
                self.line(
                    f"raise LossInputError(f\"{self.label}: input '{d.var.name}' must be "
                    f"{t.array_kind} ({ty}), got {{{x}!r:.60}}; convert it with "
                    f'{t.array_hint}")',
                    2,
                )
            if t.as_array:
                self.line(f"{x} = {t.as_array.format(x=x)}")
            kind = "index" if ty.of is not None else ty.dtype
            test = {"float": t.is_float, "int": t.is_int, "index": t.is_int, "bool": t.is_bool}
            self.line(f"if not {test[kind].format(x=x)}:")
            self.line(
                f"raise LossInputError(f\"{self.label}: input '{d.var.name}' must be {ty}, "
                f'got dtype {{{x}.dtype}}")',
                2,
            )
            if ty.dtype == "float" and t.float_cast:
                self.line(f"{x} = {t.float_cast.format(x=x)}")
            if ty.dtype == "float" and t.upcast:
                if fdt is None:
                    self.line(f"odt = {x}.dtype")
                    self.odt = True
                self.line(f"if {t.is_half.format(x=x)}:")
                self.line(f"{x} = {t.upcast.format(x=x)}", 2)
            if ty.dtype == "float" and fdt is None:
                fdt = f"{x}.dtype"
                self.line(f"fdt = {fdt}")
                if t.device:
                    self.line(f"dev = {t.device.format(x=x)}")
            dims = ty.dims
            var_i = next((k for k, dm in enumerate(dims) if dm.variadic), None)
            if var_i is None:
                self.line(f"if {x}.ndim != {len(dims)}:")
                want = f"{len(dims)} dim{'s' if len(dims) != 1 else ''}"
            else:
                self.line(f"if {x}.ndim < {len(dims) - 1}:")
                want = f"at least {len(dims) - 1} dim{'s' if len(dims) != 2 else ''}"
            self.line(
                f"raise LossInputError(f\"{self.label}: input '{d.var.name}' must be {ty} "
                f'({want}), got shape {{tuple({x}.shape)}}")',
                2,
            )
            tail = len(dims) - 1 - var_i if var_i is not None else 0
            for k, dm in enumerate(dims):
                if var_i is not None and k > var_i:
                    pos = f"{x}.ndim - {len(dims) - k}"
                else:
                    pos = str(k)
                if dm.variadic:
                    stop = f"{x}.ndim - {tail}" if tail else ""
                    piece = f"tuple({x}.shape[{k}:{stop}])"
                    sz = self.size[dm.name]
                    if dm.name not in shapes:
                        shapes[dm.name] = self.names("shape", dm.name, dm.name + "_shape")
                        self.line(f"{shapes[dm.name]} = {piece}")
                        self.line(f"{sz} = _prod({shapes[dm.name]})")
                        bound.add(dm.name)
                    else:
                        self._mismatch(piece, shapes[dm.name], dm, d.var.name, shape=True)
                    continue
                got = f"{x}.shape[{pos}]"
                if dm.name not in bound:
                    self.line(f"{self.size[dm.name]} = {got}")
                    bound.add(dm.name)
                    if dm.name == self.shard:
                        self.line(f"{self.global_size} = {self.size[dm.name]} * world")
                        self._equal_sizes(self.size[dm.name], x, d.var.name)
                else:
                    self._mismatch(got, self.dim_size(dm), dm, d.var.name)
            if var_i is not None:
                new = f"tuple({x}.shape[:{var_i}]) + ({self.size[dims[var_i].name]},)"
                if tail:
                    new += f" + tuple({x}.shape[{x}.ndim - {tail}:])"
                self.line(f"{x} = {x}.reshape({new})")
        if fdt is None:
            self.line(f"fdt = {t.float_dtype_default}")
            if t.device:
                first = self.p.inputs[0].var.name if self.p.inputs else None
                self.line(f"dev = {t.device.format(x=n(first)) if first else 'None'}")
        for dm in unit_dims(self.p):  # a helper's *S with no axes: size 1, shape ()
            self.line(f"{self.size[dm.name]} = 1")
            shapes[dm.name] = "()"
            bound.add(dm.name)
        self.variadic_shapes = shapes
        missing = {d.name for e in self.p.eqns for d in _dims_needed(e) if d.name not in bound}
        if missing:
            raise NotImplementedError(f"dims with no input to take their size from: {missing}")
        self._empty()

    def _empty(self) -> None:
        """Empty and too-small dims (lossdsl/empty.py): an empty per-element loss returns its
        declared empty values before any work; a reduced dim below what its formula needs is
        a LossInputError. Integer comparisons of sizes: static under jit and torch.compile."""
        pol = empty_policy(self.p)
        out = list(dict.fromkeys(self.dim_size(d) for d in pol.out_dims))
        if out:
            self.line(f"if {' or '.join(f'{n} == 0' for n in out)}:")
            floats = [d.var.name for d in self.p.inputs if d.var.type.dtype == "float"]
            zero = ""
            if self.t.empty_grad and floats:
                zero = " + " + " + ".join(self.t.empty_grad.format(x=self.var(x)) for x in floats)
            none = self.p.output("none")
            modes = ("none", "sum", "mean")
            for k, mode in enumerate(modes):
                res = self.p.output(mode)
                if k < len(modes) - 1:
                    self.line(f'if reduction == "{mode}":', 2)
                value = pol.mean_empty if mode == "mean" and res != none else 0.0
                if isinstance(res, Lit):
                    value = res.value
                self.line(f"return {self._filled(res, value, zero)}", 3 if k < 2 else 2)
        outs = set(out)
        for need in pol.needs:
            n = self.dim_size(need.dim)
            if need.min_size == 1 and n in outs:
                continue  # an empty per-element loss returned above
            cond = f"{n} < {need.min_size}"
            if need.when is not None:
                alts = []
                for conj in need.when:
                    terms = []
                    for q, v in conj:
                        x = self.expr[q]  # a traced or tensor bool: as if both branches ran
                        pick = x if v else f"not {x}"
                        terms.append(f"({pick} if isinstance({x}, bool) else True)")
                    alts.append(" and ".join(terms))
                cond += " and (" + " or ".join(f"({a})" for a in alts) + ")"
            inp = first_input_with(self.p, need.dim)
            msg = too_small_message(self.label, need, f"{{{n}}}", inp)
            self.line(f"if {cond}:")
            self.line(f'raise LossInputError(f"{msg}")', 2)

    def _filled(self, res: Atom, value, zero: str) -> str:
        """An output of the empty case: `res`'s shape (the empty per-element loss, or a
        reduction's scalar) and dtype, filled with `value`; float results keep the graph."""
        dims = res.type.dims if isinstance(res, Var) else ()
        shape = " + ".join(
            self.variadic_shapes[d.name] if d.variadic else f"({self.dim_size(d)},)" for d in dims
        )
        dtype = res.type.dtype
        code = self.t.templates["fill"].format(
            shape=shape or "()", value=py_literal(value), dtype=self._dtype(dtype)
        )
        if dtype != "float":
            return code
        code += zero
        return self.t.out_cast.format(x=f"({code})") if self.odt else code

    def _equal_sizes(self, n: str, x: str, inp: str) -> None:
        """Every rank must hold as many rows: all_gather takes equal shards, and a rank with
        fewer would abort (gloo) or hang (NCCL) in the collective instead of raising."""
        cond = self.t.shard.sizes_differ
        if cond is None:
            return
        self.line(f"if {cond.format(n=n, x=x)}:")
        self.line(
            f"raise LossInputError(f\"{self.label}: input '{inp}' has {{{n}}} rows along "
            f"{self.shard} on this rank and another rank has a different number; a sharded "
            "loss needs the same local batch size on every rank (all_gather takes equal "
            "shards): pad the last batch (DistributedSampler does) or drop it "
            '(drop_last=True), or pass check_sizes=False to skip this check")',
            2,
        )

    def _mismatch(self, got: str, want: str, dm: Dim, inp: str, shape: bool = False) -> None:
        self.line(f"if {got} != {want}:")
        what = "sizes" if shape else "size"
        self.line(
            f'raise LossInputError(f"{self.label}: dim {dm} has {what} {{{want}}} from an '
            f"earlier input but {{{got}}} in '{inp}'\")",
            2,
        )

    def _body(self) -> None:
        p = self.p
        needed = {m: _deps(p, a) for m, a in p.outputs}
        shared = set.intersection(*needed.values()) if needed else set()
        for e in p.eqns:
            if e.out.name in shared:
                self._eqn(e)
        order = [m for m in ("none", "sum", "mean") if m != p.default_reduction]
        order.append(p.default_reduction)
        for k, mode in enumerate(order):
            last = k == len(order) - 1
            indent = 1 if last else 2
            if not last:
                self.line(f'if reduction == "{mode}":')
            checked = set(self.checked)  # a check inside one branch does not cover the next
            for e in p.eqns:
                if e.out.name in needed[mode] and e.out.name not in shared:
                    self._eqn(e, indent)
            res = self.ref(p.output(mode))
            if mode == "none":
                res = self._unflatten(p.output(mode), res)
            if self.odt and not self.is_scalar(p.output(mode)):  # a Python number has no dtype
                res = self.t.out_cast.format(x=res)
            self.line(f"return {res}", indent)
            self.checked = checked

    def _unflatten(self, a: Atom, expr: str) -> str:
        if isinstance(a, Lit) or not any(d.variadic for d in a.type.dims):
            return expr
        parts = [
            self.variadic_shapes[d.name] if d.variadic else f"({self.size[d.name]},)"
            for d in a.type.dims
        ]
        return f"{expr}.reshape({' + '.join(parts)})"

    def _eqn(self, e: Eqn, indent: int = 1) -> None:
        out = e.out.name
        if e.op == "rename":
            self.expr[out] = self.ref(e.args[0])
            if self.is_scalar(e.args[0]):
                self.scalar.add(out)
            return
        if e.op == "size":
            self.expr[out] = self.dim_size(e.attr("dim"))
            self.scalar.add(out)
            return
        if self.checks and e.op in ("gather", "cross_entropy", "onehot"):
            self._index_check(e.args[0 if e.op == "onehot" else 1], indent)
        if self.checks and e.op == "cross_entropy_ignore":
            self._index_check(e.args[1], indent, ignore=e.args[2])
        ctx = self._context(e)
        tmpl = self.t.templates[e.op]
        if tmpl == "{0}":  # the identity in this framework (jax's shard_result): an alias
            self.expr[out] = ctx.args[0]
            return
        code = tmpl(ctx) if callable(tmpl) else ctx.fmt(tmpl)
        if e.op == "where" and self.t.select and self._selects(e):
            code = self.t.select.format(ctx.raw[0], *ctx.args[1:])
        name = self.var(out)
        self.expr[out] = name
        if e.op in INFIX and all(self.is_scalar(a) for a in e.args):
            self.scalar.add(out)
        self.line(f"{name} = {code}", indent)

    def _selects(self, e: Eqn) -> bool:
        """A where whose condition is a Python bool (a param) and whose branches already have
        the output's shape: a conditional expression."""
        c, a, b = e.args
        return (
            isinstance(c, Var)
            and c.name in self.scalar
            and all(isinstance(x, Var) and x.type.dims == e.out.type.dims for x in (a, b))
        )

    def _index_check(self, i: Atom, indent: int, ignore: Atom | None = None) -> None:
        """Raise when an index used here (a class id from an input) is outside its dim; with
        `ignore`, that value (an ignore_index) is allowed too."""
        if not isinstance(i, Var) or i.type.of is None:
            return
        key = i.name if ignore is None else (i.name, str(ignore))
        if key in self.checked:
            return
        self.checked.add(key)
        sources = index_sources(self.p, i)
        if not sources:  # argmax and friends: in range by construction
            return
        x, n = self.ref(i), self.dim_size(i.type.of)
        cond = "check_indices and "
        if ignore is not None:  # the check sees ignored entries as class 0
            kept = INFIX_TEMPLATES["ne"].format(x, self.ref(ignore))
            if key not in self.masked:  # one name in every branch that checks
                self.masked[key] = self.names.fresh(f"{x if x.isidentifier() else i.name}_checked")
            masked = self.masked[key]
            self.line("if check_indices:", indent)
            self.line(f"{masked} = {self.t.templates['where'].format(kept, x, 0)}", indent + 1)
            x, indent, cond = masked, indent + 1, ""
        msg = class_ids_message(
            self.label, sources, i.type.of, f"{{{n}}}", f"{{int({x}.min())}}", f"{{int({x}.max())}}"
        )
        self.line(f"if {cond}{self.t.index_out_of_range.format(i=x, n=n)}:", indent)
        self.line(f'raise LossInputError(f"{msg}")', indent + 1)

    def _context(self, e: Eqn) -> EqnContext:
        op = OPS[e.op]
        raw = [self.ref(a) for a in e.args]
        if op.kind == "elementwise":
            args = [self.aligned(a, e.out.type.dims) for a in e.args]
            if e.op not in INFIX:
                # A Python number becomes a 0-d tensor; of the float dtype when the op computes
                # in floats (log(size(B)) must not run in torch's default float32).
                out_float = e.out.type.dtype == "float"
                args = [
                    self.t.as_tensor.format(
                        x=s,
                        dtype=self._dtype(
                            "float" if out_float and a.type.dtype == "int" else a.type.dtype
                        ),
                    )
                    if isinstance(a, Var) and a.name in self.scalar
                    else s
                    for a, s in zip(e.args, args)
                ]
        else:
            args = list(raw)
        attrs: dict = {"fdt": "fdt"}
        a0 = e.args[0] if e.args else None
        for k, v in e.attrs:
            if k == "over" and e.op == "contract":
                continue  # its einsum spec names the summed dims, which may be b's alone
            if k == "over":
                ax = layout.axes(a0.type.dims, v)
                attrs["axes"] = ax[0] if len(ax) == 1 else ax
                attrs["axis"] = ax[0]
                attrs["all"] = len(ax) == len(a0.type.dims)
            elif k == "dim":
                attrs["n"] = self.dim_size(v)
            elif k == "dims" and e.op != "transpose":
                attrs["shape"] = "(" + "".join(self.dim_size(d) + ", " for d in v) + ")"
                attrs["n"] = self.dim_size(v[0]) if v else "1"  # a 0-d fill: a folded result
            elif k == "dtype":
                attrs["dtype"] = self._dtype(v)
            elif k in ("value", "empty"):
                attrs[k] = py_literal(v)
            elif k == "reduce":
                attrs[k] = v
            elif k == "ddof":
                attrs["ddof"] = int(v)
        if e.op == "onehot":
            # the class axis k, and the arange shaped to broadcast against idx.unsqueeze(k)
            k = e.out.type.dims.index(e.attr("dim"))
            trail = len(e.out.type.dims) - k - 1
            attrs["k"] = k
            attrs["column"] = (
                "(" + ", ".join([attrs["n"]] + ["1"] * trail) + ("," if not trail else "") + ")"
            )
        if e.op == "eigvalsh":
            attrs.update(self._matrix_last(e))
        if e.op == "expand":
            new = e.attr("dims")
            attrs["shape"] = "(" + "".join(self.dim_size(d) + ", " for d in e.out.type.dims) + ")"
            attrs["nones"] = ", ".join(["None"] * len(new))
        if e.op == "transpose":
            attrs["perm"] = layout.axes(a0.type.dims, e.attr("dims"))
        if e.op == "contract":
            attrs["spec"] = layout.einsum_spec(
                e.args[0].type.dims, e.args[1].type.dims, e.out.type.dims
            )
        if e.op in ("gather", "cross_entropy"):
            attrs.update(self._gather(e))
        if OPS[e.op].kind == "collective":
            attrs.update(self._collective(e))
        return EqnContext(e, args, raw, attrs)

    def _collective(self, e: Eqn) -> dict:
        """The sharded dim's axis in the operand, the local and global sizes, the kind."""
        local = Dim(self.shard)
        out = {"nl": self.dim_size(local), "ng": self.dim_size(local.prime())}
        out["kind"] = e.attr("kind")
        if e.op in ("all_gather", "shard_slice"):
            out["axis"] = e.args[0].type.dims.index(e.attr("dim"))
        if e.op == "shard_eye":
            out["local_first"] = e.attr("dims")[0] == e.attr("local")
        return out

    def _matrix_last(self, e: Eqn) -> dict:
        """A matrix op on (D, D'): the operand with those two axes last ({mat}), and how to
        move the result's trailing D back to where the output type has it ({unperm})."""
        (x,) = e.args
        d, d2 = e.attr("over")
        rest = tuple(k for k in x.type.dims if k not in (d, d2))
        mat = self.ref(x)
        if x.type.dims != rest + (d, d2):
            perm = tuple(x.type.dims.index(k) for k in rest + (d, d2))
            mat = self.t.permute.format(x=mat, perm=perm)
        got = rest + (d,)
        want = e.out.type.dims
        unperm = None if got == want else tuple(got.index(k) for k in want)
        return {"mat": mat, "unperm": unperm}

    def _dtype(self, dtype: str) -> str:
        return {"float": "fdt", "int": self.t.int_dtype, "bool": self.t.bool_dtype}[dtype]

    def _gather(self, e: Eqn) -> dict:
        """How to pick x along the index's `of` dim; the target template picks the form."""
        x, idx = e.args
        of = idx.type.of
        rest = tuple(d for d in x.type.dims if d != of)
        if x.type.dims == (of,):
            return {"form": "take"}
        if set(idx.type.dims) == set(rest):
            i = self.aligned(idx, rest) if idx.type.dims != rest else self.ref(idx)
            return {"form": "axis", "k": x.type.dims.index(of), "i": i}
        outd = e.out.type.dims
        xa = self.aligned(x, outd + (of,))
        shape_x = "(" + "".join(self.dim_size(d) + ", " for d in outd + (of,)) + ")"
        shape_i = "(" + "".join(self.dim_size(d) + ", " for d in outd) + ")"
        return {
            "form": "general",
            "xb": self.t.broadcast.format(x=xa, shape=shape_x),
            "ib": self.t.broadcast.format(x=self.aligned(idx, outd), shape=shape_i),
        }


def _dims_needed(e: Eqn):
    for k, v in e.attrs:
        if k == "dim":
            yield v
        elif k == "dims":
            yield from v
    if e.op == "gather":
        yield from e.out.type.dims


def _deps(p: Program, a: Atom) -> set[str]:
    """The equations (by output name) an output needs."""
    producer = {e.out.name: e for e in p.eqns}
    need: set[str] = set()
    stack = [a.name] if isinstance(a, Var) else []
    while stack:
        v = stack.pop()
        if v in need or v not in producer:
            continue
        need.add(v)
        stack.extend(x.name for x in producer[v].args if isinstance(x, Var))
    return need


# ---- registry -------------------------------------------------------------------------

BACKENDS = ("torch", "jax", "numpy")
_FILES = {"torch": "torch_backend", "jax": "jax_backend", "numpy": "numpy_ref"}
_LOADED: dict[str, object] = {}


def load_backend(name: str):
    """The backend module, loaded from the shipped backends/ directory by path (it lives beside
    the package in a checkout and inside it in a wheel)."""
    if name not in _LOADED:
        path = resource_dir("backends") / f"{_FILES[name]}.py"
        spec = importlib.util.spec_from_file_location(f"lossdsl_backends.{_FILES[name]}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _LOADED[name] = mod
    return _LOADED[name]


def describe_dims(dims) -> str:
    return fmt_dims(tuple(dims))
