"""Which model the demo runs: `--checkpoint`, else the default run's workdir, else none (the page says why).

The demo never falls back to an untrained model: without weights it shows how to get them (README's set-up
commands) and deblurs nothing.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from estrnn_jax import inference
from estrnn_jax import model as model_lib

# The workdir of README's step 2, and README's two set-up commands that make it (a test keeps them equal).
DEFAULT_WORKDIR = '/tmp/estrnn_default'
SETUP_COMMANDS = (
    'pip install -r requirements.txt',
    f'python -m estrnn_jax.main --config configs/default.py --workdir {DEFAULT_WORKDIR}',
)


@dataclasses.dataclass(frozen=True)
class Weights:
  """A loaded model: `source` is the checkpoint it came from."""
  model: model_lib.ESTRNN
  variables: Any
  source: str

  def describe(self) -> str:
    m = self.model
    residual = ', residual' if m.residual else ''
    return (f'ESTRNN n_features={m.n_features} n_blocks={m.n_blocks} (past {m.past_frames}, future '
            f'{m.future_frames} frames{residual}) from `{self.source}`')


def how_to_get_weights(reason: str) -> str:
  """Markdown for the page when there is no model: the reason and the commands that make one."""
  commands = '\n'.join(SETUP_COMMANDS)
  return (f'**No trained model: {reason}** This demo does not show an untrained model\'s output. Train the '
          f'default model (about 9 minutes on a 2-core CPU) from the repository root:\n\n```bash\n{commands}\n```\n\n'
          'then restart `python -m estrnn_jax.demo`, or pass `--checkpoint` a training workdir, a converted '
          'directory (`python -m estrnn_jax.convert`) or an official `.pth.tar`.')


def load(checkpoint: str | None, which: str = 'latest') -> Weights | str:
  """The demo's model: `checkpoint` (its load errors propagate: a user error at start-up), else the default
  workdir's; a str (Markdown saying how to get weights) when there is none or it cannot be loaded."""
  if checkpoint:
    model, variables = inference.load_model(checkpoint, which=which)
    return Weights(model, variables, checkpoint)
  if not os.path.exists(DEFAULT_WORKDIR):
    return how_to_get_weights(f'no --checkpoint was given and {DEFAULT_WORKDIR} does not exist.')
  try:
    model, variables = inference.load_model(DEFAULT_WORKDIR, which=which)
  except Exception as e:  # pylint: disable=broad-except  # Orbax, JSON, missing files: all mean no model here
    return how_to_get_weights(f'{DEFAULT_WORKDIR} holds no usable checkpoint ({" ".join(str(e).split())}).')
  return Weights(model, variables, DEFAULT_WORKDIR)
