"""The paper's recipe as one function, `paper_config`, and its pieces; the dataset configs (`bsd.py`, `gopro.py`,
`reds.py`, `dvd.py`) pass only what differs. Not a config itself.

Epochs become steps the way the reference's data loaders count them: one training sample is every window of
`window_frames` (T) consecutive frames inside a sequence, so an epoch has `sum over sequences (length - T + 1)`
samples, i.e. `total_frames - (T - 1) * num_sequences`, and `samples / batch_size` steps (BSD's loader drops
the last partial batch, GOPRO's and REDS's keep it).
"""

import math

import ml_collections

from configs import presets

PAPER_EPOCHS = 500


def parse_arg(arg: str | None, *, settings: tuple[str, ...] = (), default_setting: str | None = None
              ) -> tuple[str | None, str, bool]:
  """'2ms16ms,b9c60,runlocal' -> (setting, model preset, runlocal). Unknown or repeated tokens raise ValueError.

  The model preset is one of `presets.MODEL_PRESETS` (default b15c80)."""
  tokens = [t.strip().lower() for t in (arg or '').split(',') if t.strip()]
  setting, size, runlocal = None, None, False
  for token in tokens:
    if token in settings and setting is None:
      setting = token
    elif token in presets.MODEL_PRESETS and size is None:
      size = token
    elif token == 'runlocal' and not runlocal:
      runlocal = True
    else:
      allowed = [*settings, *presets.MODEL_PRESETS, 'runlocal']
      raise ValueError(f'Bad config argument {arg!r}: unexpected or repeated {token!r}; '
                       f'use a comma-separated subset of {allowed}.')
  return setting or default_setting, size or 'b15c80', runlocal


def set_model_size(config: ml_collections.ConfigDict, size: str) -> None:
  """The paper's model of preset `size` (`presets.MODEL_PRESETS`), no input skip (as the official weights)."""
  presets.MODEL_PRESETS[size]().apply(config)


def steps_per_epoch(*, total_frames: int, num_sequences: int, window_frames: int, batch_size: int,
                    drop_last: bool) -> int:
  """Optimiser steps in one reference epoch (see module docstring)."""
  samples = total_frames - (window_frames - 1) * num_sequences
  return samples // batch_size if drop_last else math.ceil(samples / batch_size)


def paper_config(arg: str | None, *, dataset: str, train_frames: int, train_sequences: int, learning_rate: float,
                 schedule: str, loss: str, batch_size: int, drop_last: bool, eval_split: str, test_split: str,
                 eval_every_epochs: int, checkpoint_every_epochs: int, settings: tuple[str, ...] = (),
                 default_setting: str | None = None) -> ml_collections.ConfigDict:
  """The paper's training recipe on one dataset; the arguments are what differs between datasets.

  Shared (paper Sec. 5.1 and the reference's code): Adam (0.9, 0.999, 1e-8) with no warm-up, 500 epochs of 8-frame
  windows cut to 256x256 crops with random flips, gradient-norm clipping at 20, seed 39, the paper's model of the
  preset named in `arg` (no input skip, as the official weights). Everything else is `configs/default.py`'s.

  Args:
    arg: '[<setting>,][<model preset>][,runlocal]' (`parse_arg`; settings only where `settings` is given).
    dataset: TFDS name; '{setting}' in it becomes the setting (BSD: 'bsd/{setting}').
    train_frames, train_sequences: the train split's size (epochs -> steps, module docstring).
    learning_rate: the peak rate. schedule: 'cosine' (annealed to 1e-8 and held within each epoch, BSD) or
      'step' (halved at epochs 200 and 400, GOPRO/REDS).
    loss: 'charbonnier_color' (BSD) or 'mse' (GOPRO/REDS). batch_size: windows per step.
    drop_last: whether the reference's loader drops an epoch's last partial batch (BSD's does).
    eval_split: validated during training; test_split: what `estrnn_jax.evaluate` scores (the paper's split).
    eval_every_epochs, checkpoint_every_epochs: how often, in epochs.
  """
  from configs import default as default_lib  # pylint: disable=g-import-not-at-top
  setting, size, runlocal = parse_arg(arg, settings=settings, default_setting=default_setting)
  config = default_lib.get_config()
  config.seed = 39
  config.batch_size = batch_size
  set_model_size(config, size)
  config.model.unroll = False  # sized for accelerators: the cell runs as a scan (see configs/default.py)

  config.dataset.name = dataset.format(setting=setting)
  config.dataset.window_frames = 8
  config.dataset.crop_size = 256
  config.dataset.num_workers = 8

  config.loss = loss
  epoch = steps_per_epoch(total_frames=train_frames, num_sequences=train_sequences,
                          window_frames=config.dataset.window_frames, batch_size=batch_size, drop_last=drop_last)
  config.num_train_steps = PAPER_EPOCHS * epoch
  config.optimizer.warmup_steps = 0
  config.optimizer.learning_rate = learning_rate
  config.optimizer.schedule = schedule
  config.optimizer.steps_per_epoch = epoch
  if schedule == 'step':
    config.optimizer.milestones = (200 * epoch, 400 * epoch)
  elif schedule != 'cosine':
    raise ValueError(f"paper_config: schedule must be 'cosine' or 'step', got {schedule!r}.")

  config.eval.split = eval_split
  config.eval.test_split = test_split
  config.eval.max_sequences = 0
  config.eval.rounding = 'truncate'

  config.log_every_steps = 100
  config.eval_every_steps = eval_every_epochs * epoch
  config.checkpoint_every_steps = checkpoint_every_epochs * epoch
  config.keep_checkpoints = 3

  if runlocal:
    apply_runlocal(config)
  return config


def apply_runlocal(config: ml_collections.ConfigDict) -> None:
  """Shrinks a paper config to prove the whole path works on a laptop (same model, tiny everything else)."""
  config.update_from_flattened_dict({
      'batch_size': 2, 'num_train_steps': 20, 'log_every_steps': 1, 'eval_every_steps': 10,
      'checkpoint_every_steps': 10,
      'model.unroll': True,  # a CPU: unrolled cell steps train ~10x faster there
      'dataset.crop_size': 64, 'dataset.num_workers': 0,
      'eval.max_sequences': 1, 'eval.chunk_frames': 10,
  })
