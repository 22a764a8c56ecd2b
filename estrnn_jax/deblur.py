r"""Deblur a video file or a folder of frames with a trained or converted ESTRNN.

  python -m estrnn_jax.deblur --checkpoint CKPT --input blurry.mp4 --output deblurred.mp4
  python -m estrnn_jax.deblur --checkpoint CKPT --input frames/ --output deblurred/ --compare side_by_side.mp4

CKPT is a training workdir, a converted checkpoint directory (`python -m estrnn_jax.convert`) or an official
`.pth.tar` file (converted on the fly). The input is any video PyAV/FFmpeg decodes, or a folder of PNG/JPEG
frames sorted numerically. The output is a video when its name ends in .mp4/.mov/.mkv/.avi (H.264; the input's
frame size, frame count, frame rate and display rotation are kept) and a folder of PNG frames otherwise (named
as the input frames, or 00000000.png, ... for a video input). Every input frame gets an output frame; see
`estrnn_jax.inference` for how the first `past` and last `future` frames are handled.

Runs in constant memory (frames stream through the model) and shows a progress bar with frames/s. Outputs are
written under a temporary name and moved into place when complete; on any error or Ctrl-C nothing is left behind.
Errors follow `estrnn_jax.cli`: one line `deblur: error: ...`, exit status 1 (130 for Ctrl-C); `--verbosity=1` or
ESTRNN_TRACEBACK=1 adds the traceback. Frames too large for the device give an out-of-memory error that names the
frame size and suggests `--tile`.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import time
from collections.abc import Iterator, Sequence

from absl import logging
import numpy as np
import tqdm

from estrnn_jax import cli
from estrnn_jax import inference
from estrnn_jax import video_io


class DeblurError(cli.UserError):
  """A user-facing failure: bad input, output or checkpoint. The message says what and where."""


def _positive_int(text: str) -> int:
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
  return value


def _non_negative_int(text: str) -> int:
  value = int(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
  return value


def _positive_float(text: str) -> float:
  value = float(text)
  if not value > 0:
    raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
  return value


def build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser('deblur', description='Deblur a video or a folder of frames with ESTRNN.')
  parser.add_argument('--checkpoint', required=True,
                      help='Training workdir, converted checkpoint directory, or official .pth.tar file.')
  parser.add_argument('--input', required=True, help='Video file, or folder of PNG/JPEG frames.')
  parser.add_argument('--output', required=True,
                      help='Video file (.mp4/.mov/.mkv/.avi), or a folder to write PNG frames into.')
  parser.add_argument('--compare', default=None,
                      help='Also write a side-by-side video or PNG folder: input on the left, output on the right.')
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default=None,
                      help="Compute dtype (default: the checkpoint's, float32 for official checkpoints).")
  parser.add_argument('--tile', type=_non_negative_int, default=0,
                      help='Process frames in tiles of this size (multiple of 4; 0: whole frames). For frames too '
                      'large for the device; tiles are independent streams, blended across overlaps.')
  parser.add_argument('--tile_overlap', type=_non_negative_int, default=32,
                      help='Overlap between tiles in pixels (at most tile/2).')
  parser.add_argument('--max_frames', type=_positive_int, default=None, help='Deblur only the first N frames.')
  parser.add_argument('--fps', type=_positive_float, default=None,
                      help='Frame rate of the output video (default: the input video\'s; 30 for a frame folder).')
  parser.add_argument('--crf', type=int, choices=range(0, 52), metavar='0..51', default=18,
                      help='H.264 quality: constant rate factor (lower is better; 18 is near-lossless).')
  parser.add_argument('--group_size', type=_positive_int, default=inference.DEFAULT_GROUP_SIZE,
                      help='Frames per device call (larger can be faster on accelerators; adds latency).')
  parser.add_argument('--which', choices=('latest', 'best'), default='latest',
                      help='For a training workdir: the latest checkpoint or the best by validation PSNR.')
  parser.add_argument('--overwrite', action='store_true', help='Replace existing outputs.')
  return parser


@dataclasses.dataclass
class Summary:
  """What a run did."""
  num_frames: int
  height: int
  width: int
  fps: float
  seconds: float


def run(args: argparse.Namespace) -> Summary:
  """Deblurs `args.input` into `args.output` (and `args.compare`). Raises DeblurError for user errors."""
  if args.tile:
    try:
      inference.check_tiling(args.tile, args.tile_overlap)
    except ValueError as e:
      raise DeblurError(f'--{e}') from None
  paths = [os.path.abspath(p) for p in (args.input, args.output, args.compare) if p]
  if len(set(paths)) != len(paths):
    raise DeblurError('--input, --output and --compare must be different paths.')

  try:
    reader = video_io.FrameReader(args.input, max_frames=args.max_frames, fps=args.fps)
  except video_io.VideoIOError as e:
    raise DeblurError(str(e)) from None
  writers: list = []
  try:
    info = reader.info
    if info.rotation and not all(video_io.is_video_path(p) for p in (args.output, args.compare) if p):
      logging.warning('%s has a display rotation of %d degrees; PNG frames are written as stored (unrotated).',
                      args.input, info.rotation)
    writers.append(video_io.open_writer(args.output, info, crf=args.crf, overwrite=args.overwrite))
    if args.compare:
      writers.append(video_io.open_writer(args.compare, info, width=2 * info.width, crf=args.crf,
                                          overwrite=args.overwrite))
    model, variables = _load_checkpoint(args.checkpoint, args.dtype, args.which)
    logging.info('Model: ESTRNN n_features=%d n_blocks=%d past=%d future=%d dtype=%s.', model.n_features,
                 model.n_blocks, model.past_frames, model.future_frames, np.dtype(model.dtype).name)

    inputs: collections.deque[np.ndarray] = collections.deque()

    def remember(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
      for frame in frames:
        if args.compare:
          inputs.append(frame)   # at most `delay + group_size` frames wait here
        yield frame

    start = time.perf_counter()
    outputs = inference.deblur_stream(model, variables, remember(iter(reader)),
                                      tile=args.tile or None, tile_overlap=args.tile_overlap,
                                      group_size=args.group_size)
    count = 0
    with tqdm.tqdm(total=info.num_frames, unit='frame', desc='deblurring', dynamic_ncols=True) as progress:
      for frame in outputs:
        writers[0].write(frame)
        if args.compare:
          writers[1].write(np.concatenate([inputs.popleft(), frame], axis=1))
        count += 1
        progress.update(1)
    seconds = time.perf_counter() - start
    for writer in writers:
      writer.commit()
    writers.clear()
    return Summary(count, info.height, info.width, float(info.fps), seconds)
  except video_io.VideoIOError as e:
    raise DeblurError(str(e)) from None
  except Exception as e:  # pylint: disable=broad-except
    if cli.is_device_out_of_memory(e):
      raise DeblurError(_out_of_memory_message(args, reader.info)) from e
    raise
  finally:
    for writer in writers:
      writer.abort()
    reader.close()


def _out_of_memory_message(args: argparse.Namespace, info: video_io.VideoInfo) -> str:
  if args.tile:
    hint = f'use a smaller --tile than {args.tile} (a multiple of 4, at least 16)'
  else:
    hint = 'process the frames in tiles, e.g. --tile 256 (smaller if needed)'
  if args.group_size > 1:
    hint += f', or a smaller --group_size than {args.group_size}'
  return (f'out of device memory deblurring {info.width}x{info.height} frames of {args.input}'
          f'{f" in {args.tile}x{args.tile} tiles" if args.tile else ""}: {hint}.')


def _load_checkpoint(path: str, dtype: str | None, which: str):
  try:
    return inference.load_model(path, dtype=dtype, which=which)
  except Exception as e:  # pylint: disable=broad-except
    # Orbax, the converter and JSON parsing raise many exception types for a bad checkpoint; all are fatal here.
    message = str(e).strip() or type(e).__name__
    if path not in message:
      message = f'{path}: {message}'
    raise DeblurError(f'cannot load the checkpoint: {message}') from None


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status (0 ok, 1 error or bad arguments, 130 interrupted)."""
  args = build_parser().parse_args(argv)
  return cli.guarded('deblur', lambda: _run_and_report(args), verbosity=args.verbosity)


def _run_and_report(args: argparse.Namespace) -> None:
  summary = run(args)
  rate = summary.num_frames / summary.seconds if summary.seconds > 0 else float('inf')
  print(f'Deblurred {summary.num_frames} frames ({summary.width}x{summary.height}, {summary.fps:g} fps) in '
        f'{summary.seconds:.1f} s ({rate:.2f} frames/s) -> {args.output}'
        + (f' (comparison: {args.compare})' if args.compare else ''))


if __name__ == '__main__':
  sys.exit(main())
