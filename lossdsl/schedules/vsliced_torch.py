"""The V-sliced schedule's torch.autograd.Function (lossdsl/schedules/vsliced.py holds the
`ChunkedLoss` it runs): forward runs every statistic slice by slice under no_grad and combines
the partial statistics; backward recomputes each slice with autograd and writes its gradient
into dlogits[..., slice] (or dh, dW[slice] and db[slice] when fused with the linear layer)."""

from __future__ import annotations

from lossdsl.schedules.plan import combine
from lossdsl.schedules.subfunctions import LazyFunction, narrow, slices


def _combine_ties(kind, acc, cnt, part, c, xp):
    """max/min with its tie count: the count of the entries equal to the combined value."""
    new = combine(kind, acc, part, xp)
    return new, xp.where(acc == new, cnt, 0) + xp.where(part == new, c, 0)


def _make_function():
    import torch

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, kw, sizes, x, w, b, *tensors):
            values = dict(zip(loss.extra, tensors))
            total = w.shape[0] if w is not None else x.shape[-1]
            acc, cnt = None, None
            with torch.no_grad():
                for lo, hi in slices(total, loss.chunk):
                    z = x @ w[lo:hi].T if w is not None else x[..., lo:hi]
                    z = z if b is None else z + b[lo:hi]
                    part, c = loss.slice_stats(z, lo, kw, sizes, values, ties=True)
                    if acc is None:
                        acc, cnt = part, c
                        continue
                    for i, s in enumerate(loss.stats):
                        if s.ties is not None:
                            acc[i], cnt[i] = _combine_ties(s.kind, acc[i], cnt[i], part[i],
                                                           c[i], torch)  # fmt: skip
                        else:
                            acc[i] = combine(s.kind, acc[i], part[i], torch)
            ctx.loss, ctx.kw, ctx.sizes = loss, kw, sizes
            counts = [c if c is not None else a for a, c in zip(acc, cnt)]
            ctx.save_for_backward(x, w if w is not None else x, b if b is not None else x, *tensors,
                                  *acc, *counts)  # fmt: skip
            ctx.bias = b is not None
            ctx.fused = w is not None
            ctx.n_tensors = len(tensors)
            return tuple(acc)

        @staticmethod
        def backward(ctx, *d_stats):
            loss = ctx.loss
            saved = ctx.saved_tensors
            x, w = saved[0], saved[1] if ctx.fused else None
            b = saved[2] if ctx.bias else None
            nt, ns = ctx.n_tensors, len(loss.stats)
            tensors = saved[3 : 3 + nt]
            totals = saved[3 + nt : 3 + nt + ns]
            counts = saved[3 + nt + ns :]
            want = [ctx.needs_input_grad[6 + i] for i in range(nt)]
            total = w.shape[0] if w is not None else x.shape[-1]
            dx = torch.zeros_like(x) if ctx.needs_input_grad[3] else None
            dw = torch.zeros_like(w) if w is not None and ctx.needs_input_grad[4] else None
            db = torch.zeros_like(b) if b is not None and ctx.needs_input_grad[5] else None
            dt = [torch.zeros_like(t) if k else None for t, k in zip(tensors, want)]
            full = dict(zip(loss.extra, tensors))
            for lo, hi in slices(total, loss.chunk):
                with torch.enable_grad():
                    if w is not None:
                        xs = x.detach().requires_grad_(True)
                        wk = w[lo:hi].detach().requires_grad_(True)
                        z = xs @ wk.T
                        leaves = [xs, wk]
                        if b is not None:  # the bias's slice: one more leaf
                            bk = b[lo:hi].detach().requires_grad_(True)
                            z = z + bk
                            leaves.append(bk)
                    else:
                        z = x[..., lo:hi].detach().requires_grad_(True)
                        leaves = [z]
                    # a float row value that needs a gradient: its slice (or, without V, the
                    # whole of it) is a leaf of this slice's graph
                    pieces = {}
                    for i, name in enumerate(loss.extra):
                        if dt[i] is not None:
                            axis = loss.v_axis(name, tensors[i])
                            t = tensors[i] if axis is None else narrow(tensors[i], axis, lo,
                                                                         hi - lo)  # fmt: skip
                            pieces[name] = t.detach().requires_grad_(True)
                            leaves.append(pieces[name])
                    parts, cs = loss.slice_stats(z, lo, ctx.kw, ctx.sizes, full, True, pieces)
                    outs, grads = [], []
                    for s, part, c, tot, cnt, d in zip(loss.stats, parts, cs, totals, counts,
                                                       d_stats):  # fmt: skip
                        if d is None or not part.requires_grad:
                            continue  # (a count of the classes kept: no gradient)
                        if s.kind == "logsumexp":
                            d = d * torch.exp(part - tot)
                        elif s.ties is not None:  # this chunk's share of the tied entries
                            d = d * torch.where(part == tot, c / cnt, 0)
                        outs.append(part)
                        grads.append(d)
                    if not outs:
                        continue
                    g = torch.autograd.grad(outs, leaves, grads, allow_unused=True)
                if w is not None:
                    if dx is not None and g[0] is not None:
                        dx += g[0]
                    if dw is not None and g[1] is not None:
                        dw[lo:hi] = g[1]
                    if db is not None and g[2] is not None:
                        db[lo:hi] = g[2]
                elif dx is not None and g[0] is not None:
                    dx[..., lo:hi] = g[0]
                gs = dict(zip(pieces, g[len(leaves) - len(pieces) :]))
                for i, name in enumerate(loss.extra):
                    gi = gs.get(name)
                    if gi is None:
                        continue
                    axis = loss.v_axis(name, tensors[i])
                    if axis is None:
                        dt[i] += gi
                    else:
                        narrow(dt[i], axis, lo, hi - lo).add_(gi)
            return (None, None, None, dx, dw, db, *dt)

    return Chunked


chunked_function = LazyFunction(_make_function)
