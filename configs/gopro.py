r"""The paper's GOPRO experiment (synthetic blur, `blur_gamma` frames downsampled to 960x540).

Argument: a comma-separated subset of a model preset (`b15c80` (default) or any other of configs/presets.py:
Tables 2, 5 and 6) and `runlocal`:

  python -m estrnn_jax.main --config=configs/gopro.py:b15c80 --workdir=gs://BUCKET/estrnn/gopro_b15c80
  python -m estrnn_jax.evaluate --config=configs/gopro.py:b15c80 --checkpoint=WORKDIR --which=best

Data: `gopro/blur_gamma_960x540` must be built first (manual download; see datasets/gopro).

Recipe (paper, GOPRO/REDS): Adam (0.9, 0.999, 1e-8), lr 1e-4 halved at epochs 200 and 400, 500 epochs, batch 4,
8-frame windows, 256x256 crops with random flips, MSE loss, gradient-norm clipping at 20 (the reference's trainer
always clips), seed 39. The reference has no separate validation split for GOPRO: it validates on the test split.

Epochs -> steps: the train split has 22 sequences, 2103 frames. With 8-frame windows an epoch has
2103 - 7 x 22 = 1949 samples = ceil(1949 / 4) = 488 steps (the reference keeps the last partial batch), so 500
epochs = 244,000 steps and the milestones are steps 97,600 and 195,200.

Hardware (compiled for each with `python -m estrnn_jax.plan`; README "Will it fit?"): the paper's batch 4 splits
over 1, 2 or 4 chips: one GPU, a TPU v4-8 (4 chips) or a v5litepod-4, at the memory of 4 windows (B15C80: one
window of 8x256^2 needs 2.4 GiB on an H100). It cannot split over 8 chips (a v5litepod-8, 8 GPUs): there, plan
prints `--config.batch_size=8`, which changes the recipe (scale the learning rate if you accept that).

Expected result (reference protocol on the test split): B15C80 31.27 dB / 0.903 (paper Tables 3 and 8);
B9C60 30.12 dB / 0.8837 (Table 2). The blurry input scores 25.47 / 0.785 (Table 8).
"""

import ml_collections

from configs import recipes

TRAIN_SEQUENCES, TRAIN_FRAMES = 22, 2103


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """GOPRO config for `arg` = '<model preset>[,runlocal]' (see module docstring)."""
  # 488 steps per epoch: 244,000 steps, milestones at steps 97,600 and 195,200.
  return recipes.paper_config(
      arg, dataset='gopro/blur_gamma_960x540', train_frames=TRAIN_FRAMES,
      train_sequences=TRAIN_SEQUENCES, learning_rate=1e-4, schedule='step', loss='mse', batch_size=4, drop_last=False,
      eval_split='test', test_split='test', eval_every_epochs=20, checkpoint_every_epochs=2)
