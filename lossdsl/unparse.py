"""AST -> source text. parse(unparse(parse(t))) == parse(t): the round-trip the parser tests use,
and a canonical formatting of a spec. Parentheses are added wherever precedence needs them."""

from __future__ import annotations

from lossdsl import ast

# Binding strength, loosest first (the grammar's precedence table).
_PREC = {
    "|": 1,
    "&": 2,
    "cmp": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "//": 5,
    "%": 5,
    "unary": 6,
    "^": 7,
    "post": 8,
}


def unparse_module(m: ast.Module) -> str:
    out = []
    # Module.doc falls back to the first loss's docstring; print it once, where it was.
    header_doc = m.doc if m.doc is not None and (not m.losses or m.losses[0].doc != m.doc) else None
    if m.imports:
        if header_doc is not None:
            out.append(f'"""{header_doc}"""')
        out.append("import " + ", ".join(i.name for i in m.imports))
        out.append("")
    for loss in m.losses:
        out.append(unparse_loss(loss))
    return "\n".join(out) + "\n"


def unparse_loss(loss: ast.LossDef) -> str:
    lines = []
    if loss.doc is not None:
        lines.append(f'"""{loss.doc}"""')
    ins = ", ".join(
        f"{i.name}: {i.type}"
        + (f" = {expr(i.default)}" if i.default is not None else "")
        + (f" where {expr(i.domain)}" if i.domain is not None else "")
        for i in (*loss.inputs, *loss.fns)
    )
    lines.append(f"loss {loss.name}({ins}) {{")
    for st in loss.body:
        lines.append(_indent(stmt(st)))
    lines.append(_indent(expr(loss.result)))
    lines.append("}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    # A loop's block spans lines; every one of them moves in with its statement.
    return "\n".join("    " + line for line in text.split("\n"))


def stmt(s: ast.Stmt) -> str:
    match s:
        case ast.Param(name=n, dtype=dt, default=d, constraint=c, choices=ch):
            dt = " | ".join(f'"{w}"' for w in ch) if ch else dt
            default = f" = {expr(d)}" if d is not None else ""  # (None: a required param)
            return f"param {n}: {dt}{default}" + (f" where {expr(c)}" if c else "")
        case ast.Use(task=t, args=a, kwargs=k):
            return f"use {t}({_args(a, k)})"
        case ast.Let(name=n, value=v):
            return f"let {n} = {expr(v)}"
        case ast.LetTuple(names=ns, value=v):
            return f"let {', '.join(ns)} = {expr(v)}"
        case ast.Reduce(mode=m, by=b, empty=e):
            return (
                f"reduce {m}"
                + (f" by {expr(b)}" if b is not None else "")
                + (f" empty {expr(e)}" if e is not None else "")
            )
    raise AssertionError(s)


def _args(args, kwargs) -> str:
    return ", ".join([expr(a) for a in args] + [f"{k.name}={expr(k.value)}" for k in kwargs])


def _prec(e) -> int:
    match e:
        case ast.Binary(op=op):
            return _PREC[op]
        case ast.Compare():
            return _PREC["cmp"]
        case ast.Unary():
            return _PREC["unary"]
        case ast.Num(value=v) if isinstance(v, (int, float)) and v < 0:
            return _PREC["unary"]
    return _PREC["post"]


def _wrap(e, min_prec: int) -> str:
    s = expr(e)
    return f"({s})" if _prec(e) < min_prec else s


def expr(e) -> str:
    match e:
        case ast.Num(text=t):
            return t
        case ast.Bool(value=v):
            return "true" if v else "false"
        case ast.Name(name=n):
            return n
        case ast.Str(value=v):
            return f'"{v}"'
        case ast.Unary(op=op, operand=x):
            return f"{op}{_wrap(x, _PREC['unary'])}"
        case ast.Binary(op="^", left=l, right=r):
            # right-associative, and tighter than unary minus on its left
            return f"{_wrap(l, _PREC['post'])}^{_wrap(r, _PREC['unary'])}"
        case ast.Binary(op=op, left=l, right=r):
            p = _PREC[op]
            return f"{_wrap(l, p)} {op} {_wrap(r, p + 1)}"
        case ast.Compare(operands=xs, ops=ops):
            parts = [_wrap(xs[0], _PREC["cmp"] + 1)]
            for op, x in zip(ops, xs[1:], strict=True):
                parts += [op, _wrap(x, _PREC["cmp"] + 1)]
            return " ".join(parts)
        case ast.Call(func=f, args=a, kwargs=k):
            return f"{f}({_args(a, k)})"
        case ast.Gather(base=b, index=i):
            return f"{_wrap(b, _PREC['post'])}[{expr(i)}]"
        case ast.Prime(operand=x):
            return f"{_wrap(x, _PREC['post'])}'"
        case ast.Tuple(items=xs):
            return "(" + ", ".join(expr(x) for x in xs) + ("," if len(xs) == 1 else "") + ")"
        case ast.BlockCall(func=f, args=a, kwargs=k, state=names, block=b):
            body = [_indent(stmt(x)) for x in b.stmts] + [_indent(expr(b.result))]
            return f"{f}({_args(a, k)}) ({', '.join(names)}) {{\n" + "\n".join(body) + "\n}"
    raise AssertionError(e)
