"""Tests for launch/: the Cloud TPU scripts in dry-run mode, their idempotency against a fake gcloud, the
worker-side job control, and the multi-host GPU launcher.

No test talks to Google Cloud: `gcloud` on PATH is a fake. In dry-run tests it fails the test if called.
"""

import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch'
TPU = ['--name', 'estrnn-v4', '--zone', 'us-central2-b', '--project', 'my-proj']

# A gcloud (or uv) that must never run: it leaves a marker and fails.
_FORBIDDEN_GCLOUD = """#!/bin/sh
echo "$@" >> "$FAKE_GCLOUD_MARKER"
exit 99
"""

# A gcloud that emulates TPU VMs and queued resources in a JSON file and logs every call.
_STATEFUL_GCLOUD = '''#!{python}
import json, os, sys
state_file, calls_file = os.environ['FAKE_GCLOUD_STATE'], os.environ['FAKE_GCLOUD_CALLS']
args = sys.argv[1:]
with open(calls_file, 'a') as f:
  f.write(json.dumps(args) + '\\n')
state = {{'tpu-vm': {{}}, 'queued-resources': {{}}}}
if os.path.exists(state_file):
  state = json.load(open(state_file))
assert args[:2] == ['compute', 'tpus'], args
kind, verb, name = args[2], args[3], args[4]
if verb == 'describe':
  if os.environ.get('FAKE_GCLOUD_DENY'):
    sys.exit('ERROR: (gcloud.compute.tpus.describe) PERMISSION_DENIED: no access to project my-proj')
  if name not in state[kind]:
    sys.exit(f"ERROR: (gcloud.compute.tpus.{{kind}}.describe) NOT_FOUND: Resource 'nodes/{{name}}' was "
             "not found")
  print(state[kind][name])
elif verb == 'create':
  state[kind][name] = 'READY' if kind == 'tpu-vm' else 'ACTIVE'
  if kind == 'queued-resources':
    state['tpu-vm'][name] = 'READY'
elif verb == 'delete':
  state[kind].pop(name)
  if kind == 'queued-resources':
    state['tpu-vm'].pop(name, None)
json.dump(state, open(state_file, 'w'))
'''


