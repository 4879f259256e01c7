"""Evaluating a trained workdir beside the lite baseline: the library behind
``python -m neuraleq_jax.evaluate``.

:func:`evaluate_workdir` reads ``W/config.json``, rebuilds the same data set and split
(:func:`datasets.split_from_config`), loads the model with ``NeuralEQMorphingSystem.load(W)``,
fits the lite baseline on the same training part, computes every figure for both on the
held-out part (:func:`evaluator.evaluate_system`), and writes ``metrics.json``, ``report.md``
and PNG plots (when matplotlib is installed). A crowd vocabulary is evaluated by
:mod:`neuraleq_jax.evaluation.crowd` instead.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neuraleq_jax import config as config_lib
from neuraleq_jax import plots
from neuraleq_jax.data.registry import (
    FIDELITY_PER_WORD,
    build_datasets,
    fidelity_heldout_from_config,
    split_from_config,
)
from neuraleq_jax.evaluation import crowd as crowd_eval
from neuraleq_jax.evaluation import evaluator, report
from neuraleq_jax.evaluation.baseline import LiteBaseline
from neuraleq_jax.fileio import atomic_write_json, atomic_write_text
from neuraleq_jax.metrics import fidelity, goals
from neuraleq_jax.system import NeuralEQMorphingSystem
from neuraleq_jax.training import workdir as workdir_lib

CONFIG_FILE = workdir_lib.CONFIG_FILE
METRICS_FILE = workdir_lib.EVALUATION_METRICS_FILE
REPORT_FILE = workdir_lib.REPORT_FILE
PLOTS_DIR = workdir_lib.PLOTS_DIR
CROWD_DATASETS = ("audealize", "crowd")


def read_config(workdir: str | Path) -> dict:
    """The JSON config a training run saved in ``workdir`` (a plain dict)."""
    path = Path(workdir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no {CONFIG_FILE} in {workdir}: evaluate needs a workdir "
            f"written by `python -m neuraleq_jax.train --workdir W`"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(config, Mapping):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return dict(config)


def load_model(workdir: str | Path):
    """The trained facade, ``NeuralEQMorphingSystem.load(workdir)``."""
    return NeuralEQMorphingSystem.load(workdir)


def machine_description() -> str:
    """CPU model, core count and JAX backend, for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax

    return (
        f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}, {jax.device_count()} devices)"
    )


# ------------------------------------------------------------------ plots


def _first_two_components(latents_NxL) -> np.ndarray:
    """The latents projected on their first two principal components, ``[N, 2]`` (a zero
    second column for a 1-D latent)."""
    latents = np.asarray(latents_NxL, dtype=np.float64)
    centred = latents - latents.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if vt.shape[0] >= 2:
        return centred @ vt[:2].T
    return np.c_[centred[:, :1], 0 * centred[:, :1]]


def _plots(
    arrays: dict,
    heldout,
    system_name: str,
    out_dir: Path,
    report_dir: Path,
    details: dict | None = None,
    envelope_data=None,
) -> list[str]:
    """Generated vs held-out envelopes per word (10–90 %, medians; titled with the word's
    distribution match from ``details``; held-out settings from ``envelope_data``, default
    ``heldout``), the first pair's morph and a 2-D latent map; paths relative to the report.
    Raises ImportError when matplotlib (or plots) is missing."""
    plots.require_matplotlib()  # before any folder exists: a broken install leaves none
    folder = out_dir / PLOTS_DIR / system_name
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    vocabulary = heldout.vocabulary
    match = (details or {}).get("fidelity", {}).get("distribution_match_per_word", {})
    for w, word in enumerate(vocabulary):
        data = heldout if envelope_data is None else envelope_data
        mine = data.settings[data.word_ids == w]
        if len(mine) >= 2:
            note = f"distribution match {match[word]:.2f} (goal ≤ 2)" if word in match else None
            written.append(
                plots.plot_envelope_comparison(
                    arrays["generated"][w],
                    mine,
                    folder / f"envelope_{word}.png",
                    word,
                    title=f"{system_name}: generated '{word}' vs held-out data",
                    note=note,
                    layout=heldout.layout,
                )
            )
    a, b = arrays["pairs"][0]
    written.append(
        plots.plot_morph(
            arrays["paths"][0],
            folder / f"morph_{vocabulary[a]}_{vocabulary[b]}.png",
            start_label=vocabulary[a],
            end_label=vocabulary[b],
            title=f"{system_name}: {vocabulary[a]} → {vocabulary[b]}",
            layout=heldout.layout,
        )
    )
    written.append(
        plots.plot_latent_2d(
            _first_two_components(arrays["latents"]),
            arrays["word_ids"],
            vocabulary,
            folder / "latent_pca.png",
            title=f"{system_name}: held-out latents (first 2 principal components)",
        )
    )
    return [os.path.relpath(p, report_dir) for p in written]


# ------------------------------------------------------------------ the whole evaluation


