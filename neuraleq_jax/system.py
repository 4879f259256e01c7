"""The object facade, ``NeuralEQMorphingSystem``, on top of the functional core.

>>> system = NeuralEQMorphingSystem(latent_dim=32)
>>> system.load_dataset(eq_settings)          # labelled settings
>>> system.train(epochs=50)
>>> variations = system.generate_eq_from_semantic('warm', variations=5)
>>> morph_steps = system.morph_between_terms('warm', 'bright', steps=10)
>>> novel_eqs = system.explore_latent_space(n_samples=20)

Results are lists of named dicts (``band1_gain`` … ``band5_q``) unless ``as_array=True``.
Every call takes ``seed``: the same seed gives the same result; without one, results follow
from the system's seed and a call counter (so a script is reproducible as a whole).

Serving is built for low latency (:mod:`neuraleq_jax.generation.serving` says how). On a CPU, an
interactive program should also call :func:`use_synchronous_cpu_dispatch` before its first JAX
computation (it halves the time of a single-setting call; see its docstring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from neuraleq_jax import generation
from neuraleq_jax.checks import count as _count
from neuraleq_jax.checks import seed as _seed
from neuraleq_jax.checks import strength as _strength
from neuraleq_jax.data import vocabulary as vocab
from neuraleq_jax.data.dataset import EQDataset, as_dataset
from neuraleq_jax.generation import serving
from neuraleq_jax.generation.serving import GENERATE_CHUNK
from neuraleq_jax.model import networks, paramspace
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT
from neuraleq_jax.sharding import on_first_device


def _default_experiment():
    """The synthetic preset (``configs/synthetic.py``), else the config defaults (same model)."""
    from neuraleq_jax import config  # imports checkpoints (orbax): only when a system is made

    try:
        return config.load_preset("synthetic")
    except (ValueError, OSError):
        return config.ExperimentConfig()


class NeuralEQMorphingSystem:
    """Words ↔ 5-band EQ settings through a trained latent space.

    Args:
      latent_dim: latent size (ignored when ``model_config`` is given, which must agree).
      encoder: a name of :data:`neuraleq_jax.model.networks.ENCODERS` (``"residual"``,
        ``"transformer"``).
      model_config: a full :class:`~neuraleq_jax.model.networks.ModelConfig` (overrides the two above).
      train_config: a :class:`~neuraleq_jax.config.TrainConfig` (default: the synthetic
        preset's, on one device).
      seed: initialisation/shuffling seed and the base of every unseeded call.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        *,
        encoder: str = "residual",
        model_config: networks.ModelConfig | None = None,
        train_config=None,
        seed: int = 0,
    ):
        self.seed = _seed(seed)
        default = _default_experiment()
        if model_config is None:
            latent_dim = _count(latent_dim, "latent_dim", 1)
            # a latent too small to split is all semantic
            semantic = default.model.semantic_dim if default.model.semantic_dim < latent_dim else 0
            model_config = dataclasses.replace(
                default.model, encoder=encoder, latent_dim=latent_dim, semantic_dim=semantic
            )
        elif (latent_dim, encoder) != (32, "residual") and (
            model_config.latent_dim,
            model_config.encoder,
        ) != (latent_dim, encoder):
            raise ValueError(
                f"latent_dim={latent_dim}, encoder={encoder!r} disagree with model_config "
                f"({model_config.latent_dim}, {model_config.encoder!r}); give one or the other"
            )
        self.model_config = model_config
        # one device: a batch of 16 split over several only adds communication
        self.train_config = (
            train_config
            if train_config is not None
            else dataclasses.replace(default.train, seed=self.seed, devices=1)
        )
        self.dataset: EQDataset | None = None
        self.history: list[dict] = []
        self.layout = DEFAULT_LAYOUT
        self.vocabulary: tuple[str, ...] = ()
        self._params = None
        self._word_model: dict[str, np.ndarray] | None = None
        self._step = 0
        self._reset_serving()

    # ------------------------------------------------------------------ data and training

    def load_dataset(self, eq_settings, vocabulary: Sequence[str] | None = None) -> EQDataset:
        """Set the labelled training data and return it as an :class:`EQDataset`.

        Accepts an ``EQDataset``; a list of dicts each holding a word under ``term`` (or
        ``semantic_label``) and the 15 named parameters ``band1_gain`` … ``band5_q``; or a
        pair ``(settings [N, 15], words [N])``. ``vocabulary`` fixes the word order (default:
        order of first appearance).
        """
        dataset = as_dataset(eq_settings, vocabulary)
        if dataset.layout.n_bands != self.model_config.n_bands:
            raise ValueError(
                f"the data has {dataset.layout.n_bands} bands, the model "
                f"{self.model_config.n_bands}"
            )
        self.dataset = dataset
        return dataset

    def train(self, epochs: int = 50, **overrides) -> list[dict]:
        """Train on the loaded data with ``trainer.fit``, then fit the word model.

        ``overrides`` replace :class:`TrainConfig` fields (``batch_size``, ``learning_rate`` …),
        type-checked (an unknown name gets the closest ones); returns the per-epoch metric dicts.
        """
        from neuraleq_jax import config
        from neuraleq_jax.training import trainer
        from neuraleq_jax.training.experiment import fit_word_model_for_run

        if self.dataset is None:
            raise RuntimeError("no data to train on: call load_dataset(eq_settings) first")
        changes = dict(overrides, epochs=_count(epochs, "epochs", 1))
        train_config = config.apply_overrides(
            config.ExperimentConfig(train=self.train_config),
            {f"train.{k}": v for k, v in changes.items()},
        ).train
        result = trainer.fit(self.dataset, self.model_config, train_config)
        self.train_config = train_config
        self.history = list(result.history)
        params = on_first_device(result.params)
        word_model = fit_word_model_for_run(
            params, self.model_config, train_config, self.dataset, seed=self.seed
        )
        step = int(np.asarray(result.state.step)) if result.state is not None else 0
        self._install(params, word_model, self.dataset.vocabulary, self.dataset.layout, step)
        return self.history

    def _install(self, params, word_model, vocabulary, layout, step: int = 0):
        self._params = on_first_device(params)
        missing = [k for k in generation.GENERATE_KEYS if k not in word_model]
        if missing:
            raise ValueError(
                f"the word model lacks {missing}: it was fitted by an earlier "
                f"version (variations around a centre); refit it with "
                f"generation.fit_word_model, or rerun the training command"
            )
        self._word_model = {k: np.asarray(v) for k, v in word_model.items()}
        self.vocabulary = tuple(vocabulary)
        self.layout = layout
        self._names = layout.param_names
        self._step = step
        self._reset_serving()

    def _reset_serving(self):
        self._term_weights = serving.TermWeights(self.vocabulary)
        self._serving = (
            None
            if self._params is None
            else serving.Executables(
                self._params, self.model_config, self.layout, self._word_model, len(self.vocabulary)
            )
        )
        self._calls = 0

    @property
    def is_trained(self) -> bool:
        return self._params is not None

    @property
    def params(self):
        """Trained model parameters (a pytree); see also :attr:`word_model`."""
        self._require_trained()
        return self._params

    @property
    def word_model(self) -> dict[str, np.ndarray]:
        """The fitted word model (dict of NumPy arrays, see ``generation.fit_word_model``)."""
        self._require_trained()
        return self._word_model

    @property
    def _compiled(self) -> dict[tuple, object]:
        """The serving executables compiled so far, by ``(kind, bucket, variant)``."""
        return {} if self._serving is None else self._serving.compiled

    def _require_trained(self):
        if self._params is None:
            raise RuntimeError(
                "the system is not trained: call load_dataset(eq_settings) and "
                "train(), or NeuralEQMorphingSystem.load(path)"
            )

    # ------------------------------------------------------------------ call helpers

    def _key_parts(self, seed) -> tuple[int, int]:
        """``(seed, stream)`` as integers in ``[0, 2**32)``; the key is
        ``fold_in(key(seed), stream)``."""
        if seed is None:
            self._calls += 1
            return self.seed, self._calls % 2**32
        return _seed(seed), 0

    def _key(self, seed) -> jax.Array:
        seed_u32, stream = self._key_parts(seed)
        return jax.random.fold_in(jax.random.key(np.uint32(seed_u32)), np.uint32(stream))

    def _core(self, keys) -> tuple:
        """``(params, model_config, word-model arrays keys on the device)``: the leading
        arguments of the functional core's calls."""
        return self._params, self.model_config, self._serving.arrays(keys)

    def _format(self, settings_NxP: np.ndarray, as_array: bool, extra=None):
        return settings_NxP if as_array else serving.named_rows(settings_NxP, self._names, extra)

    # ------------------------------------------------------------------ generate, morph, explore

    def generate_eq_from_semantic(
        self,
        term,
        variations: int = 5,
        *,
        strength: float = 1.0,
        seed: int | None = None,
        as_array: bool = False,
    ):
        """``variations`` settings for a word or blend.

        Args:
          term: a word (``"warm"``), a compound (``"warm and punchy"``,
            ``"0.7 warm + 0.3 bright"``) or a dict ``{"warm": 0.7, "bright": 0.3}``.
          variations: how many settings (>= 1).
          strength: gains scaled toward flat (0 flat, 1 as generated, > 1 exaggerated).
          seed: makes the result reproducible (see the module docstring).
        Returns:
          A list of ``variations`` named dicts, or an array ``[variations, 15]``.
        """
        self._require_trained()
        variations = _count(variations, "variations", 1)
        strength = _strength(strength)
        weights, word = self._term_weights(term)
        seed_u32, stream = self._key_parts(seed)
        settings = self._serving.generate(weights, word, seed_u32, stream, strength, variations)
        return self._format(settings, as_array)

    def generate_eq_chunks(
        self,
        term,
        variations: int,
        *,
        strength: float = 1.0,
        seed: int | None = None,
        chunk: int = GENERATE_CHUNK,
    ):
        """The settings of :meth:`generate_eq_from_semantic` (same arguments, ``as_array=True``),
        yielded as float32 arrays of at most ``chunk`` rows (rounded up to a power of two,
        capped at ``GENERATE_CHUNK``) ``[C, 15]``, so that any count fits in memory.
        Concatenated, they equal ``generate_eq_from_semantic(..., as_array=True)``: bit for bit
        at the default ``chunk``, within float32 round-off at a smaller one (a smaller compiled
        batch may round differently)."""
        self._require_trained()
        variations = _count(variations, "variations", 1)
        strength = _strength(strength)
        weights, word = self._term_weights(term)
        seed_u32, stream = self._key_parts(seed)
        chunk = _count(chunk, "chunk", 1)
        yield from self._serving.generate_chunks(
            weights, word, seed_u32, stream, strength, variations, chunk
        )

    def morph_between_terms(
        self, term1, term2, steps: int = 10, *, seed: int | None = None, as_array: bool = False
    ):
        """``steps`` settings from ``term1``'s centre setting to ``term2``'s (both included),
        evenly spaced in response (equal RMS-dB steps). Words or compounds, like
        :meth:`generate_eq_from_semantic`. The path is deterministic; ``seed`` is accepted for a
        uniform call signature and does not change it.
        """
        self._require_trained()
        steps = _count(steps, "steps", 2)
        if seed is not None:
            _seed(seed)
        weights_a, word_a = self._term_weights(term1)
        weights_b, word_b = self._term_weights(term2)
        blend = min(word_a, word_b) < 0
        settings = self._serving.morph(weights_a[0], weights_b[0], blend, steps)
        return self._format(settings, as_array)

    def explore_latent_space(
        self,
        n_samples: int = 20,
        *,
        novel=None,
        seed: int | None = None,
        as_array: bool = False,
        temperature: float = 1.0,
        progress=None,
    ):
        """Settings decoded from latents spread like the whole training set.

        Args:
          n_samples: how many settings to return.
          novel: None/False: plain samples. True or an integer ``m``: the ``n_samples`` most
            novel (RMS dB to the nearest training setting) of ``64 * n_samples`` (or ``m``)
            candidates, most novel first; dicts then carry ``novelty_db``.
          temperature: scales the spread of the latent Gaussian.
          progress: with ``novel``, called with the candidates ranked so far (may raise to stop).
        Returns:
          A list of named dicts or an array ``[n_samples, 15]``.
        """
        self._require_trained()
        n_samples = _count(n_samples, "n_samples", 1)
        key = self._key(seed)
        common = dict(temperature=float(temperature), layout=self.layout)
        if novel is None or novel is False:
            settings = generation.explore(
                *self._core(generation.EXPLORE_KEYS), key, n_samples, **common
            )
            return self._format(settings, as_array)
        candidates = 64 * n_samples if novel is True else _count(novel, "novel", n_samples)
        core = (*self._core(generation.NOVELTY_KEYS), key, candidates, n_samples)
        settings, novelty = generation.explore_novel(*core, progress=progress, **common)
        novelty = {"novelty_db": np.asarray(novelty)}
        return self._format(np.asarray(settings), as_array, extra=novelty)

    def explore_chunks(
        self,
        n_samples: int,
        *,
        seed: int | None = None,
        temperature: float = 1.0,
        chunk: int | None = None,
    ):
        """The settings of :meth:`explore_latent_space` (plain samples, ``as_array=True``),
        yielded as float32 arrays ``[<= chunk, 15]`` so that any count fits in memory (see
        :func:`generation.explore_chunks`). Concatenated, they equal that method's result."""
        self._require_trained()
        n_samples = _count(n_samples, "n_samples", 1)
        key = self._key(seed)
        yield from generation.explore_chunks(
            *self._core(generation.EXPLORE_KEYS),
            key,
            n_samples,
            chunk=chunk,
            temperature=float(temperature),
            layout=self.layout,
        )

    # ------------------------------------------------------------------ model access

    def centre_settings(self) -> np.ndarray:
        """Each word's centre setting (its decoded latent centre), ``[W, 15]`` physical."""
        self._require_trained()
        return np.asarray(
            generation.centre_settings(*self._core(generation.MORPH_KEYS), self.layout)
        )

    def encode(self, settings_NxP) -> np.ndarray:
        """Physical settings ``[N, 15]`` (validated) → the semantic part of their latents
        ``[N, S]``: what says which word a setting sounds like, and what the latent silhouette
        is measured on (``S = model_config.semantic_dim``, or the whole latent when that is 0).
        :meth:`latents` gives the full latent that the decoder reads."""
        return networks.semantic_part(self.latents(settings_NxP), self.model_config)

    def latents(self, settings_NxP) -> np.ndarray:
        """Physical settings ``[N, 15]`` (validated) → full latents ``[N, latent_dim]``:
        the semantic part, then the detail part (frequency, Q, within-word variation)."""
        self._require_trained()
        settings = paramspace.validate(settings_NxP, self.layout, name="settings")
        return generation.encode_latents(
            self._params, self.model_config, settings.reshape(-1, self.layout.n_params), self.layout
        )

    def reconstruct(self, settings_NxP) -> np.ndarray:
        """Encode then decode (the full latent): ``[N, 15]`` physical → ``[N, 15]`` physical."""
        return np.asarray(
            generation.decode_latents(
                self._params, self.model_config, self.latents(settings_NxP), self.layout
            )
        )

    # ------------------------------------------------------------------ the vocabulary

    def word_info(self, word) -> dict:
        """``{"word", "sources", "contributors", "agreement", "confidence", "lang"}``: where
        ``word`` came from and how sure its crowd was (see :func:`vocabulary.word_info`)."""
        self._require_trained()
        return vocab.word_info(word, self.vocabulary, self._word_model)

    def word_map(self) -> np.ndarray:
        """2-D word positions, float32 ``[W, 2]`` in vocabulary order, about RMS dB apart (stored
        in the bundle; :func:`neuraleq_jax.data.vocabulary.word_map`)."""
        self._require_trained()
        stored = self._word_model.get(vocab.WORD_MAP_KEY)  # absent from older bundles
        return np.array(
            vocab.word_map(self._word_model["centre_responses_WxF"]) if stored is None else stored,
            np.float32,
        )

    def describe(self, settings, k: int = 5):
        """The ``k`` words whose sound is nearest a setting (the inverse of generation): one
        setting ``[15]`` (or a named dict) → a list of ``(word, distance_db)``, nearest first;
        ``[N, 15]`` (or a list of dicts) → a list of such lists. Distance: RMS dB over the
        reference grid between the setting's response and each word's centre response (of its
        :meth:`centre_settings` row), so a word's own centre setting names that word first.
        See :func:`neuraleq_jax.data.vocabulary.describe`."""
        self._require_trained()
        return vocab.describe(
            settings,
            self._word_model["centre_responses_WxF"],
            self.vocabulary,
            _count(k, "k", 1),
            self.layout,
        )

    # ------------------------------------------------------------------ persistence

    def save(self, path) -> Path:
        """Write the trained model (params, configs, vocabulary, layout, word model) as an Orbax
        bundle under ``path`` (atomically); returns the bundle folder."""
        from neuraleq_jax.training import checkpoints

        self._require_trained()
        bundle = checkpoints.ModelBundle(
            params=self._params,
            model_config=self.model_config,
            train_config=self.train_config,
            layout=self.layout,
            vocabulary=self.vocabulary,
            word_model=self._word_model,
            step=self._step,
            metadata={"saved_by": "NeuralEQMorphingSystem", "seed": self.seed},
        )
        return checkpoints.save_bundle(path, bundle)

    @classmethod
    def from_params(
        cls,
        params,
        model_config: networks.ModelConfig,
        word_model,
        vocabulary: Sequence[str],
        layout=DEFAULT_LAYOUT,
        *,
        train_config=None,
        seed: int = 0,
    ) -> NeuralEQMorphingSystem:
        """A ready system from trained parts (``trainer.fit`` parameters and a word model from
        ``generation.fit_word_model``), e.g. to serve a model trained outside the facade."""
        if word_model is None or "centres_WxL" not in word_model:
            raise ValueError("word_model must be the dict returned by generation.fit_word_model")
        if len(vocabulary) != len(word_model["centres_WxL"]):
            raise ValueError(
                f"{len(vocabulary)} words but the word model has {len(word_model['centres_WxL'])}"
            )
        system = cls(model_config=model_config, train_config=train_config, seed=seed)
        system._install(params, word_model, vocabulary, layout)
        return system

    @classmethod
    def load(cls, path) -> NeuralEQMorphingSystem:
        """A system from a bundle written by :meth:`save` or by ``python -m neuraleq_jax.train
        --workdir W`` (pass ``W``)."""
        from neuraleq_jax.training import checkpoints

        bundle = checkpoints.load_bundle(path)
        if bundle.word_model is None:
            raise checkpoints.CheckpointError(
                f"the bundle at {path} has no word model; refit one with "
                f"generation.fit_word_model(params, model_config, training_data) and save it"
            )
        system = cls(
            model_config=bundle.model_config,
            train_config=bundle.train_config,
            seed=int(bundle.metadata.get("seed", bundle.train_config.seed)),
        )
        system._install(
            bundle.params, bundle.word_model, bundle.vocabulary, bundle.layout, bundle.step
        )
        return system

    def __repr__(self) -> str:
        state = f"{len(self.vocabulary)} words" if self.is_trained else "untrained"
        return (
            f"NeuralEQMorphingSystem(latent_dim={self.model_config.latent_dim}, "
            f"encoder={self.model_config.encoder!r}, {state})"
        )
