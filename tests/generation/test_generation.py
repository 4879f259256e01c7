"""The functional generation core: word model, generate, morph, explore, strength, compounds.

One model is trained once for the module on the synthetic train split (the default
``synthetic`` preset, on one device); SPEC §6 figures are checked on the held-out split.
"""

import sys

import jax
import numpy as np
import pytest
from tolerances import RESPONSE_DB_TOL, assert_same_settings

from neuraleq_jax import generation, sharding
from neuraleq_jax.data import synthetic
from neuraleq_jax.generation.common import _select
from neuraleq_jax.generation.explore import _explore_chunk
from neuraleq_jax.language import compound
from neuraleq_jax.metrics import distances, fidelity
from neuraleq_jax.model import paramspace, response

W = len(synthetic.VOCABULARY)
WARM, BRIGHT = 0, 1


@pytest.fixture(scope="module")
def trained(synthetic_preset_fit):
    """The synthetic preset trained on 70 % of the 70-per-word set (the session's shared fit),
    with a word model fitted on it; the other 15 % + 15 % are held out."""
    fit = synthetic_preset_fit
    train, validation, heldout = fit["train"], fit["validation"], fit["test"]
    config = fit["model_config"]
    params = jax.device_put(fit["result"].params, jax.devices()[0])
    word_model = generation.fit_word_model(params, config, train, validation=validation)
    return dict(params=params, config=config, word_model=word_model, train=train, heldout=heldout)


def gen(t, weights, keys, strength=1.0, variations=4, first=0):
    return np.asarray(
        generation.generate(
            t["params"],
            t["config"],
            t["word_model"],
            weights,
            keys,
            strength,
            variations=variations,
            first=first,
        )
    )


def keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def reference_db(settings):
    return np.asarray(response.reference_response_db(np.asarray(settings, np.float32)))


def rms(a, b):
    return np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=-1))


# ------------------------------------------------------------------ word model


def test_word_model_arrays_have_documented_shapes(trained):
    wm, L, train = trained["word_model"], trained["config"].latent_dim, trained["train"]
    counts = np.bincount(train.word_ids, minlength=W)
    assert wm["centres_WxL"].shape == (W, L)
    assert wm["kde_points_WxNxL"].shape == (W, counts.max(), L)
    np.testing.assert_array_equal(wm["counts_W"], counts)
    assert wm["kde_scale_WxL"].shape == (W, L) and np.all(wm["kde_scale_WxL"] > 0)
    assert wm["kde_bandwidth"] in generation.BANDWIDTHS
    assert wm["kde_match_K"].shape == wm["kde_copy_rate_K"].shape == (len(generation.BANDWIDTHS),)
    assert wm["global_spread_LxL"].shape == (L, L)
    assert wm["reference_responses_RxF"].shape == (len(train), 256)
    assert all(np.all(np.isfinite(v)) for v in wm.values())
    assert all(isinstance(v, np.ndarray) or np.isscalar(v) for v in wm.values())


def test_word_model_needs_every_word(trained):
    train = trained["train"]
    without_hollow = train.subset(np.flatnonzero(train.word_ids != 7))
    with pytest.raises(ValueError, match="hollow"):
        generation.fit_word_model(trained["params"], trained["config"], without_hollow)


# ------------------------------------------------------------------ the words' densities


def test_density_points_are_each_words_encoded_training_latents(trained):
    wm, train = trained["word_model"], trained["train"]
    latents = generation.encode_latents(trained["params"], trained["config"], train.settings)
    for w in range(W):
        mine = latents[train.word_ids == w]
        np.testing.assert_array_equal(wm["kde_points_WxNxL"][w, : len(mine)], mine)


def test_bandwidth_is_the_best_validation_match_that_neither_copies_nor_blurs(trained):
    # the rule fit_word_model documents, restated on its recorded calibration
    wm = trained["word_model"]
    allowed = (
        (wm["kde_copy_rate_K"] <= 0.02)
        & (wm["kde_in_range_K"] >= 0.98)
        & (wm["kde_accuracy_K"] >= wm["kde_validation_accuracy"])
    )
    assert allowed.any()
    best = np.flatnonzero(allowed)[np.argmin(wm["kde_match_K"][allowed])]
    assert wm["kde_bandwidth"] == np.float32(generation.BANDWIDTHS[best])
    # a wider kernel blurs the words into each other and leaves their ranges more often
    assert np.all(np.diff(wm["kde_accuracy_K"]) <= 0.02)
    assert np.all(np.diff(wm["kde_in_range_K"]) <= 0.01)


