"""What every chunked schedule shares (lossdsl/schedules/vsliced.py, rows.py): the generated
sub-functions it runs and how it calls them.

A schedule cuts a spec's program into sub-programs (a statistic of one V-slice, a row value, a
block's total, the row function) and generates an ordinary function for each with the same
emitter as `compile` (`Modules`, `sub_program`). `call_sub` passes a sub-function its params
and the *carrier* inputs (a stride-0 float[D] that gives a dim its size). The array helpers
here work on torch tensors and jax arrays alike.
"""

from __future__ import annotations

import inspect

from lossdsl.codegen import (
    dims_needed,
    function_name,
    load_backend,
    load_module,
    module_source,
    public_names,
)
from lossdsl.ir import Atom, InputDecl, Program, Var, sizing_params
from lossdsl.types import Dim, TensorType


class Modules:
    """The generated modules of one chunked compile, deduplicated by source (the sum and the
    mean plans share their statistics). `names` lists (module, linecache filename) pairs: the
    compiler forgets them once nobody holds the compiled function (codegen.forget_modules)."""

    def __init__(self, backend: str):
        self.backend = backend
        self.fns: dict[str, object] = {}
        self.names: list[tuple[str, str]] = []

    def fn(self, prog: Program):
        """An ordinary generated function (torch or jax) for a sub-program."""
        src = module_source(load_backend(self.backend).TARGET, [prog], prog.doc)
        if src not in self.fns:
            mod = load_module(src, "chunked", prog.name, self.backend, self.names)
            fn = getattr(mod, function_name(prog.name))
            # the Python name of each param (`lambda` is `lambda_`): call_sub passes them by name
            names = public_names(
                [d.var.name for d in prog.inputs], [q.var.name for q in prog.params]
            )
            fn.param_names = {q.var.name: names[q.var.name] for q in prog.params}
            self.fns[src] = fn
        return self.fns[src]


def carrier_name(dim: str) -> str:
    return f"dim_{dim}_"


def sub_program(
    prog: Program, doc: str, eqns, inputs: list[Var], out: Atom, per=None, default="none"
) -> Program:
    """A sub-program of `prog` (named after it: its input checks speak of the spec). A dim
    that some equation needs (size(V), onehot over V, a fill) but no input carries comes from
    a *carrier* input float[D]: a stride-0 tensor of D's full size, passed at run time."""
    bound = {d.name for v in inputs for d in v.type.dims}
    carriers = {}
    for e in eqns:
        for d in dims_needed(e):
            if d.name not in bound and d.name not in carriers and not d.unit:
                # a variadic *S is carried as float[*S]: its axes' shape, not only their product
                dim = Dim(d.name, variadic=d.variadic)
                carriers[d.name] = Var(carrier_name(d.name), TensorType("float", (dim,)))
    if not carriers and not any(v.type.dtype == "float" for v in inputs):
        # a value of params and ints only (1 + sin(pa)) is computed in the dtype of the first
        # float input: a carrier gives it the logits' (else torch's default float32)
        fl = (d for i in prog.inputs if i.var.type.dtype == "float" for d in i.var.type.dims)
        d = next(fl, None)
        if d is not None:
            carriers[d.name] = Var(carrier_name(d.name), TensorType("float", (Dim(d.name),)))
    used = {a.name for e in eqns for a in e.args if isinstance(a, Var)} | {getattr(out, "name", "")}
    used |= set(sizing_params(eqns))  # a window's size=k: k sizes a dim, no operand reads it
    return Program(
        name=prog.name,
        doc=f"{prog.name}: {doc} (chunked schedule)",
        inputs=tuple(InputDecl(v) for v in list(inputs) + list(carriers.values())),
        params=tuple(q for q in prog.params if q.var.name in used),
        eqns=tuple(eqns),
        # `per`: the per-element loss `out` reduces (the row function's "none", so its empty
        # policy sees the rows); a call without reduction= gets `out`
        outputs=(("none", out if per is None else per), ("sum", out), ("mean", out)),
        default_reduction=default if per is not None else "none",
    )


