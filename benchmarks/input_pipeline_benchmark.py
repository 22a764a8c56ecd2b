r"""Does this host keep an accelerator busy? Training input pipeline throughput, host CPU cost and device demand.

Builds a small dataset in the BSD folder layout (640x480 photo-like frames, `benchmarks/photo_frames.py`) in a
temporary folder with the real BSD builder (`--frame_format`, default raw), or reads an existing one
(`--data_dir`, `--dataset`), and times `input_pipeline.create_train_iterator` (read T frames, random crop,
flips, batch). In the same run it times the baseline: decoding the same windows' 2T frames from PNG with
Pillow on one core (what a window cost before frames were stored raw).

  python -m benchmarks.input_pipeline_benchmark                        # 8 frames, 256 crop, batch 8, in-process
  python -m benchmarks.input_pipeline_benchmark --accelerators H200 --mfu 0.4 --json
  python -m benchmarks.input_pipeline_benchmark --data_dir ~/tensorflow_datasets --dataset bsd/2ms16ms \
      --num_workers 8

Prints the machine, the configuration, windows/s, host CPU seconds per window (this process and its worker
processes) and windows/s per core, the PNG baseline and the ratio, and, per accelerator, the windows/s it
consumes at the stated MFU (training FLOPs per window from `estrnn_jax.profile`, data-sheet peak) with
"this host feeds N% of one <device>". --json prints one JSON line (`windows_per_s` and the rest).
"""

import io
import json
import os
import platform
import sys
import tempfile
import time

from absl import app
from absl import flags
import grain
import numpy as np
from PIL import Image

from benchmarks import accelerators
from benchmarks import photo_frames
from datasets import build as build_lib
from estrnn_jax import frame_storage
from estrnn_jax import input_pipeline

# The paper's names -> (n_features, n_blocks).
MODELS = {'B15C80': (16, 15), 'B9C60': (12, 9)}
DEFAULT_ACCELERATORS = ('H200', 'H100', 'TPU v4', 'TPU v5e', 'TPU v5p')


def define_flags() -> None:
  flags.DEFINE_string('data_dir', None, 'Existing TFDS data_dir holding --dataset; default: generate a '
                      'BSD-layout dataset in a temporary folder.')
  flags.DEFINE_string('dataset', 'bsd/2ms16ms', 'TFDS name of the dataset (with --data_dir).')
  flags.DEFINE_string('split', 'train', 'Split to read.')
  flags.DEFINE_integer('sequences', 4, 'Generated dataset: sequences per split.')
  flags.DEFINE_integer('sequence_length', 24, 'Generated dataset: frames per sequence.')
  flags.DEFINE_integer('height', 480, 'Generated dataset: frame height.')
  flags.DEFINE_integer('width', 640, 'Generated dataset: frame width.')
  flags.DEFINE_enum('frame_format', 'raw', list(frame_storage.FORMATS), 'Generated dataset: frame storage.')
  flags.DEFINE_integer('frames', 8, 'Frames per window.')
  flags.DEFINE_integer('crop_size', 256, 'Random crop side (0: full frames).')
  flags.DEFINE_integer('batch_size', 8, 'Windows per batch.')
  flags.DEFINE_integer('steps', 20, 'Timed batches.')
  flags.DEFINE_integer('warmup', 2, 'Untimed batches first (thread and worker start-up, first reads).')
  flags.DEFINE_integer('num_workers', 0, 'Worker processes (0: threads in this process; -1: sized for this '
                       'host by the pipeline).')
  flags.DEFINE_integer('baseline_windows', 4, 'Windows whose PNG frames are decoded for the baseline.')
  flags.DEFINE_enum('model', 'B15C80', sorted(MODELS), 'Model whose training FLOPs set the device demand.')
  flags.DEFINE_list('accelerators', list(DEFAULT_ACCELERATORS), 'Devices to compare with (data-sheet names).')
  flags.DEFINE_float('mfu', 0.3, 'Model FLOPs utilisation assumed for the devices (bf16).')
  flags.DEFINE_bool('json', False, 'Print one JSON line instead of text.')


