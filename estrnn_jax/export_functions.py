"""ESTRNN as pure functions of fixed-shape float32 arrays, ready to export (ONNX, TFLite, SavedModel, StableHLO).

The parameters are closed over (they become constants of the exported graph). Two forms:

* clip (`clip_function`): `frames` (1, T, H, W, 3) RGB in [-0.5, 0.5] -> `deblurred` (1, T - past - future, H, W,
  3), exactly `ESTRNN.__call__` (paper Sec. 3: RDB cell over time, GSA, reconstruction).
* stream (`stream_function`): one call per frame, the streaming deblurrer's step (`inference._stream_step`) with
  its state made explicit. Inputs, all float32:
      frame   (1, H, W, 3)            the new frame x_t (zeros after the end of the video)
      is_real (1,)                    1 for a real frame; 0 for the `future` end-padding calls that flush the video
      state   (1, H/4, W/4, C)        the hidden state s_{t-1}                                     (initially 0)
      context (1, past+future, H/4, W/4, 5C)  the last past+future features h                      (initially 0)
      pending (1, future, H, W, 3)    the last `future` input frames; only for a `residual` model   (initially 0)
      started (1,)                    0 before the first frame, then 1                              (initially 0)
  Outputs: `deblurred` (1, H, W, 3), the output for frame t - future (meaningless for the first `future` calls),
  and `state_out`, `context_out`, `pending_out`, `started_out` to feed back as the next call's inputs.
  `context` is left out when past + future = 0 and `pending` when the model is not residual or future = 0 (a
  zero-size tensor is not portable). The edge rule is the deblurrer's: before frame 0 the window is filled with
  h_0, and on the end-padding calls (is_real = 0) the cell is skipped and the last real h repeated.

Outputs are float32 whatever the compute dtype, and are not clipped (the model's range is [-0.5, 0.5]).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from estrnn_jax import model as model_lib

MODES = ('clip', 'stream')


@dataclasses.dataclass(frozen=True)
class TensorSpec:
  """One input or output of an exported function: name, shape, and what it holds."""
  name: str
  shape: tuple[int, ...]
  description: str

  def to_json(self) -> dict[str, Any]:
    return {'name': self.name, 'shape': list(self.shape), 'dtype': 'float32', 'description': self.description}


@dataclasses.dataclass(frozen=True)
class ExportFunction:
  """`fn(*inputs) -> tuple(outputs)`, positional float32 arrays in the order of `inputs` / `outputs`."""
  fn: Callable[..., tuple[jax.Array, ...]]
  inputs: tuple[TensorSpec, ...]
  outputs: tuple[TensorSpec, ...]
  mode: str

  def example_inputs(self, seed: int = 0) -> list[np.ndarray]:
    """Random inputs in the inputs' ranges: frames uniform in [-0.5, 0.5], states ~N(0, 0.5), flags 1."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in self.inputs:
      if spec.name in ('frames', 'frame', 'pending'):
        out.append(rng.uniform(-0.5, 0.5, spec.shape).astype(np.float32))
      elif spec.name in ('is_real', 'started'):
        out.append(np.ones(spec.shape, np.float32))
      else:
        out.append((0.5 * rng.standard_normal(spec.shape)).astype(np.float32))
    return out

  def shape_specs(self) -> list[str]:
    """The inputs' shapes with H, W symbolic (`jax.export.symbolic_args_specs` / jax2tf polymorphic_shapes):
    the two axes before the channels of every input with 4 or more axes are `4*h, 4*w` (frames) or `h, w`
    (features at 1/4 resolution), so any multiple of 4 fits."""
    specs = []
    full = self.inputs[0].shape[-3:-1]   # the first input is always frame(s) (..., H, W, 3)
    for spec in self.inputs:
      dims = [str(d) for d in spec.shape]
      if len(spec.shape) >= 4:
        at_full = tuple(spec.shape[-3:-1]) == tuple(full)
        dims[-3], dims[-2] = ('4*h', '4*w') if at_full else ('h', 'w')
      specs.append(', '.join(dims))
    return specs

  def zero_state(self) -> dict[str, np.ndarray]:
    """The stream inputs other than `frame` / `is_real` at the start of a video: all zeros."""
    return {s.name: np.zeros(s.shape, np.float32) for s in self.inputs if s.name not in ('frame', 'is_real')}


def check_size(height: int, width: int) -> None:
  """Raises ValueError unless H and W are positive multiples of 4 (the cell downsamples twice by 2)."""
  if height < 4 or width < 4 or height % 4 or width % 4:
    raise ValueError(f'--height {height} --width {width}: both must be positive multiples of 4 (the exported graph '
                     'has no padding; pad or crop frames to a multiple of 4).')


def _kind(model: model_lib.ESTRNN) -> str:
  """What the model's frames are, for the tensor descriptions."""
  return 'RAW (Bayer, 16-bit as x / 65535 - 0.5)' if model.channels == 1 else 'RGB'


