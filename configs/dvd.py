r"""ESTRNN on DVD (Su et al. 2017, "DeepVideoDeblurring"; paper Table 8's DVD row and column).

Argument: a comma-separated subset of a model preset (`b15c80` (default) or any other of configs/presets.py:
Tables 2, 5 and 6), a noise level `noise<sigma>` (Fig. 15, below) and `runlocal`:

  python -m estrnn_jax.main --config=configs/dvd.py:b15c80 --workdir=gs://BUCKET/estrnn/dvd_b15c80
  python -m estrnn_jax.evaluate --config=configs/dvd.py:b15c80 --checkpoint=WORKDIR --which=best

Data: `dvd` must be built first (manual download; see datasets/dvd): the quantitative set, split as the DBN
authors did (10 test sequences, 61 train).

Recipe: the paper does not state a DVD recipe; this uses its synthetic-dataset (GOPRO/REDS) recipe, since DVD's
blur is synthesised the same way (averaged high-speed frames): Adam (0.9, 0.999, 1e-8), lr 1e-4 halved at
epochs 200 and 400, 500 epochs, batch 4, 8-frame windows, 256x256 crops with random flips, MSE loss,
gradient-norm clipping at 20, seed 39. DVD has no validation split: it validates on the test split, as the
reference does for GOPRO.

Epochs -> steps: the train split has 61 sequences, 5708 frames. With 8-frame windows an epoch has
5708 - 7 x 61 = 5281 samples = ceil(5281 / 4) = 1321 steps, so 500 epochs = 660,500 steps and the
milestones are steps 264,200 and 528,400.

Hardware (compiled for each with `python -m estrnn_jax.plan`; README "Will it fit?"): the paper's batch 4 splits
over 1, 2 or 4 chips: one GPU, a TPU v4-8 (4 chips) or a v5litepod-4, at the memory of 4 windows (B15C80: one
window of 8x256^2 needs 2.4 GiB on an H100). It cannot split over 8 chips (a v5litepod-8, 8 GPUs): there, plan
prints `--config.batch_size=8`, which changes the recipe (scale the learning rate if you accept that).

Expected result (reference protocol on the test split, paper Table 8): B15C80 trained on DVD 30.68 dB / 0.897;
the blurry input scores 27.23 / 0.813.

Fig. 15 (Sec. 5.4.3): models trained on DVD "by adding Gaussian noise to the RGB space of blurred images with
different standard deviations", to see whether noise narrows the gap between synthetic and real blur (scored on
BSD). `noise<sigma>` adds Gaussian noise of standard deviation sigma 8-bit levels to the blurry training frames
only (`config.dataset.noise_std`; fresh for every window, reproducible on resume; the targets stay clean). The
paper's text lost its sigma values and it reports the figure visually only, so the sweep `NOISE_SWEEP` =
1, 2, 4, 8, 16 levels (doubling from about a real sensor's read noise to heavy noise) is ours:

  python -m estrnn_jax.main --config=configs/dvd.py:noise4 --workdir=gs://BUCKET/estrnn/dvd_noise4
  python -m estrnn_jax.cross_evaluate --checkpoints dvd=DVD_WORKDIR,dvd_noise4=gs://BUCKET/estrnn/dvd_noise4 \
      --datasets bsd/2ms16ms,dvd --output_dir fig15

(one `name=workdir` row per noise level; the BSD column is the figure's question, the DVD column shows what the
noise costs on the synthetic test set.)
"""

import ml_collections

from configs import recipes

TRAIN_SEQUENCES, TRAIN_FRAMES = 61, 5708
# Fig. 15's noise levels (ours; see the module docstring), in 8-bit levels, as `noise<sigma>` argument tokens.
NOISE_SWEEP = (1, 2, 4, 8, 16)
NOISE_SETTINGS = tuple(f'noise{sigma}' for sigma in NOISE_SWEEP)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """DVD config for `arg` = '<model preset>[,noise<sigma>][,runlocal]' (see module docstring)."""
  config = recipes.paper_config(
      arg, dataset='dvd', train_frames=TRAIN_FRAMES, train_sequences=TRAIN_SEQUENCES, learning_rate=1e-4,
      schedule='step', loss='mse', batch_size=4, drop_last=False,
      eval_split='test', test_split='test',
      eval_every_epochs=20, checkpoint_every_epochs=2, settings=NOISE_SETTINGS)
  noise, _, _ = recipes.parse_arg(arg, settings=NOISE_SETTINGS)
  if noise is not None:
    config.dataset.noise_std = float(noise.removeprefix('noise'))
  return config
