r"""Fine-tune the released BSD weights on your own videos (a `paired_folders` dataset; README "Train on your own
videos").

Argument: `<your dataset name>[,runlocal]` (the name you built it under):

  python -m datasets.build --dataset paired_folders/my_videos --manual_dir ~/my_videos
  python -m estrnn_jax.main --config configs/finetune.py:my_videos --workdir ~/runs/my_videos_ft \
      --config.init_from=~/weights/ESTRNN_C80B15_BSD_2ms16ms.pth.tar
  python -m estrnn_jax.evaluate --config configs/finetune.py:my_videos --checkpoint ~/runs/my_videos_ft --which best

`init_from` is the official checkpoint (`.pth.tar`, converted on the fly), a converted model directory or a
training workdir; its weights start the run at step 0 with a fresh optimiser. It must be the model this config
describes (B15C80, 2 past + 2 future frames, the paper's RDB cell and GSA: the released weights); a mismatch
is one error naming the differing fields. With `--config.num_train_steps=0` the run only writes a step-0
checkpoint holding those weights (a workdir made from the released weights, e.g. to evaluate them with the
project's tools).

Recipe: the BSD recipe (configs/bsd.py: Adam, Charbonnier-colour loss, 256x256 crops of 8-frame windows, batch 8,
clip 20) at a tenth of its learning rate, 5e-5 cosine-annealed to 1e-8 over 20,000 steps: fine-tuning keeps the
released weights' knowledge and adapts it. The dataset needs `train` and `test` split folders; the `test` split
is evaluated during training and by the evaluate command. This is a starting point, not a measured recipe:
watch the validation PSNR against the blurry input's in TensorBoard and stop or extend accordingly.
"""

import ml_collections

from configs import bsd


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Fine-tuning config for `arg` = '<your dataset name>[,runlocal]' (see module docstring)."""
  tokens = [t.strip() for t in (arg or '').split(',') if t.strip()]
  runlocal = 'runlocal' in tokens
  names = [t for t in tokens if t != 'runlocal']
  if len(names) != 1:
    raise ValueError(f'Bad config argument {arg!r}: expected <your dataset name>[,runlocal] (the name given to '
                     '`python -m datasets.build --dataset paired_folders/<name>`).')
  config = bsd.get_config('2ms16ms,b15c80,runlocal' if runlocal else '2ms16ms,b15c80')
  config.dataset.name = f'paired_folders/{names[0]}'
  config.init_from = 'ESTRNN_C80B15_BSD_2ms16ms.pth.tar'
  config.eval.split = 'test'
  config.eval.test_split = 'test'
  if not runlocal:
    config.num_train_steps = 20_000
    config.optimizer.learning_rate = 5e-5
    config.optimizer.steps_per_epoch = 0
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 1000
  return config
