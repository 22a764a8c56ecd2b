"""ESTRNN training loop: data-parallel over a device mesh, Orbax checkpoints, clu metrics.

One jitted step (`train_step`) runs on a 1-D `data` mesh spanning every device of every process: the global
batch is split along its first axis (`NamedSharding(mesh, P('data'))`), the state is replicated, and XLA inserts
the gradient all-reduce. The state is built shapes-first (`jax.eval_shape` -> shardings ->
`jax.jit(init, out_shardings=...)`), so it is born on the devices where it lives.

`train_and_evaluate(config, workdir)`:
  * resumes from the latest checkpoint in `<workdir>/checkpoints/` (train state *and* the grain iterator, so the
    data stream continues exactly where it stopped);
  * logs loss, learning rate, gradient and parameter norms and steps/s to TensorBoard (`<workdir>`), pulling each
    step's metrics one step late so the host never waits on the device;
  * evaluates on `config.eval.split` (validation PSNR/SSIM/loss, image strips blurry | ours | sharp) every
    `eval_every_steps` and at the end;
  * saves every `checkpoint_every_steps`, after every evaluation (with its PSNR, for keep-best), at the last
    step, and when SIGTERM (or a TPU preemption notice) arrives;
  * stops with `FloatingPointError` naming the step and value as soon as the loss, gradient norm or parameter norm
    is NaN or Inf; nothing after the last finite step is ever saved.
"""

from collections.abc import Iterator, Mapping
import contextlib
import functools
import os
import signal
import threading
from typing import Any

from absl import logging
from clu import metric_writers
from clu import periodic_actions
from etils import epath
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from estrnn_jax import atomic
from estrnn_jax import checkpoints
from estrnn_jax import destinations
from estrnn_jax import evaluation
from estrnn_jax import images
from estrnn_jax import input_pipeline
from estrnn_jax import jit_utils
from estrnn_jax import losses
from estrnn_jax import model as model_lib
from estrnn_jax import resume
from estrnn_jax import sharding


@flax.struct.dataclass
class TrainState:
  """Everything a step changes. Saved as Orbax item `state`: {'step', 'params', 'opt_state'}."""
  step: jax.Array  # int32 scalar: optimiser updates applied so far.
  params: Any
  opt_state: Any


def create_model(config: ml_collections.ConfigDict) -> model_lib.ESTRNN:
  """ESTRNN from `config.model` (dtype by name: 'float32' or 'bfloat16')."""
  return model_lib.ESTRNN.from_config(config.model.to_dict(), source='config.model')


def create_learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning rate at each step (0-based count of updates already applied).

  'cosine': from `learning_rate` down to `end_learning_rate` over `num_train_steps` (after warm-up). With
  `steps_per_epoch` N > 0 the rate is held over each block of N steps, as the reference steps its
  CosineAnnealingLR once per epoch (over `num_train_steps / N` epochs); 0 anneals smoothly.
  'step': `learning_rate * decay_factor ** (number of milestones <= step)` (the reference's MultiStepLR).
  'constant': `learning_rate`.
  With `warmup_steps` W > 0 the rate first rises linearly from 0 over W steps and the schedule above starts
  after it (its step count, and so the milestones, start at W).
  """
  opt = config.optimizer
  lr, warmup, total = opt.learning_rate, opt.warmup_steps, config.num_train_steps
  if opt.schedule == 'cosine':
    decay_steps = max(total - warmup, 1)
    per_epoch = opt.steps_per_epoch
    if per_epoch > 0:
      epochs = max(-(-decay_steps // per_epoch), 1)
      cosine = optax.cosine_decay_schedule(lr, epochs, alpha=opt.end_learning_rate / lr)
      schedule = lambda step: cosine(step // per_epoch)
    else:
      schedule = optax.cosine_decay_schedule(lr, decay_steps, alpha=opt.end_learning_rate / lr)
  elif opt.schedule == 'step':
    schedule = optax.piecewise_constant_schedule(lr, {int(m): opt.decay_factor for m in opt.milestones})
  elif opt.schedule == 'constant':
    schedule = optax.constant_schedule(lr)
  else:
    raise ValueError(f"config.optimizer.schedule must be 'cosine', 'step' or 'constant', got {opt.schedule!r}.")
  if warmup > 0:
    schedule = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def create_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule
                     ) -> optax.GradientTransformation:
  """Global-norm gradient clipping, then Adam with the schedule (the reference's order)."""
  opt = config.optimizer
  parts = []
  if opt.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  parts.append(optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps))
  return optax.chain(*parts)


def _init_state_fn(model: model_lib.ESTRNN, tx: optax.GradientTransformation):
  return lambda rng: _state_from_params(model_lib.init_params(model, rng), tx=tx)


def abstract_train_state(model: model_lib.ESTRNN, tx: optax.GradientTransformation, mesh: jax.sharding.Mesh
                         ) -> tuple[TrainState, Any]:
  """The state's shapes and dtypes, as `jax.ShapeDtypeStruct`s placed (replicated) on `mesh`, and its sharding
  pytree. Computes nothing on the devices (they may be compile-only ones, `estrnn_jax.aot`)."""
  abstract = jax.eval_shape(_init_state_fn(model, tx), model_lib.init_key(0))
  state_sharding = jax.tree.map(lambda _: sharding.replicated(mesh), abstract)
  placed = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, state_sharding)
  return placed, state_sharding


