"""Magnitude response against scipy and against analytic properties of the RBJ filters."""

import jax
import numpy as np
import pytest
import scipy.signal

from neuraleq_jax.data.synthetic import make_synthetic
from neuraleq_jax.model import paramspace as ps
from neuraleq_jax.model import response

# called through jit: run eagerly, each primitive of a response would compile on its own
STATIC = ("sample_rate", "layout")
magnitude_response_db = jax.jit(response.magnitude_response_db, static_argnames=STATIC)
band_responses_db = jax.jit(response.band_responses_db, static_argnames=STATIC)
biquad_coefficients = jax.jit(response.biquad_coefficients, static_argnames=STATIC)


def single_band(band, gain, freq, q):
    x = ps.flat_setting()
    x[3 * band : 3 * band + 3] = gain, freq, q
    return x


@pytest.mark.parametrize("sample_rate", [44_100.0, 48_000.0])
def test_matches_scipy_freqz_of_same_coefficients(sample_rate):
    settings = make_synthetic(per_word=8, seed=3).settings
    extremes = np.stack([ps.DEFAULT_LAYOUT.lower, ps.DEFAULT_LAYOUT.upper]).astype(np.float32)
    settings = np.concatenate([settings, extremes])
    freqs = np.geomspace(10.0, 0.45 * sample_rate, 300)
    ours = np.asarray(magnitude_response_db(settings, freqs, sample_rate))
    for row, setting in zip(ours, settings):
        sos = response.second_order_sections(setting, sample_rate)
        _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=sample_rate)
        np.testing.assert_allclose(row, 20 * np.log10(np.abs(h)), atol=1e-3)


def test_jax_coefficients_match_host_sections():
    setting = make_synthetic(per_word=1, seed=1).settings[0]
    b, a = biquad_coefficients(setting)
    sos = response.second_order_sections(setting)
    np.testing.assert_allclose(np.asarray(b), sos[:, :3], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(a), sos[:, 3:], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "band,gain,freq,q", [(1, 7.5, 400.0, 3.0), (2, -9.0, 1500.0, 0.5), (3, 12.0, 10_000.0, 8.0)]
)
def test_peaking_band_gives_its_gain_at_its_centre(band, gain, freq, q):
    at_centre = magnitude_response_db(single_band(band, gain, freq, q), np.array([freq]))
    assert float(at_centre[0]) == pytest.approx(gain, abs=1e-3)


@pytest.mark.parametrize("gain", [9.0, -6.0])
def test_shelves_reach_gain_inside_and_zero_outside(gain):
    freqs = np.array([5.0, 20_000.0])
    low = np.asarray(magnitude_response_db(single_band(0, gain, 100.0, 0.707), freqs))
    assert low[0] == pytest.approx(gain, abs=0.05) and low[1] == pytest.approx(0.0, abs=0.05)
    freqs = np.array([200.0, 23_500.0])
    high = np.asarray(magnitude_response_db(single_band(4, gain, 9000.0, 0.707), freqs))
    assert high[0] == pytest.approx(0.0, abs=0.05) and high[1] == pytest.approx(gain, abs=0.1)


def test_zero_gain_setting_is_flat():
    settings = make_synthetic(per_word=4, seed=0).settings.copy()
    settings[:, ps.DEFAULT_LAYOUT.gain_indices] = 0.0
    np.testing.assert_allclose(np.asarray(response.reference_response_db(settings)), 0.0, atol=1e-4)


def test_response_is_sum_of_bands_and_reference_grid():
    grid = response.REFERENCE_FREQS
    assert grid.shape == (256,)
    assert grid[0] == pytest.approx(20) and grid[-1] == pytest.approx(20_000, rel=1e-6)
    np.testing.assert_allclose(np.diff(np.log(grid)), np.log(1000) / 255, rtol=1e-4)
    setting = make_synthetic(per_word=1, seed=2).settings[3]
    bands = np.asarray(band_responses_db(setting))
    for index in range(5):
        alone = magnitude_response_db(single_band(index, *setting[3 * index : 3 * index + 3]))
        np.testing.assert_allclose(bands[index], np.asarray(alone), atol=1e-4)


def test_gradient_finite_everywhere_in_range():
    layout = ps.DEFAULT_LAYOUT
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 2, (64, 15))
    settings = np.where(corners, layout.upper, layout.lower).astype(np.float32)
    settings = np.concatenate([settings, make_synthetic(per_word=8).settings])
    loss = lambda x: response.reference_response_db(x).sum()
    grads = np.asarray(jax.jit(jax.vmap(jax.grad(loss)))(settings))
    assert np.all(np.isfinite(grads))
    assert np.all(np.abs(grads[:, layout.gain_indices]).sum(axis=0) > 0)


def test_batches_broadcast():
    x = make_synthetic(per_word=3).settings.reshape(4, 6, 15)
    out = np.asarray(response.reference_response_db(x))
    assert out.shape == (4, 6, 256)
    np.testing.assert_allclose(
        out[2, 1], np.asarray(response.reference_response_db(x[2, 1])), atol=1e-5
    )


def test_sections_refuse_frequencies_above_nyquist():
    with pytest.raises(ValueError, match="below Nyquist"):
        response.second_order_sections(ps.DEFAULT_LAYOUT.upper, sample_rate=16_000)


@pytest.mark.parametrize("shape", [(2, 14), (15, 2), ()])
def test_a_setting_of_the_wrong_width_is_refused_in_words(shape):
    """A ValueError naming the layout, not a reshape TypeError from inside the bands."""
    message = r"settings must have shape \[\.\.\., 15\] \(band1_gain, band1_freq, band1_q"
    with pytest.raises(ValueError, match=message):
        response.magnitude_response_db(np.zeros(shape))
    with pytest.raises(ValueError, match=message):  # also while tracing
        response.reference_response_db(np.zeros(shape))
