"""The lite baseline: PCA with 8 components + k-nearest-neighbour regression.

Everything is NumPy on the host, except the conversions between physical settings and the unit
space, which are ``paramspace``'s (one jitted program each per batch size). PCA is fitted by
SVD on the *normalised* settings (``paramspace.normalize``: gains linear, frequency and Q in
log space, each mapped onto [-1, 1]), the space the neural model works in, not on z-scored
ones; so its explained variance is not that of a z-scored PCA.

Settings come back from latents by kernel-weighted kNN regression: the k nearest training
latents, weighted by ``(1 - (d / d_{k+1})^2)^2`` with ``d_{k+1}`` the distance to the next
neighbour. A neighbour's weight falls to zero exactly where it leaves the set, so the map from
latent to setting is continuous and a morph never jumps between neighbour sets halfway.

It offers the same facade methods as the neural system, so evaluation treats both alike, and
what the web server needs of a system (:class:`neuraleq_jax.server.service.ServedSystem`): each
word's details, the word map and describe are computed from its centre settings' responses, as
the neural system's are from its.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from neuraleq_jax.checks import count as _positive_int
from neuraleq_jax.checks import seed as _checked_seed
from neuraleq_jax.checks import strength as _checked_strength
from neuraleq_jax.data import vocabulary as vocab
from neuraleq_jax.data.dataset import EQDataset, from_records
from neuraleq_jax.data.vocabulary import word_index
from neuraleq_jax.metrics.distances import nearest_distance
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

# jitted: called eagerly, each of their primitives compiled on its own for every new batch size
# (about ten XLA programs, a quarter of a second), far more than a call's PCA and kNN work
_to_unit = jax.jit(paramspace.normalize, static_argnames="layout")


@functools.partial(jax.jit, static_argnames="layout")
def _unit_to_physical(unit_MxP, layout: EQLayout):
    """Unit settings ``[M, P]`` (already in [-1, 1]) → physical settings in range."""
    return paramspace.clip(paramspace.denormalize(unit_MxP, layout), layout)


def equal_step_fractions(t_T, responses_TxF, steps: int) -> np.ndarray:
    """Fractions ``[steps]`` at which a path (sampled densely at ``t_T``) is cut into steps of
    equal RMS-dB length (:func:`response.equal_step_positions`, in float64), end points kept at
    ``t_T[0], t_T[-1]``.
    """
    return response.equal_step_positions(
        np.linspace(0.0, 1.0, steps),
        np.asarray(t_T, dtype=np.float64),
        np.asarray(responses_TxF, dtype=np.float64),
        xp=np,
    )


def kernel_knn_weights(distances_MxR, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous kNN weights from distances to R reference points.

    Returns ``(indices [M, k'], weights [M, k'])`` with ``k' = min(k, R)``, weights summing to
    1 per row. With R <= k every point takes part and the bandwidth is 1.5 × the largest distance.
    """
    dist = np.asarray(distances_MxR, dtype=np.float64)
    n_ref = dist.shape[1]
    k = min(int(k), n_ref)
    order = np.argsort(dist, axis=1, kind="stable")
    nearest = np.take_along_axis(dist, order[:, :k], axis=1)
    if n_ref > k:
        bandwidth = np.take_along_axis(dist, order[:, k : k + 1], axis=1)
    else:
        bandwidth = 1.5 * nearest[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.clip(1.0 - (nearest / bandwidth) ** 2, 0.0, None) ** 2
    # all k neighbours as far as the (k+1)-th (or a zero bandwidth): fall back to equal weights
    dead = ~np.isfinite(weights).all(axis=1) | (np.nansum(weights, axis=1) <= 0)
    weights[dead] = 1.0
    return order[:, :k], weights / weights.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class BaselineTables:
    """What :class:`LiteBaseline` fits (float64; ``N`` training settings, ``C`` components).

    Attributes:
      mean_P, components_CxP: the PCA of the unit-space settings.
      explained_variance: the share of the variance the components keep, in ``(0, 1]``.
      unit_NxP, latents_NxC: the training settings in unit space and their PCA coordinates.
      word_rows: per word, the indices of its training settings.
      centres_WxC, cholesky_WxCxC: each word's latent Gaussian (mean, Cholesky factor).
      global_cholesky_CxC: the Cholesky factor of all training latents' covariance.
    """

    mean_P: np.ndarray
    components_CxP: np.ndarray
    explained_variance: float
    unit_NxP: np.ndarray
    latents_NxC: np.ndarray
    word_rows: tuple[np.ndarray, ...]
    centres_WxC: np.ndarray
    cholesky_WxCxC: np.ndarray
    global_cholesky_CxC: np.ndarray


def _covariance_cholesky(latents_NxC, n: int) -> np.ndarray:
    # a ridge keeps the Cholesky factor defined for tiny words
    return np.linalg.cholesky(np.atleast_2d(np.cov(latents_NxC.T, ddof=1)) + 1e-9 * np.eye(n))


def fit_tables(dataset: EQDataset, n_components: int) -> BaselineTables:
    """PCA by SVD of the unit-space settings, and each word's latent Gaussian."""
    x_NxP = dataset.normalized().astype(np.float64)
    mean_P = x_NxP.mean(axis=0)
    _, singular, vt = np.linalg.svd(x_NxP - mean_P, full_matrices=False)
    n = min(n_components, len(singular))
    total = float((singular**2).sum())
    latents_NxC = (x_NxP - mean_P) @ vt[:n].T
    word_rows = tuple(np.flatnonzero(dataset.word_ids == w) for w in range(len(dataset.vocabulary)))
    missing = [dataset.vocabulary[w] for w, rows in enumerate(word_rows) if not len(rows)]
    if missing:
        raise ValueError(f"every vocabulary word needs training settings; none for {missing}")
    return BaselineTables(
        mean_P=mean_P,
        components_CxP=vt[:n],
        explained_variance=float((singular[:n] ** 2).sum() / total) if total > 0 else 1.0,
        unit_NxP=x_NxP,
        latents_NxC=latents_NxC,
        word_rows=word_rows,
        centres_WxC=np.stack([latents_NxC[r].mean(axis=0) for r in word_rows]),
        cholesky_WxCxC=np.stack(
            [
                _covariance_cholesky(latents_NxC[r], n) if len(r) > 1 else np.zeros((n, n))
                for r in word_rows
            ]
        ),
        global_cholesky_CxC=_covariance_cholesky(latents_NxC, n),
    )


def knn_unit(tables: BaselineTables, latents_MxC, rows, k: int) -> np.ndarray:
    """Kernel-kNN average ``[M, P]`` of the unit-space training settings at ``rows``."""
    reference = tables.latents_NxC[rows]
    dist = np.sqrt(((latents_MxC[:, None, :] - reference[None]) ** 2).sum(axis=-1))
    index, weights = kernel_knn_weights(dist, k)
    return np.einsum("mk,mkp->mp", weights, tables.unit_NxP[rows][index])


def morph_unit(tables: BaselineTables, first: int, last: int, t_T, k: int) -> np.ndarray:
    """Unit-space settings ``[T, P]`` at fractions ``t_T`` of the morph between words ``first``
    and ``last``: the latent ``(1 - t) c1 + t c2`` decoded among each word's settings, the
    two blended ``(1 - t) s1 + t s2``."""
    t_T1 = np.asarray(t_T, dtype=np.float64)[:, None]
    latents = (1.0 - t_T1) * tables.centres_WxC[first] + t_T1 * tables.centres_WxC[last]
    from_first = knn_unit(tables, latents, tables.word_rows[first], k)
    return (1.0 - t_T1) * from_first + t_T1 * knn_unit(tables, latents, tables.word_rows[last], k)


def most_novel(tables: BaselineTables, latents_MxC, n: int) -> np.ndarray:
    """The ``n`` of ``latents_MxC`` furthest from any training latent, furthest first."""
    gap = np.sqrt(((latents_MxC[:, None] - tables.latents_NxC[None]) ** 2).sum(-1)).min(1)
    return latents_MxC[np.argsort(-gap, kind="stable")[:n]]


class LiteBaseline:
    """PCA(8) latent space + kernel-weighted kNN regression, with the neural system's facade.

    Args:
      n_components: PCA dimensions (the latent size).
      n_neighbors: k of the kNN regression (5, scikit-learn's usual default).
      layout: the EQ layout (taken from the data set once one is loaded).
      seed: default seed of the stochastic methods (generate, explore).
    """

    def __init__(
        self,
        n_components: int = 8,
        n_neighbors: int = 5,
        *,
        layout: EQLayout = DEFAULT_LAYOUT,
        seed: int = 0,
    ):
        if int(n_components) < 1 or int(n_neighbors) < 1:
            raise ValueError(
                f"n_components and n_neighbors must be >= 1, got {n_components}, {n_neighbors}"
            )
        self.n_components, self.n_neighbors, self.seed = int(n_components), int(n_neighbors), seed
        self.layout = layout
        self.dataset: EQDataset | None = None
        self._tables: BaselineTables | None = None
        self._word_arrays: dict[str, np.ndarray] | None = None
        self._fitted = False

    # ------------------------------------------------------------ data and fitting

    @property
    def vocabulary(self) -> tuple[str, ...]:
        self._require_data()
        return self.dataset.vocabulary

    def load_dataset(
        self, eq_settings: EQDataset | Sequence[Mapping], vocabulary: Sequence[str] | None = None
    ) -> EQDataset:
        """Take an EQDataset, or labelled dicts (word under ``term``/``semantic_label``)."""
        if isinstance(eq_settings, EQDataset):
            dataset = eq_settings
        else:
            dataset = from_records(eq_settings, vocabulary, self.layout)
        if len(dataset) < 2:
            raise ValueError(f"the baseline needs at least 2 settings, got {len(dataset)}")
        self.dataset, self.layout, self._fitted = dataset, dataset.layout, False
        self._word_arrays = None
        return dataset

    def train(self, **_ignored) -> dict:
        """Fit on the loaded data set (no epochs: PCA and kNN fit in closed form)."""
        self._require_data()
        return self.fit(self.dataset)

    def fit(self, dataset: EQDataset) -> dict:
        """Fit PCA and the kNN tables; returns ``{"explained_variance": float in (0, 1]}``."""
        if self.dataset is not dataset:
            self.load_dataset(dataset)
        self._tables, self._word_arrays = fit_tables(dataset, self.n_components), None
        self.explained_variance = self._tables.explained_variance
        self._fitted = True
        return {
            "explained_variance": self.explained_variance,
            "n_components": self._tables.components_CxP.shape[0],
        }

    # ------------------------------------------------------------ latent space

    def encode(self, settings_NxP) -> np.ndarray:
        """PCA coordinates of physical settings: ``[N, 15]`` → ``[N, n_components]``."""
        self._require_fit()
        unit = np.asarray(_to_unit(self._check(settings_NxP), self.layout), dtype=np.float64)
        return (unit - self._tables.mean_P) @ self._tables.components_CxP.T

    def reconstruct(self, settings_NxP) -> np.ndarray:
        """PCA round trip (encode, then the linear inverse), clipped: ``[N, 15]`` physical."""
        unit = self.encode(settings_NxP) @ self._tables.components_CxP + self._tables.mean_P
        return self._to_physical(unit)

    def decode(self, latents_MxC, word: str | None = None) -> np.ndarray:
        """Kernel-kNN regression from latents to settings ``[M, 15]`` physical.

        With ``word``, only that word's training settings are neighbours; otherwise all are.
        """
        self._require_fit()
        tables = self._tables
        rows = (
            np.arange(len(tables.unit_NxP)) if word is None else tables.word_rows[self._word(word)]
        )
        return self._to_physical(self._knn(np.atleast_2d(latents_MxC), rows))

    def centre_settings(self) -> np.ndarray:
        """Each word's centre setting, ``[W, 15]``: its mean training latent, decoded among
        its own settings."""
        self._require_fit()
        return np.stack(
            [
                self._to_physical(self._knn(self._tables.centres_WxC[w : w + 1], rows))[0]
                for w, rows in enumerate(self._tables.word_rows)
            ]
        )

    # ------------------------------------------------------------ the facade

    def generate_eq_from_semantic(
        self,
        term: str,
        variations: int = 5,
        *,
        strength: float = 1.0,
        seed: int | None = None,
        as_array: bool = False,
    ):
        """``variations`` settings for a word: latents drawn from the word's latent Gaussian
        (mean and covariance of its training latents), decoded among the word's own settings.

        ``strength`` scales every gain toward 0 dB (1 = as generated). Returns ``[V, 15]``
        physical with ``as_array``, else a list of named dicts.
        """
        self._require_fit()
        word = self._word(term)
        variations = _positive_int(variations, "variations", 1)
        strength = _checked_strength(strength)
        rng = np.random.default_rng([self._seed(seed), word])
        tables = self._tables
        noise = rng.standard_normal((variations, len(tables.centres_WxC[word])))
        latents = tables.centres_WxC[word] + noise @ tables.cholesky_WxCxC[word].T
        settings = self._to_physical(self._knn(latents, tables.word_rows[word]))
        return self._out(paramspace.scale_gains(settings, strength, self.layout, xp=np), as_array)

    def morph_between_terms(
        self,
        term1: str,
        term2: str,
        steps: int = 10,
        *,
        seed: int | None = None,
        as_array: bool = False,
        constant_speed: bool = True,
    ):
        """A path of ``steps`` settings from one word's centre to another's (deterministic).

        At fraction t the latent is ``(1 - t) c1 + t c2``; it is decoded among each word's
        own settings and the two results are blended ``(1 - t) s1 + t s2`` in the unit space,
        so the first and last steps are the words' centre settings. With ``constant_speed`` the
        fractions are spaced so that consecutive steps are equally far apart in RMS dB (on a
        dense pre-pass of the same path); otherwise they are evenly spaced in t. ``seed`` is
        accepted for the facade's signature and unused.
        """
        self._require_fit()
        del seed
        first, last = self._word(term1), self._word(term2)
        steps = _positive_int(steps, "steps", 2)
        t_S = np.linspace(0.0, 1.0, steps)
        if constant_speed:
            dense_t = np.linspace(0.0, 1.0, max(16 * steps, 257))
            dense = self._to_physical(self._morph_unit(first, last, dense_t))
            t_S = equal_step_fractions(
                dense_t, response.reference_response_db(dense, layout=self.layout), steps
            )
        return self._out(self._to_physical(self._morph_unit(first, last, t_S)), as_array)

    def _morph_unit(self, first: int, last: int, t_T) -> np.ndarray:
        return morph_unit(self._tables, first, last, t_T, self.n_neighbors)

    def explore_latent_space(
        self,
        n_samples: int = 20,
        *,
        novel: bool | None = None,
        seed: int | None = None,
        as_array: bool = False,
    ):
        """``n_samples`` settings from latents drawn from the training latents' Gaussian.

        With ``novel``, four times as many are drawn and the ones furthest from any training
        latent are kept, ordered by ``novelty_db`` (most novel first), the RMS dB (reference
        grid) from each one's response to the nearest training setting's, which their dicts
        carry.
        """
        self._require_fit()
        n_samples = _positive_int(n_samples, "n_samples", 1)
        rng = np.random.default_rng([self._seed(seed), 1 << 20])
        draws = n_samples * (4 if novel else 1)
        cholesky_CxC = self._tables.global_cholesky_CxC
        latents = rng.standard_normal((draws, cholesky_CxC.shape[0])) @ cholesky_CxC.T
        if not novel:
            return self._out(self.decode(latents), as_array)
        settings = self.decode(most_novel(self._tables, latents, n_samples))
        novelty_N = nearest_distance(
            response.reference_response_db(settings, layout=self.layout),
            response.reference_response_db(self.dataset.settings, layout=self.layout),
        )
        order = np.argsort(-novelty_N, kind="stable")
        if as_array:
            return settings[order]
        rows = self._out(settings[order], False)
        for row, novelty in zip(rows, novelty_N[order].tolist()):
            row["novelty_db"] = novelty
        return rows

    # ------------------------------------------------------------ the vocabulary

    def word_info(self, word: str) -> dict:
        """``{"word", "sources", "contributors", "agreement", "confidence", "lang"}`` from the
        fitted data set's sources (:func:`neuraleq_jax.data.vocabulary.word_info`)."""
        return vocab.word_info(word, self.vocabulary, self._vocabulary_arrays())

    def word_map(self) -> np.ndarray:
        """2-D word positions, float32 ``[W, 2]`` in vocabulary order, about RMS dB apart: the
        map of the centre settings' responses (:func:`neuraleq_jax.data.vocabulary.word_map`)."""
        return self._vocabulary_arrays()[vocab.WORD_MAP_KEY].copy()

    def describe(self, settings, k: int = 5):
        """The ``k`` words whose centre settings sound nearest each setting: ``[15]`` (or a
        named dict) → a list of ``(word, distance_db)``, nearest first; ``[N, 15]`` (or a list
        of dicts) → a list of such lists (:func:`neuraleq_jax.data.vocabulary.describe`)."""
        centres_WxF = self._vocabulary_arrays()["centre_responses_WxF"]
        k = _positive_int(k, "k", 1)
        return vocab.describe(settings, centres_WxF, self.vocabulary, k, self.layout)

    def _vocabulary_arrays(self) -> dict[str, np.ndarray]:
        """The fitted data set's source arrays, the centre settings' responses (reference grid,
        dB ``[W, F]``) and the word map; made on first use after each fit."""
        self._require_fit()
        if self._word_arrays is None:
            centres_WxF = np.asarray(
                response.reference_response_db(self.centre_settings(), layout=self.layout)
            )
            arrays = vocab.bundle_arrays(self.dataset, {"centre_responses_WxF": centres_WxF})
            self._word_arrays = {**arrays, "centre_responses_WxF": centres_WxF}
        return self._word_arrays

    # ------------------------------------------------------------ helpers

    def _knn(self, latents_MxC, rows) -> np.ndarray:
        return knn_unit(self._tables, latents_MxC, rows, self.n_neighbors)

    def _to_physical(self, unit_MxP) -> np.ndarray:
        unit = np.clip(unit_MxP, -1.0, 1.0).astype(np.float32)
        return np.array(_unit_to_physical(unit, self.layout), dtype=np.float32)

    def _check(self, settings) -> np.ndarray:
        settings = paramspace.validate(settings, self.layout, name="settings")
        return settings.reshape(-1, self.layout.n_params)

    def _word(self, term) -> int:
        if not isinstance(term, str):
            raise TypeError(
                f"the baseline takes a single word (str), got {type(term).__name__}; "
                f"known words: {', '.join(self.vocabulary)}"
            )
        return word_index(term, self.vocabulary)

    def _seed(self, seed) -> int:
        return _checked_seed(self.seed if seed is None else seed)

    def _out(self, settings, as_array: bool):
        return settings if as_array else paramspace.to_dicts(settings, self.layout)

    def _require_data(self):
        if self.dataset is None:
            raise RuntimeError("no data set loaded; call load_dataset(...) or fit(dataset) first")

    def _require_fit(self):
        self._require_data()
        if not self._fitted:
            raise RuntimeError("the baseline is not fitted; call train() or fit(dataset) first")
