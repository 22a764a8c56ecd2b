"""Video files and frame folders in and out, as RGB frames (H, W, 3), for `estrnn_jax.deblur`.

Reading: any container/codec PyAV's bundled FFmpeg decodes (mp4, mov, mkv, avi, webm, ...), or a folder of
PNG/JPEG frames sorted numerically (`2.png` before `10.png`). Frames are decoded lazily, so memory does not
grow with the video's length.

Frames are uint8, except that a folder of 16-bit grey PNGs reads as uint16 (1000 stays 1000 / 65535, never
saturated); writers take uint8 or uint16 and store 8 bits per channel.

RAW frames (for ESTRNN-RAW): a folder of 16-bit single-channel TIFFs (`.tiff`/`.tif`, as BSD's `RAW/` folders)
reads as uint16 (H, W, 1) Bayer frames, bit for bit (`estrnn_jax.raw_frames`), and a folder writer given such
frames writes them as 16-bit TIFFs. They are never expanded to RGB, and a video cannot hold them.

Writing: videos (`.mp4`, `.mov`, `.mkv`, `.avi`) are H.264 via libx264 when PyAV's FFmpeg has it (it does in
the PyPI wheels), else MPEG-4 Part 2. H.264 4:2:0 cannot represent odd widths or heights (its chroma is
subsampled 2x2, and so is its cropping), so odd-sized videos are written as H.264 4:4:4 (`yuv444p`, a
"High 4:4:4" stream that FFmpeg, VLC and most desktop players play; some browsers do not): the output keeps the
input size exactly, never padded. Frame folders are written as PNG (lossless). The frame rate and the display
rotation of a video input are carried over to a video output.

Every writer writes to a temporary name next to the destination and moves it into place only in `commit()`,
so an interrupted or failed run never leaves an output that looks complete. `abort()` removes the temporary.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import pathlib
import re
from collections.abc import Iterator, Sequence

import av
import numpy as np
from PIL import Image

from estrnn_jax import atomic
from estrnn_jax import images
from estrnn_jax import raw_frames

VIDEO_SUFFIXES = ('.mp4', '.mov', '.mkv', '.avi', '.webm', '.m4v')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
WRITABLE_VIDEO_SUFFIXES = ('.mp4', '.mov', '.mkv', '.avi')
DEFAULT_FOLDER_FPS = fractions.Fraction(30)


class VideoIOError(Exception):
  """A video or frame folder cannot be read or written; the message names the path and the problem."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What a reader knows about its frames before decoding them all.

  Attributes:
    height, width: frame size in pixels (of the stored frames; see `rotation`).
    fps: frame rate, frames per second (exact rational, e.g. 30000/1001).
    num_frames: the number of frames, or None when the container does not say (known exactly for folders).
    rotation: display rotation in degrees counter-clockwise (phone videos carry one); 0 for folders.
    frame_names: file names of a folder's frames, in order; None for videos.
  """
  height: int
  width: int
  fps: fractions.Fraction
  num_frames: int | None
  rotation: int = 0
  frame_names: tuple[str, ...] | None = None


def natural_sort_key(name: str) -> tuple:
  """Sort key that orders the digit runs of a name numerically: 'f2.png' < 'f10.png'."""
  return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r'(\d+)', name))


class FrameReader:
  """Iterates over the frames of a video file or a frame folder: (H, W, 3) RGB, uint8 (uint16 for a folder of
  16-bit grey PNGs, whose values are kept). Grey frames are expanded to RGB; RGBA frames must be fully opaque.
  A folder of RAW TIFFs gives uint16 (H, W, 1) Bayer frames instead (`channels` 1).

  Opening decodes the first frame, so an unreadable, corrupt or empty input fails here, before any work.
  Iterating yields every frame once (at most `max_frames`), in order.
  """

  def __init__(self, path: str | os.PathLike, *, max_frames: int | None = None,
               fps: fractions.Fraction | float | None = None):
    """Opens `path` (a video file or a folder of PNG/JPEG frames).

    Args:
      path: the input.
      max_frames: read at most this many frames (None: all).
      fps: frame rate to report for a folder (default 30) or to override a video's.
    Raises:
      VideoIOError: missing path, unreadable or corrupt data, no video stream, no frames.
    """
    self.path = pathlib.Path(path)
    if max_frames is not None and max_frames < 1:
      raise ValueError(f'max_frames must be >= 1, got {max_frames}.')
    self._max_frames = max_frames
    self._container = None
    if not self.path.exists():
      raise VideoIOError(f'{self.path}: no such file or directory.')
    if self.path.is_dir():
      self._files = _list_frame_files(self.path)
      self._read = _read_raw if raw_frames.is_raw_frame_file(self._files[0]) else _read_image
      first = self._read(self._files[0])
      self._frames = self._folder_frames(first)
      count = len(self._files) if max_frames is None else min(len(self._files), max_frames)
      rate = fractions.Fraction(fps).limit_denominator(1001) if fps else DEFAULT_FOLDER_FPS
      names = tuple(f.name for f in self._files[:count])
      self.info = VideoInfo(first.shape[0], first.shape[1], rate, count, 0, names)
    else:
      first, rotation, rate, count = self._open_video()
      if fps:
        rate = fractions.Fraction(fps).limit_denominator(1001)
      if count is not None and max_frames is not None:
        count = min(count, max_frames)
      self.info = VideoInfo(first.shape[0], first.shape[1], rate, count, rotation)
      self._frames = self._video_frames(first)
    self._first = first

  def _open_video(self):
    try:
      self._container = av.open(str(self.path))
    except (av.FFmpegError, OSError) as e:
      raise VideoIOError(f'{self.path}: cannot open as a video ({_describe(e)}).') from None
    if not self._container.streams.video:
      self.close()
      raise VideoIOError(f'{self.path}: contains no video stream (not a video, or an empty/truncated file).')
    stream = self._container.streams.video[0]
    stream.thread_type = 'AUTO'
    self._stream = stream
    self._decoded = self._decode(stream)
    first = next(self._decoded, None)
    if first is None:
      self.close()
      raise VideoIOError(f'{self.path}: the video stream has no decodable frames (empty video).')
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
      rate = DEFAULT_FOLDER_FPS
    count = int(stream.frames) if stream.frames else None
    return first[0], first[1], fractions.Fraction(rate), count

  def _decode(self, stream) -> Iterator[tuple[np.ndarray, int]]:
    index = 0
    try:
      for frame in self._container.decode(stream):
        yield frame.to_ndarray(format='rgb24'), int(round(frame.rotation or 0))
        index += 1
    except (av.FFmpegError, OSError) as e:
      raise VideoIOError(f'{self.path}: decoding failed at frame {index} ({_describe(e)}).') from None

  def _video_frames(self, first: np.ndarray) -> Iterator[np.ndarray]:
    yield first
    for index, (frame, _) in enumerate(self._decoded, start=1):
      if self._max_frames is not None and index >= self._max_frames:
        return
      if frame.shape != first.shape:
        raise VideoIOError(f'{self.path}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, but the video '
                           f'started at {first.shape[1]}x{first.shape[0]} (size changes are not supported).')
      yield frame

  def _folder_frames(self, first: np.ndarray) -> Iterator[np.ndarray]:
    yield first
    for index, file in enumerate(self._files[1:], start=1):
      if self._max_frames is not None and index >= self._max_frames:
        return
      frame = self._read(file)
      if frame.dtype != first.dtype:
        raise VideoIOError(f'{file}: is {_depth(frame)}, but {self._files[0].name} is {_depth(first)}; all frames '
                           'of a folder must have one bit depth.')
      if frame.shape != first.shape:
        raise VideoIOError(f'{file}: is {frame.shape[1]}x{frame.shape[0]}, but {self._files[0].name} is '
                           f'{first.shape[1]}x{first.shape[0]}; all frames of a folder must have one size.')
      yield frame

  @property
  def dtype(self) -> np.dtype:
    """The frames' dtype: uint8, or uint16 for a folder of 16-bit grey PNGs or RAW TIFFs."""
    return self._first.dtype

  @property
  def channels(self) -> int:
    """Channels of the frames: 3 (RGB), or 1 for a folder of RAW (Bayer) TIFFs."""
    return self._first.shape[-1]

  def __iter__(self) -> Iterator[np.ndarray]:
    return self._frames

  def close(self) -> None:
    if self._container is not None:
      self._container.close()
      self._container = None

  def __enter__(self) -> FrameReader:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> tuple[np.ndarray, VideoInfo]:
  """Reads a whole video or frame folder into memory: (T, H, W, 3) RGB (uint8; uint16 for 16-bit grey PNGs), and its `VideoInfo`."""
  with FrameReader(path, max_frames=max_frames) as reader:
    frames = np.stack(list(reader))
  return frames, dataclasses.replace(reader.info, num_frames=len(frames))


