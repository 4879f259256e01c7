"""The steps of a training run and the compiled programs that run them on a device mesh.

The pure functions: optimiser, fresh state, augmentation, one train step, an epoch of steps as
one ``lax.scan``, the deterministic evaluation of a batch, and the epochs' shuffled row orders.
Every random stream derives from ``train_config.seed`` through ``fold_in`` with one of the
stream tags below, so the streams of one seed never overlap and a resumed run draws exactly
what an uninterrupted one would.

The programs (:func:`compile_programs`): data parallelism is ``jit`` over a
:class:`jax.sharding.Mesh` with one ``data`` axis: the batch is sharded along it, parameters and
optimiser state are replicated, and XLA inserts the gradient all-reduce. With one device the
plain (unsharded) path is used. In a multi-process run each process feeds only its own rows of
every batch (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from neuraleq_jax.config import TrainConfig
from neuraleq_jax.model import losses, networks, paramspace, response
from neuraleq_jax.model.paramspace import EQLayout

# fold_in tags that keep the streams of one seed apart
INIT_STREAM, SHUFFLE_STREAM, DROPOUT_STREAM = 0, 1, 2


@flax.struct.dataclass
class TrainState:
    """Optimiser steps done (int32 scalar), model parameters and optimiser state."""

    step: jax.Array
    params: Any
    opt_state: Any


def make_optimizer(train_config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam with the configured learning-rate schedule and optional global-norm clipping."""
    total = max(1, train_config.epochs * steps_per_epoch)
    lr = train_config.learning_rate
    if train_config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(lr, decay_steps=total)
    elif train_config.schedule == "warmup_cosine":
        warmup = min(train_config.warmup_epochs * steps_per_epoch, total - 1)
        lr = optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=warmup, decay_steps=total)
    adam = optax.adam(lr)
    if train_config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(train_config.grad_clip), adam)
    return adam


def init_state(
    model_config: networks.ModelConfig, tx: optax.GradientTransformation, seed: int
) -> TrainState:
    """Fresh parameters (from ``seed``) and optimiser state at step 0."""
    params = networks.init_params(
        model_config, jax.random.fold_in(jax.random.key(seed), INIT_STREAM)
    )
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def shuffle_freq_q(key, x_unit_BxP, layout: EQLayout):
    """Settings ``[B, P]`` whose band ``b`` takes its frequency and Q from row ``π_b(i)`` of the
    batch (``π_b`` a random permutation per band); gains stay in place."""
    batch = x_unit_BxP.shape[0]
    perms_NxB = jax.vmap(lambda k: jax.random.permutation(k, batch))(
        jax.random.split(key, layout.n_bands)
    )
    source_BxP = jnp.zeros(x_unit_BxP.shape, jnp.int32) + jnp.arange(batch)[:, None]
    for band, (freq, q) in enumerate(zip(layout.freq_indices, layout.q_indices)):
        source_BxP = source_BxP.at[:, freq].set(perms_NxB[band]).at[:, q].set(perms_NxB[band])
    return jnp.take_along_axis(x_unit_BxP, source_BxP, axis=0)


def train_step(
    state: TrainState,
    x_unit_BxP,
    labels_B,
    *,
    tx: optax.GradientTransformation,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    layout: EQLayout,
    batch_sharding=None,
) -> tuple[TrainState, dict]:
    """One optimiser step on a (global) batch; pure. Dropout keys come from the step count."""
    if batch_sharding is not None:
        x_unit_BxP = jax.lax.with_sharding_constraint(x_unit_BxP, batch_sharding)
        labels_B = jax.lax.with_sharding_constraint(labels_B, batch_sharding)
    step_key = jax.random.fold_in(
        jax.random.fold_in(jax.random.key(train_config.seed), DROPOUT_STREAM), state.step
    )
    dropout_key, noise_key, shuffle_key = jax.random.split(step_key, 3)
    if train_config.augment_shuffle_freq_q:
        x_unit_BxP = shuffle_freq_q(shuffle_key, x_unit_BxP, layout)
    if train_config.augment_noise > 0:
        # jitter in the unit space: more distinct settings per word, so the autoencoder learns
        # a map that generalises instead of memorising the few hundred training settings
        noise_BxP = train_config.augment_noise * jax.random.normal(noise_key, x_unit_BxP.shape)
        x_unit_BxP = jnp.clip(x_unit_BxP + noise_BxP, -1.0, 1.0)

    def loss_fn(params):
        return losses.total_loss(
            params,
            x_unit_BxP,
            labels_B,
            model_config=model_config,
            contrastive_weight=train_config.contrastive_weight,
            temperature=train_config.temperature,
            response_weight=train_config.response_weight,
            cluster_weight=train_config.cluster_weight,
            layout=layout,
            train=True,
            dropout_key=dropout_key,
        )

    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def train_epoch(state: TrainState, x_unit_TxBxP, labels_TxB, **step_kwargs):
    """``T`` train steps in one ``lax.scan``; metrics come back stacked, each ``[T]``."""

    def body(carry, batch):
        return train_step(carry, *batch, **step_kwargs)

    return jax.lax.scan(body, state, (x_unit_TxBxP, labels_TxB))


