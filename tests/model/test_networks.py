"""Models: shapes, bounds, determinism, dropout, encoder choice, config validation."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tolerances import decode_tolerance

from neuraleq_jax.data.synthetic import make_synthetic
from neuraleq_jax.model import networks, paramspace

TINY = networks.ModelConfig(
    encoder_widths=(16, 24),
    decoder_widths=(24,),
    latent_dim=6,
    embedding_dim=10,
    mlp_width=12,
    dropout=0.2,
    transformer_dim=8,
    transformer_heads=2,
    transformer_layers=1,
)

# The tests call the model through jit: run eagerly, every primitive is an XLA program of its
# own, compiled on first use (hundreds per model), which costs several times one program's compile.
init_params = jax.jit(networks.init_params, static_argnames="config")
apply = jax.jit(networks.apply, static_argnames=("config", "train"))
encode = jax.jit(networks.encode, static_argnames="config")
decode = jax.jit(networks.decode, static_argnames="config")


@pytest.fixture(scope="module")
def batch():
    return jnp.asarray(make_synthetic(per_word=2, seed=4).normalized())


@pytest.mark.parametrize("encoder", networks.ENCODERS)
def test_shapes_and_bounds(encoder, batch):
    config = dataclasses.replace(TINY, encoder=encoder)
    params = init_params(config, jax.random.key(0))
    latent, embedding, recon = apply(params, config, batch)
    assert latent.shape == (16, 6) and embedding.shape == (16, 10) and recon.shape == (16, 15)
    assert np.all(np.abs(latent) < 1) and np.all(np.abs(recon) < 1)
    physical = np.asarray(paramspace.denormalize(recon))
    assert np.all(physical >= paramspace.DEFAULT_LAYOUT.lower - 1e-3)
    assert np.all(physical <= paramspace.DEFAULT_LAYOUT.upper * (1 + 1e-5))


@pytest.mark.parametrize("encoder", networks.ENCODERS)
def test_inference_is_deterministic_and_dropout_is_not(encoder, batch):
    config = dataclasses.replace(TINY, encoder=encoder)
    params = init_params(config, jax.random.key(1))
    first = apply(params, config, batch)
    second = apply(params, config, batch)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # perturb the zero-initialised block scales so the dropped branches matter
    params = jax.tree.map(lambda x: np.asarray(x) + np.float32(0.1), params)
    noisy_a = apply(params, config, batch, train=True, dropout_key=jax.random.key(2))
    noisy_b = apply(params, config, batch, train=True, dropout_key=jax.random.key(3))
    assert not np.allclose(noisy_a[2], noisy_b[2])


@pytest.mark.parametrize("encoder", networks.ENCODERS)
def test_encode_and_decode_agree_with_apply(encoder, batch):
    config = dataclasses.replace(TINY, encoder=encoder)
    params = init_params(config, jax.random.key(5))

    # one program for the three entry points, so that they compile alike, as they did eagerly
    @jax.jit
    def through_each_entry_point(params, x):
        latent, embedding, recon = networks.apply(params, config, x)
        return (
            (latent, embedding, recon),
            networks.encode(params, config, x),
            networks.decode(params, config, latent),
        )

    (latent, embedding, recon), (latent2, embedding2), recon2 = through_each_entry_point(
        params, batch
    )
    np.testing.assert_allclose(latent, latent2, atol=1e-6)
    np.testing.assert_allclose(embedding, embedding2, atol=1e-6)
    np.testing.assert_allclose(recon2, recon, atol=1e-6)


@pytest.mark.parametrize("encoder", networks.ENCODERS)
def test_split_latent_embeds_only_its_semantic_part(encoder, batch):
    # with semantic_dim S the latent is [semantic | detail], each from its own head: changing
    # the detail head moves only the detail part, and the embedding (the contrastive loss's
    # input) is a function of the semantic part alone
    config = dataclasses.replace(TINY, encoder=encoder, semantic_dim=2)
    params = init_params(config, jax.random.key(3))
    latent, embedding, _ = apply(params, config, batch)
    assert latent.shape == (16, 6) and networks.semantic_part(latent, config).shape == (16, 2)
    heads = "_LatentHeads_0"
    moved = jax.tree.map(lambda x: x, params)
    detail_kernel = np.asarray(params["encoder"][heads]["detail"]["kernel"])
    moved["encoder"][heads]["detail"]["kernel"] = detail_kernel + np.float32(0.5)
    latent2, embedding2, _ = apply(moved, config, batch)
    np.testing.assert_array_equal(latent2[:, :2], latent[:, :2])
    np.testing.assert_array_equal(embedding2, embedding)
    assert not np.allclose(latent2[:, 2:], latent[:, 2:])
    # S = 0: the whole latent is semantic
    assert networks.semantic_part(latent, TINY).shape == (16, 6)


def test_semantic_dim_must_leave_room_for_detail():
    with pytest.raises(ValueError, match="semantic_dim"):
        dataclasses.replace(TINY, semantic_dim=6)
    with pytest.raises(ValueError, match="semantic_dim"):
        dataclasses.replace(TINY, semantic_dim=-1)


def test_encoders_have_different_parameters(batch):
    residual = init_params(dataclasses.replace(TINY, encoder="residual"), jax.random.key(0))
    transformer = init_params(dataclasses.replace(TINY, encoder="transformer"), jax.random.key(0))
    assert "position" in transformer["encoder"]
    assert "position" not in residual["encoder"]


def test_encoder_parameters_keep_the_names_saved_checkpoints_hold():
    # checkpoints store the parameter tree by name: these are the names models were trained with
    residual = init_params(dataclasses.replace(TINY, encoder="residual"), jax.random.key(0))
    transformer = init_params(dataclasses.replace(TINY, encoder="transformer"), jax.random.key(0))
    assert set(residual) == set(transformer) == {"encoder", "decoder"}
    assert set(residual["encoder"]) == {"ResidualBlock_0", "ResidualBlock_1", "_LatentHeads_0"}
    layers = {"Dense_0", "Dense_1", "Dense_2", "LayerNorm_0", "LayerNorm_1", "LayerNorm_2"}
    assert set(transformer["encoder"]) == layers | {
        "position",
        "MultiHeadDotProductAttention_0",
        "_LatentHeads_0",
    }


class _MeanEncoder(nn.Module):
    """A toy encoder for the registry test: every latent dimension is the settings' mean."""

    config: networks.ModelConfig

    @nn.compact
    def __call__(self, x_BxP, *, train: bool):
        scale = self.param("scale", nn.initializers.ones, ())
        mean_Bx1 = jnp.mean(x_BxP, axis=-1, keepdims=True)
        latent_BxL = jnp.tanh(scale * mean_Bx1) * jnp.ones(self.config.latent_dim)
        return latent_BxL, jnp.zeros(x_BxP.shape[:-1] + (self.config.embedding_dim,))


