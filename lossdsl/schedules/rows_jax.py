"""The row-blocked schedule for jax (lossdsl/schedules/rows.py holds the `RowBlocked` it
runs): a custom_vjp over a lax.scan of the blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lossdsl.schedules.rows import RowBlocked

DW_SLICE = 8192  # rows of dW updated at a time by the jax row-blocked schedule


def jax_row_blocks(loss: RowBlocked, kw: dict, sizes: dict, h, w, b, tensors: list):
    """The jax row-blocked schedule: a custom_vjp whose forward takes every block's gradient
    (jax.value_and_grad of the block's total, w.r.t. its logits and its float values) and
    whose backward only scales them, so no block's [rows, V] logits outlive its step."""
    import jax
    import jax.numpy as jnp

    fl = loss.floats()
    axes = [loss.axis(a, t) for a, t in zip(loss.block_args, tensors)]
    v, d = w.shape

    def block(hr, w, b, args, dw, db):
        def total(z, fargs):
            full = list(args)
            for i, x in zip(fl, fargs):
                full[i] = x
            return loss.call_block(z, full, kw, sizes)

        z = hr @ w.T if b is None else hr @ w.T + b
        val, (dz, dfl) = jax.value_and_grad(total, argnums=(0, 1))(z, [args[i] for i in fl])
        dz2, hr2 = dz.reshape(-1, v), hr.reshape(-1, d)
        db = db if b is None else db + dz2.sum(0)
        return val, dz @ w, accumulate(dw, dz2, hr2), db, dfl

    def accumulate(dw, dz, hr):
        """dw + dz.T @ hr, V-slice by V-slice in place: the whole product would be a second
        [V, D] buffer beside the accumulator (XLA does not fuse the add into the matmul)."""
        s = min(DW_SLICE, v)

        def add(k, dw):
            start = k * s
            part = jax.lax.dynamic_slice_in_dim(dz, start, s, axis=1).T @ hr
            cur = jax.lax.dynamic_slice_in_dim(dw, start, s, axis=0)
            return jax.lax.dynamic_update_slice_in_dim(dw, cur + part, start, axis=0)

        if s:
            dw = jax.lax.fori_loop(0, v // s, add, dw)
        if s and v % s:
            rest = v - v % s
            dw = dw.at[rest:].add(dz[:, rest:].T @ hr)
        return dw

    def cut(x, k, lo, hi):
        return x if k is None else x[(slice(None),) * k + (slice(lo, hi),)]

    @jax.custom_vjp
    def total_of(h, w, b, *ts):
        return fwd(h, w, b, *ts)[0]

    def fwd(h, w, b, *ts):
        # whole blocks in a lax.scan (one block's buffers live at a time: an unrolled Python
        # loop lets XLA keep every block's [rows, V] logits alive), the remainder after it
        n, r = h.shape[0], loss.rows
        main = n - n % r
        total, dw = jnp.zeros((), h.dtype), jnp.zeros_like(w)
        db = None if b is None else jnp.zeros_like(b)
        dh: list = []
        parts: dict = {i: [] for i in fl if axes[i] is not None}  # d(values along B), by block
        whole = {i: jnp.zeros_like(ts[i]) for i in fl if axes[i] is None}
        rowed = [i for i, k in enumerate(axes) if k is not None]
        if main:

            def blocks_of(x, axis):
                x = jnp.moveaxis(cut(x, axis, 0, main), axis, 0)
                return x.reshape((main // r, r) + x.shape[1:])

            xs = [blocks_of(h, 0)] + [blocks_of(ts[i], axes[i]) for i in rowed]

            def body(carry, x):
                total, dw, db, acc = carry
                args = list(ts)
                for i, xi in zip(rowed, x[1:]):
                    args[i] = jnp.moveaxis(xi, 0, axes[i])
                val, dhb, dw, db, dfl = block(x[0], w, b, args, dw, db)
                g = dict(zip(fl, dfl))
                acc = {i: acc[i] + g[i] for i in acc}
                ys = [dhb] + [jnp.moveaxis(g[i], axes[i], 0) for i in parts]
                return (total + val, dw, db, acc), ys

            (total, dw, db, whole), ys = jax.lax.scan(body, (total, dw, db, whole), xs)
            dh.append(ys[0].reshape((main,) + h.shape[1:]))
            for i, y in zip(parts, ys[1:]):
                y = y.reshape((main,) + y.shape[2:])
                parts[i].append(jnp.moveaxis(y, 0, axes[i]))
        if main < n:
            args = [cut(t, k, main, n) for t, k in zip(ts, axes)]
            val, dhb, dw, db, dfl = block(h[main:], w, b, args, dw, db)
            total = total + val
            dh.append(dhb)
            g = dict(zip(fl, dfl))
            for i in parts:
                parts[i].append(g[i])
            whole = {i: whole[i] + g[i] for i in whole}
        dts = [None] * len(ts)
        for i in fl:
            if i in whole:
                dts[i] = whole[i]
            else:  # an empty batch has no block: a zero gradient
                ps = parts[i]
                dts[i] = jnp.concatenate(ps, axes[i]) if ps else jnp.zeros_like(ts[i])
        dh = jnp.concatenate(dh) if dh else jnp.zeros_like(h)
        return total, (dh, dw, db, dts)

    def bwd(res, g):
        dh, dw, db, dts = res
        if h.shape[0] == 0:  # no rows: the total's gradient is an empty sum (g may be inf: 1/0)
            g = jnp.zeros_like(g)
        db = None if db is None else g * db
        return (g * dh, g * dw, db, *(None if x is None else g * x for x in dts))

    total_of.defvjp(fwd, bwd)
    return total_of(h, w, b, *tensors)
