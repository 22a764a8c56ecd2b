"""What the frame-pair builders share: folder scanning, frame validation and record writing.

Every dataset here is a set of videos, each a sequence of (blurry, sharp) uint8 RGB frame pairs. A
builder stores **one record per frame**, in (sequence, frame) order, in the format `estrnn_jax.records`
defines (features, sequence tables; frames in the `estrnn_jax.frame_storage` format chosen at build
time, bit-exact with the release's frames, a JPEG release's as Pillow decodes them), which the input
pipeline reads.

Bad input (missing folders, stray files in frame folders, blurry/sharp frames that do not pair up,
corrupt images, frame sizes that change inside a sequence) raises `InvalidDatasetError` naming the path.
TFDS writes a dataset into a temporary `*.incomplete*` folder and renames it only when every split is
written, so a failed build leaves nothing that looks like a dataset.
"""

from __future__ import annotations

import abc
import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
import concurrent.futures
import contextlib
import dataclasses
import io
import os
import re
from typing import Any, TypeVar
from unittest import mock

from array_record.python import array_record_module
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
import tqdm

from estrnn_jax import frame_storage
from estrnn_jax import raw_frames
from estrnn_jax import records
from estrnn_jax import video_io



# Frame file names: `<number>.png` (the releases' own naming); group 1 is the frame number.
PNG_FRAME_NAME = re.compile(r'(\d+)\.png')
# RAW (Bayer) frame file names: `<number>.tiff` (BSD's full release).
TIFF_FRAME_NAME = re.compile(r'(\d+)\.tiff')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_JPEG_SIGNATURE = b'\xff\xd8\xff'
_PNG_COLOR_TYPE_RGB = 2

_R = TypeVar('_R')


class InvalidDatasetError(ValueError):
  """The dataset on disk does not have the expected layout or content; the message names the path."""


# ---------------------------------------------------------------------------------------------------------
# Features and records.


def frame_dataset_info(builder: tfds.core.DatasetBuilder, homepage: str) -> tfds.core.DatasetInfo:
  """DatasetInfo of a frame-pair dataset: `frame_features()`, records kept in generation order, and an
  empty `MetadataDict` for the sequence tables; description and citation come from the builder's
  README.md and CITATIONS.bib."""
  return builder.dataset_info_from_configs(
      features=records.frame_features(),
      supervised_keys=('blur', 'sharp'),
      homepage=homepage,
      disable_shuffling=True,  # records stay in (sequence, frame) order
      metadata=tfds.core.MetadataDict(),
  )


def record_key(index: int, total: int) -> int:
  """The TFDS example key of record `index` (0-based) of a split with `total` records.

  With `disable_shuffling=True`, TFDS writes records sorted by their integer key, first distributing
  them over 1000 temporary buckets by key range (over the 128-bit key space) and later loading one
  bucket at a time into memory. Plain 0, 1, 2, ... keys would put a whole split into the first bucket
  (tens of GB for REDS); spacing the keys evenly over the key space keeps the order and spreads them.
  """
  if not 0 <= index < total:
    raise ValueError(f'record index {index} outside [0, {total})')
  return index << (128 - total.bit_length())


# ---------------------------------------------------------------------------------------------------------
# Folder scanning.


@dataclasses.dataclass(frozen=True)
class FrameSequence:
  """One sequence of a release: its name and its frame files, paired by frame number, sorted."""
  name: str
  blur: tuple[epath.Path, ...]
  sharp: tuple[epath.Path, ...]

  def __len__(self) -> int:
    return len(self.blur)


def _visible_entries(folder: epath.Path) -> list[epath.Path]:
  """Entries of `folder`, without hidden ones (.DS_Store and the like, left by file managers)."""
  return [p for p in folder.iterdir() if not p.name.startswith('.')]


def require_dir(path: epath.Path, what: str) -> epath.Path:
  if not path.is_dir():
    raise InvalidDatasetError(f'Missing {what}: {path} is not a folder.')
  return path


def find_release_dir(manual_dir: epath.PathLike, release_name: str, markers: Sequence[str]) -> epath.Path:
  """The release folder, given either the folder itself or its parent.

  Returns `manual_dir / release_name` if that folder exists, else `manual_dir` if it contains any of
  `markers` (the release's top-level folders), else raises naming what was expected.
  """
  manual_dir = epath.Path(manual_dir)
  if (manual_dir / release_name).is_dir():
    return manual_dir / release_name
  if any((manual_dir / marker).is_dir() for marker in markers):
    return manual_dir
  found = sorted(p.name for p in _visible_entries(manual_dir))[:10] if manual_dir.is_dir() else []
  raise InvalidDatasetError(
      f'{manual_dir} is neither the {release_name} release folder (with {", ".join(markers)}) nor its '
      f'parent; found {found if found else "nothing"}. See the dataset\'s manual download instructions.')


