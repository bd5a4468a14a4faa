"""The row-blocked schedule's torch.autograd.Function (lossdsl/schedules/rows.py holds the
`RowBlocked` it runs): forward takes each block's gradient w.r.t. its logits and pulls it back
into dh, dW (and the bias's db) at once; backward only scales them by the total's cotangent."""

from __future__ import annotations

from lossdsl.schedules.subfunctions import LazyFunction


def _make_rows():
    import torch

    class RowBlocks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss, kw, sizes, h, w, b, *tensors):
            v, d = w.shape
            wd = w.detach()
            bd = b.detach() if b is not None else None
            dh = torch.zeros_like(h)
            dw = torch.zeros_like(w)
            db = torch.zeros_like(b) if b is not None else None
            want = {i for i in loss.floats() if ctx.needs_input_grad[6 + i]}
            dt = [torch.zeros_like(t) if i in want else None for i, t in enumerate(tensors)]
            axes = [loss.axis(a, t) for a, t in zip(loss.block_args, tensors)]
            total = torch.zeros((), dtype=h.dtype, device=h.device)
            for lo in range(0, h.shape[0], loss.rows):
                hi = min(h.shape[0], lo + loss.rows)
                hr = h[lo:hi].detach()
                with torch.enable_grad():
                    z = hr @ wd.T if bd is None else torch.addmm(bd, hr.reshape(-1, d), wd.T)
                    z = z.reshape(hr.shape[:-1] + (v,)).requires_grad_(True)
                    args, leaves = [], [z]
                    for i, (t, k) in enumerate(zip(tensors, axes)):
                        x = t if k is None else t.narrow(k, lo, hi - lo)
                        x = x.detach() if torch.is_tensor(x) else x
                        if i in want:
                            x.requires_grad_(True)
                            leaves.append(x)
                        args.append(x)
                    s = loss.call_block(z, args, kw, sizes)
                    g = [None] * len(leaves)
                    if s.requires_grad:  # not when every use of the logits is stop_grad
                        g = torch.autograd.grad(s, leaves, allow_unused=True)
                total += s.detach()
                dz = g[0]
                if dz is not None:
                    dh[lo:hi] = dz @ wd
                    dw.addmm_(dz.reshape(-1, v).T, hr.reshape(-1, d))
                    if db is not None:
                        db += dz.reshape(-1, v).sum(0)
                for i, gi in zip(sorted(want), g[1:]):  # the leaves' order
                    if gi is None:
                        continue
                    k = axes[i]
                    (dt[i] if k is None else dt[i].narrow(k, lo, hi - lo)).add_(gi)
            ctx.save_for_backward(dh, dw, *(x for x in [db, *dt] if x is not None))
            ctx.bias = b is not None
            ctx.has = [x is not None for x in dt]
            ctx.empty = h.shape[0] == 0
            return total

        @staticmethod
        def backward(ctx, g):
            dh, dw, *saved = ctx.saved_tensors
            if ctx.empty:  # no rows: the total's gradient is an empty sum (g may be inf: 1/0)
                g = torch.zeros_like(g)
            it = iter(saved)
            db = g * next(it) if ctx.bias else None
            dt = [g * next(it) if has else None for has in ctx.has]
            return (None, None, None, g * dh, g * dw, db, *dt)

    return RowBlocks


row_blocks_function = LazyFunction(_make_rows)
