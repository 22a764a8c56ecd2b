"""End-to-end tests of the dataset builders through `datasets.build`, and their bad-input errors.

Each test writes a tiny release tree in tmp_path (random 8-bit frames, so any change of a pixel shows),
builds ArrayRecord files with `datasets.build.build` and reads them back through `tfds.data_source`,
decoding the frames in the format the dataset's metadata records; every builder is checked bit-exact in
each frame format.
"""

import json
import pathlib
import re
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle

from datasets import build as build_lib
from datasets import common
from datasets.gopro import gopro_dataset_builder
from estrnn_jax import frame_storage
from estrnn_jax import input_pipeline
from estrnn_jax import records
from estrnn_jax import synthetic

H, W = 16, 24


def _write_png(path: pathlib.Path, pixels: np.ndarray, mode: str = 'RGB') -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels, mode).save(path, format='PNG')


def _frames(rng: np.random.Generator, n: int, h: int = H, w: int = W) -> np.ndarray:
  return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _write_bsd(parent: pathlib.Path, layout, seed: int = 0, setting: str = '2ms16ms',
               names: dict[str, list[str]] | None = None):
  """Writes BSD_<setting>/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/<frame>.png.

  layout: {folder: {seq: n_frames}}; names: {seq: file names} overrides %08d naming.
  Returns {(folder, seq): (blur (T,H,W,3), sharp)} in sorted-frame order.
  """
  rng = np.random.default_rng(seed)
  release = parent / f'BSD_{setting}'
  out = {}
  for folder, seqs in layout.items():
    for seq, n in seqs.items():
      blur, sharp = _frames(rng, n), _frames(rng, n)
      files = (names or {}).get(seq) or [f'{i:08d}.png' for i in range(n)]
      for i, name in enumerate(files):
        _write_png(release / folder / seq / 'Blur' / 'RGB' / name, blur[i])
        _write_png(release / folder / seq / 'Sharp' / 'RGB' / name, sharp[i])
      out[(folder, seq)] = (blur, sharp)
  return release, out


_BSD_SMALL = {'train': {'000': 2}, 'valid': {'000': 1}, 'test': {'000': 1}}


def _read_all(name: str, data_dir: pathlib.Path, split: str, expected_format: str = 'raw') -> list[dict]:
  """The split's records, frames decoded from the format recorded in the metadata (checked)."""
  source = tfds.data_source(name, data_dir=str(data_dir), split=split)
  stored = frame_storage.stored_format(source.dataset_info.metadata)
  assert stored == expected_format
  return [frame_storage.decode_record(source[i], stored) for i in range(len(source))]


def _assert_records(records, expected: list[tuple[str, np.ndarray, np.ndarray]]):
  """expected: per sequence in order (name, blur (T,H,W,3), sharp)."""
  flat = [(name, i, len(blur), blur[i], sharp[i]) for name, blur, sharp in expected for i in range(len(blur))]
  assert len(records) == len(flat)
  for record, (name, index, length, blur, sharp) in zip(records, flat):
    assert record['sequence'].decode() == name
    assert (record['frame_index'], record['sequence_length']) == (index, length)
    np.testing.assert_array_equal(record['blur'], blur)
    np.testing.assert_array_equal(record['sharp'], sharp)


