"""SocialFX's EQ contributions (``eq_contributions.csv``): reader, unit rule, training data.

SocialFX (Zheng, Seetharaman and Pardo, "SocialFX: Studying a Crowdsourced Folksonomy of Audio
Effects Terms", ACM Multimedia 2016) gathers the SocialEQ sessions (Cartwright and Pardo, ISMIR
2013), the same sessions that Audealize's word curves aggregate, one row per contribution: the
40-band graphic-EQ curve that one contributor drew for one word. Its file, from the repository
``ryanstables/IMPBookCode`` (``data/raw/eq_contributions.csv``; no licence stated, so it is never
shipped: the user gives its path or downloads it with ``neuraleq data fetch socialfx``), is a CSV
with a header of 43 names:

- ``descriptor``: the word as typed. Read as :func:`fold_word` folds it: trimmed, inner spaces
  collapsed, case-folded, Unicode NFC (accents kept: "cálido" stays "cálido");
- ``audio_id``: despite its name, the contributor's language (``English``, ``Español``);
- ``ratings_consistency``: how consistently the contributor rated SocialEQ's probe curves;
- ``RSC_<f>Hz_band`` for the 40 frequencies of :data:`~neuraleq_jax.data.audealize.AUDEALIZE_FREQS`
  (the header's frequencies are checked against them; another set is refused).

The header is one name short of the rows. An upstream row holds 44 numbers-and-words: the three
named fields, then an *unnamed* number (0–0.94, six decimals; kept as ``unnamed``), then the 40
band weights. The bands are fields 5–44, not 4–43: every upstream curve over fields 5–44 has
mean 0 and RMS 1 exactly (SocialEQ normalises each contributor's curve), field 4 correlates with
field 5 at r = 0.07 where neighbouring bands correlate at 0.97, and read so, a word's mean
contribution is Audealize's curve for it (below). The shared copy's rows end with an empty 44th
field where upstream has the 19,682 Hz weight; since each curve has zero mean, that weight is
minus the sum of the other 39, and it is restored so (accepted only where the restored curve
has unit RMS, as every one of the copy's 1,421 does: each then equals upstream's to 1e-14).
Line ends may be CRLF (upstream) or LF, with or without a UTF-8 byte-order mark. Anything else
(a JSON file, SAFE-DB's CSV, other columns, an empty file) is refused in one line that says what
was found and what is accepted. Malformed rows (another field count, an empty word or language,
a non-numeric or non-finite cell) raise one error listing their line numbers, or are skipped and
listed, as the caller chooses.

The unit rule: a weight of 1 is :data:`DB_PER_UNIT` (1) dB. The weights are unitless, each
contributor's curve scaled to RMS 1; this project reads Audealize's curves as dB at the
plug-in's full amount (:mod:`neuraleq_jax.data.audealize`), and Audealize's curve of a word is
the mean of that word's SocialFX contributions: on the shared copy, over the 99 words with at
least 3 contributions that Audealize also has, the mean contribution correlates with Audealize's
curve at median r = 1.000 and their RMS ratio has median 1.00 (10th–90th percentile 0.91–1.07,
where Audealize counted contributions this copy omits). One dB per unit therefore puts a word's
contributions around exactly the curve the Audealize preset trains on, in the same dB; a fixed
scale keeps every curve's shape and the differences of strength between contributors (a
per-curve rescaling would erase them), and needs no Audealize word (half of SocialFX's words are
not in it). ``db_per_unit`` reads them stronger or gentler.

Training data (:func:`socialfx_dataset`): every contribution of a word with at least
``min_examples`` contributions is fitted to 5 bands by the batched fit
(:func:`neuraleq_jax.data.crowd.fit_cached`, i.e. :func:`neuraleq_jax.data.curves.fit_curves`)
and labelled with its word. Each contribution is one contributor, so the word-stratified split of
training is a split by contribution: no contribution is on both sides, and every word keeps its
share on each side.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import checks
from neuraleq_jax.data import crowd
from neuraleq_jax.data.audealize import AUDEALIZE_FREQS
from neuraleq_jax.data.vocabulary import WordDataset

FIXED_COLUMNS = ("descriptor", "audio_id", "ratings_consistency")
BAND_COLUMN = re.compile(r"RSC_(\d+)Hz_band")
N_FIELDS = len(FIXED_COLUMNS) + len(AUDEALIZE_FREQS)  # the header's 43 names; rows have 44
RESTORE_RMS_TOLERANCE = 1e-3  # how far from 1 a restored curve's RMS may be
DB_PER_UNIT = 1.0  # dB per unit of a contribution's weights (see the module docstring)
SOURCE_NAME = "socialfx"
ACCEPTED = (
    "SocialFX's eq_contributions.csv: a header descriptor,audio_id,ratings_consistency,"
    "RSC_20Hz_band,...,RSC_19682Hz_band (Audealize's 40 frequencies), then one row per "
    "contribution"
)


def fold_word(text: str) -> str:
    """A descriptor as a vocabulary word: trimmed, inner spaces collapsed, case-folded, NFC."""
    return unicodedata.normalize("NFC", " ".join(str(text).split()).casefold())


@dataclasses.dataclass(frozen=True)
class SocialFXSet:
    """The contributions read from a file (``N`` kept rows).

    Attributes:
      words: ``N`` words (:func:`fold_word`).
      langs: ``N`` languages as the file names them (``"English"``, ``"Español"``).
      consistency: float32 ``[N]`` each contributor's ``ratings_consistency``.
      unnamed: float32 ``[N]`` the unnamed 4th field (0–1; the file does not say what it is).
      weights: float32 ``[N, 40]`` unitless curves at :data:`AUDEALIZE_FREQS`.
      lines: int64 ``[N]`` each row's 1-based line in the file (its contribution id).
      skipped: ``(line, reason)`` of the malformed rows that were skipped.
    """

    words: tuple[str, ...]
    langs: tuple[str, ...]
    consistency: np.ndarray
    unnamed: np.ndarray
    weights: np.ndarray
    lines: np.ndarray
    skipped: tuple[tuple[int, str], ...] = ()

    def __len__(self) -> int:
        return len(self.words)

    @property
    def freqs(self) -> np.ndarray:
        return AUDEALIZE_FREQS

    def gains_db(self, db_per_unit: float = DB_PER_UNIT) -> np.ndarray:
        """The curves in dB (float32 ``[N, 40]``): :func:`weights_to_db` of ``weights``."""
        return weights_to_db(self.weights, db_per_unit)

    def counts(self) -> dict[str, int]:
        """Contributions per word, most first (ties in order of first appearance)."""
        return dict(Counter(self.words).most_common())

    def subset(self, rows) -> SocialFXSet:
        """The contributions at ``rows`` (indices or a boolean mask), in that order."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, int)
        return dataclasses.replace(
            self,
            words=tuple(self.words[i] for i in rows),
            langs=tuple(self.langs[i] for i in rows),
            consistency=self.consistency[rows],
            unnamed=self.unnamed[rows],
            weights=self.weights[rows],
            lines=self.lines[rows],
        )


