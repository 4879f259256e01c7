"""Other programs' EQ preset formats as lists of filters: Equalizer APO / AutoEQ, REW, EasyEffects.

Each reader returns a :class:`FilterList`: the file's shelf and peaking filters (RBJ cookbook
biquads, the same formula as :mod:`neuraleq_jax.model.response`), its preamp and notes about anything
it ignored or approximated. :mod:`neuraleq_jax.presets.registry` maps a filter list onto the model's
band layout (exactly when the file holds one filter per band, else by a least-squares fit).
The writers' pieces are here too (filter lines, REW's header, EasyEffects' document), and
:func:`inert_text`, through which every text a preset embeds (a name) passes.

- Equalizer APO ``config.txt`` / AutoEQ ``ParametricEQ.txt``: ``Preamp: -6.2 dB`` and
  ``Filter 1: ON LSC Fc 105 Hz Gain 5.5 dB Q 0.70`` lines. Types: ``PK``/``PEQ``/``Modal``
  peaking (``Q`` or ``BW Oct``); ``LSC``/``HSC`` and the older ``LS``/``HS`` shelves with the
  centre frequency (``Q`` optional, default 12 dB/octave, i.e. slope S = 1, Q = 1/sqrt 2);
  ``LSC 6dB``-style shelves with a slope in dB per octave (S = x / 12); ``LS 6dB``/``LS 12dB``
  shelves given by their corner frequency (mapped to the centre frequency, see
  :func:`_corner_to_centre`). ``Channel:``, ``Device:`` and the other commands are ignored with
  a note; after a second ``Channel:`` block the filters are those of the first channel only.
- REW "filter settings" text: the same filter lines under REW's header; ``ON None`` slots are
  empty. ``LSQ``/``HSQ``/``LS Q`` are REW's names for the shelves with Q.
- EasyEffects equalizer preset JSON (``output``/``input`` → ``equalizer#0`` → ``left`` →
  ``band0`` … with ``type`` ``Bell``/``Lo-shelf``/``Hi-shelf``/``Off``, ``frequency``, ``gain``,
  ``q``, ``mode``; ``input-gain`` is the preamp). Bands in a mode other than ``APO (DR)``
  (EasyEffects' RBJ design) are read as RBJ filters with a note, since their shapes differ.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import unicodedata

RBJ_TYPES = ("low_shelf", "peaking", "high_shelf")
APO_TOKENS = {"low_shelf": "LSC", "peaking": "PK", "high_shelf": "HSC"}
EASYEFFECTS_TYPES = {"low_shelf": "Lo-shelf", "peaking": "Bell", "high_shelf": "Hi-shelf"}
EASYEFFECTS_RBJ_MODE = "APO (DR)"
DEFAULT_SHELF_Q = 1.0 / math.sqrt(2.0)  # RBJ slope S = 1: 12 dB per octave
REW_MEASUREMENT_LINE = "neuraleq_jax preset"
# what inert_text replaces: controls (Cc), line and paragraph separators, lone surrogates
_UNSAFE_CATEGORIES = {"Cc", "Zl", "Zp", "Cs"}

_FILTER = re.compile(r"^Filter\s*\d*\s*:\s*(?P<state>ON|OFF)\s+(?P<rest>.*)$", re.IGNORECASE)
_NUMBER = r"([-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?)"
_FC = re.compile(rf"\bFc\s+{_NUMBER}\s*(?P<unit>kHz|Hz)?", re.IGNORECASE)
_GAIN = re.compile(rf"\bGain\s+{_NUMBER}\s*(dB)?", re.IGNORECASE)
_Q = re.compile(rf"\bQ\s+{_NUMBER}", re.IGNORECASE)
_BW = re.compile(rf"\bBW\s+Oct\s+{_NUMBER}", re.IGNORECASE)
_PREAMP = re.compile(rf"^Preamp\s*:\s*{_NUMBER}\s*dB\s*$", re.IGNORECASE)
_TYPE = re.compile(
    r"^(?P<token>[A-Za-z]+)(?:\s+(?P<q_word>Q)(?=\s))?"
    r"(?:\s*(?P<slope>\d+(?:\.\d+)?)\s*dB\b)?",
    re.IGNORECASE,
)
_PEAKING = {"PK", "PEQ", "MODAL"}
_SHELVES = {
    "LS": "low_shelf",
    "LSC": "low_shelf",
    "LSQ": "low_shelf",
    "HS": "high_shelf",
    "HSC": "high_shelf",
    "HSQ": "high_shelf",
}
_APO_COMMANDS = (
    "channel",
    "device",
    "copy",
    "include",
    "eval",
    "if",
    "elseif",
    "else",
    "endif",
    "stage",
    "delay",
    "convolution",
    "graphiceq",
    "loudnesscorrection",
)


@dataclasses.dataclass(frozen=True)
class Filter:
    """One RBJ biquad: ``kind`` in :data:`RBJ_TYPES`, centre frequency (Hz), gain (dB), Q."""

    kind: str
    freq_hz: float
    gain_db: float
    q: float


@dataclasses.dataclass
class FilterList:
    """A preset read from another program: its filters, preamp (dB), name and notes."""

    filters: list[Filter]
    preamp_db: float = 0.0
    name: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


def _number(text: str) -> float:
    value = float(text.replace(",", "."))
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def shelf_q_from_slope(slope_s: float, gain_db: float) -> float:
    """RBJ cookbook: the Q of a shelf with slope ``S`` (1 = 12 dB/octave, the steepest
    monotonic shelf) and gain ``gain_db``: ``1/Q = sqrt((A + 1/A)(1/S - 1) + 2)``."""
    amp = 10.0 ** (gain_db / 40.0)
    return 1.0 / math.sqrt(max((amp + 1.0 / amp) * (1.0 / slope_s - 1.0) + 2.0, 1e-12))


def _corner_to_centre(
    kind: str, corner_hz: float, gain_db: float, order: int, sample_rate: float = 48_000.0
) -> float:
    """Centre frequency of an RBJ shelf whose response is 3 dB short of its plateau at
    ``corner_hz`` (the corner of REW's and APO's ``LS 12dB``/``HS 12dB``).

    Order 2 (S = 1, Q = 1/sqrt 2) is exact: the analog prototype's power gain is
    ``A^2 (A^2 + x) / (1 + A^2 x)`` with ``x = (w / w0)^4``, which equals ``A^4 c``
    (``c = 10^(-3/10)``) at ``x = A^2 (1 - c) / (c A^4 - 1)``; cuts are the inverse filter,
    so ``|gain|`` gives the same ``x``; the bilinear transform's warping is undone with tan.
    Order 1 (``LS 6dB``) has no exact RBJ equivalent: the centre is the geometric mean of a
    first-order shelf's pole and zero. Shelves within 3 dB of flat have no corner: Fc is
    taken as the centre.
    """
    amp = 10.0 ** (abs(gain_db) / 40.0)
    c = 10.0**-0.3
    if order == 1 or c * amp**4 <= 1.0:
        shift = 10.0 ** (abs(gain_db) / 40.0) if order == 1 else 1.0
        return corner_hz * shift if kind == "low_shelf" else corner_hz / shift
    ratio = (amp**2 * (1.0 - c) / (c * amp**4 - 1.0)) ** 0.25  # corner / centre, analog
    if kind == "high_shelf":
        ratio = 1.0 / ratio
    warped = math.tan(math.pi * corner_hz / sample_rate) / ratio
    return sample_rate / math.pi * math.atan(warped)


def _parse_filter(rest: str, where: str, notes: list[str]) -> Filter | None:
    """The part of a ``Filter N: ON ...`` line after ON → a :class:`Filter` (None: empty)."""
    typed = _TYPE.match(rest.strip())
    token = typed["token"].upper() if typed else ""
    if token == "NONE":
        return None
    if token not in _PEAKING and token not in _SHELVES:
        raise ValueError(
            f"{where}: filter type {token or rest!r} is not a shelf or peaking "
            f"filter (accepted: PK, PEQ, Modal, LSC, HSC, LS, HS, LSQ, HSQ, "
            f"'LSC x dB', 'LS 6dB', 'LS 12dB'); a 5-band shelf/peak EQ cannot "
            f"represent it"
        )
    fc, gain = _FC.search(rest), _GAIN.search(rest)
    if fc is None or gain is None:
        raise ValueError(f"{where}: a {token} filter needs 'Fc <Hz> Hz' and 'Gain <dB> dB'")
    freq = _number(fc.group(1)) * (1000.0 if (fc["unit"] or "").lower() == "khz" else 1.0)
    gain_db = _number(gain.group(1))
    q_match, bw_match = _Q.search(rest[fc.start() :]), _BW.search(rest)
    if token in _PEAKING:
        if q_match:
            q = _number(q_match.group(1))
        elif bw_match:  # bandwidth in octaves → Q (RBJ, analog prototype)
            two_bw = 2.0 ** _number(bw_match.group(1))
            q = math.sqrt(two_bw) / (two_bw - 1.0)
        else:
            raise ValueError(f"{where}: a peaking filter needs 'Q <q>' or 'BW Oct <octaves>'")
        return Filter("peaking", freq, gain_db, q)
    kind = _SHELVES[token]
    slope = typed["slope"]
    if slope is not None and token in ("LS", "HS"):  # LS 6dB / LS 12dB: corner frequency
        order = 1 if float(slope) < 9 else 2
        centre = _corner_to_centre(kind, freq, gain_db, order)
        if order == 1:
            notes.append(
                f"{where}: {token} {slope}dB is a first-order shelf; read as an RBJ "
                f"shelf with slope 6 dB/octave and centre {centre:.1f} Hz (close, "
                f"not identical)"
            )
        return Filter(kind, centre, gain_db, shelf_q_from_slope(float(slope) / 12.0, gain_db))
    if slope is not None:
        return Filter(kind, freq, gain_db, shelf_q_from_slope(float(slope) / 12.0, gain_db))
    q = _number(q_match.group(1)) if q_match else DEFAULT_SHELF_Q
    return Filter(kind, freq, gain_db, q)


def parse_filter_text(text: str) -> FilterList:
    """Equalizer APO / AutoEQ / REW filter text → :class:`FilterList`."""
    result = FilterList(filters=[])
    channel_blocks, rew_header, ignored = 0, False, {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line, where = raw.strip(), f"line {number}"
        if not line:
            continue
        if line.startswith("#"):
            result.name = result.name or line[1:].strip() or None
            continue
        preamp = _PREAMP.match(line)
        if preamp:
            if channel_blocks < 2:
                result.preamp_db += _number(preamp.group(1))
            continue
        match = _FILTER.match(line)
        if match:
            if channel_blocks >= 2:
                continue
            if match["state"].upper() == "OFF":
                result.notes.append(f"{where}: filter is OFF; left out")
                continue
            parsed = _parse_filter(match["rest"], where, result.notes)
            if parsed is not None:
                result.filters.append(parsed)
            continue
        command = line.split(":", 1)[0].strip().lower()
        if command == "channel":
            channel_blocks += 1
            if channel_blocks == 2:
                result.notes.append(
                    f"{where}: a second Channel: block; only the first channel's filters are used"
                )
            continue
        if ":" in line and command in _APO_COMMANDS:
            ignored.setdefault(command, number)
            continue
        if (
            line.lower().startswith("filter settings file")
            or line.lower().startswith("equaliser:")
            or line.lower().startswith("equalizer:")
        ):
            rew_header = True
            continue
        if line.lower().startswith("notes:"):
            result.name = result.name or line[6:].strip() or None
            continue
        if rew_header and not result.filters:
            continue  # REW's header: program version, date, measurement name
        raise ValueError(
            f"{where}: {line!r} is not a 'Preamp: X dB' or 'Filter N: ON TYPE Fc F "
            f"Hz Gain G dB Q Q' line"
        )
    for command, number in ignored.items():
        result.notes.append(
            f"line {number}: {command.capitalize()}: lines are ignored (a "
            f"preset here is one EQ for every channel and device)"
        )
    return result


def inert_text(text: str) -> str:
    """``text`` made safe to embed in any preset file: control characters (``\\n``, ``\\r``,
    escape codes, every Unicode category Cc) and line or paragraph separators become spaces,
    lone surrogates (which UTF-8 cannot encode) become U+FFFD, and runs of whitespace one
    space, trimmed. The result is one line, so a comment holding it cannot end early and no
    reader splits it into lines that another program would obey."""
    return " ".join("".join(map(_inert_char, str(text))).split())


def _inert_char(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cs":
        return "\ufffd"
    return " " if category in _UNSAFE_CATEGORIES else char


def comment_line(text: str) -> str:
    """An Equalizer APO comment holding ``text`` (made inert): ``# text``."""
    return f"# {inert_text(text)}".rstrip()


