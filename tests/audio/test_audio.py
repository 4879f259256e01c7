"""Tests for neuraleq_jax.audio.filtering: filtering against the computed response, strength, loudness
(BS.1770 against analytic values and EBU Tech 3341 cases), peaks, and the file round trip."""

import hashlib
import json
import math
import os

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from neuraleq_jax.audio import filtering
from neuraleq_jax.audio.filtering import ClippingError, ClippingWarning, apply_eq, apply_eq_to_file
from neuraleq_jax.model import paramspace, response

# [gain dB, freq Hz, Q] × 5: range edges, big boosts/cuts, Q = 10 bells, and a mixed one
EXTREMES = {
    "boost_narrow": [12, 20, 2, 12, 200, 10, -12, 3200, 10, 12, 12800, 10, 12, 20000, 2],
    "cut_wide": [-12, 200, 0.1, -12, 800, 0.1, -12, 800, 0.1, -12, 3200, 0.1, -12, 8000, 0.1],
    "notches": [6, 50, 0.7, 12, 400, 10, -12, 1000, 10, 12, 6000, 10, -6, 10000, 0.7],
    "mixed": [-9, 120, 1.5, 9, 250, 3, 6, 2500, 0.5, -12, 9000, 5, 9, 15000, 1.0],
}
GENTLE = np.array([3, 100, 0.7, -2, 400, 1, 1, 1500, 2, 2, 5000, 1, -3, 10000, 0.7], float)


def random_setting(seed: int) -> np.ndarray:
    """An in-range setting: gains uniform, frequency and Q log-uniform (independent of the code)."""
    rng = np.random.default_rng(seed)
    layout = paramspace.DEFAULT_LAYOUT
    low, high = layout.lower, layout.upper
    unit = rng.uniform(size=layout.n_params)
    linear = low + unit * (high - low)
    logarithmic = np.exp(np.log(np.abs(low)) + unit * np.log(np.abs(high / low)))
    return np.where(layout.log_scaled, logarithmic, linear)


def noise(seconds: float, sample_rate: int, channels: int = 0, scale: float = 0.05, seed=0):
    shape = (int(seconds * sample_rate),) + ((channels,) if channels else ())
    return scale * np.random.default_rng(seed).standard_normal(shape)


