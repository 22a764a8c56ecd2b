"""Evaluation protocols: which frames are scored, output alignment, segment carry-over, the CLI's tables."""

import json
import os
import pathlib
import re
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from estrnn_jax import checkpoints
from estrnn_jax import evaluation
from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import model as model_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


class IdentityDeblur(nn.Module):
  """Outputs each window's centre frame unchanged: scores equal the blurry input's iff frames line up."""
  past_frames: int = 2
  future_frames: int = 2

  @nn.compact
  def __call__(self, frames):
    scale = self.param('scale', nn.initializers.ones, ())
    return self.decode(frames) * scale

  def decode(self, hs, centre_frames=None):  # pylint: disable=unused-argument
    return hs[:, self.past_frames:hs.shape[1] - self.future_frames]


def _index_coded_sequence(num_frames, height=24, width=20):
  """sharp: flat grey; blur[i]: sharp with its first i + 1 pixels brightened, so blurry PSNR encodes i."""
  sharp = np.full((num_frames, height, width, 3), 128, np.uint8)
  blur = sharp.copy().reshape(num_frames, -1)
  for i in range(num_frames):
    blur[i, :i + 1] += 20
  return blur.reshape(sharp.shape), sharp


def _decode_index(blur_psnr, height=24, width=20):
  mse = 10 ** (-np.asarray(blur_psnr) / 10) * 255.0**2
  return np.rint(mse * height * width * 3 / 400).astype(int) - 1


def _reference_loop(num_frames, chunk, past, future):
  """The official test loop's chunk boundaries, transcribed (start, end)."""
  start, end, chunks = 0, chunk, []
  while True:
    chunks.append((start, end))
    if end == num_frames:
      return chunks
    start = end - future - past
    end = start + chunk
    if end > num_frames:
      end = num_frames
      start = end - chunk


@pytest.mark.parametrize('past,future', [(2, 2), (1, 3), (0, 0)])
def test_reference_chunks_match_the_official_loop(past, future):
  for num_frames in range(20, 160):
    chunks = evaluation.reference_chunks(num_frames, 20, past, future)
    assert chunks == _reference_loop(num_frames, 20, past, future), num_frames
    scored = np.concatenate(evaluation.reference_scored_frames(chunks, past, future))
    np.testing.assert_array_equal(np.sort(scored), np.arange(past, num_frames - future))
    assert len(scored) == len(set(scored.tolist()))


def test_reference_chunks_short_sequence_and_errors():
  assert evaluation.reference_chunks(7, 20, 2, 2) == [(0, 7)]
  with pytest.raises(ValueError, match='shorter than one GSA window'):
    evaluation.reference_chunks(4, 20, 2, 2)
  with pytest.raises(ValueError, match='must exceed'):
    evaluation.reference_chunks(40, 4, 2, 2)


def test_reference_protocol_scores_frames_2_to_42_once_and_aligned():
  blur, sharp = _index_coded_sequence(45)
  evaluator = evaluation.SequenceEvaluator(IdentityDeblur(), {'scale': jnp.ones(())}, protocol='reference')
  result = evaluator('seq', blur, sharp)
  np.testing.assert_array_equal(result.frames, np.arange(2, 43))
  np.testing.assert_array_equal(_decode_index(result.blur_psnr), np.arange(2, 43))
  np.testing.assert_allclose(result.psnr, result.blur_psnr)  # the output of frame i is scored against sharp i
  np.testing.assert_allclose(result.ssim, result.blur_ssim)


@pytest.fixture(scope='module')
def tiny_model():
  model = model_lib.ESTRNN(n_features=4, n_blocks=2)
  return model, model_lib.init_params(model, 0)


@pytest.fixture(scope='module')
def random_sequence():
  rng = np.random.default_rng(0)
  sharp = rng.integers(0, 256, (26, 30, 46, 3), dtype=np.uint8)  # 30x46: not multiples of 4
  blur = np.clip(sharp.astype(int) + rng.integers(-30, 31, sharp.shape), 0, 255).astype(np.uint8)
  return blur, sharp


