"""Presets that round-trip with other programs: Equalizer APO / AutoEQ, REW, EasyEffects, ours.

Hand-written samples follow each format's documentation (APO's configuration reference, REW's
"filter settings" export, EasyEffects' preset JSON). Responses are checked against an
independent float64 implementation of the RBJ cookbook evaluated with scipy.
"""

import itertools
import json
import math

import numpy as np
import pytest
from rbj_reference import WARM, reference_db, setting_db

from neuraleq_jax import cli, presets
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT
from neuraleq_jax.presets import formats

PRINTED = np.tile([0.005, 0.005, 0.00005], 5)  # APO/REW text: 0.01 dB, 0.01 Hz, 1e-4 in Q
# largest rounding error of each format, per parameter (gain, freq, Q)
ROUNDING = {
    "json": 0.0,
    "csv": 0.0,
    "apo": PRINTED,
    "rew": PRINTED,
    "easyeffects": np.tile([5e-5, 5e-5, 5e-7], 5),
}


def random_setting(seed):
    unit = np.random.default_rng(seed).uniform(-1, 1, DEFAULT_LAYOUT.n_params)
    return np.array(paramspace.denormalize(unit), np.float32)


# ---------------------------------------------------------------- round trips, every format


@pytest.mark.parametrize("fmt", presets.FORMATS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_format_round_trips(tmp_path, fmt, seed):
    setting = random_setting(seed)
    path = presets.write_preset(
        tmp_path / f"p{presets.FILE_SUFFIXES[fmt]}", setting, format=fmt, names="warm 1"
    )
    found = presets.read_preset_file(path)  # the format is detected from the content
    assert found.format == fmt and found.notes == []
    back = found.settings[0]
    if fmt in ("json", "csv"):
        np.testing.assert_array_equal(back, setting)
    else:  # float32 storage adds an ulp of each value on top of the printed rounding
        assert np.all(np.abs(back - setting) <= ROUNDING[fmt] + 2 * np.spacing(np.abs(setting)))
    if fmt != "easyeffects":
        assert found.names == ["warm 1"]


@pytest.mark.parametrize("fmt", presets.ONE_SETTING_FORMATS)
def test_written_preamp_is_minus_the_largest_boost(fmt):
    text = presets.preset_text(WARM, fmt, names="warm")
    found = presets.parse_preset_text(text)
    peak = setting_db(WARM, np.geomspace(20, 20_000, 4096)).max()
    assert peak > 1.0  # the setting boosts, so a preamp is needed
    assert -peak - 0.02 <= found.preamp_db <= -peak  # rounded up: never leaves a boost
    document = presets.preset_dict(WARM)
    assert document["presets"][0]["preamp_db"] == pytest.approx(found.preamp_db)


def test_flat_setting_gets_no_preamp():
    assert presets.preamp_db(paramspace.flat_setting()) == 0.0


# ---------------------------------------------------------------- hand-written samples

AUTOEQ_TEN_FILTERS = """Preamp: -6.4 dB
Filter 1: ON LSC Fc 105 Hz Gain 5.5 dB Q 0.70
Filter 2: ON PK Fc 180 Hz Gain -2.3 dB Q 0.9
Filter 3: ON PK Fc 650 Hz Gain 1.2 dB Q 1.4
Filter 4: ON PK Fc 1500 Hz Gain -1.8 dB Q 2.0
Filter 5: ON PK Fc 2900 Hz Gain 2.4 dB Q 1.1
Filter 6: ON PK Fc 4300 Hz Gain -3.0 dB Q 3.0
Filter 7: ON PK Fc 6100 Hz Gain 1.6 dB Q 4.0
Filter 8: ON PK Fc 7800 Hz Gain -2.2 dB Q 2.5
Filter 9: ON PK Fc 9800 Hz Gain 1.0 dB Q 1.5
Filter 10: ON HSC Fc 10000 Hz Gain -4.0 dB Q 0.70
"""

APO_CONFIG = """# my headphones
Device: Speakers Realtek High Definition Audio; Headphones
Channel: all
Preamp: -3 dB
Preamp: -1.5 dB
Filter 1: ON LSC Fc 100 Hz Gain 4 dB Q 0.8
Filter 2: ON PK Fc 300 Hz Gain -2 dB BW Oct 1
Filter: ON PEQ Fc 1.2 kHz Gain 1.5 dB Q 2
Filter 4: ON Modal Fc 4000 Hz Gain -1 dB Q 3
Filter 5: ON HSC 6dB Fc 12000 Hz Gain -3 dB
Filter 6: OFF PK Fc 50 Hz Gain 9 dB Q 1
"""


def test_apo_config_sample_from_the_documentation():
    found = presets.parse_preset_text(APO_CONFIG)
    assert found.format == "apo" and found.names == ["my headphones"]
    assert found.preamp_db == pytest.approx(-4.5)  # several Preamp lines add up
    assert any("Device:" in n for n in found.notes)  # ignored, with a note
    assert any("OFF" in n for n in found.notes)
    bw_q = math.sqrt(2) / (2 - 1)  # 1 octave: Q = sqrt(2^N) / (2^N - 1)
    # HSC 6dB: slope S = 1/2 → 1/Q = sqrt((A + 1/A)(1/S - 1) + 2)
    amp = 10 ** (-3 / 40)
    shelf_q = 1 / math.sqrt((amp + 1 / amp) * (2 - 1) + 2)
    expected = [4, 100, 0.8, -2, 300, bw_q, 1.5, 1200, 2, -1, 4000, 3, -3, 12000, shelf_q]
    np.testing.assert_allclose(found.settings[0], expected, rtol=2e-7)


def test_apo_channel_blocks_keep_the_first_channel():
    text = (
        "Channel: L\nFilter 1: ON LSC Fc 100 Hz Gain 4 dB Q 0.7\n"
        "Filter 2: ON PK Fc 300 Hz Gain -2 dB Q 1\nFilter 3: ON PK Fc 1000 Hz Gain 1 dB Q 1\n"
        "Filter 4: ON PK Fc 5000 Hz Gain 1 dB Q 1\n"
        "Filter 5: ON HSC Fc 10000 Hz Gain 2 dB Q 0.7\n"
        "Channel: R\nFilter 6: ON PK Fc 300 Hz Gain -9 dB Q 1\n"
    )
    found = presets.parse_preset_text(text)
    assert found.settings[0][3] == -2.0
    assert any("second Channel" in n for n in found.notes)


def test_old_ls_hs_and_slope_variants():
    """``LS``/``HS`` without Q are 12 dB/octave (S = 1, Q = 1/sqrt 2, whatever the gain); the
    slope of ``LSC x dB`` is proportional to x (the cookbook's definition of S)."""
    plain = formats.parse_filter_text(
        "Filter 1: ON LS Fc 100 Hz Gain 8 dB\n"
        "Filter 2: ON HS Fc 9000 Hz Gain -5 dB\n"
        "Filter 3: ON LSC 12dB Fc 100 Hz Gain 3 dB\n"
    )
    assert [f.q for f in plain.filters] == pytest.approx([1 / math.sqrt(2)] * 3)

    def slope_db_per_octave(text, freq):
        (f,) = formats.parse_filter_text(text).filters
        near = np.array([freq / 1.01, freq * 1.01])
        low, high = reference_db([(f.kind, f.gain_db, f.freq_hz, f.q)], near)
        return (high - low) / math.log2(1.01**2)

    # well below Nyquist the digital shelf follows the analog one, where S scales the slope
    steep = slope_db_per_octave("Filter: ON LSC 12 dB Fc 200 Hz Gain 12 dB\n", 200)
    gentle = slope_db_per_octave("Filter: ON LSC 6dB Fc 200 Hz Gain 12 dB\n", 200)
    assert gentle / steep == pytest.approx(0.5, rel=1e-3)


@pytest.mark.parametrize("kind,token", [("low_shelf", "LS"), ("high_shelf", "HS")])
@pytest.mark.parametrize("gain", [6.0, 10.0, -8.0])
def test_corner_frequency_shelves_are_3_db_short_of_the_plateau_at_fc(kind, token, gain):
    text = f"Filter 1: ON {token} 12dB Fc 1500 Hz Gain {gain} dB\n"
    (f,) = formats.parse_filter_text(text).filters
    at_corner = reference_db([(f.kind, f.gain_db, f.freq_hz, f.q)], np.array([1500.0]))[0]
    assert at_corner == pytest.approx(gain - math.copysign(3.0, gain), abs=1e-6)


REW_EXPORT = """Filter Settings file

Room EQ V5.20.13
Dated: 12-Mar-2024 21:04:11

Notes:desk speakers

Equaliser: Generic
desk avg
Filter  1: ON  LS Q     Fc   95.00 Hz  Gain   3.50 dB  Q  0.900
Filter  2: ON  PK       Fc   321.0 Hz  Gain  -1.90 dB  Q  1.554
Filter  3: ON  PK       Fc    1079 Hz  Gain   2.70 dB  Q  2.707
Filter  4: ON  None
Filter  5: ON  PK       Fc    4384 Hz  Gain  -3.00 dB  Q  1.000
Filter  6: ON  HSQ      Fc   11000 Hz  Gain  -2.00 dB  Q  0.700
Filter  7: ON  None
"""


def test_rew_filter_settings_sample():
    found = presets.parse_preset_text(REW_EXPORT)
    assert found.format == "rew" and found.names == ["desk speakers"]
    expected = [3.5, 95, 0.9, -1.9, 321, 1.554, 2.7, 1079, 2.707, -3, 4384, 1, -2, 11000, 0.7]
    np.testing.assert_allclose(found.settings[0], expected, rtol=2e-7)


EASYEFFECTS_PRESET = {
    "output": {
        "blocklist": [],
        "equalizer#0": {
            "balance": 0.0,
            "bypass": False,
            "input-gain": -5.0,
            "mode": "IIR",
            "num-bands": 7,
            "output-gain": 0.0,
            "pitch-left": 0.0,
            "pitch-right": 0.0,
            "split-channels": False,
            "left": {
                "band0": {
                    "frequency": 80.0,
                    "gain": 5.0,
                    "mode": "APO (DR)",
                    "mute": False,
                    "q": 0.7,
                    "slope": "x1",
                    "solo": False,
                    "type": "Lo-shelf",
                    "width": 4.0,
                },
                "band1": {
                    "frequency": 250.0,
                    "gain": 0.0,
                    "mode": "APO (DR)",
                    "mute": False,
                    "q": 1.0,
                    "slope": "x1",
                    "solo": False,
                    "type": "Off",
                    "width": 4.0,
                },
                "band2": {
                    "frequency": 500.0,
                    "gain": -2.0,
                    "mode": "RLC (BT)",
                    "mute": False,
                    "q": 1.5,
                    "slope": "x1",
                    "solo": False,
                    "type": "Bell",
                    "width": 4.0,
                },
                "band3": {
                    "frequency": 2000.0,
                    "gain": 1.0,
                    "mode": "APO (DR)",
                    "mute": False,
                    "q": 2.0,
                    "slope": "x1",
                    "solo": False,
                    "type": "Bell",
                    "width": 4.0,
                },
                "band4": {
                    "frequency": 6000.0,
                    "gain": 2.0,
                    "mode": "APO (DR)",
                    "mute": False,
                    "q": 3.0,
                    "slope": "x1",
                    "solo": False,
                    "type": "Bell",
                    "width": 4.0,
                },
                "band5": {
                    "frequency": 9000.0,
                    "gain": 7.0,
                    "mode": "APO (DR)",
                    "mute": True,
                    "q": 3.0,
                    "slope": "x1",
                    "solo": False,
                    "type": "Bell",
                    "width": 4.0,
                },
                "band6": {
                    "frequency": 14000.0,
                    "gain": -3.0,
                    "mode": "APO (DR)",
                    "mute": False,
                    "q": 0.7,
                    "slope": "x1",
                    "solo": False,
                    "type": "Hi-shelf",
                    "width": 4.0,
                },
            },
        },
        "plugins_order": ["equalizer#0"],
    }
}


def test_easyeffects_preset_sample():
    document = json.loads(json.dumps(EASYEFFECTS_PRESET))
    document["output"]["equalizer#0"]["right"] = document["output"]["equalizer#0"]["left"]
    found = presets.parse_preset_text(json.dumps(document))
    assert found.format == "easyeffects" and found.preamp_db == -5.0
    expected = [5, 80, 0.7, -2, 500, 1.5, 1, 2000, 2, 2, 6000, 3, -3, 14000, 0.7]
    np.testing.assert_allclose(found.settings[0], expected, rtol=2e-7)  # Off and muted: out
    assert any("RLC (BT)" in n for n in found.notes)


def test_easyeffects_written_document_follows_the_current_layout():
    document = json.loads(presets.easyeffects_text(WARM))
    equalizer = document["output"]["equalizer#0"]
    assert document["output"]["plugins_order"] == ["equalizer#0"]
    assert equalizer["num-bands"] == 5 and equalizer["left"] == equalizer["right"]
    assert [equalizer["left"][f"band{i}"]["type"] for i in range(5)] == [
        "Lo-shelf",
        "Bell",
        "Bell",
        "Bell",
        "Hi-shelf",
    ]
    assert {b["mode"] for b in equalizer["left"].values()} == {"APO (DR)"}


def test_autoeq_ten_filters_need_a_fit_and_the_fit_follows_the_response():
    with pytest.raises(ValueError, match=r"found 10 filters.*LSC, PK, PK, PK, HSC.*fit"):
        presets.parse_preset_text(AUTOEQ_TEN_FILTERS)
    found = presets.parse_preset_text(AUTOEQ_TEN_FILTERS, fit=True)
    filters = formats.parse_filter_text(AUTOEQ_TEN_FILTERS).filters
    target = reference_db(
        [(f.kind, f.gain_db, f.freq_hz, f.q) for f in filters], np.geomspace(20, 20_000, 256)
    )
    fitted = setting_db(found.settings[0], np.geomspace(20, 20_000, 256))
    rms = np.sqrt(np.mean((fitted - target) ** 2))
    assert found.fit_rms_db == pytest.approx(rms, abs=0.01)  # the reported error is the real one
    assert rms < 0.5 * np.sqrt(np.mean(target**2))  # far better than flat
    assert any("fitted" in n for n in found.notes)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text,message",
    [
        ("Filter 1: ON HP Fc 100 Hz\n", "HP"),
        ("Filter 1: ON PK Fc 100 Hz Gain 2 dB\n", "Q"),
        ("Filter 1: ON PK Gain 2 dB Q 1\n", "Fc"),
        ("hello there\n", "line 1"),
        ("Filter 1: ON PK Fc 30000 Hz Gain 2 dB Q 1\n", "30000"),
        ('{"output": {"plugins_order": []}}', "no equalizer"),
        ('{"something": 1}', "unknown kind"),
        ("Filter 1: ON PK Fc 300 Hz Gain 2 dB Q 1\n" * 65, "at most 64"),
    ],
)
def test_bad_presets_name_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        presets.parse_preset_text(text, fit=True)