@pytest.fixture
def env(tmp_path):
  """A clean environment whose PATH starts with a forbidden fake gcloud (and uv)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  for tool in ('gcloud', 'uv'):
    (bin_dir / tool).write_text(_FORBIDDEN_GCLOUD)
    (bin_dir / tool).chmod(0o755)
  home = tmp_path / 'home'
  home.mkdir()
  return {'PATH': f'{bin_dir}:/usr/bin:/bin', 'HOME': str(home), 'LANG': 'C.UTF-8', 'TMPDIR': str(tmp_path),
          'FAKE_GCLOUD_MARKER': str(tmp_path / 'gcloud_was_called')}


def _bash(script: str, *args: str, env: dict[str, str],
          check_rc: int | None = 0) -> subprocess.CompletedProcess:
  result = subprocess.run(['bash', str(LAUNCH / script), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
  if check_rc is not None:
    assert result.returncode == check_rc, (result.stdout, result.stderr)
  return result


def _dry_run(script: str, *args: str, env: dict[str, str]) -> list[list[str]]:
  """Runs `script --dry-run args`; returns the printed commands as argv lists. gcloud must not run."""
  result = _bash(script, '--dry-run', *args, env=env)
  assert not os.path.exists(env['FAKE_GCLOUD_MARKER']), 'dry run called gcloud'
  lines = result.stdout.splitlines()
  assert lines and all(line.startswith('+ ') for line in lines), result.stdout
  return [shlex.split(line[2:]) for line in lines]


def _remote_command(argv: list[str]) -> str:
  """The --command=... of a `gcloud compute tpus tpu-vm ssh` argv."""
  commands = [a[len('--command='):] for a in argv if a.startswith('--command=')]
  assert len(commands) == 1, argv
  return commands[0]


# ---------------------------------------------------------------------------------------------------------
# Creation.


@pytest.mark.parametrize('accelerator,version', [
    ('v4-32', 'tpu-ubuntu2204-base'), ('v5litepod-8', 'v2-alpha-tpuv5-lite'), ('v5p-16', 'v2-alpha-tpuv5'),
    ('v6e-8', 'v2-alpha-tpuv6e')])
def test_create_dry_run(env, accelerator, version):
  describe, create = _dry_run('tpu_create.sh', *TPU, '--accelerator', accelerator, '--spot', '--',
                              '--network=my net', env=env)
  location = ['--zone=us-central2-b', '--project=my-proj']
  assert describe == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'describe', 'estrnn-v4', *location,
                      '--format=value(state)']
  assert create == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'estrnn-v4', *location,
                    f'--accelerator-type={accelerator}', f'--version={version}', '--spot', '--network=my net']


def test_create_queued_dry_run_with_env_settings(env):
  env = {**env, 'DRY_RUN': '1', 'TPU_NAME': 'qr-1', 'TPU_ZONE': 'europe-west4-a'}
  result = _bash('tpu_create.sh', '--accelerator=v5litepod-16', '--version=my-runtime', '--queued', env=env)
  assert not os.path.exists(env['FAKE_GCLOUD_MARKER'])
  describe, create = [shlex.split(line[2:]) for line in result.stdout.splitlines()]
  assert describe[:6] == ['gcloud', 'compute', 'tpus', 'queued-resources', 'describe', 'qr-1']
  assert create == ['gcloud', 'compute', 'tpus', 'queued-resources', 'create', 'qr-1', '--node-id=qr-1',
                    '--zone=europe-west4-a', '--accelerator-type=v5litepod-16',
                    '--runtime-version=my-runtime']


def _stateful_gcloud(env: dict[str, str], tmp_path: pathlib.Path) -> pathlib.Path:
  gcloud = pathlib.Path(env['PATH'].split(':')[0]) / 'gcloud'
  gcloud.write_text(_STATEFUL_GCLOUD.format(python=sys.executable))
  env.update(FAKE_GCLOUD_STATE=str(tmp_path / 'tpus.json'), FAKE_GCLOUD_CALLS=str(tmp_path / 'calls.jsonl'))
  return tmp_path / 'calls.jsonl'


def _verbs(calls_file: pathlib.Path) -> list[str]:
  calls = [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
  calls_file.unlink(missing_ok=True)
  return [f'{c[2]} {c[3]}' for c in calls]


def test_create_and_delete_are_idempotent(env, tmp_path):
  calls = _stateful_gcloud(env, tmp_path)
  create = ('tpu_create.sh', *TPU, '--accelerator', 'v4-8')
  _bash(*create, env=env)
  assert _verbs(calls) == ['tpu-vm describe', 'tpu-vm create']
  again = _bash(*create, env=env)
  assert _verbs(calls) == ['tpu-vm describe']
  assert 'already exists (state READY); nothing to create' in again.stderr
  _bash('tpu_delete.sh', *TPU, env=env)
  assert _verbs(calls) == ['tpu-vm describe', 'tpu-vm delete']
  gone = _bash('tpu_delete.sh', *TPU, env=env)
  assert _verbs(calls) == ['tpu-vm describe']
  assert 'does not exist in us-central2-b; nothing to delete' in gone.stderr


def test_create_on_a_preempted_vm_says_how_to_recover(env, tmp_path):
  calls = _stateful_gcloud(env, tmp_path)
  state = {'tpu-vm': {'estrnn-v4': 'PREEMPTED'}, 'queued-resources': {}}
  (tmp_path / 'tpus.json').write_text(json.dumps(state))
  result = _bash('tpu_create.sh', *TPU, '--accelerator', 'v4-8', env=env)
  assert _verbs(calls) == ['tpu-vm describe']
  assert 'it was PREEMPTED: delete it (launch/tpu_delete.sh) and create it again' in result.stderr


def test_queued_create_waits_and_delete_removes_it(env, tmp_path):
  calls = _stateful_gcloud(env, tmp_path)
  env['POLL_SECONDS'] = '0'
  result = _bash('tpu_create.sh', *TPU, '--accelerator', 'v4-8', '--queued', '--spot', '--wait', env=env)
  assert _verbs(calls) == ['queued-resources describe', 'queued-resources create',
                           'queued-resources describe']
  assert 'queued resource estrnn-v4 is ACTIVE' in result.stderr
  _bash('tpu_delete.sh', *TPU, '--queued', env=env)
  assert _verbs(calls) == ['queued-resources describe', 'queued-resources delete']
  assert json.loads((tmp_path / 'tpus.json').read_text()) == {'tpu-vm': {}, 'queued-resources': {}}


def test_gcloud_errors_other_than_not_found_are_fatal(env, tmp_path):
  calls = _stateful_gcloud(env, tmp_path)
  env['FAKE_GCLOUD_DENY'] = '1'
  for script, args in [('tpu_create.sh', ['--accelerator', 'v4-8']), ('tpu_delete.sh', [])]:
    result = _bash(script, *TPU, *args, env=env, check_rc=1)
    assert 'PERMISSION_DENIED' in result.stderr and 'could not query tpu-vm estrnn-v4' in result.stderr
    assert _verbs(calls) == ['tpu-vm describe']


# ---------------------------------------------------------------------------------------------------------
# Installation.


def test_install_from_this_checkout_dry_run(env, tmp_path):
  pack, scp, rm, ssh = _dry_run('tpu_install.sh', *TPU, env=env)
  tarball = str(tmp_path / 'estrnn_jax_estrnn-v4.tgz')
  assert pack[:2] == ['bash', '-c'] and pack[-2:] == [str(REPO), tarball]
  assert scp == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', tarball, 'estrnn-v4:estrnn_jax.tgz',
                 '--zone=us-central2-b', '--project=my-proj', '--worker=all']
  assert rm == ['rm', '-f', tarball]
  assert ssh[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'estrnn-v4'] and '--worker=all' in ssh
  remote = _remote_command(ssh)
  assert remote.index('remote_train.sh check-idle') < remote.index('tar -xzf ~/estrnn_jax.tgz')
  assert remote.endswith('bash ~/estrnn_jax/launch/remote_setup.sh')
  # The printed packing command really packs the working tree without ignored files (.venv, caches).
  subprocess.run(pack, check=True, capture_output=True, timeout=60)
  with tarfile.open(tarball) as archive:
    names = set(archive.getnames())
  assert {'launch/remote_setup.sh', 'requirements.txt', 'estrnn_jax/torch_pickle.py'} <= names
  assert not any(n.startswith('.venv/') or '__pycache__' in n for n in names)


def test_install_from_git_dry_run_quotes_the_ref(env):
  (ssh,) = _dry_run('tpu_install.sh', *TPU, '--repo', 'https://example.com/me/estrnn.git', '--ref',
                    "feat/x'; rm -rf ~", env=env)
  assert '--worker=all' in ssh
  remote = _remote_command(ssh)
  assert 'git clone --quiet https://example.com/me/estrnn.git ~/estrnn_jax' in remote
  after_fetch = shlex.shlex(remote.split('git -C ~/estrnn_jax fetch --quiet origin ', 1)[1], posix=True,
                            punctuation_chars=True)
  assert next(after_fetch) == "feat/x'; rm -rf ~" and next(after_fetch) == ';'



def test_remote_setup_dry_run_installs_the_pinned_jax_tpu(env, tmp_path):
  commands = _dry_run('remote_setup.sh', env=env)
  venv = str(tmp_path / 'home' / 'estrnn_venv')
  assert ['uv', 'venv', '--seed', '--python', '3.11', venv] in commands
  assert ['uv', 'pip', 'install', '--python', f'{venv}/bin/python', '-r', str(REPO / 'requirements.txt'),
          'jax[tpu]==0.10.2'] in commands
  cuda = _dry_run('remote_setup.sh', '--jax_extra', 'cuda12', '--venv', '/opt/venv', env=env)
  assert any(c[:3] == ['uv', 'pip', 'install'] and c[-1] == 'jax[cuda12]==0.10.2' for c in cuda)


# ---------------------------------------------------------------------------------------------------------
# Training.


def test_run_dry_run_passes_everything_through_two_shells(env, tmp_path):
  main_args = ['--config.batch_size=64', "--config.note=it's a; $(touch pwned) `x` test", '']
  (ssh,) = _dry_run('tpu_run.sh', *TPU, '--config', 'configs/bsd_2ms16ms.py', '--workdir', 'gs://b/runs/bsd',
                    '--data_dir=gs://b/tfds dir', '--', *main_args, env=env)
  assert ssh[:6] == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'estrnn-v4'] and '--worker=all' in ssh
  remote = _remote_command(ssh)
  assert remote.startswith('bash ~/estrnn_jax/launch/remote_train.sh start ')
  # Run the remote command as a worker's shell would, with this checkout as ~/estrnn_jax, in dry-run mode.
  home = pathlib.Path(env['HOME'])
  (home / 'estrnn_jax').symlink_to(REPO)
  worker = subprocess.run(['bash', '-c', remote], env={**env, 'DRY_RUN': '1'}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=True)
  assert not (tmp_path / 'pwned').exists()
  (line,) = worker.stdout.splitlines()
  argv = shlex.split(line[2:])
  assert argv[:2] == ['setsid', 'nohup']
  assert argv[-4:] == [f'>>{home}/estrnn_logs/train_{socket.gethostname()}.log', '2>&1', '</dev/null', '&']
  job = argv[argv.index('env'):-4]
  assert job == ['env', 'TFDS_DATA_DIR=gs://b/tfds dir', f'{home}/estrnn_venv/bin/python', '-m',
                 'estrnn_jax.main', '--config', 'configs/bsd_2ms16ms.py', '--workdir', 'gs://b/runs/bsd',
                 *main_args]


def test_run_restart_dry_run(env):
  (ssh,) = _dry_run('tpu_run.sh', *TPU, '--config', 'c.py', '--workdir', 'gs://b/w', '--restart', env=env)
  assert _remote_command(ssh) == ('bash ~/estrnn_jax/launch/remote_train.sh start --config c.py '
                                  '--workdir gs://b/w --restart')


def test_run_with_plan_dry_run_plans_the_slice_first(env):
  """--plan: the slice's accelerator type from gcloud, the plan with main's --config overrides, then the start."""
  describe, plan, ssh = _dry_run('tpu_run.sh', *TPU, '--config', 'configs/bsd.py:2ms16ms', '--workdir', 'gs://b/w',
                                 '--plan', '--', '--config.batch_size=64', '--config.model.remat=True', env=env)
  assert describe == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'describe', 'estrnn-v4', '--zone=us-central2-b',
                      '--project=my-proj', '--format=value(acceleratorType)']
  assert plan == ['python3', '-m', 'estrnn_jax.plan', '--config=configs/bsd.py:2ms16ms', '--target=v5litepod-8',
                  '--programs=train,eval', '--must_fit', '--config.batch_size=64', '--config.model.remat=True']
  assert ssh[4] == 'ssh'
  plan, _ = _dry_run('tpu_run.sh', *TPU, '--config', 'c.py', '--workdir', 'gs://b/w', '--plan', '--accelerator',
                     'v4-32', env=env)
  assert plan[4] == '--target=v4-32'


@pytest.mark.parametrize('plan_status, started', [(0, True), (3, False), (1, False)])
def test_run_with_plan_starts_only_what_fits(env, tmp_path, plan_status, started):
  """Not a dry run: a stand-in plan command exits 0 (fits), 3 (does not fit) or 1 (cannot plan); only the
  first reaches the workers (gcloud ssh)."""
  calls = tmp_path / 'calls'
  gcloud = pathlib.Path(env['PATH'].split(':')[0]) / 'gcloud'
  gcloud.write_text(f'#!/bin/sh\necho "gcloud $*" >> {calls}\n')
  fake_python = tmp_path / 'python3'
  fake_python.write_text(f'#!/bin/sh\necho "python $*" >> {calls}\nexit {plan_status}\n')
  fake_python.chmod(0o755)
  result = _bash('tpu_run.sh', *TPU, '--config', 'c.py', '--workdir', 'gs://b/w', '--plan', '--accelerator',
                 'v5litepod-16', '--', '--config.batch_size=64', env={**env, 'PYTHON': str(fake_python)},
                 check_rc=0 if started else 1)
  lines = calls.read_text().splitlines()
  assert lines[0] == ('python -m estrnn_jax.plan --config=c.py --target=v5litepod-16 --programs=train,eval '
                      '--must_fit --config.batch_size=64')
  assert any(' ssh ' in line for line in lines[1:]) == started
  if not started:
    message = 'does not fit on v5litepod-16' if plan_status == 3 else 'could not plan the run'
    assert message in result.stderr and 'nothing was started' in result.stderr


@pytest.mark.parametrize('flag,remote', [('--stop', 'stop'), ('--status', 'status')])
def test_stop_and_status_dry_run(env, flag, remote):
  (ssh,) = _dry_run('tpu_run.sh', *TPU, flag, env=env)
  assert '--worker=all' in ssh
  assert _remote_command(ssh) == f'bash ~/estrnn_jax/launch/remote_train.sh {remote}'


def test_logs_dry_run(env):
  (ssh,) = _dry_run('tpu_logs.sh', *TPU, env=env)
  assert '--worker=0' in ssh
  assert _remote_command(ssh) == 'bash ~/estrnn_jax/launch/remote_train.sh logs --lines 100 --follow'
  (ssh,) = _dry_run('tpu_logs.sh', *TPU, '--worker=all', '--lines', '7', '--no-follow', env=env)
  assert '--worker=all' in ssh
  assert _remote_command(ssh) == 'bash ~/estrnn_jax/launch/remote_train.sh logs --lines 7'


def test_delete_dry_run(env):
  describe, delete = _dry_run('tpu_delete.sh', *TPU, env=env)
  assert describe[3:6] == ['tpu-vm', 'describe', 'estrnn-v4']
  assert delete == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', 'estrnn-v4', '--zone=us-central2-b',
                    '--project=my-proj', '--quiet']


def _is_trainer(pid: int) -> bool:
  """Alive and running the (stand-in) trainer; a zombie's cmdline is empty."""
  try:
    return b'estrnn_jax.main' in pathlib.Path(f'/proc/{pid}/cmdline').read_bytes()
  except FileNotFoundError:
    return False


