"""One generated function: straight-line code, one line per IR equation, after the guards
(lossdsl/codegen/guards.py); each reduction's tail returns its output, and the dim sizes, fdt and
dev that nothing reads are dropped afterwards."""

from __future__ import annotations

import builtins
import re

from lossdsl import axes
from lossdsl.codegen.attrs import size_code, template_attrs
from lossdsl.codegen.guards import Guards
from lossdsl.codegen.names import Names, docstring, py_literal
from lossdsl.codegen.target import INFIX, EqnContext, Target
from lossdsl.graph import dependencies, producers
from lossdsl.ir import Atom, Eqn, Lit, Program, Var, param_dims, unit_dims
from lossdsl.ops import OPS
from lossdsl.types import Dim

# Non-infix elementwise ops whose templates take a literal operand as a Python number; every
# other one gets it as a 0-d tensor, as a scalar value (torch.atan2 has no number overload).
_NUMBER_OPERANDS = frozenset({"where", "maximum", "minimum"})


def shard_kwargs(prog: Program, target: Target) -> list[str]:
    return list(target.shard.kwargs) if prog.shard is not None else []


def signature(
    prog: Program, full: list[tuple[str, bool]], names: Names, checks: bool, shard=()
) -> str:
    ins = [names("var", n) + ("=None" if opt else "") for n, opt in full]
    ps = [
        f"{names('var', p.var.name)}={'None' if p.default is None else py_literal(p.default)}"
        for p in prog.params
    ]
    ps += [f'reduction="{prog.default_reduction}"'] + (["check_indices=True"] if checks else [])
    return ", ".join(ins + ["*"] + ps + list(shard))


