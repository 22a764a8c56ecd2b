"""Real signals to a real `python -m estrnn_jax.deblur` while it writes (more than 20 frames out): SIGINT and
SIGTERM leave the destination folder exactly as it was, hidden files included; after SIGKILL, which no process can
clean up after, the next run to the same destination removes the temporaries it left."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

import conftest
from estrnn_jax import atomic
from estrnn_jax import cli
from estrnn_jax import deblur

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAMES_OUT_BEFORE_SIGNAL = 20


@pytest.fixture(scope='module')
def inputs(tmp_path_factory, testdata):
  """(checkpoint, a folder of 300 frames): enough that deblurring them outlasts the signal."""
  checkpoint = testdata / 'fake_ckpt_C4B2.pth.tar'   # an official-format C4B2 checkpoint (read without torch)
  frames = tmp_path_factory.mktemp('signals') / 'frames'
  frames.mkdir()
  rng = np.random.default_rng(0)
  for i in range(300):
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(frames / f'{i:04d}.png')
  return str(checkpoint), str(frames)


@pytest.fixture
def destination(tmp_path):
  """The folder outputs go to, holding the user's files (one hidden)."""
  folder = tmp_path / 'dest'
  folder.mkdir()
  (folder / 'earlier.mp4').write_bytes(b'an earlier output')
  (folder / '.settings').write_text('hidden, the user\'s')
  return folder


def _deblur_args(inputs, destination) -> list[str]:
  checkpoint, frames = inputs
  return ['--checkpoint', checkpoint, '--input', frames, '--output', str(destination / 'sharp.mp4'),
          '--compare', str(destination / 'compare'), '--group_size', '1']


def _start_and_wait_for_frames(inputs, destination, tmp_path) -> tuple[subprocess.Popen, pathlib.Path]:
  """Starts the command; returns once more than FRAMES_OUT_BEFORE_SIGNAL compare frames are in its temporary."""
  log = tmp_path / 'stderr.log'
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop(cli.TRACEBACK_ENV, None)
  with open(log, 'w') as err:
    proc = subprocess.Popen([sys.executable, '-m', 'estrnn_jax.deblur', *_deblur_args(inputs, destination)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
  deadline = time.monotonic() + 300
  while True:
    folders = [d for d in destination.glob('.compare.tmp-*') if d.is_dir()]   # (not the writability probe)
    if folders and len(list(folders[0].glob('*.png'))) > FRAMES_OUT_BEFORE_SIGNAL:
      return proc, log
    if proc.poll() is not None or time.monotonic() > deadline:
      proc.kill()
      pytest.fail(f'deblur ended or stalled before writing frames:\n{log.read_text()[-3000:]}')
    time.sleep(0.01)


@pytest.mark.parametrize('signum,status,message', [
    (signal.SIGINT, 130, 'deblur: interrupted'),
    (signal.SIGTERM, 143, 'deblur: terminated (SIGTERM)')])
def test_signal_mid_write_leaves_the_destination_as_it_was(inputs, destination, tmp_path, signum, status, message):
  before = conftest.tree_digest(destination)
  proc, log = _start_and_wait_for_frames(inputs, destination, tmp_path)
  assert list(destination.glob('.sharp.tmp-*.mp4')), 'the video was not being written'
  proc.send_signal(signum)
  assert proc.wait(timeout=120) == status, log.read_text()[-3000:]
  err = log.read_text()
  assert err.strip().splitlines()[-1] == message and 'Traceback' not in err, err[-3000:]
  assert conftest.tree_digest(destination) == before


def test_temporaries_of_a_killed_run_are_removed_by_the_next_run(inputs, destination, tmp_path, capsys):
  before = conftest.tree_digest(destination)
  proc, _ = _start_and_wait_for_frames(inputs, destination, tmp_path)
  proc.kill()   # SIGKILL: no cleanup can run
  proc.wait(timeout=60)
  left = sorted(set(conftest.tree_digest(destination)) - set(before))
  stale = sorted(str(p.relative_to(destination)) for output in ('sharp.mp4', 'compare')
                 for p in atomic.stale_temporaries(destination / output))
  assert stale and all(name.startswith('.') for name in stale)
  assert {name.split('/')[0] for name in left} == set(stale)   # all it left is recognised as its temporaries
  assert deblur.main([*_deblur_args(inputs, destination), '--max_frames', '5']) == 0, capsys.readouterr().err
  after = conftest.tree_digest(destination)
  assert sorted(set(after) - set(before)) == ['compare', *[f'compare/{i:04d}.png' for i in range(5)], 'sharp.mp4']
  assert {name: after[name] for name in before} == before