def test_worker_job_control_start_is_idempotent_and_stop_ends_the_job(env, tmp_path):
  """remote_train.sh for real, with a stand-in trainer: start, start again (no-op), status, stop."""
  venv_bin = tmp_path / 'venv' / 'bin'
  venv_bin.mkdir(parents=True)
  fake_python = venv_bin / 'python'
  fake_python.write_text(textwrap.dedent('''\
      #!/bin/bash
      echo "TFDS_DATA_DIR=$TFDS_DATA_DIR args:$*"
      trap 'echo got SIGTERM; exit 0' TERM
      while true; do sleep 0.1; done
      '''))
  fake_python.chmod(0o755)
  log_dir = tmp_path / 'logs'
  env.update(ESTRNN_VENV=str(tmp_path / 'venv'), ESTRNN_LOG_DIR=str(log_dir), START_CHECK_SECONDS='0.5',
             STOP_TIMEOUT='10')
  start = ('remote_train.sh', 'start', '--config', 'configs/test.py', '--workdir', 'gs://b/w',
           '--data_dir', 'gs://b/tfds', '--', '--config.seed=3')
  pid = None
  try:
    started = _bash(*start, env=env)
    assert 'training started' in started.stderr
    pid = int((log_dir / 'train.pid').read_text())
    assert _is_trainer(pid)
    again = _bash(*start, env=env)
    assert 'already running on' in again.stderr and f'(pid {pid})' in again.stderr
    assert _bash('remote_train.sh', 'check-idle', env=env, check_rc=1).stderr.count('is running') == 1
    status = _bash('remote_train.sh', 'status', env=env)
    assert 'TFDS_DATA_DIR=gs://b/tfds args:-m estrnn_jax.main --config configs/test.py --workdir gs://b/w' \
        ' --config.seed=3' in status.stdout
    _bash('remote_train.sh', 'stop', env=env)
    assert not _is_trainer(pid)
    pid = None
    assert 'no training job running' in _bash('remote_train.sh', 'stop', env=env).stderr
    _bash('remote_train.sh', 'check-idle', env=env)
    log = next(log_dir.glob('train_*.log')).read_text()
    assert log.startswith('=== ') and 'got SIGTERM' in log
  finally:
    if pid is not None:
      os.killpg(pid, signal.SIGKILL)


