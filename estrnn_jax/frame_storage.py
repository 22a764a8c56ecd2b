"""How a frame's pixels are stored in a dataset record: the formats, their bytes, and reading them back.

Every frame (a blurry or a sharp image) of a TFDS frame dataset is one bytes value in its record, in
the dataset's frame format, chosen when the dataset is built (`python -m datasets.build --frame_format`)
and recorded under `METADATA_KEY` in the dataset's metadata:

  raw  (default)  16-byte header `RAW_MAGIC, height, width` (uint32 little-endian) + the uint8 (H, W, 3)
                  RGB pixels in row-major order. Reading a crop is a slice of the record's bytes: no
                  decoding, no conversion (~0.01 ms for 256x256).
  png             a lossless 8-bit RGB PNG (the release's own bytes when they already are). 10-25% smaller
                  than raw on photo-like frames, but every read decodes the whole frame (7-20 ms for
                  480x640 - 720x1280; see `benchmarks/frame_format_benchmark.py`).
  raw16           RAW (Bayer mosaic) frames: a 16-byte header `RAW16_MAGIC, height, width` + the uint16 (H, W)
                  samples, little-endian, row-major; read back as uint16 (H, W, 1). The only format of the RAW
                  datasets (`bsd/<setting>_raw`), and only theirs (`MOSAIC_FORMATS`).

Both are bit-exact with the source frames. Datasets built before the format was recorded (no
`METADATA_KEY`) hold PNG; `stored_format` reads them as such. Each record's bytes also say what they
are (the raw header, the PNG signature), and `decode` checks that they agree with the dataset's format,
so a record is never read in the wrong format.
"""

from __future__ import annotations

from collections.abc import Mapping
import io
import struct
from typing import Any

import numpy as np
from PIL import Image

# Key of the frame format in `DatasetInfo.metadata` (metadata.json).
METADATA_KEY = 'frame_format'
# The formats of 8-bit RGB frames (every dataset but the RAW ones), and of 16-bit single-channel RAW (Bayer) frames.
FORMATS = ('raw', 'png')
MOSAIC_FORMATS = ('raw16',)
DEFAULT_FORMAT = 'raw'
# The format of datasets built before METADATA_KEY existed.
LEGACY_FORMAT = 'png'

RAW_MAGIC = b'RGB8raw\x00'
RAW16_MAGIC = b'RAW16le\x00'
_RAW_HEADER = struct.Struct('<8sII')  # magic, height, width
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

# A crop of a frame: (top, left, height, width) in pixels.
Crop = tuple[int, int, int, int]


def check_format(frame_format: str) -> str:
  """Returns `frame_format` if it is one of FORMATS or MOSAIC_FORMATS; raises ValueError naming the choices."""
  if frame_format not in FORMATS + MOSAIC_FORMATS:
    raise ValueError(f'Unknown frame format {frame_format!r}; expected one of {", ".join(FORMATS + MOSAIC_FORMATS)}.')
  return frame_format


def check_pixels(frame_format: str | None, *, mosaic: bool, what: str) -> str:
  """The format `what` (a dataset) stores its frames in: `frame_format`, or the default for its kind (None).

  `mosaic`: the dataset holds 16-bit RAW frames (MOSAIC_FORMATS) rather than 8-bit RGB ones (FORMATS).
  Raises ValueError for a format that cannot hold that kind of frame.
  """
  allowed = MOSAIC_FORMATS if mosaic else FORMATS
  if frame_format is None:
    return allowed[0] if mosaic else DEFAULT_FORMAT
  if check_format(frame_format) not in allowed:
    kind = '16-bit RAW (Bayer) frames' if mosaic else '8-bit RGB frames'
    raise ValueError(f'{what} holds {kind}, which frame format {frame_format!r} cannot store; use '
                     f'{" or ".join(allowed)}.')
  return frame_format


def stored_format(metadata: Mapping[str, Any] | None) -> str:
  """The frame format recorded in a dataset's metadata; LEGACY_FORMAT when none is recorded.

  Raises ValueError for a format this code does not know (a dataset built by a newer version).
  """
  try:
    frame_format = metadata[METADATA_KEY] if metadata is not None else LEGACY_FORMAT
  except KeyError:
    return LEGACY_FORMAT
  if frame_format not in FORMATS + MOSAIC_FORMATS:
    raise ValueError(f'The dataset stores frames as {frame_format!r}, which this version cannot read '
                     f'(it reads {", ".join(FORMATS + MOSAIC_FORMATS)}); rebuild it with `python -m datasets.build ... --overwrite`.')
  return frame_format


