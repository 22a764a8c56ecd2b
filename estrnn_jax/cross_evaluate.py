r"""Cross-dataset evaluation (paper Sec. 5.4.2, Table 8): several checkpoints scored on several datasets.

  python -m estrnn_jax.cross_evaluate \
      --checkpoints bsd=~/runs/bsd_2ms16ms,gopro=~/runs/gopro,reds=ESTRNN_REDS.pth.tar,dvd=~/runs/dvd \
      --datasets bsd/2ms16ms,gopro/blur_gamma_960x540,reds,dvd --output_dir ~/table8

`--checkpoints` is a comma-separated list of `name=path`: each path is anything `checkpoints.restore_model`
reads (a training workdir (`--which`), a step or converted directory, an official `.pth.tar`); the name labels
its row. Every dataset is scored with its own paper config's evaluation settings (`configs/bsd.py`, `gopro.py`,
`reds.py`, `dvd.py`: the split the paper reports, the reference protocol, the reference's truncating rounding);
any other dataset (your own, the synthetic ones) with `configs/default.py`'s (its test split, reference
protocol, rounding to nearest). Datasets must have been built (`python -m datasets.build`).

Writes to `--output_dir`: `cross_evaluation.md` and `cross_evaluation.csv`, the matrix of PSNR/SSIM with a "Blur"
row (the blurry inputs against the sharp frames) and one row per checkpoint; where a row's name and a column's
dataset are the paper's (bsd = BSD 2ms16ms, gopro, reds, dvd), the paper's Table 8 value stands beside ours.
`cross_evaluation.json` holds every number and the settings. Each file is written whole or not at all.
Multi-host: every process scores its share of each dataset's sequences; process 0 writes the tables.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
from typing import Any

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import ml_collections

from estrnn_jax import atomic
from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import evaluation
from estrnn_jax import input_pipeline
from estrnn_jax import runtime

BLUR_ROW = 'Blur'
# Paper Table 8 (PSNR, SSIM): rows are the training set (or the blurry input), columns the test set. BSD is its
# 2ms16ms setting.
PAPER_TABLE8 = {
    BLUR_ROW: {'bsd': (26.64, 0.818), 'gopro': (25.47, 0.785), 'reds': (26.28, 0.769), 'dvd': (27.23, 0.813)},
    'bsd': {'bsd': (31.95, 0.925), 'gopro': (26.46, 0.817), 'reds': (27.00, 0.801), 'dvd': (27.88, 0.844)},
    'gopro': {'bsd': (19.48, 0.598), 'gopro': (31.27, 0.903), 'reds': (28.21, 0.829), 'dvd': (28.90, 0.869)},
    'reds': {'bsd': (24.14, 0.773), 'gopro': (28.43, 0.869), 'reds': (32.82, 0.915), 'dvd': (28.06, 0.848)},
    'dvd': {'bsd': (28.67, 0.875), 'gopro': (26.57, 0.820), 'reds': (26.64, 0.787), 'dvd': (30.68, 0.897)},
}
# The dataset of each Table 8 column (other datasets have no paper value).
PAPER_COLUMNS = {'bsd/2ms16ms': 'bsd', 'gopro/blur_gamma_960x540': 'gopro', 'reds': 'reds', 'dvd': 'dvd'}
# Builders with a paper config in configs/ (its evaluation settings are the paper's for that dataset).
PAPER_CONFIGS = ('bsd', 'gopro', 'reds', 'dvd')


@dataclasses.dataclass
class Cell:
  """One checkpoint (or the blurry input) on one dataset: mean PSNR/SSIM over its scored frames."""
  row: str
  dataset: str
  psnr: float
  ssim: float
  frames: int
  sequences: int

  def paper(self) -> tuple[float, float] | None:
    column = PAPER_COLUMNS.get(self.dataset)
    return PAPER_TABLE8.get(self.row, {}).get(column) if column else None


def parse_checkpoints(text: str) -> dict[str, str]:
  """'bsd=DIR,gopro=FILE' -> {'bsd': 'DIR', 'gopro': 'FILE'}; raises UserError for a malformed or repeated entry."""
  entries = {}
  for item in (part.strip() for part in text.split(',')):
    name, sep, path = item.partition('=')
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
      raise cli.UserError(f'--checkpoints: {item!r} is not name=path (e.g. bsd=~/runs/bsd_2ms16ms).')
    if name == BLUR_ROW or name in entries:
      raise cli.UserError(f'--checkpoints: the name {name!r} is {"reserved" if name == BLUR_ROW else "repeated"}; '
                          'give each checkpoint its own name.')
    entries[name] = path
  return entries


def parse_datasets(text: str) -> list[str]:
  names = [part.strip() for part in text.split(',') if part.strip()]
  if not names or len(set(names)) != len(names):
    raise cli.UserError(f'--datasets: expected distinct dataset names, e.g. bsd/2ms16ms,reds; got {text!r}.')
  return names


def dataset_config(dataset: str) -> ml_collections.ConfigDict:
  """The config whose evaluation settings score `dataset`: its paper config, else `configs/default.py`'s."""
  family, _, variant = dataset.partition('/')
  if family in PAPER_CONFIGS:
    module = importlib.import_module(f'configs.{family}')
    config = module.get_config(variant) if family == 'bsd' and variant else module.get_config()
  else:
    config = importlib.import_module('configs.default').get_config()
  config.dataset.name = dataset
  return config


