"""The project's checkpoint format, shared by training, evaluation, inference and the converter.

Layouts (all Orbax; paths may be gs://):

  <workdir>/                      a training run (`train.train_and_evaluate`)
    config.json                   the whole training config
    model_config.json             the ESTRNN fields (`ESTRNN.to_config`)
    checkpoints/<step>/state/     the train state: a pytree {'params', 'opt_state', 'step'}
    checkpoints/<step>/data_iter/ the grain iterator state (one JSON file per process)
    checkpoints/<step>/metrics/   validation metrics of that step (when it was evaluated)

  <dir>/                          a model alone (`save_model`, the converter)
    model_config.json
    state/                        a pytree {'params'} (same `state`/`params` layout as training)

`restore_model` reads either (and official `.pth.tar` files) and returns `(ESTRNN, {'params': ...})`, never the
optimiser state.
"""

from collections.abc import Mapping
import json
import os
from typing import Any

from absl import logging
from etils import epath
import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from estrnn_jax import atomic
from estrnn_jax import finite_weights
from estrnn_jax import model as model_lib
from estrnn_jax import official_weights

CONFIG_FILE = 'config.json'
MODEL_CONFIG_FILE = 'model_config.json'
CHECKPOINTS_DIR = 'checkpoints'
STATE_ITEM = 'state'
DATA_ITER_ITEM = 'data_iter'
BEST_METRIC = 'val_psnr'  # Higher is better; recorded with every checkpoint written after an evaluation.

_TORCH_SUFFIXES = ('.pth', '.pth.tar', '.pt', '.tar')


class CheckpointDamagedError(ValueError):
  """A checkpoint step cannot be read: a file of it is truncated, missing or corrupt. Nothing was changed."""


def damaged(step_dir: epath.PathLike, error: BaseException, remedy: str) -> CheckpointDamagedError:
  """The one-line error for a step that Orbax (or TensorStore under it) failed to read with `error`."""
  while error.__cause__ is not None or error.__context__ is not None:   # TensorStore's own words, under Orbax's
    error = error.__cause__ or error.__context__
  lines = str(error).strip().splitlines()
  detail = lines[0][:240] if lines else type(error).__name__
  return CheckpointDamagedError(f'{step_dir} is damaged or incomplete and cannot be read ({detail}). {remedy}')


def leaf_name(path: tuple[Any, ...]) -> str:
  """A pytree key path as Orbax names the array: 'opt_state.1.0.mu.cell.F_B0.kernel'."""
  parts = []
  for key in path:
    for attribute in ('key', 'idx', 'name'):
      if hasattr(key, attribute):
        parts.append(str(getattr(key, attribute)))
        break
  return '.'.join(parts)


def saved_arrays(state_dir: epath.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
  """{array name: (shape, dtype name)} of a saved pytree, read from its metadata only (no array is read).

  Raises:
    CheckpointDamagedError: the metadata cannot be read.
  """
  try:
    with ocp.PyTreeCheckpointer() as checkpointer:
      tree = checkpointer.metadata(epath.Path(state_dir)).item_metadata.tree
  except Exception as e:  # pylint: disable=broad-exception-caught  (Orbax raises many types for bad files)
    raise damaged(state_dir, e, 'Its description of the saved arrays is unreadable.') from None
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  return {leaf_name(path): (tuple(leaf.shape), np.dtype(leaf.dtype).name) for path, leaf in leaves}


def state_handler() -> ocp.PyTreeCheckpointHandler:
  """Orbax's PyTree handler with replica-parallel saving off.

  ESTRNN's state is small (~30 MB for B15C80 with Adam). Orbax's default splits every replicated array across
  its replicas when saving, which compiles a slicing op per array on the first save (~5 s on CPU) and gains
  nothing at this size; here the first replica writes each array.
  """
  registry = ocp.type_handlers.create_type_handler_registry(
      (jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False)),
      (np.ndarray, ocp.type_handlers.NumpyHandler()),
      (int, ocp.type_handlers.ScalarHandler()),
      (float, ocp.type_handlers.ScalarHandler()),
      (np.number, ocp.type_handlers.ScalarHandler()),
  )
  return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


def save_args(state: Any, data_iter: Any = None) -> ocp.args.Composite:
  """Orbax args saving the train state (item `state`) and optionally a grain iterator (item `data_iter`)."""
  items = {STATE_ITEM: ocp.args.PyTreeSave(state)}
  if data_iter is not None:
    items[DATA_ITER_ITEM] = grain.checkpoint.CheckpointSave(data_iter)
  return ocp.args.Composite(**items)