def test_a_new_encoder_is_one_class_and_one_registry_entry(monkeypatch, batch):
    with pytest.raises(
        ValueError, match="encoder must be one of residual, transformer, got 'mean'"
    ):
        dataclasses.replace(TINY, encoder="mean")
    monkeypatch.setattr(networks, "ENCODERS", {**networks.ENCODERS, "mean": _MeanEncoder})
    config = dataclasses.replace(TINY, encoder="mean")
    params = networks.init_params(config, jax.random.key(0))
    assert set(params["encoder"]) == {"scale"}
    latent, embedding = networks.encode(params, config, batch)
    expected_Bx1 = np.tanh(np.asarray(batch).mean(axis=1, keepdims=True))
    np.testing.assert_allclose(latent, np.broadcast_to(expected_Bx1, (16, 6)), atol=1e-6)
    assert embedding.shape == (16, 10)


def test_transformer_reads_band_positions(batch):
    config = dataclasses.replace(TINY, encoder="transformer")
    params = init_params(config, jax.random.key(7))
    params = jax.tree.map(lambda x: np.asarray(x) + np.float32(0.05), params)
    swapped = batch.reshape(-1, 5, 3)[:, ::-1].reshape(-1, 15)
    a, _ = encode(params, config, batch)
    b, _ = encode(params, config, swapped)
    assert not np.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("encoder", networks.ENCODERS)
