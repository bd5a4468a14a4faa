"""The `lossdsl` command. Every LossError is rendered (file:line:col, source, carets, hint) and
exits 1; a Python traceback from user input would be a bug."""

from __future__ import annotations

import argparse
import sys
from math import inf
from pathlib import Path

from lossdsl.codegen import registered
from lossdsl.compiler import Spec, list_specs, load, parse
from lossdsl.errors import LossError, MultipleErrors
from lossdsl.lower import PRELUDES
from lossdsl.passes import PASS_NAMES

# `-e EXPR --task TASK`: each task prelude's standard inputs, and the `use` line binding them.
TASK_HEADERS = {
    task: (
        ", ".join(f"{name}: {type_}" for name, type_ in p.inputs),
        f"use {task}({', '.join(name for name, _ in p.inputs)})",
    )
    for task, p in PRELUDES.items()
}


def _parse_value(text: str):
    t = text.strip()
    if t in ("true", "True"):
        return True
    if t in ("false", "False"):
        return False
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        raise LossError(f"--param value must be a number or true/false, got {text!r}") from None


def _params(items: list[str] | None) -> dict:
    out = {}
    for item in items or ():
        if "=" not in item:
            raise LossError(f"--param takes NAME=VALUE, got {item!r}", None, "e.g. --param gamma=2")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def inline_spec(expr: str, task: str, params: dict) -> Spec:
    """`-e EXPR --task T`: a one-expression loss under the task's standard inputs. Names given
    with --param become params of the loss (baked at their values)."""
    if task not in TASK_HEADERS:
        raise LossError(f"unknown task '{task}'", None, f"tasks: {', '.join(TASK_HEADERS)}")
    if "\n" in expr or "}" in expr or '"""' in expr:
        raise LossError("an inline loss is a single expression", None, "write a .loss file")
    inputs, use = TASK_HEADERS[task]
    decls = "".join(
        f"    param {k}: {'bool' if isinstance(v, bool) else 'float'} = "
        f"{str(v).lower() if isinstance(v, bool) else float(v)!r}\n"
        for k, v in params.items()
        if k.isidentifier()
    )
    text = f"loss inline({inputs}) {{\n{decls}    {use}\n    {expr}\n}}\n"
    return parse(text, "<inline>")


