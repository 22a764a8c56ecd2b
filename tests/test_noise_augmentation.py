"""Noise augmentation (`config.dataset.noise_std`, paper Fig. 15): Gaussian noise of the stated standard deviation
on the blurry frames only, new for every window drawn, the same after a resume; and the DVD noise presets."""

import pathlib

import numpy as np
import pytest

from configs import dvd
from datasets import build as build_lib
from estrnn_jax import input_pipeline

DUMMY = pathlib.Path(__file__).resolve().parents[1] / 'datasets' / 'bsd' / 'dummy_data'


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp('tfds')
  build_lib.build('bsd/2ms16ms', directory, manual_dir=DUMMY)   # train: 3 windows of 3 frames, 32x48
  return directory


def _batches(data_dir, noise_std, count, *, crop_size=None, state=None):
  iterator = input_pipeline.create_train_iterator(
      dataset='bsd/2ms16ms', data_dir=data_dir, split='train', global_batch_size=2, window_frames=3, past_frames=1,
      future_frames=1, crop_size=crop_size, seed=7, shard_index=0, shard_count=1, noise_std=noise_std)
  if state is not None:
    iterator.set_state(state)
  batches = [next(iterator) for _ in range(count)]
  final = iterator.get_state()
  iterator.close()
  return batches, final


def test_noise_is_on_the_blurry_frames_only_with_the_stated_deviation(data_dir):
  clean, _ = _batches(data_dir, 0.0, 6, crop_size=24)
  noisy, _ = _batches(data_dir, 8.0, 6, crop_size=24)
  differences = []
  for a, b in zip(clean, noisy):
    np.testing.assert_array_equal(b['sharp'], a['sharp'])   # targets untouched (same windows, crops and flips)
    assert b['blur'].dtype == np.uint8 and b['blur'].shape == a['blur'].shape
    differences.append(b['blur'].astype(np.float64) - a['blur'].astype(np.float64))
  noise = np.concatenate([d.reshape(-1) for d in differences])
  # The dummy frames lie in 20..235, so at sigma = 8 clipping at 0/255 is negligible; rounding to integers adds
  # 1/12 to the variance.
  assert abs(noise.mean()) < 0.1
  assert noise.std() == pytest.approx(np.sqrt(64 + 1 / 12), rel=0.02)
  assert np.all(noise == np.rint(noise))


def test_each_draw_of_a_window_gets_new_noise(data_dir):
  # Full frames: a window drawn again with the same flips has the same clean pixels; its noise must differ.
  clean, _ = _batches(data_dir, 0.0, 9)
  noisy, _ = _batches(data_dir, 4.0, 9)
  clean = [x for batch in clean for x in batch['blur']]
  noisy = [x for batch in noisy for x in batch['blur']]
  repeats = [(i, j) for i in range(len(clean)) for j in range(i) if np.array_equal(clean[i], clean[j])]
  assert repeats   # 18 draws of 3 windows x 4 flip combinations
  for i, j in repeats:
    assert not np.array_equal(noisy[i], noisy[j]), (i, j)


def test_a_resumed_stream_draws_the_same_noise(data_dir):
  unbroken, _ = _batches(data_dir, 4.0, 5, crop_size=16)
  _, state = _batches(data_dir, 4.0, 2, crop_size=16)
  assert state['next_batch'] == 2 and state['pipeline']['noise_std'] == 4.0
  resumed, _ = _batches(data_dir, 4.0, 3, crop_size=16, state=state)
  for a, b in zip(unbroken[2:], resumed):
    np.testing.assert_array_equal(a['blur'], b['blur'])
    np.testing.assert_array_equal(a['sharp'], b['sharp'])
  # Without noise the stream and its saved state are what they were before the option existed.
  _, plain = _batches(data_dir, 0.0, 1)
  assert 'noise_std' not in plain['pipeline']


def test_sixteen_bit_frames_get_the_same_fraction_of_their_range():
  frames = np.full((4, 64, 64, 1), 30000, np.uint16)
  noisy = input_pipeline.add_noise(frames, 3.0, np.random.default_rng(0))
  assert noisy.dtype == np.uint16
  assert (noisy.astype(np.float64) - 30000).std() == pytest.approx(3.0 * 257, rel=0.02)
  edge = input_pipeline.add_noise(np.zeros((1000,), np.uint8), 50.0, np.random.default_rng(0))
  assert edge.min() == 0 and edge.max() <= 255 and np.mean(edge == 0) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize('value', [-1.0, float('nan')])
def test_bad_noise_std_is_refused(data_dir, value):
  with pytest.raises(ValueError, match='noise_std must be a finite number >= 0'):
    _batches(data_dir, value, 1)


def test_fig15_presets():
  assert dvd.get_config().dataset.noise_std == 0.0
  assert [dvd.get_config(f'noise{s}').dataset.noise_std for s in dvd.NOISE_SWEEP] == [1.0, 2.0, 4.0, 8.0, 16.0]
  config = dvd.get_config('b9c60,noise4,runlocal')
  assert (config.model.n_features, config.dataset.noise_std, config.dataset.name) == (12, 4.0, 'dvd')
  with pytest.raises(ValueError, match="unexpected or repeated 'noise3'"):
    dvd.get_config('noise3')
