"""The evaluation protocols on whole sequences: which frames are scored, how, and the result tables.

`SequenceEvaluator` scores one sequence (uint8 blurry and sharp frames) with a model; training
(`train.py`) and the `python -m estrnn_jax.evaluate` command both use it. Two protocols:

- `reference` (the paper's numbers): each sequence is cut into chunks of `chunk_frames` (20) frames that overlap
  by past + future frames, the last chunk right-aligned to the end; the hidden state starts at zero in every
  chunk. Each of the frames `past ... T - future - 1` is scored once (the first chunk that outputs it); the first
  `past` and last `future` frames are never scored.
- `full`: every frame is scored, exactly as `python -m estrnn_jax.deblur` outputs it: the sequence runs through
  the streaming deblurrer (`inference.deblur_stream`, group size `inference.DEFAULT_GROUP_SIZE`), one hidden state
  from a zero start over the whole sequence, the GSA window completed at the two ends by repeating the nearest
  real features (see `estrnn_jax.inference`). Memory does not grow with the sequence length, each frame size
  compiles once (the stream's step; scoring runs on fixed segments of `chunk_frames` frames, the last padded),
  and the next frames go to the device while the previous ones are scored.

Scores (as the reference): model outputs are turned into uint8 (`rounding`: 'truncate' is the reference test
script's `astype(np.uint8)`, 'round' is `images.to_uint8`), PSNR and SSIM are computed per frame on the full
frame (`estrnn_jax.metrics`), and the overall score is the mean over every scored frame of every sequence.
Sequences of uint16 RAW frames (T, H, W, 1) (an `ESTRNN(input='raw')`) are scored the same way in RAW space:
outputs to uint16, PSNR and SSIM with a data range of 65535, as the official RAW test script
(`estrnn_jax.raw_isp` scores them in RGB through an ISP instead). The
blurry input's scores are reported alongside. Frame sizes that are not multiples of 4 are edge-padded for the
model and cropped back.
"""

from collections.abc import Iterable, Sequence
import csv
import dataclasses
import io
import json
import time
from typing import Any

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
import numpy as np
from PIL import Image

from estrnn_jax import atomic
from estrnn_jax import cli
from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import jit_utils
from estrnn_jax import losses
from estrnn_jax import metrics
from estrnn_jax import model as model_lib
from estrnn_jax import raw_frames
from estrnn_jax import sharding

PROTOCOLS = ('reference', 'full')
_FRAME_METRICS = ('psnr', 'ssim', 'blur_psnr', 'blur_ssim', 'loss')


class NonFiniteOutputError(FloatingPointError):
  """The model produced NaN or Inf for a sequence: it gets no score (a diverged or damaged checkpoint)."""


def reference_chunks(num_frames: int, chunk_frames: int, past: int, future: int) -> list[tuple[int, int]]:
  """The reference's chunks `[start, end)` of a `num_frames`-frame sequence (its test loop, reproduced).

  Consecutive chunks overlap by `past + future` frames; the last one is right-aligned to the sequence end. A
  sequence shorter than `chunk_frames` is one chunk.
  """
  if chunk_frames <= past + future:
    raise ValueError(f'chunk_frames={chunk_frames} must exceed past + future = {past + future}.')
  if num_frames < past + future + 1:
    raise ValueError(f'A sequence of {num_frames} frames is shorter than one GSA window ({past + future + 1}).')
  length = min(chunk_frames, num_frames)
  chunks = [(0, length)]
  while chunks[-1][1] < num_frames:
    start = chunks[-1][1] - past - future
    end = min(start + length, num_frames)
    chunks.append((end - length, end))
  return chunks


def reference_scored_frames(chunks: Sequence[tuple[int, int]], past: int, future: int) -> list[np.ndarray]:
  """For each chunk, the sequence frame indices it scores: its outputs not already scored by an earlier chunk."""
  seen: set[int] = set()
  scored = []
  for start, end in chunks:
    outputs = [i for i in range(start + past, end - future) if i not in seen]
    seen.update(outputs)
    scored.append(np.asarray(outputs, np.int64))
  return scored


