"""The one command-line style (estrnn_jax.cli) and the commands that have no test file of their own (profile)."""

import errno
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from estrnn_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _guarded(capsys, fn, **kwargs):
  status = cli.guarded('tool', fn, **kwargs)
  return status, capsys.readouterr().err


def _raise(error):
  def fn():
    raise error
  return fn


def test_success_and_explicit_statuses(capsys):
  assert _guarded(capsys, lambda: None) == (0, '')
  assert _guarded(capsys, lambda: 3) == (3, '')


@pytest.mark.parametrize('error,line', [
    (cli.UserError('--config.batch_size: must be > 0, got -1.'), 'tool: error: --config.batch_size: must be > 0, got -1.'),
    (FileNotFoundError(errno.ENOENT, 'No such checkpoint file', '/x/ckpt'), 'tool: error: /x/ckpt: No such checkpoint file'),
    (ValueError('first line\n  second line\n'), 'tool: error: first line second line'),
    (FloatingPointError('loss diverged at step 3'), 'tool: error: loss diverged at step 3'),
    (PermissionError(errno.EACCES, 'Permission denied', '/root/x'), 'tool: error: /root/x: Permission denied'),
])
def test_user_errors_are_one_line_with_status_1(capsys, monkeypatch, error, line):
  monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
  status, err = _guarded(capsys, _raise(error))
  assert status == 1 and err == line + '\n'


def test_ctrl_c_is_130(capsys):
  status, err = _guarded(capsys, _raise(KeyboardInterrupt()))
  assert status == 130 and err.strip() == 'tool: interrupted'


def test_sigterm_unwinds_like_ctrl_c_and_is_143(capsys):
  """A real SIGTERM to this process while the command runs: its `finally` blocks run, status 143, and it says so;
  the handler it replaced is back afterwards."""
  cleaned = []

  def command():
    try:
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(5)   # the handler raises before this ends
    finally:
      cleaned.append(True)

  previous = signal.getsignal(signal.SIGTERM)
  status, err = _guarded(capsys, command)
  assert status == 143 and err.strip() == 'tool: terminated (SIGTERM)' and cleaned == [True]
  assert signal.getsignal(signal.SIGTERM) is previous


def test_bugs_keep_their_traceback(capsys):
  with pytest.raises(ZeroDivisionError):
    cli.guarded('tool', lambda: 1 / 0)


@pytest.mark.parametrize('env,verbosity,shown', [('1', 0, True), ('', 1, True), ('0', 0, False), ('', 0, False)])
def test_traceback_on_request(capsys, monkeypatch, env, verbosity, shown):
  monkeypatch.setenv(cli.TRACEBACK_ENV, env)
  status, err = _guarded(capsys, _raise(ValueError('bad value')), verbosity=verbosity)
  assert status == 1 and err.endswith('tool: error: bad value\n')
  assert ('Traceback (most recent call last)' in err) == shown


