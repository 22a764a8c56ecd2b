"""ESTRNN-RAW (`ESTRNN(input='raw')`): parameter counts from the official layer shapes, the official model's golden
outputs (random weights and BatchNorm statistics, eval mode), the converter, and bad configurations."""

import jax
import numpy as np
import pytest

from estrnn_jax import checkpoints
from estrnn_jax import export
from estrnn_jax import export_formats
from estrnn_jax import export_functions
from estrnn_jax import model as model_lib
from estrnn_jax import official_weights
from estrnn_jax import profile

GOLDEN = 'estrnn_raw_C4B2_n2T7H32W48.npz'


def _rdb(c: int, g: int) -> int:
  """Official `RDB(c, g, num_layer=3)`: conv3x3 (c + j g -> g) for j = 0..2, conv1x1 (c + 3g -> c), all biased."""
  return sum(9 * (c + j * g) * g + g for j in range(3)) + (c + 3 * g) * c + c


def official_raw_parameters(c: int, b: int, frames: int = 5) -> int:
  """`model/ESTRNN-RAW.py`'s parameters, layer by layer as written there (C = n_features, B = n_blocks)."""
  conv = lambda k, cin, cout, bias=True: k * k * cin * cout + (cout if bias else 0)
  linear = lambda cin, cout: cin * cout + cout
  hidden = 2 * c // 4
  cell = (conv(5, 1, 4) + conv(1, 4, 4)                                  # downsampling, pixel_unshuffle
          + conv(5, 8, 2 * c)                                            # F_B0
          + linear(2 * c, hidden) + linear(hidden, 2 * c)                # CBAM channel gate
          + conv(7, 2, 1, bias=False) + 2                                # CBAM spatial conv + BatchNorm2d(1)
          + _rdb(2 * c, c) + _rdb(2 * c, int(c * 3 / 2))                 # F_B1
          + _rdb(2 * c, 2 * c) + conv(5, 2 * c, 4 * c)                   # F_B2 (RDB_DS)
          + b * _rdb(5 * c, 2 * c) + conv(1, 5 * b * c, 5 * c) + conv(3, 5 * c, 5 * c)   # F_R
          + conv(3, 5 * c, c) + _rdb(c, c) + conv(3, c, c))              # F_h
  gsa = (linear(10 * c, 20 * c) + linear(20 * c, 10 * c) + conv(1, 10 * c, 20 * c) + conv(1, 20 * c, 10 * c)
         + conv(1, 10 * c, 5 * c) + conv(1, 5 * frames * c, 5 * frames * c))
  reconstructor = conv(3, 5 * frames * c, 2 * c) + conv(3, 2 * c, c) + conv(5, c, 1)
  return cell + gsa + reconstructor


@pytest.mark.parametrize('n_features, n_blocks, expected', [(16, 15, 2_528_273), (12, 9, 1_027_929), (4, 2, 64_573)])
def test_parameter_count_is_the_official_one(n_features, n_blocks, expected):
  # `expected` is what the official module reports (sum of p.numel() over its parameters, counted with torch).
  assert official_raw_parameters(n_features, n_blocks) == expected
  params = model_lib.abstract_params(model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks, input='raw'))
  assert sum(x.size for x in jax.tree.leaves(params)) == expected


@pytest.mark.parametrize('n_features, n_blocks, official_thop', [(4, 2, 2_590_182_464), (16, 15, 68_613_684_224)])
def test_cost_is_what_thop_reports_for_the_official_module(n_features, n_blocks, official_thop):
  # `official_thop`: thop 0.1.1's MACs of `model/ESTRNN-RAW.py`'s profile_forward (its `cost_profile`), one 480x640
  # frame, run on the official module (outside the project). Ours counts every conv, linear and transposed conv
  # (thop's convention: a transposed conv over its output pixels), and thop's 4 per element for the CBAM BatchNorm.
  thop, _, _ = profile.layer_macs(model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks, input='raw'), 480, 640)
  assert thop == official_thop


def _golden(testdata):
  data = np.load(testdata / GOLDEN)
  state_dict = {k[len('param/'):]: data[k] for k in data.files if k.startswith('param/')}
  return data, state_dict


