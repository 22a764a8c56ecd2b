"""Test-session set-up: 8 simulated CPU devices, parsed absl flags, shared fixtures.

XLA_FLAGS must be set before jax is first imported, so this runs at collection time. A user's own XLA_FLAGS
are kept, except that the host device count is forced to 8 (the sharding tests need exactly that many).
"""

import os
import pathlib
import re

NUM_TEST_DEVICES = 8


def with_host_device_count(xla_flags: str, count: int) -> str:
  """`xla_flags` with any --xla_force_host_platform_device_count replaced by `count` (appended if absent)."""
  kept = re.sub(r"(^|\s)--xla_force_host_platform_device_count(=\S*)?(?=\s|$)", " ", xla_flags).split()
  return " ".join([*kept, f"--xla_force_host_platform_device_count={count}"])


os.environ["XLA_FLAGS"] = with_host_device_count(os.environ.get("XLA_FLAGS", ""), NUM_TEST_DEVICES)
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
