"""The single-setting path: what :class:`~neuraleq_jax.system.NeuralEQMorphingSystem` does to
answer ``generate_eq_from_semantic("warm", variations=1)`` in tens of microseconds.

One setting is a few small matmuls, so a call's time is almost all overhead: Python, dispatch,
argument transfer and XLA's per-kernel cost. Each trick below removes one piece of it; results
agree with the functional core (:mod:`neuraleq_jax.generation`) to float32 round-off.

- **Executables compiled ahead of time, one per bucket.** ``jax.jit(f).lower(...).compile()``
  once per served shape skips jit's tracing-cache lookup on every call. Counts are padded to
  power-of-two buckets (:func:`generation.bucket_size`, at most ``GENERATE_CHUNK`` per call), so
  a handful of executables serve every count; larger counts are made bucket by bucket.
- **One uint32 argument.** Seed, stream, first variation, word index and the float32 bits of
  ``strength`` (:func:`float32_bits`, via ``struct``) travel as one ``uint32[5]`` array: one
  host-to-device transfer per call instead of five, unpacked inside the executable (the strength
  by a bitcast). A blend's weight vector is the only other argument.
- **Parameters as constants, per-word arrays as bound arguments.** The model parameters and the
  word model's small shared arrays are closed over, so they are constants of the executable and
  XLA folds work on them. Arrays with a leading word axis (the kernel points are ``[W, N, L]``)
  are instead arguments bound once to their device copies (:meth:`Executables.split_by_word_axis`):
  as constants they would grow compile time and per-call time with the vocabulary.
- **A single word skips the mixture.** :func:`generation.word_variations` draws from one word's
  density directly (the draw takes one ``random.bits`` call: on a CPU each threefry call is a
  loop of its own), where a blend first picks a word per variation.
- **No tree-reduction rewrite on a CPU** (``CPU_SERVING_COMPILER_OPTIONS``). XLA:CPU splits every
  reduction into a windowed pass and a final one, for the accuracy of long sums; the layer norms
  of one setting then cost 7 small kernels each instead of 3. Our reductions are at most a few
  hundred long, so the serving executables skip that pass (one setting: about 10 % less time).
- **Fused dense layers at inference.** Layers that read the same input (a residual block's first
  dense layer and its skip projection; the decoder's three heads) run as one matmul outside
  training. That lives inside the Flax modules (``networks._dense_layers``), since it changes how
  the model is applied; training keeps separate matmuls.
- **Synchronous CPU dispatch** (:func:`use_synchronous_cpu_dispatch`), for interactive programs:
  waking XLA's worker thread costs tens of microseconds per call.
- **Words are looked up, not parsed** (:class:`TermWeights`): parsing a compound costs time in the
  vocabulary's size; a plain word is a dictionary hit.
- **One copy to the host, names in NumPy.** A call ends with one ``np.asarray``; the facade names
  the rows in Python from ``tolist()`` (float32 to Python float is exact).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax import generation
from neuraleq_jax.language import compound
from neuraleq_jax.model import networks
from neuraleq_jax.model.paramspace import EQLayout

GENERATE_CHUNK = 8192  # most variations decoded by one compiled call
MORPH_DENSE = 129  # points of the dense path that measures a morph's response length
# a morph is decoded in one compiled call (about 13 KB of memory a step on CPU)
MAX_MORPH_STEPS = 100_000
CPU_SERVING_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "tree_reduction_rewriter"}
MAX_STRENGTH = 1e30  # saturates every gain already, and float32 holds it
TERM_CACHE_SIZE = 4096  # parsed terms kept: terms may be free text


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


def float32_bits(value: float) -> int:
    """The bits of ``value`` as a float32, read as an unsigned 32-bit integer (``value`` is
    capped at ``MAX_STRENGTH``, beyond which float32 would overflow)."""
    return struct.unpack("<I", struct.pack("<f", min(value, MAX_STRENGTH)))[0]


def _unpack(ints_5):
    """``(key, first, word, strength)`` from the packed ``uint32[5]`` argument; the key is
    ``fold_in(key(seed), stream)``."""
    key = jax.random.fold_in(jax.random.key(ints_5[0]), ints_5[1])
    strength = jax.lax.bitcast_convert_type(ints_5[4], jnp.float32)
    return key, ints_5[2].astype(jnp.int32), ints_5[3].astype(jnp.int32), strength


def named_rows(settings_NxP: np.ndarray, names: Sequence[str], extra=None) -> list[dict]:
    """Host settings ``[N, P]`` as ``N`` dicts ``{name: value}`` of Python floats, plus the
    columns of ``extra`` (``{key: values [N]}``) as further entries."""
    # float32 → Python float is exact, so no float64 copy is needed first
    rows = [dict(zip(names, row)) for row in settings_NxP.tolist()]
    if extra is not None:
        for key, values in extra.items():
            for row, value in zip(rows, np.asarray(values, np.float64).tolist()):
                row[key] = value
    return rows


class TermWeights:
    """Terms → ``(weights [1, W] float32, the word's index, or -1 when the weights blend several
    words)``, with plain words looked up and parsed strings cached (at most
    ``TERM_CACHE_SIZE``)."""

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = tuple(vocabulary)
        self._word_index = {word.lower(): i for i, word in enumerate(self.vocabulary)}
        self._cache: dict[str, tuple[np.ndarray, int]] = {}

    def __call__(self, term) -> tuple[np.ndarray, int]:
        cached = self._cache.get(term) if isinstance(term, str) else None
        if (
            cached is None
            and isinstance(term, str)
            and (word := self._word_index.get(term.strip().lower())) is not None
        ):
            cached = (np.eye(1, len(self.vocabulary), word, np.float32), word)
            self._cache[term] = cached
        if cached is None:
            weights = compound.parse_weights(term, self.vocabulary)[None, :]
            nonzero = np.flatnonzero(weights[0])
            cached = (weights, int(nonzero[0]) if len(nonzero) == 1 else -1)
            if isinstance(term, str):
                if len(self._cache) >= TERM_CACHE_SIZE:
                    self._cache.clear()
                self._cache[term] = cached
        return cached


class Executables:
    """The compiled executables that serve one trained model, and its word model on the device.

    Args:
      params: the model parameters, on the device that serves.
      config, layout: the model's configuration and EQ layout.
      word_model: the fitted word model (dict of host arrays, per-word arrays ``[W, ...]``).
      n_words: the vocabulary's size ``W``.
    """

    def __init__(
        self,
        params,
        config: networks.ModelConfig,
        layout: EQLayout,
        word_model: dict[str, np.ndarray],
        n_words: int,
    ):
        self._params, self._config, self._layout = params, config, layout
        self._word_model, self._n_words = word_model, n_words
        self._device_arrays: dict[str, jax.Array] = {}
        self.compiled: dict[tuple, Callable] = {}  # by (kind, bucket, variant)

    def arrays(self, keys) -> dict[str, jax.Array]:
        """The word-model arrays ``keys`` on the first device (each copied there once)."""
        for key in keys:
            if key not in self._device_arrays:
                self._device_arrays[key] = jax.device_put(self._word_model[key], jax.devices()[0])
        return {key: self._device_arrays[key] for key in keys}

    def split_by_word_axis(self, keys) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """The word-model arrays ``keys`` on the device, as ``(per_word, shared)``: arrays with
        a leading word axis ``[W, ...]`` (bound arguments of the executables) and the rest
        (scalars, global arrays: constants of the executables)."""
        arrays = self.arrays(keys)
        per_word = {k: v for k, v in arrays.items() if v.ndim >= 1 and v.shape[0] == self._n_words}
        shared = {k: v for k, v in arrays.items() if k not in per_word}
        return per_word, shared

    def compile(self, name: tuple, function, *example_args, bound=None) -> Callable:
        """An ahead-of-time compiled ``function`` for these argument shapes (cached by name).

        ``bound``: device arrays (a pytree) passed as the first argument of every call; the
        cached callable takes only the remaining arguments."""
        compiled = self.compiled.get(name)
        if compiled is None:
            leading = () if bound is None else (bound,)
            lowered = jax.jit(function).lower(*leading, *example_args)
            cpu = jax.devices()[0].platform == "cpu"
            compiled = lowered.compile(CPU_SERVING_COMPILER_OPTIONS if cpu else None)
            if bound is not None:
                compiled = functools.partial(compiled, bound)
            self.compiled[name] = compiled
        return compiled

    # ------------------------------------------------------------------ variations

    def generate(
        self, weights_1xW, word: int, seed: int, stream: int, strength: float, variations: int
    ) -> np.ndarray:
        """``[variations, P]`` settings of the term with ``weights_1xW`` and word index ``word``
        (-1 for a blend), key ``fold_in(key(seed), stream)``; ``strength`` already checked."""
        bucket = min(generation.bucket_size(variations), GENERATE_CHUNK)
        executable, weights_args = self._generate_executable(bucket, word, weights_1xW)
        ints = (seed, stream, 0, max(word, 0), float32_bits(strength))
        if variations <= bucket:  # the common case, kept short: it is the latency path
            return np.asarray(executable(*weights_args, np.array(ints, np.uint32)))[:variations]
        pieces = [
            executable(*weights_args, np.array((*ints[:2], first, *ints[3:]), np.uint32))
            for first in range(0, variations, bucket)
        ]
        return np.asarray(jnp.concatenate(pieces))[:variations]

    def generate_chunks(
        self,
        weights_1xW,
        word: int,
        seed: int,
        stream: int,
        strength: float,
        variations: int,
        chunk: int,
    ) -> Iterator[np.ndarray]:
        """The settings of :meth:`generate` as host arrays of at most ``chunk`` rows (rounded
        up to a power of two, capped at ``GENERATE_CHUNK``)."""
        bucket = min(
            generation.bucket_size(variations), GENERATE_CHUNK, generation.bucket_size(chunk)
        )
        executable, weights_args = self._generate_executable(bucket, word, weights_1xW)
        strength_bits = float32_bits(strength)
        for first in range(0, variations, bucket):
            ints = np.array((seed, stream, first, max(word, 0), strength_bits), np.uint32)
            yield np.asarray(executable(*weights_args, ints))[: variations - first]

    def _generate_executable(self, bucket: int, word: int, weights_1xW):
        """``(executable, weight arguments)`` for ``bucket`` variations of a single word (the
        latency path, no weight vector) or of a blend (``word`` -1: the weights are passed)."""
        kind = "word" if word >= 0 else "blend"
        name = ("generate", bucket, kind)
        executable = self.compiled.get(name)
        if executable is None:
            executable = self._compile_generate(name, bucket, kind, weights_1xW)
        return executable, (() if word >= 0 else (weights_1xW,))

    def _compile_generate(self, name: tuple, bucket: int, kind: str, weights_1xW):
        params, config, layout = self._params, self._config, self._layout
        per_word, shared = self.split_by_word_axis(generation.GENERATE_KEYS)

        def serve_word(per_word, ints_5):
            key, first, word, strength = _unpack(ints_5)
            return generation.word_variations(
                params, config, {**per_word, **shared}, word, key, strength, first, bucket, layout
            )

        def serve_blend(per_word, weights_1xW, ints_5):
            key, first, _, strength = _unpack(ints_5)
            return generation.blend_variations(
                params,
                config,
                {**per_word, **shared},
                weights_1xW[0],
                key,
                strength,
                first=first,
                variations=bucket,
                layout=layout,
            )

        ints = np.zeros(5, np.uint32)
        if kind == "word":
            return self.compile(name, serve_word, ints, bound=per_word)
        return self.compile(name, serve_blend, weights_1xW, ints, bound=per_word)

    # ------------------------------------------------------------------ morphs

    def morph(self, weights_a_W, weights_b_W, blend: bool, steps: int) -> np.ndarray:
        """``[steps, P]`` settings from the centre of ``weights_a_W`` to that of ``weights_b_W``,
        equally spaced in response; ``blend``: either term mixes several words."""
        if steps > MAX_MORPH_STEPS:
            raise ValueError(
                f"steps must be at most {MAX_MORPH_STEPS:,} (a morph is computed in one piece), "
                f"got {steps:,}"
            )
        bucket = generation.bucket_size(steps)
        alphas_S = np.ones(bucket, np.float32)  # padding repeats the end point, then is dropped
        alphas_S[:steps] = np.linspace(0.0, 1.0, steps, dtype=np.float32)
        params, config, layout = self._params, self._config, self._layout
        per_word, shared = self.split_by_word_axis(generation.MORPH_KEYS)

        def serve(per_word, a_W, b_W, alphas_S):
            return generation.morph(
                params,
                config,
                {**per_word, **shared},
                a_W,
                b_W,
                alphas_S,
                dense=MORPH_DENSE,
                correct_blends=blend,
                layout=layout,
            )

        executable = self.compile(
            ("morph", bucket, blend), serve, weights_a_W, weights_b_W, alphas_S, bound=per_word
        )
        return np.asarray(executable(weights_a_W, weights_b_W, alphas_S))[:steps]