def test_reproduces_the_official_outputs(testdata):
  data, state_dict = _golden(testdata)
  model, variables = official_weights.convert_state_dict(state_dict)
  assert (model.input, model.n_features, model.n_blocks, model.channels) == ('raw', 4, 2, 1)
  frames = data['input'].transpose(0, 1, 3, 4, 2)                                  # NTCHW -> NTHWC
  hs, state = model.apply(variables, frames, method='encode')
  np.testing.assert_allclose(hs, data['hs'].transpose(0, 1, 3, 4, 2), atol=1e-5, rtol=0)
  np.testing.assert_allclose(state, data['s_last'].transpose(0, 2, 3, 1), atol=1e-5, rtol=0)
  out = model_lib.jit_apply(model)(variables, frames)
  assert out.shape == (2, 3, 32, 48, 1)
  np.testing.assert_allclose(out, data['output'].transpose(0, 1, 3, 4, 2), atol=1e-5, rtol=0)
  # F_R's blocks one by one instead of one scan over stacked weights: the same outputs.
  unrolled = model_lib.jit_apply(model.clone(unroll=True))(variables, frames)
  np.testing.assert_allclose(unrolled, out, atol=1e-6, rtol=0)


def test_batch_norm_is_folded_from_the_running_statistics(testdata):
  _, state_dict = _golden(testdata)
  bn = {k: np.float64(state_dict[f'cell.cbam.SpatialGate.spatial.bn.{k}'][0])
        for k in ('weight', 'bias', 'running_mean', 'running_var')}
  assert bn['running_var'] != 1.0 and bn['running_mean'] != 0.0   # the fixture's statistics are not the init's
  _, variables = official_weights.convert_state_dict(state_dict)
  cbam = variables['params']['cell']['cbam']
  scale = bn['weight'] / np.sqrt(bn['running_var'] + 1e-5)
  np.testing.assert_allclose(cbam['spatial_scale'], [scale], rtol=1e-6)
  np.testing.assert_allclose(cbam['spatial_shift'], [bn['bias'] - bn['running_mean'] * scale], rtol=1e-6)
  # Initialised as the official BatchNorm in eval mode (weight 1, bias 0, mean 0, var 1).
  init = model_lib.init_params(model_lib.ESTRNN(n_features=4, n_blocks=2, input='raw'), 0)['cell']['cbam']
  np.testing.assert_allclose(init['spatial_scale'], [1 / np.sqrt(1 + 1e-5)], rtol=1e-7)
  assert init['spatial_shift'].tolist() == [0.0]


def test_official_checkpoint_file_loads_torch_free(testdata):
  _, state_dict = _golden(testdata)
  _, expected = official_weights.convert_state_dict(state_dict)
  model, variables = checkpoints.restore_model(testdata / 'fake_ckpt_raw_C4B2.pth.tar')
  assert model.input == 'raw'
  jax.tree.map(np.testing.assert_array_equal, variables['params'], expected['params'])


def test_damaged_raw_state_dict_names_the_tensors(testdata):
  _, state_dict = _golden(testdata)
  broken = {k: v for k, v in state_dict.items() if k != 'cell.cbam.SpatialGate.spatial.bn.running_var'}
  with pytest.raises(official_weights.CheckpointMismatchError, match='missing .*cell/cbam/spatial_scale'):
    official_weights.convert_state_dict(broken)


def test_bad_configurations_are_refused():
  with pytest.raises(ValueError, match="input 'bgr' is not one of"):
    model_lib.init_params(model_lib.ESTRNN(n_features=4, n_blocks=2, input='bgr'))
  with pytest.raises(ValueError, match="RDB cell only; got cell='resblock'"):
    model_lib.init_params(model_lib.ESTRNN(n_features=4, n_blocks=2, input='raw', cell='resblock'))
  model = model_lib.ESTRNN(n_features=4, n_blocks=2, input='raw')
  variables = {'params': model_lib.init_params(model)}
  with pytest.raises(ValueError, match=r"input='raw'\) expects frames of shape \(N, T, H, W, 1\)"):
    model.apply(variables, np.zeros((1, 5, 8, 8, 3), np.float32))


def test_onnx_stream_export_reproduces_the_official_outputs(testdata, tmp_path):
  meta = export.export(str(testdata / 'fake_ckpt_raw_C4B2.pth.tar'), 'onnx', 32, 48, str(tmp_path / 'onnx'),
                       mode='stream', log=lambda _: None)
  assert meta['colour_order'] == 'RAW Bayer mosaic (1 channel)'
  assert meta['inputs'][0]['shape'] == [1, 32, 48, 1] and meta['outputs'][0]['shape'] == [1, 32, 48, 1]
  model, variables = checkpoints.restore_model(testdata / 'fake_ckpt_raw_C4B2.pth.tar')
  fn = export_functions.stream_function(model, variables, 32, 48)
  runner = export_formats.load_onnx(str(tmp_path / 'onnx' / meta['artifact']), fn)
  data, _ = _golden(testdata)
  for clip, want in zip(data['input'].transpose(0, 1, 3, 4, 2), data['output'].transpose(0, 1, 3, 4, 2)):
    got = export_functions.run_stream(runner, fn, clip, future=2)
    np.testing.assert_allclose(got[2:5], want, atol=1e-4, rtol=0)   # frames with full windows: the clip outputs
