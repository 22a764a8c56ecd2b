"""The programs a run executes, compiled for an accelerator target this machine does not have, and what fits.

Each `*_program` function lowers the project's own jitted function (the one the run calls, not a copy) with
abstract arguments placed on a target's compile-only devices (`estrnn_jax.aot`), compiles it and returns a
`Program`: what it is, and XLA's per-device memory analysis against the chip's memory.

  train_program(config, target)          `train.make_sharded_train_step`: the global batch over every chip of
                                         every host (the real process count), the state replicated
  eval_program(config, target, (H, W))   `evaluation.reference_forward`: one group of `chunk_frames` chunks on
                                         one host's chips, at the dataset's frame size
  deblur_program(config, target, (H, W), videos)
                                         `inference.lower_group_step`: the streaming step on one chip

`find_fix` searches, by compiling, for the cheapest change to a config whose train step does not fit;
`max_batch` for the largest global batch that does. `estrnn_jax.plan` is the command around them.
"""

from collections.abc import Callable, Iterator, Sequence
import dataclasses
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

from estrnn_jax import accelerators
from estrnn_jax import aot
from estrnn_jax import evaluation
from estrnn_jax import inference
from estrnn_jax import losses
from estrnn_jax import model as model_lib
from estrnn_jax import sharding
from estrnn_jax import synthetic
from estrnn_jax import train

# Frame sizes (height, width) of the datasets as released, for planning evaluation before a dataset is built.
# Keys are TFDS names or their prefixes; the longest matching key wins.
RELEASE_FRAME_SIZES = {
    'bsd': (480, 640),
    'gopro': (720, 1280),
    'gopro/blur_gamma_960x540': (540, 960),
    'gopro/blur_960x540': (540, 960),
    'reds': (720, 1280),
    'dvd': (720, 1280),
}


@dataclasses.dataclass
class Program:
  """One compiled program of a run on one target: `name` ('train', 'eval', 'deblur'), `shapes` (what one call
  processes, in words), `devices` (how many chips run it together) and `memory` per chip."""
  name: str
  shapes: str
  target: accelerators.Target
  devices: int
  memory: aot.CompiledProgram
  frame_size: tuple[int, int] | None = None   # eval and deblur: (height, width)
  videos: int = 1                              # deblur: videos per call

  @property
  def fits(self) -> bool:
    return self.memory.refused is None and self.memory.total <= self.target.budget_bytes

  @property
  def margin_bytes(self) -> int:
    """Bytes to spare per chip (negative: how much too big)."""
    return self.target.budget_bytes - self.memory.total


def _place(tree: Any, placement: jax.sharding.Sharding) -> Any:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placement), tree)


def process_rows(mesh: jax.sharding.Mesh, global_batch: int) -> dict[int, range]:
  """The rows of a global batch each process's devices hold under `sharding.data_sharding(mesh)`.

  Raises AssertionError unless every process holds one contiguous block of `global_batch / processes` rows,
  which is what `input_pipeline.create_train_iterator` gives each process and `sharding.shard_batch` places.
  """
  indices = sharding.data_sharding(mesh).devices_indices_map((global_batch,))
  rows: dict[int, set[int]] = {}
  for device, (index,) in indices.items():
    rows.setdefault(device.process_index, set()).update(range(*index.indices(global_batch)))
  per_process = global_batch // len(rows)
  blocks = {}
  for process, held in sorted(rows.items()):
    block = range(min(held), max(held) + 1)
    if len(held) != per_process or len(block) != per_process:
      raise AssertionError(f'process {process} holds rows {sorted(held)} of the batch of {global_batch}; its input '
                           f'pipeline gives it {per_process} consecutive rows.')
    blocks[process] = block
  return blocks


def train_mesh(target: accelerators.Target) -> jax.sharding.Mesh:
  """The training mesh on `target`: one `data` axis over every chip of every host, as `train_and_evaluate`'s."""
  return sharding.make_mesh(aot.target_devices(target))


def lower_train(config: ml_collections.ConfigDict, target: accelerators.Target) -> jax.stages.Lowered:
  """The train step of `config` lowered for `target`: every chip of every host in one `data` mesh, the state and
  the global batch as placed shapes (`train.abstract_train_state`, `train.abstract_batch`).

  Raises ValueError when the batch does not split over the chips (or into `grad_accum_steps`).
  """
  mesh = train_mesh(target)
  sharding.check_batch_size(config.batch_size, mesh)
  train.check_accumulation(config, mesh)
  process_rows(mesh, config.batch_size)
  model = train.create_model(config)
  tx = train.create_optimizer(config, train.create_learning_rate_schedule(config))
  state, state_sharding = train.abstract_train_state(model, tx, mesh)
  step = train.make_sharded_train_step(config, model, mesh, state_sharding)
  return step.lower(state, train.abstract_batch(config, mesh))