def one_point_model(trained, scale=0.0):
    """A word model whose every word holds one point (its first training latent, then the
    next one as padding that must never be drawn) with kernel std ``scale``."""
    wm = trained["word_model"]
    points = wm["kde_points_WxNxL"][:, :2]
    return {
        **wm,
        "kde_points_WxNxL": points,
        "counts_W": np.ones(W, np.int32),
        "kde_scale_WxL": np.full(wm["kde_scale_WxL"].shape, scale, np.float32),
    }


def test_a_one_point_density_at_zero_bandwidth_draws_its_decoded_point(trained):
    model = one_point_model(trained)
    out = np.asarray(
        generation.generate(
            trained["params"],
            trained["config"],
            model,
            generation.one_hot(np.arange(W), W),
            keys(W),
            variations=3,
        )
    )
    decoded = generation.decode_latents(
        trained["params"], trained["config"], model["kde_points_WxNxL"][:, 0]
    )
    assert_same_settings(out, np.broadcast_to(decoded[:, None], out.shape), trained["config"])


def test_kernel_draws_pick_points_uniformly_and_add_noise_of_the_kernel_scale():
    # a word model without a decoder: 3 points far apart (a 4th is padding), noise std 0.01
    points = np.zeros((1, 4, 2), np.float32)
    points[0, :, 0] = [-0.6, 0.0, 0.6, 0.9]
    model = {
        "kde_points_WxNxL": points,
        "counts_W": np.array([3], np.int32),
        "kde_scale_WxL": np.array([[0.01, 0.02]], np.float32),
    }
    n = 6000
    draws = np.asarray(
        jax.vmap(lambda k: generation.sampling._kernel_draw(model, 0, k))(keys(n, seed=2))
    )
    picked = np.argmin(np.abs(draws[:, :1] - points[0, :, 0]), axis=1)
    counts = np.bincount(picked, minlength=4)
    assert counts[3] == 0  # the padding is never drawn
    # each of 3 points 1/3 of the time: 5 binomial standard deviations
    assert np.all(np.abs(counts[:3] / n - 1 / 3) < 5 * np.sqrt(2 / 9 / n))
    noise = draws - points[0, picked]
    np.testing.assert_allclose(noise.std(axis=0), [0.01, 0.02], rtol=0.05)
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=5 * 0.02 / np.sqrt(n))


def test_mixture_draws_choose_each_word_with_its_weight(trained):
    # correct_blends=False draws a blend from the mixture of its words' densities; every word a
    # single point at zero bandwidth: each variation decodes to one word's point
    model = one_point_model(trained)
    weights = np.zeros((1, W), np.float32)
    weights[0, [WARM, BRIGHT, 5]] = [0.6, 0.3, 0.1]
    n = 3000
    out = np.asarray(
        generation.generate(
            trained["params"],
            trained["config"],
            model,
            weights,
            keys(1, seed=4),
            variations=n,
            correct_blends=False,
        )
    )[0]
    decoded = generation.decode_latents(
        trained["params"], trained["config"], model["kde_points_WxNxL"][:, 0]
    )
    chosen = np.argmin(
        rms(paramspace.normalize(out)[:, None], paramspace.normalize(decoded)[None]), axis=1
    )
    expected = np.zeros(W)
    expected[[WARM, BRIGHT, 5]] = [0.6, 0.3, 0.1]
    np.testing.assert_allclose(
        np.bincount(chosen, minlength=W) / n, expected, atol=5 * np.sqrt(0.25 / n)
    )
    # the choices are spread evenly over consecutive variations: any 100 hold 60/30/10 ± 2,
    # where independent draws would stray by binomial noise (± 5 for the 60)
    for start in (0, 1234, 2900):
        counts = np.bincount(chosen[start : start + 100], minlength=W)
        assert np.all(np.abs(counts - 100 * expected) <= 2), counts


