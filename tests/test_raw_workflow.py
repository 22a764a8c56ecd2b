"""ESTRNN-RAW end to end on a tiny BSD release with RAW frames: build (RGB and RAW), train through the normal
pipeline (`configs/bsd.py:2ms16ms_raw`), score with the official ISP protocol (checked against test_isp.py's
procedure redone here with numpy, rawpy and scikit-image), stream, and deblur a folder of RAW TIFFs."""

import json
import pathlib

import jax
import numpy as np
from PIL import Image
import pytest
import rawpy
from skimage.metrics import structural_similarity
import tifffile

from configs import bsd as bsd_config
from datasets import build as build_lib
from estrnn_jax import checkpoints
from estrnn_jax import deblur
from estrnn_jax import evaluate
from estrnn_jax import raw_frames
from estrnn_jax import raw_isp
from estrnn_jax import sharding
from estrnn_jax import train

FRAMES, HEIGHT, WIDTH = 7, 32, 48


def _bayer(rgb_u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """RGGB samples of uint8 RGB frames (..., H, W, 3), scaled to 16 bits plus a little noise: uint16 (..., H, W)."""
  rows, cols = np.indices(rgb_u8.shape[-3:-1])
  channel = np.where(rows % 2 == 0, np.where(cols % 2 == 0, 0, 1), np.where(cols % 2 == 0, 1, 2))
  mosaic = np.take_along_axis(rgb_u8, np.broadcast_to(channel[..., None], rgb_u8.shape[:-1] + (1,)), -1)[..., 0]
  noisy = mosaic.astype(np.int64) * 257 + rng.integers(-200, 200, mosaic.shape)
  return np.clip(noisy, 0, 65535).astype(np.uint16)


def _release(root: pathlib.Path) -> dict[str, np.ndarray]:
  """BSD_2ms16ms with RGB and RAW frames: smooth scenes moving right, blur = mean of 3 shifted copies."""
  rng = np.random.default_rng(5)
  y, x = np.mgrid[0:HEIGHT, 0:WIDTH + 3 * FRAMES]
  frames = {}
  for split, sequences in (('train', 2), ('valid', 1), ('test', 1)):
    for seq in range(sequences):
      scene = np.stack([80 + 60 * np.sin(x / rng.uniform(3, 8) + rng.uniform(0, 6)) + 40 * np.cos(y / 5.0)
                        for _ in range(3)], -1)
      sharp = np.stack([scene[:, 3 * t:3 * t + WIDTH] for t in range(FRAMES)])
      blur = np.stack([np.mean([scene[:, 3 * t + d:3 * t + d + WIDTH] for d in (-1, 0, 1)], 0)
                       if t else sharp[0] for t in range(FRAMES)])
      data = {'Blur': np.clip(np.rint(blur), 0, 255).astype(np.uint8),
              'Sharp': np.clip(np.rint(sharp), 0, 255).astype(np.uint8)}
      for kind, rgb in data.items():
        raw = _bayer(rgb, rng)
        folder = root / 'BSD_2ms16ms' / split / f'{seq:03d}' / kind
        (folder / 'RGB').mkdir(parents=True)
        (folder / 'RAW').mkdir()
        for i in range(FRAMES):
          Image.fromarray(rgb[i]).save(folder / 'RGB' / f'{i:08d}.png')
          tifffile.imwrite(folder / 'RAW' / f'{i:08d}.tiff', raw[i])
        frames[f'{split}/{seq:03d}/{kind}/RGB'], frames[f'{split}/{seq:03d}/{kind}/RAW'] = rgb, raw
  return frames


def _config(data_dir: pathlib.Path):
  config = bsd_config.get_config('2ms16ms_raw,runlocal')
  config.update_from_flattened_dict({
      'model.n_features': 4, 'model.n_blocks': 2, 'dataset.data_dir': str(data_dir), 'dataset.window_frames': 5,
      'dataset.crop_size': 32, 'dataset.noise_std': 2.0, 'batch_size': 2, 'num_train_steps': 2,
      'model.unroll': False,   # loops compile faster; two steps run either way
      'eval_every_steps': -1, 'checkpoint_every_steps': 0, 'eval.chunk_frames': 20})
  return config


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp('raw')
  frames = _release(root / 'manual')
  for name in ('bsd/2ms16ms', 'bsd/2ms16ms_raw'):
    build_lib.build(name, root / 'tfds', manual_dir=root / 'manual')
  config = _config(root / 'tfds')
  assert (config.model.input, config.eval.isp_rgb_dataset, config.optimizer.learning_rate) == (
      'raw', 'bsd/2ms16ms', 3e-4)
  state = train.train_and_evaluate(config, root / 'run', mesh=sharding.make_mesh(jax.devices()[:1]))
  assert int(state.step) == 2
  return root, config, frames


def test_training_saves_a_raw_model_and_the_noisy_data_stream(trained):
  root, _, _ = trained
  model, variables = checkpoints.restore_model(root / 'run')
  assert model.input == 'raw' and variables['params']['reconstructor']['out']['kernel'].shape == (5, 5, 4, 1)
  state = json.loads(next((root / 'run' / 'checkpoints' / '2' / 'data_iter').glob('*.json')).read_text())
  assert state['next_batch'] == 2 and state['pipeline']['noise_std'] == 2.0


def _official_isp_scores(outputs_u16: np.ndarray, sharp_rgb: np.ndarray, tmp_path: pathlib.Path):
  """test_isp.py's procedure on one sequence, as written there: a mosaic of the frames with the first 2 and last 2
  replaced by their nearest output, saved with PIL as 'I;16', rawpy's postprocess, float32 scaling, per-frame
  numpy PSNR and scikit-image SSIM on the output frames. `outputs_u16`: {frame: uint16 (H, W)}."""
  row = [outputs_u16[min(max(i, 2), FRAMES - 3)] for i in range(FRAMES)]   # one row: 7 frames < 15 per row
  mosaic = np.concatenate(row, axis=1)
  Image.fromarray(mosaic).save(tmp_path / 'saved.tiff')
  rgb = rawpy.imread(str(tmp_path / 'saved.tiff')).postprocess(use_auto_wb=True, no_auto_bright=False,
                                                              output_bps=16, user_black=0)
  rgb = (rgb.astype(np.float32) / 65535 * 255).astype(np.uint8)
  psnr, ssim = [], []
  for i in range(2, FRAMES - 2):
    tile = rgb[:, i * WIDTH:(i + 1) * WIDTH]
    psnr.append(-10 * np.log10(np.mean(((tile.astype(np.float64) - sharp_rgb[i]) / 255.0) ** 2)))
    ssim.append(structural_similarity(sharp_rgb[i], tile, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255))
  return np.array(psnr), np.array(ssim)


def test_isp_protocol_is_the_official_test_isp(trained, tmp_path):
  root, config, frames = trained
  summary = evaluate.run(config, str(root / 'run'), protocol='raw_isp', output_dir=str(tmp_path / 'eval'),
                         save_frames=True)
  model, variables = checkpoints.restore_model(root / 'run')
  blur_raw, sharp_raw = frames['test/000/Blur/RAW'], frames['test/000/Sharp/RAW']
  out = np.asarray(model.apply(variables, blur_raw[None, ..., None].astype(np.float32) / 65535 - 0.5))[0, ..., 0]
  # The RAW outputs the ISP was given (saved as the official test script saves them): the model's, clipped and
  # truncated to uint16 (one level apart where float32 rounding lands on the other side of an integer).
  outputs = {i: tifffile.imread(tmp_path / 'eval' / 'frames' / '000' / f'{i:08d}.tiff') for i in (2, 3, 4)}
  for k, i in enumerate((2, 3, 4)):
    np.testing.assert_allclose(outputs[i], np.clip(out[k] * 65535 + 32767.5, 0, 65535).astype(np.uint16), atol=1)
  psnr, ssim = _official_isp_scores(outputs, frames['test/000/Sharp/RGB'], tmp_path)
  results = json.loads((tmp_path / 'eval' / 'results.json').read_text())
  sequence = results['sequences'][0]
  assert sequence['frame_index'] == [2, 3, 4]
  np.testing.assert_allclose(sequence['frame_psnr'], psnr, rtol=1e-5)
  np.testing.assert_allclose(sequence['frame_ssim'], ssim, atol=1e-5)
  sharp_rgb, blur_rgb = frames['test/000/Sharp/RGB'], frames['test/000/Blur/RGB']
  blur_psnr = [-10 * np.log10(np.mean(((blur_rgb[i].astype(np.float64) - sharp_rgb[i]) / 255) ** 2)) for i in (2, 3, 4)]
  np.testing.assert_allclose(sequence['frame_blur_psnr'], blur_psnr, rtol=1e-5)
  # The plain RAW-space PSNR: 16-bit outputs against the sharp RAW frames, data range 65535.
  raw_psnr = [-10 * np.log10(np.mean(((outputs[i].astype(np.float64) - sharp_raw[i]) / 65535) ** 2)) for i in (2, 3, 4)]
  np.testing.assert_allclose(results['info']['raw_space']['sequences'][0]['frame_raw_psnr'], raw_psnr, rtol=1e-5)
  np.testing.assert_allclose(summary['raw_psnr'], np.mean(raw_psnr), rtol=1e-5)
  np.testing.assert_allclose(summary['psnr'], np.mean(psnr), rtol=1e-5)
  saved = np.asarray(Image.open(tmp_path / 'eval' / 'frames' / '000' / '00000003.png'))
  assert saved.shape == (HEIGHT, WIDTH, 3) and saved.dtype == np.uint8


def test_full_protocol_scores_every_frame_in_raw_space(trained, tmp_path):
  root, config, frames = trained
  summary = evaluate.run(config, str(root / 'run'), protocol='full', output_dir=str(tmp_path / 'eval'))
  sequence = json.loads((tmp_path / 'eval' / 'results.json').read_text())['sequences'][0]
  assert sequence['frame_index'] == list(range(FRAMES)) and summary['frames'] == FRAMES
  blur, sharp = frames['test/000/Blur/RAW'], frames['test/000/Sharp/RAW']
  # The blurry input against the sharp frames, 16 bits: numpy PSNR and scikit-image SSIM, data range 65535.
  np.testing.assert_allclose(sequence['frame_blur_psnr'], [_raw_psnr(b, s) for b, s in zip(blur, sharp)], rtol=1e-5)
  np.testing.assert_allclose(sequence['frame_blur_ssim'], [
      structural_similarity(s, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=65535)
      for b, s in zip(blur, sharp)], atol=1e-5)
  # Frames with a full window are the model's outputs, truncated to uint16 (config.eval.rounding of the BSD recipe).
  model, variables = checkpoints.restore_model(root / 'run')
  out = np.asarray(model.apply(variables, blur[None, ..., None].astype(np.float32) / 65535 - 0.5))[0, ..., 0]
  out = np.clip(out * 65535 + 32767.5, 0, 65535).astype(np.uint16)
  np.testing.assert_allclose(sequence['frame_psnr'][2:5], [_raw_psnr(o, sharp[2 + k]) for k, o in enumerate(out)],
                             rtol=1e-3)


def _raw_psnr(a: np.ndarray, b: np.ndarray) -> float:
  return -10 * np.log10(np.mean(((a.astype(np.float64) - b) / 65535) ** 2))


def test_deblur_writes_raw_tiffs_equal_to_the_model(trained, tmp_path):
  root, _, frames = trained
  source = root / 'manual' / 'BSD_2ms16ms' / 'test' / '000' / 'Blur' / 'RAW'
  assert deblur.main(['--checkpoint', str(root / 'run'), '--input', str(source), '--output',
                      str(tmp_path / 'out'), '--compare', str(tmp_path / 'compare')]) == 0
  written = sorted(p.name for p in (tmp_path / 'out').iterdir())
  assert written == [f'{i:08d}.tiff' for i in range(FRAMES)]
  outputs = np.stack([tifffile.imread(tmp_path / 'out' / name) for name in written])
  assert outputs.dtype == np.uint16 and outputs.shape == (FRAMES, HEIGHT, WIDTH)
  model, variables = checkpoints.restore_model(root / 'run')
  blur = frames['test/000/Blur/RAW']
  expected = np.asarray(model.apply(variables, blur[None, ..., None].astype(np.float32) / 65535 - 0.5))[0, ..., 0]
  expected = np.clip(np.rint((expected + 0.5) * 65535), 0, 65535)
  np.testing.assert_allclose(outputs[2:5], expected, atol=1)   # frames with a full window: the model's outputs
  side_by_side = tifffile.imread(tmp_path / 'compare' / '00000003.tiff')
  np.testing.assert_array_equal(side_by_side, np.concatenate([blur[3], outputs[3]], axis=1))
  # A RAW model refuses RGB frames, with one line naming the input.
  rgb = root / 'manual' / 'BSD_2ms16ms' / 'test' / '000' / 'Blur' / 'RGB'
  with pytest.raises(deblur.DeblurError, match='is a RAW model .* not RGB frames'):
    deblur.run(deblur.build_parser().parse_args(['--checkpoint', str(root / 'run'), '--input', str(rgb),
                                                 '--output', str(tmp_path / 'rgb_out')]))


def test_mosaic_slots_are_the_official_layout():
  # test_isp.py: 150 frames, 15 a row; frames 0, 1 show frame 2 and frames 148, 149 show frame 147.
  official = np.array([[2 if f in (0, 1) else 147 if f in (148, 149) else f
                        for f in range(i * 15, (i + 1) * 15)] for i in range(10)])
  np.testing.assert_array_equal(raw_isp.mosaic_slots(150, 2, 2), official)
  np.testing.assert_array_equal(raw_isp.mosaic_slots(7, 2, 2), [[2, 2, 2, 3, 4, 4, 4]])
  # Another window and a length that leaves the last row short: its empty slots show the last output frame.
  np.testing.assert_array_equal(raw_isp.mosaic_slots(17, 1, 0), [[1] + list(range(1, 15)), [15] + [16] * 14])


def test_isp_is_rawpy_on_the_tiff_the_official_script_writes(tmp_path):
  mosaic = np.random.default_rng(0).integers(2000, 60000, (32, 96), dtype=np.uint16)
  Image.fromarray(mosaic).save(tmp_path / 'saved.tiff')   # the official script's way, through a file
  expected = rawpy.imread(str(tmp_path / 'saved.tiff')).postprocess(use_auto_wb=True, no_auto_bright=False,
                                                                    output_bps=16, user_black=0)
  expected = (expected.astype(np.float32) / 65535 * 255).astype(np.uint8)
  np.testing.assert_array_equal(raw_isp.isp(mosaic), expected)
  assert raw_frames.encode_tiff(mosaic) == (tmp_path / 'saved.tiff').read_bytes()
