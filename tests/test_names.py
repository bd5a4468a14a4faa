"""Names are identities: a spec's names (inputs, params, dims) never meet the names the compiler
generates (temporaries t0/r0, dim sizes, fdt, reduction, variant functions, framework aliases)
nor the keywords of the Python API.

The systematic test alpha-renames every shipped spec's inputs, params and dims to names the
emitter itself produces and checks that each backend computes bit-identical values (the same
inputs, params passed by their new declared names).
`PYTHONPATH=. python tests/test_names.py --full [K]` runs every spec with K (default 20) more
renamings than the suite's fixed-seed one per spec.
"""

from __future__ import annotations

import inspect
import os
import random
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import SHAPES, call, random_inputs

import lossdsl
from lossdsl.codegen import CALL_KEYWORDS, TARGETS, Names, docstring, load_backend, public_names
from lossdsl.errors import ArityError, DuplicateDefinition, LossError, ReservedName
from lossdsl.parser import _lark
from lossdsl.resolve import COMPILE_KEYWORDS

ROOT = Path(__file__).resolve().parents[1]
SPECS = lossdsl.list_specs()
GRAMMAR = (ROOT / "grammar" / "lossdsl.lark").read_text()
# the DSL's own words (loss, where, of, float, ...): never a name in a spec
DSL_WORDS = set(re.findall(r'"([a-z]+)"', GRAMMAR))


# ---- the rename generator ------------------------------------------------------------------


def _tokens(text: str):
    return list(_lark().lex(text))


def rename(text: str, mapping: dict[str, str]) -> str:
    """Replace every NAME token in `mapping` (docstrings, comments, numbers untouched)."""
    out, last = [], 0
    for t in _tokens(text):
        if t.type == "NAME" and str(t) in mapping:
            out += [text[last : t.start_pos], mapping[str(t)]]
            last = t.end_pos
    return "".join(out) + text[last:]


def renamables(spec: lossdsl.Spec) -> dict[str, list[str]]:
    """The main loss's inputs, params and dims that an alpha-rename of the file may change:
    not names the file also uses as a callee's keyword (`focal(x, t, gamma=2)`: gamma is the
    callee's) or as a function."""
    toks = _tokens(spec.text)
    fixed = set()
    for a, b, c in zip(toks, toks[1:], toks[2:]):
        if b.type == "NAME" and c.type == "EQUAL" and a.type in ("LPAR", "COMMA"):
            fixed.add(str(b))
        if b.type == "NAME" and c.type == "LPAR":
            fixed.add(str(b))
    loss = spec.loss
    dims = []
    for i in loss.inputs:
        for d in (*(i.type.dims or ()), i.type.of):
            if d is not None and d.name not in dims:
                dims.append(d.name)
    params = [p.name for p in spec.params]
    return {
        "input": [i.name for i in spec.inputs if i.name not in fixed],
        "param": [p for p in params if p not in fixed],
        "dim": [d for d in dims if d not in fixed],
    }


def emitter_names(spec: lossdsl.Spec) -> list[str]:
    """Every name the emitter may generate for this spec: IR values (lets of imported specs
    and use-blocks too, temporaries t*, pass results r*), the size and shape names, variant
    functions, and everything Names reserves (keywords, builtins the code calls, framework
    aliases, fdt/dev/odt, the call keywords, sharded helpers)."""
    prog = spec.program()
    values = [e.out.name for e in prog.eqns] + [e.out.name for e in spec._lowered(frozenset()).eqns]
    values += re.findall(r"\b([A-Za-z_]\w*):", spec.ir("library"))
    fname = spec.name
    variants = [f"_{fname}__general"] + [f"_{fname}__no_{i.name}" for i in spec.inputs]
    variants += [f"_{fname}__{p.name}_0" for p in spec.params]
    made = [f"t{k}" for k in range(6)] + [f"r{k}" for k in range(4)] + ["n", "n_", "B_all"]
    made += [f"{i.name}_checked" for i in spec.inputs] + ["S_shape", "size_C", "size_V"]
    made += ["lambda_", "t0_", "x_", "object_", "u__name__", "_prod_", "fdt_"]
    pool = set(values + variants + made + sorted(Names.RESERVED)) - DSL_WORDS
    return sorted(n for n in pool if n.isidentifier())


