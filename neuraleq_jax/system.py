"""The seed's facade, ``NeuralEQMorphingSystem``, on top of the functional core.

>>> system = NeuralEQMorphingSystem(latent_dim=32)
>>> system.load_dataset(eq_settings)          # labelled settings
>>> system.train(epochs=50)
>>> variations = system.generate_eq_from_semantic('warm', variations=5)
>>> morph_steps = system.morph_between_terms('warm', 'bright', steps=10)
>>> novel_eqs = system.explore_latent_space(n_samples=20)

Results are lists of named dicts (``band1_gain`` … ``band5_q``) unless ``as_array=True``.
Every call takes ``seed``: the same seed gives the same result; without one, results follow
from the system's seed and a call counter (so a script is reproducible as a whole).

Serving is built for low latency: each served shape is compiled ahead of time once
(``jax.jit(f).lower(...).compile()``), variable sizes are padded to power-of-two buckets,
parameters stay on one device, results come to the host with one ``np.asarray`` and are
named in NumPy. On a CPU, an interactive program should also call
:func:`use_synchronous_cpu_dispatch` before its first JAX computation (it halves the time of a
single-setting call; see its docstring).
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import compound, data, generation, models, paramspace
from neuraleq_jax import vocabulary as vocab
from neuraleq_jax.checks import count as _count
from neuraleq_jax.checks import seed as _seed
from neuraleq_jax.checks import strength as _strength
from neuraleq_jax.data import EQDataset
from neuraleq_jax.paramspace import DEFAULT_LAYOUT

GENERATE_CHUNK = 8192  # most variations decoded by one compiled call
MORPH_DENSE = 129  # points of the dense path that measures a morph's response length
# XLA:CPU splits every reduction into a windowed pass and a final one (for the accuracy of long
# sums); the layer norms of a single setting then cost 7 small kernels each instead of 3. Our
# reductions are at most a few hundred long, so the serving executables skip that rewrite
# (one setting: about 10 % less time; results agree to float32 round-off).
CPU_SERVING_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "tree_reduction_rewriter"}


def use_synchronous_cpu_dispatch() -> None:
    """Run CPU computations on the calling thread instead of handing them to a worker thread.

    XLA's CPU client runs every computation above about 1000 FLOP asynchronously on a worker
    thread, and waking that thread costs tens of microseconds: on a 2-core machine one setting
    through :meth:`NeuralEQMorphingSystem.generate_eq_from_semantic` takes about twice as long
    as when it runs inline. Interactive programs (a plug-in, a server answering one request at
    a time) gain from running inline; programs that stream large batches keep the default, so
    the host can prepare the next batch while the last one computes.

    This sets JAX's ``jax_cpu_enable_async_dispatch`` option, which is read once, when JAX
    creates its CPU client: call it before the first JAX computation of the process (the
    environment variable ``JAX_CPU_ENABLE_ASYNC_DISPATCH=false`` does the same from outside).

    Raises:
      RuntimeError: JAX's backends already exist, so the setting could no longer take effect.
    """
    from jax._src import xla_bridge  # no public way to ask whether the clients exist yet

    if xla_bridge.backends_are_initialized() and jax.config.read("jax_cpu_enable_async_dispatch"):
        raise RuntimeError(
            "use_synchronous_cpu_dispatch() must be called before the first JAX computation "
            "(JAX's CPU client already exists and keeps dispatching asynchronously); call it "
            "at the start of the program, or set JAX_CPU_ENABLE_ASYNC_DISPATCH=false in the "
            "environment"
        )
    jax.config.update("jax_cpu_enable_async_dispatch", False)


def _default_experiment():
    """The synthetic preset (``configs/synthetic.py``) where the source tree has it, else the
    config defaults (the same SPEC §4 values)."""
    from neuraleq_jax import config  # imports checkpoints (orbax): only when a system is made

    try:
        return config.load_preset("synthetic")
    except (ValueError, OSError):
        return config.ExperimentConfig()


class NeuralEQMorphingSystem:
    """Words ↔ 5-band EQ settings through a trained latent space (SPEC §5).

    Args:
      latent_dim: latent size (ignored when ``model_config`` is given, which must agree).
      encoder: ``"residual"`` or ``"transformer"``.
      model_config: a full :class:`~neuraleq_jax.models.ModelConfig` (overrides the two above).
      train_config: a :class:`~neuraleq_jax.config.TrainConfig` (default: the synthetic
        preset's, on one device).
      seed: initialisation/shuffling seed and the base of every unseeded call.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        *,
        encoder: str = "residual",
        model_config: models.ModelConfig | None = None,
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
                f"latent_dim={latent_dim}, encoder={encoder!r} disagree with "
                f"model_config ({model_config.latent_dim}, "
                f"{model_config.encoder!r}); give one or the other"
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
        if isinstance(eq_settings, EQDataset):
            dataset = eq_settings
            if vocabulary is not None and tuple(vocabulary) != dataset.vocabulary:
                raise ValueError("vocabulary= disagrees with the dataset's own vocabulary")
        elif isinstance(eq_settings, tuple) and len(eq_settings) == 2:
            dataset = data.from_arrays(eq_settings[0], eq_settings[1], vocabulary)
        elif (
            isinstance(eq_settings, Sequence)
            and not isinstance(eq_settings, str)
            and all(isinstance(r, Mapping) for r in eq_settings)
        ):
            dataset = data.from_records(eq_settings, vocabulary)
        else:
            raise TypeError(
                f"cannot load {type(eq_settings).__name__}; give an EQDataset, a "
                f"list of dicts with 'term'/'semantic_label' and the 15 parameters "
                f"(band1_gain ... band5_q), or a tuple (settings [N, 15], words [N])"
            )
        if dataset.layout.n_bands != self.model_config.n_bands:
            raise ValueError(
                f"the data has {dataset.layout.n_bands} bands, the model "
                f"{self.model_config.n_bands}"
            )
        self.dataset = dataset
        return dataset

    def train(self, epochs: int = 50, **overrides) -> list[dict]:
        """Train on the loaded data with ``training.fit``, then fit the word model.

        ``overrides`` replace :class:`TrainConfig` fields (``batch_size``, ``learning_rate`` …).
        Returns the per-epoch history (list of metric dicts).
        """
        from neuraleq_jax import train as train_entry
        from neuraleq_jax import training

        if self.dataset is None:
            raise RuntimeError("no data to train on: call load_dataset(eq_settings) first")
        train_config = dataclasses.replace(
            self.train_config, epochs=_count(epochs, "epochs", 1), **overrides
        )
        result = training.fit(self.dataset, self.model_config, train_config)
        self.train_config = train_config
        self.history = list(result.history)
        params = jax.device_put(result.params, jax.devices()[0])
        word_model = train_entry.fit_word_model(
            params, self.model_config, train_config, self.dataset, seed=self.seed
        )
        step = int(np.asarray(result.state.step)) if result.state is not None else 0
        self._install(params, word_model, self.dataset.vocabulary, self.dataset.layout, step)
        return self.history

    def _install(self, params, word_model, vocabulary, layout, step: int = 0):
        self._params = jax.device_put(params, jax.devices()[0])
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
        self._compiled: dict[tuple, object] = {}
        self._weights_cache: dict[str, tuple[np.ndarray, int]] = {}
        # a plain word is looked up, not parsed: parsing costs time in the vocabulary's size
        self._word_lookup = {word.lower(): i for i, word in enumerate(self.vocabulary)}
        self._device_model: dict[str, jax.Array] = {}
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

    def _require_trained(self):
        if self._params is None:
            raise RuntimeError(
                "the system is not trained: call load_dataset(eq_settings) and "
                "train(), or NeuralEQMorphingSystem.load(path)"
            )

    # ------------------------------------------------------------------ serving helpers

    def _arrays(self, keys) -> dict[str, jax.Array]:
        for key in keys:
            if key not in self._device_model:
                self._device_model[key] = jax.device_put(self._word_model[key], jax.devices()[0])
        return {key: self._device_model[key] for key in keys}

    def _split_by_word_axis(self, keys) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """The word-model arrays ``keys`` on the device, as ``(per_word, shared)``: arrays with a
        leading word axis ``[W, ...]`` and the rest (scalars, global arrays).

        Served executables take ``per_word`` as arguments, so that their size (the kernel
        points are ``[W, N, L]``) grows neither compile time nor per-call time with the
        vocabulary, and keep ``shared`` as constants: they are small and fixed in size, and XLA
        can fold work on constants."""
        n_words = len(self.vocabulary)
        arrays = self._arrays(keys)
        per_word = {k: v for k, v in arrays.items() if v.ndim >= 1 and v.shape[0] == n_words}
        shared = {k: v for k, v in arrays.items() if k not in per_word}
        return per_word, shared

    def _weights(self, term) -> tuple[np.ndarray, int]:
        """``(weights [1, W], the word's index, or -1 when the weights blend several words)``;
        strings are parsed once."""
        cached = self._weights_cache.get(term) if isinstance(term, str) else None
        if (
            cached is None
            and isinstance(term, str)
            and (word := self._word_lookup.get(term.strip().lower())) is not None
        ):
            cached = (np.eye(1, len(self.vocabulary), word, np.float32), word)
            self._weights_cache[term] = cached
        if cached is None:
            weights = compound.parse_weights(term, self.vocabulary)[None, :]
            nonzero = np.flatnonzero(weights[0])
            cached = (weights, int(nonzero[0]) if len(nonzero) == 1 else -1)
            if isinstance(term, str):
                if len(self._weights_cache) >= 4096:  # bounded: terms may be free text
                    self._weights_cache.clear()
                self._weights_cache[term] = cached
        return cached

    def _key_parts(self, seed) -> tuple[int, int]:
        """``(seed, stream)`` as integers in ``[0, 2**32)``; the key is
        ``fold_in(key(seed), stream)``."""
        if seed is None:
            self._calls += 1
            return self.seed, self._calls % 2**32
        return _seed(seed), 0

    def _compile(self, name: str, function, *example_args, bound=None):
        """An ahead-of-time compiled ``function`` for these argument shapes (cached by name).

        ``bound``: device arrays (a pytree) passed as the first argument of every call; the
        cached callable takes only the remaining arguments."""
        compiled = self._compiled.get(name)
        if compiled is None:
            leading = () if bound is None else (bound,)
            lowered = jax.jit(function).lower(*leading, *example_args)
            cpu = jax.devices()[0].platform == "cpu"
            compiled = lowered.compile(CPU_SERVING_COMPILER_OPTIONS if cpu else None)
            if bound is not None:
                compiled = functools.partial(compiled, bound)
            self._compiled[name] = compiled
        return compiled

    def _format(self, settings_NxP: np.ndarray, as_array: bool, extra=None):
        if as_array:
            return settings_NxP
        names = self._names
        # float32 → Python float is exact, so no float64 copy is needed first
        rows = [dict(zip(names, row)) for row in settings_NxP.tolist()]
        if extra is not None:
            for key, values in extra.items():
                for row, value in zip(rows, np.asarray(values, np.float64).tolist()):
                    row[key] = value
        return rows

    # ------------------------------------------------------------------ the seed's API

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
        # one uint32 argument: seed, stream, first variation, word (0 for a blend, whose
        # weights go separately), strength's float32 bits; the parameters are constants of the
        # executable and the word model's per-word arrays stay on the device, bound to it. (A
        # strength beyond 1e30 saturates every gain anyway, and float32 would overflow.)
        strength_bits = struct.unpack("<I", struct.pack("<f", min(_strength(strength), 1e30)))[0]
        weights, word = self._weights(term)
        seed_u32, stream = self._key_parts(seed)
        bucket = min(generation.bucket_size(variations), GENERATE_CHUNK)
        kind = "word" if word >= 0 else "blend"
        compiled = self._compiled.get(("generate", bucket, kind))
        if compiled is None:
            compiled = self._compile_generate(bucket, kind, weights)
        weights_arg = () if word >= 0 else (weights,)
        word = max(word, 0)
        if variations <= bucket:  # the common case, kept short: it is the latency path
            settings = np.asarray(
                compiled(
                    *weights_arg, np.array((seed_u32, stream, 0, word, strength_bits), np.uint32)
                )
            )
        else:
            settings = np.asarray(
                jnp.concatenate(
                    [
                        compiled(
                            *weights_arg,
                            np.array((seed_u32, stream, first, word, strength_bits), np.uint32),
                        )
                        for first in range(0, variations, bucket)
                    ]
                )
            )
        return self._format(settings[:variations], as_array)

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
        Concatenated, they equal ``generate_eq_from_semantic(..., as_array=True)``."""
        self._require_trained()
        variations = _count(variations, "variations", 1)
        strength_bits = struct.unpack("<I", struct.pack("<f", min(_strength(strength), 1e30)))[0]
        weights, word = self._weights(term)
        seed_u32, stream = self._key_parts(seed)
        bucket = min(
            generation.bucket_size(variations),
            GENERATE_CHUNK,
            generation.bucket_size(_count(chunk, "chunk", 1)),
        )
        kind = "word" if word >= 0 else "blend"
        compiled = self._compiled.get(("generate", bucket, kind))
        if compiled is None:
            compiled = self._compile_generate(bucket, kind, weights)
        weights_arg = () if word >= 0 else (weights,)
        for first in range(0, variations, bucket):
            settings = compiled(
                *weights_arg,
                np.array((seed_u32, stream, first, max(word, 0), strength_bits), np.uint32),
            )
            yield np.asarray(settings)[: variations - first]

    def _compile_generate(self, bucket: int, kind: str, weights_1xW: np.ndarray):
        """The executable for ``bucket`` variations of a single word (``kind="word"``: the
        latency path, no weight vector) or of a blend (``kind="blend"``)."""
        params, config, layout = self._params, self.model_config, self.layout
        per_word, shared = self._split_by_word_axis(generation.GENERATE_KEYS)

        def unpack(ints_5):
            key = jax.random.fold_in(jax.random.key(ints_5[0]), ints_5[1])
            strength = jax.lax.bitcast_convert_type(ints_5[4], jnp.float32)
            return key, ints_5[2].astype(jnp.int32), ints_5[3].astype(jnp.int32), strength

        def serve_word(per_word, ints_5):
            key, first, word, strength = unpack(ints_5)
            return generation.word_variations(
                params, config, {**per_word, **shared}, word, key, strength, first, bucket, layout
            )

        def serve_weights(per_word, weights, ints_5):
            key, first, _, strength = unpack(ints_5)
            return generation._generate(
                params,
                config,
                {**per_word, **shared},
                weights,
                key[None],
                strength[None],
                first,
                bucket,
                layout,
            )[0]

        ints = np.zeros(5, np.uint32)
        if kind == "word":
            return self._compile(("generate", bucket, kind), serve_word, ints, bound=per_word)
        return self._compile(
            ("generate", bucket, kind), serve_weights, weights_1xW, ints, bound=per_word
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
        (weights_a, word_a), (weights_b, word_b) = self._weights(term1), self._weights(term2)
        weights_a, weights_b, blend = weights_a[0], weights_b[0], min(word_a, word_b) < 0
        bucket = generation.bucket_size(steps)
        alphas = np.ones(bucket, np.float32)  # padding repeats the end point, then is dropped
        alphas[:steps] = np.linspace(0.0, 1.0, steps, dtype=np.float32)
        params, config, layout = self._params, self.model_config, self.layout
        per_word, shared = self._split_by_word_axis(generation.MORPH_KEYS)

        def serve(per_word, a_W, b_W, alphas_S):
            return generation._morph(
                params,
                config,
                {**per_word, **shared},
                a_W,
                b_W,
                alphas_S,
                True,
                MORPH_DENSE,
                layout,
                blend,
            )

        compiled = self._compile(
            ("morph", bucket, blend), serve, weights_a, weights_b, alphas, bound=per_word
        )
        settings = np.asarray(compiled(weights_a, weights_b, alphas))
        return self._format(settings[:steps], as_array)

    def explore_latent_space(
        self,
        n_samples: int = 20,
        *,
        novel=None,
        seed: int | None = None,
        as_array: bool = False,
        temperature: float = 1.0,
    ):
        """Settings decoded from latents spread like the whole training set.

        Args:
          n_samples: how many settings to return.
          novel: None/False: plain samples. True or an integer ``m``: draw ``64 * n_samples``
            (or ``m``) candidates and return the ``n_samples`` most novel (largest RMS-dB
            distance to the nearest training setting), most novel first; dicts then carry
            ``novelty_db``.
          temperature: scales the spread of the latent Gaussian.
        Returns:
          A list of named dicts or an array ``[n_samples, 15]``.
        """
        self._require_trained()
        n_samples = _count(n_samples, "n_samples", 1)
        seed_u32, stream = self._key_parts(seed)
        key = jax.random.fold_in(jax.random.key(np.uint32(seed_u32)), np.uint32(stream))
        common = dict(temperature=float(temperature), layout=self.layout)
        if novel is None or novel is False:
            settings = generation.explore(
                self._params,
                self.model_config,
                self._arrays(generation.EXPLORE_KEYS),
                key,
                n_samples,
                **common,
            )
            return self._format(settings, as_array)
        candidates = 64 * n_samples if novel is True else _count(novel, "novel", n_samples)
        settings, novelty = generation.explore_novel(
            self._params,
            self.model_config,
            self._arrays(generation.NOVELTY_KEYS),
            key,
            candidates,
            n_samples,
            **common,
        )
        settings = np.asarray(settings)
        return self._format(settings, as_array, extra={"novelty_db": np.asarray(novelty)})

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
        seed_u32, stream = self._key_parts(seed)
        key = jax.random.fold_in(jax.random.key(np.uint32(seed_u32)), np.uint32(stream))
        yield from generation.explore_chunks(
            self._params,
            self.model_config,
            self._arrays(generation.EXPLORE_KEYS),
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
            generation.centre_settings(
                self._params, self.model_config, self._arrays(generation.MORPH_KEYS), self.layout
            )
        )

    def encode(self, settings_Nx15) -> np.ndarray:
        """Physical settings ``[N, 15]`` (validated) → the semantic part of their latents
        ``[N, S]``: what says which word a setting sounds like, and what the latent silhouette
        is measured on (``S = model_config.semantic_dim``, or the whole latent when that is 0).
        :meth:`latents` gives the full latent that the decoder reads."""
        return models.semantic_part(self.latents(settings_Nx15), self.model_config)

    def latents(self, settings_Nx15) -> np.ndarray:
        """Physical settings ``[N, 15]`` (validated) → full latents ``[N, latent_dim]``:
        the semantic part, then the detail part (frequency, Q, within-word variation)."""
        self._require_trained()
        settings = paramspace.validate(settings_Nx15, self.layout, name="settings")
        return generation.encode_latents(
            self._params, self.model_config, settings.reshape(-1, self.layout.n_params), self.layout
        )

    def reconstruct(self, settings_Nx15) -> np.ndarray:
        """Encode then decode (the full latent): ``[N, 15]`` physical → ``[N, 15]`` physical."""
        return np.asarray(
            generation.decode_latents(
                self._params, self.model_config, self.latents(settings_Nx15), self.layout
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
        in the bundle; :func:`neuraleq_jax.vocabulary.word_map`)."""
        self._require_trained()
        stored = self._word_model.get(vocab.WORD_MAP_KEY)  # absent from older bundles
        return np.array(
            vocab.word_map(self._word_model["centre_responses_WxF"]) if stored is None else stored,
            np.float32,
        )

    def describe(self, settings, k: int = 5):
        """The ``k`` words whose sound is nearest a setting (the inverse of generation): one
        setting ``[15]`` (or a named dict) → a list of ``(word, distance_db)``, nearest first;
        ``[N, 15]`` (or a list of dicts) → a list of such lists. Distance: RMS dB over SPEC's
        reference grid between the setting's response and each word's centre response (of its
        :meth:`centre_settings` row), so a word's own centre setting names that word first.
        See :func:`neuraleq_jax.vocabulary.describe`."""
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
        from neuraleq_jax import checkpoints

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
        model_config: models.ModelConfig,
        word_model,
        vocabulary: Sequence[str],
        layout=DEFAULT_LAYOUT,
        *,
        train_config=None,
        seed: int = 0,
    ) -> NeuralEQMorphingSystem:
        """A ready system from trained parts (``training.fit`` parameters and a word model from
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
        from neuraleq_jax import checkpoints

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
