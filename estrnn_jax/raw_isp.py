"""ESTRNN-RAW's scoring in RGB, as the official `train/test_isp.py` (zzh-tech/ESTRNN) does it: `evaluate --protocol
raw_isp`.

Per test sequence of a RAW dataset (`bsd/<setting>_raw`), with the RGB dataset of the same release (`bsd/<setting>`)
for the reference frames:
  1. RAW outputs: the reference protocol (20-frame chunks, `estrnn_jax.evaluation`), clipped and truncated to
     uint16 as the official test script writes its `%08d_estrnn-raw.tiff` frames. Their RAW-space PSNR/SSIM (data
     range 65535, against the sharp RAW frames) are the plain RAW scores.
  2. A mosaic of the whole sequence, `MOSAIC_COLUMNS` (15) frames per row, so BSD's 150 test frames make 10 rows;
     the frames without an output (the first `past` and last `future`) show the nearest output frame, as the
     official script does (a sequence whose length is not a multiple of 15, unlike BSD's, fills its last row with
     the last output frame).
  3. The ISP: the mosaic as a 16-bit TIFF through rawpy (LibRaw) `postprocess(use_auto_wb=True,
     no_auto_bright=False, output_bps=16, user_black=0)`, once per sequence, so automatic white balance and
     brightness are the same for all its frames; then `(rgb16 / 65535 * 255).astype(uint8)` (float32, truncated).
  4. Each output frame's tile scored against the sharp RGB frame: PSNR and SSIM on uint8, as the RGB protocol
     (`estrnn_jax.metrics`), the first `past` and last `future` frames unscored. The blurry RGB frames against the
     sharp ones give the blurry input's scores.
Overall scores are means over every scored frame of every sequence, as everywhere in the project.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import functools
import io
from typing import Any

import jax
import numpy as np
import rawpy

from estrnn_jax import evaluation
from estrnn_jax import input_pipeline
from estrnn_jax import metrics
from estrnn_jax import raw_frames

PROTOCOL = 'raw_isp'
MOSAIC_COLUMNS = 15
# rawpy's postprocess arguments of the official test script.
ISP_OPTIONS = {'use_auto_wb': True, 'no_auto_bright': False, 'output_bps': 16, 'user_black': 0}
# Per-frame RAW-space scores reported next to the RGB ones (their names in the summary and tables).
RAW_METRICS = {'psnr': 'raw_psnr', 'ssim': 'raw_ssim', 'blur_psnr': 'raw_blur_psnr', 'blur_ssim': 'raw_blur_ssim'}


def mosaic_slots(num_frames: int, past: int, future: int, columns: int = MOSAIC_COLUMNS) -> np.ndarray:
  """Which frame fills each slot of a sequence's mosaic: (rows, columns) frame indices, row-major, every one in
  `past ... num_frames - future - 1` (frames without an output show the nearest output frame)."""
  columns = min(columns, num_frames)
  rows = -(-num_frames // columns)
  return np.clip(np.arange(rows * columns), past, num_frames - future - 1).reshape(rows, columns)


def build_mosaic(outputs: np.ndarray, slots: np.ndarray) -> np.ndarray:
  """outputs {frame index: uint16 (H, W)} as an array (T, H, W) (rows of unscored frames unused) -> the uint16
  mosaic (rows * H, columns * W) of `slots`."""
  return np.concatenate([np.concatenate([outputs[k] for k in row], axis=1) for row in slots], axis=0)


def isp(mosaic: np.ndarray) -> np.ndarray:
  """The official ISP: uint16 RAW (H, W) -> uint8 RGB (H, W, 3) through rawpy with `ISP_OPTIONS`, truncated."""
  with rawpy.imread(io.BytesIO(raw_frames.encode_tiff(mosaic))) as raw:
    rgb16 = raw.postprocess(**ISP_OPTIONS)
  return (rgb16.astype(np.float32) / np.float32(65535) * np.float32(255)).astype(np.uint8)


@functools.cache
def _rgb_scores():
  def scores(out, blur, sharp):
    return {'psnr': metrics.psnr(out, sharp), 'ssim': metrics.ssim(out, sharp),
            'blur_psnr': metrics.psnr(blur, sharp), 'blur_ssim': metrics.ssim(blur, sharp)}
  return jax.jit(scores)


def score_sequence(evaluator: evaluation.SequenceEvaluator, name: str, raw: tuple[np.ndarray, np.ndarray],
                   rgb: tuple[np.ndarray, np.ndarray]) -> tuple[evaluation.SequenceResult, dict[str, np.ndarray],
                                                                np.ndarray]:
  """One sequence: RAW blur/sharp uint16 (T, H, W, 1), RGB blur/sharp uint8 (T, H, W, 3).

  Returns the RGB result (ISP output and blurry input against the sharp RGB frames; `loss` is the RAW-space
  loss; `outputs`: the ISP's RGB frames of the scored frames, uint8 (n, H, W, 3)), the RAW-space per-frame scores
  (keys of `RAW_METRICS`), and the RAW outputs of the scored frames, uint16 (n, H, W, 1).
  """
  (raw_blur, raw_sharp), (rgb_blur, rgb_sharp) = raw, rgb
  if raw_blur.shape[:3] != rgb_blur.shape[:3]:
    raise ValueError(f'Sequence {name!r}: the RAW frames are {raw_blur.shape[:3]} (T, H, W) but the RGB frames '
                     f'are {rgb_blur.shape[:3]}; the ISP protocol needs the RGB frames of the same sequence.')
  result = evaluator(name, raw_blur, raw_sharp, keep_outputs=True)
  outputs = np.zeros(raw_blur.shape[:3], np.uint16)
  outputs[result.frames] = result.outputs[..., 0]
  slots = mosaic_slots(len(raw_blur), evaluator.past, evaluator.future)
  height, width = raw_blur.shape[1:3]
  rgb_mosaic = isp(build_mosaic(outputs, slots))
  # A scored frame's tile is its own slot (its neighbours' copies of it elsewhere are demosaiced next to others).
  frames_rgb = np.stack([rgb_mosaic[r * height:(r + 1) * height, c * width:(c + 1) * width]
                         for r, c in (divmod(int(k), slots.shape[1]) for k in result.frames)])
  scores = jax.device_get(_rgb_scores()(frames_rgb, rgb_blur[result.frames], rgb_sharp[result.frames]))
  rgb_result = evaluation.SequenceResult(name=name, frames=result.frames, loss=result.loss, outputs=frames_rgb,
                                         **{k: np.asarray(v, np.float64) for k, v in scores.items()})
  return rgb_result, {new: getattr(result, old) for old, new in RAW_METRICS.items()}, result.outputs


def paired_sequences(raw: Iterable[tuple[str, np.ndarray, np.ndarray]], rgb: Iterable[tuple[str, np.ndarray, np.ndarray]],
                     raw_dataset: str, rgb_dataset: str) -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray],
                                                                           tuple[np.ndarray, np.ndarray]]]:
  """Zips the sequences of the RAW and the RGB dataset (the same split and shard); raises ValueError naming both
  when they do not list the same sequences in the same order."""
  raw, rgb = iter(raw), iter(rgb)
  while True:
    a, b = next(raw, None), next(rgb, None)
    if a is None and b is None:
      return
    if a is None or b is None or a[0] != b[0]:
      first = lambda item, what: f'{item[0]!r}' if item else f'no more sequences in {what}'
      raise ValueError(f'{raw_dataset} and {rgb_dataset} hold different sequences ({first(a, raw_dataset)} against '
                       f'{first(b, rgb_dataset)}); the ISP protocol needs the RGB dataset of the same release.')
    yield a[0], (a[1], a[2]), (b[1], b[2])


def evaluate_sequences(evaluator: evaluation.SequenceEvaluator, sequences, *, frames_dir=None
                       ) -> tuple[list[evaluation.SequenceResult], list[dict[str, Any]]]:
  """Scores `paired_sequences(...)`; returns the RGB results and, per sequence, its RAW-space scores
  ({'sequence', 'frames', raw_psnr, ...} means). `frames_dir`: also write each sequence's output frames, RGB from
  the ISP as `<frames_dir>/<name>/%08d.png` and RAW as `%08d.tiff` (16-bit, what the ISP was given)."""
  results, raw_rows = [], []
  for name, raw, rgb in sequences:
    result, raw_scores, raw_outputs = score_sequence(evaluator, name, raw, rgb)
    if frames_dir is not None:
      evaluation.write_frames(frames_dir / name, result.frames, result.outputs)
      evaluation.write_frames(frames_dir / name, result.frames, raw_outputs)
    result.outputs = None
    results.append(result)
    raw_rows.append({'sequence': name, 'frames': int(len(result.frames)),
                     **{k: float(np.mean(v)) for k, v in raw_scores.items()},
                     'frame_raw_psnr': [float(v) for v in raw_scores['raw_psnr']]})
  return results, raw_rows


def raw_summary(raw_rows: list[dict[str, Any]]) -> dict[str, float]:
  """RAW-space means over every scored frame of every sequence (frame-weighted, as `evaluation.summarize`)."""
  frames = np.array([row['frames'] for row in raw_rows], np.float64)
  return {key: float(np.sum(frames * np.array([row[key] for row in raw_rows])) / np.sum(frames))
          for key in RAW_METRICS.values()}


def run(model, params: Any, *, raw_dataset: str, rgb_dataset: str, data_dir: str | None, split: str,
        chunk_frames: int, rounding: str, loss: str, max_sequences: int | None = None, frames_dir=None
        ) -> tuple[list[evaluation.SequenceResult], list[dict[str, Any]]]:
  """The protocol on `split` of a RAW dataset, the sharp/blurry RGB frames read from `rgb_dataset` (same data_dir).

  One process only (the mosaic of a sequence needs all its outputs; BSD's test split takes minutes). Returns
  `evaluate_sequences`'s results. Raises ValueError for a multi-process run or datasets that do not pair up.
  """
  if jax.process_count() > 1:
    raise ValueError(f'the {PROTOCOL} protocol runs on one process; got {jax.process_count()}.')
  evaluator = evaluation.SequenceEvaluator(model, params, protocol='reference', chunk_frames=chunk_frames,
                                           rounding=rounding, loss=loss)
  read = lambda dataset: input_pipeline.iterate_sequences(dataset=dataset, data_dir=data_dir, split=split,
                                                          max_sequences=max_sequences)
  return evaluate_sequences(evaluator, paired_sequences(read(raw_dataset), read(rgb_dataset), raw_dataset,
                                                        rgb_dataset), frames_dir=frames_dir)