def renamings(spec: lossdsl.Spec, k: int, seed: int) -> list[dict[str, str]]:
    """k renamings of all of the spec's renamable names at once, each to a distinct name from
    the emitter's pool: none of the file's own words; for params and inputs no reserved API
    keyword. A name the DSL itself refuses (a dim named like a let of the same loss: one
    scope) is drawn again."""
    rng = np.random.default_rng(seed)
    pool = emitter_names(spec)
    words = {str(t) for t in _tokens(spec.text) if t.type == "NAME"}
    kinds = renamables(spec)
    out = []
    while len(out) < k:
        banned: set[str] = set()
        for _ in range(20):
            taken = set(words)
            mapping = {}
            for kind in ("input", "param", "dim"):
                bad = {"input": CALL_KEYWORDS, "param": CALL_KEYWORDS | COMPILE_KEYWORDS}
                bad = bad.get(kind, set())  # a dim may be called anything
                for old in kinds[kind]:
                    cands = [n for n in pool if n not in taken | bad | banned]
                    mapping[old] = cands[int(rng.integers(len(cands)))]
                    taken.add(mapping[old])
            try:
                lossdsl.parse(rename(spec.text, mapping), spec.filename)
                break
            except DuplicateDefinition as e:
                clash = set(re.findall(r"'(\w+)'", str(e))) & set(mapping.values())
                assert clash, str(e)
                banned |= clash
        out.append(mapping)
    return out


def _param_values(spec: lossdsl.Spec, inputs: dict) -> dict:
    """A value per param different from its default (so a dropped param shows), or the default
    where the constraint refuses the change."""
    out = {}
    for p in spec.params:
        if p.choices:  # a word besides the default, compiled in (check_renaming)
            out[p.name] = next(w for w in p.choices if w != p.default)
            continue
        v = {"float": p.default + 0.25, "int": p.default, "bool": not p.default}[p.dtype]
        try:
            spec.compile("numpy")(**inputs, **{p.name: v})
        except lossdsl.ParamError:
            v = p.default
        out[p.name] = v
    return out


def check_renaming(name: str, mapping: dict[str, str], backends=TARGETS) -> None:
    spec = lossdsl.load(name)
    renamed = lossdsl.parse(rename(spec.text, mapping), spec.filename)
    assert renamed.name == spec.name
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    params = _param_values(spec, random_inputs(spec, SHAPES[0], rng))
    chosen = {p.name: params.pop(p.name) for p in spec.params if p.choices}
    r_chosen = {mapping.get(k, k): v for k, v in chosen.items()}
    r_params = {mapping.get(k, k): v for k, v in params.items()}
    for absent in spec.variants():
        inputs = random_inputs(spec, SHAPES[0], rng, absent)  # one shape: jax's op cache hits
        r_inputs = {mapping.get(k, k): v for k, v in inputs.items()}
        for backend in backends:
            fn, fr = spec.compile(backend, **chosen), renamed.compile(backend, **r_chosen)
            for red in ("none", "sum", "mean"):
                want = call(backend, fn, inputs, "float64", reduction=red, **params)
                got = call(backend, fr, r_inputs, "float64", reduction=red, **r_params)
                assert want.dtype == got.dtype and want.shape == got.shape
                assert np.array_equal(want, got, equal_nan=True), (name, backend, red, mapping)


@pytest.mark.parametrize("name", SPECS)
def test_every_spec_renamed_to_generated_names_computes_the_same_bits(name):
    spec = lossdsl.load(name)
    (mapping,) = renamings(spec, 1, zlib.crc32(name.encode()))
    check_renaming(name, mapping)


SHARDED = ["cross_entropy", "supcon", "clip", "info_nce", "mi_infonce", "vicreg"]


