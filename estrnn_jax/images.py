"""Conversions between uint8 frames and the model's value range.

The model and the data pipeline work on RGB frames in [-0.5, 0.5] (`x / 255 - 0.5`, as the reference);
images on disk and metrics work on uint8 [0, 255].
"""

import numpy as np


def from_uint8(frames_u8: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] (any shape) -> float32 [-0.5, 0.5]."""
  return np.asarray(frames_u8, np.float32) / 255.0 - 0.5


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """float [-0.5, 0.5] (any shape) -> uint8: `x * 255 + 127.5`, rounded to nearest, clipped to [0, 255]."""
  return np.clip(np.rint(np.asarray(frames, np.float32) * 255.0 + 127.5), 0, 255).astype(np.uint8)
