"""PSNR and SSIM against scikit-image (the reference's implementation), on random and structured images."""

import jax
import numpy as np
import pytest
from skimage import metrics as skm

from estrnn_jax import images
from estrnn_jax import metrics


def _ssim_skimage(a, b):
  return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   data_range=255, channel_axis=-1)


def _structured(height, width, seed):
  """Gradients, stripes and a disc, plus mild noise: smooth regions and sharp edges."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:height, :width]
  disc = ((yy - height / 2) ** 2 + (xx - width / 3) ** 2 < (min(height, width) / 4) ** 2) * 200
  img = np.stack([xx * 255 / (width - 1), (yy // 4 % 2) * 180 + 30, disc + 20], -1)
  return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def _pairs():
  rng = np.random.default_rng(1)
  pairs = []
  for height, width in [(11, 11), (32, 48), (37, 50)]:
    a = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    pairs.append((f'random{height}x{width}', a, b))
  for height, width in [(64, 64), (45, 70)]:
    a = _structured(height, width, 2)
    b = np.clip(a.astype(int) + rng.integers(-4, 5, a.shape), 0, 255).astype(np.uint8)
    pairs.append((f'structured{height}x{width}', a, b))
    blurred = ((a[:-2].astype(int) + a[1:-1] + a[2:]) // 3).astype(np.uint8)  # vertical motion blur
    pairs.append((f'blurred{height}x{width}', a[1:-1], blurred))
  flat = np.full((24, 24, 3), 250, np.uint8)
  almost = flat.copy()
  almost[5:9] = 251
  pairs.append(('nearly-flat', flat, almost))
  return pairs


PAIRS = _pairs()


@pytest.mark.parametrize('name,a,b', PAIRS, ids=[p[0] for p in PAIRS])
def test_ssim_matches_skimage(name, a, b):
  del name
  np.testing.assert_allclose(float(metrics.ssim(a, b)), _ssim_skimage(a, b), atol=1e-5)


@pytest.mark.parametrize('name,a,b', PAIRS, ids=[p[0] for p in PAIRS])
def test_psnr_matches_skimage(name, a, b):
  del name
  expected = skm.peak_signal_noise_ratio(a, b, data_range=255)
  np.testing.assert_allclose(float(metrics.psnr(a, b)), expected, rtol=1e-5)


def test_batched_and_jitted_give_one_value_per_frame():
  a = np.stack([p[1] for p in PAIRS if p[1].shape == (64, 64, 3)] * 2)
  b = np.stack([p[2] for p in PAIRS if p[2].shape == (64, 64, 3)] * 2)
  ssim = jax.jit(metrics.ssim)(a[None], b[None])
  psnr = jax.jit(metrics.psnr)(a[None], b[None])
  assert ssim.shape == psnr.shape == (1, len(a))
  for i in range(len(a)):
    np.testing.assert_allclose(float(ssim[0, i]), _ssim_skimage(a[i], b[i]), atol=1e-5)
    np.testing.assert_allclose(float(psnr[0, i]), skm.peak_signal_noise_ratio(a[i], b[i], data_range=255),
                               rtol=1e-5)


def test_psnr_definition_and_identical_frames():
  a = np.zeros((4, 4, 3), np.uint8)
  b = a.copy()
  b[0, 0, 0] = 255  # mse = 1/48 of full scale
  np.testing.assert_allclose(float(metrics.psnr(a, b)), 10 * np.log10(48), rtol=1e-6)
  assert np.isposinf(float(metrics.psnr(a, a)))
  assert float(metrics.ssim(np.full((16, 16, 3), 7, np.uint8), np.full((16, 16, 3), 7, np.uint8))) == 1.0


def test_ssim_rejects_small_or_mismatched_frames():
  with pytest.raises(ValueError, match='at least 11x11'):
    metrics.ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))
  with pytest.raises(ValueError, match='same shape'):
    metrics.ssim(np.zeros((12, 12, 3)), np.zeros((12, 13, 3)))


def test_quantize_round_matches_images_to_uint8_and_truncate_matches_reference():
  x = np.random.default_rng(3).uniform(-0.6, 0.6, (1000,)).astype(np.float32)
  x[:3] = [-0.5, 0.5, 0.0]
  np.testing.assert_array_equal(np.asarray(metrics.quantize(x, 'round')), images.to_uint8(x))
  reference = np.clip(x * 255 + 127.5, 0, 255).astype(np.uint8)  # the reference's test script
  np.testing.assert_array_equal(np.asarray(metrics.quantize(x, 'truncate')), reference)
  with pytest.raises(ValueError, match='rounding'):
    metrics.quantize(x, 'nearest')
