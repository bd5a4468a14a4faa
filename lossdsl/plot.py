"""`lossdsl plot`: a loss and its derivative as functions of p_t, for a parameter sweep.

`lossdsl plot cross_entropy focal --param gamma=0,0.5,1,2,5 -o fig.png` redraws Figure 1 of the
focal-loss paper. The curves come from the float64 numpy reference: a two-class problem whose
target probability is exactly p_t (softmax specs: logits [log p_t, log(1 - p_t)], target 0;
sigmoid specs: logit(p_t), target 1). Minima away from p_t = 1 and non-monotone stretches are
reported: a classification loss that rewards under-confidence is usually a mistake (or, as in
label smoothing, the point)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from lossdsl.compiler import Spec, load
from lossdsl.errors import LossError

ALIASES = {"ce": "cross_entropy", "bce": "bce_with_logits"}


@dataclass(frozen=True)
class Curve:
    spec: str
    params: tuple[tuple[str, float], ...]
    pt: np.ndarray
    loss: np.ndarray
    grad: np.ndarray  # dL/dp_t along the curve

    @property
    def label(self) -> str:
        ps = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.spec}({ps})" if ps else self.spec

    def findings(self) -> list[str]:
        """Minima away from p_t = 1, and stretches where the loss rises with p_t."""
        out = []
        i = int(np.argmin(self.loss))
        if self.pt[i] < self.pt[-1] - 1e-3:
            out.append(f"{self.label}: minimum at p_t = {self.pt[i]:.3f}, not at p_t = 1")
        rising = np.diff(self.loss) > 1e-9 * np.maximum(1.0, np.abs(self.loss[:-1]))
        if rising.any():
            idx = np.flatnonzero(rising)
            out.append(
                f"{self.label}: not monotone: rises on p_t in "
                f"[{self.pt[idx[0]]:.3f}, {self.pt[idx[-1] + 1]:.3f}]"
            )
        return out


def _inputs_for(spec: Spec, pt: np.ndarray) -> dict:
    """Inputs that make the target's probability exactly p_t."""
    (first, ftype), (second, stype) = [(i.name, i.type) for i in spec.inputs[:2]] or [
        (None, "")
    ] * 2
    if len(spec.inputs) < 2 or any(not i.optional for i in spec.inputs[2:]):
        raise LossError(
            f"plot --over pt needs a spec over (logits, target), {spec.name} has "
            f"{', '.join(i.name for i in spec.inputs)}",
            None,
            "plot classification (softmax or sigmoid) specs",
        )
    if stype.startswith("index"):
        logits = np.stack([np.log(pt), np.log1p(-pt)], axis=1)
        return {first: logits, second: np.zeros(len(pt), dtype=np.int64)}
    logit = np.log(pt) - np.log1p(-pt)
    shape = (len(pt), 1)
    return {first: logit.reshape(shape), second: np.ones(shape)}


def curves(names: list[str], sweeps: dict[str, list[float]], n: int = 400) -> list[Curve]:
    pt = np.linspace(1e-3, 1 - 1e-3, n)
    out = []
    for raw in names:
        spec = load(ALIASES.get(raw, raw))
        mine = {p.name for p in spec.params}
        keys = [k for k in sweeps if k in mine]
        fn = spec.compile("numpy")
        data = _inputs_for(spec, pt)
        for values in itertools.product(*(sweeps[k] for k in keys)) if keys else [()]:
            params = dict(zip(keys, values))
            loss = np.asarray(fn(**data, **params, reduction="none"), dtype=np.float64)
            loss = loss.reshape(n, -1).sum(axis=1)
            out.append(Curve(spec.name, tuple(params.items()), pt, loss, np.gradient(loss, pt)))
    return out


def plot(names: list[str], sweeps: dict[str, list[float]], output: str) -> list[str]:
    """Draw loss and dL/dp_t against p_t; return the findings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = curves(names, sweeps)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for c in cs:
        ax1.plot(c.pt, c.loss, label=c.label)
        ax2.plot(c.pt, c.grad, label=c.label)
    ax1.set(xlabel="probability of ground truth class $p_t$", ylabel="loss", ylim=(0, 5))
    ax2.set(xlabel="$p_t$", ylabel=r"$\partial L / \partial p_t$", ylim=(-20, 1))
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return [f for c in cs for f in c.findings()]
