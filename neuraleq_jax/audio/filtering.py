"""Apply an EQ setting to audio: filtering, strength, loudness matching and peak handling.

Audio arrays are float ``[T]`` (mono) or ``[T, C]`` (frames × channels), full scale ±1.0; a
setting is a physical ``[n_params]`` vector (:mod:`neuraleq_jax.model.paramspace`) or a named dict.
The filter is the setting's RBJ biquads run with ``scipy.signal.sosfilt`` in float64 at the
audio's sample rate, zero initial state, output as long as the input. Band frequencies above
``NYQUIST_FRACTION × sample_rate`` are lowered to it (a band near Nyquist is badly warped or
unrealisable), and the report lists each change. Nothing is clipped silently: the report gives
the output peak and the sample values above full scale; ``peak_mode="limit"`` scales the output
down to a −0.1 dBFS peak and ``peak_mode="error"`` raises :class:`ClippingError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
from tqdm import tqdm

from neuraleq_jax.audio import loudness
from neuraleq_jax.checks import real as _check_real
from neuraleq_jax.checks import strength as _check_strength
from neuraleq_jax.fileio import atomic_path
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout
from neuraleq_jax.model.response import second_order_sections

NYQUIST_FRACTION = 0.45
LIMIT_CEILING_DBFS = -0.1
LOUDNESS_MODES = (None, "rms", "lufs")
PEAK_MODES = ("report", "limit", "error")
# frames filtered or written at once on the progress path; a file over PROGRESS_CHUNKS of them
# shows a progress bar (a shorter one is done before a bar would be read)
CHUNK_FRAMES = 1 << 18
PROGRESS_CHUNKS = 4
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # file subtypes that hold values beyond full scale
_MAX_CHANNELS = 256  # more than this is almost surely a channels-first [C, T] array


class ClippingError(ValueError):
    """Raised by ``peak_mode="error"`` when the output exceeds 0 dBFS; carries the report."""

    def __init__(self, message: str, report: EQReport):
        super().__init__(message)
        self.report = report


class ClippingWarning(UserWarning):
    """Issued by ``peak_mode="report"`` when the output exceeds 0 dBFS."""


@dataclasses.dataclass(frozen=True)
class ClampedBand:
    """A band whose frequency was lowered below Nyquist (``band`` counts from 1)."""

    band: int
    kind: str
    requested_hz: float
    used_hz: float


@dataclasses.dataclass(frozen=True)
class EQReport:
    """What :func:`apply_eq` did. Levels in dB; ``None`` where a level is −∞ or not measured.

    Attributes:
      setting: the in-range setting after strength, ``[n_params]``.
      filter_parameters: what the filter used: ``setting`` with clamped band frequencies.
      loudness_in, loudness_out: dBFS RMS (``"rms"``) or LUFS (``"lufs"``), over all channels.
      loudness_gain_db: gain applied to match loudness (0 without matching).
      peak_in_dbfs, peak_out_dbfs: sample peaks; ``peak_out_dbfs`` is of the returned float data.
      clipped_samples: sample values (all channels) beyond full scale (±1.0) in the returned
        data; an integer PCM file clips them when written, a float file keeps them.
      limit_gain_db: gain applied by ``peak_mode="limit"`` (0 when not needed).
      in_path, out_path, format, subtype: set by :func:`apply_eq_to_file`.
    """

    sample_rate: float
    frames: int
    channels: int
    strength: float
    setting: tuple[float, ...]
    filter_parameters: tuple[float, ...]
    clamped_bands: tuple[ClampedBand, ...]
    match_loudness: str | None
    loudness_in: float | None
    loudness_out: float | None
    loudness_gain_db: float
    peak_mode: str
    peak_in_dbfs: float | None
    peak_out_dbfs: float | None
    clipped_samples: int
    limit_gain_db: float
    notes: tuple[str, ...] = ()
    in_path: str | None = None
    out_path: str | None = None
    format: str | None = None
    subtype: str | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(dataclasses.asdict(self), indent=indent, allow_nan=False)


def _db(value: float) -> float | None:
    """20·log10 of an amplitude; ``None`` for silence so that reports stay strict JSON."""
    return 20.0 * math.log10(value) if value > 0 else None


def _check_audio(audio) -> np.ndarray:
    """Float audio ``[T]`` or ``[T, C]`` → float64 ``[T, C]`` (a copy), with clear errors."""
    array = np.asarray(audio)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"audio must be a float array in [-1, 1] (e.g. soundfile.read(..., "
            f"dtype='float64')); got dtype {array.dtype}"
        )
    if array.ndim not in (1, 2):
        raise ValueError(f"audio must be [frames] or [frames, channels]; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"audio has no samples (shape {array.shape})")
    array = array.astype(np.float64).reshape(array.shape[0], -1)
    frames, channels = array.shape
    if channels > _MAX_CHANNELS:
        raise ValueError(
            f"audio has shape {np.shape(audio)}: {channels} channels is more than "
            f"{_MAX_CHANNELS}; arrays are [frames, channels] (transpose a "
            f"channels-first array)"
        )
    if not np.isfinite(array).all():
        raise ValueError("audio contains NaN or infinite samples")
    return array


def _check_setting(setting, layout: EQLayout) -> np.ndarray:
    """One setting (array or named dict) → validated float64 ``[n_params]``."""
    if isinstance(setting, Mapping):
        paramspace.from_dicts([setting], layout)  # raises on missing or bad values
        setting = [setting[name] for name in layout.param_names]
    checked = paramspace.validate(setting, layout, name="setting")
    if checked.ndim != 1:
        raise ValueError(
            f"setting must be one vector of {layout.n_params} values; got shape {checked.shape}"
        )
    # validate() returns float32; re-read the caller's values so filtering stays float64
    return np.clip(np.asarray(setting, np.float64), layout.lower, layout.upper)


def scale_strength(setting, strength, layout: EQLayout = DEFAULT_LAYOUT) -> np.ndarray:
    """Scale the gains of settings toward flat: ``gain · strength``, clipped into the range.

    Args:
      setting: physical ``[..., n_params]``.
      strength: a finite number ≥ 0, or an array of them broadcastable to ``setting[..., 0]``:
        0 = flat (identity filter), 1 = unchanged, > 1 = exaggerated (gains clipped to range).
    Returns:
      float64 ``[..., n_params]``; frequencies and Q are unchanged.
    """
    try:
        strength = np.asarray(strength, dtype=np.float64)
        valid = bool(np.isfinite(strength).all() and (strength >= 0).all())
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            "strength must be finite and >= 0 (0 = flat, 1 = as given, "
            f"> 1 exaggerates); got {strength!r}"
        )
    setting = np.asarray(setting, dtype=np.float64)
    paramspace.check_shape(setting.shape, layout, "setting")
    return paramspace.scale_gains(setting, strength, layout, xp=np)


def clamp_band_frequencies(
    params, sample_rate: float, layout: EQLayout = DEFAULT_LAYOUT
) -> tuple[np.ndarray, tuple[ClampedBand, ...]]:
    """Lower band frequencies above ``NYQUIST_FRACTION · sample_rate`` to that frequency.

    Args:
      params: physical ``[n_params]``.
      sample_rate: in Hz.
    Returns:
      ``(params_used [n_params] float64, clamped bands)``. ``params_used`` may lie below a
      band's frequency range: it describes the filter, not a setting.
    """
    used = np.array(params, dtype=np.float64)
    ceiling = NYQUIST_FRACTION * float(sample_rate)
    clamped = []
    for band, index in enumerate(layout.freq_indices):
        if used[index] > ceiling:
            clamped.append(ClampedBand(band + 1, layout.kinds[band], float(used[index]), ceiling))
            used[index] = ceiling
    return used, tuple(clamped)


def k_weighting_sos(sample_rate: float) -> np.ndarray:
    """BS.1770 K-weighting (pre-filter shelf, then RLB high-pass) as float64 ``[2, 6]`` sections."""
    return loudness.k_weighting_sections(_check_real(sample_rate, "sample_rate", minimum=1e-9))


def integrated_loudness(audio, sample_rate: float) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (−inf if every block is below −70 LUFS).

    K-weighting, mean square over 400 ms blocks with 75 % overlap, channel weights 1.0 (for six
    channels the 5.1 order L R C LFE Ls Rs with weights 1, 1, 1, 0, 1.41, 1.41), an absolute
    gate at −70 LUFS and a relative gate 10 LU below the absolutely gated loudness. Audio
    shorter than one block is measured as a single block.

    Args:
      audio: float ``[T]`` or ``[T, C]``.
      sample_rate: in Hz.
    """
    sample_rate = _check_real(sample_rate, "sample_rate", minimum=1e-9)
    x_TxC = _check_audio(audio)
    return loudness.integrated_loudness(x_TxC, sample_rate)


