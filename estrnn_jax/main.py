r"""Trains ESTRNN: `python -m estrnn_jax.main --config=configs/default.py --workdir=/tmp/estrnn`.

Config fields can be overridden on the command line (`--config.num_train_steps=100 --config.batch_size=16`).
Run the same command on every host of a multi-host setup (TPU pod slice, SLURM, ...); `jax.distributed` is
initialised automatically when such an environment is detected (`--distributed` forces it on or off). A run
whose workdir already holds checkpoints resumes from the latest one. A `synthetic_blur/...` dataset that is not
built yet is built first (in `config.dataset.data_dir`); real datasets are built with `python -m datasets.build`.
Orbax's INFO lines (dozens per checkpoint) are hidden unless `--verbosity=1`; its warnings and errors always show.
Errors follow `estrnn_jax.cli`: a user error (bad flag, config field, dataset, a workdir of another run, a damaged
checkpoint) is one line `main: error: ...` and exit status 1, and leaves the workdir as it was; `--verbosity=1`
or ESTRNN_TRACEBACK=1 adds the traceback. SIGTERM (or a TPU preemption notice, or on any process of a
multi-process run) saves a checkpoint after the current step and exits with status 143, saying so; Ctrl-C stops
at once with status 130 (rerunning resumes from the last checkpoint either way).
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags

from datasets import build as datasets_build
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import runtime
from estrnn_jax import sharding
from estrnn_jax import train

# How long the other processes wait while process 0 renders a synthetic dataset (`large` takes many minutes).
_DATASET_BUILD_TIMEOUT_S = 3 * 3600


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard logs and config.json.')
  config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
  flags.DEFINE_enum(
      'distributed', 'auto', ['auto', 'true', 'false'],
      "Initialise jax.distributed: 'auto' does it when a multi-process environment is detected "
      '(JAX_COORDINATOR_ADDRESS, SLURM with >1 task, Open MPI with >1 rank, a multi-host Cloud TPU).')
  flags.mark_flags_as_required(['config', 'workdir'])


class _HideOrbaxInfo(std_logging.Filter):
  """Drops Orbax's INFO records (its warnings and errors pass)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname.replace('\\', '/')


def main(argv: list[str]) -> int | None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if logging.get_verbosity() < 1:
    logging.get_absl_logger().addFilter(_HideOrbaxInfo())
  runtime.initialize_distributed(flags.FLAGS.distributed)
  runtime.hide_accelerators_from_tensorflow()
  config = flags.FLAGS.config
  if config.compilation_cache_dir:
    runtime.use_compilation_cache(config.compilation_cache_dir)
  logging.info('JAX process %d / %d, %d local / %d global devices (%s).', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count(), jax.default_backend())
  train.check_steps(config)   # these two before a dataset is built (minutes); train_and_evaluate checks again
  if jax.process_index() == 0:
    destinations.check_writable(flags.FLAGS.workdir, flag='--workdir', into=True)
  _ensure_dataset(config)
  state = train.train_and_evaluate(config, flags.FLAGS.workdir)
  step = int(jax.device_get(state.step))
  if step < config.num_train_steps:   # stopped by SIGTERM / a preemption notice, after saving this step
    print(f'main: stopped at step {step} of {config.num_train_steps} by SIGTERM (or a preemption notice) after '
          f'saving its checkpoint; rerun the same command to resume.', file=sys.stderr, flush=True)
    return cli.EXIT_TERMINATED
  return None


def _ensure_dataset(config: ml_collections.ConfigDict) -> None:
  """Builds a missing `synthetic_blur/...` dataset (process 0 first, then any host that cannot see it)."""
  name, data_dir = config.dataset.name, config.dataset.data_dir
  if not name.startswith('synthetic_blur'):
    return

  def build_if_missing():
    builder = datasets_build.make_builder(name, data_dir)
    if not builder.is_prepared():
      logging.info('Dataset %s is not built in %s yet; building it now (once; reused afterwards).', name,
                   builder.data_dir)
      datasets_build.build(name, data_dir)
      logging.info('Built %s.', name)

  if jax.process_index() == 0:
    build_if_missing()
  if jax.process_count() > 1:
    sharding.wait_for_all_processes('dataset built by process 0', timeout_s=_DATASET_BUILD_TIMEOUT_S)
    build_if_missing()  # data_dir may be local to each host
    sharding.wait_for_all_processes('dataset ready', timeout_s=_DATASET_BUILD_TIMEOUT_S)


if __name__ == '__main__':
  define_flags()
  cli.run_absl('main', main)
