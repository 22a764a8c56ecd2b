"""Photo-like test frames for the benchmarks: a 1/f colour texture and a BSD-layout release tree of it.

Fine detail everywhere: PNG compresses these frames only 1.2-1.5x and decodes them in 12-20 ms per
480x640 frame with Pillow on this project's machine, PNG's hard case (real photographs compress better).
"""

import os

import numpy as np
from PIL import Image


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Photo-like colour texture: 1/f noise, uint8 (height, width, 3)."""
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.rfftfreq(width)[None, :]
  amplitude = 1.0 / np.maximum(np.sqrt(fy**2 + fx**2), 1.0 / max(height, width))
  channels = []
  for _ in range(3):
    spectrum = (rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape)) * amplitude
    field = np.fft.irfft2(spectrum, s=(height, width))
    channels.append((field - field.mean()) / field.std())
  return np.clip(128 + 40 * np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def generate_bsd_tree(root: str, sequences: int, length: int, height: int, width: int) -> str:
  """Writes `<root>/BSD_2ms16ms/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/%08d.png`; returns the manual dir."""
  rng = np.random.default_rng(0)
  pad = 4 * length
  canvas = texture(rng, height + pad, width + pad)
  for split in ('train', 'valid', 'test'):
    for sequence in range(sequences):
      offset = rng.integers(0, 2, 2)
      for kind in ('Blur', 'Sharp'):
        os.makedirs(os.path.join(root, 'BSD_2ms16ms', split, f'{sequence:03d}', kind, 'RGB'))
      for frame in range(length):
        y, x = offset * 2 * frame
        sharp = canvas[y:y + height, x:x + width]
        # A horizontal box blur stands in for motion blur (smoother frames compress a little better).
        blur = np.mean([canvas[y:y + height, x + dx:x + dx + width].astype(np.float32) for dx in range(4)],
                       axis=0).astype(np.uint8)
        for kind, pixels in (('Blur', blur), ('Sharp', sharp)):
          Image.fromarray(pixels).save(
              os.path.join(root, 'BSD_2ms16ms', split, f'{sequence:03d}', kind, 'RGB', f'{frame:08d}.png'))
  return root