def evaluate_cell(model, params, config: ml_collections.ConfigDict, *, data_dir: str | None, max_sequences: int
                  ) -> dict[str, Any]:
  """One checkpoint on one dataset with the dataset's evaluation settings; the summary of every scored frame."""
  evaluator = evaluation.SequenceEvaluator(model, params, protocol=config.eval.protocol,
                                           chunk_frames=config.eval.chunk_frames, rounding=config.eval.rounding,
                                           loss=config.loss)
  sequences = input_pipeline.iterate_sequences(
      dataset=config.dataset.name, data_dir=data_dir, split=config.eval.test_split,
      shard_index=jax.process_index(), shard_count=jax.process_count(), max_sequences=max_sequences or None)
  results = evaluation.gather_results(evaluation.evaluate_sequences(evaluator, sequences))
  return evaluation.summarize(results)


def run(checkpoint_paths: dict[str, str], datasets: list[str], output_dir: epath.PathLike, *,
        data_dir: str | None = None, which: str = 'latest', max_sequences: int = 0) -> list[Cell]:
  """Scores every checkpoint on every dataset; writes the tables (process 0); returns the cells, Blur row first.

  Every checkpoint and dataset is opened, and `output_dir` checked to be writable, before any scoring, so a bad
  path fails in seconds.
  """
  if jax.process_index() == 0:
    destinations.check_writable(output_dir, flag='--output_dir', into=True)
  configs = {name: dataset_config(name) for name in datasets}
  for name, config in configs.items():   # raises naming a dataset that is missing or lacks the split
    input_pipeline.list_sequences(dataset=name, data_dir=data_dir, split=config.eval.test_split)
  models = {}
  for row, path in checkpoint_paths.items():
    window = configs[datasets[0]].model
    models[row] = checkpoints.restore_model(epath.Path(path).expanduser() if '://' not in path else path,
                                            which=which, past_frames=window.past_frames,
                                            future_frames=window.future_frames)
  cells, blur = [], {}
  for row, (model, variables) in models.items():
    for name in datasets:
      config = configs[name]
      logging.info('Scoring %s on %s (%s split, %s protocol, %s rounding).', row, name, config.eval.test_split,
                   config.eval.protocol, config.eval.rounding)
      summary = evaluate_cell(model, variables['params'], config, data_dir=data_dir, max_sequences=max_sequences)
      cells.append(Cell(row, name, summary['psnr'], summary['ssim'], summary['frames'], summary['sequences']))
      blur.setdefault(name, Cell(BLUR_ROW, name, summary['blur_psnr'], summary['blur_ssim'], summary['frames'],
                                 summary['sequences']))
  cells = [blur[name] for name in datasets] + cells
  if jax.process_index() == 0:
    info = {name: {'split': c.eval.test_split, 'protocol': c.eval.protocol, 'rounding': c.eval.rounding,
                   'chunk_frames': c.eval.chunk_frames} for name, c in configs.items()}
    write_tables(output_dir, cells, checkpoint_paths, datasets, info, max_sequences=max_sequences)
  return cells


