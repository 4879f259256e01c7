"""The evaluation of a whole system (the neural facade or the lite baseline) on held-out data.

The figures are plain functions of arrays in :mod:`neuraleq_jax.metrics`.
:func:`evaluate_system` asks a system for its latents, reconstructions, variations, morphs and
explored settings, and computes every figure from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from neuraleq_jax.data import synthetic
from neuraleq_jax.metrics import fidelity
from neuraleq_jax.metrics.quality import (
    box_rate,
    data_gain_boxes,
    in_range_rate,
    morph_endpoint_error,
    morph_smoothness,
    response_error,
    variation_calibration,
    word_accuracy,
)
from neuraleq_jax.metrics.silhouette import latent_silhouette
from neuraleq_jax.model import response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

# variations per blend: enough that their own sampling noise is small beside blend fidelity's goal
BLEND_VARIATIONS = 1000


# ---------------------------------------------------------------- a whole system


class EvaluatedSystem(Protocol):
    """What :func:`evaluate_system` needs of a system: the neural facade and the lite baseline
    both offer it, trained or fitted. ``P`` is ``layout.n_params``; settings are physical.

    - ``layout``, ``vocabulary``: the EQ layout and the ``W`` known words.
    - ``encode(settings_NxP)``: latents ``[N, L]``; ``reconstruct(settings_NxP)``: ``[N, P]``.
    - ``centre_settings()``: each word's centre setting, ``[W, P]``.
    - ``generate_eq_from_semantic(term, variations=V, seed=k, as_array=True)``: ``[V, P]``; a
      term that is a mapping ``{word: weight}`` asks for a blend, and a system without blends
      raises TypeError (the baseline does; blend fidelity then takes a mixture).
    - ``morph_between_terms(term1, term2, steps=S, seed=k, as_array=True)``: ``[S, P]``.
    - ``explore_latent_space(n_samples=N, seed=k, as_array=True)``: ``[N, P]``.
    """

    layout: EQLayout

    @property
    def vocabulary(self) -> Sequence[str]: ...

    def encode(self, settings_NxP) -> np.ndarray: ...

    def reconstruct(self, settings_NxP) -> np.ndarray: ...

    def centre_settings(self) -> np.ndarray: ...

    def generate_eq_from_semantic(
        self, term, variations: int, *, seed: int | None, as_array: bool
    ): ...

    def morph_between_terms(
        self, term1, term2, steps: int, *, seed: int | None, as_array: bool
    ): ...

    def explore_latent_space(self, n_samples: int, *, seed: int | None, as_array: bool): ...


def word_pairs(n_words: int) -> np.ndarray:
    """Every unordered word pair ``(i, j)``, ``i < j``, in vocabulary order: ``[P, 2]``."""
    return np.array(
        [(i, j) for i in range(n_words) for j in range(i + 1, n_words)], dtype=np.int64
    ).reshape(-1, 2)


def default_boxes(vocabulary, heldout, layout: EQLayout) -> tuple[np.ndarray, str]:
    """The synthetic set's boxes when the vocabulary and layout are the synthetic ones, else
    the held-out data's per-word 5–95 % gain ranges. Returns ``(boxes, source)``."""
    if tuple(vocabulary) == synthetic.VOCABULARY and layout == DEFAULT_LAYOUT:
        boxes = synthetic.GAIN_BOXES_DB.astype(np.float64)
        return boxes, "synthetic word boxes (the generator's own)"
    boxes = data_gain_boxes(heldout.settings, heldout.word_ids, len(vocabulary), layout=layout)
    return boxes, "held-out data's per-word, per-band 5–95 % gain range"


def generated_set_figures(
    generated_NxP,
    generated_ids_N,
    train,
    heldout,
    *,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
) -> dict:
    """:func:`fidelity.generated_figures` against ``heldout``, plus the word accuracy of the
    same generated set (for a system's variations and for the reference generators alike),
    its nearest-word classifier built on ``heldout``."""
    out = fidelity.generated_figures(
        generated_NxP, generated_ids_N, train, heldout, sample_rate=sample_rate
    )
    accuracy = word_accuracy(
        generated_NxP,
        generated_ids_N,
        heldout.settings,
        heldout.word_ids,
        len(heldout.vocabulary),
        layout=heldout.layout,
        sample_rate=sample_rate,
    )
    out.update(word_accuracy=accuracy["generated"], word_accuracy_data=accuracy["data"])
    return out