def encode(pixels: np.ndarray, frame_format: str) -> bytes:
  """uint8 (H, W, 3) RGB (uint16 (H, W) or (H, W, 1) RAW for 'raw16') -> the record bytes of `frame_format`
  (deterministic)."""
  pixels = np.asarray(pixels)
  if check_format(frame_format) == 'raw16':
    if pixels.ndim == 3 and pixels.shape[2] == 1:
      pixels = pixels[..., 0]
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
      raise ValueError(f'expected uint16 (H, W) or (H, W, 1) RAW pixels, got {pixels.dtype} {pixels.shape}')
    return (_RAW_HEADER.pack(RAW16_MAGIC, *pixels.shape)
            + np.ascontiguousarray(pixels, dtype='<u2').tobytes())
  if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
    raise ValueError(f'expected uint8 (H, W, 3) RGB pixels, got {pixels.dtype} {pixels.shape}')
  height, width, _ = pixels.shape
  if check_format(frame_format) == 'raw':
    return _RAW_HEADER.pack(RAW_MAGIC, height, width) + np.ascontiguousarray(pixels).tobytes()
  buffer = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(pixels), 'RGB').save(buffer, format='PNG')
  return buffer.getvalue()


def _detect(data: bytes) -> str:
  if data[:len(RAW_MAGIC)] == RAW_MAGIC:
    return 'raw'
  if data[:len(RAW16_MAGIC)] == RAW16_MAGIC:
    return 'raw16'
  if data[:len(_PNG_SIGNATURE)] == _PNG_SIGNATURE:
    return 'png'
  return 'unknown'


def _check(data: bytes, frame_format: str, what: str) -> None:
  found = _detect(data)
  if found != frame_format:
    raise ValueError(f'{what}: the record holds {found} bytes but the dataset\'s metadata says its frames are '
                     f'{frame_format}; the dataset is damaged or mixed (rebuild it with `python -m '
                     'datasets.build ... --overwrite`).')


def decode_record(record: Mapping[str, Any], frame_format: str) -> dict[str, Any]:
  """A frame record (from `tfds.data_source`) with its 'blur' and 'sharp' frames decoded to uint8 (H, W, 3)
  (uint16 (H, W, 1) for 'raw16')."""
  out = dict(record)
  for key in ('blur', 'sharp'):
    out[key] = decode(record[key], frame_format, what=f'the {key} frame')
  return out


def frame_size(data: bytes, frame_format: str, what: str = 'frame') -> tuple[int, int]:
  """(height, width) of a stored frame, read from its header (no decoding)."""
  _check(data, frame_format, what)
  if frame_format in ('raw', 'raw16'):
    _, height, width = _RAW_HEADER.unpack_from(data)
  else:  # PNG: the IHDR chunk follows the signature; width then height, big-endian.
    width, height = struct.unpack_from('>II', data, 16)
  return height, width


def decode(data: bytes, frame_format: str, crop: Crop | None = None, what: str = 'frame') -> np.ndarray:
  """Record bytes -> uint8 (H, W, 3) RGB (uint16 (H, W, 1) RAW for 'raw16'), or its `crop` (top, left, height,
  width) only.

  For 'raw' and 'raw16' the result is a read-only view of `data` (a crop is a strided view: copy or stack it to own
  it); for 'png' the whole frame is decoded and then cropped. `what` names the frame in errors.
  """
  _check(data, frame_format, what)
  height, width = frame_size(data, frame_format, what)
  if frame_format == 'raw':
    expected = _RAW_HEADER.size + height * width * 3
    if len(data) != expected:
      raise ValueError(f'{what}: {len(data)} bytes, expected {expected} for a raw {width}x{height} frame.')
    pixels = np.frombuffer(data, np.uint8, offset=_RAW_HEADER.size).reshape(height, width, 3)
  elif frame_format == 'raw16':
    expected = _RAW_HEADER.size + height * width * 2
    if len(data) != expected:
      raise ValueError(f'{what}: {len(data)} bytes, expected {expected} for a raw16 {width}x{height} frame.')
    pixels = np.frombuffer(data, '<u2', offset=_RAW_HEADER.size).reshape(height, width, 1)
  else:
    try:
      with Image.open(io.BytesIO(data)) as image:
        if image.mode != 'RGB':
          raise ValueError(f'mode {image.mode}, expected RGB')
        pixels = np.asarray(image)
    except Exception as e:  # pylint: disable=broad-except  # Pillow raises many types on damaged data
      raise ValueError(f'Cannot decode {what}: {e}') from e
  if crop is None:
    return pixels
  top, left, crop_height, crop_width = crop
  if top < 0 or left < 0 or top + crop_height > height or left + crop_width > width:
    raise ValueError(f'{what}: crop {crop} (top, left, height, width) is outside the {width}x{height} frame.')
  return pixels[top:top + crop_height, left:left + crop_width]
