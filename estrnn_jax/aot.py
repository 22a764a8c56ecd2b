"""Compiling for accelerators this machine does not have: XLA ahead-of-time compilation for a `Target`.

`target_devices(target)` gives compile-only devices of a Cloud TPU slice (libtpu's topology descriptions) or of
GPU hosts (the CUDA plugin's compile-only client), with the target's real process (host) count. A jitted
function lowered with `jax.ShapeDtypeStruct`s placed on them (`jax.jit(f).lower(...)`) compiles exactly as it would on the machine itself; `compile_program` times that and reads the compiler's memory
analysis, which is exact per device. (`cost_analysis()` is not used: it counts a loop's body once.)

The compilers (libtpu, the CUDA plugin and its compiler wheels; `requirements-plan.txt`) live in their own folder,
`compilers_dir()`, outside the environment's site-packages: installed there, JAX in every other process neither
finds nor loads them (in site-packages, libtpu prints errors at every JAX start-up on a machine without TPUs, and
the CUDA plugin a traceback). `prepare_process` puts that folder on this process's path. It must run before any
other JAX use in the process: the process's own backend stays the CPU, and libtpu is told that no TPU metadata
server or lockfile is to be used.
"""

import dataclasses
import functools
import importlib.resources
import importlib.util
import os
import pathlib
import re
import sys
import time
from typing import Any

import jax

from estrnn_jax import accelerators

# libtpu's settings for compile-only use: no metadata server, no single-process lockfile (another JAX process
# may hold it), one local "worker" (silences its warnings about missing TPU VM metadata).
_TPU_ENVIRONMENT = {
    'TPU_SKIP_MDS_QUERY': '1',
    'ALLOW_MULTIPLE_LIBTPU_LOAD': '1',
    'TPU_WORKER_HOSTNAMES': 'localhost',
    'TPU_ACCELERATOR_TYPE': 'v5litepod-8',
}


# Where `requirements-plan.txt` is installed (`pip install --no-deps --target <dir> -r requirements-plan.txt`).
COMPILERS_ENV = 'ESTRNN_PLAN_COMPILERS'
DEFAULT_COMPILERS_DIR = '~/.cache/estrnn_jax/plan_compilers'
INSTALL_HINT = ('pip install --no-deps --target {dir} -r requirements-plan.txt')


class TargetUnavailableError(RuntimeError):
  """The compiler for a target is not installed here (libtpu, or the CUDA plugin for GPU targets)."""


def compilers_dir() -> pathlib.Path:
  """The folder the planning compilers are installed in: $ESTRNN_PLAN_COMPILERS, else DEFAULT_COMPILERS_DIR."""
  return pathlib.Path(os.environ.get(COMPILERS_ENV) or DEFAULT_COMPILERS_DIR).expanduser()


def prepare_process() -> None:
  """Makes the planning compilers importable in this process only, keeps its own backend on the CPU and sets
  libtpu up for compile-only use; call before any other JAX use."""
  folder = str(compilers_dir())
  if os.path.isdir(folder) and folder not in sys.path:
    sys.path.insert(0, folder)
  for key, value in _TPU_ENVIRONMENT.items():
    os.environ.setdefault(key, value)
  jax.config.update('jax_platforms', 'cpu')


def _chips_per_host_bounds(chips_per_host: int) -> tuple[int, int, int]:
  return {1: (1, 1, 1), 2: (1, 2, 1), 4: (2, 2, 1), 8: (2, 4, 1)}[chips_per_host]


def gpu_target_config(chip: accelerators.Chip) -> str:
  """XLA's GPU target description of `chip` (text proto: SMs, memory, clocks, compute capability)."""
  return importlib.resources.files('estrnn_jax').joinpath('gpu_targets', f'{chip.topology_name}.txtpb').read_text()


def target_devices(target: accelerators.Target) -> tuple[jax.Device, ...]:
  """Compile-only devices of `target`, every host's, in JAX's order; checked against the target's chips and
  hosts. Raises TargetUnavailableError when its compiler is not installed."""
  return _devices(dataclasses.replace(target, memory_fraction=None))   # one topology per machine


