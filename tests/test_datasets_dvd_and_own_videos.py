"""End-to-end tests of the DVD and paired-folder (your own videos) builders through `datasets.build`.

Each test writes a tiny tree in the dataset's real layout (random 8-bit frames as JPEG and PNG), builds
ArrayRecord files and reads them back through `tfds.data_source`, comparing every pixel with Pillow's
decode of the file it came from.
"""

import pathlib
import re
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from datasets import build as build_lib
from datasets import common
from datasets.dvd import dvd_dataset_builder
from estrnn_jax import frame_storage
from estrnn_jax import input_pipeline
from estrnn_jax import records

H, W = 16, 24


def _write(path: pathlib.Path, pixels: np.ndarray, fmt: str) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path, format=fmt, **({'quality': 85} if fmt == 'JPEG' else {}))
  return path


def _pillow(path: pathlib.Path) -> np.ndarray:
  """An independent decode of a frame file: Pillow's pixels, grey repeated over RGB."""
  with Image.open(path) as image:
    return np.asarray(image.convert('RGB'))


def _read_split(name: str, data_dir: pathlib.Path, split: str) -> list[dict]:
  """The split's records, frames decoded in the format recorded in the dataset's metadata."""
  source = tfds.data_source(name, data_dir=str(data_dir), split=split)
  stored = frame_storage.stored_format(source.dataset_info.metadata)
  return [frame_storage.decode_record(source[i], stored) for i in range(len(source))]


def _assert_split(records, expected: list[tuple[str, list[pathlib.Path], list[pathlib.Path]]]):
  """expected: per sequence in record order, (name, blurry frame files, sharp frame files) in frame order."""
  flat = [(name, i, len(blur), blur[i], sharp[i]) for name, blur, sharp in expected for i in range(len(blur))]
  assert len(records) == len(flat)
  for record, (name, index, length, blur, sharp) in zip(records, flat):
    assert (record['sequence'].decode(), record['frame_index'], record['sequence_length']) == (name, index, length)
    np.testing.assert_array_equal(record['blur'], _pillow(blur))
    np.testing.assert_array_equal(record['sharp'], _pillow(sharp))


def _write_dvd(quantitative: pathlib.Path, sequences: dict[str, int], seed: int = 0):
  """quantitative_datasets/<seq>/{input,GT}/%05d.jpg with random frames -> {seq: (input files, GT files)}."""
  rng = np.random.default_rng(seed)
  out = {}
  for seq, n in sequences.items():
    files = {}
    for kind in ('input', 'GT'):
      files[kind] = [_write(quantitative / seq / kind / f'{i:05d}.jpg',
                            rng.integers(0, 256, (H, W, 3), dtype=np.uint8), 'JPEG') for i in range(n)]
    out[seq] = (files['input'], files['GT'])
  return out


def test_dvd_splits_by_the_dbn_test_list_and_stores_pillows_jpeg_decode(tmp_path):
  # Two of the ten test sequences, three train ones (natural order: 720p... sorts after IMG_... by name).
  quantitative = tmp_path / 'manual' / 'DeepVideoDeblurring_Dataset' / 'quantitative_datasets'
  files = _write_dvd(quantitative, {'IMG_0030': 2, 'IMG_0002': 3, '720p_240fps_2': 2, 'IMG_0055': 1,
                                    '720p_240fps_1': 2})
  # A greyscale JPEG frame (some cameras write them) becomes RGB with equal channels.
  grey = rng_grey = np.random.default_rng(5).integers(0, 256, (H, W), dtype=np.uint8)
  _write(files['IMG_0055'][0][0], rng_grey, 'JPEG')
  data_dir = tmp_path / 'tfds'
  builder = build_lib.build('dvd', data_dir, manual_dir=tmp_path / 'manual')  # the release's parent

  assert set(builder.info.splits) == {'train', 'test'}
  assert records.sequence_table(builder, 'test') == [('720p_240fps_2', 0, 2), ('IMG_0030', 2, 2)]
  assert records.sequence_table(builder, 'train') == [('720p_240fps_1', 0, 2), ('IMG_0002', 2, 3),
                                                     ('IMG_0055', 5, 1)]
  _assert_split(_read_split('dvd', data_dir, 'test'), [(s, *files[s]) for s in ('720p_240fps_2', 'IMG_0030')])
  train = _read_split('dvd', data_dir, 'train')
  _assert_split(train, [(s, *files[s]) for s in ('720p_240fps_1', 'IMG_0002', 'IMG_0055')])
  decoded_grey = train[5]['blur']
  assert decoded_grey.shape == (H, W, 3) and (decoded_grey == decoded_grey[..., :1]).all()
  assert np.abs(decoded_grey[..., 0].astype(int) - grey).mean() < 20  # it is that frame, JPEG-compressed

  # The release folder and the quantitative_datasets folder work as manual_dir too, with the same records, in
  # either frame format (PNG: the decoded pixels re-encoded losslessly).
  for i, manual_dir in enumerate((quantitative.parent, quantitative)):
    other = build_lib.build('dvd', tmp_path / f'tfds{i}', manual_dir=manual_dir, frame_format=('raw', 'png')[i])
    assert records.sequence_table(other, 'train') == records.sequence_table(builder, 'train')
  _assert_split(_read_split('dvd', tmp_path / 'tfds1', 'test'),
                [(s, *files[s]) for s in ('720p_240fps_2', 'IMG_0030')])