def test_worker_reports_a_job_that_dies_at_once(env, tmp_path):
  venv_bin = tmp_path / 'venv' / 'bin'
  venv_bin.mkdir(parents=True)
  (venv_bin / 'python').write_text('#!/bin/sh\necho "config file not found" >&2\nexit 1\n')
  (venv_bin / 'python').chmod(0o755)
  env.update(ESTRNN_VENV=str(tmp_path / 'venv'), ESTRNN_LOG_DIR=str(tmp_path / 'logs'),
             START_CHECK_SECONDS='0.5')
  result = _bash('remote_train.sh', 'start', '--config', 'c.py', '--workdir', 'gs://b/w', env=env, check_rc=1)
  assert 'config file not found' in result.stderr and 'exited at once' in result.stderr


# ---------------------------------------------------------------------------------------------------------
# Usage errors: non-zero exit, a message, the usage text, no gcloud.


@pytest.mark.parametrize('script,args,message', [
    ('tpu_create.sh', ['--zone', 'z', '--accelerator', 'v4-8'], '--name is required'),
    ('tpu_create.sh', ['--name', 'n', '--accelerator', 'v4-8'], '--zone is required'),
    ('tpu_create.sh', ['--name', 'n', '--zone', 'z'], '--accelerator is required'),
    ('tpu_create.sh', ['--name', 'n', '--zone', 'z', '--accelerator', 'v9-8'], 'no default --version'),
    ('tpu_create.sh', ['--name', 'N_1', '--zone', 'z', '--accelerator', 'v4-8'], '--name must be lowercase'),
    ('tpu_create.sh', ['--name', 'n', '--zone', 'z', '--accelerator', 'v4-8', '--spot', '--preemptible'],
     'exclude each other'),
    ('tpu_install.sh', ['--zone', 'z'], '--name is required'),
    ('tpu_install.sh', ['--name', 'n', '--zone'], '--zone needs a value'),
    ('tpu_run.sh', ['--name', 'n', '--zone', 'z', '--workdir', 'gs://b/w'], '--config is required'),
    ('tpu_run.sh', ['--name', 'n', '--zone', 'z', '--config', 'c.py'], '--workdir is required'),
    ('tpu_run.sh', ['--name', 'n', '--zone', 'z', '--config', 'c.py', '--workdir', '/tmp/w'],
     '--workdir must be a gs:// path'),
    ('tpu_run.sh', ['--name', 'n', '--zone', 'z', '--config', 'c.py', '--workdir', 'gs://b', '--batch=1'],
     'unknown argument: --batch (arguments for estrnn_jax.main go after --)'),
    ('tpu_logs.sh', ['--name', 'n', '--zone', 'z', '--worker', 'x'], '--worker must be a number'),
    ('tpu_delete.sh', ['--name', 'n'], '--zone is required'),
    ('remote_train.sh', [], 'missing COMMAND'),
    ('remote_train.sh', ['start', '--workdir', 'gs://b/w'], '--config is required'),
    ('remote_setup.sh', ['--jax_extra', 'rocm'], '--jax_extra must be'),
    ('gpu_multihost.sh', ['--workdir', 'w'], '--config is required'),
    ('gpu_multihost.sh', ['--config', 'c', '--workdir', 'w', '--coordinator', 'h:1'], 'go together'),
    ('gpu_multihost.sh', ['--config', 'c', '--workdir', 'w', '--coordinator', 'h:1', '--num_processes', '2',
                          '--process_id', '2'], '--process_id must be in 0..1'),
    ('gpu_multihost.sh', ['--config', 'c', '--workdir', 'w', '--coordinator', 'host', '--num_processes', '2',
                          '--process_id', '0'], '--coordinator must be HOST:PORT'),
])
def test_usage_errors(env, script, args, message):
  result = _bash(script, '--dry-run', *args, env=env, check_rc=2)
  assert message in result.stderr and 'Usage: bash launch/' in result.stderr
  assert result.stdout == ''
  assert not os.path.exists(env['FAKE_GCLOUD_MARKER'])


