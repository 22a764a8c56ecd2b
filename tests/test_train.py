"""The training loop end to end on `configs/test.py` and the tiny synthetic dataset.

All runs share one persistent compilation cache (`runtime.use_compilation_cache`, conftest's `compilation_cache`),
so each train step program compiles once per test session.
"""

import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

import conftest
from configs import test as test_config
from estrnn_jax import checkpoints
from estrnn_jax import images
from estrnn_jax import model as model_lib
from estrnn_jax import resume
from estrnn_jax import sharding
from estrnn_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 40


@pytest.fixture(scope='module')
def data_dir(tiny_dataset):
  return tiny_dataset


@pytest.fixture(scope='module')
def cache_dir(compilation_cache):
  return compilation_cache


def _make_config(data_dir, cache_dir):
  """configs/test.py on the module's dataset; no evaluation, no periodic checkpoints (only the final one)."""
  config = test_config.get_config()
  config.dataset.data_dir = str(data_dir)
  config.compilation_cache_dir = str(cache_dir)
  config.num_train_steps = STEPS
  config.eval_every_steps = -1
  config.checkpoint_every_steps = 1000
  config.log_every_steps = 1
  return config


@pytest.fixture
def config(data_dir, cache_dir):
  return _make_config(data_dir, cache_dir)