@pytest.mark.parametrize('stored', ['raw', 'png'])
def test_bsd_round_trip_is_bit_exact_and_ordered(tmp_path, stored):
  # Sequence folders sort numerically (0, 2, 10) and so do frame files (9, 10, 11 -- not '10' < '11' < '9').
  layout = {'train': {'10': 2, '0': 3, '2': 3}, 'valid': {'5': 2}, 'test': {'1': 2}}
  release, frames = _write_bsd(tmp_path / 'manual', layout, names={'2': ['9.png', '10.png', '11.png']})
  data_dir = tmp_path / 'tfds'
  builder = build_lib.build('bsd/2ms16ms', data_dir, manual_dir=tmp_path / 'manual',  # the release's parent
                            frame_format=None if stored == 'raw' else stored)  # raw is the default
  assert builder.stored_frame_format() == stored

  assert builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD
  assert sorted(p.name for p in pathlib.Path(builder.data_dir).glob('*.array_record-*')) == [
      'bsd-test.array_record-00000-of-00001', 'bsd-train.array_record-00000-of-00001',
      'bsd-validation.array_record-00000-of-00001']
  assert set(builder.info.splits) == {'train', 'validation', 'test'}
  assert records.sequence_table(builder, 'train') == [('0', 0, 3), ('2', 3, 3), ('10', 6, 2)]
  assert records.sequence_table(builder.info, 'validation') == [('5', 0, 2)]
  source = tfds.data_source('bsd/2ms16ms', data_dir=str(data_dir), split='train')
  assert records.sequence_table(source) == [('0', 0, 3), ('2', 3, 3), ('10', 6, 2)]
  # Random access by index gives (sequence, frame) order, the same as reading front to back.
  assert [(source[i]['sequence'], source[i]['frame_index']) for i in (7, 0, 4)] == [
      (b'10', 1), (b'0', 0), (b'2', 1)]
  _assert_records(_read_all('bsd/2ms16ms', data_dir, 'train', stored),
                  [(s, *frames[('train', s)]) for s in ('0', '2', '10')])
  _assert_records(_read_all('bsd/2ms16ms', data_dir, 'test', stored), [('1', *frames[('test', '1')])])
  # Raw records are the pixels after a 16-byte header; PNG ones are the release's own files, byte for byte.
  record = tfds.data_source('bsd/2ms16ms', data_dir=str(data_dir), split='test')[0]
  source_png = (release / 'test' / '1' / 'Blur' / 'RGB' / '00000000.png').read_bytes()
  if stored == 'raw':
    assert len(record['blur']) == 16 + H * W * 3
  else:
    assert record['blur'] == source_png

  # The release folder itself works as manual_dir too, and gives the same records.
  other = build_lib.build('bsd/2ms16ms', tmp_path / 'tfds2', manual_dir=release, frame_format=stored)
  assert records.sequence_table(other, 'train') == records.sequence_table(builder, 'train')
  _assert_records(_read_all('bsd/2ms16ms', tmp_path / 'tfds2', 'validation', stored),
                  [('5', *frames[('valid', '5')])])


def test_record_order_survives_tfds_disk_buckets_and_several_shards(tmp_path, monkeypatch):
  # Splits over 1 GB go through TFDS's on-disk sort buckets and into several files; force both here.
  monkeypatch.setattr(shuffle, 'MAX_MEM_BUFFER_SIZE', 0)
  _, frames = _write_bsd(tmp_path / 'manual', {'train': {'0': 3, '1': 2, '2': 4}, 'valid': {'0': 3},
                                               'test': {'0': 3}})
  builder = build_lib.make_builder('bsd/2ms16ms', tmp_path / 'tfds')
  builder.download_and_prepare(file_format='array_record', download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / 'manual'), num_shards=3))
  assert len(list(pathlib.Path(builder.data_dir).glob('bsd-train.array_record-*'))) == 3
  _assert_records(_read_all('bsd/2ms16ms', tmp_path / 'tfds', 'train'),
                  [(s, *frames[('train', s)]) for s in ('0', '1', '2')])


def test_build_reuses_a_complete_dataset_and_needs_manual_dir(tmp_path):
  _write_bsd(tmp_path / 'manual', _BSD_SMALL)
  first = build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')
  # A second build reuses it: no manual_dir needed, nothing rewritten.
  stamp = {p.name: p.stat().st_mtime_ns for p in pathlib.Path(first.data_dir).iterdir()}
  again = build_lib.build('bsd/2ms16ms', tmp_path / 'tfds')
  assert {p.name: p.stat().st_mtime_ns for p in pathlib.Path(again.data_dir).iterdir()} == stamp
  with pytest.raises(ValueError, match='needs manual_dir'):
    build_lib.build('bsd/1ms8ms', tmp_path / 'tfds')
  with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
    build_lib.build('mnist', tmp_path / 'tfds')
  with pytest.raises(ValueError, match="Unknown config '4ms32ms'"):
    build_lib.build('bsd/4ms32ms', tmp_path / 'tfds')