def filter_lines(filters: list[Filter]) -> list[str]:
    """``Filter N: ON LSC Fc F Hz Gain G dB Q Q`` lines (Equalizer APO, AutoEQ and REW):
    0.01 Hz, 0.01 dB and 1e-4 in Q."""
    return [
        f"Filter {i + 1}: ON {APO_TOKENS[f.kind]} Fc {f.freq_hz:.2f} Hz Gain "
        f"{f.gain_db:.2f} dB Q {f.q:.4f}"
        for i, f in enumerate(filters)
    ]


def rew_header_lines(name: str) -> list[str]:
    """REW's "filter settings" header (Generic equaliser) before the preamp and filters.

    The name goes only into the ``Notes:`` line (made inert), which Equalizer APO ignores as
    an unknown command; the measurement line after ``Equaliser:`` is fixed, since that line
    stands bare and a name there (``Preamp: 15 dB``) would be obeyed."""
    return [
        "Filter Settings file",
        "",
        "neuraleq_jax",
        "",
        f"Notes:{inert_text(name)}",
        "",
        "Equaliser: Generic",
        REW_MEASUREMENT_LINE,
    ]


def easyeffects_document(filters: list[Filter], preamp_db: float) -> dict:
    """An EasyEffects output preset holding one equalizer (RBJ bands, mode ``APO (DR)``)."""
    bands = {
        f"band{i}": {
            "frequency": round(f.freq_hz, 4),
            "gain": round(f.gain_db, 4),
            "mode": EASYEFFECTS_RBJ_MODE,
            "mute": False,
            "q": round(f.q, 6),
            "slope": "x1",
            "solo": False,
            "type": EASYEFFECTS_TYPES[f.kind],
            "width": 4.0,
        }
        for i, f in enumerate(filters)
    }
    equalizer = {
        "balance": 0.0,
        "bypass": False,
        "input-gain": round(preamp_db, 2),
        "left": bands,
        "mode": "IIR",
        "num-bands": len(filters),
        "output-gain": 0.0,
        "pitch-left": 0.0,
        "pitch-right": 0.0,
        "right": json.loads(json.dumps(bands)),
        "split-channels": False,
    }
    return {"output": {"blocklist": [], "equalizer#0": equalizer, "plugins_order": ["equalizer#0"]}}