def _write(path: str, text: str) -> None:
    """-o PATH: its folders made as needed; a path that cannot be written is a LossError."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise LossError(
            f"cannot write {path}: {e.strerror or e}", None, "pass -o a writable file path"
        ) from None


def _load(target: str) -> Spec:
    return load(target)


def cmd_compile(a) -> int:
    params = _params(a.param)
    if a.expr is not None:
        spec = inline_spec(a.expr, a.task or "classification", params)
    elif a.spec:
        spec = _load(a.spec)
    else:
        raise LossError("compile needs a SPEC or -e EXPR", None, "e.g. lossdsl compile focal")
    src = spec.source(a.backend, shard=a.shard, **params)
    if a.output:
        _write(a.output, src)
    else:
        sys.stdout.write(src)
    return 0


def cmd_check(a) -> int:
    failed = 0
    for target in a.specs:
        try:
            spec = _load(target)
            print(f"{target}: ok ({spec.name})")
        except LossError as e:
            print(e.render(), file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_ir(a) -> int:
    spec = _load(a.spec)
    print(spec.ir(after=a.after, **_params(a.param)))
    return 0


def cmd_list(a) -> int:
    from lossdsl.compiler import chunk_refusal
    from lossdsl.meta import first_sentence

    for name in list_specs():
        spec = load(name)
        # the spec's own fields (lossdsl/meta.py), not a guess at its docstring's lines
        summary = spec.meta.summary or first_sentence(spec.doc)
        cite = spec.meta.short_citation()
        # "chunks": schedule="chunked" runs it (lossdsl/schedules/plan.py); `lossdsl docs` says
        # why not
        tag = "chunks " if chunk_refusal(spec) is None else "       "
        print(f"{name:24s} {tag}{summary}" + (f"  [{cite}]" if cite else ""))
    return 0


def cmd_show(a) -> int:
    spec = _load(a.name)
    ins = ", ".join(
        f"{i.name}: {i.type}"
        + (
            f" in [{i.domain[0]:g}, {i.domain[1]:g}]"
            if i.domain and i.domain != (-inf, inf)
            else ""
        )
        + (" (optional)" if i.optional else "")
        for i in (*spec.inputs, *spec.fns)
    )
    print(f"loss {spec.name}({ins})")
    print(f"reduction: {spec.default_reduction} (per call: none | sum | mean)")
    for p in spec.params:
        c = f"  where {p.constraint}" if p.constraint else ""
        fixed = "  (fixed when the spec compiles)" if p.choices else ""
        default = "  (required)" if p.required else f" = {p.default_text}"
        print(f"param {p.name}: {p.declared}{default}{c}{fixed}")
    print()
    print(spec.doc)
    return 0


def cmd_latex(a) -> int:
    from lossdsl.latex import formula_lines, spec_latex

    spec = _load(a.name)
    print("\n".join(formula_lines(spec)) if a.mathtext else spec_latex(spec))
    return 0


def cmd_docs(a) -> int:
    from lossdsl.docs import specs_markdown, write_site

    if a.site:
        if a.output:
            raise LossError("docs: --site DIR and -o FILE exclude each other", None, "pass one")
        try:
            site = write_site(a.site, plots_for=() if a.no_plots else None)
        except OSError as e:
            raise LossError(
                f"cannot write {a.site}: {e.strerror or e}", None, "pass --site a writable folder"
            ) from None
        no_axis = [n for n, why in site.no_plot.items() if "no axis" in why]
        if no_axis:
            print(f"note: no plot axis fits {len(no_axis)} specs: {', '.join(no_axis)}")
        for name, why in site.no_plot.items():
            if name not in no_axis:
                print(f"note: no plot for {name}: {why}")
        print(
            f"wrote {a.site}: {len(site.pages)} spec pages, {len(site.plots)} plots; "
            f"build it with: mkdocs build --strict -f {Path(a.site) / 'mkdocs.yml'}"
        )
        return 0
    if a.no_plots:
        raise LossError("docs: --no-plots goes with --site DIR", None, "lossdsl docs --site DIR")
    text = specs_markdown()
    if a.output:
        _write(a.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_plot(a) -> int:
    from lossdsl.plot import plot

    sweeps: dict[str, list[float]] = {}
    for item in a.param or ():
        if "=" not in item:
            raise LossError(
                f"--param takes NAME=V1,V2,..., got {item!r}", None, "--param gamma=0,1,2"
            )
        k, vs = item.split("=", 1)
        values = [_parse_value(v) for v in vs.split(",") if v.strip()]
        bad = [v for v in values if isinstance(v, str)]
        if bad or not values:
            raise LossError(
                f"--param {k.strip()}: a sweep takes numbers, got {vs!r}",
                None,
                f"--param {k.strip()}=0,1,2",
            )
        sweeps[k.strip()] = [float(v) for v in values]
    for finding in plot(a.names, sweeps, a.output, over=a.over):
        print(f"note: {finding}")
    print(f"wrote {a.output}")
    return 0


def cmd_equiv(a) -> int:
    from lossdsl.equiv import equivalence_table

    names = a.specs or list_specs()
    ok = equivalence_table(names, print)
    return 0 if ok else 1


# each subcommand's examples, shown by `lossdsl CMD --help`
EXAMPLES = {
    "compile": """examples:
  lossdsl compile focal --backend jax
  lossdsl compile focal --backend torch --param gamma=0 -o build/focal_torch.py
  lossdsl compile -e "ce + eps*(1-pt)" --task classification --param eps=1
  lossdsl compile cross_entropy --shard B --backend jax""",
    "check": """examples:
  lossdsl check my_loss.loss
  lossdsl check specs/*.loss""",
    "ir": """examples:
  lossdsl ir focal
  lossdsl ir focal --after stabilize --param gamma=0""",
    "list": """examples:
  lossdsl list
  lossdsl list | grep dice""",
    "show": """examples:
  lossdsl show focal""",
    "plot": """examples:
  lossdsl plot focal cross_entropy --param gamma=0,1,2 -o focal.png
  lossdsl plot hinge --over margin""",
    "latex": """examples:
  lossdsl latex focal              (an aligned block: a paper, MathJax)
  lossdsl latex focal --mathtext   (one formula a line: matplotlib's $...$)""",
    "docs": """examples:
  lossdsl docs -o docs/specs.md
  lossdsl docs --site site --no-plots && mkdocs build --strict -f site/mkdocs.yml""",
    "equiv": """examples:
  lossdsl equiv focal kd
  lossdsl equiv        (every shipped spec)""",
}


def build_parser() -> argparse.ArgumentParser:
    from lossdsl import __version__

    p = argparse.ArgumentParser(prog="lossdsl", description="Loss functions as typed expressions.")
    p.add_argument("--version", action="version", version=f"lossdsl {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, **kw):
        kw.setdefault("description", kw.get("help"))
        return sub.add_parser(
            name, epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter, **kw
        )

    c = add("compile", help="print the generated module for a backend")
    c.add_argument("spec", nargs="?", help="shipped spec name or path to a .loss file")
    c.add_argument("-e", "--expr", help="an inline loss expression, e.g. 'ce + eps*(1-pt)'")
    c.add_argument("--task", choices=sorted(TASK_HEADERS), help="the inputs of an inline loss")
    c.add_argument("--backend", default="torch", choices=list(registered()))
    c.add_argument("-o", "--output", help="write the module here instead of stdout")
    c.add_argument("--param", action="append", metavar="NAME=VALUE", help="bake a param")
    c.add_argument(
        "--shard",
        metavar="DIM",
        help="split DIM (the batch) across devices: torch.distributed / jax shard_map code",
    )
    c.set_defaults(fn=cmd_compile)
    k = add("check", help="parse and type-check; every error with carets")
    k.add_argument("specs", nargs="+")
    k.set_defaults(fn=cmd_check)
    i = add("ir", help="print the typed IR")
    i.add_argument("spec")
    i.add_argument(
        "--after",
        choices=("lower",) + PASS_NAMES + ("library",),
        help="after this pass (library: torch's library calls, the last step for torch)",
    )
    i.add_argument("--param", action="append", metavar="NAME=VALUE")
    i.set_defaults(fn=cmd_ir)
    lst = add("list", help="the shipped specs")
    lst.set_defaults(fn=cmd_list)
    s = add("show", help="signature, params, formula and citation of a spec")
    s.add_argument("name")
    s.set_defaults(fn=cmd_show)
    pl = add("plot", help="a loss and its derivative along p_t, a margin or a similarity")
    pl.add_argument("names", nargs="+")
    pl.add_argument(
        "--over",
        default="pt",
        choices=("pt", "margin", "similarity"),
        help="the x axis: pt (classification), margin (scores), similarity (embeddings)",
    )
    pl.add_argument("--param", action="append", metavar="NAME=V1,V2", help="values to sweep")
    pl.add_argument("-o", "--output", default="loss.png")
    pl.set_defaults(fn=cmd_plot)
    lx = add("latex", help="the spec's formula as LaTeX, rendered from the spec as written")
    lx.add_argument("name")
    lx.add_argument(
        "--mathtext",
        action="store_true",
        help="one formula per line, each parsed by matplotlib's mathtext (no cases, no aligned)",
    )
    lx.set_defaults(fn=cmd_latex)
    d = add("docs", help="the catalog of shipped specs as markdown, or a docs site")
    d.add_argument("-o", "--output", help="write here (e.g. docs/specs.md)")
    d.add_argument(
        "--site",
        metavar="DIR",
        help="write an mkdocs-material project (mkdocs.yml, docs/) with a page per spec",
    )
    d.add_argument("--no-plots", action="store_true", help="--site without the spec plots")
    d.set_defaults(fn=cmd_docs)
    e = add("equiv", help="cross-backend equivalence of values and gradients")
    e.add_argument("specs", nargs="*")
    e.set_defaults(fn=cmd_equiv)
    return p


# the frameworks a subcommand may import, and the extra that installs each
EXTRAS = {"torch": "torch", "jax": "jax", "jaxlib": "jax", "matplotlib": "plot"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except MultipleErrors as e:
        print(e.render(), file=sys.stderr)
        return 1
    except LossError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        print(
            f"error: lossdsl {args.cmd} needs {top}, which is not installed\n"
            f"hint: pip install 'lossdsl[{EXTRAS[top]}]'",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:  # `lossdsl list | head`: the reader left; nothing more to say
        # Python flushes stdout at exit and would raise again: point it at devnull
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