def _loudness(x_TxC: np.ndarray, sample_rate: float, mode: str) -> float:
    if mode == "rms":
        rms = math.sqrt(float(np.mean(x_TxC**2)))
        return 20 * math.log10(rms) if rms > 0 else -math.inf
    return integrated_loudness(x_TxC, sample_rate)


def _finite_or_none(level: float) -> float | None:
    return level if math.isfinite(level) else None


def _filter_parameters(setting, strength: float, sample_rate: float, layout: EQLayout):
    """``(scaled setting, filter parameters, clamped bands, notes)``: the setting after
    strength, and what the filter uses (band frequencies lowered below Nyquist)."""
    scaled = scale_strength(setting, strength, layout)
    used, clamped = clamp_band_frequencies(scaled, sample_rate, layout)
    notes = [
        f"band {c.band} ({c.kind}) lowered from {c.requested_hz:g} Hz to {c.used_hz:g} Hz "
        f"({NYQUIST_FRACTION:g} x the {sample_rate:g} Hz sample rate)"
        for c in clamped
    ]
    clipped = paramspace.strength_clipped_bands(scaled, strength, layout)
    notes += [paramspace.strength_clipping_note(clipped, strength, layout)] if clipped else []
    return scaled, used, clamped, notes


def _match_loudness(x_TxC, y_TxC, sample_rate: float, mode: str | None):
    """``(output, loudness in, loudness out, gain dB, notes)``: ``y_TxC`` scaled in place to
    the loudness of ``x_TxC`` by ``mode`` (``None``: unchanged, levels not measured)."""
    if mode is None:
        return y_TxC, None, None, 0.0, []
    notes, gain_db = [], 0.0
    level_in = _loudness(x_TxC, sample_rate, mode)
    level_out = _loudness(y_TxC, sample_rate, mode)
    if math.isfinite(level_in) and math.isfinite(level_out):
        gain_db = level_in - level_out
        y_TxC *= 10.0 ** (gain_db / 20.0)
    else:
        notes.append(
            f"loudness not matched: input or output is silent (below the "
            f"{'-70 LUFS gate' if mode == 'lufs' else 'RMS floor'})"
        )
    measured = _loudness(y_TxC, sample_rate, mode)
    return y_TxC, _finite_or_none(level_in), _finite_or_none(measured), gain_db, notes


