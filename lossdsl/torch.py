"""A lossdsl loss as a `torch.nn.Module`, for `criterion=` slots and configs:

    criterion = lossdsl.torch.Loss("focal", gamma=2.0)
    loss = criterion(logits, target)

Params given as Python numbers are plain attributes; a tensor param is a buffer (in
`state_dict`, moved by `.to(device)`), an `nn.Parameter` is trained with the model. Choice
params are fixed when the module is made (they select the generated code). `config()` gives a
JSON-able dict and `Loss.from_config` makes the same loss from it; the module pickles (and
`torch.save(model)` with it inside loads) because its compiled function pickles as its recipe.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lossdsl.compiled import CompiledLoss
from lossdsl.compiler import Spec, load, parse
from lossdsl.errors import ParamError, did_you_mean

__all__ = ["Loss"]


class _Params(torch.nn.Module):
    """Holds the tensor params as buffers and parameters (the state_dict keys `params.NAME`)."""


class Loss(torch.nn.Module):
    """A lossdsl spec compiled for torch, as an `nn.Module`: `Loss("focal", gamma=2.0)`, then
    `criterion(logits, target)`. Tensor params are buffers, `nn.Parameter` params are trained;
    `config()` / `Loss.from_config` round-trip through JSON (see the module docstring)."""

    spec: Spec
    reduction: str
    schedule: str
    choices: dict[str, Any]
    numbers: dict[str, Any]
    fn: CompiledLoss

    def __init__(
        self,
        spec: str | Spec,
        *,
        reduction: str | None = None,
        schedule: str = "plain",
        **params: Any,
    ) -> None:
        """`spec`: a shipped spec's name, a .loss path, or a Spec (lossdsl.parse); `reduction`:
        None (the spec's own default, as its compiled function's: asl sums), "mean", "sum",
        "none" or a recipe ("mean(S) sum(B)"); `schedule`: "plain" or "chunked"; `params`: the
        spec's params (its defaults otherwise)."""
        super().__init__()
        self._given = spec if isinstance(spec, str) else None
        self.spec = spec if isinstance(spec, Spec) else load(spec)
        known = {p.name: p for p in self.spec.params}
        for k in params:
            if k not in known:
                raise ParamError(
                    f"{self.spec.name} has no param '{k}'",
                    None,
                    did_you_mean(k, known) or f"params: {', '.join(known) or 'none'}",
                )
        self.choices = {k: v for k, v in params.items() if known[k].choices}
        self.reduction = reduction or self.spec.default_reduction
        self.schedule = schedule
        self.numbers: dict[str, Any] = {}
        self.params = _Params()
        for k, v in params.items():
            if k in self.choices:
                continue
            if isinstance(v, torch.nn.Parameter):
                self.params.register_parameter(k, v)
            elif isinstance(v, torch.Tensor):
                self.params.register_buffer(k, v)
            else:
                self.numbers[k] = v
        self.fn = self.spec.compile("torch", schedule=schedule, **self.choices)

    def forward(self, *inputs: Any, **kw: Any) -> torch.Tensor:
        """The loss of `inputs` (the spec's inputs, in declared order or by name); `kw` may
        override a param or pass `check_indices=`."""
        tensors = dict(self.params.named_parameters(recurse=False))
        tensors.update(self.params.named_buffers(recurse=False))
        return self.fn(*inputs, **self.numbers, **tensors, reduction=self.reduction, **kw)

    def extra_repr(self) -> str:
        """The spec's name, the params given, the reduction (and a schedule not "plain")."""
        shown = [
            self.spec.name,
            *(f"{k}={v!r}" for k, v in {**self.choices, **self.numbers}.items()),
        ]
        shown += [f"{k}=Parameter{tuple(v.shape)}" for k, v in self.params.named_parameters()]
        shown += [f"{k}=tensor{tuple(v.shape)}" for k, v in self.params.named_buffers()]
        shown.append(f"reduction={self.reduction!r}")
        if self.schedule != "plain":
            shown.append(f"schedule={self.schedule!r}")
        return ", ".join(shown)

    def __repr__(self) -> str:  # one line: the params child is shown in it
        return f"Loss({self.extra_repr()})"

    def config(self) -> dict[str, Any]:
        """A JSON-able dict (`json.dumps` takes it): the spec (its name or path as given, else
        its text), the reduction, the schedule and every param given, tensors as numbers or
        nested lists. `Loss.from_config(loss.config())` computes the same loss."""
        params: dict[str, Any] = {**self.choices, **self.numbers}
        for k, v in [*self.params.named_parameters(recurse=False), *self.params.named_buffers()]:
            params[k] = v.detach().cpu().tolist()
        for k, v in params.items():
            if isinstance(v, float) and not math.isfinite(v):
                params[k] = repr(v)  # JSON has no inf/nan: "inf", "-inf", "nan"
        out = {"spec": self._given} if self._given is not None else {"text": self.spec.text}
        return {**out, "reduction": self.reduction, "schedule": self.schedule, "params": params}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        """The loss `config()` describes (tensor params come back as tensors of the default
        float dtype; trainable ones as buffers: wrap them in nn.Parameter to train them)."""
        spec = config["spec"] if "spec" in config else parse(config["text"])
        tmp = spec if isinstance(spec, Spec) else load(spec)
        dtypes = {p.name: p for p in tmp.params}
        params = {}
        for k, v in config.get("params", {}).items():
            p = dtypes.get(k)
            if isinstance(v, str) and p is not None and not p.choices:
                v = float(v)  # "inf" written by config()
            if isinstance(v, list):
                v = torch.tensor(v)
            params[k] = v
        return cls(
            spec,
            reduction=config.get("reduction"),
            schedule=config.get("schedule", "plain"),
            **params,
        )