def test_single_word_path_equals_a_one_hot_row(trained):
    t, key = trained, jax.random.key(9)
    single = jax.jit(
        lambda k: generation.word_variations(
            t["params"], t["config"], t["word_model"], np.int32(BRIGHT), k, 1.0, 0, 6
        )
    )(key)
    row = gen(t, generation.one_hot([BRIGHT], W), key[None], variations=6)[0]
    assert_same_settings(np.asarray(single), row, t["config"])


def test_variations_are_new_settings_not_copies_of_training_settings(trained):
    train = trained["train"]
    out = gen(trained, generation.one_hot(np.arange(W), W), keys(W, seed=7), variations=100)
    train_db = reference_db(train.settings).astype(np.float64)
    copies = []
    for w in range(W):
        generated = reference_db(out[w]).astype(np.float64)
        nearest = np.array([rms(g, train_db[train.word_ids == w]).min() for g in generated])
        copies.append(nearest <= fidelity.COPY_THRESHOLD_DB)
    assert np.mean(copies) <= 0.05, f"copy rate {np.mean(copies):.3f}"


def test_variations_match_the_held_out_distribution_of_each_word(trained):
    # SPEC §6's distribution match on the held-out split: energy distance of the variations'
    # responses to the held-out ones ÷ that of the training settings to the held-out ones
    train, heldout = trained["train"], trained["heldout"]
    out = gen(trained, generation.one_hot(np.arange(W), W), keys(W, seed=13), variations=100)
    ratios = []
    for w in range(W):
        held = reference_db(heldout.settings[heldout.word_ids == w])
        own = reference_db(train.settings[train.word_ids == w])
        ratios.append(
            distances.energy_distance(reference_db(out[w]), held, a_size=len(own))
            / distances.energy_distance(own, held)
        )
    assert np.mean(ratios) <= 2.0 and np.max(ratios) <= 3.0, np.round(ratios, 2)


# ------------------------------------------------------------------ generate


def test_generate_shapes_ranges_and_reproducibility(trained):
    weights = generation.one_hot(np.arange(W), W)
    out = gen(trained, weights, keys(W), variations=6)
    assert out.shape == (W, 6, 15)
    paramspace.validate(out, tolerance=0.0)  # every value inside the physical ranges
    np.testing.assert_array_equal(out, gen(trained, weights, keys(W), variations=6))
    assert not np.allclose(out, gen(trained, weights, keys(W, seed=1), variations=6))


def test_batched_generate_equals_per_item_calls(trained):
    weights = np.stack(
        [
            generation.one_hot([2], W)[0],
            compound.parse_weights("0.7 warm + 0.3 bright", synthetic.VOCABULARY),
            np.full(W, 1.0 / W, np.float32),
        ]
    )
    ks = keys(3, seed=5)
    batched = gen(trained, weights, ks, strength=np.array([1.0, 0.5, 2.0]), variations=5)
    for i, s in enumerate([1.0, 0.5, 2.0]):
        single = gen(trained, weights[i : i + 1], ks[i : i + 1], strength=s, variations=5)
        # XLA's CPU matmuls sum in a batch-size-dependent order: equal up to float32 round-off
        assert_same_settings(batched[i], single[0], trained["config"])


def test_variations_do_not_depend_on_how_many_are_asked_for(trained):
    weights, ks = generation.one_hot([WARM], W), keys(1)
    eight = gen(trained, weights, ks, variations=8)
    assert_same_settings(
        gen(trained, weights, ks, variations=3)[0], eight[0, :3], trained["config"]
    )
    assert_same_settings(
        gen(trained, weights, ks, variations=5, first=3)[0], eight[0, 3:], trained["config"]
    )


def test_strength_scales_gains_toward_flat_and_keeps_frequency_and_q(trained):
    weights, ks = generation.one_hot([WARM, BRIGHT], W), keys(2)
    full = gen(trained, weights, ks, strength=1.0)
    flat = gen(trained, weights, ks, strength=0.0)
    half = gen(trained, weights, ks, strength=0.5)
    gains = paramspace.DEFAULT_LAYOUT.gain_indices
    assert np.all(flat[..., gains] == 0.0)
    np.testing.assert_allclose(np.abs(reference_db(flat)), 0.0, atol=1e-4)  # a flat response
    np.testing.assert_allclose(half[..., gains], 0.5 * full[..., gains], atol=1e-5)
    others = np.setdiff1d(np.arange(15), gains)
    np.testing.assert_array_equal(flat[..., others], full[..., others])
    huge = gen(trained, weights, ks, strength=50.0)
    assert np.all(np.abs(huge[..., gains]) <= 12.0)  # exaggeration stays in range


