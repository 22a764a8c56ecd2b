"""Tests for the grain input pipelines, on a tiny BSD-layout dataset built with the real BSD builder.

Every frame's pixels say what they are: channel 0 = 10 * sequence number + tag (tag 0 blurry, 1 sharp),
channel 1 = frame index, channel 2 = a spatial ramp (y * W + x) mod 256 that makes crops and flips visible.
"""

import collections
import hashlib
import io
import json
import os
import pathlib

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from datasets.bsd import bsd_dataset_builder
from estrnn_jax import images
from estrnn_jax import input_pipeline

DATASET = 'bsd/2ms16ms'
HEIGHT, WIDTH = 24, 32
# Sequence number -> frames, per BSD split folder. Train: 2 + 6 + 4 = 12 windows of 4 frames.
LAYOUT = {'train': {0: 5, 1: 9, 2: 7}, 'valid': {3: 5}, 'test': {4: 4, 5: 6, 6: 3}}
FRAMES, PAST, FUTURE = 4, 1, 1
RAMP = ((np.arange(HEIGHT)[:, None] * WIDTH + np.arange(WIDTH)[None, :]) % 256).astype(np.uint8)


def encode_frame(sequence: int, frame: int, tag: int) -> np.ndarray:
  pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
  pixels[..., 0] = 10 * sequence + tag
  pixels[..., 1] = frame
  pixels[..., 2] = RAMP
  return pixels


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
  root = tmp_path_factory.mktemp('bsd')
  release = root / 'manual' / 'BSD_2ms16ms'
  for split, sequences in LAYOUT.items():
    for sequence, length in sequences.items():
      for kind, tag in (('Blur', 0), ('Sharp', 1)):
        folder = release / split / f'{sequence:03d}' / kind / 'RGB'
        folder.mkdir(parents=True)
        for frame in range(length):
          Image.fromarray(encode_frame(sequence, frame, tag)).save(folder / f'{frame:08d}.png')
  builder = bsd_dataset_builder.Builder(data_dir=str(root / 'tfds'), config='2ms16ms')
  builder.download_and_prepare(file_format='array_record',
                               download_config=tfds.download.DownloadConfig(manual_dir=str(root / 'manual')))
  return str(root / 'tfds')


def train_iterator(data_dir, **overrides):
  kwargs = dict(dataset=DATASET, data_dir=data_dir, split='train', global_batch_size=4, window_frames=FRAMES,
                past_frames=PAST, future_frames=FUTURE, crop_size=16, seed=0, shard_index=0, shard_count=1)
  kwargs.update(overrides)
  return input_pipeline.create_train_iterator(**kwargs)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def decode_window(blur_u8: np.ndarray, sharp_u8: np.ndarray):
  """Checks one (T, h, w, 3) / (T', h, w, 3) uint8 example; returns (sequence, first frame, flips, crop)."""
  assert blur_u8.dtype == np.uint8 and sharp_u8.dtype == np.uint8
  ids = blur_u8[..., 0]
  assert np.all(ids == ids.flat[0]) and ids.flat[0] % 10 == 0, 'a window mixes sequences or is not blurry'
  sequence = int(ids.flat[0]) // 10
  assert np.all(sharp_u8[..., 0] == 10 * sequence + 1), 'sharp frames come from another sequence'
  frame_ids = blur_u8[:, 0, 0, 1].astype(int)
  assert np.all(blur_u8[..., 1] == frame_ids[:, None, None])
  start = frame_ids[0]
  np.testing.assert_array_equal(frame_ids, np.arange(start, start + len(frame_ids)))  # consecutive
  assert start + len(frame_ids) <= LAYOUT['train'][sequence]                           # inside the sequence
  np.testing.assert_array_equal(sharp_u8[:, 0, 0, 1], frame_ids[PAST:len(frame_ids) - FUTURE])  # centre
  # The same crop and flips for every frame, blurry and sharp.
  ramp = blur_u8[0, ..., 2]
  assert np.all(blur_u8[..., 2] == ramp) and np.all(sharp_u8[..., 2] == ramp)
  size = ramp.shape[0]
  for flip_h in (False, True):
    for flip_v in (False, True):
      unflipped = ramp[::-1 if flip_v else 1, ::-1 if flip_h else 1]
      for y in range(HEIGHT - size + 1):
        for x in range(WIDTH - ramp.shape[1] + 1):
          if np.array_equal(RAMP[y:y + size, x:x + ramp.shape[1]], unflipped):
            return sequence, int(start), (flip_h, flip_v), (y, x)
  raise AssertionError('the window is not a (flipped) crop of the frame')


