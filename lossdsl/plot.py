"""`lossdsl plot`: a loss and its derivative along one axis, for a parameter sweep.

`--over pt` (classification): `lossdsl plot cross_entropy focal --param gamma=0,0.5,1,2,5`
redraws Figure 1 of the focal-loss paper. A two-class problem whose target probability is
exactly p_t (softmax specs: logits [log p_t, log(1 - p_t)], target 0; sigmoid specs: logit(p_t),
target 1).
`--over margin` (score margins): the target's score minus the other's: logits [m, 0] with
target 0, a pair of scores (pos = m, neg = 0: bpr, relativistic_gan), or a score m with
target +1 (hinge).
`--over similarity` (metric and contrastive losses): the cosine similarity s of a positive pair
a = e1, p = s e1 + sqrt(1 - s^2) e2, with a negative n = e3 orthogonal to both: a triplet
(anchor, positive, negative), a labelled batch [a, p, n] with labels [0, 0, 1], two views
[[a, p], [n, n]], or paired batches ([a, n], [p, n]).
The curves come from the float64 numpy reference. Minima away from the right end of the axis
and non-monotone stretches are reported: a loss that rewards under-confidence (or a smaller
margin, a less similar positive) is usually a mistake (or, as in label smoothing, the point)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from lossdsl.compiler import Spec, load
from lossdsl.errors import InputError, LossError, did_you_mean

ALIASES = {"ce": "cross_entropy", "bce": "bce_with_logits"}


# --over -> (grid, axis label, symbol for the findings)
AXES = {
    "pt": (np.linspace(1e-3, 1 - 1e-3, 400), "probability of ground truth class $p_t$", "p_t"),
    "margin": (np.linspace(-5.0, 5.0, 401), "score margin $m$ (target minus other)", "m"),
    "similarity": (np.linspace(-0.99, 0.99, 199), "cosine similarity of the positive pair", "s"),
}


@dataclass(frozen=True)
class Curve:
    spec: str
    params: tuple[tuple[str, float], ...]
    pt: np.ndarray  # the x axis: p_t, a margin or a similarity
    loss: np.ndarray
    grad: np.ndarray  # dL/dx along the curve
    over: str = "pt"

    @property
    def label(self) -> str:
        ps = ", ".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.spec}({ps})" if ps else self.spec

    def findings(self) -> list[str]:
        """Minima away from p_t = 1, and stretches where the loss rises with p_t."""
        out = []
        x = AXES[self.over][2]
        i = int(np.argmin(self.loss))
        # a flat minimum (a hinge at zero past its margin) counts as reaching the right end
        if self.loss[i] < self.loss[-1] - 1e-9 * max(1.0, abs(self.loss[-1])):
            end = "1" if self.over == "pt" else f"{self.pt[-1]:g}"
            out.append(f"{self.label}: minimum at {x} = {self.pt[i]:.3f}, not at {x} = {end}")
        rising = np.diff(self.loss) > 1e-9 * np.maximum(1.0, np.abs(self.loss[:-1]))
        if rising.any():
            idx = np.flatnonzero(rising)
            out.append(
                f"{self.label}: not monotone: rises on {x} in "
                f"[{self.pt[idx[0]]:.3f}, {self.pt[idx[-1] + 1]:.3f}]"
            )
        return out


def _required(spec: Spec) -> list:
    return [i for i in spec.inputs if not i.optional]


def _unsupported(spec: Spec, over: str, what: str) -> LossError:
    names = ", ".join(f"{i.name}: {i.type}" for i in _required(spec))
    return LossError(
        f"plot --over {over} needs {what}; {spec.name} takes ({names})",
        None,
        "--over pt: classification specs; margin: scores; similarity: embeddings",
    )


def _pt_inputs(spec: Spec, pt: np.ndarray) -> dict:
    """Inputs that make the target's probability exactly p_t."""
    req = _required(spec)
    if len(req) != 2 or len(spec.inputs) < 2 or spec.inputs[:2] != tuple(req):
        raise _unsupported(spec, "pt", "a spec over (logits, target)")
    (first, stype) = req[0].name, req[1].type
    if stype.startswith("index"):
        logits = np.stack([np.log(pt), np.log1p(-pt)], axis=1)
        return {first: logits, req[1].name: np.zeros(len(pt), dtype=np.int64)}
    logit = np.log(pt) - np.log1p(-pt)
    shape = (len(pt), 1)
    return {first: logit.reshape(shape), req[1].name: np.ones(shape)}


def _margin_inputs(spec: Spec, m: np.ndarray) -> dict:
    """Inputs whose target score beats the other by exactly m."""
    req = _required(spec)
    types = [i.type for i in req]
    if len(req) == 2 and types[1].startswith("index"):
        logits = np.stack([m, np.zeros_like(m)], axis=1)
        return {req[0].name: logits, req[1].name: np.zeros(len(m), dtype=np.int64)}
    if len(req) == 2 and all(t.startswith("float[B") for t in types):
        if req[1].domain is not None and np.isfinite(req[1].domain).all():
            # (scores, target in [-1, 1]): hinge-style, target +1
            return {req[0].name: m.reshape(-1, 1), req[1].name: np.ones((len(m), 1))}
        return {req[0].name: m, req[1].name: np.zeros_like(m)}  # (pos, neg) scores
    raise _unsupported(spec, "margin", "(logits, index target), (pos, neg) or (scores, target)")


