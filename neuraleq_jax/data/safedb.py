"""SAFE-DB loader: crowd-sourced equaliser settings with descriptors and contributor ids.

SAFE-DB (Stables et al., "SAFE: A System for the Extraction and Retrieval of Semantic Audio
Descriptors", ISMIR 2014) is read from a path, never copied into the repository. The CSV has no
header and 25 columns; column 1 is the descriptor, column 2 the contributor id and columns
5..17 the 13 parameters ``[G1,F1, G2,F2,Q2, G3,F3,Q3, G4,F4,Q4, G5,F5]`` (low shelf, three
bells, high shelf; the shelves have no Q).

Cleaning, in this order, each step counted in :class:`SafeReport`:
  1. malformed rows (wrong column count, missing descriptor or contributor, non-numeric or
     non-finite parameters, values outside SAFE's slider ranges): skipped with a count, or an
     error listing their line numbers, as the caller chooses. Blank lines are skipped.
  2. descriptors: normalised by :func:`normalize_descriptor`; rows whose descriptor is empty,
     has no letters, contains a digit (preset or take names: "re27", "drum 1", "test1") or
     holds a placeholder token (:data:`PLACEHOLDER_TOKENS`: "test", "default", ...) are dropped.
     Keyboard mashes ("fgjn") are left to ``min_examples``: no rule can tell them from words.
  3. flat settings (all five gains 0 dB: the plug-in saved untouched; it sounds like nothing,
     so it cannot tell words apart) are dropped, unless ``drop_flat=False``.
  4. exact duplicates (same normalised descriptor and the same 13 values; contributor ignored)
     keep their first row. The same setting under two different words is kept: it is data.
  5. ``words``: only the listed words are kept (normalised the same way).
  6. ``min_examples``: words with fewer rows are dropped.

Mapping to the 15-parameter layout: shelves get Q = :data:`SHELF_Q` (0.71) and the three bells
are sorted by frequency, so band 2 is always the lowest bell. Two target layouts:
``layout="safe"`` (:data:`SAFE_LAYOUT`, SAFE's own slider ranges: nothing is clipped) or
``layout="spec"`` (:data:`~neuraleq_jax.model.paramspace.DEFAULT_LAYOUT`, or any EQLayout of the same
band kinds), into which values are clipped and each clipped parameter counted.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import checks
from neuraleq_jax.data.dataset import EQDataset
from neuraleq_jax.model import paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, Band, EQLayout

N_COLUMNS = 25
DESCRIPTOR_COLUMN = 1
CONTRIBUTOR_COLUMN = 2
PARAM_COLUMNS = slice(5, 18)
SAFE_PARAM_NAMES = ("G1", "F1", "G2", "F2", "Q2", "G3", "F3", "Q3", "G4", "F4", "Q4", "G5", "F5")
SHELF_Q = 0.71
ENV_VAR = "NEURALEQ_SHARED_DATA"
RELATIVE_PATH = Path("safe-db") / "SAFEEqualiserUserData.csv"
SOURCE_HINT = (
    "SAFE-DB's SAFEEqualiserUserData.csv comes from the SAFE project's datasets page "
    "(semanticaudio.co.uk; Stables et al. 2014). Put it at <shared>/data/"
    f"{RELATIVE_PATH.as_posix()} beside the repository, set {ENV_VAR} to the folder "
    "holding safe-db/, or pass its path"
)

# SAFE's slider ranges (README of the shared copy): per-bell frequency ranges overlap, and the
# k-th lowest of three values each in its range lies within the k-th range, so sorting the bells
# by frequency keeps every value inside these bands. Shelf Q is not a SAFE slider: it takes
# DEFAULT_LAYOUT's shelf Q range, which contains SHELF_Q.
_SHELF_Q_RANGE = DEFAULT_LAYOUT.bands[0].q_range
SAFE_LAYOUT = EQLayout(
    bands=(
        Band("low_shelf", (22.0, 1000.0), _SHELF_Q_RANGE),
        Band("peaking", (82.0, 3900.0), (0.1, 10.0)),
        Band("peaking", (180.0, 4700.0), (0.1, 10.0)),
        Band("peaking", (220.0, 10000.0), (0.1, 10.0)),
        Band("high_shelf", (580.0, 20000.0), _SHELF_Q_RANGE),
    )
)

PLACEHOLDER_TOKENS = frozenset({"test", "testing", "default", "reset", "hello", "untitled"})

# Inflection folding: a token is folded to a base word when it is base + suffix, allowing a
# doubled final consonant ("thinner") and y -> i ("heavier"). Only these base words fold, so
# "power" or "ashen" stay as they are. Misspellings ("brght", "warn") are not corrected here:
# pass ``aliases`` to the loader for that.
# fmt: off
FOLD_BASE_WORDS = frozenset({
    "airy", "big", "boomy", "boxy", "bright", "clean", "clear", "crisp", "dark", "deep", "dull",
    "fat", "full", "hard", "harsh", "heavy", "hollow", "light", "loud", "muddy", "punchy",
    "quiet", "sharp", "smooth", "soft", "sweet", "thick", "thin", "tight", "tinny", "warm"
})
# fmt: on
FOLD_SUFFIXES = ("ness", "est", "ens", "en", "er", "th")


def fold_token(token: str) -> str:
    """Fold a comparative/noun/verb inflection of a base word: "brighter" → "bright"."""
    if token in FOLD_BASE_WORDS:
        return token
    for suffix in FOLD_SUFFIXES:
        if not token.endswith(suffix) or len(token) <= len(suffix) + 2:
            continue
        stem = token[: -len(suffix)]
        candidates = [stem]
        if len(stem) > 2 and stem[-1] == stem[-2]:
            candidates.append(stem[:-1])  # thinner -> thin
        if stem.endswith("i"):
            candidates.append(stem[:-1] + "y")  # heavier -> heavy
        for candidate in candidates:
            if candidate in FOLD_BASE_WORDS:
                return candidate
    return token


def normalize_descriptor(text: str) -> str:
    """Trim, lower-case, collapse inner whitespace, strip edge commas/periods, fold inflections.

    Folding is per whitespace-separated token: "Brighter " → "bright", "brighter hat" →
    "bright hat".
    """
    tokens = str(text).strip().lower().strip(",.;: ").split()
    return " ".join(fold_token(token) for token in tokens)


def descriptor_drop_reason(word: str) -> str | None:
    """Why a normalised descriptor is not a usable word, or None if it is."""
    if not word:
        return "empty descriptor"
    if not re.search(r"[a-z]", word):
        return "descriptor without letters"
    if re.search(r"[0-9]", word):
        return "descriptor with a digit (preset or take name)"
    if PLACEHOLDER_TOKENS.intersection(re.findall(r"[a-z]+", word)):
        return "placeholder descriptor"
    return None


def default_csv_path() -> Path:
    """Where SAFE-DB is looked for: ``$NEURALEQ_SHARED_DATA/safe-db/...`` or ``../shared/data``."""
    root = os.environ.get(ENV_VAR)
    if root:
        return Path(root) / RELATIVE_PATH
    return Path(__file__).resolve().parents[3] / "shared" / "data" / RELATIVE_PATH


def safe_to_layout(params_Nx13: np.ndarray) -> np.ndarray:
    """SAFE's 13 parameters → our 15 (float64 ``[N, 13]`` → ``[N, 15]``), bells sorted by freq.

    Shelves get Q = :data:`SHELF_Q`. No range check or clipping here.
    """
    params = np.asarray(params_Nx13, dtype=np.float64)
    if params.ndim != 2 or params.shape[1] != 13:
        raise ValueError(
            f"SAFE parameters must be [N, 13] ({', '.join(SAFE_PARAM_NAMES)}); got {params.shape}"
        )
    n = len(params)
    bells_Nx3x3 = params[:, 2:11].reshape(n, 3, 3)
    order = np.argsort(bells_Nx3x3[:, :, 1], axis=1, kind="stable")
    bells_Nx3x3 = np.take_along_axis(bells_Nx3x3, order[:, :, None], axis=1)
    shelf_q = np.full((n, 1), SHELF_Q)
    return np.concatenate(
        [params[:, 0:2], shelf_q, bells_Nx3x3.reshape(n, 9), params[:, 11:13], shelf_q], axis=1
    )


@dataclasses.dataclass(frozen=True)
class SafeReport:
    """What loading SAFE-DB kept and dropped.

    Row counts are after each step, in order: ``rows_read`` (non-blank lines) →
    ``rows_well_formed`` → ``rows_after_descriptors`` → ``rows_after_flat`` →
    ``rows_after_duplicates`` → ``rows_after_words`` → ``rows_final`` (after ``min_examples``).
    ``dropped`` counts rows per reason; ``malformed`` lists ``(line, reason)`` of skipped rows;
    ``folded`` counts raw descriptors (trimmed, lower-cased) that normalisation changed, as
    ``"raw -> word"``; ``clipped`` counts per parameter name the settings moved by clipping
    into the target layout (all zero for ``layout="safe"``); ``word_counts`` is the final
    count per vocabulary word.
    """

    path: str
    layout_name: str
    rows_read: int
    rows_well_formed: int
    rows_after_descriptors: int
    rows_after_flat: int
    rows_after_duplicates: int
    rows_after_words: int
    rows_final: int
    dropped: dict[str, int]
    malformed: tuple[tuple[int, str], ...]
    folded: dict[str, int]
    clipped: dict[str, int]
    clipped_settings: int
    word_counts: dict[str, int]
    n_contributors: int

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"SAFE-DB {self.path} ({self.layout_name} layout)",
            f"rows: read {self.rows_read} -> well-formed {self.rows_well_formed} -> "
            f"descriptors {self.rows_after_descriptors} -> non-flat {self.rows_after_flat} "
            f"-> deduplicated {self.rows_after_duplicates} -> kept words "
            f"{self.rows_after_words} -> min examples {self.rows_final}",
            f"{len(self.word_counts)} words, {self.n_contributors} contributors",
        ]
        lines += [f"dropped {count}: {reason}" for reason, count in self.dropped.items()]
        if self.clipped_settings:
            lines.append(
                f"clipped {self.clipped_settings} settings: "
                + ", ".join(f"{name} {count}" for name, count in self.clipped.items() if count)
            )
        return "\n".join(lines)


def _resolve_layout(layout: str | EQLayout) -> tuple[EQLayout, str]:
    if isinstance(layout, EQLayout):
        if layout.kinds != SAFE_LAYOUT.kinds:
            raise ValueError(
                f"a SAFE-DB target layout needs bands {SAFE_LAYOUT.kinds}, got {layout.kinds}"
            )
        return layout, "custom"
    if layout == "safe":
        return SAFE_LAYOUT, "safe"
    if layout == "spec":
        return DEFAULT_LAYOUT, "spec"
    raise ValueError(
        f"layout must be 'safe' (SAFE's slider ranges, nothing clipped), 'spec' "
        f"(clip into DEFAULT_LAYOUT) or an EQLayout; got {layout!r}"
    )


class _Malformed(ValueError):
    """A malformed row: ``category`` for the report's counts, the message for the line."""

    def __init__(self, category: str, detail: str):
        super().__init__(f"{category}: {detail}")
        self.category = category