@dataclasses.dataclass
class SequenceResult:
  """Per-frame scores of one sequence. `frames`: scored frame indices (sorted); every metric has that length.

  `outputs` (uint8 (n, H, W, 3), the deblurred scored frames) is kept only when asked for, and
  `blur_frames` / `sharp_frames` (the matching inputs and targets) only for image strips.
  """
  name: str
  frames: np.ndarray
  psnr: np.ndarray
  ssim: np.ndarray
  blur_psnr: np.ndarray
  blur_ssim: np.ndarray
  loss: np.ndarray
  outputs: np.ndarray | None = None
  blur_frames: np.ndarray | None = None
  sharp_frames: np.ndarray | None = None

  def summary(self) -> dict[str, Any]:
    row: dict[str, Any] = {'sequence': self.name, 'frames': int(len(self.frames))}
    row.update({k: float(np.mean(getattr(self, k))) for k in _FRAME_METRICS})
    return row

  def to_json(self) -> dict[str, Any]:
    out = self.summary()
    out['frame_index'] = [int(i) for i in self.frames]
    out.update({f'frame_{k}': [float(v) for v in getattr(self, k)] for k in _FRAME_METRICS})
    return out

  @classmethod
  def from_json(cls, obj: dict[str, Any]) -> 'SequenceResult':
    return cls(name=obj['sequence'], frames=np.asarray(obj['frame_index'], np.int64),
               **{k: np.asarray(obj[f'frame_{k}'], np.float64) for k in _FRAME_METRICS})


def summarize(results: Sequence[SequenceResult]) -> dict[str, Any]:
  """Means over every scored frame of every sequence (the reference's averaging), plus counts."""
  if not results:
    raise ValueError('No sequence was evaluated.')
  summary: dict[str, Any] = {'sequences': len(results), 'frames': int(sum(len(r.frames) for r in results))}
  for key in _FRAME_METRICS:
    summary[key] = float(np.mean(np.concatenate([getattr(r, key) for r in results])))
  return summary


def score_frames(out: jax.Array, blur: jax.Array, sharp: jax.Array, loss_fn: losses.LossFn,
                 rounding: str, bits: int = 8) -> dict[str, jax.Array]:
  """Per-frame scores of outputs/blurry/sharp frames (..., H, W, C) in [-0.5, 0.5] -> each (...); `bits` 16 for
  RAW frames (quantised to uint16, data range 65535)."""
  data_range = float(2**bits - 1)
  sharp_u8 = metrics.quantize(sharp, bits=bits)  # exact: inputs came from uint8 (uint16) via images.from_uint8
  blur_u8 = metrics.quantize(blur, bits=bits)
  out_u8 = metrics.quantize(out, rounding, bits=bits)
  frame_loss = jax.vmap(loss_fn)(out.reshape(-1, *out.shape[-3:]), sharp.reshape(-1, *sharp.shape[-3:]))
  return {
      'finite': jnp.all(jnp.isfinite(out), axis=(-3, -2, -1)),
      'outputs': out_u8,
      'psnr': metrics.psnr(out_u8, sharp_u8, data_range), 'ssim': metrics.ssim(out_u8, sharp_u8, data_range),
      'blur_psnr': metrics.psnr(blur_u8, sharp_u8, data_range),
      'blur_ssim': metrics.ssim(blur_u8, sharp_u8, data_range),
      'loss': frame_loss.reshape(out.shape[:-3]),
  }


