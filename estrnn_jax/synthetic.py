"""Procedural blurry/sharp video generator: the project's built-in default dataset.

Blur is made the way real motion blur forms, and the way GOPRO and REDS were synthesised: a moving scene is
rendered at many instants ("sub-frames") inside each frame's exposure, the sub-frames are averaged in **linear
intensity** (scene radiance), sensor noise is added in linear space, and the result goes through the camera
response curve (CRF, a gamma curve) to 8 bits. The sharp target is the instant in the **middle of the
exposure** (centre aligned, as BSD's beam-splitter pairs), through the same CRF, without noise.

Scenes: a periodic textured canvas (coloured 1/f noise at every scale, anti-aliased discs, rings, rectangles,
gratings and gradients at sizes from 2 px to a quarter of the frame) seen by a camera that pans, shakes, rolls
and zooms along smooth random trajectories (sub-pixel accurate, bilinear sampling), plus independently moving,
spinning textured objects that occlude the background. All rendering is vectorised numpy.

Units: time in frame intervals (frame `k` is centred on `t = k`), distances in pixels of the output frame,
linear intensity in [0, 1]. Everything is deterministic in `(config, seed)`; the scene (textures, trajectories)
depends only on the size and motion fields, not on the exposure, so presets that differ only in blur strength
render the same scene for a seed.

Presets (`PRESETS`; sequences train/validation/test; PSNR(blur, sharp) is typical, it varies by seed):

  name           frames      sub-frames  exposure  sequences   blurry PSNR  render (1 core)
  tiny           12 x 64x64       7        0.5      6/2/2       ~30-36 dB   ~0.05 s / sequence (CI)
  small_1ms8ms   24 x 128x128     5        0.25     40/8/8      ~32-37 dB
  small          24 x 128x128     9        0.5      40/8/8      ~26-32 dB   ~0.4 s / sequence (default)
  small_3ms24ms  24 x 128x128    13        0.75     40/8/8      ~24-29 dB
  medium         32 x 256x256    15        0.5      60/10/10    ~23-26 dB   ~0.15 s / frame
  large          50 x 480x640    13        0.5      60/20/20    ~23-30 dB   ~1.5 s / frame (BSD-sized)

The three `small*` strengths mirror BSD's settings (blurry exposure 8 / 16 / 24 ms, ratio 1:2:3) as
shutter duty cycles 0.25 / 0.5 / 0.75; they render the same scenes for a seed, only the blur differs.

Typical use::

  blur, sharp = synthetic.render_sequence(synthetic.PRESETS['small'], seed=0)  # uint8 (T, H, W, 3), RGB
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping
import zlib

import numpy as np


class SplitCounts(Mapping[str, int]):
  """A read-only, hashable, picklable {split: number of sequences} mapping."""

  def __init__(self, counts: Mapping[str, int]):
    self._counts = {str(k): int(v) for k, v in counts.items()}

  def __getitem__(self, split: str) -> int:
    return self._counts[split]

  def __iter__(self):
    return iter(self._counts)

  def __len__(self) -> int:
    return len(self._counts)

  def __hash__(self) -> int:
    return hash(tuple(sorted(self._counts.items())))

  def __eq__(self, other) -> bool:
    return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

  def __repr__(self) -> str:
    return f'SplitCounts({self._counts!r})'


def _split_counts(train: int, validation: int, test: int) -> SplitCounts:
  return SplitCounts({'train': train, 'validation': validation, 'test': test})


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """What to render. Distances in output pixels, times in frame intervals.

  Attributes:
    height, width: frame size in pixels.
    num_frames: frames per sequence.
    subframes: instants averaged per blurry frame; odd, so the sharp frame is exactly the middle one.
    exposure: fraction of the frame interval the blurry frame integrates over (the shutter's duty cycle).
    pan_speed: largest camera pan speed, px per frame interval (each sequence draws one in [0.3, 1] x this).
    shake_amplitude: largest amplitude of each of the three camera-shake sinusoids, px.
    shake_frequency: largest shake frequency, cycles per frame interval.
    max_rotation: largest camera roll amplitude, radians (0 = no roll).
    max_zoom: largest relative zoom amplitude (0.05 = +-5%; 0 = no zoom).
    num_objects: inclusive range (min, max) of independently moving objects per sequence.
    object_speed: largest object speed relative to the camera's pan, px per frame interval.
    object_spin: largest object rotation speed, radians per frame interval.
    crf_gamma: the camera response is `display = linear ** (1 / crf_gamma)`.
    shot_noise: shot-noise variance per unit linear intensity (Gaussian approximation of Poisson noise).
    read_noise: read-noise standard deviation in linear intensity.
    num_sequences: sequences per split ('train', 'validation', 'test') when built as a dataset.
  """
  height: int = 128
  width: int = 128
  num_frames: int = 24
  subframes: int = 9
  exposure: float = 0.5
  pan_speed: float = 8.0
  shake_amplitude: float = 2.5
  shake_frequency: float = 0.25
  max_rotation: float = 0.02
  max_zoom: float = 0.03
  num_objects: tuple[int, int] = (1, 4)
  object_speed: float = 4.0
  object_spin: float = 0.04
  crf_gamma: float = 2.2
  shot_noise: float = 2e-4
  read_noise: float = 2e-3
  num_sequences: Mapping[str, int] = dataclasses.field(
      default_factory=lambda: _split_counts(40, 8, 8))

  def __post_init__(self):
    problems = []
    if self.height < 8 or self.width < 8:
      problems.append(f'frame size {self.height}x{self.width} is below 8x8')
    if self.num_frames < 1:
      problems.append(f'num_frames={self.num_frames} must be >= 1')
    if self.subframes < 1 or self.subframes % 2 == 0:
      problems.append(f'subframes={self.subframes} must be odd and >= 1 (the sharp frame is the middle one)')
    if not 0.0 <= self.exposure <= 1.0:
      problems.append(f'exposure={self.exposure} must be in [0, 1] (fraction of the frame interval)')
    lo, hi = self.num_objects
    if not 0 <= lo <= hi:
      problems.append(f'num_objects={self.num_objects} must be a range (min, max) with 0 <= min <= max')
    if self.crf_gamma <= 0:
      problems.append(f'crf_gamma={self.crf_gamma} must be > 0')
    if self.shot_noise < 0 or self.read_noise < 0:
      problems.append('noise levels must be >= 0')
    if any(n < 0 for n in self.num_sequences.values()):
      problems.append(f'num_sequences={dict(self.num_sequences)} has a negative count')
    if problems:
      raise ValueError('Invalid SyntheticConfig: ' + '; '.join(problems))
    # A plain dict argument becomes read-only, so the frozen config stays immutable and hashable.
    object.__setattr__(self, 'num_sequences', SplitCounts(self.num_sequences))


_SMALL = SyntheticConfig()

# Blur strengths follow BSD's three settings (blurry exposure 8, 16, 24 ms: ratio 1:2:3) as duty cycles
# 0.25 / 0.5 / 0.75 of the frame interval; sub-frames keep neighbouring instants <~1 px apart.
PRESETS: dict[str, SyntheticConfig] = {
    # CI and notebooks: builds in seconds.
    'tiny': dataclasses.replace(_SMALL, height=64, width=64, num_frames=12, subframes=7, pan_speed=4.0,
                                shake_amplitude=1.5, object_speed=2.0, num_sequences=_split_counts(6, 2, 2)),
    # The default dataset (2ms16ms analogue): ~1 minute to build on 2 cores.
    'small': _SMALL,
    'small_1ms8ms': dataclasses.replace(_SMALL, exposure=0.25, subframes=5),
    'small_3ms24ms': dataclasses.replace(_SMALL, exposure=0.75, subframes=13),
    # Closer to real training crops (256x256), 2ms16ms analogue.
    'medium': dataclasses.replace(_SMALL, height=256, width=256, num_frames=32, subframes=15, pan_speed=16.0,
                                  shake_amplitude=5.0, object_speed=8.0, num_sequences=_split_counts(60, 10, 10)),
    # BSD-sized frames (480x640), 2ms16ms analogue; slow to build (~1.5 s per frame per core).
    'large': dataclasses.replace(_SMALL, height=480, width=640, num_frames=50, subframes=13, pan_speed=16.0,
                                 shake_amplitude=5.0, object_speed=8.0, num_sequences=_split_counts(60, 20, 20)),
}


def sequence_seed(split: str, index: int, base_seed: int = 0) -> int:
  """A stable seed for sequence `index` of `split` (independent of Python's hash randomisation)."""
  return (zlib.crc32(split.encode('utf-8')) * 1_000_003 + index * 7919 + base_seed) % (2**63)


def exposure_times(config: SyntheticConfig, frame_index: int) -> np.ndarray:
  """Instants (frame intervals) averaged into frame `frame_index`: `(subframes,)` float64, centred on it."""
  offsets = (np.arange(config.subframes) + 0.5) / config.subframes - 0.5
  return frame_index + config.exposure * offsets


def linear_to_uint8(linear: np.ndarray, crf_gamma: float) -> np.ndarray:
  """Camera response: linear intensity [0, 1] -> uint8 `round(255 * clip(linear) ** (1 / gamma))`."""
  display = np.clip(linear, 0.0, 1.0) ** (1.0 / crf_gamma)
  return np.rint(display * 255.0).astype(np.uint8)


def add_sensor_noise(linear: np.ndarray, config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
  """Shot + read noise in linear space: `x + sqrt(shot * x + read**2) * N(0, 1)`, clipped to [0, 1]."""
  if config.shot_noise == 0 and config.read_noise == 0:
    return linear
  sigma = np.sqrt(config.shot_noise * np.clip(linear, 0, None) + config.read_noise**2)
  noisy = linear + sigma * rng.standard_normal(linear.shape, dtype=np.float32)
  return np.clip(noisy, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Textures (display values in [0, 1]; converted to linear intensity with the CRF's inverse when rendered).


def _fractal_noise(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
  """Periodic noise with a 1/f^alpha amplitude spectrum (alpha in [0.8, 1.4]): texture at every scale.

  Returns (height, width, channels) float32, zero mean, unit standard deviation per channel.
  """
  fy = np.fft.fftfreq(height)[:, None]
  fx = np.fft.rfftfreq(width)[None, :]
  radius = np.sqrt(fy**2 + fx**2)
  radius[0, 0] = np.inf
  out = np.empty((height, width, channels), np.float32)
  for c in range(channels):
    alpha = rng.uniform(0.8, 1.4)
    spectrum = (rng.standard_normal(radius.shape) + 1j * rng.standard_normal(radius.shape)) * radius**-alpha
    field = np.fft.irfft2(spectrum, s=(height, width))
    out[..., c] = (field - field.mean()) / (field.std() + 1e-12)
  return out


def _colour_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """Coloured 1/f noise around a random base colour: (height, width, 3) float32 display values in [0, 1]."""
  fields = _fractal_noise(rng, height, width, 3)
  mixing = rng.normal(0.0, 1.0, (3, 3)) * 0.08 + np.eye(3) * rng.uniform(0.02, 0.08)
  luminance = fields[..., :1] * rng.uniform(0.08, 0.2)  # shared component: mostly grey-level structure
  base = rng.uniform(0.2, 0.8, 3)
  return np.clip(base + fields @ mixing.astype(np.float32) + luminance, 0.0, 1.0).astype(np.float32)


def _draw_shape(rng: np.random.Generator, canvas: np.ndarray, size: float, wrap: bool) -> None:
  """Paints one anti-aliased shape (disc/ellipse, ring or rotated rectangle) filled with a flat colour,
  a grating or a gradient onto `canvas` (H, W, 3) in place. `wrap`: the canvas is periodic."""
  height, width, _ = canvas.shape
  a = size * rng.uniform(0.5, 1.0)            # half-axes, px
  b = a * rng.uniform(0.25, 1.0)
  angle = rng.uniform(0, np.pi)
  cy, cx = rng.uniform(0, height), rng.uniform(0, width)
  half = int(math.ceil(a)) + 2
  ys = np.arange(int(cy) - half, int(cy) + half + 1)
  xs = np.arange(int(cx) - half, int(cx) + half + 1)
  if wrap:
    rows, cols = ys % height, xs % width
  else:
    keep_y, keep_x = (ys >= 0) & (ys < height), (xs >= 0) & (xs < width)
    ys, xs = ys[keep_y], xs[keep_x]
    rows, cols = ys, xs
    if ys.size == 0 or xs.size == 0:
      return
  dy = (ys + 0.5 - cy)[:, None]
  dx = (xs + 0.5 - cx)[None, :]
  u = np.cos(angle) * dx + np.sin(angle) * dy   # shape-aligned coordinates
  v = -np.sin(angle) * dx + np.cos(angle) * dy
  kind = rng.integers(3)
  if kind == 0:    # ellipse; distance to the edge approximated by radial scaling
    distance = (np.sqrt((u / a)**2 + (v / b)**2) - 1.0) * b
  elif kind == 1:  # ring
    r = np.sqrt((u / a)**2 + (v / a)**2) * a
    thickness = max(1.0, a * rng.uniform(0.15, 0.4))
    distance = np.abs(r - (a - thickness / 2)) - thickness / 2
  else:            # rectangle
    distance = np.maximum(np.abs(u) - a, np.abs(v) - b)
  coverage = np.clip(0.5 - distance, 0.0, 1.0)[..., None].astype(np.float32)

  colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
  fill_kind = rng.integers(4)
  if fill_kind == 0:
    fill = np.broadcast_to(colour, coverage.shape[:2] + (3,))
  elif fill_kind == 1:   # grating (soft square wave), period 2..16 px
    other = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    period = float(np.exp(rng.uniform(np.log(2.5), np.log(16.0))))
    phi = rng.uniform(0, np.pi)
    w = np.cos(phi) * u + np.sin(phi) * v
    square = 0.5 + 0.5 * np.clip(3.0 * np.sin(2 * np.pi * w / period), -1.0, 1.0)
    fill = colour + (other - colour) * square[..., None].astype(np.float32)
  elif fill_kind == 2:   # linear gradient across the shape
    other = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    ramp = np.clip(0.5 + u / (2 * a), 0.0, 1.0)
    fill = colour + (other - colour) * ramp[..., None].astype(np.float32)
  else:                  # flat colour with fine noise
    fill = np.clip(colour + rng.normal(0, 0.06, coverage.shape[:2] + (1,)).astype(np.float32), 0, 1)
  window = canvas[np.ix_(rows, cols)]
  canvas[np.ix_(rows, cols)] = window + (fill - window) * coverage


def _textured_canvas(rng: np.random.Generator, height: int, width: int, min_size: float, max_size: float,
                     num_shapes: int, wrap: bool) -> np.ndarray:
  """Coloured 1/f noise with `num_shapes` shapes of log-uniform size (largest first): display values."""
  canvas = _colour_texture(rng, height, width)
  sizes = np.sort(np.exp(rng.uniform(np.log(min_size), np.log(max_size), num_shapes)))[::-1]
  for size in sizes:
    _draw_shape(rng, canvas, float(size), wrap)
  return canvas


# ---------------------------------------------------------------------------------------------------------
# Bilinear sampling.


def _lerp_gather(flat: np.ndarray, row_stride: int, index: np.ndarray, fy: np.ndarray,
                 fx: np.ndarray) -> np.ndarray:
  """Bilinear blend of the 2x2 texels whose top-left flat index is `index` -> index.shape + (C,)."""
  fy = fy[..., None]
  fx = fx[..., None]
  top_left = np.take(flat, index, axis=0)
  top = top_left + (np.take(flat, index + 1, axis=0) - top_left) * fx
  bottom_left = np.take(flat, index + row_stride, axis=0)
  bottom = bottom_left + (np.take(flat, index + row_stride + 1, axis=0) - bottom_left) * fx
  return top + (bottom - top) * fy


def _wrap_pad(image: np.ndarray) -> np.ndarray:
  """Appends the first row and column of a periodic image, so texel (y + 1, x + 1) needs no modulo."""
  image = np.concatenate([image, image[:1]], axis=0)
  return np.ascontiguousarray(np.concatenate([image, image[:, :1]], axis=1))


def _bilinear_wrap(padded: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
  """Samples a periodic image, given `_wrap_pad`-ed as (H + 1, W + 1, C), at continuous coordinates
  (texel centres at integers) -> y.shape + (C,) float32."""
  height, width = padded.shape[0] - 1, padded.shape[1] - 1
  y0 = np.floor(y)
  x0 = np.floor(x)
  fy = (y - y0).astype(np.float32)
  fx = (x - x0).astype(np.float32)
  index = (y0.astype(np.int32) % height) * (width + 1) + x0.astype(np.int32) % width
  return _lerp_gather(padded.reshape(-1, padded.shape[2]), width + 1, index, fy, fx)


def _bilinear_clamp(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
  """Samples an (H, W, C) image (H, W >= 2) with clamped borders -> y.shape + (C,) float32.

  Pad the image with a zero border to make it zero outside.
  """
  height, width, channels = image.shape
  y0 = np.clip(np.floor(y), 0, height - 2)
  x0 = np.clip(np.floor(x), 0, width - 2)
  fy = np.clip(y - y0, 0.0, 1.0).astype(np.float32)
  fx = np.clip(x - x0, 0.0, 1.0).astype(np.float32)
  index = y0.astype(np.int64) * width + x0.astype(np.int64)
  return _lerp_gather(image.reshape(-1, channels), width, index, fy, fx)


# ---------------------------------------------------------------------------------------------------------
# Scene: canvas, camera trajectory, moving objects.


@dataclasses.dataclass(frozen=True)
class _Object:
  """A moving sprite: premultiplied linear RGB + alpha (h, w, 4) with a zero border, and its trajectory."""
  rgba: np.ndarray
  offset: np.ndarray       # (2,) world position (y, x) relative to the pan at the middle of the sequence
  velocity: np.ndarray     # (2,) px / frame interval relative to the pan
  angle: float             # radians at the middle of the sequence
  spin: float              # radians / frame interval


class Scene:
  """A moving scene that renders linear-intensity frames at any instant.

  Screen pixel `(y, x)` sees world point `T(t) + zoom(t) * R(roll(t)) @ (y + 0.5 - H/2, x + 0.5 - W/2)`;
  the background is a periodic canvas in world coordinates, objects move in world coordinates.
  """

  def __init__(self, config: SyntheticConfig, seed: int):
    self.config = config
    rng = np.random.default_rng([seed, 0x5CE7E])
    h, w = config.height, config.width
    scale = min(h, w)
    # Background canvas: twice the frame in each direction, periodic (pans never run off it).
    self._canvas_h, self._canvas_w = 2 * h, 2 * w
    num_shapes = max(8, int(round(60 * math.sqrt(self._canvas_h * self._canvas_w) / 256)))  # 60 at 128x128
    display = _textured_canvas(rng, self._canvas_h, self._canvas_w, min_size=1.5, max_size=scale / 4,
                               num_shapes=num_shapes, wrap=True)
    self._canvas = _wrap_pad((display ** config.crf_gamma).astype(np.float32))

    # Camera: linear pan + three shake sinusoids per axis + roll and zoom sinusoids.
    self._t_mid = (config.num_frames - 1) / 2
    direction = rng.uniform(0, 2 * np.pi)
    self._pan_origin = rng.uniform(0, [self._canvas_h, self._canvas_w])
    self._pan_velocity = config.pan_speed * rng.uniform(0.3, 1) * np.array([np.sin(direction), np.cos(direction)])
    self._shake_amp = config.shake_amplitude * rng.uniform(0, 1, (3, 2)) / np.arange(1, 4)[:, None]
    self._shake_freq = rng.uniform(0.02, max(config.shake_frequency, 0.02), (3, 2))
    self._shake_phase = rng.uniform(0, 2 * np.pi, (3, 2))
    self._roll = (config.max_rotation * rng.uniform(-1, 1), rng.uniform(0.01, 0.08), rng.uniform(0, 2 * np.pi))
    self._zoom = (config.max_zoom * rng.uniform(-1, 1), rng.uniform(0.01, 0.08), rng.uniform(0, 2 * np.pi))

    # Objects: textured sprites with anti-aliased silhouettes, entering near the frame centre.
    lo, hi = config.num_objects
    self._objects = []
    for _ in range(int(rng.integers(lo, hi + 1))):
      oh, ow = (int(round(scale * rng.uniform(0.15, 0.4))) for _ in range(2))
      display = _textured_canvas(rng, oh, ow, min_size=1.0, max_size=max(oh, ow) / 3,
                                 num_shapes=int(rng.integers(2, 10)), wrap=False)
      yy = (np.arange(oh) + 0.5 - oh / 2)[:, None] / (oh / 2)
      xx = (np.arange(ow) + 0.5 - ow / 2)[None, :] / (ow / 2)
      px = min(oh, ow) / 2  # one unit of the normalised coordinates, in px
      if rng.integers(2):  # ellipse
        distance = (np.sqrt(yy**2 + xx**2) - 1.0) * px
      else:                # rounded rectangle
        distance = np.maximum(np.abs(yy), np.abs(xx)) ** 4
        distance = (distance ** 0.25 - 0.95) * px
      alpha = np.clip(0.5 - distance, 0.0, 1.0).astype(np.float32)[..., None]
      linear = (display ** config.crf_gamma).astype(np.float32)
      rgba = np.pad(np.concatenate([linear * alpha, alpha], axis=-1), ((2, 2), (2, 2), (0, 0)))
      heading = rng.uniform(0, 2 * np.pi)
      self._objects.append(_Object(
          rgba=rgba,
          offset=rng.uniform(-0.3, 0.3, 2) * np.array([h, w]),
          velocity=config.object_speed * rng.uniform(0.3, 1.0) * np.array([np.sin(heading), np.cos(heading)]),
          angle=float(rng.uniform(0, 2 * np.pi)),
          spin=float(config.object_spin * rng.uniform(-1, 1))))

  @property
  def num_objects(self) -> int:
    return len(self._objects)

  def _pan(self, t: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 2) smooth camera translation without shake."""
    return self._pan_origin + t[:, None] * self._pan_velocity

  def camera(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n,) instants -> translation (n, 2) (y, x), roll (n,) radians, zoom (n,) (world px per screen px)."""
    t = np.asarray(t, np.float64)
    shake = np.sum(self._shake_amp * np.sin(2 * np.pi * self._shake_freq * t[:, None, None] + self._shake_phase),
                   axis=1)
    amp, freq, phase = self._roll
    roll = amp * np.sin(2 * np.pi * freq * t + phase)
    amp, freq, phase = self._zoom
    zoom = np.exp(amp * np.sin(2 * np.pi * freq * t + phase))
    return self._pan(t) + shake, roll, zoom

  def render_linear(self, times: np.ndarray, objects: bool = True) -> np.ndarray:
    """Renders instants `times` (n,) -> (n, H, W, 3) float32 linear intensity in [0, 1].

    `objects=False` renders the background alone (same camera), e.g. to locate the objects.
    """
    times = np.atleast_1d(np.asarray(times, np.float64))
    h, w = self.config.height, self.config.width
    translation, roll, zoom = self.camera(times)
    sy = (np.arange(h) + 0.5 - h / 2)[None, :, None]
    sx = (np.arange(w) + 0.5 - w / 2)[None, None, :]
    cos = (np.cos(roll) * zoom)[:, None, None]
    sin = (np.sin(roll) * zoom)[:, None, None]
    frames = np.empty((len(times), h, w, 3), np.float32)
    for i in range(len(times)):  # one instant at a time keeps the working set in cache
      world_y = translation[i, 0] + cos[i] * sy[0] + sin[i] * sx[0]   # (H, W)
      world_x = translation[i, 1] - sin[i] * sy[0] + cos[i] * sx[0]
      # Canvas pixel centres sit at integer + 0.5 world coordinates.
      frames[i] = _bilinear_wrap(self._canvas, world_y - 0.5, world_x - 0.5)
    if objects:
      for obj in self._objects:
        self._composite(frames, obj, times, translation, roll, zoom)
    return frames

  def _composite(self, frames: np.ndarray, obj: _Object, times: np.ndarray, translation: np.ndarray,
                 roll: np.ndarray, zoom: np.ndarray) -> None:
    """Paints `obj` over `frames` (n, H, W, 3) at instants `times` (n,) in place (premultiplied 'over').

    Works inside the union of the sprite's screen bounding boxes over the instants (one exposure: small).
    """
    h, w = self.config.height, self.config.width
    oh, ow = obj.rgba.shape[:2]
    dt = (times - self._t_mid)[:, None]
    centre = self._pan(np.array([self._t_mid])) + obj.offset + obj.velocity * dt     # (n, 2)
    angle = (obj.angle + obj.spin * dt)                                               # (n, 1)
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    cos_r, sin_r = np.cos(roll)[:, None], np.sin(roll)[:, None]
    # Screen bounding box: the sprite's corners through world -> screen.
    corner_y = np.array([-1, -1, 1, 1]) * oh / 2
    corner_x = np.array([-1, 1, -1, 1]) * ow / 2
    dy = (centre[:, :1] + cos_a * corner_y + sin_a * corner_x - translation[:, :1]) / zoom[:, None]
    dx = (centre[:, 1:] - sin_a * corner_y + cos_a * corner_x - translation[:, 1:]) / zoom[:, None]
    screen_y = cos_r * dy - sin_r * dx + h / 2
    screen_x = sin_r * dy + cos_r * dx + w / 2
    y0, y1 = max(int(np.floor(screen_y.min())) - 1, 0), min(int(np.ceil(screen_y.max())) + 1, h)
    x0, x1 = max(int(np.floor(screen_x.min())) - 1, 0), min(int(np.ceil(screen_x.max())) + 1, w)
    if y0 >= y1 or x0 >= x1:
      return
    sy = (np.arange(y0, y1) + 0.5 - h / 2)[None, :, None]
    sx = (np.arange(x0, x1) + 0.5 - w / 2)[None, None, :]
    c = (cos_r[:, 0] * zoom)[:, None, None]
    s = (sin_r[:, 0] * zoom)[:, None, None]
    rel_y = (translation[:, 0] - centre[:, 0])[:, None, None] + c * sy + s * sx
    rel_x = (translation[:, 1] - centre[:, 1])[:, None, None] - s * sy + c * sx
    # World -> sprite-local (inverse rotation), then the sprite's texel grid (centres at integers).
    cos_a, sin_a = cos_a[:, :, None], sin_a[:, :, None]
    local_y = cos_a * rel_y - sin_a * rel_x + oh / 2 - 0.5
    local_x = sin_a * rel_y + cos_a * rel_x + ow / 2 - 0.5
    sample = _bilinear_clamp(obj.rgba, local_y, local_x)
    window = frames[:, y0:y1, x0:x1]
    frames[:, y0:y1, x0:x1] = sample[..., :3] + window * (1.0 - sample[..., 3:])


def render_sequence(config: SyntheticConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Renders one sequence -> (blur, sharp), each uint8 (num_frames, height, width, 3), RGB.

  blur[k] = CRF(noise(mean of the linear sub-frames at `exposure_times(config, k)`)); sharp[k] = CRF(the
  middle sub-frame) without noise. Deterministic in (config, seed).
  """
  scene = Scene(config, seed)
  noise_rng = np.random.default_rng([seed, 0x40153])
  shape = (config.num_frames, config.height, config.width, 3)
  blur = np.empty(shape, np.uint8)
  sharp = np.empty(shape, np.uint8)
  middle = config.subframes // 2
  for k in range(config.num_frames):
    linear = scene.render_linear(exposure_times(config, k))
    blur[k] = linear_to_uint8(add_sensor_noise(linear.mean(axis=0), config, noise_rng), config.crf_gamma)
    sharp[k] = linear_to_uint8(linear[middle], config.crf_gamma)
  return blur, sharp
