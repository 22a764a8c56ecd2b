"""Test-session set-up: 8 simulated CPU devices, parsed absl flags, shared fixtures.

XLA_FLAGS must be set before jax is first imported, so this runs at collection time. A user's own XLA_FLAGS
are kept, except that the host device count is forced to 8 (the sharding tests need exactly that many).
"""

import hashlib
import os
import pathlib
import re
import subprocess
import types

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


def tree_digest(root: pathlib.Path) -> dict[str, str]:
  """{path relative to `root`: sha256 of a file, 'dir', or 'link -> target'} of everything below `root`, hidden
  files included: what "the user's files are unchanged" compares."""
  digest = {}
  for path in sorted(pathlib.Path(root).rglob('*')):
    name = str(path.relative_to(root))
    if path.is_symlink():
      digest[name] = f'link -> {os.readlink(path)}'
    elif path.is_dir():
      digest[name] = 'dir'
    else:
      digest[name] = hashlib.sha256(path.read_bytes()).hexdigest()
  return digest


@pytest.fixture
def mounts(tmp_path):
  """Real filesystems for fault tests: `mounts.tiny(size)` a tmpfs of `size` (e.g. '64k') that fills up,
  `mounts.read_only(folder)` a read-only view of `folder`'s contents. Both need root (CI runs as root); a test
  that needs them is skipped, saying why, where mounting is not allowed. Unmounted afterwards."""
  mounted: list[pathlib.Path] = []

  def mount(*args: str) -> None:
    result = subprocess.run(['mount', *args], capture_output=True, text=True, check=False)
    if result.returncode:
      pytest.skip(f'cannot mount a filesystem here (mount {" ".join(args)}: {result.stderr.strip()}); needs root')
    mounted.append(pathlib.Path(args[-1]))

  def tiny(size: str) -> pathlib.Path:
    point = tmp_path / f'disk_{len(mounted)}'
    point.mkdir()
    mount('-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(point))
    return point

  def read_only(folder: pathlib.Path) -> pathlib.Path:
    point = tmp_path / f'read_only_{len(mounted)}'
    point.mkdir()
    mount('--bind', str(folder), str(point))
    mount('-o', 'remount,bind,ro', str(point))
    mounted.pop()   # the same mount point, remounted
    return point

  yield types.SimpleNamespace(tiny=tiny, read_only=read_only)
  for point in reversed(mounted):
    subprocess.run(['umount', '-l', str(point)], capture_output=True, check=False)


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory) -> pathlib.Path:
  """A JAX compilation cache shared by every test worker of this session (and the processes tests start), so a
  program that several modules run (the tiny cosine train step) compiles once per session."""
  base = tmp_path_factory.getbasetemp()
  if base.name.startswith("popen-gw"):   # pytest-xdist: one folder per worker under the session's
    base = base.parent
  path = base / "jax_cache_shared"
  path.mkdir(exist_ok=True)
  return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> pathlib.Path:
  """The data_dir of synthetic_blur/tiny, built once per test worker (through the path training uses)."""
  from datasets import build  # pylint: disable=g-import-not-at-top
  path = tmp_path_factory.getbasetemp() / "tfds_tiny"
  build.build("synthetic_blur/tiny", path)
  return path


@pytest.fixture(scope="module")
def compilation_cache(shared_cache_dir):
  """Turns on JAX's persistent compilation cache (`shared_cache_dir`) for a module's tests; off again after."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache as cache  # pylint: disable=g-import-not-at-top
  from estrnn_jax import runtime  # pylint: disable=g-import-not-at-top
  previous = jax.config.jax_compilation_cache_dir
  runtime.use_compilation_cache(shared_cache_dir)
  yield shared_cache_dir
  jax.config.update("jax_compilation_cache_dir", previous)
  cache.reset_cache()
