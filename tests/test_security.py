"""Spec text is untrusted input: nothing from it may reach eval/exec except code the compiler
generated from the IR. These tests try injection through names, dims, docstrings, param
defaults and imports, and check the structure of every generated module (its imports, the
names it calls, its string constants)."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import numpy as np
import pytest
from helpers import call

import lossdsl
from lossdsl.codegen import TARGETS
from lossdsl.errors import LossError

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.loss"))
PAYLOAD = "__import__('pathlib').Path('{}').touch()"

# Names the generated code may call without a module prefix: its own helpers, error classes,
# and a few builtins used in the input checks. Everything else is `torch.*`, `jnp.*`, `np.*`...
CALLABLE_NAMES = {
    "isinstance", "type", "tuple", "int", "float", "bool", "abs", "max", "min", "len", "range",
    "_prod", "LossInputError", "LossParamError", "ValueError", "AssertionError",
    "_logsumexp", "_log_softmax", "_xlogy", "_erf", "_softplus", "_sigmoid",
    "callable", "hasattr",  # the checks of a function input and of its result
    "any", "zip",  # a window longer than its axis (torch _window)
    "fn",  # _grad and _fd_grad call the body function the module gives them
    "lgamma",  # _log_ive_core calls the log-gamma its target passes (torch.lgamma, gammaln)
    "scan", "arange",  # _ctc_core calls the loop and arange its target passes
}  # fmt: skip
# contextlib: the torch helper _no_autocast's nullcontext where autocast is off
MODULES = {"torch", "jax", "jax.numpy", "numpy", "math", "contextlib"}


def _module_tree(spec, backend: str) -> ast.Module:
    return ast.parse(spec.source(backend))


def _check_structure(tree: ast.Module, fname: str, fns=()) -> None:
    """`fns`: the spec's function inputs, which the module calls (what the caller passed), and
    the functions the module defines (a grad's body, a loop's step) are callable too."""
    variants = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)} | set(fns)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= MODULES, ast.dump(node)
        assert not isinstance(node, ast.ImportFrom), ast.dump(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id in CALLABLE_NAMES | variants, (fname, node.func.id)
        if isinstance(node, ast.Name):
            assert node.id not in {"eval", "exec", "__import__", "open", "compile", "getattr"}
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__"), (fname, node.attr)


@pytest.mark.parametrize("backend", TARGETS)
def test_every_generated_module_calls_only_framework_code(backend):
    for name in SPECS:
        spec = lossdsl.load(name)
        _check_structure(_module_tree(spec, backend), name, [f.name for f in spec.fns])


# Every identifier the generated code itself uses (modules, builtins, its own locals), plus
# Python's dangerous builtins: as input, dim, param and let names they must be renamed away.
HOSTILE = [
    "torch", "jax", "jnp", "np", "math", "F", "fdt", "odt", "dev", "_logsumexp", "AssertionError",
    "isinstance", "tuple", "int", "float", "bool", "len", "abs", "max", "min", "_prod",
    "LossInputError", "LossParamError", "ValueError", "eval", "exec", "open", "print",
    "__import__", "__builtins__", "globals", "getattr", "os", "sys", "self", "lambda_", "None_",
]  # fmt: skip


def _hostile_spec(names: list[str]) -> str:
    x, w, k, t, dim_b, dim_c = names
    head = f"{x}: float[{dim_b}, {dim_c}], {t}: index[{dim_b}] of {dim_c}, {w}: float[{dim_c}] = 1"
    return f'''"""Hostile names."""
loss hostile({head}) {{
    param {k}: float = 2.0   where {k} > 0
    let {dim_b.lower()}_ = log_softmax({x}, over={dim_c})
    -{w}[{t}] * (1 - exp({dim_b.lower()}_[{t}]))^{k} * {dim_b.lower()}_[{t}]
}}
'''


@pytest.mark.parametrize("start", range(0, len(HOSTILE), 6))
def test_hostile_identifiers_are_mangled_and_change_nothing(start):
    names = (HOSTILE[start:] + HOSTILE)[:6]
    assert len(set(names)) == 6 and all(n.isidentifier() for n in names)
    plain = lossdsl.parse(_hostile_spec(["x", "w", "k", "t", "B", "C"]))
    bad = lossdsl.parse(_hostile_spec(names))
    rng = np.random.default_rng(start)
    data = {"x": rng.standard_normal((5, 4)), "t": rng.integers(0, 4, 5), "w": rng.random(4)}
    for backend in TARGETS:
        _check_structure(_module_tree(bad, backend), "hostile")
        want = call(backend, plain.compile(backend), data, "float64", reduction="none")
        got = _positional(backend, bad.compile(backend), [data["x"], data["t"], data["w"]])
        np.testing.assert_allclose(np.mean(want), got, rtol=1e-12, err_msg=f"{backend}: {names}")


def _positional(backend, fn, arrays):
    """Call with positional inputs (the hostile names are renamed in the Python signature)."""
    if backend == "torch":
        import torch

        return float(fn(*(torch.as_tensor(a) for a in arrays)))
    if backend == "jax":
        import jax.numpy as jnp

        return float(fn(*(jnp.asarray(a) for a in arrays)))
    return float(fn(*arrays))


def test_docstrings_are_escaped_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    # backslashes, quotes (one and two: three end a DSL docstring), f-string braces, escape
    # sequences, the payload in braces and bare, a trailing backslash
    payload = PAYLOAD.format(marker)
    doc = (
        r"""Tricky doc: \" "" {x} {{y}} \N{BULLET} \x41 ' ''' {"""
        + payload
        + "}\n"
        + r"\ line two "
        + payload
        + r" \u0041 ends with a backslash \\"
    )
    src = f'"""{doc}"""\nloss d(x: float[B]) {{\n    x * x\n}}\n'
    spec = lossdsl.parse(src)
    for backend in TARGETS:
        spec.compile(backend)  # torch and jax execute the generated module
        tree = _module_tree(spec, backend)
        (fd,) = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "d"]
        assert ast.get_docstring(fd) == inspect.cleandoc(doc)
        assert ast.get_docstring(tree) == inspect.cleandoc(doc)
        _check_structure(tree, "d")
    assert not marker.exists()