def sine(freq: float, peak_dbfs: float, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return 10 ** (peak_dbfs / 20) * np.sin(2 * np.pi * freq * t)


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ------------------------------------------------------------------ filter against the response


def welch_gain_db(x, y, sample_rate):
    """Output/input PSD ratio in dB at the Welch frequencies between 50 Hz and 15 kHz."""
    freqs, pxx = scipy.signal.welch(x, sample_rate, nperseg=2**16)
    _, pyy = scipy.signal.welch(y, sample_rate, nperseg=2**16)
    keep = (freqs >= 50) & (freqs <= min(15_000, 0.44 * sample_rate))
    return freqs[keep], 10 * np.log10(pyy[keep] / pxx[keep])


@pytest.mark.parametrize("sample_rate", [44_100, 48_000])
def test_white_noise_spectrum_matches_computed_response(sample_rate):
    x = noise(20, sample_rate)
    settings = dict(EXTREMES, random_a=random_setting(1), random_b=random_setting(2))
    for name, setting in settings.items():
        y, report = apply_eq(x, sample_rate, np.asarray(setting, float))
        freqs, measured = welch_gain_db(x, y, sample_rate)
        expected = np.asarray(
            response.magnitude_response_db(np.array(report.filter_parameters), freqs, sample_rate)
        )
        assert np.abs(measured - expected).max() < 0.5, name
        # the check has teeth: the same setting evaluated at the other sample rate is off
        other = np.asarray(
            response.magnitude_response_db(
                np.array(report.filter_parameters), freqs, 92_100 - sample_rate
            )
        )
        if name == "boost_narrow":
            assert np.abs(measured - other).max() > 1.0


def test_16k_file_rate_lowers_bands_above_nyquist_and_reports_them():
    sample_rate = 16_000
    setting = np.array([3, 100, 0.7, -2, 400, 1, 4, 2000, 2, 6, 12_000, 2, -6, 15_000, 0.7])
    x = noise(20, sample_rate)
    y, report = apply_eq(x, sample_rate, setting)
    ceiling = 0.45 * sample_rate
    assert [(c.band, c.requested_hz, c.used_hz) for c in report.clamped_bands] == [
        (4, 12_000.0, ceiling),
        (5, 15_000.0, ceiling),
    ]
    assert report.setting == tuple(setting)  # the setting itself is kept in range
    assert report.filter_parameters[10] == ceiling and report.filter_parameters[13] == ceiling
    assert any("band 5" in note and "7200" in note for note in report.notes)
    freqs, measured = welch_gain_db(x, y, sample_rate)
    expected = response.magnitude_response_db(
        np.array(report.filter_parameters), freqs, sample_rate
    )
    assert np.abs(measured - np.asarray(expected)).max() < 0.5


def test_band_frequencies_are_lowered_only_above_0_45_fs():
    setting = np.array(EXTREMES["boost_narrow"], float)  # band 5 at 20 kHz
    _, at48 = filtering.clamp_band_frequencies(setting, 48_000)
    used, at44 = filtering.clamp_band_frequencies(setting, 44_100)
    assert at48 == ()
    assert len(at44) == 1 and at44[0].band == 5 and at44[0].used_hz == pytest.approx(19_845.0)
    assert used[13] == pytest.approx(19_845.0) and np.array_equal(used[:13], setting[:13])


def test_channels_are_filtered_independently_and_shapes_kept():
    x_TxC = noise(1, 48_000, channels=3)
    y_TxC, report = apply_eq(x_TxC, 48_000, GENTLE)
    assert y_TxC.shape == x_TxC.shape and (report.frames, report.channels) == (48_000, 3)
    for channel in range(3):
        y_T, _ = apply_eq(x_TxC[:, channel], 48_000, GENTLE)
        assert y_T.shape == (48_000,)
        np.testing.assert_array_equal(y_TxC[:, channel], y_T)
    sos = response.second_order_sections(GENTLE, 48_000)
    np.testing.assert_allclose(y_TxC, scipy.signal.sosfilt(sos, x_TxC, axis=0), rtol=0, atol=0)


def test_named_dict_setting_is_accepted():
    x = noise(0.5, 48_000)
    by_dict, _ = apply_eq(x, 48_000, paramspace.to_dicts(GENTLE)[0])
    by_array, _ = apply_eq(x, 48_000, GENTLE)
    np.testing.assert_allclose(by_dict, by_array, atol=1e-6)


# ------------------------------------------------------------------ strength


def test_strength_zero_is_the_identity():
    x = noise(1, 44_100, channels=2)
    for setting in EXTREMES.values():
        y, report = apply_eq(x, 44_100, np.array(setting, float), strength=0.0)
        np.testing.assert_array_equal(y, x)
        assert all(report.setting[i] == 0.0 for i in range(0, 15, 3))


def test_strength_scales_gains_and_clips_into_range():
    setting = np.array(EXTREMES["mixed"], float)
    gains = slice(0, 15, 3)
    half = filtering.scale_strength(setting, 0.5)
    np.testing.assert_array_equal(half[gains], setting[gains] / 2)
    np.testing.assert_array_equal(np.delete(half, np.s_[::3]), np.delete(setting, np.s_[::3]))
    _, report = apply_eq(noise(0.5, 48_000), 48_000, setting, strength=2.0)
    np.testing.assert_array_equal(report.setting[gains], np.clip(setting[gains] * 2, -12, 12))
    assert any("clipped" in note for note in report.notes)
    batch = filtering.scale_strength(np.stack([setting, setting]), np.array([0.0, 1.0]))
    np.testing.assert_array_equal(batch[0, gains], 0.0)
    np.testing.assert_array_equal(batch[1], setting)


@pytest.mark.parametrize("strength", [-0.5, float("nan"), float("inf"), "1", True, None])
def test_bad_strength_is_refused(strength):
    with pytest.raises(ValueError, match="strength"):
        apply_eq(noise(0.1, 48_000), 48_000, GENTLE, strength=strength)


def test_bad_setting_audio_and_options_are_refused():
    x = noise(0.1, 48_000)
    with pytest.raises(ValueError, match="band1_gain.*-12, 12"):
        apply_eq(x, 48_000, np.r_[20.0, GENTLE[1:]])
    with pytest.raises(ValueError, match="finite"):
        apply_eq(x, 48_000, np.r_[np.nan, GENTLE[1:]])
    with pytest.raises(ValueError, match="shape"):
        apply_eq(x, 48_000, GENTLE[:14])
    with pytest.raises(ValueError, match="one vector"):
        apply_eq(x, 48_000, np.stack([GENTLE, GENTLE]))
    with pytest.raises(ValueError, match="float"):
        apply_eq((x * 30_000).astype(np.int16), 48_000, GENTLE)
    with pytest.raises(ValueError, match="frames, channels"):
        apply_eq(np.zeros((2, 2, 2)), 48_000, GENTLE)
    with pytest.raises(ValueError, match="transpose"):
        apply_eq(noise(0.1, 48_000, channels=2).T, 48_000, GENTLE)
    with pytest.raises(ValueError, match="no samples"):
        apply_eq(np.zeros(0), 48_000, GENTLE)
    with pytest.raises(ValueError, match="NaN"):
        apply_eq(np.r_[x, np.nan], 48_000, GENTLE)
    with pytest.raises(ValueError, match="sample_rate"):
        apply_eq(x, 0, GENTLE)
    with pytest.raises(ValueError, match="match_loudness.*lufs"):
        apply_eq(x, 48_000, GENTLE, match_loudness="peak")
    with pytest.raises(ValueError, match="peak_mode.*limit"):
        apply_eq(x, 48_000, GENTLE, peak_mode="clip")


# ------------------------------------------------------------------ loudness


def test_rms_matching_equalises_rms():
    x = noise(2, 48_000, channels=2)
    y, report = apply_eq(x, 48_000, np.array(EXTREMES["boost_narrow"], float), match_loudness="rms")
    rms_in, rms_out = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(y**2))
    assert rms_out == pytest.approx(rms_in, rel=1e-6)
    assert report.loudness_in == pytest.approx(20 * np.log10(rms_in), abs=1e-9)
    assert report.loudness_out == pytest.approx(report.loudness_in, abs=1e-6)
    assert report.loudness_gain_db < -3  # a big boost needs a cut to match


