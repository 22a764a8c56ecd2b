r"""Will a run fit the accelerators you are about to rent? Compiles its programs for them, on this machine.

  python -m estrnn_jax.plan --config=configs/bsd.py:2ms16ms --target=v5litepod-8 --target=h100x8
  python -m estrnn_jax.plan --config=configs/test.py --target=v4-8 --programs=train --max_batch --json=plan.json

For each target (a Cloud TPU accelerator type as gcloud spells it, or a GPU machine `<gpu>x<gpus>[x<hosts>]`;
`estrnn_jax.accelerators`) it compiles, ahead of time and without the hardware (`estrnn_jax.aot`), the
project's own jitted programs of the run with its real shardings and process count (`estrnn_jax.planning`):
the train step at the config's batch, the evaluation step at the dataset's frame size, and the streaming
deblur step. Per program and chip it prints XLA's memory analysis against the chip's memory (fits or not, and
the margin), the compile time, and an *estimated* step time: this project's FLOP count (`forward_flops`) at the
data-sheet peak and an assumed MFU (`--mfu`), with the windows per second each host must then feed, which is
what `benchmarks/input_pipeline_benchmark.py` measures. A train step that does not fit gets the cheapest
change that does, found by compiling (`--fix`, on by default); `--max_batch` finds the largest batch.

The compilers (libtpu for TPU targets; the CUDA plugin and compiler for GPU targets) are `requirements-plan.txt`,
installed in their own folder so that no other JAX process loads them (`estrnn_jax.aot`):
  pip install --no-deps --target ~/.cache/estrnn_jax/plan_compilers -r requirements-plan.txt
"""

import dataclasses
from typing import Any

from absl import app
from absl import flags
from ml_collections import config_flags

from estrnn_jax import accelerators
from estrnn_jax import aot
from estrnn_jax import atomic
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import model as model_lib
from estrnn_jax import planning
from estrnn_jax import profile

# The backward pass of a convolutional network costs about twice its forward pass (one product for the
# activations' gradient, one for the weights'): a training step is ~3x the forward FLOPs.
TRAINING_FLOPS_FACTOR = 3
DEFAULT_MFU = 0.3
PROGRAMS = ('train', 'eval', 'deblur')
EXIT_DOES_NOT_FIT = 3


def forward_flops(model: model_lib.ESTRNN, frames: int, outputs: int, height: int, width: int) -> float:
  """FLOPs of the forward pass over `frames` frames with `outputs` output frames (paper Secs. 3.1-3.3): the cell
  on every frame, GSA and the reconstructor on each output; 2 FLOPs per multiply-accumulate of the layers as the
  reference computes them (`profile`'s true MACs), frames padded to multiples of 4 as the model pads them."""
  counts = profile.profile_model(model, height + (-height % 4), width + (-width % 4))
  cell = counts.true_macs_by_module['cell']
  return 2 * (frames * cell + outputs * (counts.true_macs - cell))


@dataclasses.dataclass
class Estimate:
  """An estimated (not measured) step: `flops` per chip at `peak` FLOP/s per chip times `mfu`."""
  flops: float
  peak: float
  mfu: float
  items: float           # windows (train), chunks (eval) or frames (deblur) per step, per host
  item_name: str

  @property
  def step_s(self) -> float:
    return self.flops / (self.peak * self.mfu)

  @property
  def items_per_s(self) -> float:
    return self.items / self.step_s


def estimate(config, program: planning.Program, mfu: float) -> Estimate:
  """The program's estimated step time from its FLOPs per chip (see `Estimate`)."""
  model = model_lib.ESTRNN.from_config(config.model.to_dict(), source='config.model')
  target, p, f = program.target, model.past_frames, model.future_frames
  peak = target.chip.peak(config.model.dtype)
  if program.name == 'train':
    t, crop, batch = config.dataset.window_frames, config.dataset.crop_size, config.batch_size
    flops = TRAINING_FLOPS_FACTOR * forward_flops(model, t, t - p - f, crop, crop) * batch / target.chips
    return Estimate(flops, peak, mfu, batch / target.hosts, 'windows')
  height, width = program.frame_size
  if program.name == 'eval':
    chunk, group = config.eval.chunk_frames, planning.eval_group(config, target)
    flops = forward_flops(model, chunk, chunk - p - f, height, width) * config.eval.chunks_per_device
    return Estimate(flops, peak, mfu, group * (chunk - p - f), 'scored frames')
  return Estimate(forward_flops(model, 1, 1, height, width) * program.videos, peak, mfu, program.videos, 'frames')