def _list_frame_files(folder: pathlib.Path) -> list[pathlib.Path]:
  files = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES + raw_frames.SUFFIXES and f.is_file()]
  if not files:
    raise VideoIOError(f'{folder}: no frames in this folder (expected files ending in '
                       f'{", ".join(IMAGE_SUFFIXES + raw_frames.SUFFIXES)}).')
  raw = [f for f in files if raw_frames.is_raw_frame_file(f)]
  if raw and len(raw) != len(files):
    other = next(f for f in files if not raw_frames.is_raw_frame_file(f))
    raise VideoIOError(f'{folder}: mixes RAW frames ({raw[0].name}) with PNG/JPEG frames ({other.name}); a folder '
                       'holds one kind.')
  return sorted(files, key=lambda f: natural_sort_key(f.name))


def _read_raw(file: pathlib.Path) -> np.ndarray:
  """One RAW frame file -> uint16 (H, W, 1), as stored."""
  try:
    return raw_frames.read_tiff(file)[..., None]
  except raw_frames.RawFrameError as e:
    raise VideoIOError(str(e)) from None


def _depth(frame: np.ndarray) -> str:
  return '16-bit' if frame.dtype == np.uint16 else '8-bit'


# Pillow modes read as they are stored (8-bit grey, RGB, RGBA; 16-bit grey), and those converted first.
_NATIVE_MODES = ('L', 'RGB', 'RGBA', 'I;16', 'I;16L', 'I;16B', 'I;16N')
_CONVERTED_MODES = {'1': 'L', 'P': 'RGBA', 'PA': 'RGBA', 'CMYK': 'RGB', 'YCbCr': 'RGB', 'LAB': 'RGB', 'HSV': 'RGB',
                    'LA': 'RGBA', 'La': 'RGBA', 'RGBa': 'RGBA', 'RGBX': 'RGB'}


