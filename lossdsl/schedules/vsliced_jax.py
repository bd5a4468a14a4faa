"""The V-sliced schedule for jax (lossdsl/schedules/vsliced.py holds the `ChunkedLoss` it
runs): each slice's statistics under jax.checkpoint, combined so that autodiff gives the plain
loss's gradient."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lossdsl.schedules.plan import combine
from lossdsl.schedules.subfunctions import slices

if TYPE_CHECKING:
    from lossdsl.schedules.vsliced import ChunkedLoss


def jax_chunked(loss: ChunkedLoss, kw, sizes, x, w, b, *tensors):
    """The jax chunked schedule: each slice's statistics under jax.checkpoint (the backward
    pass recomputes the slice), combined so that autodiff gives the plain loss's gradient: a
    sum adds, a logsumexp folds with logaddexp (its gradient is each chunk's softmax weight),
    a max or min hands each chunk its share (its ties / all ties) of the gradient, as jnp.max
    splits it evenly among tied entries."""
    import jax
    import jax.numpy as jnp

    values = dict(zip(loss.extra, tensors))
    total = w.shape[0] if w is not None else x.shape[-1]
    parts, counts = [], []
    for lo, hi in slices(total, loss.chunk):

        def one(x, w, b, vals, lo=lo, hi=hi):
            z = x @ w[lo:hi].T if w is not None else x[..., lo:hi]
            z = z if b is None else z + b[lo:hi]
            return loss.slice_stats(z, lo, kw, sizes, vals, ties=True)

        p, c = jax.checkpoint(one)(x, w, b, values)
        parts.append(p)
        counts.append(c)
    out = []
    for i, s in enumerate(loss.stats):
        ps = [p[i] for p in parts]
        acc = ps[0]
        for p in ps[1:]:
            acc = combine(s.kind, acc, p, jnp)
        if s.ties is not None:
            tot = jax.lax.stop_gradient(acc)
            cs = [c[i] for c in counts]
            cnt = sum(jnp.where(p == tot, c, 0) for p, c in zip(ps, cs))
            share = [jnp.where(p == tot, c / cnt, 0) for p, c in zip(ps, cs)]
            acc = tot + sum(k * (p - jax.lax.stop_gradient(p)) for k, p in zip(share, ps))
        out.append(acc)
    return tuple(out)