def test_batches_are_consecutive_paired_centre_windows(data_dir):
  iterator = train_iterator(data_dir)
  batches = take(iterator, 3)  # one epoch: 12 windows
  for batch in batches:
    assert batch['blur'].shape == (4, FRAMES, 16, 16, 3) and batch['blur'].dtype == np.uint8
    assert batch['sharp'].shape == (4, FRAMES - PAST - FUTURE, 16, 16, 3)
    assert batch['sharp'].dtype == np.uint8
  windows = [decode_window(b, s) for batch in batches for b, s in zip(batch['blur'], batch['sharp'])]
  # The first epoch visits every valid window exactly once.
  expected = sorted((seq, start) for seq, n in LAYOUT['train'].items() for start in range(n - FRAMES + 1))
  assert sorted((seq, start) for seq, start, _, _ in windows) == expected
  # Crops and flips vary (12 windows: all equal would be a broken augmentation).
  assert len({flips for _, _, flips, _ in windows}) >= 3
  assert len({offset for _, _, _, offset in windows}) >= 6
  # The second epoch is shuffled differently.
  second = take(iterator, 3)
  order = lambda bs: [decode_window(b, s)[:2] for batch in bs for b, s in zip(batch['blur'], batch['sharp'])]
  assert order(second) != order(batches)
  assert sorted(order(second)) == expected


def test_full_frames_without_crop(data_dir):
  batch = next(train_iterator(data_dir, crop_size=None))
  assert batch['blur'].shape == (4, FRAMES, HEIGHT, WIDTH, 3)
  for blur, sharp in zip(batch['blur'], batch['sharp']):
    _, _, _, offset = decode_window(blur, sharp)
    assert offset == (0, 0)


# sha256 of the first 3 float32 batches (seed 7) of the pipeline as it was before it shipped uint8 (it
# normalised on the host with images.from_uint8), recorded from that code on this test's dataset.
_FLOAT_BATCHES_SHA256 = {
    16: '99e5754258f13699635c5cfe437be535cec1c86e4817fbfbfbd3b03b9993d66a',
    None: 'c8bebf472c2e4b61f907848987d9200da486969ee203d4cabada9bf83e0140bf',
}


@pytest.mark.parametrize('crop_size', [16, None])
def test_uint8_batches_normalised_on_the_device_equal_the_old_float_batches(data_dir, crop_size):
  iterator = train_iterator(data_dir, seed=7, crop_size=crop_size)
  normalise = jax.jit(images.normalise_on_device)
  digest = hashlib.sha256()
  for _ in range(3):
    batch = next(iterator)
    for key in ('blur', 'sharp'):
      assert batch[key].dtype == np.uint8
      on_device = np.asarray(normalise(batch[key]))
      assert on_device.dtype == np.float32
      np.testing.assert_array_equal(on_device, images.from_uint8(batch[key]))
      digest.update(key.encode())
      digest.update(str(on_device.shape).encode())
      digest.update(on_device.tobytes())
  assert digest.hexdigest() == _FLOAT_BATCHES_SHA256[crop_size]


def test_automatic_worker_count_fits_the_host(monkeypatch, caplog):
  for cores, expected in ((1, 0), (2, 0), (4, 0), (16, 8), (96, 32)):
    monkeypatch.setattr(os, 'cpu_count', lambda cores=cores: cores)
    assert input_pipeline.resolve_num_workers(-1) == expected
  monkeypatch.setattr(os, 'cpu_count', lambda: 16)
  assert input_pipeline.resolve_num_workers(3) == 3
  with caplog.at_level('WARNING'):
    assert input_pipeline.resolve_num_workers(40) == 16
  assert "num_workers=40 is more than this host's 16 cores; starting 16" in caplog.text
  with pytest.raises(ValueError, match='num_workers must be >= 0, or -1 for automatic, got -2'):
    input_pipeline.resolve_num_workers(-2)


def test_deterministic_for_a_seed(data_dir):
  # shard_index/shard_count None: this JAX process (the only one here), i.e. the same as 0 of 1.
  a = take(train_iterator(data_dir, shard_index=None, shard_count=None), 2)
  b = take(train_iterator(data_dir), 2)
  c = take(train_iterator(data_dir, seed=1), 2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['blur'], y['blur'])
    np.testing.assert_array_equal(x['sharp'], y['sharp'])
  assert any(not np.array_equal(x['blur'], z['blur']) for x, z in zip(a, c))


