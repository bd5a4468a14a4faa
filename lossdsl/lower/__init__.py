"""AST -> typed IR.

Lowering resolves every name (inputs, params, lets, task preludes, dims, functions, spec calls),
derives every type from the op table's rules, and emits one IR equation per primitive. It never
stops at the first mistake: a failed sub-expression reports a LossError and lowers to None, and
whatever uses None is skipped silently, so one run reports each independent error once.

Surface functions that are not primitives (normalize, count, clamp, logsigmoid, norm, masked
mean, ...) are expanded here into primitives, so the op table stays small and every backend gets
them for free.

The modules, each importing only those before it: context (Builder, Ctx, Budget, shared
helpers), expr (the expression walker), preludes (`use TASK`), decls (inputs, params,
constraints), results (lower_loss, lower_body, checks on the result), inline (spec calls),
functions (the function library, and the dispatch of a call). The walker reaches the last
two through context.LIBRARY, filled in below.
"""

from lossdsl.lower.context import LIBRARY, REDUCTIONS, Budget, _coerce, const_eval
from lossdsl.lower.decls import check_param_value
from lossdsl.lower.functions import FUNCTIONS, lower_call
from lossdsl.lower.preludes import PRELUDES
from lossdsl.lower.results import lower_loss

LIBRARY.call = lower_call
LIBRARY.functions = FUNCTIONS
LIBRARY.preludes = PRELUDES

__all__ = [
    "FUNCTIONS",
    "PRELUDES",
    "REDUCTIONS",
    "Budget",
    "_coerce",
    "check_param_value",
    "const_eval",
    "lower_loss",
]
