"""Multi-process environment detection (what decides whether main.py initialises jax.distributed)."""

import glob
import io
import urllib.request

import pytest

from estrnn_jax import runtime

_LAUNCHER_VARS = ('JAX_COORDINATOR_ADDRESS', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE', 'TPU_WORKER_HOSTNAMES',
                  'MEGASCALE_COORDINATOR_ADDRESS')


@pytest.fixture
def clean_env(monkeypatch):
  for name in _LAUNCHER_VARS:
    monkeypatch.delenv(name, raising=False)
  return monkeypatch


def fake_tpu_vm(monkeypatch, endpoints: str):
  monkeypatch.setattr(glob, 'glob', lambda pattern: ['/dev/accel0'] if 'accel' in pattern else [])
  requests = []

  def urlopen(request, timeout):
    requests.append((request.full_url, request.headers, timeout))
    return io.BytesIO(endpoints.encode())

  monkeypatch.setattr(urllib.request, 'urlopen', urlopen)
  return requests


def test_single_process_here(clean_env):
  assert runtime.multi_process_environment() is None


def test_launcher_variables(clean_env):
  clean_env.setenv('SLURM_NTASKS', '4')
  assert runtime.multi_process_environment() == 'SLURM'
  clean_env.setenv('SLURM_NTASKS', '1')
  clean_env.setenv('TPU_WORKER_HOSTNAMES', 'a,b')
  assert runtime.multi_process_environment() == 'Cloud TPU (multi-host)'


def test_multi_host_tpu_vm_found_through_metadata(clean_env):
  requests = fake_tpu_vm(clean_env, 'w0:8470:10.0.0.2,w1:8470:10.0.0.3,w2:8470:10.0.0.4,w3:8470:10.0.0.5')
  assert runtime.multi_process_environment() == 'Cloud TPU (multi-host, from metadata)'
  url, headers, timeout = requests[0]
  assert url.endswith('/instance/attributes/worker-network-endpoints')
  assert headers == {'Metadata-flavor': 'Google'} and timeout <= 2


def test_single_host_tpu_vm_is_single_process(clean_env):
  fake_tpu_vm(clean_env, 'w0:8470:10.0.0.2')
  assert runtime.multi_process_environment() is None


def test_metadata_server_not_asked_without_tpu_devices(clean_env):
  clean_env.setattr(glob, 'glob', lambda pattern: [])
  clean_env.setattr(urllib.request, 'urlopen', lambda *a, **k: pytest.fail('metadata server asked'))
  assert runtime.multi_process_environment() is None
