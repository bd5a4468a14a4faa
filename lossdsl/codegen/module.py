"""A standalone module for one spec: its imports and error classes, one function per
variant (combination of absent optional inputs and zero-valued params) and the public
dispatcher that picks one, then the module-level helpers the code calls."""

from __future__ import annotations

import re

from lossdsl.codegen.function import FunctionEmitter, shard_kwargs, signature
from lossdsl.codegen.names import Names, api_names, docstring, function_name
from lossdsl.codegen.target import Target
from lossdsl.ir import Program


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
    names = api_names([n for n, _ in full], [q.var.name for q in main.params])
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
        body += ["", *_dispatcher(target, fname, full, variants, doc, names, checks)]
    if any("_prod(" in ln for ln in body):
        lines += ["", "", "def _prod(shape):", "    n = 1", "    for k in shape:", "        n *= k"]
        lines += ["    return n", ""]
    for name, code in target.helpers:  # the target's own helpers, where used (as a whole
        # name: `_grad(` is no use of it inside `_custom_grad(`)
        used = re.compile(rf"(?<![\w.]){re.escape(name)}[(.]")
        if any(used.search(ln) for ln in body + lines):  # (lines: a helper calling another)
            # a helper's imports (the standard library's) join the module's own at the top
            code_lines = code.strip("\n").splitlines()
            for ln in code_lines:
                if ln.startswith("import ") and ln not in lines:
                    lines.insert(lines.index("") + 1 + len(imports), ln)
            code = "\n".join(ln for ln in code_lines if not ln.startswith("import ")).strip("\n")
            lines += ["", "", *code.splitlines(), ""]
    for name, code in target.shard.helpers if sharded else ():
        if any(f"{name}." in ln or f"{name}(" in ln for ln in body):
            lines += ["", "", *code.strip("\n").splitlines(), ""]
    return "\n".join(lines + body) + "\n"


def _all_inputs(programs: list[Program]) -> list[tuple[str, bool]]:
    """Every declared input in order, and whether it is optional."""
    first = max(programs, key=lambda p: len(p.inputs))
    return [(d.var.name, d.optional) for d in first.inputs] + [(f.name, False) for f in first.fns]


def _dispatcher(target, fname, full, variants, doc, names: Names, checks) -> list[str]:
    """Pick the variant for this call: which optional inputs were passed, which specialized
    params are the number 0 (a traced or tensor value takes the general variant)."""
    names = names.copy()
    general = max((p for p, _ in variants), key=lambda p: len(p.params))
    shard = shard_kwargs(general, target)
    sig = signature(general, full, names, checks, shard)
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
        names = api_names([n for n, _ in full], [q.var.name for q in prog.params])
    return FunctionEmitter(target, prog, fname, names, checks).emit(full, public, doc)
