"""`python -m estrnn_jax.plan`: targets, multi-host batch rows and a real TPU compile of the tiny config.

TPU programs compile with libtpu (requirements.txt) ahead of time on this CPU machine; no TPU is used.
"""

import math
import os
import subprocess
import sys

import jax
import pytest

from estrnn_jax import accelerators
from estrnn_jax import model as model_lib
from estrnn_jax import planning
from estrnn_jax import train

pytest.importorskip('libtpu')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_targets_resolve_as_sold():
  v5e = accelerators.target('v5litepod-16')
  assert (v5e.chips, v5e.hosts, v5e.topology, v5e.chip.hbm_bytes) == (16, 4, 'v5e:4x4', 16 * 2**30)
  v4 = accelerators.target('v4-8')   # gcloud counts v4 TensorCores: 4 chips
  assert (v4.chips, v4.hosts, v4.topology) == (4, 1, 'v4:2x2x1')
  gpus = accelerators.target('h100x8x2')
  assert (gpus.chips, gpus.hosts, gpus.budget_bytes) == (16, 2, int(0.75 * 80e9))
  with pytest.raises(ValueError, match='unknown target .v9-8.*v5litepod-8'):
    accelerators.target('v9-8')


def _tpu_devices(target):
  from estrnn_jax import aot  # pylint: disable=g-import-not-at-top
  aot.prepare_process()
  return aot.target_devices(target)


def test_multi_host_rows_match_the_input_pipeline():
  target = accelerators.target('v5litepod-16')
  devices = _tpu_devices(target)
  assert sorted({d.process_index for d in devices}) == [0, 1, 2, 3]
  rows = planning.process_rows(planning.train_mesh(target), 32)
  # The input pipeline gives process p rows [8p, 8p + 8) of a batch of 32 (create_train_iterator's shard).
  assert rows == {p: range(8 * p, 8 * p + 8) for p in range(4)}


def test_tiny_train_step_compiles_for_a_tpu_slice():
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.model.unroll = False
  target = accelerators.target('v5litepod-4')
  _tpu_devices(target)
  program = planning.train_program(config, target)
  model = train.create_model(config)
  params = sum(math.prod(x.shape) for x in jax.tree.leaves(model_lib.abstract_params(model)))
  state_bytes = 3 * 4 * params            # float32 parameters + Adam's mu and nu (TPU pads small tensors)
  per_chip = config.batch_size // 4
  t, crop = config.dataset.window_frames, config.dataset.crop_size
  batch_bytes = per_chip * (2 * t - 4) * crop * crop * 3   # uint8 blur (t frames) + sharp (t - 4 frames)
  m = program.memory
  assert m.arguments >= state_bytes + batch_bytes
  assert m.aliased >= state_bytes          # the donated state is reused for the new one
  assert m.code > 0 and m.temporaries > 0 and program.fits
  assert program.margin_bytes == 16 * 2**30 - m.total


@pytest.mark.parametrize('args, message', [
    (['--target=v9-8'], "unknown target 'v9-8'"),
    (['--target=v5litepod-4', '--deblur_size=720'], '--deblur_size must be HEIGHTxWIDTH'),
    (['--target=v5litepod-3'], 'no v5litepod slice has 3 chips'),
    (['--target=v5litepod-4', '--config.model.n_blockz=2'], 'no such field'),
    (['--target=v5litepod-4', '--json=README.md/plan.json'], '--json README.md/plan.json: cannot be created, '),
])
def test_bad_input_is_a_one_line_error(args, message):
  result = subprocess.run([sys.executable, '-m', 'estrnn_jax.plan', '--config=configs/test.py', *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert result.returncode == 1, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('plan: error:') and message in last, result.stderr
  assert 'Traceback' not in result.stderr