class SystemOutputs(NamedTuple):
    """What a system returns for the evaluation (physical settings ``[…, P]``)."""

    latents: np.ndarray  # [N, L] of the held-out settings
    reconstructed: np.ndarray  # [N, P]
    generated: np.ndarray  # [W, V, P]: V variations per word
    generated_flat: np.ndarray  # [W·V, P]
    generated_ids: np.ndarray  # [W·V] word of each generated setting
    pairs: np.ndarray  # [Q, 2] word pairs, each morphed
    paths: np.ndarray  # [Q, S, P]
    centres: np.ndarray  # [W, P] each word's centre setting
    explored: np.ndarray  # [n_explore, P]


def _check_system(system: EvaluatedSystem, heldout, n_variations: int, steps: int) -> None:
    vocabulary = tuple(system.vocabulary)
    if tuple(heldout.vocabulary) != vocabulary or heldout.layout != system.layout:
        raise ValueError(
            f"held-out data (words {heldout.vocabulary}) must share the system's "
            f"vocabulary {vocabulary} and layout"
        )
    if int(n_variations) < 2 or int(steps) < 2:
        raise ValueError(f"n_variations and steps must be >= 2, got {n_variations}, {steps}")


def system_outputs(
    system: EvaluatedSystem,
    settings_NxP,
    n_variations: int,
    steps: int,
    seed: int,
    *,
    n_explore: int = 64,
) -> SystemOutputs:
    """Ask ``system`` for everything the figures are computed from: latents and
    reconstructions of ``settings_NxP``, ``n_variations`` variations of each word (seed
    ``seed + w`` for word ``w``), a ``steps``-step morph for every word pair, each word's
    centre, and ``n_explore`` explored settings."""
    vocabulary, n_params = tuple(system.vocabulary), system.layout.n_params
    latents = np.asarray(system.encode(settings_NxP))
    recon = np.asarray(system.reconstruct(settings_NxP))
    generated_WxVxP = np.stack(
        [
            np.asarray(
                system.generate_eq_from_semantic(
                    word, variations=int(n_variations), seed=seed + w, as_array=True
                )
            )
            for w, word in enumerate(vocabulary)
        ]
    )
    pairs = word_pairs(len(vocabulary))
    paths = np.stack(
        [
            np.asarray(
                system.morph_between_terms(
                    vocabulary[a], vocabulary[b], steps=int(steps), seed=seed, as_array=True
                )
            )
            for a, b in pairs
        ]
    )
    centres = np.asarray(system.centre_settings())
    explored = np.asarray(
        system.explore_latent_space(n_samples=int(n_explore), seed=seed, as_array=True)
    )
    return SystemOutputs(
        latents,
        recon,
        generated_WxVxP,
        generated_WxVxP.reshape(-1, n_params),
        np.repeat(np.arange(len(vocabulary)), generated_WxVxP.shape[1]),
        pairs,
        paths,
        centres,
        explored,
    )


def _array_figures(outputs: SystemOutputs, heldout, boxes, sample_rate: float, judged=None) -> dict:
    """The figures computed from the outputs and the held-out data alone (no training data):
    box rate, response error, word accuracy (on ``judged``, default ``heldout``),
    calibration, morph smoothness and end points."""
    layout, n_words = heldout.layout, len(heldout.vocabulary)
    kw = dict(layout=layout, sample_rate=sample_rate)
    gen, gen_ids = outputs.generated_flat, outputs.generated_ids
    settings, ids = heldout.settings, heldout.word_ids
    judged = heldout if judged is None else judged
    return {
        "boxes": box_rate(gen, gen_ids, boxes, layout=layout),
        "response_error": response_error(settings, outputs.reconstructed, **kw),
        "accuracy": word_accuracy(gen, gen_ids, judged.settings, judged.word_ids, n_words, **kw),
        "calibration": variation_calibration(gen, gen_ids, settings, ids, n_words, layout=layout),
        "smoothness": morph_smoothness(outputs.paths, **kw),
        "endpoints": morph_endpoint_error(outputs.paths, outputs.pairs, outputs.centres, **kw),
    }


