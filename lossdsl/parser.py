"""Text -> AST. Lark LALR parse with positions; lark errors become LossSyntaxError."""

from __future__ import annotations

import functools
import string
from pathlib import Path

import lark
from lark import Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from lossdsl import ast
from lossdsl.errors import LimitError, LossError, LossSyntaxError, ReservedWord, raise_all
from lossdsl.meta import Meta, parse_meta
from lossdsl.resources import resource_dir
from lossdsl.source import Source, Span, point

_TOKEN_NAMES = {
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "RBRACE": "'}'",
    "LBRACE": "'{'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "NAME": "a name",
    "NUMBER": "a number",
    "_NL": "end of line",
    "$END": "end of input",
    "DTYPE": "a dtype",
    "CMP_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/', '//' or '%'",
    "CIRCUMFLEX": "'^'",
    "PRIME": '"\'"',
    "DOCSTRING": "a docstring",
    "STAR": "'*'",
    "MINUS": "'-'",
    "BANG": "'!'",
    "AMPERSAND": "'&'",
    "VBAR": "'|'",
}


class NewlineFilter:
    """Newlines end statements only inside a loss body and outside () and []. A line that ends
    with `|` goes on (a long choice list, an `or`)."""

    always_accept = ("_NL",)

    def process(self, stream):
        # A loop's block ({ } inside a call's parentheses) ends statements with newlines again:
        # each open brace keeps the parenthesis depth outside it.
        outer: list[int] = []
        parens = 0
        last = None
        for tok in stream:
            t = tok.type
            if t == "_NL":
                # (no lookahead for a `|` that starts the next line: the contextual lexer
                # lexes each token in the parser's state after the previous one)
                if not outer or parens > 0 or last in (None, "_NL", "LBRACE", "VBAR"):
                    continue
            elif t == "LBRACE":
                outer.append(parens)
                parens = 0
            elif t == "RBRACE":
                parens = outer.pop() if outer else 0
            elif t in ("LPAR", "LSQB"):
                parens += 1
            elif t in ("RPAR", "RSQB"):
                parens = max(0, parens - 1)
            last = t
            yield tok


@functools.cache
def _lark() -> lark.Lark:
    text = (resource_dir("grammar") / "lossdsl.lark").read_text()
    return lark.Lark(
        text,
        parser="lalr",
        propagate_positions=True,
        postlex=NewlineFilter(),
        maybe_placeholders=True,
    )


