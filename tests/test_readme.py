"""README runs as written: every shell command and every Python block of README.md is executed.

One child process (a user's machine: one CPU device, not the suite's eight simulated ones) runs
the commands in order in a scratch folder, so ``runs/synthetic`` trained by the first command is
the model the later ones use, and then each Python block on its own in a fresh namespace, as a
reader who copies one block would. Commands run in that process through the entry points their
console scripts call, which keeps the compiled programs of one command for the next.

Three kinds of change are allowed, each listed below with its reason, and each must still match
README (a stale entry fails the test):

- setup steps (venv, pip) are not repeated: the suite already runs in the environment that
  README's install made, and the test checks that the extras they name exist;
- commands that cannot run inside a test (the test suite itself) are exempt;
- sizes that would take minutes are shrunk; the code path stays the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import traceback
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHILD_TIMEOUT_S = 900

SETUP_PREFIXES = (
    "python3 -m venv",
    ". .venv/bin/activate",
    "source .venv/bin/activate",
    "pip install",
)
# command prefix → why it is not run here
EXEMPT = {
    "pytest": "this suite is README's test command",
    "neuraleq bench": ".ci/run runs `python -m benchmarks --quick` on every submission",
    "neuraleq serve": "a server runs until stopped; tests/test_server.py and test_browser.py "
    "drive a live one",
    "neuraleq explore -n 1000000000 --out /shared/explored.zarr": (
        "needs two hosts; tests/test_explore_store.py runs two processes on loopback"
    ),
}
# (README text, replacement, why): applied to commands and Python blocks before running them
SYNTHETIC_TINY = "--train.epochs=2 --data.per_word=20"
SHRINK = (
    (
        "python -m neuraleq_jax.train --workdir runs/synthetic &&",
        f"python -m neuraleq_jax.train --workdir runs/synthetic {SYNTHETIC_TINY} &&",
        "the default run is 50 epochs of 560 settings; the later commands only need a model",
    ),
    (
        "--config synthetic --workdir runs/synthetic",
        f"--config synthetic --workdir runs/synthetic {SYNTHETIC_TINY}",
        "the same run as the first command, so this one resumes it, as README says",
    ),
    (
        "--config transformer --workdir runs/transformer",
        "--config transformer --workdir runs/transformer --train.epochs=1 --data.per_word=20",
        "50 transformer epochs are covered by tests/test_training.py",
    ),
    (
        "--config large --workdir runs/large",
        "--config large --workdir runs/large --train.epochs=1 --data.per_word=16 "
        "--train.batch_size=32",
        "the large preset trains 400k settings for 100 epochs",
    ),
    (
        "make_synthetic(per_word=70, seed=0)",
        "make_synthetic(per_word=20, seed=0)",
        "the facade and the functional core take the same path on fewer settings",
    ),
    (
        "system.train(epochs=50)",
        "system.train(epochs=2)",
        "training to convergence is tests/test_system.py's and test_training.py's job",
    ),
    (
        "TrainConfig()).params",
        "TrainConfig(epochs=2)).params",
        "training to convergence is tests/test_training.py's job",
    ),
    ("10_000_000, chunk=8192", "20_000, chunk=8192", "10M settings take a minute on 2 cores"),
    ("n=1_000_000, k=100", "n=5_000, k=100", "1M novelty ranks take seconds each"),
    (
        "neuraleq explore -n 100000 --novel 10",
        "neuraleq explore -n 5000 --novel 10",
        "the ranking is the same code at any n",
    ),
    (
        "neuraleq explore -n 1000000 --out",
        "neuraleq explore -n 5000 --out",
        "1M settings are a benchmark's size",
    ),
    (
        "neuraleq explore -n 100000000 --out",
        "neuraleq explore -n 5000 --out",
        "10^8 settings to disk are the explore benchmark's job",
    ),
    (
        "neuraleq data fetch audealize --dest data/",
        "neuraleq data fetch audealize --dest data/ --from {SHARED_DATA}/audealize/eqdescriptors.json",
        "no network in tests: the shared copy stands in (tests/test_fetch.py tests the download)",
    ),
    (
        "--data.path=data/eqdescriptors.json --workdir runs/audealize",
        "--data.path=data/eqdescriptors.json --workdir runs/audealize "
        "--data.words=muddy,warm,bright,tinny --train.epochs=1",
        "358 words train for minutes; four words take the same path",
    ),
)
# commands that read the crowd data in ../shared; without it (a user's clone) they are skipped
NEEDS_SHARED_DATA = ("audealize",)
# entry points of the module-style commands README may use
MODULE_COMMANDS = ("neuraleq_jax.train", "neuraleq_jax.evaluate")


@dataclasses.dataclass(frozen=True)
class Block:
    language: str
    line: int  # 1-based line of the opening fence
    text: str


def readme_blocks(text: str) -> list[Block]:
    """Fenced code blocks of ``text`` with their language and first line."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append(Block(opening.group(1), i + 1, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: comments dropped, continuations joined, split at ``&&``."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    commands = []
    for line in joined.splitlines():
        command: list[str] = []
        for word in shlex.split(line, comments=True) + ["&&"]:
            if word != "&&":
                command.append(word)
            elif command:
                commands.append(shlex.join(command))
                command = []
    return commands