def test_failed_build_leaves_no_dataset(tmp_path):
  # The test split is generated last: train and validation are already written when it fails.
  release, _ = _write_bsd(tmp_path / 'manual', _BSD_SMALL)
  bad = release / 'test' / '000' / 'Sharp' / 'RGB' / '00000000.png'
  bad.write_bytes(bad.read_bytes()[:60])  # truncated: valid header, no image data
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(bad))):
    build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')
  config_dir = tmp_path / 'tfds' / 'bsd' / '2ms16ms'
  assert not config_dir.exists() or not list(config_dir.iterdir())
  assert not build_lib.make_builder('bsd/2ms16ms', tmp_path / 'tfds').is_prepared()


def _write_gopro(parent: pathlib.Path, layout, h: int, w: int, seed: int = 0, kinds=('blur_gamma',)):
  """GOPRO_Large/{train,test}/<seq>/{kinds..., sharp}/%06d.png; layout {split: {seq: (first, n)}}."""
  rng = np.random.default_rng(seed)
  out = {}
  for split, seqs in layout.items():
    for seq, (first, n) in seqs.items():
      blur, sharp = _frames(rng, n, h, w), _frames(rng, n, h, w)
      for i in range(n):
        for kind in kinds:
          _write_png(parent / 'GOPRO_Large' / split / seq / kind / f'{first + i:06d}.png', blur[i])
        _write_png(parent / 'GOPRO_Large' / split / seq / 'sharp' / f'{first + i:06d}.png', sharp[i])
      out[(split, seq)] = (blur, sharp)
  return out


def test_gopro_960x540_downsamples_by_exact_area_average(tmp_path):
  layout = {'train': {'GOPR0372_07_00': (47, 2)}, 'test': {'GOPR0384_11_00': (1, 1)}}
  frames = _write_gopro(tmp_path / 'manual', layout, 720, 1280)
  data_dir = tmp_path / 'tfds'
  build_lib.build('gopro/blur_gamma_960x540', data_dir, manual_dir=tmp_path / 'manual' / 'GOPRO_Large')
  blur, sharp = frames[('train', 'GOPR0372_07_00')]
  records = _read_all('gopro/blur_gamma_960x540', data_dir, 'train')
  assert [r['blur'].shape for r in records] == [(540, 960, 3)] * 2
  _assert_records(records, [('GOPR0372_07_00', np.stack([gopro_dataset_builder.downsample_3_4(f) for f in blur]),
                             np.stack([gopro_dataset_builder.downsample_3_4(f) for f in sharp]))])


