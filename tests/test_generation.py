"""The functional generation core: word model, generate, morph, explore, strength, compounds.

One model is trained once for the module on the synthetic train split (the default
``synthetic`` preset, on one device); SPEC §6 figures are checked on the held-out split.
"""

import dataclasses

import jax
import numpy as np
import pytest

from neuraleq_jax import compound, data, generation, paramspace, response, synthetic
from neuraleq_jax import config as config_module
from tolerances import assert_same_settings, blend_amplification

W = len(synthetic.VOCABULARY)
WARM, BRIGHT = 0, 1


@pytest.fixture(scope="module")
def trained():
    from neuraleq_jax import training

    train, _, heldout = data.stratified_split(synthetic.make_synthetic(70, seed=0),
                                              (0.7, 0.15, 0.15), seed=0)
    preset = config_module.load_preset("synthetic")
    config = preset.model
    result = training.fit(train, config, dataclasses.replace(preset.train, devices=1))
    params = jax.device_put(result.params, jax.devices()[0])
    word_model = generation.fit_word_model(params, config, train)
    return dict(params=params, config=config, word_model=word_model, train=train,
                heldout=heldout)


def gen(t, weights, keys, strength=1.0, variations=4, first=0):
    return np.asarray(generation.generate(t["params"], t["config"], t["word_model"], weights,
                                          keys, strength, variations=variations, first=first))


def keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


def reference_db(settings):
    return np.asarray(response.reference_response_db(np.asarray(settings, np.float32)))


def rms(a, b):
    return np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=-1))


# ------------------------------------------------------------------ word model

def test_word_model_arrays_have_documented_shapes(trained):
    wm, L = trained["word_model"], trained["config"].latent_dim
    assert wm["centres_WxL"].shape == (W, L)
    assert wm["spread_WxLxK"].shape[:2] == (W, L)
    assert wm["fold_normals_WxWxK"].shape == (W, W, wm["spread_WxLxK"].shape[2])
    assert wm["fold_offsets_WxW"].shape == (W, W)
    assert wm["global_spread_LxL"].shape == (L, L)
    assert wm["reference_responses_RxF"].shape == (len(trained["train"]), 256)
    assert all(np.all(np.isfinite(v)) for v in wm.values())
    assert all(isinstance(v, np.ndarray) or np.isscalar(v) for v in wm.values())


def test_word_model_needs_every_word(trained):
    train = trained["train"]
    without_hollow = train.subset(np.flatnonzero(train.word_ids != 7))
    with pytest.raises(ValueError, match="hollow"):
        generation.fit_word_model(trained["params"], trained["config"], without_hollow)


# ------------------------------------------------------------------ fold

def test_fold_draws_mirrors_draws_past_one_plane_and_leaves_the_rest():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=7)
    normal /= np.linalg.norm(normal)
    offset = 0.4
    z = rng.normal(size=(500, 7)).astype(np.float32)
    folded = np.asarray(generation.fold_draws(z, normal[None].astype(np.float32),
                                              np.array([offset], np.float32)))
    for before, after in zip(z, folded):  # reference: a mirror image per draw
        t = before @ normal
        expected = before - 2.0 * (t - offset) * normal if t > offset else before
        np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)
    assert np.all(folded @ normal <= offset + 1e-5)
    crossed = z @ normal > offset
    assert 0.1 < crossed.mean() < 0.6  # the test exercises both cases
    np.testing.assert_array_equal(folded[~crossed], z[~crossed])
    # a mirror keeps the distance to the plane and everything parallel to it
    np.testing.assert_allclose(offset - folded[crossed] @ normal,
                               z[crossed] @ normal - offset, atol=1e-5)
    parallel = np.eye(7) - np.outer(normal, normal)
    np.testing.assert_allclose(folded[crossed] @ parallel, z[crossed] @ parallel, atol=1e-5)


def test_fold_draws_across_two_similar_planes_mirrors_once():
    second = np.array([1.0, 0.1, 0.0]) / np.hypot(1.0, 0.1)
    normals = np.stack([np.array([1.0, 0.0, 0.0]), second]).astype(np.float32)
    z = np.array([[2.0, 0.0, 0.0]], np.float32)   # 2 past the first, 1.99 past the second
    folded = np.asarray(generation.fold_draws(z, normals, np.zeros(2, np.float32)))
    # mirrored across the deeper plane only, which puts it behind both (adding both mirrors
    # at once would throw it to -6)
    np.testing.assert_allclose(folded, [[-2.0, 0.0, 0.0]], atol=1e-6)
    # zero normals never fold; a normal of length a (a blend's mix) moves a draw by 2 a² excess
    np.testing.assert_array_equal(
        generation.fold_draws(z, np.zeros_like(normals), np.zeros(2, np.float32)), z)
    half = np.asarray(generation.fold_draws(z, np.sqrt(0.5) * normals[:1],
                                            np.zeros(1, np.float32)))
    np.testing.assert_allclose(half, [[0.0, 0.0, 0.0]], atol=1e-6)


