r"""The paper's REDS experiment (synthetic blur, 1280x720; results on the public validation split).

Argument: a comma-separated subset of a model size (`b15c80` (default), `b9c60`) and `runlocal`:

  python -m estrnn_jax.main --config=configs/reds.py:b15c80 --workdir=gs://BUCKET/estrnn/reds_b15c80
  python -m estrnn_jax.evaluate --config=configs/reds.py:b15c80 --checkpoint=WORKDIR --which=best

Data: `reds` must be built first (manual download; see datasets/reds).

Recipe (paper, GOPRO/REDS): Adam (0.9, 0.999, 1e-8), lr 1e-4 halved at epochs 200 and 400, 500 epochs, batch 4,
8-frame windows, 256x256 crops with random flips, MSE loss, gradient-norm clipping at 20, seed 39. REDS's test
ground truth is not public, so validation doubles as the reported split (as the paper).

Epochs -> steps: the train split has 240 sequences x 100 frames. With 8-frame windows an epoch has
240 x 93 = 22,320 samples = 5580 steps of batch 4, so 500 epochs = 2,790,000 steps and the milestones are
steps 1,116,000 and 2,232,000.

Hardware: sized for a TPU v4-32 / v5e-32 slice or 8 GPUs (at batch 4 one step is small: scale `batch_size` up,
and the learning rate with it, if you trade faithfulness for speed).

Expected result (reference protocol on the validation split): B15C80 32.82 dB / 0.915 (paper Table 8);
B9C60 31.64 dB / 0.8930 (Table 2). The blurry input scores 26.28 / 0.769 (Table 8).
"""

import ml_collections

from configs import default as default_lib
from configs import recipes

TRAIN_SEQUENCES, TRAIN_FRAMES_PER_SEQUENCE = 240, 100
EPOCHS = 500
MILESTONE_EPOCHS = (200, 400)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """REDS config for `arg` = '<model size>[,runlocal]' (see module docstring)."""
  _, size, runlocal = recipes.parse_arg(arg)
  config = default_lib.get_config()
  config.seed = 39
  config.batch_size = 4

  recipes.set_model_size(config, size)
  config.model.past_frames = 2
  config.model.future_frames = 2

  config.dataset.name = 'reds'
  config.dataset.frames = 8
  config.dataset.crop_size = 256
  config.dataset.num_workers = 8

  config.loss = 'mse'
  steps_per_epoch = recipes.steps_per_epoch(
      total_frames=TRAIN_SEQUENCES * TRAIN_FRAMES_PER_SEQUENCE, num_sequences=TRAIN_SEQUENCES,
      frames=config.dataset.frames, batch_size=config.batch_size, drop_last=False)  # 5580
  config.num_train_steps = EPOCHS * steps_per_epoch  # 2,790,000
  config.optimizer.b1, config.optimizer.b2, config.optimizer.eps = 0.9, 0.999, 1e-8  # Adam, as the reference
  config.optimizer.warmup_steps = 0
  config.optimizer.learning_rate = 1e-4
  config.optimizer.schedule = 'step'
  config.optimizer.milestones = tuple(e * steps_per_epoch for e in MILESTONE_EPOCHS)  # (1,116,000, 2,232,000)
  config.optimizer.decay_factor = 0.5
  config.optimizer.steps_per_epoch = steps_per_epoch
  config.optimizer.grad_clip_norm = 20.0

  config.eval.split = 'validation'
  config.eval.test_split = 'validation'
  config.eval.protocol = 'reference'
  config.eval.max_sequences = 0
  config.eval.rounding = 'truncate'

  config.log_every_steps = 100
  config.eval_every_steps = 10 * steps_per_epoch
  config.checkpoint_every_steps = steps_per_epoch
  config.keep_checkpoints = 3
  config.keep_best_checkpoints = 1

  if runlocal:
    recipes.apply_runlocal(config)
  return config