def _read_image(file: pathlib.Path) -> np.ndarray:
  """One image file -> (H, W, 3) RGB, uint8, or uint16 for a 16-bit grey PNG (values kept, not saturated).

  Grey is expanded to RGB; an alpha channel must be fully opaque (the model cannot represent transparency).
  Pillow reads 16-bit RGB PNGs as 8-bit RGB (the high byte), which keeps their range.
  """
  try:
    with Image.open(file) as image:
      image.load()
      mode = image.mode
      if mode in _CONVERTED_MODES:
        image = image.convert(_CONVERTED_MODES[mode])
      elif mode == 'I':   # 32-bit integer grey: 16-bit PNG data in older Pillow versions
        pixels = np.asarray(image)
        if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
          raise VideoIOError(f'{file}: 32-bit integer image with values outside 0..65535; expected 8- or '
                             '16-bit frames.')
        return images.to_rgb(pixels.astype(np.uint16)[..., None], 65535, str(file))
      elif mode not in _NATIVE_MODES:
        raise VideoIOError(f'{file}: unsupported image mode {mode!r}; expected 8-bit grey/RGB(A) or 16-bit grey.')
      pixels = np.asarray(image)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise VideoIOError(f'{file}: cannot read as an image ({_describe(e)}).') from None
  if pixels.dtype != np.uint8:   # 16-bit grey, in whatever byte order the file had
    pixels = pixels.astype(np.uint16)
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  try:
    return images.to_rgb(pixels, float(np.iinfo(pixels.dtype).max), str(file))
  except ValueError as e:
    raise VideoIOError(str(e)) from None


def _describe(error: BaseException) -> str:
  text = str(error).strip()
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


# --------------------------------------------------------------------------------------------------------------
# Writers.


def _as_uint8(frame: np.ndarray) -> np.ndarray:
  """Writers store 8 bits per channel: uint16 frames (from 16-bit inputs) are rounded to uint8."""
  return images.uint16_to_uint8(frame) if frame.dtype == np.uint16 else frame