def test_fold_blend_draws_mixes_the_words_planes_by_weight():
    rng = np.random.default_rng(3)
    n_words, k = 4, 9
    normals = rng.normal(size=(n_words, n_words, k))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[np.arange(n_words), np.arange(n_words)] = 0.0   # a word's plane with itself
    offsets = rng.uniform(0.0, 0.8, (n_words, n_words)).astype(np.float32)
    normals = normals.astype(np.float32)
    z = rng.normal(size=(300, k)).astype(np.float32)
    weights = np.array([0.5, 0.3, 0.2, 0.0], np.float32)
    folded = np.asarray(generation.fold_blend_draws(z, weights, normals, offsets))
    # reference: each word v's planes mixed by weight, then two rounds of the deepest mirror
    mixed = np.einsum("w,wvk->vk", weights, normals)
    mixed_offsets = weights @ offsets
    for before, after in zip(z, folded):
        expected = before.astype(np.float64)
        for _ in range(generation.FOLD_ROUNDS):
            excess = np.maximum(mixed @ expected - mixed_offsets, 0.0)
            deepest = int(np.argmax(excess))
            expected = expected - 2.0 * excess[deepest] * mixed[deepest]
        np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-4)
    assert np.mean(np.any(np.abs(folded - z) > 1e-3, axis=1)) > 0.2  # the test folds some
    for w in range(n_words):  # one-hot: the word's own planes
        np.testing.assert_allclose(
            generation.fold_blend_draws(z, np.eye(n_words, dtype=np.float32)[w], normals,
                                        offsets),
            generation.fold_draws(z, normals[w], offsets[w]), rtol=1e-5, atol=1e-5)


def test_fold_planes_are_the_nearest_centroid_boundary_of_a_linear_response():
    """For a response linear in the draws, a draw is on its word's side of the plane exactly
    when the nearest-centroid rule (squared dB distance) picks its word."""
    rng = np.random.default_rng(1)
    n_words, f, k = 3, 40, 6
    centroids = rng.normal(0.0, 1.0, (n_words, f))
    centre_db = centroids + rng.normal(0.0, 0.2, (n_words, f))
    jacobians = rng.normal(0.0, 1.0, (n_words, f, k))
    normals, offsets = generation.fold_planes(centre_db, jacobians, centroids, margin=0.0)
    assert normals.shape == (n_words, n_words, k) and offsets.shape == (n_words, n_words)
    np.testing.assert_array_equal(normals[np.arange(n_words), np.arange(n_words)], 0.0)
    z = rng.normal(0.0, 2.0, (2000, k))
    for w in range(n_words):
        responses = centre_db[w] + z @ jacobians[w].T                       # [N, F]
        distances = ((responses[:, None] - centroids[None]) ** 2).sum(-1)   # [N, W]
        for v in range(n_words):
            if v == w:
                continue
            prefers_w = distances[:, w] <= distances[:, v]
            inside = z @ normals[w, v] <= offsets[w, v]
            assert prefers_w.mean() > 0.05 and (~prefers_w).mean() > 0.05
            agree = prefers_w == inside
            assert agree.mean() > 0.998, agree.mean()  # float32 planes: ties may differ
    # the margin moves every plane toward its word's centre, never past it
    _, narrowed = generation.fold_planes(centre_db, jacobians, centroids, margin=0.7)
    off = ~np.eye(n_words, dtype=bool)
    np.testing.assert_allclose(narrowed[off], np.maximum(offsets[off] - 0.7, 0.0), atol=1e-5)


def nearest_training_word(trained, settings_NxP):
    train = trained["train"]
    data_db = reference_db(train.settings)
    centroids = np.stack([data_db[train.word_ids == w].mean(0) for w in range(W)])
    distances = ((reference_db(settings_NxP)[:, None] - centroids[None]) ** 2).mean(-1)
    return distances.argmin(1)