def test_state_restore_continues_exactly(data_dir, tmp_path):
  reference = train_iterator(data_dir)
  take(reference, 2)
  state = reference.get_state()
  assert state['next_batch'] == 2 and state['pipeline']['seed'] == 0
  json.dumps(state)  # what grain's Orbax handler writes
  expected = take(reference, 3)  # crosses into the second epoch

  resumed = train_iterator(data_dir)
  resumed.set_state(state)
  for want, got in zip(expected, take(resumed, 3)):
    np.testing.assert_array_equal(want['blur'], got['blur'])
    np.testing.assert_array_equal(want['sharp'], got['sharp'])

  # The same through Orbax, the way training checkpoints save the data iterator next to the model.
  iterator = train_iterator(data_dir)
  take(iterator, 2)
  with ocp.CheckpointManager(tmp_path / 'checkpoints') as manager:
    manager.save(2, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
    fresh = train_iterator(data_dir)
    manager.restore(2, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointRestore(fresh)))
  assert list(pathlib.Path(tmp_path / 'checkpoints' / '2' / 'data_iter').glob('process_0-of-*.json'))
  for want, got in zip(expected, take(fresh, 3)):
    np.testing.assert_array_equal(want['blur'], got['blur'])
  fresh.close()
  with pytest.raises(ValueError, match='closed'):
    next(fresh)


def test_restoring_into_other_settings_warns(data_dir, caplog):
  state = train_iterator(data_dir).get_state()
  other = train_iterator(data_dir, seed=5)
  other.set_state(state)
  assert 'other pipeline settings' in caplog.text and "'seed': (0, 5)" in caplog.text
  with pytest.raises(ValueError, match='next_batch'):
    other.set_state({'next_index': 3})


def test_process_shards_split_the_global_batch(data_dir):
  whole = take(train_iterator(data_dir, global_batch_size=4), 3)
  shards = [take(train_iterator(data_dir, global_batch_size=4, shard_index=i, shard_count=2), 3)
            for i in range(2)]
  for step in range(3):
    parts = [shards[i][step] for i in range(2)]
    assert all(p['blur'].shape[0] == 2 for p in parts)  # half the global batch each
    keys = [[decode_window(b, s) for b, s in zip(p['blur'], p['sharp'])] for p in parts]
    assert not set(keys[0]) & set(keys[1])               # disjoint
    # Together they are exactly the single-process global batch (same windows, crops and flips).
    union = np.concatenate([p['blur'] for p in parts])
    assert sorted(map(bytes, union)) == sorted(map(bytes, whole[step]['blur']))


def test_bad_arguments_are_named(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"shorter than window_frames=8: '000' \(5 frames\), '002' \(7 frames\)"):
    train_iterator(data_dir, window_frames=8)
  with pytest.raises(ValueError, match='crop_size=40 is larger than the 24x32 frames'):
    train_iterator(data_dir, crop_size=40)
  with pytest.raises(ValueError, match=r'global_batch_size=3 must be a positive multiple .* \(2\)'):
    train_iterator(data_dir, global_batch_size=3, shard_index=0, shard_count=2)
  with pytest.raises(ValueError, match='Give both shard_index and shard_count'):
    train_iterator(data_dir, shard_index=None)
  with pytest.raises(ValueError, match='no target frame'):
    train_iterator(data_dir, window_frames=2)
  with pytest.raises(ValueError, match='no split'):
    train_iterator(data_dir, split='nonexistent')
  with pytest.raises(FileNotFoundError, match='not prepared'):
    train_iterator(str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='No window of 4 frames fits'):
    input_pipeline.window_starts([], 4, where='nothing')
  np.testing.assert_array_equal(input_pipeline.window_starts([('a', 0, 5), ('b', 5, 4)], 4), [0, 1, 5])


def test_eval_yields_every_sequence_once_in_order(data_dir):
  sequences = list(input_pipeline.iterate_sequences(dataset=DATASET, data_dir=data_dir, split='test'))
  assert [name for name, _, _ in sequences] == ['004', '005', '006']
  for (name, blur, sharp), length in zip(sequences, LAYOUT['test'].values()):
    assert blur.dtype == sharp.dtype == np.uint8
    assert blur.shape == sharp.shape == (length, HEIGHT, WIDTH, 3)
    for frame in range(length):
      np.testing.assert_array_equal(blur[frame], encode_frame(int(name), frame, 0))
      np.testing.assert_array_equal(sharp[frame], encode_frame(int(name), frame, 1))
  shards = [[name for name, _, _ in input_pipeline.iterate_sequences(
      dataset=DATASET, data_dir=data_dir, split='test', shard_index=i, shard_count=2)] for i in range(2)]
  assert shards == [['004', '006'], ['005']]
  first = [name for name, _, _ in input_pipeline.iterate_sequences(
      dataset=DATASET, data_dir=data_dir, split='validation', max_sequences=1)]
  assert first == ['003']
  assert input_pipeline.list_sequences(dataset=DATASET, data_dir=data_dir, split='test') == [
      ('004', 0, 4), ('005', 4, 6), ('006', 10, 3)]
  with pytest.raises(ValueError, match='shard_index=2'):
    input_pipeline.iterate_sequences(dataset=DATASET, data_dir=data_dir, split='test', shard_index=2,
                                     shard_count=2)


