"""Cross-dataset evaluation (Table 8): the matrix, each dataset's own protocol, the paper's values, and errors."""

import csv
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from datasets import build as build_lib
from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import cross_evaluate
from estrnn_jax import images
from estrnn_jax import model as model_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAMES, HEIGHT, WIDTH = 7, 24, 32


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return 10 * np.log10(255.0**2 / mse)


def _bsd_tree(root):
  """BSD_2ms16ms in the release's layout: one 7-frame sequence per split, sharp = noise, blur = sharp + 12."""
  rng = np.random.default_rng(3)
  sharp = rng.integers(20, 236, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
  blur = (sharp + 12).astype(np.uint8)
  for split in ('train', 'valid', 'test'):
    for kind, frames in (('Blur', blur), ('Sharp', sharp)):
      folder = root / 'BSD_2ms16ms' / split / '000' / kind / 'RGB'
      folder.mkdir(parents=True)
      for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f'{i:08d}.png')
  return blur, sharp


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('cross')
  blur, sharp = _bsd_tree(root / 'manual')
  build_lib.build('bsd/2ms16ms', root / 'tfds', manual_dir=root / 'manual')
  build_lib.build('synthetic_blur/tiny', root / 'tfds')
  paths = {}
  for name, seed in (('bsd', 0), ('mine', 1)):
    model = model_lib.ESTRNN(n_features=4, n_blocks=2)
    paths[name] = str(checkpoints.save_model(root / name, model, model_lib.init_params(model, seed)))
  return root, paths, blur, sharp


def test_matrix_scores_each_dataset_with_its_own_protocol(setup):
  root, paths, blur, sharp = setup
  cells = cross_evaluate.run(paths, ['bsd/2ms16ms', 'synthetic_blur/tiny'], root / 'out', data_dir=root / 'tfds',
                             max_sequences=1)
  table = {(c.row, c.dataset): c for c in cells}
  assert [c.row for c in cells] == ['Blur', 'Blur', 'bsd', 'bsd', 'mine', 'mine']
  # BSD's paper protocol: reference chunks, frames 2..4 of the 7 scored, truncating rounding.
  assert table[('Blur', 'bsd/2ms16ms')].frames == FRAMES - 4
  np.testing.assert_allclose(table[('Blur', 'bsd/2ms16ms')].psnr, _psnr(blur[2:5], sharp[2:5]), rtol=1e-6)
  model, variables = checkpoints.restore_model(paths['bsd'])
  out = np.asarray(model.apply(variables, images.from_uint8(blur[None])))[0]
  truncated = np.floor(np.clip(out * 255 + 127.5, 0, 255)).astype(np.uint8)
  expected = np.mean([_psnr(truncated[i], sharp[2 + i]) for i in range(3)])
  np.testing.assert_allclose(table[('bsd', 'bsd/2ms16ms')].psnr, expected, rtol=1e-4)
  # Another dataset: the default config's settings (its test split, one 20-frame chunk, rounding to nearest),
  # computed here from the model's outputs on the whole first test sequence.
  from estrnn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  _, tiny_blur, tiny_sharp = next(input_pipeline.iterate_sequences(
      dataset='synthetic_blur/tiny', data_dir=root / 'tfds', split='test', max_sequences=1))
  for row in ('bsd', 'mine'):
    model, variables = checkpoints.restore_model(paths[row])
    out = np.asarray(model.apply(variables, images.from_uint8(tiny_blur[None])))[0]
    rounded = np.clip(np.rint(out * 255 + 127.5), 0, 255).astype(np.uint8)
    expected = np.mean([_psnr(rounded[i], tiny_sharp[2 + i]) for i in range(len(rounded))])
    np.testing.assert_allclose(table[(row, 'synthetic_blur/tiny')].psnr, expected, rtol=1e-4)
    np.testing.assert_allclose(table[('Blur', 'synthetic_blur/tiny')].psnr,
                               np.mean([_psnr(tiny_blur[i], tiny_sharp[i]) for i in range(2, len(tiny_blur) - 2)]),
                               rtol=1e-6)

  # The tables: the paper's value beside ours where row and column are the paper's (bsd on BSD 2ms16ms).
  markdown = (root / 'out' / 'cross_evaluation.md').read_text()
  assert '| trained on \\ tested on | bsd/2ms16ms | synthetic_blur/tiny |' in markdown
  blur_cell = table[('Blur', 'bsd/2ms16ms')]
  assert f'| Blur | {blur_cell.psnr:.2f}/{blur_cell.ssim:.3f} (paper 26.64/0.818) |' in markdown
  assert '(paper 31.95/0.925)' in markdown and 'first 1 sequence(s)' in markdown
  rows = list(csv.DictReader((root / 'out' / 'cross_evaluation.csv').read_text().splitlines()))
  assert len(rows) == 6 and rows[2]['row'] == 'bsd' and rows[2]['paper_psnr'] == '31.95'
  assert rows[3]['paper_psnr'] == ''   # no paper value for a synthetic dataset
  saved = json.loads((root / 'out' / 'cross_evaluation.json').read_text())
  assert saved['datasets']['bsd/2ms16ms'] == {'split': 'test', 'protocol': 'reference', 'rounding': 'truncate',
                                             'chunk_frames': 20}
  assert saved['datasets']['synthetic_blur/tiny']['rounding'] == 'round'


def test_bad_arguments_are_one_line_errors(setup, tmp_path):
  root, paths, _, _ = setup
  with pytest.raises(cli.UserError, match="'bsd' is not name=path"):
    cross_evaluate.parse_checkpoints('bsd')
  with pytest.raises(cli.UserError, match="'a' is repeated"):
    cross_evaluate.parse_checkpoints('a=x,a=y')
  with pytest.raises(cli.UserError, match='distinct dataset names'):
    cross_evaluate.parse_datasets('reds,reds')
  proc = subprocess.run(
      [sys.executable, '-m', 'estrnn_jax.cross_evaluate', f'--checkpoints=bsd={paths["bsd"]}',
       '--datasets=bsd/2ms16ms,reds', f'--data_dir={root / "tfds"}', f'--output_dir={tmp_path / "out"}'],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 1, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('cross_evaluate: error:') and 'reds' in last, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert not (tmp_path / 'out').exists()   # nothing scored, nothing written
