"""Grain input pipelines over the TFDS frame datasets (BSD, GOPRO, REDS, synthetic_blur).

The datasets store one ArrayRecord record per frame, in (sequence, frame) order, with a per-split sequence
table in their metadata (`records.sequence_table`), so both pipelines find their frames without
reading any image and decode exactly the frames they use.

Training (`create_train_iterator`): every window of `window_frames` consecutive frames inside one sequence is an
example (a sequence of length L gives L - window_frames + 1 windows; windows never cross a sequence boundary). An
epoch visits every window once, in an order reshuffled every epoch; each window gets one random crop and
random horizontal and vertical flips (p = 0.5 each) shared by all its frames and by blur and sharp (the
reference's augmentation), and optionally Gaussian noise on the blurry frames only (`noise_std`, the paper's
Fig. 15 study; `add_noise`). Batches are `{'blur': (B, T, h, w, 3), 'sharp': (B, T - past - future, h, w, 3)}`
uint8, the targets being the centre frames `[past : T - future]`; the jitted step maps them to the model's
[-0.5, 0.5] on the device (`images.normalise_on_device`), so a quarter of float32's bytes leave the host.
A window reads its T records and decodes only what it uses: the crop of the T blurry frames and of the
centre sharp frames, cropped before any conversion (for raw frames, a slice of the record's bytes).

Multi-host: the shuffled, augmented stream of windows is global (its order and crops depend only on the
seed); process `p` of `n` takes windows `p, p + n, p + 2n, ...` of it, so the union of the per-process
batches of step `s` is always the global batch `s`, whatever the number of processes. The iterator is
checkpointable: its state is the index of the next batch (`{'next_batch': k, ...}`, JSON), valid whatever
the number of worker processes; with Orbax::

  ckpt_args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                 data_iter=grain.checkpoint.CheckpointSave(train_iter))
  ...  # restore with grain.checkpoint.CheckpointRestore(train_iter) (restores it in place)

Evaluation (`iterate_sequences`): whole sequences in order as uint8 arrays, optionally sharded over
processes, decoding the next sequence in background threads while the caller works on the current one.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
import concurrent.futures
import dataclasses
import os
from typing import Any

from absl import logging
import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

from estrnn_jax import frame_storage
from estrnn_jax import records

# Per-thread decoding batch for evaluation: frames decoded together by one thread.
_EVAL_CHUNK_FRAMES = 8


def load_builder(dataset: str, data_dir: str | os.PathLike[str] | None) -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder for `dataset` (e.g. 'bsd/2ms16ms') under `data_dir` (None: TFDS's default).

  Reads only the prepared files (their `dataset_info.json` and metadata), so it needs neither the builder code
  (`datasets/`) nor its registration. Raises FileNotFoundError, naming the folder searched, when the dataset
  has not been built there.
  """
  data_dir = None if data_dir is None else os.fspath(data_dir)
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    builder = None
  if builder is None or not builder.is_prepared():
    where = builder.data_dir if builder is not None else os.path.join(data_dir or tfds.core.constants.DATA_DIR,
                                                                       dataset)
    raise FileNotFoundError(
        f'Dataset {dataset!r} is not prepared in {where} (no dataset_info.json there). Build it first with '
        f'`python -m datasets.build --dataset {dataset} --data_dir <dir>` (see datasets/).')
  return builder


def _data_source(builder: tfds.core.DatasetBuilder, split: str):
  """The split's frame records, frames as bytes in the dataset's frame format (`frame_storage.decode`)."""
  if split not in builder.info.splits:
    raise ValueError(f'Dataset {builder.info.full_name} in {builder.data_dir} has no split {split!r} '
                     f'(splits: {sorted(builder.info.splits)}).')
  # Datasets built before frame storage formats declare their frames as TFDS `Image` features (read from their
  # features.json when the builder class is not imported): keep those PNG bytes as they are too.
  features = builder.info.features
  legacy = {key: tfds.decode.SkipDecoding() for key in ('blur', 'sharp')
            if isinstance(features[key], tfds.features.Image)}
  return builder.as_data_source(split=split, decoders=legacy or None)


