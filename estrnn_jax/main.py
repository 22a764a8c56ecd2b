r"""Trains ESTRNN: `python -m estrnn_jax.main --config=configs/default.py --workdir=/tmp/estrnn`.

Config fields can be overridden on the command line (`--config.num_train_steps=100 --config.batch_size=16`).
Run the same command on every host of a multi-host setup (TPU pod slice, SLURM, ...); `jax.distributed` is
initialised automatically when such an environment is detected (`--distributed` forces it on or off). A run
whose workdir already holds checkpoints resumes from the latest one. Orbax's INFO lines (dozens per checkpoint)
are hidden unless `--verbosity=1`; its warnings and errors always show.
"""

import logging as std_logging

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from estrnn_jax import sharding

_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard logs and config.json.')
_CONFIG = config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
_DISTRIBUTED = flags.DEFINE_enum(
    'distributed', 'auto', ['auto', 'true', 'false'],
    "Initialise jax.distributed: 'auto' does it when a multi-process environment is detected "
    '(JAX_COORDINATOR_ADDRESS, SLURM with >1 task, Open MPI with >1 rank, a multi-host Cloud TPU).')

flags.mark_flags_as_required(['config', 'workdir'])


class _HideOrbaxInfo(std_logging.Filter):
  """Drops Orbax's INFO records (its warnings and errors pass)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname.replace('\\', '/')


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if logging.get_verbosity() < 1:
    logging.get_absl_logger().addFilter(_HideOrbaxInfo())
  sharding.initialize_distributed(_DISTRIBUTED.value)
  sharding.hide_accelerators_from_tensorflow()

  import jax  # pylint: disable=g-import-not-at-top
  from estrnn_jax import train  # pylint: disable=g-import-not-at-top
  logging.info('JAX process %d / %d, %d local / %d global devices (%s).', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(), jax.default_backend())
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
