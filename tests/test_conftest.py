"""The test session's set-up itself: 8 simulated CPU devices whatever XLA_FLAGS the user has."""

import os
import pathlib
import subprocess
import sys

import jax
import pytest

import conftest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('user_flags,expected', [
    ('', '--xla_force_host_platform_device_count=8'),
    ('--xla_force_host_platform_device_count=2',
     '--xla_force_host_platform_device_count=8'),
    ('--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=1 --xla_dump_to=/tmp/x',
     '--xla_cpu_enable_fast_math=false --xla_dump_to=/tmp/x --xla_force_host_platform_device_count=8'),
])
def test_device_count_flag_is_replaced_and_other_flags_kept(user_flags, expected):
  assert conftest.with_host_device_count(user_flags, 8) == expected


def test_this_session_has_eight_cpu_devices():
  assert jax.device_count() == 8 and jax.default_backend() == 'cpu'


@pytest.mark.timeout(300)
def test_a_user_device_count_in_xla_flags_is_overridden(tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2 --xla_cpu_use_thunk_runtime=true',
             JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-p', 'no:xdist', '-p', 'no:randomly',
       'tests/test_conftest.py::test_this_session_has_eight_cpu_devices'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert '1 passed' in proc.stdout
