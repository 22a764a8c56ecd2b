"""The ablation switches (paper Table 4) and other windows (Table 6, causal): every variant builds the parameters it
should, and the streaming deblurrer gives exactly the model's own outputs for each."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import losses
from estrnn_jax import model as model_lib
from estrnn_jax import train

# (cell, fusion, past, future): the Table 4 variants and causal / asymmetric windows.
VARIANTS = [
    ('resblock', 'none', 0, 0), ('rdb', 'none', 0, 0), ('resblock', 'concat', 2, 2), ('rdb', 'concat', 1, 2),
    ('resblock', 'gsa', 2, 2), ('rdb', 'gsa', 1, 0), ('rdb', 'gsa', 3, 1),
]


def _model(cell, fusion, past, future):
  return model_lib.ESTRNN(n_features=4, n_blocks=2, past_frames=past, future_frames=future, cell=cell,
                          fusion=fusion)


def test_variants_have_the_parameters_of_their_modules():
  def shapes(model):
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, model.num_frames, 8, 8, 3)))
    return jax.tree_util.tree_map(lambda x: x.shape, variables['params'])

  paper = shapes(_model('rdb', 'gsa', 2, 2))
  # ResBlock cell: every RDB becomes conv3x3-ReLU-conv3x3 (+ skip), F_R a chain of n_blocks of them (5C).
  resblock = shapes(_model('resblock', 'gsa', 2, 2))
  assert resblock['cell']['F_R_1'] == {'conv_0': {'kernel': (3, 3, 20, 20), 'bias': (20,)},
                                       'conv_1': {'kernel': (3, 3, 20, 20), 'bias': (20,)}}
  assert set(resblock['cell']) == {'F_B0', 'F_B1', 'F_B2', 'F_R_0', 'F_R_1', 'F_h_in', 'F_h_resblock', 'F_h_out'}
  assert resblock['cell']['F_B2']['resblock']['conv_0']['kernel'] == (3, 3, 8, 8)
  assert resblock['fusion'] == paper['fusion'] and resblock['reconstructor'] == paper['reconstructor']
  # Concatenation: no fusion parameters, the reconstructor reads 5FC channels; no fusion: 5C.
  concat = shapes(_model('rdb', 'concat', 2, 2))
  assert 'fusion' not in concat and concat['cell'] == paper['cell']
  assert concat['reconstructor']['up_0']['kernel'] == (3, 3, 5 * 5 * 4, 8)
  assert shapes(_model('rdb', 'none', 0, 0))['reconstructor']['up_0']['kernel'] == (3, 3, 5 * 4, 8)


def test_bad_variants_are_one_clear_error():
  frames = jnp.zeros((1, 5, 8, 8, 3))
  for model, message in [(_model('rdb', 'none', 2, 2), "fusion='none' reconstructs each frame"),
                         (_model('lstm', 'gsa', 2, 2), "cell 'lstm' is not one of"),
                         (_model('rdb', 'attention', 2, 2), "fusion 'attention' is not one of")]:
    with pytest.raises(ValueError, match=message):
      model.init(jax.random.key(0), frames)


@pytest.mark.parametrize('cell, fusion, past, future', VARIANTS)
def test_streaming_equals_the_model_for_every_variant(cell, fusion, past, future):
  model = _model(cell, fusion, past, future)
  variables = {'params': model_lib.init_params(model, 1)}
  clip = np.random.default_rng(0).uniform(-0.5, 0.5, (7, 16, 20, 3)).astype(np.float32)
  expected = np.asarray(jax.jit(model.apply)(variables, clip[None]))[0]  # frames past .. T-future-1
  assert expected.shape == (7 - past - future, 16, 20, 3)

  deblurrer = inference.StreamingDeblurrer(model, variables, value_range=images.MODEL_RANGE)
  assert deblurrer.delay == future
  streamed = [deblurrer.push(frame) for frame in clip]
  assert [len(out) for out in streamed] == [0] * future + [1] * (7 - future)  # causal: every frame at once
  streamed = np.concatenate(streamed + [deblurrer.flush()])
  assert streamed.shape == clip.shape
  np.testing.assert_allclose(streamed[past:7 - future], expected, atol=2e-5, rtol=0)
  offline = inference.deblur_video(model, variables, clip, value_range=images.MODEL_RANGE, group_size=3)
  np.testing.assert_allclose(offline, streamed, atol=2e-5, rtol=0)


@pytest.mark.parametrize('cell, fusion, past, future', [v for v in VARIANTS if v[:2] != ('rdb', 'gsa')])
def test_every_ablation_variant_trains_one_step(cell, fusion, past, future):
  """One Adam step (the training step of `train`, unrolled as on a CPU) lowers the loss on its own batch."""
  model = _model(cell, fusion, past, future)
  params = model_lib.init_params(model, 0)
  rng = np.random.default_rng(1)
  sharp = rng.uniform(-0.5, 0.5, (2, 5, 16, 16, 3)).astype(np.float32)
  batch = {'blur': sharp + 0.05 * rng.standard_normal(sharp.shape).astype(np.float32),
           'sharp': sharp[:, past:5 - future]}
  tx = optax.adam(1e-3)
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  step = jax.jit(lambda s, b: train.train_step(s, b, model=model, tx=tx, loss_fn=losses.get_loss_fn('mse'),
                                               schedule=optax.constant_schedule(1e-3)))
  state, first = step(state, batch)
  _, second = step(state, batch)
  assert int(state.step) == 1 and np.isfinite(float(first['grad_norm'])) and float(first['grad_norm']) > 0
  assert float(second['loss']) < float(first['loss'])
