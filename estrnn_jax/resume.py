"""Resuming a training workdir: the new config must describe the run its checkpoints belong to.

A workdir records the run it holds in `config.json` (the whole config) and `model_config.json` (the ESTRNN
fields). A resumed run may change how it trains from here on (`RESUMABLE_FIELDS`: the step count, the learning
rate schedule, the evaluation / checkpoint / log cadence, where data and caches live); those changes are logged.
Any other change would resume the checkpoints as a different model or a different run (a changed shape fails
deep inside Orbax, a changed `residual` or `dtype` silently computes something else, and the rewritten
config.json would mislabel the checkpoints), so it is refused before anything in the workdir is written.

The checkpoint itself is checked too (`check_saved_state`): the arrays it holds (names, shapes, dtypes, read from
Orbax's metadata) must be those the new run's state has. That is what catches a changed model when the JSON
files are gone, before anything is restored or written.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any

from etils import epath
import jax
import numpy as np

from estrnn_jax import checkpoints
from estrnn_jax import model as model_lib

# Dotted config fields a resumed run may change (a trailing '.' covers a whole section).
RESUMABLE_FIELDS = (
    'num_train_steps',
    'optimizer.learning_rate', 'optimizer.end_learning_rate', 'optimizer.schedule', 'optimizer.steps_per_epoch',
    'optimizer.warmup_steps', 'optimizer.milestones', 'optimizer.decay_factor',
    'eval.', 'eval_every_steps', 'checkpoint_every_steps', 'log_every_steps', 'keep_checkpoints',
    'keep_best_checkpoints',
    'dataset.data_dir', 'dataset.num_workers', 'compilation_cache_dir',
    'model.remat', 'model.unroll',  # how the same computation is scheduled, not what it computes
    'init_from',                    # only read by a fresh run; a resume continues from its own checkpoint
    'grad_accum_steps',             # the same update, computed in more or fewer pieces
)
# Config fields renamed since a workdir may have been written: old dotted name -> new one (compared as the new).
RENAMED_FIELDS = {'unroll_time': 'model.unroll', 'dataset.frames': 'dataset.window_frames'}
# ESTRNN fields that change how it runs, not what it computes.
RESUMABLE_MODEL_FIELDS = ('remat', 'unroll')


class ResumeMismatchError(ValueError):
  """The new config differs from the workdir's in fields a resumed run cannot change."""


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
  """{'a': {'b': 1}} -> {'a.b': 1}, values normalised as JSON stores them (tuples become lists)."""
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping):
      out.update(flatten(value, f'{name}.'))
    else:
      out[name] = json.loads(json.dumps(value))
  return out


def is_resumable(field: str) -> bool:
  return any(field == allowed or (allowed.endswith('.') and field.startswith(allowed))
             for allowed in RESUMABLE_FIELDS)


def check(workdir: str, *, saved_config: Mapping[str, Any] | None, saved_model: Mapping[str, Any] | None,
          new_config: Mapping[str, Any], new_model: Mapping[str, Any]) -> list[str]:
  """Compares a workdir's saved configs with a new run's; returns the allowed changes, one line each.

  Args:
    workdir: named in the error.
    saved_config, new_config: whole configs as dicts (the saved one as read from config.json; None if absent).
    saved_model, new_model: ESTRNN fields (`checkpoints.model_config`), both with every field filled in (the
      saved one None if model_config.json is absent; then config.json's `model` section stands in).
  Raises:
    ResumeMismatchError: naming every refused field with both values, and what to do instead.
  """
  refused, allowed = [], []
  saved_flat = {RENAMED_FIELDS.get(name, name): value for name, value in flatten(saved_config or {}).items()}
  new_flat = flatten(new_config)
  if saved_model is not None:
    for name in sorted(set(saved_model) | set(new_model)):
      old, new = saved_model.get(name), new_model.get(name)
      if old != new:
        (allowed if name in RESUMABLE_MODEL_FIELDS else refused).append(
            f'model.{name}: {old!r} in the workdir, {new!r} now')
  for name in sorted(set(saved_flat) | set(new_flat)):
    if saved_model is not None and name.startswith('model.') and name[len('model.'):] in new_model:
      continue   # compared above, through the fields the model was built from
    if name not in saved_flat:
      allowed.append(f'{name}: new field (not in the workdir\'s config), {new_flat[name]!r}')
    elif name not in new_flat:
      allowed.append(f'{name}: no longer in the config (was {saved_flat[name]!r})')
    elif saved_flat[name] != new_flat[name]:
      change = f'{name}: {saved_flat[name]!r} in the workdir, {new_flat[name]!r} now'
      (allowed if is_resumable(name) else refused).append(change)
  if refused:
    raise ResumeMismatchError(
        f'{workdir} holds checkpoints of a different run; refusing to resume it (the workdir is unchanged). '
        f'Changed: {"; ".join(refused)}. Resume with the workdir\'s values, or start a fresh --workdir (to start '
        f'from these weights there: --config.init_from={workdir}).')
  return allowed


