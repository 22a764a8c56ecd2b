"""Every config loads, carries the paper's recipe, and can be overridden from the command line."""

import pathlib

from absl import flags
from ml_collections import config_flags
import pytest

from configs import bsd
from configs import default
from configs import dvd
from configs import gopro
from configs import reds
from configs import test as test_config

REPO = pathlib.Path(__file__).resolve().parents[1]
REQUIRED = ('batch_size', 'num_train_steps', 'seed')


def _all_configs():
  yield 'default', default.get_config()
  yield 'test', test_config.get_config()
  for setting in bsd.SETTINGS + bsd.RAW_SETTINGS:
    for size in ('b15c80', 'b9c60'):
      yield f'bsd:{setting},{size}', bsd.get_config(f'{setting},{size}')
  for size in ('b15c80', 'b9c60'):
    yield f'gopro:{size}', gopro.get_config(size)
    yield f'reds:{size}', reds.get_config(size)
    yield f'dvd:{size}', dvd.get_config(size)


def test_every_config_has_the_common_fields_and_the_same_schema():
  reference_keys = set(_flat_keys(default.get_config()))
  for name, config in _all_configs():
    for field in REQUIRED:
      assert isinstance(config[field], int), (name, field)
    assert set(_flat_keys(config)) == reference_keys, name
    assert config.batch_size > 0 and config.num_train_steps > 0
    assert config.dataset.window_frames > config.model.past_frames + config.model.future_frames
    assert config.dataset.crop_size % 4 == 0
    # Only the laptop-sized synthetic configs use the residual output; paper configs are the paper's model.
    assert config.model.residual == (config.dataset.name.startswith('synthetic_blur/')), name


def _flat_keys(config, prefix=''):
  for key, value in config.items():
    if hasattr(value, 'items'):
      yield from _flat_keys(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}'


@pytest.mark.parametrize('setting', bsd.SETTINGS)
@pytest.mark.parametrize('size,features,blocks', [('b15c80', 16, 15), ('b9c60', 12, 9)])
def test_bsd_recipe(setting, size, features, blocks):
  config = bsd.get_config(f'{setting},{size}')
  assert config.dataset.name == f'bsd/{setting}'
  assert (config.model.n_features, config.model.n_blocks, config.model.residual) == (features, blocks, False)
  assert (config.model.past_frames, config.model.future_frames) == (2, 2)
  assert config.seed == 39 and config.batch_size == 8
  assert config.dataset.window_frames == 8 and config.dataset.crop_size == 256
  assert config.loss == 'charbonnier_color'
  opt = config.optimizer
  assert (opt.b1, opt.b2, opt.eps) == (0.9, 0.999, 1e-8)
  assert opt.learning_rate == 5e-4 and opt.schedule == 'cosine' and opt.end_learning_rate == 1e-8
  assert opt.warmup_steps == 0 and config.model.dtype == 'float32' and not config.model.unroll
  assert opt.grad_clip_norm == 20.0
  # 60 sequences x (100 - 8 + 1) windows = 5580 samples, 697 full batches of 8 per epoch, 500 epochs.
  assert opt.steps_per_epoch == 697
  assert config.num_train_steps == 500 * 697 == 348_500
  assert (config.eval.split, config.eval.test_split, config.eval.protocol) == ('validation', 'test', 'reference')


@pytest.mark.parametrize('module,dataset,steps_per_epoch,eval_split', [
    (gopro, 'gopro/blur_gamma_960x540', 488, 'test'),  # (2103 - 7 * 22) = 1949 samples, ceil(1949 / 4)
    (reds, 'reds', 2790, 'validation'),  # the first 120 sequences: 120 * 93 = 11160 samples / 4
    (dvd, 'dvd', 1321, 'test'),  # (5708 - 7 * 61) = 5281 samples, ceil(5281 / 4)
])
@pytest.mark.parametrize('size,features,blocks', [('b15c80', 16, 15), ('b9c60', 12, 9)])
def test_gopro_and_reds_recipe(module, dataset, steps_per_epoch, eval_split, size, features, blocks):
  config = module.get_config(size)
  assert config.dataset.name == dataset
  assert (config.model.n_features, config.model.n_blocks, config.model.residual) == (features, blocks, False)
  assert config.seed == 39 and config.batch_size == 4
  assert config.dataset.window_frames == 8 and config.dataset.crop_size == 256
  assert config.loss == 'mse'
  opt = config.optimizer
  assert opt.learning_rate == 1e-4 and opt.schedule == 'step' and opt.decay_factor == 0.5
  assert (opt.b1, opt.b2, opt.eps) == (0.9, 0.999, 1e-8) and opt.warmup_steps == 0
  assert tuple(opt.milestones) == (200 * steps_per_epoch, 400 * steps_per_epoch)
  assert config.num_train_steps == 500 * steps_per_epoch
  assert opt.grad_clip_norm == 20.0
  assert config.eval.test_split == eval_split


def test_config_arguments():
  assert bsd.get_config().dataset.name == 'bsd/2ms16ms'
  assert bsd.get_config().model.n_features == 16
  local = bsd.get_config('3ms24ms,b9c60,runlocal')
  assert local.dataset.name == 'bsd/3ms24ms' and local.model.n_blocks == 9
  assert local.batch_size == 2 and local.num_train_steps == 20 and local.dataset.crop_size == 64
  assert local.model.unroll
  with pytest.raises(ValueError, match="unexpected or repeated 'b15c60'"):
    bsd.get_config('2ms16ms,b15c60')
  with pytest.raises(ValueError, match="unexpected or repeated '2ms16ms'"):
    gopro.get_config('2ms16ms')
  with pytest.raises(ValueError, match='repeated'):
    reds.get_config('b9c60,b15c80')


def _parse(argv, monkeypatch):
  """Parses `argv` as `main.py` would (config_flags reads the overrides from sys.argv)."""
  monkeypatch.setattr('sys.argv', argv)
  flag_values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file('config', None, 'config', flag_values=flag_values, lock_config=True)
  flag_values(argv)
  return holder.value


def test_command_line_overrides(monkeypatch):
  config = _parse([
      'prog', f'--config={REPO / "configs" / "bsd.py"}:1ms8ms,b9c60', '--config.num_train_steps=100',
      '--config.batch_size=16', '--config.seed=7', '--config.optimizer.learning_rate=0.01',
      '--config.dataset.data_dir=/data/tfds', '--config.optimizer.milestones=(10, 20)',
  ], monkeypatch)
  assert config.num_train_steps == 100 and config.batch_size == 16 and config.seed == 7
  assert config.optimizer.learning_rate == 0.01
  assert config.dataset.data_dir == '/data/tfds'
  assert tuple(config.optimizer.milestones) == (10, 20)
  assert config.dataset.name == 'bsd/1ms8ms' and config.model.n_features == 12


def test_unknown_override_is_rejected(monkeypatch):
  with pytest.raises(AttributeError, match='Did you mean "num_train_steps"'):
    _parse(['prog', f'--config={REPO / "configs" / "test.py"}', '--config.num_train_step=3'], monkeypatch)
