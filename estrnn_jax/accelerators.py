"""Accelerator facts from the vendors' data sheets: machines as users rent them, and what a device can compute.

`TARGETS` names the machines `python -m estrnn_jax.plan` compiles for, spelled as they are bought: Cloud TPU
accelerator types as gcloud spells them (`v5litepod-8`, `v4-32`, ...; a v4/v5p type counts TensorCores, two per
chip) and GPU machines as `<gpu>x<gpus per host>[x<hosts>]` (`h100x8`, `h100x8x2`). Each resolves to chips, hosts,
memory per chip, peak FLOP/s and the topology XLA compiles for (`estrnn_jax.aot`).

`PEAK_FLOPS` / `peak_flops` give the dense peak of a device by its `device_kind`: the benchmarks and the plan turn
FLOP counts (`estrnn_jax.plan.forward_flops`) into utilisation and estimated step times.
"""

import dataclasses
import re


GiB = 1024 ** 3

# Dense peak FLOP/s per device: (name as in `device.device_kind`, matched by substring; bf16; float32 as XLA
# executes it by default: TF32 on NVIDIA Ampere+, bf16 passes on TPU), from the vendors' data sheets.
# The more specific names come first ('TPU v5 lite' before 'TPU v5').
PEAK_FLOPS = (
    ('H200', 989e12, 494e12),
    ('H100', 989e12, 494e12),
    ('A100', 312e12, 156e12),
    ('L4', 121e12, 60e12),
    ('TPU v6', 918e12, 918e12),
    ('TPU v5 lite', 197e12, 197e12),
    ('TPU v5e', 197e12, 197e12),
    ('TPU v5p', 459e12, 459e12),
    ('TPU v5', 459e12, 459e12),
    ('TPU v4', 275e12, 275e12),
)


def peak_flops(device_kind: str, dtype: str = 'bfloat16') -> float | None:
  """The data-sheet peak of a device (by `device_kind` substring) for `dtype`; None if unknown (CPUs)."""
  for name, bf16, f32 in PEAK_FLOPS:
    if name.lower() in device_kind.lower():
      return bf16 if dtype == 'bfloat16' else f32
  return None


@dataclasses.dataclass(frozen=True)
class Chip:
  """One accelerator chip as its data sheet describes it.

  `topology_name`: libtpu's name for the generation ('v5e'), or XLA's GPU spec name ('h100'). `hbm_bytes`: memory
  per chip. `usable_fraction`: the part of it a JAX program may use by default (GPU: JAX preallocates 75%,
  `XLA_PYTHON_CLIENT_MEM_FRACTION`; TPU: all of it). `chip_config_name`: libtpu's chip configuration (v4 runs its
  two TensorCores as one megacore device). GPU facts (SMs, clocks, bandwidth) for XLA's compiler are in
  `estrnn_jax/gpu_targets/<topology_name>.txtpb`.
  """
  kind: str                    # 'tpu' or 'gpu'
  name: str                    # as `device.device_kind` reports it
  topology_name: str
  hbm_bytes: int
  peak_bf16: float
  peak_f32: float
  chips_per_host: int
  usable_fraction: float = 1.0
  cores_per_chip: int = 1      # how gcloud counts a v4/v5p slice: TensorCores
  chip_config_name: str | None = None

  def peak(self, dtype: str) -> float:
    return self.peak_bf16 if dtype == 'bfloat16' else self.peak_f32


CHIPS = {
    'v4': Chip('tpu', 'TPU v4', 'v4', 32 * GiB, 275e12, 275e12, chips_per_host=4, cores_per_chip=2,
               chip_config_name='megacore'),
    'v5litepod': Chip('tpu', 'TPU v5 lite', 'v5e', 16 * GiB, 197e12, 197e12, chips_per_host=8),
    'v5p': Chip('tpu', 'TPU v5p', 'v5p', 95 * GiB, 459e12, 459e12, chips_per_host=4, cores_per_chip=2),
    'v6e': Chip('tpu', 'TPU v6 lite', 'v6e', 32 * GiB, 918e12, 918e12, chips_per_host=8),
    # HBM as the data sheets give it (80 GB / 141 GB, decimal), of which JAX uses 75% unless told otherwise.
    'a100': Chip('gpu', 'NVIDIA A100-SXM4-80GB', 'a100', 80 * 10 ** 9, 312e12, 156e12, chips_per_host=8,
                 usable_fraction=0.75),
    'h100': Chip('gpu', 'NVIDIA H100 80GB HBM3', 'h100', 80 * 10 ** 9, 989e12, 494e12, chips_per_host=8,
                 usable_fraction=0.75),
    'h200': Chip('gpu', 'NVIDIA H200', 'h200', 141 * 10 ** 9, 989e12, 494e12, chips_per_host=8,
                 usable_fraction=0.75),
}