def test_help_exits_zero(env):
  for script in ('tpu_create.sh', 'tpu_install.sh', 'tpu_run.sh', 'tpu_logs.sh', 'tpu_delete.sh',
                 'remote_setup.sh', 'gpu_multihost.sh'):
    assert _bash(script, '--help', env=env).stdout.startswith(f'Usage: bash launch/{script}')


# ---------------------------------------------------------------------------------------------------------
# Multi-host GPU.


def _gpu_job(env: dict[str, str], *args: str) -> tuple[dict[str, str], list[str]]:
  """Dry-runs gpu_multihost.sh; returns (JAX/TFDS env vars, python argv)."""
  (argv,) = _dry_run('gpu_multihost.sh', '--config', 'configs/x.py', '--workdir', '/shared/w', *args, env=env)
  assert argv[0] == 'env'
  i = 1
  while '=' in argv[i] and not argv[i].startswith('-'):
    i += 1
  return dict(a.split('=', 1) for a in argv[1:i]), argv[i:]


def test_gpu_multihost_explicit(env):
  variables, command = _gpu_job(env, '--coordinator', '10.0.0.1:1234', '--num_processes', '4',
                                '--process_id', '3', '--data_dir', '/shared/tfds', '--', '--config.seed=1')
  assert variables == {'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234', 'JAX_NUM_PROCESSES': '4',
                       'JAX_PROCESS_ID': '3', 'TFDS_DATA_DIR': '/shared/tfds'}
  assert command == ['python3', '-m', 'estrnn_jax.main', '--config', 'configs/x.py', '--workdir', '/shared/w',
                     '--config.seed=1']


