"""What accelerators consume: the FLOPs of a training window, against the data-sheet peaks of
`estrnn_jax.accelerators`.

Shared by `model_benchmark` (utilisation of a measured run) and `input_pipeline_benchmark` (how many windows
per second a device would consume, to compare with what the host's input pipeline delivers).
"""

from estrnn_jax import model as model_lib
from estrnn_jax import plan
from estrnn_jax.accelerators import PEAK_FLOPS  # pylint: disable=unused-import
from estrnn_jax.accelerators import peak_flops  # pylint: disable=unused-import


def training_window_flops(n_features: int, n_blocks: int, frames: int, outputs: int, height: int,
                          width: int) -> float:
  """FLOPs of one training window of the paper's model: `plan.forward_flops`, the backward pass counted as twice
  the forward."""
  model = model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks)
  return plan.TRAINING_FLOPS_FACTOR * plan.forward_flops(model, frames, outputs, height, width)