def restore_args(abstract_state: Any, data_iter: Any = None) -> ocp.args.Composite:
  """Orbax args restoring the state onto `abstract_state`'s shardings (and the grain iterator in place)."""
  items = {STATE_ITEM: ocp.args.PyTreeRestore(
      item=abstract_state, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state))}
  if data_iter is not None:
    items[DATA_ITER_ITEM] = grain.checkpoint.CheckpointRestore(data_iter)
  return ocp.args.Composite(**items)


def checkpoint_manager(workdir: epath.PathLike, *, keep: int = 2, keep_best: int = 1,
                       read_only: bool = False) -> ocp.CheckpointManager:
  """The training run's manager: `<workdir>/checkpoints/<step>/{state,data_iter,metrics}`.

  Keeps the `keep` most recent checkpoints plus the `keep_best` with the highest validation PSNR (steps saved
  without metrics only count as recent). Saves are asynchronous; call `wait_until_finished()` before exiting.
  Save with `save_args(...)`, restore with `restore_args(...)`.
  """
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  handler = state_handler()
  registry.add(STATE_ITEM, ocp.args.PyTreeSave, handler)
  registry.add(STATE_ITEM, ocp.args.PyTreeRestore, handler)
  data_handler = grain.checkpoint.CheckpointHandler()
  registry.add(DATA_ITER_ITEM, grain.checkpoint.CheckpointSave, data_handler)
  registry.add(DATA_ITER_ITEM, grain.checkpoint.CheckpointRestore, data_handler)
  policies = [ocp.checkpoint_managers.LatestN(n=max(keep, 1))]
  if keep_best > 0:
    policies.append(ocp.checkpoint_managers.BestN(
        get_metric_fn=_best_metric, reverse=False, n=keep_best, keep_checkpoints_without_metrics=False))
  options = ocp.CheckpointManagerOptions(
      best_fn=_best_metric, best_mode='max', read_only=read_only, create=not read_only,
      preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(epath.Path(workdir) / CHECKPOINTS_DIR, options=options, handler_registry=registry)


def _best_metric(metrics: Mapping[str, Any]) -> float:
  value = metrics.get(BEST_METRIC)
  return float('-inf') if value is None else float(value)


def save_model(directory: epath.PathLike, model: model_lib.ESTRNN, params: Any) -> epath.Path:
  """Writes `params` (ESTRNN parameters, {'params'} excluded) and the model config to a new `directory`.

  The directory must not exist or be empty. `model_config.json` is written last, so a directory without it is
  recognisably incomplete.
  """
  directory = epath.Path(directory)
  if directory.exists() and any(directory.iterdir()):
    raise FileExistsError(f'{directory} already exists and is not empty; choose a new directory.')
  directory.mkdir(parents=True, exist_ok=True)
  params = jax.tree.map(np.asarray, params)
  with ocp.Checkpointer(state_handler()) as checkpointer:
    checkpointer.save(directory / STATE_ITEM, args=ocp.args.PyTreeSave({'params': params}))
  atomic.write_json(directory / MODEL_CONFIG_FILE, model.to_config())
  return directory


def restore_model(path: epath.PathLike, *, which: str = 'latest', step: int | None = None,
                  sharding: jax.sharding.Sharding | None = None, dtype: Any = None,
                  past_frames: int = 2, future_frames: int = 2,
                  allow_non_finite: bool = False) -> tuple[model_lib.ESTRNN, dict[str, Any]]:
  """Loads a model and its parameters (no optimiser state) from any of the project's checkpoint forms.

  Args:
    path: a training workdir, a `<workdir>/checkpoints/<step>` directory, a `save_model` directory, or an
      official `.pth.tar` file (converted on the fly by `estrnn_jax.official_weights`).
    which: for a workdir, 'latest' or 'best' (highest validation PSNR).
    step: for a workdir, this exact step instead (overrides `which`).
    sharding: place every parameter with this sharding (e.g. replicated over a mesh); None: numpy on the host.
    dtype: override the model's compute dtype (e.g. jnp.bfloat16); None keeps the saved one.
    past_frames, future_frames: only for official checkpoints (their files do not record the GSA window split).
    allow_non_finite: return NaN/Inf weights instead of refusing them (for inspecting a diverged run).
  Returns:
    (model, {'params': params}).
  Raises:
    finite_weights.NonFiniteWeightsError: NaN or Inf weights (a diverged or corrupt checkpoint), unless allowed.
  """
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f'{path}: no such checkpoint file or directory.')
  if '://' not in str(path):
    path = epath.Path(os.path.abspath(path))   # Orbax restores absolute paths only
  if not path.is_dir():
    if not path.name.endswith(_TORCH_SUFFIXES):
      raise ValueError(f'{path}: a file, but not an official ESTRNN checkpoint (expected {_TORCH_SUFFIXES}); '
                       'pass a training workdir, a checkpoint step directory or a save_model directory.')
    model, variables = official_weights.load_torch_checkpoint(path, past_frames=past_frames,
                                                              future_frames=future_frames)
    params = variables['params']
    if not allow_non_finite:
      finite_weights.check(params, str(path))
    if sharding is not None:
      params = jax.device_put(params, sharding)
    return _with_dtype(model, dtype), {'params': params}

  if (path / CHECKPOINTS_DIR).is_dir():
    step_dir = _select_step(path, which=which, step=step)
    config_dirs = [path]
  elif (path / STATE_ITEM).is_dir():
    step_dir = path
    config_dirs = [path, path.parent.parent]  # A save_model dir, or <workdir>/checkpoints/<step>.
  else:
    raise ValueError(
        f'{path}: not a checkpoint. Expected a training workdir (with {CHECKPOINTS_DIR}/), a checkpoint step '
        f'directory or a save_model directory (with {STATE_ITEM}/), or an official .pth.tar file.')

  model = _read_model_config(config_dirs, path)
  params = _restore_params(step_dir / STATE_ITEM, model, sharding)
  if not allow_non_finite:
    finite_weights.check(params, str(step_dir))
  return _with_dtype(model, dtype), {'params': params}