@pytest.mark.parametrize("name", SHARDED)
def test_sharded_modules_renamed_compute_the_same_bits(name):
    """jax's sharded module (on a 1-device mesh) of a spec whose dims, the sharded one too, are
    renamed to the names a sharded module binds (world, rank, B_all, axis_name, ...)."""
    import jax
    from jax.sharding import AxisType
    from jax.sharding import PartitionSpec as P

    from lossdsl.shard import batch_dim as shard_batch_dim

    spec = lossdsl.load(name)
    dim = shard_batch_dim(spec.program())
    pool = ["world", "rank", f"{dim}_all", "axis_name", "group", "t0", "_AllGather", "n"]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    dims = renamables(spec)["dim"]
    mapping = dict(zip(dims, rng.permutation(pool)[: len(dims)].tolist()))
    renamed = lossdsl.parse(rename(spec.text, mapping), spec.filename)
    inputs = random_inputs(spec, SHAPES[0], rng)
    mesh = jax.make_mesh((1,), ("batch",), axis_types=(AxisType.Auto,))
    out = []
    for s, d in ((spec, dim), (renamed, mapping.get(dim, dim))):
        fn = s.compile("jax", shard=d)
        decl = [(i.var.name, i.var.type.dims) for i in s.program().inputs]
        specs = tuple(P(*["batch" if k.name == d and not k.primes else None for k in ds])
                      for _, ds in decl)  # fmt: skip
        sm = jax.jit(
            jax.shard_map(lambda *a, f=fn: f(*a), mesh=mesh, in_specs=specs, out_specs=P())
        )
        out.append(np.asarray(sm(*(jax.numpy.asarray(v) for v in inputs.values()))))
    assert np.array_equal(out[0], out[1]), mapping


# ---- regression tests ------------------------------------------------------------------------


def _per_backend(fn_text, arrays, backend, **kw):
    fn = lossdsl.parse(fn_text).compile(backend)
    return call(backend, fn, arrays, "float64", **kw)


@pytest.mark.parametrize("backend", TARGETS)
def test_a_dim_named_like_a_temporary_keeps_its_size(backend):
    # exp(x) * size(t0) with t0 = 3: the IR's own t0 is exp(x); the dim's size must stay 3
    text = "loss f(x: float[t0]) { exp(x) * size(t0) }"
    x = np.array([1.0, 2.0, 3.0])
    got = _per_backend(text, {"x": x}, backend, reduction="none")
    # hand computation: exp(x) * 3 (the bug gave exp(x) * exp(x)); jax's exp is 1 ulp off numpy's
    np.testing.assert_allclose(got, np.exp(x) * 3, rtol=1e-15)


@pytest.mark.parametrize("backend", TARGETS)
@pytest.mark.parametrize("new", ["r0", "t0", "logp", "ce", "n", "fdt"])
def test_label_smoothing_ce_with_its_class_dim_renamed(backend, new):
    spec = lossdsl.load("label_smoothing_ce")
    renamed = lossdsl.parse(rename(spec.text, {"C": new}))
    rng = np.random.default_rng(1)
    data = {"logits": rng.standard_normal((4, 5)), "target": rng.integers(0, 5, 4)}
    want = call(backend, spec.compile(backend), data, "float64")
    assert np.array_equal(call(backend, renamed.compile(backend), data, "float64"), want)


@pytest.mark.parametrize("backend", TARGETS)
def test_a_callers_dim_named_like_an_imported_specs_let(backend):
    # focal's body binds ce, pt, logp, ... (use classification); the caller's batch dim is `ce`
    text = "import focal\nloss g(logits: float[{b}, C], target: index[{b}] of C) "
    text += " {{ focal(logits, target) }}"
    rng = np.random.default_rng(2)
    data = {"logits": rng.standard_normal((4, 5)), "target": rng.integers(0, 5, 4)}
    want = _per_backend(text.format(b="B"), data, backend, reduction="none")
    for dim in ("ce", "pt", "logpt", "t1"):
        got = _per_backend(text.format(b=dim), data, backend, reduction="none")
        assert np.array_equal(got, want), dim


@pytest.mark.parametrize("backend", TARGETS)
def test_an_input_named_like_a_variant_function(backend):
    # the module names its variants _f__general, _f__no_..., _f__a_0: an input of that name
    # must not shadow the variant the dispatcher calls
    text = "loss f(x: float[B], {y}: float[B] = 0.0) {{ param a: float = 1.0\n x * a + {y} }}"
    x, y = np.array([1.0, 2.0]), np.array([10.0, 20.0])
    for name in ("_f__general", "_f__no__f__general", "_f__a_0", "f"):
        got = _per_backend(text.format(y=name), {"x": x, name: y}, backend, reduction="none")
        assert np.array_equal(got, x + y), name  # hand computation: a = 1
        got = _per_backend(text.format(y=name), {"x": x}, backend, reduction="none", a=2.0)
        assert np.array_equal(got, 2 * x), name