def test_device_out_of_memory_is_recognised():
  import jax  # pylint: disable=g-import-not-at-top
  assert cli.is_device_out_of_memory(jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: Out of memory allocating'))
  assert cli.is_device_out_of_memory(jax.errors.JaxRuntimeError(   # the CPU backend's, when fetching a result
      'INTERNAL: Error dispatching computation: Out of memory allocating 2199023325812 bytes.'))
  assert not cli.is_device_out_of_memory(jax.errors.JaxRuntimeError('INTERNAL: other'))
  assert not cli.is_device_out_of_memory(RuntimeError('RESOURCE_EXHAUSTED'))


def run_command(module: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -m <module> <args>` from the repository root, on the CPU."""
  full_env = dict(os.environ, JAX_PLATFORMS='cpu', **(env or {}))
  full_env.pop(cli.TRACEBACK_ENV, None)
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, env=full_env, capture_output=True,
                        text=True, timeout=timeout, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> str:
  """Exit status 1, no traceback, and a last stderr line `<command>: error: ...` containing every fragment."""
  assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
  assert 'Traceback' not in result.stderr, result.stderr[-3000:]
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith(f'{command}: error: '), result.stderr[-3000:]
  for fragment in fragments:
    assert fragment in line, (fragment, line)
  return line


@pytest.mark.parametrize('args,fragments', [
    (['--height', '30'], ['multiples of 4', '30x1280']),
    (['--n_blocks', '0'], ['--n_blocks must be >= 1, got 0']),
    (['--height', 'abc'], ['flag --height=abc']),
    (['--no_such_flag=1'], ["Unknown command line flag 'no_such_flag'"]),
    (['stray'], ['unexpected arguments: stray']),
])
def test_profile_bad_inputs(args, fragments):
  assert_one_line_error(run_command('estrnn_jax.profile', *args), 'profile', *fragments)


@pytest.mark.parametrize('args,fragments', [
    (['--dataset', 'nope'], ["Unknown dataset 'nope'"]),
    (['--dataset', 'bsd/9ms'], ["Unknown config '9ms' of bsd"]),
    (['--dataset', 'bsd/2ms16ms', '--manual_dir', '/nonexistent/release'],
     ['manual_dir /nonexistent/release does not exist']),
    (['--dataset', 'synthetic_blur/tiny', '--frame_format', 'jpeg'], ['flag --frame_format=jpeg']),
])
def test_datasets_build_bad_inputs(tmp_path, args, fragments):
  result = run_command('datasets.build', *args, '--data_dir', str(tmp_path / 'tfds'))
  assert_one_line_error(result, 'datasets.build', *fragments)
  assert not (tmp_path / 'tfds' / 'bsd').exists()



@pytest.mark.parametrize('args,fragments', [
    (['--config=configs/test.py'], ["Flag --workdir must have a value other than None"]),
    (['--workdir={tmp}/w', '--config=configs/test.py', '--config.no_such_field=1'], ['no_such_field']),
    (['--workdir={tmp}/w', '--config=configs/test.py', '--config.dataset.name=bsd/2ms16ms',
      '--config.dataset.data_dir={tmp}/tfds'], ['bsd/2ms16ms', 'python -m datasets.build']),
    (['--workdir={tmp}/w', '--config=configs/nope.py'], ['configs/nope.py']),
    (['--workdir={tmp}/w', '--config=configs/test.py', '--config.num_train_steps=-5',
      '--config.dataset.data_dir={tmp}/tfds'], ['config.num_train_steps=-5 must be >= 0']),
    (['--workdir=README.md/w', '--config=configs/test.py', '--config.dataset.data_dir={tmp}/tfds'],
     ['--workdir README.md/w: cannot be created, ', 'README.md is a file, not a folder.']),
])
def test_main_bad_inputs(tmp_path, args, fragments):
  assert_one_line_error(run_command('estrnn_jax.main', *[a.format(tmp=tmp_path) for a in args]), 'main', *fragments)
  assert not (tmp_path / 'w').exists()   # refused before the workdir is created
  assert not (tmp_path / 'tfds').exists()   # and before the synthetic dataset is built


@pytest.mark.parametrize('args,fragments', [
    (['--config=configs/test.py'], ['--config and --checkpoint are required']),
    (['--config=configs/test.py', '--checkpoint={tmp}/missing'], ['{tmp}/missing', 'no such checkpoint']),
    (['--config=configs/test.py', '--checkpoint=tests/testdata/fake_ckpt_C4B2.pth.tar',
      '--config.dataset.data_dir={tmp}/tfds', '--output_dir={tmp}/out'], ['synthetic_blur/tiny', 'not prepared']),
    (['--config=configs/test.py', '--checkpoint=x', '--protocol=chunks'], ['flag --protocol=chunks']),
])
def test_evaluate_bad_inputs(tmp_path, args, fragments):
  result = run_command('estrnn_jax.evaluate', *[a.format(tmp=tmp_path) for a in args])
  assert_one_line_error(result, 'evaluate', *[f.format(tmp=tmp_path) for f in fragments])
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args,fragments', [
    (['--datasets=reds', '--output_dir={tmp}/out'], ['--checkpoints is required']),
    (['--checkpoints=bsd', '--datasets=reds', '--output_dir={tmp}/out'], ["'bsd' is not name=path"]),
    (['--checkpoints=a={tmp}/missing', '--datasets=synthetic_blur/tiny', '--data_dir={tmp}/tfds',
      '--output_dir={tmp}/out'], ['synthetic_blur/tiny', 'not prepared']),
    (['--checkpoints=a=x', '--datasets=reds', '--output_dir={tmp}/out', '--max_sequences=-1'],
     ['--max_sequences must be >= 0']),
])
def test_cross_evaluate_bad_inputs(tmp_path, args, fragments):
  result = run_command('estrnn_jax.cross_evaluate', *[a.format(tmp=tmp_path) for a in args])
  assert_one_line_error(result, 'cross_evaluate', *fragments)
  assert not (tmp_path / 'out').exists()
