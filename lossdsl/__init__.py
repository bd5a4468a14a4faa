"""lossdsl: loss functions as small typed expressions, compiled to PyTorch and JAX.

    import lossdsl
    fn = lossdsl.load("focal").compile("torch")
    loss = fn(logits, target, gamma=1.0, reduction="mean")

Importing lossdsl imports neither torch nor jax; a backend is loaded when first compiled to.
`lossdsl.torch.Loss` (an `nn.Module`) and `lossdsl.jax.Loss` (immutable, hashable) are the
module forms. The package is typed (PEP 561: `py.typed`).
"""

from lossdsl.compiled import CompiledLoss
from lossdsl.compiler import Spec, list_specs, load, parse
from lossdsl.errors import (
    ArityError,
    ConstantError,
    DimMismatch,
    DuplicateDefinition,
    InputError,
    LimitError,
    LossError,
    LossSyntaxError,
    MultipleErrors,
    ParamError,
    ReservedName,
    ReservedWord,
    SpecImportError,
    TypeMismatch,
    UnknownName,
)

__version__ = "0.1.0"

__all__ = [
    "ArityError",
    "CompiledLoss",
    "ConstantError",
    "DimMismatch",
    "DuplicateDefinition",
    "InputError",
    "LimitError",
    "LossError",
    "LossSyntaxError",
    "MultipleErrors",
    "ParamError",
    "ReservedName",
    "ReservedWord",
    "Spec",
    "SpecImportError",
    "TypeMismatch",
    "UnknownName",
    "list_specs",
    "load",
    "parse",
]
