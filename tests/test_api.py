"""The public contract of DESIGN.md section 1: API, baking, per-call params and reductions,
call-time validation, caching, torch.compile / jax.jit / grad / vmap, standalone modules, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossdsl

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, **kw)


def xy(b=6, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g, dtype=torch.float64), torch.randint(
        0, c, (b,), generator=g
    )


def test_import_does_not_import_frameworks():
    r = run("-c", "import lossdsl, sys; print('torch' in sys.modules, 'jax' in sys.modules)")
    assert r.stdout.split() == ["False", "False"], r.stderr


def test_list_and_load_and_parse():
    names = lossdsl.list_specs()
    assert {"focal", "cross_entropy", "supcon", "dice", "kd"} <= set(names)
    spec = lossdsl.load("focal")
    assert spec.name == "focal" and [p.name for p in spec.params] == [
        "gamma",
        "alpha",
        "ignore_index",
    ]
    same = lossdsl.parse((ROOT / "specs" / "focal.loss").read_text())
    assert same.ir() == spec.ir()
    assert lossdsl.load(str(ROOT / "specs" / "focal.loss")).name == "focal"


def test_unknown_spec_name_suggests():
    with pytest.raises(lossdsl.UnknownName, match="focl") as e:
        lossdsl.load("focl")
    assert "focal" in e.value.hint


def test_reductions_and_per_call_params():
    x, y = xy()
    fn = lossdsl.load("focal").compile("torch")
    none = fn(x, y, reduction="none")
    assert none.shape == (6,)
    torch.testing.assert_close(fn(x, y, reduction="sum"), none.sum())
    torch.testing.assert_close(fn(x, y), none.mean())
    torch.testing.assert_close(fn(x, y, gamma=0.0), F.cross_entropy(x, y))
    torch.testing.assert_close(fn(logits=x, target=y, gamma=0.0), F.cross_entropy(x, y))


def test_baked_params_fold_and_leave_the_signature():
    spec = lossdsl.load("focal")
    src = spec.source("torch", gamma=0.0)
    assert "gamma" not in src.split("def focal")[1].split(":")[0]
    assert "**" not in src and "expm1" not in src  # (1 - pt)^0 * ce folded to ce
    fn = spec.compile("torch", gamma=0.0)
    x, y = xy()
    torch.testing.assert_close(fn(x, y), F.cross_entropy(x, y))
    with pytest.raises(lossdsl.ArityError, match="gamma"):
        fn(x, y, gamma=1.0)


def test_compiled_functions_are_cached():
    spec = lossdsl.load("focal")
    assert spec.compile("torch") is lossdsl.load("focal").compile("torch")
    assert spec.compile("torch", gamma=1.0) is not spec.compile("torch")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_editing_an_imported_file_recompiles_its_importer(tmp_path, backend):
    # The caches once keyed on the main file's text alone: after b.loss changed, load+compile
    # of a.loss returned the function built from the old b. Expected values by hand:
    # a = b(x) + x with b = 2x gives 3x, then with b = 5x gives 6x.
    a, b = tmp_path / "a.loss", tmp_path / "b.loss"
    a.write_text("import b\nloss a(x: float[B]) {\n    b(x) + x\n}\n")
    b.write_text("loss b(x: float[B]) {\n    2 * x\n}\n")
    x = np.array([1.0, 2.0])
    arg = x if backend == "numpy" else torch.tensor(x)
    fn = lossdsl.load(a).compile(backend)
    assert np.allclose(np.asarray(fn(arg, reduction="none")), 3 * x)
    b.write_text("loss b(x: float[B]) {\n    5 * x\n}\n")
    fn2 = lossdsl.load(a).compile(backend)
    assert np.allclose(np.asarray(fn2(arg, reduction="none")), 6 * x)
    # a diamond a -> (c, d) -> b: b's new text reaches a through both paths
    for name, k in (("c", 1), ("d", 10)):
        (tmp_path / f"{name}.loss").write_text(
            f"import b\nloss {name}(x: float[B]) {{\n    {k} * b(x)\n}}\n"
        )
    a.write_text("import c, d\nloss a(x: float[B]) {\n    c(x) + d(x)\n}\n")
    fn3 = lossdsl.load(a).compile(backend)
    assert np.allclose(np.asarray(fn3(arg, reduction="none")), 55 * x)  # 1*5x + 10*5x
    b.write_text("loss b(x: float[B]) {\n    -x\n}\n")
    fn4 = lossdsl.load(a).compile(backend)
    assert np.allclose(np.asarray(fn4(arg, reduction="none")), -11 * x)


def test_compiled_modules_go_when_nobody_holds_them():
    """A process that compiles thousands of specs (a sweep, the fuzzer) keeps at most the
    cache's 512 modules and whatever the caller holds: before, every generated module stayed
    in sys.modules and garbage-collection pauses grew with them (3,000 compiles: 350 ms)."""
    import gc
    import sys

    text = lossdsl.load("mse").text
    held = lossdsl.parse(text + "\n# held\n").compile("torch")
    name = held.__wrapped__.__module__
    before = len(sys.modules)
    for i in range(700):
        lossdsl.parse(text + f"\n# {i}\n").compile("torch")
    gc.collect()
    assert len(sys.modules) - before <= 512
    assert name in sys.modules  # a function someone holds keeps its module (torch.compile)
    x = torch.randn(3, 4)
    assert float(held(x, x)) == 0.0


def test_param_errors():
    spec = lossdsl.load("focal")
    with pytest.raises(lossdsl.ParamError, match="gamma >= 0"):
        spec.compile("torch", gamma=-1.0)
    with pytest.raises(lossdsl.ParamError) as e:
        spec.compile("torch", gama=1.0)
    assert "gamma" in e.value.hint
    with pytest.raises(lossdsl.ParamError, match="must be float"):
        spec.compile("torch", gamma="2")
    x, y = xy()
    for backend, conv in (("torch", lambda a: a), ("jax", lambda a: a.numpy())):
        fn = spec.compile(backend)
        with pytest.raises(lossdsl.ParamError, match="gamma >= 0"):
            fn(conv(x), conv(y), gamma=-0.5)
        with pytest.raises(lossdsl.ParamError, match="reduction"):
            fn(conv(x), conv(y), reduction="avg")
    with pytest.raises(lossdsl.ParamError, match="gamma >= 0"):
        spec.compile("numpy")(x.numpy(), y.numpy(), gamma=-0.5)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_input_errors_name_the_input_and_dim(backend):
    conv = (lambda a: a) if backend == "torch" else (lambda a: a.numpy())
    fn = lossdsl.load("cross_entropy").compile(backend)
    x, y = xy(6, 10)
    with pytest.raises(lossdsl.InputError, match=r"dim C has size 10 .* but 12 in 'weight'"):
        fn(conv(x), conv(y), conv(torch.ones(12, dtype=torch.float64)))
    with pytest.raises(lossdsl.InputError, match=r"'logits' must be float\[B, C\] \(2 dims\)"):
        fn(conv(x[0]), conv(y))
    with pytest.raises(lossdsl.InputError, match=r"'target' must be index\[B\] of C"):
        fn(conv(x), conv(y.double()))
    with pytest.raises(lossdsl.ArityError, match="unexpected keyword"):
        fn(conv(x), conv(y), ignore_idx=3)


def test_torch_compile():
    fn = lossdsl.load("focal").compile("torch")
    compiled = torch.compile(fn, fullgraph=True)
    x, y = xy(32, 7)
    x.requires_grad_(True)
    out = compiled(x, y, gamma=1.5)
    (g,) = torch.autograd.grad(out, [x])
    x2 = x.detach().clone().requires_grad_(True)
    out2 = fn(x2, y, gamma=1.5)
    (g2,) = torch.autograd.grad(out2, [x2])
    torch.testing.assert_close(out, out2)
    torch.testing.assert_close(g, g2)


def test_jax_jit_grad_vmap():
    import jax
    import jax.numpy as jnp

    fn = lossdsl.load("focal").compile("jax")
    x, y = xy(8, 5)
    xj, yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())
    val = jax.jit(fn)(xj, yj)
    np.testing.assert_allclose(val, fn(xj, yj), rtol=1e-12)
    g = jax.jit(jax.grad(fn))(xj, yj)
    xt = x.clone().requires_grad_(True)
    (gt,) = torch.autograd.grad(lossdsl.load("focal").compile("torch")(xt, y), [xt])
    np.testing.assert_allclose(np.asarray(g), gt.numpy(), rtol=1e-10)
    batched = jax.vmap(fn)(jnp.stack([xj, 2 * xj]), jnp.stack([yj, yj]))
    np.testing.assert_allclose(batched, [fn(xj, yj), fn(2 * xj, yj)], rtol=1e-12)
    gamma_grad = jax.grad(lambda gm: fn(xj, yj, gamma=gm))(2.0)
    assert np.isfinite(gamma_grad)  # params may be traced too


@pytest.mark.parametrize("backend,framework", [("torch", "torch"), ("jax", "jax")])
def test_generated_module_is_standalone(tmp_path, backend, framework):
    src = lossdsl.load("supcon").source(backend)
    assert "lossdsl" not in src.replace("lossdsl:", "")
    imports = [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    # the framework, and the standard library's contextlib (torch's _no_autocast helper)
    assert all(framework in ln or ln == "import contextlib" for ln in imports), imports
    (tmp_path / "supcon_gen.py").write_text(src)
    code = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import supcon_gen;"
        "f = np.random.default_rng(0).standard_normal((4, 2, 3)); y = np.array([0, 1, 0, 1]);"
        + (
            "import torch; print(float(supcon_gen.supcon(torch.tensor(f), torch.tensor(y))));"
            if backend == "torch"
            else "print(float(supcon_gen.supcon(f, y)));"
        )
        + "print('lossdsl' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path
    )
    value, leaked = r.stdout.split()
    want = lossdsl.load("supcon").compile("numpy")(
        np.random.default_rng(0).standard_normal((4, 2, 3)), np.array([0, 1, 0, 1])
    )
    assert abs(float(value) - float(want)) < 1e-9 and leaked == "False", r.stderr


def test_cli_compile_shipped_spec():
    r = run("-m", "lossdsl", "compile", "focal", "--backend", "jax")
    assert r.returncode == 0, r.stderr
    assert "def focal(logits, target, weight=None, *, gamma=2.0" in r.stdout
    assert "import jax" in r.stdout


def test_cli_inline_expression_is_poly1():
    r = run(
        "-m",
        "lossdsl",
        "compile",
        "-e",
        "ce + eps*(1-pt)",
        "--task",
        "classification",
        "--backend",
        "torch",
        "--param",
        "eps=1",
    )
    assert r.returncode == 0, r.stderr
    ns: dict = {}
    exec(r.stdout, ns)
    x, y = xy()
    torch.testing.assert_close(ns["inline"](x, y), lossdsl.load("poly1").compile("torch")(x, y))


def test_cli_ir_list_show_and_errors(tmp_path):
    r = run("-m", "lossdsl", "ir", "focal", "--after", "stabilize")
    assert r.returncode == 0 and "expm1" in r.stdout and "log_softmax" in r.stdout
    lowered = run("-m", "lossdsl", "ir", "focal").stdout
    assert "expm1" not in lowered and "softmax" in lowered
    r = run("-m", "lossdsl", "list")
    assert r.returncode == 0 and "supcon" in r.stdout
    # focal's row: its summary field and the short form of its paper fields (Lin et al. 2017)
    assert "cross-entropy down-weighted on well-classified examples.  [Lin et al., ICCV 2017]" in (
        r.stdout
    )
    r = run("-m", "lossdsl", "show", "focal")
    assert "param gamma: float = 2.0  where gamma >= 0" in r.stdout
    bad = tmp_path / "bad.loss"
    bad.write_text("loss bad(x: float[B, C]) {\n    sum(x, over=Q)\n}\n")
    r = run("-m", "lossdsl", "check", str(bad))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{bad}:2:17: error: unknown dimension 'Q'" in r.stderr
    r = run("-m", "lossdsl", "compile", "nope")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_optional_inputs_are_specialized():
    """Absent optional inputs cost nothing: no ones-tensor, no gather of the weights."""
    spec = lossdsl.load("cross_entropy")
    src = spec.source("torch")
    no_weight = src.split("def _cross_entropy__no_weight")[1].split("\ndef ")[0]
    assert "weight" not in no_weight.split("):")[1]


def test_cli_equiv_table():
    r = run("-m", "lossdsl", "equiv", "focal", "kd")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith(("focal", "kd"))]
    assert len(rows) == 2 and all(ln.endswith("ok") for ln in rows)


def test_zero_valued_params_take_a_specialized_variant():
    """label_smoothing=0 removes the smoothing term from the generated code; a tensor (or
    traced) value takes the general variant; both compute the same values and gradients."""
    import jax
    import jax.numpy as jnp

    spec = lossdsl.load("cross_entropy")
    src = spec.source("torch")
    special = src.split("def _cross_entropy__no_weight__label_smoothing_0(")[1].split("\ndef ")[0]
    assert "label_smoothing" not in special and "log_softmax" not in special
    fn = spec.compile("torch")
    x, y = xy(8, 5)
    outs = []
    for eps in (0.0, torch.tensor(0.0, dtype=torch.float64)):
        xx = x.clone().requires_grad_(True)
        out = fn(xx, y, label_smoothing=eps)
        outs.append((out, torch.autograd.grad(out, [xx])[0]))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0][0], F.cross_entropy(x, y))
    jfn = spec.compile("jax")
    traced = jax.jit(
        lambda e: jfn(jnp.asarray(x.numpy()), jnp.asarray(y.numpy()), label_smoothing=e)
    )
    np.testing.assert_allclose(traced(0.0), outs[0][0].item(), rtol=1e-12)
    np.testing.assert_allclose(
        traced(0.3), F.cross_entropy(x, y, label_smoothing=0.3).item(), rtol=1e-12
    )


# ---- the command line around the compiler --------------------------------------------------


def test_cli_version_and_every_subcommand_has_help_with_examples():
    from lossdsl.cli import EXAMPLES, build_parser

    r = run("-m", "lossdsl", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lossdsl {lossdsl.__version__}"
    subs = build_parser()._subparsers._group_actions[0].choices
    assert set(subs) == set(EXAMPLES)  # a new subcommand needs its examples
    for name in subs:
        r = run("-m", "lossdsl", name, "--help")
        assert r.returncode == 0 and "examples:\n  lossdsl " + name in r.stdout, name


def test_cli_output_problems_are_messages_not_tracebacks(tmp_path):
    """-o into a folder that does not exist yet makes it; a path that cannot be written, a
    reader that leaves early (`lossdsl list | head`), a non-UTF-8 spec and a missing framework
    are one-line errors with a hint (each was a traceback before)."""
    out = tmp_path / "new" / "dir" / "focal.py"
    r = run("-m", "lossdsl", "compile", "focal", "-o", str(out))
    assert r.returncode == 0 and "def focal(" in out.read_text()
    (tmp_path / "file").write_text("")
    r = run("-m", "lossdsl", "compile", "focal", "-o", str(tmp_path / "file" / "x.py"))
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    head = subprocess.run(
        f"{sys.executable} -m lossdsl list | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert head.stdout.count("\n") == 1 and head.stderr == "", head.stderr
    bad = tmp_path / "bad.loss"
    bad.write_bytes(b"loss f(x: float[B]) { \xff }\n")
    r = run("-m", "lossdsl", "check", str(bad))
    assert r.returncode == 1 and "UTF-8" in r.stderr and "Traceback" not in r.stderr
    # jax made unimportable in the child: equiv needs it
    code = (
        "import sys; sys.modules['jax'] = None; from lossdsl.cli import main; "
        "sys.exit(main(['equiv', 'focal']))"
    )
    r = run("-c", code)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "needs jax" in r.stderr and "pip install 'lossdsl[jax]'" in r.stderr