def _assert_uint8_close(actual, expected):
  """Equal up to rounding: float differences of ~1e-6 can move a value across a .5 tie, never further."""
  assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.uint8
  diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
  assert diff.max() <= 1, diff.max()
  assert np.mean(diff) < 1e-3, np.mean(diff)


def test_reference_protocol_equals_direct_chunk_calls(tiny_model, random_sequence):
  model, params = tiny_model
  blur, sharp = random_sequence
  evaluator = evaluation.SequenceEvaluator(model, params, protocol='reference', chunk_frames=12)
  result = evaluator('seq', blur, sharp, keep_outputs=True)
  np.testing.assert_array_equal(result.frames, np.arange(2, 24))
  expected = {}
  apply = jax.jit(lambda x: model.apply({'params': params}, x))
  for start, end in evaluation.reference_chunks(26, 12, 2, 2):
    out = np.asarray(apply(images.from_uint8(blur[None, start:end])))[0]
    for k, frame in enumerate(range(start + 2, end - 2)):
      expected.setdefault(frame, out[k])
  expected_u8 = images.to_uint8(np.stack([expected[i] for i in range(2, 24)]))
  _assert_uint8_close(result.outputs, expected_u8)
  assert result.outputs.shape == (22, 30, 46, 3)


def _numpy_psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(255.0**2 / mse)


def test_full_protocol_scores_every_frame_as_deblur_outputs_it(tiny_model, random_sequence):
  model, params = tiny_model
  blur, sharp = random_sequence
  result = evaluation.SequenceEvaluator(model, params, protocol='full', chunk_frames=6)('seq', blur, sharp,
                                                                                       keep_outputs=True)
  np.testing.assert_array_equal(result.frames, np.arange(26))
  # The frames `deblur` writes (the streaming deblurrer on uint8 frames), bit for bit.
  np.testing.assert_array_equal(result.outputs, inference.deblur_video(model, {'params': params}, blur,
                                                                    group_size=inference.DEFAULT_GROUP_SIZE))
  # Frames 2 ... 23 have full windows of real frames: the model itself on the whole sequence (one hidden state).
  direct = jax.jit(lambda x: model.apply({'params': params}, x))(images.from_uint8(blur[None]))
  _assert_uint8_close(result.outputs[2:24], images.to_uint8(np.asarray(direct)[0]))
  # Scores are those of the outputs and of the blurry frames, each against its own sharp frame.
  np.testing.assert_allclose(result.psnr, _numpy_psnr(result.outputs, sharp), rtol=1e-5)
  np.testing.assert_allclose(result.blur_psnr, _numpy_psnr(blur, sharp), rtol=1e-5)


def test_full_protocol_compiles_once_per_frame_size(tiny_model, random_sequence):
  """Sequences of 26, 9 and 13 frames: one streaming step and one scoring program for the frame size."""
  model, params = tiny_model
  blur, sharp = random_sequence
  evaluator = evaluation.SequenceEvaluator(model, params, protocol='full', chunk_frames=8)
  traces = inference.num_traces()
  short = evaluator('short', blur[:9], sharp[:9])
  evaluator('long', blur, sharp)
  evaluator('middle', blur[:13], sharp[:13])
  assert inference.num_traces() - traces <= 1   # 0 if an earlier test compiled this frame size already
  assert evaluator._score._cache_size() == 1  # pylint: disable=protected-access
  np.testing.assert_array_equal(short.frames, np.arange(9))
  # The padded last segment is cut off: frame 8's scores are its own, not the padding's.
  np.testing.assert_allclose(short.blur_psnr, _numpy_psnr(blur[:9], sharp[:9]), rtol=1e-5)


