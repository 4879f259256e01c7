"""Training: optax Adam in a train state, a data-parallel jitted step, whole epochs in one scan.

Stages of :func:`fit`, top to bottom: check inputs → mesh → optimiser and compiled programs →
state (fresh, or restored from the newest checkpoint) → ahead-of-time compile → epoch loop.

Data parallelism is ``jit`` over a :class:`jax.sharding.Mesh` with one ``data`` axis: the batch
is sharded along it, parameters and optimiser state are replicated, and XLA inserts the
gradient all-reduce. With one device the plain (unsharded) path is used. Each epoch runs as one
compiled ``lax.scan`` over its batches; the loop dispatches epoch ``e`` and only then reads the
metrics of epoch ``e - 1``, so logging never stalls the device. In a multi-process run each
process feeds only its own rows of every batch (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from neuraleq_jax import checkpoints, losses, models, paramspace, response
from neuraleq_jax import workdir as workdir_lib
from neuraleq_jax.config import TrainConfig
from neuraleq_jax.data import EQDataset
from neuraleq_jax.paramspace import EQLayout

METRICS_FILE = "metrics.jsonl"
# settings per evaluation call: the contrastive and cluster terms hold [N, N] pairwise arrays
# (a 60k-setting validation set would need ~70 GB at once)
EVAL_CHUNK = 4096
# fold_in tags that keep the streams of one seed apart
_INIT, _SHUFFLE, _DROPOUT = 0, 1, 2


@flax.struct.dataclass
class TrainState:
    """Optimiser steps done (int32 scalar), model parameters and optimiser state."""

    step: jax.Array
    params: Any
    opt_state: Any


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes:
      params: trained parameters.
      history: one dict per epoch (the lines of ``metrics.jsonl``).
      model_config, train_config: the configs used.
      state: the final :class:`TrainState` (optimiser state included).
      epochs_done: epochs completed (counting those restored from a checkpoint).
      timings: ``compile_s`` (ahead-of-time compile) and ``train_s`` (the epoch loop).
      interrupted: training stopped because ``stop_requested`` said so (a checkpoint of the
        last finished epoch was saved when there is a workdir).
    """

    params: Any
    history: list[dict]
    model_config: models.ModelConfig
    train_config: TrainConfig
    state: TrainState | None = None
    epochs_done: int = 0
    timings: dict = dataclasses.field(default_factory=dict)
    interrupted: bool = False


# ------------------------------------------------------------------ mesh and optimiser


def make_mesh(n_devices: int = 0, devices=None) -> Mesh:
    """A 1-D mesh with axis ``data`` over the first ``n_devices`` devices (0: all of them)."""
    devices = list(jax.devices() if devices is None else devices)
    if n_devices:
        if n_devices > len(devices):
            raise ValueError(
                f"asked for {n_devices} devices but only {len(devices)} are "
                f"available ({devices[0].platform})"
            )
        devices = devices[:n_devices]
    return Mesh(np.array(devices), ("data",))


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


# ------------------------------------------------------------------ pure step functions


