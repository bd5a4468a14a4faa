"""Test utilities: the samplers and comparators of lossdsl.equiv (shared with `lossdsl equiv`),
and the shapes the suites run on."""

from __future__ import annotations

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
