"""Whole-file writes: the new content or the old file, never half of one, and no temporary left behind."""

import json

from etils import epath
import pytest

from estrnn_jax import atomic


def test_writes_replace_the_file_and_leave_nothing_else(tmp_path):
  path = tmp_path / 'results.json'
  path.write_text('old')
  atomic.write_json(path, {'b': 1, 'a': [2.5]})
  assert path.read_text() == '{\n  "a": [\n    2.5\n  ],\n  "b": 1\n}\n'
  assert json.loads(path.read_text()) == {'a': [2.5], 'b': 1}
  atomic.write_bytes(tmp_path / 'f.png', b'\x89PNG')
  assert (tmp_path / 'f.png').read_bytes() == b'\x89PNG'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['f.png', 'results.json']


@pytest.mark.parametrize('error', [OSError('disk full'), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch, error):
  path = tmp_path / 'sequences.csv'
  path.write_text('old,table\n')

  def failing_replace(self, target):
    del self, target
    raise error

  monkeypatch.setattr(type(epath.Path(path)), 'replace', failing_replace)
  with pytest.raises(type(error)):
    atomic.write_text(path, 'new,table\n')
  assert path.read_text() == 'old,table\n'
  assert [p.name for p in tmp_path.iterdir()] == ['sequences.csv']


def test_temporary_path_is_hidden_and_keeps_the_suffix(tmp_path):
  first, second = atomic.temporary_path(tmp_path / 'out.mp4'), atomic.temporary_path(tmp_path / 'out.mp4')
  assert first.parent == tmp_path and first.name.startswith('.out.tmp-') and first.suffix == '.mp4'
  assert first != second