def _with_dtype(model: model_lib.ESTRNN, dtype: Any) -> model_lib.ESTRNN:
  return model if dtype is None else model.clone(dtype=jnp.dtype(dtype))


def _select_step(workdir: epath.Path, *, which: str, step: int | None) -> epath.Path:
  manager = checkpoint_manager(workdir, read_only=True)
  try:
    steps = manager.all_steps()
    if not steps:
      raise FileNotFoundError(f'{workdir}: the training run has no complete checkpoint in {CHECKPOINTS_DIR}/.')
    if step is not None:
      if step not in steps:
        raise FileNotFoundError(f'{workdir}: no checkpoint for step {step}; available: {sorted(steps)}.')
      chosen = step
    elif which == 'latest':
      chosen = manager.latest_step()
    elif which == 'best':
      with_metrics = [s for s in steps if manager.metrics(s) is not None]
      if not with_metrics:
        raise FileNotFoundError(f'{workdir}: no checkpoint carries validation metrics (no evaluation ran before '
                                "a save); use which='latest' or an explicit step.")
      chosen = manager.best_step()
    else:
      raise ValueError(f"which must be 'latest' or 'best', got {which!r}.")
  finally:
    manager.close()
  logging.info('Restoring step %d of %s (%s).', chosen, workdir, 'requested' if step is not None else which)
  return workdir / CHECKPOINTS_DIR / str(chosen)


def _read_model_config(directories: list[epath.Path], path: epath.Path) -> model_lib.ESTRNN:
  for directory in directories:
    config_file = directory / MODEL_CONFIG_FILE
    if config_file.exists():
      try:
        fields = json.loads(config_file.read_text())
      except json.JSONDecodeError as e:
        raise ValueError(f'{config_file}: not valid JSON ({e}).') from None
      return model_lib.ESTRNN.from_config(fields, source=str(config_file))
  raise FileNotFoundError(f'{path}: no {MODEL_CONFIG_FILE} next to the checkpoint (looked in '
                          f'{", ".join(str(d) for d in directories)}); the checkpoint is incomplete.')


def _restore_params(state_dir: epath.Path, model: model_lib.ESTRNN, sharding: jax.sharding.Sharding | None):
  """Restores only `params` from a state pytree, checked against the model's parameter shapes."""
  abstract = model_lib.abstract_params(model)
  if sharding is None:
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), abstract)
    target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), abstract)
  else:
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=sharding), abstract)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)
  _check_shapes(abstract, {name: shape for name, (shape, _) in saved_arrays(state_dir).items()}, state_dir)
  with ocp.PyTreeCheckpointer() as checkpointer:
    try:
      restored = checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(
          item={'params': target}, restore_args={'params': restore_args}, partial_restore=True))
    except Exception as e:  # pylint: disable=broad-exception-caught  (shapes are checked: the files are bad)
      raise damaged(state_dir.parent, e, 'Choose another checkpoint step, or restore this one from a copy.'
                    ) from None
  return restored['params']


def _check_shapes(abstract: Any, saved: Mapping[str, tuple[int, ...]], where: epath.Path) -> None:
  """Raises ValueError naming the first parameter of `abstract` that `saved` ({name: shape}) lacks or shapes
  otherwise."""
  for key, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    name = 'params.' + leaf_name(key)
    if saved.get(name) != tuple(leaf.shape):
      found = 'missing' if name not in saved else saved[name]
      raise ValueError(f'{where}: parameter {jax.tree_util.keystr(key)} is {found}, the model expects '
                       f'{tuple(leaf.shape)}.')
