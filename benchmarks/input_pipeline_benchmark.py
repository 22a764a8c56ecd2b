r"""Throughput of the training input pipeline: windows per second on BSD-sized frames.

Builds a small dataset in the BSD folder layout (640x480 PNG frames with photo-like 1/f texture, so PNG
decoding costs what it costs on real frames) in a temporary folder, prepares it with the real BSD builder,
and times `input_pipeline.create_train_iterator` (decode T frames, random crop, flips, normalise, batch).
Or point it at an existing dataset with --data_dir (and --dataset).

  python -m benchmarks.input_pipeline_benchmark                        # defaults: 256 crop, 8 frames, batch 8
  python -m benchmarks.input_pipeline_benchmark --steps 5 --sequences 2 --sequence_length 12 --json
  python -m benchmarks.input_pipeline_benchmark --data_dir ~/tensorflow_datasets --dataset bsd/2ms16ms \
      --num_workers 8

Prints the machine, the configuration and windows/s (and frames decoded/s); --json prints one JSON line.
"""

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
import tensorflow_datasets as tfds

from benchmarks import photo_frames
from datasets.bsd import bsd_dataset_builder
from estrnn_jax import input_pipeline

_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Existing TFDS data_dir holding --dataset; default: generate '
                                'a BSD-layout dataset in a temporary folder.')
_DATASET = flags.DEFINE_string('dataset', 'bsd/2ms16ms', 'TFDS name of the dataset (with --data_dir).')
_SPLIT = flags.DEFINE_string('split', 'train', 'Split to read.')
_SEQUENCES = flags.DEFINE_integer('sequences', 4, 'Generated dataset: sequences per split.')
_SEQUENCE_LENGTH = flags.DEFINE_integer('sequence_length', 24, 'Generated dataset: frames per sequence.')
_HEIGHT = flags.DEFINE_integer('height', 480, 'Generated dataset: frame height.')
_WIDTH = flags.DEFINE_integer('width', 640, 'Generated dataset: frame width.')
_FRAMES = flags.DEFINE_integer('frames', 8, 'Frames per window.')
_CROP = flags.DEFINE_integer('crop_size', 256, 'Random crop side (0: full frames).')
_BATCH = flags.DEFINE_integer('batch_size', 8, 'Windows per batch.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed batches.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed batches first (thread start-up, first reads).')
_WORKERS = flags.DEFINE_integer('num_workers', 0, 'Worker processes (0: threads in this process).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line instead of text.')


def main(argv):
  del argv
  with tempfile.TemporaryDirectory(prefix='pipeline_benchmark_') as tmp:
    if _DATA_DIR.value is None:
      manual = photo_frames.generate_bsd_tree(os.path.join(tmp, 'manual'), _SEQUENCES.value, _SEQUENCE_LENGTH.value,
                                 _HEIGHT.value, _WIDTH.value)
      data_dir, dataset = os.path.join(tmp, 'tfds'), 'bsd/2ms16ms'
      bsd_dataset_builder.Builder(data_dir=data_dir, config='2ms16ms').download_and_prepare(
          file_format='array_record', download_config=tfds.download.DownloadConfig(manual_dir=manual))
    else:
      data_dir, dataset = _DATA_DIR.value, _DATASET.value

    iterator = input_pipeline.create_train_iterator(
        dataset=dataset, data_dir=data_dir, split=_SPLIT.value, global_batch_size=_BATCH.value,
        frames=_FRAMES.value, past_frames=2, future_frames=2, crop_size=_CROP.value or None, seed=0,
        num_workers=_WORKERS.value, shard_index=0, shard_count=1)
    for _ in range(_WARMUP.value):
      batch = next(iterator)
    start = time.perf_counter()
    for _ in range(_STEPS.value):
      batch = next(iterator)
    elapsed = time.perf_counter() - start
    if hasattr(iterator, 'close'):
      iterator.close()

  windows_per_s = _STEPS.value * _BATCH.value / elapsed
  result = {
      'machine': {'cpu_count': os.cpu_count(), 'platform': platform.platform(),
                  'processor': platform.processor() or platform.machine(), 'python': sys.version.split()[0],
                  'grain': grain.__version__},
      'config': {'dataset': dataset, 'data_dir': _DATA_DIR.value or '(generated)', 'split': _SPLIT.value,
                 'frame_size': list(batch['blur'].shape[2:4]) if not _CROP.value else None,
                 'source_frame_size': [_HEIGHT.value, _WIDTH.value] if _DATA_DIR.value is None else None,
                 'frames': _FRAMES.value, 'crop_size': _CROP.value or None, 'batch_size': _BATCH.value,
                 'num_workers': _WORKERS.value, 'steps': _STEPS.value, 'warmup': _WARMUP.value},
      'batch_shapes': {k: list(v.shape) for k, v in batch.items()},
      'seconds': round(elapsed, 3),
      'windows_per_s': round(windows_per_s, 2),
      'frames_decoded_per_s': round(windows_per_s * _FRAMES.value * 2, 1),  # blurry + sharp
  }
  if _JSON.value:
    print(json.dumps(result))
  else:
    machine, config = result['machine'], result['config']
    print(f'machine: {machine["cpu_count"]} CPUs, {machine["platform"]}, python {machine["python"]}, '
          f'grain {machine["grain"]}')
    print('config: ' + ', '.join(f'{k}={v}' for k, v in config.items() if v is not None))
    print(f'batches: {result["batch_shapes"]}')
    print(f'{windows_per_s:.2f} windows/s ({result["frames_decoded_per_s"]:.0f} frames decoded/s: blurry + '
          f'sharp) over {_STEPS.value} batches in {elapsed:.2f} s')


if __name__ == '__main__':
  app.run(main)
