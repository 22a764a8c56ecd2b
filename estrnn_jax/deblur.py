r"""Deblur a video file or a folder of frames with a trained or converted ESTRNN.

  python -m estrnn_jax.deblur --checkpoint CKPT --input blurry.mp4 --output deblurred.mp4
  python -m estrnn_jax.deblur --checkpoint CKPT --input frames/ --output deblurred/ --compare side_by_side.mp4
  python -m estrnn_jax.deblur --checkpoint CKPT --input 'clips/*.mp4' --input extra.mov --output deblurred/

CKPT is a training workdir, a converted checkpoint directory (`python -m estrnn_jax.convert`) or an official
`.pth.tar` file (converted on the fly). A RAW model (ESTRNN-RAW, `configs/bsd.py:2ms16ms_raw`) takes a folder of
16-bit RAW TIFF frames (as BSD's `Blur/RAW/`) and writes a folder of 16-bit RAW TIFFs. The input is any video PyAV/FFmpeg decodes, or a folder of PNG/JPEG
frames sorted numerically. The output is a video when its name ends in .mp4/.mov/.mkv/.avi (H.264; the input's
frame size, frame count, frame rate and display rotation are kept) and a folder of PNG frames otherwise (named
as the input frames, or 00000000.png, ... for a video input). Every input frame gets an output frame; see
`estrnn_jax.inference` for how the first `past` and last `future` frames are handled.

Several inputs (`--input` repeated, or a quoted glob pattern): `--output` (and `--compare`) name folders, and each
input gets its own output inside, named after it: a video keeps its file name (other suffixes than
.mp4/.mov/.mkv/.avi become .mp4), a frame folder gives a PNG folder of its name. Videos of one frame size are
deblurred together, `--videos_per_call` of them batched in each device call (each output is what that video gives
alone).

Runs in constant memory (frames stream through the model) and shows a progress bar with frames/s. Before any
work the outputs are checked: not an input under another name (symlink, hard link, `..`), a name a writer makes
(a video suffix, or a folder), a destination that can be written. Outputs are written under a temporary name and
moved into place when complete; on any error, Ctrl-C or SIGTERM nothing is left behind, and temporaries of an
earlier run that was killed outright are removed by the next run to the same output.
Errors follow `estrnn_jax.cli`: one line `deblur: error: ...`, exit status 1 (130 for Ctrl-C, 143 for SIGTERM);
`--verbosity=1` or ESTRNN_TRACEBACK=1 adds the traceback. Frames too large for the device give an out-of-memory
error that names the frame size and suggests `--tile`.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import os
import pathlib
import sys
import time
from collections.abc import Iterator, Sequence

from absl import logging
import numpy as np
import tqdm

from estrnn_jax import cli
from estrnn_jax import destinations
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
  parser.add_argument('--input', required=True, action='append',
                      help='Video file, or folder of PNG/JPEG frames. Repeat it, or give a quoted glob pattern '
                      '("clips/*.mp4"), to deblur several; --output and --compare are then folders.')
  parser.add_argument('--output', required=True,
                      help='Video file (.mp4/.mov/.mkv/.avi), or a folder to write PNG frames into. With several '
                      'inputs: the folder that receives one output per input, named after it.')
  parser.add_argument('--compare', default=None,
                      help='Also write a side-by-side video or PNG folder: input on the left, output on the right '
                      '(with several inputs: a folder of them, named as the outputs).')
  parser.add_argument('--videos_per_call', type=_positive_int, default=4,
                      help='With several inputs: videos of one frame size deblurred together, batched in each '
                      'device call (faster on accelerators; needs as many times the device memory).')
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default=None,
                      help="Compute dtype (default: the checkpoint's, float32 for official checkpoints).")
  parser.add_argument('--tile', type=_non_negative_int, default=0,
                      help='Process frames in tiles of this size (multiple of 4; 0: whole frames). For frames too '
                      'large for the device; tiles are independent streams, blended across overlaps.')
  parser.add_argument('--tile_overlap', type=_non_negative_int, default=32,
                      help='Overlap between tiles in pixels (at most tile/2).')
  parser.add_argument('--tile_batch', type=_non_negative_int, default=0,
                      help='Tiles (of all videos in a call) run through the model at once; 0: all of them, '
                      'batched (fastest); smaller values bound device memory, the output is the same.')
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
  """What a run did (frame size and rate of the first video when there are several)."""
  num_frames: int
  height: int
  width: int
  fps: float
  seconds: float
  num_videos: int = 1


@dataclasses.dataclass(frozen=True)
class Job:
  """One input and where its outputs go."""
  input: str
  output: str
  compare: str | None


_GLOB_CHARACTERS = frozenset('*?[')


def expand_inputs(patterns: Sequence[str]) -> tuple[list[str], bool]:
  """The --input values with glob patterns expanded (natural order); and whether they name several videos.

  A value that exists as a path is taken as it is; one with glob characters that matches nothing is an error.
  """
  inputs, several = [], len(patterns) > 1
  for pattern in patterns:
    if os.path.exists(pattern) or not _GLOB_CHARACTERS & set(pattern):
      inputs.append(pattern)
      continue
    matches = sorted(glob.glob(pattern), key=video_io.natural_sort_key)
    if not matches:
      raise DeblurError(f'--input {pattern}: no file or folder matches this pattern.')
    inputs.extend(matches)
    several = True
  return inputs, several


def output_name(input_path: str) -> str:
  """The name of an input's output inside the --output folder: a video keeps its name (.mp4 for suffixes the
  writer does not know), a frame folder its folder name."""
  path = pathlib.Path(input_path)
  if path.is_dir() or path.suffix.lower() in video_io.WRITABLE_VIDEO_SUFFIXES:
    return path.name
  return path.stem + '.mp4'


def plan(args: argparse.Namespace) -> tuple[list[Job], bool]:
  """The jobs of a run and whether it is a several-input run. Raises DeblurError, before any work, for clashing
  paths (compared by what they are: symlinks, hard links and `..` included), an output name no writer makes, or
  a destination that cannot be written."""
  inputs, several = expand_inputs(args.input)
  if not several:
    jobs = [Job(inputs[0], args.output, args.compare)]
    for flag, path in (('--output', args.output), ('--compare', args.compare)):
      if path:
        try:
          video_io.check_output_name(path)
        except video_io.VideoIOError as e:
          raise DeblurError(f'{flag} {e}') from None
  else:
    for flag, folder in (('--output', args.output), ('--compare', args.compare)):
      if folder and (os.path.isfile(folder) or video_io.is_video_path(folder)):
        raise DeblurError(f'{flag} {folder}: with several inputs this must be a folder (one output per input).')
    names: dict[str, str] = {}
    for path in inputs:
      name = output_name(path)
      if name in names:
        raise DeblurError(f'--input {path} and {names[name]} would both be written as {name}; rename one.')
      names[name] = path
    jobs = [Job(path, os.path.join(args.output, name), os.path.join(args.compare, name) if args.compare else None)
            for name, path in names.items()]
  _check_distinct(jobs)
  if not args.overwrite:
    for job in jobs:
      for path in (job.output, job.compare):
        if path and os.path.lexists(path):
          raise DeblurError(f'{path}: already exists (pass --overwrite to replace it).')
  for flag, path in (('--output', args.output), ('--compare', args.compare)):
    if path:
      destinations.check_writable(path, flag=flag, into=several)
  return jobs, several


def _check_distinct(jobs: list[Job]) -> None:
  """Every input, output and comparison is a different file or folder, and no output holds an input (replacing
  it would delete the input)."""
  inputs = [job.input for job in jobs]
  outputs = [p for job in jobs for p in (job.output, job.compare) if p]
  for i, a in enumerate(inputs + outputs):
    for b in (inputs + outputs)[i + 1:]:
      if destinations.same_path(a, b):
        raise DeblurError(f'--input, --output and --compare must be different paths: {a} and {b} are the same '
                          f'{"folder" if os.path.isdir(a) else "file"}.')
  for output in outputs:
    for path in inputs:
      if destinations.is_inside(path, output):
        raise DeblurError(f'--input {path} lies inside the output {output}; writing it would replace the input.')


def run(args: argparse.Namespace) -> Summary:
  """Deblurs `args.input` into `args.output` (and `args.compare`). Raises DeblurError for user errors."""
  if args.tile:
    try:
      inference.check_tiling(args.tile, args.tile_overlap)
    except ValueError as e:
      raise DeblurError(f'--{e}') from None
  jobs, several = plan(args)
  per_call = args.videos_per_call if several else 1
  model = variables = None
  # Videos wait here, by (height, width, dtype), until `per_call` of one kind are open; then they run together.
  waiting: dict[tuple[int, int, np.dtype], list[tuple[Job, video_io.FrameReader]]] = {}
  first_info, count = None, 0
  start = time.perf_counter()
  with tqdm.tqdm(total=0, unit='frame', desc='deblurring', dynamic_ncols=True) as progress:
    try:
      for index, job in enumerate(jobs):
        try:
          reader = video_io.FrameReader(job.input, max_frames=args.max_frames, fps=args.fps)
        except video_io.VideoIOError as e:
          raise DeblurError(str(e)) from None
        info = reader.info
        first_info = first_info or info
        if info.num_frames is not None and progress.total is not None:
          progress.total += info.num_frames
          progress.refresh()
        else:
          progress.total = None
        key = (info.height, info.width, reader.dtype)
        waiting.setdefault(key, []).append((job, reader))
        if model is None:
          model, variables = _load_checkpoint(args.checkpoint, args.dtype, args.which)
          logging.info('Model: ESTRNN n_features=%d n_blocks=%d past=%d future=%d dtype=%s.', model.n_features,
                       model.n_blocks, model.past_frames, model.future_frames, np.dtype(model.dtype).name)
        ready = [k for k, batch in waiting.items() if len(batch) == per_call or index == len(jobs) - 1]
        for k in ready:
          count += _deblur_together(waiting.pop(k), model, variables, args, several, progress)
    finally:
      for batch in waiting.values():
        for _, reader in batch:
          reader.close()
  seconds = time.perf_counter() - start
  return Summary(count, first_info.height, first_info.width, float(first_info.fps), seconds, len(jobs))


def _deblur_together(batch: list[tuple[Job, video_io.FrameReader]], model, variables, args: argparse.Namespace,
                     several: bool, progress: tqdm.tqdm) -> int:
  """Deblurs videos of one frame size and dtype in one `stream_many` (batched device calls); writes and commits
  every job's outputs, or on any error aborts them all (nothing half-written is left). Returns the frame count."""
  writers: list = []
  jobs, readers = [job for job, _ in batch], [reader for _, reader in batch]
  try:
    outputs = []
    for job, reader in batch:
      info = reader.info
      if info.rotation and not all(video_io.is_video_path(p) for p in (job.output, job.compare) if p):
        logging.warning('%s has a display rotation of %d degrees; PNG frames are written as stored (unrotated).',
                        job.input, info.rotation)
      _check_frames_fit_model(job.input, reader, model)
      raw = model.channels == 1
      writer = video_io.open_writer(job.output, info, crf=args.crf, overwrite=args.overwrite, raw=raw)
      writers.append(writer)
      compare = None
      if job.compare:
        compare = video_io.open_writer(job.compare, info, width=2 * info.width, crf=args.crf,
                                       overwrite=args.overwrite, raw=raw)
        writers.append(compare)
      outputs.append((writer, compare))

    inputs = [collections.deque() for _ in batch]

    def remember(index: int, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
      for frame in frames:
        if jobs[index].compare:
          inputs[index].append(frame)   # at most `delay + 2 groups` frames wait here
        yield frame

    deblurrer = inference.StreamingDeblurrer(model, variables, tile=args.tile or None,
                                             tile_overlap=args.tile_overlap, group_size=args.group_size,
                                             tile_batch=args.tile_batch or None)
    count = 0
    for index, frame in deblurrer.stream_many([remember(i, iter(r)) for i, r in enumerate(readers)]):
      writer, compare = outputs[index]
      writer.write(frame)
      if compare is not None:
        compare.write(np.concatenate([inputs[index].popleft(), frame], axis=1))
      count += 1
      progress.update(1)
    for writer in writers:
      writer.commit()
    writers.clear()
    if several:
      for job in jobs:
        logging.info('Deblurred %s -> %s', job.input, job.output)
    return count
  except video_io.VideoIOError as e:
    raise DeblurError(str(e)) from None
  except Exception as e:  # pylint: disable=broad-except
    if cli.is_device_out_of_memory(e):
      raise DeblurError(_out_of_memory_message(args, readers[0].info, jobs, several)) from e
    raise
  finally:
    for writer in writers:
      writer.abort()
    for reader in readers:
      reader.close()


def _check_frames_fit_model(path: str, reader: video_io.FrameReader, model) -> None:
  """RAW (Bayer) frames go to a RAW model only, and RGB ones to an RGB model; raises DeblurError otherwise."""
  if (reader.channels == 1) != (model.channels == 1):
    if model.channels == 1:
      raise DeblurError(f'{path}: the checkpoint is a RAW model (ESTRNN-RAW); it deblurs a folder of 16-bit RAW '
                        'TIFF frames (Bayer mosaics, as BSD\'s RAW folders), not RGB frames or videos.')
    raise DeblurError(f'{path}: holds RAW (Bayer) TIFF frames, but the checkpoint is an RGB model; deblur them with '
                      'a RAW model (ESTRNN input=\'raw\').')


def _out_of_memory_message(args: argparse.Namespace, info: video_io.VideoInfo, jobs: list[Job],
                           several: bool) -> str:
  if args.tile:
    hint = f'use a smaller --tile than {args.tile} (a multiple of 4, at least 16)'
    if args.tile_batch != 1:
      hint += ', or --tile_batch 1 (one tile at a time)'
  else:
    hint = 'process the frames in tiles, e.g. --tile 256 (smaller if needed)'
  if args.group_size > 1:
    hint += f', or a smaller --group_size than {args.group_size}'
  if len(jobs) > 1:
    hint += f', or a smaller --videos_per_call than {args.videos_per_call}'
  what = jobs[0].input if len(jobs) == 1 else f'{len(jobs)} videos together ({", ".join(j.input for j in jobs)})'
  return (f'out of device memory deblurring {info.width}x{info.height} frames of {what}'
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


def main(argv: Sequence[str] | None = None, *, command_line: bool = False) -> int:
  """Command-line entry point; returns the exit status (0 ok, 1 error or bad arguments, 130 interrupted, 143
  terminated). `command_line`: this process is the command (`cli.quiet_background_errors` for all of it)."""
  args = build_parser().parse_args(argv)
  if command_line:
    cli.quiet_background_errors(args.verbosity)
  return cli.guarded('deblur', lambda: _run_and_report(args), verbosity=args.verbosity)


def _run_and_report(args: argparse.Namespace) -> None:
  summary = run(args)
  rate = summary.num_frames / summary.seconds if summary.seconds > 0 else float('inf')
  if summary.num_videos > 1:
    print(f'Deblurred {summary.num_videos} videos ({summary.num_frames} frames) in {summary.seconds:.1f} s '
          f'({rate:.2f} frames/s) -> {args.output}' + (f' (comparisons: {args.compare})' if args.compare else ''))
    return
  print(f'Deblurred {summary.num_frames} frames ({summary.width}x{summary.height}, {summary.fps:g} fps) in '
        f'{summary.seconds:.1f} s ({rate:.2f} frames/s) -> {args.output}'
        + (f' (comparison: {args.compare})' if args.compare else ''))


if __name__ == '__main__':
  sys.exit(main(command_line=True))