def evaluate_batch(
    params,
    x_unit_NxP,
    labels_N,
    *,
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    layout: EQLayout,
) -> dict:
    """Deterministic losses of a set (one batch) and its latents ``[N, L]``.

    :func:`fit` and :func:`evaluate_dataset` call it on chunks of at most :data:`EVAL_CHUNK`
    settings and average (:func:`combine_chunks`): for a larger set the pairwise terms
    (``contrastive``, ``cluster`` and so ``loss``) are means over chunks, the others are exact.

    Returns scalars ``loss``, ``recon``, ``response``, ``contrastive``, ``cluster``, ``recon_gain``,
    ``recon_freq``, ``recon_q`` (unit-space MSE of each field), ``response_db`` (mean over
    settings of the RMS dB error of the reconstruction's response), and ``latents``: the
    latents' semantic part ``[N, S]`` (:func:`networks.semantic_part`), which the silhouette is
    measured on.
    """
    latent_NxL, embedding_NxE, recon_NxP = networks.apply(params, model_config, x_unit_NxP)
    recon = losses.reconstruction_loss(recon_NxP, x_unit_NxP)
    contrastive = losses.supervised_contrastive_loss(
        embedding_NxE, labels_N, train_config.temperature
    )
    resp = losses.response_loss(recon_NxP, x_unit_NxP, layout=layout)
    semantic_NxS = networks.semantic_part(latent_NxL, model_config)
    cluster = 1.0 - losses.batch_silhouette(semantic_NxS, labels_N)
    recon_db_NxF = response.magnitude_response_db(
        paramspace.denormalize(recon_NxP, layout), layout=layout
    )
    target_db_NxF = response.magnitude_response_db(
        paramspace.denormalize(x_unit_NxP, layout), layout=layout
    )
    squared_NxP = (recon_NxP - x_unit_NxP) ** 2
    return {
        "loss": losses.weighted_sum(
            recon,
            resp,
            contrastive,
            cluster,
            response_weight=train_config.response_weight,
            contrastive_weight=train_config.contrastive_weight,
            cluster_weight=train_config.cluster_weight,
        ),
        "recon": recon,
        "response": resp,
        "contrastive": contrastive,
        "cluster": cluster,
        "recon_gain": squared_NxP[:, layout.gain_indices].mean(),
        "recon_freq": squared_NxP[:, layout.freq_indices].mean(),
        "recon_q": squared_NxP[:, layout.q_indices].mean(),
        "response_db": response.rms_db(recon_db_NxF, target_db_NxF).mean(),
        "latents": semantic_NxS,
    }


@functools.partial(jax.jit, static_argnames=("n",))
def _permutations(key, epochs_E, n: int):
    return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(epochs_E)


def epoch_orders(seed: int, epochs: int, n: int) -> np.ndarray:
    """Shuffled row order of every epoch, ``[epochs, n]``: permutation(fold_in(key, epoch))."""
    key = jax.random.fold_in(jax.random.key(seed), SHUFFLE_STREAM)
    with jax.default_device(jax.local_devices()[0]):
        orders = _permutations(key, jnp.arange(epochs), n)
    return np.asarray(orders)


# ---------------------------------------------------------------- the compiled programs


class Programs(NamedTuple):
    """Jitted programs of one run, placed on ``mesh`` (None: the plain one-device path).

    ``init()`` → state; ``step(state, x_BxP, y_B)``; ``epoch(state, x_TxBxP, y_TxB)``;
    ``evaluate(params, x_NxP, y_N)``; ``put(array, kind)`` places host data (``kind`` is
    ``"batch"``, ``"epoch"`` or ``"replicated"``) as a global array on the mesh.
    """

    init: Callable
    step: Callable
    epoch: Callable
    evaluate: Callable
    put: Callable
    mesh: Mesh | None
    state_sharding: jax.sharding.Sharding
    executables: dict  # ahead-of-time compiled programs, by input shapes (reused across fits)


def _local_slice(sharding: jax.sharding.Sharding, shape: tuple[int, ...], axis: int) -> slice:
    """The contiguous range along ``axis`` that this process's devices hold."""
    indices = sharding.addressable_devices_indices_map(shape).values()
    starts = [index[axis].start or 0 for index in indices]
    stops = [shape[axis] if index[axis].stop is None else index[axis].stop for index in indices]
    return slice(min(starts), max(stops))