def _to_local(params: Any, sharding_: jax.sharding.Sharding) -> Any:
  """Places (replicated) parameters from anywhere (host, another mesh, other processes' devices) on `sharding_`."""
  def move(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return jax.device_put(x, sharding_)
  return jax.tree.map(move, params)


def evaluation_model(model: Any) -> Any:
  """The model as evaluation runs it: an ESTRNN's cell as a scan (forward only: it compiles faster and runs as
  fast as unrolled); other modules unchanged."""
  return model.clone(unroll=False) if isinstance(model, model_lib.ESTRNN) else model


def reference_forward(model: Any, mesh: jax.sharding.Mesh, *, loss_fn: losses.LossFn, rounding: str) -> Any:
  """The reference protocol's jitted device step: `(params, blur, sharp) -> score_frames(...)` of a group of
  chunks, blur uint8 (G, chunk, H, W, 3) and sharp uint8 (G, chunk - past - future, H, W, 3) (or uint16 RAW frames
  (..., 1), scored in 16 bits), the group split over
  `mesh`'s `data` axis, the parameters replicated. `SequenceEvaluator` runs it; `estrnn_jax.plan` compiles it for
  accelerators."""
  p, f = model.past_frames, model.future_frames
  data = sharding.data_sharding(mesh)

  def forward(params, blur, sharp):
    # uint8 frames cross to the device (a quarter of float32's bytes) and are normalised there.
    bits = _bits(blur)
    blur, sharp = images.normalise_on_device(blur), images.normalise_on_device(sharp)
    out = model.apply({'params': params}, blur)
    return score_frames(out, blur[:, p:blur.shape[1] - f], sharp, loss_fn, rounding, bits)

  return jax.jit(forward, in_shardings=(sharding.replicated(mesh), data, data), out_shardings=data,
                 compiler_options=jit_utils.cpu_compiler_options())


def _bits(frames: Any) -> int:
  """8 for uint8 frames, 16 for uint16 (RAW) ones."""
  return 16 if frames.dtype == np.uint16 else 8


class SequenceEvaluator:
  """Runs one protocol on whole sequences with this process's devices (see module docstring).

  Call with `(name, blur_u8, sharp_u8)`, uint8 (T, H, W, 3) RGB (uint16 (T, H, W, 1) RAW frames for an
  `ESTRNN(input='raw')`), to get a `SequenceResult`. Compiles once per
  chunk/segment shape; `set_params` swaps in new parameters (e.g. during training) without recompiling.
  `model` is an ESTRNN; the reference protocol also takes any flax module with `__call__`, `past_frames` and
  `future_frames`. The reference protocol splits its chunks over this process's devices.
  """

  def __init__(self, model: model_lib.ESTRNN, params: Any = None, *, protocol: str = 'reference',
               chunk_frames: int = 20, rounding: str = 'round', loss: str = 'charbonnier_color',
               chunks_per_device: int = 1):
    if protocol not in PROTOCOLS:
      raise ValueError(f'protocol must be one of {PROTOCOLS}, got {protocol!r}.')
    if rounding not in ('round', 'truncate'):
      raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}.")
    self.model = model = evaluation_model(model)
    self.protocol = protocol
    self.chunk_frames = chunk_frames
    self.past, self.future = model.past_frames, model.future_frames
    if chunk_frames <= self.past + self.future:
      raise ValueError(f'chunk_frames={chunk_frames} must exceed past + future = {self.past + self.future}.')
    loss_fn = losses.get_loss_fn(loss)
    options = jit_utils.cpu_compiler_options()
    if protocol == 'reference':
      self._mesh = sharding.local_mesh()
      self._group = chunks_per_device * self._mesh.devices.size
      self._param_sharding = sharding.replicated(self._mesh)
      self._forward = reference_forward(model, self._mesh, loss_fn=loss_fn, rounding=rounding)
    else:
      self._param_sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

      def score(out, blur_u8, sharp_u8):
        bits = _bits(blur_u8)
        blur, sharp = images.normalise_on_device(blur_u8), images.normalise_on_device(sharp_u8)
        return score_frames(out, blur, sharp, loss_fn, rounding, bits)

      self._score = jax.jit(score, compiler_options=options)
    self._params = None
    if params is not None:
      self.set_params(params)

  def set_params(self, params: Any) -> None:
    """Uses `params` (host arrays, or replicated arrays on any mesh) from now on."""
    self._params = _to_local(params, self._param_sharding)

  def __call__(self, name: str, blur_u8: np.ndarray, sharp_u8: np.ndarray, *, keep_outputs: bool = False
               ) -> SequenceResult:
    channels = getattr(self.model, 'channels', 3)
    if blur_u8.shape != sharp_u8.shape or blur_u8.ndim != 4 or blur_u8.shape[-1] != channels:
      raise ValueError(f'Sequence {name!r}: blur {blur_u8.shape} and sharp {sharp_u8.shape} must both be '
                       f'(T, H, W, {channels}) for this model.')
    if channels == 1 and (blur_u8.dtype != np.uint16 or sharp_u8.dtype != np.uint16):
      raise ValueError(f'Sequence {name!r}: frames are {blur_u8.dtype}/{sharp_u8.dtype}; a RAW model scores '
                       'uint16 (16-bit RAW) frames.')
    if self._params is None:
      raise ValueError('SequenceEvaluator has no parameters; call set_params first.')
    if self.protocol == 'reference' and len(blur_u8) < self.past + self.future + 1:
      raise ValueError(f'Sequence {name!r} has {len(blur_u8)} frames, fewer than one GSA window '
                       f'({self.past + self.future + 1}) that the reference protocol needs; --protocol full '
                       'scores every frame of any length.')
    if self.protocol == 'reference':
      parts = self._run_reference(blur_u8, sharp_u8)
    else:
      parts = self._run_full(blur_u8, sharp_u8)
    frames = np.concatenate([idx for idx, _ in parts])
    order = np.argsort(frames, kind='stable')
    joined = {k: np.concatenate([np.asarray(s[k]) for _, s in parts])[order] for k in parts[0][1]}
    if not joined['finite'].all():
      bad = frames[order][~joined['finite']]
      raise NonFiniteOutputError(
          f'Sequence {name!r}: the model output NaN/Inf at {len(bad)} of {len(frames)} scored frames (first: '
          f'frame {bad[0]}); it gets no score. Is the checkpoint diverged?')
    return SequenceResult(name=name, frames=frames[order],
                          outputs=joined['outputs'] if keep_outputs else None,
                          **{k: joined[k].astype(np.float64) for k in _FRAME_METRICS})

  def _run_reference(self, blur_u8, sharp_u8) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    p, f = self.past, self.future
    chunks = reference_chunks(len(blur_u8), self.chunk_frames, p, f)
    scored = reference_scored_frames(chunks, p, f)
    data = sharding.data_sharding(self._mesh)
    dispatched = []   # every group is dispatched before any result is fetched: transfers overlap compute
    for group_start in range(0, len(chunks), self._group):
      group = list(range(group_start, min(group_start + self._group, len(chunks))))
      padded = group + [group[-1]] * (self._group - len(group))  # fill every device; extra rows are dropped
      blur = np.stack([blur_u8[chunks[c][0]:chunks[c][1]] for c in padded])
      sharp = np.stack([sharp_u8[chunks[c][0] + p:chunks[c][1] - f] for c in padded])
      dispatched.append((group, self._forward(self._params, jax.device_put(blur, data), jax.device_put(sharp, data))))
    parts = []
    for group, result in dispatched:
      result = jax.device_get(result)
      for row, c in enumerate(group):
        start = chunks[c][0]
        keep = scored[c] - start - p  # positions of the scored frames among this chunk's outputs
        if len(keep):
          parts.append((scored[c], {k: v[row][keep] for k, v in result.items()}))
    return parts

  def _run_full(self, blur_u8, sharp_u8) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Streams the sequence (as `deblur`) and scores its outputs in segments of `chunk_frames` frames."""
    num_frames, segment = len(blur_u8), self.chunk_frames
    to_model = images.from_uint16 if blur_u8.dtype == np.uint16 else images.from_uint8
    inputs = (to_model(frame) for frame in blur_u8)
    outputs = inference.deblur_stream(self.model, {'params': self._params}, inputs,
                                      group_size=inference.DEFAULT_GROUP_SIZE, value_range=images.MODEL_RANGE)
    pending, parts, buffer = [], [], []
    for index, out in enumerate(outputs):
      buffer.append(out)
      if len(buffer) < segment and index + 1 < num_frames:
        continue
      start, count = index + 1 - len(buffer), len(buffer)
      # A short last segment repeats its last frame up to the fixed length (one compile); the extra rows are cut.
      rows = np.minimum(np.arange(segment), count - 1)
      result = self._score(np.stack(buffer)[rows], blur_u8[start + rows], sharp_u8[start + rows])
      pending.append((np.arange(start, start + count), result))   # dispatched; fetched once the stream ends
      buffer = []
    assert sum(len(frames) for frames, _ in pending) == num_frames, (pending, num_frames)
    for frames, result in pending:
      parts.append((frames, {k: np.asarray(v)[:len(frames)] for k, v in jax.device_get(result).items()}))
    return parts


def evaluate_sequences(evaluator: SequenceEvaluator, sequences: Iterable[tuple[str, np.ndarray, np.ndarray]], *,
                       frames_dir: epath.PathLike | None = None, keep_outputs_of_first: bool = False,
                       total: int | None = None) -> list[SequenceResult]:
  """Scores every sequence (this process's share), logging one line per sequence.

  Args:
    evaluator: the protocol and model.
    sequences: (name, blur uint8 (T,H,W,3), sharp uint8) per sequence, e.g. `input_pipeline.iterate_sequences`.
    frames_dir: also write each sequence's deblurred scored frames to `<frames_dir>/<name>/%08d.png`.
    keep_outputs_of_first: keep the first sequence's deblurred, blurry and sharp frames (for `image_strips`).
    total: number of sequences, for the progress lines.
  Raises:
    NonFiniteOutputError: after scoring the others, naming every sequence whose outputs were NaN/Inf.
    cli.UserError: the device ran out of memory (naming the sequence, its frame size and what to change).
  """
  results, failed = [], []
  for i, (name, blur_u8, sharp_u8) in enumerate(sequences):
    start = time.time()
    keep = frames_dir is not None or (keep_outputs_of_first and i == 0)
    try:
      result = evaluator(name, blur_u8, sharp_u8, keep_outputs=keep)
    except NonFiniteOutputError as e:
      logging.error('[%d/%s] %s', i + 1, total or '?', e)
      failed.append(name)
      continue
    except Exception as e:  # pylint: disable=broad-exception-caught
      if not cli.is_device_out_of_memory(e):
        raise
      raise cli.UserError(
          f'out of device memory scoring sequence {name!r} ({len(blur_u8)} frames of {blur_u8.shape[2]}x'
          f'{blur_u8.shape[1]}) with the {evaluator.protocol} protocol: use shorter chunks (evaluate '
          f'--chunk_frames, config.eval.chunk_frames; now {evaluator.chunk_frames}) or --protocol full (one frame '
          'per device call).') from e
    if frames_dir is not None:
      write_frames(epath.Path(frames_dir) / name, result.frames, result.outputs)
    if keep_outputs_of_first and i == 0:
      result.blur_frames, result.sharp_frames = blur_u8[result.frames], sharp_u8[result.frames]
    else:
      result.outputs = None
    results.append(result)
    row = result.summary()
    logging.info('[%d/%s] %s: %d frames, PSNR %.3f dB (blurry %.3f), SSIM %.4f (blurry %.4f), %.1f s',
                 i + 1, total or '?', name, row['frames'], row['psnr'], row['blur_psnr'], row['ssim'],
                 row['blur_ssim'], time.time() - start)
  if failed:
    raise NonFiniteOutputError(f'{len(failed)} of {len(failed) + len(results)} sequences got NaN/Inf outputs and '
                               f'no score ({", ".join(failed[:5])}{" ..." if len(failed) > 5 else ""}); nothing '
                               'was reported. Is the checkpoint diverged?')
  return results


def write_frames(directory: epath.Path, frame_indices: np.ndarray, frames_u8: np.ndarray) -> None:
  """Writes uint8 RGB frames as `<directory>/<index %08d>.png` (uint16 RAW frames as 16-bit `.tiff`, as the
  official RAW test script), each through a temporary name."""
  directory.mkdir(parents=True, exist_ok=True)
  for index, frame in zip(frame_indices, frames_u8):
    if frame.dtype == np.uint16:
      atomic.write_bytes(directory / f'{int(index):08d}.tiff', raw_frames.encode_tiff(frame))
      continue
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format='PNG')
    atomic.write_bytes(directory / f'{int(index):08d}.png', buffer.getvalue())


def gather_results(results: list[SequenceResult]) -> list[SequenceResult]:
  """All processes' results on every process, ordered by process then sequence (no-op on one process)."""
  if jax.process_count() == 1:
    return results
  sharding.wait_for_all_processes('sequences scored')   # processes finish scoring at different times
  payload = np.frombuffer(json.dumps([r.to_json() for r in results]).encode('utf-8'), np.uint8)
  sizes = multihost_utils.process_allgather(np.array([payload.size], np.int64))
  padded = np.zeros((int(np.max(sizes)),), np.uint8)
  padded[:payload.size] = payload
  everything = multihost_utils.process_allgather(padded)
  gathered = []
  for size, row in zip(np.asarray(sizes).reshape(-1), np.asarray(everything)):
    gathered.extend(SequenceResult.from_json(obj) for obj in json.loads(bytes(row[:size]).decode('utf-8')))
  return gathered


def image_strips(result: SequenceResult, count: int) -> np.ndarray:
  """blurry | ours | sharp side by side for the first `count` scored frames: uint8 (count, H, 3W, 3) (RAW frames:
  rounded to 8 bits, (count, H, 3W, 1), to look at)."""
  if result.outputs is None or result.blur_frames is None or result.sharp_frames is None:
    raise ValueError('image_strips needs a result evaluated with keep_outputs_of_first=True.')
  count = min(count, len(result.frames))
  strips = np.concatenate([result.blur_frames[:count], result.outputs[:count], result.sharp_frames[:count]], axis=2)
  return images.uint16_to_uint8(strips) if strips.dtype == np.uint16 else strips


def write_tables(output_dir: epath.PathLike, results: Sequence[SequenceResult], info: dict[str, Any]) -> None:
  """Writes `results.json` (summary, per-sequence, per-frame) and `sequences.csv`, each atomically."""
  output_dir = epath.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  summary = summarize(results)
  atomic.write_json(output_dir / 'results.json',
                         {'summary': summary, 'info': info, 'sequences': [r.to_json() for r in results]})
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=['sequence', 'frames', *_FRAME_METRICS])
  writer.writeheader()
  for r in results:
    writer.writerow(r.summary())
  writer.writerow({'sequence': 'ALL (mean over frames)', 'frames': summary['frames'],
                   **{k: summary[k] for k in _FRAME_METRICS}})
  atomic.write_text(output_dir / 'sequences.csv', buffer.getvalue())