def test_compound_of_two_words_lies_between_them(trained):
    # mean response over many variations: every 50/50 blend is closer to the mean of its two
    # words' responses than to either word's (one batched call: 8 words and 28 blends)
    pairs = [(a, b) for a in range(W) for b in range(a + 1, W)]
    eye = np.eye(W, dtype=np.float32)
    weights = np.concatenate([eye, np.stack([(eye[a] + eye[b]) / 2 for a, b in pairs])])
    out = gen(trained, weights, keys(len(weights), seed=3), variations=200)
    mean_curves = reference_db(out).mean(axis=1)  # [36, F]
    words, blends = mean_curves[:W], mean_curves[W:]
    for (a, b), blend in zip(pairs, blends):
        to_mean = rms(blend, (words[a] + words[b]) / 2)
        assert to_mean < min(rms(blend, words[a]), rms(blend, words[b])), (a, b)
    # single words in a batch with blends draw as they do alone
    alone = gen(trained, eye, keys(len(weights), seed=3)[:W], variations=200)
    assert_same_settings(out[:W], alone, trained["config"])


# ------------------------------------------------------------------ SPEC §6 figures


def test_box_rate_and_variation_calibration_meet_spec(trained):
    out = gen(trained, generation.one_hot(np.arange(W), W), keys(W, seed=11), variations=200)
    gains = out[..., paramspace.DEFAULT_LAYOUT.gain_indices]  # [W, V, 5]
    boxes = synthetic.GAIN_BOXES_DB[:, None]  # [W, 1, 5, 2]
    inside = (gains >= boxes[..., 0] - 0.5) & (gains <= boxes[..., 1] + 0.5)
    assert inside.mean() >= 0.98, f"box rate {inside.mean():.4f}"
    heldout = trained["heldout"]
    data_gains = heldout.settings[:, paramspace.DEFAULT_LAYOUT.gain_indices]
    data_std = np.stack([data_gains[heldout.word_ids == w].std(0, ddof=1) for w in range(W)])
    ratio = gains.std(axis=1, ddof=1) / data_std
    assert 0.7 <= np.median(ratio) <= 1.3, f"calibration median {np.median(ratio):.3f}"


def test_morph_is_smooth_and_ends_at_the_word_centres(trained):
    pairs = np.array([(a, b) for a in range(W) for b in range(a + 1, W)])
    eye = np.eye(W, dtype=np.float32)
    alphas = np.linspace(0, 1, 33, dtype=np.float32)
    paths = np.asarray(
        generation.morph(
            trained["params"],
            trained["config"],
            trained["word_model"],
            eye[pairs[:, 0]],
            eye[pairs[:, 1]],
            alphas,
        )
    )
    assert paths.shape == (len(pairs), 33, 15)
    paramspace.validate(paths, tolerance=0.0)
    curves = reference_db(paths)
    steps = rms(curves[:, 1:], curves[:, :-1])
    smoothness = steps.max(axis=1) / steps.mean(axis=1)
    assert smoothness.max() <= 1.5, f"worst smoothness {smoothness.max():.3f}"
    centres = reference_db(
        generation.centre_settings(trained["params"], trained["config"], trained["word_model"])
    )
    assert rms(curves[:, 0], centres[pairs[:, 0]]).max() <= 0.5
    assert rms(curves[:, -1], centres[pairs[:, 1]]).max() <= 0.5
    # one pair alone gives the same path as inside the batch
    single = generation.morph(
        trained["params"],
        trained["config"],
        trained["word_model"],
        eye[pairs[3, 0]],
        eye[pairs[3, 1]],
        alphas,
    )
    # the steps come from inverting the dense path's summed length: round-off in that sum of
    # 129 terms moves them (the same γ_n argument, n = the dense points)
    assert_same_settings(single, paths[3], trained["config"], amplification=129)


