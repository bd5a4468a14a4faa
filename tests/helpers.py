"""Test utilities: the samplers and comparators of lossdsl.equiv (shared with `lossdsl equiv`),
and the shapes the suites run on."""

from __future__ import annotations

import ast

from lossdsl.equiv import (  # noqa: F401
    call,
    fd_grads,
    float_inputs,
    grads,
    input_types,
    random_inputs,
    rel_err,
)

# Dim sizes per "shape variant"; variadic dims get a tuple (several spatial axes, or none).
SHAPES = [
    {"B": 4, "C": 5, "D": 3, "V": 2, "S": (3, 2)},
    {"B": 7, "C": 3, "D": 6, "V": 1, "S": (5,)},
    {"B": 2, "C": 9, "D": 2, "V": 3, "S": ()},
]


# spatial shapes of torch's [N, C, d1, ...] layout: none, sizes of 1, one to three axes
ND_SPATIAL = [(), (1,), (3,), (2, 1), (3, 4), (2, 1, 3)]


def nd_case(rng, spatial, c=4, n=3, ignore=True, scale=1.0):
    """Logits [n, c, *spatial] (normal times scale), class ids [n, *spatial] with a third of
    them -100 (ignore, where there are two or more), class weights [c] in [0.1, 1.1)."""
    x = rng.standard_normal((n, c, *spatial)) * scale
    t = rng.integers(0, c, (n, *spatial))
    if ignore and t.size > 1:
        t.reshape(-1)[rng.choice(t.size, t.size // 3, replace=False)] = -100
    return x, t, rng.random(c) + 0.1


def sizes_for(spec, sizes: dict) -> dict:
    """`sizes` for one spec: less each dim the spec needs bigger than given (segmental_snr's
    frames of 600 samples need T >= 600, where a suite's T is 4), which random_inputs then
    grows to the least size the loss accepts; the other sizes stay as given."""
    from lossdsl.empty import empty_policy

    least: dict = {}  # a tuple (*S's axes) against the needs of a window over *S, each axis
    prog = spec.program()
    defaults = {q.var.name: q.default for q in prog.params}  # (a window's size=k: its default)
    for n in empty_policy(prog).needs:
        if n.when is None and not n.dim.steps:
            key = (n.dim.name, n.axes)
            least[key] = max(least.get(key, 0), n.least(defaults))
    # a tuple: the axes of a *S, each of which a window over *S needs that big
    return {
        k: v
        for k, v in sizes.items()
        if not (isinstance(v, int) and v < least.get((k, False), 0))
        and not (isinstance(v, tuple) and any(n < least.get((k, True), 0) for n in v))
    }


def code_only(source: str) -> str:
    """A generated module without its docstrings and comments: a spec's docstring names the
    peers' APIs (`code: torch.nn.CTCLoss`), which a check of what the code calls must skip."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                body[0] = ast.Pass()
    return ast.unparse(tree)