def _parse_row(row: list[str]) -> tuple[str, str, np.ndarray]:
    """``(raw descriptor, contributor, params[15] in SAFE_LAYOUT)``; raises _Malformed."""
    if len(row) != N_COLUMNS:
        raise _Malformed("wrong column count", f"expected {N_COLUMNS} columns, got {len(row)}")
    descriptor, contributor = row[DESCRIPTOR_COLUMN], row[CONTRIBUTOR_COLUMN].strip()
    if not contributor:
        raise _Malformed("missing contributor id", "column 2 is empty")
    values = []
    for offset, (name, text) in enumerate(zip(SAFE_PARAM_NAMES, row[PARAM_COLUMNS])):
        try:
            value = float(text)
        except ValueError:
            raise _Malformed(
                "non-numeric parameter",
                f"{name} (column {PARAM_COLUMNS.start + offset}) is {text!r}",
            ) from None
        if not math.isfinite(value):
            raise _Malformed(
                "non-finite parameter",
                f"{name} (column {PARAM_COLUMNS.start + offset}) is {text!r}",
            )
        values.append(value)
    params = safe_to_layout(np.array([values]))[0]
    try:
        paramspace.validate(params, SAFE_LAYOUT, name="SAFE setting")
    except ValueError as error:
        raise _Malformed("outside SAFE's slider ranges", str(error)) from None
    return descriptor, contributor, params


