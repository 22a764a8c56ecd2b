"""16-bit RAW (Bayer mosaic) frames as single-channel TIFF files, the way BSD's full release stores them
(`BSD_<setting>/<split>/<seq>/{Blur,Sharp}/RAW/%08d.tiff`) and the official ESTRNN-RAW writes its outputs.

A RAW frame here is uint16 (H, W): one value per sensor pixel, in the full 0..65535 range, read bit for bit
(any byte order; uncompressed, LZW, deflate or PackBits, which is what OpenCV, Pillow and tifffile write).
Anything else (8-bit or 32-bit samples, several channels, several pages, not a TIFF) is refused with a
`RawFrameError` naming the file and what was found. Written frames are uncompressed little-endian TIFFs.
"""

from __future__ import annotations

import io
import os
import warnings

from etils import epath
import numpy as np
from PIL import Image

# Suffixes of RAW frame files.
SUFFIXES = ('.tiff', '.tif')
# Pillow's modes for 16-bit single-channel images (byte orders).
_MODES_16 = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_BITS_PER_SAMPLE, _SAMPLES_PER_PIXEL = 258, 277   # TIFF tags


class RawFrameError(ValueError):
  """A file is not a readable 16-bit single-channel TIFF; the message names it and what it holds instead."""


def read_tiff(source: str | os.PathLike | bytes, what: str | None = None) -> np.ndarray:
  """A 16-bit single-channel TIFF (a path or its bytes) -> uint16 (H, W), values as stored.

  `what` names the frame in errors (default: the path). Raises RawFrameError for a file that is not one.
  """
  what = what or str(source)
  try:
    data = source if isinstance(source, bytes) else _read_bytes(source)
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')   # Pillow warns about damaged tags before it fails on them; the error says it
      pixels = _decode(data, what)
  except RawFrameError:
    raise
  except Image.UnidentifiedImageError:
    raise RawFrameError(f'{what}: not an image file (unrecognised or truncated data); expected a 16-bit '
                        'single-channel TIFF (a RAW Bayer frame).') from None
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise RawFrameError(f'{what}: cannot read as a TIFF ({type(e).__name__}: {e}).') from None
  if pixels.ndim != 2 or pixels.size == 0:
    raise RawFrameError(f'{what}: decoded to shape {pixels.shape}; expected a non-empty (H, W) frame.')
  return pixels.astype(np.uint16)


def _read_bytes(path: str | os.PathLike) -> bytes:
  return epath.Path(path).read_bytes()


def _decode(data: bytes, what: str) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as image:
    if image.format != 'TIFF':
      raise RawFrameError(f'{what}: is {image.format or "not an image"}, not a TIFF; expected a 16-bit '
                          'single-channel TIFF (a RAW Bayer frame).')
    pages = getattr(image, 'n_frames', 1)
    samples = int(image.tag_v2.get(_SAMPLES_PER_PIXEL, 1))
    bits = tuple(np.atleast_1d(image.tag_v2.get(_BITS_PER_SAMPLE, (1,))).tolist())
    if pages != 1:
      raise RawFrameError(f'{what}: holds {pages} pages; expected one 16-bit single-channel frame.')
    if samples != 1:
      raise RawFrameError(f'{what}: has {samples} channels ({image.mode}); expected 1 (a RAW Bayer frame, '
                          '16-bit single-channel).')
    if bits != (16,) or image.mode not in _MODES_16:
      raise RawFrameError(f'{what}: has {"/".join(map(str, bits))}-bit samples ({image.mode}); expected 16-bit '
                          '(a RAW Bayer frame).')
    image.load()
    return np.asarray(image)


def encode_tiff(frame: np.ndarray) -> bytes:
  """uint16 (H, W) or (H, W, 1) -> the bytes of an uncompressed little-endian 16-bit TIFF (Pillow's `I;16`, which
  is also how the official test script hands its RAW mosaics to rawpy)."""
  frame = np.asarray(frame)
  if frame.ndim == 3 and frame.shape[-1] == 1:
    frame = frame[..., 0]
  if frame.dtype != np.uint16 or frame.ndim != 2:
    raise ValueError(f'expected a uint16 (H, W) or (H, W, 1) RAW frame, got {frame.dtype} {frame.shape}.')
  buffer = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(frame, dtype='<u2')).save(buffer, format='TIFF')
  return buffer.getvalue()


def is_raw_frame_file(path: str | os.PathLike) -> bool:
  """Whether `path` is named like a RAW frame file (by its suffix)."""
  return os.fspath(path).lower().endswith(SUFFIXES)