def _gib(n: float) -> str:
  """Bytes as GiB with 2 decimals, or 3 significant digits below 0.1 GiB."""
  gib = n / accelerators.GiB
  return f'{gib:.2f}' if abs(gib) >= 0.1 or gib == 0 else f'{gib:.2g}'


def _seconds(s: float) -> str:
  return f'{s * 1e3:.3g} ms' if s < 1 else f'{s:.3g} s'


def format_program(program: planning.Program, guess: Estimate | None) -> str:
  m, target = program.memory, program.target
  verdict = (f'fits, {_gib(program.margin_bytes)} GiB spare' if program.fits
             else f'DOES NOT FIT, {_gib(-program.margin_bytes)} GiB over')
  budget = f'{_gib(target.budget_bytes)} GiB'
  if target.usable_fraction < 1:
    whose = '--memory_fraction' if target.memory_fraction is not None else "JAX's default"
    budget += f' ({target.usable_fraction:.0%} of {_gib(target.chip.hbm_bytes)}, {whose})'
  if m.refused:   # the compiler would not build it: only its temporaries are known
    return (f'  {program.name:<10} {program.shapes}\n'
            f'             per chip: temporaries alone {_gib(m.temporaries)} GiB of {budget}: DOES NOT FIT (the '
            f'compiler refused it after {m.compile_s:.1f} s: {m.refused})')
  lines = [f'  {program.name:<10} {program.shapes}',
           f'             per chip: arguments {_gib(m.arguments)} + outputs {_gib(m.outputs)} - donated '
           f'{_gib(m.aliased)} + temporaries {_gib(m.temporaries)} + code {_gib(m.code)} = {_gib(m.total)} GiB '
           f'of {budget}: {verdict}',
           f'             compiled in {m.compile_s:.1f} s (generated code {m.code / 1e6:.1f} MB)']
  if guess is not None:
    per = 'per chip' if program.name == 'deblur' else 'per host'
    lines.append(f'             estimate, not a measurement: {guess.flops / 1e12:.3g} TFLOP per chip per step at '
                 f'{guess.peak / 1e12:.0f} TFLOP/s x {guess.mfu:.0%} MFU = {_seconds(guess.step_s)} per step '
                 f'({1 / guess.step_s:.3g} steps/s): {guess.items_per_s:.3g} {guess.item_name}/s {per}')
  return '\n'.join(lines)


def program_json(program: planning.Program, guess: Estimate | None) -> dict[str, Any]:
  m = program.memory
  out = {'program': program.name, 'videos': program.videos, 'frame_size': program.frame_size, 'shapes': program.shapes, 'devices': program.devices,
         'bytes_per_chip': {'arguments': m.arguments, 'outputs': m.outputs, 'aliased': m.aliased,
                            'temporaries': m.temporaries, 'code': m.code, 'total': m.total},
         'budget_bytes': program.target.budget_bytes, 'fits': program.fits, 'margin_bytes': program.margin_bytes,
         'compile_s': round(m.compile_s, 2)}
  if m.refused:
    out['refused_by_compiler'] = m.refused
  if guess is not None:
    out['estimate'] = {'flops_per_chip': guess.flops, 'peak_flops_per_chip': guess.peak, 'mfu': guess.mfu,
                       'step_s': guess.step_s, 'steps_per_s': 1 / guess.step_s,
                       f'{guess.item_name.replace(" ", "_")}_per_s': guess.items_per_s}
  return out


