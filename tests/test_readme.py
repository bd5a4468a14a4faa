"""Every code block of README.md runs as written, in the README's order, in one scratch folder
(a file one block saves, the next one reads):

- ```python: executed by one Python process (a user's: PYTHONPATH is the repository, none of
  the tests' settings), each block in a fresh namespace; `<!-- continues -->` before a block
  runs it in the namespace of the python block before it. `<!-- run: torchrun --standalone
  --nproc-per-node N -->` before a block saves it as a script and runs it on N ranks, each
  with the environment torchrun gives it.
- ```loss: a spec. Checked (`lossdsl.load`) and compiled for numpy, torch and jax, each called
  on small random inputs of its declared types; the three agree. `<!-- file: NAME -->` before
  it also saves it as NAME for the blocks after it ("Save as `poly.loss`").
- ```bash / ```sh: each line a command (`#` starts a comment); ```console: `$ COMMAND` lines,
  each followed by the output the README shows, compared exactly (stdout and stderr as a
  terminal shows them). A command is `lossdsl ...` or `python -m lossdsl ...` (run as
  `python -m lossdsl` on the repository), or `cat FILE` (the README shows FILE: it is saved
  with that text). It must exit 0, or 1 where its shown output reports an error.
- `<!-- not run: REASON -->` before a block (any language) skips it; every skip says why, and
  their number is pinned here: a new skip is a decision, made in this file.
Any other block fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# The blocks that cannot run here, each with its reason in the README: the two setup
# commands (they install packages, and the second runs this suite) and the stages diagram.
NOT_RUN = 3


@dataclass
class Block:
    number: int  # 1-based, in README order
    line: int  # the line of its opening fence
    lang: str
    text: str
    markers: dict[str, str]  # the HTML comments just before it: not run, file, continues, run

    def __str__(self) -> str:
        return f"README block {self.number} (line {self.line}, ```{self.lang})"


_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*(not run|file|continues|run)\s*(?::\s*(.*?))?\s*-->$")


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        markers: dict[str, str] = {}
        k = i - 1
        while k >= 0 and (mk := _MARKER.match(lines[k].strip())):
            markers[mk.group(1)] = mk.group(2) or ""
            k -= 1
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(len(blocks) + 1, i + 1, m.group(1), body, markers))
        i = end + 1
    return blocks


# ---- the python worker -------------------------------------------------------------------

_WORKER = r"""
import contextlib, json, sys, traceback
spaces = {}
for line in sys.stdin:
    req = json.loads(line)
    ns = spaces.setdefault(req["ns"], {"__name__": "__main__"})
    error = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(req["code"], req["name"], "exec"), ns)
    except BaseException:
        error = traceback.format_exc()
    sys.stdout.write(json.dumps({"error": error}) + "\n")
    sys.stdout.flush()
"""


def _user_env() -> dict[str, str]:
    """The environment a user runs the README in: lossdsl from this repository, none of the
    suite's settings (conftest's float64 jax)."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "PYTHONPATH")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", COLUMNS="100")
    return env


