r"""Scores a trained or converted ESTRNN on whole sequences of a split: PSNR/SSIM per frame and per sequence.

  python -m estrnn_jax.evaluate --config=configs/bsd.py:2ms16ms --checkpoint=/path/to/workdir --which=best
  python -m estrnn_jax.evaluate --config=configs/bsd.py:2ms16ms --checkpoint=ESTRNN_C80B15_BSD_2MS16MS.pth.tar

`--checkpoint` is anything `checkpoints.restore_model` reads (a workdir, a step directory, a converted model,
an official `.pth.tar`). `--protocol` is `reference` (the paper's numbers) or `full` (every frame); both are
described in `estrnn_jax.evaluation`, which does the scoring. A RAW model on a RAW dataset
(`configs/bsd.py:2ms16ms_raw`) is scored in RAW space by those, or in RGB through the official ISP with
`--protocol raw_isp` (`estrnn_jax.raw_isp`; the RGB frames come from `config.eval.isp_rgb_dataset`, and the
tables also carry the RAW-space scores).

Outputs (in `--output_dir`, default `<checkpoint>/eval_<split>_<protocol>` for directories): `results.json`
(summary, per-sequence and per-frame values), `sequences.csv` (one row per sequence) and, with `--save_frames`,
the deblurred frames as `frames/<sequence>/<frame index %08d>.png`. Multi-host: every process scores its share of
the sequences; process 0 writes the tables. `--output_dir` is checked to be writable before anything is scored.
Errors follow `estrnn_jax.cli` (one line, exit status 1).
"""

import json
from typing import Any

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
from ml_collections import config_flags

from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import evaluation
from estrnn_jax import input_pipeline
from estrnn_jax import raw_isp
from estrnn_jax import runtime


def define_flags() -> dict[str, flags.FlagHolder]:
  """The CLI's flags; defined only when this module runs as a program, so importing it never touches FLAGS."""
  return {
      'config': config_flags.DEFINE_config_file(
          'config', None, 'Config naming the dataset (and the defaults below).', lock_config=True),
      'checkpoint': flags.DEFINE_string('checkpoint', None, 'Workdir, step dir, converted model dir or .pth.tar.'),
      'which': flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'For a workdir: latest or best-PSNR step.'),
      'step': flags.DEFINE_integer('step', None, 'For a workdir: this step (overrides --which).'),
      'split': flags.DEFINE_string('split', None, 'Split to score (default: config.eval.test_split).'),
      'protocol': flags.DEFINE_enum('protocol', None, [*evaluation.PROTOCOLS, raw_isp.PROTOCOL],
                                    'Default: config.eval.protocol. raw_isp: a RAW model scored in RGB through '
                                    'the official ISP (estrnn_jax.raw_isp).'),
      'rounding': flags.DEFINE_enum('rounding', None, ['round', 'truncate'], 'Default: config.eval.rounding.'),
      'chunk_frames': flags.DEFINE_integer('chunk_frames', None, 'Default: config.eval.chunk_frames.'),
      'max_sequences': flags.DEFINE_integer('max_sequences', 0, 'Score only the first N sequences (0: all).'),
      'output_dir': flags.DEFINE_string('output_dir', None, 'Where to write the tables (and frames).'),
      'save_frames': flags.DEFINE_bool('save_frames', False, 'Also write the deblurred frames as PNGs.'),
      'distributed': flags.DEFINE_enum('distributed', 'auto', ['auto', 'true', 'false'],
                                       'Initialise jax.distributed (see estrnn_jax.main).'),
  }