def test_reparametrised_morph_has_more_even_steps_than_latent_interpolation(trained):
    pairs = np.array([(a, b) for a in range(W) for b in range(a + 1, W)])  # as above: no recompile
    eye = np.eye(W, dtype=np.float32)
    alphas = np.linspace(0, 1, 33, dtype=np.float32)
    worst = {}
    for reparametrize in (False, True):
        paths = generation.morph(
            trained["params"],
            trained["config"],
            trained["word_model"],
            eye[pairs[:, 0]],
            eye[pairs[:, 1]],
            alphas,
            reparametrize=reparametrize,
        )
        curves = reference_db(paths)
        steps = rms(curves[:, 1:], curves[:, :-1])
        worst[reparametrize] = (steps.max(1) / steps.mean(1)).max()
    assert worst[True] <= min(worst[False], 1.1)


# ------------------------------------------------------------------ explore


def test_explore_does_not_depend_on_chunking_and_streams_bounded_chunks(trained):
    args = (trained["params"], trained["config"], trained["word_model"], jax.random.key(4))
    whole = generation.explore(*args, 50, chunk=64)
    assert_same_settings(generation.explore(*args, 50, chunk=7), whole, trained["config"])
    sizes = [c.shape for c in generation.explore_chunks(*args, 50, chunk=16)]
    assert sizes == [(16, 15)] * 3 + [(2, 15)]
    paramspace.validate(whole, tolerance=0.0)


def test_novelty_ranking_matches_a_brute_force_search(trained):
    args = (trained["params"], trained["config"], trained["word_model"], jax.random.key(8))
    settings, novelty = map(np.asarray, generation.explore_novel(*args, 300, 5, chunk=64))
    candidates = generation.explore(*args, 300, chunk=300)
    reference = trained["word_model"]["reference_responses_RxF"].astype(np.float64)
    curves = reference_db(candidates).astype(np.float64)
    nearest = np.array([rms(c, reference).min() for c in curves])  # plain loop, float64
    order = np.argsort(-nearest)[:5]
    np.testing.assert_allclose(novelty, nearest[order], atol=2e-3)
    assert_same_settings(settings, candidates[order], trained["config"])