def init_state(
    model_config: models.ModelConfig, tx: optax.GradientTransformation, seed: int
) -> TrainState:
    """Fresh parameters (from ``seed``) and optimiser state at step 0."""
    params = models.init_params(model_config, jax.random.fold_in(jax.random.key(seed), _INIT))
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
    model_config: models.ModelConfig,
    train_config: TrainConfig,
    layout: EQLayout,
    batch_sharding=None,
) -> tuple[TrainState, dict]:
    """One optimiser step on a (global) batch; pure. Dropout keys come from the step count."""
    if batch_sharding is not None:
        x_unit_BxP = jax.lax.with_sharding_constraint(x_unit_BxP, batch_sharding)
        labels_B = jax.lax.with_sharding_constraint(labels_B, batch_sharding)
    step_key = jax.random.fold_in(
        jax.random.fold_in(jax.random.key(train_config.seed), _DROPOUT), state.step
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
    model_config: models.ModelConfig,
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
    latents' semantic part ``[N, S]`` (:func:`models.semantic_part`), which the silhouette is
    measured on.
    """
    latent_NxL, embedding_NxE, recon_NxP = models.apply(params, model_config, x_unit_NxP)
    recon = losses.reconstruction_loss(recon_NxP, x_unit_NxP)
    contrastive = losses.supervised_contrastive_loss(
        embedding_NxE, labels_N, train_config.temperature
    )
    resp = losses.response_loss(recon_NxP, x_unit_NxP, layout=layout)
    semantic_NxS = models.semantic_part(latent_NxL, model_config)
    cluster = 1.0 - losses.batch_silhouette(semantic_NxS, labels_N)
    recon_db_NxF = response.magnitude_response_db(
        paramspace.denormalize(recon_NxP, layout), layout=layout
    )
    target_db_NxF = response.magnitude_response_db(
        paramspace.denormalize(x_unit_NxP, layout), layout=layout
    )
    squared_NxP = (recon_NxP - x_unit_NxP) ** 2
    return {
        "loss": recon
        + train_config.response_weight * resp
        + train_config.contrastive_weight * contrastive
        + train_config.cluster_weight * cluster,
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


# ------------------------------------------------------------------ compiled programs


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
    model_config: models.ModelConfig,
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
        _check_batch_divides(train_config.batch_size, mesh.size)
    return _compile_programs(model_config, train_config, layout, steps_per_epoch, mesh)


def _check_batch_divides(batch_size: int, n_devices: int) -> None:
    if n_devices > 1 and batch_size % n_devices:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {n_devices} devices of the "
            f"'data' mesh axis; use a multiple of {n_devices} or fewer devices (train.devices)"
        )


@functools.lru_cache(maxsize=16)
def _compile_programs(model_config, train_config, layout, steps_per_epoch, mesh) -> Programs:
    tx = make_optimizer(train_config, steps_per_epoch)
    static = dict(model_config=model_config, train_config=train_config, layout=layout)
    init = lambda: init_state(model_config, tx, train_config.seed)
    evaluate = lambda p, x, y: evaluate_batch(p, x, y, **static)
    if mesh is None or mesh.size == 1:
        device = mesh.devices.flat[0] if mesh is not None else jax.local_devices()[0]
        single = jax.sharding.SingleDeviceSharding(device)
        step = lambda s, x, y: train_step(s, x, y, tx=tx, **static)
        epoch = lambda s, x, y: train_epoch(s, x, y, tx=tx, **static)
        return Programs(
            init=jax.jit(init, out_shardings=single),
            step=jax.jit(step),
            epoch=jax.jit(epoch),
            evaluate=jax.jit(evaluate),
            put=lambda array, kind: jax.device_put(array, single),
            mesh=None,
            state_sharding=single,
            executables={},
        )

    replicated = NamedSharding(mesh, P())
    batch_sh, epoch_sh = NamedSharding(mesh, P("data")), NamedSharding(mesh, P(None, "data"))
    step = lambda s, x, y: train_step(s, x, y, tx=tx, batch_sharding=batch_sh, **static)
    epoch = lambda s, x, y: train_epoch(s, x, y, tx=tx, batch_sharding=batch_sh, **static)
    shardings = {"batch": (batch_sh, 0), "epoch": (epoch_sh, 1), "replicated": (replicated, None)}

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

    return Programs(
        init=jax.jit(init, out_shardings=replicated),
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
            evaluate, in_shardings=(replicated, replicated, replicated), out_shardings=replicated
        ),
        put=put,
        mesh=mesh,
        state_sharding=replicated,
        executables={},
    )


@functools.partial(jax.jit, static_argnames=("n",))
def _permutations(key, epochs_E, n: int):
    return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e), n))(epochs_E)


def epoch_orders(seed: int, epochs: int, n: int) -> np.ndarray:
    """Shuffled row order of every epoch, ``[epochs, n]``: permutation(fold_in(key, epoch))."""
    key = jax.random.fold_in(jax.random.key(seed), _SHUFFLE)
    with jax.default_device(jax.local_devices()[0]):
        orders = _permutations(key, jnp.arange(epochs), n)
    return np.asarray(orders)


# ------------------------------------------------------------------ fit


def _check_inputs(
    train_ds: EQDataset,
    val_ds: EQDataset | None,
    model_config: models.ModelConfig,
    train_config: TrainConfig,
) -> None:
    if not isinstance(train_ds, EQDataset):
        raise TypeError(f"train_ds must be an EQDataset, got {type(train_ds).__name__}")
    if train_ds.layout.n_bands != model_config.n_bands:
        raise ValueError(
            f"the data has {train_ds.layout.n_bands} bands but the model "
            f"expects {model_config.n_bands} (model.n_bands)"
        )
    if len(train_ds) < train_config.batch_size:
        raise ValueError(
            f"the training set has {len(train_ds)} settings, fewer than one batch "
            f"(batch_size {train_config.batch_size}); lower train.batch_size"
        )
    words = np.unique(train_ds.word_ids)
    if len(words) < 2:
        raise ValueError(
            "contrastive training needs settings of at least 2 words; the training "
            f"set has only {[train_ds.vocabulary[i] for i in words]}"
        )
    if not np.all(np.isfinite(train_ds.settings)):
        raise ValueError("the training settings contain NaN or Inf")
    if val_ds is not None:
        if tuple(val_ds.vocabulary) != tuple(train_ds.vocabulary):
            raise ValueError("val_ds must share the training vocabulary (same words, same order)")
        if val_ds.layout != train_ds.layout:
            raise ValueError("val_ds must share the training layout")
        if len(val_ds) < 2:
            raise ValueError(f"val_ds needs at least 2 settings, got {len(val_ds)}")


def check_run(
    train_ds: EQDataset,
    val_ds: EQDataset | None,
    model_config: models.ModelConfig,
    train_config: TrainConfig,
) -> None:
    """Everything :func:`fit` would refuse, checked without compiling or writing anything:
    the data (at least 2 words, one batch, finite, validation set compatible), the device count
    and the batch size's split over it. Raises ValueError (TypeError for a non-dataset)."""
    _check_inputs(train_ds, val_ds, model_config, train_config)
    available = jax.device_count()
    if train_config.devices > available:
        raise ValueError(
            f"train.devices asks for {train_config.devices} devices but only "
            f"{available} are available ({jax.devices()[0].platform})"
        )
    _check_batch_divides(train_config.batch_size, train_config.devices or available)


def _host_metrics(metrics: dict) -> dict[str, np.ndarray]:
    return {k: checkpoints.host_array(v) for k, v in metrics.items()}


def eval_slices(n: int, chunk: int | None = None) -> list[slice]:
    """Consecutive slices covering ``n`` rows, at most ``chunk`` (default :data:`EVAL_CHUNK`)
    each, their sizes differing by at most one (so a set of any size compiles at most two
    evaluation shapes)."""
    chunk = EVAL_CHUNK if chunk is None else chunk
    parts = max(1, -(-int(n) // int(chunk)))
    base, extra = divmod(int(n), parts)
    bounds = np.cumsum([0] + [base + (i < extra) for i in range(parts)])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def combine_chunks(chunks: Sequence[dict]) -> dict[str, np.ndarray]:
    """Host metrics of a set evaluated in chunks (:func:`evaluate_batch` outputs): scalars
    averaged with the chunks' sizes as weights, latents concatenated. One chunk is returned as
    it is."""
    host = [_host_metrics(chunk) for chunk in chunks]
    if len(host) == 1:
        return host[0]
    sizes = [len(h["latents"]) for h in host]
    out = {k: np.average([h[k] for h in host], weights=sizes) for k in host[0] if k != "latents"}
    out["latents"] = np.concatenate([h["latents"] for h in host])
    return out


def _silhouette(latents_NxL: np.ndarray, labels_N: np.ndarray) -> float | None:
    from neuraleq_jax.evaluation import silhouette_score

    if not 2 <= len(np.unique(labels_N)) <= len(labels_N) - 1:
        return None
    return float(silhouette_score(latents_NxL, labels_N))


def _read_history(path: Path, before_epoch: int) -> list[dict]:
    return [r for r in workdir_lib.read_metrics(path) if r.get("epoch", 0) <= before_epoch]


def _write_history(path: Path, history: list[dict]) -> None:
    checkpoints.atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in history))


def _append_line(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def fit(
    train_ds: EQDataset,
    model_config: models.ModelConfig,
    train_config: TrainConfig,
    *,
    val_ds: EQDataset | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
    mesh: Mesh | None = None,
    on_epoch_end: Callable[[dict], bool | None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
    metadata: dict | None = None,
) -> TrainResult:
    """Train the model on ``train_ds``; resume from ``workdir``'s newest checkpoint if present.

    Args:
      train_ds: labelled settings (at least 2 words, at least one batch).
      model_config, train_config: architecture and optimisation settings.
      val_ds: optional validation set: per-epoch loss, silhouette and response error.
      workdir: folder for checkpoints and ``metrics.jsonl`` (None: keep nothing on disk).
      progress: show a tqdm bar with the running loss.
      mesh: the device mesh (default: ``train_config.devices`` devices on axis ``data``).
      on_epoch_end: called with each epoch's record; returning True stops training there
        (the state after that epoch is returned; what was not checkpointed is not saved).
      stop_requested: polled before each epoch is dispatched; once it returns True no new
        epoch starts, the one running is finished and checkpointed, and the result has
        ``interrupted=True`` (how a signal handler stops a run without losing epochs).
      metadata: extra JSON-ready values stored in every checkpoint's meta.

    Returns:
      A :class:`TrainResult`. Raises FloatingPointError as soon as a loss is NaN or Inf.
    """
    # ---- inputs
    _check_inputs(train_ds, val_ds, model_config, train_config)
    layout, tc = train_ds.layout, train_config
    n_train = len(train_ds)
    steps_per_epoch = n_train // tc.batch_size  # the remainder rotates, as the order reshuffles

    # ---- mesh, optimiser, programs
    mesh = make_mesh(tc.devices) if mesh is None else mesh
    programs = compile_programs(
        model_config, tc, layout, steps_per_epoch=steps_per_epoch, mesh=mesh
    )
    x_unit_NxP = train_ds.normalized()
    labels_N = train_ds.word_ids.astype(np.int32)
    orders_ExN = epoch_orders(tc.seed, tc.epochs, n_train)
    if val_ds is not None:  # in chunks: the pairwise loss terms need memory ∝ rows²
        val_x_NxP, val_y_N = val_ds.normalized(), val_ds.word_ids.astype(np.int32)
        val_parts = [
            (programs.put(val_x_NxP[rows], "replicated"), programs.put(val_y_N[rows], "replicated"))
            for rows in eval_slices(len(val_ds))
        ]

    def epoch_batches(epoch: int):
        rows_TxB = orders_ExN[epoch, : steps_per_epoch * tc.batch_size].reshape(
            steps_per_epoch, tc.batch_size
        )
        return (
            programs.put(x_unit_NxP[rows_TxB], "epoch"),
            programs.put(labels_N[rows_TxB], "epoch"),
        )

    # ---- state: fresh or restored
    primary = jax.process_index() == 0
    store, history, start_epoch = None, [], 0
    meta = {
        "model_config": json.loads(json.dumps(dataclasses.asdict(model_config))),
        "train_config": dataclasses.asdict(tc),
        "vocabulary": list(train_ds.vocabulary),
        "layout": paramspace.layout_to_json(layout),
        **(metadata or {}),
    }
    state = programs.init()
    if workdir is not None:
        workdir = Path(workdir)
        if primary:
            workdir.mkdir(parents=True, exist_ok=True)
        store = checkpoints.TrainingCheckpoints(
            workdir, keep=tc.keep_checkpoints, metric="val_loss" if val_ds else "train_loss"
        )
        latest = store.latest_epoch()
        if latest is not None:
            target = checkpoints.abstract_like(state, programs.state_sharding)
            try:
                state, saved = store.restore(latest, target)
                if saved.get("model_config") != meta["model_config"]:
                    raise ValueError(
                        f"the checkpoint in {store.directory} was trained with another model "
                        f"config ({saved.get('model_config')}); use a new workdir"
                    )
            except BaseException:
                store.close()
                raise
            start_epoch = min(latest, tc.epochs)
            history = _read_history(workdir / METRICS_FILE, start_epoch)
            if primary:
                _write_history(workdir / METRICS_FILE, history)
        elif primary:
            _write_history(workdir / METRICS_FILE, [])

    # ---- ahead-of-time compile, timed apart from training
    t0 = time.perf_counter()
    x0, y0 = epoch_batches(min(start_epoch, tc.epochs - 1))
    cache = programs.executables
    if ("epoch", x0.shape) not in cache:
        cache["epoch", x0.shape] = programs.epoch.lower(state, x0, y0).compile()
    epoch_fn = cache["epoch", x0.shape]
    if val_ds is not None:
        for val_x, val_y in val_parts:
            if ("eval", val_x.shape) not in cache:
                cache["eval", val_x.shape] = programs.evaluate.lower(
                    state.params, val_x, val_y
                ).compile()

    def evaluate_val(params):
        """Dispatch the validation chunks (asynchronously; combined on the host later)."""
        return [cache["eval", x.shape](params, x, y) for x, y in val_parts]

    compile_s = time.perf_counter() - t0

    bar = None
    if progress and primary:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.epochs, initial=start_epoch, desc="training", unit="epoch")

    def finish(
        epoch: int, state_e: TrainState, step_metrics, val_metrics, *, checkpoint: bool = False
    ) -> bool:
        """Host side of epoch ``epoch``: NaN check, validation, log, checkpoint (when due, or
        ``checkpoint``). True = stop."""
        host = _host_metrics(step_metrics)
        if not np.all(np.isfinite(host["loss"])):
            bad = int(np.argmin(np.isfinite(host["loss"])))
            parts = {k: float(v[bad]) for k, v in host.items()}
            raise FloatingPointError(
                f"non-finite loss at epoch {epoch + 1}, step {bad + 1} of the epoch: {parts}. "
                f"Lower train.learning_rate, set train.grad_clip, or check the data."
            )
        record = {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch}
        record.update({f"train_{k}": float(np.mean(v)) for k, v in host.items()})
        if val_metrics is not None:
            val = combine_chunks(val_metrics)
            latents = val.pop("latents")
            record.update({f"val_{k}": float(v) for k, v in val.items()})
            record["val_silhouette"] = _silhouette(latents, val_ds.word_ids)
        record["elapsed_s"] = time.perf_counter() - t_start
        history.append(record)
        if workdir is not None and primary:
            _append_line(workdir / METRICS_FILE, record)
        done = epoch + 1
        if store is not None and (
            checkpoint or done % tc.checkpoint_every == 0 or done == tc.epochs
        ):
            key = "val_loss" if val_ds else "train_loss"
            store.save(done, state_e, meta, {key: record[key]})
        if bar is not None:
            postfix = {"loss": f"{record['train_loss']:.4f}"}
            if val_metrics is not None:
                postfix["val"] = f"{record['val_loss']:.4f}"
                if record["val_silhouette"] is not None:
                    postfix["sil"] = f"{record['val_silhouette']:.3f}"
            bar.set_postfix(postfix)
            bar.update(1)
        return bool(on_epoch_end(record)) if on_epoch_end is not None else False

    # ---- the loop: dispatch epoch e, then do the host work of epoch e - 1
    t_start = time.perf_counter()
    pending, finished_state, epochs_done, interrupted = None, state, start_epoch, False
    try:
        for epoch in range(start_epoch, tc.epochs):
            if stop_requested is not None and stop_requested():
                interrupted = True
                break
            x_TxBxP, y_TxB = epoch_batches(epoch)
            new_state, step_metrics = epoch_fn(state, x_TxBxP, y_TxB)
            val_metrics = evaluate_val(new_state.params) if val_ds else None
            if pending is not None:
                stop = finish(*pending)
                finished_state, epochs_done = pending[1], pending[0] + 1
                if stop:
                    pending = None
                    break
            pending = (epoch, new_state, step_metrics, val_metrics)
            state = new_state
        if pending is not None:
            finish(*pending, checkpoint=interrupted)
            finished_state, epochs_done = pending[1], pending[0] + 1
        jax.block_until_ready(finished_state)
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()
    train_s = time.perf_counter() - t_start
    return TrainResult(
        params=finished_state.params,
        history=history,
        model_config=model_config,
        train_config=tc,
        state=finished_state,
        epochs_done=epochs_done,
        interrupted=interrupted,
        timings={
            "compile_s": compile_s,
            "train_s": train_s,
            "epochs_run": epochs_done - start_epoch,
            "steps_per_epoch": steps_per_epoch,
        },
    )


# ------------------------------------------------------------------ held-out evaluation


def evaluate_dataset(
    params,
    model_config: models.ModelConfig,
    train_config: TrainConfig,
    dataset: EQDataset,
    *,
    reference_ds: EQDataset | None = None,
) -> dict:
    """Held-out figures of ``dataset``: losses, per-field unit MSE, response error (RMS dB),
    latent silhouette; with ``reference_ds`` (the training set) also the unit MSE of always
    predicting its mean, per field (``mean_baseline_gain/freq/q``)."""
    chex.assert_equal(dataset.layout.n_bands, model_config.n_bands)
    layout = dataset.layout
    x_unit = dataset.normalized()
    params = jax.tree.map(checkpoints.host_array, params)
    evaluate = jax.jit(
        lambda p, x, y: evaluate_batch(
            p, x, y, model_config=model_config, train_config=train_config, layout=layout
        )
    )
    ids = dataset.word_ids.astype(np.int32)
    out = combine_chunks(
        [evaluate(params, x_unit[rows], ids[rows]) for rows in eval_slices(len(dataset))]
    )
    latents = out.pop("latents")
    figures = {k: float(v) for k, v in out.items()}
    figures["silhouette"] = _silhouette(latents, dataset.word_ids)
    if reference_ds is not None:
        mean_P = reference_ds.normalized().mean(axis=0)
        squared = (x_unit - mean_P) ** 2
        for field, index in (
            ("gain", layout.gain_indices),
            ("freq", layout.freq_indices),
            ("q", layout.q_indices),
        ):
            figures[f"mean_baseline_{field}"] = float(squared[:, index].mean())
    return figures
