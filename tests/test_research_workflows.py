"""Research workflows: causal and asymmetric windows end to end, gradient accumulation, fine-tuning from
released weights (`init_from`), and training on a subset of a split's sequences (the paper's REDS)."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image
import pytest

from configs import reds
from configs import test as test_config
from datasets import build as build_lib
from estrnn_jax import checkpoints
from estrnn_jax import evaluation
from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import input_pipeline
from estrnn_jax import losses
from estrnn_jax import model as model_lib
from estrnn_jax import official_weights
from estrnn_jax import sharding
from estrnn_jax import train


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = tmp_path_factory.getbasetemp() / 'tfds_tiny'
  build_lib.build('synthetic_blur/tiny', path)
  return path


def _config(data_dir, tmp_path, **model):
  config = test_config.get_config()
  config.dataset.data_dir = str(data_dir)
  config.compilation_cache_dir = str(tmp_path / 'jax_cache')
  config.eval_every_steps = -1
  config.checkpoint_every_steps = 0
  config.model.update(model)
  return config


# --- Causal (future_frames = 0) and asymmetric windows. -----------------------------------------------------------

def test_causal_model_trains_evaluates_and_restores(data_dir, tmp_path):
  """future_frames=0 through training (2 steps, evaluation at the end), a checkpoint and both protocols."""
  config = _config(data_dir, tmp_path, past_frames=2, future_frames=0, residual=False)
  config.num_train_steps = 2
  config.eval_every_steps = 0  # evaluate at the last step: the reference protocol with a causal window
  train.train_and_evaluate(config, tmp_path / 'run')
  model, variables = checkpoints.restore_model(tmp_path / 'run')
  assert (model.past_frames, model.future_frames) == (2, 0)
  params = variables['params']

  rng = np.random.default_rng(0)
  sharp = rng.integers(0, 256, (9, 16, 20, 3), dtype=np.uint8)
  blur = np.clip(sharp.astype(int) + rng.integers(-30, 31, sharp.shape), 0, 255).astype(np.uint8)
  apply = jax.jit(lambda x: model.apply({'params': params}, x))
  # Reference protocol: chunks of 6 overlapping by past + future = 2; frames 2..8 scored, the last one included.
  reference = evaluation.SequenceEvaluator(model, params, protocol='reference', chunk_frames=6)
  result = reference('seq', blur, sharp, keep_outputs=True)
  np.testing.assert_array_equal(result.frames, np.arange(2, 9))
  expected = {}
  for start, end in evaluation.reference_chunks(9, 6, 2, 0):
    out = np.asarray(apply(images.from_uint8(blur[None, start:end])))[0]
    for k, frame in enumerate(range(start + 2, end)):
      expected.setdefault(frame, out[k])
  diff = np.abs(result.outputs.astype(int) - images.to_uint8(np.stack([expected[i] for i in range(2, 9)])))
  assert diff.max() <= 1 and diff.mean() < 1e-3
  # Full protocol: every frame, as `deblur` writes it; frames 2..8 (full windows of real frames) are the model on
  # the whole sequence, frames 0 and 1 use h_0 repeated for the missing past.
  full = evaluation.SequenceEvaluator(model, params, protocol='full', chunk_frames=4)('seq', blur, sharp,
                                                                                     keep_outputs=True)
  np.testing.assert_array_equal(full.frames, np.arange(9))
  np.testing.assert_array_equal(full.outputs, inference.deblur_video(model, {'params': params}, blur,
                                                                    group_size=inference.DEFAULT_GROUP_SIZE))
  direct = np.asarray(apply(images.from_uint8(blur[None])))[0]
  diff = np.abs(full.outputs[2:].astype(int) - images.to_uint8(direct))
  assert diff.max() <= 1 and diff.mean() < 1e-3

def test_official_checkpoint_converts_for_any_window_of_its_width(testdata):
  """The official format records the window's width (F), not its split: a 5-frame checkpoint is a (2, 2), (4, 0)
  or (1, 3) model as asked; a split of another width is refused naming both."""
  state_dict = official_weights.read_state_dict(testdata / 'fake_ckpt_C4B2.pth.tar')
  reference, ref_vars = official_weights.convert_state_dict(state_dict)
  for past, future in ((4, 0), (1, 3)):
    model, variables = official_weights.convert_state_dict(state_dict, past_frames=past, future_frames=future)
    assert (model.past_frames, model.future_frames) == (past, future)
    jax.tree.map(np.testing.assert_array_equal, variables, ref_vars)
  with pytest.raises(official_weights.CheckpointMismatchError, match='fuses 5 frames, but past_frames=2'):
    official_weights.convert_state_dict(state_dict, past_frames=2, future_frames=0)
  # A state dict of another variant (here: no GSA tensors, as a concatenation model would have) is refused.
  no_gsa = {k: v for k, v in state_dict.items() if '.fusion.' not in k}
  with pytest.raises(official_weights.CheckpointMismatchError, match="only the paper's model"):
    official_weights.convert_state_dict(no_gsa)


# --- Gradient accumulation. ---------------------------------------------------------------------------------------

def test_gradient_accumulation_equals_the_whole_batch():
  model = model_lib.ESTRNN(n_features=4, n_blocks=2, past_frames=1, future_frames=1)
  params = model_lib.init_params(model, 0)
  rng = np.random.default_rng(0)
  batch = {'blur': rng.uniform(-0.5, 0.5, (8, 4, 16, 16, 3)).astype(np.float32),
           'sharp': rng.uniform(-0.5, 0.5, (8, 2, 16, 16, 3)).astype(np.float32)}
  loss_fn = losses.get_loss_fn('charbonnier_color')
  whole = jax.jit(lambda p, b: train.loss_and_grads(p, b, model=model, loss_fn=loss_fn))(params, batch)
  for k in (2, 4):
    accumulated = jax.jit(lambda p, b, k=k: train.loss_and_grads(p, b, model=model, loss_fn=loss_fn,
                                                                  accumulation_steps=k))(params, batch)
    scale = max(float(optax.tree.norm(whole[1])), 1.0)
    np.testing.assert_allclose(accumulated[0], whole[0], rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * scale), accumulated[1], whole[1])

  # One optimiser step through `train_step`, on the 8-device mesh: the same update either way.
  mesh = sharding.make_mesh()
  tx = optax.sgd(0.1)
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
  step = lambda k: jax.jit(lambda s, b: train.train_step(s, b, model=model, tx=tx, loss_fn=loss_fn,
                                                         schedule=optax.constant_schedule(0.1),
                                                         accumulation_steps=k))
  batch_on_mesh = sharding.shard_batch(batch, mesh)
  (s1, m1), (s2, m2) = step(1)(state, batch_on_mesh), step(2)(state, batch_on_mesh)
  np.testing.assert_allclose(m2['loss'], m1['loss'], rtol=1e-6)
  np.testing.assert_allclose(m2['grad_norm'], m1['grad_norm'], rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6), s2.params, s1.params)


def test_gradient_accumulation_that_does_not_divide_the_batch_is_refused(data_dir, tmp_path):
  config = _config(data_dir, tmp_path)
  config.grad_accum_steps = 3
  with pytest.raises(ValueError, match='config.grad_accum_steps=3 must be >= 1 and divide'):
    train.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run' / 'checkpoints').exists()


# --- Fine-tuning from released weights. ---------------------------------------------------------------------------

def test_init_from_official_weights_gives_them_at_step_0(data_dir, tmp_path, testdata):
  """num_train_steps=0 with init_from a .pth.tar: a workdir whose step-0 checkpoint holds exactly the converted
  weights; a fine-tuning run from that workdir starts from them."""
  ckpt = testdata / 'fake_ckpt_C4B2.pth.tar'
  config = _config(data_dir, tmp_path, residual=False)  # the official model has no input skip
  config.init_from = str(ckpt)
  config.num_train_steps = 0
  train.train_and_evaluate(config, tmp_path / 'released')
  assert sorted(p.name for p in (tmp_path / 'released' / 'checkpoints').iterdir() if p.name.isdigit()) == ['0']
  model, variables = checkpoints.restore_model(tmp_path / 'released')
  _, converted = official_weights.convert_state_dict(official_weights.read_state_dict(ckpt))
  jax.tree.map(np.testing.assert_array_equal, variables['params'], converted['params'])
  assert model.to_config() == train.create_model(config).to_config()

  # Fine-tune 1 step from that workdir: the optimiser starts fresh at step 0, the weights move from there.
  config.init_from = str(tmp_path / 'released')
  config.num_train_steps = 1
  state = train.train_and_evaluate(config, tmp_path / 'tuned')
  assert int(state.step) == 1
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params, converted['params'])
  assert 0 < max(jax.tree.leaves(moved)) < 0.05


def test_init_from_another_model_is_one_error_naming_the_fields(data_dir, tmp_path, testdata):
  config = _config(data_dir, tmp_path, residual=False, n_blocks=3, cell='resblock')
  config.init_from = str(testdata / 'fake_ckpt_C4B2.pth.tar')
  with pytest.raises(ValueError, match=r"holds another model than config.model: cell = 'rdb' there, 'resblock' in "
                                       r'config.model; n_blocks = 2 there, 3 in config.model\.'):
    train.train_and_evaluate(config, tmp_path / 'run')


# --- A subset of a split's sequences (REDS as in the paper). ------------------------------------------------------

def test_reds_trains_on_its_first_120_sequences(tmp_path):
  """A REDS tree with 123 training sequences, each frame's colour its sequence number: the REDS config's
  pipeline draws windows from sequences 000-119 only, every one of them in an epoch."""
  root = tmp_path / 'REDS'
  for prefix, count in (('train', 123), ('val', 1)):
    for seq in range(count):
      for kind in ('blur', 'sharp'):
        for i in range(2):
          path = root / prefix / f'{prefix}_{kind}' / f'{seq:03d}' / f'{i:08d}.png'
          path.parent.mkdir(parents=True, exist_ok=True)
          Image.fromarray(np.full((8, 8, 3), 2 * seq, np.uint8)).save(path)
  build_lib.build('reds', tmp_path / 'tfds', manual_dir=root)
  config = reds.get_config('b9c60')
  assert config.dataset.train_sequences == 120
  iterator = input_pipeline.create_train_iterator(
      dataset='reds', data_dir=tmp_path / 'tfds', split='train', global_batch_size=8, window_frames=2, past_frames=0,
      future_frames=0, crop_size=4, seed=0, max_sequences=config.dataset.train_sequences, shard_index=0,
      shard_count=1)
  seen = []
  for _ in range(15):  # 120 windows of 2 frames = one epoch of batch 8
    blur = next(iterator)['blur']
    assert blur.dtype == np.uint8  # batches leave the host as uint8 (normalised inside the jitted step)
    seen.extend((blur[:, 0, 0, 0, 0] // 2).astype(int).tolist())
  iterator.close()
  assert sorted(seen) == list(range(120))
  with pytest.raises(ValueError, match='max_sequences=124, but reds split .train. .* has only 123 sequences'):
    input_pipeline.create_train_iterator(
        dataset='reds', data_dir=tmp_path / 'tfds', split='train', global_batch_size=8, window_frames=2, past_frames=0,
        future_frames=0, crop_size=4, seed=0, max_sequences=124)
