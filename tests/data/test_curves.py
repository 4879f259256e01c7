"""40-band curve files: loading, validation, and the batched fit of 5-band settings."""

import json

import numpy as np
import pytest
import scipy.signal

from neuraleq_jax.data import curves
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

# Measured (2 shared CPU cores): 17 curves, 32 restarts x 64 candidates, 300 steps fit in
# ~0.2 s after a 4-15 s compile; every known curve here is recovered within 0.25 dB.
FIT = dict(steps=300, restarts=32, candidates=64, seed=0)


def _random_settings(n, seed):
    unit = np.random.default_rng(seed).uniform(-1, 1, (n, 15)).astype(np.float32)
    return np.asarray(paramspace.clip(paramspace.denormalize(unit)))


def _scipy_response_db(setting, freqs, sample_rate=48_000.0):
    """Independent response: scipy's sosfreqz of the float64 biquads."""
    _, h = scipy.signal.sosfreqz(
        response.second_order_sections(setting, sample_rate),
        worN=np.asarray(freqs, np.float64),
        fs=sample_rate,
    )
    return 20 * np.log10(np.abs(h))


def test_curve_freqs_constant():
    assert curves.CURVE_FREQS.shape == (40,) and curves.CURVE_FREQS.dtype == np.float32
    np.testing.assert_allclose(curves.CURVE_FREQS[[0, -1]], [20.0, 20_000.0], rtol=1e-6)
    np.testing.assert_allclose(np.diff(np.log(curves.CURVE_FREQS)), np.log(1000) / 39, rtol=1e-4)


# A 12 dB step up and down every band: no 5-band setting comes close.
ZIGZAG = np.where(np.arange(40) % 2 == 0, 12.0, -12.0)


@pytest.fixture(scope="module")
def known():
    """16 curves made from random in-range settings (plus the zigzag, fitted in the same call)."""
    settings = _random_settings(16, seed=7)
    gains = np.stack([_scipy_response_db(s, curves.CURVE_FREQS) for s in settings])
    fit = curves.fit_curves(np.concatenate([gains, ZIGZAG[None]]), **FIT)
    return settings, gains, fit


def test_fit_recovers_known_responses(known):
    settings, gains, fit_all = known
    fit = curves.CurveFit(fit_all.settings[:16], fit_all.rms_db[:16])
    assert fit.settings.shape == (16, 15) and fit.rms_db.shape == (16,)
    paramspace.validate(fit.settings, DEFAULT_LAYOUT, tolerance=0.0)
    refit = np.stack([_scipy_response_db(s, curves.CURVE_FREQS) for s in fit.settings])
    independent_rms = np.sqrt(np.mean((refit - gains) ** 2, axis=1))
    np.testing.assert_allclose(fit.rms_db, independent_rms, atol=1e-3)
    assert independent_rms.max() <= 0.3, independent_rms


def test_fit_reports_error_of_unreachable_curve(known):
    fit = known[2]
    paramspace.validate(fit.settings[16], DEFAULT_LAYOUT, tolerance=0.0)
    best_possible = np.sqrt(np.mean((ZIGZAG - ZIGZAG.mean()) ** 2))  # a constant at best
    fitted = _scipy_response_db(fit.settings[16], curves.CURVE_FREQS)
    np.testing.assert_allclose(fit.rms_db[16], np.sqrt(np.mean((fitted - ZIGZAG) ** 2)), atol=1e-3)
    assert 0.8 * best_possible < fit.rms_db[16] <= best_possible + 1e-3