def read_source(path: Path) -> str:
    """A spec file's text: UTF-8, with a leading byte-order mark dropped. Other bytes are a
    LossSyntaxError at the first byte that does not decode, not a UnicodeDecodeError."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        src = Source(data.decode("utf-8", errors="replace"), str(path))
        before = data[: e.start].decode("utf-8")  # valid up to the bad byte
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise LossSyntaxError(
            f"the file is not UTF-8 text (byte 0x{data[e.start]:02x})",
            point(src, line, col),
            "save the spec as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


@functools.cache
def reserved_words() -> frozenset[str]:
    """The grammar's keywords (`where`, `nan`, `let`, `of`, ...): the lexer reads each as that
    keyword wherever the keyword may stand, so a dim, input, param, let or loss named so breaks
    a later use (`where'`, `size(nan)`, `let` at a line's start). Declarations may not use them
    (lossdsl/resolve.py). Taken from the grammar, so a new keyword is reserved too."""
    from lark.lexer import PatternStr

    return frozenset(
        t.pattern.value
        for t in _lark().terminals
        if isinstance(t.pattern, PatternStr) and t.pattern.value.isidentifier()
    )


def parse_module(text: str, filename: str = "<string>") -> ast.Module:
    src = Source(text, filename)
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as e:
        # A reserved word declared as a name is the likely cause: report it at the declaration.
        raise_all([*_reserved_in_tokens(src), _syntax_error(e, src)])
    to_ast = _ToAst(src)
    module = to_ast.transform(tree)
    raise_all(to_ast.errors)
    raise_all(_reserved_declarations(module))
    module = ast.Module(module.doc, module.imports, module.losses, module.meta, source=src)
    _check_depth(module)
    return module


# Expressions nest at most this deep (a 1000-term sum `x + x + ...` is 1000 levels). Lowering
# and the other tree walks recurse once per level, under lossdsl.source.deep_recursion();
# deeper text is a LimitError at the node past the limit, never a RecursionError.
MAX_DEPTH = 2000


def _check_depth(module: ast.Module) -> None:
    """Iteratively, so that the check itself cannot overflow the stack."""
    stack = [(loss, 0) for loss in module.losses]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise LimitError(
                f"expression nested too deeply (limit {MAX_DEPTH} levels)",
                ast.span_of(node),
                "split it into steps with `let`",
            )
        stack.extend((child, depth + 1) for child in ast.children(node))


_ARTICLE = {"loss": "a loss", "input": "an input", "dimension": "a dimension"}
_ARTICLE |= {"param": "a param", "let": "a let"}


def _reserved(name: str, span: Span | None, what: str) -> ReservedWord:
    words = ", ".join(sorted(reserved_words()))
    return ReservedWord(
        f"'{name}' is a reserved word and cannot name {_ARTICLE[what]}",
        span,
        f"rename the {what}, e.g. {name}_ (reserved words: {words})",
    )


def _reserved_declarations(module: ast.Module) -> list[LossError]:
    """A keyword of the grammar used as the name of a loss, input, dim, param or let: an error
    at the declaration (it parses there, but the lexer reads it as the keyword at a later use:
    `where'`, `over=true`, `size(nan)`, `let` at a line's start)."""
    words = reserved_words()
    out: list[LossError] = []
    for loss in module.losses:
        decls = [(loss.name, loss.name_span or loss.span, "loss")]
        for inp in loss.inputs:
            decls.append((inp.name, inp.name_span or inp.span, "input"))
            dims = (*(inp.type.dims or ()), *((inp.type.of,) if inp.type.of else ()))
            decls += [(d.name, d.span, "dimension") for d in dims]
        for f in loss.fns:
            decls.append((f.name, f.name_span or f.span, "input"))
            for t in (*f.type.params, f.type.result):
                dims = (*(t.dims or ()), *((t.of,) if t.of else ()))
                decls += [(d.name, d.span, "dimension") for d in dims]
        decls += [
            (st.name, st.name_span or st.span, type(st).__name__.lower())
            for st in loss.body
            if isinstance(st, (ast.Param, ast.Let))
        ]
        decls += [
            (n, sp or st.span, "let")
            for st in loss.body
            if isinstance(st, ast.LetTuple)
            for n, sp in zip(st.names, st.name_spans)
        ]
        out += [_reserved(n, sp, what) for n, sp, what in decls if n in words]
    return out


def _reserved_in_tokens(src: Source) -> list[LossError]:
    """The declarations _reserved_declarations finds, from the tokens of a text that does not
    parse (the usual cause: a dim named `where` parsed in `float[where]`, then `where'` did
    not): `loss W`, `param W`, `let W`, `W: float`, `float[.., W, ..]`, `of W`."""
    toks = [t for t in _tokens(src.text) if t.type != "_NL"]
    words = reserved_words()
    out: list[LossError] = []

    def check(tok: Token, what: str) -> None:
        if str(tok) in words:
            span = Span(src, tok.line, tok.column, tok.end_line, tok.end_column)
            out.append(_reserved(str(tok), span, what))

    dtypes = ("float", "int", "bool", "index")  # the basic lexer reads them as NAME
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if nxt is None:
            break
        after = toks[i + 2] if i + 2 < len(toks) else None
        if nxt.type == "COLON" and after is not None and str(after) in dtypes:
            if i == 0 or toks[i - 1].type != "PARAM":
                check(t, "input")
        elif t.type in ("LOSS", "PARAM", "LET"):
            check(nxt, t.type.lower())
        elif t.type == "OF":
            check(nxt, "dimension")
        elif str(t) in dtypes and nxt.type == "LSQB":
            for d in toks[i + 2 :]:
                if d.type == "RSQB":
                    break
                if d.type not in ("COMMA", "STAR", "PRIME"):
                    check(d, "dimension")
    return out


def _syntax_error(e: UnexpectedInput, src: Source) -> LossSyntaxError:
    line, col = max(1, e.line or 1), max(1, e.column or 1)
    if isinstance(e, UnexpectedCharacters):
        ch = src.text[e.pos_in_stream] if e.pos_in_stream < len(src.text) else "?"
        if src.text.startswith('"""', e.pos_in_stream):
            return LossSyntaxError(
                "unterminated docstring", point(src, line, col, 3), 'close it with """'
            )
        # The contextual lexer's `allowed` is a merged set, too loose to list; say what to do.
        hint = (
            "statements end at a newline: remove the ';'"
            if ch == ";"
            else f"remove it: {ch!r} is not part of lossdsl "
            "(operators: + - * / ^ == != < <= > >= & | !, comments start with #)"
        )
        return LossSyntaxError(f"unexpected character {ch!r}", point(src, line, col), hint)
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        expected = getattr(e, "expected", None) or getattr(e, "accepts", None)
        end = _end_of_code(src)
        return LossSyntaxError(
            "unexpected end of input",
            end,
            _join_hints(_open_bracket(src, len(src.text)), _expected_hint(expected)),
        )
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    bad = _malformed_number(src.text, tok)
    if bad is not None:
        start, text = bad
        c0 = col - (tok.start_pos - start)
        return LossSyntaxError(
            f"malformed number '{text}'",
            Span(src, line, c0, line, c0 + len(text)),
            "numbers look like 3, 0.25 or 1e-5; write 2 * x for a product",
        )
    opener = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}.get(tok.type)
    if opener and not any(t.type == opener for t in _open_brackets(src, tok.start_pos)):
        return LossSyntaxError(
            f"unmatched '{tok}'",
            point(src, line, col),
            "nothing is open here for it to close: remove it, or add the opening bracket",
        )
    prev = getattr(e, "token_history", None) or []
    if str(tok) == "*" and prev and str(prev[-1]) == "*" and prev[-1].end_pos == tok.start_pos:
        # `x ** 2`: Python's power (lexed as two products)
        return LossSyntaxError(
            "unexpected '**'",
            Span(src, prev[-1].line, prev[-1].column, line, col + 1),
            "the power operator is ^: write x ^ 2 (or x * x)",
        )
    if (
        tok.type == "LSQB"
        and "LPAR" in (e.expected or ())
        and prev
        and prev[-1].type == "NAME"
        and src.text[: prev[-1].start_pos].rstrip().endswith(":")  # an input's type
    ):
        # `x: Float[B]`: a name where an input's type goes (read as fn(...)'s name)
        word = prev[-1]
        return LossSyntaxError(
            f"unknown type '{word}'",
            Span(src, word.line, word.column, word.end_line, word.end_column),
            "a tensor type is float[...], int[...], bool[...] or index[...] of D; "
            "a function input is fn(float[B, *S]) -> float[B]",
        )
    found = "end of line" if tok.type == "_NL" else repr(str(tok))
    width = 1 if tok.type == "_NL" else max(1, len(str(tok)))
    return LossSyntaxError(
        f"unexpected {found}",
        point(src, line, col, width),
        _join_hints(
            _open_bracket(src, tok.start_pos, line), _expected_hint(e.accepts or e.expected)
        ),
    )


def _tokens(text: str):
    """The tokens of `text` as far as it lexes (positions for error messages only)."""
    try:
        yield from _lark().lex(text)
    except UnexpectedInput:
        return


def _end_of_code(src: Source) -> Span:
    """Where 'end of input' is reported: after the last token, not after trailing comments."""
    last = None
    for tok in _tokens(src.text):
        if tok.type != "_NL":
            last = tok
    if last is None:
        return point(src, 1, 1)
    return point(src, last.end_line, last.end_column)


def _open_brackets(src: Source, pos: int) -> list[Token]:
    """The '(', '[' and '{' still open at offset `pos`, innermost last."""
    stack = []
    for tok in _tokens(src.text):
        if tok.start_pos >= pos:
            break
        if tok.type in ("LPAR", "LSQB", "LBRACE"):
            stack.append(tok)
        elif tok.type in ("RPAR", "RSQB", "RBRACE") and stack:
            stack.pop()
    return stack


def _open_bracket(src: Source, pos: int, line: int | None = None) -> str | None:
    """A note on the innermost bracket still open at `pos` (at the end of input), or on the
    innermost '(' or '[' opened before `line`: inside brackets newlines are ignored, so a
    missing ')' shows up lines later."""
    stack = _open_brackets(src, pos)
    if line is None and stack:
        tok = stack[-1]
        return f"the '{tok}' at {tok.line}:{tok.column} is never closed"
    if stack and stack[-1].type != "LBRACE" and stack[-1].line < line:
        tok = stack[-1]
        close = ")" if tok.type == "LPAR" else "]"
        return f"the '{tok}' at {tok.line}:{tok.column} is still open here (missing '{close}'?)"
    return None


_WORD_CHARS = frozenset(string.ascii_letters + string.digits + "._")


def _malformed_number(text: str, tok: Token) -> tuple[int, str] | None:
    """`1.2.3`, `1e` or `2x` lex as a number glued to another token; report the whole word."""
    if tok.type not in ("NUMBER", "NAME") or not tok.start_pos:
        return None
    if text[tok.start_pos - 1] not in "0123456789.":
        return None
    start = tok.start_pos
    while start > 0 and text[start - 1] in _WORD_CHARS:
        start -= 1
    if not (text[start].isdigit() or text[start] == "."):
        return None  # a name like x1 followed by .5
    end = tok.end_pos
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    return start, text[start:end]


def _join_hints(*hints: str | None) -> str | None:
    return "; ".join(h for h in hints if h) or None


# Terminals that start an expression, and those that continue one: listed as one word each.
_EXPR_START = {"NAME", "NUMBER", "LPAR", "MINUS", "BANG", "TRUE", "FALSE", "INF", "NAN", "WHERE"}
_OPERATORS = {"ADD_OP", "MUL_OP", "CIRCUMFLEX", "CMP_OP", "AMPERSAND", "VBAR", "PRIME", "LSQB"}


def _expected_hint(expected) -> str | None:
    if not expected:
        return None
    expected = set(expected)
    groups = []
    if {"NAME", "NUMBER"} <= expected:
        groups.append("an expression")
        expected -= _EXPR_START
    if {"ADD_OP", "MUL_OP"} <= expected:
        groups.append("an operator")
        expected -= _OPERATORS
    names = groups + sorted(
        {_TOKEN_NAMES.get(t, repr(t.lower()) if t.isupper() else t) for t in expected}
    )
    if len(names) > 6:
        names = names[:6] + ["..."]
    return "expected " + ", ".join(names)


_INT64_MAX = 2**63 - 1


def _number(text: str) -> float | int | None:
    """A literal's value; None if it does not fit a float64. Integers beyond int64 become
    floats (as numpy would), so no literal reaches the IR that a backend cannot hold."""
    if text.isdigit() and (len(text) < 19 or (len(text) == 19 and int(text) <= _INT64_MAX)):
        return int(text)  # len() first: int() of a 5,000-digit string raises ValueError
    value = float(text)  # never raises: a huge exponent or digit string gives inf
    return None if value == float("inf") else value


class _ToAst(Transformer_NonRecursive):
    """Lark tree -> frozen AST. Every node gets a Span from lark's propagated positions.
    Non-recursive: a 2000-term sum is a tree 2000 levels deep. Errors found on the way
    (a literal too large) are collected in `errors`: an exception raised inside a callback
    would reach the caller wrapped in lark's VisitError."""

    def __init__(self, src: Source):
        super().__init__()
        self.src = src
        self.errors: list[LossError] = []
        # lark wraps a v_args method anew (functools.update_wrapper) at every lookup, once
        # per tree node: bind each callback once (8000 lets: 32,000 wrappers, a third of the
        # transform's time)
        for name in _RULES:
            setattr(self, name, getattr(self, name))

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return Span(self.src, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, tok: Token) -> Span:
        return Span(self.src, tok.line, tok.column, tok.end_line, tok.end_column)

    @staticmethod
    def _doc(tok) -> str | None:
        return None if tok is None else str(tok)[3:-3]

    def _meta(self, tok) -> Meta:
        if tok is None:
            return Meta()
        return parse_meta(str(tok)[3:-3], self.src, tok.line, tok.column, self.errors)

    # ---- module level
    def start(self, items):
        header, *losses = items
        doc, imports, meta = header if header is not None else (None, (), Meta())
        if doc is None and losses:
            doc, meta = losses[0].doc, losses[0].meta
        return ast.Module(doc, imports, tuple(losses), meta)

    def header(self, items):
        doc = self._doc(items[0])
        imports = tuple(i for group in items if isinstance(group, list) for i in group)
        return doc, imports, self._meta(items[0])

    def import_stmt(self, names):
        return [ast.Import(str(n), self._tok(n)) for n in names]

    @v_args(meta=True)
    def loss_def(self, meta, items):
        doc, name, *rest = items
        declared = [i for i in rest if isinstance(i, ast.Input)]
        # function inputs come last (they are called, never broadcast: the tensor inputs'
        # positions stay those of a spec without them) and are always passed
        fns = tuple(i for i in declared if isinstance(i.type, ast.FnTypeExpr))
        inputs = tuple(i for i in declared if not isinstance(i.type, ast.FnTypeExpr))
        if fns and declared.index(fns[-1]) != len(declared) - 1:
            after = next(i for i in declared[declared.index(fns[0]) :] if i not in fns)
            self.errors.append(
                LossSyntaxError(
                    f"the tensor input '{after.name}' follows the function input '{fns[0].name}'",
                    after.span,
                    "declare the function inputs last: loss r1(x: float[B, *S], critic: fn(...))",
                )
            )
        for f in fns:
            if f.default is not None or f.domain is not None:
                self.errors.append(
                    LossSyntaxError(
                        f"the function input '{f.name}' takes no default and no `where`",
                        getattr(f.default if f.default is not None else f.domain, "span", None)
                        or f.span,
                        f"declare it as {f.name}: {f.type} and pass a callable",
                    )
                )
        stmts = (ast.Param, ast.Use, ast.Let, ast.LetTuple, ast.Reduce)
        body = tuple(i for i in rest if isinstance(i, stmts))
        result = rest[-1]
        return ast.LossDef(
            str(name),
            inputs,
            body,
            result,
            self._doc(doc),
            self._span(meta),
            self._tok(name),
            fns,
            self._meta(doc),
        )

    @v_args(meta=True)
    def input(self, meta, items):
        name, typ, default, domain = items
        return ast.Input(str(name), typ, default, self._span(meta), self._tok(name), domain)

    @v_args(meta=True)
    def fn_type(self, meta, items):
        word, *params, result = items
        if str(word) != "fn":
            self.errors.append(
                LossSyntaxError(
                    f"unknown type '{word}'",
                    self._tok(word),
                    "a tensor type is float[...], int[...], bool[...] or index[...] of D; "
                    "a function input is fn(float[B, *S]) -> float[B]",
                )
            )
        return ast.FnTypeExpr(tuple(t for t in params if t is not None), result, self._span(meta))

    @v_args(meta=True)
    def type(self, meta, items):
        dtype, dims, of = items
        return ast.TypeExpr(str(dtype), dims, of, self._span(meta))

    def shape(self, items):
        return tuple(d for d in items if d is not None)

    @v_args(meta=True)
    def dim_named(self, meta, items):
        return ast.DimRef(str(items[0]), 0, False, self._span(meta))

    @v_args(meta=True)
    def dim_primed(self, meta, items):
        return ast.DimRef(str(items[0]), len(items) - 1, False, self._span(meta))

    @v_args(meta=True)
    def dim_fixed(self, meta, items):
        text = str(items[0])
        if not text.isdigit() or int(text) == 0 or len(text) > 9:
            self.errors.append(
                LossSyntaxError(
                    f"a fixed-size dim must be a positive whole number, got {text[:20]}",
                    self._span(meta),
                    "write the size, e.g. float[B, 4] for four box coordinates",
                )
            )
            text = "1"
        return ast.DimRef(str(int(text)), 0, False, self._span(meta))

    @v_args(meta=True)
    def dim_variadic(self, meta, items):
        return ast.DimRef(str(items[0]), 0, True, self._span(meta))

    # ---- statements
    @v_args(meta=True)
    def param_stmt(self, meta, items):
        name, dtype, default, constraint = items
        choices = dtype if isinstance(dtype, tuple) else ()
        return ast.Param(
            str(name),
            "choice" if choices else str(dtype),
            default,
            constraint,
            self._span(meta),
            self._tok(name),
            choices,
        )

    def choices(self, items):
        return tuple(str(s)[1:-1] for s in items)

    @v_args(meta=True)
    def use_stmt(self, meta, items):
        name, *args = items
        pos, kws = self._split_args(args)
        return ast.Use(str(name), pos, kws, self._span(meta))

    @v_args(meta=True)
    def let_stmt(self, meta, items):
        *names, value = items
        if len(names) > 1:
            return ast.LetTuple(
                tuple(map(str, names)), value, self._span(meta), tuple(map(self._tok, names))
            )
        return ast.Let(str(names[0]), value, self._span(meta), self._tok(names[0]))

    @v_args(meta=True)
    def reduce_stmt(self, meta, items):
        mode, by, empty = items
        return ast.Reduce(str(mode), by, empty, self._span(meta), self._tok(mode))

    # ---- expressions
    @v_args(meta=True)
    def number(self, meta, items):
        text = str(items[0])
        value = _number(text)
        if value is None:
            self.errors.append(
                LossSyntaxError(
                    f"number '{text[:20]}{'...' if len(text) > 20 else ''}' is too large "
                    "for a float64 (max about 1.8e308)",
                    self._span(meta),
                    "write `inf` for infinity, or rescale the value",
                )
            )
            value = 0.0
        return ast.Num(value, text, self._span(meta))

    @v_args(meta=True)
    def true(self, meta, items):
        return ast.Bool(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta, items):
        return ast.Bool(False, self._span(meta))

    @v_args(meta=True)
    def inf(self, meta, items):
        return ast.Num(float("inf"), "inf", self._span(meta))

    @v_args(meta=True)
    def nan(self, meta, items):
        return ast.Num(float("nan"), "nan", self._span(meta))

    @v_args(meta=True)
    def string(self, meta, items):
        return ast.Str(str(items[0])[1:-1], self._span(meta))

    @v_args(meta=True)
    def name(self, meta, items):
        return ast.Name(str(items[0]), self._span(meta))

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.Unary("-", items[0], self._span(meta))

    @v_args(meta=True)
    def not_(self, meta, items):
        return ast.Unary("!", items[0], self._span(meta))

    @v_args(meta=True)
    def binop(self, meta, items):
        left, op, right = items
        return ast.Binary(str(op), left, right, self._span(meta))

    @v_args(meta=True)
    def pow(self, meta, items):
        return ast.Binary("^", items[0], items[1], self._span(meta))

    @v_args(meta=True)
    def and_(self, meta, items):
        return ast.Binary("&", items[0], items[1], self._span(meta))

    @v_args(meta=True)
    def or_(self, meta, items):
        return ast.Binary("|", items[0], items[1], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta, items):
        return ast.Compare(tuple(items[0::2]), tuple(str(o) for o in items[1::2]), self._span(meta))

    @v_args(meta=True)
    def call(self, meta, items):
        name, *args = items
        pos, kws = self._split_args(args)
        return ast.Call(str(name), pos, kws, self._span(meta), self._tok(name))

    @v_args(meta=True)
    def block_call(self, meta, items):
        name, *rest = items
        block = rest[-1]
        k = len(rest) - 1
        while k > 0 and isinstance(rest[k - 1], Token) and rest[k - 1].type == "NAME":
            k -= 1
        state = rest[k:-1]
        pos, kws = self._split_args(rest[:k])
        return ast.BlockCall(
            str(name),
            pos,
            kws,
            tuple(map(str, state)),
            block,
            self._span(meta),
            self._tok(name),
            tuple(map(self._tok, state)),
        )

    @v_args(meta=True)
    def block(self, meta, items):
        *stmts, result = items
        return ast.Block(tuple(stmts), result, self._span(meta))

    @v_args(meta=True)
    def where_call(self, meta, items):
        pos, kws = self._split_args(items)
        sp = self._span(meta)
        fsp = Span(self.src, sp.line, sp.col, sp.line, sp.col + 5) if sp else None
        return ast.Call("where", pos, kws, sp, fsp)

    @v_args(meta=True)
    def gather(self, meta, items):
        return ast.Gather(items[0], items[1], self._span(meta))

    @v_args(meta=True)
    def prime(self, meta, items):
        return ast.Prime(items[0], self._span(meta))

    @v_args(meta=True)
    def tuple(self, meta, items):
        return ast.Tuple(tuple(i for i in items if i is not None), self._span(meta))

    @v_args(meta=True)
    def pos_arg(self, meta, items):
        return items[0]

    @v_args(meta=True)
    def kw_arg(self, meta, items):
        return ast.Keyword(str(items[0]), items[1], self._span(meta))

    @staticmethod
    def _split_args(args):
        args = [a for a in args if a is not None]
        pos = tuple(a for a in args if not isinstance(a, ast.Keyword))
        kws = tuple(a for a in args if isinstance(a, ast.Keyword))
        return pos, kws


_RULES = tuple(n for n in vars(_ToAst) if not n.startswith("_"))  # the grammar rules' callbacks