@pytest.mark.parametrize("backend", TARGETS)
@pytest.mark.parametrize("pname", ["lambda", "object", "eval", "jnp", "__name__", "lambda_"])
def test_a_param_is_passed_by_its_declared_name(backend, pname):
    spec = lossdsl.parse(
        f"loss f(x: float[B]) {{\n    param {pname}: float = 1.0\n    x * {pname}\n}}"
    )
    x = np.array([1.0, 2.0])
    fn = spec.compile(backend)
    assert np.array_equal(call(backend, fn, {"x": x}, "float64", **{pname: 3.0}), 4.5)
    # the Python name works too (the same on every backend)
    alias = public_names(["x"], [pname])[pname]
    assert np.array_equal(call(backend, fn, {"x": x}, "float64", **{alias: 3.0}), 4.5)
    baked = spec.compile(backend, **{pname: 3.0})
    assert np.array_equal(call(backend, baked, {"x": x}, "float64"), 4.5)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_errors_show_the_declared_names(backend):
    spec = lossdsl.parse(
        "loss f(object: float[B]) {\n    param lambda: float = 1.0\n    object * lambda\n}"
    )
    fn = spec.compile(backend)
    with pytest.raises(ArityError) as e:
        fn(lambda_=1.0)
    assert "f(object, *, lambda=1.0, reduction='mean')" in str(e.value)
    assert "'object'" in str(e.value) and "object_" not in str(e.value)
    with pytest.raises(ArityError, match="did you mean 'lambda'"):
        call(backend, fn, {"object": np.ones(2)}, "float64", lambd=1.0)
    with pytest.raises(ArityError, match="twice"):
        call(backend, fn, {"object": np.ones(2)}, "float64", **{"lambda": 1.0, "lambda_": 2.0})


def test_both_lambda_and_lambda_are_params():
    # `lambda_` keeps its own name; `lambda` takes the next free one
    spec = lossdsl.parse(
        "loss f(x: float[B]) {\n    param lambda: float = 1.0\n    param lambda_: float = 10.0\n"
        "    x * lambda + lambda_\n}"
    )
    assert public_names(["x"], ["lambda", "lambda_"]) == {
        "x": "x",
        "lambda": "lambda__",
        "lambda_": "lambda_",
    }
    for backend in TARGETS:
        got = call(backend, spec.compile(backend), {"x": np.ones(1)}, "float64",
                   **{"lambda": 2.0, "lambda_": 3.0})  # fmt: skip
        assert float(got) == 5.0  # hand computation: 1 * 2 + 3


def test_the_chunked_schedule_passes_renamed_params():
    # the chunked functions take params by their Python names: `lambda` was dropped (default
    # used) and a param named size_C collided with the chunk plan's own size param
    import torch

    spec = lossdsl.load("label_smoothing_ce")
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((4, 7)))
    y = torch.tensor(rng.integers(0, 7, 4))
    want = spec.compile("torch")(x, y, epsilon=0.3)
    for new in ("lambda", "size_C", "object"):
        renamed = lossdsl.parse(rename(spec.text, {"epsilon": new}))
        got = renamed.compile("torch", schedule="chunked", chunk=3)(x, y, **{new: 0.3})
        # equal to the plain schedule up to the chunked sum order
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(CALL_KEYWORDS | COMPILE_KEYWORDS))
def test_a_param_named_like_an_api_keyword_is_an_error_at_the_name(name):
    text = f"loss f(x: float[B]) {{\n    param {name}: float = 1.0\n    x\n}}"
    with pytest.raises(ReservedName) as e:
        lossdsl.parse(text)
    err = e.value.errors[0]
    assert (err.span.line, err.span.col, err.span.end_col) == (2, 11, 11 + len(name))
    assert "reserved" in err.message and f"'{name}'" in err.message and "rename" in err.hint


@pytest.mark.parametrize("name", sorted(CALL_KEYWORDS))
def test_an_input_named_like_a_call_keyword_is_an_error_at_the_name(name):
    text = f"loss f(x: float[B], {name}: float[B]) {{\n    x * {name}\n}}"
    with pytest.raises(ReservedName) as e:
        lossdsl.parse(text)
    err = e.value.errors[0]
    assert (err.span.line, err.span.col) == (1, 21)
    assert "reserved" in err.message and "rename" in err.hint