def plan_target(config, target: accelerators.Target, options: dict[str, Any]) -> dict[str, Any]:
  """Compiles, prints and returns (as JSON-able data) the plan of `config` on `target`; `record['fits']` says
  whether every program compiled fits (and the train step can run as configured)."""
  print(target.describe(), flush=True)
  record: dict[str, Any] = {'target': target.name, 'chips': target.chips, 'hosts': target.hosts,
                            'chip': target.chip.name, 'hbm_bytes_per_chip': target.chip.hbm_bytes,
                            'budget_bytes_per_chip': target.budget_bytes, 'topology': target.topology,
                            'programs': []}
  problem = planning.train_problem(config, target) if 'train' in options['programs'] else None
  if 'train' in options['programs'] and target.hosts > 1 and problem is None:
    rows = planning.process_rows(planning.train_mesh(target), config.batch_size)
    print(f'  input: each of the {target.hosts} hosts feeds {len(rows[0])} rows of the batch of '
          f'{config.batch_size} (host h: rows {len(rows[0])}h ... {len(rows[0])}h+{len(rows[0]) - 1}), '
          'as the input pipeline splits it', flush=True)
    record['rows_per_host'] = len(rows[0])
  train = None
  for name in options['programs']:
    if name == 'train' and problem is not None:
      print(f'  train      CANNOT RUN: {problem}', flush=True)
      record['programs'].append({'program': 'train', 'fits': False, 'error': problem})
      continue
    if name == 'eval':
      size, source = planning.eval_size(config, options['eval_size'])
      print(f'  (evaluation frames {size[0]}x{size[1]}: {source})', flush=True)
      programs = [planning.eval_program(config, target, size)]
    else:
      programs = planning.plan_programs(config, target, [name], eval_frame_size=None,
                                        deblur_size=options['deblur_size'],
                                        videos_per_call=options['videos_per_call'])
    for program in programs:
      guess = estimate(config, program, options['mfu'])
      print(format_program(program, guess), flush=True)
      record['programs'].append(program_json(program, guess))
      if name == 'train':
        train = program
  if (problem is not None or (train is not None and not train.fits)) and options['fix']:
    record['fix'] = plan_fix(config, target, options['mfu'])
  if options['max_batch']:
    record['max_batch'] = plan_max_batch(config, target, train)
  record['fits'] = all(p['fits'] for p in record['programs'])
  return record


def plan_fix(config, target: accelerators.Target, mfu: float) -> dict[str, Any] | None:
  """Searches for (by compiling) and prints the cheapest change that makes the train step fit."""
  print('  searching for the cheapest change that fits (compiling each)...', flush=True)
  fix = planning.find_fix(config, target)
  if fix.overrides is None:
    print(f'  nothing tried fits ({len(fix.tried)} changes compiled).', flush=True)
    return None
  guess = estimate(planning.with_overrides(config, fix.overrides), fix.program, mfu)
  print(f'  fix: {planning.format_overrides(fix.overrides)} ({len(fix.tried)} compiled)\n'
        + format_program(fix.program, guess), flush=True)
  return {'overrides': fix.overrides, 'flags': planning.format_overrides(fix.overrides),
          'compiled_changes': len(fix.tried), 'program': program_json(fix.program, guess)}