def clip_function(model: model_lib.ESTRNN, variables: Any, frames: int, height: int, width: int) -> ExportFunction:
  """`ESTRNN.__call__` on (1, frames, H, W, 3) (a RAW model: (..., 1)); see the module docstring."""
  check_size(height, width)
  if frames < model.num_frames:
    raise ValueError(f'--frames {frames}: the model (past_frames={model.past_frames}, future_frames='
                     f'{model.future_frames}) needs at least {model.num_frames}.')

  def clip(x):
    return (model.apply(variables, x),)

  n_out = frames - model.past_frames - model.future_frames
  return ExportFunction(
      clip,
      (TensorSpec('frames', (1, frames, height, width, model.channels), f'{_kind(model)} frames in [-0.5, 0.5]'),),
      (TensorSpec('deblurred', (1, n_out, height, width, model.channels),
                  f'deblurred frames {model.past_frames} .. {frames - model.future_frames - 1} of the input, '
                  f'{_kind(model)}, about [-0.5, 0.5] (not clipped)'),),
      'clip')


def stream_function(model: model_lib.ESTRNN, variables: Any, height: int, width: int) -> ExportFunction:
  """The streaming deblurrer's step for one frame with explicit state; see the module docstring."""
  check_size(height, width)
  c, h4, w4 = model.n_features, height // 4, width // 4
  context_len = model.past_frames + model.future_frames
  n_pending = model.future_frames if model.residual else 0

  def step(frame, is_real, state, *rest):
    rest = list(rest)
    context = rest.pop(0) if context_len else None
    pending = rest.pop(0) if n_pending else None
    started = rest.pop(0)
    real = is_real[0] > 0.5
    new_state, h = model.apply(variables, state, frame, method=model_lib.ESTRNN.step)
    h = h.astype(jnp.float32)
    if context_len:
      h = jnp.where(real, h, context[:, -1])
      window = jnp.where(started[0] > 0.5, context, jnp.broadcast_to(h[:, None], context.shape))
      window = jnp.concatenate([window, h[:, None]], axis=1)               # (1, past + future + 1, h, w, 5C)
    else:
      window = h[:, None]
    new_state = jnp.where(real, new_state.astype(jnp.float32), state)
    centre = None
    if model.residual:
      inputs = frame[:, None] if pending is None else jnp.concatenate([pending, frame[:, None]], axis=1)
      centre, pending = inputs[:, :1], inputs[:, 1:]
    out = model.apply(variables, window, centre, method=model_lib.ESTRNN.decode)[:, 0]
    outputs = [out, new_state]
    if context_len:
      outputs.append(window[:, 1:])
    if n_pending:
      outputs.append(pending)
    outputs.append(jnp.ones_like(started))
    return tuple(outputs)

  state_specs = [TensorSpec('state', (1, h4, w4, c), 'hidden state s (zeros before the first frame)')]
  if context_len:
    state_specs.append(TensorSpec('context', (1, context_len, h4, w4, 5 * c),
                                  f'the last {context_len} features h (zeros before the first frame)'))
  if n_pending:
    state_specs.append(TensorSpec('pending', (1, n_pending, height, width, model.channels),
                                  f'the last {n_pending} input frames (zeros before the first frame)'))
  state_specs.append(TensorSpec('started', (1,), '0 before the first frame, then 1'))
  inputs = (TensorSpec('frame', (1, height, width, model.channels),
                       f'{_kind(model)} frame in [-0.5, 0.5]; zeros for end padding'),
            TensorSpec('is_real', (1,), '1 for a real frame, 0 for the end-padding calls that flush the video'),
            *state_specs)
  outputs = (TensorSpec('deblurred', (1, height, width, model.channels),
                        f'deblurred frame t - {model.future_frames}, {_kind(model)}, about [-0.5, 0.5] (not clipped)'),
             *(dataclasses.replace(s, name=s.name + '_out', description='next ' + s.name) for s in state_specs))
  return ExportFunction(step, inputs, outputs, 'stream')


def build(model: model_lib.ESTRNN, variables: Any, mode: str, height: int, width: int,
          frames: int = 10) -> ExportFunction:
  """`clip_function` or `stream_function` by `mode`."""
  if mode == 'clip':
    return clip_function(model, variables, frames, height, width)
  if mode == 'stream':
    return stream_function(model, variables, height, width)
  raise ValueError(f'--mode {mode!r} is not one of {MODES}.')


def run_stream(step: Callable[..., Any], fn: ExportFunction, video: np.ndarray, future: int) -> np.ndarray:
  """Runs a stream step (`step(*inputs) -> outputs`, any runtime) over `video` (T, H, W, 3) in [-0.5, 0.5].

  Feeds every frame then `future` end-padding calls, drops the first `future` outputs: returns (T, H, W, 3), one
  output per input frame, as `inference.StreamingDeblurrer` does.
  """
  state = fn.zero_state()
  names = [s.name for s in fn.inputs]
  outs = []
  blank = np.zeros_like(video[0])
  for t in range(len(video) + future):
    real = t < len(video)
    feed = dict(state, frame=(video[t] if real else blank)[None].astype(np.float32),
                is_real=np.full((1,), float(real), np.float32))
    result = [np.asarray(r) for r in step(*[feed[n] for n in names])]
    if t >= future:
      outs.append(result[0][0])
    state = {spec.name[:-len('_out')]: r for spec, r in zip(fn.outputs[1:], result[1:])}
  return np.stack(outs)
