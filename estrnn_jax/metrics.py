"""Image quality metrics of the reference's evaluation, in JAX (jit-able, batched, exact float32 on every backend).

Both metrics compare uint8 frames (any integer or float array holding values in [0, 255] works), channels-last
(..., H, W, C), and return one value per frame, shape (...):

- `psnr`: `-10 * log10(mean(((a - b) / 255)^2))` over the full frame, no border crop (the reference's
  `psnr_calculate`). Identical frames give +inf, as the reference.
- `ssim`: scikit-image's `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)` (the reference's `ssim_calculate`): an 11x11
  Gaussian window (sigma 1.5 truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, the SSIM map averaged over the frame
  minus a 5-pixel border and over channels. Frames must be at least 11x11.

Both take `data_range` (default 255): 65535 scores 16-bit RAW frames (the official RAW test's `val_range`).

`quantize` turns model outputs in [-0.5, 0.5] into uint8 values (`bits=16`: uint16, `x * 65535 + 32767.5`) inside a
jitted function. The reference's test
script truncates (`np.clip(x * 255 + 127.5, 0, 255).astype(np.uint8)`); its training-time PSNR and
`estrnn_jax.images.to_uint8` round to nearest. The difference is ~0.03 dB at 30 dB.
"""

import numpy as np
import jax
import jax.numpy as jnp

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0


def quantize(frames: jax.Array, rounding: str = 'round', bits: int = 8) -> jax.Array:
  """float [-0.5, 0.5] -> uint8 via `x * 255 + 127.5`, clipped to [0, 255] (`bits=16`: uint16 via
  `x * 65535 + 32767.5`, clipped to [0, 65535], as the official RAW test script).

  Args:
    frames: any shape, model value range.
    rounding: 'round' (nearest, as `images.to_uint8` and the reference's validation PSNR) or 'truncate'
      (towards zero after clipping, as the reference's test script that produced the paper's numbers).
    bits: 8 or 16.
  """
  if bits not in (8, 16):
    raise ValueError(f'bits must be 8 or 16, got {bits}.')
  top = float(2**bits - 1)
  x = jnp.clip(frames.astype(jnp.float32) * top + top / 2, 0.0, top)
  if rounding == 'round':
    x = jnp.round(x)
  elif rounding == 'truncate':
    x = jnp.floor(x)
  else:
    raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}.")
  return x.astype(jnp.uint8 if bits == 8 else jnp.uint16)


def psnr(a: jax.Array, b: jax.Array, data_range: float = DATA_RANGE) -> jax.Array:
  """PSNR in dB of uint8-valued frames (..., H, W, C) -> (...); `data_range` 65535 for 16-bit frames."""
  diff = (a.astype(jnp.float32) - b.astype(jnp.float32)) / data_range
  mse = jnp.mean(jnp.square(diff), axis=(-3, -2, -1))
  return -10.0 * jnp.log10(mse)


def _gaussian_taps(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
  """scipy.ndimage's Gaussian kernel: radius `int(truncate * sigma + 0.5)`, normalised to sum 1."""
  radius = int(truncate * sigma + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  taps = np.exp(-0.5 * (x / sigma) ** 2)
  return taps / taps.sum()


def _filter_valid(x: jax.Array, taps: np.ndarray) -> jax.Array:
  """Separable Gaussian filter over axes (-3, -2) of (..., H, W, C), keeping only fully covered pixels.

  Written as shifted multiply-adds, so it is exact float32 on every backend (no reduced-precision conv passes).
  The 'valid' region is exactly what scikit-image keeps after cropping `(win - 1) // 2` pixels per border, so
  its reflect padding never enters the result.
  """
  win = len(taps)
  height, width = x.shape[-3], x.shape[-2]
  rows = sum(float(w) * x[..., i:i + height - win + 1, :, :] for i, w in enumerate(taps))
  return sum(float(w) * rows[..., :, j:j + width - win + 1, :] for j, w in enumerate(taps))


def ssim(a: jax.Array, b: jax.Array, data_range: float = DATA_RANGE) -> jax.Array:
  """Mean SSIM of uint8-valued frames (..., H, W, C) -> (...), as scikit-image (see module docstring);
  `data_range` 65535 for 16-bit frames."""
  taps = _gaussian_taps()
  win = len(taps)
  if a.shape != b.shape:
    raise ValueError(f'SSIM needs frames of the same shape, got {a.shape} and {b.shape}.')
  if a.shape[-3] < win or a.shape[-2] < win:
    raise ValueError(f'SSIM needs frames of at least {win}x{win} pixels, got {a.shape[-3]}x{a.shape[-2]}.')
  # (Co)variances are shift-invariant: subtracting each frame's mean colour first keeps the float32 cancellation
  # in E[x^2] - E[x]^2 small.
  x, y = a.astype(jnp.float32), b.astype(jnp.float32)
  x_mean = jnp.mean(x, axis=(-3, -2), keepdims=True)
  y_mean = jnp.mean(y, axis=(-3, -2), keepdims=True)
  x, y = x - x_mean, y - y_mean
  mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
  var_x = _filter_valid(x * x, taps) - mu_x * mu_x
  var_y = _filter_valid(y * y, taps) - mu_y * mu_y
  cov = _filter_valid(x * y, taps) - mu_x * mu_y
  mu_x, mu_y = mu_x + x_mean, mu_y + y_mean
  c1 = (SSIM_K1 * data_range) ** 2
  c2 = (SSIM_K2 * data_range) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
  return jnp.mean(ssim_map, axis=(-3, -2, -1))