def test_example_file_is_loaded_and_fitted(tmp_path, known):
    settings, gains, _ = known
    freqs = np.geomspace(30.0, 16_000.0, 24)
    lifted = np.stack([_scipy_response_db(s, freqs) for s in settings[:3]])
    path = tmp_path / "curves.json"
    path.write_text(
        json.dumps(
            {
                "freqs": freqs.tolist(),
                "entries": [
                    {
                        "word": " Warm",
                        "gains_db": lifted[0].tolist(),
                        "agreement": 0.5,
                        "count": 12,
                    },
                    {"word": "bright", "gains_db": lifted[1].tolist()},
                    {"word": "warm", "gains_db": lifted[2].tolist(), "count": 3},
                ],
            }
        )
    )
    loaded = curves.load_curves(path)
    assert loaded.words == ("warm", "bright", "warm")
    np.testing.assert_allclose(loaded.freqs, freqs, rtol=1e-6)
    np.testing.assert_allclose(loaded.gains_db, lifted, rtol=1e-5, atol=1e-5)
    assert loaded.agreement[0] == 0.5 and np.isnan(loaded.agreement[1:]).all()
    assert loaded.counts.tolist() == [12, -1, 3]

    dataset, loaded, fit = curves.load_curve_dataset(path, **FIT)
    assert dataset.vocabulary == ("warm", "bright")
    assert dataset.word_ids.tolist() == [0, 1, 0]
    assert fit.rms_db.max() <= 0.3
    np.testing.assert_array_equal(dataset.settings, fit.settings)
    kept = curves.dataset_from_fit(loaded, fit, max_rms_db=float(np.sort(fit.rms_db)[1]))
    assert len(kept) == 2
    with pytest.raises(ValueError, match="no curve was fitted within"):
        curves.dataset_from_fit(loaded, fit, max_rms_db=-1.0)


def test_default_freqs_plain_list_and_save_round_trip(tmp_path, known):
    _, gains, _ = known
    path = tmp_path / "plain.json"
    path.write_text(
        json.dumps(
            [
                {"word": "a", "gains_db": gains[0].tolist()},
                {"word": "b", "gains_db": gains[1].tolist()},
            ]
        )
    )
    loaded = curves.load_curves(path)
    np.testing.assert_array_equal(loaded.freqs, curves.CURVE_FREQS)
    again = curves.load_curves(curves.save_curves(tmp_path / "again.json", loaded))
    assert again.words == loaded.words
    np.testing.assert_array_equal(again.gains_db, loaded.gains_db)
    assert not list(tmp_path.glob(".*tmp*"))


def _entries(n=4):
    return [{"word": f"w{i}", "gains_db": [0.0] * 40} for i in range(n)]


def test_malformed_entries_name_their_index(tmp_path):
    entries = _entries()
    entries[1]["gains_db"] = [0.0] * 39
    entries[2]["gains_db"][5] = "loud"
    entries[3]["count"] = -2
    entries.append({"gains_db": [0.0] * 40})
    entries.append({"word": "x", "gains_db": [0.0] * 40, "agreement": "high"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(
        ValueError,
        match=r"5 malformed entries.*entry 1: 'gains_db' has 39 values, "
        r"expected 40.*entry 2: gains_db\[5\].*entry 3: 'count'"
        r".*entry 4: 'word'.*entry 5: 'agreement'",
    ):
        curves.load_curves(path)
    skipped = curves.load_curves(path, on_malformed="skip")
    assert skipped.words == ("w0",)
    assert [index for index, _ in skipped.skipped] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "document, message",
    [
        ({"entries": []}, "non-empty list"),
        ({"curves": []}, "must hold 'entries'"),
        ({"freqs": [100, 50], "entries": _entries(1)}, "strictly increasing"),
        ({"freqs": [100, 30_000], "entries": _entries(1)}, "below Nyquist"),
        ({"freqs": [100, 200], "entries": _entries(1)}, "has 40 values, expected 2"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_documents(document, message):
    with pytest.raises(ValueError, match=message):
        curves.parse_curves(document)


def test_bad_files_and_fit_arguments(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"word": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        curves.load_curves(path)
    with pytest.raises(FileNotFoundError):
        curves.load_curves(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="41 bands but freqs has 40"):
        curves.fit_curves(np.zeros((2, 41)))
    with pytest.raises(ValueError, match="finite"):
        curves.fit_curves(np.full((1, 40), np.nan))
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        curves.fit_curves(np.zeros((1, 40)), restarts=0)
