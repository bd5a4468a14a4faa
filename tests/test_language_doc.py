"""docs/language.md, the language reference, cannot fall behind the compiler: every ```loss
example in it parses and compiles on numpy, every ```loss-error example fails with the
LossError quoted on its first line, and its function table lists every built-in function of
lossdsl.lower.FUNCTIONS with the argument names of its signature."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl.lower import FUNCTIONS

DOC = Path(__file__).resolve().parents[1] / "docs" / "language.md"
TEXT = DOC.read_text()


def _blocks(lang: str) -> list[tuple[int, str]]:
    """(line number, body) of every fenced block opened by exactly ```lang."""
    out, lines = [], TEXT.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{lang}":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            out.append((start + 1, "\n".join(body) + "\n"))
        i += 1
    return out


EXAMPLES = _blocks("loss")
BAD_EXAMPLES = _blocks("loss-error")


def test_the_doc_has_examples():
    # a parsing slip in _blocks would make every test below vacuous
    assert len(EXAMPLES) >= 25 and len(BAD_EXAMPLES) >= 10


@pytest.mark.parametrize("line,text", EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_loss_example_compiles(line, text):
    lossdsl.parse(text, f"docs/language.md:{line}").compile("numpy")


@pytest.mark.parametrize("line,text", BAD_EXAMPLES, ids=[f"line{n}" for n, _ in BAD_EXAMPLES])
def test_loss_error_example_fails_as_quoted(line, text):
    first = text.splitlines()[0]
    assert first.startswith("# error: "), f"line {line}: state the expected error first"
    expected = first.removeprefix("# error: ")
    with pytest.raises(lossdsl.LossError) as e:
        lossdsl.parse(text).compile("numpy")
    assert expected in str(e.value), str(e.value)


def _table_signatures() -> dict[str, list[list[str]]]:
    """name -> the argument lists of its rows in the function table (`max` has two rows)."""
    table = TEXT.split("<!-- function table", 1)[1].split("\n\n", 2)[1]
    sigs: dict[str, list[list[str]]] = {}
    for row in table.splitlines()[2:]:
        cell = row.split("|")[1]
        for call in re.findall(r"`(\w+)\(([^`]*)\)`", cell):
            name, args = call
            names = [a.split("=")[0].strip() for a in args.split(",") if a.strip()]
            sigs.setdefault(name, []).append(names)
    return sigs


def test_function_table_lists_every_builtin_with_its_arguments():
    sigs = _table_signatures()
    assert set(FUNCTIONS) <= set(sigs), f"undocumented: {sorted(set(FUNCTIONS) - set(sigs))}"
    assert set(sigs) <= set(FUNCTIONS), f"not functions: {sorted(set(sigs) - set(FUNCTIONS))}"
    for name, (sig, _) in FUNCTIONS.items():
        for args in sigs[name]:
            if sig.variadic:  # prime(x, D, ...): the named arguments, then the dims
                assert args[: len(sig.names)] == list(sig.names), (name, args)
            else:  # every row names a prefix-free subset of the signature, in order
                assert [a for a in sig.names if a in args] == args, (name, args, sig.names)
        documented = {a for args in sigs[name] for a in args}
        assert set(sig.names) <= documented, (name, sig.names, documented)


# A few claims of the doc that compiling alone does not check, each evaluated on the numpy
# reference with the expected value computed by hand in the comment.


def _run(text, *args, **kw):
    return lossdsl.parse(text).compile("numpy")(*args, **kw)


def test_masked_mean_counts_the_mask_broadcast_over_the_reduced_dims():
    # rows [1, 2, 3] (kept) and [4, 5, 6] (dropped), mean over (B, T) with a [B] mask:
    # (1 + 2 + 3) / (1 row * size(T) = 3) = 2; none kept: the declared empty value
    src = "loss f(x: float[B, T], m: bool[B]) {\n mean(x, over=(B, T), mask=m, empty=-1)\n}"
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert _run(src, x, np.array([True, False])) == 2.0
    assert _run(src, x, np.array([False, False])) == -1.0


def test_weighted_mean_divides_by_the_weights_only():
    # sum(loss) / sum(w) = (1 + 3) / (1 + 3) = 1 (the loss carries the weights itself);
    # all weights 0: the declared empty value
    src = "loss f(x: float[B], w: float[B]) {\n reduce mean by w empty 7\n x\n}"
    assert _run(src, np.array([1.0, 3.0]), np.array([1.0, 3.0])) == 1.0
    assert _run(src, np.array([1.0, 3.0]), np.array([0.0, 0.0])) == 7.0


def test_helper_star_s_bound_to_no_axes_is_the_value_itself():
    src = "loss h(x: float[B, *S]) {\n mean(x, over=S)\n}\nloss f(x: float[B]) {\n h(x)\n}"
    np.testing.assert_array_equal(_run(src, np.array([1.0, 2.0]), reduction="none"), [1.0, 2.0])


def test_dims_of_a_spec_call_bind_by_position():
    # colsum sums its first dim; called with r: [M=2, N=3] it sums M: column sums [5, 7, 9]
    src = (
        "loss colsum(r: float[N, M]) {\n sum(r, over=N)\n}\nloss f(r: float[M, N]) {\n colsum(r)\n}"
    )
    r = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(_run(src, r, reduction="none"), [5.0, 7.0, 9.0])


def test_precedence_and_int_arithmetic():
    # 2 * -(3^2) + 2^(3^2) / 2^2 = -18 + 512 / 4 = 110; size(C) / 2 = 1.5 (true division)
    src = "loss f(x: float[C]) {\n 2 * -x^2 + 2^3^2 / 2^2 + 0 * size(C) / 2\n}"
    np.testing.assert_array_equal(_run(src, np.full(3, 3.0), reduction="none"), [110.0] * 3)
    src = "loss f(x: float[C]) {\n x * (size(C) / 2)\n}"
    np.testing.assert_array_equal(_run(src, np.ones(3), reduction="none"), [1.5] * 3)


def test_no_reduce_statement_means_mean():
    assert lossdsl.parse("loss f(x: float[B]) {\n x\n}").default_reduction == "mean"


def test_masked_logits_need_the_log_masked_before_the_product():
    # logits [1, 2, -inf]: the -inf class has p = 0. sum(p * logp) is NaN there (0 * -inf);
    # the doc's masked_entropy is the entropy of softmax([1, 2]) = 0.58220310888821...
    # (H = log(1 + e) - e / (1 + e), by hand), with a finite gradient, 0 on the masked class.
    import torch

    naive = "loss f(z: float[B, C]) {\n -sum(softmax(z, over=C) * log_softmax(z, over=C))\n}"
    z = np.array([[1.0, 2.0, -np.inf]])
    assert np.isnan(_run(naive, z))
    masked = next(t for _, t in EXAMPLES if t.startswith("loss masked_entropy("))
    h = np.log1p(np.e) - np.e / (1 + np.e)
    assert abs(_run(masked, z) - h) < 1e-12
    zt = torch.tensor(z, requires_grad=True)
    lossdsl.parse(masked).compile("torch")(zt).backward()
    assert torch.isfinite(zt.grad).all() and zt.grad[0, 2] == 0
