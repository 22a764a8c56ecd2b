"""Tests for the procedural blurry/sharp video generator."""

import dataclasses
import pickle

import numpy as np
import pytest
from scipy import ndimage

from estrnn_jax import synthetic

TINY = synthetic.PRESETS['tiny']
NOISELESS = dataclasses.replace(TINY, shot_noise=0.0, read_noise=0.0)
STILL_CAMERA = dataclasses.replace(NOISELESS, pan_speed=0.0, shake_amplitude=0.0, max_rotation=0.0,
                                   max_zoom=0.0, num_objects=(2, 2))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float(10 * np.log10(255.0**2 / mse))


def test_shapes_dtypes_and_determinism():
  blur, sharp = synthetic.render_sequence(TINY, seed=3)
  shape = (TINY.num_frames, TINY.height, TINY.width, 3)
  assert blur.shape == sharp.shape == shape
  assert blur.dtype == sharp.dtype == np.uint8
  blur2, sharp2 = synthetic.render_sequence(TINY, seed=3)
  np.testing.assert_array_equal(blur, blur2)
  np.testing.assert_array_equal(sharp, sharp2)
  # Not degenerate: the frames use a wide range of values in every channel.
  assert all(np.ptp(sharp[..., c]) > 150 for c in range(3))


def test_different_seeds_differ():
  _, sharp_a = synthetic.render_sequence(TINY, seed=0)
  _, sharp_b = synthetic.render_sequence(TINY, seed=1)
  assert np.mean(np.abs(sharp_a.astype(int) - sharp_b.astype(int))) > 20


def test_rectangular_frames():
  config = dataclasses.replace(TINY, height=40, width=72, num_frames=3)
  blur, sharp = synthetic.render_sequence(config, seed=0)
  assert blur.shape == sharp.shape == (3, 40, 72, 3)