def load_safe_db(
    path: str | os.PathLike | None = None,
    *,
    layout: str | EQLayout = "safe",
    min_examples: int = 1,
    words: Sequence[str] | None = None,
    on_malformed: str = "skip",
    drop_flat: bool = True,
    aliases: dict[str, str] | None = None,
) -> tuple[EQDataset, SafeReport]:
    """Load, clean and map SAFE-DB into an :class:`EQDataset` with contributors.

    Args:
      path: the CSV; default :func:`default_csv_path`.
      layout: "safe" (SAFE's slider ranges; nothing clipped), "spec" (clip into
        DEFAULT_LAYOUT, counting clipped parameters) or an EQLayout with SAFE's band kinds.
      min_examples: drop words with fewer rows (after every other step).
      words: keep only these words (normalised like descriptors); the vocabulary then follows
        this order. An unknown word raises ValueError with a suggestion.
      on_malformed: "skip" (count them in the report) or "raise" (ValueError with line numbers).
      drop_flat: drop settings whose five gains are all 0 dB.
      aliases: extra ``{normalised descriptor: word}`` rewrites (e.g. spelling fixes), applied
        after normalisation.
    Returns:
      ``(dataset, report)``. ``dataset.settings`` float32 ``[N, 15]`` in the target layout;
      ``dataset.contributors`` ``[N]`` str; vocabulary in ``words`` order, else by descending
      count (ties by first appearance).
    """
    target, layout_name = _resolve_layout(layout)
    path = _checked_path(path, on_malformed, min_examples)
    dropped: Counter[str] = Counter()  # rows dropped per reason, in the order of the steps
    parsed, malformed = _read_rows(path, dropped)
    if (malformed and on_malformed == "raise") or not parsed:  # nothing left to skip to
        raise ValueError(_malformed_message(path, malformed) if malformed else f"{path} is empty")
    row_counts = {"rows_read": len(parsed) + len(malformed), "rows_well_formed": len(parsed)}
    kept, folded = _normalise_descriptors(parsed, aliases, dropped)
    row_counts["rows_after_descriptors"] = len(kept)
    kept = _drop_flat(kept, dropped) if drop_flat else kept
    row_counts["rows_after_flat"] = len(kept)
    kept = _drop_duplicates(kept, dropped)
    row_counts["rows_after_duplicates"] = len(kept)
    kept, wanted = _keep_words(kept, words, dropped)
    row_counts["rows_after_words"] = len(kept)
    kept, rare = _drop_rare(kept, min_examples, words, dropped)
    dataset, clipped_mask = _dataset(kept, _vocabulary(kept, wanted, rare), target)
    report = SafeReport(
        path=str(path),
        layout_name=layout_name,
        **row_counts,
        rows_final=len(kept),
        dropped={reason: count for reason, count in dropped.items() if count},
        malformed=tuple(malformed),
        folded=dict(folded),
        clipped=dict(zip(target.param_names, clipped_mask.sum(axis=0).tolist())),
        clipped_settings=int(clipped_mask.any(axis=1).sum()),
        word_counts=dataset.counts(),
        n_contributors=len(set(dataset.contributors.tolist())),
    )
    return dataset, report