def compile_programs(
    model_config: networks.ModelConfig,
    train_config: TrainConfig,
    layout: EQLayout,
    *,
    steps_per_epoch: int,
    mesh: Mesh | None = None,
) -> Programs:
    """Build the jitted init/step/epoch/evaluate programs for ``mesh``.

    With a mesh of more than one device the batch axis is sharded over ``data`` and the state
    replicated; a global batch that the device count does not divide raises ValueError.
    Programs are cached by their arguments, so a resumed or repeated run compiles nothing.
    """
    if mesh is not None:
        check_batch_divides(train_config.batch_size, mesh.size)
    return _compile_programs(model_config, train_config, layout, steps_per_epoch, mesh)


def check_batch_divides(batch_size: int, n_devices: int) -> None:
    if n_devices > 1 and batch_size % n_devices:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {n_devices} devices of the "
            f"'data' mesh axis; use a multiple of {n_devices} or fewer devices (train.devices)"
        )


@functools.lru_cache(maxsize=16)
def _compile_programs(model_config, train_config, layout, steps_per_epoch, mesh) -> Programs:
    tx = make_optimizer(train_config, steps_per_epoch)
    static = dict(model_config=model_config, train_config=train_config, layout=layout)
    if mesh is None or mesh.size == 1:
        device = mesh.devices.flat[0] if mesh is not None else jax.local_devices()[0]
        return _single_device_programs(tx, static, device)
    return _mesh_programs(tx, static, mesh)


def _single_device_programs(tx, static: dict, device) -> Programs:
    single = jax.sharding.SingleDeviceSharding(device)
    train_config = static["train_config"]
    return Programs(
        init=jax.jit(
            lambda: init_state(static["model_config"], tx, train_config.seed),
            out_shardings=single,
        ),
        step=jax.jit(lambda s, x, y: train_step(s, x, y, tx=tx, **static)),
        epoch=jax.jit(lambda s, x, y: train_epoch(s, x, y, tx=tx, **static)),
        evaluate=jax.jit(lambda p, x, y: evaluate_batch(p, x, y, **static)),
        put=lambda array, kind: jax.device_put(array, single),
        mesh=None,
        state_sharding=single,
        executables={},
    )


def _placer(mesh: Mesh) -> Callable:
    """``put(array, kind)`` for ``mesh``: the batch axis sharded over ``data`` for ``"batch"``
    (axis 0) and ``"epoch"`` (axis 1), the whole array on every device for ``"replicated"``."""
    shardings = {
        "batch": (NamedSharding(mesh, P("data")), 0),
        "epoch": (NamedSharding(mesh, P(None, "data")), 1),
        "replicated": (NamedSharding(mesh, P()), None),
    }

    def put(array, kind: str):
        sharding, axis = shardings[kind]
        array = np.asarray(array)
        if jax.process_count() == 1:
            return jax.device_put(array, sharding)
        if axis is not None:  # each process hands over only the rows its devices hold
            rows = _local_slice(sharding, array.shape, axis)
            local = array[(slice(None),) * axis + (rows,)]
        else:
            local = array
        return jax.make_array_from_process_local_data(sharding, local, array.shape)

    return put


def _mesh_programs(tx, static: dict, mesh: Mesh) -> Programs:
    replicated = NamedSharding(mesh, P())
    batch_sh, epoch_sh = NamedSharding(mesh, P("data")), NamedSharding(mesh, P(None, "data"))
    train_config = static["train_config"]
    step = lambda s, x, y: train_step(s, x, y, tx=tx, batch_sharding=batch_sh, **static)
    epoch = lambda s, x, y: train_epoch(s, x, y, tx=tx, batch_sharding=batch_sh, **static)
    return Programs(
        init=jax.jit(
            lambda: init_state(static["model_config"], tx, train_config.seed),
            out_shardings=replicated,
        ),
        step=jax.jit(
            step,
            in_shardings=(replicated, batch_sh, batch_sh),
            out_shardings=(replicated, replicated),
        ),
        epoch=jax.jit(
            epoch,
            in_shardings=(replicated, epoch_sh, epoch_sh),
            out_shardings=(replicated, replicated),
        ),
        evaluate=jax.jit(
            lambda p, x, y: evaluate_batch(p, x, y, **static),
            in_shardings=(replicated, replicated, replicated),
            out_shardings=replicated,
        ),
        put=_placer(mesh),
        mesh=mesh,
        state_sharding=replicated,
        executables={},
    )