def list_sequence_dirs(split_dir: epath.Path) -> list[epath.Path]:
  """The sequence folders of a split folder, in natural order; anything else there is an error."""
  entries = _visible_entries(split_dir)
  stray = [p for p in entries if not p.is_dir()]
  if stray:
    raise InvalidDatasetError(f'Unexpected file {stray[0]}: {split_dir} should contain only sequence folders.')
  if not entries:
    raise InvalidDatasetError(f'No sequence folders in {split_dir}.')
  return sorted(entries, key=lambda p: video_io.natural_sort_key(p.name))


def frame_number(path: epath.Path, name_pattern: re.Pattern[str] = PNG_FRAME_NAME) -> int:
  """The frame number of a file named by `name_pattern` (group 1: the number)."""
  match = name_pattern.fullmatch(path.name)
  if match is None:
    raise InvalidDatasetError(f'{path} is not a frame file named like {name_pattern.pattern!r}.')
  return int(match.group(1))


def list_frames(folder: epath.Path, name_pattern: re.Pattern[str] = PNG_FRAME_NAME,
                expected: str = '<number>.png') -> list[epath.Path]:
  """The frame files of `folder` (named by `name_pattern`, group 1 the number), sorted by number
  (numerically, not by name).

  Raises if the folder is missing or empty, holds anything that is not a frame file (hidden files
  excepted), or two files with the same frame number (`7.png` and `007.png`). `expected` describes the
  names in the error message.
  """
  require_dir(folder, 'frame folder')
  frames: dict[int, epath.Path] = {}
  for path in _visible_entries(folder):
    match = name_pattern.fullmatch(path.name)
    if match is None or path.is_dir():
      raise InvalidDatasetError(
          f'Unexpected {"folder" if path.is_dir() else "file"} {path}: frame folders should contain only '
          f'{expected} frame files.')
    number = int(match.group(1))
    if number in frames:
      raise InvalidDatasetError(f'{path} and {frames[number]} have the same frame number {number}.')
    frames[number] = path
  if not frames:
    raise InvalidDatasetError(f'No frames in {folder}.')
  return [frames[number] for number in sorted(frames)]


def paired_sequence(name: str, blur_dir: epath.Path, sharp_dir: epath.Path,
                    name_pattern: re.Pattern[str] = PNG_FRAME_NAME, expected: str = '<number>.png'
                    ) -> FrameSequence:
  """Lists a sequence's blurry and sharp frames and checks that they pair up by frame number."""
  blur = list_frames(blur_dir, name_pattern, expected)
  sharp = list_frames(sharp_dir, name_pattern, expected)
  if len(blur) != len(sharp):
    raise InvalidDatasetError(f'Sequence {name}: {blur_dir} has {len(blur)} frames but {sharp_dir} has '
                              f'{len(sharp)}.')
  for blur_path, sharp_path in zip(blur, sharp):
    if frame_number(blur_path, name_pattern) != frame_number(sharp_path, name_pattern):
      raise InvalidDatasetError(f'Sequence {name}: frame numbers differ: blurry frame {blur_path} is paired '
                                f'with sharp frame {sharp_path}.')
  return FrameSequence(name=name, blur=tuple(blur), sharp=tuple(sharp))


# ---------------------------------------------------------------------------------------------------------
# Frames.


@dataclasses.dataclass(frozen=True)
class Frame:
  """A validated frame: its size, its pixels (when asked for, or when the file is not an 8-bit RGB PNG) and,
  as `png`, lossless 8-bit RGB PNG bytes (the file's own when it is one; encoded only when asked for)."""
  path: epath.Path
  height: int
  width: int
  pixels: np.ndarray | None = None  # uint8 (H, W, 3)
  file_png: bytes | None = None     # the file's bytes, when they are an 8-bit RGB PNG

  @property
  def size(self) -> str:
    return f'{self.width}x{self.height}'

  @property
  def png(self) -> bytes:
    return self.file_png if self.file_png is not None else frame_storage.encode(self.pixels, 'png')


