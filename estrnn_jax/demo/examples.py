"""The demo's built-in examples: test-split clips of a synthetic preset, with their sharp frames.

They are the clips `datasets/synthetic_blur` stores as its `test` split (same preset, same seeds), so a model
trained by the default config (`synthetic_blur/small_3ms24ms`) never saw them.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np

from estrnn_jax import synthetic
from estrnn_jax import video_io

DEFAULT_PRESET = 'small_3ms24ms'   # the default config's dataset


def names(preset: str, count: int) -> list[str]:
  """The examples' names as the page lists them, in order."""
  config = synthetic.PRESETS[preset]
  return [f'Synthetic test clip {i + 1} ({config.width}x{config.height}, {config.num_frames} frames, {preset})'
          for i in range(count)]


@functools.lru_cache(maxsize=8)
def clip(preset: str, index: int) -> tuple[np.ndarray, np.ndarray]:
  """(blurry, sharp) uint8 (T, H, W, 3) of test clip `index` of `preset`."""
  return synthetic.render_sequence(synthetic.PRESETS[preset], synthetic.sequence_seed('test', index))


def write_blurry(preset: str, index: int, folder: pathlib.Path) -> np.ndarray:
  """Writes the example's blurry frames into `folder` as PNGs (the demo's input, as an upload of frames would
  be); returns its sharp frames."""
  blurry, sharp = clip(preset, index)
  writer = video_io.FolderWriter(folder)
  for frame in blurry:
    writer.write(frame)
  writer.commit()
  return sharp
