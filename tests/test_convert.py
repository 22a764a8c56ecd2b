"""Official checkpoint conversion: parity through the reference's file format, and every refusal."""

import pathlib
import re
import zipfile

import jax
import numpy as np
import pytest

from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import convert
from estrnn_jax import finite_weights
from estrnn_jax import official_weights
from estrnn_jax import torch_pickle

ROOT = pathlib.Path(__file__).parents[1]
CKPT = 'fake_ckpt_C4B2.pth.tar'
GOLDEN = 'estrnn_C4B2_n2T7H32W48.npz'


@pytest.fixture(scope='module')
def golden(testdata):
  data = np.load(testdata / GOLDEN)
  return {
      'state_dict': {k[len('param/'):]: data[k] for k in data.files if k.startswith('param/')},
      'input_bgr': np.moveaxis(data['input'], 2, -1),
      'output_bgr': np.moveaxis(data['output'], 2, -1),
  }


def test_load_official_checkpoint_reproduces_golden_output(testdata, golden):
  model, variables = official_weights.load_torch_checkpoint(testdata / CKPT)
  assert (model.n_features, model.n_blocks, model.past_frames, model.future_frames) == (4, 2, 2, 2)
  # The converted model is RGB: feed the fixture's BGR frames reversed, reverse the output back.
  out_rgb = jax.jit(model.apply)(variables, golden['input_bgr'][..., ::-1])
  np.testing.assert_allclose(np.asarray(out_rgb)[..., ::-1], golden['output_bgr'], atol=1e-5, rtol=0)
  _, bgr_variables = official_weights.load_torch_checkpoint(testdata / CKPT, rgb=False)
  np.testing.assert_allclose(jax.jit(model.apply)(bgr_variables, golden['input_bgr']), golden['output_bgr'],
                             atol=1e-5, rtol=0)


@pytest.mark.parametrize('prefix', ['', 'module.model.', 'model.', 'module.'])
def test_prefix_forms(golden, prefix):
  state_dict = {prefix + k: v for k, v in golden['state_dict'].items()}
  model, variables = official_weights.convert_state_dict(state_dict)
  assert model.n_blocks == 2
  np.testing.assert_array_equal(variables['params']['cell']['F_R']['rdb_1']['fuse']['bias'],
                                golden['state_dict']['cell.F_R.RDBs.1.conv1x1.bias'])


def test_bare_state_dict_file(testdata, golden, monkeypatch):
  bare = {'module.model.' + k: v for k, v in golden['state_dict'].items()}
  monkeypatch.setattr(torch_pickle, 'load', lambda path: bare)
  model, _ = official_weights.load_torch_checkpoint(testdata / CKPT)
  assert model.n_features == 4


