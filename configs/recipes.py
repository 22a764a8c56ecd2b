"""Pieces shared by the paper configs (`bsd.py`, `gopro.py`, `reds.py`); not a config itself.

Epochs become steps the way the reference's data loaders count them: one training sample is every window of
`frames` consecutive frames inside a sequence, so an epoch has `sum over sequences (length - frames + 1)`
samples, i.e. `total_frames - (frames - 1) * num_sequences`, and `samples / batch_size` steps (BSD's loader drops
the last partial batch, GOPRO's and REDS's keep it).
"""

import math

import ml_collections

# Paper name -> (n_features, n_blocks). The paper's "C" is 5 x n_features.
MODEL_SIZES = {'b15c80': (16, 15), 'b9c60': (12, 9)}


def parse_arg(arg: str | None, *, settings: tuple[str, ...] = (), default_setting: str | None = None
              ) -> tuple[str | None, str, bool]:
  """'2ms16ms,b9c60,runlocal' -> (setting, model size, runlocal). Unknown or repeated tokens raise ValueError."""
  tokens = [t.strip().lower() for t in (arg or '').split(',') if t.strip()]
  setting, size, runlocal = None, None, False
  for token in tokens:
    if token in settings and setting is None:
      setting = token
    elif token in MODEL_SIZES and size is None:
      size = token
    elif token == 'runlocal' and not runlocal:
      runlocal = True
    else:
      allowed = [*settings, *MODEL_SIZES, 'runlocal']
      raise ValueError(f'Bad config argument {arg!r}: unexpected or repeated {token!r}; '
                       f'use a comma-separated subset of {allowed}.')
  return setting or default_setting, size or 'b15c80', runlocal


def set_model_size(config: ml_collections.ConfigDict, size: str) -> None:
  config.model.n_features, config.model.n_blocks = MODEL_SIZES[size]


def steps_per_epoch(*, total_frames: int, num_sequences: int, frames: int, batch_size: int,
                    drop_last: bool) -> int:
  """Optimiser steps in one reference epoch (see module docstring)."""
  samples = total_frames - (frames - 1) * num_sequences
  return samples // batch_size if drop_last else math.ceil(samples / batch_size)


def apply_runlocal(config: ml_collections.ConfigDict) -> None:
  """Shrinks a paper config to prove the whole path works on a laptop (same model, tiny everything else)."""
  config.batch_size = 2
  config.num_train_steps = 20
  config.dataset.crop_size = 64
  config.dataset.num_workers = 0
  config.eval.max_sequences = 1
  config.eval.chunk_frames = 10
  config.log_every_steps = 1
  config.eval_every_steps = 10
  config.checkpoint_every_steps = 10
