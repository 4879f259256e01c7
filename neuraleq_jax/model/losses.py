"""Training losses: supervised contrastive, unit-space reconstruction, dB-response, and total.

Every function is pure and jit-compiled; batches may carry a ``valid_B`` mask (1 = real row)
so a padded batch gives the same value as the unpadded one.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from neuraleq_jax.model import networks, paramspace, response
from neuraleq_jax.model.paramspace import DEFAULT_LAYOUT, EQLayout

# logits of excluded pairs: finite (not -inf) so masked entries never produce inf - inf = NaN
_EXCLUDED = -1e30


def _mask(valid_B, batch: int):
    return jnp.ones((batch,), bool) if valid_B is None else jnp.asarray(valid_B).astype(bool)


@jax.jit
def supervised_contrastive_loss(embedding_BxE, labels_B, temperature=0.1, valid_B=None):
    """Supervised contrastive loss (Khosla et al. 2020, "L_out"), a scalar.

    For anchor ``i`` with positives ``P(i)`` (other valid rows with its label) and candidates
    ``A(i)`` (all other valid rows):
    ``L_i = -1/|P(i)| Σ_{p∈P(i)} log( exp(s_ip/τ) / Σ_{a∈A(i)} exp(s_ia/τ) )``, with ``s`` the
    cosine similarity. The loss is the mean of ``L_i`` over valid anchors with at least one
    positive; 0 when there is none.

    Args:
      embedding_BxE: ``[B, E]`` embeddings (any scale; they are L2-normalised here).
      labels_B: ``[B]`` integer word ids.
      temperature: τ > 0.
      valid_B: optional ``[B]`` mask; invalid rows are neither anchors nor candidates.
    """
    chex.assert_rank(embedding_BxE, 2)
    chex.assert_shape(labels_B, (embedding_BxE.shape[0],))
    batch = embedding_BxE.shape[0]
    valid = _mask(valid_B, batch)
    norm_B = jnp.linalg.norm(embedding_BxE, axis=-1, keepdims=True)
    z_BxE = embedding_BxE / jnp.maximum(norm_B, 1e-12)
    logits_BxB = (z_BxE @ z_BxE.T) / temperature
    candidates_BxB = ~jnp.eye(batch, dtype=bool) & valid[None, :]
    log_denominator_B = jax.nn.logsumexp(jnp.where(candidates_BxB, logits_BxB, _EXCLUDED), axis=1)
    log_prob_BxB = logits_BxB - log_denominator_B[:, None]
    positives_BxB = candidates_BxB & valid[:, None] & (labels_B[:, None] == labels_B[None, :])
    n_positives_B = positives_BxB.sum(axis=1)
    mean_log_prob_B = jnp.where(positives_BxB, log_prob_BxB, 0.0).sum(axis=1) / jnp.maximum(
        n_positives_B, 1
    )
    anchors_B = n_positives_B > 0
    return -jnp.where(anchors_B, mean_log_prob_B, 0.0).sum() / jnp.maximum(anchors_B.sum(), 1)


@jax.jit
def batch_silhouette(latent_BxL, labels_B, valid_B=None):
    """Mean Euclidean silhouette of the valid rows of a batch (sklearn's definition), a scalar.

    ``s_i = (b_i - a_i) / max(a_i, b_i)``: ``a_i`` the mean distance to the other rows of its
    word, ``b_i`` the smallest mean distance to the rows of another word. Rows without a
    same-word partner or without another word in the batch are left out. Differentiable (a
    tiny epsilon inside the square root), so ``1 - batch_silhouette`` is a training loss that
    pulls the latent straight toward the figure it is judged by.
    """
    chex.assert_rank(latent_BxL, 2)
    chex.assert_shape(labels_B, (latent_BxL.shape[0],))
    batch = latent_BxL.shape[0]
    valid = _mask(valid_B, batch)
    diff_BxBxL = latent_BxL[:, None, :] - latent_BxL[None, :, :]
    dist_BxB = jnp.sqrt((diff_BxBxL**2).sum(axis=-1) + 1e-12)
    pair_BxB = valid[:, None] & valid[None, :]
    same_word_BxB = (labels_B[:, None] == labels_B[None, :]) & pair_BxB
    partners_BxB = same_word_BxB & ~jnp.eye(batch, dtype=bool)
    n_partners_B = partners_BxB.sum(axis=1)
    a_B = jnp.where(partners_BxB, dist_BxB, 0.0).sum(axis=1) / jnp.maximum(n_partners_B, 1)
    # mean distance from row i to the word of row j: Σ_k d_ik [y_k = y_j] / n_{y_j}
    word_size_B = same_word_BxB.sum(axis=0)
    to_word_of_BxB = (
        jnp.where(pair_BxB, dist_BxB, 0.0) @ same_word_BxB.astype(dist_BxB.dtype)
    ) / jnp.maximum(word_size_B, 1)[None, :]
    other_word_BxB = pair_BxB & ~same_word_BxB
    b_B = jnp.where(other_word_BxB, to_word_of_BxB, jnp.inf).min(axis=1)
    rows_B = valid & (n_partners_B > 0) & other_word_BxB.any(axis=1)
    b_B = jnp.where(rows_B, b_B, 0.0)
    s_B = (b_B - a_B) / jnp.maximum(jnp.maximum(a_B, b_B), 1e-12)
    return jnp.where(rows_B, s_B, 0.0).sum() / jnp.maximum(rows_B.sum(), 1)


def _masked_mean(values_B, valid):
    weights = valid.astype(values_B.dtype)
    return (values_B * weights).sum() / jnp.maximum(weights.sum(), 1.0)


@jax.jit
def reconstruction_loss(recon_BxP, target_BxP, valid_B=None):
    """Mean squared error in the unit space (both ``[B, P]`` in ``[-1, 1]``), a scalar."""
    chex.assert_equal_shape((recon_BxP, target_BxP))
    valid = _mask(valid_B, recon_BxP.shape[0])
    return _masked_mean(jnp.mean((recon_BxP - target_BxP) ** 2, axis=-1), valid)


def response_scale_db(layout: EQLayout = DEFAULT_LAYOUT) -> float:
    """dB unit of the response term: the largest gain half-range of the layout (12 dB here)."""
    half = (layout.upper - layout.lower)[layout.gain_indices] / 2.0
    return float(np.max(half))


@functools.partial(jax.jit, static_argnames=("layout",))
def response_loss(
    recon_unit_BxP, target_unit_BxP, valid_B=None, *, layout: EQLayout = DEFAULT_LAYOUT
):
    """Mean squared dB difference of the responses on the reference grid, in (dB / scale)².

    Both inputs are unit-space settings; they are denormalised with ``layout`` and their
    responses compared on the 256-point reference grid. ``scale`` is :func:`response_scale_db`.
    """
    chex.assert_equal_shape((recon_unit_BxP, target_unit_BxP))
    valid = _mask(valid_B, recon_unit_BxP.shape[0])
    recon_BxF = response.magnitude_response_db(
        paramspace.denormalize(recon_unit_BxP, layout), layout=layout
    )
    target_BxF = response.magnitude_response_db(
        paramspace.denormalize(target_unit_BxP, layout), layout=layout
    )
    scale = response_scale_db(layout)
    return _masked_mean(jnp.mean(((recon_BxF - target_BxF) / scale) ** 2, axis=-1), valid)


def weighted_sum(
    recon,
    response_term,
    contrastive,
    cluster,
    *,
    response_weight: float,
    contrastive_weight: float,
    cluster_weight: float,
):
    """The training objective from its parts (scalars):
    ``recon + response_weight·response + contrastive_weight·contrastive
    + cluster_weight·cluster``. Training and validation both call it, so they report the
    same loss."""
    return (
        recon
        + response_weight * response_term
        + contrastive_weight * contrastive
        + cluster_weight * cluster
    )


def total_loss(
    params,
    x_unit_BxP,
    labels_B,
    *,
    model_config: networks.ModelConfig,
    contrastive_weight: float,
    temperature: float,
    response_weight: float = 0.0,
    cluster_weight: float = 0.0,
    layout: EQLayout = DEFAULT_LAYOUT,
    train: bool = False,
    dropout_key: jax.Array | None = None,
    valid_B=None,
):
    """``recon + response_weight·response + contrastive_weight·contrastive
    + cluster_weight·cluster`` and its parts, where ``cluster = 1 - batch_silhouette`` of the
    latents' semantic part (:func:`networks.semantic_part`; the contrastive embedding is
    projected from the same part).

    Returns:
      ``(loss, metrics)``: a scalar and a dict of scalars ``loss``, ``recon``, ``response``,
      ``contrastive`` and ``cluster`` (a part whose weight is the Python number 0 is not
      computed and reported as 0).
    """
    latent_BxL, embedding_BxE, recon_BxP = networks.apply(
        params, model_config, x_unit_BxP, train=train, dropout_key=dropout_key
    )
    zero = jnp.zeros((), jnp.float32)
    skip = lambda w: isinstance(w, (int, float)) and w == 0
    recon = reconstruction_loss(recon_BxP, x_unit_BxP, valid_B)
    contrastive = supervised_contrastive_loss(embedding_BxE, labels_B, temperature, valid_B)
    resp = (
        zero
        if skip(response_weight)
        else response_loss(recon_BxP, x_unit_BxP, valid_B, layout=layout)
    )
    cluster = (
        zero
        if skip(cluster_weight)
        else 1.0
        - batch_silhouette(networks.semantic_part(latent_BxL, model_config), labels_B, valid_B)
    )
    loss = weighted_sum(
        recon,
        resp,
        contrastive,
        cluster,
        response_weight=response_weight,
        contrastive_weight=contrastive_weight,
        cluster_weight=cluster_weight,
    )
    return loss, {
        "loss": loss,
        "recon": recon,
        "response": resp,
        "contrastive": contrastive,
        "cluster": cluster,
    }
