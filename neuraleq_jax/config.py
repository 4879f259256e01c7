"""Typed experiment configuration: frozen dataclasses, named presets, command-line overrides.

An :class:`ExperimentConfig` holds a :class:`~neuraleq_jax.model.networks.ModelConfig`, a
:class:`TrainConfig`, a :class:`DataConfig` and a :class:`DistributedConfig`. Named presets
are Python files in the repository's ``configs/`` folder, each with ``get_config()``; every
field can then be overridden as ``--section.field=value`` (or ``--field=value`` when the name
is unique across sections). The config used is stored as JSON beside the checkpoints.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

from neuraleq_jax.fileio import atomic_write_text
from neuraleq_jax.model.networks import ModelConfig

SCHEDULES = ("constant", "cosine", "warmup_cosine")
DATASET_NAMES = ("synthetic", "safe", "curves", "audealize", "crowd", "socialfx")


def find_configs_dir(package: Path) -> Path:
    """The presets' folder for the package folder ``package``: the repository's ``configs/`` in
    a source tree or editable install, else the copy a wheel installs as
    ``neuraleq_jax/configs`` (see pyproject.toml)."""
    for candidate in (package.parent / "configs", package / "configs"):
        if (candidate / "synthetic.py").is_file():
            return candidate
    return package.parent / "configs"


CONFIGS_DIR = find_configs_dir(Path(__file__).resolve().parent)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and loss settings; frozen and hashable (a static jit argument).

    Attributes:
      epochs: passes over the training split.
      batch_size: global batch (split across the devices of the ``data`` mesh axis).
      learning_rate: Adam step size (peak value when a schedule is used).
      seed: initialisation, shuffling and dropout all derive from it.
      contrastive_weight: λ in ``recon + response_weight·response + λ·contrastive``.
      temperature: supervised contrastive temperature τ.
      response_weight: weight of the dB-response term ((dB / gain half-range)² on the
        reference grid); 0 switches it off.
      cluster_weight: weight of the latent cluster term ``1 - batch silhouette of the
        latents`` (``losses.batch_silhouette``); 0 switches it off.
      augment_noise: std of Gaussian jitter added to training inputs in the unit space (the
        reconstruction target is the jittered setting); 0 switches it off.
      augment_shuffle_freq_q: give each training row, band by band, the frequency and Q of
        another row of its batch (a fresh permutation per band and step; gains and words stay).
        Right where frequency and Q carry no word information (the synthetic set): the
        autoencoder then sees new settings every step instead of memorising a few hundred.
      word_model_freq_q_crossings: fit the word model on each training setting this many
        times with, band by band, the frequency and Q of a random training setting of any
        word (``generation.cross_frequency_and_q``); 0 fits it on the settings as they are.
        Right under the assumption of ``augment_shuffle_freq_q``: a word's average sound is
        then estimated from every training frequency and Q, not from its own few.
      grad_clip: global-norm clipping threshold; 0 switches it off.
      schedule: ``constant``, ``cosine`` (decay to 0) or ``warmup_cosine``.
      warmup_epochs: linear warm-up length for ``warmup_cosine``.
      devices: number of devices on the ``data`` axis (0: all of them).
      checkpoint_every: save a checkpoint every this many epochs (and after the last).
      keep_checkpoints: how many of the latest checkpoints to keep (the best one is kept too).
      variation_ratio: multiplies the kernel bandwidth of each word's latent density that
        ``generation.fit_word_model`` calibrates on validation data (1: as calibrated; smaller
        draws variations nearer the word's training settings, larger spreads them).
    """

    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    # loss weights tuned on the synthetic set (see scripts/frontier.py for the trade-off)
    contrastive_weight: float = 0.1
    temperature: float = 0.1
    response_weight: float = 20.0
    cluster_weight: float = 0.5
    augment_noise: float = 0.0
    augment_shuffle_freq_q: bool = False
    word_model_freq_q_crossings: int = 0
    grad_clip: float = 0.0
    schedule: str = "constant"
    warmup_epochs: int = 0
    devices: int = 0
    checkpoint_every: int = 10
    keep_checkpoints: int = 3
    # the word model fitted after training (generation.fit_word_model)
    variation_ratio: float = 1.0

    def __post_init__(self):
        _check(self.epochs >= 1, "train.epochs must be >= 1, got", self.epochs)
        _check(
            self.batch_size >= 2,
            "train.batch_size must be >= 2 (contrastive pairs), got",
            self.batch_size,
        )
        _check(self.learning_rate > 0, "train.learning_rate must be > 0, got", self.learning_rate)
        _check(
            self.contrastive_weight >= 0,
            "train.contrastive_weight must be >= 0, got",
            self.contrastive_weight,
        )
        _check(self.temperature > 0, "train.temperature must be > 0, got", self.temperature)
        _check(
            self.response_weight >= 0,
            "train.response_weight must be >= 0, got",
            self.response_weight,
        )
        _check(
            self.cluster_weight >= 0, "train.cluster_weight must be >= 0, got", self.cluster_weight
        )
        _check(self.augment_noise >= 0, "train.augment_noise must be >= 0, got", self.augment_noise)
        _check(self.grad_clip >= 0, "train.grad_clip must be >= 0 (0 = off), got", self.grad_clip)
        _check(
            self.word_model_freq_q_crossings >= 0,
            "train.word_model_freq_q_crossings must be >= 0 (0 = off), got",
            self.word_model_freq_q_crossings,
        )
        _check(
            self.schedule in SCHEDULES,
            f"train.schedule must be one of {SCHEDULES}, got",
            self.schedule,
        )
        _check(self.warmup_epochs >= 0, "train.warmup_epochs must be >= 0, got", self.warmup_epochs)
        _check(self.devices >= 0, "train.devices must be >= 0 (0 = all), got", self.devices)
        _check(
            self.checkpoint_every >= 1,
            "train.checkpoint_every must be >= 1, got",
            self.checkpoint_every,
        )
        _check(
            self.keep_checkpoints >= 1,
            "train.keep_checkpoints must be >= 1, got",
            self.keep_checkpoints,
        )
        _check(
            self.variation_ratio > 0, "train.variation_ratio must be > 0, got", self.variation_ratio
        )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data set to train on and how to split it (train / validation / test)."""

    dataset: str = "synthetic"
    per_word: int = 70
    data_seed: int = 0
    split_seed: int = 0
    split_fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    # real data ("safe", "curves", "audealize", "socialfx"): file path ("" = SAFE-DB in
    # ../shared), words kept (empty = all), minimum examples per word (socialfx: contributions),
    # and SAFE's own slider layout or the standard ranges (clipped)
    path: str = ""
    words: tuple[str, ...] = ()
    min_examples: int = 20
    layout: str = "safe"
    max_fit_rms_db: float = 1.0
    # crowd vocabularies ("audealize", "crowd"): per_word settings per word, spread around the
    # fitted curve by the crowd's uncertainty times spread_scale (audealize.spread_db)
    spread_scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "split_fractions", tuple(float(f) for f in self.split_fractions))
        object.__setattr__(self, "words", tuple(str(w) for w in self.words))
        _check(self.per_word >= 1, "data.per_word must be >= 1, got", self.per_word)
        _check(
            self.dataset in DATASET_NAMES,
            f"data.dataset must be one of {DATASET_NAMES}, got",
            self.dataset,
        )
        _check(
            self.dataset != "curves" or bool(self.path),
            "data.path must name a curve file (JSON) when data.dataset is 'curves', got",
            repr(self.path),
        )
        _check(
            self.dataset not in ("audealize", "crowd") or bool(self.path),
            "data.path must name Audealize's eqdescriptors.json (get it with `neuraleq data "
            "fetch audealize`) when data.dataset is 'audealize' or 'crowd', got",
            repr(self.path),
        )
        _check(
            self.dataset != "socialfx" or bool(self.path),
            "data.path must name SocialFX's eq_contributions.csv (get it with `neuraleq data "
            "fetch socialfx`) when data.dataset is 'socialfx', got",
            repr(self.path),
        )
        _check(self.spread_scale > 0, "data.spread_scale must be > 0, got", self.spread_scale)
        _check(self.min_examples >= 1, "data.min_examples must be >= 1, got", self.min_examples)
        _check(
            self.layout in ("safe", "spec"),
            "data.layout must be 'safe' or 'spec', got",
            self.layout,
        )
        fractions = self.split_fractions
        _check(
            len(fractions) in (2, 3)
            and all(f >= 0 for f in fractions)
            and abs(sum(fractions) - 1.0) < 1e-6
            and fractions[0] > 0,
            "data.split_fractions must be 2 or 3 non-negative numbers (train, validation"
            "[, test]) summing to 1 with train > 0, got",
            fractions,
        )


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Multi-process settings; the defaults mean one process and no ``jax.distributed``.

    ``local_devices`` > 0 asks for that many simulated CPU devices in this process (testing
    multi-device code on one machine); it must be set before jax starts its backend.
    """

    coordinator_address: str = ""
    num_processes: int = 1
    process_id: int = 0
    local_devices: int = 0

    def __post_init__(self):
        _check(
            self.num_processes >= 1,
            "distributed.num_processes must be >= 1, got",
            self.num_processes,
        )
        _check(
            0 <= self.process_id < self.num_processes,
            f"distributed.process_id must be in [0, {self.num_processes}), got",
            self.process_id,
        )
        _check(
            self.num_processes == 1 or bool(self.coordinator_address),
            "distributed.coordinator_address (host:port) is needed when num_processes > 1, got",
            repr(self.coordinator_address),
        )
        _check(
            self.local_devices >= 0,
            "distributed.local_devices must be >= 0, got",
            self.local_devices,
        )

    @property
    def enabled(self) -> bool:
        return self.num_processes > 1


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run needs."""

    name: str = "synthetic"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)


SECTIONS = ("model", "train", "data", "distributed")


def _check(ok: bool, message: str, value) -> None:
    if not ok:
        raise ValueError(f"{message} {value!r}")


# ------------------------------------------------------------------ JSON round trip


def to_dict(config: ExperimentConfig) -> dict:
    """A JSON-ready dict of ``config`` (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


# word-model fields a saved config may hold that this code has no use for (the word model is a
# kernel density, with no fold and no frequency/Q spread): dropped when a saved config is read,
# so its workdir can still be evaluated
RETIRED_FIELDS = ("train.freq_q_spread", "train.fold_variations", "train.fold_margin")


def from_dict(data: Mapping) -> ExperimentConfig:
    """Inverse of :func:`to_dict`; unknown or ill-typed fields raise ValueError (fields in
    :data:`RETIRED_FIELDS` are ignored)."""
    config = ExperimentConfig()
    unknown = set(data) - {"name", *SECTIONS}
    if unknown:
        raise ValueError(
            f"unknown config section(s) {sorted(unknown)}; known: name, {', '.join(SECTIONS)}"
        )
    overrides = {}
    for section in SECTIONS:
        for field, value in dict(data.get(section, {})).items():
            if f"{section}.{field}" not in RETIRED_FIELDS:
                overrides[f"{section}.{field}"] = value
    if "name" in data:
        overrides["name"] = data["name"]
    return apply_overrides(config, overrides)


def save_json(config: ExperimentConfig, path: str | Path) -> Path:
    """Write ``config`` as JSON, atomically."""
    path = Path(path)
    atomic_write_text(path, json.dumps(to_dict(config), indent=2, sort_keys=True) + "\n")
    return path


def load_json(path: str | Path) -> ExperimentConfig:
    """Read a config written by :func:`save_json`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no config file at {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"config file {path} is not valid JSON: {error}") from None
    return from_dict(data)


# ------------------------------------------------------------------ presets


def available_presets(configs_dir: Path = CONFIGS_DIR) -> list[str]:
    """Names of the presets in ``configs_dir`` (``*.py`` files with ``get_config``)."""
    if not configs_dir.is_dir():
        return []
    return sorted(p.stem for p in configs_dir.glob("*.py") if not p.stem.startswith("_"))


def load_preset(name_or_path: str, configs_dir: Path = CONFIGS_DIR) -> ExperimentConfig:
    """The config of a named preset (``configs/<name>.py``), a ``.py`` file, or a ``.json`` file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json":
        return load_json(candidate)
    path = candidate if candidate.suffix == ".py" else configs_dir / f"{name_or_path}.py"
    if not path.is_file():
        known = available_presets(configs_dir)
        close = difflib.get_close_matches(str(name_or_path), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown config {name_or_path!r}; known presets in {configs_dir}: "
            f"{', '.join(known) or '(none)'}, or give a path to a .py/.json "
            f"config.{hint}"
        )
    spec = importlib.util.spec_from_file_location(f"neuraleq_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} has no get_config() function")
    config = module.get_config()
    if not isinstance(config, ExperimentConfig):
        raise ValueError(
            f"{path}: get_config() must return an ExperimentConfig, got {type(config).__name__}"
        )
    return config


# ------------------------------------------------------------------ overrides


def field_names(config: ExperimentConfig) -> list[str]:
    """Every overridable dotted name, such as ``train.epochs``."""
    names = ["name"]
    for section in SECTIONS:
        names += [f"{section}.{f.name}" for f in dataclasses.fields(getattr(config, section))]
    return names


def _resolve(config: ExperimentConfig, key: str) -> str:
    """Dotted name for ``key``, accepting an unambiguous bare field name."""
    names = field_names(config)
    key = key.replace("-", "_")
    if key in names:
        return key
    if "." not in key:
        matches = [n for n in names if n.split(".")[-1] == key]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ValueError(f"--{key} is ambiguous: say which of {', '.join(matches)}")
    # fields that key abbreviates by initials (train.lr → train.learning_rate) first: difflib's
    # spelling distance does not find them
    section, _, short = key.rpartition(".")
    initials = [
        n
        for n in names
        if section in ("", n.rpartition(".")[0])
        and "_" in n
        and short == "".join(w[:1] for w in n.rpartition(".")[2].split("_"))
    ]
    close = list(dict.fromkeys(initials + difflib.get_close_matches(key, names, n=3)))[:3]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown config field {key!r}.{hint} Known fields: {', '.join(names)}")


def _convert(value, annotation, name: str):
    """``value`` (a CLI string or a JSON value) as ``annotation``; ValueError naming ``name``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported field type {annotation} for {name}")
    if origin is tuple:
        element = typing.get_args(annotation)[0]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{name}: cannot read {value!r} as a list ({error})") from None
            else:
                value = [v for v in text.strip("()").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(
                f"{name} expects a comma-separated list of {element.__name__}, got {value!r}"
            )
        return tuple(_convert(v, element, name) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name} expects true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} expects an integer, got {value!r}")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip())
        except ValueError:
            raise ValueError(f"{name} expects an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError(f"{name} expects a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{name} expects a number, got {value!r}") from None
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} expects a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {annotation} for {name}")


def apply_overrides(config: ExperimentConfig, overrides: Mapping[str, object]) -> ExperimentConfig:
    """A copy of ``config`` with ``{"section.field": value}`` overrides, type-checked."""
    changes: dict[str, dict] = {}
    name = config.name
    for key, value in overrides.items():
        dotted = _resolve(config, key)
        if dotted == "name":
            name = _convert(value, str, "name")
            continue
        section, field = dotted.split(".")
        cls = type(getattr(config, section))
        annotation = typing.get_type_hints(cls)[field]
        changes.setdefault(section, {})[field] = _convert(value, annotation, f"--{dotted}")
    sections = {}
    for section in SECTIONS:
        current = getattr(config, section)
        sections[section] = dataclasses.replace(current, **changes.get(section, {}))
    return ExperimentConfig(name=name, **sections)


def parse_overrides(args: Sequence[str]) -> dict[str, str]:
    """``["--train.epochs=5", "--model.encoder", "transformer"]`` → ``{"train.epochs": "5", …}``."""
    overrides: dict[str, str] = {}
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"expected --section.field=value, got {arg!r}")
        body = arg[2:]
        if "=" in body:
            key, value = body.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = body, args[i + 1]
            i += 1
        else:
            raise ValueError(f"--{body} needs a value (--{body}=VALUE)")
        overrides[key] = value
        i += 1
    return overrides


def differences(a: ExperimentConfig, b: ExperimentConfig) -> dict[str, tuple]:
    """``{"section.field": (a_value, b_value)}`` for every field where ``a`` and ``b`` differ."""
    out = {}
    if a.name != b.name:
        out["name"] = (a.name, b.name)
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(a, section)):
            va, vb = getattr(getattr(a, section), f.name), getattr(getattr(b, section), f.name)
            if va != vb:
                out[f"{section}.{f.name}"] = (va, vb)
    return out
