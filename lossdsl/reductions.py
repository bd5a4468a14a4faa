"""Reduction recipes: `reduction="mean(S) sum(B, C)"` at call time, the peers' denominators as
one argument instead of a spec each.

A recipe reduces the per-element loss (what `reduction="none"` returns, dims as the spec names
them) step by step, left to right: `sum(dims)` adds over the listed dims, `mean(dims)` adds and
divides by the number of entries. The dims no step names stay, in their order. So MONAI's
`reduction="sum"` of a per-pixel loss is `"sum(B, C, S)"` (or `"sum"`), timm's "sum, then divide
by the batch" `"sum(C, S) mean(B)"`, optax's per-sample dice `"mean(C)"` ([B]), and
segmentation_models_pytorch's mean over every pixel, ignored ones included, `"mean(B, S)"`.

A recipe averages plain entries: the spec's `reduce mean by w` weights and its declared empty
value belong to `reduction="mean"` only. A mean over dims of size 0 is 0 (as `"mean"` of an
empty batch). Half-precision losses are reduced in float32 and returned in their dtype, as the
generated code does. The recipe is Python text, static under `jax.jit` and `torch.compile`.
"""

from __future__ import annotations

import re

from lossdsl.errors import ParamError, did_you_mean

_STEP = re.compile(r"\s*(sum|mean)\s*\(([^()]*)\)\s*")
_NAME = re.compile(r"\*?[A-Za-z_][A-Za-z_0-9]*'*")


def _example(dims: tuple[str, ...]) -> str:
    return f'reduction="mean({dims[-1]})"' if dims else 'reduction="sum"'


def parse_recipe(label: str, text: str, dims: tuple[str, ...]) -> tuple[tuple[str, tuple], ...]:
    """The steps of a recipe over a per-element loss with these dims (a variadic one written
    `*S`): ((op, dim names), ...). A ParamError, with the dims there are, for anything else."""
    shown = "[" + ", ".join(dims) + "]"

    def bad(why: str, hint: str | None = None):
        return ParamError(
            f"{label}: reduction {text!r}: {why}",
            None,
            hint
            or f"the per-element loss is {shown}; write steps like sum(B) or mean(C, S), "
            f"left to right, e.g. {_example(dims)}",
        )

    bare = {d.lstrip("*"): d for d in dims}
    steps, pos, done = [], 0, set()
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None and pos == 0 and _NAME.fullmatch(text.strip()):
            raise bad(
                "it is none of 'none', 'sum', 'mean', nor a recipe",
                did_you_mean(text.strip(), ["none", "sum", "mean"])
                or f"the per-element loss is {shown}; a recipe: {_example(dims)}",
            )
        if m is None:
            raise bad(f"cannot read it from {text[pos:].strip()[:30]!r}")
        names = [n.strip() for n in m.group(2).split(",")]
        if names == [""] or any(_NAME.fullmatch(n) is None for n in names):
            raise bad(f"{m.group(0).strip()} names no dims, or not as names")
        got = []
        for n in names:
            d = bare.get(n.lstrip("*"))
            if d is None:
                raise bad(
                    f"the per-element loss has no dim {n}",
                    did_you_mean(n, list(bare)) or f"its dims: {shown}",
                )
            if d in done:
                raise bad(
                    f"{n} is reduced twice", f"each dim once; the per-element loss is {shown}"
                )
            done.add(d)
            got.append(d)
        steps.append((m.group(1), tuple(got)))
        pos = m.end()
    if not steps:
        raise bad("it has no step")
    return tuple(steps)


def apply_recipe(backend: str, x, dims: tuple[str, ...], steps):
    """x, the per-element loss with `dims` (a variadic dim: the axes no other dim takes), reduced
    by `steps`."""
    fw = _FRAMEWORKS[backend]
    n_var = x.ndim - (len(dims) - 1) if any(d.startswith("*") for d in dims) else 0
    axes: dict[str, tuple[int, ...]] = {}
    k = 0
    for d in dims:
        w = n_var if d.startswith("*") else 1
        axes[d] = tuple(range(k, k + w))
        k += w
    half = fw.is_half(x)
    odt = x.dtype
    if half:
        x = fw.upcast(x)
    left = list(dims)
    for op, names in steps:
        ax = tuple(a for d in names for a in axes[d])
        count = 1
        for a in ax:
            count *= x.shape[a]
        x = fw.sum(x, ax)
        if op == "mean":
            x = x / max(count, 1)  # over an empty dim: 0, as "mean" of an empty batch
        for d in names:
            left.remove(d)
        k, axes = 0, {}
        for d in left:
            w = n_var if d.startswith("*") else 1
            axes[d] = tuple(range(k, k + w))
            k += w
    return fw.cast(x, odt) if half else x


class _Torch:
    @staticmethod
    def is_half(x):
        import torch

        return x.dtype in (torch.float16, torch.bfloat16)

    upcast = staticmethod(lambda x: x.float())
    sum = staticmethod(lambda x, ax: x.sum(dim=ax) if ax else x)
    cast = staticmethod(lambda x, dt: x.to(dt))


class _Numpy:
    @staticmethod
    def is_half(x):
        return x.dtype.name in ("float16", "bfloat16")

    upcast = staticmethod(lambda x: x.astype("float32"))
    sum = staticmethod(lambda x, ax: x.sum(axis=ax))
    cast = staticmethod(lambda x, dt: x.astype(dt))


class _Jax(_Numpy):
    @staticmethod
    def sum(x, ax):
        import jax.numpy as jnp

        return jnp.sum(x, axis=ax)


_FRAMEWORKS = {"torch": _Torch, "jax": _Jax, "numpy": _Numpy}