def test_novelty_ranking_in_pieces_reports_progress_and_stops(trained, monkeypatch):
    """The ranking returns to Python every few chunks (where progress shows and Ctrl-C or
    SIGTERM take effect) and equals the ranking in one piece."""
    args = (trained["params"], trained["config"], trained["word_model"], jax.random.key(8))
    whole = generation.explore_novel(*args, 300, 5, chunk=64)  # five chunks in one piece
    # the module, not the function of the same name that the package exports
    monkeypatch.setattr(sys.modules["neuraleq_jax.generation.explore"], "NOVEL_SEGMENT_CHUNKS", 2)
    seen = []
    pieces = generation.explore_novel(*args, 300, 5, chunk=64, progress=seen.append)
    assert seen == [128, 256, 300]
    # the same top-k carried through every chunk, by other compiled programs: round-off apart
    assert_same_settings(pieces[0], whole[0], trained["config"])
    np.testing.assert_allclose(pieces[1], whole[1], rtol=0, atol=RESPONSE_DB_TOL)

    def stop(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generation.explore_novel(*args, 300, 5, chunk=64, progress=stop)


def test_explore_rejects_bad_sizes(trained):
    args = (trained["params"], trained["config"], trained["word_model"], jax.random.key(0))
    with pytest.raises(ValueError, match="n"):
        generation.explore(*args, 0)
    with pytest.raises(ValueError, match="k must be"):
        generation.explore_novel(*args, 10, 11)


# ------------------------------------------------------------------ large batches


@pytest.fixture
def small_tiles(monkeypatch):
    """The large-batch machinery at test sizes: from 64 settings on, in tiles of 32."""
    monkeypatch.setattr(sharding, "LARGE_BATCH", 64)
    monkeypatch.setattr(sharding, "CPU_TILE", 32)


def test_large_batch_plan_tiles_cpu_batches_on_one_device(small_tiles):
    assert sharding.large_batch_plan(63) is None
    plan = sharding.large_batch_plan(300)  # even with the 8 test devices: CPU stays on one
    assert (plan.mesh, plan.row_tile, plan.decode_tile) == (None, 32, None)
    assert sharding.large_batch_plan(10, 8).row_tile == 4  # whole rows per tile
    plan = sharding.large_batch_plan(2, 100)  # a row larger than a tile: decoder tiles inside
    assert (plan.row_tile, plan.decode_tile) == (1, 32)


def test_tiled_generate_and_explore_equal_the_plain_path(trained, small_tiles):
    weights, ks = generation.one_hot(np.arange(100) % W, W), keys(100, seed=3)
    halves = [gen(trained, weights[i : i + 50], ks[i : i + 50], variations=1) for i in (0, 50)]
    # 100 rows in tiles of 32 (the last one padded) against two plain calls of 50
    assert_same_settings(
        gen(trained, weights, ks, variations=1), np.concatenate(halves), trained["config"]
    )
    pieces = [gen(trained, weights[:1], ks[:1], variations=50, first=f) for f in (0, 50)]
    assert_same_settings(
        gen(trained, weights[:1], ks[:1], variations=100),
        np.concatenate(pieces, axis=1),
        trained["config"],
    )
    blends = np.random.default_rng(0).uniform(0.1, 1.0, (70, W)).astype(np.float32)
    halves = [gen(trained, blends[i : i + 35], ks[i : i + 35], variations=1) for i in (0, 35)]
    assert_same_settings(
        gen(trained, blends, ks[:70], variations=1), np.concatenate(halves), trained["config"]
    )
    args = (trained["params"], trained["config"], trained["word_model"], jax.random.key(6))
    tiled = generation.explore(*args, 300, chunk=256)
    assert_same_settings(tiled, generation.explore(*args, 300, chunk=32), trained["config"])
    paramspace.validate(tiled, tolerance=0.0)


def test_rows_split_across_devices_equal_one_device(trained):
    # the accelerator layout (rows split over a mesh, tiles on each device), run here on the
    # test's CPU devices: padding to the device count and the shard specs must be invisible
    devices = jax.devices()[:4]
    plan = sharding.BatchPlan(
        mesh=jax.sharding.Mesh(np.array(devices), ("data",)), row_tile=16, decode_tile=None
    )
    config, rest = trained["config"], (np.int32(5), np.float32(1.0), 150, paramspace.DEFAULT_LAYOUT)
    params, arrays, key = (
        trained["params"],
        _select(trained["word_model"], generation.EXPLORE_KEYS),
        jax.random.key(2),
    )
    one_device = _explore_chunk(params, config, arrays, key, *rest)
    params, arrays, key = sharding.place((params, arrays, key), plan)
    split = _explore_chunk(params, config, arrays, key, *rest, plan)
    assert len(split.sharding.device_set) == 4
    assert_same_settings(split, one_device, trained["config"])


def test_functional_core_refuses_rows_keys_and_ids_that_do_not_fit(trained):
    """A weight row shorter than the vocabulary would leave the last words out unseen; raw
    uint32 keys would be read as two keys each."""
    params, config, wm = trained["params"], trained["config"], trained["word_model"]
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=rf"one weight per vocabulary word \({W} in"):
        generation.generate(params, config, wm, np.full((2, W - 1), 0.5), keys)
    with pytest.raises(ValueError, match=r"weights_a must have one weight per vocabulary word"):
        generation.morph(params, config, wm, np.ones(W + 1), np.ones(W + 1), np.linspace(0, 1, 3))
    rows = generation.one_hot([0, 1], W)
    raw = np.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(1)])
    with pytest.raises(ValueError, match="typed PRNG keys.*wrap_key_data"):
        generation.generate(params, config, wm, rows, raw)
    with pytest.raises(ValueError, match=r"keys_B must be \[2\] keys, one per row; got \(3,\)"):
        generation.generate(params, config, wm, rows, jax.random.split(jax.random.key(0), 3))
    with pytest.raises(ValueError, match=rf"word ids must lie in \[0, {W}\), got \[0, {W}\]"):
        generation.one_hot([0, W], W)


def test_bucket_sizes_are_powers_of_two():
    assert [generation.bucket_size(n) for n in (1, 2, 3, 5, 8, 9, 1000)] == [
        1,
        2,
        4,
        8,
        8,
        16,
        1024,
    ]