def test_training_and_inference_paths_compute_the_same_function(encoder, batch):
    # at inference, dense layers that read the same input share one matmul; in training they
    # run one at a time. Without dropout the two must agree to float32 round-off.
    config = dataclasses.replace(TINY, encoder=encoder, dropout=0.0)
    rng = np.random.default_rng(5)
    # dropout has no parameters: TINY's initialiser (compiled already) gives this config's
    params = init_params(dataclasses.replace(config, dropout=TINY.dropout), jax.random.key(2))
    params = jax.tree_util.tree_map(
        lambda x: np.asarray(x) + 0.2 * rng.normal(size=x.shape).astype(np.float32), params
    )
    trained = apply(params, config, batch, train=True, dropout_key=jax.random.key(0))
    served = apply(params, config, batch)
    # encoder and decoder are residual stacks of similar depth: twice the decoder's bound
    for a, b in zip(trained, served):
        np.testing.assert_allclose(a, b, rtol=0, atol=decode_tolerance(config, 2.0))


def test_residual_blocks_start_as_their_skip_path():
    block = networks.ResidualBlock(width=8, dropout=0.0)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5)), jnp.float32)
    variables = block.init(jax.random.key(0), x, train=False)
    skip = variables["params"]["skip"]
    expected = jax.nn.gelu(x @ skip["kernel"] + skip["bias"])
    np.testing.assert_allclose(block.apply(variables, x, train=False), expected, atol=1e-6)


def _layer_norm(x, scale, bias, eps=1e-6):
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * scale + bias


def _gelu(x):  # flax's default (tanh) approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def test_decoder_equals_a_plain_numpy_forward_pass_layer_by_layer():
    # a float64 loop over the layers as SPEC §4 describes them, one dense at a time
    config = dataclasses.replace(TINY, decoder_widths=(24, 24, 16))
    rng = np.random.default_rng(3)
    params = init_params(config, jax.random.key(1))
    # non-zero layer-norm scales, so that every layer of the block matters
    params = jax.tree_util.tree_map(
        lambda x: np.asarray(x) + 0.3 * rng.normal(size=x.shape).astype(np.float32), params
    )
    latent = rng.uniform(-1, 1, (7, config.latent_dim)).astype(np.float32)
    p = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), params["decoder"])

    def dense(layer, x):
        return x @ layer["kernel"] + layer["bias"]

    h = latent.astype(np.float64)
    for i, width in enumerate(config.decoder_widths):
        block = p[f"ResidualBlock_{i}"]
        inner = _gelu(_layer_norm(dense(block["Dense_0"], h), **block["LayerNorm_0"]))
        inner = _layer_norm(dense(block["Dense_1"], inner), **block["LayerNorm_1"])
        skip = dense(block["skip"], h) if "skip" in block else h
        assert ("skip" in block) == (h.shape[-1] != width)
        h = _gelu(inner + skip)
    heads = [np.tanh(dense(p[f"{field}_head"], h)) for field in ("gain", "freq", "q")]
    expected = np.stack(heads, -1).reshape(len(latent), config.n_params)
    np.testing.assert_allclose(
        decode(params, config, latent), expected, atol=decode_tolerance(config)
    )


@pytest.mark.parametrize(
    "field,value",
    [("encoder", "lstm"), ("latent_dim", 0), ("dropout", 1.0), ("transformer_heads", 3)],
)
def test_bad_config_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(networks.ModelConfig(), **{field: value})


def test_wrong_input_width_is_rejected(batch):
    params = init_params(TINY, jax.random.key(0))
    with pytest.raises(AssertionError):
        networks.apply(params, TINY, batch[:, :12])