def _limit_peaks(y_TxC, peak_mode: str):
    """``(output, limit gain dB, notes)``: with ``peak_mode="limit"``, ``y_TxC`` scaled in place
    down to a ``LIMIT_CEILING_DBFS`` peak when it is higher; otherwise unchanged."""
    peak = float(np.max(np.abs(y_TxC)))
    ceiling = 10.0 ** (LIMIT_CEILING_DBFS / 20.0)
    if peak_mode != "limit" or peak <= ceiling:
        return y_TxC, 0.0, []
    limit_gain_db = LIMIT_CEILING_DBFS - 20.0 * math.log10(peak)
    y_TxC *= ceiling / peak
    note = (
        f"limited: whole output scaled by {limit_gain_db:.2f} dB to a "
        f"{LIMIT_CEILING_DBFS:g} dBFS peak"
    )
    return y_TxC, limit_gain_db, [note]


def apply_eq(
    audio,
    sample_rate: float,
    setting,
    strength: float = 1.0,
    match_loudness: str | None = None,
    peak_mode: str = "report",
    layout: EQLayout = DEFAULT_LAYOUT,
    progress=None,
) -> tuple[np.ndarray, EQReport]:
    """Filter audio with an EQ setting.

    Args:
      audio: float ``[T]`` or ``[T, C]`` samples, full scale ±1.0.
      sample_rate: the audio's sample rate in Hz.
      setting: physical ``[n_params]`` (dB, Hz, Q) or a named dict; must be in range.
      strength: ≥ 0; scales the gains toward flat (see :func:`scale_strength`).
      match_loudness: ``None``, ``"rms"`` (output RMS = input RMS) or ``"lufs"``
        (output BS.1770 integrated loudness = the input's).
      peak_mode: ``"report"`` (leave peaks, report them, warn on clipping), ``"limit"`` (scale
        the whole output down to a −0.1 dBFS peak when it is higher) or ``"error"`` (raise
        :class:`ClippingError` when the output exceeds 0 dBFS).
      layout: the setting's band layout.
      progress: None, or a bar the filtering advances per frame (the same result either way).
    Returns:
      ``(out, report)``: float64 audio of the input's shape, and an :class:`EQReport`.
    """
    sample_rate, strength = _check_options(sample_rate, strength, match_loudness, peak_mode)
    x_TxC, setting = _check_audio(audio), _check_setting(setting, layout)
    scaled, used, clamped, notes = _filter_parameters(setting, strength, sample_rate, layout)
    y_TxC = _filter(second_order_sections(used, sample_rate, layout), x_TxC, progress)
    y_TxC, loudness_in, loudness_out, loudness_gain_db, loudness_notes = _match_loudness(
        x_TxC, y_TxC, sample_rate, match_loudness
    )
    y_TxC, limit_gain_db, limit_notes = _limit_peaks(y_TxC, peak_mode)
    if limit_gain_db != 0.0 and match_loudness is not None and loudness_out is not None:
        loudness_out = _finite_or_none(_loudness(y_TxC, sample_rate, match_loudness))
    clipped = int(np.count_nonzero(np.abs(y_TxC) > 1.0))
    report = EQReport(
        sample_rate=sample_rate,
        frames=x_TxC.shape[0],
        channels=x_TxC.shape[1],
        strength=strength,
        setting=tuple(map(float, scaled)),
        filter_parameters=tuple(map(float, used)),
        clamped_bands=clamped,
        match_loudness=match_loudness,
        loudness_in=loudness_in,
        loudness_out=loudness_out,
        loudness_gain_db=loudness_gain_db,
        peak_mode=peak_mode,
        peak_in_dbfs=_db(float(np.max(np.abs(x_TxC)))),
        peak_out_dbfs=_db(float(np.max(np.abs(y_TxC)))),
        clipped_samples=clipped,
        limit_gain_db=limit_gain_db,
        notes=tuple(notes + loudness_notes + limit_notes),
    )
    if clipped:
        _signal_clipping(report, peak_mode)
    return y_TxC.reshape(np.shape(audio)), report


