"""The template attributes of an equation: its IR attributes made concrete for one function
(named dims -> axis numbers, dims -> size expressions, dtypes -> the target's names), then what
a few ops' templates need besides (onehot's column shape, einsum specs, the gather's form...).

Two tables, no per-op if-chain: ATTR_RULES by IR attribute name, OP_ATTRS by op (KIND_ATTRS by
op kind). Each rule takes the function emitter (lossdsl/codegen/function.py), the equation and
its value, and returns the attributes it adds; the op rules run after the attribute rules and
may override them (expand's `shape` is its output's)."""

from __future__ import annotations

from collections.abc import Callable

from lossdsl import axes
from lossdsl.codegen.names import py_literal
from lossdsl.ir import Eqn, Var
from lossdsl.ops import OPS, PADDINGS
from lossdsl.types import Dim


def _over(em, e: Eqn, v) -> dict:
    if e.op in ("contract", "take_along"):
        return {}  # the einsum spec names the summed dims; take_along's axis is its output's
    a0 = e.args[0]
    ax = axes.axes(a0.type.dims, v)
    return {
        "axes": ax[0] if len(ax) == 1 else ax,
        "axis": ax[0],
        "all": len(ax) == len(a0.type.dims),
    }


def _dims(em, e: Eqn, v) -> dict:
    if e.op == "transpose":
        return {}  # its `perm` (below)
    return {
        "shape": "(" + "".join(em.dim_size(d) + ", " for d in v) + ")",
        "n": em.dim_size(v[0]) if v else "1",  # a 0-d fill: a folded result
    }


def size_code(em, sizes) -> str:
    """A window's sizes as a Python tuple: numbers, and an int param's value (size=k)."""
    return (
        "("
        + "".join((str(k) if isinstance(k, int) else em.dim_size(k)) + ", " for k in sizes)
        + ")"
    )


ATTR_RULES: dict[str, Callable[..., dict]] = {
    "over": _over,
    "dim": lambda em, e, v: {"n": em.dim_size(v)},
    "dims": _dims,
    "dtype": lambda em, e, v: {"dtype": em.dtype(v)},
    "value": lambda em, e, v: {"value": py_literal(v)},
    "empty": lambda em, e, v: {"empty": py_literal(v)},
    "reduce": lambda em, e, v: {"reduce": v},
    "ddof": lambda em, e, v: {"ddof": int(v)},
    "index": lambda em, e, v: {"index": int(v)},
    "steps": lambda em, e, v: {"steps": py_literal(int(v))},
    "reverse": lambda em, e, v: {"reverse": bool(v)},
    "descending": lambda em, e, v: {"descending": bool(v)},
    "size": lambda em, e, v: {"size": size_code(em, v)},
    "stride": lambda em, e, v: {"stride": tuple(int(k) for k in v)},
    "padding": lambda em, e, v: {"padding": f'"{PADDINGS[PADDINGS.index(v)]}"'},  # not user text
    "taps": lambda em, e, v: {},  # the kernel's layout (_window below)
    "center": lambda em, e, v: {"center": bool(v)},
    "win": lambda em, e, v: {"win": int(v)},
    "eps": lambda em, e, v: {"eps": py_literal(float(v))},
}


def _onehot(em, e: Eqn, attrs: dict) -> dict:
    """The class axis k, and the arange shaped to broadcast against idx.unsqueeze(k)."""
    k = e.out.type.dims.index(e.attr("dim"))
    trail = len(e.out.type.dims) - k - 1
    column = "(" + ", ".join([attrs["n"]] + ["1"] * trail) + ("," if not trail else "") + ")"
    return {"k": k, "column": column}


def _matrix_last(em, e: Eqn, attrs: dict) -> dict:
    """A matrix op on (D, D'): the operand with those two axes last ({mat}), and how to move
    the result's trailing D back to where the output type has it ({unperm})."""
    (x,) = e.args
    d, d2 = e.attr("over")
    rest = tuple(k for k in x.type.dims if k not in (d, d2))
    mat = em.ref(x)
    if x.type.dims != rest + (d, d2):
        perm = tuple(x.type.dims.index(k) for k in rest + (d, d2))
        mat = em.t.permute.format(x=mat, perm=perm)
    got = rest + (d,)
    want = e.out.type.dims
    unperm = None if got == want else tuple(got.index(k) for k in want)
    return {"mat": mat, "unperm": unperm}


def _expand(em, e: Eqn, attrs: dict) -> dict:
    shape = "(" + "".join(em.dim_size(d) + ", " for d in e.out.type.dims) + ")"
    return {"shape": shape, "nones": ", ".join(["None"] * len(e.attr("dims")))}


def _transpose(em, e: Eqn, attrs: dict) -> dict:
    return {"perm": axes.axes(e.args[0].type.dims, e.attr("dims"))}


def _contract(em, e: Eqn, attrs: dict) -> dict:
    a, b = e.args
    return {"spec": axes.einsum_spec(a.type.dims, b.type.dims, e.out.type.dims)}