def test_docstrings_with_control_characters_make_valid_modules():
    # A NUL in a docstring made the generated module a SyntaxError ("source code string cannot
    # contain null bytes"), a lone surrogate could not be encoded, and \r or U+2028 ended a
    # line of the docstring. They are written as escapes, so the module's docstring is the
    # spec's text, character for character; but a lone surrogate, whose escape's text it holds
    # (CPython 3.13 compiles no docstring with one; lossdsl/codegen/names.py, docstring).
    doc = "a\x00b \ud800 c\u2028d\u2029e\rf\x85g\x1bh\x7fi\x0cj\x0bk"
    spec = lossdsl.parse(f'"""{doc}"""\nloss d(x: float[B]) {{\n    x * x\n}}\n')
    for backend in TARGETS:
        spec.compile(backend)
        tree = _module_tree(spec, backend)
        (fd,) = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "d"]
        assert ast.get_docstring(fd, clean=False) == doc.replace("\ud800", "\\ud800")
        assert spec.compile(backend).__doc__ == doc  # the function object: the exact text
        _check_structure(tree, "d")


@pytest.mark.parametrize(
    "default",
    [
        PAYLOAD.format("/tmp/lossdsl_pwned"),
        "eval('1')",
        "open('/etc/passwd')",
        "'1' + '2'",
        "(lambda: 1)()",
        "x",  # an input is not a constant
    ],
)
def test_param_defaults_must_be_constants(default):
    src = f"loss p(x: float[B]) {{\n    param k: float = {default}\n    k * x\n}}\n"
    with pytest.raises(LossError) as e:
        lossdsl.parse(src).compile("numpy")
    assert all(err.span is not None for err in e.value.errors)
    assert not Path("/tmp/lossdsl_pwned").exists()


@pytest.mark.parametrize(
    "imp",
    ["os", "sys", "subprocess", "lossdsl", "__init__", "../../etc/passwd", "/etc/passwd",
     "..", "specs.focal", "focal.loss"],
)  # fmt: skip
def test_imports_only_load_spec_files_from_the_search_path(imp):
    src = f"import {imp}\nloss f(x: float[B]) {{\n    x * x\n}}\n"
    with pytest.raises(LossError) as e:
        lossdsl.parse(src)
    err = e.value.errors[0]
    assert err.span is not None and err.span.line == 1
    assert "Traceback" not in str(e.value)


