"""Audealize's word curves: the reader, the crowd spread rule, variations and the fit."""

import json
import math
import re

import jax
import numpy as np
import pytest
from conftest import AUDEALIZE_JSON, require_shared

from neuraleq_jax.data import audealize, curves
from neuraleq_jax.model import paramspace, response

# through jit: run eagerly, each primitive of a response compiles on its own
magnitude_response_db = jax.jit(
    response.magnitude_response_db, static_argnames=("sample_rate", "layout")
)


@pytest.fixture(scope="module")
def shared_document():
    require_shared(AUDEALIZE_JSON, "Audealize's curves")
    return json.loads(AUDEALIZE_JSON.read_text(encoding="utf-8"))


def entry(word, *, lang="English", gains=None, agreement=0.6, num=2, x=0.1, y=-0.2):
    gains = list(np.linspace(-2, 2, 40)) if gains is None else gains
    return {
        "word": word,
        "lang": lang,
        "settings": gains,
        "agreement": agreement,
        "num": num,
        "x": x,
        "y": y,
    }


def test_reader_keeps_accents_and_reads_every_field(tmp_path):
    document = [
        entry("  Cálido ", lang="Español", num=7, agreement=0.7, x=1.5, y=-1.0),
        entry("warm", gains=[0.5] * 40),
    ]
    path = tmp_path / "eq.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    read = audealize.load_audealize(path)
    assert read.words == ("cálido", "warm")
    assert read.langs == ("Español", "English")
    np.testing.assert_array_equal(read.counts, [7, 2])
    np.testing.assert_allclose(read.agreement, [0.7, 0.6], rtol=1e-6)
    np.testing.assert_allclose(read.map_xy, [[1.5, -1.0], [0.1, -0.2]], rtol=1e-6)
    np.testing.assert_allclose(read.gains_db[0], np.linspace(-2, 2, 40), rtol=1e-6)
    assert read.gains_db.shape == (2, 40) and read.skipped == ()


BAD_ENTRIES = [
    (entry("a", gains=[0.0] * 39), "'settings' must be a list of 40"),
    (entry("b", gains=[0.0] * 39 + ["x"]), r"settings\[39\]"),
    (entry("c", gains=[0.0] * 39 + [math.nan]), r"settings\[39\]"),
    (entry("d", num=0), "'num'"),
    (entry("e", num=True), "'num'"),
    (entry("f", agreement=None), "'agreement'"),
    ({**entry("g"), "x": "left"}, "'x'"),
    ({k: v for k, v in entry("h").items() if k != "lang"}, "'lang'"),
    (entry(""), "'word'"),
    ("not an entry", "must be an object"),
    (entry("good"), "repeats entry"),
]