def test_k_weighting_at_48k_is_the_published_filter():
    # ITU-R BS.1770-4, tables 1 and 2
    published = [
        [
            1.53512485958697,
            -2.69169618940638,
            1.19839281085285,
            1.0,
            -1.69065929318241,
            0.73248077421585,
        ],
        [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
    ]
    np.testing.assert_allclose(filtering.k_weighting_sos(48_000), published, rtol=0, atol=1e-12)


def test_k_weighting_at_other_rates_has_the_same_shape():
    freqs = np.array([20.0, 38.0, 100.0, 997.0, 1681.0, 4000.0, 10_000.0])
    _, h48 = scipy.signal.sosfreqz(filtering.k_weighting_sos(48_000), worN=freqs, fs=48_000)
    for rate in (44_100, 96_000):
        _, h = scipy.signal.sosfreqz(filtering.k_weighting_sos(rate), worN=freqs, fs=rate)
        # only bilinear warping differs, which is small below 10 kHz
        np.testing.assert_allclose(20 * np.log10(abs(h)), 20 * np.log10(abs(h48)), atol=0.05)
    # the −0.691 dB offset of the standard cancels the K-weighting gain at 997 Hz
    assert 20 * np.log10(abs(h48[3])) == pytest.approx(0.691, abs=1e-3)


@pytest.mark.parametrize("sample_rate", [44_100, 48_000])
def test_loudness_of_997hz_sines_is_analytic(sample_rate):
    # A 997 Hz sine of peak A in one channel reads 20·log10(A) + 10·log10(1/2) LUFS because the
    # K-weighting gain there equals the 0.691 dB offset; each extra identical channel adds
    # 10·log10(2). So −20 dBFS peak: −23.01 LUFS mono, −20.00 LUFS on a stereo pair.
    tone = sine(997, -20, 10, sample_rate)
    half_db = 10 * np.log10(0.5)
    assert filtering.integrated_loudness(tone, sample_rate) == pytest.approx(
        -20 + half_db, abs=0.01
    )
    stereo = np.stack([tone, tone], axis=1)
    assert filtering.integrated_loudness(stereo, sample_rate) == pytest.approx(-20.0, abs=0.01)
    full = sine(997, 0, 10, sample_rate)
    assert filtering.integrated_loudness(full, sample_rate) == pytest.approx(half_db, abs=0.01)


def ebu_stereo(segments, sample_rate=48_000):
    """EBU Tech 3341 test signals: 1 kHz sines, (dBFS, seconds) segments, both channels."""
    tone = np.concatenate([sine(1000, level, seconds, sample_rate) for level, seconds in segments])
    return np.stack([tone, tone], axis=1)


@pytest.mark.parametrize(
    "segments",
    [
        [(-23, 20)],  # case 1
        [(-33, 20)],  # case 2 (expects -33)
        [(-36, 10), (-23, 60), (-36, 10)],  # case 3: relative gate
        [(-72, 10), (-36, 10), (-23, 20), (-36, 10), (-72, 10)],  # case 4: both gates
        [(-26, 20), (-20, 20.1), (-26, 20)],  # case 5: power mean
    ],
)
def test_ebu_tech_3341_minimum_requirements(segments):
    expected = -33.0 if segments == [(-33, 20)] else -23.0
    assert filtering.integrated_loudness(ebu_stereo(segments), 48_000) == pytest.approx(
        expected, abs=0.1
    )


def test_loudness_gates_channel_weights_and_edge_cases():
    rate = 48_000
    tone = sine(997, -20, 5, rate)
    alone = filtering.integrated_loudness(tone, rate)
    with_silence = filtering.integrated_loudness(np.r_[tone, np.zeros(20 * rate)], rate)
    # silent blocks fall below the absolute gate; the 47 blocks inside the tone and the three
    # that overlap its end by 75, 50 and 25 % remain: a power mean of 48.5 / 50 of the tone's
    assert with_silence == pytest.approx(alone + 10 * np.log10(48.5 / 50), abs=0.005)
    assert filtering.integrated_loudness(np.zeros(rate), rate) == -math.inf
    short = sine(997, 0, 0.2, rate)  # shorter than a 400 ms block: one block
    assert filtering.integrated_loudness(short, rate) == pytest.approx(10 * np.log10(0.5), abs=0.05)
    surround = np.zeros((5 * rate, 6))
    surround[:, 3] = tone  # the LFE channel does not count
    assert filtering.integrated_loudness(surround, rate) == -math.inf
    surround[:, 3], surround[:, 4] = 0.0, tone  # a surround channel weighs 1.41
    assert filtering.integrated_loudness(surround, rate) == pytest.approx(
        alone + 10 * np.log10(1.41), abs=1e-6
    )


def test_lufs_matching_equalises_integrated_loudness():
    x = noise(5, 44_100, channels=2)
    for setting in (EXTREMES["boost_narrow"], EXTREMES["cut_wide"]):
        y, report = apply_eq(x, 44_100, np.array(setting, float), match_loudness="lufs")
        assert filtering.integrated_loudness(y, 44_100) == pytest.approx(
            filtering.integrated_loudness(x, 44_100), abs=0.01
        )
        assert report.loudness_out == pytest.approx(report.loudness_in, abs=0.01)
        assert abs(report.loudness_gain_db) > 3


def test_silent_input_cannot_be_matched_and_says_so():
    y, report = apply_eq(np.zeros((4800, 2)), 48_000, GENTLE, match_loudness="lufs")
    assert not y.any() and report.loudness_gain_db == 0.0 and report.loudness_in is None
    assert any("not matched" in note for note in report.notes)
    assert report.peak_in_dbfs is None
    assert json.loads(report.to_json())["peak_out_dbfs"] is None  # strict JSON, no -Infinity


# ------------------------------------------------------------------ peaks

LOUD = np.array([12, 60, 1, 12, 400, 2, 0, 1000, 1, 12, 5000, 1, 12, 12000, 1], float)


def test_clipping_is_reported_and_warned_not_hidden():
    x = noise(1, 48_000, channels=2, scale=0.3)
    with pytest.warns(ClippingWarning, match="exceed 0 dBFS"):
        y, report = apply_eq(x, 48_000, LOUD)
    assert report.clipped_samples == np.count_nonzero(np.abs(y) > 1) > 0
    assert report.peak_out_dbfs == pytest.approx(20 * np.log10(np.abs(y).max()))
    assert report.peak_out_dbfs > 0 and report.limit_gain_db == 0
    json.loads(report.to_json())


def test_limit_scales_the_whole_output_to_minus_0_1_dbfs():
    x = noise(1, 48_000, channels=2, scale=0.3)
    with pytest.warns(ClippingWarning):
        raw, _ = apply_eq(x, 48_000, LOUD)
    limited, report = apply_eq(x, 48_000, LOUD, peak_mode="limit")
    assert 20 * np.log10(np.abs(limited).max()) == pytest.approx(-0.1, abs=1e-9)
    assert report.peak_out_dbfs == pytest.approx(-0.1, abs=1e-9) and report.clipped_samples == 0
    np.testing.assert_allclose(limited, raw * 10 ** (report.limit_gain_db / 20), rtol=1e-12)
    assert report.limit_gain_db < 0 and any("limited" in note for note in report.notes)
    quiet, quiet_report = apply_eq(x * 0.01, 48_000, LOUD, peak_mode="limit")
    assert quiet_report.limit_gain_db == 0.0
    np.testing.assert_allclose(quiet, raw * 0.01, rtol=0, atol=1e-12)


def test_limit_after_loudness_matching_reports_the_final_loudness():
    x = noise(2, 48_000, scale=0.3)
    y, report = apply_eq(x, 48_000, LOUD, match_loudness="rms", peak_mode="limit")
    assert report.loudness_out == pytest.approx(20 * np.log10(np.sqrt(np.mean(y**2))))
    assert report.peak_out_dbfs <= -0.1 + 1e-9


def test_error_mode_raises_with_the_report():
    with pytest.raises(ClippingError, match="dBFS") as caught:
        apply_eq(noise(1, 48_000, scale=0.3), 48_000, LOUD, peak_mode="error")
    assert caught.value.report.clipped_samples > 0


# ------------------------------------------------------------------ files


@pytest.mark.parametrize(
    "ext,subtype,channels",
    [
        ("wav", "PCM_16", 1),
        ("wav", "PCM_24", 2),
        ("wav", "FLOAT", 2),
        ("flac", "PCM_16", 2),
        ("flac", "PCM_24", 1),
    ],
)
def test_file_round_trip_keeps_length_channels_rate_and_subtype(tmp_path, ext, subtype, channels):
    rate = 44_100
    source = tmp_path / f"in.{ext}"
    sf.write(source, noise(0.7, rate, channels=channels, scale=0.1), rate, subtype=subtype)
    before = digest(source)
    out = tmp_path / f"out.{ext}"
    report = apply_eq_to_file(source, out, GENTLE, match_loudness="lufs")
    info_in, info_out = sf.info(source), sf.info(out)
    assert (info_out.frames, info_out.channels, info_out.samplerate, info_out.subtype) == (
        info_in.frames,
        info_in.channels,
        info_in.samplerate,
        info_in.subtype,
    )
    assert (report.format, report.subtype, report.out_path) == (ext.upper(), subtype, str(out))
    data_in, _ = sf.read(source, always_2d=True)
    expected, _ = apply_eq(data_in, rate, GENTLE, match_loudness="lufs")
    written, _ = sf.read(out, always_2d=True)
    lsb = {"PCM_16": 2**-15, "PCM_24": 2**-23, "FLOAT": 1e-7}[subtype]
    np.testing.assert_allclose(written, expected, atol=lsb)
    assert digest(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, out.name])