class PythonWorker:
    def __init__(self, cwd: Path):
        self.log = open(cwd / "_python_stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=cwd,
            env=_user_env(),
        )

    def run(self, block: Block, namespace: int) -> str | None:
        req = {"code": block.text, "name": f"<README block {block.number}>", "ns": namespace}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            self.log.seek(0)
            return "the python process died:\n" + self.log.read()[-3000:]
        return json.loads(reply)["error"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


# ---- commands ------------------------------------------------------------------------------


def _argv(command: str) -> list[str]:
    """A README command as the argv this test runs: lossdsl from this repository."""
    words = shlex.split(command, comments=True)
    if words[:1] == ["lossdsl"]:
        return [sys.executable, "-m", "lossdsl", *words[1:]]
    if words[:3] == ["python", "-m", "lossdsl"]:
        return [sys.executable, *words[1:]]
    raise AssertionError(f"not a lossdsl command: {command!r} (mark the block `not run`)")


def _run_command(command: str, cwd: Path) -> tuple[int, str]:
    r = subprocess.run(
        _argv(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=_user_env(),
        timeout=120,
    )
    return r.returncode, r.stdout


def _console_steps(text: str) -> list[tuple[str, str]]:
    """`$ command` lines and the output shown after each."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any `$ ` command: {line!r}"
            steps[-1][1].append(line)
    return [(c, "\n".join(out)) for c, out in steps]


def run_console(block: Block, cwd: Path) -> list[str]:
    errors = []
    for command, shown in _console_steps(block.text):
        words = shlex.split(command, comments=True)
        if words[:1] == ["cat"] and len(words) == 2:
            path = cwd / words[1]
            if path.exists():
                got = path.read_text().rstrip("\n")
                if got != shown:
                    errors.append(f"$ {command}: the file differs:\n{got}")
            else:
                path.write_text(shown + "\n")  # the README defines it
            continue
        rc, out = _run_command(command, cwd)
        want_rc = 1 if re.search(r"(^|: )error: ", shown, re.M) else 0
        if out.rstrip("\n") != shown.rstrip("\n"):
            errors.append(f"$ {command}: the output is stale; it is now:\n{out}")
        if rc != want_rc:
            errors.append(f"$ {command}: exit status {rc}, expected {want_rc}:\n{out}")
    return errors


def run_shell(block: Block, cwd: Path) -> list[str]:
    errors = []
    for line in block.text.splitlines():
        if not shlex.split(line, comments=True):
            continue  # a comment, or blank
        rc, out = _run_command(line, cwd)
        if rc != 0:
            errors.append(f"{line.strip()}: exit status {rc}:\n{out}")
    return errors


# Each rank runs the script, then says so; torch 2.13's gloo may still abort a rank at exit
# ("terminate called without an active exception", SIGABRT) after the script has ended, plain
# DDP without lossdsl too (pytorch#190489): an abort after DONE is that, not the script's.
_RANK = (
    "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__');"
    "print('README-BLOCK-DONE', flush=True)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torchrun(block: Block, cwd: Path) -> list[str]:
    """`torchrun --standalone --nproc-per-node N`: N processes with the environment torchrun
    gives each rank (RANK, WORLD_SIZE, MASTER_ADDR, ...), started here."""
    args = shlex.split(block.markers["run"])
    assert args[:2] == ["torchrun", "--standalone"] and args[2] == "--nproc-per-node", args
    world = int(args[3])
    script = cwd / f"_block{block.number}.py"
    script.write_text(block.text)
    port = _free_port()
    procs = []
    for rank in range(world):
        env = _user_env()
        env.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            LOCAL_WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _RANK, str(script)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=cwd,
                env=env,
            )
        )
    errors = []
    for rank, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=300)
        done = "README-BLOCK-DONE" in out
        if not done or proc.returncode not in (0, -signal.SIGABRT):
            errors.append(f"rank {rank}: exit status {proc.returncode}:\n{out[-4000:]}")
    return errors


# ---- specs ---------------------------------------------------------------------------------


def run_spec(block: Block, cwd: Path) -> list[str]:
    """Check the spec, compile it for every backend and call each on small inputs."""
    import lossdsl
    from lossdsl.equiv import call, random_inputs

    name = block.markers.get("file") or "{}.loss".format(
        re.findall(r"^loss\s+(\w+)", block.text, re.M)[-1]
    )
    folder = cwd if "file" in block.markers else cwd / f"_block{block.number}"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(block.text)
    spec = lossdsl.load(path)
    inputs = random_inputs(spec, {"B": 3, "C": 4, "N": 6}, np.random.default_rng(block.number))
    values = {
        backend: call(backend, spec.compile(backend), inputs, "float64")
        for backend in ("numpy", "torch", "jax")
    }
    errors = []
    if not np.all(np.isfinite(values["numpy"])):
        errors.append(f"{spec.name}: not finite on random inputs: {values['numpy']}")
    for backend in ("torch", "jax"):
        if not np.allclose(values[backend], values["numpy"], rtol=1e-6, atol=1e-9):
            errors.append(f"{spec.name}: {backend} {values[backend]} vs numpy {values['numpy']}")
    return errors


# ---- the tests -------------------------------------------------------------------------------


def test_readme_blocks_run(tmp_path):
    blocks = readme_blocks(README.read_text())
    worker = None
    failures, namespace = [], 0
    try:
        for block in blocks:
            if "not run" in block.markers:
                continue
            try:
                if block.lang == "python" and "run" in block.markers:
                    errors = run_torchrun(block, tmp_path)
                elif block.lang == "python":
                    worker = worker or PythonWorker(tmp_path)
                    if "continues" not in block.markers:
                        namespace += 1
                    error = worker.run(block, namespace)
                    errors = [error] if error else []
                elif block.lang == "loss":
                    errors = run_spec(block, tmp_path)
                elif block.lang == "console":
                    errors = run_console(block, tmp_path)
                elif block.lang in ("bash", "sh"):
                    errors = run_shell(block, tmp_path)
                else:
                    errors = [
                        "a block this test cannot run: give it a language (python, loss, "
                        "bash, console) or a `<!-- not run: REASON -->` line before it"
                    ]
            except Exception as e:  # reported with the block's place
                errors = [f"{type(e).__name__}: {e}"]
            failures += [f"{block}: {e}" for e in errors]
    finally:
        if worker is not None:
            worker.close()
    assert not failures, "\n\n".join(failures)


def test_skipped_blocks_say_why():
    """Every block not run names its reason; how many there are is pinned (NOT_RUN)."""
    blocks = readme_blocks(README.read_text())
    skipped = [b for b in blocks if "not run" in b.markers]
    for b in skipped:
        assert len(b.markers["not run"].split()) >= 3, f"{b}: say why it is not run"
    listing = "\n".join(f"{b}: {b.markers['not run']}" for b in skipped)
    print(f"{len(skipped)} of {len(blocks)} README blocks not run:\n{listing}")
    assert len(skipped) == NOT_RUN, listing
    # every marker sits on a block that it applies to
    for b in blocks:
        if "continues" in b.markers or "run" in b.markers:
            assert b.lang == "python", b
        if "file" in b.markers:
            assert b.lang == "loss", b