def is_video_path(path: str | os.PathLike) -> bool:
  """True when `path` names a video file by its suffix (else it is treated as a frame folder)."""
  return pathlib.Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_output_name(path: str | os.PathLike) -> None:
  """Raises VideoIOError for an output name that no writer makes: a suffix that is neither a writable video
  container nor part of an existing folder's name (`out.gif`, `out.png`, `out.webm`)."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix in WRITABLE_VIDEO_SUFFIXES or path.is_dir() or not _FILE_SUFFIX.fullmatch(suffix):
    return
  raise VideoIOError(f'{path}: no writer makes {suffix} files; name a video ({", ".join(WRITABLE_VIDEO_SUFFIXES)}) '
                     'or a folder for PNG frames (a name without a suffix).')


_FILE_SUFFIX = re.compile(r'\.[a-z][a-z0-9]{1,4}')


def _reason(error: BaseException) -> str:
  """The cause of an OS or FFmpeg error without the file name it carries (which may be a temporary's)."""
  return getattr(error, 'strerror', None) or _describe(error)


def _prepare_destination(path: pathlib.Path, overwrite: bool) -> None:
  if path.exists() and not overwrite:
    raise VideoIOError(f'{path}: already exists (pass --overwrite to replace it).')
  if path.exists() and path.is_dir() != (not is_video_path(path)):
    kind = 'a folder' if path.is_dir() else 'a file'
    raise VideoIOError(f'{path}: already exists as {kind}; refusing to replace it with the other kind.')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise VideoIOError(f'{path}: cannot create the output folder {path.parent} ({_reason(e)}).') from None
  atomic.remove_stale_temporaries(path)


class _Writer:
  """Base: frames go to `self.temporary`; `commit()` moves it to `self.path`, `abort()` deletes it.

  Every error names `self.path`, the user's output, never the temporary.
  """

  path: pathlib.Path
  temporary: pathlib.Path
  num_written: int

  def write(self, frame: np.ndarray) -> None:
    raise NotImplementedError

  def _finish(self) -> None:
    raise NotImplementedError

  def commit(self) -> None:
    """Finishes the file(s) and moves them to the destination (replacing an existing one)."""
    try:
      self._finish()
      atomic.move_into_place(self.temporary, self.path)
    except OSError as e:
      self.abort()
      raise VideoIOError(f'{self.path}: cannot write the finished output ({_reason(e)}); nothing was written '
                         'there.') from None
    except BaseException:
      self.abort()
      raise

  def abort(self) -> None:
    """Removes whatever was written; the destination is left untouched. Never raises (it runs while another
    error, Ctrl-C or SIGTERM unwinds)."""
    try:
      self._finish()
    except Exception:  # pylint: disable=broad-except
      pass  # The output is being discarded; a failure to finalise it does not matter.
    atomic.remove(self.temporary)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is None:
      self.commit()
    else:
      self.abort()


class VideoWriter(_Writer):
  """Encodes uint8 (H, W, 3) RGB frames to a video file (H.264 if available, else MPEG-4 Part 2)."""

  def __init__(self, path: str | os.PathLike, *, height: int, width: int, fps: fractions.Fraction | float,
               rotation: int = 0, crf: int = 18, overwrite: bool = False):
    """Creates the temporary file and the encoder; fails early (VideoIOError) if either cannot be made.

    Args:
      path: destination; its suffix picks the container (`.mp4`, `.mov`, `.mkv`, `.avi`).
      height, width: frame size; any size, odd included (see the module docstring).
      fps: frame rate.
      rotation: display rotation (degrees counter-clockwise) to record in the container.
      crf: H.264 constant rate factor (0 lossless .. 51; 18 is visually near-lossless).
      overwrite: replace an existing destination.
    """
    self.path = pathlib.Path(path)
    if self.path.suffix.lower() not in WRITABLE_VIDEO_SUFFIXES:
      raise VideoIOError(f'{self.path}: cannot write this container; use one of '
                         f'{", ".join(WRITABLE_VIDEO_SUFFIXES)}, or a folder name for PNG frames.')
    _prepare_destination(self.path, overwrite)
    self.height, self.width = height, width
    self.num_written = 0
    # Hidden, with the suffix kept so FFmpeg picks the container from it.
    self.temporary = pathlib.Path(atomic.temporary_path(self.path))
    self._container = None
    try:
      self._container = av.open(str(self.temporary), mode='w')
      self.codec, self.pix_fmt = choose_codec(height, width)
      rate = fractions.Fraction(fps).limit_denominator(1001)
      self._stream = self._container.add_stream(self.codec, rate=rate)
      self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, self.pix_fmt
      if self.codec == 'libx264':
        self._stream.options = {'crf': str(crf), 'preset': 'medium'}
      else:
        # MPEG-4 Part 2 at fixed quantiser 2 (FFmpeg's `-q:v 2`, near-best quality); lambda = q * FF_QP2LAMBDA.
        self._stream.options = {'flags': '+qscale', 'global_quality': str(2 * 118)}
      if rotation:
        self._stream.set_display_rotation(rotation)
      self._rate = rate
      self._container.start_encoding()   # opens the file now (FFmpeg would wait for the first packet)
    except (av.FFmpegError, OSError) as e:
      self.abort()
      raise VideoIOError(f'{self.path}: cannot create the video file ({_reason(e)}).') from None

  def write(self, frame: np.ndarray) -> None:
    if frame.ndim == 3 and frame.shape[-1] == 1:
      raise VideoIOError(f'{self.path}: RAW (Bayer) frames cannot be written as a video; give a folder name, '
                         'for 16-bit TIFF frames.')
    frame = _as_uint8(frame)
    if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
      raise ValueError(f'{self.path}: expected a uint8 frame of shape {(self.height, self.width, 3)}, '
                       f'got {frame.dtype} {frame.shape}.')
    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format='rgb24')
    video_frame.pts = self.num_written       # in frame intervals; the muxer rescales to its time base
    video_frame.time_base = 1 / self._rate
    try:
      for packet in self._stream.encode(video_frame):
        self._container.mux(packet)
    except (av.FFmpegError, OSError) as e:
      raise VideoIOError(f'{self.path}: writing frame {self.num_written} failed ({_reason(e)}).') from None
    self.num_written += 1

  def _finish(self) -> None:
    if self._container is None:
      return
    container, self._container = self._container, None
    try:
      for packet in self._stream.encode():
        container.mux(packet)
      container.close()
    except (av.FFmpegError, OSError) as e:
      try:
        container.close()
      except (av.FFmpegError, OSError):
        pass
      raise VideoIOError(f'{self.path}: finishing the video failed ({_reason(e)}).') from None