def test_layouts_of_converted_tensors(golden):
  _, variables = official_weights.convert_state_dict(golden['state_dict'], rgb=False)
  p, sd = variables['params'], golden['state_dict']
  np.testing.assert_array_equal(p['cell']['F_B0']['kernel'], sd['cell.F_B0.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p['fusion']['mlp_in']['kernel'], sd['fusion.F_f.0.weight'].T)
  np.testing.assert_array_equal(p['reconstructor']['up_0']['kernel'], sd['recons.model.0.weight'].transpose(2, 3, 0, 1))


def test_rgb_permutes_only_the_colour_ends(golden):
  _, bgr = official_weights.convert_state_dict(golden['state_dict'], rgb=False)
  _, rgb = official_weights.convert_state_dict(golden['state_dict'], rgb=True)
  np.testing.assert_array_equal(rgb['params']['cell']['F_B0']['kernel'], bgr['params']['cell']['F_B0']['kernel'][:, :, ::-1])
  np.testing.assert_array_equal(rgb['params']['reconstructor']['out']['bias'], bgr['params']['reconstructor']['out']['bias'][::-1])
  np.testing.assert_array_equal(rgb['params']['cell']['F_R']['conv']['kernel'], bgr['params']['cell']['F_R']['conv']['kernel'])


def test_missing_tensor_is_named(golden):
  state_dict = dict(golden['state_dict'])
  del state_dict['cell.F_R.RDBs.0.dense_layers.2.conv.bias']
  with pytest.raises(official_weights.CheckpointMismatchError, match=r'missing 1 tensor\(s\) for: cell/F_R/rdb_0/dense_2/bias'):
    official_weights.convert_state_dict(state_dict)


def test_unexpected_tensor_is_named(golden):
  state_dict = dict(golden['state_dict'], **{'cell.extra_head.weight': np.zeros((3, 3))})
  with pytest.raises(official_weights.CheckpointMismatchError, match='unexpected tensor.*cell.extra_head.weight'):
    official_weights.convert_state_dict(state_dict)


def test_wrong_shape_is_named(golden):
  state_dict = dict(golden['state_dict'])
  state_dict['cell.F_R.conv3x3.weight'] = np.zeros((20, 20, 5, 5), np.float32)
  with pytest.raises(official_weights.CheckpointMismatchError, match=r'wrong shape: cell.F_R.conv3x3.weight: \(5, 5, 20, 20\)'):
    official_weights.convert_state_dict(state_dict)


def test_other_model_and_window_mismatch(golden):
  with pytest.raises(official_weights.CheckpointMismatchError, match="not an ESTRNN state dict: no tensor 'cell.F_B0.weight'"):
    official_weights.convert_state_dict({'conv1.weight': np.zeros((8, 3, 3, 3))})
  with pytest.raises(official_weights.CheckpointMismatchError, match='fuses 5 frames, but past_frames=1'):
    official_weights.convert_state_dict(golden['state_dict'], past_frames=1, future_frames=1)


def test_missing_and_non_checkpoint_files(tmp_path):
  missing = tmp_path / 'nope.pth.tar'
  with pytest.raises(FileNotFoundError, match='nope.pth.tar'):
    official_weights.load_torch_checkpoint(missing)
  text = tmp_path / 'notes.pth.tar'
  text.write_text('not a checkpoint')
  with pytest.raises(ValueError, match='notes.pth.tar'):
    official_weights.load_torch_checkpoint(text)


def run_cli(*args):
  from test_cli import run_command  # pylint: disable=g-import-not-at-top
  return run_command('estrnn_jax.convert', *args)


def test_cli_writes_a_loadable_checkpoint(testdata, golden, tmp_path):
  out_dir = tmp_path / 'converted'
  result = run_cli('--torch_checkpoint', str(testdata / CKPT), '--output', str(out_dir))
  assert result.returncode == 0, result.stderr
  assert 'n_features=4 n_blocks=2' in result.stdout
  model, variables = checkpoints.restore_model(out_dir)
  out = jax.jit(model.apply)(variables, golden['input_bgr'][..., ::-1])
  np.testing.assert_allclose(np.asarray(out)[..., ::-1], golden['output_bgr'], atol=1e-5, rtol=0)
  # An existing output is never overwritten; a bad input leaves nothing behind.
  again = run_cli('--torch_checkpoint', str(testdata / CKPT), '--output', str(out_dir))
  assert again.returncode != 0 and 'already exists' in again.stderr
  bad = tmp_path / 'bad.pth.tar'
  bad.write_bytes(b'PK\x03\x04 truncated')
  failed = run_cli('--torch_checkpoint', str(bad), '--output', str(tmp_path / 'never'))
  assert failed.returncode != 0 and 'bad.pth.tar' in failed.stderr and 'Traceback' not in failed.stderr
  assert not (tmp_path / 'never').exists()


def _nan_checkpoint(testdata, path):
  """The fake official checkpoint with its first storage record (a weight tensor) overwritten by NaNs."""
  with zipfile.ZipFile(testdata / CKPT) as source, zipfile.ZipFile(path, 'w') as target:
    records = [n for n in source.namelist() if '/data/' in n]
    poisoned = sorted(records)[0]
    for info in source.infolist():
      data = source.read(info)
      if info.filename == poisoned:
        data = np.full(len(data) // 4, np.nan, '<f4').tobytes()
      target.writestr(info, data)
  return path


def test_interrupted_conversion_leaves_nothing_and_reruns(testdata, tmp_path, monkeypatch, capsys):
  """Ctrl-C while the converted checkpoint is being written: no output dir, no temporary; the rerun works."""
  out_dir = tmp_path / 'converted'
  calls = []

  def interrupted_write_json(path, obj):   # save_model's last write (model_config.json), after Orbax's
    calls.append(path)
    raise KeyboardInterrupt

  monkeypatch.setattr(checkpoints.atomic, 'write_json', interrupted_write_json)
  status = cli.guarded('convert', lambda: convert.convert(str(testdata / CKPT), str(out_dir)))
  assert status == 130 and len(calls) == 1 and 'convert: interrupted' in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []   # neither the output nor its temporary
  monkeypatch.undo()
  message = convert.convert(str(testdata / CKPT), str(out_dir))
  assert message.startswith(f'Wrote {out_dir} (ESTRNN n_features=4 n_blocks=2')
  assert sorted(p.name for p in tmp_path.iterdir()) == ['converted']
  model, variables = checkpoints.restore_model(out_dir)
  assert model.n_features == 4 and variables['params']['cell']['F_B0']['kernel'].shape == (5, 5, 3, 4)


def test_nan_weights_are_refused(testdata, tmp_path):
  path = _nan_checkpoint(testdata, tmp_path / 'diverged.pth.tar')
  with pytest.raises(finite_weights.NonFiniteWeightsError,
                     match=rf'^{re.escape(str(path))}: the weights hold NaN or infinite values, in '):
    convert.convert(str(path), str(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists()
  with pytest.raises(finite_weights.NonFiniteWeightsError):
    checkpoints.restore_model(path)
  model, variables = checkpoints.restore_model(path, allow_non_finite=True)
  assert not all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('case', ['missing', 'not_a_checkpoint', 'nan_weights', 'memory_bomb', 'existing_output',
                                  'no_output_flag'])
def test_cli_bad_inputs_are_one_line_errors(testdata, tmp_path, case):
  from test_cli import assert_one_line_error  # pylint: disable=g-import-not-at-top
  from test_torch_pickle import _dict, _pickle, _tensor, _write_checkpoint  # pylint: disable=g-import-not-at-top
  source, output = testdata / CKPT, tmp_path / 'out'
  fragments = {'missing': ['nope.pth.tar'], 'not_a_checkpoint': ['notes.pth.tar', 'not a PyTorch checkpoint'],
               'nan_weights': ['diverged.pth.tar: the weights hold NaN'],
               'memory_bomb': ['bomb.pth.tar: refusing to allocate a tensor of size (2097152, 2097152)'],
               'existing_output': [f'--output {output} already exists'],
               'no_output_flag': ['--torch_checkpoint and --output are required']}[case]
  args = None
  if case == 'missing':
    source = tmp_path / 'nope.pth.tar'
  elif case == 'not_a_checkpoint':
    source = tmp_path / 'notes.pth.tar'
    source.write_text('not a checkpoint')
  elif case == 'nan_weights':
    source = _nan_checkpoint(testdata, tmp_path / 'diverged.pth.tar')
  elif case == 'memory_bomb':
    pkl = _pickle(_dict(state_dict=_dict(w=_tensor('FloatStorage', '0', 1, 0, (2**21, 2**21), (0, 0)))))
    source = _write_checkpoint(tmp_path / 'bomb.pth.tar', pkl, {'0': np.float32(1).tobytes()})
  elif case == 'existing_output':
    output.mkdir()
    (output / 'keep.txt').write_text('mine')
  elif case == 'no_output_flag':
    args = ['--torch_checkpoint', str(source)]
  before = sorted(p.name for p in tmp_path.iterdir())
  result = run_cli(*(args or ['--torch_checkpoint', str(source), '--output', str(output)]))
  assert_one_line_error(result, 'convert', *fragments)
  assert sorted(p.name for p in tmp_path.iterdir()) == before
  if case == 'existing_output':
    assert (output / 'keep.txt').read_text() == 'mine'