def train_program(config: ml_collections.ConfigDict, target: accelerators.Target) -> Program:
  """Compiles the train step of `config` for `target` (`lower_train`)."""
  memory = aot.compile_program(lower_train(config, target))
  b, t, crop = config.batch_size, config.dataset.window_frames, config.dataset.crop_size
  shapes = (f'batch {b} ({b // target.chips} per chip, {b // target.hosts} per host) x {t} frames x {crop}x{crop}, '
            f'{config.model.dtype}, remat {"on" if config.model.remat else "off"}, grad_accum_steps '
            f'{config.grad_accum_steps}')
  return Program('train', shapes, target, target.chips, memory)


def eval_group(config: ml_collections.ConfigDict, target: accelerators.Target) -> int:
  """Chunks per evaluation step: `eval.chunks_per_device` on each chip of one host (evaluation is per host)."""
  return config.eval.chunks_per_device * target.chips_per_host


def eval_program(config: ml_collections.ConfigDict, target: accelerators.Target, size: tuple[int, int]
                 ) -> Program:
  """Compiles the reference protocol's evaluation step (one group of chunks, split over host 0's chips)."""
  if config.eval.protocol != 'reference':
    raise ValueError(f"config.eval.protocol={config.eval.protocol!r}: only the 'reference' protocol has a "
                     "batched evaluation step to plan ('full' streams like deblur; plan that program).")
  model = evaluation.evaluation_model(train.create_model(config))
  mesh = sharding.make_mesh(aot.host_devices(target, 0))
  group, chunk = eval_group(config, target), config.eval.chunk_frames
  if chunk <= model.past_frames + model.future_frames:
    raise ValueError(f'config.eval.chunk_frames={chunk} must exceed past + future frames '
                     f'({model.past_frames + model.future_frames}).')
  height, width = size
  data = sharding.data_sharding(mesh)
  blur = jax.ShapeDtypeStruct((group, chunk, height, width, 3), jnp.uint8, sharding=data)
  sharp = jax.ShapeDtypeStruct((group, chunk - model.past_frames - model.future_frames, height, width, 3),
                               jnp.uint8, sharding=data)
  params = _place(model_lib.abstract_params(model), sharding.replicated(mesh))
  forward = evaluation.reference_forward(model, mesh, loss_fn=losses.get_loss_fn(config.loss),
                                         rounding=config.eval.rounding)
  memory = aot.compile_program(forward.lower(params, blur, sharp))
  shapes = (f'{group} chunks ({config.eval.chunks_per_device} per chip) x {chunk} frames x {height}x{width}, '
            f'{config.model.dtype}')
  return Program('eval', shapes, target, target.chips_per_host, memory, frame_size=size)


def deblur_program(config: ml_collections.ConfigDict, target: accelerators.Target, size: tuple[int, int],
                   videos: int = 1) -> Program:
  """Compiles the streaming deblur step (`StreamingDeblurrer`'s group step) for `videos` videos on one chip."""
  model = train.create_model(config)
  device = aot.target_devices(target)[0]
  variables = {'params': model_lib.abstract_params(model)}
  height, width = size
  lowered = inference.lower_group_step(model, variables, height, width, device=device, num_videos=videos)
  memory = aot.compile_program(lowered)
  shapes = (f'{videos} video{"s" if videos > 1 else ""} x {inference.DEFAULT_GROUP_SIZE} frame per call x '
            f'{height}x{width}, {config.model.dtype}')
  return Program('deblur', shapes, target, 1, memory, frame_size=size, videos=videos)


def release_frame_size(dataset: str) -> tuple[int, int] | None:
  """The frame size of `dataset` as released (`RELEASE_FRAME_SIZES`, longest matching name) or as generated
  (`synthetic_blur/<preset>`), else None."""
  builder, _, preset = dataset.partition('/')
  if builder == 'synthetic_blur' and preset in synthetic.PRESETS:
    return synthetic.PRESETS[preset].height, synthetic.PRESETS[preset].width
  matches = [k for k in RELEASE_FRAME_SIZES if dataset == k or dataset.startswith(k + '/')]
  return RELEASE_FRAME_SIZES[max(matches, key=len)] if matches else None


