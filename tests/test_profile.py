"""Parameter and MAC counts against the paper's table and the reference's closed forms."""

import pathlib
import subprocess
import sys

import pytest

from estrnn_jax import model as model_lib
from estrnn_jax import profile

ROOT = pathlib.Path(__file__).parents[1]


def closed_form_params(c, b):
  d = 3 * c // 2
  return (2592 + 458 * b) * c * c + 60 * c * d + 27 * d * d + 3 * d + (272 + 11 * b) * c + 3


def closed_form_thop(c, b, h, w):
  d = 3 * c // 2
  return h * w * ((387.125 + 28.625 * b) * c * c + 15 * c * d + 6.75 * d * d + 150 * c) + 1600 * c * c


@pytest.mark.parametrize('c, b, expected', [(16, 15, 2_467_931), (12, 9, 993_033), (16, 9, 1_763_387)])
def test_paper_parameter_counts(c, b, expected):
  assert profile.count_params(model_lib.ESTRNN(n_features=c, n_blocks=b)) == expected


@pytest.mark.parametrize('c, b', [(4, 2), (8, 3), (10, 1)])
def test_parameter_closed_form(c, b):
  assert profile.count_params(model_lib.ESTRNN(n_features=c, n_blocks=b)) == closed_form_params(c, b)


@pytest.mark.parametrize('c, b, h, w', [(16, 15, 720, 1280), (12, 9, 720, 1280), (4, 2, 16, 32)])
def test_mac_counts(c, b, h, w):
  p = profile.profile(c, b, h, w)
  thop = closed_form_thop(c, b, h, w)
  assert p.thop_macs == thop
  assert p.true_macs == thop - 97.875 * c * c * h * w
  assert sum(p.true_macs_by_module.values()) == p.true_macs
  assert set(p.true_macs_by_module) == {'cell', 'fusion', 'reconstructor'}


def test_paper_gmacs_and_executed_count():
  p = profile.profile(16, 15, 720, 1280)
  assert round(p.thop_macs / 1e9, 2) == 203.74  # ESTRNN_REFERENCE: thop, B15C80 @720x1280
  # The folded GSA executes fewer MACs than the reference form; sub-pixel upsampling a few more.
  assert 0.8 * p.true_macs < p.executed_macs < p.true_macs


def test_cli_prints_report():
  result = subprocess.run([sys.executable, '-m', 'estrnn_jax.profile', '--n_features', '12', '--n_blocks', '9',
                           '--height', '720', '--width', '1280'], capture_output=True, text=True, check=True, cwd=ROOT)
  assert '993,033' in result.stdout
  assert '92.23 G' in result.stdout
  bad = subprocess.run([sys.executable, '-m', 'estrnn_jax.profile', '--height', '30'],
                       capture_output=True, text=True)
  assert bad.returncode != 0 and 'multiples of 4' in bad.stderr