def plan_max_batch(config, target: accelerators.Target, known: planning.Program | None) -> dict[str, Any]:
  """Searches for (by compiling) and prints the largest global batch whose train step fits; `known`: the train
  step at the config's batch, if compiled."""
  print('  searching for the largest batch that fits (compiling each)...', flush=True)
  found = planning.max_batch(config, target, known=known)
  per_chip = found.batch_size // target.chips
  above = (f'; {found.above.shapes.split(" (")[0]} needs {_gib(found.above.memory.total)} GiB'
           if found.above is not None else ' (the search limit)')
  print(f'  largest batch: {found.batch_size} ({per_chip} per chip){above} ({found.compiles} compiles)',
        flush=True)
  return {'batch_size': found.batch_size, 'per_chip': per_chip, 'compiles': found.compiles,
          'bytes_per_chip': found.program.memory.total if found.program else None,
          'bytes_per_chip_by_batch': found.bytes_by_batch}


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  config_flags.DEFINE_config_file('config', None, 'The training config to plan (`<file>[:<arg>]`, with '
                                  '--config.<field>=... overrides).', lock_config=True)
  flags.DEFINE_multi_string('target', None, 'A machine to plan for (repeatable): ' + ', '.join(
      accelerators.EXAMPLES) + ', ...')
  flags.DEFINE_list('programs', list(PROGRAMS), f'Programs to compile, of {", ".join(PROGRAMS)}.')
  flags.DEFINE_string('eval_size', None, 'Frame size HEIGHTxWIDTH of the evaluation step (default: the built '
                      "dataset's, else the size it is released at).")
  flags.DEFINE_string('deblur_size', '720x1280', 'Frame size HEIGHTxWIDTH of the streaming deblur step.')
  flags.DEFINE_integer('videos_per_call', 4, 'Videos streamed together in the second deblur program.')
  flags.DEFINE_float('mfu', DEFAULT_MFU, 'Model FLOP utilisation assumed by the step-time estimates (0, 1].')
  flags.DEFINE_bool('fix', True, 'When the train step does not fit, search for the cheapest change that does.')
  flags.DEFINE_bool('max_batch', False, 'Also find the largest global batch whose train step fits.')
  flags.DEFINE_float('memory_fraction', None, 'The part of each chip\'s memory the run may use, in (0, 1] '
                     '(default: all of a TPU\'s; 0.75 of a GPU\'s, JAX\'s XLA_PYTHON_CLIENT_MEM_FRACTION default).')
  flags.DEFINE_bool('must_fit', False, f'Exit with status {EXIT_DOES_NOT_FIT} when a program does not fit (or '
                    'the train step cannot run as configured), e.g. to stop a launch script.')
  flags.DEFINE_string('json', None, 'Also write the plan to this JSON file.')
  flags.mark_flags_as_required(['config', 'target'])


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  aot.prepare_process()
  f = flags.FLAGS
  targets = [accelerators.target(name, f.memory_fraction) for name in f.target]
  unknown = sorted(set(f.programs) - set(PROGRAMS))
  if unknown or not f.programs:
    raise cli.UserError(f'--programs: {unknown or "none"}: programs are {", ".join(PROGRAMS)}.')
  if not 0 < f.mfu <= 1:
    raise cli.UserError(f'--mfu must be in (0, 1], got {f.mfu}.')
  if f.videos_per_call < 1:
    raise cli.UserError(f'--videos_per_call must be >= 1, got {f.videos_per_call}.')
  if f.json:
    destinations.check_writable(f.json, flag='--json')   # before minutes of compiling
  options = {'programs': f.programs, 'mfu': f.mfu, 'fix': f.fix, 'max_batch': f.max_batch,
             'videos_per_call': f.videos_per_call, 'deblur_size': planning.parse_size(f.deblur_size, '--deblur_size'),
             'eval_size': planning.parse_size(f.eval_size, '--eval_size') if f.eval_size else None}
  config = f.config
  model_lib.ESTRNN.from_config(config.model.to_dict(), source='config.model')   # a bad model field fails here
  print(f'Plan for {config_flags.get_config_filename(f["config"])}: {describe_config(config)}', flush=True)
  try:
    records = [plan_target(config, target, options) for target in targets]
  except aot.TargetUnavailableError as e:
    raise cli.UserError(str(e)) from e
  if f.json:
    atomic.write_json(f.json, {'config': config.to_dict(), 'mfu': f.mfu, 'targets': records})
    print(f'Wrote {f.json}')
  misfits = [r['target'] for r in records if not r['fits']]
  if misfits:
    print(f'Does not fit (or cannot run as configured) on: {", ".join(misfits)}.', flush=True)
    if f.must_fit:
      return EXIT_DOES_NOT_FIT
  return 0


def describe_config(config) -> str:
  m = config.model
  return (f'ESTRNN C{5 * m.n_features} B{m.n_blocks} {m.dtype}, batch {config.batch_size} x '
          f'{config.dataset.window_frames} frames x {config.dataset.crop_size}^2 crops, dataset {config.dataset.name}')


if __name__ == '__main__':
  define_flags()
  cli.run_absl('plan', main)