def _params(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def _read_events(workdir):
  """{tag: {step: value}} for the scalars, and the set of image tags, in the TensorBoard event files."""
  scalars, image_tags = {}, set()
  for path in pathlib.Path(workdir).glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == 'images':
          image_tags.add(value.tag)
        elif value.HasField('tensor'):
          array = tf.make_ndarray(value.tensor)
          if array.ndim == 0:
            scalars.setdefault(value.tag, {})[event.step] = float(array)
  return scalars, image_tags


@pytest.fixture(scope='module')
def unbroken(data_dir, cache_dir, tmp_path_factory):
  """An uninterrupted STEPS-step run on all 8 devices: (final params, workdir)."""
  config = _make_config(data_dir, cache_dir)
  workdir = tmp_path_factory.mktemp('unbroken')
  state = train.train_and_evaluate(config, workdir)
  return _params(state), workdir


def test_one_step_run_writes_checkpoint_events_and_configs(config, tmp_path):
  config.num_train_steps = 1
  config.eval_every_steps = 0  # evaluate at the last step only
  state = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 1

  step_dir = tmp_path / 'checkpoints' / '1'
  assert {p.name for p in step_dir.iterdir()} >= {'state', 'data_iter', 'metrics'}
  assert list((step_dir / 'data_iter').glob('process_0-of-1.json'))
  model, variables = checkpoints.restore_model(tmp_path, which='best')
  assert model == train.create_model(config)
  jax.tree.map(np.testing.assert_array_equal, variables['params'], _params(state))

  saved = model.to_config()
  assert saved == {'n_features': 4, 'n_blocks': 2, 'past_frames': 2, 'future_frames': 2, 'dtype': 'float32',
                   'remat': False, 'unroll': True, 'fold_gsa': True, 'residual': True, 'cell': 'rdb',
                   'fusion': 'gsa', 'input': 'rgb'}
  import json  # pylint: disable=g-import-not-at-top
  assert json.loads((tmp_path / 'config.json').read_text())['num_train_steps'] == 1

  scalars, image_tags = _read_events(tmp_path)
  for tag in ('train/loss', 'train/learning_rate', 'train/grad_norm', 'val/psnr', 'val/ssim', 'val/blur_psnr'):
    assert 1 in scalars[tag], tag
  assert 'val/blurry|ours|sharp' in image_tags
  assert 0 < scalars['val/ssim'][1] < 1 and 5 < scalars['val/blur_psnr'][1] < 60


def test_short_run_lowers_the_loss(unbroken, config):
  final_params, workdir = unbroken
  logged = _read_events(workdir)[0]['train/loss']
  assert sorted(logged) == list(range(1, STEPS + 1))
  # The same held-out windows before and after the STEPS updates.
  from estrnn_jax import input_pipeline, losses  # pylint: disable=g-import-not-at-top
  batch = next(input_pipeline.create_train_iterator(
      dataset=config.dataset.name, data_dir=config.dataset.data_dir, split='validation', global_batch_size=8,
      window_frames=config.dataset.window_frames, past_frames=2, future_frames=2,
      crop_size=config.dataset.crop_size, seed=1))
  model = train.create_model(config)
  initial_params = model_lib.init_params(model, config.seed)
  blur, sharp = images.from_uint8(batch['blur']), images.from_uint8(batch['sharp'])  # the pipeline ships uint8
  loss = jax.jit(lambda p: losses.charbonnier_color(model.apply({'params': p}, blur), sharp))
  before, after = float(loss(initial_params)), float(loss(final_params))
  assert after < 0.8 * before, (before, after)


def test_resumed_run_equals_unbroken_run(unbroken, config, tmp_path):
  expected, _ = unbroken
  config.num_train_steps = STEPS // 2
  train.train_and_evaluate(config, tmp_path)
  assert (tmp_path / 'checkpoints' / str(STEPS // 2)).is_dir()
  config.num_train_steps = STEPS
  resumed = train.train_and_evaluate(config, tmp_path)  # picks up the model and the data stream
  assert int(resumed.step) == STEPS
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), _params(resumed), expected)


# A cosine schedule with warm-up, stopped by a real SIGTERM at step PREEMPTED_AT: neither a checkpoint boundary nor
# the end of the warm-up, so the resumed run must restore the optimiser, the schedule's position and the data stream.
COSINE_STEPS, PREEMPTED_AT = 8, 5


def _cosine_config(data_dir, cache_dir):
  config = _make_config(data_dir, cache_dir)
  config.num_train_steps = COSINE_STEPS
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 3
  config.optimizer.end_learning_rate = 1e-5
  return config


@pytest.fixture(scope='module')
def cosine_unbroken(data_dir, cache_dir, tmp_path_factory):
  state = train.train_and_evaluate(_cosine_config(data_dir, cache_dir), tmp_path_factory.mktemp('cosine_unbroken'))
  return _params(state)


@pytest.fixture(scope='module')
def preempted_workdir(data_dir, cache_dir, tmp_path_factory):
  """A cosine run that this process SIGTERMs while step PREEMPTED_AT runs, then resumed to the end: (workdir with
  checkpoints PREEMPTED_AT and COSINE_STEPS, the state the preempted run stopped with, the resumed params)."""
  config = _cosine_config(data_dir, cache_dir)
  workdir = tmp_path_factory.mktemp('preempted')
  original, batches = sharding.shard_batch, []

  def signalling(batch, mesh):
    batches.append(1)
    if len(batches) == PREEMPTED_AT:
      os.kill(os.getpid(), signal.SIGTERM)   # a real signal, to the handler training installs
    return original(batch, mesh)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(sharding, 'shard_batch', signalling)
    stopped = train.train_and_evaluate(config, workdir)
  stopped_step = int(stopped.step)
  saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  resumed = train.train_and_evaluate(config, workdir)
  return workdir, stopped_step, saved, _params(resumed)


def test_resume_after_sigterm_mid_schedule_equals_the_unbroken_run(preempted_workdir, cosine_unbroken):
  workdir, stopped_step, saved_then, resumed = preempted_workdir
  assert stopped_step == PREEMPTED_AT and saved_then == [PREEMPTED_AT]
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()) == [
      PREEMPTED_AT, COSINE_STEPS]
  differences = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), resumed, cosine_unbroken))
  assert max(differences) == 0.0