def _checked_path(path, on_malformed: str, min_examples: int) -> Path:
    """The CSV's path (default :func:`default_csv_path`) once the options are known good."""
    if on_malformed not in ("skip", "raise"):
        raise ValueError(f"on_malformed must be 'skip' or 'raise', got {on_malformed!r}")
    if int(min_examples) < 1:
        raise ValueError(f"min_examples must be >= 1, got {min_examples}")
    path = Path(path) if path is not None else default_csv_path()
    if not path.is_file():
        raise FileNotFoundError(f"SAFE-DB CSV not found at {path}. {SOURCE_HINT}.")
    return path


def _read_rows(path: Path, dropped: Counter) -> tuple[list, list]:
    """``(parsed rows, [(line number, reason)] of the malformed ones)``; blank lines and
    malformed rows are counted in ``dropped``."""
    malformed, parsed = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if not any(cell.strip() for cell in row):
                dropped["blank line"] += 1
                continue
            try:
                parsed.append(_parse_row(row))
            except _Malformed as error:
                malformed.append((reader.line_num, str(error)))
                dropped[f"malformed: {error.category}"] += 1
    return parsed, malformed


def _malformed_message(path: Path, malformed: list) -> str:
    return (
        f"{path}: {len(malformed)} malformed row(s): {checks.problem_list(malformed, 'line')}. "
        f"Each row needs {N_COLUMNS} columns: id, descriptor, contributor, 2 channel "
        f"counts, 13 numbers {SAFE_PARAM_NAMES} in SAFE's ranges, 7 metadata."
    )


