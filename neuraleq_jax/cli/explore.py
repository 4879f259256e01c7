"""``neuraleq explore -n N --out DIR.zarr``: explore into a store from the command line.

    neuraleq explore -n 1000000000 --out big.zarr --novel 100 --target warm.json --near 100
    # several processes (one per host), each writing its share of the rows:
    neuraleq explore -n 1000000000 --out /shared/big.zarr --distributed.num_processes=2 \\
        --distributed.process_id=0 --distributed.coordinator_address=host0:1234

Rerunning the same command resumes an unfinished store and leaves a finished one alone. The
flags are added to the ``explore`` subcommand by :func:`add_arguments`; nothing here imports
JAX until the command runs, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DISTRIBUTED_FLAGS = (
    ("coordinator_address", str, ""),
    ("num_processes", int, 1),
    ("process_id", int, 0),
    ("local_devices", int, 0),
)


def is_store_path(out: str | None) -> bool:
    """Whether ``--out`` names a store (a ``.zarr`` folder) rather than a file."""
    return bool(out) and out.rstrip("/").endswith(".zarr")


def add_arguments(command: argparse.ArgumentParser) -> None:
    """The store options of ``neuraleq explore`` (they apply with ``--out DIR.zarr``)."""
    group = command.add_argument_group("exploring into a store (--out DIR.zarr)")
    group.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="rows per chunk (default: 65536 on a CPU, 2^20 on an accelerator; "
        "a resumed store keeps its own)",
    )
    group.add_argument(
        "--columns",
        default="",
        help="per-row extras, comma-separated: latents, novelty, nearest_word",
    )
    group.add_argument(
        "--target",
        default=None,
        help="a preset file (.json/.csv/.txt) or a 40-band curve file (.json): "
        "keep the settings whose response is nearest to it",
    )
    group.add_argument(
        "--near",
        type=int,
        default=100,
        help="how many settings nearest to --target to keep (default 100, at most -n)",
    )
    for name, kind, default in DISTRIBUTED_FLAGS:
        group.add_argument(
            f"--distributed.{name}",
            dest=f"distributed_{name}",
            type=kind,
            default=default,
            metavar=kind.__name__.upper(),
            help=f"as for training: jax.distributed {name} (default {default!r})",
        )


def read_target(path, layout):
    """A :class:`explore_store.Target` from a preset file (its first setting's response on the
    reference grid) or a curve file (its first curve at its band frequencies)."""
    import numpy as np

    from neuraleq_jax import presets
    from neuraleq_jax.data import audealize
    from neuraleq_jax.explore.store import Target
    from neuraleq_jax.model import response

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--target file {path} does not exist")
    reasons = []
    try:
        settings, _names = presets.read_preset(path, layout=layout)
        gains = np.asarray(response.magnitude_response_db(settings[0], layout=layout))
        return Target(
            tuple(map(float, response.REFERENCE_FREQS)),
            tuple(map(float, gains)),
            f"{path.name} (preset)",
        )
    except ValueError as error:
        reasons.append(f"as a preset: {error}")
    if path.suffix.lower() == ".json":
        try:
            curve_set = audealize.load_any_curve_file(path)  # either kind of curve file
            return Target(
                tuple(map(float, curve_set.freqs)),
                tuple(map(float, curve_set.gains_db[0])),
                f"{path.name} (curve '{curve_set.words[0]}')",
            )
        except ValueError as error:
            reasons.append(f"as a curve file: {error}")
    raise ValueError(
        f"--target {path} is neither a preset (.json/.csv/.txt/.apo) nor a curve "
        f"file (.json); {'; '.join(reasons)}"
    )


def _load_model(workdir: str):
    """The bundle in ``workdir`` on this process's own devices (the facade would place arrays
    on global device 0, which another process of a distributed run does not own). A missing or
    damaged model is a CheckpointError, which the command reports like every other (exit 1)."""
    from neuraleq_jax.training import checkpoints

    path = Path(workdir)
    if path.is_file():
        raise checkpoints.CheckpointNotFoundError(
            f"--workdir {path} is a file, not a folder: give the folder a training run wrote"
        )
    bundle = checkpoints.load_bundle(path)
    if bundle.word_model is None:
        raise checkpoints.CheckpointError(
            f"the model in {path}/ has no word model; retrain it "
            f"with neuraleq train --workdir {path}"
        )
    return bundle


def _print_report(report, args) -> None:
    """What the store run did: a replaced unfinished store, nothing to do, or rows written."""
    if report.replaced:
        print(
            f"note: replaced the unfinished exploration of other options in {args.out} "
            f"(it held no finished chunk)",
            file=sys.stderr,
        )
    if report.already_complete:
        print(f"{args.out} is complete already ({args.n} settings); nothing written")
        return
    resumed = (
        f", resumed after {report.chunks_before} done chunk(s)" if report.chunks_before else ""
    )
    rate = report.rows_written / max(report.seconds, 1e-9)
    print(
        f"wrote {report.rows_written} setting(s) to {args.out} in "
        f"{report.seconds:.1f} s ({rate:,.0f} settings/s{resumed})"
    )


def run(args) -> int:
    """Run ``neuraleq explore`` with ``--out DIR.zarr`` (``args`` from the cli parser)."""
    from neuraleq_jax.config import DistributedConfig
    from neuraleq_jax.training.experiment import setup_jax

    if args.target and not Path(args.target).is_file():  # before anything loads
        raise FileNotFoundError(f"--target file {args.target} does not exist")
    distributed = DistributedConfig(
        **{
            name: getattr(args, f"distributed_{name}")
            for name, _kind, _default in DISTRIBUTED_FLAGS
        }
    )
    setup_jax(distributed)
    import jax

    from neuraleq_jax.explore import writer

    bundle = _load_model(args.workdir)
    target = read_target(args.target, bundle.layout) if args.target else None
    columns = tuple(c.strip() for c in args.columns.split(",") if c.strip())
    report = writer.explore_to_store(
        args.out,
        bundle.params,
        bundle.model_config,
        bundle.word_model,
        writer.key_for_seed(args.seed),
        args.n,
        chunk=args.chunk,
        columns=columns,
        novel_k=args.novel or 0,
        target=target,
        target_k=min(args.near, args.n) if target else 0,
        seed=args.seed,
        vocabulary=bundle.vocabulary,
        layout=bundle.layout,
        progress=True,
        check_stop=args.check_stop,
    )
    if jax.process_index() == 0:
        _print_report(report, args)
    if distributed.enabled:
        jax.distributed.shutdown()
    return 0