def create_train_state(model: model_lib.ESTRNN, tx: optax.GradientTransformation, mesh: jax.sharding.Mesh,
                       rng: jax.Array) -> tuple[TrainState, Any]:
  """Initialises the state directly on the mesh, replicated. Returns (state, its sharding pytree).

  `rng`: the parameter key, `model_lib.init_key(seed)`.
  """
  _, state_sharding = abstract_train_state(model, tx, mesh)
  state = jax.jit(_init_state_fn(model, tx), out_shardings=state_sharding)(rng)
  return state, state_sharding


def _state_from_params(params: Any, *, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


# Model fields a fine-tuning source (`config.init_from`) may differ in: how the model runs, not what it computes.
_EXECUTION_FIELDS = ('dtype', 'remat', 'unroll', 'fold_gsa')


def load_init_params(path: str, model: model_lib.ESTRNN) -> Any:
  """The parameters stored at `path` (`config.init_from`), checked to be `model`'s.

  `path`: an official `.pth.tar` (converted on the fly; read with `model`'s past/future window), a converted
  model directory, a checkpoint step directory or a training workdir (its latest step).
  Raises ValueError naming every model field (architecture, window, ablation switches, residual) in which the
  stored model differs from `model`.
  """
  source, variables = checkpoints.restore_model(os.path.expanduser(path), past_frames=model.past_frames,
                                                future_frames=model.future_frames)
  theirs, ours = source.to_config(), model.to_config()
  differing = [f'{name} = {theirs.get(name)!r} there, {ours.get(name)!r} in config.model' for name in sorted(ours)
               if name not in _EXECUTION_FIELDS and theirs.get(name) != ours.get(name)]
  if differing:
    raise ValueError(f'config.init_from={path} holds another model than config.model: {"; ".join(differing)}.')
  return variables['params']


def check_accumulation(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> int:
  """`config.grad_accum_steps`, checked: >= 1, and each device's share of the batch splits into that many."""
  steps = config.grad_accum_steps
  devices = mesh.devices.size
  if steps < 1 or config.batch_size % (steps * devices):
    raise ValueError(f'config.grad_accum_steps={steps} must be >= 1 and divide each device\'s share of '
                     f'config.batch_size={config.batch_size} over {devices} device(s) (batch_size must be a '
                     f'multiple of grad_accum_steps x devices = {max(steps, 1) * devices}).')
  return steps


def loss_and_grads(params: Any, batch: Mapping[str, jax.Array], *, model: model_lib.ESTRNN,
                   loss_fn: losses.LossFn, accumulation_steps: int = 1) -> tuple[jax.Array, Any]:
  """The batch's mean loss and its gradient with respect to `params`; frames uint8 or float in [-0.5, 0.5].

  With `accumulation_steps` k > 1 the batch is split into k micro-batches of B/k windows (rows i, i+k, ..., so
  each stays spread over the devices the batch is sharded on) run one after another in a scan, and their
  losses and gradients averaged: the same numbers as the whole batch at once (every loss here is a mean over
  equally many elements per window), with the activation memory of one micro-batch.
  """
  def compute_loss(params, micro_batch):
    # uint8 frames (as the input pipeline ships them) become [-0.5, 0.5] here, on the device.
    blur, sharp = images.normalise_on_device(micro_batch['blur']), images.normalise_on_device(micro_batch['sharp'])
    outputs = model.apply({'params': params}, blur)
    return loss_fn(outputs, sharp)

  if accumulation_steps == 1:
    return jax.value_and_grad(compute_loss)(params, batch)
  k = accumulation_steps
  micro_batches = jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch)

  def accumulate(totals, micro_batch):
    loss, grads = jax.value_and_grad(compute_loss)(params, micro_batch)
    return jax.tree.map(jnp.add, totals, (loss, grads)), None

  zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
  (loss, grads), _ = jax.lax.scan(accumulate, zeros, micro_batches)
  return jax.tree.map(lambda x: x / k, (loss, grads))


def train_step(state: TrainState, batch: Mapping[str, jax.Array], *, model: model_lib.ESTRNN,
               tx: optax.GradientTransformation, loss_fn: losses.LossFn, schedule: optax.Schedule,
               accumulation_steps: int = 1) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimiser update on a global batch {'blur': (B,T,h,w,3), 'sharp': (B,T-p-f,h,w,3)}: uint8 frames as the
  input pipeline ships them (normalised on the device, in `loss_and_grads`) or float frames in [-0.5, 0.5].

  `accumulation_steps` > 1 computes the batch's gradient in that many micro-batches (`loss_and_grads`).
  Returns the new state and scalar metrics: loss (before the update), grad_norm (before clipping),
  param_norm (after the update) and learning_rate (used for this update).
  """
  loss, grads = loss_and_grads(state.params, batch, model=model, loss_fn=loss_fn,
                               accumulation_steps=accumulation_steps)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  step_metrics = {'loss': loss, 'grad_norm': optax.tree.norm(grads), 'param_norm': optax.tree.norm(params),
                  'learning_rate': schedule(state.step)}
  return new_state, step_metrics


def make_sharded_train_step(config: ml_collections.ConfigDict, model: model_lib.ESTRNN, mesh: jax.sharding.Mesh,
                            state_sharding: Any) -> Any:
  """The jitted `train_step` the run executes: the batch split over `mesh`'s `data` axis, the state replicated
  (`state_sharding`) and donated; schedule, optimiser, loss and accumulation from `config`.

  `estrnn_jax.plan` lowers this same function for accelerators it does not have (`abstract_train_state`,
  `abstract_batch`), so what it measures is what `train_and_evaluate` runs.
  """
  schedule = create_learning_rate_schedule(config)
  step = functools.partial(train_step, model=model, tx=create_optimizer(config, schedule),
                           loss_fn=losses.get_loss_fn(config.loss), schedule=schedule,
                           accumulation_steps=check_accumulation(config, mesh))
  return jax.jit(step, in_shardings=(state_sharding, sharding.data_sharding(mesh)),
                 out_shardings=(state_sharding, sharding.replicated(mesh)),
                 donate_argnames=('state',), compiler_options=jit_utils.cpu_compiler_options())


def abstract_batch(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch `train_step` receives, as shapes on `mesh`: {'blur': uint8 (B, T, crop, crop, 3),
  'sharp': uint8 (B, T - past - future, crop, crop, 3)}, B = `config.batch_size`, split over `data` (a RAW model:
  uint16 (..., 1))."""
  b, t, crop = config.batch_size, config.dataset.window_frames, config.dataset.crop_size
  outputs = t - config.model.past_frames - config.model.future_frames
  data = sharding.data_sharding(mesh)
  raw = config.model.get('input', 'rgb') == 'raw'
  channels, dtype = (1, jnp.uint16) if raw else (3, jnp.uint8)
  return {'blur': jax.ShapeDtypeStruct((b, t, crop, crop, channels), dtype, sharding=data),
          'sharp': jax.ShapeDtypeStruct((b, outputs, crop, crop, channels), dtype, sharding=data)}


class _PreemptionWatcher:
  """True once this run should save and stop: SIGTERM (single process) or a multi-host preemption sync point."""

  def __init__(self, manager: ocp.CheckpointManager):
    self._manager = manager
    self._event = threading.Event()
    self._previous = None
    # With several processes, JAX's preemption service owns SIGTERM and all processes agree on the step.
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint after the current step, then stopping.')
    self._event.set()

  def should_stop(self, step: int) -> bool:
    if jax.process_count() == 1:
      return self._event.is_set()
    return self._manager.reached_preemption(step)

  def close(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None


def _latest_step(workdir: epath.Path) -> int | None:
  """The newest finished checkpoint step in `workdir` (None for none); creates and writes nothing."""
  if not resume.has_checkpoint(workdir):
    return None
  manager = checkpoints.checkpoint_manager(workdir, read_only=True)
  try:
    return manager.latest_step()
  finally:
    manager.close()


def _restore(manager: ocp.CheckpointManager, workdir: epath.Path, step: int, abstract_state: TrainState,
             train_iter: Any) -> tuple[TrainState, Any]:
  """Train state and data iterator of checkpoint `step`; a damaged step is a one-line error saying what to do."""
  step_dir = workdir / checkpoints.CHECKPOINTS_DIR / str(step)
  logging.info('Resuming from %s.', step_dir)
  try:
    restored = manager.restore(step, args=checkpoints.restore_args(abstract_state, train_iter))
  except Exception as e:  # pylint: disable=broad-exception-caught  (its arrays fit: the files are bad)
    raise checkpoints.damaged(step_dir, e, _way_back(workdir, step)) from None
  return restored[checkpoints.STATE_ITEM], restored[checkpoints.DATA_ITER_ITEM]


def _way_back(workdir: epath.Path, step: int) -> str:
  """What to do when checkpoint `step` (the latest) of `workdir` is damaged: resume from the one before it."""
  step_dir = workdir / checkpoints.CHECKPOINTS_DIR / str(step)
  older = sorted((int(p.name) for p in step_dir.parent.iterdir() if p.name.isdigit() and int(p.name) < step),
                 reverse=True)
  instead = (f'To resume from step {older[0]}, the newest other checkpoint, move {step_dir} out of '
             f'{step_dir.parent} (nothing is deleted for you); or start a fresh --workdir.' if older else
             'It is the only checkpoint: start a fresh --workdir (or restore the step from a copy).')
  return f'Nothing was written. {instead}'


@contextlib.contextmanager
def _checkpoint_writes(workdir: epath.Path, outcome: str) -> Iterator[None]:
  """A checkpoint save that fails because of the workdir's disk (full, read-only, ...) becomes one line naming the
  workdir, and the step Orbax was writing under its temporary name is removed; earlier checkpoints stay."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-exception-caught  (Orbax wraps the OS error in its own types)
    failure = destinations.write_failure('--workdir', workdir, e, outcome=f'{outcome} (earlier ones are kept)')
    if failure is None:
      raise
    for temporary in (workdir / checkpoints.CHECKPOINTS_DIR).glob('*.orbax-checkpoint-tmp*'):
      atomic.remove(temporary)
    raise failure from None


def _check_finite(step: int, values: Mapping[str, float], last_saved: int | None) -> None:
  bad = {k: v for k, v in values.items() if k in ('loss', 'grad_norm', 'param_norm') and not np.isfinite(v)}
  if bad:
    found = ', '.join(f'{k}={v}' for k, v in bad.items())
    kept = f'step {last_saved}' if last_saved is not None else 'none was written'
    raise FloatingPointError(f'Training diverged at step {step}: {found}. Stopping; the last good checkpoint '
                             f'({kept}) is kept.')


def check_steps(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError for a step count no run can have (checked before a dataset is built or a file written)."""
  if config.num_train_steps < 0:
    raise ValueError(f'config.num_train_steps={config.num_train_steps} must be >= 0 (0 writes the initial '
                     'weights as the step-0 checkpoint).')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | epath.PathLike, *,
                       mesh: jax.sharding.Mesh | None = None) -> TrainState:
  """Trains (resuming if `workdir` has checkpoints) and evaluates; returns the final state.

  Nothing in `workdir` is written until its latest checkpoint is restored (or found absent): a refused or failed
  resume leaves it byte for byte as it was.

  Raises:
    resume.ResumeMismatchError: `workdir` holds checkpoints of a run with another model or other run fields
      (`estrnn_jax.resume`), told by its JSON files or, without them, by the checkpoint's own arrays.
    checkpoints.CheckpointDamagedError: the latest checkpoint cannot be read (a truncated or missing file);
      the error names it and how to resume from the previous one.

  Args:
    config: see `configs/default.py` for every field.
    workdir: checkpoints, TensorBoard events, config.json and model_config.json go here (may be gs://).
    mesh: a 1-D `data` mesh to train on; default: every device of every process.
  """
  workdir = epath.Path(workdir)
  check_steps(config)
  mesh = mesh or sharding.make_mesh()
  local_batch = sharding.check_batch_size(config.batch_size, mesh)

  model = create_model(config)
  check_accumulation(config, mesh)
  # A resume must continue the run the checkpoints belong to; checked before anything is written.
  for change in resume.check_workdir(workdir, config.to_dict(), model.to_config()):
    logging.info('Resuming %s with a changed config: %s', workdir, change)
  schedule = create_learning_rate_schedule(config)
  tx = create_optimizer(config, schedule)
  # Opens the dataset (a missing one, a bad split or crop fails here, before the workdir is touched).
  train_iter = input_pipeline.create_train_iterator(
      dataset=config.dataset.name, data_dir=config.dataset.data_dir, split=config.dataset.train_split,
      global_batch_size=config.batch_size, window_frames=config.dataset.window_frames,
      past_frames=config.model.past_frames, future_frames=config.model.future_frames,
      crop_size=config.dataset.crop_size, seed=config.seed, num_workers=config.dataset.num_workers,
      max_sequences=config.dataset.train_sequences, noise_std=config.dataset.get('noise_std', 0.0))
  if jax.process_index() == 0:
    destinations.check_writable(workdir, flag='--workdir', into=True)
  abstract_state, state_sharding = abstract_train_state(model, tx, mesh)
  latest = _latest_step(workdir)
  if latest is not None:   # the checkpoint's own arrays against this run's state (catches a lost model_config.json)
    try:
      resume.check_saved_state(workdir, latest, abstract_state)
    except checkpoints.CheckpointDamagedError as e:   # its metadata is unreadable
      raise checkpoints.CheckpointDamagedError(f'{e} {_way_back(workdir, latest)}') from None

  state, state_sharding = create_train_state(model, tx, mesh, model_lib.init_key(config.seed))
  manager = checkpoints.checkpoint_manager(workdir, keep=config.keep_checkpoints,
                                           keep_best=config.keep_best_checkpoints)
  if latest is not None:
    state, train_iter = _restore(manager, workdir, latest, abstract_state, train_iter)
  elif config.init_from:
    # Fine-tuning: the stored weights at step 0, a fresh optimiser.
    params = load_init_params(config.init_from, model)
    state = jax.jit(functools.partial(_state_from_params, tx=tx), out_shardings=state_sharding)(params)
    logging.info('Initialised the parameters from %s (step 0, fresh optimiser state).', config.init_from)
  # Only now, with the run's state in hand, is anything of the workdir written.
  if jax.process_index() == 0:
    atomic.write_json(workdir / checkpoints.CONFIG_FILE, config.to_dict())
    atomic.write_json(workdir / checkpoints.MODEL_CONFIG_FILE, model.to_config())
  writer = metric_writers.create_default_writer(str(workdir), just_logging=jax.process_index() > 0)
  writer.write_hparams(_flatten(config.to_dict()))
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('ESTRNN %s: %d parameters. Mesh: %d devices over %d processes; batch %d (%d per process).',
               model.to_config(), num_params, mesh.devices.size, jax.process_count(),
               config.batch_size, local_batch)
  start_step = int(jax.device_get(state.step))

  sharded_train_step = make_sharded_train_step(config, model, mesh, state_sharding)
  if jax.process_count() > 1:
    # CPU collectives (gloo) give up when one process reaches the first all-reduce 30 s before another, as when
    # only one found the step in the compilation cache: every process compiles first, then they meet.
    sharded_train_step = sharded_train_step.lower(abstract_state, abstract_batch(config, mesh)).compile()
    sharding.wait_for_all_processes('train step compiled')
  evaluator = evaluation.SequenceEvaluator(
      model, protocol=config.eval.protocol, chunk_frames=config.eval.chunk_frames, rounding=config.eval.rounding,
      loss=config.loss, chunks_per_device=config.eval.chunks_per_device)

  report_progress = periodic_actions.ReportProgress(num_train_steps=config.num_train_steps, writer=writer)
  watcher = _PreemptionWatcher(manager)
  last_saved = latest
  pending: tuple[int, dict[str, jax.Array]] | None = None
  accumulated: dict[str, list[float]] = {}

  def flush_pending():
    """Fetches the previous step's metrics (waiting only for that step), checks them and logs them."""
    nonlocal pending
    if pending is None:
      return
    step, device_metrics = pending
    pending = None
    values = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
    _check_finite(step, values, last_saved)
    for k, v in values.items():
      accumulated.setdefault(k, []).append(v)
    if step == config.num_train_steps or (config.log_every_steps > 0 and step % config.log_every_steps == 0):
      scalars = {f'train/{k}': float(np.mean(v)) for k, v in accumulated.items() if k != 'learning_rate'}
      scalars['train/learning_rate'] = accumulated['learning_rate'][-1]
      writer.write_scalars(step, scalars)
      accumulated.clear()

  def save(step: int, eval_metrics: Mapping[str, float] | None = None):
    nonlocal last_saved
    with _checkpoint_writes(workdir, f'step {step} was not saved'):   # (or the previous, asynchronous save)
      manager.save(step, args=checkpoints.save_args(state, train_iter),
                   metrics=dict(eval_metrics) if eval_metrics else None, force=True)
    last_saved = step

  try:
    if latest is None and config.num_train_steps == 0:
      save(0)  # a workdir holding the initial (e.g. `init_from`) weights
      logging.info('num_train_steps=0: wrote the step-0 checkpoint of the initial parameters.')
    elif start_step >= config.num_train_steps:
      logging.info('Already trained for %d >= num_train_steps=%d steps; nothing to do.', start_step,
                   config.num_train_steps)
    step = start_step
    while step < config.num_train_steps:
      step += 1
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        batch = sharding.shard_batch(next(train_iter), mesh)
        state, step_metrics = sharded_train_step(state, batch)
      flush_pending()  # the previous step's metrics, while this step runs
      pending = (step, step_metrics)
      if step == start_step + 1:
        flush_pending()
        logging.info('Finished step %d (first step of this run, including compilation).', step)
      report_progress(step)

      is_last = step == config.num_train_steps
      stop = watcher.should_stop(step)
      do_eval = is_last or (config.eval_every_steps > 0 and step % config.eval_every_steps == 0)
      do_eval = do_eval and config.eval_every_steps >= 0
      periodic_save = config.checkpoint_every_steps > 0 and step % config.checkpoint_every_steps == 0
      do_save = is_last or stop or do_eval or periodic_save
      eval_metrics = None
      if do_save:
        flush_pending()  # never save a state whose step produced NaN/Inf
      if do_eval:
        with report_progress.timed('eval'):
          eval_metrics = _run_evaluation(config, evaluator, state.params, writer, step)
      if do_save:
        save(step, eval_metrics)
      if stop:
        logging.warning('Stopping at step %d after saving a checkpoint (preemption).', step)
        break
    flush_pending()
    with _checkpoint_writes(workdir, f'the checkpoint of step {last_saved} was not saved'):
      manager.wait_until_finished()   # where an asynchronous save's failure surfaces
  finally:
    watcher.close()
    manager.wait_until_finished()
    manager.close()
    writer.flush()
  return state


def _run_evaluation(config: ml_collections.ConfigDict, evaluator: evaluation.SequenceEvaluator, params: Any,
                    writer: metric_writers.MetricWriter, step: int) -> dict[str, float]:
  """Scores `config.eval.split` with the current parameters; writes scalars and image strips."""
  evaluator.set_params(params)
  max_sequences = config.eval.max_sequences or None
  sequences = input_pipeline.iterate_sequences(
      dataset=config.dataset.name, data_dir=config.dataset.data_dir, split=config.eval.split,
      shard_index=jax.process_index(), shard_count=jax.process_count(), max_sequences=max_sequences)
  num_strips = config.eval.num_image_strips
  local = evaluation.evaluate_sequences(evaluator, sequences, keep_outputs_of_first=num_strips > 0)
  if local and num_strips > 0:
    writer.write_images(step, {'val/blurry|ours|sharp': evaluation.image_strips(local[0], num_strips)})
    local[0].outputs = local[0].blur_frames = local[0].sharp_frames = None
  summary = evaluation.summarize(evaluation.gather_results(local))
  scalars = {'val_psnr': summary['psnr'], 'val_ssim': summary['ssim'], 'val_loss': summary['loss'],
             'val_blur_psnr': summary['blur_psnr'], 'val_blur_ssim': summary['blur_ssim']}
  writer.write_scalars(step, {f'val/{k[4:]}': v for k, v in scalars.items()})
  logging.info('Step %d validation (%d frames of %d sequences): PSNR %.3f dB (blurry %.3f), SSIM %.4f '
               '(blurry %.4f), loss %.5f.', step, summary['frames'], summary['sequences'], summary['psnr'],
               summary['blur_psnr'], summary['ssim'], summary['blur_ssim'], summary['loss'])
  return scalars


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}; non-scalar leaves become strings (for TensorBoard hparams)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value if isinstance(value, (int, float, str, bool)) else str(value)
  return flat
