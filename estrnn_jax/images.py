"""Conversions between frames as users hold them and the model's value range.

The model and the data pipeline work on RGB frames in [-0.5, 0.5] (`x / 255 - 0.5` for uint8, as the
reference); images on disk and metrics work on uint8 [0, 255].

Frames given to the inference APIs follow one rule (`FrameFormat`), and outputs come back in the input's format:
  * uint8 and uint16 are scaled by their full range: 0 -> -0.5 and 255 (65535) -> 0.5;
  * floats must say their range (`value_range=(lo, hi)`, e.g. (0, 1), (0, 255) or `MODEL_RANGE`): nothing in a
    float array tells 0..1 from 0..255 data, so a float array without a range is refused;
  * any other dtype (int32, bool, ...) is refused;
  * grey frames ((H, W) or (H, W, 1)) are expanded to RGB; RGBA frames are accepted only when the alpha is fully
    opaque (then dropped), since the model cannot honour transparency.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

# The model's own value range: frames in [-0.5, 0.5].
MODEL_RANGE = (-0.5, 0.5)


def from_uint8(frames_u8: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] (any shape) -> float32 [-0.5, 0.5]."""
  return np.asarray(frames_u8, np.float32) / 255.0 - 0.5


def from_uint16(frames_u16: np.ndarray) -> np.ndarray:
  """uint16 [0, 65535] (any shape; RAW frames) -> float32 [-0.5, 0.5], `x / 65535 - 0.5` (the official RAW
  normalisation, `(x - 65535 / 2) / 65535`, up to float rounding)."""
  return np.asarray(frames_u16, np.float32) / 65535.0 - 0.5


# from_uint8 (from_uint16) of every uint8 (uint16) value: the tables `normalise_on_device` looks values up in.
_UINT8_TO_MODEL = from_uint8(np.arange(256, dtype=np.uint8))
_UINT16_TO_MODEL = from_uint16(np.arange(65536, dtype=np.uint16))


def normalise_on_device(frames: jax.Array) -> jax.Array:
  """Inside a jitted step: uint8 frames -> float32 [-0.5, 0.5], equal to `from_uint8` bit for bit (uint16 RAW
  frames: `from_uint16`); frames of another dtype are returned as they are (already in the model's range).

  A lookup in a 256-entry table of `from_uint8`'s values: XLA rewrites `x / 255` as `x * (1 / 255)`, which
  differs from the division in the last bit for 205 of the 256 values, and a training batch must be the same
  whether the host or the device converts it. uint16 looks up a 65536-entry table (256 KB) the same way.
  """
  if frames.dtype == jnp.uint16:
    return jnp.asarray(_UINT16_TO_MODEL)[frames]
  if frames.dtype != jnp.uint8:
    return frames
  return jnp.asarray(_UINT8_TO_MODEL)[frames]


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """float [-0.5, 0.5] (any shape) -> uint8: `x * 255 + 127.5`, rounded to nearest, clipped to [0, 255]."""
  return np.clip(np.rint(np.asarray(frames, np.float32) * 255.0 + 127.5), 0, 255).astype(np.uint8)


def _to_uint8_thresholds() -> np.ndarray:
  """(257,) float32: entry k is the smallest float32 x with `to_uint8(x) >= k` (k = 1 .. 255); -inf and +inf
  at the ends. Found by bisection over float32 values, so it reproduces `to_uint8`'s rounding exactly."""
  k = np.arange(1, 256)
  lo, hi = np.full(255, -1.0, np.float32), np.full(255, 1.0, np.float32)  # to_uint8: 0 at -1, 255 at 1
  while True:
    mid = ((lo.astype(np.float64) + hi) / 2).astype(np.float32)
    open_ = (mid != lo) & (mid != hi)
    if not open_.any():
      break
    above = to_uint8(mid) >= k
    hi = np.where(open_ & above, mid, hi)
    lo = np.where(open_ & ~above, mid, lo)
  return np.concatenate([[-np.inf], hi, [np.inf]]).astype(np.float32)


_TO_UINT8_THRESHOLDS = _to_uint8_thresholds()


def to_uint8_on_device(frames: jax.Array) -> jax.Array:
  """Inside a jitted function: float [-0.5, 0.5] -> uint8, equal to `to_uint8` bit for bit.

  `x * 255 + 127.5` on the device may round differently (XLA may fuse it into one multiply-add), which moves
  values that lie on a rounding boundary by one level; the estimate is therefore corrected against the exact
  thresholds of `to_uint8` (two table lookups per value).
  """
  thresholds = jnp.asarray(_TO_UINT8_THRESHOLDS)
  frames = frames.astype(jnp.float32)
  estimate = jnp.clip(jnp.rint(frames * 255.0 + 127.5), 0, 255).astype(jnp.int32)
  estimate = estimate + (frames >= thresholds[estimate + 1]) - (frames < thresholds[estimate])
  return jnp.clip(estimate, 0, 255).astype(jnp.uint8)   # (+inf passes the last threshold, +inf)


