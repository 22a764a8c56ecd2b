r"""Converts an official ESTRNN checkpoint (PyTorch `.pth.tar`) into the project's own format, once.

  python -m estrnn_jax.convert --torch_checkpoint ESTRNN_C80B15_BSD_2ms16ms.pth.tar --output /path/to/converted

writes an Orbax checkpoint plus `model_config.json` (`checkpoints.save_model`), loadable by
`estrnn_jax.checkpoints.restore_model`, `estrnn_jax.evaluate` and `estrnn_jax.deblur`. No torch is needed; the
mapping itself (and the BGR -> RGB colour swap, `--bgr` to keep BGR) is `estrnn_jax.official_weights`.
"""

from collections.abc import Mapping

from absl import app
from absl import flags
from absl import logging
from etils import epath
import numpy as np

from estrnn_jax import checkpoints
from estrnn_jax import official_weights


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_string('torch_checkpoint', None, 'Official ESTRNN .pth.tar file.')
  flags.DEFINE_string('output', None, 'Directory for the converted Orbax checkpoint (must not exist).')
  flags.DEFINE_integer('past_frames', 2, 'GSA past frames of the checkpoint.')
  flags.DEFINE_integer('future_frames', 2, 'GSA future frames of the checkpoint.')
  flags.DEFINE_bool('bgr', False, 'Keep the official BGR colour order instead of converting to RGB.')


def main(argv: list[str]) -> None:
  del argv
  f = flags.FLAGS
  if not f.torch_checkpoint or not f.output:
    raise app.UsageError('--torch_checkpoint and --output are required.')
  if epath.Path(f.output).exists():
    raise SystemExit(f'error: --output {f.output} already exists; choose a new directory.')
  try:
    model, variables = official_weights.load_torch_checkpoint(f.torch_checkpoint, f.past_frames,
                                                              f.future_frames, rgb=not f.bgr)
  except (OSError, ValueError) as e:
    raise SystemExit(f'error: {e}') from None
  n_params = sum(np.size(x) for x in _leaves(variables['params']))
  logging.info('Converted %s: n_features=%d n_blocks=%d, %d parameters.', f.torch_checkpoint,
               model.n_features, model.n_blocks, n_params)
  checkpoints.save_model(f.output, model, variables['params'])
  print(f'Wrote {f.output} (ESTRNN n_features={model.n_features} n_blocks={model.n_blocks}, '
        f'{n_params:,} parameters, {"BGR" if f.bgr else "RGB"} input).')


def _leaves(tree):
  if isinstance(tree, Mapping):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree


if __name__ == '__main__':
  define_flags()
  app.run(main)
