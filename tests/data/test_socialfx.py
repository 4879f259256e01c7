"""SocialFX's contributions: the reader on the shared copy and on the upstream shape, refusals,
the unit rule, the registry's data set, a tiny training and the download."""

import csv
import functools
import hashlib
import http.server
import json
import math
import threading
import unicodedata
from collections import Counter

import jax
import numpy as np
import pytest
from conftest import AUDEALIZE_JSON, SOCIALFX_CSV, TINY_TRAIN_ARGS, require_shared

from neuraleq_jax import cli
from neuraleq_jax.config import DataConfig
from neuraleq_jax.data import audealize, curves, fetch, registry, socialfx
from neuraleq_jax.model import paramspace, response

WORDS = ("warm", "claro", "cold")  # the most frequent English and Spanish words of the copy
magnitude_response_db = jax.jit(response.magnitude_response_db, static_argnames=("sample_rate",))


@pytest.fixture(scope="module")
def shared_rows():
    """The shared copy's header and data rows, read with the csv module alone."""
    require_shared(SOCIALFX_CSV, "SocialFX's contributions")
    with open(SOCIALFX_CSV, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def fold(text):
    return unicodedata.normalize("NFC", " ".join(text.split()).casefold())


def test_shared_copy(shared_rows):
    header, rows = shared_rows
    read = socialfx.load_socialfx(SOCIALFX_CSV)
    assert len(read) == len(rows) == 1421 and read.skipped == ()
    assert len(set(read.words)) == len({fold(r[0]) for r in rows}) == 729
    assert Counter(read.langs) == Counter(r[1] for r in rows) == {"English": 775, "Español": 646}
    np.testing.assert_array_equal(read.consistency, [float(r[2]) for r in rows])
    np.testing.assert_allclose(read.unnamed, [float(r[3]) for r in rows], rtol=1e-6)
    assert "rápido" in read.words and "rapido" not in read.words  # accents are kept
    # the 39 bands the copy holds, at fields 5..43; the 40th restored from the zero mean
    given = np.array([[float(x) for x in r[4:43]] for r in rows])
    np.testing.assert_allclose(read.weights[:, :39], given, rtol=1e-6)
    np.testing.assert_allclose(read.weights[:, 39], -given.sum(axis=1), atol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.mean(read.weights**2, axis=1)), 1.0, atol=1e-5)
    assert all(r[-1] == "" and len(r) == 44 for r in rows) and len(header) == 43
    assert read.counts()["warm"] == sum(fold(r[0]) == "warm" for r in rows) == 51