def shrunk_readme() -> tuple[list[Block], set[str]]:
    """README's blocks with :data:`SHRINK` applied, and the SHRINK entries that matched."""
    text = README.read_text(encoding="utf-8")
    used = set()
    for before, after, _why in SHRINK:
        if before in text:
            used.add(before)
            text = text.replace(before, after)
    return readme_blocks(text), used


def shared_data() -> Path | None:
    """The shared data folder (as tests/conftest.py finds it), or None where it is absent."""
    folder = Path(os.environ.get("NEURALEQ_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return folder if (folder / "audealize" / "eqdescriptors.json").is_file() else None


def exemption(command: str) -> str | None:
    return next(
        (prefix for prefix in EXEMPT if command.split()[: len(prefix.split())] == prefix.split()),
        None,
    )


def _write_song(path: Path) -> None:
    import soundfile

    rng = np.random.default_rng(0)
    soundfile.write(path, 0.1 * rng.standard_normal((22050, 2)), 44100, subtype="PCM_16")


def _write_autoeq(path: Path) -> None:
    """A ParametricEQ.txt as AutoEQ writes one: a preamp and ten filters."""
    lines = ["Preamp: -6.1 dB", "Filter 1: ON LSC Fc 105 Hz Gain 5.5 dB Q 0.70"]
    for i, (fc, gain, q) in enumerate(
        [
            (160, -2.1, 0.6),
            (420, -1.4, 1.1),
            (1100, 2.0, 1.8),
            (2300, -3.2, 2.5),
            (3700, 4.1, 3.0),
            (5400, -2.2, 4.0),
            (7800, 1.5, 2.2),
            (9900, -1.0, 1.5),
        ],
        start=2,
    ):
        lines.append(f"Filter {i}: ON PK Fc {fc} Hz Gain {gain} dB Q {q:.2f}")
    lines.append("Filter 10: ON HSC Fc 10000 Hz Gain -2.0 dB Q 0.70")
    path.write_text("\n".join(lines) + "\n")


# files that README's commands read, made in the scratch folder before the commands run
INPUT_FILES = {"song.wav": _write_song, "ParametricEQ.txt": _write_autoeq}


# ------------------------------------------------------------------ the child process


def _run_command(command: str) -> int:
    """One README command in-process, through the entry point its console script calls."""
    words = shlex.split(command)
    if words[0] == "neuraleq":
        from neuraleq_jax import cli

        return cli.main(words[1:])
    if words[:2] == ["python", "-m"] and words[2] in MODULE_COMMANDS:
        return importlib.import_module(words[2]).main(words[3:])
    raise ValueError(
        f"test_readme.py does not know how to run {command!r}: teach "
        f"_run_command, or list it in EXEMPT with a reason"
    )


def _run_block(block: Block) -> str | None:
    """Run a Python block in a fresh namespace; the error's last frames, or None."""
    namespace = {"__name__": f"readme_block_line_{block.line}"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block.text, f"README.md:{block.line}", "exec"), namespace)
    except Exception:  # reported to the parent, which fails the test naming the block
        return traceback.format_exc(limit=-3)
    return None


def run_readme(scratch: Path) -> dict:
    """Run README's shell commands in order, then its Python blocks, inside ``scratch``."""
    blocks, _used = shrunk_readme()
    shared = shared_data()
    os.chdir(scratch)
    commands = []
    for block in (b for b in blocks if b.language in ("bash", "sh", "shell", "console")):
        for command in shell_commands(block):
            if command.startswith(SETUP_PREFIXES) or exemption(command):
                continue
            if shared is None and any(word in command for word in NEEDS_SHARED_DATA):
                commands.append(
                    {
                        "line": block.line,
                        "command": command,
                        "status": "skipped",
                        "stderr": "the crowd data in ../shared is absent",
                    }
                )
                continue
            command = command.replace("{SHARED_DATA}", str(shared))
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                try:
                    status = _run_command(command)
                except SystemExit as exit_:  # argparse exits on bad arguments
                    status = exit_.code
                except Exception:  # an escaped exception is a failure to report, not a crash
                    status = "exception"
                    stderr.write(traceback.format_exc(limit=-3))
            commands.append(
                {
                    "line": block.line,
                    "command": command,
                    "status": status,
                    "stderr": stderr.getvalue()[-1500:],
                }
            )
    python = [
        {"line": block.line, "error": _run_block(block)}
        for block in blocks
        if block.language == "python"
    ]
    return {"commands": commands, "python": python}


# ------------------------------------------------------------------ the tests


def test_readme_parsing_helpers():
    """The block and command parsers on a known snippet (so the README test sees everything)."""
    text = (
        "x\n```bash\na --b 'c d' && e  # note\n# only a comment\nf \\\n  g\n```\n"
        "```python\nprint(1)\n```\n"
    )
    bash, python = readme_blocks(text)
    assert (bash.language, bash.line, python.language, python.line) == ("bash", 2, "python", 8)
    assert shell_commands(bash) == ["a --b 'c d'", "e", "f g"]
    assert python.text == "print(1)"


def test_readme_tables_match_readme():
    """Every SHRINK and EXEMPT entry still matches README; every setup step's extras exist."""
    blocks, used = shrunk_readme()
    stale = {before for before, _after, _why in SHRINK} - used
    assert not stale, f"SHRINK entries no longer in README (remove them): {stale}"
    commands = [c for b in blocks if b.language == "bash" for c in shell_commands(b)]
    stale = set(EXEMPT) - {exemption(c) for c in commands}
    assert not stale, f"EXEMPT entries no longer in README (remove them): {stale}"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get(
        "optional-dependencies", {}
    )
    for command in (c for c in commands if c.startswith("pip install")):
        for asked in re.findall(r"\.\[([\w,-]+)\]", command):
            missing = set(asked.split(",")) - set(extras)
            assert not missing, f"README installs extras {missing}, which pyproject lacks"


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory) -> dict:
    scratch = tmp_path_factory.mktemp("readme")
    for name, make in INPUT_FILES.items():
        make(scratch / name)
    out = scratch / "readme_run.json"
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_readme as t; from pathlib import Path; "
        f"result = t.run_readme(Path({str(scratch)!r})); "
        f"Path({str(out)!r}).write_text(json.dumps(result))"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        env=env,
    )
    assert done.returncode == 0 and out.is_file(), done.stderr[-3000:]
    return json.loads(out.read_text())


def test_readme_shell_commands_run_as_written(readme_run):
    failed = [
        f"README line {c['line']}: `{c['command']}` exited {c['status']}:\n{c['stderr']}"
        for c in readme_run["commands"]
        if c["status"] not in (0, "skipped")
    ]
    assert not failed, "\n".join(failed)
    assert len(readme_run["commands"]) >= 5


def test_readme_python_blocks_run_on_their_own(readme_run):
    failed = [
        f"README Python block at line {b['line']}:\n{b['error']}"
        for b in readme_run["python"]
        if b["error"]
    ]
    assert not failed, "\n".join(failed)
    assert readme_run["python"], "README has no Python blocks"
