"""``generate``, ``morph`` and ``explore`` write every preset format ``convert`` writes, under
one rule for the one-setting formats (APO, REW, EasyEffects): exactly one setting, to a file
or stdout; more is refused in one line that names the command's own fix, before the model
loads. Files are checked with our own reader."""

import numpy as np
import pytest

from neuraleq_jax import cli, presets
from neuraleq_jax.cli import common

ONE_SETTING = ("apo", "rew", "easyeffects")  # the programs that hold one EQ (docs/webapp.md)


@pytest.fixture
def loaded(tiny_system, monkeypatch):
    """The CLI uses the session's loaded model, so its executables compile once."""
    monkeypatch.setattr(cli, "_load_system", lambda workdir: tiny_system)
    return tiny_system


@pytest.fixture
def never_loaded(monkeypatch):
    """A loader that fails the test: a refusal must come before the model loads."""

    def load(workdir):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(cli, "_load_system", load)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


def test_the_command_line_offers_every_preset_format():
    assert set(common.FORMATS) == {"table", *presets.FORMATS}
    assert set(presets.ONE_SETTING_FORMATS) == set(ONE_SETTING)


@pytest.mark.parametrize(
    "fmt,name", [("rew", "w.rew"), ("easyeffects", "w.json"), ("apo", "w.cfg"), ("csv", "w.csv")]
)
def test_generate_writes_each_format_that_reads_back(loaded, tmp_path, fmt, name, capsys):
    out = tmp_path / name
    argv = ["generate", "warm", "--out", str(out), "--seed", "3"]
    assert cli.main(argv + (["--format", fmt] if fmt == "easyeffects" else [])) == 0
    found = presets.read_preset_file(out)
    assert found.format == fmt and found.notes == []
    count = 1 if fmt in ONE_SETTING else 5  # one-setting formats default to -n 1
    expected = loaded.generate_eq_from_semantic("warm", count, seed=3, as_array=True)
    np.testing.assert_allclose(found.settings, expected, atol=0.005 + 1e-3)
    if fmt == "rew":
        assert out.read_text().startswith("Filter Settings file\n")  # REW's own header


@pytest.mark.parametrize("fmt", ONE_SETTING)
@pytest.mark.parametrize("to_file", [True, False])
def test_generate_refuses_several_in_a_one_setting_format(
    never_loaded, tmp_path, capsys, fmt, to_file
):
    out = tmp_path / f"w{presets.FILE_SUFFIXES[fmt]}"
    argv = ["generate", "warm", "-n", "2", "--format", fmt] + (["--out", str(out)] * to_file)
    assert cli.main(argv) == 2
    refusal = one_line(capsys.readouterr().err)
    assert "holds one setting" in refusal and "-n 1" in refusal and "json or csv" in refusal
    assert not out.exists()


@pytest.mark.parametrize("fmt", ONE_SETTING)
def test_generate_prints_one_setting_formats_to_stdout(loaded, capsys, fmt):
    assert cli.main(["generate", "warm", "--format", fmt, "--seed", "1"]) == 0
    found = presets.parse_preset_text(capsys.readouterr().out)
    assert found.format == fmt and len(found.settings) == 1
    expected = loaded.generate_eq_from_semantic("warm", 1, seed=1, as_array=True)
    np.testing.assert_allclose(found.settings, expected, atol=0.005 + 1e-3)


@pytest.mark.parametrize("fmt", ONE_SETTING)
def test_morph_refusal_names_a_fix_morph_has(never_loaded, tmp_path, capsys, fmt):
    out = tmp_path / f"m{presets.FILE_SUFFIXES[fmt]}"
    assert cli.main(["morph", "warm", "bright", "--format", fmt, "--out", str(out)]) == 2
    refusal = one_line(capsys.readouterr().err)
    assert "holds one setting" in refusal and "--format json or csv" in refusal
    assert "-n" not in refusal.replace("--", "")  # morph has no -n
    assert not out.exists()


def test_explore_refusal_names_its_own_fix(never_loaded, capsys):
    assert cli.main(["explore", "-n", "3", "--format", "rew"]) == 2
    refusal = one_line(capsys.readouterr().err)
    assert "-n 1 (or --novel 1)" in refusal and "holds one setting" in refusal


def test_out_without_a_preset_format_names_every_format(never_loaded, tmp_path, capsys):
    assert cli.main(["generate", "warm", "--format", "table", "--out", str(tmp_path / "t")]) == 2
    refusal = one_line(capsys.readouterr().err)
    assert all(fmt in refusal for fmt in presets.FORMATS)