def test_an_import_resolves_to_a_loss_file_beside_the_spec_never_a_python_module(tmp_path):
    # a Python module named like the import sits beside the spec: it is not a spec, not loaded
    marker = tmp_path / "pwned"
    (tmp_path / "evil.py").write_text(f"{PAYLOAD.format(marker)}\n")
    main = tmp_path / "main.loss"
    main.write_text("import evil\nloss main(x: float[B]) {\n    x * x\n}\n")
    with pytest.raises(LossError, match="evil"):
        lossdsl.load(str(main))
    assert not marker.exists()
    # a spec file of that name is what an import means
    (tmp_path / "evil.loss").write_text("loss evil(x: float[B]) {\n    2 * x\n}\n")
    main.write_text("import evil\nloss main(x: float[B]) {\n    evil(x) + x\n}\n")
    fn = lossdsl.load(str(main)).compile("numpy")
    assert float(fn(np.ones(3))) == 3.0
    assert not marker.exists()


def test_no_builtin_is_shadowed_in_the_generated_module():
    # module-level names of a generated module: its imports, classes and functions only
    for name in ["focal", "cross_entropy", "dice", "supcon"]:
        for backend in TARGETS:
            tree = _module_tree(lossdsl.load(name), backend)
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    assert not hasattr(builtins, node.name), node.name
                elif isinstance(node, ast.Assign):
                    raise AssertionError(f"module-level assignment in {name}/{backend}")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_every_sharded_module_calls_only_framework_code(backend):
    from lossdsl.shard import batch_dim as shard_batch_dim
    from lossdsl.shard import regrouping

    for name in SPECS:
        spec = lossdsl.load(name)
        dim = shard_batch_dim(spec.program())
        if spec.fns or regrouping(spec.program(), dim):  # refused (tests/test_shard.py)
            continue
        _check_structure(ast.parse(spec.source(backend, shard=dim)), name)


# the names a sharded module binds besides the spec's (keywords, world size, rank, helpers);
# its keywords (group, grads, axis_name) are reserved for inputs and params: a dim here
SHARD_HOSTILE = [
    ["world", "rank", "_sizes_differ", "B_all", "B", "group"],
    ["B_all", "_AllGather", "_GradScale", "world", "B", "axis_name"],
]


@pytest.mark.parametrize("names", SHARD_HOSTILE)
def test_hostile_identifiers_in_a_sharded_module(names, tmp_path):
    """On one rank (a world-1 gloo group; a 1-device jax mesh) the sharded hostile spec
    computes what the plain spec computes."""
    import jax
    import torch
    import torch.distributed as dist
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    plain = lossdsl.parse(_hostile_spec(["x", "w", "k", "t", "B", "C"]))
    bad = lossdsl.parse(_hostile_spec(names))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((5, 4)), "t": rng.integers(0, 4, 5), "w": rng.random(4)}
    want = float(np.mean(call("numpy", plain.compile("numpy"), data, "float64", reduction="none")))
    arrays = [data["x"], data["t"], data["w"]]
    for backend in ("torch", "jax"):
        tree = ast.parse(bad.source(backend, shard="B"))
        _check_structure(tree, "hostile")
        for f in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            bound = [t.id for n in ast.walk(f) if isinstance(n, ast.Assign) for t in n.targets
                     if isinstance(t, ast.Name)]  # fmt: skip
            twice = {n for n in bound if bound.count(n) > 1 and n in ("world", "rank")}
            assert not twice, (backend, f.name, twice)  # the world size is bound once
    fn = bad.compile("jax", shard="B")
    mesh = jax.make_mesh((1,), ("batch",), axis_types=(AxisType.Auto,))
    sm = jax.shard_map(lambda *a: fn(*a), mesh=mesh, in_specs=(P("batch"), P("batch"), P()),
                       out_specs=P())  # fmt: skip
    assert float(sm(*(jax.numpy.asarray(a) for a in arrays))) == pytest.approx(want, rel=1e-6)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        got = _positional("torch", bad.compile("torch", shard="B"), arrays)
    finally:
        dist.destroy_process_group()
    assert got == pytest.approx(want, rel=1e-12)
    del torch