class FunctionEmitter(Guards):
    """The lines of one function of a generated module: its signature, the guards, one line
    per equation of `prog` (its template from `target`) and each reduction's return."""

    def __init__(self, target: Target, prog: Program, fname: str, names: Names, checks: bool):
        self.t = target
        self.p = prog
        self.fname = fname
        self.checks = checks and target.index_out_of_range is not None
        self.checked: set = set()  # index vars already range-checked
        self.masked: dict = {}  # (index, ignore_index) -> the name of the masked copy checked
        self.odt = False  # whether the output is cast back to the input dtype (odt)
        self.first_float: str | None = None  # the first float input (where odt is bound)
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
        for q in param_dims(prog):  # split(x, k, over=N): the dim "$k" (guards._param_dims)
            self.size["$" + q] = self.names("dim", "$" + q, f"{q}_size")
        for q, v in prog.dim_values:  # ... with k baked: its value
            self.size["$" + q] = str(v)
        self.loops: dict = {}  # a loop's (body, args) -> the Python names of its final state
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

    def variadic_shape(self, d: Dim) -> str:
        """A variadic dim's axes as a Python tuple expression (a window's *S-10: each axis)."""
        return d.shape_code(self.variadic_shapes[d.name], lambda by: self.size[by])

    def dim_size(self, d: Dim) -> str:
        if d.name not in self.size and d.fixed is not None:
            return str(d.fixed)  # a fixed-size dim no input has (frames' entries)
        if d.variadic and d.steps:  # a window over *S: the product of its axes
            return f"_prod({self.variadic_shape(d)})"
        n = self.size[d.name]
        if d.name == self.shard and d.primes:
            n = self.global_size
        return d.size_code(n, lambda by: self.size[by])

    def aligned(self, a: Atom, out_dims: tuple[Dim, ...]) -> str:
        if isinstance(a, Lit) or not a.type.dims:
            return self.ref(a)
        al = axes.align(a.type.dims, out_dims)
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
        self.fns = {f.name: n(f.name) for f in p.fns}
        for q in p.params:
            self.expr[q.var.name] = n(q.var.name)
            self.scalar.add(q.var.name)
        flag = ["check_indices"] if self.checks else []
        shard = shard_kwargs(p, self.t)
        if public:
            head = f"def {self.fname}({signature(p, full, self.names, bool(flag), shard)}):"
        else:
            ins = [n(d.var.name) for d in p.inputs] + [n(f.name) for f in p.fns]
            ps = [n(q.var.name) for q in p.params] + ["reduction"] + flag
            ps += [k.split("=")[0] for k in shard]
            head = f"def {self.fname}({', '.join(ins + ['*'] + ps)}):"
        out = [head]
        if public:
            out.append(docstring(doc or self.fname, "    "))
        self._validate_reduction()
        self._param_types()
        self._checks()
        self._param_dims()
        if self.shard is not None:
            for ln in self.t.shard.prelude:
                self.line(ln.replace("{label}", self.label))
        self._inputs()
        self._fn_inputs()
        start = len(self.lines)
        self._body()
        if self.t.body_context and self.first_float is not None:
            body = ["    " + ln for ln in self.lines[start:]]
            ctx = self.t.body_context.format(x=self.first_float)
            self.lines[start:] = ["    with " + ctx + ":", *body]
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

    def _body(self) -> None:
        p = self.p
        producer = producers(p)
        needed = {m: dependencies([a], producer) for m, a in p.outputs}
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
            loops = dict(self.loops)  # nor does a loop run inside one (its names are unbound)
            for e in p.eqns:
                if e.out.name in needed[mode] and e.out.name not in shared:
                    self._eqn(e, indent)
            res = self.ref(p.output(mode))
            if mode == "none":
                res = self._unflatten(p.output(mode), res)
            if self.odt and not self.is_scalar(p.output(mode)):  # a Python number has no dtype
                res = self.t.out_cast.format(x=res)
            self.line(f"return {res}", indent)
            self.checked, self.loops = checked, loops

    def _unflatten(self, a: Atom, expr: str) -> str:
        if isinstance(a, Lit) or not any(d.variadic for d in a.type.dims):
            return expr
        parts = [
            self.variadic_shape(d) if d.variadic else f"({self.dim_size(d)},)" for d in a.type.dims
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
        if e.op == "repeat":
            self._loop(e, indent)
            return
        if e.op == "scan":
            self._scan(e, indent)
            return
        if e.op == "call_fn":
            self._call_fn(e, indent)
            return
        if e.op == "grad":
            self._grad(e, indent)
            return
        if OPS[e.op].kind == "window" and e.attr("over")[0].variadic:
            self._variadic_window(e, indent)
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
        if e.op in INFIX and all(self.is_scalar(a) for a in e.args) and not self._number_arith(e):
            self.scalar.add(out)
        self.line(f"{name} = {code}", indent)

    def _variadic_window(self, e: Eqn, indent: int) -> None:
        """A window over *S (one flattened axis here): the axes unflattened from its shape,
        the window's template over all of them (its size and stride repeated per axis), the
        result flattened again; no spatial axis: x itself."""
        d = e.attr("over")[0]
        a = e.args[0].type.dims.index(d)
        shape = self.variadic_shapes[d.name]
        if d.steps:  # a derived *S (a window's result): its axes once, by name
            shape = self.names.fresh(f"{d.name}_axes")
            self.line(f"{shape} = {self.variadic_shape(d)}", indent)
        x = self.ref(e.args[0])
        u = self.names.fresh(f"{e.out.name}_in")
        self.line(
            f"{u} = {x}.reshape(tuple({x}.shape[:{a}]) + {shape} + tuple({x}.shape[{a + 1}:]))",
            indent,
        )
        ctx = self._context(e)
        ctx.args[0] = u
        n = f"len({shape})"
        ctx.attrs.update(
            wax=f"tuple(range({a}, {a} + {n}))",
            last=f"tuple(range(-{n}, 0))",
            size=f"{size_code(self, e.attr('size'))} * {n}",
            stride=f"{tuple(e.attr('stride'))} * {n}",
        )
        code = ctx.fmt(self.t.templates[e.op])
        w = self.names.fresh(f"{e.out.name}_w")
        self.line(f"{w} = {code} if {shape} else {u}", indent)
        name = self.var(e.out.name)
        self.expr[e.out.name] = name
        self.line(
            f"{name} = {w}.reshape(tuple({w}.shape[:{a}]) + (-1,) + tuple({w}.shape[{a} + {n}:]))",
            indent,
        )

    def _loop(self, e: Eqn, indent: int) -> None:
        """repeat: its state's names are bound once, by the first of its equations (one per
        state value) to be emitted; the others alias them. A Python loop over the body's lines,
        or jax.lax.fori_loop over a body function."""
        body = e.attr("body")
        key = (body, e.args)
        if key not in self.loops:
            ns = len(body.state)
            n, init, free = e.args[0], e.args[1 : 1 + ns], e.args[1 + ns :]
            for v, a in zip(body.free, free):  # the body reads the outer values directly
                self.expr[v.name] = self.ref(a)
                if self.is_scalar(a):
                    self.scalar.add(v.name)
            names = [self.var(v.name) for v in body.state]
            for v, name in zip(body.state, names):
                self.expr[v.name] = name
            # a Python number as the state's start is a 0-d tensor (fori_loop's carry keeps
            # its type from step to step)
            starts = [
                self.t.as_tensor.format(x=self.ref(a), dtype=self.dtype(a.type.dtype))
                if self.is_scalar(a)
                else self.ref(a)
                for a in init
            ]
            steps = self.ref(n)
            state = ", ".join(names) + ("," if len(names) == 1 else "")
            ckpt = self.t.checkpoint if e.attr("checkpoint") else None
            if self.t.loop == "fori" or ckpt is not None:
                fn = self.var(f"{e.out.name}_step")
                sig = "_, state" if self.t.loop == "fori" else "*state"
                self.line(f"def {fn}({sig}):", indent)
                self.line(f"{state} = state", indent + 1)
                for b in body.eqns:
                    self._eqn(b, indent + 1)
                res = ", ".join(self.ref(r) for r in body.results)
                self.line(f"return ({res}{',' if ns == 1 else ''})", indent + 1)
                step = ckpt.format(fn=fn, state=", ".join(names)) if ckpt else fn
            if self.t.loop == "fori":
                self.line(
                    f"{state} = jax.lax.fori_loop(0, {steps}, {step}, "
                    f"({', '.join(starts)}{',' if ns == 1 else ''}))",
                    indent,
                )
            else:
                self.line(f"{', '.join(names)} = {', '.join(starts)}", indent)
                self.line(f"for _ in range({steps}):", indent)
                if ckpt is not None:
                    self.line(f"{state} = {step}", indent + 1)
                else:
                    for b in body.eqns:
                        self._eqn(b, indent + 1)
                    res = ", ".join(self.ref(r) for r in body.results)
                    self.line(f"{', '.join(names)} = {res}", indent + 1)
            self.loops[key] = names
        self.expr[e.out.name] = self.loops[key][e.attr("out")]

    def _scan(self, e: Eqn, indent: int) -> None:
        """scan: as repeat's loop, once per entry of `over`, the body's xs bound to each
        sequence's slice there; every state value's steps stacked (over first). A Python loop
        collecting the states (torch), or jax.lax.scan over a step function."""
        body = e.attr("body")
        key = (body, e.args)
        if key not in self.loops:
            ns, nx = len(body.state), len(body.xs)
            init, seqs, free = e.args[:ns], e.args[ns : ns + nx], e.args[ns + nx :]
            (over,), rev = e.attr("over"), e.attr("reverse")
            for v, a in zip(body.free, free):
                self.expr[v.name] = self.ref(a)
                if self.is_scalar(a):
                    self.scalar.add(v.name)
            names = [self.var(v.name) for v in body.state]
            xs = [self.var(v.name) for v in body.xs]
            for v, name in zip((*body.state, *body.xs), names + xs):
                self.expr[v.name] = name
            starts = [
                self.t.as_tensor.format(x=self.ref(a), dtype=self.dtype(a.type.dtype))
                if self.is_scalar(a)
                else self.ref(a)
                for a in init
            ]
            axes = [a.type.dims.index(over) for a in seqs]
            stacks = [self.var(f"{e.out.name}_steps_{k}") for k in range(ns)]
            tup = lambda xs: ", ".join(xs) + ("," if len(xs) == 1 else "")  # noqa: E731
            if self.t.loop == "fori":
                fn = self.var(f"{e.out.name}_step")
                self.line(f"def {fn}(state, xs):", indent)
                self.line(f"{tup(names)} = state", indent + 1)
                self.line(f"{tup(xs)} = xs", indent + 1)
                for b in body.eqns:
                    self._eqn(b, indent + 1)
                res = tup([self.ref(r) for r in body.results])
                self.line(f"return ({res}), ({res})", indent + 1)
                moved = [f"jnp.moveaxis({self.ref(a)}, {ax}, 0)" for a, ax in zip(seqs, axes)]
                self.line(
                    f"_, ({tup(stacks)}) = jax.lax.scan({fn}, ({tup(starts)}), "
                    f"({tup(moved)}), reverse={rev})",
                    indent,
                )
            else:
                self.line(f"{', '.join(names)} = {', '.join(starts)}", indent)
                for st in stacks:
                    self.line(f"{st} = []", indent)
                n = f"{self.ref(seqs[0])}.shape[{axes[0]}]"
                steps = f"reversed(range({n}))" if rev else f"range({n})"
                split = [self.var(f"{e.out.name}_xs_{k}") for k in range(len(seqs))]
                for sp, a, ax in zip(split, seqs, axes):
                    self.line(f"{sp} = {self.t.split_steps.format(x=self.ref(a), axis=ax)}", indent)
                t = self.var(f"{e.out.name}_t")
                self.line(f"for {t} in {steps}:", indent)
                for x, sp in zip(xs, split):
                    self.line(f"{x} = {sp}[{t}]", indent + 1)
                for b in body.eqns:
                    self._eqn(b, indent + 1)
                res = ", ".join(self.ref(r) for r in body.results)
                self.line(f"{', '.join(names)} = {res}", indent + 1)
                for st, name in zip(stacks, names):
                    self.line(f"{st}.append({name})", indent + 1)
                for st, start in zip(stacks, starts):
                    order = f"{st}[::-1]" if rev else st
                    # no step (T = 0): an empty stack of the state's shape
                    stack = self.t.stack_steps.format(xs=order)
                    self.line(f"{st} = {stack} if {st} else {start}[None][:0]", indent)
            self.loops[key] = stacks
        self.expr[e.out.name] = self.loops[key][e.attr("out")]

    def _call_fn(self, e: Eqn, indent: int) -> None:
        """critic(x): the arguments with their *S axes restored (the generated code flattens
        them), the result checked against the declared type and flattened again."""
        fn, result = self.fns[e.attr("fn")], e.attr("result")
        args = [self._unflatten(a, self.ref(a)) for a in e.args]
        y = self.var(e.out.name)
        self.expr[e.out.name] = y
        self.line(f"{y} = {fn}({', '.join(args)})", indent)
        parts = [
            self.variadic_shape(d) if d.variadic else f"({self.dim_size(d)},)" for d in result.dims
        ]
        want = " + ".join(parts) if parts else "()"
        test = {"float": self.t.is_float, "int": self.t.is_int, "bool": self.t.is_bool}
        self.line(
            f"if not hasattr({y}, 'shape') or tuple({y}.shape) != {want} or not "
            f"{test[result.dtype].format(x=y)}:",
            indent,
        )
        got = f"{{(tuple({y}.shape) if hasattr({y}, 'shape') else {y})!r:.60}}"
        self.line(
            f"raise LossInputError(f\"{self.label}: function input '{e.attr('fn')}' must return "
            f'{result} (shape {{{want}}}), got {got}")',
            indent + 1,
        )
        if any(d.variadic for d in result.dims):
            flat = "(" + "".join(self.dim_size(d) + ", " for d in result.dims) + ")"
            self.line(f"{y} = {y}.reshape({flat})", indent)

    def _grad(self, e: Eqn, indent: int) -> None:
        """grad(e, wrt=x): the body as a function of x (its free values read from outside),
        differentiated by the target's rule (autograd.grad with create_graph, jax.grad, central
        differences in numpy)."""
        body = e.attr("body")
        for v, a in zip(body.free, e.args[1:]):
            self.expr[v.name] = self.ref(a)
            if self.is_scalar(a):
                self.scalar.add(v.name)
        fn = self.var(f"{e.out.name}_of")
        (s,) = body.state
        self.expr[s.name] = self.var(s.name)
        self.line(f"def {fn}({self.expr[s.name]}):", indent)
        for b in body.eqns:
            self._eqn(b, indent + 1)
        (r,) = body.results
        res = self.ref(r)
        if self.is_scalar(r):  # a constant body (a literal, params alone): a 0-d tensor
            res = self.t.as_tensor.format(x=res, dtype=self.dtype("float"))
        self.line(f"return {res}", indent + 1)
        y = self.var(e.out.name)
        self.expr[e.out.name] = y
        self.line(f"{y} = {self.t.grad.format(fn=fn, x=self.ref(e.args[0]))}", indent)

    def _number_arith(self, e: Eqn) -> bool:
        """/ or ^ of Python numbers (params, sizes): Python would raise where floats do not."""
        return e.op in ("div", "pow") and all(self.is_scalar(a) for a in e.args)

    def _selects(self, e: Eqn) -> bool:
        """A where whose condition is a Python bool (a param) and whose branches already have
        the output's shape and dtype (an int branch of a float where is promoted by the
        framework's where, not by a conditional expression): a conditional expression."""
        c, a, b = e.args
        return (
            isinstance(c, Var)
            and c.name in self.scalar
            and all(isinstance(x, Var) and x.type.dims == e.out.type.dims for x in (a, b))
            and all(x.type.dtype == e.out.type.dtype for x in (a, b))
        )

    def _context(self, e: Eqn) -> EqnContext:
        op = OPS[e.op]
        raw = [self.ref(a) for a in e.args]
        if op.kind == "elementwise":
            args = [self.aligned(a, e.out.type.dims) for a in e.args]
            if self._number_arith(e):
                # Python's / and ** raise (1e300 / pa at pa = 0: ZeroDivisionError; 10.0 ** pa:
                # OverflowError) where a float op gives inf or NaN: the first operand becomes a
                # 0-d tensor of the float dtype, so the framework computes it.
                args[0] = self.t.as_tensor.format(x=args[0], dtype=self.dtype("float"))
            elif e.op not in INFIX:
                # A Python number becomes a 0-d tensor; of the float dtype when the op computes
                # in floats (log(size(B)) must not run in torch's default float32). So does a
                # literal (torch.atan2(x, 3.0) takes no number), except where the templates
                # take numbers themselves (where; maximum/minimum make torch.clamp of one)
                # beside a tensor operand: torch.where(c, 0.1, 1e300) computes in torch's
                # default float32 (0.1 off by 1e-9, 1e300 a RuntimeError).
                out_float = e.out.type.dtype == "float"
                values = e.args[1:] if e.op == "where" else e.args
                numbers = e.op in _NUMBER_OPERANDS and any(
                    isinstance(a, Var) and a.name not in self.scalar for a in values
                )
                args = [
                    self.t.as_tensor.format(
                        x=s,
                        dtype=self.dtype(
                            "float" if out_float and a.type.dtype == "int" else a.type.dtype
                        ),
                    )
                    if (isinstance(a, Var) and a.name in self.scalar)
                    or (isinstance(a, Lit) and not numbers)
                    else s
                    for a, s in zip(e.args, args)
                ]
        else:
            args = list(raw)
        attrs = template_attrs(self, e)  # lossdsl/codegen/attrs.py
        return EqnContext(e, args, raw, attrs)

    def dtype(self, dtype: str) -> str:
        return {"float": "fdt", "int": self.t.int_dtype, "bool": self.t.bool_dtype}[dtype]
