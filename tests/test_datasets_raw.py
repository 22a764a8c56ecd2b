"""BSD's 16-bit RAW frames: TIFF reading, the raw16 frame format, the `bsd/<setting>_raw` builder (bit-exact on the
dummy release tree, bad frames named), and training windows of uint16 (B, T, c, c, 1)."""

import io
import pathlib
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds
import tifffile

from datasets import build as build_lib
from datasets import common
from datasets import make_dummy_data
from estrnn_jax import frame_storage
from estrnn_jax import input_pipeline
from estrnn_jax import raw_frames

DUMMY = pathlib.Path(__file__).resolve().parents[1] / 'datasets' / 'bsd' / 'dummy_data'
LAYOUT = {'train': ('train', {'000': 3, '001': 4}), 'validation': ('valid', {'000': 3}),
          'test': ('test', {'000': 3})}


def _tiff(array: np.ndarray, **kwargs) -> bytes:
  buffer = io.BytesIO()
  tifffile.imwrite(buffer, array, **kwargs)
  return buffer.getvalue()


def test_tiff_reads_are_bit_exact_in_every_byte_order_and_compression():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 65536, (6, 10), dtype=np.uint16)
  frame[0, :4] = [0, 1, 32768, 65535]
  cases = {'little-endian': _tiff(frame), 'big-endian': _tiff(frame, byteorder='>'),
           'deflate': _tiff(frame, compression='zlib'), 'ours': raw_frames.encode_tiff(frame)}
  lzw = io.BytesIO()
  Image.fromarray(frame).save(lzw, format='TIFF', compression='tiff_lzw')
  cases['lzw'] = lzw.getvalue()
  for name, data in cases.items():
    read = raw_frames.read_tiff(data, name)
    assert read.dtype == np.uint16 and read.shape == (6, 10), name
    np.testing.assert_array_equal(read, frame, err_msg=name)
  # What we write is a plain baseline TIFF another reader agrees with.
  np.testing.assert_array_equal(tifffile.imread(io.BytesIO(cases['ours'])), frame)


@pytest.mark.parametrize('array, message', [
    (np.zeros((4, 6), np.uint8), r'x\.tiff: has 8-bit samples \(L\); expected 16-bit'),
    (np.zeros((4, 6, 3), np.uint16), r'x\.tiff: has 3 channels .*expected 1'),
    (np.zeros((4, 6), np.float32), r'x\.tiff: has 32-bit samples'),
    (np.zeros((2, 4, 6), np.uint16), r'x\.tiff: holds 2 pages'),
])
def test_tiffs_of_another_kind_are_refused_naming_the_file(array, message):
  with pytest.raises(raw_frames.RawFrameError, match=message):
    raw_frames.read_tiff(_tiff(array), 'x.tiff')


def test_raw16_storage_is_a_header_and_the_samples():
  frame = np.arange(4 * 6, dtype=np.uint16).reshape(4, 6) * 2731
  data = frame_storage.encode(frame, 'raw16')
  assert data[:8] == frame_storage.RAW16_MAGIC and len(data) == 16 + 4 * 6 * 2
  assert data[16:] == frame.astype('<u2').tobytes()
  np.testing.assert_array_equal(frame_storage.decode(data, 'raw16')[..., 0], frame)
  np.testing.assert_array_equal(frame_storage.decode(data, 'raw16', crop=(1, 2, 2, 3))[..., 0], frame[1:3, 2:5])
  with pytest.raises(ValueError, match='holds raw16 bytes but .* are raw'):
    frame_storage.decode(data, 'raw')
  with pytest.raises(ValueError, match='expected uint16 .* RAW pixels'):
    frame_storage.encode(np.zeros((4, 6, 3), np.uint8), 'raw16')


