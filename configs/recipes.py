"""Pieces shared by the paper configs (`bsd.py`, `gopro.py`, `reds.py`); not a config itself.

Epochs become steps the way the reference's data loaders count them: one training sample is every window of
`frames` consecutive frames inside a sequence, so an epoch has `sum over sequences (length - frames + 1)`
samples, i.e. `total_frames - (frames - 1) * num_sequences`, and `samples / batch_size` steps (BSD's loader drops
the last partial batch, GOPRO's and REDS's keep it).
"""

import math

import ml_collections

from configs import presets


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


def steps_per_epoch(*, total_frames: int, num_sequences: int, frames: int, batch_size: int,
                    drop_last: bool) -> int:
  """Optimiser steps in one reference epoch (see module docstring)."""
  samples = total_frames - (frames - 1) * num_sequences
  return samples // batch_size if drop_last else math.ceil(samples / batch_size)


def gopro_reds_recipe(arg: str | None, *, dataset: str, train_frames: int, train_sequences: int,
                      eval_split: str, eval_every_epochs: int, checkpoint_every_epochs: int
                      ) -> ml_collections.ConfigDict:
  """The paper's GOPRO/REDS recipe: Adam lr 1e-4 halved at epochs 200 and 400 of 500, batch 4, 8-frame windows,
  256x256 crops, MSE, clip 20, seed 39 (the reference keeps the last partial batch of an epoch).

  `arg` is '<model size>[,runlocal]'; the dataset's train split has `train_frames` frames in `train_sequences`.
  """
  from configs import default as default_lib  # pylint: disable=g-import-not-at-top
  _, size, runlocal = parse_arg(arg)
  config = default_lib.get_config()
  config.seed = 39
  config.batch_size = 4

  set_model_size(config, size)

  config.dataset.name = dataset
  config.dataset.frames = 8
  config.dataset.crop_size = 256
  config.dataset.num_workers = 8

  config.loss = 'mse'
  epoch = steps_per_epoch(total_frames=train_frames, num_sequences=train_sequences, frames=config.dataset.frames,
                          batch_size=config.batch_size, drop_last=False)
  config.num_train_steps = 500 * epoch
  config.optimizer.b1, config.optimizer.b2, config.optimizer.eps = 0.9, 0.999, 1e-8  # Adam, as the reference
  config.optimizer.warmup_steps = 0
  config.optimizer.learning_rate = 1e-4
  config.optimizer.schedule = 'step'
  config.optimizer.milestones = (200 * epoch, 400 * epoch)
  config.optimizer.decay_factor = 0.5
  config.optimizer.steps_per_epoch = epoch
  config.optimizer.grad_clip_norm = 20.0
  config.unroll_time = False  # sized for accelerators: the cell runs as a scan (see configs/default.py)

  config.eval.split = eval_split
  config.eval.test_split = eval_split
  config.eval.protocol = 'reference'
  config.eval.max_sequences = 0
  config.eval.rounding = 'truncate'

  config.log_every_steps = 100
  config.eval_every_steps = eval_every_epochs * epoch
  config.checkpoint_every_steps = checkpoint_every_epochs * epoch
  config.keep_checkpoints = 3
  config.keep_best_checkpoints = 1

  if runlocal:
    apply_runlocal(config)
  return config


def apply_runlocal(config: ml_collections.ConfigDict) -> None:
  """Shrinks a paper config to prove the whole path works on a laptop (same model, tiny everything else)."""
  config.batch_size = 2
  config.num_train_steps = 20
  config.unroll_time = True  # a CPU: unrolled cell steps train ~10x faster there
  config.dataset.crop_size = 64
  config.dataset.num_workers = 0
  config.eval.max_sequences = 1
  config.eval.chunk_frames = 10
  config.log_every_steps = 1
  config.eval_every_steps = 10
  config.checkpoint_every_steps = 10