def with_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted-name overrides applied ({'model.remat': True})."""
  changed = ml_collections.ConfigDict(config.to_dict())
  changed.update_from_flattened_dict(overrides)
  return changed


def format_overrides(overrides: dict[str, Any]) -> str:
  """`{'model.remat': True}` -> `--config.model.remat=True`."""
  return ' '.join(f'--config.{k}={v}' for k, v in overrides.items())


def _divisors(n: int) -> list[int]:
  return [k for k in range(2, n + 1) if n % k == 0]


def fix_candidates(config: ml_collections.ConfigDict, chips: int) -> Iterator[dict[str, Any]]:
  """Changes to try for a train step that does not fit, cheapest first:

    1. same numbers: `grad_accum_steps` (the activations of one micro-batch), then `model.remat` (about a third
       more compute), then both;
    2. different rounding: `model.dtype='bfloat16'`, alone, then with accumulation and remat;
    3. a different recipe: a smaller per-chip batch (largest first), with remat, then also bfloat16.
  """
  per_chip = config.batch_size // chips
  accumulations = [{'grad_accum_steps': k} for k in _divisors(per_chip) if k > config.grad_accum_steps]
  remat = [] if config.model.remat else [{'model.remat': True}]
  same_numbers = accumulations + remat + [{**r, **a} for r in remat for a in accumulations]
  yield from same_numbers
  if config.model.dtype != 'bfloat16':
    bf16 = {'model.dtype': 'bfloat16'}
    yield bf16
    for change in same_numbers:
      yield {**bf16, **change}
  for dtype in dict.fromkeys([config.model.dtype, 'bfloat16']):
    for b in range(per_chip - 1, 0, -1):
      yield {'batch_size': b * chips, 'grad_accum_steps': 1, 'model.remat': True, 'model.dtype': dtype}


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  for part in dotted.split('.'):
    config = config[part]
  return config


@dataclasses.dataclass
class Fix:
  """A change that makes the train step fit (None when nothing tried fits), and every program compiled."""
  overrides: dict[str, Any] | None
  program: Program | None
  tried: list[tuple[dict[str, Any], Program | str]]


def train_problem(config: ml_collections.ConfigDict, target: accelerators.Target) -> str | None:
  """Why the train step of `config` cannot run on `target` as configured (a batch that does not split over its
  chips, or into `grad_accum_steps`), else None."""
  unit = target.chips * max(config.grad_accum_steps, 1)
  if config.grad_accum_steps < 1 or config.batch_size % unit:
    return (f'batch_size={config.batch_size} does not split over the {target.chips} chips'
            + (f' x grad_accum_steps={config.grad_accum_steps}' if config.grad_accum_steps != 1 else '')
            + f' (it must be a multiple of {unit})')
  return None


def find_fix(config: ml_collections.ConfigDict, target: accelerators.Target, *,
             compile_train: Callable[..., Program] = train_program) -> Fix:
  """The first change (`fix_candidates`) whose train step, compiled for `target`, fits; each one is compiled.

  A batch that does not split over the chips is first rounded up to the next multiple that does (a different
  recipe, so the fix says so by naming `batch_size`); the candidates then apply to that batch.
  """
  base: dict[str, Any] = {}
  if train_problem(config, target) is not None:
    unit = target.chips * max(config.grad_accum_steps, 1)
    base = {'batch_size': -(-config.batch_size // unit) * unit}
  start = with_overrides(config, base)
  tried, seen = [], set()
  for candidate in ([{}] if base else []) + list(fix_candidates(start, target.chips)):
    overrides = {k: v for k, v in {**base, **candidate}.items() if _get(config, k) != v}
    if not overrides or repr(overrides) in seen:
      continue
    seen.add(repr(overrides))
    logging.info('plan: %s: trying %s', target.name, format_overrides(overrides))
    try:
      program = compile_train(with_overrides(config, overrides), target)
    except ValueError as e:   # e.g. accumulation that does not split the batch
      tried.append((overrides, str(e)))
      continue
    tried.append((overrides, program))
    if program.fits:
      return Fix(overrides, program, tried)
  return Fix(None, None, tried)


@dataclasses.dataclass
class MaxBatch:
  """The largest global batch (a multiple of chips x `grad_accum_steps`) whose train step fits: its program, and
  the next batch up, compiled and found not to fit (None when the search stopped at its limit)."""
  batch_size: int
  program: Program | None
  above: Program | None
  compiles: int
  bytes_by_batch: dict[int, int] = dataclasses.field(default_factory=dict)   # every batch compiled: total bytes


def max_batch(config: ml_collections.ConfigDict, target: accelerators.Target, *, limit_per_chip: int = 4096,
              compile_train: Callable[..., Program] = train_program, known: Program | None = None) -> MaxBatch:
  """The largest global batch that fits, found by compiling.

  Memory per chip grows about linearly with the batch, so the search is a secant search kept inside a bracket:
  two compiles predict the boundary, each prediction is compiled, and it ends when a batch that fits sits next
  to one that does not (typically 3-5 compiles). Batches step by chips x `grad_accum_steps` ("units").
  `known`: the train step of `config` already compiled for `target`, reused when its batch is a whole number of
  units.
  """
  unit = target.chips * config.grad_accum_steps
  budget = target.budget_bytes
  limit = max(limit_per_chip // config.grad_accum_steps, 1)
  compiled: dict[int, Program] = {}
  if known is not None and config.batch_size % unit == 0:
    compiled[config.batch_size // unit] = known

  def total(units: int) -> int:
    if units not in compiled:
      logging.info('plan: %s: compiling the train step at batch %d', target.name, units * unit)
      compiled[units] = compile_train(with_overrides(config, {'batch_size': units * unit}), target)
    return compiled[units].memory.total

  def fits(units: int) -> bool:
    total(units)
    return compiled[units].fits

  def result(fit: int, above: int | None) -> MaxBatch:
    return MaxBatch(fit * unit, compiled.get(fit), compiled.get(above) if above else None, len(compiled),
                    {u * unit: p.memory.total for u, p in sorted(compiled.items())})

  if not fits(1):
    return result(0, 1)
  fit, over = 1, None           # largest units known to fit, smallest known not to
  probe = min(2, limit)
  while fit < limit and (over is None or over > fit + 1):
    if probe not in compiled:
      if fits(probe):
        fit = probe
      else:
        over = probe
    # Predict the boundary from the two compiled points nearest to it.
    near = sorted(compiled, key=lambda u: abs(u - fit))[:2]
    a, b = min(near), max(near)
    slope = (compiled[b].memory.total - compiled[a].memory.total) / (b - a) if b > a else 0
    guess = fit + int((budget - compiled[fit].memory.total) // slope) if slope > 0 else 2 * fit
    upper = (over - 1) if over is not None else limit
    probe = min(max(guess, fit + 1), upper)
    if probe in compiled:     # the prediction is already known: step next to the boundary instead
      probe = fit + 1 if (over is None or fit + 1 < over) else fit
  return result(fit, over)


def parse_size(text: str, what: str) -> tuple[int, int]:
  """'720x1280' -> (720, 1280); ValueError naming `what` for anything else."""
  parts = text.lower().split('x')
  try:
    height, width = (int(p) for p in parts)
  except ValueError:
    raise ValueError(f'{what} must be HEIGHTxWIDTH in pixels (e.g. 720x1280), got {text!r}.') from None
  if height < 4 or width < 4:
    raise ValueError(f'{what} must be at least 4x4 pixels, got {text!r}.')
  return height, width


def eval_size(config: ml_collections.ConfigDict, given: tuple[int, int] | None) -> tuple[tuple[int, int], str]:
  """The frame size evaluation runs at, and where it came from: `given` (--eval_size), else the built dataset's
  first frame, else the size it is released or generated at (`release_frame_size`). ValueError if none."""
  from estrnn_jax import input_pipeline  # pylint: disable=g-import-not-at-top  (TFDS only when needed)
  if given is not None:
    return given, '--eval_size'
  name, split = config.dataset.name, config.eval.split
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)   # TFDS logs every dataset it does not find
  try:
    size = input_pipeline.frame_size(dataset=name, data_dir=config.dataset.data_dir, split=split)
    return size, f'the built {name} split {split!r}'
  except (FileNotFoundError, ValueError, KeyError):
    pass
  finally:
    logging.set_verbosity(verbosity)
  release = release_frame_size(name)
  if release is not None:
    return release, f'{name} as released (not built here)'
  raise ValueError(f'config.dataset.name={name!r}: its frame size is unknown here (not built, not a released '
                   'dataset); pass --eval_size HEIGHTxWIDTH.')


def plan_programs(config: ml_collections.ConfigDict, target: accelerators.Target, programs: Sequence[str], *,
                  eval_frame_size: tuple[int, int] | None, deblur_size: tuple[int, int],
                  videos_per_call: int) -> list[Program]:
  """Compiles `programs` ('train', 'eval', 'deblur') of `config` for `target`, in that order."""
  compiled = []
  for name in programs:
    if name == 'train':
      compiled.append(train_program(config, target))
    elif name == 'eval':
      compiled.append(eval_program(config, target, eval_frame_size))
    elif name == 'deblur':
      for videos in sorted({1, videos_per_call}):
        compiled.append(deblur_program(config, target, deblur_size, videos))
    else:
      raise ValueError(f'unknown program {name!r}; programs are train, eval, deblur.')
  return compiled