def _easyeffects_equalizer(document) -> tuple[str, dict]:
    if not isinstance(document, dict):
        raise ValueError("an EasyEffects preset is a JSON object with an 'output' or 'input' key")
    for side in ("output", "input"):
        section = document.get(side)
        if isinstance(section, dict):
            order = section.get("plugins_order") or sorted(section)
            for key in order:
                if str(key).split("#")[0] == "equalizer" and isinstance(section.get(key), dict):
                    return f"{side}.{key}", section[key]
    raise ValueError("the EasyEffects preset holds no equalizer (expected output.equalizer#0)")


def parse_easyeffects(document) -> FilterList:
    """EasyEffects preset (parsed JSON) → :class:`FilterList` of its equalizer's left channel."""
    where, equalizer = _easyeffects_equalizer(document)
    channel = equalizer.get("left", equalizer)  # older presets keep the bands at the top
    result = FilterList(filters=[], preamp_db=float(equalizer.get("input-gain", 0.0) or 0.0))
    count = int(equalizer.get("num-bands", sum(k.startswith("band") for k in channel)))
    if equalizer.get("split-channels") and equalizer.get("right") != equalizer.get("left"):
        result.notes.append(f"{where}: channels are split; the left channel is used")
    reversed_kinds = {v: k for k, v in EASYEFFECTS_TYPES.items()}
    for i in range(count):
        band = channel.get(f"band{i}")
        if not isinstance(band, dict):
            raise ValueError(f"{where}: band{i} is missing (num-bands is {count})")
        kind = band.get("type", "Bell")
        if kind == "Off" or band.get("mute"):
            continue
        if kind not in reversed_kinds:
            raise ValueError(
                f"{where}.band{i}: type {kind!r} is not a shelf or peaking filter "
                f"(accepted: {', '.join(EASYEFFECTS_TYPES.values())}, Off)"
            )
        try:
            freq, gain, q = (float(band[k]) for k in ("frequency", "gain", "q"))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{where}.band{i}: needs numeric frequency, gain and q ({error})"
            ) from None
        mode = band.get("mode", EASYEFFECTS_RBJ_MODE)
        if mode != EASYEFFECTS_RBJ_MODE:
            result.notes.append(
                f"{where}.band{i}: mode {mode!r} designs the filter differently "
                f"from RBJ ('{EASYEFFECTS_RBJ_MODE}'); read as RBJ"
            )
        if band.get("slope", "x1") != "x1":
            result.notes.append(f"{where}.band{i}: slope {band['slope']!r} read as x1")
        result.filters.append(Filter(reversed_kinds[kind], freq, gain, q))
    return result


def looks_like_easyeffects(document) -> bool:
    return isinstance(document, dict) and any(
        isinstance(document.get(side), dict) for side in ("output", "input")
    )


def looks_like_rew(text: str) -> bool:
    head = text.lstrip().lower()
    return head.startswith("filter settings file") or "\nequaliser:" in head[:2000]
