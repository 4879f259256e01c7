"""Meshes, device placement and row tiling for large batches.

Decoding a large batch in one piece streams every layer's ``[N, 256]`` activations through main
memory, and the decoder's matmuls then run at memory speed. From two tiles' worth on, a CPU cuts
the rows into tiles that one ``lax.map`` walks through, so a tile's activations stay in cache
(about twice the throughput; XLA's intra-op threads still use every core). Accelerators instead
split the rows across the local devices, one tile per device: they want the whole batch in each
matmul. CPU "devices" (``jax_num_cpu_devices``) share the same cores, bring no speed, and some
programs split across them deadlock in XLA's CPU runtime, so a CPU batch stays on one device.
Small batches keep the plain path, so serving latency is untouched.

A :class:`BatchPlan` says how one batch is laid out; :func:`over_rows` runs a function over the
rows of a pytree by that plan, and :func:`place` puts the inputs where the plan's mesh needs them.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"  # the one mesh axis: rows (a batch) are split along it
CPU_TILE = 2_048  # settings per tile on a CPU: [2048, 256] float32 is 2 MB, one L2
LARGE_BATCH = 4_096  # CPU: settings per call from which rows are tiled (two tiles)
ACCELERATOR_SPLIT = 65_536  # accelerators: settings per call from which rows are split


def make_mesh(n_devices: int = 0, devices=None) -> Mesh:
    """A 1-D mesh with axis ``data`` over the first ``n_devices`` of ``devices`` (default
    ``jax.devices()``; ``n_devices`` 0: all of them)."""
    devices = list(jax.devices() if devices is None else devices)
    if n_devices:
        if n_devices > len(devices):
            raise ValueError(
                f"asked for {n_devices} devices but only {len(devices)} are "
                f"available ({devices[0].platform})"
            )
        devices = devices[:n_devices]
    return Mesh(np.array(devices), (DATA_AXIS,))


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How a large batch is laid out (hashable: a static jit argument).

    Attributes:
      mesh: a 1-D ``data`` mesh over the local devices, or None for one device.
      row_tile: rows (of ``row_size`` settings each) per tile.
      decode_tile: settings per decoder tile when one row alone is larger than a tile, else
        None.
    """

    mesh: Mesh | None
    row_tile: int
    decode_tile: int | None


def large_batch_plan(n_rows: int, row_size: int = 1, *, devices=None) -> BatchPlan | None:
    """How to lay out ``n_rows`` rows of ``row_size`` settings each, or None for the plain path.

    CPU: from ``LARGE_BATCH`` settings on, whole rows in tiles of about ``CPU_TILE`` settings
    (a row larger than that is decoded in tiles inside). Accelerators: from ``ACCELERATOR_SPLIT``
    settings on, rows split across the local devices (default ``jax.local_devices()``), one tile
    per device; one device keeps the plain path.
    """
    n_rows, row_size = int(n_rows), int(row_size)
    devices = list(jax.local_devices() if devices is None else devices)
    if devices[0].platform == "cpu":
        if n_rows * row_size < LARGE_BATCH:
            return None
        return BatchPlan(
            mesh=None,
            row_tile=max(1, min(n_rows, CPU_TILE // row_size)),
            decode_tile=CPU_TILE if row_size > CPU_TILE else None,
        )
    if n_rows * row_size < ACCELERATOR_SPLIT or n_rows < len(devices) or len(devices) < 2:
        return None
    return BatchPlan(
        mesh=make_mesh(devices=devices),
        row_tile=-(-n_rows // len(devices)),
        decode_tile=None,
    )


def pad_rows(tree, n_rows: int, padded: int):
    """Every array of ``tree`` padded along axis 0 from ``n_rows`` to ``padded`` rows by
    repeating the last row (a gather, which also works for typed PRNG keys)."""
    if padded == n_rows:
        return tree
    index = jnp.minimum(jnp.arange(padded), n_rows - 1)
    return jax.tree_util.tree_map(lambda x: x[index], tree)


def map_tiles(fn, rows, tile: int):
    """``fn`` over the leading axis of the pytree ``rows`` in tiles of ``tile`` rows (one
    ``lax.map``; the last tile is padded and the padding dropped). Returns ``fn``'s pytree."""
    n_rows = jax.tree_util.tree_leaves(rows)[0].shape[0]
    if n_rows <= tile:
        return fn(rows)
    padded = -(-n_rows // tile) * tile
    tiles = jax.tree_util.tree_map(
        lambda x: x.reshape((-1, tile) + x.shape[1:]), pad_rows(rows, n_rows, padded)
    )
    out = jax.lax.map(fn, tiles)
    return jax.tree_util.tree_map(lambda y: y.reshape((padded,) + y.shape[2:])[:n_rows], out)


def over_rows(fn, shared, rows, plan: BatchPlan | None):
    """``fn(shared, rows)`` for the pytree ``rows`` laid out by ``plan``: in row tiles, and split
    across the plan's devices (``shared`` replicated). ``plan`` None: one plain call."""
    if plan is None:
        return fn(shared, rows)

    def local(shared, rows):
        return map_tiles(functools.partial(fn, shared), rows, plan.row_tile)

    if plan.mesh is None:
        return local(shared, rows)
    n_rows, n_devices = jax.tree_util.tree_leaves(rows)[0].shape[0], plan.mesh.size
    padded = -(-n_rows // n_devices) * n_devices
    split = jax.shard_map(
        local, mesh=plan.mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=P(DATA_AXIS)
    )
    out = split(shared, pad_rows(rows, n_rows, padded))
    return jax.tree_util.tree_map(lambda y: y[:n_rows], out)


def place(arrays, plan: BatchPlan | None):
    """Arrays replicated on the plan's devices (a multi-device computation cannot take inputs
    committed to one device); unchanged without a mesh."""
    if plan is None or plan.mesh is None:
        return arrays
    return jax.device_put(arrays, NamedSharding(plan.mesh, P()))


def on_first_device(tree):
    """``tree``'s arrays committed to the first device: a single-setting call then pays for no
    transfer and no multi-device program."""
    return jax.device_put(tree, jax.devices()[0])
