"""Tests for neuraleq_jax.plots: each plot writes a real PNG; bad shapes give clear errors."""

import builtins
import re
import struct

import numpy as np
import pytest

from neuraleq_jax import plots
from neuraleq_jax.data.synthetic import VOCABULARY, make_synthetic

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    return make_synthetic(per_word=12, seed=3)


def assert_png(path, returned, min_width=400):
    assert returned == path and path.is_file()
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC and len(blob) > 10_000
    width, height = struct.unpack(">II", blob[16:24])  # IHDR chunk
    assert width >= min_width and height >= 300
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_plot_responses_writes_a_png(tmp_path, data):
    settings = data.settings[[0, 12, 24]]
    out = tmp_path / "words.png"
    assert_png(out, plots.plot_responses(settings, ["a", "b", "c"], out, title="three words"))
    one = tmp_path / "one.png"
    plots.plot_responses(data.settings[0], ["one"], one, sample_rate=16_000)
    assert one.read_bytes()[:8] == PNG_MAGIC


def test_plots_differ_when_the_settings_differ(tmp_path, data):
    first = plots.plot_responses(data.settings[:1], ["x"], tmp_path / "a.png")
    second = plots.plot_responses(data.settings[13:14], ["x"], tmp_path / "b.png")
    again = plots.plot_responses(data.settings[:1], ["x"], tmp_path / "c.png")
    assert first.read_bytes() != second.read_bytes()
    assert first.read_bytes() == again.read_bytes()  # deterministic rendering


def test_plot_morph_and_envelope_and_latent_write_pngs(tmp_path, data):
    start, end = data.settings[0], data.settings[12]
    steps = np.linspace(start, end, 9)  # frequencies move linearly: still in range
    morph = tmp_path / "morph" / "m.png"
    morph.parent.mkdir()
    assert_png(morph, plots.plot_morph(steps, morph, start_label="warm", end_label="bright"))
    envelope = tmp_path / "env" / "e.png"
    envelope.parent.mkdir()
    warm = data.settings[data.word_ids == 0]
    assert_png(envelope, plots.plot_envelope(warm[:4], warm, envelope, "warm"))
    latent = tmp_path / "lat" / "l.png"
    latent.parent.mkdir()
    points = np.random.default_rng(0).normal(size=(len(data), 2)) + data.word_ids[:, None]
    assert_png(latent, plots.plot_latent_2d(points, data.word_ids, VOCABULARY, latent))
    words = tmp_path / "words.png"
    plots.plot_latent_2d(points, data.words, VOCABULARY, words)
    assert words.read_bytes()[:8] == PNG_MAGIC


def test_mismatched_shapes_and_bad_arguments_are_refused(tmp_path, data):
    out = tmp_path / "x.png"
    settings = data.settings[:3]
    with pytest.raises(ValueError, match=r"labels must be a sequence of 3.*got 2 entries"):
        plots.plot_responses(settings, ["a", "b"], out)
    with pytest.raises(ValueError, match=r"\[N, 15\]"):
        plots.plot_responses(settings[:, :14], ["a", "b", "c"], out)
    with pytest.raises(ValueError, match="band1_gain"):
        plots.plot_responses(np.r_[30.0, settings[0, 1:]], ["a"], out)
    with pytest.raises(ValueError, match=".png"):
        plots.plot_responses(settings, ["a", "b", "c"], tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError, match="output folder"):
        plots.plot_responses(settings, ["a", "b", "c"], tmp_path / "no" / "x.png")
    with pytest.raises(ValueError, match="at least 2"):
        plots.plot_morph(settings[:1], out)
    with pytest.raises(ValueError, match="colormap"):
        plots.plot_morph(settings, out, colormap="no-such-map")
    with pytest.raises(ValueError, match=r"data needs at least 2"):
        plots.plot_envelope(settings, settings[:1], out, "warm")
    with pytest.raises(ValueError, match=r"generated must be \[N, 15\]"):
        plots.plot_envelope(settings[:, :3], settings, out, "warm")
    with pytest.raises(ValueError, match="percentiles"):
        plots.plot_envelope(settings, settings, out, "warm", percentiles=(90, 10))
    points = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        plots.plot_latent_2d(np.zeros((3, 3)), [0, 1, 2], VOCABULARY, out)
    with pytest.raises(ValueError, match="labels has 2 entries but points has 3"):
        plots.plot_latent_2d(points, [0, 1], VOCABULARY, out)
    with pytest.raises(ValueError, match=r"ids in \[0, 8\)"):
        plots.plot_latent_2d(points, [0, 1, 8], VOCABULARY, out)
    with pytest.raises(ValueError, match="unknown words.*'cosy'"):
        plots.plot_latent_2d(points, ["warm", "cosy", "warm"], VOCABULARY, out)
    with pytest.raises(ValueError, match="NaN"):
        plots.plot_latent_2d(np.full((3, 2), np.nan), [0, 1, 2], VOCABULARY, out)
    assert not out.exists()


def test_missing_matplotlib_gives_an_install_hint(tmp_path, monkeypatch, data):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"install it with: pip install matplotlib"):
        plots.plot_responses(data.settings[:1], ["a"], tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_plots_come_with_the_plain_install():
    """README's first command installs the package without extras and then plots: matplotlib
    must be a core dependency, not an extra."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    names = [
        re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower()
        for spec in project["project"]["dependencies"]
    ]
    assert "matplotlib" in names


def test_plot_envelope_comparison_draws_both_sets(tmp_path, data):
    warm, bright = data.settings[data.word_ids == 0], data.settings[data.word_ids == 1]
    same = plots.plot_envelope_comparison(
        warm, warm, tmp_path / "same.png", "warm", note="distribution match 1.00"
    )
    assert_png(tmp_path / "same.png", same)
    (tmp_path / "b").mkdir()
    other = plots.plot_envelope_comparison(
        bright, warm, tmp_path / "b" / "other.png", "warm", note="distribution match 1.00"
    )
    assert same.read_bytes() != other.read_bytes()  # the generated band moved
    with pytest.raises(ValueError, match=r"generated needs at least 2"):
        plots.plot_envelope_comparison(warm[:1], warm, tmp_path / "x.png", "warm")
    with pytest.raises(ValueError, match="percentiles"):
        plots.plot_envelope_comparison(warm, warm, tmp_path / "x.png", "warm", percentiles=(50, 50))
