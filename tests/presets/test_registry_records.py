"""The format records: each format is one record whose detector claims its own files and no
other's; the one-setting rule; suffixes; preset files in UTF-16 with a byte-order mark
(Windows Notepad's "Unicode") or UTF-8 with one read like plain UTF-8, by the library and by
the command line."""

import codecs

import numpy as np
import pytest
from rbj_reference import WARM

from neuraleq_jax import cli, presets
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

ONE_SETTING = {"apo", "rew", "easyeffects"}  # the programs that hold one EQ (docs/webapp.md)


def random_settings(n, seed):
    unit = np.random.default_rng(seed).uniform(-1, 1, (n, DEFAULT_LAYOUT.n_params))
    return np.array(paramspace.denormalize(unit), np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_each_detector_claims_its_own_files_and_no_other(seed):
    setting = random_settings(1, seed)
    for fmt in presets.FORMATS:
        text = presets.preset_text(setting, fmt, names=f"{fmt} {seed}")
        claims = [f.name for f in presets.PRESET_FORMATS.values() if f.detect(text)]
        assert claims == [fmt]
        assert presets.parse_preset_text(text).format == fmt


def test_one_setting_formats_hold_exactly_one_and_the_others_several():
    two = random_settings(2, seed=5)
    for fmt in presets.FORMATS:
        if fmt in ONE_SETTING:
            with pytest.raises(ValueError, match=rf"the {fmt} format .* holds one setting"):
                presets.preset_text(two, fmt)
        else:
            found = presets.parse_preset_text(presets.preset_text(two, fmt, names=["a", "b"]))
            np.testing.assert_array_equal(found.settings, two)
    assert set(presets.ONE_SETTING_FORMATS) == ONE_SETTING


def test_a_suffix_names_one_format_and_each_named_suffix_writes_it(tmp_path):
    claimed = [s for f in presets.PRESET_FORMATS.values() for s in f.path_suffixes]
    assert len(claimed) == len(set(claimed)) == len(presets.SUFFIX_FORMATS)
    for suffix, fmt in presets.SUFFIX_FORMATS.items():
        path = presets.write_preset(tmp_path / f"p{suffix}", WARM, names="x")
        assert presets.read_preset_file(path).format == fmt


def test_an_unknown_format_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="accepted: json, csv, apo, rew, easyeffects"):
        presets.preset_text(WARM, "wav")


# ---------------------------------------------------------------- UTF-16 and byte-order marks

ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 with BOM": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-16 LE with BOM": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16 BE with BOM": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("fmt", presets.FORMATS)
def test_preset_files_in_utf16_or_with_a_bom_read_like_utf8(tmp_path, encoding, fmt, capsys):
    text = presets.preset_text(WARM, fmt, names="warm é")
    source = tmp_path / f"in{presets.FILE_SUFFIXES[fmt]}"
    source.write_bytes(ENCODINGS[encoding](text.replace("\n", "\r\n")))  # as Notepad saves
    found = presets.read_preset_file(source)
    expected = presets.parse_preset_text(text)
    assert found.format == fmt and found.names == expected.names
    np.testing.assert_array_equal(found.settings, expected.settings)
    out = tmp_path / "out.json"  # and the command line reads it the same way
    assert cli.main(["convert", str(source), str(out)]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(presets.read_preset(out)[0], expected.settings)


def test_undecodable_preset_file_is_refused_in_one_line(tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes("# café\n".encode("latin-1") + presets.apo_text(WARM).encode())
    with pytest.raises(ValueError, match=r"not text in UTF-8, or in UTF-16 with a byte-order mark"):
        presets.read_preset_file(source)