@pytest.mark.parametrize('stored', ['raw', 'png'])
def test_gopro_full_size_keeps_release_frames_and_refuses_downsampled_copies(tmp_path, stored):
  layout = {'train': {'GOPR0372_07_00': (47, 2), 'GOPR0374_11_00': (1, 1)}, 'test': {'GOPR0384_11_00': (98, 3)}}
  frames = _write_gopro(tmp_path / 'manual', layout, H, W, kinds=('blur', 'blur_gamma'))
  build_lib.build('gopro/blur', tmp_path / 'tfds', manual_dir=tmp_path / 'manual', frame_format=stored)
  _assert_records(_read_all('gopro/blur', tmp_path / 'tfds', 'test', stored),
                  [('GOPR0384_11_00', *frames[('test', 'GOPR0384_11_00')])])
  # blur_gamma_960x540 needs 1280x720 frames: an already downsampled copy is an error, not shrunk again.
  first = tmp_path / 'manual' / 'GOPRO_Large' / 'train' / 'GOPR0372_07_00' / 'blur_gamma' / '000047.png'
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(first)) + '.*24x16.*1280x720'):
    build_lib.build('gopro/blur_gamma_960x540', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')


@pytest.mark.parametrize('form,stored', [('nested', 'raw'), ('flat', 'png'), ('parent', 'raw')])
def test_reds_layouts(tmp_path, form, stored):
  rng = np.random.default_rng(1)
  root = tmp_path / 'manual' / ('REDS' if form == 'parent' else '')
  expected = {}
  for split, prefix, seqs in (('train', 'train', ('000', '001')), ('validation', 'val', ('000',))):
    expected[split] = []
    for seq in seqs:
      blur, sharp = _frames(rng, 2), _frames(rng, 2)
      for kind, images in (('blur', blur), ('sharp', sharp)):
        folder = root / prefix / f'{prefix}_{kind}' if form != 'flat' else root / f'{prefix}_{kind}'
        for i, image in enumerate(images):
          _write_png(folder / seq / f'{i:08d}.png', image)
      expected[split].append((seq, blur, sharp))
  data_dir = tmp_path / 'tfds'
  builder = build_lib.build('reds', data_dir, manual_dir=tmp_path / 'manual', frame_format=stored)
  assert records.sequence_table(builder, 'train') == [('000', 0, 2), ('001', 2, 2)]
  for split in ('train', 'validation'):
    _assert_records(_read_all('reds', data_dir, split, stored), expected[split])


@pytest.mark.parametrize('stored', ['raw', 'png'])
def test_synthetic_build_matches_the_generator(tmp_path, stored):
  builder = build_lib.build('synthetic_blur/tiny', tmp_path, frame_format=stored)
  preset = synthetic.PRESETS['tiny']
  for split, n in preset.num_sequences.items():
    assert records.sequence_table(builder, split) == [
        (f'{i:04d}', i * preset.num_frames, preset.num_frames) for i in range(n)]
  expected = [(f'{i:04d}', *synthetic.render_sequence(preset, synthetic.sequence_seed('validation', i)))
              for i in range(preset.num_sequences['validation'])]
  _assert_records(_read_all('synthetic_blur/tiny', tmp_path, 'validation', stored), expected)

  # A prepared set rendered with other parameters is not silently reused.
  metadata_path = pathlib.Path(builder.data_dir) / 'metadata.json'
  metadata = json.loads(metadata_path.read_text())
  metadata['synthetic_config']['exposure'] = 0.9
  metadata_path.write_text(json.dumps(metadata))
  with pytest.raises(ValueError, match='exposure changed'):
    build_lib.build('synthetic_blur/tiny', tmp_path)


# ---------------------------------------------------------------------------------------------------------
# Frame formats: the choice is recorded, never silently mixed, and old PNG datasets still read right.


def _rewrite_metadata(builder, **changes):
  path = pathlib.Path(builder.data_dir) / 'metadata.json'
  metadata = json.loads(path.read_text())
  for key, value in changes.items():
    if value is None:
      del metadata[key]
    else:
      metadata[key] = value
  path.write_text(json.dumps(metadata))


def test_a_dataset_in_another_frame_format_is_refused_unless_rebuilt(tmp_path):
  _write_bsd(tmp_path / 'manual', _BSD_SMALL)
  data_dir = tmp_path / 'tfds'
  assert build_lib.build('bsd/2ms16ms', data_dir, manual_dir=tmp_path / 'manual').stored_frame_format() == 'raw'
  assert build_lib.build('bsd/2ms16ms', data_dir).stored_frame_format() == 'raw'  # None reuses any format
  with pytest.raises(ValueError, match='holds frames stored as raw, not png.*--frame_format png --overwrite'):
    build_lib.build('bsd/2ms16ms', data_dir, frame_format='png')
  rebuilt = build_lib.build('bsd/2ms16ms', data_dir, manual_dir=tmp_path / 'manual', frame_format='png',
                            overwrite=True)
  assert rebuilt.stored_frame_format() == 'png'
  with pytest.raises(ValueError, match="Unknown frame format 'jpeg'"):
    build_lib.build('bsd/2ms16ms', data_dir, frame_format='jpeg')


def test_datasets_built_before_frame_formats_are_read_as_png(tmp_path, caplog):
  # A dataset of the first release: PNG frames and no frame format in metadata.json.
  _, frames = _write_bsd(tmp_path / 'manual', _BSD_SMALL)
  builder = build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual', frame_format='png')
  _rewrite_metadata(builder, frame_format=None)
  assert 'frame_format' not in json.loads((pathlib.Path(builder.data_dir) / 'metadata.json').read_text())
  # Its features.json declared the frames as TFDS PNG `Image` features (what a reader without the builder code
  # goes by): PNG records are the same bytes either way.
  png_image = tfds.features.Image(shape=(None, None, 3), dtype=np.uint8, encoding_format='png')
  tfds.features.FeaturesDict({
      'blur': png_image, 'sharp': png_image, 'sequence': tfds.features.Text(),
      'frame_index': tfds.features.Scalar(dtype=np.int32), 'sequence_length': tfds.features.Scalar(dtype=np.int32),
  }).save_config(builder.data_dir)
  with caplog.at_level('WARNING'):
    [(name, blur, sharp)] = input_pipeline.iterate_sequences(dataset='bsd/2ms16ms', data_dir=tmp_path / 'tfds',
                                                             split='train')
  assert name == '000'
  np.testing.assert_array_equal(blur, frames[('train', '000')][0])
  np.testing.assert_array_equal(sharp, frames[('train', '000')][1])
  assert f'python -m datasets.build --dataset bsd/2ms16ms --data_dir {tmp_path / "tfds"} --overwrite' in caplog.text
  # Read from its files alone (no builder class), the frames come back as the stored PNG bytes too.
  source = input_pipeline._data_source(tfds.builder_from_directory(builder.data_dir), 'train')  # pylint: disable=protected-access
  first = frame_storage.decode_record(source[0], frame_storage.stored_format(None))
  np.testing.assert_array_equal(first['blur'], frames[('train', '000')][0][0])


def test_records_in_another_format_than_the_metadata_says_are_refused(tmp_path):
  _write_bsd(tmp_path / 'manual', _BSD_SMALL)
  builder = build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual', frame_format='png')
  _rewrite_metadata(builder, frame_format='raw')  # PNG records, metadata claiming raw
  with pytest.raises(ValueError, match='holds png bytes but the dataset.s metadata says its frames are raw'):
    list(input_pipeline.iterate_sequences(dataset='bsd/2ms16ms', data_dir=tmp_path / 'tfds', split='train'))
  _rewrite_metadata(builder, frame_format='webp')  # a format of some later version
  with pytest.raises(ValueError, match="stores frames as 'webp'.*rebuild it with `python -m datasets.build"):
    input_pipeline.iterate_sequences(dataset='bsd/2ms16ms', data_dir=tmp_path / 'tfds', split='train')


# ---------------------------------------------------------------------------------------------------------
# Bad input: every error names the offending path.


def _corrupt(path: pathlib.Path) -> pathlib.Path:
  data = bytearray(path.read_bytes())
  data[-20:-12] = b'\x00' * 8  # damage the last chunks (IDAT data / CRC)
  data[60:80] = b'\xff' * 20
  path.write_bytes(bytes(data))
  return path


def _seq(release: pathlib.Path) -> pathlib.Path:
  return release / 'train' / '000'


_BAD_BSD_TREES = {
    # name: (mutation of a valid release -> the path the message must name, a phrase of the message)
    'missing_split': (lambda r: _rmtree(r / 'test'), 'Missing BSD test split folder'),
    'missing_sharp_folder': (lambda r: _rmtree(_seq(r) / 'Sharp'), 'Missing frame folder'),
    'frame_count_mismatch': (lambda r: _unlink(_seq(r) / 'Sharp' / 'RGB' / '00000001.png', _seq(r) / 'Blur' / 'RGB'),
                             'has 2 frames but'),
    'frame_numbers_differ': (lambda r: _rename(_seq(r) / 'Sharp' / 'RGB' / '00000001.png', '00000005.png'),
                             'frame numbers differ'),
    'non_frame_file': (lambda r: _touch(_seq(r) / 'Blur' / 'RGB' / 'notes.txt'), 'Unexpected file'),
    'duplicate_frame_number': (lambda r: _copy(_seq(r) / 'Blur' / 'RGB' / '00000001.png', '1.png'),
                               'same frame number 1'),
    'stray_file_in_split': (lambda r: _touch(r / 'train' / 'readme.txt'), 'should contain only sequence folders'),
    'non_integer_sequence': (lambda r: _mkdir(r / 'train' / '__MACOSX'), 'named by integers'),
    'empty_frame_folder': (lambda r: _empty(_seq(r) / 'Blur' / 'RGB'), 'No frames in'),
    'corrupt_image': (lambda r: _corrupt(_seq(r) / 'Blur' / 'RGB' / '00000001.png'), 'unreadable or corrupt'),
    'not_a_png': (lambda r: _write_text(_seq(r) / 'Sharp' / 'RGB' / '00000000.png', 'hello'), 'is not a PNG'),
    'blur_sharp_sizes_differ': (lambda r: _write_image(_seq(r) / 'Sharp' / 'RGB' / '00000001.png', H + 4, W),
                                'must have the same size'),
    'sizes_change_in_sequence': (lambda r: _write_both(_seq(r), '00000001.png', H, W + 4), 'frames of different sizes'),
    '16_bit': (lambda r: _write_16bit(_seq(r) / 'Blur' / 'RGB' / '00000000.png'), '16-bit PNG'),
    'transparent': (lambda r: _write_rgba(_seq(r) / 'Blur' / 'RGB' / '00000000.png', alpha=128), 'transparent pixels'),
}


def _rmtree(path):
  shutil.rmtree(path)
  return path


def _unlink(path, named):
  path.unlink()
  return named


def _rename(path, new_name):
  return path.rename(path.with_name(new_name))


def _touch(path):
  path.write_text('not a frame')
  return path


def _mkdir(path):
  path.mkdir()
  return path


def _copy(path, new_name):
  (path.parent / new_name).write_bytes(path.read_bytes())
  return path.parent / new_name


def _empty(folder):
  for p in folder.iterdir():
    p.unlink()
  return folder


def _write_text(path, text):
  path.write_text(text)
  return path


def _write_image(path, h, w):
  _write_png(path, np.zeros((h, w, 3), np.uint8))
  return path


def _write_both(seq_dir, name, h, w):
  for kind in ('Blur', 'Sharp'):
    _write_png(seq_dir / kind / 'RGB' / name, np.zeros((h, w, 3), np.uint8))
  return seq_dir / 'Blur' / 'RGB' / name


def _write_16bit(path):
  Image.fromarray(np.full((H, W), 1000, np.uint16)).save(path, format='PNG')  # 16-bit greyscale
  return path


def _write_rgba(path, alpha):
  rgba = np.zeros((H, W, 4), np.uint8)
  rgba[..., 3] = alpha
  _write_png(path, rgba, 'RGBA')
  return path


@pytest.mark.parametrize('case', sorted(_BAD_BSD_TREES))
def test_bad_bsd_tree_raises_naming_the_path(tmp_path, case):
  mutate, phrase = _BAD_BSD_TREES[case]
  release, _ = _write_bsd(tmp_path / 'manual', {'train': {'000': 2}, 'valid': {'000': 1}, 'test': {'000': 1}})
  named = mutate(release)
  with pytest.raises(common.InvalidDatasetError) as error:
    build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')
  assert str(named) in str(error.value)
  assert phrase in str(error.value)
  assert not build_lib.make_builder('bsd/2ms16ms', tmp_path / 'tfds').is_prepared()


def test_bad_manual_dirs(tmp_path):
  _write_bsd(tmp_path / 'manual', _BSD_SMALL, setting='1ms8ms')
  # Pointing at another setting's release folder must not build 2ms16ms from 1ms8ms frames.
  with pytest.raises(common.InvalidDatasetError, match='is another BSD setting'):
    build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual' / 'BSD_1ms8ms')
  # A parent without the right release folder.
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(tmp_path / 'manual')) + '.*BSD_1ms8ms'):
    build_lib.build('bsd/2ms16ms', tmp_path / 'tfds', manual_dir=tmp_path / 'manual')