def test_folded_variations_are_recognised_as_their_word_more_often(trained):
    args = (trained["params"], trained["config"], trained["train"])
    unfolded = generation.fit_word_model(*args, fold_margin=None)
    folded = trained["word_model"]  # the default: folded at the boundary (margin 0)
    assert np.all(unfolded["fold_normals_WxWxK"] == 0.0)
    weights, ks = generation.one_hot(np.repeat(np.arange(W), 100), W), keys(100 * W, seed=5)
    asked = np.repeat(np.arange(W), 100)
    shares = {}
    for name, model in (("unfolded", unfolded), ("folded", folded)):
        out = np.asarray(generation.generate(trained["params"], trained["config"], model,
                                             weights, ks))[:, 0]
        shares[name] = np.mean(nearest_training_word(trained, out) == asked)
    assert shares["folded"] >= shares["unfolded"] + 0.05, shares
    # fold only moves draws: the spread and centres are the same fit
    for key in ("variation_centres_WxL", "spread_WxLxK"):
        np.testing.assert_array_equal(folded[key], unfolded[key])


def test_a_word_model_without_fold_arrays_generates_unfolded(trained):
    """Word models saved before folding existed: generation as it was (a reference decode of
    the unfolded draws), through the functional core and the facade."""
    from neuraleq_jax.system import NeuralEQMorphingSystem

    model = {k: v for k, v in trained["word_model"].items() if not k.startswith("fold_")}
    weights, ks = generation.one_hot(np.arange(W), W), keys(W, seed=8)
    out = gen(dict(trained, word_model=model), weights, ks, variations=3)
    for w in range(W):
        z = generation._standard_draws(model, ks[w], 0, 3)
        latents = np.clip(model["variation_centres_WxL"][w] + np.asarray(z)
                          @ model["spread_WxLxK"][w].T, -1.0, 1.0)
        expected = generation.decode_latents(trained["params"], trained["config"],
                                             latents.astype(np.float32))
        assert_same_settings(out[w], expected, trained["config"])
    system = NeuralEQMorphingSystem.from_params(trained["params"], trained["config"], model,
                                                synthetic.VOCABULARY, trained["train"].layout)
    assert np.all(system.word_model["fold_normals_WxWxK"] == 0.0)


def test_a_blend_folds_continuously_into_its_main_word(trained):
    """A blend's fold mixes its words' planes by weight: as a second word's weight goes to 0
    the blend's variations approach the single word's (same key), folded draws included."""
    warm = generation.one_hot(np.array([WARM]), W)
    ks = keys(1, seed=12)
    single = gen(trained, warm, ks, variations=64)
    distances = []
    for eps in (0.1, 0.01, 0.001):
        weights = (1.0 - eps) * warm + eps * generation.one_hot(np.array([BRIGHT]), W)
        blend = gen(trained, weights, ks, variations=64)
        distances.append(np.sqrt(np.mean((reference_db(blend[0]) - reference_db(single[0])) ** 2)))
    assert distances[0] > distances[1] > distances[2], distances
    assert distances[2] < 0.05, distances  # dB RMS


def test_fold_margin_must_not_be_negative(trained):
    with pytest.raises(ValueError, match="fold_margin must be >= 0"):
        generation.fit_word_model(trained["params"], trained["config"], trained["train"],
                                  fold_margin=-0.1)
    with pytest.raises(ValueError, match="train.fold_margin must be >= 0"):
        config_module.TrainConfig(fold_margin=-1.0)


# ------------------------------------------------------------------ generate

def test_generate_shapes_ranges_and_reproducibility(trained):
    weights = generation.one_hot(np.arange(W), W)
    out = gen(trained, weights, keys(W), variations=6)
    assert out.shape == (W, 6, 15)
    paramspace.validate(out, tolerance=0.0)  # every value inside the physical ranges
    np.testing.assert_array_equal(out, gen(trained, weights, keys(W), variations=6))
    assert not np.allclose(out, gen(trained, weights, keys(W, seed=1), variations=6))


def test_batched_generate_equals_per_item_calls(trained):
    weights = np.stack([generation.one_hot([2], W)[0], compound.parse_weights(
        "0.7 warm + 0.3 bright", synthetic.VOCABULARY), np.full(W, 1.0 / W, np.float32)])
    ks = keys(3, seed=5)
    batched = gen(trained, weights, ks, strength=np.array([1.0, 0.5, 2.0]), variations=5)
    for i, s in enumerate([1.0, 0.5, 2.0]):
        single = gen(trained, weights[i:i + 1], ks[i:i + 1], strength=s, variations=5)
        # XLA's CPU matmuls sum in a batch-size-dependent order: equal up to float32 round-off
        # (rows 1 and 2 are blends, whose correction solves a linear system)
        assert_same_settings(batched[i], single[0], trained["config"],
                             amplification=1.0 if i == 0 else blend_amplification(trained["config"]))


