"""SAFE-DB loader: counts after each cleaning step checked against a plain csv read."""

import csv
import re
from collections import Counter

import numpy as np
import pytest

from neuraleq_jax.data import safedb
from neuraleq_jax.data.dataset import grouped_split
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

# The inflections that occur in the real file, written out by hand (the loader uses suffix rules).
FOLDS = {
    "brighter": "bright",
    "brightness": "bright",
    "brightens": "bright",
    "warmth": "warm",
    "warmer": "warm",
    "fuller": "full",
    "clearer": "clear",
    "thinner": "thin",
    "thickness": "thick",
    "tighten": "tight",
}
PLACEHOLDERS = {"test", "testing", "default", "reset", "hello", "untitled"}


def _plain_read(path):
    """Independent pipeline: ``[(word or None, contributor, 13 floats)]`` plus step counts."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    records = []
    for row in rows:
        text = " ".join(row[1].lower().split()).strip(",.;: ")
        word = " ".join(FOLDS.get(token, token) for token in text.split())
        letters = re.findall(r"[a-z]+", word)
        usable = (
            bool(letters)
            and not any(ch.isdigit() for ch in word)
            and not (set(letters) & PLACEHOLDERS)
        )
        records.append((word if usable else None, row[2], tuple(float(v) for v in row[5:18])))
    after_descriptors = [r for r in records if r[0] is not None]
    gains = (0, 2, 5, 8, 11)
    after_flat = [r for r in after_descriptors if any(r[2][g] != 0.0 for g in gains)]
    seen, after_duplicates = set(), []
    for r in after_flat:
        if (r[0], r[2]) not in seen:
            seen.add((r[0], r[2]))
            after_duplicates.append(r)
    return rows, after_descriptors, after_flat, after_duplicates


@pytest.fixture(scope="module")
def plain(safe_csv_path):
    return _plain_read(safe_csv_path)


@pytest.fixture(scope="module")
def loaded(safe_csv_path):
    return safedb.load_safe_db(safe_csv_path)


@pytest.fixture(scope="module")
def loaded_spec(safe_csv_path):
    return safedb.load_safe_db(safe_csv_path, layout="spec")


def test_raw_file_matches_its_readme(plain):
    rows = plain[0]
    assert len(rows) == 1700 and all(len(r) == 25 for r in rows)
    assert len({r[2] for r in rows}) == 148
    raw = Counter(r[1].strip().lower() for r in rows)
    assert raw["warm"] == 532 and raw["bright"] == 504 and raw["test"] == 181


def test_row_counts_after_each_step(loaded, plain):
    dataset, report = loaded
    rows, after_descriptors, after_flat, after_duplicates = plain
    assert report.rows_read == report.rows_well_formed == len(rows) == 1700
    assert report.rows_after_descriptors == len(after_descriptors)
    assert report.rows_after_flat == len(after_flat)
    assert report.rows_after_duplicates == len(after_duplicates)
    assert report.rows_after_words == report.rows_final == len(dataset) == len(after_duplicates)
    # every dropped row has exactly one reason
    assert sum(report.dropped.values()) == len(rows) - len(dataset)
    assert report.dropped["placeholder descriptor"] == sum(
        1
        for r in rows
        if re.findall(r"[a-z]+", r[1].lower())
        and set(re.findall(r"[a-z]+", r[1].lower())) & PLACEHOLDERS
        and not any(ch.isdigit() for ch in r[1])
    )
    assert report.dropped["exact duplicate (same word and setting)"] == (
        len(after_flat) - len(after_duplicates)
    )
    assert report.malformed == ()


def test_warm_and_bright_counts(loaded, plain):
    dataset, report = loaded
    expected = Counter(r[0] for r in plain[3])
    assert dataset.vocabulary[:2] == ("warm", "bright")
    assert report.word_counts["warm"] == expected["warm"] > 500
    assert report.word_counts["bright"] == expected["bright"] > 490
    assert set(report.word_counts) == set(expected)
    assert all(report.word_counts[w] == c for w, c in expected.items())
    assert report.folded["brighter -> bright"] == 5
    assert report.n_contributors == len({r[1] for r in plain[3]})


def test_settings_in_range_and_mapped(loaded, plain):
    dataset, _ = loaded
    assert dataset.layout is safedb.SAFE_LAYOUT
    assert dataset.settings.dtype == np.float32 and dataset.settings.shape == (len(dataset), 15)
    paramspace.validate(dataset.settings, dataset.layout, tolerance=0.0)
    freqs = dataset.settings[:, dataset.layout.freq_indices]
    assert np.all(np.diff(freqs[:, 1:4], axis=1) >= 0), "bells sorted by frequency"
    np.testing.assert_allclose(dataset.settings[:, [2, 14]], 0.71, rtol=1e-6)
    # first file row (Tinny), mapped by hand: shelf, bells sorted by freq, shelf
    g1, f1, *bells, g5, f5 = (float(v) for v in plain[0][0][5:18])
    triples = sorted([tuple(bells[i : i + 3]) for i in (0, 3, 6)], key=lambda t: t[1])
    expected = np.array([g1, f1, 0.71, *triples[0], *triples[1], *triples[2], g5, f5, 0.71])
    assert np.any(np.all(np.isclose(dataset.settings, expected, rtol=1e-6), axis=1))
    assert dataset.contributors.shape == (len(dataset),)


def test_spec_layout_clipping_is_counted(loaded, loaded_spec):
    safe, _ = loaded
    spec, report = loaded_spec
    assert spec.layout is DEFAULT_LAYOUT and report.layout_name == "spec"
    paramspace.validate(spec.settings, DEFAULT_LAYOUT, tolerance=0.0)
    outside = (safe.settings < DEFAULT_LAYOUT.lower.astype(np.float32)) | (
        safe.settings > DEFAULT_LAYOUT.upper.astype(np.float32)
    )
    assert report.clipped == dict(zip(DEFAULT_LAYOUT.param_names, outside.sum(0).tolist()))
    assert report.clipped_settings == int(outside.any(axis=1).sum()) > 0
    assert report.clipped["band1_freq"] > 0 and report.clipped["band1_gain"] == 0
    np.testing.assert_allclose(
        spec.settings, np.clip(safe.settings, DEFAULT_LAYOUT.lower, DEFAULT_LAYOUT.upper), rtol=1e-6
    )
    assert sum(loaded[1].clipped.values()) == 0


def test_grouped_split_keeps_contributors_apart(safe_csv_path):
    dataset, _ = safedb.load_safe_db(safe_csv_path, min_examples=5)
    parts = grouped_split(dataset, (0.7, 0.15, 0.15), seed=0)
    groups = [set(p.contributors.tolist()) for p in parts]
    assert all(len(p) for p in parts)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not groups[i] & groups[j]
    assert sum(len(p) for p in parts) == len(dataset)
    assert set().union(*groups) == set(dataset.contributors.tolist())


def test_min_examples_and_word_list(safe_csv_path, plain):
    expected = Counter(r[0] for r in plain[3])
    dataset, report = safedb.load_safe_db(safe_csv_path, min_examples=5)
    assert report.word_counts == {w: c for w, c in expected.items() if c >= 5}
    assert report.rows_final == sum(c for c in expected.values() if c >= 5)
    assert report.dropped["word with fewer than 5 examples"] == (
        report.rows_after_words - report.rows_final
    )
    dataset, report = safedb.load_safe_db(safe_csv_path, words=["Bright", "warmer"])
    assert dataset.vocabulary == ("bright", "warm")
    assert report.word_counts == {"bright": expected["bright"], "warm": expected["warm"]}
    assert report.rows_after_words == len(dataset)
    with pytest.raises(ValueError, match="'warmm' is not in SAFE-DB.*Close: warm"):
        safedb.load_safe_db(safe_csv_path, words=["warmm"])
    with pytest.raises(ValueError, match="no SAFE-DB rows left"):
        safedb.load_safe_db(safe_csv_path, min_examples=10_000)


def _good_row(index, word="warm", gain="3"):
    params = [gain, "100", "1", "300", "0.7", "-2", "2000", "2", "1", "5000", "1", "0", "9000"]
    return [str(index), word, "c0123456789", "1", "1", *params, "", "", "", "", "", "", "h"]


def test_malformed_rows_skip_or_fail(tmp_path):
    rows = [
        _good_row(1),
        _good_row(2, word="bright", gain="-3"),
        _good_row(3)[:10],
        _good_row(4, gain="loud"),
        _good_row(5) + ["extra"],
    ]
    out_of_range = _good_row(6)
    out_of_range[6] = "5"  # low shelf at 5 Hz
    rows.append(out_of_range)
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(rows[:2])
        handle.write("\n")  # a blank line 3
        writer.writerows(rows[2:])
    dataset, report = safedb.load_safe_db(path, on_malformed="skip")
    assert len(dataset) == 2 and dataset.vocabulary == ("warm", "bright")
    assert [line for line, _ in report.malformed] == [4, 5, 6, 7]
    assert report.dropped["malformed: wrong column count"] == 2
    assert report.dropped["malformed: non-numeric parameter"] == 1
    assert report.dropped["malformed: outside SAFE's slider ranges"] == 1
    assert report.dropped["blank line"] == 1
    assert report.rows_read == 6 and report.rows_well_formed == 2
    with pytest.raises(ValueError, match=r"4 malformed.*line 4.*line 5.*line 6.*line 7"):
        safedb.load_safe_db(path, on_malformed="raise")
    with pytest.raises(ValueError, match="on_malformed"):
        safedb.load_safe_db(path, on_malformed="ignore")


def test_a_file_with_no_well_formed_row_is_named_even_when_skipping(tmp_path):
    """Not 'word warm is not in SAFE-DB' for a file that is not SAFE-DB at all."""
    foreign = tmp_path / "eqdescriptors.json"
    foreign.write_text('[{"word": "warm"}]\n')
    with pytest.raises(ValueError, match=r"eqdescriptors.json: 1 malformed row\(s\): line 1"):
        safedb.load_safe_db(foreign, on_malformed="skip", words=["warm"])
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=r"empty.csv is empty$"):
        safedb.load_safe_db(empty)


def test_descriptor_rules():
    assert safedb.normalize_descriptor("  Brighter ") == "bright"
    assert safedb.normalize_descriptor("WARMER") == "warm"
    assert safedb.normalize_descriptor("thinner") == "thin"
    assert safedb.normalize_descriptor("heavier") == "heavy"
    assert safedb.normalize_descriptor("Brightness,") == "bright"
    assert safedb.normalize_descriptor("power") == "power"  # not an inflection of a base
    assert safedb.normalize_descriptor("bright  clear") == "bright clear"
    assert safedb.descriptor_drop_reason("test") == "placeholder descriptor"
    assert safedb.descriptor_drop_reason("test_warm") == "placeholder descriptor"
    assert safedb.descriptor_drop_reason("re27").startswith("descriptor with a digit")
    assert safedb.descriptor_drop_reason("") == "empty descriptor"
    assert safedb.descriptor_drop_reason("!!") == "descriptor without letters"
    assert safedb.descriptor_drop_reason("warm") is None


def test_flat_and_alias_options(tmp_path):
    rows = [_good_row(1, word="warn"), _good_row(2, word="warm"), _good_row(3, gain="0")]
    for row in rows[2:]:
        for column in (5, 7, 10, 13, 16):
            row[column] = "0"
    path = tmp_path / "small.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    dataset, report = safedb.load_safe_db(path, aliases={"warn": "warm"})
    # warn -> warm makes rows 1 and 2 exact duplicates; row 3 is flat
    assert len(dataset) == 1 and report.rows_after_flat == 2
    assert report.dropped["flat setting (all gains 0 dB)"] == 1
    dataset, report = safedb.load_safe_db(path, drop_flat=False)
    assert len(dataset) == 3 and dataset.vocabulary == ("warm", "warn")


def test_default_path_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv(safedb.ENV_VAR, str(tmp_path))
    assert safedb.default_csv_path() == tmp_path / "safe-db" / "SAFEEqualiserUserData.csv"
    with pytest.raises(FileNotFoundError, match="semanticaudio"):
        safedb.load_safe_db()
    with pytest.raises(ValueError, match="layout must be"):
        safedb.load_safe_db(tmp_path / "x.csv", layout="wide")