def weights_to_db(weights, db_per_unit: float = DB_PER_UNIT) -> np.ndarray:
    """Unitless contribution weights → dB: ``db_per_unit`` dB per unit (module docstring)."""
    scale = checks.real(db_per_unit, "db_per_unit", minimum=0.0)
    if scale == 0.0:
        raise ValueError("db_per_unit must be > 0 (dB per unit of a contribution's weights)")
    return (np.asarray(weights, np.float64) * scale).astype(np.float32)


def _refuse(source: str, what: str) -> ValueError:
    return ValueError(f"{source}: {what}; expected {ACCEPTED}")


def check_header(header: Sequence[str], source: str = "socialfx") -> None:
    """Refuse, in one line, a first row that is not SocialFX's header (see the module docstring)."""
    names = [name.strip() for name in header]
    if names and names[-1] == "":  # a trailing comma on the header too
        names = names[:-1]
    if tuple(names[:3]) != FIXED_COLUMNS:
        shown = ",".join(names[:4])[:80]
        raise _refuse(source, f"its first line starts {shown!r}, not SocialFX's header")
    bands = names[3:]
    matches = [BAND_COLUMN.fullmatch(name) for name in bands]
    if len(bands) != len(AUDEALIZE_FREQS) or not all(matches):
        odd = [name for name, m in zip(bands, matches) if not m][:3]
        raise _refuse(
            source,
            f"its header has {len(bands)} columns after ratings_consistency"
            + (f" (not RSC_<f>Hz_band: {', '.join(map(repr, odd))})" if odd else ""),
        )
    freqs = np.array([int(m.group(1)) for m in matches], np.float32)
    wrong = [f"{int(a)} Hz (expected {int(b)})" for a, b in zip(freqs, AUDEALIZE_FREQS) if a != b]
    if wrong:
        raise _refuse(
            source, f"its band frequencies differ from Audealize's: {', '.join(wrong[:3])}"
        )


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} is {text!r}, not a finite number")
    return value