def test_out_of_range_band_is_refused_without_fit():
    text = presets.apo_text(WARM).replace("Fc 120.00 Hz", "Fc 500.00 Hz")
    with pytest.raises(ValueError, match="band1_freq"):
        presets.parse_preset_text(text)


def test_one_setting_formats_refuse_several():
    with pytest.raises(ValueError, match="one setting"):
        presets.preset_text(np.stack([WARM, WARM]), "easyeffects")


# ---------------------------------------------------------------- neuraleq convert


@pytest.mark.parametrize("source,target", list(itertools.product(presets.FORMATS, repeat=2)))
def test_convert_between_every_pair(tmp_path, source, target, capsys):
    setting = random_setting(7)
    src = presets.write_preset(
        tmp_path / f"in{presets.FILE_SUFFIXES[source]}", setting, format=source, names="bright 2"
    )
    out = tmp_path / f"out{presets.FILE_SUFFIXES[target]}"
    assert cli.main(["convert", str(src), str(out), "--to", target]) == 0
    found = presets.read_preset_file(out)
    assert found.format == target
    exact = {source, target} <= {"json", "csv"}
    slack = ROUNDING[source] + ROUNDING[target] + (0 if exact else 3 * np.spacing(np.abs(setting)))
    assert np.all(np.abs(found.settings[0] - setting) <= slack)
    assert cli.main(["convert", str(src), str(out), "--to", target]) == 2  # no overwrite
    assert "exists" in capsys.readouterr().err


def test_convert_needs_fit_for_foreign_layouts_and_an_index_for_several(tmp_path, capsys):
    src = tmp_path / "ParametricEQ.txt"
    src.write_text(AUTOEQ_TEN_FILTERS)
    assert cli.main(["convert", str(src), str(tmp_path / "a.json")]) == 2
    assert "fit" in capsys.readouterr().err
    many = presets.write_preset(tmp_path / "many.json", np.stack([WARM, random_setting(3)]))
    assert cli.main(["convert", str(many), str(tmp_path / "b.txt")]) == 2
    message = "holds 2 settings and the apo format holds one: choose one with --index N (1 to 2)"
    assert message in capsys.readouterr().err
    assert cli.main(["convert", str(many), str(tmp_path / "b.txt"), "--index", "2"]) == 0
    back = presets.read_preset(tmp_path / "b.txt")[0][0]
    setting = random_setting(3)
    assert np.all(np.abs(back - setting) <= PRINTED + 2 * np.spacing(np.abs(setting)))