def dataset_frame_format(builder: tfds.core.DatasetBuilder, dataset: str) -> str:
  """The prepared dataset's frame format (`frame_storage.stored_format`); logs how to rebuild a PNG one."""
  stored = frame_storage.stored_format(builder.info.metadata)
  if stored == 'png':
    logging.warning('%s in %s stores its frames as PNG: every read decodes whole frames (several ms each). '
                    'For training, rebuild it with raw frames: `python -m datasets.build --dataset %s '
                    '--data_dir %s --overwrite` (--manual_dir too for a downloaded release).',
                    dataset, builder.data_dir, dataset, builder.data_dir_root)
  return stored


def list_sequences(*, dataset: str, data_dir: str | os.PathLike[str] | None, split: str
                   ) -> list[records.SequenceRow]:
  """The split's sequences in record order: [(name, first_record_index, length), ...]; reads no image."""
  return records.sequence_table(load_builder(dataset, data_dir), split)


def _first_frame_size(frame_source, table: Sequence[records.SequenceRow], stored: str, where: str
                      ) -> tuple[int, int]:
  return frame_storage.frame_size(frame_source[table[0][1]]['blur'], stored, f'the first frame of {where}')


def frame_size(*, dataset: str, data_dir: str | os.PathLike[str] | None, split: str) -> tuple[int, int]:
  """(height, width) of the first frame of a prepared dataset's split (reads one record)."""
  builder = load_builder(dataset, data_dir)
  return _first_frame_size(_data_source(builder, split), records.sequence_table(builder, split),
                           frame_storage.stored_format(builder.info.metadata), f'{dataset} split {split!r}')


def window_starts(table: Sequence[records.SequenceRow], window_frames: int, *, where: str = 'the dataset'
                  ) -> np.ndarray:
  """Record index of the first frame of every `window_frames`-frame window inside one sequence: (num_windows,) int64.

  Raises ValueError naming the sequences shorter than `window_frames`, or when there is no window at all.
  """
  if window_frames < 1:
    raise ValueError(f'window_frames must be >= 1, got {window_frames}')
  short = [(name, length) for name, _, length in table if length < window_frames]
  if short:
    listed = ', '.join(f'{name!r} ({length} frames)' for name, length in short[:10])
    more = f' and {len(short) - 10} more' if len(short) > 10 else ''
    raise ValueError(f'{len(short)} sequence(s) of {where} are shorter than window_frames={window_frames}: '
                     f'{listed}{more}. '
                     'Use fewer frames per window or drop those sequences.')
  starts = [np.arange(first, first + length - window_frames + 1) for _, first, length in table]
  if not starts or sum(len(s) for s in starts) == 0:
    raise ValueError(f'No window of {window_frames} frames fits in {where}: it has no sequences.')
  return np.concatenate(starts).astype(np.int64)


def _record_name(value: Any) -> str:
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _check_records(frame_records: Sequence[dict[str, Any]], name: str, first_frame: int, where: str) -> None:
  """Raises unless `frame_records` are frames first_frame, first_frame + 1, ... of sequence `name`."""
  for offset, record in enumerate(frame_records):
    found = (_record_name(record['sequence']), int(record['frame_index']))
    if found != (name, first_frame + offset):
      raise ValueError(
          f'{where}: expected frame {first_frame + offset} of sequence {name!r} but the record holds frame '
          f'{found[1]} of sequence {found[0]!r}; the dataset\'s records do not match its sequence table '
          '(rebuild the dataset).')