def _restore_last_band(weights: list[float]) -> list[float]:
    """The 40th weight of a row whose last field is empty: SocialEQ's curves have zero mean over
    the 40 bands, so it is minus the sum of the 39 others, accepted when the restored curve has
    unit RMS as every upstream curve has; ValueError otherwise."""
    restored = [*weights, -math.fsum(weights)]
    rms = math.sqrt(math.fsum(w * w for w in restored) / len(restored))
    if abs(rms - 1.0) > RESTORE_RMS_TOLERANCE:
        raise ValueError(
            f"its last band is empty and the other 39 do not restore it (a zero-mean curve "
            f"would have RMS {rms:.3f}, not 1)"
        )
    return restored


def _parse_row(row: list[str], header: list[str]) -> tuple[str, str, float, float, list[float]]:
    """``(word, language, consistency, unnamed, 40 weights)`` of a data row; ValueError says
    why not."""
    if len(row) != N_FIELDS + 1:
        raise ValueError(
            f"{len(row)} fields, expected {N_FIELDS + 1} (descriptor, audio_id, "
            f"ratings_consistency, an unnamed number, 40 bands)"
        )
    word, lang = fold_word(row[0]), row[1].strip()
    if not word:
        raise ValueError("empty descriptor")
    if not lang:
        raise ValueError("empty audio_id (the language)")
    consistency = _number(row[2], "ratings_consistency")
    unnamed = _number(row[3], "field 4 (unnamed)")
    bands = row[4:-1] if not row[-1].strip() else row[4:]
    weights = [_number(text, name) for text, name in zip(bands, header[3:])]
    if len(weights) < len(AUDEALIZE_FREQS):
        weights = _restore_last_band(weights)
    return word, unicodedata.normalize("NFC", lang), consistency, unnamed, weights


def parse_socialfx(
    text: str, *, on_malformed: str = "raise", source: str = "socialfx"
) -> SocialFXSet:
    """Validate the text of a SocialFX CSV (already decoded) into a :class:`SocialFXSet`.

    Args:
      on_malformed: ``"raise"`` (one ValueError naming every malformed row by line) or
        ``"skip"`` (drop them; they are listed in ``skipped``). Blank lines are ignored.
      source: a name for messages (the file path or URL).
    """
    checks.on_malformed(on_malformed)
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise _refuse(source, "it is empty")
    check_header(header, source)
    header = [name.strip() for name in header]
    parsed, skipped = [], []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        try:
            parsed.append((*_parse_row(row, header), reader.line_num))
        except ValueError as error:
            skipped.append((reader.line_num, str(error)))
    _check_rows(source, parsed, skipped, on_malformed)
    words, langs, consistency, unnamed, weights, lines = zip(*parsed)
    return SocialFXSet(
        words=tuple(words),
        langs=tuple(langs),
        consistency=np.array(consistency, np.float32),
        unnamed=np.array(unnamed, np.float32),
        weights=np.array(weights, np.float32),
        lines=np.array(lines, np.int64),
        skipped=tuple(skipped),
    )


def _check_rows(source: str, parsed: list, skipped: list, on_malformed: str) -> None:
    if skipped and (on_malformed == "raise" or not parsed):
        noun = "row" if len(skipped) == 1 else "rows"
        raise ValueError(
            f"{source}: {len(skipped)} malformed {noun} of {len(parsed) + len(skipped)}: "
            f"{checks.problem_list(skipped, 'line')}; each row needs a descriptor, a language, "
            f"a consistency and 40 numbers (on_malformed='skip' drops malformed rows)"
        )
    if not parsed:
        raise _refuse(source, "it has a header but no contributions")


def load_socialfx(path: str | os.PathLike, *, on_malformed: str = "raise") -> SocialFXSet:
    """Read SocialFX's ``eq_contributions.csv`` (UTF-8, LF or CRLF, a BOM tolerated);
    see :func:`parse_socialfx`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"SocialFX file not found: {path} (download it with `neuraleq data fetch socialfx`)"
        )
    return parse_bytes(path.read_bytes(), on_malformed=on_malformed, source=str(path))


def parse_bytes(data: bytes, *, on_malformed: str = "raise", source: str = "socialfx"):
    """:func:`parse_socialfx` of a file's bytes, which must be UTF-8 text."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _refuse(
            source, f"it is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    return parse_socialfx(text, on_malformed=on_malformed, source=source)