class ReciprocalDeblur(nn.Module):
  """Outputs 0.01 / (centre frame + 0.5): finite for a sequence without black pixels, Inf where one is black
  (finite weights whose output overflows, as a diverging model's can, for some inputs only)."""
  past_frames: int = 2
  future_frames: int = 2

  @nn.compact
  def __call__(self, frames):
    scale = self.param('scale', nn.initializers.ones, ())
    return 0.01 * scale / (frames[:, self.past_frames:frames.shape[1] - self.future_frames] + 0.5)


def test_non_finite_sequence_gets_no_score_after_the_others_are_scored(caplog):
  """Three sequences, the middle one with black pixels: the other two are scored (their lines logged with their
  numbers), then the run fails naming only the middle one; nothing is returned."""
  blur, sharp = _index_coded_sequence(9)
  black = blur.copy()
  black[4, :2, :2] = 0     # frame 4 (scored) has black pixels: 0.01 / 0 = Inf
  evaluator = evaluation.SequenceEvaluator(ReciprocalDeblur(), {'scale': jnp.ones(())}, protocol='reference')
  outputs_u8 = images.to_uint8(0.01 / (images.from_uint8(blur[2:7]) + 0.5))
  expected_psnr = float(np.mean(_numpy_psnr(outputs_u8, sharp[2:7])))
  sequences = [('first', blur, sharp), ('broken', black, sharp), ('third', blur, sharp)]
  with caplog.at_level('INFO'), pytest.raises(
      evaluation.NonFiniteOutputError, match=r'^1 of 3 sequences got NaN/Inf outputs and no score \(broken\)'):
    evaluation.evaluate_sequences(evaluator, sequences, total=3)
  lines = [r.getMessage() for r in caplog.records]
  assert any("Sequence 'broken': the model output NaN/Inf at 1 of 5 scored frames (first: frame 4)" in line
             for line in lines), lines
  for index, name in ((1, 'first'), (3, 'third')):
    line = next(line for line in lines if line.startswith(f'[{index}/3] {name}: 5 frames, PSNR '))
    np.testing.assert_allclose(float(re.search(r'PSNR ([0-9.]+) dB', line).group(1)), expected_psnr, atol=6e-4)


@pytest.mark.parametrize('protocol', ['reference', 'full'])
def test_non_finite_weights_fail_every_sequence_by_name(tiny_model, random_sequence, protocol):
  """A NaN weight (a diverged run) makes every output NaN: each sequence fails by name; nothing is returned."""
  model, params = tiny_model
  blur, sharp = random_sequence
  broken = jax.tree.map(lambda x: x, params)  # a copy
  broken['reconstructor']['out'] = dict(broken['reconstructor']['out'], bias=np.full(3, np.nan, np.float32))
  evaluator = evaluation.SequenceEvaluator(model, broken, protocol=protocol, chunk_frames=8)
  with pytest.raises(evaluation.NonFiniteOutputError, match="Sequence 'a': the model output NaN/Inf at 22 of 22"
                     if protocol == 'reference' else "Sequence 'a': the model output NaN/Inf at 26 of 26"):
    evaluator('a', blur, sharp)
  with pytest.raises(evaluation.NonFiniteOutputError, match=r'2 of 2 sequences got NaN/Inf outputs .*\(a, b\)'):
    evaluation.evaluate_sequences(evaluator, [('a', blur, sharp), ('b', blur[:9], sharp[:9])])


def test_full_protocol_scores_sequences_shorter_than_the_window(tiny_model, random_sequence):
  """`deblur` outputs every frame of a 1-4 frame video; `--protocol full` scores them (the reference protocol,
  which needs a whole GSA window, refuses them and says to use full)."""
  model, params = tiny_model
  blur, sharp = random_sequence
  evaluator = evaluation.SequenceEvaluator(model, params, protocol='full', chunk_frames=6)
  for length in (1, 3, 4):
    result = evaluator('short', blur[:length], sharp[:length], keep_outputs=True)
    expected = inference.deblur_video(model, {'params': params}, blur[:length],
                                      group_size=inference.DEFAULT_GROUP_SIZE)
    np.testing.assert_array_equal(result.frames, np.arange(length))
    np.testing.assert_array_equal(result.outputs, expected)
    np.testing.assert_allclose(result.psnr, _numpy_psnr(expected, sharp[:length]), rtol=1e-5)
  with pytest.raises(ValueError, match=r"'short' has 4 frames, fewer than one GSA window \(5\) that the reference "
                                       r'protocol needs; --protocol full'):
    evaluation.SequenceEvaluator(model, params)('short', blur[:4], sharp[:4])