def _unit(s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0])
    p = np.array([s, np.sqrt(1.0 - s * s), 0.0])
    return a, p, np.array([0.0, 0.0, 1.0])


def _similarity_inputs(spec: Spec, s: float) -> dict:
    """One batch whose positive pair has cosine similarity s (negatives orthogonal)."""
    req = _required(spec)
    types = [i.type for i in req]
    names = [i.name for i in req]
    a, p, n = _unit(s)
    if types == ["float[B, D]"] * 3:
        return dict(zip(names, (a[None], p[None], n[None])))
    if len(req) == 2 and types[0] == "float[B, D]" and types[1].startswith("int[B]"):
        return {names[0]: np.stack([a, p, n]), names[1]: np.array([0, 0, 1])}
    if types and types[0] == "float[B, V, D]" and all(t.startswith("int[B]") for t in types[1:]):
        views = np.stack([np.stack([a, p]), np.stack([n, n])])
        return {names[0]: views, **{k: np.array([0, 1]) for k in names[1:]}}
    if types == ["float[B, D]"] * 2:
        return {names[0]: np.stack([a, n]), names[1]: np.stack([p, n])}
    raise _unsupported(
        spec, "similarity", "(anchor, positive, negative), (embeddings, labels) or two views"
    )


def curves(
    names: list[str], sweeps: dict[str, list[float]], n: int | None = None, over: str = "pt"
) -> list[Curve]:
    if over not in AXES:
        raise LossError(f"plot --over {over!r}: unknown axis", None, f"one of {', '.join(AXES)}")
    grid = AXES[over][0] if n is None else np.linspace(AXES[over][0][0], AXES[over][0][-1], n)
    specs = [load(ALIASES.get(raw, raw)) for raw in names]
    known = {p.name for spec in specs for p in spec.params}
    for k in sweeps:
        if k not in known:  # a typo would otherwise draw the unswept curve without a word
            names_ = ", ".join(s.name for s in specs)
            raise LossError(
                f"plot --param {k}: no param '{k}' in {names_}",
                None,
                did_you_mean(k, known) or f"their params: {', '.join(sorted(known)) or 'none'}",
            )
    out = []
    for spec in specs:
        mine = {p.name for p in spec.params}
        keys = [k for k in sweeps if k in mine]
        fn = spec.compile("numpy")
        if over == "similarity":
            points = [_similarity_inputs(spec, float(s)) for s in grid]
        else:
            batch = (_pt_inputs if over == "pt" else _margin_inputs)(spec, grid)
        for values in itertools.product(*(sweeps[k] for k in keys)) if keys else [()]:
            params = dict(zip(keys, values))
            try:
                if over == "similarity":
                    # the whole batch's loss at each similarity (its mean, as the spec reduces it)
                    loss = np.array([float(fn(**d, **params)) for d in points])
                else:
                    loss = np.asarray(fn(**batch, **params, reduction="none"), dtype=np.float64)
            except InputError as e:  # the axis's inputs do not fit this spec's shapes
                raise _unsupported(spec, over, f"inputs it can build ({e.message})") from None
            if over != "similarity":
                if loss.ndim == 0 or loss.shape[0] != len(grid):
                    # a batch statistic (batch_dice, mmd, psnr): its "none" is not one loss
                    # per row, so the rows cannot be points of the axis
                    raise LossError(
                        f"plot --over {over}: {spec.name} gives one loss of shape "
                        f"{loss.shape} for the whole batch, not one per row",
                        None,
                        "plot per-row losses; a batch statistic has no curve over one row",
                    )
                loss = loss.reshape(len(grid), -1).sum(axis=1)
            curve = Curve(
                spec.name, tuple(params.items()), grid, loss, np.gradient(loss, grid), over
            )
            out.append(curve)
    return out


def plot(
    names: list[str], sweeps: dict[str, list[float]], output: str, over: str = "pt"
) -> list[str]:
    """Draw the loss and its derivative along the axis; return the findings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = curves(names, sweeps, over=over)
    label, sym = AXES[over][1], AXES[over][2]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for c in cs:
        ax1.plot(c.pt, c.loss, label=c.label)
        ax2.plot(c.pt, c.grad, label=c.label)
    if over == "pt":  # Figure 1 of the focal-loss paper
        ax1.set(ylim=(0, 5))
        ax2.set(ylim=(-20, 1))
    ax1.set(xlabel=label, ylabel="loss")
    ax2.set(xlabel=f"${sym}$", ylabel=rf"$\partial L / \partial {sym}$")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return [f for c in cs for f in c.findings()]
