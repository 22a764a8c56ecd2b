"""Test-session set-up: 8 simulated CPU devices, parsed absl flags, shared fixtures.

XLA_FLAGS must be set before jax is first imported, so this runs at collection time.
"""

import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow (pulled in by TFDS) must not grab memory or threads meant for JAX.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from absl import flags  # noqa: E402
import pytest  # noqa: E402

# grain worker processes and some clu/tfds helpers read absl flags; pytest never parses them.
flags.FLAGS.mark_as_parsed()

TESTDATA = pathlib.Path(__file__).parent / "testdata"


@pytest.fixture(scope="session")
def testdata() -> pathlib.Path:
  """Folder with the golden vectors and the fake official checkpoint."""
  return TESTDATA
