"""Unit tests of the builders' shared pieces: record keys, frame reading, 3/4 area downsampling, sequence
tables, the committed dummy data, and the `datasets` package name."""

import fractions
import io
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
from tensorflow_datasets.core import shuffle

from datasets import common
from datasets import make_dummy_data
from datasets.gopro import gopro_dataset_builder
from estrnn_jax import records
from estrnn_jax import video_io

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_record_keys_keep_order_and_spread_over_tfds_sort_buckets():
  for total in (1, 7, 1000, 24_000):
    keys = [common.record_key(i, total) for i in range(total)]
    assert keys == sorted(keys) and len(set(keys)) == total and keys[-1] < 2**128
    buckets = [shuffle.get_bucket_number(k, shuffle.BUCKETS_NUMBER) for k in keys]
    assert buckets == sorted(buckets)  # TFDS writes bucket by bucket: the order survives
    # REDS-sized splits use about half of the buckets or more, instead of all records in bucket 0.
    assert len(set(buckets)) >= min(total, shuffle.BUCKETS_NUMBER // 2)
  with pytest.raises(ValueError):
    common.record_key(5, 5)


def _area_reference(frame: np.ndarray) -> np.ndarray:
  """Exact area average for a 3/4 downsampling from pixel-footprint overlaps computed in exact fractions
  (independently of the code under test), rounded half up."""
  def overlap_times_4(n_in: int) -> np.ndarray:
    n_out = n_in * 3 // 4
    scale = fractions.Fraction(n_in, n_out)
    m = np.zeros((n_out, n_in), np.int64)
    for o in range(n_out):
      lo, hi = o * scale, (o + 1) * scale
      for i in range(n_in):
        weight = max(fractions.Fraction(0), min(hi, i + 1) - max(lo, i)) / scale  # sums to 1 over i
        assert (weight * 4).denominator == 1
        m[o, i] = int(weight * 4)
    return m
  rows, cols = overlap_times_4(frame.shape[0]), overlap_times_4(frame.shape[1])
  sums = np.einsum('oi,ijc,pj->opc', rows, frame.astype(np.int64), cols)  # 16 x the exact mean
  return ((sums + 8) // 16).astype(np.uint8)


def test_downsample_3_4_is_the_exact_area_average():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)
  out = gopro_dataset_builder.downsample_3_4(frame)
  assert out.shape == (27, 36, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, _area_reference(frame))
  # One group of 4 inputs -> 3 outputs: (3a + b, 2b + 2c, c + 3d) / 4. (Pillow's BOX filter gives
  # [0, 0, 255] here: at a 4/3 scale it weights whole pixels by their centres, not by area.)
  edge = np.zeros((4, 4, 3), np.uint8)
  edge[:, 3] = 255
  np.testing.assert_array_equal(gopro_dataset_builder.downsample_3_4(edge)[0, :, 0], [0, 0, 191])
  np.testing.assert_array_equal(gopro_dataset_builder.downsample_3_4(np.full((8, 12, 3), 77, np.uint8)),
                                np.full((6, 9, 3), 77, np.uint8))
  with pytest.raises(ValueError, match='multiples of 4'):
    gopro_dataset_builder.downsample_3_4(np.zeros((10, 12, 3), np.uint8))


def _png_bytes(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format='PNG')
  return buffer.getvalue()


def test_read_frame_keeps_rgb_bytes_and_converts_other_8bit_pngs_losslessly(tmp_path):
  rng = np.random.default_rng(1)
  rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  path = tmp_path / '0.png'
  path.write_bytes(_png_bytes(Image.fromarray(rgb)))
  frame = common.read_frame(path, with_pixels=True)
  assert frame.png == path.read_bytes() and (frame.height, frame.width) == (5, 7)
  np.testing.assert_array_equal(frame.pixels, rgb)

  grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
  opaque = np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], -1)
  palette = Image.fromarray(rgb).quantize(colors=16)
  cases = [(Image.fromarray(grey), np.repeat(grey[..., None], 3, -1)),
           (Image.fromarray(opaque, 'RGBA'), rgb),
           (palette, np.asarray(palette.convert('RGB')))]
  for image, expected in cases:
    path.write_bytes(_png_bytes(image))
    frame = common.read_frame(path)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(frame.png))), expected)
    assert Image.open(io.BytesIO(frame.png)).mode == 'RGB'


def test_list_frames_sorts_numerically_and_ignores_hidden_files(tmp_path):
  for name in ('10.png', '9.png', '000011.png', '.DS_Store'):
    (tmp_path / name).write_bytes(b'')
  assert [p.name for p in common.list_frames(tmp_path)] == ['9.png', '10.png', '000011.png']
  # The project's one natural sort (sequence folders and frame files, here and in `deblur`'s frame folders).
  key = video_io.natural_sort_key
  assert key('10') > key('9') and key('seq10') > key('seq9')
  assert sorted(['b', '10', 'a', '2', 'seq10', 'seq9'], key=key) == ['2', '10', 'a', 'b', 'seq9', 'seq10']


def test_sequence_table_errors(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from datasets import build as build_lib  # pylint: disable=g-import-not-at-top
  builder = build_lib.make_builder('bsd/2ms16ms', tmp_path)
  with pytest.raises(ValueError, match='no sequence table'):
    records.sequence_table(builder, 'train')
  records.set_sequence_tables(builder.info, {'train': records.build_sequence_table([('a', 2), ('b', 3)])})
  assert records.sequence_table(builder, 'train') == [('a', 0, 2), ('b', 2, 3)]
  with pytest.raises(ValueError, match="split 'train\\[:2\\]'"):
    records.sequence_table(builder, 'train[:2]')
  with pytest.raises(ValueError, match='needs a split'):
    records.sequence_table(builder.info)
  with pytest.raises(TypeError):
    records.sequence_table(object(), 'train')
  # A table that disagrees with the split's record count is refused.
  builder.info.set_splits(tfds.core.SplitDict([tfds.core.SplitInfo(
      name='train', shard_lengths=[4], num_bytes=0, filename_template=None)]))
  with pytest.raises(ValueError, match='covers 5 frames but the split has 4'):
    records.sequence_table(builder, 'train')


def test_committed_dummy_data_is_what_the_script_writes(tmp_path):
  for name, writer in make_dummy_data.WRITERS.items():
    committed_root = REPO / 'datasets' / name / 'dummy_data'
    written = writer(tmp_path / name)
    committed = sorted(p.relative_to(committed_root) for p in committed_root.rglob('*')
                       if p.suffix in ('.png', '.jpg', '.tiff'))
    assert sorted(p.relative_to(tmp_path / name) for p in written) == committed
    for relative in committed:
      np.testing.assert_array_equal(np.asarray(Image.open(committed_root / relative)),
                                    np.asarray(Image.open(tmp_path / name / relative)))
  total = sum(p.stat().st_size for p in (REPO / 'datasets').rglob('dummy_data/**/*') if p.is_file())
  assert total < 300 * 1024


def test_our_datasets_package_does_not_shadow_hugging_face_outside_the_repo(tmp_path):
  """`datasets` is importable from the repo root only; elsewhere `import datasets` is Hugging Face's (or
  nothing), so installing this project can never break an environment that uses theirs."""
  code = 'import importlib.util as u; s = u.find_spec("datasets"); print(s.origin if s else "")'
  out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, check=True,
                       env={'PATH': '', 'PYTHONNOUSERSITE': '1'})
  assert str(REPO) not in out.stdout
