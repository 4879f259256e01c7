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


# ---------------------------------------------------------------- one meaning per word


def generated(workdir, capsys, *options) -> np.ndarray:
    """The settings ``neuraleq generate warm OPTIONS --format json`` prints."""
    argv = ["generate", "warm", *options, "--format", "json", "--workdir", workdir]
    assert cli.main(argv) == 0
    return presets.parse_json(capsys.readouterr().out)[0]


def applied(workdir, tmp_path, capsys, *options) -> dict:
    """The report of ``neuraleq apply warm in.wav out.wav OPTIONS --json``."""
    source, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(source, 0.01 * np.random.default_rng(1).standard_normal(4800), 48_000)
    argv = ["apply", "warm", str(source), str(out), *options, "--overwrite", "--json"]
    assert cli.main(argv + ["--workdir", workdir]) == 0
    return json.loads(capsys.readouterr().out)


# apply scales a float32 setting in float64, generate in float32: one rounding apart
SAME_SETTING = dict(rtol=2.0**-22, atol=1e-6)


def test_apply_takes_the_setting_generate_gives_for_the_same_seed_or_centre(
    workdir, tmp_path, capsys, tiny_system
):
    for options in (["--seed", "5"], ["--seed", "0"], ["--centre"]):
        count = [] if "--centre" in options else ["-n", "1"]
        expected = generated(workdir, capsys, *options, *count, "--strength", "0.5")
        assert expected.shape == (1, 15)
        report = applied(workdir, tmp_path, capsys, *options, "--strength", "0.5")
        np.testing.assert_allclose(report["setting"], expected[0], **SAME_SETTING)
    # the default is the variation of seed 0, and a seed changes it
    default = applied(workdir, tmp_path, capsys)["setting"]
    np.testing.assert_allclose(default, generated(workdir, capsys, "-n", "1")[0], **SAME_SETTING)
    assert not np.allclose(default, applied(workdir, tmp_path, capsys, "--seed", "5")["setting"])
    # the centre is the word's own: the first step of a morph from it to itself
    centre = tiny_system.morph_between_terms("warm", "warm", steps=2, as_array=True)[0]
    np.testing.assert_array_equal(generated(workdir, capsys, "--centre")[0], centre)


def test_the_centre_is_one_setting_and_excludes_a_seed(workdir, capsys):
    assert cli.main(["generate", "warm", "--centre", "-n", "3", "--workdir", workdir]) == 2
    assert "--centre gives a word's one centre setting" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["apply", "warm", "a.wav", "b.wav", "--centre", "--seed", "3"])
    assert exit_info.value.code == 2
    assert "--seed: not allowed with argument --centre" in capsys.readouterr().err


def test_plot_draws_the_variation_or_centre_generate_gives(workdir, tmp_path, capsys, monkeypatch):
    from neuraleq_jax import plots

    drawn = []
    monkeypatch.setattr(plots, "plot_responses", lambda settings, *a, **k: drawn.append(settings))
    for options in (["--seed", "7", "--strength", "1.5"], ["--centre"]):
        argv = ["plot", "warm", "--out", str(tmp_path / "w.png"), *options]
        assert cli.main(argv + ["--workdir", workdir]) == 0
        capsys.readouterr()
        count = [] if "--centre" in options else ["-n", "1"]
        expected = generated(workdir, capsys, *options, *count)
        np.testing.assert_allclose(drawn.pop(), expected, **SAME_SETTING)


def test_only_the_commands_a_seed_changes_take_one():
    import argparse

    commands = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    seeded = {
        name
        for name, parser in commands.items()
        if any("--seed" in action.option_strings for action in parser._actions)
    }
    assert seeded == {"generate", "apply", "plot", "explore", "evaluate"}


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "warm"],
        ["morph", "warm", "bright"],
        ["apply", "warm", "a.wav", "b.wav"],
        ["plot", "warm", "--out", "w.png"],
    ],
)
def test_strength_is_at_most_4_in_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--strength", "4.5"])
    assert exit_info.value.code == 2
    assert "strength must be a finite number >= 0 and <= 4" in capsys.readouterr().err


