"""Exports checked against the official model's golden outputs and against the streaming deblurrer, in each
format's own runtime; refusals leave nothing behind. Artifacts are exported once per module (conversions are slow)."""

import json
import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from estrnn_jax import cli
from estrnn_jax import export
from estrnn_jax import export_formats
from estrnn_jax import export_functions
from estrnn_jax import export_onnx
from estrnn_jax import inference
from estrnn_jax import model as model_lib

CKPT = 'fake_ckpt_C4B2.pth.tar'
GOLDEN = 'estrnn_C4B2_n2T7H32W48.npz'
HEIGHT, WIDTH, FRAMES = 32, 48, 7
STREAM_FORMATS = ('onnx', 'tflite')


@pytest.fixture(scope='module')
def golden(testdata):
  """The official model's input and output clips as RGB (N, T, H, W, 3) (the fixture stores BGR, NCHW frames)."""
  data = np.load(testdata / GOLDEN)
  to_rgb = lambda x: np.moveaxis(x, 2, -1)[..., ::-1].astype(np.float32)
  return to_rgb(data['input']), to_rgb(data['output'])


@pytest.fixture(scope='module')
def exports(testdata, tmp_path_factory):
  """{(format, mode): (runner, function, metadata)} for the fixture checkpoint: clip in every format, stream in
  ONNX and TFLite."""
  root = tmp_path_factory.mktemp('exports')
  result = {}
  jobs = [(fmt, 'clip') for fmt in export_formats.FORMATS] + [(fmt, 'stream') for fmt in STREAM_FORMATS]
  for fmt, mode in jobs:
    out = root / f'{fmt}_{mode}'
    meta = export.export(str(testdata / CKPT), fmt, HEIGHT, WIDTH, str(out), mode=mode, frames=FRAMES,
                         log=lambda _: None)
    assert sorted(os.listdir(out)) == sorted([export_formats.ARTIFACT_NAMES[fmt], 'metadata.json'])
    assert json.loads((out / 'metadata.json').read_text()) == meta
    fn = _spec_only(meta)
    result[fmt, mode] = (export_formats.LOADERS[fmt](str(out / meta['artifact']), fn), fn, meta)
  return result


def _spec_only(meta):
  """An ExportFunction carrying only the input/output specs from metadata.json (enough to drive a runner)."""
  spec = lambda d: export_functions.TensorSpec(d['name'], tuple(d['shape']), d['description'])
  return export_functions.ExportFunction(None, tuple(map(spec, meta['inputs'])), tuple(map(spec, meta['outputs'])),
                                         meta['mode'])


@pytest.mark.parametrize('fmt', export_formats.FORMATS)
def test_clip_export_reproduces_golden_output(exports, golden, fmt):
  runner, _, meta = exports[fmt, 'clip']
  inputs, outputs = golden
  for clip, want in zip(inputs, outputs):
    (got,) = runner(clip[None])
    np.testing.assert_allclose(got[0], want, atol=1e-4, rtol=0)
  assert meta['check']['max_abs_error'] < 1e-4
  assert meta['colour_order'] == 'RGB' and meta['model_config']['n_features'] == 4
  assert meta['inputs'][0]['shape'] == [1, FRAMES, HEIGHT, WIDTH, 3]
  assert meta['outputs'][0]['shape'] == [1, FRAMES - 4, HEIGHT, WIDTH, 3]


@pytest.mark.parametrize('fmt', STREAM_FORMATS)
def test_stream_export_matches_golden_and_the_streaming_deblurrer(exports, golden, testdata, fmt):
  runner, fn, meta = exports[fmt, 'stream']
  assert meta['stream']['delay_frames'] == 2
  assert [s['name'] for s in meta['inputs']] == ['frame', 'is_real', 'state', 'context', 'started']
  model, variables = inference.load_model(str(testdata / CKPT))
  inputs, outputs = golden
  for clip, want in zip(inputs, outputs):
    got = export_functions.run_stream(runner, fn, clip, future=2)
    # Frames 2..4 have full windows: they are the clip-mode (golden) outputs.
    np.testing.assert_allclose(got[2:5], want, atol=1e-4, rtol=0)
    # Every frame, edges included, is what StreamingDeblurrer produces.
    streamed = inference.deblur_video(model, variables, clip, value_range=(-0.5, 0.5), group_size=1)
    np.testing.assert_allclose(got, streamed, atol=1e-4, rtol=0)


