"""Choice params (`param activation: "softmax" | "sigmoid" | "none" = "softmax"`): one of
their words, fixed when the spec compiles (`compile(backend, activation="sigmoid")`, the
default otherwise); `activation == "sigmoid"` is a constant then, and where() keeps one branch.

Expected values: MONAI 1.x `monai.losses.DiceLoss(sigmoid=, softmax=)` (its formula,
monai/losses/dice.py: 1 - (2 sum(p t) + smooth_nr) / (sum(p) + sum(t) + smooth_dr) over the
spatial dims, mean over batch and channels), computed by MONAI itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossdsl
from lossdsl.codegen import TARGETS

DICE = '''"""Soft dice with a chosen activation."""
loss act_dice(logits: float[B, C, *S], target: float[B, C, *S]) {
    param activation: "softmax" | "sigmoid" | "none" = "softmax"
    let p = where(activation == "softmax", softmax(logits, over=C),
                  where(activation != "sigmoid", logits, sigmoid(logits)))
    let inter = sum(p * target, over=S)
    1 - mean((2 * inter + 1e-5) / (sum(p, over=S) + sum(target, over=S) + 1e-5), over=C)
}
'''
CHOICES = ("softmax", "sigmoid", "none")


def _data(seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((3, 4, 5, 6)), g.random((3, 4, 5, 6))


@pytest.mark.parametrize("backend", TARGETS)
@pytest.mark.parametrize("choice", CHOICES + (None,))
def test_every_choice_matches_monai_dice(choice, backend):
    from monai.losses import DiceLoss

    x, t = _data()
    word = choice or "softmax"  # the default
    ref = DiceLoss(sigmoid=word == "sigmoid", softmax=word == "softmax", smooth_nr=1e-5,
                   smooth_dr=1e-5)  # fmt: skip
    xt = torch.tensor(x, requires_grad=True)
    want = ref(xt, torch.tensor(t))
    want.backward()
    spec = lossdsl.parse(DICE)
    fn = spec.compile(backend, **({"activation": choice} if choice else {}))
    if backend == "torch":
        xs = torch.tensor(x, requires_grad=True)
        got = fn(xs, torch.tensor(t))
        got.backward()
        np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    else:
        got = fn(x, t)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-10)


@pytest.mark.parametrize("choice", CHOICES)
def test_the_source_keeps_only_the_chosen_branch(choice):
    src = lossdsl.parse(DICE).source("torch", activation=choice)
    assert ("torch.softmax" in src) == (choice == "softmax"), src
    assert ("torch.sigmoid" in src) == (choice == "sigmoid"), src


def test_the_branch_not_chosen_never_runs():
    """log of a negative input in the other branch: no NaN value, no NaN gradient."""
    spec = lossdsl.parse(
        'loss f(x: float[B]) {\n    param mode: "plain" | "log" = "plain"\n'
        '    sum(where(mode == "log", log(x), x), over=B)\n}\n'
    )
    x = torch.tensor([-1.0, 2.0], dtype=torch.float64, requires_grad=True)
    spec.compile("torch")(x).backward()
    assert x.grad.tolist() == [1.0, 1.0]
    assert np.isnan(float(spec.compile("numpy", mode="log")(np.array([-1.0, 2.0]))))


def test_show_and_docs_print_the_words():
    spec = lossdsl.parse(DICE)
    (p,) = spec.params
    assert (p.dtype, p.default, p.choices) == ("choice", "softmax", CHOICES)
    assert p.declared == '"softmax" | "sigmoid" | "none"' and p.default_text == '"softmax"'


def test_a_helper_takes_a_word_or_the_callers_choice():
    text = DICE + (
        "\nloss outer(logits: float[B, C, *S], target: float[B, C, *S]) {\n"
        '    param act: "softmax" | "sigmoid" | "none" = "none"\n'
        '    (act_dice(logits, target, activation="sigmoid")\n'
        "        + act_dice(logits, target, activation=act))\n"
        "}\n"
    )
    x, t = _data(1)
    spec = lossdsl.parse(text)  # the last loss of a file is its entry point
    one = lossdsl.parse(DICE)
    for act in CHOICES:
        want = float(one.compile("numpy", activation="sigmoid")(x, t)) + float(
            one.compile("numpy", activation=act)(x, t)
        )
        got = float(spec.compile("numpy", act=act)(x, t))
        np.testing.assert_allclose(got, want, rtol=1e-12)


BAD = [
    ('param a: "x" | "y" = "z"', "choice param 'a' defaults to one of"),
    ('param a: "x" | "y" = 1', "choice param 'a' defaults to one of"),
    ('param a: "x" | "x" = "x"', "choice \"x\" of param 'a' is listed twice"),
    ('param a: "x" | "y" = "x" where a > 0', "choice param 'a' takes no `where`"),
]


@pytest.mark.parametrize("decl, message", BAD)
def test_bad_declarations_are_errors_at_the_declaration(decl, message):
    with pytest.raises(lossdsl.LossError, match=message.replace("(", r"\(")) as info:
        lossdsl.parse(f"loss f(x: float[B]) {{\n    {decl}\n    sum(x, over=B)\n}}\n")
    assert info.value.span is not None and info.value.hint


USES = [
    ('a == "sigmod"', "\"sigmod\" is not a choice of 'a'", "did you mean 'sigmoid'?"),
    ('a < "x"', "choice param 'a' compares with == or !=, not <", 'a == "x"'),
    ('g == "x"', "compared with something that is not a choice param", "declare one"),
    ('"x"', "is a word, not a value", "option"),
]


@pytest.mark.parametrize("use, message, hint", USES)
def test_bad_uses_are_errors_with_a_hint(use, message, hint):
    text = (
        'loss f(x: float[B]) {\n    param a: "x" | "sigmoid" = "x"\n    param g: float = 1.0\n'
        f"    sum(where({use}, x, 2 * x), over=B)\n}}\n"
    )
    with pytest.raises(lossdsl.LossError) as info:
        lossdsl.parse(text)
    assert message in str(info.value) and hint in (info.value.hint or ""), str(info.value)


def test_a_word_outside_the_choices_at_compile_or_a_choice_at_call_time_is_refused():
    spec = lossdsl.parse(DICE)
    with pytest.raises(lossdsl.ParamError, match="did you mean 'sigmoid'"):
        spec.compile("numpy", activation="sigmod")
    x, t = _data()
    with pytest.raises(lossdsl.LossError, match="choice param, fixed when the spec compiles"):
        spec.compile("numpy")(x, t, activation="sigmoid")


@pytest.mark.parametrize("backend", TARGETS)
def test_a_compiled_choice_pickles_and_compiles_again(backend):
    """The recipe keeps the word (its index made the rebuild's compile refuse it)."""
    import pickle

    x, t = _data()
    args = (torch.tensor(x), torch.tensor(t)) if backend == "torch" else (x, t)
    fn = lossdsl.parse(DICE).compile(backend, activation="sigmoid")
    again = pickle.loads(pickle.dumps(fn))
    assert float(again(*args)) == float(fn(*args))


SPLITS = (
    '    param activation: "softmax" |\n        "sigmoid" | "none" = "softmax"',
    '    param activation: "softmax" | "sigmoid" |\n        "none" = "softmax"',
    '    param activation: "softmax" |  # a comment\n\n  "sigmoid" |\n  "none" = "softmax"',
)


@pytest.mark.parametrize("split", SPLITS)
def test_a_long_choice_list_goes_on_after_a_trailing_bar(split):
    """A line that ends with `|` goes on: the choice list split over lines is the same spec
    (same choices, same generated code) as on one line; a statement that ends without `|`
    still ends at its newline (a `|` that starts the next line is an error)."""
    one = lossdsl.parse(DICE)
    line = '    param activation: "softmax" | "sigmoid" | "none" = "softmax"'
    many = lossdsl.parse(DICE.replace(line, split))
    assert [p.choices for p in many.params] == [p.choices for p in one.params]
    assert many.source("torch") == one.source("torch")
    with pytest.raises(lossdsl.LossError, match="unexpected"):
        lossdsl.parse(DICE.replace(line, '    param activation: "softmax"\n    | "sigmoid"'))