def test_variations_do_not_depend_on_how_many_are_asked_for(trained):
    weights, ks = generation.one_hot([WARM], W), keys(1)
    eight = gen(trained, weights, ks, variations=8)
    assert_same_settings(gen(trained, weights, ks, variations=3)[0], eight[0, :3],
                         trained["config"])
    assert_same_settings(gen(trained, weights, ks, variations=5, first=3)[0], eight[0, 3:],
                         trained["config"])


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
    mean_curves = reference_db(out).mean(axis=1)                    # [36, F]
    words, blends = mean_curves[:W], mean_curves[W:]
    for (a, b), blend in zip(pairs, blends):
        to_mean = rms(blend, (words[a] + words[b]) / 2)
        assert to_mean < min(rms(blend, words[a]), rms(blend, words[b])), (a, b)
    # the correction of blends leaves single words where they are
    alone = gen(trained, eye, keys(len(weights), seed=3)[:W], variations=200)
    assert_same_settings(out[:W], alone, trained["config"])


# ------------------------------------------------------------------ SPEC §6 figures

def test_box_rate_and_variation_calibration_meet_spec(trained):
    out = gen(trained, generation.one_hot(np.arange(W), W), keys(W, seed=11), variations=200)
    gains = out[..., paramspace.DEFAULT_LAYOUT.gain_indices]           # [W, V, 5]
    boxes = synthetic.GAIN_BOXES_DB[:, None]                            # [W, 1, 5, 2]
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
    paths = np.asarray(generation.morph(trained["params"], trained["config"],
                                        trained["word_model"], eye[pairs[:, 0]],
                                        eye[pairs[:, 1]], alphas))
    assert paths.shape == (len(pairs), 33, 15)
    paramspace.validate(paths, tolerance=0.0)
    curves = reference_db(paths)
    steps = rms(curves[:, 1:], curves[:, :-1])
    smoothness = steps.max(axis=1) / steps.mean(axis=1)
    assert smoothness.max() <= 1.5, f"worst smoothness {smoothness.max():.3f}"
    centres = reference_db(generation.centre_settings(trained["params"], trained["config"],
                                                      trained["word_model"]))
    assert rms(curves[:, 0], centres[pairs[:, 0]]).max() <= 0.5
    assert rms(curves[:, -1], centres[pairs[:, 1]]).max() <= 0.5
    # one pair alone gives the same path as inside the batch
    single = generation.morph(trained["params"], trained["config"], trained["word_model"],
                              eye[pairs[3, 0]], eye[pairs[3, 1]], alphas)
    # the steps come from inverting the dense path's summed length: round-off in that sum of
    # 129 terms moves them (the same γ_n argument, n = the dense points)
    assert_same_settings(single, paths[3], trained["config"], amplification=129)


def test_reparametrised_morph_has_more_even_steps_than_latent_interpolation(trained):
    pairs = np.array([(a, b) for a in range(W) for b in range(a + 1, W)])  # as above: no recompile
    eye = np.eye(W, dtype=np.float32)
    alphas = np.linspace(0, 1, 33, dtype=np.float32)
    worst = {}
    for reparametrize in (False, True):
        paths = generation.morph(trained["params"], trained["config"], trained["word_model"],
                                 eye[pairs[:, 0]], eye[pairs[:, 1]], alphas,
                                 reparametrize=reparametrize)
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
    monkeypatch.setattr(generation, "LARGE_BATCH", 64)
    monkeypatch.setattr(generation, "CPU_TILE", 32)


def test_large_batch_plan_tiles_cpu_batches_on_one_device(small_tiles):
    assert generation.large_batch_plan(63) is None
    plan = generation.large_batch_plan(300)  # even with the 8 test devices: CPU stays on one
    assert (plan.mesh, plan.row_tile, plan.decode_tile) == (None, 32, None)
    assert generation.large_batch_plan(10, 8).row_tile == 4  # whole rows per tile
    plan = generation.large_batch_plan(2, 100)  # a row larger than a tile: decoder tiles inside
    assert (plan.row_tile, plan.decode_tile) == (1, 32)