def _children_cpu_seconds() -> float:
  """CPU seconds (user + system) used so far by this process's live descendants (grain worker processes)."""
  tick = os.sysconf('SC_CLK_TCK')
  parents, total = {os.getpid()}, 0.0
  stats = []
  for pid in os.listdir('/proc'):
    if pid.isdigit():
      try:
        with open(f'/proc/{pid}/stat') as f:
          fields = f.read().rsplit(')', 1)[1].split()
        stats.append((int(pid), int(fields[1]), (int(fields[11]) + int(fields[12])) / tick))
      except (OSError, IndexError, ValueError):
        continue
  changed = True
  while changed:  # descendants at any depth
    changed = False
    for pid, ppid, _ in stats:
      if ppid in parents and pid not in parents:
        parents.add(pid)
        changed = True
  for pid, _, seconds in stats:
    if pid in parents and pid != os.getpid():
      total += seconds
  return total


def host_cpu_seconds() -> float:
  return time.process_time() + _children_cpu_seconds()


def png_baseline(data_dir: str, dataset: str, split: str, frames: int, windows: int) -> tuple[float, float]:
  """(wall seconds, CPU seconds) per window of decoding its 2 * frames frames from PNG with Pillow in one
  thread (mean over the first `windows` windows of the split; the PNGs are Pillow's default encoding of the
  stored pixels, as the releases' PNGs and the PNG frame format are)."""
  builder = input_pipeline.load_builder(dataset, data_dir)
  stored = frame_storage.stored_format(builder.info.metadata)
  source = builder.as_data_source(split=split)
  pngs = []
  for window in range(windows):
    for record in source.__getitems__(list(range(window, window + frames))):
      for key in ('blur', 'sharp'):
        pixels = frame_storage.decode(record[key], stored)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format='PNG')
        pngs.append(buffer.getvalue())
  start, cpu_start = time.perf_counter(), time.process_time()
  for png in pngs:
    with Image.open(io.BytesIO(png)) as image:
      np.asarray(image)
  return (time.perf_counter() - start) / windows, (time.process_time() - cpu_start) / windows