# 2-D (v5e, v6e) and 3-D (v4, v5p) slice shapes by chip count, as Cloud TPU lays them out.
_TPU_SHAPES_2D = {1: '1x1', 4: '2x2', 8: '2x4', 16: '4x4', 32: '4x8', 64: '8x8', 128: '8x16', 256: '16x16'}
_TPU_SHAPES_3D = {4: '2x2x1', 8: '2x2x2', 16: '2x2x4', 32: '2x4x4', 64: '4x4x4', 128: '4x4x8', 256: '4x8x8'}
# v5e / v6e slices of more than one host use 4-chip hosts (ct5lp-hightpu-4t); 8 chips fit one 8-chip host.
_SMALL_HOST_ABOVE = 8


@dataclasses.dataclass(frozen=True)
class Target:
  """A machine to plan for: `chips` chips of one kind over `hosts` hosts (one JAX process per host)."""
  name: str
  chip: Chip
  chips: int
  hosts: int
  topology: str                # libtpu's '<gen>:<shape>' for TPU; XLA's '<slices>x<hosts>x<gpus>' for GPU
  memory_fraction: float | None = None   # of each chip's memory a run may use; None: `Chip.usable_fraction`

  @property
  def chips_per_host(self) -> int:
    return self.chips // self.hosts

  @property
  def usable_fraction(self) -> float:
    return self.chip.usable_fraction if self.memory_fraction is None else self.memory_fraction

  @property
  def budget_bytes(self) -> int:
    """Memory per chip a program may use (`usable_fraction` of its HBM)."""
    return int(self.chip.hbm_bytes * self.usable_fraction)

  def describe(self) -> str:
    hosts = f'{self.hosts} hosts' if self.hosts > 1 else '1 host'
    return (f'{self.name}: {self.chips} x {self.chip.name} ({self.chip.hbm_bytes / GiB:.1f} GiB each), {hosts}, '
            f'topology {self.topology}')


def _tpu_target(name: str, generation: str, count: int) -> Target:
  chip = CHIPS[generation]
  if count % chip.cores_per_chip:
    raise ValueError(f'{name}: {generation} slices count TensorCores in pairs.')
  chips = count // chip.cores_per_chip
  shapes = _TPU_SHAPES_3D if chip.cores_per_chip == 2 else _TPU_SHAPES_2D
  if chips not in shapes:
    raise ValueError(f'{name}: no {generation} slice has {chips} chips (known: '
                     f'{", ".join(f"{generation}-{c * chip.cores_per_chip}" for c in shapes)}).')
  per_host = chip.chips_per_host if chips <= _SMALL_HOST_ABOVE or chip.cores_per_chip == 2 else 4
  per_host = min(per_host, chips)
  return Target(name, chip, chips, chips // per_host, f'{chip.topology_name}:{shapes[chips]}')


def _gpu_target(name: str, gpu: str, per_host: int, hosts: int) -> Target:
  chip = CHIPS[gpu]
  if not 1 <= per_host <= chip.chips_per_host:
    raise ValueError(f'{name}: a {gpu} host has 1 to {chip.chips_per_host} GPUs.')
  return Target(name, chip, per_host * hosts, hosts, f'1x{hosts}x{per_host}')


# What `target()` understands, and the names listed in its error message (any other slice size works too).
EXAMPLES = ('v4-8', 'v4-16', 'v4-32', 'v5litepod-4', 'v5litepod-8', 'v5litepod-16', 'v5p-8', 'v5p-16', 'v5p-32',
            'v6e-4', 'v6e-8', 'v6e-16', 'a100x8', 'h100x1', 'h100x8', 'h100x8x2', 'h200x1', 'h200x8', 'h200x8x2')
_TPU_NAME = re.compile(r'^(v4|v5litepod|v5p|v6e)-(\d+)$')
_GPU_NAME = re.compile(r'^(a100|h100|h200)x(\d+)(?:x(\d+))?$')


def target(name: str, memory_fraction: float | None = None) -> Target:
  """The machine `name` (see the module docstring); ValueError, listing known names, for anything else.

  `memory_fraction`: the part of each chip's memory the run may use, in (0, 1] (default: `Chip.usable_fraction`).
  """
  if memory_fraction is not None and not 0 < memory_fraction <= 1:
    raise ValueError(f'the memory fraction must be in (0, 1], got {memory_fraction}.')
  spelled = name.strip().lower()
  if m := _TPU_NAME.match(spelled):
    found = _tpu_target(spelled, m.group(1), int(m.group(2)))
  elif m := _GPU_NAME.match(spelled):
    found = _gpu_target(spelled, m.group(1), int(m.group(2)), int(m.group(3) or 1))
  else:
    found = None
  if found is not None:
    return dataclasses.replace(found, memory_fraction=memory_fraction)
  raise ValueError(f'unknown target {name!r}; targets are Cloud TPU accelerator types (v4-N, v5litepod-N, v5p-N, '
                   f'v6e-N) and GPU machines (<a100|h100|h200>x<gpus>[x<hosts>]), e.g. {", ".join(EXAMPLES)}.')