def check_saved_state(workdir: epath.PathLike, step: int, abstract_state: Any) -> None:
  """Raises ResumeMismatchError unless checkpoint `step` of `workdir` holds exactly the arrays of
  `abstract_state` (the new run's train state, as shapes): same names, shapes and dtypes. Reads metadata only.

  Raises:
    ResumeMismatchError: naming the differing arrays (parameters first) with both shapes.
    checkpoints.CheckpointDamagedError: the step's metadata cannot be read.
  """
  step_dir = epath.Path(workdir) / checkpoints.CHECKPOINTS_DIR / str(step)
  saved = checkpoints.saved_arrays(step_dir / checkpoints.STATE_ITEM)
  expected = {checkpoints.leaf_name(path): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
              for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
  differences = []
  for name in sorted(set(saved) | set(expected), key=lambda n: (not n.startswith('params.'), n)):
    theirs, ours = saved.get(name), expected.get(name)
    if theirs != ours:
      differences.append(f'{name}: {_describe_array(theirs)} saved, {_describe_array(ours)} now')
  if differences:
    shown = '; '.join(differences[:4]) + (f'; and {len(differences) - 4} more' if len(differences) > 4 else '')
    raise ResumeMismatchError(
        f'{workdir} holds checkpoints of a different model; refusing to resume it (the workdir is unchanged). '
        f'Step {step} does not fit the config: {shown}. Resume with the model the checkpoints were trained with '
        f'(its model_config.json is {"missing" if not _exists(workdir, checkpoints.MODEL_CONFIG_FILE) else "there"}'
        f'), or start a fresh --workdir.')


def _describe_array(array: tuple[tuple[int, ...], str] | None) -> str:
  return 'absent' if array is None else f'{array[1]}{list(array[0])}'


def _exists(workdir: epath.PathLike, name: str) -> bool:
  return (epath.Path(workdir) / name).exists()


def has_checkpoint(workdir: epath.PathLike) -> bool:
  """True when `workdir` holds a finished checkpoint step (Orbax names them by step; temporaries differ)."""
  directory = epath.Path(workdir) / checkpoints.CHECKPOINTS_DIR
  return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def _read_json(path: epath.Path) -> dict[str, Any] | None:
  if not path.exists():
    return None
  try:
    value = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ResumeMismatchError(f'{path}: not valid JSON ({e}); the workdir\'s record of its run is damaged.') from None
  if not isinstance(value, dict):
    raise ResumeMismatchError(f'{path}: expected a JSON object, found {type(value).__name__}.')
  return value


def check_workdir(workdir: epath.PathLike, config: Mapping[str, Any], model_config: Mapping[str, Any]) -> list[str]:
  """`check` against what `workdir` recorded, if it holds a checkpoint; reads only, writes nothing.

  Args:
    workdir: the training workdir.
    config: the new run's whole config (`config.to_dict()`); model_config: its `ESTRNN.to_config()`.
  Returns:
    The allowed changes, one line each ([] for a fresh workdir).
  """
  workdir = epath.Path(workdir)
  if not has_checkpoint(workdir):
    return []
  saved_config = _read_json(workdir / checkpoints.CONFIG_FILE)
  saved_model = _read_json(workdir / checkpoints.MODEL_CONFIG_FILE)
  if saved_model is not None:   # every field filled in: ones added since the run started take their defaults
    saved_model = model_lib.ESTRNN.from_config(
        saved_model, source=str(workdir / checkpoints.MODEL_CONFIG_FILE)).to_config()
  return check(str(workdir), saved_config=saved_config, saved_model=saved_model, new_config=config,
               new_model=model_config)