def test_file_subtype_falls_back_or_follows_the_caller(tmp_path):
    source = tmp_path / "in.wav"
    sf.write(source, noise(0.3, 48_000, scale=0.1), 48_000, subtype="FLOAT")
    report = apply_eq_to_file(source, tmp_path / "out.flac", GENTLE)
    assert report.subtype == sf.default_subtype("FLAC") == sf.info(tmp_path / "out.flac").subtype
    assert any("FLOAT" in note for note in report.notes)
    report = apply_eq_to_file(source, tmp_path / "out24.flac", GENTLE, subtype="PCM_24")
    assert sf.info(tmp_path / "out24.flac").subtype == "PCM_24"
    with pytest.raises(ValueError, match="PCM_16"):
        apply_eq_to_file(source, tmp_path / "bad.flac", GENTLE, subtype="FLOAT")
    assert not (tmp_path / "bad.flac").exists()


def test_pcm_output_notes_the_clipping_it_causes(tmp_path):
    source = tmp_path / "in.wav"
    sf.write(source, noise(0.5, 48_000, scale=0.3), 48_000, subtype="PCM_16")
    with pytest.warns(ClippingWarning):
        report = apply_eq_to_file(source, tmp_path / "out.wav", LOUD)
    assert report.clipped_samples > 0 and any("clipped by the PCM_16" in n for n in report.notes)
    assert np.abs(sf.read(tmp_path / "out.wav")[0]).max() <= 1.0


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(path, noise(0.3, 48_000, channels=2, scale=0.1), 48_000, subtype="PCM_24")
    return path