def read_frame(path: epath.Path, with_pixels: bool = False) -> Frame:
  """Reads and fully decodes one frame (`.jpg`/`.jpeg`: JPEG, else PNG), checking that it is a readable
  8-bit image.

  8-bit RGB PNGs are kept byte for byte. Other 8-bit (or lower) PNGs -- grey, palette, or with an alpha
  channel that is fully opaque -- are converted to RGB losslessly and re-encoded. 16-bit PNGs and
  transparent pixels are errors (no lossless uint8 RGB form). JPEGs (colour or grey) are stored as the
  pixels Pillow decodes them to, so no second lossy step is added.
  """
  try:
    data = path.read_bytes()
  except OSError as e:
    raise InvalidDatasetError(f'Cannot read {path}: {e}') from e
  if path.suffix.lower() in ('.jpg', '.jpeg'):
    if data[:3] != _JPEG_SIGNATURE:
      raise InvalidDatasetError(f'{path} is not a JPEG file.')
    pixels = _decode_jpeg(path, data)
    return Frame(path, pixels.shape[0], pixels.shape[1], pixels)
  if data[:8] != _PNG_SIGNATURE or data[12:16] != b'IHDR':
    raise InvalidDatasetError(f'{path} is not a PNG file.')
  bit_depth, color_type = data[24], data[25]
  if bit_depth > 8:
    raise InvalidDatasetError(f'{path} is a {bit_depth}-bit PNG; expected 8-bit RGB frames.')
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      if color_type == _PNG_COLOR_TYPE_RGB and image.mode == 'RGB':
        pixels = np.asarray(image) if with_pixels else None
        width, height = image.size
        return Frame(path, height, width, pixels, file_png=data)
      rgba = np.asarray(image.convert('RGBA'))
  except Exception as e:  # pylint: disable=broad-except  # Pillow raises many types on damaged files
    raise InvalidDatasetError(f'{path} is unreadable or corrupt: {e}') from e
  if not np.all(rgba[..., 3] == 255):
    raise InvalidDatasetError(f'{path} has transparent pixels; expected opaque RGB frames.')
  pixels = np.ascontiguousarray(rgba[..., :3])
  return Frame(path, pixels.shape[0], pixels.shape[1], pixels)


def _decode_jpeg(path: epath.Path, data: bytes) -> np.ndarray:
  """JPEG bytes -> the uint8 (H, W, 3) RGB pixels of Pillow's decode (grey JPEGs repeated over RGB)."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      if image.mode not in ('RGB', 'L'):
        raise InvalidDatasetError(f'{path} is a {image.mode} JPEG; expected an RGB or greyscale one.')
      return np.asarray(image.convert('RGB'))
  except InvalidDatasetError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # Pillow raises many types on damaged files
    raise InvalidDatasetError(f'{path} is unreadable or corrupt: {e}') from e


PixelTransform = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class StoredPair:
  """A blurry/sharp pair ready for a record: their bytes in the dataset's frame format, and the size."""
  blur_path: epath.Path
  blur: bytes
  sharp: bytes
  height: int
  width: int

  @property
  def size(self) -> str:
    return f'{self.width}x{self.height}'


def _read_mosaic_pair(blur_path: epath.Path, sharp_path: epath.Path, sequence: str, frame_format: str
                      ) -> StoredPair:
  """Reads a blurry/sharp pair of 16-bit RAW (Bayer) TIFFs bit for bit, checks they have one size, and stores
  both in `frame_format` ('raw16')."""
  frames = []
  for path in (blur_path, sharp_path):
    try:
      frames.append(raw_frames.read_tiff(path))
    except raw_frames.RawFrameError as e:
      raise InvalidDatasetError(str(e)) from None
  (height, width), sharp_size = frames[0].shape, frames[1].shape
  if sharp_size != (height, width):
    raise InvalidDatasetError(f'Sequence {sequence}: {blur_path} is {width}x{height} but {sharp_path} is '
                              f'{sharp_size[1]}x{sharp_size[0]}; a blurry frame and its sharp frame must have the '
                              'same size.')
  blur, sharp = (frame_storage.encode(frame, frame_format) for frame in frames)
  return StoredPair(blur_path, blur, sharp, height, width)


