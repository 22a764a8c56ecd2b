"""The Flax ESTRNN against the official model's golden vectors, and its options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estrnn_jax import official_weights
from estrnn_jax import jit_utils
from estrnn_jax import model as model_lib

GOLDEN = 'estrnn_C4B2_n2T7H32W48.npz'


def nchw_to_nhwc(x):
  return np.moveaxis(x, -3, -1)


@pytest.fixture(scope='module')
def golden(testdata):
  data = np.load(testdata / GOLDEN)
  state_dict = {k[len('param/'):]: data[k] for k in data.files if k.startswith('param/')}
  return {
      'state_dict': state_dict,
      'input': nchw_to_nhwc(data['input']),      # (2, 7, 32, 48, 3), BGR, [-0.5, 0.5]
      'output': nchw_to_nhwc(data['output']),    # (2, 3, 32, 48, 3)
      'hs': nchw_to_nhwc(data['hs']),            # (2, 7, 8, 12, 20)
      's_last': nchw_to_nhwc(data['s_last']),    # (2, 8, 12, 4)
  }


@pytest.fixture(scope='module')
def tiny():
  """A random tiny model (C=4, B=2) and 6 frames of 32x32 noise."""
  model = model_lib.ESTRNN(n_features=4, n_blocks=2)
  frames = jax.random.uniform(jax.random.key(1), (2, 6, 32, 32, 3), minval=-0.5, maxval=0.5)
  return model, {'params': model_lib.init_params(model, 0)}, frames


def test_golden_output_and_features(golden):
  model, variables = official_weights.convert_state_dict(golden['state_dict'], rgb=False)
  assert (model.n_features, model.n_blocks) == (4, 2)
  out = apply(model, variables, golden['input'])
  assert out.shape == (2, 3, 32, 48, 3)
  np.testing.assert_allclose(out, golden['output'], atol=1e-5, rtol=0)
  hs, state = apply(model, variables, golden['input'], method=model_lib.ESTRNN.encode)
  np.testing.assert_allclose(hs, golden['hs'], atol=1e-5, rtol=0)
  np.testing.assert_allclose(state, golden['s_last'], atol=1e-5, rtol=0)


def test_rgb_conversion_is_a_channel_permutation(golden):
  model, variables = official_weights.convert_state_dict(golden['state_dict'])  # RGB by default
  out_rgb = apply(model, variables, golden['input'][..., ::-1])
  np.testing.assert_allclose(out_rgb[..., ::-1], golden['output'], atol=1e-5, rtol=0)


def apply(model, variables, *args, method=None):
  """Jitted `model.apply` (eager op-by-op dispatch is slow on CPU)."""
  return jax.jit(lambda v, *a: model.apply(v, *a, method=method))(variables, *args)


def test_folded_gsa_equals_reference_form(tiny):
  model, variables, frames = tiny
  folded = apply(model, variables, frames)
  direct = apply(model.clone(fold_gsa=False), variables, frames)
  np.testing.assert_allclose(folded, direct, atol=2e-6, rtol=0)
  assert float(jnp.abs(folded).max()) > 1e-3  # not trivially zero


def test_step_loop_equals_scan(tiny):
  model, variables, frames = tiny
  hs, state = apply(model, variables, frames, method=model_lib.ESTRNN.encode)
  s = model.initial_state(2, 32, 32)
  step = jax.jit(lambda s, x: model.apply(variables, s, x, method=model_lib.ESTRNN.step))
  for t in range(frames.shape[1]):
    s, h = step(s, frames[:, t])
    np.testing.assert_allclose(h, hs[:, t], atol=1e-6, rtol=0)
  np.testing.assert_allclose(s, state, atol=1e-6, rtol=0)
  # Resuming encode from a state continues the recurrence.
  hs_a, s_a = apply(model, variables, frames[:, :3], method=model_lib.ESTRNN.encode)
  hs_b, _ = apply(model, variables, frames[:, 3:], s_a, method=model_lib.ESTRNN.encode)
  np.testing.assert_allclose(jnp.concatenate([hs_a, hs_b], 1), hs, atol=1e-6, rtol=0)


def test_odd_frame_sizes_are_padded_and_cropped(tiny):
  model, variables, _ = tiny
  frames = jax.random.uniform(jax.random.key(2), (1, 5, 30, 42, 3), minval=-0.5, maxval=0.5)
  out = apply(model, variables, frames)
  assert out.shape == (1, 1, 30, 42, 3)
  padded, (h, w) = model_lib.pad_to_multiple(frames, 4)
  assert padded.shape == (1, 5, 32, 44, 3) and (h, w) == (30, 42)
  np.testing.assert_array_equal(padded[:, :, 30:, :42], jnp.repeat(frames[:, :, 29:30], 2, axis=2))
  expected = apply(model, variables, padded)[:, :, :30, :42]
  np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)
  with pytest.raises(ValueError, match='not a multiple of 4'):
    model.apply(variables, frames, method=model_lib.ESTRNN.encode)


def test_residual_adds_the_centre_input_frames(tiny):
  model, variables, _ = tiny
  frames = jax.random.uniform(jax.random.key(3), (2, 6, 30, 42, 3), minval=-0.5, maxval=0.5)  # padded inside
  residual = model.clone(residual=True)
  plain_out = apply(model, variables, frames)
  out = apply(residual, variables, frames)   # same parameters: the skip adds none
  assert out.shape == plain_out.shape == (2, 2, 30, 42, 3)
  np.testing.assert_allclose(out, plain_out + frames[:, 2:4], atol=1e-6, rtol=0)
  hs, _ = apply(model, variables, frames[:, :, :28, :40], method=model_lib.ESTRNN.encode)
  with pytest.raises(ValueError, match='needs the centre input frames'):
    residual.apply(variables, hs, method=model_lib.ESTRNN.decode)
  with pytest.raises(ValueError, match=r'centre_frames has shape \(2, 6, 28, 40, 3\); expected \(2, 2, 28, 40, 3\)'):
    residual.apply(variables, hs, frames[:, :, :28, :40], method=model_lib.ESTRNN.decode)


def test_aligned_frames_are_not_padded():
  frames = jnp.zeros((1, 5, 32, 48, 3))
  padded, size = model_lib.pad_to_multiple(frames, 4)
  assert padded is frames and size == (32, 48)


def test_batch_one_and_minimal_clip(tiny):
  model, variables, frames = tiny
  out = apply(model, variables, frames[:1, :5])
  assert out.shape == (1, 1, 32, 32, 3)
  np.testing.assert_allclose(out[0, 0], apply(model, variables, frames[:, :5])[0, 0], atol=1e-6, rtol=0)
  with pytest.raises(ValueError, match='needs at least 5 frames, got 4'):
    model.apply(variables, frames[:, :4])


def test_bfloat16_compute_close_to_float32(tiny):
  model, variables, frames = tiny
  out32 = apply(model, variables, frames)
  out16 = apply(model.clone(dtype=jnp.bfloat16), variables, frames)
  assert out16.dtype == jnp.float32
  scale = float(jnp.abs(out32).max())
  err = float(jnp.abs(out16 - out32).max())
  assert err < 0.05 * scale, (err, scale)
  assert err > 0  # really computed in bfloat16


def test_remat_same_gradients(tiny):
  model, variables, frames = tiny
  clip = frames[:1, :3, :16, :16]  # remat wraps the scanned cell only: differentiate through `encode`

  def grad(m):
    def loss(params):
      hs, state = m.apply({'params': params}, clip, method=model_lib.ESTRNN.encode)
      return jnp.mean(hs ** 2) + jnp.mean(state ** 2)
    return jax.jit(jax.grad(loss))(variables['params'])

  g_plain, g_remat = grad(model), grad(model.clone(remat=True))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7, rtol=1e-4), g_plain, g_remat)


def test_params_stay_float32_and_init_is_torch_like(tiny):
  model, variables, _ = tiny
  again = {'params': model_lib.init_params(model, 0)}
  jax.tree.map(np.testing.assert_array_equal, variables, again)  # deterministic for a seed
  other = {'params': model_lib.init_params(model, 1)}
  assert not np.array_equal(other['params']['cell']['F_B0']['kernel'], variables['params']['cell']['F_B0']['kernel'])
  leaves = jax.tree_util.tree_leaves_with_path(variables['params'])
  assert all(x.dtype == jnp.float32 for _, x in leaves)
  kernel = variables['params']['cell']['F_R']['rdb_0']['dense_0']['kernel']  # (3, 3, 20, 8): fan_in 180
  bound = 1 / np.sqrt(9 * 20)
  assert float(jnp.abs(kernel).max()) <= bound
  assert float(jnp.abs(kernel).max()) > 0.9 * bound


def test_jit_apply_reproduces_the_official_outputs(golden):
  model, variables = official_weights.convert_state_dict(golden['state_dict'], rgb=False)
  out = model_lib.jit_apply(model)(variables, golden['input'])
  assert out.shape == (2, 3, 32, 48, 3)
  np.testing.assert_allclose(out, golden['output'], atol=1e-6, rtol=0)


# XLA's defaults (YNNPACK convolutions), the project's options, and the option it used to set (Eigen convolutions,
# fused YNNPACK matmuls): all must keep golden parity.
@pytest.mark.parametrize('options', [
    {}, jit_utils.cpu_compiler_options('cpu'), {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_DOT'},
], ids=['xla_defaults', 'project', 'ynn_dot_fusion'])
def test_xla_cpu_options_do_not_change_outputs(golden, options):
  model, variables = official_weights.convert_state_dict(golden['state_dict'], rgb=False)
  out = jax.jit(model.apply, compiler_options=options)(variables, golden['input'])
  np.testing.assert_allclose(out, golden['output'], atol=1e-6, rtol=0)