def test_bad_file_requests_are_refused_and_the_input_is_untouched(tmp_path, wav):
    before = digest(wav)
    with pytest.raises(FileNotFoundError, match="not found"):
        apply_eq_to_file(tmp_path / "missing.wav", tmp_path / "o.wav", GENTLE)
    for name in ("o.mp4", "o.txt", "o"):
        with pytest.raises(ValueError, match=r"unsupported output format.*\.wav.*") as caught:
            apply_eq_to_file(wav, tmp_path / name, GENTLE)
        assert ".flac" in str(caught.value)
    with pytest.raises(FileExistsError, match="is the input file.*overwrite=True"):
        apply_eq_to_file(wav, wav, GENTLE)
    link = tmp_path / "link.wav"
    link.symlink_to(wav)
    with pytest.raises(FileExistsError, match="is the input file"):
        apply_eq_to_file(wav, link, GENTLE)
    with pytest.raises(FileExistsError, match="is the input file"):
        apply_eq_to_file(wav, tmp_path / "." / ".." / tmp_path.name / "in.wav", GENTLE)
    for strength in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            apply_eq_to_file(wav, tmp_path / "o.wav", GENTLE, strength=strength)
    with pytest.raises(ClippingError):
        apply_eq_to_file(wav, tmp_path / "o.wav", LOUD, peak_mode="error")
    with pytest.raises(FileNotFoundError, match="output folder"):
        apply_eq_to_file(wav, tmp_path / "nowhere" / "o.wav", GENTLE)
    assert digest(wav) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "link.wav"]