def _decode_records(frame_records: Sequence[dict[str, Any]], name: str, first_frame: int, where: str, stored: str
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Checks that `frame_records` are frames first_frame, first_frame + 1, ... of sequence `name` and decodes
  them -> (blur, sharp) uint8 (len(frame_records), H, W, 3)."""
  _check_records(frame_records, name, first_frame, where)
  blur, sharp = [], []
  for offset, record in enumerate(frame_records):
    what = f'frame {first_frame + offset} of sequence {name!r} of {where}'
    blur.append(frame_storage.decode(record['blur'], stored, what=f'the blurry {what}'))
    sharp.append(frame_storage.decode(record['sharp'], stored, what=f'the sharp {what}'))
    if blur[-1].shape != sharp[-1].shape or blur[-1].shape != blur[0].shape:
      raise ValueError(f'{what}: frame sizes differ inside the sequence or between blurry and sharp '
                       f'({blur[-1].shape}, {sharp[-1].shape}, first frame {blur[0].shape}).')
  return np.stack(blur), np.stack(sharp)


class WindowSource(grain.sources.RandomAccessDataSource):
  """Random access to `window_frames`-frame windows, undecoded: element i = {'blur': the T frames' stored bytes,
  'sharp': the stored bytes of the centre frames `[past : T - future]` only, 'sequence': name, 'first_frame':
  the window's first frame in its sequence}.

  Reads exactly the window's T records and checks they are the frames the sequence table says.
  """

  def __init__(self, frame_source, table: Sequence[records.SequenceRow], window_frames: int, where: str, *,
               past_frames: int = 0, future_frames: int = 0):
    self._source = frame_source
    self._window_frames = window_frames
    self._targets = slice(past_frames, window_frames - future_frames)
    self._where = where
    self._starts = window_starts(table, window_frames, where=where)
    # For each window: its sequence's row (for names in checks and errors).
    lengths = np.array([length - window_frames + 1 for _, _, length in table])
    self._sequence_of_window = np.repeat(np.arange(len(table)), lengths)
    self._table = list(table)

  def __len__(self) -> int:
    return len(self._starts)

  def __getitem__(self, index: int) -> dict[str, Any]:
    start = int(self._starts[index])
    name, first, _ = self._table[self._sequence_of_window[index]]
    # One record at a time: this already runs in one of grain's reader threads, and the data source's batched
    # read (`__getitems__`) would start a thread pool of its own for every window (~50% more CPU per window).
    frame_records = [self._source[i] for i in range(start, start + self._window_frames)]
    _check_records(frame_records, name, start - first, self._where)
    return {'blur': [r['blur'] for r in frame_records], 'sharp': [r['sharp'] for r in frame_records[self._targets]],
            'sequence': name, 'first_frame': start - first}

  def __repr__(self) -> str:
    return f'WindowSource({self._where}, window_frames={self._window_frames}, windows={len(self)})'


def add_noise(frames: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
  """Integer frames + Gaussian noise of standard deviation `noise_std` in 8-bit levels (times 257 for uint16
  frames: the same fraction of the range), rounded to nearest and clipped to the dtype's range; same shape and
  dtype. Draws `frames.size` float32 standard normals from `rng`."""
  top = np.iinfo(frames.dtype).max
  noise = rng.standard_normal(frames.shape, dtype=np.float32) * np.float32(noise_std * top / 255)
  return np.clip(np.rint(frames.astype(np.float32) + noise), 0, top).astype(frames.dtype)


@dataclasses.dataclass(frozen=True)
class CropFlip(grain.transforms.RandomMap):
  """One random crop and random h/v flips for a whole window, read straight from the stored frames.

  Input: a `WindowSource` element. Output: {'blur': uint8 (T, c, c, 3), 'sharp': uint8 (T', c, c, 3)} (T' centre
  frames), c = crop_size (None: the full H x W frame). Only the crop of each frame is decoded (for raw
  frames: sliced from the record's bytes; PNG frames are decoded whole, then cropped); flips are views until
  the frames are stacked, so each output byte is copied once. Draws the crop's top, left, then the horizontal
  and vertical flip from `rng`, in that order, then (only when `noise_std` > 0) the blurry frames' noise
  (`add_noise`): from the element's own generator, so the noise is new for every window drawn (every epoch) and
  the same when a resumed run draws that window again; the sharp frames are never touched.
  """
  crop_size: int | None
  past_frames: int
  stored: str  # the dataset's frame storage format
  where: str
  noise_std: float = 0.0  # 8-bit levels

  def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    name, first = element['sequence'], element['first_frame']
    what = lambda kind, k: f'the {kind} frame {first + k} of sequence {name!r} of {self.where}'
    height, width = frame_storage.frame_size(element['blur'][0], self.stored, what('blurry', 0))
    crop = (0, 0, height, width)
    if self.crop_size is not None:
      if self.crop_size > height or self.crop_size > width:
        raise ValueError(f'crop_size={self.crop_size} is larger than the {height}x{width} frames of sequence '
                         f'{name!r} of {self.where}.')
      y = int(rng.integers(0, height - self.crop_size + 1))
      x = int(rng.integers(0, width - self.crop_size + 1))
      crop = (y, x, self.crop_size, self.crop_size)
    flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
    rows = slice(None, None, -1 if flip_v else 1)
    cols = slice(None, None, -1 if flip_h else 1)

    def read(data: bytes, kind: str, k: int) -> np.ndarray:
      size = frame_storage.frame_size(data, self.stored, what(kind, k))
      if size != (height, width):
        raise ValueError(f'{what(kind, k)} is {size[1]}x{size[0]} but the window\'s first frame is '
                         f'{width}x{height}: frame sizes differ inside the sequence or between blurry and sharp.')
      return frame_storage.decode(data, self.stored, crop, what(kind, k))[rows, cols]

    blur = np.stack([read(data, 'blurry', k) for k, data in enumerate(element['blur'])])
    if self.noise_std > 0:
      blur = add_noise(blur, self.noise_std, rng)
    return {'blur': blur,
            'sharp': np.stack([read(data, 'sharp', self.past_frames + k) for k, data in enumerate(element['sharp'])])}


# Hosts with at most this many cores read training data in the training process: worker processes would
# compete with XLA's threads for the few cores (on 2 cores, 2 workers made the default run ~1.5x slower).
_IN_PROCESS_MAX_CORES = 4
_MAX_AUTO_WORKERS = 32


def resolve_num_workers(num_workers: int) -> int:
  """The worker processes to start for a requested `num_workers` on this host.

  -1 (auto): none on hosts with <= 4 cores, else half the cores (at most 32); the training process keeps
  the other half for dispatch and its own threads. An explicit count above the host's cores is reduced to
  the core count (a warning says so) rather than oversubscribing the host.
  """
  cpus = os.cpu_count() or 1
  if num_workers < -1:
    raise ValueError(f'num_workers must be >= 0, or -1 for automatic, got {num_workers}')
  if num_workers == -1:
    return 0 if cpus <= _IN_PROCESS_MAX_CORES else min(cpus // 2, _MAX_AUTO_WORKERS)
  if num_workers > cpus:
    logging.warning('num_workers=%d is more than this host\'s %d cores; starting %d.', num_workers, cpus, cpus)
    return cpus
  return num_workers


def _read_options(num_workers: int) -> grain.ReadOptions:
  """Threads per process sized for the host (grain's default, 16 threads and 500 buffered elements, is
  made for small records and oversubscribes small machines): the cores shared among the processes that
  read, at most 8 each; buffers are counted in batches here."""
  cpus = os.cpu_count() or 1
  threads = max(1, min(8, cpus // max(1, num_workers)))
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)


class TrainIterator(grain.DatasetIterator):
  """Endless training batches with a small, portable state: `{'next_batch': k, 'pipeline': {...}}`.

  Batch k of this process is a pure function of (dataset, seed, k, ...), so the state is just k: restoring
  works whatever the number of worker processes or threads of the saving and the restoring run.
  `pipeline` records the settings that define the stream; restoring a state saved with other settings
  logs a warning (the stream continues at batch k of the new settings). A `grain.DatasetIterator`, so
  `grain.checkpoint.CheckpointSave/CheckpointRestore` save it with Orbax as JSON.
  """

  def __init__(self, batches: grain.MapDataset, read_options: grain.ReadOptions, num_workers: int,
               pipeline: dict[str, Any]):
    super().__init__()
    self._batches = batches
    self._read_options = read_options
    self._num_workers = num_workers
    self._pipeline = pipeline
    self._next_batch = 0
    self._inner: grain.DatasetIterator | None = None  # started lazily, at the current position

  def _start(self) -> grain.DatasetIterator:
    if self._inner is None:
      ds = self._batches[self._next_batch:].to_iter_dataset(self._read_options)
      if self._num_workers:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._num_workers, per_worker_buffer_size=2))
      self._inner = iter(ds)
    return self._inner

  def __next__(self) -> dict[str, np.ndarray]:
    self._assert_not_closed()
    batch = next(self._start())
    self._next_batch += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {'next_batch': self._next_batch, 'pipeline': dict(self._pipeline)}

  def set_state(self, state: dict[str, Any]) -> None:
    if 'next_batch' not in state:
      raise ValueError(f'Not a training input pipeline state (no "next_batch"): {str(state)[:200]}')
    # States saved before `frames` was renamed `window_frames` carry the old name.
    saved = {('window_frames' if k == 'frames' else k): v for k, v in state.get('pipeline', {}).items()}
    changed = {k: (saved.get(k), v) for k, v in self._pipeline.items() if saved.get(k) != v}
    if changed:
      logging.warning('Restoring the data iterator from a run with other pipeline settings (saved, now): %s. '
                      'The data stream continues at batch %d of the new settings.', changed, state['next_batch'])
    self._stop_inner()
    self._next_batch = int(state['next_batch'])

  def start_prefetch(self) -> None:
    self._start().start_prefetch()

  def _stop_inner(self) -> None:
    if self._inner is not None:
      self._inner.close()
      self._inner = None

  def close(self) -> None:
    self._stop_inner()
    super().close()


def _resolve_shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
  if (shard_index is None) != (shard_count is None):
    raise ValueError('Give both shard_index and shard_count, or neither (then: this JAX process).')
  if shard_index is None:
    return jax.process_index(), jax.process_count()
  if not 0 <= shard_index < shard_count:
    raise ValueError(f'shard_index={shard_index} must be in [0, shard_count={shard_count}).')
  return shard_index, shard_count


def create_train_iterator(*, dataset: str, data_dir: str | os.PathLike[str] | None, split: str,
                          global_batch_size: int, window_frames: int, past_frames: int, future_frames: int,
                          crop_size: int | None, seed: int, num_workers: int = 0, shard_index: int | None = None,
                          shard_count: int | None = None, max_sequences: int = 0,
                          noise_std: float = 0.0) -> TrainIterator:
  """An endless, shuffled, augmented, checkpointable iterator of training batches for this process.

  Args:
    dataset: TFDS name, e.g. 'bsd/2ms16ms' or 'synthetic_blur/small'.
    data_dir: where the dataset was built (None: TFDS's default).
    split: a whole split name, e.g. 'train'.
    global_batch_size: windows per step over all processes; must be divisible by shard_count.
    window_frames: frames per window (T).
    past_frames, future_frames: frames without a target at the start / end of each window.
    crop_size: side of the square random crop; None keeps full frames.
    seed: fixes the window order and the augmentation (0 <= seed < 2**32).
    num_workers: worker processes for reading (0: threads in this process only; -1: sized for this host,
      see `resolve_num_workers`).
    shard_index, shard_count: this process's shard; default jax.process_index() / jax.process_count().
    max_sequences: train on the split's first N sequences in the dataset's order (0: all of them); e.g. the
      paper's REDS models saw the first 120 of its 240 training sequences.
    noise_std: Gaussian noise on the blurry frames, in 8-bit levels (0: none; `CropFlip`, `add_noise`).

  Returns:
    A `TrainIterator` (a grain `DatasetIterator`: get_state/set_state, close) yielding
    {'blur': uint8 (b, T, h, w, 3), 'sharp': uint8 (b, T - past - future, h, w, 3)}, b = global_batch_size //
    shard_count (`images.normalise_on_device` maps them to the model's range inside the jitted step).
  """
  shard_index, shard_count = _resolve_shard(shard_index, shard_count)
  if global_batch_size < 1 or global_batch_size % shard_count:
    raise ValueError(f'global_batch_size={global_batch_size} must be a positive multiple of the number of '
                     f'processes/shards ({shard_count}).')
  if past_frames < 0 or future_frames < 0 or past_frames + future_frames >= window_frames:
    raise ValueError(f'window_frames={window_frames} leaves no target frame with past_frames={past_frames} and '
                     f'future_frames={future_frames}.')
  if crop_size is not None and crop_size < 1:
    raise ValueError(f'crop_size must be positive or None, got {crop_size}')
  if not 0 <= seed < 2**32:
    raise ValueError(f'seed must be in [0, 2**32), got {seed}')
  num_workers = resolve_num_workers(num_workers)
  if max_sequences < 0:
    raise ValueError(f'max_sequences must be >= 0 (0: all), got {max_sequences}')
  if not (np.isfinite(noise_std) and noise_std >= 0):
    raise ValueError(f'noise_std must be a finite number >= 0 (8-bit levels; 0: no noise), got {noise_std}')

  builder = load_builder(dataset, data_dir)
  where = f'{dataset} split {split!r} in {builder.data_dir}'
  frame_source = _data_source(builder, split)
  table = records.sequence_table(builder, split)
  if max_sequences:
    if max_sequences > len(table):
      raise ValueError(f'max_sequences={max_sequences}, but {where} has only {len(table)} sequences.')
    table = table[:max_sequences]
    where += f' (its first {max_sequences} sequences)'
  stored = dataset_frame_format(builder, dataset)
  windows = WindowSource(frame_source, table, window_frames, where, past_frames=past_frames,
                         future_frames=future_frames)
  if crop_size is not None:  # fail fast on the first frame rather than inside a worker
    height, width = _first_frame_size(frame_source, table, stored, where)
    if crop_size > height or crop_size > width:
      raise ValueError(f'crop_size={crop_size} is larger than the {height}x{width} frames of {where}.')
  batch_size = global_batch_size // shard_count
  logging.info('Training windows: %d of %d frames from %d sequences of %s; batch %d per process (%d of %d).',
               len(windows), window_frames, len(table), where, batch_size, shard_index, shard_count)

  ds = grain.MapDataset.source(windows).seed(seed)
  ds = ds.shuffle().repeat()  # a new order every epoch
  ds = ds.random_map(CropFlip(crop_size, past_frames, stored, where, float(noise_std)))
  ds = ds[shard_index::shard_count]
  ds = ds.batch(batch_size, drop_remainder=True)
  pipeline = {'dataset': dataset, 'split': split, 'global_batch_size': global_batch_size,
              'window_frames': window_frames,
              'past_frames': past_frames, 'future_frames': future_frames, 'crop_size': crop_size, 'seed': seed,
              'shard_index': shard_index, 'shard_count': shard_count}
  if max_sequences:
    pipeline['max_sequences'] = max_sequences
  if noise_std:
    pipeline['noise_std'] = float(noise_std)
  return TrainIterator(ds, _read_options(num_workers), num_workers, pipeline)


def iterate_sequences(*, dataset: str, data_dir: str | os.PathLike[str] | None, split: str, shard_index: int = 0,
                      shard_count: int = 1, max_sequences: int | None = None
                      ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  """Whole sequences in record order: yields (name, blur uint8 (T, H, W, 3), sharp uint8 (T, H, W, 3)).

  Takes the first `max_sequences` sequences of the split (None: all), then every `shard_count`-th of them
  starting at `shard_index`. Normalise with `estrnn_jax.images.from_uint8`. Errors (missing dataset, bad
  split or shard) are raised by this call, before iteration starts.
  """
  if not 0 <= shard_index < shard_count:
    raise ValueError(f'shard_index={shard_index} must be in [0, shard_count={shard_count}).')
  if max_sequences is not None and max_sequences < 1:
    raise ValueError(f'max_sequences must be positive or None, got {max_sequences}')
  builder = load_builder(dataset, data_dir)
  where = f'{dataset} split {split!r} in {builder.data_dir}'
  frame_source = _data_source(builder, split)
  table = records.sequence_table(builder, split)
  selected = table[:max_sequences][shard_index::shard_count]
  return _sequences(frame_source, selected, where, dataset_frame_format(builder, dataset))


def _read_frames(frame_source, name: str, first: int, start: int, stop: int, where: str, stored: str
                 ) -> tuple[np.ndarray, np.ndarray]:
  frame_records = frame_source.__getitems__(list(range(first + start, first + stop)))
  return _decode_records(frame_records, name, start, where, stored)


def _sequences(frame_source, table: Sequence[records.SequenceRow], where: str, stored: str
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  """Decodes sequences in chunks on a thread pool, one sequence ahead of the consumer."""
  threads = max(1, min(8, os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:

    def submit(row: records.SequenceRow):
      name, first, length = row
      return row, [pool.submit(_read_frames, frame_source, name, first, start,
                               min(start + _EVAL_CHUNK_FRAMES, length), where, stored)
                   for start in range(0, length, _EVAL_CHUNK_FRAMES)]

    rows = iter(table)
    first_row = next(rows, None)
    pending = collections.deque([submit(first_row)] if first_row is not None else [])
    try:
      while pending:
        (name, _, _), chunks = pending.popleft()
        next_row = next(rows, None)
        if next_row is not None:
          pending.append(submit(next_row))
        parts = [chunk.result() for chunk in chunks]
        yield name, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    finally:  # early exit: do not decode what nobody will read
      for _, chunks in pending:
        for chunk in chunks:
          chunk.cancel()
