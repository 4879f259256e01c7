"""Flax (linen) models: residual and transformer encoders, residual decoder.

Everything works in the unit space of :mod:`neuraleq_jax.model.paramspace` (``[-1, 1]`` per
parameter): the encoder reads normalised settings, the decoder's heads emit normalised
values (tanh-bounded), and only ``paramspace.denormalize`` maps them to physical ranges.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model hyper-parameters; frozen and hashable so it can be a static jit argument."""

    encoder: str = "residual"  # a name in ENCODERS
    latent_dim: int = 32
    semantic_dim: int = 0
    embedding_dim: int = 128
    encoder_widths: tuple[int, ...] = (128, 256, 128)
    decoder_widths: tuple[int, ...] = (128, 256, 128)
    mlp_width: int = 64
    dropout: float = 0.1
    n_bands: int = 5
    transformer_dim: int = 64
    transformer_heads: int = 4
    transformer_layers: int = 2

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        for name in (
            "latent_dim",
            "embedding_dim",
            "mlp_width",
            "n_bands",
            "transformer_dim",
            "transformer_heads",
            "transformer_layers",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= int(self.semantic_dim) < self.latent_dim:
            raise ValueError(
                f"semantic_dim must be in [0, latent_dim={self.latent_dim}) (0: the "
                f"whole latent is semantic), got {self.semantic_dim}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.transformer_dim % self.transformer_heads:
            raise ValueError(
                f"transformer_dim ({self.transformer_dim}) must be divisible by "
                f"transformer_heads ({self.transformer_heads})"
            )
        # tuples, not lists, keep the config hashable when built from JSON or the CLI
        for name in ("encoder_widths", "decoder_widths"):
            widths = tuple(int(w) for w in getattr(self, name))
            if any(w < 1 for w in widths):  # empty is fine: no hidden layer
                raise ValueError(f"{name} must be widths >= 1, got {getattr(self, name)}")
            object.__setattr__(self, name, widths)

    @property
    def n_params(self) -> int:
        return 3 * self.n_bands

    @property
    def word_dims(self) -> int:
        """Dimensions of the latent's semantic part (its first ``word_dims``)."""
        return self.semantic_dim or self.latent_dim


def semantic_part(latent_BxL, config: ModelConfig):
    """The semantic part ``[..., S]`` of latents ``[..., L]``: the first ``semantic_dim``
    dimensions, on which the contrastive and cluster losses act and the silhouette is measured
    (the whole latent when ``semantic_dim`` is 0). The rest, the detail part, carries what only
    reconstruction needs (frequency, Q, where in its word's range a setting lies)."""
    return latent_BxL[..., : config.word_dims]


class _DenseParameters(nn.Module):
    """The kernel ``[fan_in, features]`` and bias ``[features]`` of a dense layer, made exactly
    as ``nn.Dense`` makes them (same names, shapes and initialisers), for layers that read the
    same input and can then share one matmul at inference."""

    features: int

    @nn.compact
    def __call__(self, fan_in: int):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (fan_in, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return kernel, bias


def _dense(x, kernel, bias):
    """``x @ kernel + bias`` over the last axis, computed as ``nn.Dense`` computes it."""
    y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    return y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))


def _dense_layers(x, layers, *, train: bool):
    """The outputs of several dense layers ``[(kernel, bias), ...]`` that read ``x``: one at a
    time in training (so that training's float32 results do not depend on this inference
    optimisation), as one matmul at inference (a single setting then needs fewer kernels; the
    outputs agree to float32 round-off; see :mod:`neuraleq_jax.generation.serving`)."""
    if train or len(layers) == 1:
        return [_dense(x, kernel, bias) for kernel, bias in layers]
    joined = _dense(
        x, jnp.concatenate([k for k, _ in layers], axis=1), jnp.concatenate([b for _, b in layers])
    )
    return jnp.split(joined, np.cumsum([k.shape[1] for k, _ in layers])[:-1].tolist(), axis=-1)


class ResidualBlock(nn.Module):
    """dense → LN → act → dropout → dense → LN, plus a skip (projected if widths differ), → act."""

    width: int
    dropout: float

    @nn.compact
    def __call__(self, x, *, train: bool):
        fan_in = x.shape[-1]
        layers = [_DenseParameters(self.width, name="Dense_0")(fan_in)]
        if fan_in != self.width:
            layers.append(_DenseParameters(self.width, name="skip")(fan_in))
        h, *projected = _dense_layers(x, layers, train=train)
        h = nn.gelu(nn.LayerNorm()(h))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        # zero-initialised scale: each block starts as its skip path, which on a few hundred
        # settings generalises far better (held-out response error about halves)
        h = nn.Dense(self.width, name="Dense_1")(h)
        h = nn.LayerNorm(scale_init=nn.initializers.zeros)(h)
        return nn.gelu(h + (projected[0] if projected else x))


class _LatentHeads(nn.Module):
    """Shared tail of both encoders: MLP → tanh latent; projection of its semantic part →
    the embedding of the contrastive loss.

    With ``semantic_dim`` S > 0 the latent is ``[semantic (S) | detail (L - S)]``, each from its
    own MLP head on the encoder's features: the word losses shape only the semantic part, and
    the detail part is free to carry what reconstruction needs, so clustering the words no
    longer costs reconstruction. With S = 0 one head makes the whole latent, which is then
    both what the word losses shape and what the decoder reads.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, features):
        cfg = self.config
        if cfg.semantic_dim:
            semantic = jnp.tanh(
                nn.Dense(cfg.semantic_dim, name="semantic")(
                    nn.gelu(nn.Dense(cfg.mlp_width, name="semantic_mlp")(features))
                )
            )
            detail = jnp.tanh(
                nn.Dense(cfg.latent_dim - cfg.semantic_dim, name="detail")(
                    nn.gelu(nn.Dense(cfg.mlp_width, name="detail_mlp")(features))
                )
            )
            latent = jnp.concatenate([semantic, detail], axis=-1)
        else:
            h = nn.gelu(nn.Dense(cfg.mlp_width)(features))
            latent = jnp.tanh(nn.Dense(cfg.latent_dim)(h))
        embedding = nn.Dense(cfg.embedding_dim, name="embedding")(
            nn.gelu(nn.Dense(cfg.embedding_dim)(semantic_part(latent, cfg)))
        )
        return latent, embedding


class ResidualEncoder(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxP, *, train: bool):
        h = x_BxP
        for width in self.config.encoder_widths:
            h = ResidualBlock(width, self.config.dropout)(h, train=train)
        return _LatentHeads(self.config)(h)


class TransformerEncoder(nn.Module):
    """The bands as a sequence of tokens ``[gain, freq, q]``, pre-LN self-attention, mean pool."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxP, *, train: bool):
        cfg = self.config
        tokens_BxNx3 = x_BxP.reshape(x_BxP.shape[:-1] + (cfg.n_bands, 3))
        h = nn.Dense(cfg.transformer_dim)(tokens_BxNx3)
        # learned positions: each band has a fixed filter kind and range, so position is identity
        position_NxD = self.param(
            "position", nn.initializers.normal(0.02), (cfg.n_bands, cfg.transformer_dim)
        )
        h = h + position_NxD
        for _ in range(cfg.transformer_layers):
            attended = nn.MultiHeadDotProductAttention(
                num_heads=cfg.transformer_heads, dropout_rate=cfg.dropout, deterministic=not train
            )(nn.LayerNorm()(h))
            h = h + attended
            mlp = nn.Dense(cfg.transformer_dim)(
                nn.gelu(nn.Dense(2 * cfg.transformer_dim)(nn.LayerNorm()(h)))
            )
            h = h + nn.Dropout(cfg.dropout, deterministic=not train)(mlp)
        pooled = nn.LayerNorm()(h).reshape(h.shape[:-2] + (-1,))
        return _LatentHeads(cfg)(pooled)


# name (``ModelConfig.encoder``) → encoder module. An encoder is a module with one field,
# ``config: ModelConfig``, whose ``__call__(x_BxP, *, train)`` maps unit settings ``[B, P]`` to
# ``(latent [B, L], embedding [B, E])`` (``_LatentHeads`` makes both); a new one is its class
# and one entry here. EQAutoencoder names the instance ``encoder`` whatever its class, so the
# parameter tree (and every saved checkpoint) starts ``encoder/…`` for all of them.
ENCODERS: Mapping[str, type[nn.Module]] = types.MappingProxyType(
    {"residual": ResidualEncoder, "transformer": TransformerEncoder}
)


class ResidualDecoder(nn.Module):
    """latent → residual blocks → gain / frequency / Q heads, each tanh-bounded to the unit space."""

    config: ModelConfig

    @nn.compact
    def __call__(self, latent_BxL, *, train: bool):
        cfg = self.config
        h = latent_BxL
        for width in cfg.decoder_widths:
            h = ResidualBlock(width, cfg.dropout)(h, train=train)
        heads = _dense_layers(
            h,
            [
                _DenseParameters(cfg.n_bands, name=f"{field}_head")(h.shape[-1])
                for field in ("gain", "freq", "q")
            ],
            train=train,
        )
        # [B, bands, 3] → band-major layout [gain, freq, q] per band
        stacked = jnp.stack([jnp.tanh(head) for head in heads], axis=-1)
        return stacked.reshape(h.shape[:-1] + (cfg.n_params,))


class EQAutoencoder(nn.Module):
    """The encoder named by ``config.encoder`` (see :data:`ENCODERS`) and the residual decoder
    over normalised settings."""

    config: ModelConfig

    def setup(self):
        self.encoder = ENCODERS[self.config.encoder](self.config)
        self.decoder = ResidualDecoder(self.config)

    def encode(self, x_BxP, train: bool = False):
        return self.encoder(x_BxP, train=train)

    def decode(self, latent_BxL, train: bool = False):
        return self.decoder(latent_BxL, train=train)

    def __call__(self, x_BxP, train: bool = False):
        """``x [B, P]`` unit space → ``(latent [B, L], embedding [B, E], reconstruction [B, P])``."""
        latent, embedding = self.encode(x_BxP, train)
        return latent, embedding, self.decode(latent, train)


def init_params(config: ModelConfig, key: jax.Array):
    """Fresh model parameters (the ``params`` collection) for ``config``."""
    model = EQAutoencoder(config)
    return model.init(key, jnp.zeros((1, config.n_params), jnp.float32))["params"]


def apply(
    params, config: ModelConfig, x_BxP, *, train: bool = False, dropout_key: jax.Array | None = None
):
    """Full forward pass: ``x [B, P]`` → ``(latent [B, L], embedding [B, E], recon [B, P])``."""
    chex.assert_shape(x_BxP, (None, config.n_params))
    rngs = {"dropout": dropout_key} if train else None
    return EQAutoencoder(config).apply({"params": params}, x_BxP, train, rngs=rngs)


def encode(params, config: ModelConfig, x_BxP):
    """Deterministic encoder: unit settings ``[B, P]`` → ``(latent [B, L], embedding [B, E])``."""
    chex.assert_shape(x_BxP, (None, config.n_params))
    return EQAutoencoder(config).apply({"params": params}, x_BxP, method=EQAutoencoder.encode)


def decode(params, config: ModelConfig, latent_BxL):
    """Deterministic decoder: latents ``[B, L]`` → unit-space settings ``[B, P]`` in ``(-1, 1)``."""
    chex.assert_shape(latent_BxL, (None, config.latent_dim))
    return EQAutoencoder(config).apply({"params": params}, latent_BxL, method=EQAutoencoder.decode)
