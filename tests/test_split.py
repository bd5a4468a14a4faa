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