def choose_codec(height: int, width: int) -> tuple[str, str]:
  """(codec, pix_fmt) for a frame size: libx264 4:2:0, or 4:4:4 for odd sizes; else mpeg4 4:2:0."""
  if 'libx264' in av.codecs_available:
    return 'libx264', ('yuv420p' if height % 2 == 0 and width % 2 == 0 else 'yuv444p')
  return 'mpeg4', 'yuv420p'


class FolderWriter(_Writer):
  """Writes uint8 (H, W, 3) RGB frames as PNGs into a folder, named `names[i]` (suffix -> .png) or `%08d.png`;
  with `raw`, uint16 (H, W, 1) RAW frames as 16-bit TIFFs (suffix -> .tiff)."""

  def __init__(self, path: str | os.PathLike, *, names: Sequence[str] | None = None, overwrite: bool = False,
               raw: bool = False):
    self.path = pathlib.Path(path)
    if self.path.suffix.lower() in VIDEO_SUFFIXES:
      raise VideoIOError(f'{self.path}: looks like a video file name, not a folder.')
    self._raw = raw
    self._suffix = '.tiff' if raw else '.png'
    self._names = None
    if names is not None:
      self._names = [str(pathlib.Path(n).with_suffix(self._suffix)) for n in names]
      if len(set(self._names)) != len(self._names):
        raise VideoIOError(f'{self.path}: input frame names collide once their suffixes become {self._suffix} '
                           f'(e.g. a.jpg and a.png); rename the input frames.')
    _prepare_destination(self.path, overwrite)
    self.num_written = 0
    self.temporary = pathlib.Path(atomic.temporary_path(self.path))
    try:
      self.temporary.mkdir()
    except OSError as e:
      raise VideoIOError(f'{self.path}: cannot create the output folder ({_reason(e)}).') from None

  def write(self, frame: np.ndarray) -> None:
    if self._names is not None:
      if self.num_written >= len(self._names):
        raise ValueError(f'{self.path}: more frames than names ({len(self._names)}).')
      name = self._names[self.num_written]
    else:
      name = f'{self.num_written:08d}{self._suffix}'
    try:
      if self._raw:
        (self.temporary / name).write_bytes(raw_frames.encode_tiff(frame))
      else:
        Image.fromarray(np.ascontiguousarray(_as_uint8(frame))).save(self.temporary / name, compress_level=1)
    except OSError as e:
      raise VideoIOError(f'{self.path}: writing frame {name} failed ({_reason(e)}).') from None
    self.num_written += 1

  def _finish(self) -> None:
    pass


def open_writer(path: str | os.PathLike, info: VideoInfo, *, width: int | None = None, crf: int = 18,
                overwrite: bool = False, raw: bool = False) -> _Writer:
  """A `VideoWriter` for a video suffix, else a `FolderWriter` (PNG) keeping a folder input's frame names.

  `width` overrides `info.width` (the side-by-side comparison is twice as wide). `raw`: the frames are RAW
  (Bayer) frames, written to a folder as 16-bit TIFFs (a video name is refused).
  """
  width = info.width if width is None else width
  if raw:
    if is_video_path(path):
      raise VideoIOError(f'{path}: RAW (Bayer) frames cannot be written as a video; give a folder name, for '
                         '16-bit TIFF frames.')
    return FolderWriter(path, names=info.frame_names, overwrite=overwrite, raw=True)
  if is_video_path(path):
    return VideoWriter(path, height=info.height, width=width, fps=info.fps, rotation=info.rotation, crf=crf,
                       overwrite=overwrite)
  return FolderWriter(path, names=info.frame_names, overwrite=overwrite)
