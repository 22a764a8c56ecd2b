r"""The paper's BSD experiments (real-world blur, 640x480): one config per blur setting and model preset.

Argument: a comma-separated subset of a setting (`1ms8ms`, `2ms16ms` (default), `3ms24ms`), a model preset
(`b15c80` (default) or any other of configs/presets.py) and `runlocal` (shrinks everything but the model, to
check the path on a laptop):

  python -m estrnn_jax.main --config=configs/bsd.py:2ms16ms,b15c80 --workdir=gs://BUCKET/estrnn/bsd_2ms16ms

then score the best checkpoint on the test split as the paper does:

  python -m estrnn_jax.evaluate --config=configs/bsd.py:2ms16ms --checkpoint=WORKDIR --which=best

Data: `bsd/<setting>` must be built first (manual download; see datasets/bsd).

Recipe (the reference's code defaults, which are the paper's BSD recipe): Adam (0.9, 0.999, 1e-8), lr 5e-4,
batch 8, 8-frame windows, 256x256 crops with random flips, cosine annealing to 1e-8 over 500 epochs stepped once
per epoch, gradient-norm clipping at 20, Charbonnier-colour loss, seed 39, each setting trained from scratch.

Epochs -> steps: BSD's train split has 60 sequences x 100 frames. With 8-frame windows an epoch has
60 x (100 - 8 + 1) = 5580 samples = 697 steps of batch 8 (the reference drops the last partial batch), so 500
epochs = 348,500 steps; the cosine holds its value for each block of 697 steps.

Hardware (compiled for each with `python -m estrnn_jax.plan`; README "Will it fit?"): batch 8 splits over 1, 2,
4 or 8 chips. B15C80 (2.5 M parameters, 4.3 TFLOP per step of forward + backward) needs 19.0 GiB on one H100 or
H200, 2.4 GiB per GPU on 8, and 3.9 GiB per chip of a v5litepod-8's 16 GiB.
Expect days, not hours, for the full 500 epochs, as the reference (which trained on GPUs).

Expected result (paper Table 7, ESTRNN B15C80, reference protocol on the test split): 1ms8ms 33.36 dB / 0.937,
2ms16ms 31.95 dB / 0.925, 3ms24ms 31.39 dB / 0.926. The blurry input scores 26.64 / 0.818 on 2ms16ms (Table 8).
The paper gives no BSD number for B9C60; expect it below B15C80.

RAW (`<setting>_raw`, e.g. `configs/bsd.py:2ms16ms_raw`): the official ESTRNN-RAW (`model.input='raw'`, same
presets) on `bsd/<setting>_raw`, the 16-bit Bayer frames of the full release (built like the RGB set:
`python -m datasets.build --dataset bsd/2ms16ms_raw --manual_dir ...`), with the same recipe except the learning
rate, 3e-4: the official code's RAW experiment is `ESTRNN_BSD_RAW_2ms16ms_3e-4` (its `train/test_isp.py`), while its
defaults are the RGB recipe's 5e-4. Validation is in RAW space (PSNR/SSIM of 16-bit frames); score the test split
through the official ISP against the RGB frames of `bsd/<setting>` (built too) with

  python -m estrnn_jax.evaluate --config=configs/bsd.py:2ms16ms_raw --checkpoint=WORKDIR --which=best \
      --protocol=raw_isp

Neither the paper nor the official repository reports a RAW result or released RAW weights.
"""

import ml_collections

from configs import recipes

SETTINGS = ('1ms8ms', '2ms16ms', '3ms24ms')
RAW_SETTINGS = tuple(f'{setting}_raw' for setting in SETTINGS)
TRAIN_SEQUENCES, TRAIN_FRAMES_PER_SEQUENCE = 60, 100
RAW_LEARNING_RATE = 3e-4


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """BSD config for `arg` = '<setting>[_raw],<model preset>[,runlocal]' (see module docstring)."""
  settings = SETTINGS + RAW_SETTINGS
  setting, _, _ = recipes.parse_arg(arg, settings=settings, default_setting='2ms16ms')
  raw = setting in RAW_SETTINGS
  # 697 steps per epoch (drop_last): 348,500 steps.
  config = recipes.paper_config(
      arg, settings=settings, default_setting='2ms16ms', dataset='bsd/{setting}',
      train_frames=TRAIN_SEQUENCES * TRAIN_FRAMES_PER_SEQUENCE, train_sequences=TRAIN_SEQUENCES,
      learning_rate=RAW_LEARNING_RATE if raw else 5e-4, schedule='cosine', loss='charbonnier_color', batch_size=8,
      drop_last=True, eval_split='validation', test_split='test', eval_every_epochs=10, checkpoint_every_epochs=1)
  if raw:
    config.model.input = 'raw'
    config.eval.isp_rgb_dataset = f'bsd/{setting.removesuffix("_raw")}'
  return config