def test_bad_reds_trees(tmp_path):
  rng = np.random.default_rng(2)
  root = tmp_path / 'manual'
  for prefix in ('train', 'val'):
    for kind in ('blur', 'sharp'):
      _write_png(root / prefix / f'{prefix}_{kind}' / '000' / '00000000.png', _frames(rng, 1)[0])
  _write_png(root / 'val' / 'val_blur' / '001' / '00000000.png', _frames(rng, 1)[0])
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(root / 'val' / 'val_blur' / '001'))):
    build_lib.build('reds', tmp_path / 'tfds', manual_dir=root)
  _write_png(root / 'val' / 'val_sharp' / '001' / '00000000.png', _frames(rng, 1)[0])
  _write_png(root / 'train_blur' / '000' / '00000000.png', _frames(rng, 1)[0])  # both layouts at once
  with pytest.raises(common.InvalidDatasetError, match='Both .* exist'):
    build_lib.build('reds', tmp_path / 'tfds', manual_dir=root)
  _rmtree(root / 'train_blur')
  _rmtree(root / 'train' / 'train_sharp')
  with pytest.raises(common.InvalidDatasetError, match=re.escape(str(root / 'train' / 'train_sharp'))):
    build_lib.build('reds', tmp_path / 'tfds', manual_dir=root)
