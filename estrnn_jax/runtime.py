"""Process start-up for the command-line entry points; the library itself never starts anything.

Called by `main`, `evaluate` (and any other multi-process entry point) before anything touches a JAX backend:
  * `initialize_distributed`: `jax.distributed.initialize()` when a multi-process launcher is detected
    (`multi_process_environment`: JAX_COORDINATOR_ADDRESS, SLURM, Open MPI, multi-host Cloud TPU VMs, the
    latter also from the VM's metadata server);
  * `hide_accelerators_from_tensorflow`: TFDS imports TensorFlow, which must not claim GPU memory JAX needs;
  * `use_compilation_cache`: JAX's persistent compilation cache in a directory.
"""

import glob
import os
import urllib.request

from absl import flags
from absl import logging
from etils import epath
import jax
from jax.experimental.compilation_cache import compilation_cache


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
  _orbax_barriers_through_the_coordination_service()


def _orbax_barriers_through_the_coordination_service() -> None:
  """Orbax's own barriers (creating the checkpoint folder, each save) wait through the coordination service, as
  `sharding.wait_for_all_processes` does: its default, a device collective, fails on CPU (gloo) when processes
  arrive there over 30 s apart, as loaded machines make them. The flag is read by Orbax on every barrier."""
  import orbax.checkpoint  # pylint: disable=g-import-not-at-top,unused-import  (defines the flag)
  if 'experimental_orbax_use_distributed_barrier' in flags.FLAGS:
    flags.FLAGS.experimental_orbax_use_distributed_barrier = True


def hide_accelerators_from_tensorflow() -> None:
  """TFDS imports TensorFlow; it must not claim GPU/TPU memory that JAX needs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.experimental.set_visible_devices([], 'GPU')


def use_compilation_cache(directory: str | epath.PathLike) -> None:
  """Turns on JAX's persistent compilation cache in `directory` (also when JAX has compiled before)."""
  directory = str(directory)
  if jax.config.jax_compilation_cache_dir != directory:
    jax.config.update('jax_compilation_cache_dir', directory)
    compilation_cache.reset_cache()