def test_dvd_presplit_form_keeps_its_split(tmp_path):
  root = tmp_path / 'DVD'
  train = _write_dvd(root / 'train', {'IMG_0002': 2})
  test = _write_dvd(root / 'test', {'IMG_0003': 2, 'IMG_0021': 1}, seed=1)
  builder = build_lib.build('dvd', tmp_path / 'tfds', manual_dir=root)
  assert records.sequence_table(builder, 'train') == [('IMG_0002', 0, 2)]
  _assert_split(_read_split('dvd', tmp_path / 'tfds', 'test'), [(s, *test[s]) for s in ('IMG_0003', 'IMG_0021')])
  _assert_split(_read_split('dvd', tmp_path / 'tfds', 'train'), [('IMG_0002', *train['IMG_0002'])])


def test_bad_dvd_trees_name_the_path(tmp_path):
  quantitative = tmp_path / 'manual' / 'quantitative_datasets'
  _write_dvd(quantitative, {'IMG_0002': 2, 'IMG_0003': 2})
  (quantitative / 'IMG_0002' / 'GT' / '00001.jpg').unlink()
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(quantitative / 'IMG_0002' / 'input'))):
    build_lib.build('dvd', tmp_path / 'tfds', manual_dir=quantitative)
  _write_dvd(quantitative, {'IMG_0002': 2})
  (quantitative / 'IMG_0003' / 'input' / 'notes.txt').write_text('x')
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(quantitative / 'IMG_0003' / 'input' / 'notes.txt'))):
    build_lib.build('dvd', tmp_path / 'tfds', manual_dir=quantitative)
  # A tree without any of the ten test sequences is not the DVD quantitative set.
  only_train = tmp_path / 'other' / 'quantitative_datasets'
  _write_dvd(only_train, {'IMG_0002': 1})
  with pytest.raises(common.InvalidDatasetError, match="none of DVD's test sequences"):
    build_lib.build('dvd', tmp_path / 'tfds', manual_dir=only_train)
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(tmp_path / 'other'))):
    build_lib.build('dvd', tmp_path / 'tfds', manual_dir=tmp_path / 'other' / 'quantitative_datasets' / 'IMG_0002')
  assert not build_lib.make_builder('dvd', tmp_path / 'tfds').is_prepared()


def _write_sequence(seq_dir: pathlib.Path, blur_dir: str, sharp_dir: str, names: list[str], size: tuple[int, int],
                    rng: np.random.Generator) -> tuple[str, list[pathlib.Path], list[pathlib.Path]]:
  fmt = lambda name: 'JPEG' if name.lower().endswith(('.jpg', '.jpeg')) else 'PNG'
  blur = [_write(seq_dir / blur_dir / n, rng.integers(0, 256, (*size, 3), dtype=np.uint8), fmt(n)) for n in names]
  sharp = [_write(seq_dir / sharp_dir / n, rng.integers(0, 256, (*size, 3), dtype=np.uint8), fmt(n)) for n in names]
  return seq_dir.name, blur, sharp