def test_gpu_multihost_slurm_one_task_per_node_sees_all_gpus(env):
  env.update(SLURM_JOB_ID='1234', SLURM_NTASKS='2', SLURM_PROCID='1', SLURM_LOCALID='0', SLURM_NNODES='2',
             SLURM_JOB_NODELIST='gpu[03-04]', SLURM_GPUS_ON_NODE='8')
  variables, _ = _gpu_job(env)
  assert variables == {'JAX_COORDINATOR_ADDRESS': 'gpu03:62674', 'JAX_NUM_PROCESSES': '2',
                       'JAX_PROCESS_ID': '1', 'JAX_LOCAL_DEVICE_IDS': '0,1,2,3,4,5,6,7'}
  env.update(SLURM_NTASKS='16', SLURM_PROCID='9', SLURM_LOCALID='1')  # One task per GPU instead.
  variables, _ = _gpu_job(env)
  assert variables['JAX_LOCAL_DEVICE_IDS'] == '1' and variables['JAX_PROCESS_ID'] == '9'


def test_gpu_single_host_sets_no_distributed_variables(env):
  variables, command = _gpu_job(env, '--python', '/opt/py/bin/python')
  assert variables == {} and command[:3] == ['/opt/py/bin/python', '-m', 'estrnn_jax.main']