def test_unreadable_input_is_refused(tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_text("not audio")
    before = digest(fake)
    with pytest.raises(ValueError, match="cannot read.*fake.wav"):
        apply_eq_to_file(fake, tmp_path / "o.wav", GENTLE)
    assert digest(fake) == before and not (tmp_path / "o.wav").exists()


def test_existing_output_needs_overwrite(tmp_path, wav):
    other = tmp_path / "other.wav"
    other.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="output exists"):
        apply_eq_to_file(wav, other, GENTLE)
    assert other.read_bytes() == b"keep me"
    apply_eq_to_file(wav, other, GENTLE, overwrite=True)
    assert sf.info(other).frames == sf.info(wav).frames


def test_overwrite_replaces_the_input_in_place(tmp_path, wav):
    data, rate = sf.read(wav, always_2d=True)
    apply_eq_to_file(wav, wav, GENTLE, overwrite=True)
    expected, _ = apply_eq(data, rate, GENTLE)
    np.testing.assert_allclose(sf.read(wav, always_2d=True)[0], expected, atol=2**-23)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(wav).st_mode & 0o777 == 0o666 & ~umask  # not a private temp file's 0600


def test_a_long_file_shows_a_progress_bar_and_gives_the_same_bytes(tmp_path, monkeypatch, capsys):
    """Issue 28, 11b: a long file is filtered and written in pieces with a bar on stderr; the
    pieces carry the filter state over, so the output file is byte for byte the one-piece one
    (and the filtered samples equal scipy's single sosfilt call)."""
    monkeypatch.setattr(filtering, "CHUNK_FRAMES", 1000)  # 9,600 frames: 10 pieces, a long file
    source = tmp_path / "in.wav"
    sf.write(source, noise(0.2, 48_000, channels=2), 48_000, subtype="FLOAT")
    plain, shown = tmp_path / "plain.wav", tmp_path / "shown.wav"
    apply_eq_to_file(source, plain, GENTLE, match_loudness="lufs")
    assert "filtering and writing" not in capsys.readouterr().err  # no bar unless asked
    bars = []
    monkeypatch.setattr(filtering, "tqdm", lambda **kw: bars.append(_Counter(**kw)) or bars[-1])
    apply_eq_to_file(source, shown, GENTLE, match_loudness="lufs", progress=True)
    assert [(bar.frames, bar.total, bar.closed) for bar in bars] == [(2 * 9600, 2 * 9600, True)]
    assert digest(shown) == digest(plain)
    monkeypatch.undo()
    monkeypatch.setattr(filtering, "CHUNK_FRAMES", 1000)
    apply_eq_to_file(source, tmp_path / "on_screen.wav", GENTLE, progress=True)
    assert "filtering and writing" in capsys.readouterr().err  # the real bar, on stderr
    x, _ = sf.read(source, dtype="float64")
    sos = response.second_order_sections(GENTLE, 48_000)
    pieces, _ = filtering.apply_eq(x, 48_000, GENTLE, progress=_Counter())
    np.testing.assert_array_equal(pieces, scipy.signal.sosfilt(sos, x, axis=0))


class _Counter:
    """A stand-in progress bar that counts the frames it is told of."""

    def __init__(self, total=None, **_):
        self.frames, self.total, self.closed = 0, total, False

    def update(self, n):
        self.frames += n

    def close(self):
        self.closed = True

    def __enter__(self):  # as tqdm: a bar used in a with block closes when it ends
        return self

    def __exit__(self, *exc_info):
        self.close()


def test_a_short_file_shows_no_bar(tmp_path, capsys):
    source = tmp_path / "in.wav"
    sf.write(source, noise(0.1, 48_000), 48_000)
    apply_eq_to_file(source, tmp_path / "out.wav", GENTLE, progress=True)
    assert capsys.readouterr().err == ""
