"""The input and param guards of a generated function, before any tensor work: reduction,
param kinds and constraints (on Python numbers), each input's array type, dtype, rank and dim
sizes (dims bound, variadic *S flattened), empty and too-small dims (lossdsl/empty.py), and
class-id range checks where ids are used. A mixin of the function emitter
(lossdsl/codegen/function.py): these methods write lines into its body."""

from __future__ import annotations

from lossdsl import constraints
from lossdsl.codegen.names import py_literal
from lossdsl.codegen.target import INFIX_TEMPLATES, SCALAR_TEMPLATES
from lossdsl.empty import (
    empty_policy,
    first_input_with,
    rank_message,
    split_message,
    too_small_message,
    windowed_variadics,
)
from lossdsl.errors import class_ids_message
from lossdsl.graph import index_sources
from lossdsl.ir import Atom, Eqn, Lit, Var, param_dims, splits, unit_dims
from lossdsl.types import Dim


class Guards:
    """The checks half of `FunctionEmitter` (which provides var, ref, dim_size, line...)."""

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
            if q.default is None:  # a required param (docs/language.md, "Params")
                self.line(f"if {x} is None:")
                self.line(
                    f"raise LossParamError(\"{self.label}: param '{name}' is required (it "
                    f"has no default): pass {name}=... or bake it with compile(..., "
                    f'{name}=...)")',
                    2,
                )
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

    def _param_dims(self) -> None:
        """An int param that sizes a dim (split(x, k, over=N)) as that dim's size: a Python
        int, so that shapes stay static (under jax.jit: a static argument)."""
        for q in param_dims(self.p):
            v = self.value[q]
            self.line(f"if {v} is None:")
            self.line(
                f"raise LossParamError(\"{self.label}: param '{q}' sizes a dim (a split's "
                f"groups, a window's taps), so it must be a Python int: under jax.jit pass it "
                f"as a static "
                f'argument (static_argnames)")',
                2,
            )
            self.line(f"{self.size['$' + q]} = {v}")

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

    def _fn_inputs(self) -> None:
        """Each function input is callable (its result is checked where it is called)."""
        for f in self.p.fns:
            x = self.fns[f.name]
            self.line(f"if not callable({x}):")
            self.line(
                f"raise LossInputError(f\"{self.label}: input '{f.name}' must be a function "
                f'(fn({", ".join(map(str, f.params))}) -> {f.result}), got {{{x}!r:.60}}")',
                2,
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
            if kind == "float" and t.int_to_float:
                self.line(f"if {t.is_int.format(x=x)}:")
                self.line(f"{x} = {t.int_to_float.format(x=x)}", 2)
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
                    if t.amp:
                        self.line(f"amp = {t.amp.format(x=x)}")
                    self.line(f"odt = {t.out_dtype.format(x=x)}")
                    self.odt = True
                    self.first_float = x
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
                if dm.fixed is not None:  # float[B, 4]: the declared size, whatever came first
                    self.line(f"if {got} != {dm.fixed}:")
                    self.line(
                        f"raise LossInputError(f\"{self.label}: input '{d.var.name}' must be "
                        f"{ty}: its axis {k} has size {{{got}}}, not {dm.fixed}; got shape "
                        f'{{tuple({x}.shape)}}")',
                        2,
                    )
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
        missing = {
            d.name
            for e in self.p.eqns
            for d in dims_needed(e)
            if d.name not in bound
            and d.fixed is None  # a fixed size is its name
            and d.param is None  # an int param's value (_param_dims)
        }
        if missing:
            raise NotImplementedError(f"dims with no input to take their size from: {missing}")
        self._empty()

    def _empty(self) -> None:
        """Empty and too-small dims (lossdsl/empty.py): an empty per-element loss returns its
        declared empty values before any work; a reduced dim below what its formula needs is
        a LossInputError. Integer comparisons of sizes: static under jit and torch.compile."""
        for dim, m, by in splits(self.p):
            n = self.dim_size(dim)
            div = " * ".join(
                ([str(m)] if m != 1 or not by else []) + ([self.size[by]] if by else [])
            )
            group = by.lstrip("$") if by else str(m)
            msg = split_message(self.label, dim, f"{{{n}}}", group, f"{{{div}}}" if by else None)
            self.line(f"if {div} < 1 or {n} % ({div}) != 0:" if by else f"if {n} % {m} != 0:")
            self.line(f'raise LossInputError(f"{msg}")', 2)
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
        for name in windowed_variadics(self.p):
            shp = self.variadic_shapes[name]
            msg = rank_message(self.label, name, f"{{{shp}}}")
            self.line(f"if len({shp}) > 3:")
            self.line(f'raise LossInputError(f"{msg}")', 2)
        for need in pol.needs:
            n = self.dim_size(need.dim)
            least = need.min_size  # a Dim: an int param's (blur(x, size=k))
            least = str(least) if isinstance(least, int) else f"({self.dim_size(least)})"
            if need.axes:  # a window over *S: its smallest axis (none: no window)
                n = f"min({self.variadic_shape(need.dim)}, default={least})"
            if need.min_size == 1 and n in outs and not need.dim.steps:
                continue  # an empty per-element loss returned above (a derived dim, H-k+1,
                # may be negative: checked)
            cond = f"{n} < {least}"
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
            shown = None if isinstance(need.min_size, int) else f"{{{least}}}"
            msg = too_small_message(self.label, need, f"{{{n}}}", inp, shown)
            self.line(f"if {cond}:")
            self.line(f'raise LossInputError(f"{msg}")', 2)

    def _filled(self, res: Atom, value, zero: str) -> str:
        """An output of the empty case: `res`'s shape (the empty per-element loss, or a
        reduction's scalar) and dtype, filled with `value`; float results keep the graph."""
        dims = res.type.dims if isinstance(res, Var) else ()
        shape = " + ".join(
            self.variadic_shape(d) if d.variadic else f"({self.dim_size(d)},)" for d in dims
        )
        dtype = res.type.dtype
        code = self.t.templates["fill"].format(
            shape=shape or "()", value=py_literal(value), dtype=self.dtype(dtype)
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


def dims_needed(e: Eqn):
    for k, v in e.attrs:
        if k == "dim":
            yield v
        elif k == "dims":
            yield from v
    if e.op == "gather":
        yield from e.out.type.dims