def uint16_to_uint8(frames_u16: np.ndarray) -> np.ndarray:
  """uint16 [0, 65535] -> uint8 [0, 255], rounded to nearest (65535 / 255 = 257 exactly)."""
  return ((np.asarray(frames_u16, np.uint32) + 128) // 257).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class FrameFormat:
  """How a caller's frames encode values: `dtype` and the values meaning black and white, `value_range`."""
  dtype: np.dtype
  value_range: tuple[float, float]

  @property
  def is_integer(self) -> bool:
    return self.dtype.kind == 'u'


def frame_format(dtype: np.dtype | type, value_range: tuple[float, float] | None = None) -> FrameFormat:
  """The `FrameFormat` of frames of `dtype`; raises ValueError for a float without `value_range` or a bad dtype.

  Args:
    dtype: the frames' dtype: uint8, uint16 or a float type.
    value_range: (black, white) for float frames, e.g. (0, 1); for uint8/uint16 None or their full range.
  """
  dtype = np.dtype(dtype)
  if dtype in (np.uint8, np.uint16):
    full = (0.0, float(np.iinfo(dtype).max))
    if value_range is not None and tuple(map(float, value_range)) != full:
      raise ValueError(f'{dtype} frames always use their full range {full}; value_range={value_range} does not '
                       'apply (convert to float to use another range).')
    return FrameFormat(dtype, full)
  if dtype.kind != 'f':
    raise ValueError(f'frames must be uint8, uint16 or float, got {dtype}.')
  if value_range is None:
    raise ValueError(f'{dtype} frames need their value range: pass value_range=(black, white), e.g. (0, 1), '
                     f'(0, 255), or {MODEL_RANGE} (the model\'s own); a float array does not say which it is.')
  low, high = (float(v) for v in value_range)
  if not (np.isfinite(low) and np.isfinite(high) and high > low):
    raise ValueError(f'value_range must be two finite numbers (black, white) with black < white, '
                     f'got {value_range}.')
  return FrameFormat(dtype, (low, high))


def to_rgb(frames: np.ndarray, white: float, what: str = 'frame') -> np.ndarray:
  """(..., H, W, C), C in {1, 3, 4} -> (..., H, W, 3) of the same dtype: grey repeated, opaque alpha dropped.

  `white` is the fully opaque alpha value (255 for uint8). Raises ValueError, naming `what`, for another channel
  count or an alpha that is not fully opaque everywhere.
  """
  frames = np.asarray(frames)
  channels = frames.shape[-1] if frames.ndim else 0
  if channels not in (1, 3, 4):
    raise ValueError(f'{what}: expected 1 (grey), 3 (RGB) or 4 (RGBA) channels, got shape {frames.shape}.')
  if channels == 4:
    translucent = np.count_nonzero(frames[..., 3] != white)
    if translucent:
      raise ValueError(f'{what}: RGBA with {translucent} pixel(s) not fully opaque (alpha != {white:g}); the model '
                       'cannot represent transparency. Flatten the frames onto a background first.')
    return frames[..., :3]
  if channels == 1:
    return np.repeat(frames, 3, axis=-1)
  return frames


def to_model(frames: np.ndarray, fmt: FrameFormat, what: str = 'frame', channels: int = 3) -> np.ndarray:
  """(..., H, W, C) frames in `fmt`, C in {1, 3, 4} -> float32 RGB (..., H, W, 3) in [-0.5, 0.5].

  Grey (C = 1) is repeated to RGB; RGBA (C = 4) must be fully opaque (`to_rgb`). `what` names the frames in
  errors. Raises ValueError for another channel count, a translucent alpha or non-finite float values.
  `channels=1` (a RAW model's Bayer frames): C must be 1 and stays 1.
  """
  frames = np.asarray(frames)
  if frames.dtype != fmt.dtype:
    raise ValueError(f'{what}: dtype {frames.dtype} differs from the earlier frames\' {fmt.dtype}.')
  low, high = fmt.value_range
  if channels == 1:
    if frames.shape[-1:] != (1,):
      raise ValueError(f'{what}: a RAW model (ESTRNN input=\'raw\') takes single-channel Bayer frames (H, W) or '
                       f'(H, W, 1), got shape {frames.shape}.')
  else:
    frames = to_rgb(frames, high, what)
  if fmt.dtype.kind == 'f' and not np.all(np.isfinite(frames)):
    raise ValueError(f'{what}: contains NaN or infinite values.')
  if fmt.value_range == MODEL_RANGE:
    return np.asarray(frames, np.float32)
  return (np.asarray(frames, np.float32) - np.float32(low)) / np.float32(high - low) - np.float32(0.5)


def from_model(frames: np.ndarray, fmt: FrameFormat) -> np.ndarray:
  """float [-0.5, 0.5] RGB -> `fmt`: integers rounded and clipped to their range; floats mapped, not clipped."""
  frames = np.asarray(frames, np.float32)
  low, high = fmt.value_range
  if fmt.dtype == np.uint8:
    return to_uint8(frames)
  if fmt.dtype == np.uint16:
    return np.clip(np.rint((frames + 0.5) * 65535.0), 0, 65535).astype(np.uint16)
  if fmt.value_range == MODEL_RANGE:
    return frames.astype(fmt.dtype, copy=False)
  return ((frames + 0.5) * (high - low) + low).astype(fmt.dtype)
