r"""Converts an official ESTRNN checkpoint (PyTorch `.pth.tar`) into the project's own format, once.

  python -m estrnn_jax.convert --torch_checkpoint ESTRNN_C80B15_BSD_2ms16ms.pth.tar --output /path/to/converted

writes an Orbax checkpoint plus `model_config.json` (`checkpoints.save_model`), loadable by
`estrnn_jax.checkpoints.restore_model`, `estrnn_jax.evaluate` and `estrnn_jax.deblur`. No torch is needed; the
mapping itself (and the BGR -> RGB colour swap, `--bgr` to keep BGR) is `estrnn_jax.official_weights`.
A bad checkpoint (missing, not a checkpoint, unsafe, a memory bomb, not an ESTRNN, NaN/Inf weights) is a one-line
`convert: error: ...` (exit 1). The destination is checked before anything is read (writable, room for the
weights); a full disk or failed write midway names `--output` and its cause. The output directory appears only
when complete (an interrupted, terminated or failed run leaves no temporary either), so the run can be rerun as
it was.
"""

from collections.abc import Mapping

from absl import app
from absl import flags
from absl import logging
from etils import epath
import numpy as np

from estrnn_jax import atomic
from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import finite_weights
from estrnn_jax import official_weights


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_string('torch_checkpoint', None, 'Official ESTRNN .pth.tar file.')
  flags.DEFINE_string('output', None, 'Directory for the converted Orbax checkpoint (must not exist).')
  flags.DEFINE_integer('past_frames', 2, 'GSA past frames of the checkpoint.')
  flags.DEFINE_integer('future_frames', 2, 'GSA future frames of the checkpoint.')
  flags.DEFINE_bool('bgr', False, 'Keep the official BGR colour order instead of converting to RGB.')


def convert(torch_checkpoint: str, output: str, *, past_frames: int = 2, future_frames: int = 2,
            bgr: bool = False) -> str:
  """Converts `torch_checkpoint` into a new directory `output`; returns a one-line summary.

  The directory is written under a temporary name and moved into place when complete (`atomic.directory`), so
  an interrupted conversion leaves no `output` and can simply be rerun.

  Raises:
    FileExistsError: `output` exists. ValueError / OSError: the checkpoint is missing, unreadable, not an
      ESTRNN, or holds NaN/Inf weights (each names the file).
  """
  if epath.Path(output).exists():
    raise FileExistsError(f'--output {output} already exists; choose a new directory.')
  destinations.check_writable(output, flag='--output')
  model, variables = official_weights.load_torch_checkpoint(torch_checkpoint, past_frames, future_frames,
                                                            rgb=not bgr)
  finite_weights.check(variables['params'], torch_checkpoint)
  leaves = list(_leaves(variables['params']))
  n_params = sum(np.size(x) for x in leaves)
  logging.info('Converted %s: n_features=%d n_blocks=%d, %d parameters.', torch_checkpoint,
               model.n_features, model.n_blocks, n_params)
  destinations.check_free_space(output, sum(np.asarray(x).nbytes for x in leaves), flag='--output')
  try:
    with atomic.directory(output) as temporary:
      checkpoints.save_model(temporary, model, variables['params'])
  except Exception as e:  # Orbax reports a full disk as ValueError('RESOURCE_EXHAUSTED ...'), among others
    failure = destinations.write_failure('--output', output, e)
    if failure is None:
      raise
    raise failure from None
  return (f'Wrote {output} (ESTRNN n_features={model.n_features} n_blocks={model.n_blocks}, '
          f'{n_params:,} parameters, {"BGR" if bgr else "RGB"} input).')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  if not f.torch_checkpoint or not f.output:
    raise app.UsageError('--torch_checkpoint and --output are required.')
  print(convert(f.torch_checkpoint, f.output, past_frames=f.past_frames, future_frames=f.future_frames,
                bgr=f.bgr))


def _leaves(tree):
  if isinstance(tree, Mapping):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree


if __name__ == '__main__':
  define_flags()
  cli.run_absl('convert', main)