def run(config, checkpoint: str, *, which: str = 'latest', step: int | None = None, split: str | None = None,
        protocol: str | None = None, rounding: str | None = None, chunk_frames: int | None = None,
        max_sequences: int = 0, output_dir: str | None = None, save_frames: bool = False) -> dict[str, Any]:
  """Evaluates `checkpoint` on a split of `config.dataset`; writes the tables; returns the summary."""
  split = split or config.eval.test_split
  protocol = protocol or config.eval.protocol
  rounding = rounding or config.eval.rounding
  chunk_frames = chunk_frames or config.eval.chunk_frames
  if output_dir is None:
    base = epath.Path(checkpoint)
    base = base if base.is_dir() else base.parent
    output_dir = base / f'eval_{config.dataset.name.replace("/", "_")}_{split}_{protocol}'
  output_dir = epath.Path(output_dir)
  if jax.process_index() == 0 or save_frames:   # process 0 writes the tables; every process its own frames
    destinations.check_writable(output_dir, flag='--output_dir', into=True)
  model, variables = checkpoints.restore_model(
      checkpoint, which=which, step=step, past_frames=config.model.past_frames,
      future_frames=config.model.future_frames)
  if protocol == raw_isp.PROTOCOL:
    return _run_raw_isp(config, checkpoint, model, variables['params'], split=split, rounding=rounding,
                        chunk_frames=chunk_frames, max_sequences=max_sequences, output_dir=output_dir,
                        save_frames=save_frames)
  evaluator = evaluation.SequenceEvaluator(model, variables['params'], protocol=protocol,
                                           chunk_frames=chunk_frames, rounding=rounding, loss=config.loss)
  table = input_pipeline.list_sequences(dataset=config.dataset.name, data_dir=config.dataset.data_dir, split=split)
  count = min(len(table), max_sequences) if max_sequences else len(table)
  logging.info('Evaluating %s (%s protocol, %s rounding) on %d sequences of %s/%s.', checkpoint, protocol,
               rounding, count, config.dataset.name, split)
  sequences = input_pipeline.iterate_sequences(
      dataset=config.dataset.name, data_dir=config.dataset.data_dir, split=split,
      shard_index=jax.process_index(), shard_count=jax.process_count(), max_sequences=max_sequences or None)
  try:
    results = evaluation.evaluate_sequences(
        evaluator, sequences, frames_dir=output_dir / 'frames' if save_frames else None,
        total=-(-count // jax.process_count()))
    results = evaluation.gather_results(results)
    summary = evaluation.summarize(results)
    if jax.process_index() == 0:
      info = {'checkpoint': str(checkpoint), 'dataset': config.dataset.name, 'split': split, 'protocol': protocol,
              'rounding': rounding, 'chunk_frames': chunk_frames, 'model': model.to_config()}
      evaluation.write_tables(output_dir, results, info)
  except OSError as e:
    failure = destinations.write_failure('--output_dir', output_dir, e)
    if failure is None:
      raise
    raise failure from None
  logging.info('Overall (%d frames of %d sequences): PSNR %.3f dB (blurry %.3f), SSIM %.4f (blurry %.4f). '
               'Tables in %s', summary['frames'], summary['sequences'], summary['psnr'], summary['blur_psnr'],
               summary['ssim'], summary['blur_ssim'], output_dir)
  return summary


def _run_raw_isp(config, checkpoint: str, model, params, *, split: str, rounding: str, chunk_frames: int,
                 max_sequences: int, output_dir: epath.Path, save_frames: bool) -> dict[str, Any]:
  """`--protocol raw_isp`: scores in RGB through the official ISP; the tables carry the RAW-space scores too."""
  rgb_dataset = config.eval.get('isp_rgb_dataset')
  if model.input != 'raw' or not rgb_dataset:
    raise cli.UserError(f'--protocol {raw_isp.PROTOCOL} scores a RAW model (ESTRNN input=\'raw\') on a RAW dataset '
                        'against the RGB frames of config.eval.isp_rgb_dataset (e.g. configs/bsd.py:2ms16ms_raw); '
                        f'got a model with input={model.input!r} and isp_rgb_dataset={rgb_dataset!r}.')
  logging.info('Evaluating %s (%s protocol, %s rounding) on %s/%s against the RGB frames of %s.', checkpoint,
               raw_isp.PROTOCOL, rounding, config.dataset.name, split, rgb_dataset)
  results, raw_rows = raw_isp.run(model, params, raw_dataset=config.dataset.name, rgb_dataset=rgb_dataset,
                                  data_dir=config.dataset.data_dir, split=split, chunk_frames=chunk_frames,
                                  rounding=rounding, loss=config.loss, max_sequences=max_sequences or None,
                                  frames_dir=output_dir / 'frames' if save_frames else None)
  summary = {**evaluation.summarize(results), **raw_isp.raw_summary(raw_rows)}
  info = {'checkpoint': str(checkpoint), 'dataset': config.dataset.name, 'rgb_dataset': rgb_dataset, 'split': split,
          'protocol': raw_isp.PROTOCOL, 'rounding': rounding, 'chunk_frames': chunk_frames,
          'model': model.to_config(), 'raw_space': {'summary': raw_isp.raw_summary(raw_rows), 'sequences': raw_rows}}
  evaluation.write_tables(output_dir, results, info)
  logging.info('Overall (%d frames of %d sequences): RGB through the ISP PSNR %.3f dB (blurry RGB %.3f), SSIM %.4f; '
               'RAW space PSNR %.3f dB (blurry %.3f). Tables in %s', summary['frames'], summary['sequences'],
               summary['psnr'], summary['blur_psnr'], summary['ssim'], summary['raw_psnr'],
               summary['raw_blur_psnr'], output_dir)
  return summary


def main(argv: list[str], flag_values: dict[str, flags.FlagHolder]) -> None:
  """The command: user errors (missing checkpoint or dataset, bad flags) are raised for `cli.run_absl`."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  values = {name: holder.value for name, holder in flag_values.items()}
  if values['config'] is None or not values['checkpoint']:
    raise app.UsageError('--config and --checkpoint are required.')
  runtime.initialize_distributed(values['distributed'])
  runtime.hide_accelerators_from_tensorflow()
  summary = run(values['config'], values['checkpoint'], which=values['which'], step=values['step'],
                split=values['split'], protocol=values['protocol'], rounding=values['rounding'],
                chunk_frames=values['chunk_frames'], max_sequences=values['max_sequences'],
                output_dir=values['output_dir'], save_frames=values['save_frames'])
  print(json.dumps(summary, indent=2))


if __name__ == '__main__':
  _flags = define_flags()
  cli.run_absl('evaluate', lambda argv: main(argv, _flags))
