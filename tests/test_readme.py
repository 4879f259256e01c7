"""The documentation runs as written: every shell command and every Python block of README.md
and docs/*.md is executed.

One child process runs the pages' commands in order (README first, then docs/ by name) in a
scratch folder, so ``runs/synthetic`` trained by README's first command is the model the later
ones use, and then each Python block on its own in a fresh namespace, as a reader who copies one
block would. Commands run in that process through the entry points their console scripts call,
which keeps the compiled programs of one command for the next; a command that two pages share
runs once. The child sees the suite's devices and compilation cache, and README's first command
trains the session's tiny model (conftest.TINY_TRAIN_ARGS: the synthetic preset's code path at
small widths, on one device), so most programs the pages' commands compile are ones the rest of
the suite compiles anyway: whichever process gets there first compiles, the other loads.

Four kinds of change are allowed, each listed below with its reason, and each must still match
a page (a stale entry fails the test):

- setup steps (venv, pip) are not repeated: the suite already runs in the environment that
  README's install made, and the test checks that the extras they name exist;
- commands that cannot run inside a test (the test suite itself, servers, several hosts, runs
  of many minutes) are exempt;
- sizes that would take minutes are shrunk (README's model to the session's tiny model); the
  code path stays the same;
- trainings of other presets (transformer, large, SAFE-DB, Audealize), which another test trains
  through the same entry point, are resolved but not trained (``--print_config``): compiling a
  model costs tens of seconds whatever its widths, and these would double this file's cost. The
  ``neuraleq`` commands that use such a model are parsed, not run.

The cost is compiling: a command that two pages share runs once, the Python blocks load the
model README's first command trained rather than training their own where they are about using
one, and programs are shared with the suite as above. With ``pytest -s`` the fixture prints the
CPU seconds of the costliest steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tomllib
import traceback
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_TRAIN_ARGS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CHILD_TIMEOUT_S = 2400  # generous: a shared 2-core CPU runs it several times slower
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")


def pages() -> list[Path]:
    """The pages whose blocks run, in running order: README, then docs/*.md by name."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


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
    "python -m benchmarks": ".ci/run runs `python -m benchmarks --quick`; "
    "tests/test_benchmarks.py runs each benchmark module",
    "python scripts/safe_cv.py": "20 trainings on SAFE-DB; tests/test_safe_cv.py runs the script "
    "on two small splits",
    "neuraleq serve": "a server runs until stopped; tests/server/test_server.py and test_web.py "
    "drive a live one",
    "neuraleq explore -n 1000000000 --out /shared/explored.zarr": (
        "needs two hosts; tests/explore/test_explore.py runs two processes on loopback"
    ),
    "python -m neuraleq_jax.train --workdir runs/synthetic "
    "--distributed.coordinator_address=host0:1234": (
        "needs two hosts; tests/training/test_trainer.py trains over two processes on loopback"
    ),
}
# README's model is the session's tiny model (conftest.TINY_TRAIN_ARGS): the same programs
SYNTHETIC_TINY = " ".join(arg for arg in TINY_TRAIN_ARGS if arg != "--quiet")
# (page text, replacement, why): applied to commands and Python blocks before running them
SHRINK = (
    (
        "python -m neuraleq_jax.train --workdir runs/synthetic &&",
        f"python -m neuraleq_jax.train --workdir runs/synthetic {SYNTHETIC_TINY} &&",
        "the default run is 50 epochs of 560 settings at full widths; the later commands only "
        "need a model, and the tiny one's programs are the ones the rest of the suite compiles",
    ),
    (
        "--config synthetic --workdir runs/synthetic",
        f"--config synthetic --workdir runs/synthetic {SYNTHETIC_TINY}",
        "the same run as README's first command, so this one resumes it, as the page says",
    ),
    (
        "python -m neuraleq_jax.evaluate --workdir runs/synthetic",
        "python -m neuraleq_jax.evaluate --workdir runs/synthetic --fidelity-per-word 20 "
        "--n-variations 20",
        "the same figures and plots from fewer draws",
    ),
    (
        "system.train(epochs=50)",
        "system.train(epochs=2)",
        "training to convergence is tests/test_system.py's and test_trainer.py's job",
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
        "no network in tests: the shared copy stands in (tests/data/test_fetch.py tests the download)",
    ),
    (
        "neuraleq data fetch socialfx --dest data/",
        "neuraleq data fetch socialfx --dest data/ --from {SHARED_DATA}/socialfx/eq_contributions.csv",
        "no network in tests: the shared copy stands in (tests/data/test_socialfx.py tests the "
        "download against a local server)",
    ),
)
# Trainings whose command is about a preset or a data set, and whose training another test runs
# through the same entry point: here only the command line is resolved (the preset, every
# option, ``--print_config``), which catches a renamed preset or option; compiling the preset's
# programs again would double the cost of this file. workdir → (the training command, why).
CONFIG_ONLY = {
    "runs/transformer": (
        "python -m neuraleq_jax.train --config transformer",
        "tests/training/test_trainer.py trains the transformer encoder end to end",
    ),
    "runs/large": (
        "python -m neuraleq_jax.train --config large",
        "the synthetic code path at larger widths and batch; tests/test_config.py loads it",
    ),
    "runs/safe": (
        "python -m neuraleq_jax.train --config safe",
        "tests/data/test_registry.py builds its contributor split, tests/test_safe_cv.py "
        "trains on SAFE-DB",
    ),
    "runs/audealize": (
        "python -m neuraleq_jax.train --config audealize",
        "tests/data/test_crowd.py trains this preset through `neuraleq train` and runs "
        "words, describe, plot --map and the evaluation on it",
    ),
    "runs/socialfx": (
        "python -m neuraleq_jax.train --config socialfx",
        "tests/data/test_socialfx.py trains this preset through the same entry point (three "
        "words, tiny widths); all 49 words fit 527 curves and train for minutes",
    ),
}
# commands that read the crowd data in ../shared; without it (a user's clone) they are skipped
NEEDS_SHARED_DATA = ("audealize", "socialfx", "runs/safe")
# entry points of the module-style commands the pages may use
MODULE_COMMANDS = ("neuraleq_jax.train", "neuraleq_jax.evaluate")


@dataclasses.dataclass(frozen=True)
class Block:
    language: str
    line: int  # 1-based line of the opening fence
    text: str
    page: str = "README.md"  # relative to the repository root


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Fenced code blocks of ``text`` with their language and first line."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append(Block(opening.group(1), i + 1, "\n".join(lines[i + 1 : end]), page))
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


def shrunk_pages() -> tuple[list[Block], set[str]]:
    """Every page's blocks with :data:`SHRINK` applied, and the SHRINK entries that matched."""
    blocks, used = [], set()
    for path in pages():
        text = path.read_text(encoding="utf-8")
        for before, after, _why in SHRINK:
            if before in text:
                used.add(before)
                text = text.replace(before, after)
        blocks += readme_blocks(text, str(path.relative_to(ROOT)))
    return blocks, used


def shared_data() -> Path | None:
    """The shared data folder (as tests/conftest.py finds it), or None where it is absent."""
    folder = Path(os.environ.get("NEURALEQ_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return folder if (folder / "audealize" / "eqdescriptors.json").is_file() else None


def config_only_workdir(command: str) -> str | None:
    """The :data:`CONFIG_ONLY` workdir that ``command`` trains or uses, or None."""
    words = shlex.split(command)
    named = {w.split("=", 1)[1] for w in words if w.startswith("--workdir=")}
    named |= {b for a, b in zip(words, words[1:]) if a == "--workdir"}
    return next((w for w in CONFIG_ONLY if w in named), None)


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


# files that the pages' commands read, made in the scratch folder before the commands run
INPUT_FILES = {"song.wav": _write_song, "ParametricEQ.txt": _write_autoeq}


# ------------------------------------------------------------------ the child process


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_command(command: str) -> int:
    """One command in-process, through the entry point its console script calls."""
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


def _run_caught(command: str) -> tuple[int | str, str]:
    """``(exit status, stderr's tail)`` of one command; an escaped exception is reported."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = _run_command(command)
        except SystemExit as exit_:  # argparse exits on bad arguments
            status = exit_.code
        except Exception:  # a failure to report, not a crash of the child
            status = "exception"
            stderr.write(traceback.format_exc(limit=-3))
    return status, stderr.getvalue()[-1500:]


def _parse_only(command: str) -> tuple[int | str, str]:
    """A ``neuraleq`` subcommand's arguments parsed, not run (its model is not trained here)."""
    from neuraleq_jax import cli

    words = shlex.split(command)
    if words[0] != "neuraleq" or words[1] in ("train", "evaluate", "bench"):
        return "skipped", "its model is trained only in the test that CONFIG_ONLY names"
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        try:
            cli.build_parser().parse_args(words[1:])
        except SystemExit as exit_:
            return exit_.code, stderr.getvalue()[-1500:]
    return 0, "parsed (its model is trained only in the test that CONFIG_ONLY names)"


def _run_block(block: Block) -> str | None:
    """Run a Python block in a fresh namespace; the error's last frames, or None."""
    namespace = {"__name__": f"doc_block_line_{block.line}"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block.text, f"{block.page}:{block.line}", "exec"), namespace)
    except Exception:  # reported to the parent, which fails the test naming the block
        return traceback.format_exc(limit=-3)
    return None


def run_pages(scratch: Path) -> dict:
    """Run the pages' shell commands in order, then their Python blocks, inside ``scratch``."""
    blocks, _used = shrunk_pages()
    shared = shared_data()
    os.chdir(scratch)
    commands, first_seen = [], {}
    for block in (b for b in blocks if b.language in SHELL_LANGUAGES):
        for command in shell_commands(block):
            if command.startswith(SETUP_PREFIXES) or exemption(command):
                continue
            record = {"page": block.page, "line": block.line, "command": command, "cpu_s": 0.0}
            workdir = config_only_workdir(command)
            if command in first_seen:
                record.update(status=0, stderr=f"ran as {first_seen[command]}")
            elif shared is None and any(word in command for word in NEEDS_SHARED_DATA):
                record.update(status="skipped", stderr="the crowd data in ../shared is absent")
            elif workdir and command.startswith(CONFIG_ONLY[workdir][0]):
                first_seen[command] = f"{block.page}:{block.line}"
                record.update(zip(("status", "stderr"), _run_caught(command + " --print_config")))
            elif workdir:
                record.update(zip(("status", "stderr"), _parse_only(command)))
            else:
                first_seen[command] = f"{block.page}:{block.line}"
                start = _cpu_s()
                status, stderr = _run_caught(command.replace("{SHARED_DATA}", str(shared)))
                record.update(status=status, stderr=stderr, cpu_s=_cpu_s() - start)
            commands.append(record)
    python = []
    for block in (b for b in blocks if b.language == "python"):
        start = _cpu_s()
        error = _run_block(block)
        python.append(
            {"page": block.page, "line": block.line, "error": error, "cpu_s": _cpu_s() - start}
        )
    return {"commands": commands, "python": python}


# ------------------------------------------------------------------ the tests


def test_readme_parsing_helpers():
    """The block and command parsers on a known snippet (so the test sees everything)."""
    text = (
        "x\n```bash\na --b 'c d' && e  # note\n# only a comment\nf \\\n  g\n```\n"
        "```python\nprint(1)\n```\n"
    )
    bash, python = readme_blocks(text, "docs/x.md")
    assert (bash.language, bash.line, python.language, python.line) == ("bash", 2, "python", 8)
    assert (bash.page, python.page) == ("docs/x.md", "docs/x.md")
    assert shell_commands(bash) == ["a --b 'c d'", "e", "f g"]
    assert python.text == "print(1)"


def test_tables_match_the_pages():
    """Every SHRINK and EXEMPT entry still matches a page; every setup step's extras exist."""
    blocks, used = shrunk_pages()
    assert {b.page for b in blocks} >= {"README.md"}
    stale = {before for before, _after, _why in SHRINK} - used
    assert not stale, f"SHRINK entries no longer in any page (remove them): {stale}"
    commands = [c for b in blocks if b.language in SHELL_LANGUAGES for c in shell_commands(b)]
    stale = set(EXEMPT) - {exemption(c) for c in commands}
    assert not stale, f"EXEMPT entries no longer in any page (remove them): {stale}"
    trained = {
        workdir
        for workdir, (training, _why) in CONFIG_ONLY.items()
        if any(c.startswith(training) and config_only_workdir(c) == workdir for c in commands)
    }
    stale = set(CONFIG_ONLY) - trained
    assert not stale, f"CONFIG_ONLY trainings no longer in any page (remove them): {stale}"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get(
        "optional-dependencies", {}
    )
    for command in (c for c in commands if c.startswith("pip install")):
        for asked in re.findall(r"\.\[([\w,-]+)\]", command):
            missing = set(asked.split(",")) - set(extras)
            assert not missing, f"a page installs extras {missing}, which pyproject lacks"


def test_readme_first_commands_are_the_two_promised():
    """README opens with the command that trains and generates, then the test command."""
    first, second = [b for b in readme_blocks(README.read_text(encoding="utf-8"))][:2]
    trains = shell_commands(first)
    assert trains[0].startswith("python3 -m venv") and "pip install -e ." in trains
    assert any(c.startswith("python -m neuraleq_jax.train") for c in trains)
    assert trains[-1].startswith("neuraleq generate")
    assert shell_commands(second)[-1] == "pytest -q"


@pytest.fixture(scope="module")
def pages_run(tmp_path_factory) -> dict:
    scratch = tmp_path_factory.mktemp("readme")
    for name, make in INPUT_FILES.items():
        make(scratch / name)
    out = scratch / "pages_run.json"
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import test_readme as t; from pathlib import Path; "
        f"result = t.run_pages(Path({str(scratch)!r})); "
        f"Path({str(out)!r}).write_text(json.dumps(result))"
    )
    import jax

    # the suite's device count (the cache keys programs by it): see the module's docstring
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(jax.device_count()))
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        env=env,
    )
    assert done.returncode == 0 and out.is_file(), done.stderr[-3000:]
    result = json.loads(out.read_text())
    costly = sorted(result["commands"] + result["python"], key=lambda r: -r["cpu_s"])[:8]
    print("CPU seconds of the costliest steps (pytest -s shows this):")
    for step in costly:
        print(f"  {step['cpu_s']:7.1f}  {step['page']}:{step['line']}  {step.get('command', '')}")
    return result


def test_shell_commands_run_as_written(pages_run):
    failed = [
        f"{c['page']} line {c['line']}: `{c['command']}` exited {c['status']}:\n{c['stderr']}"
        for c in pages_run["commands"]
        if c["status"] not in (0, "skipped")
    ]
    assert not failed, "\n".join(failed)
    ran = {c["page"] for c in pages_run["commands"]}
    assert "README.md" in ran and len(pages_run["commands"]) >= 5


def test_python_blocks_run_on_their_own(pages_run):
    failed = [
        f"{b['page']} Python block at line {b['line']}:\n{b['error']}"
        for b in pages_run["python"]
        if b["error"]
    ]
    assert not failed, "\n".join(failed)
    assert "README.md" in {b["page"] for b in pages_run["python"]}, "README has no Python blocks"