def _read_pair(blur_path: epath.Path, sharp_path: epath.Path, sequence: str,
               transform: PixelTransform | None, frame_format: str) -> StoredPair:
  """Reads a blurry/sharp pair, checks they have one size, applies `transform` to both if given, and
  stores both in `frame_format` (a release's 8-bit RGB PNGs are kept byte for byte as 'png'; RAW TIFFs for a
  mosaic format, `_read_mosaic_pair`)."""
  if frame_format in frame_storage.MOSAIC_FORMATS:
    if transform is not None:
      raise ValueError('RAW (Bayer) frames take no pixel transform.')
    return _read_mosaic_pair(blur_path, sharp_path, sequence, frame_format)
  need_pixels = transform is not None or frame_format != 'png'
  blur = read_frame(blur_path, with_pixels=need_pixels)
  sharp = read_frame(sharp_path, with_pixels=need_pixels)
  if (blur.height, blur.width) != (sharp.height, sharp.width):
    raise InvalidDatasetError(f'Sequence {sequence}: {blur_path} is {blur.size} but {sharp_path} is '
                              f'{sharp.size}; a blurry frame and its sharp frame must have the same size.')
  if not need_pixels:
    return StoredPair(blur_path, blur.png, sharp.png, blur.height, blur.width)
  stored = []
  for frame in (blur, sharp):
    pixels = frame.pixels
    if transform is not None:
      try:
        pixels = transform(pixels)
      except ValueError as e:
        raise InvalidDatasetError(f'{frame.path}: {e}') from e
    stored.append(frame_storage.encode(pixels, frame_format))
  return StoredPair(blur_path, stored[0], stored[1], pixels.shape[0], pixels.shape[1])


def default_workers() -> int:
  """Threads for decoding / rendering: up to 4, never more than the machine's cores."""
  return max(1, min(4, os.cpu_count() or 1))


def ordered_prefetch(fn: Callable[..., _R], arg_tuples: Iterable[tuple[Any, ...]], workers: int
                      ) -> Iterator[_R]:
  """`fn(*args)` for each args, computed `workers` at a time in threads (Pillow's PNG decoding and
  zlib release the GIL), yielded in order; at most `2 * workers` results wait in memory."""
  arg_iter = iter(arg_tuples)
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    pending: collections.deque[concurrent.futures.Future[_R]] = collections.deque()

    def submit_next() -> None:
      args = next(arg_iter, None)
      if args is not None:
        pending.append(pool.submit(fn, *args))

    try:
      for _ in range(2 * workers):
        submit_next()
      while pending:
        result = pending.popleft().result()
        submit_next()
        yield result
    finally:  # on an error or an early close, do not start what is still queued
      for future in pending:
        future.cancel()


def generate_frame_records(sequences: Sequence[FrameSequence], *, description: str, frame_format: str,
                           transform: PixelTransform | None = None, workers: int | None = None
                           ) -> Iterator[tuple[int, dict[str, Any]]]:
  """Yields (key, example) for every frame of `sequences`, in (sequence, frame) order, with a progress bar.

  Checks every frame (readable PNG or JPEG, 8-bit, opaque; for a mosaic `frame_format`, a 16-bit single-channel
  TIFF), that a blurry frame and its sharp frame have the same
  size and that the size does not change inside a sequence; raises `InvalidDatasetError` naming the file.
  `transform` (uint8 (H, W, 3) -> uint8 (h, w, 3)) is applied to both images of every pair; frames are
  stored in `frame_format` (see `estrnn_jax.frame_storage`).
  """
  frame_storage.check_format(frame_format)
  total = sum(len(s) for s in sequences)
  workers = workers or default_workers()
  jobs = ((blur, sharp, seq.name, transform, frame_format)
          for seq in sequences for blur, sharp in zip(seq.blur, seq.sharp))
  index = 0
  with contextlib.closing(ordered_prefetch(_read_pair, jobs, workers)) as pairs, \
       tqdm.tqdm(total=total, desc=description, unit=' frames', mininterval=1.0) as progress:
    for seq in sequences:
      first: StoredPair | None = None
      for frame_index in range(len(seq)):
        pair = next(pairs)
        if first is None:
          first = pair
        elif (pair.height, pair.width) != (first.height, first.width):
          raise InvalidDatasetError(f'Sequence {seq.name}: frames of different sizes: {pair.blur_path} is '
                                    f'{pair.size} but {first.blur_path} is {first.size}.')
        yield record_key(index, total), records.make_example(seq.name, frame_index, len(seq), pair.blur,
                                                             pair.sharp)
        index += 1
        progress.update(1)


# ---------------------------------------------------------------------------------------------------------
# Base builders.