def _main(workdir, data_dir, cache_dir, *overrides):
  """`python -m estrnn_jax.main` of the cosine config on `workdir` (one device is enough to fail or resume)."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  env.pop('ESTRNN_TRACEBACK', None)
  return subprocess.run(
      [sys.executable, '-m', 'estrnn_jax.main', '--config=configs/test.py', f'--workdir={workdir}',
       f'--config.dataset.data_dir={data_dir}', f'--config.compilation_cache_dir={cache_dir}',
       f'--config.num_train_steps={COSINE_STEPS + 2}', '--config.optimizer.schedule=cosine',
       '--config.optimizer.warmup_steps=3', '--config.optimizer.end_learning_rate=1e-5',
       '--config.checkpoint_every_steps=1000', '--config.eval_every_steps=-1', *overrides],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def _one_error_line(result, *fragments):
  assert result.returncode == 1, result.stderr[-3000:]
  assert 'Traceback' not in result.stderr and 'Exception ignored' not in result.stderr, result.stderr[-3000:]
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith('main: error: '), result.stderr[-3000:]
  for fragment in fragments:
    assert fragment in line, (fragment, line)
  return line


def test_failed_resume_without_the_json_files_changes_nothing(preempted_workdir, data_dir, cache_dir, tmp_path):
  """config.json and model_config.json are gone and another model is asked for: the checkpoint's own arrays
  refuse it, before anything is written (the JSONs used to be rewritten first, mislabelling the checkpoints)."""
  workdir = tmp_path / 'run'
  shutil.copytree(preempted_workdir[0], workdir)
  (workdir / 'config.json').unlink()
  (workdir / 'model_config.json').unlink()
  before = conftest.tree_digest(workdir)
  result = _main(workdir, data_dir, cache_dir, '--config.model.n_features=8')
  _one_error_line(result, f'{workdir} holds checkpoints of a different model',
                  f'Step {COSINE_STEPS} does not fit the config: params.cell.F_B0.bias: float32[4] saved, '
                  'float32[8] now', 'its model_config.json is missing')
  assert conftest.tree_digest(workdir) == before


def test_damaged_latest_checkpoint_is_named_with_the_way_back(preempted_workdir, cosine_unbroken, data_dir,
                                                               cache_dir, tmp_path):
  """One file of the latest step truncated: one line naming the step and how to resume from the one before, the
  workdir untouched (nothing damaged is deleted); following the advice resumes from that step, exactly."""
  workdir = tmp_path / 'run'
  shutil.copytree(preempted_workdir[0], workdir)
  latest = workdir / 'checkpoints' / str(COSINE_STEPS)
  data_file = max((p for p in (latest / 'state').rglob('*') if p.is_file() and p.parent.name == 'd'),
                  key=lambda p: p.stat().st_size)
  data_file.write_bytes(data_file.read_bytes()[:1000])
  before = conftest.tree_digest(workdir)
  result = _main(workdir, data_dir, cache_dir)
  _one_error_line(result, f'{latest} is damaged or incomplete and cannot be read', 'Nothing was written.',
                  f'To resume from step {PREEMPTED_AT}, the newest other checkpoint, move {latest} out of')
  assert conftest.tree_digest(workdir) == before
  latest.rename(workdir / f'damaged_step_{COSINE_STEPS}')
  resumed = train.train_and_evaluate(_cosine_config(data_dir, cache_dir), workdir)
  differences = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), _params(resumed), cosine_unbroken)
  assert max(jax.tree.leaves(differences)) == 0.0


def test_unreadable_metadata_of_the_latest_checkpoint_is_named_with_the_way_back(preempted_workdir, data_dir,
                                                                                  cache_dir, tmp_path):
  """The latest step's description of its arrays (Orbax's _METADATA) truncated: refused before anything is
  restored or written, with the same way back as for a damaged array file."""
  workdir = tmp_path / 'run'
  shutil.copytree(preempted_workdir[0], workdir)
  latest = workdir / 'checkpoints' / str(COSINE_STEPS)
  metadata = latest / 'state' / '_METADATA'
  metadata.write_bytes(metadata.read_bytes()[:100])
  before = conftest.tree_digest(workdir)
  with pytest.raises(checkpoints.CheckpointDamagedError) as info:
    train.train_and_evaluate(_cosine_config(data_dir, cache_dir), workdir)
  message = str(info.value)
  assert message.startswith(f'{latest / "state"} is damaged or incomplete and cannot be read ('), message
  assert message.endswith(f'Its description of the saved arrays is unreadable. Nothing was written. To resume from '
                          f'step {PREEMPTED_AT}, the newest other checkpoint, move {latest} out of {latest.parent} '
                          '(nothing is deleted for you); or start a fresh --workdir.'), message
  assert '\n' not in message
  assert conftest.tree_digest(workdir) == before


def test_full_disk_during_a_checkpoint_save_names_the_workdir(config, mounts, capsys):
  """The workdir's disk fills while Orbax writes the step: one line naming --workdir and the cause (not Orbax's
  temporary), and the half-written step is removed."""
  from estrnn_jax import cli  # pylint: disable=g-import-not-at-top
  workdir = mounts.tiny('160k')   # room for the JSON files and events, not for a train state (~0.7 MB)
  config.num_train_steps = 1
  assert cli.guarded('main', lambda: train.train_and_evaluate(config, workdir)) == 1
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert re.fullmatch(rf'main: error: --workdir {workdir}: cannot write it \(No space left on device\); (the '
                      r'checkpoint of )?step 1 was not saved \(earlier ones are kept\)\.', line), line
  assert [p.name for p in (workdir / 'checkpoints').iterdir()] == []


def _snapshot(directory):
  """{relative path: (bytes, mtime_ns)} of every file under `directory`, and every directory's mtime."""
  return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
          for p in sorted(pathlib.Path(directory).rglob('*'))}


