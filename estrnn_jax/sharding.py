"""Device mesh and array placement for data-parallel training and evaluation.

One mesh axis, `data`, spans every device of every process. Batches are split along their first axis across it
(`NamedSharding(mesh, P('data'))`); the train state is replicated. Each process contributes the rows of the
global batch that its input pipeline produced (`jax.make_array_from_process_local_data`).

Starting the processes themselves (`jax.distributed`) is `estrnn_jax.runtime`'s job, done by the entry points.
"""

from collections.abc import Sequence
import itertools
from typing import Any

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import orbax.checkpoint as ocp

DATA_AXIS = 'data'
_barriers = itertools.count()


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D `data` mesh over `devices` (default: all devices of all processes), ordered by (process, device id).

  Process order keeps each process's devices one contiguous block of the batch, which is what its input pipeline
  feeds (`shard_batch`). `jax.make_mesh` would order a TPU slice by its physical layout instead, and on a
  multi-host v5e-16 that interleaves the hosts' rows (found by `estrnn_jax.plan`, tests/test_plan.py).
  """
  devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
  return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def local_mesh() -> Mesh:
  """A `data` mesh over this process's devices only (for per-process work such as evaluation)."""
  return make_mesh(jax.local_devices())


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Splits the leading (batch) axis across the mesh."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device."""
  return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """Returns this process's share of the global batch; raises if it does not split evenly."""
  num_devices = mesh.devices.size
  num_processes = len({d.process_index for d in mesh.devices.flat})
  if global_batch_size % num_devices:
    raise ValueError(f'batch_size={global_batch_size} is not divisible by the {num_devices} devices of the mesh; '
                     'choose a multiple (each device gets an equal slice).')
  return global_batch_size // num_processes


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Per-process numpy batch (pytree, leading axis = local rows) -> global `jax.Array`s sharded over `data`."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def wait_for_all_processes(purpose: str, timeout_s: int = 300) -> None:
  """Blocks until every process gets here (a no-op for one process), through the coordination service, not a
  device collective: CPU collectives (gloo) fail when one process reaches them over 30 s before another, so
  processes meet here after uneven work (compiling, evaluating, building a dataset), before a collective."""
  if jax.process_count() > 1:   # (Orbax's `sync_global_processes` would use a device collective by default)
    ocp.multihost.get_barrier_sync_fn()(key=f'estrnn: {purpose} #{next(_barriers)}', timeout_ms=timeout_s * 1000)
