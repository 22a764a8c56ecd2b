"""The frame formats of the datasets (`estrnn_jax.frame_storage`): exact round trips, crops, and refusals."""

import io

import numpy as np
from PIL import Image
import pytest

from estrnn_jax import frame_storage


def _frame(height=6, width=10, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize('stored', frame_storage.FORMATS)
def test_round_trip_and_crop_are_exact(stored):
  pixels = _frame()
  data = frame_storage.encode(pixels, stored)
  assert frame_storage.frame_size(data, stored) == (6, 10)
  np.testing.assert_array_equal(frame_storage.decode(data, stored), pixels)
  np.testing.assert_array_equal(frame_storage.decode(data, stored, crop=(1, 3, 4, 5)), pixels[1:5, 3:8])
  with pytest.raises(ValueError, match=r'the sharp frame 3: crop \(3, 0, 4, 4\).*outside the 10x6 frame'):
    frame_storage.decode(data, stored, crop=(3, 0, 4, 4), what='the sharp frame 3')


def test_raw_is_a_header_and_the_pixels_and_png_is_a_png_file():
  pixels = _frame()
  raw = frame_storage.encode(pixels, 'raw')
  assert raw[:8] == frame_storage.RAW_MAGIC and raw[8:16] == (6).to_bytes(4, 'little') + (10).to_bytes(4, 'little')
  assert raw[16:] == pixels.tobytes()
  with Image.open(io.BytesIO(frame_storage.encode(pixels, 'png'))) as image:
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_damaged_or_mislabelled_frames_are_refused():
  raw = frame_storage.encode(_frame(), 'raw')
  with pytest.raises(ValueError, match='frame 7: 195 bytes, expected 196 for a raw 10x6 frame'):
    frame_storage.decode(raw[:-1], 'raw', what='frame 7')
  with pytest.raises(ValueError, match='holds raw bytes but the dataset.s metadata says its frames are png'):
    frame_storage.decode(raw, 'png')
  with pytest.raises(ValueError, match='holds unknown bytes'):
    frame_storage.decode(b'GIF89a' + bytes(20), 'png')
  with pytest.raises(ValueError, match="Unknown frame format 'webp'; expected one of raw, png"):
    frame_storage.encode(_frame(), 'webp')
  with pytest.raises(ValueError, match=r'expected uint8 \(H, W, 3\) RGB pixels, got float32'):
    frame_storage.encode(_frame().astype(np.float32), 'raw')


def test_stored_format_of_metadata():
  assert frame_storage.stored_format({'frame_format': 'raw'}) == 'raw'
  assert frame_storage.stored_format({'sequences': {}}) == 'png'  # built before formats were recorded
  with pytest.raises(ValueError, match="stores frames as 'webp'.*--overwrite"):
    frame_storage.stored_format({'frame_format': 'webp'})
