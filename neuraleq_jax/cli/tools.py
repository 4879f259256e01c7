"""Subcommands that hand over to another part of the package: ``train``, ``evaluate`` and
``bench`` (their arguments pass through), ``serve`` (the web app) and ``data fetch``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from neuraleq_jax.cli.common import FAILED, CommandError, Commands, port_number

PASSTHROUGH = frozenset({"train", "bench"})  # they parse their own options
# train handles its signals itself (it checkpoints first); evaluate and bench keep Python's
OWN_SIGNALS = PASSTHROUGH | {"evaluate"}
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, where benchmarks/ lives


def cmd_train(args, extra):
    from neuraleq_jax.cli import train

    return train.main(extra)


def cmd_evaluate(args, _):
    from neuraleq_jax.cli import evaluate

    return evaluate.run(args)


def cmd_bench(args, extra):
    if not (SOURCE_ROOT / "benchmarks" / "__main__.py").is_file():
        raise CommandError(
            "benchmarks live in the source checkout (benchmarks/); run "
            "`neuraleq bench` from an editable install of the repository"
        )
    return subprocess.call([sys.executable, "-m", "benchmarks", *extra], cwd=SOURCE_ROOT)


def cmd_serve(args, _):
    from neuraleq_jax import server
    from neuraleq_jax.generation.serving import use_synchronous_cpu_dispatch

    with server.listen(args.host, args.port) as sock:  # a busy port fails before loading
        use_synchronous_cpu_dispatch()  # one request at a time: run each computation inline
        return server.serve(args.load_system(args.workdir), sock=sock)


def cmd_data_fetch(args, _):
    from neuraleq_jax.data import fetch

    try:
        result = fetch.fetch(
            args.name, args.dest, source=args.source, expected_sha256=args.sha256, force=args.force
        )
    except fetch.DownloadError as error:  # the command was right; the network failed
        raise CommandError(str(error), FAILED) from None
    check = "verified" if result.verified else "not checked (--from without --sha256)"
    print(
        f"wrote {result.path} ({result.size} bytes) from {result.source}\n"
        f"sha256 {result.sha256} ({check})\n"
        f"licence: {fetch.SOURCES[args.name].licence}; the file stays out of the package"
    )


def add_train(commands: Commands) -> None:
    commands.add(
        "train",
        "Train a model (same as python -m neuraleq_jax.train; all its options apply).",
        [
            "neuraleq train --workdir runs/synthetic",
            "neuraleq train --config transformer --workdir runs/tf --train.epochs=100",
        ],
        cmd_train,
        model=False,
        output=False,
    )


def add_evaluate(commands: Commands) -> None:
    from neuraleq_jax.cli import evaluate

    command = commands.add(
        "evaluate",
        "Compute the evaluation figures for the model and the lite baseline; write "
        "metrics.json, report.md and plots.",
        [
            "neuraleq evaluate --workdir runs/synthetic",
            "neuraleq evaluate --workdir runs/synthetic --out /tmp/eval --no-plots",
        ],
        cmd_evaluate,
        output=False,
    )
    evaluate.add_options(command)


def add_bench(commands: Commands) -> None:
    commands.add(
        "bench",
        "Run the benchmark suite (options are passed to python -m benchmarks).",
        ["neuraleq bench --quick", "neuraleq bench generation"],
        cmd_bench,
        model=False,
        output=False,
    )


def add_serve(commands: Commands) -> None:
    command = commands.add(
        "serve",
        "Serve the web app (word map, morph, response, audio A/B, presets) and its JSON API.",
        [
            "neuraleq serve --workdir runs/synthetic",
            "neuraleq serve --workdir runs/synthetic --port 8080",
        ],
        cmd_serve,
        output=False,
        seed=False,
    )
    command.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    command.add_argument(
        "--port", type=port_number, default=8000, help="port (default 8000; 0: a free one)"
    )


def add_data(commands: Commands) -> None:
    data = commands.subparsers.add_parser(
        "data",
        help="Get crowd data sets (neuraleq data fetch audealize|socialfx).",
        description="Get crowd data sets.",
    )
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    command = actions.add_parser(
        "fetch",
        help="download a data set and check its sha256",
        description="Download a data set over HTTPS and check its sha256; nothing is written "
        "when the digest or the format is wrong.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  neuraleq data fetch audealize --dest data/\n"
        "  neuraleq data fetch socialfx --dest data/\n"
        "  neuraleq data fetch audealize --from ./eqdescriptors.json --dest data/",
    )
    command.set_defaults(func=cmd_data_fetch)
    command.add_argument(
        "name", choices=("audealize", "socialfx"), help="the data set (audealize, socialfx)"
    )
    command.add_argument("--dest", default=".", help="folder to write into (default .)")
    command.add_argument(
        "--from",
        dest="source",
        default=None,
        help="another path or URL; its sha256 is reported, not enforced",
    )
    command.add_argument("--sha256", default=None, help="enforce this digest (with --from)")
    command.add_argument("--force", action="store_true", help="replace an existing, different file")
