"""``neuraleq generate``, ``morph`` and ``explore``: settings from the trained model, printed
or written in the format ``--format`` / ``--out`` names."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from neuraleq_jax.cli import output as output
from neuraleq_jax.cli.common import (
    CommandError,
    Commands,
    add_setting_options,
    add_strength_option,
    centre_setting,
    clipping_watch,
    positive_int,
    print_notes,
    resolve_format,
    strength_notes,
)
from neuraleq_jax.generation.explore import NOVEL_CHUNK, NOVEL_SEGMENT_CHUNKS
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT


def cmd_generate(args, _):
    fmt = resolve_format(args)
    if args.centre and args.n not in (None, 1):
        raise CommandError(
            f"--centre gives a word's one centre setting, so -n {args.n} cannot apply; drop "
            f"-n for the centre, or drop --centre for {args.n} variations"
        )
    one = output.holds_one_setting(fmt)
    count = 1 if args.centre else args.n if args.n is not None else (1 if one else 5)
    output.check_output(fmt, count, args.out, "use -n 1, or --format json or csv for several")
    system = args.load_system(args.workdir)
    notes = []
    output.emit(
        clipping_watch(_generated_chunks(system, args, count), args.strength, system.layout, notes),
        count,
        system.layout,
        fmt,
        args.out,
        (lambda i: f"{args.term} centre") if args.centre else (lambda i: f"{args.term} #{i + 1}"),
        args.check_stop,
    )
    print_notes(notes)


def _generated_chunks(system, args, count: int):
    """``count`` settings of ``args.term`` at ``--strength`` as ``[C, P]`` chunks: its centre
    (``--centre``) or the variations ``--seed`` draws."""
    if args.centre:
        from neuraleq_jax.generation.common import apply_strength

        centre_1xP = centre_setting(system, args.term)[None]
        return [np.asarray(apply_strength(centre_1xP, args.strength, system.layout))]
    return system.generate_eq_chunks(
        args.term, count, strength=args.strength, seed=args.seed, chunk=output.STREAM_CHUNK
    )


def cmd_morph(args, _):
    fmt = resolve_format(args)
    if args.steps < 2:
        raise CommandError(f"--steps must be an integer >= 2 (both ends count), got {args.steps}")
    output.check_output(
        fmt, args.steps, args.out, "a morph has 2 or more steps: use --format json or csv"
    )
    system = args.load_system(args.workdir)
    settings = np.asarray(
        system.morph_between_terms(args.term_a, args.term_b, steps=args.steps, as_array=True)
    )
    if args.strength != 1.0:
        from neuraleq_jax.generation.common import apply_strength

        settings = np.asarray(apply_strength(settings, args.strength, system.layout))
    count = len(settings)
    chunk = output.STREAM_CHUNK  # the text (and each preset's preamp) a chunk at a time
    output.emit(
        [settings[i : i + chunk] for i in range(0, count, chunk)],
        count,
        system.layout,
        fmt,
        args.out,
        lambda i: f"{args.term_a}→{args.term_b} {i / (count - 1):.2f}",
        args.check_stop,
    )
    print_notes(strength_notes(settings, args.strength, system.layout))


def cmd_explore(args, _):
    from neuraleq_jax.cli import explore as explore_command

    if explore_command.is_store_path(args.out):
        return explore_command.run(args)
    npz = bool(args.out) and args.out.lower().endswith(".npz")
    also = (".npz (arrays)", ".zarr (a store folder)")
    fmt = "npz" if npz and args.format is None else resolve_format(args, also)
    if args.novel is not None and args.novel > args.n:
        raise CommandError(
            f"--novel {args.novel} asks for more settings than the -n {args.n} "
            "candidates explored; use --novel K with K <= N"
        )
    if fmt != "npz":
        output.check_output(
            fmt,
            args.n if args.novel is None else args.novel,
            args.out,
            "use -n 1 (or --novel 1), or --format json or csv for several",
        )
    if fmt == "npz" and args.novel is None:
        _check_npz_fits(args.n, args.out)
    system = args.load_system(args.workdir)
    chunks = _explored_chunks(system, args, whole=fmt == "npz")
    if fmt == "npz":
        _write_npz(args.out, np.concatenate(list(chunks)), system.layout)
        return
    count = args.n if args.novel is None else args.novel
    output.emit(
        chunks, count, system.layout, fmt, args.out, lambda i: f"explore #{i + 1}", args.check_stop
    )


def _explored_chunks(system, args, *, whole: bool):
    """The explored settings as ``[n, P]`` chunks: the ``--novel`` most novel of ``-n``
    candidates, all ``-n`` at once (``whole``), or streamed in chunks."""
    if args.novel is not None:
        from tqdm.auto import tqdm

        # the ranking runs in compiled pieces: between them a bar (for more than a piece) moves
        # and a stop takes effect
        quiet = args.n <= NOVEL_CHUNK * NOVEL_SEGMENT_CHUNKS
        with tqdm(total=args.n, unit="candidate", file=sys.stderr, disable=quiet) as bar:

            def progress(done: int) -> None:
                args.check_stop()
                bar.update(done - bar.n)

            # N candidates, the K most novel of them (the facade counts the other way round)
            novel = system.explore_latent_space(
                n_samples=args.novel, novel=args.n, seed=args.seed, as_array=True, progress=progress
            )
        return [np.asarray(novel)]
    if whole:  # one array in the file: 60 bytes per setting in memory
        return [
            np.asarray(system.explore_latent_space(n_samples=args.n, seed=args.seed, as_array=True))
        ]
    return system.explore_chunks(args.n, seed=args.seed, chunk=output.STREAM_CHUNK)


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_npz_fits(n: int, out: str) -> None:
    """A .npz is written from one array: refuse, before exploring, one that memory cannot hold
    (the settings, float32, and the file's bytes beside them)."""
    needed, memory = 2 * n * DEFAULT_LAYOUT.n_params * 4, physical_memory_bytes()
    if needed > memory:
        raise CommandError(
            f"a .npz of {n:,} settings needs about {needed / 1e9:.1f} GB of memory at once and "
            f"this machine has {memory / 1e9:.1f} GB; explore into a store instead, which "
            f"writes chunk by chunk: neuraleq explore -n {n} --out "
            f"{Path(out).with_suffix('.zarr')}"
        )


def _write_npz(path: str, settings_NxP: np.ndarray, layout) -> None:
    from neuraleq_jax.fileio import atomic_save_npz

    atomic_save_npz(
        path,
        settings=settings_NxP.astype(np.float32),
        parameter_names=np.array(layout.param_names),
    )
    print(f"wrote {len(settings_NxP)} setting(s) to {path}")


def add_generate(commands: Commands) -> None:
    command = commands.add(
        "generate",
        "Generate EQ settings for a word or compound description.",
        [
            "neuraleq generate warm -n 5",
            "neuraleq generate '0.7 warm + 0.3 bright'",
            "neuraleq generate punchy --format apo --out punchy.txt",
            "neuraleq generate warm --centre",
            "neuraleq words        # the words it knows, each with its confidence",
        ],
        cmd_generate,
        seed=False,
    )
    command.add_argument("term", help="a word, 'warm and punchy' or '0.7 warm + 0.3 bright'")
    command.add_argument(
        "-n",
        type=positive_int,
        default=None,
        help="variations, drawn from --seed on (default 5; 1 for the apo, rew and easyeffects "
        "formats, which hold one)",
    )
    add_setting_options(command, what="each setting")


def add_morph(commands: Commands) -> None:
    command = commands.add(
        "morph",
        "Settings along a smooth path from one word to another.",
        ["neuraleq morph warm bright --steps 10"],
        cmd_morph,
        seed=False,
    )
    command.add_argument("term_a", help="where the morph starts: a word's (or blend's) centre")
    command.add_argument("term_b", help="where it ends: a word's (or blend's) centre")
    command.add_argument("--steps", type=int, default=10, help="steps, >= 2 (default 10)")
    add_strength_option(command, what="every step")


def add_explore(commands: Commands) -> None:
    from neuraleq_jax.cli import explore as explore_command

    command = commands.add(
        "explore",
        "Sample new settings from the latent space.",
        [
            "neuraleq explore -n 20",
            "neuraleq explore -n 100000 --novel 10",
            "neuraleq explore -n 1000000 --out explored.npz",
            "neuraleq explore -n 100000000 --out explored.zarr --novel 100",
        ],
        cmd_explore,
    )
    command.add_argument("-n", type=positive_int, default=20, help="samples (default 20)")
    command.add_argument(
        "--novel", type=positive_int, default=None, help="return only the K most novel settings"
    )
    explore_command.add_arguments(command)