def test_residual_stream_step_keeps_pending_frames(tmp_path):
  """A residual model adds each centre input frame, `future` frames late: the step carries them (ONNX)."""
  model = model_lib.ESTRNN(n_features=4, n_blocks=2, past_frames=1, future_frames=2, residual=True)
  variables = {'params': model_lib.init_params(model, 3)}
  fn = export_functions.stream_function(model, variables, 16, 24)
  assert [s.name for s in fn.inputs] == ['frame', 'is_real', 'state', 'context', 'pending', 'started']
  runner = export_formats.load_onnx(export_formats.write_onnx(fn, str(tmp_path), 'float32'), fn)
  video = np.random.default_rng(1).uniform(-0.5, 0.5, (5, 16, 24, 3)).astype(np.float32)
  got = export_functions.run_stream(runner, fn, video, future=2)
  want = inference.deblur_video(model, variables, video, value_range=(-0.5, 0.5), group_size=1)
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_ablation_variant_without_context_streams_like_the_deblurrer(tmp_path):
  """ResBlock cell, no fusion, past = future = 0: the step has no `context` input (a zero-size tensor is not
  portable) and still matches the streaming deblurrer (ONNX)."""
  model = model_lib.ESTRNN(n_features=4, n_blocks=2, past_frames=0, future_frames=0, cell='resblock', fusion='none')
  variables = {'params': model_lib.init_params(model, 4)}
  fn = export_functions.stream_function(model, variables, 16, 24)
  assert [s.name for s in fn.inputs] == ['frame', 'is_real', 'state', 'started']
  runner = export_formats.load_onnx(export_formats.write_onnx(fn, str(tmp_path), 'float32'), fn)
  video = np.random.default_rng(5).uniform(-0.5, 0.5, (4, 16, 24, 3)).astype(np.float32)
  want = inference.deblur_video(model, variables, video, value_range=(-0.5, 0.5), group_size=1)
  np.testing.assert_allclose(export_functions.run_stream(runner, fn, video, future=0), want, atol=1e-4, rtol=0)


def _refusal(capsys, output, **kwargs):
  """Runs an export expected to be refused; returns its one-line error (and checks nothing is left)."""
  args = dict(checkpoint=str(kwargs.pop('checkpoint')), fmt='onnx', height=HEIGHT, width=WIDTH, output=str(output),
              frames=FRAMES, log=lambda _: None)
  args.update(kwargs)
  status = cli.guarded('export', lambda: export.export(**args))
  err = capsys.readouterr().err.strip()
  assert status == cli.EXIT_ERROR and err.startswith('export: error: ') and '\n' not in err, err
  return err


def test_refusals_leave_nothing(testdata, tmp_path, capsys, monkeypatch):
  ckpt = testdata / CKPT
  out = tmp_path / 'out'
  assert 'is not one of' in _refusal(capsys, out, checkpoint=ckpt, fmt='coreml')
  assert 'multiples of 4' in _refusal(capsys, out, checkpoint=ckpt, height=30)
  assert 'not available for --format onnx' in _refusal(capsys, out, checkpoint=ckpt, dtype='bfloat16')
  assert 'needs at least 5' in _refusal(capsys, out, checkpoint=ckpt, frames=4)
  # A conversion that fails: the translator without its convolution rule.
  monkeypatch.delitem(export_onnx._RULES, 'conv_general_dilated')
  err = _refusal(capsys, out, checkpoint=ckpt)
  assert 'conversion failed' in err and "'conv_general_dilated'" in err
  monkeypatch.undo()
  # An artifact whose check fails: float32 ONNX differs from JAX by ~1e-7, so a 1e-12 tolerance refuses it.
  monkeypatch.setitem(export_formats.TOLERANCES, 'float32', 1e-12)
  assert 'export refused' in _refusal(capsys, out, checkpoint=ckpt)
  assert os.listdir(tmp_path) == []
  out.mkdir()
  (out / 'keep').write_text('x')
  assert 'already exists' in _refusal(capsys, out, checkpoint=ckpt)
  assert os.listdir(out) == ['keep']


def test_cli_reports_a_bad_format_in_one_line(testdata, tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'estrnn_jax.export', f'--checkpoint={testdata / CKPT}', '--format=coreml',
       '--height=32', '--width=48', f'--output={tmp_path / "out"}'],
      cwd=pathlib.Path(__file__).resolve().parents[1], env=dict(os.environ, JAX_PLATFORMS='cpu'),
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      "export: error: --format 'coreml' is not one of ('onnx', 'tflite', 'savedmodel', 'stablehlo').")
  assert os.listdir(tmp_path) == []


def test_translator_names_an_unsupported_primitive():
  with pytest.raises(export_onnx.UnsupportedPrimitiveError, match="primitive 'cumsum'"):
    export_onnx.to_onnx(lambda x: (jnp.cumsum(x * 2.0),), [np.ones(4, np.float32)], ['x'], ['y'])


def test_translator_dot_general_with_batch_dims_matches_numpy():
  """The GSA einsum form (batch, free and contracted dims interleaved) against numpy's einsum."""
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 3, 4, 5)).astype(np.float32), rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
  proto = export_onnx.to_onnx(lambda x, y: (jnp.einsum('nthi,ntio->nhto', x, y),), [a, b], ['a', 'b'], ['c'])
  (got,) = ort.InferenceSession(proto.SerializeToString(), providers=['CPUExecutionProvider']).run(
      None, {'a': a, 'b': b})
  np.testing.assert_allclose(got, np.einsum('nthi,ntio->nhto', a, b), atol=1e-5, rtol=0)


@pytest.mark.parametrize('fmt', export_formats.DYNAMIC_SIZE)
def test_dynamic_size_formats_take_another_multiple_of_4(exports, testdata, fmt):
  runner, _, meta = exports[fmt, 'clip']
  assert meta['size']['dynamic']
  model, variables = inference.load_model(str(testdata / CKPT))
  clip = np.random.default_rng(2).uniform(-0.5, 0.5, (1, FRAMES, 24, 40, 3)).astype(np.float32)
  (got,) = runner(clip)
  np.testing.assert_allclose(got, model.apply(variables, clip), atol=1e-4, rtol=0)
