"""Code generation: IR programs -> standalone Python modules, one per target framework.

    target.py   what a target is (Target, ShardTarget) and the templates they share
    targets.py  the registry of targets (TARGETS, register, load_backend, reference)
    names.py    identifiers (Names, RESERVED), literals and docstrings
    attrs.py    each equation's template attributes (tables by attribute and by op)
    guards.py   input and param checks, empty and too-small dims, class-id range checks
    function.py one function's body: guards, one line per equation, the reductions' tails
    module.py   the module: variants and the dispatcher that picks one
    loader.py   exec into a real module, linecache, forgetting it when unused

Generated code is straight-line: one line per IR equation, no loop over data, no IR at run time.
Nothing from the spec's text reaches the generated code except identifiers (validated by the
grammar and mangled in names.py), numbers (formatted from Python values) and the docstring
(escaped).
"""

from lossdsl.codegen.function import FunctionEmitter
from lossdsl.codegen.guards import dims_needed
from lossdsl.codegen.loader import forget_modules, forget_with, load_module
from lossdsl.codegen.module import emit_function, module_source
from lossdsl.codegen.names import (
    CALL_KEYWORDS,
    Names,
    api_names,
    docstring,
    function_name,
    public_names,
    py_literal,
)
from lossdsl.codegen.target import (
    ALIASES,
    INFIX,
    INFIX_TEMPLATES,
    NOT_AN_ARRAY,
    NOT_ARRAY_TYPES,
    SCALAR_TEMPLATES,
    WINDOW_PADS,
    EqnContext,
    ShardTarget,
    Target,
    Template,
    floored,
    nan_from_empty,
    scanned,
    shard_eye,
    take_along_axis_gather,
)
from lossdsl.codegen.targets import (
    REFERENCE,
    TARGETS,
    cache_by_target,
    load_backend,
    reference,
    register,
    registered,
    shipped_module,
    unregister,
)

__all__ = [
    "scanned",
    "WINDOW_PADS",
    "cache_by_target",
    "ALIASES",
    "CALL_KEYWORDS",
    "INFIX",
    "INFIX_TEMPLATES",
    "NOT_AN_ARRAY",
    "NOT_ARRAY_TYPES",
    "REFERENCE",
    "SCALAR_TEMPLATES",
    "TARGETS",
    "EqnContext",
    "FunctionEmitter",
    "Names",
    "ShardTarget",
    "Target",
    "Template",
    "api_names",
    "dims_needed",
    "docstring",
    "emit_function",
    "forget_modules",
    "forget_with",
    "function_name",
    "load_backend",
    "load_module",
    "module_source",
    "public_names",
    "py_literal",
    "reference",
    "register",
    "registered",
    "shard_eye",
    "shipped_module",
    "floored",
    "nan_from_empty",
    "take_along_axis_gather",
    "unregister",
]
