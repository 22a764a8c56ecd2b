"""What the demo accepts: upload size, duration, frame count and frame size; stated in the page, enforced here."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

from estrnn_jax import cli
from estrnn_jax import video_io


class DemoError(cli.UserError):
  """A request the demo refuses (bad or too large input); the message is shown in the page as it is."""


@dataclasses.dataclass(frozen=True)
class Limits:
  """Bounds on one request. Frame sizes count either orientation (a portrait 720x1280 video is 1280x720)."""
  max_upload_mb: float = 100.0
  max_seconds: float = 10.0
  max_frames: int = 300
  max_long_side: int = 1280
  max_short_side: int = 720

  def describe(self) -> str:
    """One sentence for the page."""
    return (f'Limits: uploads up to {self.max_upload_mb:g} MB, clips up to {self.max_seconds:g} s and '
            f'{self.max_frames} frames (frame folders play at 30 frames/s), frames up to '
            f'{self.max_long_side}x{self.max_short_side} pixels (either orientation). For larger videos use the '
            'command line in tiles (`python -m estrnn_jax.deblur --tile 256`).')

  def check_upload(self, paths: Sequence[str]) -> None:
    """Raises DemoError if the files together exceed `max_upload_mb`."""
    total = sum(os.path.getsize(p) for p in paths)
    if total > self.max_upload_mb * 1e6:
      raise DemoError(f'The upload is {total / 1e6:.1f} MB; this demo takes at most {self.max_upload_mb:g} MB.')

  def frame_cap(self, info: video_io.VideoInfo) -> int:
    """The most frames a clip of this size and rate may have; raises DemoError for a frame size or a known
    length over the limits."""
    long_side, short_side = max(info.height, info.width), min(info.height, info.width)
    if long_side > self.max_long_side or short_side > self.max_short_side:
      raise DemoError(f'The frames are {info.width}x{info.height} pixels; this demo takes at most '
                      f'{self.max_long_side}x{self.max_short_side} (either orientation). Deblur larger videos '
                      'with the command line in tiles: python -m estrnn_jax.deblur --tile 256 ...')
    cap = min(self.max_frames, math.floor(self.max_seconds * float(info.fps) + 1e-9))
    if info.num_frames is not None:
      self.check_length(info.num_frames, info, cap)
    return cap

  def check_length(self, num_frames: int, info: video_io.VideoInfo, cap: int) -> None:
    """Raises DemoError if `num_frames` (counted so far, or known) exceeds `cap`."""
    if num_frames > cap:
      rate = float(info.fps)
      length = (f'{num_frames} frames, {num_frames / rate:.1f} s' if info.num_frames is not None
                else f'more than {cap} frames')
      raise DemoError(f'The clip is too long ({length} at {rate:g} frames/s); this demo takes at most '
                      f'{self.max_seconds:g} s and {self.max_frames} frames. Trim it, or use the command line: '
                      'python -m estrnn_jax.deblur ...')
