"""The ``neuraleq`` command, end to end on a copy of the session's tiny trained model."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from neuraleq_jax import cli, presets
from neuraleq_jax.model import paramspace

LAYOUT = paramspace.DEFAULT_LAYOUT


@pytest.fixture(scope="module")
def workdir(tiny_workdir, tmp_path_factory):
    """A copy of the session's tiny model: `evaluate` writes its metrics into the workdir."""
    path = tmp_path_factory.mktemp("cli") / "run"
    shutil.copytree(tiny_workdir, path)
    return str(path)


def in_range(settings):
    settings = np.asarray(settings)
    return np.all(settings >= LAYOUT.lower - 1e-3) and np.all(settings <= LAYOUT.upper + 1e-3)


def test_generate_json_to_stdout(workdir, capsys):
    assert cli.main(["generate", "warm", "-n", "3", "--format", "json", "--workdir", workdir]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["presets"]) == 3
    settings, _ = presets.parse_json(json.dumps(document))
    assert settings.shape == (3, 15) and in_range(settings)


@pytest.mark.parametrize("fmt,suffix", [("apo", ".txt"), ("json", ".json"), ("csv", ".csv")])
def test_generate_writes_parseable_preset(workdir, tmp_path, fmt, suffix):
    out = tmp_path / f"preset{suffix}"
    assert (
        cli.main(
            [
                "generate",
                "0.7 warm + 0.3 bright",
                "-n",
                "1",
                "--format",
                fmt,
                "--out",
                str(out),
                "--workdir",
                workdir,
            ]
        )
        == 0
    )
    settings, _ = presets.read_preset(out)
    assert settings.shape == (1, 15) and in_range(settings)


def test_morph_and_explore_files(workdir, tmp_path):
    morph = tmp_path / "morph.csv"
    assert (
        cli.main(
            [
                "morph",
                "warm",
                "bright",
                "--steps",
                "7",
                "--format",
                "csv",
                "--out",
                str(morph),
                "--workdir",
                workdir,
            ]
        )
        == 0
    )
    assert presets.read_preset(morph)[0].shape == (7, 15)
    explored = tmp_path / "explored.npz"
    assert cli.main(["explore", "-n", "300", "--out", str(explored), "--workdir", workdir]) == 0
    with np.load(explored, allow_pickle=False) as arrays:
        assert arrays["settings"].shape == (300, 15) and in_range(arrays["settings"])
        assert tuple(arrays["parameter_names"]) == LAYOUT.param_names


def test_explore_novel_ranks_k_of_n(workdir, capsys):
    assert (
        cli.main(["explore", "-n", "400", "--novel", "4", "--format", "csv", "--workdir", workdir])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 4
    assert cli.main(["explore", "-n", "3", "--novel", "4", "--workdir", workdir]) == 2


def test_apply_writes_same_shape_audio_and_keeps_input(workdir, tmp_path, capsys):
    source = tmp_path / "in.wav"
    noise = 0.1 * np.random.default_rng(0).standard_normal((24_000, 2))
    sf.write(source, noise, 48_000, subtype="PCM_16")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "out.wav"
    assert (
        cli.main(
            [
                "apply",
                "warm",
                str(source),
                str(out),
                "--strength",
                "0.5",
                "--json",
                "--workdir",
                workdir,
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["channels"] == 2
    data, rate = sf.read(out)
    assert rate == 48_000 and data.shape == noise.shape
    assert not np.allclose(data, sf.read(source)[0])
    # a preset file works as the source too, without a model
    preset = presets.write_preset(tmp_path / "p.json", paramspace.flat_setting())
    flat_out = tmp_path / "flat.wav"
    assert cli.main(["apply", str(preset), str(source), str(flat_out), "--workdir", workdir]) == 0
    np.testing.assert_allclose(sf.read(flat_out)[0], sf.read(source)[0], atol=2 / 32768)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_plot_writes_png(workdir, tmp_path):
    out = tmp_path / "words.png"
    assert cli.main(["plot", "warm", "bright", "--out", str(out), "--workdir", workdir]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5_000


def test_evaluate_writes_metrics(workdir):
    assert (
        cli.main(
            ["evaluate", "--workdir", workdir, "--n-variations", "8", "--steps", "9", "--no-plots"]
        )
        == 0
    )
    from pathlib import Path

    metrics = json.loads((Path(workdir) / "metrics.json").read_text())
    assert "model" in metrics and "baseline" in metrics


@pytest.mark.parametrize(
    "argv,message",
    [
        (["generate", "wram"], "unknown word 'wram'.*Did you mean 'warm'"),
        (["morph", "warm", "bright", "--steps", "1"], "steps"),
        (["apply", "warm", "{tmp}/missing.wav", "{tmp}/o.wav"], "not found"),
        (["apply", "warm", "{tmp}/in.wav", "{tmp}/o.xyz"], "unsupported output format"),
        (
            ["apply", "warm", "{tmp}/in.wav", "{tmp}/in.wav"],
            "output path is the input.*--overwrite",
        ),
        (["apply", "{tmp}/missing.json", "{tmp}/in.wav", "{tmp}/o.wav"], "does not exist"),
    ],
)
def test_bad_input_gives_message_and_nonzero_exit(workdir, tmp_path, capsys, argv, message):
    source = tmp_path / "in.wav"
    sf.write(source, np.zeros((4800, 1)), 48_000)
    before = source.read_bytes()
    argv = [a.format(tmp=tmp_path) for a in argv] + ["--workdir", workdir]
    assert cli.main(argv) == 2
    import re

    assert re.search(message, capsys.readouterr().err, flags=re.S)
    assert source.read_bytes() == before


@pytest.mark.parametrize("strength", ["-1", "nan"])
def test_bad_strength_is_refused(workdir, strength, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "warm", "--strength", strength, "--workdir", workdir])
    assert exit_info.value.code == 2
    assert "strength must be a finite number >= 0" in capsys.readouterr().err


def test_missing_model_says_how_to_train(tmp_path, capsys):
    assert cli.main(["generate", "warm", "--workdir", str(tmp_path / "none")]) == 1
    assert "neuraleq train --workdir" in capsys.readouterr().err


def test_every_subcommand_has_help_with_examples(capsys):
    for command in ("train", "generate", "morph", "explore", "apply", "plot", "evaluate", "bench"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args([command, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_every_argument_of_every_command_says_what_it_is():
    import argparse

    def unexplained(name, parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from unexplained(f"{name} {sub_name}".strip(), sub)
            elif not action.help:
                yield f"neuraleq {name} {'/'.join(action.option_strings) or action.dest}"

    assert list(unexplained("", cli.build_parser())) == []


def test_evaluate_help_lists_every_option_of_the_evaluation(capsys):
    from neuraleq_jax.cli import evaluate

    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    shown = capsys.readouterr().out
    options = [a.option_strings[-1] for a in evaluate._parser()._actions if a.option_strings]
    assert len(options) >= 9 and all(option in shown for option in options), shown


def test_version_is_the_packages(capsys):
    import tomllib
    from pathlib import Path

    import neuraleq_jax

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert neuraleq_jax.__version__ == pyproject["project"]["version"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"neuraleq {neuraleq_jax.__version__}\n"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["generat", "warm"], "'serve'); did you mean 'generate'? (see neuraleq --help)"),
        (["generate", "warm", "--format", "jsn"], "; did you mean 'json'? (see neuraleq generate"),
        (["zzz"], "'serve') (see neuraleq --help)"),  # nothing near: no guess
    ],
)
def test_a_misspelt_choice_names_the_nearest(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert ("did you mean" in err) == ("did you mean" in expected)