def test_eval_stops_early_without_leaking(data_dir):
  iterator = input_pipeline.iterate_sequences(dataset=DATASET, data_dir=data_dir, split='test')
  name, _, _ = next(iterator)
  iterator.close()
  assert name == '004'
  counts = collections.Counter(name for name, _, _ in input_pipeline.iterate_sequences(
      dataset=DATASET, data_dir=data_dir, split='train'))
  assert counts == {'000': 1, '001': 1, '002': 1}


class _FakeFrames:
  """A frame source in the records' format (PNG bytes), for records that do not match their table."""

  def __init__(self, records):
    self._records = records

  def __len__(self):
    return len(self._records)

  def __getitem__(self, key):
    return self._records[key]

  def __getitems__(self, keys):
    return [self._records[k] for k in keys]


def _png(pixels: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format='PNG')
  return buffer.getvalue()


def _window(frame_source, table, frames, past=0, future=0, seed=0):
  """Element 0 of a WindowSource read through CropFlip (full frames), as the training pipeline reads it."""
  source = input_pipeline.WindowSource(frame_source, table, window_frames=frames, where='fake', past_frames=past,
                                       future_frames=future)
  crop_flip = input_pipeline.CropFlip(crop_size=None, past_frames=past, stored='png', where='fake')
  return crop_flip.random_map(source[0], np.random.default_rng(seed))


def test_records_that_disagree_with_the_table_are_named():
  good = _png(encode_frame(0, 0, 0))
  record = lambda seq, frame, png=good: {'blur': png, 'sharp': good, 'sequence': seq, 'frame_index': frame}
  gap = _FakeFrames([record(b'000', 0), record(b'000', 1), record(b'000', 3)])
  source = input_pipeline.WindowSource(gap, [('000', 0, 3)], window_frames=2, where='fake')
  assert _window(gap, [('000', 0, 3)], frames=2)['blur'].shape == (2, HEIGHT, WIDTH, 3)
  with pytest.raises(ValueError, match="fake: expected frame 2 of sequence '000' but the record holds frame 3"):
    source[1]
  other = _FakeFrames([record(b'000', 0), record(b'001', 1)])
  with pytest.raises(ValueError, match="frame 1 of sequence '001'"):
    _window(other, [('000', 0, 2)], frames=2)
  corrupt = _FakeFrames([record(b'000', 0), record(b'000', 1, png=good[:40])])
  with pytest.raises(ValueError, match="Cannot decode the blurry frame 1 of sequence '000' of fake"):
    _window(corrupt, [('000', 0, 2)], frames=2)
  grey = _FakeFrames([record(b'000', 0, png=_png(np.zeros((4, 4), np.uint8)))])
  with pytest.raises(ValueError, match='mode L, expected RGB'):
    _window(grey, [('000', 0, 1)], frames=1)
  small = _FakeFrames([record(b'000', 0), record(b'000', 1, png=_png(encode_frame(0, 1, 0)[:20]))])
  with pytest.raises(ValueError, match="blurry frame 1 of sequence '000' of fake is 32x20 but the window's first "
                                       'frame is 32x24'):
    _window(small, [('000', 0, 2)], frames=2)


def test_only_the_centre_sharp_frames_are_decoded():
  # The sharp frames outside [past : T - future] are no images at all: a window never decodes them.
  frames = [{'blur': _png(encode_frame(0, k, 0)), 'sharp': _png(encode_frame(0, k, 1)) if k in (1, 2) else b'junk',
             'sequence': b'000', 'frame_index': k} for k in range(4)]
  window = _window(_FakeFrames(frames), [('000', 0, 4)], frames=4, past=1, future=1)
  assert window['sharp'].shape == (2, HEIGHT, WIDTH, 3)
  assert decode_window(window['blur'], window['sharp'])[:2] == (0, 0)
