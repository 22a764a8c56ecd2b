"""Two real `jax.distributed` processes on localhost, 4 simulated CPU devices each (gloo CPU collectives): training
equals one 8-device process, a SIGTERM to one process saves a checkpoint from both and resumes exactly, and
evaluation gathers both processes' sequences into the table one process writes.

Each launch starts two `python -m estrnn_jax.<command>` processes with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES
and JAX_PROCESS_ID (what `estrnn_jax.runtime` reads), as a launcher would. Tiny model, 8 steps.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import test as test_config
from estrnn_jax import checkpoints
from estrnn_jax import evaluate
from estrnn_jax import model as model_lib
from estrnn_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 8
# configs/test.py with a cosine schedule and warm-up (its step count is compiled into the program); the same run as
# tests/test_train.py's cosine runs, whose 8-device program the shared compilation cache then holds.
OVERRIDES = {'num_train_steps': STEPS, 'optimizer.schedule': 'cosine', 'optimizer.warmup_steps': 3,
             'optimizer.end_learning_rate': 1e-5, 'checkpoint_every_steps': 5, 'eval_every_steps': -1}

pytestmark = pytest.mark.timeout(900)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


class Pair:
  """Two processes of one `python -m` command, logging to files (no pipe can fill up and block them)."""

  def __init__(self, log_dir: pathlib.Path, module: str, *args: str):
    port = _free_port()
    self.logs = [log_dir / f'{module}.{time.monotonic_ns()}.{i}.log' for i in range(2)]
    self.procs = []
    for i, log in enumerate(self.logs):
      env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS='--xla_force_host_platform_device_count=4',
                 JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=str(i))
      with open(log, 'w') as out:
        self.procs.append(subprocess.Popen([sys.executable, '-m', module, *args], cwd=REPO, env=env,
                                           stdout=out, stderr=subprocess.STDOUT))

  def text(self, i: int) -> str:
    return self.logs[i].read_text(errors='replace')

  def wait(self, timeout: float = 600) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
      return [proc.wait(timeout=max(deadline - time.monotonic(), 1)) for proc in self.procs]
    except subprocess.TimeoutExpired:
      pytest.fail('the processes did not finish:\n' + '\n'.join(self.text(i)[-3000:] for i in range(2)))
    finally:
      for proc in self.procs:
        if proc.poll() is None:
          proc.kill()

  def tails(self) -> str:
    return '\n'.join(f'--- process {i}:\n' + self.text(i)[-3000:] for i in range(2))


def _train_pair(tmp_path, workdir, data_dir, cache_dir) -> Pair:
  return Pair(tmp_path, 'estrnn_jax.main', '--config=configs/test.py', f'--workdir={workdir}',
              f'--config.dataset.data_dir={data_dir}', f'--config.compilation_cache_dir={cache_dir}',
              *(f'--config.{name}={value}' for name, value in OVERRIDES.items()))


def _params(workdir):
  return checkpoints.restore_model(workdir)[1]['params']


def _max_difference(a, b) -> float:
  return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)))


def _one_process_run(data_dir, cache_dir, workdir):
  config = test_config.get_config()
  config.dataset.data_dir = str(data_dir)
  config.compilation_cache_dir = str(cache_dir)
  config.update_from_flattened_dict(OVERRIDES)
  assert jax.device_count() == 8 and jax.process_count() == 1
  return jax.device_get(train.train_and_evaluate(config, workdir).params)


def test_two_processes_train_as_one_and_resume_exactly_after_sigterm(tiny_dataset, compilation_cache, tmp_path):
  """One test, so that the unbroken run the resumed one is compared with is made once (pytest-xdist would make a
  module fixture once per worker)."""
  data_dir, cache_dir = tiny_dataset, compilation_cache
  unbroken = tmp_path / 'unbroken'
  pair = _train_pair(tmp_path, unbroken, data_dir, cache_dir)
  assert pair.wait() == [0, 0], pair.tails()
  steps = sorted(int(p.name) for p in (unbroken / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps == [5, STEPS]
  for step in steps:   # every checkpoint holds both processes' data iterators
    names = sorted(p.name for p in (unbroken / 'checkpoints' / str(step) / 'data_iter').glob('*.json'))
    assert names == ['process_0-of-2.json', 'process_1-of-2.json']
  # The gradient all-reduce sums in another order across processes (gloo) than within one: equal to float32
  # rounding (measured 4e-8), far below the updates themselves (~1e-3 per step).
  assert _max_difference(_params(unbroken), _one_process_run(data_dir, cache_dir, tmp_path / 'one')) < 1e-6

  # SIGTERM to one process once both have started (before the first step): both save one step, exit 143.
  workdir = tmp_path / 'preempted'
  pair = _train_pair(tmp_path, workdir, data_dir, cache_dir)
  deadline = time.monotonic() + 600
  while 'parameters. Mesh: 8 devices over 2 processes' not in pair.text(1):
    assert time.monotonic() < deadline and all(p.poll() is None for p in pair.procs), pair.tails()
    time.sleep(0.2)
  pair.procs[1].send_signal(signal.SIGTERM)   # one process only, as a preempted host
  assert pair.wait() == [143, 143], pair.tails()
  stopped = max(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert 1 <= stopped < STEPS and stopped != 5, pair.tails()   # not a checkpoint boundary
  names = sorted(p.name for p in (workdir / 'checkpoints' / str(stopped) / 'data_iter').glob('*.json'))
  assert names == ['process_0-of-2.json', 'process_1-of-2.json']
  for i in range(2):
    assert f'main: stopped at step {stopped} of {STEPS} by SIGTERM' in pair.text(i), pair.tails()

  resumed = _train_pair(tmp_path, workdir, data_dir, cache_dir)
  assert resumed.wait() == [0, 0], resumed.tails()
  assert f'Resuming from {workdir}/checkpoints/{stopped}' in resumed.text(0)
  assert _max_difference(_params(workdir), _params(unbroken)) == 0.0


def test_evaluation_gathers_both_processes_into_one_table(tiny_dataset, tmp_path):
  """Each process scores one of the two validation sequences; process 0 writes the table of both, as one process
  scoring both writes it."""
  data_dir = tiny_dataset
  model = model_lib.ESTRNN(n_features=4, n_blocks=2)
  checkpoint = str(checkpoints.save_model(tmp_path / 'model', model, model_lib.init_params(model, 1)))
  common = ['--config=configs/test.py', f'--config.dataset.data_dir={data_dir}', f'--checkpoint={checkpoint}',
            '--split=validation', '--max_sequences=2']
  pair = Pair(tmp_path, 'estrnn_jax.evaluate', *common, f'--output_dir={tmp_path / "two"}')
  assert pair.wait() == [0, 0], pair.tails()
  scored = [re.findall(r'\[1/1\] (\d+): 8 frames', pair.text(i)) for i in range(2)]   # one sequence each
  assert sorted(scored[0] + scored[1]) == ['0000', '0001'] and len(scored[0]) == 1, pair.tails()
  config = test_config.get_config()
  config.dataset.data_dir = str(data_dir)
  evaluate.run(config, checkpoint, split='validation', max_sequences=2, output_dir=str(tmp_path / 'one'))
  two = json.loads((tmp_path / 'two' / 'results.json').read_text())
  one = json.loads((tmp_path / 'one' / 'results.json').read_text())
  assert [s['sequence'] for s in two['sequences']] == [s['sequence'] for s in one['sequences']] == ['0000', '0001']
  for ours, theirs in zip(two['sequences'], one['sequences']):
    assert ours['frame_index'] == theirs['frame_index'] == list(range(2, 10))
    np.testing.assert_allclose(ours['frame_psnr'], theirs['frame_psnr'], rtol=1e-6)
    np.testing.assert_allclose(ours['frame_ssim'], theirs['frame_ssim'], rtol=1e-6)
  np.testing.assert_allclose(two['summary']['psnr'], one['summary']['psnr'], rtol=1e-6)
  assert (tmp_path / 'two' / 'sequences.csv').read_text().count('\n') == 4   # header, 2 sequences, the mean