def _filter(sos_Kx6: np.ndarray, x_TxC: np.ndarray, progress) -> np.ndarray:
    """``sosfilt`` along time; with a progress bar, in pieces of CHUNK_FRAMES whose filter
    state carries over, which gives the same samples as one call."""
    if progress is None:
        return scipy.signal.sosfilt(sos_Kx6, x_TxC, axis=0)
    y_TxC = np.empty_like(x_TxC)
    state = np.zeros((sos_Kx6.shape[0], 2, x_TxC.shape[1]))
    for start in range(0, x_TxC.shape[0], CHUNK_FRAMES):
        piece = slice(start, start + CHUNK_FRAMES)
        y_TxC[piece], state = scipy.signal.sosfilt(sos_Kx6, x_TxC[piece], axis=0, zi=state)
        progress.update(len(x_TxC[piece]))
    return y_TxC


def _progress_bar(frames: int, show: bool):
    """A bar over filtering and writing ``frames`` (2 steps a frame) on stderr, or
    ``nullcontext(None)`` (no bar: the whole file in one piece) where ``show`` is false or the
    file is short."""
    if not show or frames <= PROGRESS_CHUNKS * CHUNK_FRAMES:
        return contextlib.nullcontext(None)
    return tqdm(
        total=2 * frames,
        unit="frame",
        unit_scale=True,
        desc="filtering and writing",
        leave=False,
        file=sys.stderr,
    )


def _check_options(sample_rate, strength, match_loudness, peak_mode) -> tuple[float, float]:
    """``(sample rate, strength)`` checked, after checking the loudness and peak modes."""
    if match_loudness not in LOUDNESS_MODES:
        raise ValueError(f"match_loudness must be one of {LOUDNESS_MODES}; got {match_loudness!r}")
    if peak_mode not in PEAK_MODES:
        raise ValueError(f"peak_mode must be one of {PEAK_MODES}; got {peak_mode!r}")
    return _check_real(sample_rate, "sample_rate", minimum=1e-9), _check_strength(strength)


