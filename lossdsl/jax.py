"""A lossdsl loss as an immutable, hashable jax callable, for flax.nnx / equinox modules and
`jax.jit` static arguments:

    loss = lossdsl.jax.Loss("focal", gamma=2.0)
    value = jax.jit(loss)(logits, target)            # the Loss is static: it hashes by config
    per = lossdsl.jax.Loss("focal", per_example=True)
    values = jax.vmap(per)(logits, target)           # one example per call, no x[None]

Its params are Python values fixed at construction (pass a traced value per call as a keyword:
`loss(logits, target, gamma=g)`). `per_example=True` takes one example (the inputs without their
batch dim), adds the batch dim of one, and returns that example's loss: the form `jax.vmap` and
per-example gradients want. `config()` / `Loss.from_config` round-trip through JSON.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from lossdsl.compiled import CompiledLoss
from lossdsl.compiler import Spec, load, parse
from lossdsl.errors import ParamError, did_you_mean

if TYPE_CHECKING:
    import jax

__all__ = ["Loss"]


class Loss:
    """A lossdsl spec compiled for jax, immutable and hashable (equal configs, equal losses):
    `Loss("focal", gamma=2.0)`, then `loss(logits, target)`. A `jax.jit` static argument or a
    flax/equinox field; `per_example=True` takes one example at a time for `jax.vmap` (see the
    module docstring)."""

    spec: Spec
    reduction: str
    per_example: bool
    params: dict[str, Any]
    fn: CompiledLoss

    # __weakref__: jax.jit(loss) keeps a weak reference to the function it traces
    __slots__ = (
        "_key",
        "spec",
        "reduction",
        "per_example",
        "params",
        "fn",
        "_batched",
        "__weakref__",
    )

    def __init__(
        self,
        spec: str | Spec,
        *,
        reduction: str | None = None,
        per_example: bool = False,
        **params: Any,
    ) -> None:
        """`spec`: a shipped spec's name, a .loss path, or a Spec (lossdsl.parse); `reduction`:
        None (the spec's own default, as its compiled function's: asl sums), "mean", "sum",
        "none" or a recipe; `per_example`: inputs without their batch dim;
        `params`: Python values of the spec's params (its defaults otherwise)."""
        s = spec if isinstance(spec, Spec) else load(spec)
        known = {p.name: p for p in s.params}
        for k, v in params.items():
            if k not in known:
                raise ParamError(
                    f"{s.name} has no param '{k}'",
                    None,
                    did_you_mean(k, known) or f"params: {', '.join(known) or 'none'}",
                )
            if not isinstance(v, (bool, int, float, str)):
                raise ParamError(
                    f"{s.name}: param '{k}' of a lossdsl.jax.Loss is fixed, got {type(v).__name__}",
                    None,
                    f"pass a Python number, or a traced value per call: loss(..., {k}=value)",
                )
        choices = {k: v for k, v in params.items() if known[k].choices}
        setter = object.__setattr__
        setter(self, "spec", s)
        reduction = reduction or s.default_reduction
        setter(self, "reduction", reduction)
        setter(self, "per_example", per_example)
        setter(self, "params", {k: v for k, v in params.items() if k not in choices})
        setter(self, "fn", s.compile("jax", **choices))
        given = spec if isinstance(spec, str) else None
        setter(self, "_key", (given, s.text, reduction, per_example, tuple(sorted(params.items()))))
        # per_example: the inputs whose first dim is the per-element loss's first (the batch)
        prog = s._lowered(frozenset())
        none = dict(prog.outputs)["none"].type.dims
        batch = none[0] if none else None
        dims = [d.var.type.dims for d in prog.inputs]
        setter(self, "_batched", tuple(bool(d) and d[0] == batch for d in dims))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a lossdsl.jax.Loss is immutable: make a new one")

    def __call__(self, *inputs: Any, **kw: Any) -> jax.Array:
        """The loss of `inputs` (the spec's inputs, in declared order or by name); `kw` may
        pass a param per call (a traced value too) or `reduction=`."""
        kw = {**self.params, **kw}
        if not self.per_example:
            return self.fn(*inputs, reduction=kw.pop("reduction", self.reduction), **kw)
        import jax.numpy as jnp

        if len(inputs) > len(self._batched):
            return self.fn(*inputs, **kw)  # the compiled function's ArityError
        one = [jnp.asarray(x)[None] if b else x for x, b in zip(inputs, self._batched)]
        return self.fn(*one, reduction="sum", **kw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loss) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        shown = [repr(self.spec.name), *(f"{k}={v!r}" for k, v in self._key[4])]
        shown.append(f"reduction={self.reduction!r}")
        if self.per_example:
            shown.append("per_example=True")
        return f"Loss({', '.join(shown)})"

    def config(self) -> dict[str, Any]:
        """A JSON-able dict; `Loss.from_config(loss.config())` == loss."""
        given, text, reduction, per_example, params = self._key
        ps = {k: repr(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in params}
        out: dict[str, Any] = {"spec": given} if given is not None else {"text": text}
        return {**out, "reduction": reduction, "per_example": per_example, "params": ps}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        """The loss `config()` describes."""
        spec = config["spec"] if "spec" in config else parse(config["text"])
        s = spec if isinstance(spec, Spec) else load(spec)
        kinds = {p.name: p for p in s.params}
        params = {
            k: float(v) if isinstance(v, str) and k in kinds and not kinds[k].choices else v
            for k, v in config.get("params", {}).items()
        }
        return cls(
            spec,
            reduction=config.get("reduction"),
            per_example=config.get("per_example", False),
            **params,
        )