@pytest.mark.parametrize('change', ['model', 'residual_and_dtype', 'batch_size'])
def test_resume_with_a_changed_run_is_refused_and_touches_nothing(unbroken, config, change):
  _, workdir = unbroken
  before = _snapshot(workdir)
  if change == 'model':
    config.model.n_features = 8
    expected = r'model.n_features: 4 in the workdir, 8 now'
  elif change == 'residual_and_dtype':
    config.model.residual = not config.model.residual
    config.model.dtype = 'bfloat16'
    expected = (rf"model.dtype: 'float32' in the workdir, 'bfloat16' now; model.residual: "
                rf'{not config.model.residual} in the workdir, {config.model.residual} now')
  else:
    config.batch_size = 16
    expected = r'batch_size: 8 in the workdir, 16 now'
  config.num_train_steps = STEPS + 5   # allowed, but the refusal stands
  with pytest.raises(resume.ResumeMismatchError) as info:
    train.train_and_evaluate(config, workdir)
  message = str(info.value)
  assert message.startswith(f'{workdir} holds checkpoints of a different run; refusing to resume it')
  assert re.search(expected, message) and f'--config.init_from={workdir}' in message
  assert 'num_train_steps' not in message
  assert _snapshot(workdir) == before


def test_allowed_resume_changes_are_listed(unbroken, config):
  _, workdir = unbroken
  config.num_train_steps = STEPS * 2
  config.optimizer.learning_rate = 1e-4
  config.eval_every_steps = 10
  config.model.remat = True
  model = train.create_model(config)
  assert resume.check_workdir(workdir, config.to_dict(), model.to_config()) == [
      'model.remat: False in the workdir, True now',
      'eval_every_steps: -1 in the workdir, 10 now',
      f'num_train_steps: {STEPS} in the workdir, {STEPS * 2} now',
      'optimizer.learning_rate: 0.003 in the workdir, 0.0001 now']


def test_one_device_equals_eight_devices(config, tmp_path):
  config.num_train_steps = 3
  assert jax.device_count() == 8
  eight = train.train_and_evaluate(config, tmp_path / 'eight')
  one = train.train_and_evaluate(config, tmp_path / 'one', mesh=sharding.make_mesh(jax.devices()[:1]))
  assert eight.params['cell']['F_B0']['kernel'].sharding.mesh.devices.size == 8
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), _params(one), _params(eight))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(config, tmp_path, monkeypatch):
  config.checkpoint_every_steps = 1
  original = sharding.shard_batch
  calls = []

  def poisoned(batch, mesh):
    calls.append(1)
    if len(calls) == 3:
      batch = dict(batch, blur=np.full(batch['blur'].shape, np.nan, np.float32))  # float frames pass through
    return original(batch, mesh)

  monkeypatch.setattr(sharding, 'shard_batch', poisoned)
  with pytest.raises(FloatingPointError, match=r'diverged at step 3: .*loss=nan.*last good checkpoint \(step 2\)'):
    train.train_and_evaluate(config, tmp_path)
  assert sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()) == [1, 2]
  _, variables = checkpoints.restore_model(tmp_path)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))


def _lines_of(stream) -> queue.Queue:
  """A queue fed with `stream`'s lines by a daemon thread, then None at EOF; get(timeout=...) never hangs."""
  lines: queue.Queue = queue.Queue()

  def pump():
    for line in stream:
      lines.put(line)
    lines.put(None)

  threading.Thread(target=pump, daemon=True).start()
  return lines