def _signal_clipping(report: EQReport, peak_mode: str) -> None:
    """Raise :class:`ClippingError` (``peak_mode="error"``) or warn that the output clips."""
    message = (
        f"output peak is {report.peak_out_dbfs:+.2f} dBFS: {report.clipped_samples} sample "
        f"value(s) exceed 0 dBFS (use peak_mode='limit', a lower strength or loudness matching)"
    )
    if peak_mode == "error":
        raise ClippingError(message, report)
    warnings.warn(message, ClippingWarning, stacklevel=3)


# ----------------------------------------------------------------------------- files

_EXTENSION_ALIASES = {"aif": "AIFF", "wave": "WAV"}


def output_formats() -> dict[str, str]:
    """Accepted output extensions (lower case, no dot) → soundfile format name."""
    formats = {name.lower(): name for name in sf.available_formats() if name != "RAW"}
    formats.update(
        {ext: name for ext, name in _EXTENSION_ALIASES.items() if name in formats.values()}
    )
    return dict(sorted(formats.items()))


def _output_format(out_path: Path) -> str:
    formats = output_formats()
    extension = out_path.suffix.lower().lstrip(".")
    if extension not in formats:
        raise ValueError(
            f"unsupported output format {out_path.suffix or '(no extension)'!r} "
            f"for {out_path}; accepted extensions: "
            f"{', '.join('.' + e for e in formats)}"
        )
    return formats[extension]


def _read_audio(in_path: Path) -> tuple[np.ndarray, int, str]:
    """``(samples [T, C] float64, sample rate, subtype)`` of an audio file."""
    try:
        info = sf.info(str(in_path))
        data_TxC, sample_rate = sf.read(str(in_path), dtype="float64", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as error:
        raise ValueError(_unreadable_message(in_path, error)) from None
    return data_TxC, sample_rate, info.subtype


def _unreadable_message(in_path: Path, error: Exception) -> str:
    return (
        f"cannot read {in_path} as audio ({error}); readable formats: "
        f"{', '.join(sorted(sf.available_formats()))}"
    )


def check_files(in_path, out_path, *, overwrite: bool = False) -> None:
    """Refuse at once what :func:`apply_eq_to_file` would refuse of its files (with the same
    errors), before anything slow runs: a missing input or one libsndfile cannot open, an
    output suffix that names no format, a missing output folder, an existing output without
    ``overwrite``."""
    in_path, out_path = Path(in_path), Path(out_path)
    _check_paths(in_path, out_path, overwrite)
    try:
        sf.info(str(in_path))
    except (sf.SoundFileError, RuntimeError) as error:
        raise ValueError(_unreadable_message(in_path, error)) from None


def _output_subtype(fmt: str, subtype: str | None, in_subtype: str) -> tuple[str, list[str]]:
    """``(subtype, notes)`` of the output: ``subtype`` if given (checked), else the input's
    where ``fmt`` supports it, else that format's default (noted)."""
    if subtype is not None:
        if not sf.check_format(fmt, subtype):
            raise ValueError(
                f"subtype {subtype!r} is not valid for {fmt} output; accepted: "
                f"{', '.join(sf.available_subtypes(fmt))}"
            )
        return subtype, []
    if sf.check_format(fmt, in_subtype):
        return in_subtype, []
    default = sf.default_subtype(fmt)
    return default, [f"input subtype {in_subtype} is not available in {fmt}; wrote {default}"]


def _write_atomically(
    out_path: Path, data_TxC: np.ndarray, sample_rate: int, fmt: str, subtype: str, bar=None
) -> None:
    """Write to a fresh temporary file beside ``out_path``, then rename it over the target
    (fsynced first, so that a full disk shows here rather than later); ``bar``, a progress bar
    advanced by one per frame written, or None."""
    with atomic_path(out_path) as temporary, open(temporary, "w+b", buffering=0) as stream:
        sink = _AudioSink(stream)
        try:
            _write_frames(sink, data_TxC, sample_rate, (fmt, subtype), bar)
        except (sf.SoundFileError, RuntimeError, AssertionError):  # soundfile asserts the count
            if sink.error is None:
                raise
        if sink.error is not None:  # libsndfile may not report a failed header update
            raise sink.error
        os.fsync(stream.fileno())


def _write_frames(sink, data_TxC: np.ndarray, sample_rate: int, kind: tuple, bar) -> None:
    """The frames into ``sink`` as ``kind`` = ``(format, subtype)``: in one piece, or in
    pieces of CHUNK_FRAMES with a progress bar (the same bytes: the header is written last)."""
    fmt, subtype = kind
    if bar is None:
        sf.write(sink, data_TxC, sample_rate, subtype=subtype, format=fmt)
        return
    channels = data_TxC.shape[1]
    with sf.SoundFile(sink, "w", sample_rate, channels, subtype, format=fmt) as out:
        for start in range(0, data_TxC.shape[0], CHUNK_FRAMES):
            piece = data_TxC[start : start + CHUNK_FRAMES]
            out.write(piece)
            bar.update(len(piece))


class _AudioSink:
    """The temporary output file as libsndfile sees it (virtual I/O): an ``OSError`` of the
    file system (a full disk) is kept for the caller to raise, where libsndfile itself would
    only say "System error."."""

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            while view:  # an unbuffered write may take only part; the next one says why
                view = view[self.stream.write(view) :]
        except OSError as error:
            self.error = error
            return 0
        return len(data)

    def read(self, size: int) -> bytes:
        return self.stream.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.stream.seek(offset, whence)

    def tell(self) -> int:
        return self.stream.tell()


def _check_paths(in_path: Path, out_path: Path, overwrite: bool) -> str:
    """The output's format, after checking that the input exists and the output may be written."""
    if not in_path.is_file():
        raise FileNotFoundError(f"input audio file not found (or not a file): {in_path}")
    fmt = _output_format(out_path)
    if not out_path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out_path.parent}")
    if out_path.exists() and not overwrite:
        same = os.path.samefile(in_path, out_path)
        raise FileExistsError(
            f"{'output path is the input file' if same else 'output exists'}: "
            f"{out_path}; pass overwrite=True to replace it"
        )
    return fmt


