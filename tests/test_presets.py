"""The paper's presets (Tables 2-6): every one loads in every dataset config it applies to, and its cost, counted
by `estrnn_jax.profile` from the model itself, is the paper's (thop GMACs per 720x1280 frame)."""

import pathlib
import subprocess
import sys

import pytest

from configs import ablation
from configs import bsd
from configs import dvd
from configs import gopro
from configs import presets
from configs import reds
from estrnn_jax import model as model_lib
from estrnn_jax import profile

ROOT = pathlib.Path(__file__).parents[1]

# The paper's printed costs (GMACs per 720x1280 frame), table by table, and the (n_features, n_blocks, past,
# future) each preset must be. Where a model appears in two tables with two printed costs, both are checked.
PAPER_COSTS = {
    'b9c60': [92.57], 'b9c65': [108.20], 'b9c70': [125.55], 'b9c75': [143.71], 'b9c80': [163.61, 163.31],
    'b9c85': [184.25], 'b9c90': [206.70], 'b15c80': [203.74, 204.19],  # Tables 2, 3, 5
    'b3c80': [123.03], 'b6c80': [143.32], 'b12c80': [183.90],  # Table 5
    'p1f0': [119.93], 'p2f0': [133.75], 'p3f0': [148.31], 'p1f1': [133.75], 'p2f2': [163.61], 'p3f3': [196.42],
}
ABLATION_COSTS = {'base': 163.48, 'rdb': 165.59, 'fusion': 168.56, 'fusion_rdb': 161.28, 'fusion_gsa': 162.69,
                  'full': 163.61}
WINDOWS = {'p1f0': (1, 0), 'p2f0': (2, 0), 'p3f0': (3, 0), 'p1f1': (1, 1), 'p2f2': (2, 2), 'p3f3': (3, 3)}


def _cost(config) -> float:
  model = model_lib.ESTRNN(**{k: v for k, v in config.model.items() if k != 'dtype'})
  thop_macs, _, _ = profile.layer_macs(model, 720, 1280)
  return thop_macs / 1e9


def test_every_model_preset_loads_in_every_dataset_config():
  assert set(presets.MODEL_PRESETS) == set(PAPER_COSTS)
  for name in presets.MODEL_PRESETS:
    configs = [gopro.get_config(name), reds.get_config(name), dvd.get_config(f'{name},runlocal'),
               *(bsd.get_config(f'{setting},{name}') for setting in bsd.SETTINGS)]
    for config in configs:
      past, future = WINDOWS.get(name, (2, 2))
      assert (config.model.past_frames, config.model.future_frames) == (past, future), name
      assert config.dataset.window_frames > past + future and not config.model.residual
      if name.startswith('b'):
        blocks, channels = (int(x) for x in name[1:].split('c'))
        assert (config.model.n_blocks, 5 * config.model.n_features) == (blocks, channels)
      else:
        assert (config.model.n_blocks, config.model.n_features) == (9, 16)  # Table 6 is B9C80
  assert gopro.get_config().model.n_blocks == 15  # no preset: B15C80


@pytest.mark.parametrize('name', sorted(PAPER_COSTS))
def test_preset_cost_is_the_papers_within_1_percent(name):
  cost = _cost(gopro.get_config(name))
  for paper in PAPER_COSTS[name]:
    assert abs(cost - paper) / paper < 0.01, (name, cost, paper)


def test_ablation_rows_are_different_models_at_the_papers_costs():
  models = {}
  for row, paper in ABLATION_COSTS.items():
    config = ablation.get_config(row)
    models[row] = tuple(sorted(config.model.items()))
    cost = _cost(config)
    assert abs(cost - paper) / paper < (0.01 if row == 'full' else 0.03), (row, cost, paper)
  assert len(set(models.values())) == len(ABLATION_COSTS)
  expected = {  # (cell, fusion) per row: which of fusion / RDB cell / GSA each row has
      'base': ('resblock', 'none'), 'rdb': ('rdb', 'none'), 'fusion': ('resblock', 'concat'),
      'fusion_rdb': ('rdb', 'concat'), 'fusion_gsa': ('resblock', 'gsa'), 'full': ('rdb', 'gsa')}
  for row, (cell, fusion) in expected.items():
    model = dict(models[row])
    assert (model['cell'], model['fusion']) == (cell, fusion), row
  # Every dataset recipe takes a row; a bad argument is one clear error.
  assert ablation.get_config('fusion_gsa,reds').dataset.name == 'reds'
  assert ablation.get_config('base,3ms24ms,runlocal').dataset.name == 'bsd/3ms24ms'
  with pytest.raises(ValueError, match='expected <row>'):
    ablation.get_config('gopro')


def test_profile_cli_takes_a_config():
  result = subprocess.run([sys.executable, '-m', 'estrnn_jax.profile', '--config', 'configs/ablation.py:fusion_gsa'],
                          capture_output=True, text=True, check=True, cwd=ROOT)
  assert 'cell=resblock fusion=gsa' in result.stdout and 'B9C85' in result.stdout
  assert '162.34 G' in result.stdout
