"""Where a command writes: checked before any work is done, compared with its inputs by what the paths are.

  * `check_writable`: the destination can be created and written (found by writing a hidden probe, as
    permission bits say nothing for root or a read-only mount; a probe of a few KiB also finds a full disk).
  * `same_path`, `is_inside`: two names of one file or folder (symlinks, hard links, `..`) are one path.
  * `write_failure`: a failed write described by the user's output and the cause (full disk, read-only, ...),
    never by the temporary it went to.

Remote paths (`gs://...`) are not probed: their writes fail with their own errors.
"""

from __future__ import annotations

import errno
import os

from etils import epath

from estrnn_jax import atomic
from estrnn_jax import cli

_PROBE_BYTES = 4096
# errno values that say the destination, not the data, is the problem.
_DESTINATION_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO,
                       errno.ENOTDIR, errno.EISDIR)
# How libraries that wrap the OS error in text (TensorStore inside Orbax, FFmpeg) spell those causes.
_CAUSES_IN_TEXT = {os.strerror(code): os.strerror(code) for code in _DESTINATION_ERRNOS}
_CAUSES_IN_TEXT['RESOURCE_EXHAUSTED'] = os.strerror(errno.ENOSPC)


def is_remote(path: epath.PathLike) -> bool:
  return '://' in os.fspath(path)


def _nearest_existing(path: str) -> str:
  while not os.path.lexists(path):
    path = os.path.dirname(path)
  return path


def check_writable(path: epath.PathLike, *, flag: str, into: bool = False) -> None:
  """Raises `cli.UserError` naming `flag` and `path` unless `path` can be created and written here.

  Args:
    path: the output (file or folder) the command will create or replace.
    flag: how the user named it, e.g. '--output'.
    into: `path` is a folder the command writes files into (probe inside it when it exists); else `path` is
      created or replaced as a whole (probe its folder).
  """
  if is_remote(path):
    return
  full = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if into and os.path.isdir(full):
    folder = full
  else:
    folder = _nearest_existing(os.path.dirname(full))
  if not os.path.isdir(folder):
    raise cli.UserError(f'{flag} {path}: cannot be created, {folder} is a file, not a folder.')
  probe = atomic.temporary_path(epath.Path(folder) / f'{os.path.basename(full) or "probe"}.probe')
  try:
    with open(probe, 'xb') as f:
      f.write(b'\0' * _PROBE_BYTES)
      f.flush()
      os.fsync(f.fileno())
  except OSError as e:
    raise cli.UserError(f'{flag} {path}: cannot write in {folder} ({e.strerror or e}).') from None
  finally:
    atomic.remove(probe)


def check_free_space(path: epath.PathLike, needed_bytes: int, *, flag: str) -> None:
  """Raises `cli.UserError` when the disk `path` goes to has less than `needed_bytes` free."""
  if is_remote(path):
    return
  folder = _nearest_existing(os.path.abspath(os.fspath(path)))
  disk = os.statvfs(folder)
  free = disk.f_bavail * disk.f_frsize
  if free < needed_bytes:
    raise cli.UserError(f'{flag} {path}: needs about {_megabytes(needed_bytes)} and {folder} has '
                        f'{_megabytes(free)} free.')


def _megabytes(count: int) -> str:
  return f'{count / 1e6:.2f} MB'


def same_path(a: epath.PathLike, b: epath.PathLike) -> bool:
  """True when `a` and `b` name one file or folder: through symlinks, hard links, `..` or relative paths.
  Paths that do not exist yet are compared by where they would be created."""
  a, b = os.fspath(a), os.fspath(b)
  if is_remote(a) or is_remote(b):
    return a.rstrip('/') == b.rstrip('/')
  try:
    return os.path.samefile(a, b)
  except OSError:
    return os.path.realpath(a) == os.path.realpath(b)


def is_inside(path: epath.PathLike, folder: epath.PathLike) -> bool:
  """True when `path` is `folder` or lies under it (paths resolved as in `same_path`)."""
  if same_path(path, folder):
    return True
  path, folder = os.path.realpath(os.fspath(path)), os.path.realpath(os.fspath(folder))
  return path.startswith(folder.rstrip(os.sep) + os.sep)


def cause(error: BaseException) -> str | None:
  """What about the destination made `error` happen ('No space left on device', 'Read-only file system', ...),
  from an OSError's errno or from the text of a library's error that wraps one; None for other errors."""
  if isinstance(error, OSError) and error.errno in _DESTINATION_ERRNOS:
    return os.strerror(error.errno)
  text = str(error)
  for fragment, meaning in _CAUSES_IN_TEXT.items():
    if fragment in text:
      return meaning
  return None


def write_failure(flag: str, path: epath.PathLike, error: BaseException, *,
                  outcome: str = 'nothing was written there') -> cli.UserError | None:
  """The one-line error for a write of `path` that failed with `error` because of its destination (None when the
  destination is not the cause). It names the user's output, not the temporary the data went to, and `outcome`."""
  reason = cause(error)
  if reason is None:
    return None
  return cli.UserError(f'{flag} {path}: cannot write it ({reason}); {outcome}.')