# ------------------------------------------------------------------ training data


def keep_words(read: SocialFXSet, *, min_examples: int = 1, words: Sequence[str] = ()):
    """``(contributions, vocabulary)``: those of ``words`` (folded; in their order) or of every
    word, where a word has at least ``min_examples`` contributions. The vocabulary is ``words``'
    order, else by descending count (ties by first appearance). A wanted word missing from the
    file, or nothing left, is a one-line ValueError."""
    minimum = checks.count(min_examples, "min_examples", 1)
    counts = read.counts()
    wanted = list(dict.fromkeys(fold_word(word) for word in words)) or list(counts)
    missing = [word for word in wanted if word not in counts]
    if missing:
        common = ", ".join(list(counts)[:8])
        raise ValueError(
            f"SocialFX has no contributions for {', '.join(map(repr, missing))}; "
            f"its most frequent words: {common}"
        )
    vocabulary = tuple(word for word in wanted if counts[word] >= minimum)
    if not vocabulary:
        most = max(counts[word] for word in wanted)
        raise ValueError(
            f"no SocialFX word has min_examples={minimum} contributions (the most is {most}); "
            f"lower data.min_examples"
        )
    kept = set(vocabulary)
    return read.subset(np.array([word in kept for word in read.words])), vocabulary


def curve_agreement(weights_NxF, word_ids_N, n_words: int) -> np.ndarray:
    """Per word, the mean Pearson correlation between its contributions' curves (clipped at
    0): the counterpart of Audealize's agreement. ``[W]``; NaN for a word of one contribution."""
    curves_NxF = np.asarray(weights_NxF, np.float64)
    out = np.full(n_words, np.nan)
    for w in range(n_words):
        mine = curves_NxF[np.asarray(word_ids_N) == w]
        if len(mine) > 1:
            r = np.corrcoef(mine)
            out[w] = max(float(np.nanmean(r[np.triu_indices(len(mine), 1)])), 0.0)
    return out


def word_languages(read: SocialFXSet, vocabulary: Sequence[str]) -> tuple[str, ...]:
    """Each word's languages in order of first appearance, ``"English, Español"`` for both."""
    seen: dict[str, dict[str, None]] = {word: {} for word in vocabulary}
    for word, lang in zip(read.words, read.langs):
        if word in seen:
            seen[word][lang] = None
    return tuple(", ".join(langs) for langs in seen.values())


def socialfx_dataset(
    path,
    *,
    min_examples: int = 5,
    words: Sequence[str] = (),
    seed: int = 0,
    db_per_unit: float = DB_PER_UNIT,
    on_malformed: str = "raise",
    fit_options: dict | None = None,
    progress: bool = False,
):
    """One fitted setting per contribution of the kept words: ``(dataset, contributions, fit)``.

    Words as :func:`keep_words` keeps them; each contribution's curve in dB
    (:func:`weights_to_db`) fitted to 5 bands by :func:`crowd.fit_cached` (``fit_options``
    override :data:`crowd.FIT_OPTIONS`; ``progress``: a bar on stderr while they fit). The
    dataset is a :class:`WordDataset` of source ``"socialfx"``: per word its contributions
    (settings and contributors), their agreement (:func:`curve_agreement`) and languages. It has
    no contributor ids, so training splits it stratified by word, which with one contribution
    per contributor is a split by contribution.
    """
    read, vocabulary = keep_words(
        load_socialfx(path, on_malformed=on_malformed), min_examples=min_examples, words=words
    )
    fit = crowd.fit_cached(
        read.gains_db(db_per_unit),
        AUDEALIZE_FREQS,
        seed=seed,
        progress=progress,
        **(fit_options or {}),
    )
    index = {word: i for i, word in enumerate(vocabulary)}
    word_ids = np.array([index[word] for word in read.words], np.int32)
    counts = np.bincount(word_ids, minlength=len(vocabulary)).astype(np.int64)[:, None]
    dataset = WordDataset(
        settings=fit.settings,
        word_ids=word_ids,
        vocabulary=vocabulary,
        source_names=(SOURCE_NAME,),
        source_settings=counts,
        source_contributors=counts.copy(),
        source_agreement=curve_agreement(read.weights, word_ids, len(vocabulary))[:, None],
        langs=word_languages(read, vocabulary),
    )
    return dataset, read, fit