@functools.cache
def _devices(target: accelerators.Target) -> tuple[jax.Device, ...]:
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  chip = target.chip
  compiler, module = ('libtpu', 'libtpu') if chip.kind == 'tpu' else ('the CUDA plugin', 'jax_plugins.xla_cuda12')
  try:
    missing = importlib.util.find_spec(module) is None
  except ModuleNotFoundError:   # the jax_plugins namespace itself is absent
    missing = True
  if missing:
    raise TargetUnavailableError(
        f'cannot compile for {target.name}: {compiler} is not installed in {compilers_dir()}; install the planning '
        f'compilers with: {INSTALL_HINT.format(dir=compilers_dir())}')
  try:
    if chip.kind == 'tpu':
      kwargs: dict[str, Any] = {'chips_per_host_bounds': _chips_per_host_bounds(target.chips_per_host)}
      if chip.chip_config_name:
        kwargs['chip_config_name'] = chip.chip_config_name
      devices = topologies.get_topology_desc(target.topology, 'tpu', **kwargs).devices
    else:
      devices = topologies.get_topology_desc(chip.topology_name, 'cuda', target_config=gpu_target_config(chip),
                                             topology=target.topology).devices
  except (ImportError, RuntimeError, NotImplementedError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise TargetUnavailableError(f'cannot compile for {target.name}: {compiler} (in {compilers_dir()}) failed to '
                                 f'load: {reason}') from e
  processes = {d.process_index for d in devices}
  if len(devices) != target.chips or len(processes) != target.hosts:
    raise AssertionError(f'{target.name}: the compiler gave {len(devices)} devices over {len(processes)} hosts, '
                         f'the data sheet {target.chips} over {target.hosts}.')
  return tuple(devices)


def host_devices(target: accelerators.Target, process: int = 0) -> list[jax.Device]:
  """The devices of one host (JAX process) of `target`."""
  return [d for d in target_devices(target) if d.process_index == process]


@dataclasses.dataclass
class CompiledProgram:
  """What one compiled program needs on each device, in bytes (XLA's memory analysis), and its compile time.

  `arguments`: inputs resident on the device (parameters, optimiser state, the device's share of the batch);
  `outputs` minus `aliased` (donated arguments reused for outputs); `temporaries`: the peak of everything else;
  `code`: the generated executable.
  """
  compile_s: float
  arguments: int
  outputs: int
  aliased: int
  temporaries: int
  code: int
  hlo_text: str | None = None
  refused: str | None = None   # the compiler's own out-of-memory message, when it would not build the program

  @property
  def total(self) -> int:
    return self.arguments + self.outputs - self.aliased + self.temporaries + self.code


# libtpu refuses to build a program whose temporaries exceed the chip's memory, e.g. "RESOURCE_EXHAUSTED: Ran out of
# memory on HBM, the total memory required for HLO temporaries (31.45G) exceeds available HBM (30.75G)." (G: GiB).
_TPU_OUT_OF_MEMORY = re.compile(r'memory required for HLO temporaries \(([0-9.]+)([KMGT])\) exceeds available HBM')
_UNITS = {'K': 2**10, 'M': 2**20, 'G': 2**30, 'T': 2**40}


def out_of_memory_temporaries(message: str) -> int | None:
  """Bytes of temporaries in libtpu's out-of-memory compile error `message`; None for any other error."""
  match = _TPU_OUT_OF_MEMORY.search(message)
  return None if match is None else int(float(match.group(1)) * _UNITS[match.group(2)])


def compile_program(lowered: jax.stages.Lowered, *, keep_hlo: bool = False) -> CompiledProgram:
  """Compiles `lowered` (timed) and reads its per-device memory analysis."""
  start = time.perf_counter()
  try:
    compiled = lowered.compile()
  except jax.errors.JaxRuntimeError as e:   # a program too big for the chip is a plan answer, not a crash
    temporaries = out_of_memory_temporaries(str(e))
    if temporaries is None:
      raise
    return CompiledProgram(compile_s=time.perf_counter() - start, arguments=0, outputs=0, aliased=0,
                           temporaries=temporaries, code=0, refused=str(e).strip().splitlines()[0])
  seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  return CompiledProgram(
      compile_s=seconds, arguments=int(memory.argument_size_in_bytes), outputs=int(memory.output_size_in_bytes),
      aliased=int(memory.alias_size_in_bytes), temporaries=int(memory.temp_size_in_bytes),
      code=int(memory.generated_code_size_in_bytes), hlo_text=compiled.as_text() if keep_hlo else None)