def call_sub(fn, args: list, kw: dict, sizes: dict, carriers, checks: bool):
    """Call a generated sub-function: its params and carriers by keyword."""
    names = fn.signature.parameters if hasattr(fn, "signature") else _signature(fn)
    py = getattr(fn, "param_names", {})
    out = {py.get(k, k): v for k, v in kw.items() if py.get(k, k) in names}
    if "check_indices" in names:
        out["check_indices"] = checks
    for name in names:
        if name.startswith("dim_") and name.endswith("_") and name not in out:
            d = name[4:-1]  # a fixed-size dim (frames' 600 samples) is its own size
            out[name] = carriers(sizes.get("*" + d, int(d) if d.isdigit() else sizes[d]))
    return fn(*args, **out)


_SIGS: dict = {}


def _signature(fn):
    if fn not in _SIGS:
        _SIGS[fn] = inspect.signature(fn).parameters
    return _SIGS[fn]


def as_type(x, dtype: str, like, backend: str):
    """A row value as the chunk side reads it: a tensor of its IR dtype (a generated function
    returns a bool or int result as float, and a params-only value as a Python number)."""
    if backend == "torch":
        import torch

        want = {"bool": torch.bool, "int": torch.long, "float": like.dtype}[dtype]
        return torch.as_tensor(x, dtype=want, device=like.device)
    import jax.numpy as jnp

    want = {"bool": jnp.bool_, "int": jnp.int_, "float": like.dtype}[dtype]
    return jnp.asarray(x).astype(want)


def narrow(x, axis: int, lo: int, n: int):
    if hasattr(x, "narrow"):
        return x.narrow(axis, lo, n)
    return x[(slice(None),) * axis + (slice(lo, lo + n),)]


def array_module(backend: str):
    if backend == "torch":
        import torch

        return torch
    import jax.numpy as jnp

    return jnp


def traced(x) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def carrier_maker(backend: str, like):
    """float[D] of D's size at no memory: a stride-0 view of one zero (n: a size, or the
    shape of a variadic dim's axes)."""
    if backend == "torch":
        import torch

        zero = torch.zeros((), dtype=like.dtype, device=like.device)
        return lambda n: zero.expand(n)
    import jax.numpy as jnp

    return lambda n: jnp.broadcast_to(
        jnp.zeros((), like.dtype), n if isinstance(n, tuple) else (n,)
    )


def slices(total: int, chunk: int):
    return [(lo, min(total, lo + chunk)) for lo in range(0, total, chunk)]


def full_sizes(inputs: list[Var], logits: str, values: dict, logits_shape: tuple) -> dict:
    """Every dim's full size, from the inputs' shapes (a variadic dim: its axes' product)."""
    out: dict[str, int] = {}
    for var in inputs:
        x = values.get(var.name)
        shape = tuple(logits_shape) if var.name == logits else getattr(x, "shape", None)
        if shape is None:
            continue
        dims = var.type.dims
        k = len(shape) - (len(dims) - 1)  # the axes of a variadic dim
        pos = 0
        for dm in dims:
            n = 1
            for a in range(pos, pos + (k if dm.variadic else 1)):
                n *= int(shape[a]) if a < len(shape) else 1
            if dm.variadic:  # its axes' shape too, for a carrier of *S
                out.setdefault("*" + dm.name, tuple(int(x) for x in shape[pos : pos + k]))
            pos += k if dm.variadic else 1
            out.setdefault(dm.name, n)
    return out


class LazyFunction:
    """A torch.autograd.Function class built on first use (importing lossdsl does not import
    torch)."""

    def __init__(self, make):
        self.make, self.fn = make, None

    def apply(self, *args):
        if self.fn is None:
            self.fn = self.make()
        return self.fn.apply(*args)
