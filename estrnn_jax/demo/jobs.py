"""One demo request: a clip in; the deblurred video, a blurry | deblurred video, both clips as PNG frames and,
when the sharp frames are known, per-frame PSNR out. No Gradio here.

The two videos are what `python -m estrnn_jax.deblur --input CLIP --output deblurred.mp4 --compare
blurry_vs_deblurred.mp4` writes with the same model (and `--tile`): the same reader, streaming deblurrer (its
default group size), writers and H.264 settings; the PNG frames are what `--output FOLDER` writes. Frames stream
through, so memory does not grow with the clip's length; the frame viewer reads the PNGs back.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np

from estrnn_jax import cli
from estrnn_jax import inference
from estrnn_jax import metrics
from estrnn_jax import video_io
from estrnn_jax.demo import limits as limits_lib
from estrnn_jax.demo import weights as weights_lib

DemoError = limits_lib.DemoError
VIDEO, SIDE_BY_SIDE = 'deblurred.mp4', 'blurry_vs_deblurred.mp4'
FRAMES = {'blurry': 'frames/blurry', 'deblurred': 'frames/deblurred'}
CRF = 18   # deblur's default --crf
# progress(frames done, total frames or None when the container does not say, frames/s so far or None)
Progress = Callable[[int, int | None, float | None], None]


@dataclasses.dataclass(frozen=True)
class Result:
  """A finished request; its files are under `folder`."""
  folder: pathlib.Path
  num_frames: int
  height: int
  width: int
  fps: float                  # the video's frame rate (30 for frame folders)
  seconds: float              # reading, deblurring and writing every frame, compilation included
  first_frame_seconds: float  # until the first output frame (includes compiling for a new frame size)
  device: str
  psnr_blurry: tuple[float, ...] | None = None      # per frame, dB, against the sharp frames
  psnr_deblurred: tuple[float, ...] | None = None

  @property
  def video(self) -> pathlib.Path:
    return self.folder / VIDEO

  @property
  def side_by_side(self) -> pathlib.Path:
    return self.folder / SIDE_BY_SIDE

  def frame(self, kind: str, index: int) -> pathlib.Path:
    """The PNG of frame `index` of kind 'blurry' or 'deblurred'."""
    return self.folder / FRAMES[kind] / f'{index:08d}.png'

  @property
  def frames_per_second(self) -> float:
    """Throughput after the first output frame (so without compilation); over all frames for a 1-frame clip."""
    if self.num_frames > 1 and self.seconds > self.first_frame_seconds:
      return (self.num_frames - 1) / (self.seconds - self.first_frame_seconds)
    return self.num_frames / self.seconds


def describe_device() -> str:
  """The device the model runs on, in words."""
  device = jax.devices()[0]
  if device.platform == 'cpu':
    return f'CPU ({os.cpu_count()} cores)'
  return f'{device.device_kind} ({device.platform.upper()})'


def collect_upload(paths: Sequence[str], folder: pathlib.Path, limits: limits_lib.Limits) -> str:
  """The input for `deblur_clip`: an uploaded video as it is, or uploaded PNG/JPEG frames linked into `folder`
  (ordered by their names' numbers, as `deblur` orders a frame folder). Raises DemoError for an empty, mixed or
  oversized upload."""
  if not paths:
    raise DemoError('Upload a video (or the frames of one clip) first, or pick an example.')
  limits.check_upload(paths)
  images = [p for p in paths if pathlib.Path(p).suffix.lower() in video_io.IMAGE_SUFFIXES]
  if not images:
    if len(paths) > 1:
      raise DemoError(f'{len(paths)} files were uploaded; upload one video, or PNG/JPEG frames of one clip.')
    return paths[0]
  if len(images) != len(paths):
    other = next(pathlib.Path(p).name for p in paths if p not in images)
    raise DemoError(f'{other}: upload either one video or PNG/JPEG frames, not both.')
  folder.mkdir(parents=True)
  for path in images:
    link = folder / pathlib.Path(path).name
    if link.exists():
      raise DemoError(f'Two uploaded frames are both named {link.name}.')
    os.symlink(os.path.abspath(path), link)
  return str(folder)


def deblur_clip(weights: weights_lib.Weights, source: str, folder: pathlib.Path, limits: limits_lib.Limits, *,
                tile: int = 0, sharp: np.ndarray | None = None, progress: Progress | None = None) -> Result:
  """Deblurs the video or frame folder `source` into `folder` (see the module docstring).

  Args:
    weights: the model.
    source: a video file or a folder of frames.
    folder: a new folder for the outputs; removed again if the request fails.
    limits: refused (DemoError) before any work when the size or a known length exceeds them, or as soon as the
      frames read exceed them.
    tile: as deblur's `--tile` (0: whole frames).
    sharp: the clip's sharp frames (T, H, W, 3) uint8, if known: per-frame PSNR is computed.
    progress: called after every output frame.
  """
  name = pathlib.Path(source).name
  try:
    folder.mkdir(parents=True)
    return _deblur(weights, source, folder, limits, tile, sharp, progress or (lambda *_: None))
  except video_io.VideoIOError as e:
    shutil.rmtree(folder, ignore_errors=True)
    raise DemoError(str(e).replace(str(source), name)) from None
  except Exception as e:
    shutil.rmtree(folder, ignore_errors=True)
    if cli.is_device_out_of_memory(e):
      raise DemoError(f'{name}: out of device memory for these frames. Deblur it with the command line in tiles: '
                      'python -m estrnn_jax.deblur --tile 256 ...') from e
    raise


def _deblur(weights, source, folder, limits, tile, sharp, progress) -> Result:
  start = time.perf_counter()
  try:
    reader = video_io.FrameReader(source)
  except video_io.VideoIOError as e:   # not a video or frames, corrupt, empty
    raise video_io.VideoIOError(f'{e} Upload a video FFmpeg reads (mp4, mov, mkv, webm, avi, ...) or PNG/JPEG '
                                'frames.') from None
  with reader:
    info = reader.info
    cap = limits.frame_cap(info)
    writers = [video_io.open_writer(folder / VIDEO, info, crf=CRF),
               video_io.open_writer(folder / SIDE_BY_SIDE, info, width=2 * info.width, crf=CRF),
               video_io.FolderWriter(folder / FRAMES['blurry']),
               video_io.FolderWriter(folder / FRAMES['deblurred'])]
    try:
      video, side_by_side, blurry_frames, deblurred_frames = writers
      inputs: collections.deque[np.ndarray] = collections.deque()
      deblurrer = inference.StreamingDeblurrer(weights.model, weights.variables, tile=tile or None,
                                               group_size=inference.DEFAULT_GROUP_SIZE)
      psnr_blurry, psnr_deblurred, first = [], [], None
      for index, frame in enumerate(deblurrer.stream(_counted(reader, inputs, limits, cap))):
        blurry = inputs.popleft()
        video.write(frame)
        side_by_side.write(np.concatenate([blurry, frame], axis=1))
        blurry_frames.write(blurry)
        deblurred_frames.write(frame)
        if sharp is not None:
          psnr_blurry.append(float(metrics.psnr(blurry, sharp[index])))
          psnr_deblurred.append(float(metrics.psnr(frame, sharp[index])))
        elapsed = time.perf_counter() - start
        first = elapsed if first is None else first
        rate = index / (elapsed - first) if index and elapsed > first else None
        progress(index + 1, info.num_frames, rate)
      if sharp is not None and len(sharp) != index + 1:
        raise ValueError(f'{len(sharp)} sharp frames for a clip of {index + 1} frames.')
      for writer in writers:
        writer.commit()
      writers.clear()
    finally:
      for writer in writers:
        writer.abort()
  scores = {} if sharp is None else {'psnr_blurry': tuple(psnr_blurry), 'psnr_deblurred': tuple(psnr_deblurred)}
  return Result(folder, index + 1, info.height, info.width, float(info.fps), time.perf_counter() - start, first,
                describe_device(), **scores)


def _counted(reader: video_io.FrameReader, inputs: collections.deque, limits: limits_lib.Limits,
             cap: int) -> Iterator[np.ndarray]:
  """The reader's frames, each also queued in `inputs` (for the side-by-side video); DemoError after `cap`."""
  for count, frame in enumerate(reader, start=1):
    limits.check_length(count, reader.info, cap)
    inputs.append(frame)
    yield frame
