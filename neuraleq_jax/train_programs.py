"""The compiled programs of a training run, placed on a device mesh.

Data parallelism is ``jit`` over a :class:`jax.sharding.Mesh` with one ``data`` axis: the batch
is sharded along it, parameters and optimiser state are replicated, and XLA inserts the
gradient all-reduce. With one device the plain (unsharded) path is used. In a multi-process run
each process feeds only its own rows of every batch (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from neuraleq_jax import models
from neuraleq_jax.config import TrainConfig
from neuraleq_jax.paramspace import EQLayout
from neuraleq_jax.sharding import make_mesh as make_mesh
from neuraleq_jax.train_steps import (
    evaluate_batch,
    init_state,
    make_optimizer,
    train_epoch,
    train_step,
)


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