def _score(psnr: float, ssim: float) -> str:
  return f'{psnr:.2f}/{ssim:.3f}'


def markdown_table(cells: list[Cell], datasets: list[str]) -> str:
  """The matrix: one row per checkpoint after the Blur row, one column per dataset, 'ours (paper x)' cells."""
  rows = list(dict.fromkeys(cell.row for cell in cells))
  by_key = {(cell.row, cell.dataset): cell for cell in cells}
  lines = ['| trained on \\ tested on | ' + ' | '.join(datasets) + ' |', '|---|' + '---|' * len(datasets)]
  for row in rows:
    entries = []
    for name in datasets:
      cell = by_key[(row, name)]
      paper = cell.paper()
      entries.append(_score(cell.psnr, cell.ssim) + (f' (paper {_score(*paper)})' if paper else ''))
    lines.append(f'| {row} | ' + ' | '.join(entries) + ' |')
  return '\n'.join(lines) + '\n'


def csv_table(cells: list[Cell]) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(['row', 'dataset', 'psnr', 'ssim', 'paper_psnr', 'paper_ssim', 'frames', 'sequences'])
  for cell in cells:
    paper = cell.paper() or ('', '')
    writer.writerow([cell.row, cell.dataset, f'{cell.psnr:.4f}', f'{cell.ssim:.5f}', *paper, cell.frames,
                     cell.sequences])
  return buffer.getvalue()


def write_tables(output_dir: epath.PathLike, cells: list[Cell], checkpoint_paths: dict[str, str],
                 datasets: list[str], info: dict[str, Any], *, max_sequences: int) -> None:
  output_dir = epath.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  note = (f'\nScored on the first {max_sequences} sequence(s) of each dataset only: not comparable with the '
          'paper.\n' if max_sequences else '')
  atomic.write_text(output_dir / 'cross_evaluation.md',
                    '# Cross-dataset evaluation (PSNR/SSIM; paper Table 8)\n\n' + markdown_table(cells, datasets)
                    + note)
  atomic.write_text(output_dir / 'cross_evaluation.csv', csv_table(cells))
  atomic.write_json(output_dir / 'cross_evaluation.json', {
      'checkpoints': checkpoint_paths, 'datasets': info, 'max_sequences': max_sequences,
      'cells': [dict(dataclasses.asdict(cell), paper=cell.paper()) for cell in cells]})


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_string('checkpoints', None, 'Comma-separated name=path, one per row (e.g. bsd=DIR,gopro=FILE).')
  flags.DEFINE_string('datasets', None, 'Comma-separated built datasets, one per column (e.g. bsd/2ms16ms,reds).')
  flags.DEFINE_string('output_dir', None, 'Where the tables go (created if missing).')
  flags.DEFINE_string('data_dir', None, 'TFDS data directory (default: TFDS\'s, ~/tensorflow_datasets).')
  flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'For training workdirs: latest or best-PSNR step.')
  flags.DEFINE_integer('max_sequences', 0, 'Score only the first N sequences of each dataset (0: all).')
  flags.DEFINE_enum('distributed', 'auto', ['auto', 'true', 'false'], 'Initialise jax.distributed (see main).')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  for name in ('checkpoints', 'datasets', 'output_dir'):
    if not f[name].value:
      raise cli.UserError(f'--{name} is required.')
  if f.max_sequences < 0:
    raise cli.UserError(f'--max_sequences must be >= 0, got {f.max_sequences}.')
  checkpoint_paths, datasets = parse_checkpoints(f.checkpoints), parse_datasets(f.datasets)
  runtime.initialize_distributed(f.distributed)
  runtime.hide_accelerators_from_tensorflow()
  cells = run(checkpoint_paths, datasets, f.output_dir, data_dir=f.data_dir, which=f.which,
              max_sequences=f.max_sequences)
  print(markdown_table(cells, datasets), end='')
  logging.info('Tables in %s.', f.output_dir)


if __name__ == '__main__':
  define_flags()
  cli.run_absl('cross_evaluate', main)