def _gather(em, e: Eqn, attrs: dict) -> dict:
    """How to pick x along the index's `of` dim; the target template picks the form."""
    x, idx = e.args
    of = idx.type.of
    rest = tuple(d for d in x.type.dims if d != of)
    # A computed index (argmax) may point into an empty `of` dim, in a branch the too-small
    # check skips as untaken (lossdsl/empty.py): its template then gives NaN, not an error. An
    # input's indices are range-checked, so they need no such branch.
    computed = isinstance(idx, Var) and idx.name not in {i.var.name for i in em.p.inputs}
    src = {"src": em.dim_size(of) if computed and of.fixed is None else None}
    if x.type.dims == (of,):  # a scalar pick (cross_entropy's templates take it along axis 0)
        return {"form": "take", "k": 0, "i": em.ref(idx), **src}
    if set(idx.type.dims) == set(rest):
        i = em.aligned(idx, rest) if idx.type.dims != rest else em.ref(idx)
        return {"form": "axis", "k": x.type.dims.index(of), "i": i, **src}
    outd = e.out.type.dims
    xa = em.aligned(x, outd + (of,))
    shape_x = "(" + "".join(em.dim_size(d) + ", " for d in outd + (of,)) + ")"
    shape_i = "(" + "".join(em.dim_size(d) + ", " for d in outd) + ")"
    return {
        "form": "general",
        "xb": em.t.broadcast.format(x=xa, shape=shape_x),
        "ib": em.t.broadcast.format(x=em.aligned(idx, outd), shape=shape_i),
        **src,
    }


def _take_along(em, e: Eqn, attrs: dict) -> dict:
    """take_along's value and positions, each broadcast to the result's dims ({x}, {idx}),
    and the axis there ({axis})."""
    out = e.out.type.dims
    shape = "(" + "".join(em.dim_size(d) + ", " for d in out) + ")"

    def full(a):
        if a.type.dims == out:
            return em.ref(a)
        x = em.aligned(a, out)
        if not a.type.dims:  # a number (sort(3, by=k)): a 0-d tensor to broadcast
            x = em.t.as_tensor.format(x=x, dtype=em.dtype(a.type.dtype))
        return em.t.broadcast.format(x=x, shape=shape)

    (d,) = e.attr("over")
    return {"x": full(e.args[0]), "idx": full(e.args[1]), "axis": out.index(d)}


def _collective(em, e: Eqn, attrs: dict) -> dict:
    """The sharded dim's axis in the operand, the local and global sizes, the kind."""
    local = Dim(em.shard)
    out = {"nl": em.dim_size(local), "ng": em.dim_size(local.prime())}
    out["kind"] = e.attr("kind")
    if e.op in ("all_gather", "shard_slice"):
        out["axis"] = e.args[0].type.dims.index(e.attr("dim"))
    if e.op == "shard_eye":
        out["local_first"] = e.attr("dims")[0] == e.attr("local")
    return out


def _ctc(em, e: Eqn, attrs: dict) -> dict:
    """ctc_nll's log_probs laid out [T, B, C] ({lp}) and targets [B, L] ({tg})."""
    lp, tg, il = e.args[:3]
    (t,) = e.attr("over")
    (b,) = il.type.dims
    lab = tuple(d for d in tg.type.dims if d != b)
    return {"lp": em.aligned(lp, (t, b, tg.type.of)), "tg": em.aligned(tg, (b,) + lab)}


OP_ATTRS: dict[str, Callable[..., dict]] = {
    "onehot": _onehot,
    "eigvalsh": _matrix_last,
    "expand": _expand,
    "transpose": _transpose,
    "contract": _contract,
    "gather": _gather,
    "cross_entropy": _gather,
    "take_along": _take_along,
    "ctc_nll": _ctc,
}


def _window(em, e: Eqn, attrs: dict) -> dict:
    """A window's axes as a tuple, the same number of trailing positions (the helpers move the
    axes there), its kind for the helpers, and conv's kernel with its axes in over's order."""
    ax = tuple(axes.axes(e.args[0].type.dims, e.attr("over")))
    kind = {"avg_pool": "avg", "max_pool": "max"}.get(e.op, e.op)
    out = {"wax": ax, "last": tuple(range(-len(ax), 0)), "kind": f'"{kind}"'}
    sigma = em.ref(e.args[1]) if e.op == "blur" else "0.0"
    out.update(size=attrs.get("size", "()"), sigma=sigma)
    if e.op == "conv":
        k = e.args[1]
        kern = em.ref(k)
        if k.type.dims != e.attr("taps"):
            kern = em.t.permute.format(x=kern, perm=tuple(axes.axes(k.type.dims, e.attr("taps"))))
        out["kern"] = kern
    else:
        out["kern"] = "None"
    return out


KIND_ATTRS: dict[str, Callable[..., dict]] = {"collective": _collective, "window": _window}


def template_attrs(em, e: Eqn) -> dict:
    """Every attribute a template of `e` may name ({fdt} always)."""
    attrs: dict = {"fdt": "fdt"}
    for k, v in e.attrs:
        rule = ATTR_RULES.get(k)
        if rule is not None:
            attrs.update(rule(em, e, v))
    for rule in (OP_ATTRS.get(e.op), KIND_ATTRS.get(OPS[e.op].kind)):
        if rule is not None:
            attrs.update(rule(em, e, attrs))
    return attrs
