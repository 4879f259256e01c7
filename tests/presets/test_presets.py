"""Preset export: JSON / Equalizer APO / CSV, round trips, atomic writes, bad input."""

import json
import os

import numpy as np
import pytest
import scipy.signal

from neuraleq_jax import presets
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT


def random_settings(n, seed=0):
    """Valid physical settings ``[n, 15]``: uniform gains, log-uniform frequency and Q."""
    rng = np.random.default_rng(seed)
    unit = rng.uniform(-1, 1, size=(n, DEFAULT_LAYOUT.n_params))
    return np.array(paramspace.denormalize(unit), np.float32)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_json_and_csv_round_trip_exactly(tmp_path, suffix):
    settings = random_settings(4)
    path = presets.write_preset(tmp_path / f"p{suffix}", settings, names=list("abcd"))
    back, names = presets.read_preset(path)
    np.testing.assert_array_equal(back, settings)
    assert names == list("abcd")


def test_apo_round_trip_to_printed_precision(tmp_path):
    setting = random_settings(1, seed=3)[0]
    path = presets.write_preset(tmp_path / "eq.txt", setting, names="warm 1")
    back, names = presets.read_preset(path)
    assert names == ["warm 1"]
    per_band = back[0].reshape(5, 3) - setting.reshape(5, 3)
    assert np.all(np.abs(per_band[:, 0]) <= 0.005 + 1e-6)  # gain, 0.01 dB
    assert np.all(np.abs(per_band[:, 1]) <= 0.005 + 1e-3)  # Fc, 0.01 Hz
    assert np.all(np.abs(per_band[:, 2]) <= 0.00005 + 1e-6)  # Q, 1e-4


def test_apo_lines_follow_the_equalizer_apo_syntax():
    setting = np.array(
        [3.5, 120, 0.71, -2, 400, 1.0, 0, 1000, 2.0, 1.5, 5000, 0.5, -4, 12000, 0.7], np.float32
    )
    text = presets.apo_text(setting, name="demo", preamp=True)
    lines = text.splitlines()
    assert lines[0] == "# demo"
    assert lines[2] == "Filter 1: ON LSC Fc 120.00 Hz Gain 3.50 dB Q 0.7100"
    assert lines[3].startswith("Filter 2: ON PK Fc 400.00 Hz Gain -2.00 dB")
    assert lines[6].startswith("Filter 5: ON HSC Fc 12000.00 Hz Gain -4.00 dB")
    # the preamp cancels the largest boost of the response (checked on scipy's own response)
    sos = response.second_order_sections(setting)
    _, h = scipy.signal.sosfreqz(sos, worN=np.geomspace(20, 20000, 2048), fs=48000)
    peak = 20 * np.log10(np.abs(h)).max()
    preamp = float(lines[1].split()[1])
    assert lines[1].startswith("Preamp: ") and preamp == pytest.approx(-peak, abs=0.02)


def test_json_document_names_bands_types_and_units(tmp_path):
    settings = random_settings(2, seed=1)
    document = json.loads(presets.write_preset(tmp_path / "p.json", settings).read_text())
    assert document["format"] == "neuraleq-preset"
    bands = document["presets"][1]["bands"]
    assert [b["type"] for b in bands] == list(DEFAULT_LAYOUT.kinds)
    assert bands[2]["frequency_hz"] == pytest.approx(float(settings[1, 7]))
    assert bands[2]["gain_db"] == pytest.approx(float(settings[1, 6]))
    assert bands[2]["q"] == pytest.approx(float(settings[1, 8]))


def test_named_dicts_from_the_facade_are_accepted(tmp_path):
    settings = random_settings(3, seed=2)
    rows = paramspace.to_dicts(settings)
    rows[0]["novelty_db"] = 1.5  # extra keys (as explore adds) are ignored
    back, _ = presets.read_preset(presets.write_preset(tmp_path / "p.csv", rows))
    np.testing.assert_allclose(back, settings, rtol=1e-6)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    presets.write_preset(path, random_settings(1))
    before = path.read_text()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    from neuraleq_jax import fileio

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        presets.write_preset(path, random_settings(1, seed=9))
    assert path.read_text() == before  # the old preset survives a failed write
    assert sorted(os.listdir(tmp_path)) == ["p.json"]


def test_bad_input_is_rejected_with_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="one setting"):
        presets.apo_text(random_settings(2))
    with pytest.raises(ValueError, match="format"):
        presets.write_preset(tmp_path / "p.xyz", random_settings(1))
    out_of_range = random_settings(1)
    out_of_range[0, 1] = 5000.0  # band 1 frequency
    with pytest.raises(ValueError, match="band1_freq"):
        presets.write_preset(tmp_path / "p.json", out_of_range)
    with pytest.raises(ValueError, match="names"):
        presets.write_preset(tmp_path / "p.json", random_settings(2), names=["only one"])
    (tmp_path / "bad.txt").write_text("Filter 1: ON PK Fc 100 Hz Gain 1 dB Q 1\n")
    with pytest.raises(ValueError, match="LSC"):
        presets.read_preset(tmp_path / "bad.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        presets.read_preset(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        presets.read_preset(tmp_path / "missing.csv")
