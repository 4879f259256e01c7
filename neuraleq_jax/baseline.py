"""The lite baseline of SPEC §6: PCA with 8 components + k-nearest-neighbour regression.

Everything is NumPy on the host. PCA is fitted by SVD on the *normalised* settings
(``paramspace.normalize``: gains linear, frequency and Q in log space, each mapped onto
[-1, 1]), not on z-scored ones as in the seed; so its explained variance differs a little from
the seed's 72.4 %.

Settings come back from latents by kernel-weighted kNN regression: the k nearest training
latents, weighted by ``(1 - (d / d_{k+1})^2)^2`` with ``d_{k+1}`` the distance to the next
neighbour. A neighbour's weight falls to zero exactly where it leaves the set, so the map from
latent to setting is continuous and a morph never jumps between neighbour sets halfway.

It offers the same facade methods as the neural system, so evaluation treats both alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from neuraleq_jax import data as data_mod
from neuraleq_jax import paramspace, response
from neuraleq_jax.checks import count as _positive_int
from neuraleq_jax.checks import seed as _checked_seed
from neuraleq_jax.checks import strength as _checked_strength
from neuraleq_jax.data import EQDataset
from neuraleq_jax.paramspace import DEFAULT_LAYOUT, EQLayout


def equal_step_fractions(t_T, responses_TxF, steps: int) -> np.ndarray:
    """Fractions ``[steps]`` at which a path (sampled densely at ``t_T``) is cut into steps of
    equal RMS-dB length: arc-length reparametrisation, end points kept at ``t_T[0], t_T[-1]``.
    """
    t_T = np.asarray(t_T, dtype=np.float64)
    resp = np.asarray(responses_TxF, dtype=np.float64)
    chord = np.sqrt(np.mean((resp[1:] - resp[:-1]) ** 2, axis=-1))
    arc = np.concatenate([[0.0], np.cumsum(chord)])
    if arc[-1] <= 0:
        return np.linspace(t_T[0], t_T[-1], steps)
    return np.interp(np.linspace(0.0, arc[-1], steps), arc, t_T)


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
            dataset = data_mod.from_records(eq_settings, vocabulary, self.layout)
        if len(dataset) < 2:
            raise ValueError(f"the baseline needs at least 2 settings, got {len(dataset)}")
        self.dataset, self.layout, self._fitted = dataset, dataset.layout, False
        return dataset

    def train(self, **_ignored) -> dict:
        """Fit on the loaded data set (no epochs: PCA and kNN fit in closed form)."""
        self._require_data()
        return self.fit(self.dataset)

    def fit(self, dataset: EQDataset) -> dict:
        """Fit PCA and the kNN tables; returns ``{"explained_variance": float in (0, 1]}``."""
        if self.dataset is not dataset:
            self.load_dataset(dataset)
        x_NxP = dataset.normalized().astype(np.float64)
        self._mean_P = x_NxP.mean(axis=0)
        _, sing, vt = np.linalg.svd(x_NxP - self._mean_P, full_matrices=False)
        n = min(self.n_components, len(sing))
        self._components_CxP = vt[:n]
        total = float((sing**2).sum())
        self.explained_variance = float((sing[:n] ** 2).sum() / total) if total > 0 else 1.0
        self._unit_NxP = x_NxP
        self._latents_NxC = (x_NxP - self._mean_P) @ self._components_CxP.T
        self._word_rows = [
            np.flatnonzero(dataset.word_ids == w) for w in range(len(dataset.vocabulary))
        ]
        missing = [dataset.vocabulary[w] for w, rows in enumerate(self._word_rows) if not len(rows)]
        if missing:
            raise ValueError(f"every vocabulary word needs training settings; none for {missing}")
        self._centres_WxC = np.stack([self._latents_NxC[r].mean(axis=0) for r in self._word_rows])
        # per-word latent covariance (a ridge keeps the Cholesky defined for tiny words)
        self._chol_WxCxC = np.stack(
            [
                np.linalg.cholesky(
                    np.atleast_2d(np.cov(self._latents_NxC[r].T, ddof=1)) + 1e-9 * np.eye(n)
                )
                if len(r) > 1
                else np.zeros((n, n))
                for r in self._word_rows
            ]
        )
        self._global_chol = np.linalg.cholesky(
            np.atleast_2d(np.cov(self._latents_NxC.T, ddof=1)) + 1e-9 * np.eye(n)
        )
        self._fitted = True
        return {"explained_variance": self.explained_variance, "n_components": n}

    # ------------------------------------------------------------ latent space

    def encode(self, settings_Nx15) -> np.ndarray:
        """PCA coordinates of physical settings: ``[N, 15]`` → ``[N, n_components]``."""
        self._require_fit()
        unit = np.asarray(
            paramspace.normalize(self._check(settings_Nx15), self.layout), dtype=np.float64
        )
        return (unit - self._mean_P) @ self._components_CxP.T

    def reconstruct(self, settings_Nx15) -> np.ndarray:
        """PCA round trip (encode, then the linear inverse), clipped: ``[N, 15]`` physical."""
        unit = self.encode(settings_Nx15) @ self._components_CxP + self._mean_P
        return self._to_physical(unit)

    def decode(self, latents_MxC, word: str | None = None) -> np.ndarray:
        """Kernel-kNN regression from latents to settings ``[M, 15]`` physical.

        With ``word``, only that word's training settings are neighbours; otherwise all are.
        """
        self._require_fit()
        rows = np.arange(len(self._unit_NxP)) if word is None else self._word_rows[self._word(word)]
        return self._to_physical(self._knn(np.atleast_2d(latents_MxC), rows))

    def centre_settings(self) -> np.ndarray:
        """Each word's centre setting, ``[W, 15]``: its mean training latent, decoded among
        its own settings."""
        self._require_fit()
        return np.stack(
            [
                self._to_physical(self._knn(self._centres_WxC[w : w + 1], rows))[0]
                for w, rows in enumerate(self._word_rows)
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
        noise = rng.standard_normal((variations, len(self._centres_WxC[word])))
        latents = self._centres_WxC[word] + noise @ self._chol_WxCxC[word].T
        settings = self._to_physical(self._knn(latents, self._word_rows[word]))
        settings[:, self.layout.gain_indices] *= strength
        return self._out(self._clip(settings), as_array)

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
        t_T1 = np.asarray(t_T, dtype=np.float64)[:, None]
        latents = (1.0 - t_T1) * self._centres_WxC[first] + t_T1 * self._centres_WxC[last]
        return (1.0 - t_T1) * self._knn(latents, self._word_rows[first]) + t_T1 * self._knn(
            latents, self._word_rows[last]
        )

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
        latent are kept, most novel first.
        """
        self._require_fit()
        n_samples = _positive_int(n_samples, "n_samples", 1)
        rng = np.random.default_rng([self._seed(seed), 1 << 20])
        draws = n_samples * (4 if novel else 1)
        latents = rng.standard_normal((draws, self._global_chol.shape[0])) @ self._global_chol.T
        if novel:
            gap = np.sqrt(((latents[:, None] - self._latents_NxC[None]) ** 2).sum(-1)).min(1)
            latents = latents[np.argsort(-gap, kind="stable")[:n_samples]]
        return self._out(self.decode(latents), as_array)

    # ------------------------------------------------------------ helpers

    def _knn(self, latents_MxC, rows) -> np.ndarray:
        """Kernel-kNN average of the unit-space settings at ``rows``: ``[M, 15]``."""
        reference = self._latents_NxC[rows]
        dist = np.sqrt(((latents_MxC[:, None, :] - reference[None]) ** 2).sum(axis=-1))
        index, weights = kernel_knn_weights(dist, self.n_neighbors)
        return np.einsum("mk,mkp->mp", weights, self._unit_NxP[rows][index])

    def _to_physical(self, unit_MxP) -> np.ndarray:
        return self._clip(
            np.asarray(
                paramspace.denormalize(np.clip(unit_MxP, -1.0, 1.0).astype(np.float32), self.layout)
            )
        )

    def _clip(self, settings) -> np.ndarray:
        return np.array(paramspace.clip(settings, self.layout), dtype=np.float32)

    def _check(self, settings) -> np.ndarray:
        settings = paramspace.validate(settings, self.layout, name="settings")
        return settings.reshape(-1, self.layout.n_params)

    def _word(self, term) -> int:
        if not isinstance(term, str):
            raise TypeError(
                f"the baseline takes a single word (str), got {type(term).__name__}; "
                f"known words: {', '.join(self.vocabulary)}"
            )
        return data_mod.word_index(term, self.vocabulary)

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