def clipped_bands(unscaled_1xP, strength: float) -> list[int]:
    """The bands whose gain times ``strength`` lies past ±12 dB (numbered from 1)."""
    gains = np.asarray(unscaled_1xP)[0, list(LAYOUT.gain_indices)]
    return [band + 1 for band in np.flatnonzero(np.abs(gains) * strength > 12.0)]


def test_generate_apply_and_morph_note_the_same_clipping(workdir, tmp_path, capsys):
    # the tiny model's centres are bolder than its variations: its warm centre boosts ~3.6 dB
    centre = generated(workdir, capsys, "--centre")
    gains = list(LAYOUT.gain_indices)
    strength = 12.5 / np.max(np.abs(centre[0, gains]))
    assert strength <= 4, "the tiny model's warm centre is too gentle for this test"
    bands = clipped_bands(centre, strength)
    assert 0 < len(bands) < LAYOUT.n_bands
    argv = ["generate", "warm", "--centre", "--strength", f"{strength}", "--format", "json"]
    assert cli.main(argv + ["--workdir", workdir]) == 0
    shown = capsys.readouterr()
    scaled = presets.parse_json(shown.out)[0]
    np.testing.assert_allclose(
        scaled[0, gains], np.clip(centre[0, gains] * strength, -12, 12), rtol=1e-6
    )
    notes = [line for line in shown.err.splitlines() if line.startswith("note: ")]
    numbers = ", ".join(map(str, bands))
    assert len(notes) == 1 and f"{numbers} past ±12 dB" in notes[0], shown.err
    report = applied(workdir, tmp_path, capsys, "--centre", "--strength", f"{strength}")
    assert report["notes"] == [notes[0].removeprefix("note: ")]
    # without a clipped gain, no note
    assert cli.main(argv[:4] + ["1.01", "--format", "json", "--workdir", workdir]) == 0
    assert "note:" not in capsys.readouterr().err
    # a morph's steps are scaled and noted as apply notes the centre at that strength
    argv = ["morph", "warm", "warm", "--steps", "2", "--strength", f"{strength}"]
    assert cli.main(argv + ["--format", "json", "--workdir", workdir]) == 0
    shown = capsys.readouterr()
    assert shown.err.splitlines() == notes
    np.testing.assert_allclose(
        presets.parse_json(shown.out)[0][:, gains],
        np.clip(np.repeat(centre, 2, axis=0)[:, gains] * strength, -12, 12),
        rtol=1e-6,
    )


def test_generate_help_points_to_the_words_command(capsys):
    """A newcomer asking ``generate --help`` which words exist is told of ``neuraleq words``."""
    with pytest.raises(SystemExit) as raised:
        cli.main(["generate", "--help"])
    assert raised.value.code == 0
    examples = capsys.readouterr().out.split("examples:", 1)[1]
    assert any(line.strip().startswith("neuraleq words") for line in examples.splitlines())


def test_the_training_summary_leads_with_the_verdict_against_the_goals():
    """The first line says whether training worked, each figure beside its goal (0.85
    silhouette, 0.5 dB response error); the jargon (unit MSE, mean predictor) comes later."""
    from neuraleq_jax.cli.train import _format_summary

    held = {"silhouette": 0.8712, "response_db": 0.4611, "recon_gain": 0.0027}
    held |= {"mean_baseline_gain": 0.0405, "recon_freq": 0.3, "mean_baseline_freq": 0.31}
    held |= {"recon_q": 0.2, "mean_baseline_q": 0.21}
    summary = {"name": "synthetic", "epochs_done": 3, "step": 21, "wall_s": 9.0}
    summary |= {"compile_s": 5.0, "train_s": 1.0, "epochs_run": 3, "held_out": held}
    lines = _format_summary(summary).splitlines()
    assert lines[0] == (
        "held-out: silhouette 0.87 (goal ≥ 0.85, met), response error 0.46 dB (goal ≤ 0.5 dB, met)"
    )
    assert "unit MSE gain 0.0027 (mean predictor 0.0405)" in "\n".join(lines[1:])
    held |= {"silhouette": 0.6, "response_db": 0.73}
    assert _format_summary(summary).splitlines()[0] == (
        "held-out: silhouette 0.60 (goal ≥ 0.85, MISSED), response error 0.73 dB "
        "(goal ≤ 0.5 dB, MISSED)"
    )