def write_upstream_shape(path, header, rows, *, bom=False, fill_last=True):
    """``rows`` as upstream writes them: CRLF, 44 fields; the last one the 19,682 Hz weight
    (restored as minus the others' sum) or, with ``fill_last=False``, empty as in the copy."""
    lines = [",".join(header)]
    for row in rows:
        last = repr(-math.fsum(float(x) for x in row[4:43])) if fill_last else ""
        lines.append(",".join([*row[:43], last]))
    text = ("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n"
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_file_shaped_like_upstream_reads_as_the_copy(shared_rows, tmp_path):
    header, rows = shared_rows
    copy = socialfx.load_socialfx(SOCIALFX_CSV).subset(np.arange(30))
    for name, options in (
        ("full.csv", {}),
        ("bom.csv", {"bom": True}),
        ("blank-last.csv", {"fill_last": False}),
    ):
        path = write_upstream_shape(tmp_path / name, header, rows[:30], **options)
        assert b"\r\n" in path.read_bytes()
        read = socialfx.load_socialfx(path)
        assert read.words == copy.words and read.langs == copy.langs
        np.testing.assert_allclose(read.weights, copy.weights, atol=1e-6)
        np.testing.assert_array_equal(read.consistency, copy.consistency)


def one_line_error(path, match):
    with pytest.raises(ValueError, match=match) as raised:
        socialfx.load_socialfx(path)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message
    return message


def test_other_files_are_refused_in_one_line(shared_rows, tmp_path):
    header, rows = shared_rows
    accepted = "expected SocialFX's eq_contributions.csv"
    (tmp_path / "eq.json").write_text(json.dumps([{"word": "warm", "settings": [0] * 40}]))
    assert accepted in one_line_error(tmp_path / "eq.json", "first line starts")
    safe = tmp_path / "safe.csv"  # SAFE-DB's shape: no header, 25 columns
    safe.write_text("1,warm,u7,2,2," + ",".join(["1.0"] * 20) + "\n")
    assert accepted in one_line_error(safe, "first line starts '1,warm,u7,2'")
    (tmp_path / "empty.csv").write_text("")
    one_line_error(tmp_path / "empty.csv", "it is empty")
    other = tmp_path / "other.csv"
    other.write_text(",".join(header[:3] + ["gain_a", "gain_b"]) + "\nwarm,English,8,1,2\n")
    one_line_error(other, "header has 2 columns after ratings_consistency")
    shifted = tmp_path / "freqs.csv"
    wrong = [*header[:3], "RSC_25Hz_band", *header[4:]]
    write_upstream_shape(shifted, wrong, rows[:2])
    one_line_error(shifted, r"band frequencies differ from Audealize's: 25 Hz \(expected 20\)")
    (tmp_path / "latin1.csv").write_bytes(",".join(header).encode() + b"\ncaf\xe9,Espa\xf1ol\n")
    one_line_error(tmp_path / "latin1.csv", "not UTF-8")


def test_malformed_rows_fail_with_line_numbers_or_are_skipped(shared_rows, tmp_path):
    header, rows = shared_rows
    bad = [list(r) for r in rows[:6]]
    bad[1][10] = "loud"  # line 3
    bad[3] = bad[3][:20]  # line 5
    bad[4][0] = "  "  # line 6
    path = write_upstream_shape(tmp_path / "bad.csv", header, [])
    with open(path, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(bad)
    message = one_line_error(path, "3 malformed rows of 6")
    assert "line 3: RSC_259Hz_band is 'loud', not a number" in message
    assert "line 5: 20 fields, expected 44" in message and "line 6: empty descriptor" in message
    read = socialfx.load_socialfx(path, on_malformed="skip")
    assert len(read) == 3 and [line for line, _ in read.skipped] == [3, 5, 6]
    np.testing.assert_array_equal(read.lines, [2, 4, 7])


def test_unit_rule_on_a_curve_with_a_known_answer():
    """A 5-band setting's response, written as weights at 1/4 dB per unit, is read back in dB
    by the rule and fitted back to the same response."""
    setting = np.array(
        [[4.0, 90, 0.7, -3.0, 400, 1.5, 2.0, 1500, 2.0, -2.5, 5000, 1.2, 3.0, 10_000, 0.7]]
    )
    known_db = np.asarray(magnitude_response_db(setting, audealize.AUDEALIZE_FREQS))
    gains_db = socialfx.weights_to_db(known_db / 0.25, db_per_unit=0.25)
    np.testing.assert_allclose(gains_db, known_db, rtol=1e-6, atol=1e-6)
    fit = curves.fit_curves(
        gains_db, audealize.AUDEALIZE_FREQS, steps=300, restarts=8, candidates=16
    )
    fitted = np.asarray(magnitude_response_db(fit.settings, audealize.AUDEALIZE_FREQS))
    assert np.sqrt(np.mean((fitted - known_db) ** 2)) < 0.3
    assert paramspace.validate(fit.settings) is not None
    with pytest.raises(ValueError, match="db_per_unit must be > 0"):
        socialfx.weights_to_db(known_db, db_per_unit=0.0)


def test_one_db_per_unit_makes_a_words_mean_contribution_audealizes_curve(shared_rows):
    require_shared(AUDEALIZE_JSON, "Audealize's curves")
    document = json.loads(AUDEALIZE_JSON.read_text(encoding="utf-8"))
    theirs = {e["word"].strip().lower(): np.array(e["settings"]) for e in document}
    read = socialfx.load_socialfx(SOCIALFX_CSV)
    words = np.array(read.words)
    db = read.gains_db()
    ratios, correlations = [], []
    for word, count in read.counts().items():
        if count >= 3 and word in theirs:
            mean = db[words == word].mean(axis=0)
            ratios.append(np.sqrt(np.mean(mean**2) / np.mean(theirs[word] ** 2)))
            correlations.append(np.corrcoef(mean, theirs[word])[0, 1])
    assert len(ratios) == 99
    assert abs(np.median(ratios) - 1.0) < 0.02 and np.median(correlations) > 0.999


def small_config(**overrides):
    options = {"words": WORDS, "min_examples": 5, "layout": "spec", **overrides}
    return DataConfig(dataset="socialfx", path=str(SOCIALFX_CSV), **options)


def test_the_registry_builds_a_small_socialfx_set(shared_rows):
    _, rows = shared_rows
    expected = Counter(fold(r[0]) for r in rows)
    dataset = registry.load_dataset(small_config())
    assert dataset.vocabulary == WORDS and dataset.source_names == ("socialfx",)
    assert dataset.counts() == {word: expected[word] for word in WORDS}
    np.testing.assert_array_equal(dataset.source_contributors[:, 0], [expected[w] for w in WORDS])
    assert dataset.langs == ("English", "Español", "English")
    assert np.all((dataset.source_agreement >= 0) & (dataset.source_agreement <= 1))
    train, validation, test = registry.build_datasets(small_config())
    assert len(train) + len(validation) + len(test) == len(dataset)
    for word in WORDS:  # a split by contribution that keeps each word's share
        assert train.counts()[word] == round(0.7 * expected[word])
    rare = next(w for w, c in expected.items() if c == 4)
    kept = registry.load_dataset(small_config(words=("warm", rare)))
    assert kept.vocabulary == ("warm",)
    with pytest.raises(ValueError, match="no contributions for 'wram'"):
        registry.load_dataset(small_config(words=("wram",)))
    with pytest.raises(ValueError, match="eq_contributions.csv"):
        DataConfig(dataset="socialfx")


def test_a_tiny_training_through_the_train_entry_point(shared_rows, tmp_path, capsys):
    from neuraleq_jax import train

    workdir = tmp_path / "run"
    tiny = [a for a in TINY_TRAIN_ARGS if not a.startswith("--data.per_word")]
    options = [f"--data.path={SOCIALFX_CSV}", f"--data.words={','.join(WORDS)}"]
    assert train.main(["--config", "socialfx", *options, "--workdir", str(workdir), *tiny]) == 0
    assert (workdir / "bundle").is_dir()
    capsys.readouterr()  # the training's own summary
    assert cli.main(["words", "--workdir", str(workdir), "--format", "json"]) == 0
    listed = {info["word"]: info for info in json.loads(capsys.readouterr().out)}
    assert sorted(listed) == sorted(WORDS)
    (source,) = listed["claro"]["sources"]
    assert source["name"] == "socialfx" and listed["claro"]["lang"] == "Español"
    assert source["contributors"] == source["settings"] == 26
    assert cli.main(["words", "cl", "--workdir", str(workdir)]) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith("claro")]
    assert line.split()[-3:] == ["Español", "socialfx", "26"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(shared_rows, tmp_path):
    """A local server of an upstream-shaped file (no network in tests): ``(url, sha256)``."""
    header, rows = shared_rows
    root = tmp_path / "server"
    root.mkdir()
    path = write_upstream_shape(root / "eq_contributions.csv", header, rows[:40])
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.sha256(path.read_bytes())
    server.shutdown()
    server.server_close()


def test_fetch_checks_the_digest_and_the_format(served, tmp_path, monkeypatch, capsys):
    base, digest = served
    upstream = fetch.SOURCES["socialfx"]
    assert upstream.url.startswith("https://raw.githubusercontent.com/ryanstables/IMPBookCode/")
    for sha256, status in (("0" * 64, 2), (digest.hexdigest(), 0)):
        monkeypatch.setitem(
            fetch.SOURCES,
            "socialfx",
            fetch.DataSource(f"{base}/eq_contributions.csv", sha256, upstream.filename, "x"),
        )
        assert cli.main(["data", "fetch", "socialfx", "--dest", str(tmp_path / "d")]) == status
    assert "sha256 of" in capsys.readouterr().err
    assert len(socialfx.load_socialfx(tmp_path / "d" / "eq_contributions.csv")) == 40
    (tmp_path / "eq.json").write_text("[]")
    with pytest.raises(ValueError, match="first line starts '\\[\\]'"):
        fetch.fetch("socialfx", tmp_path / "e", source=str(tmp_path / "eq.json"))
    assert not (tmp_path / "e").exists()
