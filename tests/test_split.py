"""split and merge of named dims (docs/language.md, "Split and merge"): the dims they give
(names, sizes, unification, errors at compile and at call), and their values on every target
against numpy's own reshape of the same array (row-major, as torch.Tensor.view and
einops.rearrange: an implementation lossdsl did not write).

The generator: every position of the cut dim in a rank-3 input, every source of the group size
(a number, a dim of another input, an int param) and both forms (groups of a size, a number of
groups), at sizes that include one group, groups of one and an empty dim; merge of every pair
of dims, adjacent or not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lossdsl
from lossdsl.errors import InputError, LossError
from lossdsl.types import Dim, derived_as

N = Dim("N")
BACKENDS = ("numpy", "torch", "jax")


def _call(backend, fn, *xs, **kw):
    if backend == "torch":
        import torch

        xs = [torch.tensor(x) for x in xs]
        return fn(*xs, **kw).numpy()
    return np.asarray(fn(*xs, **kw))


def test_split_and_merge_dims_names_and_sizes():
    g = N.derive("/", 1, "G")
    assert str(g) == "N/G" and g.size(12, {"G": 3}.get) == 4
    assert eval(g.size_code("n", lambda by: "gs"), {"n": 12, "gs": 3}) == 4  # noqa: S307
    assert str(N.derive("/", 4)) == "N/4" and N.derive("/", 4).size(12) == 3
    assert str(Dim("$k")) == "k" and Dim("$k").param == "k" and N.param is None
    assert g.derive("*", 1, "G") == N  # merge undoes split
    assert N.derive("/", 4).derive("*", 4) == N
    assert Dim("12").derive("/", 4).fixed == 3 and Dim("12").derive("/", 5).fixed is None
    assert Dim("P").derive("*", 1, "G").size(3, {"G": 4}.get) == 12
    assert derived_as((Dim("B"), g, Dim("G")), N) == g  # over=N names the group count


# (position of N in x, input head, size argument, params, the group size at call)
def _cases():
    heads = {0: "x: float[N, A, B]", 1: "x: float[A, N, B]", 2: "x: float[A, B, N]"}
    for pos, head in heads.items():
        yield pos, head, "4", {}, 4
        yield pos, head + ", w: float[G]", "G", {}, 3
        yield pos, head, "k", {"k": 2}, 2


def _layout(pos, a, b, n):
    return [(n, a, b), (a, n, b), (a, b, n)][pos]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("outer", [False, True], ids=["size", "groups"])
@pytest.mark.parametrize(
    "pos,head,size,params,g", list(_cases()), ids=lambda c: str(c).replace(" ", "")
)
def test_split_is_numpys_reshape_on_every_target(backend, outer, pos, head, size, params, g):
    """split(x, G, over=N) is x.reshape(..., N // G, G, ...); split(x, groups=G, over=N) is
    x.reshape(..., G, N // G, ...): each entry of the result is numpy's, at every group count
    (one group, groups of one, an empty N)."""
    form = f"groups={size}" if outer else size
    decl = "    param k: int = 2\n" if size == "k" else ""
    src = f"loss t({head}) {{\n{decl}    let s = split(x, {form}, over=N)\n    s * 1.5\n}}\n"
    fn = lossdsl.parse(src).compile(backend)
    rng = np.random.default_rng(pos)
    extra = [np.ones(g)] if "w:" in head else []
    for n in (g * 3, g, 0):
        x = rng.normal(size=_layout(pos, 2, 3, n))
        shape = list(x.shape)
        cut = [g, n // g] if outer else [n // g, g]
        want = 1.5 * x.reshape(shape[:pos] + cut + shape[pos + 1 :])
        if size == "G":  # reduction="none" lays declared dims out in declaration order: G last
            want = np.moveaxis(want, pos + (0 if outer else 1), -1)
        got = _call(backend, fn, x, *extra, reduction="none", **params)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p,g", list(itertools.permutations("NAB", 2)))
def test_merge_is_numpys_reshape_of_every_pair(backend, p, g):
    """merge(x, over=(P, G)) of every ordered pair of x's three dims: numpy's reshape of x with G
    moved right after P (a transpose first where it is not there), the result where P was."""
    src = f"loss t(x: float[N, A, B]) {{\n    merge(x, over=({p}, {g})) * 1.5\n}}\n"
    fn = lossdsl.parse(src).compile(backend)
    x = np.random.default_rng(0).normal(size=(4, 2, 3))
    names = list("NAB")
    moved = np.moveaxis(x, names.index(g), -1)  # [.. without G .., G]
    rest = [d for d in names if d != g]
    moved = np.moveaxis(moved, -1, rest.index(p) + 1)  # G right after P
    shape = list(moved.shape)
    k = rest.index(p)
    want = 1.5 * moved.reshape(shape[:k] + [shape[k] * shape[k + 1]] + shape[k + 2 :])
    got = _call(backend, fn, x, reduction="none")
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_merge_undoes_split_and_lines_up_with_the_flat_dim(backend):
    """merge(split(x, G, over=N), over=(N, G)) is x over N (the same dim: it meets y over N), in
    both split forms and for every size source; unrelated dims merge to P*G."""
    src = """loss t(x: float[N, A], y: float[N, A], w: float[G]) {
    param k: int = 2
    let a = merge(split(x, 3, over=N), over=(N, 3))
    let b = merge(split(x, G, over=N), over=(N, G))
    let c = merge(split(x, k, over=N), over=(N, k))
    let d = merge(split(x, groups=k, over=N), over=(k, N))
    (a + b + c + d) * y
}
"""
    spec = lossdsl.parse(src)
    assert [str(d) for d in spec.program().output("none").type.dims] == ["N", "A"]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    got = _call(backend, spec.compile(backend), x, y, np.ones(3), reduction="none")
    np.testing.assert_allclose(got, 4 * x * y, rtol=1e-15)
    t = lossdsl.parse("loss t(x: float[P, G]) {\n    merge(x, over=(P, G))\n}\n").program()
    assert [str(d) for d in t.output("none").type.dims] == ["P*G"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_group_size_that_does_not_divide_is_an_input_error_at_every_call(backend):
    """N = 7 in groups of 2 (a number), of G = 3 (a dim), of k = 4 and 0 (an int param): each an
    InputError that names the dim, its size and the group size, before any work."""
    cases = [
        ("x: float[N]", "2", {}, [], "groups of 2:"),
        ("x: float[N], w: float[G]", "G", {}, [np.ones(3)], "groups of G = 3"),
        ("x: float[N]", "k", {"k": 4}, [], "groups of k = 4"),
        ("x: float[N]", "k", {"k": 0}, [], "groups of k = 0"),
    ]
    for head, size, params, extra, msg in cases:
        decl = "    param k: int = 2\n" if size == "k" else ""
        src = f"loss t({head}) {{\n{decl}    sum(split(x, {size}, over=N), over=N)\n}}\n"
        fn = lossdsl.parse(src).compile(backend)
        with pytest.raises(InputError, match=f"dim N has 7 entries.*{msg}"):
            _call(backend, fn, np.ones(7), *extra, **params)


def test_split_by_a_param_under_torch_compile_and_jax_jit():
    """The group size is a Python int: torch.compile specializes on it, jax.jit takes it as a
    static argument; a traced one is a ParamError that says so."""
    import jax
    import torch

    spec = lossdsl.load("rloo")
    rng = np.random.default_rng(2)
    lp, old, r = (rng.normal(size=12) for _ in range(3))
    want = spec.compile("numpy")(lp, old, r, num_generations=3)
    fn = spec.compile("jax")
    jitted = jax.jit(fn, static_argnames=("num_generations",))
    np.testing.assert_allclose(jitted(lp, old, r, num_generations=3), want, rtol=1e-12)
    with pytest.raises(lossdsl.ParamError, match="static"):
        jax.jit(fn)(lp, old, r, num_generations=3)
    tfn = torch.compile(spec.compile("torch"), backend="eager", fullgraph=False)
    got = tfn(*(torch.tensor(a) for a in (lp, old, r)), num_generations=3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_split_errors_at_compile_point_at_the_size():
    cases = {
        "sum(split(x, 5, over=12), over=(12, 5))": "cannot cut 12 entries into groups of 5",
        "sum(split(x, groups=5, over=12), over=(5, 12))": "cannot cut 12 entries into 5 groups",
        "sum(split(x, 0, over=N), over=N)": "at least one entry",
        "sum(split(x, over=N), over=N)": "a group size or a number of groups",
        "sum(split(x, 2, 3, over=N), over=N)": "got 'over' twice",
        "sum(split(x, 2, over=(N, 12)), over=N)": "exactly one dim",
        "sum(split(x, N, over=N), over=N)": "a second dim N",
        "sum(merge(x, over=(N, N)), over=N)": "two different dims",
        "sum(merge(x, over=N), over=N)": "makes two dims one",
    }
    for body, msg in cases.items():
        src = f"loss t(x: float[N, 12]) {{\n    {body}\n}}\n"
        with pytest.raises(LossError, match=msg) as e:
            lossdsl.parse(src).program()
        assert e.value.span is not None and e.value.span.line == 2, body
