"""Frame files as `deblur` reads them: bit depths, grey, alpha, palettes (video_io's image reading)."""

import numpy as np
from PIL import Image
import pytest

from estrnn_jax import checkpoints
from estrnn_jax import deblur
from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import video_io


def _save(folder, name, array, mode=None):
  folder.mkdir(exist_ok=True)
  Image.fromarray(array, mode).save(folder / name)


def _read(folder):
  frames, _ = video_io.read_frames(folder)
  return frames


def test_16_bit_grey_png_keeps_its_values(tmp_path):
  grey = np.array([[0, 1000], [40000, 65535]], np.uint16)
  _save(tmp_path / 'f', '0.png', grey)
  frames = _read(tmp_path / 'f')
  assert frames.dtype == np.uint16 and frames.shape == (1, 2, 2, 3)
  np.testing.assert_array_equal(frames[0], np.repeat(grey[..., None], 3, -1))   # 1000, not 255
  np.testing.assert_allclose(images.to_model(frames[0], images.frame_format(np.uint16))[0, 1],
                             1000 / 65535 - 0.5, rtol=1e-6)


def test_8_bit_grey_palette_and_opaque_alpha_become_rgb(tmp_path):
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
  grey = rgb[..., 0]
  _save(tmp_path / 'grey', '0.png', grey)
  np.testing.assert_array_equal(_read(tmp_path / 'grey')[0], np.repeat(grey[..., None], 3, -1))
  _save(tmp_path / 'rgba', '0.png', np.concatenate([rgb, np.full((3, 4, 1), 255, np.uint8)], -1))
  np.testing.assert_array_equal(_read(tmp_path / 'rgba')[0], rgb)
  _save(tmp_path / 'la', '0.png', np.stack([grey, np.full_like(grey, 255)], -1), 'LA')
  np.testing.assert_array_equal(_read(tmp_path / 'la')[0], np.repeat(grey[..., None], 3, -1))
  palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), 'P')
  palette.putpalette([10, 20, 30, 200, 100, 50])
  (tmp_path / 'p').mkdir()
  palette.save(tmp_path / 'p' / '0.png')
  np.testing.assert_array_equal(_read(tmp_path / 'p')[0], [[[10, 20, 30], [200, 100, 50]],
                                                          [[200, 100, 50], [10, 20, 30]]])


def test_translucent_frames_are_refused_naming_the_file(tmp_path):
  rgba = np.full((3, 4, 4), 255, np.uint8)
  rgba[1, 2, 3] = 128
  _save(tmp_path / 'rgba', '0.png', rgba)
  with pytest.raises(video_io.VideoIOError, match=r'rgba/0.png: RGBA with 1 pixel\(s\) not fully opaque'):
    _read(tmp_path / 'rgba')
  palette = Image.fromarray(np.array([[0, 1]], np.uint8), 'P')
  palette.putpalette([0, 0, 0, 255, 255, 255])
  palette.info['transparency'] = 0   # colour 0 is transparent
  (tmp_path / 'p').mkdir()
  palette.save(tmp_path / 'p' / '0.png', transparency=0)
  with pytest.raises(video_io.VideoIOError, match='p/0.png: RGBA with 1 pixel'):
    _read(tmp_path / 'p')


def test_folder_mixing_bit_depths_is_refused(tmp_path):
  _save(tmp_path / 'f', '0.png', np.zeros((2, 2), np.uint16))
  _save(tmp_path / 'f', '1.png', np.zeros((2, 2), np.uint8))
  with pytest.raises(video_io.VideoIOError, match='1.png: is 8-bit, but 0.png is 16-bit'):
    _read(tmp_path / 'f')


def test_deblur_reads_16_bit_grey_without_saturating(tmp_path, testdata, capsys):
  model, variables = inference.load_model(str(testdata / 'fake_ckpt_C4B2.pth.tar'))
  model = model.clone(residual=True)   # output = input + correction: depends strongly on the input's values
  checkpoints.save_model(tmp_path / 'ckpt', model, variables['params'])
  grey = np.random.default_rng(1).integers(0, 4000, (3, 16, 20), dtype=np.uint16)   # dark: all < 256 * 16
  for i, frame in enumerate(grey):
    _save(tmp_path / 'in', f'{i}.png', frame)
  status = deblur.main(['--checkpoint', str(tmp_path / 'ckpt'), '--input', str(tmp_path / 'in'),
                        '--output', str(tmp_path / 'out')])
  assert status == 0, capsys.readouterr().err
  written = np.stack([np.asarray(Image.open(tmp_path / 'out' / f'{i}.png')) for i in range(3)])
  as_floats = grey.astype(np.float32) / 65535 - 0.5
  expected = inference.deblur_video(model, variables, np.repeat(as_floats[..., None], 3, -1),
                                    value_range=images.MODEL_RANGE)
  want = images.to_uint8(expected)
  assert written.dtype == np.uint8 and written.shape == want.shape
  assert np.abs(written.astype(int) - want).max() <= 1
  saturated = inference.deblur_video(model, variables, np.full((3, 16, 20, 3), 255, np.uint8))
  assert np.abs(written.astype(int) - saturated).mean() > 20   # what reading 1000 as 255 would have given