def test_exposure_times_are_centred_on_the_frame():
  times = synthetic.exposure_times(TINY, frame_index=5)
  assert times.shape == (TINY.subframes,)
  assert times[TINY.subframes // 2] == 5.0
  np.testing.assert_allclose(times.mean(), 5.0)
  # Evenly spaced, spanning the exposure (subframes samples at the centres of equal slices).
  np.testing.assert_allclose(np.diff(times), TINY.exposure / TINY.subframes)
  np.testing.assert_allclose(times[-1] - times[0], TINY.exposure * (1 - 1 / TINY.subframes))


def test_blur_is_crf_of_mean_linear_subframes_and_sharp_is_the_middle_one():
  blur, sharp = synthetic.render_sequence(NOISELESS, seed=7)
  scene = synthetic.Scene(NOISELESS, seed=7)
  for k in (0, NOISELESS.num_frames // 2, NOISELESS.num_frames - 1):
    linear = scene.render_linear(synthetic.exposure_times(NOISELESS, k))
    assert linear.shape == (NOISELESS.subframes, NOISELESS.height, NOISELESS.width, 3)
    assert linear.dtype == np.float32 and linear.min() >= 0 and linear.max() <= 1
    # The CRF written out independently: gamma 2.2 on the mean in linear space, rounded to 8 bits.
    expected_blur = np.rint(np.clip(linear.mean(axis=0), 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    np.testing.assert_array_equal(blur[k], expected_blur)
    middle = linear[NOISELESS.subframes // 2]
    np.testing.assert_array_equal(sharp[k], np.rint(middle ** (1 / 2.2) * 255).astype(np.uint8))
    # The middle sub-frame is the instant t = k itself.
    np.testing.assert_array_equal(scene.render_linear(np.array([float(k)]))[0], middle)
    # Averaging in linear space is not averaging in display space: the two differ where there is motion.
    display_mean = np.rint(np.mean(np.clip(linear, 0, 1) ** (1 / 2.2), axis=0) * 255)
    assert np.mean(np.abs(display_mean - blur[k])) > 0.05


def test_zero_exposure_gives_sharp_frames():
  config = dataclasses.replace(NOISELESS, exposure=0.0, num_frames=4)
  blur, sharp = synthetic.render_sequence(config, seed=2)
  np.testing.assert_array_equal(blur, sharp)


def test_sensor_noise_is_small_and_signal_dependent():
  clean, _ = synthetic.render_sequence(dataclasses.replace(NOISELESS, num_frames=4), seed=4)
  noisy, _ = synthetic.render_sequence(dataclasses.replace(TINY, num_frames=4), seed=4)
  diff = noisy.astype(np.float64) - clean
  assert 0.5 < diff.std() < 6.0   # a few 8-bit levels
  assert abs(diff.mean()) < 0.5   # zero-mean
  # Shot noise grows with intensity in linear space; the same variance per linear unit, seen through the
  # gamma curve, is what makes noise visible everywhere. Here: noise exists in both dark and bright pixels.
  dark, bright = clean < 64, clean > 192
  assert np.std(diff[dark]) > 0.3 and np.std(diff[bright]) > 0.3


def test_blur_strength_presets():
  """Default strength: a believable PSNR; the three BSD-like strengths order by exposure; same scene."""
  results = {}
  for name in ('small_1ms8ms', 'small', 'small_3ms24ms'):
    config = dataclasses.replace(synthetic.PRESETS[name], num_frames=8)
    results[name] = [synthetic.render_sequence(config, seed) for seed in (0, 1)]
  for seed in range(2):
    # The scene does not depend on the exposure: the sharp frames are identical across strengths.
    np.testing.assert_array_equal(results['small'][seed][1], results['small_1ms8ms'][seed][1])
    np.testing.assert_array_equal(results['small'][seed][1], results['small_3ms24ms'][seed][1])
    scores = {name: psnr(*pairs[seed]) for name, pairs in results.items()}
    assert 20.0 < scores['small'] < 35.0, scores
    assert scores['small_1ms8ms'] > scores['small'] + 1.0, scores
    assert scores['small'] > scores['small_3ms24ms'] + 1.0, scores


def test_still_camera_only_objects_move():
  """With the camera held still, all change over time (and all blur) comes from the moving objects."""
  scene = synthetic.Scene(STILL_CAMERA, seed=5)
  assert scene.num_objects == 2
  times = np.array([0.0, STILL_CAMERA.num_frames - 1.0])
  background = scene.render_linear(times, objects=False)
  frames = scene.render_linear(times)
  np.testing.assert_array_equal(background[0], background[1])        # the camera really is still
  object_masks = np.any(frames != background, axis=-1)                 # (2, H, W) where objects are
  for mask in object_masks:
    assert 0.01 < mask.mean() < 0.8
  assert not np.array_equal(object_masks[0], object_masks[1])         # the objects moved
  assert np.any(frames[0] != frames[1])
  changed = np.any(frames[0] != frames[1], axis=-1)
  assert not np.any(changed & ~object_masks[0] & ~object_masks[1])   # nothing else changed

  blur, sharp = synthetic.render_sequence(STILL_CAMERA, seed=5)
  blurred = np.any(blur != sharp, axis=-1)                              # (T, H, W)
  assert blurred.any()
  background_px = ~np.any(scene.render_linear(np.arange(STILL_CAMERA.num_frames, dtype=float)) !=
                          scene.render_linear(np.arange(STILL_CAMERA.num_frames, dtype=float), objects=False),
                          axis=-1)
  # Far from objects (2 px margin for the blur trail) blurry equals sharp.
  far = np.stack([ndimage.binary_erosion(m, iterations=3) for m in background_px])
  assert not np.any(blurred & far)


def test_objects_occlude_the_background_in_default_scenes():
  config = dataclasses.replace(TINY, num_objects=(3, 3))
  scene = synthetic.Scene(config, seed=11)
  times = np.arange(config.num_frames, dtype=float)
  covered = np.any(scene.render_linear(times) != scene.render_linear(times, objects=False), axis=-1)
  coverage = covered.mean(axis=(1, 2))
  assert np.all(coverage > 0.02) and np.all(coverage < 0.9), coverage


def test_camera_moves():
  config = dataclasses.replace(NOISELESS, num_objects=(0, 0))
  scene = synthetic.Scene(config, seed=1)
  frames = scene.render_linear(np.array([0.0, 1.0]))
  assert np.mean(np.abs(frames[0] - frames[1])) > 0.01
  translation, roll, zoom = scene.camera(np.linspace(0, 10, 101))
  speed = np.linalg.norm(np.diff(translation, axis=0), axis=1) / 0.1
  assert np.all(speed > 0) and np.all(speed < config.pan_speed + 2 * np.pi * 3 * config.shake_amplitude)
  assert np.all(np.abs(roll) <= config.max_rotation)
  assert np.all(np.abs(np.log(zoom)) <= config.max_zoom + 1e-12)


def test_presets_are_valid_and_documented():
  assert {'tiny', 'small', 'small_1ms8ms', 'small_3ms24ms', 'medium', 'large'} <= set(synthetic.PRESETS)
  for name, config in synthetic.PRESETS.items():
    assert config.subframes % 2 == 1, name
    assert set(config.num_sequences) == {'train', 'validation', 'test'}, name
    hash(config)  # usable as a dict key / in TFDS builder configs
  assert synthetic.PRESETS['large'].height == 480 and synthetic.PRESETS['large'].width == 640
  assert synthetic.PRESETS['small'] == synthetic.SyntheticConfig()


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match='subframes'):
    synthetic.SyntheticConfig(subframes=8)
  with pytest.raises(ValueError, match='exposure'):
    synthetic.SyntheticConfig(exposure=1.5)
  with pytest.raises(ValueError, match='num_objects'):
    synthetic.SyntheticConfig(num_objects=(3, 1))
  with pytest.raises(ValueError, match='8x8'):
    synthetic.SyntheticConfig(height=4)
  config = synthetic.SyntheticConfig(num_sequences={'train': 2, 'validation': 1, 'test': 1})
  with pytest.raises(TypeError):
    config.num_sequences["train"] = 5  # read-only: the config stays immutable
  assert pickle.loads(pickle.dumps(config)) == config


def test_sequence_seed_is_stable_and_distinct():
  seeds = {synthetic.sequence_seed(split, i) for split in ('train', 'validation', 'test') for i in range(100)}
  assert len(seeds) == 300
  assert synthetic.sequence_seed('train', 3) == synthetic.sequence_seed('train', 3)
  assert synthetic.sequence_seed('train', 3, base_seed=1) != synthetic.sequence_seed('train', 3)
  assert all(0 <= s < 2**63 for s in seeds)
