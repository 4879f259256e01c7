"""Losses against plain reference loops, scipy, and their defining properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from neuraleq_jax.data.synthetic import make_synthetic
from neuraleq_jax.metrics.silhouette import silhouette_score
from neuraleq_jax.model import losses, networks, paramspace, response

# model and response code runs through jit here: eagerly, each primitive compiles on its own
init_params = jax.jit(networks.init_params, static_argnames="config")
denormalize = jax.jit(paramspace.denormalize, static_argnames="layout")


def total_loss_and_references(config, references, **weights):
    """A jitted ``(params, x, y) → (loss, parts, references)``: ``total_loss``, and
    ``references(latent, embedding, recon, x, y)`` computed from ``networks.apply``'s outputs in
    the same program, so that both sides compile alike (as they did when run eagerly)."""

    @jax.jit
    def run(params, x, y):
        loss, parts = losses.total_loss(params, x, y, model_config=config, **weights)
        return loss, parts, references(*networks.apply(params, config, x), x, y)

    return run


def supcon_reference(embeddings, labels, temperature):
    """Khosla et al. (2020) L_out written as plain loops in float64."""
    z = [np.asarray(e, np.float64) / np.linalg.norm(e) for e in embeddings]
    n = len(z)
    per_anchor = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in range(n) if a != i)
        terms = [
            math.log(math.exp(float(z[i] @ z[p]) / temperature) / denominator) for p in positives
        ]
        per_anchor.append(-sum(terms) / len(terms))
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_supcon_matches_reference_loop_with_every_anchor_paired(seed, temperature):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 3)  # every anchor has 2 positives
    rng.shuffle(labels)
    emb = rng.normal(size=(12, 8)).astype(np.float32)
    got = losses.supervised_contrastive_loss(emb, labels.astype(np.int32), temperature)
    assert abs(float(got) - supcon_reference(emb, labels, temperature)) < 1e-5


@pytest.mark.parametrize("seed", range(4))
def test_supcon_matches_reference_loop_with_anchors_lacking_positives(seed):
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 1, 2, 3, 3, 3, 4, 5, 1, 6, 7, 8, 8, 9, 10])  # 2,4,5,6,7,9,10 alone
    rng.shuffle(labels)
    emb = rng.normal(size=(16, 5)).astype(np.float32)
    got = losses.supervised_contrastive_loss(emb, labels.astype(np.int32), 0.2)
    assert abs(float(got) - supcon_reference(emb, labels, 0.2)) < 1e-5


def test_supcon_is_permutation_invariant():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, 16).astype(np.int32)
    emb = rng.normal(size=(16, 6)).astype(np.float32)
    order = rng.permutation(16)
    a = losses.supervised_contrastive_loss(emb, labels, 0.1)
    b = losses.supervised_contrastive_loss(emb[order], labels[order], 0.1)
    assert abs(float(a) - float(b)) < 1e-5


def test_supcon_decreases_as_same_word_embeddings_move_together():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 4).astype(np.int32)
    emb = rng.normal(size=(16, 8))
    centres = np.stack([emb[labels == k].mean(0) for k in range(4)])[labels]
    values = [
        float(
            losses.supervised_contrastive_loss(
                (emb + alpha * (centres - emb)).astype(np.float32), labels, 0.1
            )
        )
        for alpha in (0.0, 0.3, 0.6, 0.9)
    ]
    assert all(later < earlier for earlier, later in zip(values, values[1:]))


def test_supcon_valid_mask_equals_dropping_the_rows():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 12).astype(np.int32)
    emb = rng.normal(size=(12, 4)).astype(np.float32)
    valid = np.ones(12, bool)
    valid[[2, 5, 11]] = False
    masked = losses.supervised_contrastive_loss(emb, labels, 0.3, valid)
    dropped = losses.supervised_contrastive_loss(emb[valid], labels[valid], 0.3)
    assert abs(float(masked) - float(dropped)) < 1e-5


def test_supcon_without_any_positive_is_zero_with_finite_gradient():
    emb = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)
    labels = jnp.arange(5, dtype=jnp.int32)
    value, grad = jax.jit(jax.value_and_grad(losses.supervised_contrastive_loss))(emb, labels, 0.1)
    assert float(value) == 0.0
    assert np.all(np.isfinite(grad))


def test_supcon_gradient_is_finite_with_singletons():
    emb = jnp.asarray(np.random.default_rng(2).normal(size=(6, 3)), jnp.float32)
    labels = jnp.array([0, 0, 1, 2, 3, 3], jnp.int32)
    grad = jax.jit(jax.grad(losses.supervised_contrastive_loss))(emb, labels, 0.05)
    assert np.all(np.isfinite(grad))


def test_reconstruction_loss_is_the_unit_space_mse():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-1, 1, (2, 7, 15)).astype(np.float32)
    assert abs(float(losses.reconstruction_loss(a, b)) - np.mean((a - b) ** 2)) < 1e-6
    valid = np.array([1, 1, 0, 1, 0, 1, 1], bool)
    expected = np.mean((a[valid] - b[valid]) ** 2)
    assert abs(float(losses.reconstruction_loss(a, b, valid)) - expected) < 1e-6


def test_response_loss_matches_scipy_responses():
    ds = make_synthetic(per_word=1, seed=3)
    unit = ds.normalized()
    other = np.roll(unit, 1, axis=0)
    freqs = np.asarray(response.REFERENCE_FREQS, np.float64)
    expected = []
    for setting_a, setting_b in zip(np.asarray(denormalize(unit)), np.asarray(denormalize(other))):
        curves = []
        for setting in (setting_a, setting_b):
            sos = response.second_order_sections(setting)
            _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=48_000.0)
            curves.append(20 * np.log10(np.abs(h)))
        expected.append(np.mean(((curves[0] - curves[1]) / 12.0) ** 2))
    got = float(losses.response_loss(jnp.asarray(unit), jnp.asarray(other)))
    assert losses.response_scale_db() == 12.0
    assert got == pytest.approx(float(np.mean(expected)), rel=1e-3)
    assert float(losses.response_loss(jnp.asarray(unit), jnp.asarray(unit))) < 1e-10


def test_batch_silhouette_matches_sklearn_definition():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 4)
    points = rng.normal(size=(16, 3)) + 3 * rng.normal(size=(4, 3))[labels]
    got = float(
        losses.batch_silhouette(jnp.asarray(points, jnp.float32), jnp.asarray(labels, jnp.int32))
    )
    assert abs(got - silhouette_score(points, labels)) < 1e-5


def test_batch_silhouette_leaves_out_rows_without_a_partner():
    rng = np.random.default_rng(6)
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])  # word 2 occurs once
    points = rng.normal(size=(8, 2)) + 4 * rng.normal(size=(4, 2))[labels]
    keep = labels != 2
    # the reference: sklearn's per-sample score, computed with every word present ...
    n = len(points)
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    scores = []
    for i in np.flatnonzero(keep):
        own = [j for j in range(n) if j != i and labels[j] == labels[i]]
        a = dist[i, own].mean()
        b = min(dist[i, labels == k].mean() for k in set(labels) if k != labels[i])
        scores.append((b - a) / max(a, b))
    got = float(
        losses.batch_silhouette(jnp.asarray(points, jnp.float32), jnp.asarray(labels, jnp.int32))
    )
    assert abs(got - np.mean(scores)) < 1e-5
    grad = jax.jit(jax.grad(losses.batch_silhouette))(
        jnp.asarray(points, jnp.float32), jnp.asarray(labels, jnp.int32)
    )
    assert np.all(np.isfinite(grad))


def test_total_loss_is_the_weighted_sum_of_its_parts():
    config = networks.ModelConfig(
        encoder_widths=(16,),
        decoder_widths=(16,),
        latent_dim=4,
        embedding_dim=8,
        mlp_width=8,
        dropout=0.0,
    )
    params = init_params(config, jax.random.key(0))
    ds = make_synthetic(per_word=2, seed=1)
    x, y = jnp.asarray(ds.normalized()), jnp.asarray(ds.word_ids)
    weights = dict(contrastive_weight=0.7, temperature=0.2)
    loss, parts, (recon_loss, contrastive, silhouette) = total_loss_and_references(
        config,
        lambda latent, emb, recon, x, y: (
            losses.reconstruction_loss(recon, x),
            losses.supervised_contrastive_loss(emb, y, 0.2),
            losses.batch_silhouette(latent, y),
        ),
        response_weight=3.0,
        cluster_weight=0.5,
        **weights,
    )(params, x, y)
    assert float(parts["recon"]) == pytest.approx(float(recon_loss))
    assert float(parts["contrastive"]) == pytest.approx(float(contrastive), rel=1e-6)
    assert float(parts["cluster"]) == pytest.approx(1.0 - float(silhouette), rel=1e-6)
    expected = (
        parts["recon"]
        + 3.0 * parts["response"]
        + 0.7 * parts["contrastive"]
        + 0.5 * parts["cluster"]
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    _, off, _ = total_loss_and_references(
        config, lambda *outputs: (), response_weight=0.0, cluster_weight=0.0, **weights
    )(params, x, y)
    assert float(off["response"]) == 0.0 and float(off["cluster"]) == 0.0


def test_cluster_term_acts_on_the_semantic_part_of_a_split_latent():
    config = networks.ModelConfig(
        encoder_widths=(16,),
        decoder_widths=(16,),
        latent_dim=6,
        semantic_dim=2,
        embedding_dim=8,
        mlp_width=8,
        dropout=0.0,
    )
    params = init_params(config, jax.random.key(2))
    ds = make_synthetic(per_word=2, seed=1)
    x, y = jnp.asarray(ds.normalized()), jnp.asarray(ds.word_ids)
    _, parts, (semantic, whole) = total_loss_and_references(
        config,
        lambda latent, emb, recon, x, y: (
            losses.batch_silhouette(latent[:, :2], y),
            losses.batch_silhouette(latent, y),
        ),
        contrastive_weight=0.7,
        temperature=0.2,
        cluster_weight=0.5,
    )(params, x, y)
    assert float(parts["cluster"]) == pytest.approx(1.0 - float(semantic), rel=1e-6)
    assert float(parts["cluster"]) != pytest.approx(1.0 - float(whole), rel=1e-3)
