"""Whole-file writes that a reader never sees half done: write a hidden temporary sibling, then rename it.

`write_bytes`, `write_text` and `write_json` leave either the complete new file or (on any failure, Ctrl-C
included) the previous file untouched and no temporary behind. Paths may be local or gs:// (`etils.epath`);
on a local filesystem the rename is atomic. Writers that produce a file piece by piece (videos) name their
temporary with `temporary_path` and move it into place with `move_into_place` when done. Outputs that are
whole directories (a converted checkpoint, a PNG frame folder) are filled inside `directory(path)`, which
moves them into place only when complete; an interrupted run leaves no directory at `path` that looks complete
and no temporary, so rerunning it works.
"""

from collections.abc import Iterator
import contextlib
import json
from typing import Any
import uuid

from etils import epath


def temporary_path(path: epath.PathLike) -> epath.Path:
  """A hidden, unique sibling of `path` with the same suffix: `dir/.name.tmp-1a2b3c4d.ext`."""
  path = epath.Path(path)
  return path.with_name(f'.{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}')


def write_bytes(path: epath.PathLike, data: bytes) -> epath.Path:
  """Replaces `path` with `data` through a temporary sibling; returns `path`."""
  path = epath.Path(path)
  tmp = temporary_path(path)
  try:
    tmp.write_bytes(data)
    tmp.replace(path)
  except BaseException:
    tmp.unlink(missing_ok=True)
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
    stale = path.with_name(f'.{path.name}.old-{uuid.uuid4().hex[:8]}')
    path.rename(stale)
    temporary.rename(path)
    stale.rmtree()
  else:
    temporary.replace(path)
  return path


@contextlib.contextmanager
def directory(path: epath.PathLike, *, overwrite: bool = False) -> Iterator[epath.Path]:
  """Yields a hidden temporary sibling of `path` (not created yet) to write a whole directory into.

  When the block completes, the temporary replaces `path`; if it raises (Ctrl-C included), the temporary is
  deleted and `path` is left as it was.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False (checked before the block runs).
  """
  path = epath.Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f'{path}: already exists; choose a new directory (or remove it).')
  temporary = path.with_name(f'.{path.name}.tmp-{uuid.uuid4().hex[:8]}')
  try:
    yield temporary
    move_into_place(temporary, path)
  except BaseException:
    if temporary.exists():
      temporary.rmtree()
    raise
