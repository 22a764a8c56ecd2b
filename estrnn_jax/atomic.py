"""Whole-file writes that a reader never sees half done: write a hidden temporary sibling, then rename it.

`write_bytes`, `write_text` and `write_json` leave either the complete new file or (on any failure, Ctrl-C
included) the previous file untouched and no temporary behind. Paths may be local or gs:// (`etils.epath`);
on a local filesystem the rename is atomic. Writers that produce a file piece by piece (videos) name their
temporary with `temporary_path` and move it into place with `move_into_place` when done. Outputs that are
whole directories (a converted checkpoint, a PNG frame folder) are filled inside `directory(path)`, which
moves them into place only when complete; an interrupted run leaves no directory at `path` that looks complete
and no temporary, so rerunning it works.

Temporaries are named `.<stem>.tmp-<pid>-<host>-<random><suffix>` (`<host>`: 6 hex digits of this machine's
name), so a run killed too hard to clean up (SIGKILL, power loss) leaves names that the next write to the same
destination recognises: `remove_stale_temporaries` deletes those whose process is gone from this machine, and
leaves alone those of a live process (a concurrent writer) or of another machine.
"""

from collections.abc import Iterator
import contextlib
import hashlib
import json
import os
import re
import socket
import time
from typing import Any
import uuid

from absl import logging
from etils import epath

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _owner_tag() -> str:
  return f'{os.getpid()}-{_HOST}-{uuid.uuid4().hex[:8]}'


def temporary_path(path: epath.PathLike) -> epath.Path:
  """A hidden, unique sibling of `path` with the same suffix: `dir/.name.tmp-<pid>-<host>-<random>.ext`."""
  path = epath.Path(path)
  return path.with_name(f'.{path.stem}.tmp-{_owner_tag()}{path.suffix}')


def _aside_path(path: epath.Path) -> epath.Path:
  """Where `move_into_place` parks the directory it replaces until the new one is in place."""
  return path.with_name(f'.{path.name}.old-{_owner_tag()}')


def _process_is_gone(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except PermissionError:   # alive, another user's
    return False
  return False


def stale_temporaries(path: epath.PathLike) -> list[epath.Path]:
  """The temporaries of `path` (files or directories) left by processes of this machine that no longer run."""
  path = epath.Path(path)
  owner = r'(\d+)-([0-9a-f]{6})-[0-9a-f]{8}'
  patterns = (re.escape(f'.{path.stem}.tmp-') + owner + re.escape(path.suffix),
              re.escape(f'.{path.name}.old-') + owner)
  if not path.parent.is_dir():
    return []
  stale = []
  for candidate in path.parent.iterdir():
    for pattern in patterns:
      match = re.fullmatch(pattern, candidate.name)
      if match and match.group(2) == _HOST and _process_is_gone(int(match.group(1))):
        stale.append(candidate)
  return stale


def remove(path: epath.PathLike) -> None:
  """Deletes a file or directory tree if it exists; never raises (it runs while another error unwinds).

  Retries for up to a second: a library's background threads (Orbax's) may still be finishing a write into a
  temporary the caller abandons. What cannot be removed is logged.
  """
  path = epath.Path(path)
  error = None
  for _ in range(20):
    try:
      if path.is_dir():
        path.rmtree()
      else:
        path.unlink(missing_ok=True)
    except FileNotFoundError:
      pass
    except OSError as e:
      error = e
    if not path.exists():
      return
    time.sleep(0.05)
  logging.warning('Could not remove the temporary %s (%s); delete it by hand.', path, error)


def remove_stale_temporaries(path: epath.PathLike) -> None:
  """Deletes what `stale_temporaries(path)` lists (a run killed while writing `path`)."""
  for stale in stale_temporaries(path):
    remove(stale)


def write_bytes(path: epath.PathLike, data: bytes) -> epath.Path:
  """Replaces `path` with `data` through a temporary sibling; returns `path`."""
  path = epath.Path(path)
  remove_stale_temporaries(path)
  tmp = temporary_path(path)
  try:
    tmp.write_bytes(data)
    tmp.replace(path)
  except BaseException:
    remove(tmp)
    raise
  return path


def write_text(path: epath.PathLike, text: str) -> epath.Path:
  """`write_bytes` of `text` in UTF-8."""
  return write_bytes(path, text.encode('utf-8'))


def write_json(path: epath.PathLike, obj: Any) -> epath.Path:
  """`obj` as indented, key-sorted JSON with a final newline."""
  return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def move_into_place(temporary: epath.PathLike, path: epath.PathLike) -> epath.Path:
  """Renames a finished `temporary` (file or directory) to `path`, replacing what is there.

  An existing directory at `path` is renamed aside first and deleted once the new one is in place, so `path` is
  never missing its contents half way.
  """
  temporary, path = epath.Path(temporary), epath.Path(path)
  if path.is_dir():
    aside = _aside_path(path)
    path.rename(aside)
    temporary.rename(path)
    remove(aside)
  else:
    temporary.replace(path)
  return path


@contextlib.contextmanager
def directory(path: epath.PathLike, *, overwrite: bool = False) -> Iterator[epath.Path]:
  """Yields a hidden temporary sibling of `path` (not created yet) to write a whole directory into.

  When the block completes, the temporary replaces `path`; if it raises (Ctrl-C and SIGTERM included), the
  temporary is deleted and `path` is left as it was. Temporaries of an earlier killed run are removed first.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False (checked before the block runs).
  """
  path = epath.Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f'{path}: already exists; choose a new directory (or remove it).')
  remove_stale_temporaries(path)
  temporary = temporary_path(path)
  try:
    yield temporary
    move_into_place(temporary, path)
  except BaseException:
    remove(temporary)
    raise