def evaluate_workdir(
    workdir: str | Path,
    *,
    out_dir: str | Path | None = None,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
    baseline_only: bool = False,
    make_plots: bool = True,
    notes: Sequence[str] = (),
    fidelity_per_word: int = FIDELITY_PER_WORD,
) -> dict:
    """Evaluate the model in ``workdir`` and the lite baseline; write metrics.json, report.md.

    Args:
      workdir: a training workdir (``config.json``, and the model bundle unless
        ``baseline_only``).
      out_dir: where to write (default: ``workdir``).
      n_variations, steps, seed: as in :func:`evaluator.evaluate_system`.
      notes: extra lines for the report's closing notes.
      fidelity_per_word: synthetic data only: held-out settings per word of the fresh draw
        the fidelity figures compare with (:func:`datasets.fidelity_heldout_from_config`); 0
        uses the held-out split.
    Returns:
      The metrics dict that was written to ``metrics.json``.
    """
    workdir = Path(workdir)
    out_dir = Path(out_dir) if out_dir is not None else workdir
    config = _read_checked(workdir, out_dir)
    if config.get("data", {}).get("dataset") in CROWD_DATASETS and not baseline_only:
        return evaluate_crowd_workdir(
            workdir, config, out_dir=out_dir, n_variations=n_variations, steps=steps, seed=seed
        )
    train, heldout, data_text, split_text = split_from_config(config)
    fidelity_heldout, fidelity_text = fidelity_heldout_from_config(
        config, heldout, fidelity_per_word
    )
    systems, fit = _systems(workdir, train, seed, baseline_only)
    sets, sizes = (train, heldout, fidelity_heldout), (n_variations, steps, seed)
    results, arrays = _evaluate_systems(systems, sets, *sizes)
    results["baseline"]["explained_variance"] = fit["explained_variance"]
    plot_paths, plot_notes = [], []
    if make_plots:
        plot_paths, plot_notes = _write_plots(arrays, results, heldout, fidelity_heldout, out_dir)
    texts = {"data": data_text, "split": split_text, "fidelity_heldout": fidelity_text}
    metrics = {
        "setup": _setup(config, workdir, texts, results, systems["baseline"], fit, sizes),
        "model": results.get("model"),
        "baseline": results["baseline"],
        "model_error": "--baseline-only was given" if baseline_only else None,
        "references": reference_figures(
            train, fidelity_heldout, n_variations=n_variations, seed=seed
        ),
        "goals": _goals(results, config),
        "plots": plot_paths,
        "notes": list(notes) + plot_notes + _standard_notes(),
    }
    write_metrics(out_dir, metrics)
    report.write_report(metrics, out_dir / REPORT_FILE)
    return metrics


def _read_checked(workdir: Path, out_dir: Path) -> dict:
    """The workdir's config, once ``out_dir`` is known to be writable (checked before minutes
    of computing: an unwritable output folder would lose every figure)."""
    config = read_config(workdir)
    workdir_lib.check_writable(
        out_dir,
        purpose="the evaluation (metrics.json, report.md, plots/)",
        hint="Write it elsewhere with --out DIR",
    )
    return config


def _systems(workdir: Path, train, seed: int, baseline_only: bool) -> tuple[dict, dict]:
    """``({"baseline": …, "model": …}, the baseline's fit report)``: the lite baseline fitted
    on ``train`` and, unless ``baseline_only``, the workdir's model."""
    baseline = LiteBaseline(seed=seed)
    fit = baseline.fit(train)
    systems = {"baseline": baseline}
    if not baseline_only:
        systems["model"] = load_model(workdir)
    return systems, fit


def _evaluate_systems(
    systems: dict, sets: tuple, n_variations: int, steps: int, seed: int
) -> tuple[dict, dict]:
    """``(figures, arrays)`` by system name: :func:`evaluator.evaluate_system` on the held-out
    part; ``sets`` is ``(train, heldout, fidelity_heldout)``."""
    train, heldout, fidelity_heldout = sets
    results, arrays = {}, {}
    for name, system in systems.items():
        figures = evaluator.evaluate_system(
            system,
            heldout,
            train=train,
            fidelity_heldout=fidelity_heldout,
            n_variations=n_variations,
            steps=steps,
            seed=seed,
            return_arrays=True,
        )
        arrays[name] = figures.pop("arrays")
        results[name] = figures
    return results, arrays


