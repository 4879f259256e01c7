"""The seed's facade: the SPEC §5 snippet, input forms, reproducibility, persistence, errors.

The module trains one system with the seed's snippet exactly as SPEC §5 writes it (default
configuration, 50 epochs) on the synthetic set given as a list of labelled dicts.
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from tolerances import assert_same_settings, blend_amplification

from neuraleq_jax import NeuralEQMorphingSystem, generation, use_synchronous_cpu_dispatch
from neuraleq_jax.data import synthetic
from neuraleq_jax.language import compound
from neuraleq_jax.model import paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT

GAINS = DEFAULT_LAYOUT.gain_indices


@pytest.fixture(scope="module")
def synthetic_records():
    dataset = synthetic.make_synthetic(70, seed=0)
    return [
        dict(term=word, **row)
        for word, row in zip(dataset.words, paramspace.to_dicts(dataset.settings))
    ]


@pytest.fixture(scope="module")
def snippet(synthetic_records):
    eq_settings = synthetic_records
    # ---- SPEC §5, as written
    system = NeuralEQMorphingSystem(latent_dim=32)
    system.load_dataset(eq_settings)  # labelled settings
    system.train(epochs=50)
    variations = system.generate_eq_from_semantic("warm", variations=5)
    morph_steps = system.morph_between_terms("warm", "bright", steps=10)
    novel_eqs = system.explore_latent_space(n_samples=20)
    # ----
    return dict(system=system, variations=variations, morph_steps=morph_steps, novel_eqs=novel_eqs)


def as_array(rows):
    return np.array([[row[name] for name in DEFAULT_LAYOUT.param_names] for row in rows])


def test_the_seed_snippet_returns_named_settings_in_range(snippet):
    for key, count in (("variations", 5), ("morph_steps", 10), ("novel_eqs", 20)):
        rows = snippet[key]
        assert isinstance(rows, list) and len(rows) == count
        assert set(DEFAULT_LAYOUT.param_names) <= set(rows[0])
        paramspace.validate(as_array(rows), tolerance=0.0)


def test_warm_boosts_lows_and_cuts_highs_bright_the_reverse(snippet):
    system = snippet["system"]
    warm = as_array(snippet["variations"])
    bright = system.generate_eq_from_semantic("bright", variations=5, as_array=True)
    assert np.all(warm[:, 0] > 0) and np.all(warm[:, 12] < 0)  # band1 boost, band5 cut
    assert np.all(bright[:, 0] < 0) and np.all(bright[:, 12] > 0)
    # the morph walks from warm's low boost to bright's high boost
    path = as_array(snippet["morph_steps"])
    assert path[0, 0] > 0 > path[-1, 0] and path[0, 12] < 0 < path[-1, 12]
    assert_same_settings(path[[0, -1]], system.centre_settings()[[0, 1]], system.model_config)


def test_inputs_accepted_by_load_dataset(synthetic_records):
    dataset = synthetic.make_synthetic(3, seed=1)
    system = NeuralEQMorphingSystem()
    relabelled = [
        dict(semantic_label=r.pop("term"), **r) for r in [dict(r) for r in synthetic_records[:6]]
    ]
    assert system.load_dataset(relabelled).vocabulary == ("warm",)
    from_pair = system.load_dataset((dataset.settings, dataset.words))
    assert from_pair.vocabulary == synthetic.VOCABULARY and len(from_pair) == 24
    assert system.load_dataset(dataset) is dataset
    with pytest.raises(TypeError, match="list of dicts"):
        system.load_dataset("warm.csv")
    with pytest.raises(ValueError, match="band1_freq"):
        system.load_dataset([dict(synthetic_records[0], band1_freq=1e6)])


def test_same_seed_same_output_and_unseeded_calls_follow_the_system_seed(snippet):
    system = snippet["system"]
    first = system.generate_eq_from_semantic("soft", 4, seed=7, as_array=True)
    np.testing.assert_array_equal(
        first, system.generate_eq_from_semantic("soft", 4, seed=7, as_array=True)
    )
    assert not np.allclose(
        first, system.generate_eq_from_semantic("soft", 4, seed=8, as_array=True)
    )
    np.testing.assert_array_equal(
        system.explore_latent_space(6, seed=3, as_array=True),
        system.explore_latent_space(6, seed=3, as_array=True),
    )


def test_facade_equals_the_functional_core(snippet):
    # the facade serves ahead-of-time executables compiled with their own options; the numbers
    # must be the functional core's, with the key the module docstring documents
    # (float32 round-off differs with the batch shape; a blend's Gauss-Newton correction
    # amplifies it to ~3e-4 relative, still far below anything audible or a wrong row)
    system = snippet["system"]
    blend = blend_amplification(system.model_config)
    for term, seed, amplification in (("soft", 7, 1.0), ("0.6 warm + 0.4 bright", 2, blend)):
        weights = compound.parse_weights(term, system.vocabulary)[None, :]
        key = jax.random.fold_in(jax.random.key(seed), 0)[None]
        core = generation.generate(
            system.params, system.model_config, system.word_model, weights, key, variations=5
        )[0]
        assert_same_settings(
            system.generate_eq_from_semantic(term, 5, seed=seed, as_array=True),
            core,
            system.model_config,
            amplification=amplification,
        )


def test_synchronous_cpu_dispatch_must_come_first():
    # here JAX is long initialised: the switch can no longer work, and says so
    with pytest.raises(RuntimeError, match="before the first JAX computation"):
        use_synchronous_cpu_dispatch()
    # in a fresh process it takes effect and computations still run
    code = (
        "import neuraleq_jax, jax, jax.numpy as jnp\n"
        "neuraleq_jax.use_synchronous_cpu_dispatch()\n"
        "print(jax.config.read('jax_cpu_enable_async_dispatch'), float(jnp.ones(4).sum()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "4.0"]


def test_results_as_dicts_equal_results_as_arrays(snippet):
    system = snippet["system"]
    rows = system.generate_eq_from_semantic("hollow", 3, seed=1)
    np.testing.assert_allclose(
        as_array(rows),
        system.generate_eq_from_semantic("hollow", 3, seed=1, as_array=True),
        rtol=1e-6,
    )
    novel = system.explore_latent_space(4, novel=True, seed=2)
    scores = [row["novelty_db"] for row in novel]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_variation_counts_share_compiled_buckets_and_large_counts_chunk(snippet):
    system = snippet["system"]
    five = system.generate_eq_from_semantic("sharp", 5, seed=4, as_array=True)
    seven = system.generate_eq_from_semantic("sharp", 7, seed=4, as_array=True)
    assert_same_settings(seven[:5], five, system.model_config)
    assert sum(1 for key in system._compiled if key == ("generate", 8, "word")) == 1
    many = system.generate_eq_from_semantic("sharp", 9000, seed=4, as_array=True)
    assert many.shape == (9000, 15)
    assert_same_settings(many[:5], five, system.model_config)


def test_compound_terms_and_strength_through_the_facade(snippet):
    system = snippet["system"]
    centres = response.reference_response_db(system.centre_settings())
    blend = system.generate_eq_from_semantic({"warm": 1, "bright": 1}, 200, seed=5, as_array=True)
    same = system.generate_eq_from_semantic("warm and bright", 200, seed=5, as_array=True)
    np.testing.assert_array_equal(blend, same)
    mean_curve = np.asarray(response.reference_response_db(blend)).mean(0)
    middle = (centres[0] + centres[1]) / 2
    distance = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))
    assert distance(mean_curve, middle) < min(
        distance(mean_curve, centres[0]), distance(mean_curve, centres[1])
    )
    flat = system.generate_eq_from_semantic("warm", 3, strength=0.0, seed=1, as_array=True)
    assert np.all(flat[:, GAINS] == 0)
    # strength scales gains (clipped to the gain range) and leaves frequency and Q alone,
    # up to strengths far beyond float32
    one = system.generate_eq_from_semantic("warm", 3, seed=1, as_array=True)
    half = system.generate_eq_from_semantic("warm", 3, strength=0.5, seed=1, as_array=True)
    np.testing.assert_allclose(half[:, GAINS], 0.5 * one[:, GAINS], rtol=1e-6, atol=1e-6)
    huge = system.generate_eq_from_semantic("warm", 3, strength=1e300, seed=1, as_array=True)
    limit = DEFAULT_LAYOUT.upper[GAINS]
    np.testing.assert_array_equal(huge[:, GAINS], np.sign(one[:, GAINS]) * limit)
    others = np.setdiff1d(np.arange(15), GAINS)
    np.testing.assert_array_equal(huge[:, others], one[:, others])


def test_encode_and_reconstruct(snippet):
    system = snippet["system"]
    settings = synthetic.make_synthetic(5, seed=3).settings
    # encode gives the semantic part (what the silhouette is measured on); latents the whole
    latents = system.latents(settings)
    assert latents.shape == (40, 32) and system.model_config.semantic_dim == 8
    np.testing.assert_array_equal(system.encode(settings), latents[:, :8])
    recon = system.reconstruct(settings)
    error = np.sqrt(
        np.mean(
            (
                np.asarray(response.reference_response_db(recon))
                - np.asarray(response.reference_response_db(settings))
            )
            ** 2,
            -1,
        )
    )
    assert recon.shape == (40, 15) and np.median(error) < 1.5
    with pytest.raises(ValueError, match=r"\[\.\.\., 15\]"):
        system.encode(np.zeros((3, 14)))


def test_save_and_load_round_trip(snippet, tmp_path):
    system = snippet["system"]
    system.save(tmp_path / "model")
    loaded = NeuralEQMorphingSystem.load(tmp_path / "model")
    assert loaded.vocabulary == system.vocabulary and loaded.layout == system.layout
    for call in (
        lambda s: s.generate_eq_from_semantic("punchy", 4, seed=9, as_array=True),
        lambda s: s.morph_between_terms("soft", "sharp", 6, as_array=True),
        lambda s: s.explore_latent_space(5, seed=1, as_array=True),
    ):
        np.testing.assert_allclose(call(loaded), call(system), rtol=1e-6)
    # unseeded calls differ from each other, and a fresh copy replays the same sequence
    again = NeuralEQMorphingSystem.load(tmp_path / "model")
    sequence = [loaded.generate_eq_from_semantic("warm", 4, as_array=True) for _ in range(2)]
    assert not np.allclose(sequence[0], sequence[1])
    for expected in sequence:
        np.testing.assert_array_equal(
            again.generate_eq_from_semantic("warm", 4, as_array=True), expected
        )
    from neuraleq_jax.training.checkpoints import CheckpointError

    with pytest.raises(CheckpointError):
        NeuralEQMorphingSystem.load(tmp_path / "nothing here")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda s: s.generate_eq_from_semantic("wram"),
            ValueError,
            "known words: warm, bright, heavy, soft, sharp, smooth, punchy, hollow.*'warm'",
        ),
        (lambda s: s.generate_eq_from_semantic("warm", variations=0), ValueError, "variations"),
        (lambda s: s.generate_eq_from_semantic("warm", variations=2.5), ValueError, "integer"),
        (lambda s: s.generate_eq_from_semantic("warm", strength=-1), ValueError, "strength"),
        (
            lambda s: s.generate_eq_from_semantic("warm", strength=float("nan")),
            ValueError,
            "strength",
        ),
        (lambda s: s.generate_eq_from_semantic("0 warm + 0 bright"), ValueError, "sum to 0"),
        (
            lambda s: s.generate_eq_from_semantic({"warm": 1, "fuzzy": 1}),
            ValueError,
            "unknown word 'fuzzy'",
        ),
        (lambda s: s.morph_between_terms("warm", "bright", steps=1), ValueError, "steps"),
        (lambda s: s.morph_between_terms("warm", "brite"), ValueError, "'bright'"),
        (lambda s: s.explore_latent_space(0), ValueError, "n_samples"),
        (lambda s: s.generate_eq_from_semantic("warm", seed=-3), ValueError, "seed"),
    ],
)
def test_bad_input_raises_clear_errors(snippet, call, error, message):
    with pytest.raises(error, match=message):
        call(snippet["system"])


def test_an_untrained_system_says_what_to_do():
    system = NeuralEQMorphingSystem()
    for call in (
        lambda: system.generate_eq_from_semantic("warm"),
        lambda: system.morph_between_terms("warm", "bright"),
        lambda: system.explore_latent_space(),
        lambda: system.centre_settings(),
        lambda: system.save("/tmp/never"),
    ):
        with pytest.raises(RuntimeError, match="train"):
            call()
    with pytest.raises(RuntimeError, match="load_dataset"):
        system.train(epochs=1)
    with pytest.raises(ValueError, match="latent_dim"):
        NeuralEQMorphingSystem(latent_dim=0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lr": 1e-3}, r"'train\.lr'\. Did you mean train\.learning_rate"),
        ({"batch_size": "big"}, "train.batch_size expects an integer, got 'big'"),
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"epochs": 5.0}, "epochs must be an integer >= 1, got 5.0"),
    ],
)
def test_unknown_or_ill_typed_training_options_are_named_before_training(options, message):
    system = NeuralEQMorphingSystem()
    system.load_dataset(synthetic.make_synthetic(3, seed=1))
    before = system.train_config
    with pytest.raises(ValueError, match=message):
        system.train(**options)
    assert system.train_config == before and system.history == []