def test_evaluator_rejects_bad_sequences(tiny_model):
  model, params = tiny_model
  evaluator = evaluation.SequenceEvaluator(model, params)
  frames = np.zeros((4, 16, 16, 3), np.uint8)
  with pytest.raises(ValueError, match="'short' has 4 frames"):
    evaluator('short', frames, frames)
  with pytest.raises(ValueError, match='must both be'):
    evaluator('odd', np.zeros((6, 16, 16, 3), np.uint8), np.zeros((6, 16, 12, 3), np.uint8))
  with pytest.raises(ValueError, match='protocol'):
    evaluation.SequenceEvaluator(model, params, protocol='chunks')


def test_summary_is_the_mean_over_frames():
  def result(name, values):
    values = np.asarray(values, float)
    return evaluation.SequenceResult(name, np.arange(len(values)), values, values / 100, values, values, values)
  summary = evaluation.summarize([result('a', [10, 20]), result('b', [40])])
  assert summary['frames'] == 3 and summary['sequences'] == 2
  np.testing.assert_allclose(summary['psnr'], 70 / 3)  # not the mean of per-sequence means (27.5)


@pytest.fixture(scope='module')
def tiny_data_dir(tiny_dataset):
  return tiny_dataset


def _evaluate_cli(tiny_model, data_dir, tmp_path, *flags):
  """`python -m estrnn_jax.evaluate` of the tiny model saved in tmp_path/model, on 1 validation sequence with
  --save_frames into tmp_path/eval; returns (the finished process, the output directory)."""
  model, params = tiny_model
  checkpoints.save_model(tmp_path / 'model', model, params)
  out = tmp_path / 'eval'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'estrnn_jax.evaluate', '--config=configs/test.py',
       f'--config.dataset.data_dir={data_dir}', f'--checkpoint={tmp_path / "model"}', '--split=validation',
       '--max_sequences=1', f'--output_dir={out}', '--save_frames', *flags],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc, out


def test_cli_writes_tables_and_frames(tiny_model, tiny_data_dir, tmp_path):
  proc, out = _evaluate_cli(tiny_model, tiny_data_dir, tmp_path)
  results = json.loads((out / 'results.json').read_text())
  assert results['summary']['sequences'] == 1
  assert results['summary']['frames'] == 12 - 4  # tiny sequences have 12 frames; the reference skips 2 + 2
  assert results['info']['protocol'] == 'reference'
  sequence = results['sequences'][0]
  assert sequence['frame_index'] == list(range(2, 10))
  assert 5 < results['summary']['blur_psnr'] < 60
  rows = (out / 'sequences.csv').read_text().strip().splitlines()
  assert rows[0].startswith('sequence,frames,psnr,ssim') and len(rows) == 3
  pngs = sorted((out / 'frames' / sequence['sequence']).glob('*.png'))
  assert [p.name for p in pngs] == [f'{i:08d}.png' for i in range(2, 10)]
  assert 'PSNR' in proc.stderr  # per-sequence progress line