@pytest.mark.parametrize("name", sorted(CALL_KEYWORDS | COMPILE_KEYWORDS))
def test_api_keywords_stay_free_as_dims_and_lets(name):
    # only inputs and params meet the Python API; a dim or a let of that name is the spec's own
    x = np.array([1.0, 2.0])
    for text in (
        f"loss f(x: float[{name}]) {{\n    let v = x * size({name})\n    v\n}}",
        f"loss f(x: float[D]) {{\n    let {name} = x * size(D)\n    {name}\n}}",
    ):
        spec = lossdsl.parse(text)
        for backend in TARGETS:
            got = call(backend, spec.compile(backend), {"x": x}, "float64", reduction="none")
            assert np.array_equal(got, 2 * x)  # hand computation: x * size = x * 2


def test_reserved_names_cover_the_python_api():
    # every keyword a Spec method takes besides **params, every keyword of a compiled call
    methods = ["compile", "compile_linear", "source", "program", "ir", "sharded_program"]
    for m in methods:
        for p in inspect.signature(getattr(lossdsl.Spec, m)).parameters.values():
            if p.kind is not p.VAR_KEYWORD:
                assert p.name in COMPILE_KEYWORDS | {"self"}, (m, p.name)
    for b in ("torch", "jax"):
        shard = load_backend(b).TARGET.shard
        assert {k.split("=")[0] for k in shard.kwargs} <= CALL_KEYWORDS
        assert {n for n, _ in shard.helpers} <= Names.RESERVED
    for b in TARGETS:  # an input named _ids_out_of_range shadowed torch's range check
        assert {n for n, _ in load_backend(b).TARGET.helpers} <= Names.RESERVED, b


def test_reserved_names_cover_what_generated_modules_bind():
    # module-level names of every target (imports, preludes) are reserved: a spec's name can
    # never shadow them, so the same Python names work on every backend
    import ast

    for b in TARGETS:
        t = load_backend(b).TARGET
        tree = ast.parse("\n".join(t.imports))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bound = {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                bound = {node.name}
            else:
                continue
            assert bound <= Names.RESERVED, (b, bound)


def test_compile_linear_refuses_inputs_named_h_or_w():
    spec = lossdsl.parse("loss f(z: float[B, V], h: float[B]) {\n    logsumexp(z, over=V) * h\n}")
    with pytest.raises(lossdsl.DuplicateDefinition) as e:
        spec.compile_linear("torch")
    assert e.value.errors[0].span.line == 1


# ---- docstrings --------------------------------------------------------------------------

# every code point that is not printable (controls, line and paragraph separators, surrogates,
# format characters), plus quotes and backslashes around them
ODD = [*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA1)), "\xad", "\u2028", "\u2029"]
ODD += ["\u200b", "\ufeff", "\ud800", "\udbff", "\udc00", "\udfff", "\ue000", "\uffff"]
ODD += ["\U0010ffff"]


@pytest.mark.parametrize("backend", TARGETS)
def test_docstrings_with_any_character_make_a_module_that_works(backend):
    import ast

    for c in ODD:
        for doc in (f"a{c}b", f'q"{c}"x', f"{c}\\", f'x\\{c}"y', f'""{c}""y'):
            if c == "\n" or doc.strip("\n") != doc:
                continue
            text = f'"""{doc}"""\nloss f(x: float[B]) {{ x }}'
            spec = lossdsl.parse(text)
            src = spec.source(backend)
            tree = ast.parse(src)
            # a lone surrogate: its escape as text (CPython 3.13 compiles no docstring with one)
            want = "".join(f"\\u{ord(k):04x}" if 0xD800 <= ord(k) < 0xE000 else k for k in spec.doc)
            assert ast.get_docstring(tree, clean=False) == want, repr(c)
            if backend != "numpy":
                fn = spec.compile(backend)
                assert fn.__doc__ == spec.doc, repr(c)


def test_docstring_literal_holds_the_text():
    for text in ['"', '""', '"""', '""""', 'a"""b', "\\", '\\"', "a\r\nb", "x\x00y\u2028z"]:
        lit = docstring(text)
        assert "\x00" not in lit and "\r" not in lit and "\u2028" not in lit
        # several lines: the closing quotes go on a line of their own
        want = text + ("\n" if "\n" in text else "")
        assert eval(lit) == want  # noqa: S307 - our own literal, the point of the test


