r"""The paper's REDS experiment (synthetic blur, 1280x720; results on the public validation split).

Argument: a comma-separated subset of a model preset (`b15c80` (default), or any of configs/presets.py) and
`runlocal`:

  python -m estrnn_jax.main --config=configs/reds.py:b15c80 --workdir=gs://BUCKET/estrnn/reds_b15c80
  python -m estrnn_jax.evaluate --config=configs/reds.py:b15c80 --checkpoint=WORKDIR --which=best

Data: `reds` must be built first (manual download; see datasets/reds).

Recipe (paper, GOPRO/REDS): Adam (0.9, 0.999, 1e-8), lr 1e-4 halved at epochs 200 and 400, 500 epochs, batch 4,
8-frame windows, 256x256 crops with random flips, MSE loss, gradient-norm clipping at 20, seed 39. REDS's test
ground truth is not public, so validation doubles as the reported split (as the paper).

Training sequences: the paper trained "only on first-half training sequences of REDS (120 sequences)"
(Sec. 5.1), so `dataset.train_sequences = 120`: the first 120 of the split's 240 (000 ... 119).

Epochs -> steps: 120 sequences x 100 frames. With 8-frame windows an epoch has 120 x 93 = 11,160 samples =
2790 steps of batch 4, so 500 epochs = 1,395,000 steps and the milestones are steps 558,000 and 1,116,000.

Hardware (compiled for each with `python -m estrnn_jax.plan`; README "Will it fit?"): the paper's batch 4 splits
over 1, 2 or 4 chips: one GPU, a TPU v4-8 (4 chips) or a v5litepod-4, at the memory of 4 windows (B15C80: one
window of 8x256^2 needs 2.4 GiB on an H100). It cannot split over 8 chips (a v5litepod-8, 8 GPUs): there, plan
prints `--config.batch_size=8`, which changes the recipe (scale the learning rate if you accept that).

Expected result (reference protocol on the validation split): B15C80 32.82 dB / 0.915 (paper Table 8);
B9C60 31.64 dB / 0.8930 (Table 2). The blurry input scores 26.28 / 0.769 (Table 8).
"""

import ml_collections

from configs import recipes

# The paper's REDS training set: the first 120 of the 240 training sequences, 100 frames each.
TRAIN_SEQUENCES, TRAIN_FRAMES_PER_SEQUENCE = 120, 100


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """REDS config for `arg` = '<model preset>[,runlocal]' (see module docstring)."""
  # 2790 steps per epoch: 1,395,000 steps, milestones at steps 558,000 and 1,116,000.
  config = recipes.paper_config(
      arg, dataset='reds', train_frames=TRAIN_SEQUENCES * TRAIN_FRAMES_PER_SEQUENCE,
      train_sequences=TRAIN_SEQUENCES, learning_rate=1e-4, schedule='step', loss='mse', batch_size=4, drop_last=False,
      eval_split='validation', test_split='validation', eval_every_epochs=10, checkpoint_every_epochs=1)
  config.dataset.train_sequences = TRAIN_SEQUENCES
  return config