def test_tiled_generate_and_explore_equal_the_plain_path(trained, small_tiles):
    weights, ks = generation.one_hot(np.arange(100) % W, W), keys(100, seed=3)
    halves = [gen(trained, weights[i:i + 50], ks[i:i + 50], variations=1) for i in (0, 50)]
    # 100 rows in tiles of 32 (the last one padded) against two plain calls of 50
    assert_same_settings(gen(trained, weights, ks, variations=1), np.concatenate(halves),
                         trained["config"])
    pieces = [gen(trained, weights[:1], ks[:1], variations=50, first=f) for f in (0, 50)]
    assert_same_settings(gen(trained, weights[:1], ks[:1], variations=100),
                         np.concatenate(pieces, axis=1), trained["config"])
    blends = np.random.default_rng(0).uniform(0.1, 1.0, (70, W)).astype(np.float32)
    halves = [gen(trained, blends[i:i + 35], ks[i:i + 35], variations=1) for i in (0, 35)]
    assert_same_settings(gen(trained, blends, ks[:70], variations=1), np.concatenate(halves),
                         trained["config"], amplification=blend_amplification(trained["config"]))
    args = (trained["params"], trained["config"], trained["word_model"], jax.random.key(6))
    tiled = generation.explore(*args, 300, chunk=256)
    assert_same_settings(tiled, generation.explore(*args, 300, chunk=32), trained["config"])
    paramspace.validate(tiled, tolerance=0.0)


def test_rows_split_across_devices_equal_one_device(trained):
    # the accelerator layout (rows split over a mesh, tiles on each device), run here on the
    # test's CPU devices: padding to the device count and the shard specs must be invisible
    devices = jax.devices()[:4]
    plan = generation.BatchPlan(mesh=jax.sharding.Mesh(np.array(devices), ("data",)),
                                row_tile=16, decode_tile=None)
    config, rest = trained["config"], (np.int32(5), np.float32(1.0), 150,
                                        paramspace.DEFAULT_LAYOUT)
    params, arrays, key = (trained["params"], generation._select(
        trained["word_model"], generation.EXPLORE_KEYS), jax.random.key(2))
    one_device = generation._explore_chunk(params, config, arrays, key, *rest)
    params, arrays, key = generation._place((params, arrays, key), plan)
    split = generation._explore_chunk(params, config, arrays, key, *rest, plan)
    assert len(split.sharding.device_set) == 4
    assert_same_settings(split, one_device, trained["config"])


# ------------------------------------------------------------------ compound descriptions

@pytest.mark.parametrize("term, expected", [
    ("warm", {"warm": 1.0}),
    ("Warm and Punchy", {"warm": 0.5, "punchy": 0.5}),
    ("0.7 warm + 0.3 bright", {"warm": 0.7, "bright": 0.3}),
    ("7*warm + 3*bright", {"warm": 0.7, "bright": 0.3}),
    ("70% warm, 30% bright", {"warm": 0.7, "bright": 0.3}),
    ({"warm": 2, "bright": 2}, {"warm": 0.5, "bright": 0.5}),
    (["soft", "hollow", "soft"], {"soft": 2 / 3, "hollow": 1 / 3}),
])
def test_compound_descriptions_parse_to_normalised_weights(term, expected):
    weights = compound.parse_weights(term, synthetic.VOCABULARY)
    wanted = np.zeros(W)
    for word, value in expected.items():
        wanted[synthetic.VOCABULARY.index(word)] = value
    np.testing.assert_allclose(weights, wanted, rtol=1e-6)


@pytest.mark.parametrize("term, message", [
    ("warmm", "known words: warm, bright.*Did you mean 'warm'"),
    ("warm and brigth", "Did you mean 'bright'"),
    ("0 warm + 0 bright", "sum to 0"),
    ({"warm": -1.0, "bright": 2.0}, ">= 0"),
    ("0.7 warm - 0.3 bright", "subtracts"),
    ("0.7 warm + bright", "every part"),
    ({"warm": float("nan")}, "finite"),
    ("", "empty"),
])
def test_bad_compound_descriptions_raise_clear_errors(term, message):
    with pytest.raises(ValueError, match=message):
        compound.parse_weights(term, synthetic.VOCABULARY)


def test_truncated_normal_std_matches_sampling():
    draws = np.asarray(jax.random.truncated_normal(jax.random.key(0), -1.5, 1.5, (200_000,)))
    assert generation.truncated_normal_std(1.5) == pytest.approx(draws.std(), rel=5e-3)


def test_bucket_sizes_are_powers_of_two():
    assert [generation.bucket_size(n) for n in (1, 2, 3, 5, 8, 9, 1000)] == [
        1, 2, 4, 8, 8, 16, 1024]
