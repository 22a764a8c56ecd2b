"""Hugging Face Space entry point (README, "Deploy as a Hugging Face Space"): the web demo with the model in
`weights/` (or $ESTRNN_CHECKPOINT: anything `deblur` takes), on the address and port the Space sets.

Locally, `python -m estrnn_jax.demo` is the same page with command-line flags.
"""

import os

from estrnn_jax.demo import limits
from estrnn_jax.demo import page
from estrnn_jax.demo import weights

if __name__ == '__main__':
  page.serve(weights.load(os.environ.get('ESTRNN_CHECKPOINT', 'weights')), limits.Limits())