@pytest.fixture(scope='module')
def raw_dataset(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp('tfds')
  build_lib.build('bsd/2ms16ms_raw', data_dir, manual_dir=DUMMY)
  return data_dir


def test_builder_stores_the_release_tiffs_bit_for_bit(raw_dataset):
  builder = tfds.builder('bsd/2ms16ms_raw', data_dir=raw_dataset)
  assert frame_storage.stored_format(builder.info.metadata) == 'raw16'
  for split, (folder, sequences) in LAYOUT.items():
    source = builder.as_data_source(split=split)
    records = [frame_storage.decode_record(source[i], 'raw16') for i in range(len(source))]
    expected = [(seq, i) for seq, n in sequences.items() for i in range(n)]
    assert [(r['sequence'].decode(), int(r['frame_index'])) for r in records] == expected
    for record, (seq, i) in zip(records, expected):
      for key, kind in (('blur', 'Blur'), ('sharp', 'Sharp')):
        assert record[key].dtype == np.uint16 and record[key].shape == (32, 48, 1)
        # Independently of the reader under test: the generator's pixels, and (uncompressed blur) tifffile's read.
        truth = make_dummy_data.dummy_mosaic(make_dummy_data.bsd_raw_key(folder, seq, kind, i))
        np.testing.assert_array_equal(record[key][..., 0], truth)
        if kind == 'Blur':
          path = DUMMY / 'BSD_2ms16ms' / folder / seq / kind / 'RAW' / f'{i:08d}.tiff'
          np.testing.assert_array_equal(record[key][..., 0], tifffile.imread(path))


def test_training_windows_are_uint16_single_channel(raw_dataset):
  iterator = input_pipeline.create_train_iterator(
      dataset='bsd/2ms16ms_raw', data_dir=raw_dataset, split='train', global_batch_size=2, window_frames=3,
      past_frames=1, future_frames=1, crop_size=16, seed=0, shard_index=0, shard_count=1)
  batch = next(iterator)
  assert batch['blur'].dtype == np.uint16 and batch['blur'].shape == (2, 3, 16, 16, 1)
  assert batch['sharp'].dtype == np.uint16 and batch['sharp'].shape == (2, 1, 16, 16, 1)
  iterator.close()
  name, blur, sharp = next(input_pipeline.iterate_sequences(dataset='bsd/2ms16ms_raw', data_dir=raw_dataset,
                                                            split='test'))
  assert (name, blur.shape, sharp.dtype) == ('000', (3, 32, 48, 1), np.uint16)


def _copy_release(tmp_path: pathlib.Path) -> pathlib.Path:
  shutil.copytree(DUMMY, tmp_path / 'manual')
  return tmp_path / 'manual' / 'BSD_2ms16ms' / 'train' / '001'


@pytest.mark.parametrize('case, message', [
    ('8-bit', r'Blur/RAW/00000002\.tiff: has 8-bit samples'),
    ('rgb', r'Blur/RAW/00000002\.tiff: has 3 channels'),
    ('size', r'Sequence 001: .*Blur/RAW/00000002\.tiff is 40x32 but .*Sharp/RAW/00000002\.tiff is 48x32'),
    ('sequence size', r'Sequence 001: frames of different sizes: .*00000002\.tiff is 40x32'),
    ('png', r'Unexpected file .*Blur/RAW/00000004\.png: frame folders should contain only <number>\.tiff'),
])
def test_bad_raw_frames_are_named(tmp_path, case, message):
  sequence = _copy_release(tmp_path)
  blur = sequence / 'Blur' / 'RAW' / '00000002.tiff'
  if case == '8-bit':
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(blur, format='TIFF')
  elif case == 'rgb':
    blur.write_bytes(_tiff(np.zeros((32, 48, 3), np.uint16)))
  elif case in ('size', 'sequence size'):
    blur.write_bytes(raw_frames.encode_tiff(np.zeros((32, 40), np.uint16)))
    if case == 'sequence size':
      (sequence / 'Sharp' / 'RAW' / '00000002.tiff').write_bytes(raw_frames.encode_tiff(np.zeros((32, 40), np.uint16)))
  else:
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(blur.with_name('00000004.png'))
  with pytest.raises(common.InvalidDatasetError, match=message):
    build_lib.build('bsd/2ms16ms_raw', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')
  assert not list((tmp_path / 'tfds').rglob('dataset_info.json'))


def test_frame_formats_that_cannot_hold_the_frames_are_refused(tmp_path):
  with pytest.raises(ValueError, match=r"bsd/2ms16ms_raw holds 16-bit RAW \(Bayer\) frames, which frame format 'png' cannot store; use raw16"):
    build_lib.build('bsd/2ms16ms_raw', tmp_path, manual_dir=DUMMY, frame_format='png')
  with pytest.raises(ValueError, match="bsd/2ms16ms holds 8-bit RGB frames, which frame format 'raw16' cannot"):
    build_lib.build('bsd/2ms16ms', tmp_path, manual_dir=DUMMY, frame_format='raw16')
