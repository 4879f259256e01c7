"""Names cannot inject: every writer embeds a preset's name inert (one line, no control
characters), through the library and ``neuraleq convert``.

The expectation is independent of the writers: the text is split on every line boundary a
program might honour (``\\n``, ``\\r``, form feed, NEL, U+2028, …), and Equalizer APO obeys any
such line that starts with ``Preamp:`` or ``Filter``; a written APO/REW preset must hold exactly
its one preamp line and one filter line per band, and read back with our own reader.
"""

import json
import re
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rbj_reference import WARM

from neuraleq_jax import cli, presets
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

INJECTED = "warm\nPreamp: 15 dB\nFilter 9: ON PK Fc 1000 Hz Gain 12 dB Q 1"
MALICIOUS = (
    INJECTED,
    "warm\r\nPreamp: 15 dB\rFilter 6: ON PK Fc 1000 Hz Gain 12 dB Q 1",
    "a\u2028Preamp: 15 dB\u2029Filter 6: ON PK Fc 100 Hz Gain 9 dB Q 1\x85Preamp: 3 dB",
    "b\x0bPreamp: 15 dB\x0cFilter 6: ON PK Fc 100 Hz Gain 9 dB Q 1\x1cx\x1dy\x1ez",
    "Preamp: 15 dB",  # alone on a line, a name would be obeyed without any newline
    "Filter 6: ON PK Fc 1000 Hz Gain 12 dB Q 1",
    "Notes:\nEqualiser: Generic\nFilter Settings file",
    "esc \x1b[2J\x1b]0;title\x07 nul \x00 del \x7f c1 \x9b",
    "\ud800 a lone surrogate",  # a JSON preset can hold one; UTF-8 cannot encode it
)
# every line boundary of Python's str.splitlines, a superset of what editors and APO honour
LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
APO_COMMAND = re.compile(r"^\s*(preamp|filter\s*\d*)\s*:", re.IGNORECASE)  # its syntax
ROUNDING = {"json": 0.0, "csv": 0.0, "apo": 0.005, "rew": 0.005, "easyeffects": 5e-5}


def visible_words(name: str) -> list[str]:
    """The words of ``name`` a reader should still see: split at whitespace and controls."""
    return [w for w in re.split(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+", name) if w]


def has_controls(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in text)


def commands_obeyed(text: str) -> list[str]:
    """The lines of ``text`` Equalizer APO would take as a Preamp or Filter command."""
    return [line for line in LINE_BREAK.split(text) if APO_COMMAND.match(line)]


def check_read_back(text: str, fmt: str, name: str) -> None:
    """``text`` (a preset in ``fmt`` written for WARM named ``name``) holds nothing injected."""
    found = presets.parse_preset_text(text)  # our own reader takes it without complaint
    assert found.format == fmt and found.notes == []
    assert found.settings.shape == (1, DEFAULT_LAYOUT.n_params)
    np.testing.assert_allclose(found.settings[0], WARM, atol=ROUNDING[fmt] + 1e-3)
    if fmt in presets.ONE_SETTING_FORMATS:
        assert found.preamp_db == pytest.approx(presets.preamp_db(WARM))
    if fmt in ("apo", "rew"):
        obeyed = commands_obeyed(text)
        assert len(obeyed) == 1 + DEFAULT_LAYOUT.n_bands, obeyed
        assert sum(bool(re.match(r"\s*preamp", line, re.I)) for line in obeyed) == 1
    if fmt == "easyeffects":
        assert name not in text and found.names == ["preset 1"]  # it embeds no name
        return
    (read,) = found.names
    assert not has_controls(read)
    words = visible_words(name.replace("\ud800", "\ufffd"))
    assert read.lstrip("'").split() == words  # the same words, on one line
    if fmt == "csv":  # one physical line per row: the header and one setting
        assert len(LINE_BREAK.split(text.rstrip("\n"))) == 2


@pytest.mark.parametrize("fmt", presets.FORMATS)
@pytest.mark.parametrize("name", MALICIOUS, ids=range(len(MALICIOUS)))
def test_every_writer_embeds_names_inert(fmt, name):
    text = presets.preset_text(WARM, fmt, names=name)
    assert not has_controls(text.replace("\n", ""))
    check_read_back(text, fmt, name)


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=80))
def test_no_name_adds_a_line_to_filter_text(name):
    for fmt in ("apo", "rew"):
        text = presets.preset_text(WARM, fmt, names=name)
        assert len(commands_obeyed(text)) == 1 + DEFAULT_LAYOUT.n_bands
        found = presets.parse_preset_text(text)
        assert found.notes == [] and found.settings.shape == (1, DEFAULT_LAYOUT.n_params)
        assert found.names[0].split() == (visible_words(name) or ["preset", "1"])


def test_csv_names_never_start_a_spreadsheet_formula():
    formulas = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"]
    text = presets.preset_text(np.stack([WARM] * 4), "csv", names=formulas)
    rows = presets.parse_preset_text(text).names
    assert rows == [f"'{f}" for f in formulas]  # a leading ' makes a spreadsheet show text


def test_several_settings_keep_their_names_apart():
    names = ["one\nPreamp: 9 dB", "two\r\nthree"]
    for fmt in ("json", "csv"):
        found = presets.parse_preset_text(
            presets.preset_text(np.stack([WARM] * 2), fmt, names=names)
        )
        assert found.names == ["one Preamp: 9 dB", "two three"]


def malicious_json_preset(path, name: str):
    """Our JSON preset of WARM whose name holds ``name`` as it stands (as a foreign tool or a
    hand edit might write it: JSON escapes newlines, so the file itself is valid)."""
    document = presets.preset_dict(WARM)
    document["presets"][0]["name"] = name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", presets.FORMATS)
def test_convert_of_a_json_preset_writes_names_inert(tmp_path, fmt, capsys):
    for i, name in enumerate(MALICIOUS):
        source = malicious_json_preset(tmp_path / f"in{i}.json", name)
        out = tmp_path / f"out{i}{presets.FILE_SUFFIXES[fmt]}"
        assert cli.main(["convert", str(source), str(out), "--to", fmt]) == 0, capsys.readouterr()
        text = out.read_text(encoding="utf-8")
        check_read_back(text, fmt, name)
        assert presets.read_preset_file(out).format == fmt
