"""The data sets a training config can name (``data.dataset``), their train/validation/test
split, and the held-out data an evaluation of a saved run compares with.

:data:`DATASETS` maps each name of ``config.DATASET_NAMES`` to a builder that reads
:class:`~neuraleq_jax.config.DataConfig` and returns the whole labelled
:class:`~neuraleq_jax.data.dataset.EQDataset`; :func:`build_datasets` splits it as training
does (by contributor where the data has them, so no contributor is on both sides).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from neuraleq_jax import config as config_lib
from neuraleq_jax.config import DataConfig
from neuraleq_jax.data.audealize import load_any_curve_file
from neuraleq_jax.data.crowd import audealize_dataset, crowd_dataset
from neuraleq_jax.data.curves import fit_curve_dataset
from neuraleq_jax.data.dataset import EQDataset, from_arrays, grouped_split, stratified_split
from neuraleq_jax.data.safedb import load_safe_db
from neuraleq_jax.data.socialfx import socialfx_dataset
from neuraleq_jax.data.synthetic import make_synthetic
from neuraleq_jax.data.vocabulary import with_sources


def _synthetic(data: DataConfig, progress: bool) -> EQDataset:
    return with_sources(make_synthetic(per_word=data.per_word, seed=data.data_seed), "synthetic")


def _safe(data: DataConfig, progress: bool) -> EQDataset:
    dataset, _report = load_safe_db(
        data.path or None,
        layout=data.layout,
        min_examples=data.min_examples,
        words=data.words or None,
    )
    return with_sources(dataset, "safe")


def _curves(data: DataConfig, progress: bool) -> EQDataset:
    # a curve file of either kind: curves' own format or Audealize's eqdescriptors.json
    dataset, _fit = fit_curve_dataset(
        load_any_curve_file(data.path),
        max_rms_db=data.max_fit_rms_db,
        seed=data.data_seed,
        progress=progress,
    )
    if data.words:
        keep = [i for i, word in enumerate(dataset.words) if word in data.words]
        dataset = from_arrays(
            dataset.settings[keep],
            [dataset.words[i] for i in keep],
            vocabulary=data.words,
            layout=dataset.layout,
        )
    return dataset


def _audealize(data: DataConfig, progress: bool) -> EQDataset:
    dataset, _read, _fit = audealize_dataset(
        data.path,
        per_word=data.per_word,
        seed=data.data_seed,
        spread_scale=data.spread_scale,
        words=data.words,
        progress=progress,
    )
    return dataset


def _crowd(data: DataConfig, progress: bool) -> EQDataset:
    return crowd_dataset(
        data.path,
        None,
        per_word=data.per_word,
        min_examples=data.min_examples,
        seed=data.data_seed,
        spread_scale=data.spread_scale,
        progress=progress,
    )


def _socialfx(data: DataConfig, progress: bool) -> EQDataset:
    dataset, _read, _fit = socialfx_dataset(
        data.path,
        min_examples=data.min_examples,
        words=data.words,
        seed=data.data_seed,
        progress=progress,
    )
    return dataset


# data.dataset name → builder (the config, and whether to show progress on stderr while a
# slow step runs); the same names as config.DATASET_NAMES (tests/test_layout.py)
DATASETS: dict[str, Callable[[DataConfig, bool], EQDataset]] = {
    "synthetic": _synthetic,
    "safe": _safe,
    "curves": _curves,
    "audealize": _audealize,
    "crowd": _crowd,
    "socialfx": _socialfx,
}


# how a preset marks data.path as the user's to give ("REQUIRED: --data.path=FILE.json")
REQUIRED = "REQUIRED:"


def load_dataset(data: DataConfig, *, progress: bool = False) -> EQDataset:
    """The whole labelled data set that ``data`` names, before any split; ``progress``: bars
    on stderr while slow steps run (the curve fits)."""
    if data.dataset not in DATASETS:
        raise ValueError(f"unknown data.dataset {data.dataset!r}; known: {', '.join(DATASETS)}")
    if data.path.startswith(REQUIRED):  # a preset's placeholder, not a file name
        raise ValueError(
            f"the {data.dataset} data set needs a file: pass {data.path[len(REQUIRED) :].strip()}"
        )
    return DATASETS[data.dataset](data, progress)


def build_datasets(
    data: DataConfig, *, progress: bool = False
) -> tuple[EQDataset, EQDataset | None, EQDataset | None]:
    """``(train, validation, test)`` for ``data`` (an empty part is None), split by
    ``data.split_fractions`` with ``data.split_seed``: by contributor when the data has them,
    else stratified by word; ``progress`` as for :func:`load_dataset`."""
    dataset = load_dataset(data, progress=progress)
    split = grouped_split if dataset.contributors is not None else stratified_split
    parts = split(dataset, data.split_fractions, data.split_seed)
    parts = [p if len(p) else None for p in parts]
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


# ------------------------------------------------------------------ a saved run's data


def split_from_config(config: Mapping):
    """Rebuild ``(train, heldout, description, split)`` exactly as training split the data.

    Uses :func:`build_datasets`, as training does, so the held-out part (the last of
    ``data.split_fractions``: test, or held-out contributors for real data) is the one
    training never saw.
    """
    experiment = config_lib.from_dict(config)
    data = experiment.data
    parts = [p for p in build_datasets(data) if p is not None]
    train, heldout = parts[0], parts[-1]
    if data.dataset == "synthetic":
        description = (
            f"synthetic, {data.per_word} per word (data seed {data.data_seed}), "
            f"{sum(len(p) for p in parts)} settings"
        )
    else:
        words = ", ".join(f"{w} {c}" for w, c in heldout.counts().items())
        description = (
            f"{data.dataset} ({data.path or 'SAFE-DB in ../shared'}), words "
            f"{', '.join(train.vocabulary)}, layout {data.layout}"
        )
        description += f"; held-out per word: {words}"
    grouped = train.contributors is not None
    kind = "contributor-grouped" if grouped else "stratified"
    split = (
        f"{kind} {'/'.join(f'{f:g}' for f in data.split_fractions)} (seed "
        f"{data.split_seed}); train {len(train)}, held-out {len(heldout)} settings"
    )
    if grouped:
        split += (
            f" from {len(set(heldout.contributors))} held-out contributors "
            f"(none of them in training)"
        )
    return train, heldout, description, split


FIDELITY_PER_WORD = 500
# the fresh synthetic draw's data seed is the training data seed plus this (never equal to it)
FRESH_SEED_OFFSET = 1


def fidelity_heldout_from_config(config: Mapping, heldout, per_word: int = FIDELITY_PER_WORD):
    """The held-out settings the fidelity figures compare with, and a line saying which.

    Real data: the held-out split (held-out contributors). Synthetic data (with
    ``per_word`` > 0): a fresh draw of ``per_word`` settings per word from the same
    generator with data seed ``data_seed + 1``, none of them seen in training. The split
    keeps ~10 settings per word, too few for the ratios of distribution match and blend
    fidelity (its noise floor dominates them and pulls every ratio toward 1).
    """
    data = config_lib.from_dict(config).data
    if data.dataset != "synthetic" or int(per_word) <= 0:
        return heldout, "the held-out split"
    seed = data.data_seed + FRESH_SEED_OFFSET
    fresh = DATASETS["synthetic"](
        dataclasses.replace(data, per_word=int(per_word), data_seed=seed), False
    )
    return fresh, (
        f"a fresh synthetic draw, {int(per_word)} settings per word (data seed "
        f"{seed}), not the split's held-out part"
    )