def test_sigterm_saves_a_usable_checkpoint(data_dir, cache_dir, tmp_path):
  workdir = tmp_path / 'run'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  proc = subprocess.Popen(
      [sys.executable, '-m', 'estrnn_jax.main', '--config=configs/test.py', f'--workdir={workdir}',
       f'--config.dataset.data_dir={data_dir}', f'--config.compilation_cache_dir={cache_dir}',
       '--config.num_train_steps=100000', '--config.checkpoint_every_steps=100000', '--config.eval_every_steps=-1'],
      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  log = []
  try:
    lines = _lines_of(proc.stderr)
    deadline = time.time() + 240
    while True:   # wait (at most until the deadline, even if the child goes silent) for the first step
      line = lines.get(timeout=max(deadline - time.time(), 0.1))
      assert line is not None, 'the training process exited early:\n' + ''.join(log[-30:])
      log.append(line)
      if 'Finished step 1 ' in line:
        proc.send_signal(signal.SIGTERM)
        break
    assert proc.wait(timeout=120) == 143, ''.join(log[-30:])   # stopped by SIGTERM, after saving
    while (line := lines.get(timeout=30)) is not None:
      log.append(line)
  except queue.Empty:
    pytest.fail('the training process went silent for too long:\n' + ''.join(log[-30:]))
  finally:
    proc.kill()
  assert any('SIGTERM received' in line for line in log)
  assert re.fullmatch(r'main: stopped at step \d+ of 100000 by SIGTERM \(or a preemption notice\) after saving '
                      r'its checkpoint; rerun the same command to resume\.', log[-1].strip()), log[-3:]
  # The checkpoint was written, but Orbax's INFO chatter stays off the console (main.py's filter).
  orbax_info = [line for line in log if line.startswith('I') and
                (' checkpoint_manager.py:' in line or ' async_checkpointer.py:' in line)]
  assert not orbax_info, orbax_info
  steps = [int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit()]
  assert len(steps) == 1 and 1 <= steps[0] < 100000
  model, variables = checkpoints.restore_model(workdir)
  assert model.n_features == 4
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('residual', [False, True])
def test_unrolled_model_equals_the_scan_in_outputs_and_gradients(residual):
  """ESTRNN(unroll=True) (how CPU training runs the cell) has the scan's parameters, outputs and gradients."""
  scan = model_lib.ESTRNN(n_features=4, n_blocks=2, remat=True, residual=residual)
  unrolled = scan.clone(unroll=True)
  frames = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 6, 18, 22, 3)), jnp.float32)
  params = model_lib.init_params(scan, 0)
  assert jax.tree.structure(model_lib.abstract_params(unrolled)) == jax.tree.structure(params)

  def loss(model, p):
    out = model.apply({'params': p}, frames)
    return jnp.mean(out ** 2), out

  (_, direct), grads = jax.jit(jax.value_and_grad(lambda p: loss(scan, p), has_aux=True))(params)
  (_, out), unrolled_grads = jax.jit(jax.value_and_grad(lambda p: loss(unrolled, p), has_aux=True))(params)
  assert out.shape == (2, 2, 18, 22, 3)
  np.testing.assert_allclose(out, direct, atol=1e-6)
  for a, b in zip(jax.tree.leaves(unrolled_grads), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4)


def test_learning_rate_schedules(config):
  config.num_train_steps = 1000
  config.optimizer.learning_rate = 1e-3
  config.optimizer.end_learning_rate = 1e-8
  config.optimizer.schedule = 'cosine'
  config.optimizer.steps_per_epoch = 0
  smooth = train.create_learning_rate_schedule(config)
  np.testing.assert_allclose([smooth(0), smooth(500), smooth(1000)], [1e-3, (1e-3 + 1e-8) / 2, 1e-8], rtol=1e-5)
  config.optimizer.steps_per_epoch = 100  # 10 epochs, the rate held within each (the reference's per-epoch step)
  per_epoch = train.create_learning_rate_schedule(config)
  assert per_epoch(0) == per_epoch(99) == 1e-3
  expected_epoch_5 = 1e-8 + (1e-3 - 1e-8) * (1 + np.cos(np.pi * 5 / 10)) / 2
  np.testing.assert_allclose([per_epoch(500), per_epoch(599)], [expected_epoch_5] * 2, rtol=1e-5)
  config.optimizer.schedule = 'step'
  config.optimizer.milestones = (200, 400)
  step = train.create_learning_rate_schedule(config)
  np.testing.assert_allclose([step(199), step(200), step(399), step(400), step(999)],
                             [1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4], rtol=1e-6)
  config.optimizer.warmup_steps = 10
  warm = train.create_learning_rate_schedule(config)
  np.testing.assert_allclose([warm(0), warm(5), warm(10)], [0, 5e-4, 1e-3], rtol=1e-6)
  config.optimizer.schedule = 'linear'
  with pytest.raises(ValueError, match="'cosine', 'step' or 'constant'"):
    train.create_learning_rate_schedule(config)


def test_batch_size_must_split_over_devices(config, tmp_path):
  config.batch_size = 12
  with pytest.raises(ValueError, match='batch_size=12 is not divisible by the 8 devices'):
    train.train_and_evaluate(config, tmp_path)
