"""Processes, device mesh and array placement for data-parallel training and evaluation.

One mesh axis, `data`, spans every device of every process. Batches are split along their first axis across it
(`NamedSharding(mesh, P('data'))`); the train state is replicated. Each process contributes the rows of the
global batch that its input pipeline produced (`jax.make_array_from_process_local_data`).

Multi-process runs (TPU pod slices, SLURM, MPI, or an explicit JAX_COORDINATOR_ADDRESS) call
`initialize_distributed` before anything touches a JAX backend.
"""

from collections.abc import Sequence
import os
from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

DATA_AXIS = 'data'


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D `data` mesh over `devices` (default: all devices of all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


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


def multi_process_environment() -> str | None:
  """Names the detected multi-process launcher, or None for a single-process run."""
  env = os.environ
  if env.get('JAX_COORDINATOR_ADDRESS'):
    return 'JAX_COORDINATOR_ADDRESS'
  if int(env.get('SLURM_NTASKS', '1') or 1) > 1:
    return 'SLURM'
  if int(env.get('OMPI_COMM_WORLD_SIZE', '1') or 1) > 1:
    return 'Open MPI'
  # Multi-host Cloud TPU VMs (and GKE TPU jobs) list every worker; a single host lists one or nothing.
  if len([h for h in env.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]) > 1:
    return 'Cloud TPU (multi-host)'
  if env.get('MEGASCALE_COORDINATOR_ADDRESS'):
    return 'Cloud TPU (multi-slice)'
  # A TPU VM outside GKE does not export the worker list; its metadata server holds it (as JAX's own
  # cluster detection reads it). Asked only on machines with TPU devices, with a short timeout.
  if _cloud_tpu_worker_count() > 1:
    return 'Cloud TPU (multi-host, from metadata)'
  return None


_TPU_DEVICE_GLOBS = ('/dev/accel*', '/dev/vfio/[0-9]*')
_TPU_WORKERS_URL = ('http://metadata.google.internal/computeMetadata/v1/instance/attributes/'
                    'worker-network-endpoints')


def _cloud_tpu_worker_count(timeout_s: float = 2.0) -> int:
  """Number of workers of this Cloud TPU VM's slice per the GCE metadata server; 0 when not on a TPU VM."""
  import glob  # pylint: disable=g-import-not-at-top
  import urllib.request  # pylint: disable=g-import-not-at-top
  if not any(glob.glob(pattern) for pattern in _TPU_DEVICE_GLOBS):
    return 0
  request = urllib.request.Request(_TPU_WORKERS_URL, headers={'Metadata-Flavor': 'Google'})
  try:
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
      endpoints = response.read().decode()
  except OSError:
    return 0
  return len([e for e in endpoints.split(',') if e.strip()])


def initialize_distributed(mode: str) -> None:
  """Calls `jax.distributed.initialize()` per `mode` ('auto' | 'true' | 'false'); must precede any JAX use."""
  if mode == 'false':
    return
  detected = multi_process_environment()
  if mode == 'auto' and detected is None:
    return
  logging.info('Initialising jax.distributed (%s).', detected or 'forced by --distributed=true')
  kwargs = {}
  if 'JAX_NUM_PROCESSES' in os.environ:
    kwargs['num_processes'] = int(os.environ['JAX_NUM_PROCESSES'])
  if 'JAX_PROCESS_ID' in os.environ:
    kwargs['process_id'] = int(os.environ['JAX_PROCESS_ID'])
  jax.distributed.initialize(**kwargs)


def hide_accelerators_from_tensorflow() -> None:
  """TFDS imports TensorFlow; it must not claim GPU/TPU memory that JAX needs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.experimental.set_visible_devices([], 'GPU')