def _all_returned(outputs: SystemOutputs, n_params: int) -> np.ndarray:
    """Every setting the system returned, ``[M, P]`` (the all-in-range check)."""
    return np.concatenate(
        [
            outputs.generated_flat,
            outputs.paths.reshape(-1, n_params),
            outputs.centres,
            outputs.explored.reshape(-1, n_params),
        ]
    )


def _flat_figures(outputs: SystemOutputs, heldout, figures: dict) -> dict:
    """The headline figures (see :data:`GOALS`), one number each."""
    boxes, recon_err, accuracy = figures["boxes"], figures["response_error"], figures["accuracy"]
    calibration, smooth, ends = figures["calibration"], figures["smoothness"], figures["endpoints"]
    returned = _all_returned(outputs, heldout.layout.n_params)
    return {
        "latent_silhouette": latent_silhouette(outputs.latents, heldout.word_ids),
        "box_rate": boxes["box_rate"],
        "gain_in_box_rate": boxes["gain_in_box_rate"],
        "freq_q_in_range_rate": boxes["freq_q_in_range_rate"],
        "response_error_mean_db": recon_err["mean_db"],
        "response_error_median_db": recon_err["median_db"],
        "word_accuracy": accuracy["generated"],
        "word_accuracy_data": accuracy["data"],
        "calibration_median": calibration["median"],
        "calibration_min": calibration["min"],
        "calibration_max": calibration["max"],
        "morph_smoothness_max": float(smooth.max()),
        "morph_smoothness_median": float(np.median(smooth)),
        "morph_endpoint_max_db": float(ends.max()),
        "morph_endpoint_mean_db": float(ends.mean()),
        "all_in_range": in_range_rate(returned, layout=heldout.layout) == 1.0,
    }


def _details(vocabulary, pairs, figures: dict) -> dict:
    """The per-word and per-pair breakdown of the figures, keyed by words."""
    smooth, ends = figures["smoothness"], figures["endpoints"]
    worst = int(np.argmax(smooth))
    pair_names = [f"{vocabulary[a]}->{vocabulary[b]}" for a, b in pairs]
    return {
        "box_rate_per_word": dict(zip(vocabulary, figures["boxes"]["per_word"])),
        "response_error_db": figures["response_error"],
        "word_accuracy_per_word": dict(zip(vocabulary, figures["accuracy"]["per_word_generated"])),
        "calibration_ratios": dict(zip(vocabulary, figures["calibration"]["ratios"])),
        "morph_smoothness": {name: float(s) for name, s in zip(pair_names, smooth)},
        "morph_endpoint_db": {name: [float(e) for e in row] for name, row in zip(pair_names, ends)},
        "worst_morph": pair_names[worst],
    }


def _setup(
    heldout,
    train,
    fidelity_heldout,
    sizes: tuple,
    n_pairs: int,
    box_source: str,
    sample_rate: float,
) -> dict:
    n_variations, steps, seed = sizes
    return {
        "n_heldout": int(len(heldout)),
        "n_variations": int(n_variations),
        "steps": int(steps),
        "seed": int(seed),
        "n_pairs": int(n_pairs),
        "n_train": None if train is None else int(len(train)),
        "n_fidelity_heldout": int(len(fidelity_heldout)),
        "boxes": box_source,
        "box_margin_db": 0.5,
        "sample_rate": float(sample_rate),
    }


def _arrays(outputs: SystemOutputs, heldout, accuracy: dict) -> dict:
    """The arrays behind the figures (for plots)."""
    return {
        "latents": outputs.latents,
        "word_ids": np.asarray(heldout.word_ids),
        "generated": outputs.generated,
        "generated_word_ids": outputs.generated_ids,
        "generated_predicted": accuracy["predicted_generated"],
        "data_predicted": accuracy["predicted_data"],
        "paths": outputs.paths,
        "pairs": outputs.pairs,
        "centres": outputs.centres,
        "reconstructed": outputs.reconstructed,
        "explored": outputs.explored,
    }