def main(argv):
  del argv
  f = flags.FLAGS
  with tempfile.TemporaryDirectory(prefix='pipeline_benchmark_') as tmp:
    if f.data_dir is None:
      manual = photo_frames.generate_bsd_tree(os.path.join(tmp, 'manual'), f.sequences, f.sequence_length,
                                              f.height, f.width)
      data_dir, dataset = os.path.join(tmp, 'tfds'), 'bsd/2ms16ms'
      build_lib.build(dataset, data_dir, manual, frame_format=f.frame_format)
    else:
      data_dir, dataset = f.data_dir, f.dataset

    iterator = input_pipeline.create_train_iterator(
        dataset=dataset, data_dir=data_dir, split=f.split, global_batch_size=f.batch_size,
        window_frames=f.frames, past_frames=2, future_frames=2, crop_size=f.crop_size or None, seed=0,
        num_workers=f.num_workers, shard_index=0, shard_count=1)
    for _ in range(f.warmup):
      batch = next(iterator)
    start, cpu_start = time.perf_counter(), host_cpu_seconds()
    for _ in range(f.steps):
      batch = next(iterator)
    elapsed, cpu = time.perf_counter() - start, host_cpu_seconds() - cpu_start
    iterator.close()
    baseline_wall_per_window, baseline_cpu_per_window = png_baseline(data_dir, dataset, f.split, f.frames,
                                                                     f.baseline_windows)
    stored = frame_storage.stored_format(input_pipeline.load_builder(dataset, data_dir).info.metadata)

  windows = f.steps * f.batch_size
  windows_per_s = windows / elapsed
  cpu_per_window = cpu / windows
  baseline_windows_per_s = 1 / baseline_wall_per_window
  n_features, n_blocks = MODELS[f.model]
  height, width = batch['blur'].shape[2:4]
  outputs = batch['sharp'].shape[1]
  flops = accelerators.training_window_flops(n_features, n_blocks, f.frames, outputs, height, width)
  demand = {}
  for device in f.accelerators:
    peak = accelerators.peak_flops(device, 'bfloat16')
    if peak is None:
      raise app.UsageError(f'Unknown accelerator {device!r}; known: {[d for d, *_ in accelerators.PEAK_FLOPS]}')
    consumed = peak * f.mfu / flops
    demand[device] = {'peak_bf16_flops_per_s': peak, 'windows_per_s': round(consumed, 1),
                      'fed_percent': round(100 * windows_per_s / consumed, 1),
                      'cores_to_feed': round(consumed * cpu_per_window, 1)}
  result = {
      'machine': {'cpu_count': os.cpu_count(), 'platform': platform.platform(),
                  'processor': platform.processor() or platform.machine(), 'python': sys.version.split()[0],
                  'grain': grain.__version__},
      'config': {'dataset': dataset, 'data_dir': f.data_dir or '(generated)', 'split': f.split,
                 'frame_format': stored,
                 'source_frame_size': [f.height, f.width] if f.data_dir is None else None,
                 'frames': f.frames, 'crop_size': f.crop_size or None, 'batch_size': f.batch_size,
                 'num_workers': f.num_workers, 'steps': f.steps, 'warmup': f.warmup},
      'batch': {k: [str(v.dtype), *v.shape] for k, v in batch.items()},
      'seconds': round(elapsed, 3),
      'windows_per_s': round(windows_per_s, 2),
      'host_cpu_s_per_window': round(cpu_per_window, 5),
      'windows_per_s_per_core': round(1 / cpu_per_window, 1),
      'png_baseline_windows_per_s_one_core': round(baseline_windows_per_s, 2),
      'png_baseline_cpu_s_per_window': round(baseline_cpu_per_window, 4),
      'vs_png_baseline': round(windows_per_s / baseline_windows_per_s, 1),
      'per_core_vs_png_baseline': round(baseline_cpu_per_window / cpu_per_window, 1),
      'model': f.model, 'train_gflop_per_window': round(flops / 1e9, 1), 'mfu': f.mfu,
      'accelerators': demand,
  }
  if f.json:
    print(json.dumps(result))
    return
  machine, config = result['machine'], result['config']
  print(f'machine: {machine["cpu_count"]} CPUs, {machine["processor"]}, {machine["platform"]}, python '
        f'{machine["python"]}, grain {machine["grain"]}')
  print('config: ' + ', '.join(f'{k}={v}' for k, v in config.items() if v is not None))
  print(f'batch: {result["batch"]}')
  print(f'{windows_per_s:.1f} windows/s over {f.steps} batches in {elapsed:.2f} s; host CPU {1e3 * cpu_per_window:.1f} ms '
        f'per window (this process + workers) = {1 / cpu_per_window:.1f} windows/s per core')
  print(f'baseline, same windows, same run: {2 * f.frames} PNG decodes with Pillow in one thread = '
        f'{baseline_windows_per_s:.2f} windows/s ({1e3 * baseline_cpu_per_window:.0f} ms CPU per window); this '
        f'pipeline delivers {result["vs_png_baseline"]}x its windows/s, {result["per_core_vs_png_baseline"]}x per core')
  print(f'{f.model} training: {flops / 1e9:.0f} GFLOP per window ({f.frames} frames of {height}x{width}, {outputs} '
        f'outputs, forward + backward); devices at {100 * f.mfu:.0f}% MFU of their bf16 data-sheet peak:')
  for device, d in demand.items():
    print(f'  {device:8s} consumes {d["windows_per_s"]:7.1f} windows/s: this host feeds {d["fed_percent"]:.0f}% of '
          f'one {device} (at this per-core cost, {d["cores_to_feed"]:.1f} cores feed one)')


if __name__ == '__main__':
  define_flags()
  app.run(main)
