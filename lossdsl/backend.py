"""Compatibility: the code generator moved to the package lossdsl/codegen/ (see its
__init__ for the map). This module keeps the names that were imported from here."""

from lossdsl.codegen import (  # noqa: F401
    ALIASES,
    CALL_KEYWORDS,
    INFIX,
    INFIX_TEMPLATES,
    NOT_AN_ARRAY,
    NOT_ARRAY_TYPES,
    SCALAR_TEMPLATES,
    EqnContext,
    Names,
    ShardTarget,
    Target,
    Template,
    docstring,
    emit_function,
    function_name,
    load_backend,
    module_source,
    public_names,
    py_literal,
    shard_eye,
    take_along_axis_gather,
)
from lossdsl.codegen.guards import dims_needed as _dims_needed  # noqa: F401
from lossdsl.codegen.targets import TARGETS as BACKENDS  # noqa: F401