def _normalise_descriptors(parsed: list, aliases, dropped: Counter) -> tuple[list, Counter]:
    """Rows as ``(word, contributor, params)`` with their descriptor normalised and
    aliased, those whose descriptor is no word dropped; and how often each raw descriptor
    was rewritten (``"raw -> word"``)."""
    aliases = {normalize_descriptor(k): normalize_descriptor(v) for k, v in (aliases or {}).items()}
    folded: Counter[str] = Counter()
    kept = []
    for descriptor, contributor, params in parsed:
        raw = " ".join(descriptor.strip().lower().split())
        word = normalize_descriptor(descriptor)
        word = aliases.get(word, word)
        if word != raw:
            folded[f"{raw} -> {word}"] += 1
        reason = descriptor_drop_reason(word)
        if reason:
            dropped[reason] += 1
        else:
            kept.append((word, contributor, params))
    return kept, folded


def _drop_flat(kept: list, dropped: Counter) -> list:
    flat = [np.all(params[SAFE_LAYOUT.gain_indices] == 0.0) for _, _, params in kept]
    dropped["flat setting (all gains 0 dB)"] += int(sum(flat))
    return [row for row, is_flat in zip(kept, flat) if not is_flat]


def _drop_duplicates(kept: list, dropped: Counter) -> list:
    """The first row of each (word, setting); the contributor is ignored."""
    seen, unique = set(), []
    for word, contributor, params in kept:
        key = (word, params.tobytes())
        if key in seen:
            dropped["exact duplicate (same word and setting)"] += 1
        else:
            seen.add(key)
            unique.append((word, contributor, params))
    return unique


def _wanted_words(words: Sequence[str], kept: list) -> list[str]:
    """``words`` normalised, in order, without repeats; an unknown one is a ValueError."""
    counts = Counter(word for word, _, _ in kept)
    wanted = list(dict.fromkeys(normalize_descriptor(w) for w in words))
    for word in wanted:
        if word not in counts:
            close = difflib.get_close_matches(word, list(counts), n=3, cutoff=0.6)
            hint = f" Close: {', '.join(close)}." if close else ""
            raise ValueError(
                f"word {word!r} is not in SAFE-DB after cleaning.{hint} "
                f"Most common: {', '.join(w for w, _ in counts.most_common(8))}"
            )
    return wanted


def _keep_words(kept: list, words, dropped: Counter) -> tuple[list, list[str] | None]:
    """The rows of the requested ``words`` (all rows when None), and those words normalised."""
    if words is None:
        return kept, None
    wanted = _wanted_words(words, kept)
    dropped["word not in the requested list"] += sum(1 for row in kept if row[0] not in wanted)
    return [row for row in kept if row[0] in wanted], wanted


def _drop_rare(kept: list, min_examples: int, words, dropped: Counter) -> tuple[list, set[str]]:
    """Rows of words with at least ``min_examples`` rows, and the set of the other words;
    a ValueError when no row is left."""
    counts = Counter(word for word, _, _ in kept)
    rare = {w for w, c in counts.items() if c < min_examples}
    if rare:
        dropped[f"word with fewer than {min_examples} examples"] += sum(counts[w] for w in rare)
        kept = [row for row in kept if row[0] not in rare]
    if not kept:
        raise ValueError(
            f"no SAFE-DB rows left after cleaning (min_examples={min_examples}, "
            f"words={words}); lower min_examples or choose other words"
        )
    return kept, rare


def _vocabulary(kept: list, wanted: list[str] | None, rare: set[str]) -> tuple[str, ...]:
    """The requested words in their order, else every word by descending count (ties by
    first appearance)."""
    if wanted is not None:
        return tuple(w for w in wanted if w not in rare)
    first = {w: i for i, w in reversed(list(enumerate(row[0] for row in kept)))}
    final = Counter(row[0] for row in kept)
    return tuple(sorted(final, key=lambda w: (-final[w], first[w])))


def _dataset(kept: list, vocabulary, target: EQLayout) -> tuple[EQDataset, np.ndarray]:
    """The rows as an EQDataset clipped into ``target``, and the ``[N, 15]`` mask of the
    parameters that were clipped."""
    settings_NxP = np.stack([params for _, _, params in kept])
    clipped_mask = (settings_NxP < target.lower) | (settings_NxP > target.upper)
    settings_NxP = np.clip(settings_NxP, target.lower, target.upper)
    settings = paramspace.validate(settings_NxP, target, name="SAFE-DB settings")
    index = {w: i for i, w in enumerate(vocabulary)}
    dataset = EQDataset(
        settings=settings,
        word_ids=np.array([index[row[0]] for row in kept], dtype=np.int32),
        vocabulary=vocabulary,
        layout=target,
        contributors=np.array([row[1] for row in kept], dtype=str),
    )
    return dataset, clipped_mask