def _fidelity_part(
    system,
    train,
    heldout,
    outputs: SystemOutputs,
    sizes: tuple,
    sample_rate: float,
    blend_variations: int,
) -> tuple[dict, dict]:
    """The fidelity figures of a system: ``(flat figures, details)``; ``sizes`` is
    ``(n_variations, steps, seed)``. Without training data only the blend figures (blend
    fidelity, blend per setting: its word spreads from the system's own variations) are computed;
    with it, also the system's generated-set figures and the reference of decoding its own
    training latents (``reconstruct(train)``)."""
    seed = sizes[2]
    gen, gen_ids = outputs.generated_flat, outputs.generated_ids
    blends = fidelity.system_blend_fidelity(
        system, heldout, variations=int(blend_variations), seed=seed, sample_rate=sample_rate
    )
    per_setting = fidelity.system_blend_per_setting(
        system,
        heldout,
        gen,
        gen_ids,
        variations=int(blend_variations),
        seed=seed,
        sample_rate=sample_rate,
    )
    flat = {key: value for key, value in {**blends, **per_setting}.items() if key != "details"}
    details = {"blend_fidelity": blends["details"], "blend_per_setting": per_setting["details"]}
    if train is not None:
        figures = fidelity.generated_figures(gen, gen_ids, train, heldout, sample_rate=sample_rate)
        details["fidelity"] = figures.pop("details")
        flat.update(figures)
        decoded = generated_set_figures(
            np.asarray(system.reconstruct(train.settings)),
            train.word_ids,
            train,
            heldout,
            sample_rate=sample_rate,
        )
        details["decoded_training"] = decoded
    return flat, details


def evaluate_system(
    system: EvaluatedSystem,
    heldout,
    *,
    train=None,
    fidelity_heldout=None,
    n_variations: int = 100,
    blend_variations: int = BLEND_VARIATIONS,
    steps: int = 33,
    seed: int = 0,
    boxes=None,
    n_explore: int = 64,
    sample_rate: float = response.DEFAULT_SAMPLE_RATE,
    return_arrays: bool = False,
) -> dict:
    """Every quality figure for a system (the neural facade or :class:`LiteBaseline`; what it
    must offer is :class:`EvaluatedSystem`).

    Args:
      heldout: an EQDataset not used for training, with the system's vocabulary and layout.
      train: the system's training EQDataset; needed for distribution match, copy rate and the
        mean-response figure (left out without it).
      fidelity_heldout: the held-out settings (default ``heldout``) that word accuracy and the
        fidelity figures are judged on: for the synthetic set a larger fresh draw, far less
        noisy than a ~10-per-word split (whose own centroids flatter its word accuracy).
      n_variations: generated settings per word; ``blend_variations`` per ordered word pair's
        "0.7 a + 0.3 b" blend (their sampling noise must stay well below blend fidelity's goal).
      steps: morph steps for every word pair; boxes: ``[W, B, 2]`` gain boxes (default
        :func:`default_boxes`); return_arrays: also return the arrays behind the figures.
    Returns:
      A JSON-ready dict: flat figures (see :data:`GOALS`) plus ``"details"`` and ``"setup"``.
    """
    _check_system(system, heldout, n_variations, steps)
    vocabulary, sizes = tuple(system.vocabulary), (n_variations, steps, seed)
    outputs = system_outputs(system, heldout.settings, *sizes, n_explore=n_explore)
    box_source = "given by the caller"
    if boxes is None:
        boxes, box_source = default_boxes(vocabulary, heldout, system.layout)
    fidelity_heldout = heldout if fidelity_heldout is None else fidelity_heldout
    figures = _array_figures(outputs, heldout, boxes, sample_rate, judged=fidelity_heldout)
    fidelity_flat, fidelity_details = _fidelity_part(
        system, train, fidelity_heldout, outputs, sizes, sample_rate, blend_variations
    )
    result = {
        **_flat_figures(outputs, heldout, figures),
        **fidelity_flat,
        "details": {**fidelity_details, **_details(vocabulary, outputs.pairs, figures)},
        "setup": _setup(
            heldout, train, fidelity_heldout, sizes, len(outputs.pairs), box_source, sample_rate
        ),
    }
    if return_arrays:
        result["arrays"] = _arrays(outputs, heldout, figures["accuracy"])
    return result
