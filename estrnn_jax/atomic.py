"""Whole-file writes that a reader never sees half done: write a hidden temporary sibling, then rename it.

`write_bytes`, `write_text` and `write_json` leave either the complete new file or (on any failure, Ctrl-C
included) the previous file untouched and no temporary behind. Paths may be local or gs:// (`etils.epath`);
on a local filesystem the rename is atomic. Writers that produce a file piece by piece (videos) name their
temporary with `temporary_path` and move it into place when done.
"""

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