def test_malformed_entries_raise_with_indices_or_are_skipped():
    document = [entry("good")] + [bad for bad, _ in BAD_ENTRIES]
    with pytest.raises(ValueError, match="11 malformed entries") as raised:
        audealize.parse_audealize(document)
    message = str(raised.value)
    for index in range(1, 11):  # the first ten are listed, then a count
        assert f"entry {index}:" in message
    assert "(and 1 more)" in message
    read = audealize.parse_audealize(document, on_malformed="skip")
    assert read.words == ("good",)
    assert [i for i, _ in read.skipped] == list(range(1, len(BAD_ENTRIES) + 1))
    for (_, reason), (_, said) in zip(BAD_ENTRIES, read.skipped):
        assert re.search(reason, said), (reason, said)
    with pytest.raises(ValueError, match="every entry is malformed"):
        audealize.parse_audealize([bad for bad, _ in BAD_ENTRIES[:3]], on_malformed="skip")


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="neuraleq data fetch audealize"):
        audealize.load_audealize(tmp_path / "absent.json")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(json.dumps([entry("cálido")], ensure_ascii=False).encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        audealize.load_audealize(latin1)
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        audealize.load_audealize(broken)
    with pytest.raises(ValueError, match="non-empty JSON list"):
        audealize.parse_audealize({"entries": []})


def test_either_kind_of_curve_file_is_read_by_the_caller_that_takes_both(tmp_path):
    adz = tmp_path / "adz.json"
    adz.write_text(json.dumps([entry("bright", gains=[1.0] * 40)]), encoding="utf-8-sig")
    read = audealize.load_any_curve_file(adz)
    assert read.words == ("bright",)
    np.testing.assert_array_equal(read.freqs, audealize.AUDEALIZE_FREQS)
    np.testing.assert_array_equal(read.gains_db, np.ones((1, 40), np.float32))
    np.testing.assert_array_equal(read.counts, [2])
    own = tmp_path / "own.json"
    own.write_text(json.dumps([{"word": "warm", "gains_db": [0.5] * 40}]), encoding="utf-8")
    read = audealize.load_any_curve_file(own)
    assert read.words == ("warm",)
    np.testing.assert_array_equal(read.freqs, curves.CURVE_FREQS)
    bad = [entry("bright"), entry("dark", gains=[0.0] * 3)]
    with pytest.raises(ValueError, match="entry 1"):
        audealize.parse_any_curves(bad)
    assert audealize.parse_any_curves(bad, on_malformed="skip").skipped[0][0] == 1
    # curves reads its own format only, and says where Audealize's is read
    with pytest.raises(ValueError, match=r"entry 0: 'gains_db' is missing.*load_any_curve_file"):
        curves.load_curves(adz)


def test_band_frequencies_are_the_plugins():
    freqs = audealize.AUDEALIZE_FREQS
    assert freqs.shape == (40,) and freqs[0] == 20 and freqs[-1] == 19682
    assert np.all(np.diff(freqs) > 0)
    ratios = np.diff(np.log(freqs))
    assert ratios.max() / ratios.min() > 2  # not evenly log-spaced


def test_shared_copy_and_a_longer_file_in_the_upstream_format(shared_document):
    read = audealize.parse_audealize(shared_document)
    assert len(read) == 358 and read.skipped == ()
    assert read.langs.count("English") == 258 and read.langs.count("Español") == 100
    assert "frío" in read.words and all(w == w.strip().lower() for w in read.words)
    assert read.counts[read.words.index("warm")] == 122
    # the upstream file holds 36 more words in the same format
    extra = [{**e, "word": e["word"] + " extra"} for e in shared_document[:36]]
    longer = audealize.parse_audealize(shared_document + extra)
    assert len(longer) == 394


def test_reliability_is_spearman_brown():
    rho, n = np.array([0.5, 0.8, 0.6]), np.array([1, 2, 122])
    expected = n * rho / (1 + (n - 1) * rho)
    np.testing.assert_allclose(audealize.reliability(rho, n), expected, rtol=1e-12)
    assert audealize.reliability([0.5], [2])[0] == pytest.approx(2 / 3)


def test_spread_rule_narrows_with_agreement_and_contributors():
    curve = np.tile(np.linspace(-3, 3, 40), (4, 1))
    rms = np.sqrt(np.mean(curve[0] ** 2))
    spread = audealize.spread_db(curve, [0.5, 0.8, 0.5, 0.8], [2, 2, 40, 122])
    assert spread[0] == pytest.approx(rms * math.sqrt(0.5), rel=1e-9)  # R = 2/3
    assert spread[0] > spread[1] and spread[0] > spread[2] > spread[3]
    assert spread[3] == pytest.approx(0.05 * rms, rel=1e-9)  # the floor
    np.testing.assert_allclose(
        audealize.spread_db(curve, [0.5] * 4, [2] * 4, scale=2.0),
        2 * audealize.spread_db(curve, [0.5] * 4, [2] * 4),
    )


def test_variations_spread_as_asked_and_stay_in_range():
    unit = np.random.default_rng(3).uniform(-0.6, 0.6, (3, 15)).astype(np.float32)
    fitted = np.asarray(jax.jit(lambda u: paramspace.clip(paramspace.denormalize(u)))(unit))
    target = np.array([0.2, 0.5, 1.0])
    drawn = audealize.variations(fitted, target, 32, seed=1)
    assert drawn.shape == (3, 32, 15)
    paramspace.validate(drawn)
    np.testing.assert_allclose(drawn[:, 0], fitted, rtol=1e-5, atol=1e-4)
    base = np.asarray(magnitude_response_db(fitted, audealize.AUDEALIZE_FREQS))
    db = np.asarray(magnitude_response_db(drawn, audealize.AUDEALIZE_FREQS))
    reached = np.sqrt(np.mean((db - base[:, None]) ** 2, axis=(1, 2)))
    # four multiplicative corrections of a near-linear map: within a few percent
    np.testing.assert_allclose(reached, target, rtol=0.1)


def test_batched_fit_reproduces_shared_curves(shared_document):
    read = audealize.parse_audealize(shared_document)
    pick = [read.words.index(w) for w in ("warm", "bright", "muddy", "frío")]
    fit = curves.fit_curves(
        read.gains_db[pick], audealize.AUDEALIZE_FREQS, steps=300, restarts=8, candidates=16
    )
    fitted = np.asarray(magnitude_response_db(fit.settings, audealize.AUDEALIZE_FREQS))
    for got, want in zip(fitted, read.gains_db[pick]):
        assert np.corrcoef(got, want)[0, 1] > 0.97  # README: r ≈ 0.996 with many restarts
    assert np.all(fit.rms_db < 0.35)


@pytest.mark.parametrize("dataset", ["audealize", "crowd"])
def test_crowd_presets_need_a_path(dataset):
    from neuraleq_jax.config import DataConfig, load_preset

    with pytest.raises(ValueError, match="neuraleq data fetch audealize"):
        DataConfig(dataset=dataset)
    preset = load_preset(dataset)
    assert preset.data.dataset == dataset and preset.data.layout == "spec"
    assert len(preset.data.split_fractions) == 2  # no word is held out: validation only


def test_a_byte_order_mark_and_ascii_escapes_read_the_same(tmp_path):
    document = [entry("frío", lang="Español")]
    escaped = tmp_path / "escaped.json"
    escaped.write_text(json.dumps(document), encoding="ascii")  # \u00ed, as some writers do
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(document, ensure_ascii=False).encode("utf-8"))
    assert (
        audealize.load_audealize(escaped).words == audealize.load_audealize(bom).words == ("frío",)
    )


def test_the_words_docs_datasets_quotes_are_in_audealizes_file(shared_document):
    """docs/datasets.md names words of Audealize's file as examples: each one is there, in
    the language the doc gives it ("cálido" was promised and is not in the file)."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "datasets.md").read_text("utf-8")
    sentence = re.search(r"Audealize describes hundreds of words \((.*?)\)", doc, re.S)[1]
    english, _, spanish = sentence.partition("Spanish")
    languages = {e["word"]: e["lang"] for e in shared_document}
    quoted = {w: "English" for w in re.findall(r'"([^"]+)"', english)}
    quoted |= {w: "Español" for w in re.findall(r'"([^"]+)"', spanish)}
    assert "Español" in quoted.values()
    assert {word: languages.get(word) for word in quoted} == quoted