def _write_plots(arrays: dict, results: dict, heldout, fidelity_heldout, out_dir: Path):
    """``(plot paths, notes)``: each system's plots (:func:`_plots`), or none and a note saying
    why when matplotlib is missing."""
    paths = []
    for name in ("model", "baseline"):
        if name in arrays:
            try:
                paths += _plots(
                    arrays[name],
                    heldout,
                    name,
                    out_dir,
                    out_dir,
                    results[name]["details"],
                    fidelity_heldout,
                )
            except ImportError as error:
                return paths, [f"plots skipped: {error}"]
    return paths, []


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _setup(
    config: dict, workdir: Path, texts: dict, results: dict, baseline, fit: dict, sizes: tuple
) -> dict:
    """The metrics' ``setup``: what was evaluated, how, where and on what machine."""
    n_variations, steps, seed = sizes
    setup = results["baseline"]["setup"]
    return {
        "config_name": config.get("name", "run"),
        "date": _now(),
        "machine": machine_description(),
        "workdir": str(workdir),
        **texts,
        "seed": seed,
        "n_variations": n_variations,
        "steps": steps,
        "n_pairs": setup["n_pairs"],
        "boxes": setup["boxes"],
        "baseline": (
            f"PCA({fit['n_components']}) on normalised settings "
            f"(paramspace.normalize), explained variance "
            f"{fit['explained_variance']:.1%}; kernel-weighted kNN "
            f"(k = {baseline.n_neighbors}) back to settings; "
            f"constant-speed morphs"
        ),
        "config": config,
    }


def _goals(results: dict, config: dict) -> dict:
    real_data = config.get("data", {}).get("dataset", "synthetic") != "synthetic"
    return {name: goals.check_goals(results[name], real_data=real_data) for name in results}


def write_metrics(out_dir: Path, metrics: dict) -> Path:
    """Write ``metrics`` to ``out_dir/metrics.json`` as strict JSON (NaN as null)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(out_dir / METRICS_FILE, metrics)


def reference_figures(train, heldout, *, n_variations: int = 100, seed: int = 0) -> dict:
    """The fidelity figures of the trivial reference generator, a per-word Gaussian in
    the unit space clipped to range (:func:`fidelity.unit_gaussian_settings`), drawing
    ``n_variations`` settings per word: ``{"unit_gaussian": figures}``. (The other reference,
    each system decoding its own training latents, is in its ``details.decoded_training``.)"""
    n_words = len(heldout.vocabulary)
    drawn = fidelity.unit_gaussian_settings(
        train.settings, train.word_ids, n_words, n_variations, seed=seed, layout=train.layout
    )
    ids = np.repeat(np.arange(n_words), n_variations)
    return {
        "unit_gaussian": evaluator.generated_set_figures(
            drawn.reshape(-1, train.layout.n_params),
            ids,
            train,
            heldout,
        )
    }


def evaluate_crowd_workdir(
    workdir: Path,
    config: dict,
    *,
    out_dir: Path,
    n_variations: int = 100,
    steps: int = 33,
    seed: int = 0,
) -> dict:
    """A crowd vocabulary's evaluation (:mod:`neuraleq_jax.evaluation.crowd`): crowd-curve fidelity
    per source (median r, median relative error, worst 10 words) beside the lite baseline fitted
    on the same training part, morphs between crowd words and the word map's agreement with
    Audealize's; writes metrics.json and report.md."""

    system = load_model(workdir)
    baseline = LiteBaseline(seed=seed)
    baseline.fit(build_datasets(config_lib.from_dict(config).data)[0])
    figures = crowd_eval.evaluate_crowd(
        system, config, n_variations=n_variations, steps=steps, seed=seed, baseline=baseline
    )
    metrics = {
        "setup": {
            "config_name": config.get("name", "run"),
            "date": _now(),
            "machine": machine_description(),
            "workdir": str(workdir),
            "data": f"{config['data']['dataset']} ({config['data']['path']})",
            "seed": seed,
            "n_variations": n_variations,
            "steps": steps,
            "config": config,
        },
        "model": figures,
        "goals": {"model": crowd_eval.check_goals(figures)},
    }
    write_metrics(out_dir, metrics)
    atomic_write_text(out_dir / REPORT_FILE, crowd_eval.render_report(metrics))
    return metrics


def _standard_notes() -> list[str]:
    return [
        "Word accuracy passes at the data's own accuracy − 0.03 or more, both judged on the "
        "held-out settings of the fidelity figures; far above the data's own means "
        "caricatures rather than the crowd's settings.",
        "Distribution match uses V-statistic energy distances with the generated set's "
        "within term weighted as for the training set's size, so sampling the data's own "
        "distribution scores 1 in expectation whatever the number of variations "
        "(neuraleq_jax/fidelity.py). On the synthetic set the fidelity figures and word "
        "accuracy are judged on a fresh draw (500 settings per word by default): the split's "
        "~10 per word would move each word's figure by tenths between splits.",
        'Blend fidelity is taken over every ordered word pair ("0.7 a + 0.3 b" and '
        '"0.7 b + 0.3 a"), each from the mean response of 1000 variations; the lite '
        "baseline has no blends, so its figure is that of a 70/30 mixture of its single-word "
        "variations.",
        "The lite baseline's latent is PCA of normalised settings, where the ten frequency "
        "and Q dimensions (random in the synthetic set) carry most of the variance: its "
        "latent silhouette is near 0 by construction, and its 8-of-15-dimension PCA round "
        "trip loses information, hence its response error.",
        "The baseline decodes with a kNN average of a word's own settings, which shrinks "
        "variation (calibration below 1) but keeps every gain inside the word's box.",
    ]