def apply_eq_to_file(
    in_path,
    out_path,
    setting,
    *,
    strength: float = 1.0,
    match_loudness: str | None = None,
    peak_mode: str = "report",
    overwrite: bool = False,
    subtype: str | None = None,
    layout: EQLayout = DEFAULT_LAYOUT,
    progress: bool = False,
) -> EQReport:
    """Read an audio file, apply :func:`apply_eq`, write the result; return the report.

    The output keeps the input's channels, length and sample rate. Its format follows the
    output's extension (see :func:`output_formats`); its subtype is ``subtype`` if given, else
    the input's where the output format supports it, else that format's default (noted in the
    report). Integer PCM outputs clip sample values beyond full scale (counted in the report
    and noted); float outputs (``FLOAT_SUBTYPES``) keep them.
    The output is written atomically; the input file is only ever read. ``progress``: show a
    progress bar on stderr while a long file (over ``PROGRESS_CHUNKS * CHUNK_FRAMES`` frames)
    is filtered and written.

    Raises:
      FileNotFoundError: missing input, or missing output folder.
      FileExistsError: the output exists (or is the input itself) and ``overwrite`` is False.
      ValueError: unreadable input, unsupported output extension or subtype, bad arguments;
        :class:`ClippingError` with ``peak_mode="error"``. Nothing is written on any error.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    fmt = _check_paths(in_path, out_path, overwrite)
    data_TxC, sample_rate, in_subtype = _read_audio(in_path)
    subtype, notes = _output_subtype(fmt, subtype, in_subtype)
    with _progress_bar(data_TxC.shape[0], progress) as bar:
        out_TxC, report = apply_eq(
            data_TxC, sample_rate, setting, strength, match_loudness, peak_mode, layout, bar
        )
        if report.clipped_samples and subtype not in FLOAT_SUBTYPES:
            notes.append(
                f"{report.clipped_samples} sample value(s) above 0 dBFS are clipped by the "
                f"{subtype} output format"
            )
        try:
            _write_atomically(out_path, out_TxC, sample_rate, fmt, subtype, bar)
        except (sf.SoundFileError, RuntimeError) as error:
            raise ValueError(
                f"cannot write {out_path} as {fmt}/{subtype} at {sample_rate} Hz "
                f"with {out_TxC.shape[1]} channel(s): {error}"
            ) from None
    return dataclasses.replace(
        report,
        notes=report.notes + tuple(notes),
        in_path=str(in_path),
        out_path=str(out_path),
        format=fmt,
        subtype=subtype,
    )