# ---- the full version ----------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """--full [K]: K renamings (default 20) of every spec, every backend."""
    os.environ.setdefault("JAX_ENABLE_X64", "1")  # as tests/conftest.py
    k = int(argv[argv.index("--full") + 1]) if len(argv) > argv.index("--full") + 1 else 20
    bad = 0
    for name in SPECS:
        for m in renamings(lossdsl.load(name), k, zlib.crc32(name.encode()) + 1):
            try:
                check_renaming(name, m)
            except (AssertionError, LossError, TypeError, ValueError) as e:
                bad += 1
                print(f"{name}: {m}: {type(e).__name__}: {str(e)[:300]}")
        print(f"{name}: {k} renamings", file=sys.stderr)
    print(f"{bad} failures")
    return 1 if bad else 0


if __name__ == "__main__" and "--full" in sys.argv:  # PYTHONPATH=. python tests/test_names.py
    raise SystemExit(main(sys.argv))


@pytest.mark.parametrize("seed", range(24))
def test_helper_results_bound_by_lets_stay_distinct(seed):
    """A helper whose result is a let, called several times with each call bound by a let, the
    let names drawn from one pool on both sides (the helper's, the caller's, generated-looking
    t0): every call keeps its own value. The caller's let renamed the helper's result `a` to
    `sp` and freed the name `a`, so the next call's `a` was read as `sp`: h(p) + 10 h(t) gave
    22, not 2002, on every backend (clDice's two soft skeletons were one)."""
    rng = random.Random(seed)
    pool = ["a", "b", "sp", "st", "t0", "t1", "t2", "r", "h_out"]
    k = rng.randint(2, 4)
    inner = rng.sample(pool, rng.randint(1, 3))
    lets = [f"    let {inner[0]} = x * {rng.randint(2, 9)}"]
    lets += [f"    let {n} = {prev} + {rng.randint(1, 9)}" for prev, n in zip(inner, inner[1:])]
    outer = rng.sample(pool, k)
    src = (
        "loss h(x: float[B]) {\n" + "\n".join(lets) + f"\n    {inner[-1]}\n}}\n"
        f"loss m(v: float[B, {k}]) {{\n"
        + "".join(f"    let {n} = h(take(v, {i}, over={k}))\n" for i, n in enumerate(outer))
        + "    "
        + " + ".join(f"{10**i} * {n}" for i, n in enumerate(outer))
        + "\n}\n"
    )
    v = np.array([[1.0, 2.0, 3.0, 4.0][:k]])

    def h(x):
        for line in lets:  # x * c, then + c: the helper by hand
            op, c = line.split("=")[1].split()[1:]
            x = x * int(c) if op == "*" else x + int(c)
        return x

    want = sum(10**i * h(v[0, i]) for i in range(k))
    for b in TARGETS:
        got = call(b, lossdsl.parse(src).compile(b), {"v": v}, "float64", reduction="sum")
        assert float(got) == want, (b, src)


FOLDS_TO_X = ["x * 1", "x + 0", "1 * x - 0", "x / 1", "where(m, x, 0)", "where(true, x, 2 * x)"]


@pytest.mark.parametrize("iname", ["r0", "r1", "t0", "t3", "x_in"])
@pytest.mark.parametrize("form", FOLDS_TO_X)
@pytest.mark.parametrize("called", [False, True], ids=["inline", "spec_call"])
def test_a_let_that_folds_to_an_input_named_like_a_temporary(iname, form, called):
    """A let whose value folds to an input (`let a = x * 1`, a where over an absent all-true
    mask), the input named like a compiler temporary (r0, t3): the rewriter kept the let's
    name by renaming the surviving value, which was the input itself, so `a` was read before
    any definition (IRError; optax's cosine_distance called with an input r0). Directly and
    through a spec call; the value is sum(a * a + a) by hand, on every backend."""
    body = f"    let a = {form}\n    sum(a * a + a, over=D)\n"
    inner = "loss inner(x: float[B, D], m: bool[B, D] = true) {\n" + body + "}\n"
    if called:
        src = inner + f"loss outer({iname}: float[B, D]) {{\n    inner({iname})\n}}\n"
    else:
        src = inner.replace("inner", "outer").replace("x", iname).replace(f"{iname}_in", "x_in")
    x = np.array([[0.5, -2.0, 3.0], [1.5, 0.25, -1.0]])
    want = np.sum(x * x + x, axis=1)
    for b in TARGETS:
        got = call(b, lossdsl.parse(src).compile(b), {iname: x}, "float64", reduction="none")
        np.testing.assert_array_equal(got, want, err_msg=f"{b}: {src}")