def test_two_own_datasets_live_side_by_side_and_read_back_bit_exactly(tmp_path):
  rng = np.random.default_rng(3)
  # Dataset 1: split folders, `blurry`/`gt` frame folders, PNG frames named with a prefix (sorted by number:
  # frame_9 before frame_10), a JPEG sequence, and different frame sizes in different sequences.
  tree1 = tmp_path / 'phone'
  walk = _write_sequence(tree1 / 'train' / 'walk', 'blurry', 'gt', ['frame_10.png', 'frame_9.png', 'frame_11.png'],
                         (20, 28), rng)
  walk = (walk[0], [walk[1][i] for i in (1, 0, 2)], [walk[2][i] for i in (1, 0, 2)])
  bike = _write_sequence(tree1 / 'train' / 'bike', 'blurry', 'gt', ['0001.JPG', '0002.jpeg'], (H, W), rng)
  street = _write_sequence(tree1 / 'test' / 'street', 'blurry', 'gt', ['0.png', '1.png'], (24, 16), rng)
  # Dataset 2: no split folders (all sequences are train), default `blur`/`sharp` folder names.
  tree2 = tmp_path / 'drone'
  flight = _write_sequence(tree2 / 'flight', 'blur', 'sharp', ['00.png', '01.png', '02.png'], (H, W), rng)
  data_dir = tmp_path / 'tfds'

  phone = build_lib.build('paired_folders/phone', data_dir, manual_dir=tree1, blur_dir='blurry', sharp_dir='gt')
  drone = build_lib.build('paired_folders/drone', data_dir, manual_dir=tree2, frame_format='png')
  assert (phone.stored_frame_format(), drone.stored_frame_format()) == ('raw', 'png')
  assert pathlib.Path(phone.data_dir).parent.parent == pathlib.Path(drone.data_dir).parent.parent
  assert set(phone.info.splits) == {'train', 'test'} and set(drone.info.splits) == {'train'}
  _assert_split(_read_split('paired_folders/phone', data_dir, 'train'), [bike, walk])
  _assert_split(_read_split('paired_folders/phone', data_dir, 'test'), [street])
  _assert_split(_read_split('paired_folders/drone', data_dir, 'train'), [flight])
  # The training pipeline finds it by name, without its folder names.
  assert input_pipeline.list_sequences(dataset='paired_folders/phone', data_dir=data_dir, split='test') == [
      ('street', 0, 2)]

  # Reusing the name with other folder names is refused, not silently served from the old build.
  with pytest.raises(ValueError, match='built from folders'):
    build_lib.build('paired_folders/phone', data_dir, manual_dir=tree1, blur_dir='blur', sharp_dir='sharp')


def test_bad_own_video_trees_name_the_path(tmp_path):
  rng = np.random.default_rng(4)
  root = tmp_path / 'videos'
  _write_sequence(root / 'a', 'blur', 'sharp', ['1.png', '2.png'], (H, W), rng)
  _write_sequence(root / 'test' / 'b', 'blur', 'sharp', ['1.png'], (H, W), rng)
  with pytest.raises(common.InvalidDatasetError, match=f'{re.escape(str(root))} mixes sequence folders'):
    build_lib.build('paired_folders/mine', tmp_path / 'tfds', manual_dir=root)
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(root / 'test' / 'b' / 'blurry')) + ' is not a folder'):
    build_lib.build('paired_folders/mine', tmp_path / 'tfds', manual_dir=root / 'test', blur_dir='blurry')
  (root / 'test' / 'b' / 'sharp' / '1.png').rename(root / 'test' / 'b' / 'sharp' / '5.png')
  with pytest.raises(common.InvalidDatasetError, match='frame numbers differ'):
    build_lib.build('paired_folders/mine', tmp_path / 'tfds', manual_dir=root / 'test')
  shutil.rmtree(root / 'test')  # now a tree without split folders: sequence `a` only
  (root / 'a' / 'sharp' / 'readme.txt').write_text('x')
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(root / 'a' / 'sharp' / 'readme.txt'))):
    build_lib.build('paired_folders/mine', tmp_path / 'tfds', manual_dir=root)
  with pytest.raises(ValueError, match="Bad dataset name 'My Videos'"):
    build_lib.build('paired_folders/My Videos', tmp_path / 'tfds', manual_dir=root)
  with pytest.raises(ValueError, match='only to paired_folders'):
    build_lib.build('dvd', tmp_path / 'tfds', manual_dir=root, blur_dir='blur')
