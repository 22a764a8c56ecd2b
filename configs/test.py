r"""Tiny config for CI and unit tests: a 4-feature, 2-block ESTRNN on `synthetic_blur/tiny` (64x64 frames).

  python -m estrnn_jax.main --config=configs/test.py --workdir=/tmp/estrnn_test

Runs a few steps in seconds on a CPU (most of it compilation). Numbers mean nothing; it exercises every path.
"""

import ml_collections

from configs import default as default_lib


def get_config() -> ml_collections.ConfigDict:
  """Tiny, fast config; see `configs/default.py` for what each field means."""
  config = default_lib.get_config()
  config.batch_size = 8
  config.num_train_steps = 3

  config.model.n_features = 4
  config.model.n_blocks = 2

  config.dataset.name = 'synthetic_blur/tiny'
  config.dataset.window_frames = 5
  config.dataset.crop_size = 32
  config.dataset.num_workers = 0

  config.loss = 'charbonnier_color'
  # Constant: the train step then compiles to the same program whatever num_train_steps is (tests share it).
  config.optimizer.schedule = 'constant'
  config.optimizer.learning_rate = 3e-3
  config.optimizer.warmup_steps = 0

  config.eval.max_sequences = 1
  config.eval.num_image_strips = 2

  config.log_every_steps = 1
  config.eval_every_steps = 0
  config.checkpoint_every_steps = 2
  return config