def test_full_protocol_saves_exactly_the_frames_deblur_writes(tiny_model, tiny_data_dir, tmp_path, capsys):
  """`evaluate --protocol full --save_frames` and `deblur` on the same sequence: identical PNG files' pixels."""
  from estrnn_jax import deblur  # pylint: disable=g-import-not-at-top
  from estrnn_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  _, out = _evaluate_cli(tiny_model, tiny_data_dir, tmp_path, '--protocol=full')
  name, blur, _ = next(input_pipeline.iterate_sequences(dataset='synthetic_blur/tiny', data_dir=tiny_data_dir,
                                                        split='validation', max_sequences=1))
  frames_in = tmp_path / 'blurry'
  frames_in.mkdir()
  for i, frame in enumerate(blur):
    Image.fromarray(frame).save(frames_in / f'{i:08d}.png')
  assert deblur.main(['--checkpoint', str(tmp_path / 'model'), '--input', str(frames_in),
                      '--output', str(tmp_path / 'deblurred')]) == 0
  capsys.readouterr()
  scored = sorted((out / 'frames' / name).glob('*.png'))
  written = sorted((tmp_path / 'deblurred').glob('*.png'))
  assert [p.name for p in scored] == [p.name for p in written] == [f'{i:08d}.png' for i in range(len(blur))]
  for a, b in zip(scored, written):
    np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)), err_msg=a.name)
  results = json.loads((out / 'results.json').read_text())
  assert results['summary']['frames'] == len(blur) and results['info']['protocol'] == 'full'

def test_restore_model_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='no such checkpoint'):
    checkpoints.restore_model(tmp_path / 'missing')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='not a checkpoint'):
    checkpoints.restore_model(tmp_path / 'empty')
  (tmp_path / 'weights.npz').write_bytes(b'x')
  with pytest.raises(ValueError, match='not an official ESTRNN checkpoint'):
    checkpoints.restore_model(tmp_path / 'weights.npz')


def test_restore_model_reads_official_checkpoint(testdata):
  model, variables = checkpoints.restore_model(testdata / 'fake_ckpt_C4B2.pth.tar')
  assert (model.n_features, model.n_blocks, model.past_frames, model.future_frames) == (4, 2, 2, 2)
  frames = np.zeros((1, 5, 8, 8, 3), np.float32)
  assert model.apply(variables, frames).shape == (1, 1, 8, 8, 3)


class ExhaustingDeblur(nn.Module):
  """IdentityDeblur plus one impossible (1 TiB) intermediate: XLA's own out-of-memory error, raised while the
  jitted evaluation step runs (not by anything at its call boundary)."""
  past_frames: int = 2
  future_frames: int = 2

  @nn.compact
  def __call__(self, frames):
    scale = self.param('scale', nn.initializers.ones, ())
    centre = frames[:, self.past_frames:frames.shape[1] - self.future_frames] * scale
    waste = jnp.cumsum(jnp.broadcast_to(centre.ravel()[0], (2**38,)))[-1]
    return centre + waste * 0


def test_device_out_of_memory_names_the_sequence_frame_size_and_fix(random_sequence, monkeypatch):
  from estrnn_jax import cli  # pylint: disable=g-import-not-at-top
  blur, sharp = random_sequence
  evaluator = evaluation.SequenceEvaluator(ExhaustingDeblur(), {'scale': jnp.ones(())}, chunk_frames=12)
  with pytest.raises(cli.UserError, match=r"sequence 'seq' \(26 frames of 46x30\) with the reference protocol: "
                                          r'use shorter chunks .* now 12\) or --protocol full') as info:
    evaluation.evaluate_sequences(evaluator, [('seq', blur, sharp)])
  assert isinstance(info.value.__cause__, jax.errors.JaxRuntimeError)
  assert 'RESOURCE_EXHAUSTED' in str(info.value.__cause__)
  monkeypatch.setattr(evaluator, '_forward', lambda *a: (_ for _ in ()).throw(jax.errors.JaxRuntimeError('INTERNAL')))
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):   # other device errors are not disguised
    evaluation.evaluate_sequences(evaluator, [('seq', blur, sharp)])


def test_restore_model_takes_a_relative_path(tiny_model, tmp_path, monkeypatch):
  model, params = tiny_model
  checkpoints.save_model(tmp_path / 'model', model, params)
  monkeypatch.chdir(tmp_path)
  restored, variables = checkpoints.restore_model('model')
  assert restored == model
  jax.tree.map(np.testing.assert_array_equal, variables['params'], params)
