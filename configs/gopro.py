r"""The paper's GOPRO experiment (synthetic blur, `blur_gamma` frames downsampled to 960x540).

Argument: a comma-separated subset of a model size (`b15c80` (default), `b9c60`) and `runlocal`:

  python -m estrnn_jax.main --config=configs/gopro.py:b15c80 --workdir=gs://BUCKET/estrnn/gopro_b15c80
  python -m estrnn_jax.evaluate --config=configs/gopro.py:b15c80 --checkpoint=WORKDIR --which=best

Data: `gopro/blur_gamma_960x540` must be built first (manual download; see datasets/gopro).

Recipe (paper, GOPRO/REDS): Adam (0.9, 0.999, 1e-8), lr 1e-4 halved at epochs 200 and 400, 500 epochs, batch 4,
8-frame windows, 256x256 crops with random flips, MSE loss, gradient-norm clipping at 20 (the reference's trainer
always clips), seed 39. The reference has no separate validation split for GOPRO: it validates on the test split.

Epochs -> steps: the train split has 22 sequences, 2103 frames. With 8-frame windows an epoch has
2103 - 7 x 22 = 1949 samples = ceil(1949 / 4) = 488 steps (the reference keeps the last partial batch), so 500
epochs = 244,000 steps and the milestones are steps 97,600 and 195,200.

Hardware: sized for a TPU v4-8 / v5e-8 or one modern GPU.

Expected result (reference protocol on the test split): B15C80 31.27 dB / 0.903 (paper Tables 3 and 8);
B9C60 30.12 dB / 0.8837 (Table 2). The blurry input scores 25.47 / 0.785 (Table 8).
"""

import ml_collections

from configs import default as default_lib
from configs import recipes

TRAIN_SEQUENCES, TRAIN_FRAMES = 22, 2103
EPOCHS = 500
MILESTONE_EPOCHS = (200, 400)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """GOPRO config for `arg` = '<model size>[,runlocal]' (see module docstring)."""
  _, size, runlocal = recipes.parse_arg(arg)
  config = default_lib.get_config()
  config.seed = 39
  config.batch_size = 4

  recipes.set_model_size(config, size)
  config.model.past_frames = 2
  config.model.future_frames = 2

  config.dataset.name = 'gopro/blur_gamma_960x540'
  config.dataset.frames = 8
  config.dataset.crop_size = 256
  config.dataset.num_workers = 8

  config.loss = 'mse'
  steps_per_epoch = recipes.steps_per_epoch(
      total_frames=TRAIN_FRAMES, num_sequences=TRAIN_SEQUENCES, frames=config.dataset.frames,
      batch_size=config.batch_size, drop_last=False)  # 488
  config.num_train_steps = EPOCHS * steps_per_epoch  # 244,000
  config.optimizer.b1, config.optimizer.b2, config.optimizer.eps = 0.9, 0.999, 1e-8  # Adam, as the reference
  config.optimizer.warmup_steps = 0
  config.optimizer.learning_rate = 1e-4
  config.optimizer.schedule = 'step'
  config.optimizer.milestones = tuple(e * steps_per_epoch for e in MILESTONE_EPOCHS)  # (97,600, 195,200)
  config.optimizer.decay_factor = 0.5
  config.optimizer.steps_per_epoch = steps_per_epoch
  config.optimizer.grad_clip_norm = 20.0

  config.eval.split = 'test'
  config.eval.test_split = 'test'
  config.eval.protocol = 'reference'
  config.eval.max_sequences = 0
  config.eval.rounding = 'truncate'

  config.log_every_steps = 100
  config.eval_every_steps = 20 * steps_per_epoch
  config.checkpoint_every_steps = 2 * steps_per_epoch
  config.keep_checkpoints = 3
  config.keep_best_checkpoints = 1

  if runlocal:
    recipes.apply_runlocal(config)
  return config