# ArrayRecord options of the files the builders write: one record per chunk (random access), and no
# compression. TFDS's own writer leaves ArrayRecord's default zstd on, which saves ~8% on photo-like raw
# frames and nothing on PNGs, but makes every read decompress the record: ~11 ms of CPU per 480x640 frame
# pair, 50x what reading it uncompressed costs. Readers take the options from the file.
ARRAY_RECORD_OPTIONS = 'group_size:1,uncompressed'


class _UncompressedArrayRecordAdapter(file_adapters.ArrayRecordFileAdapter):
  """TFDS's ArrayRecord file adapter, writing with ARRAY_RECORD_OPTIONS."""

  @classmethod
  def write_examples(cls, path, iterator):
    writer = array_record_module.ArrayRecordWriter(os.fspath(path), ARRAY_RECORD_OPTIONS)
    try:
      for _, serialized_example in iterator:
        writer.write(serialized_example)
    finally:
      writer.close()


class FrameDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of every frame-pair builder: the frame format option and its record in the metadata.

  `frame_format` ('raw' or 'png' for RGB frames, 'raw16' for RAW ones, see `estrnn_jax.frame_storage`; None: the
  default for the dataset's kind, `holds_raw_frames()`) is how a new build stores its frames. A prepared dataset's own format is `stored_frame_format()`, read from its
  metadata, whatever the builder was constructed with. ArrayRecord files are written uncompressed
  (`ARRAY_RECORD_OPTIONS`).
  """

  def __init__(self, *, frame_format: str | None = None, **kwargs):
    self.frame_format = frame_storage.check_format(frame_format or frame_storage.DEFAULT_FORMAT)
    super().__init__(**kwargs)
    config = f'/{self.builder_config.name}' if self.builder_config else ''
    self.frame_format = frame_storage.check_pixels(frame_format, mosaic=self.holds_raw_frames(),
                                                   what=f'{self.name}{config}')

  def holds_raw_frames(self) -> bool:
    """Whether this dataset (config) holds 16-bit RAW (Bayer) frames (`frame_storage.MOSAIC_FORMATS`) rather
    than 8-bit RGB ones."""
    return False

  def download_and_prepare(self, *args, **kwargs):  # pylint: disable=arguments-differ
    array_record = tfds.core.FileFormat.ARRAY_RECORD
    with mock.patch.dict(file_adapters.ADAPTER_FOR_FORMAT, {array_record: _UncompressedArrayRecordAdapter}):
      return super().download_and_prepare(*args, **kwargs)

  def stored_frame_format(self) -> str:
    """The prepared dataset's frame format (datasets built before formats existed hold PNG)."""
    return frame_storage.stored_format(self.info.metadata)

  def _record_frame_format(self) -> None:
    """Called by `_split_generators`: writes this build's frame format into the metadata."""
    self.info.metadata[frame_storage.METADATA_KEY] = self.frame_format


class PairedFramesBuilder(FrameDatasetBuilder, skip_registration=True):
  """Base of the builders that read a release's folder tree of blurry/sharp PNG or JPEG frames.

  Subclasses set `HOMEPAGE`, `VERSION`, `RELEASE_NOTES`, `MANUAL_DOWNLOAD_INSTRUCTIONS` and implement
  `_find_sequences`; they may override `_pixel_transform`.
  """

  HOMEPAGE: str = ''

  def _info(self) -> tfds.core.DatasetInfo:
    return frame_dataset_info(self, self.HOMEPAGE)

  @abc.abstractmethod
  def _find_sequences(self, manual_dir: epath.Path) -> dict[str, list[FrameSequence]]:
    """Scans the release under `manual_dir` -> {split: sequences in record order}; raises on bad layout."""

  def _pixel_transform(self) -> PixelTransform | None:
    """A transform applied to every frame (both images), or None to keep the release's PNGs as they are."""
    return None

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    splits = self._find_sequences(epath.Path(dl_manager.manual_dir))
    records.set_sequence_tables(self.info, {split: records.build_sequence_table((s.name, len(s)) for s in sequences)
                                            for split, sequences in splits.items()})
    self._record_frame_format()
    return {split: self._generate_examples(sequences, split) for split, sequences in splits.items()}

  def _generate_examples(self, sequences: Sequence[FrameSequence], split: str):
    config = f'/{self.builder_config.name}' if self.builder_config else ''
    yield from generate_frame_records(sequences, description=f'{self.name}{config} {split}',
                                      frame_format=self.frame_format, transform=self._pixel_transform())
