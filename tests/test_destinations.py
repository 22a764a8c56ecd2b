"""Where commands write: destinations checked before any work on real read-only and full filesystems, paths
compared by what they are, temporaries of killed runs recognised, a damaged Orbax checkpoint named; each fault is one
`<command>: error:` line, no traceback, and the user's files unchanged (hashed before and after).

Read-only and full disks are real mounts (`conftest.mounts`: a read-only bind mount, a tiny tmpfs); those tests
are skipped where mounting is not allowed (not root).
"""

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import conftest
from datasets import build as build_lib
from datasets import common as datasets_common
from estrnn_jax import atomic
from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import convert
from estrnn_jax import cross_evaluate
from estrnn_jax import deblur
from estrnn_jax import destinations
from estrnn_jax import evaluate
from estrnn_jax import export
from estrnn_jax import model as model_lib
from estrnn_jax import video_io

REPO = pathlib.Path(__file__).resolve().parents[1]


def _frames(folder: pathlib.Path, count: int, height: int = 32, width: int = 48) -> pathlib.Path:
  """`count` random PNG frames (incompressible: each about height x width x 3 bytes on disk)."""
  folder.mkdir(parents=True)
  rng = np.random.default_rng(count)
  for i in range(count):
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f'{i:04d}.png')
  return folder


@pytest.fixture
def checkpoint(testdata) -> str:
  return str(testdata / 'fake_ckpt_C4B2.pth.tar')   # an official-format C4B2 checkpoint (read without torch)


def _guarded(capsys, command: str, fn) -> str:
  """Runs `fn` as the command would (`cli.guarded`); asserts status 1 and one error line; returns the line."""
  assert cli.guarded(command, fn) == cli.EXIT_ERROR
  err = capsys.readouterr().err
  assert 'Traceback' not in err, err
  line = err.strip().splitlines()[-1]
  assert line.startswith(f'{command}: error: '), err
  return line


# ---- path identity ---------------------------------------------------------------------------------------------


def test_same_path_sees_through_symlinks_hard_links_and_dot_dot(tmp_path):
  folder = _frames(tmp_path / 'a' / 'frames', 1)
  (tmp_path / 'a' / 'b').mkdir()
  (tmp_path / 'link_to_b').symlink_to(tmp_path / 'a' / 'b')
  (tmp_path / 'frames_link').symlink_to(folder)
  file = folder / '0000.png'
  os.link(file, tmp_path / 'hard.png')
  # `link_to_b/..` is `a` on disk, though `abspath` makes it tmp_path.
  assert destinations.same_path(tmp_path / 'link_to_b' / '..' / 'frames', folder)
  assert not os.path.abspath(tmp_path / 'link_to_b' / '..' / 'frames') == str(folder)
  assert destinations.same_path(tmp_path / 'frames_link', folder)
  assert destinations.same_path(tmp_path / 'hard.png', file)
  assert not destinations.same_path(tmp_path / 'hard.png', tmp_path / 'a')
  assert destinations.same_path(tmp_path / 'not_yet' / '..' / 'a', tmp_path / 'a')   # not existing: by location
  assert destinations.is_inside(tmp_path / 'frames_link' / '0000.png', tmp_path / 'a')
  assert not destinations.is_inside(tmp_path / 'a', tmp_path / 'frames_link')


@pytest.mark.parametrize('case', ['symlink', 'dot_dot_through_a_symlink', 'hard_link', 'output_holds_the_input'])
def test_deblur_never_writes_over_its_input(tmp_path, capsys, checkpoint, case):
  """The reported case: `--input same_link --output same --overwrite` replaced the input frames."""
  frames = _frames(tmp_path / 'a' / 'same', 3)
  (tmp_path / 'a' / 'b').mkdir()
  args = ['--overwrite']
  if case == 'symlink':
    (tmp_path / 'same_link').symlink_to(frames)
    args += ['--input', tmp_path / 'same_link', '--output', frames]
    expected = 'are the same folder'
  elif case == 'dot_dot_through_a_symlink':
    (tmp_path / 'link_to_b').symlink_to(tmp_path / 'a' / 'b')
    args += ['--input', frames, '--output', tmp_path / 'link_to_b' / '..' / 'same']
    expected = 'are the same folder'
  elif case == 'hard_link':
    with video_io.VideoWriter(tmp_path / 'a' / 'clip.mp4', height=32, width=48, fps=25) as writer:
      for frame in video_io.FrameReader(frames):
        writer.write(frame)
    os.link(tmp_path / 'a' / 'clip.mp4', tmp_path / 'a' / 'hard.mp4')
    args += ['--input', tmp_path / 'a' / 'clip.mp4', '--output', tmp_path / 'a' / 'hard.mp4']
    expected = 'are the same file'
  else:   # the folder output would replace `a` as a whole, deleting the input inside it
    args += ['--input', frames, '--output', tmp_path / 'a']
    expected = 'lies inside the output'
  before = conftest.tree_digest(tmp_path)
  line = _guarded(capsys, 'deblur', lambda: deblur.run(deblur.build_parser().parse_args(
      ['--checkpoint', checkpoint, *map(str, args)])))
  assert expected in line
  assert conftest.tree_digest(tmp_path) == before


def test_deblur_refuses_output_suffixes_no_writer_makes(tmp_path, capsys, checkpoint):
  frames = _frames(tmp_path / 'frames', 2)
  for name in ('x.gif', 'x.png', 'x.webm'):
    assert deblur.main(['--checkpoint', checkpoint, '--input', str(frames), '--output', str(tmp_path / name)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f'deblur: error: --output {tmp_path / name}: no writer makes {name[1:]} files'), line
  assert sorted(os.listdir(tmp_path)) == ['frames']


# ---- read-only and full destinations -------------------------------------------------------------------------


def test_check_writable_on_real_read_only_and_full_filesystems(tmp_path, mounts):
  (tmp_path / 'mine').mkdir()
  (tmp_path / 'mine' / '.hidden').write_text('kept')
  before = conftest.tree_digest(tmp_path / 'mine')
  read_only = mounts.read_only(tmp_path / 'mine')
  with pytest.raises(cli.UserError, match=rf'^--output {read_only}/new/out.mp4: cannot write in {read_only} '
                                          r'\(Read-only file system\)\.$'):
    destinations.check_writable(read_only / 'new' / 'out.mp4', flag='--output')
  full = mounts.tiny('16k')
  with pytest.raises(OSError):   # fill it
    with open(full / 'filler', 'wb') as f:
      while True:
        f.write(b'\0' * 4096)
        f.flush()
  with pytest.raises(cli.UserError, match=r'cannot write in .* \(No space left on device\)'):
    destinations.check_writable(full / 'results', flag='--output_dir', into=True)
  assert sorted(os.listdir(full)) == ['filler']
  assert conftest.tree_digest(tmp_path / 'mine') == before


def test_deblur_to_a_read_only_folder_fails_before_any_work(tmp_path, capsys, checkpoint, mounts):
  frames = _frames(tmp_path / 'frames', 2)
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'other.mp4').write_bytes(b'the user\'s')
  read_only = mounts.read_only(tmp_path / 'out')
  before = conftest.tree_digest(tmp_path / 'out')
  for output in (read_only / 'sharp.mp4', read_only / 'sharp'):
    line = _guarded(capsys, 'deblur', lambda: deblur.run(deblur.build_parser().parse_args(
        ['--checkpoint', '/no/such/checkpoint', '--input', str(frames), '--output', str(output)])))
    # Refused before the checkpoint is even read (it does not exist).
    assert line == f'deblur: error: --output {output}: cannot write in {read_only} (Read-only file system).'
  assert conftest.tree_digest(tmp_path / 'out') == before


def test_deblur_to_a_disk_that_fills_names_the_output_and_leaves_nothing(tmp_path, capsys, checkpoint, mounts):
  frames = _frames(tmp_path / 'frames', 40)    # ~4.6 KB per PNG frame: the 64 KB disk fills after ~12
  disk = mounts.tiny('64k')
  (disk / '.keep').write_text('the user\'s')
  before = conftest.tree_digest(disk)
  line = _guarded(capsys, 'deblur', lambda: deblur.run(deblur.build_parser().parse_args(
      ['--checkpoint', checkpoint, '--input', str(frames), '--output', str(disk / 'sharp')])))
  assert line.startswith(f'deblur: error: {disk / "sharp"}: writing frame ') and line.endswith(
      '.png failed (No space left on device).'), line
  assert '.tmp-' not in line
  assert conftest.tree_digest(disk) == before


def test_evaluate_to_a_read_only_output_dir_fails_before_scoring(tmp_path, capsys, checkpoint, mounts):
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.dataset.data_dir = str(tmp_path / 'no_dataset')   # scoring would fail on it: the check comes first
  read_only = mounts.read_only(_frames(tmp_path / 'results', 1))
  before = conftest.tree_digest(tmp_path / 'results')
  line = _guarded(capsys, 'evaluate', lambda: evaluate.run(config, checkpoint, output_dir=str(read_only)))
  assert line == f'evaluate: error: --output_dir {read_only}: cannot write in {read_only} (Read-only file system).'
  assert conftest.tree_digest(tmp_path / 'results') == before


def test_cross_evaluate_to_a_read_only_output_dir_fails_first(tmp_path, capsys, checkpoint, mounts):
  read_only = mounts.read_only(_frames(tmp_path / 'tables', 1))
  line = _guarded(capsys, 'cross_evaluate', lambda: cross_evaluate.run(
      {'mine': checkpoint}, ['synthetic_blur/tiny'], read_only, data_dir=str(tmp_path / 'no_dataset')))
  assert line == (f'cross_evaluate: error: --output_dir {read_only}: cannot write in {read_only} '
                  '(Read-only file system).')


def _convert_in_subprocess(testdata, output) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop(cli.TRACEBACK_ENV, None)
  return subprocess.run([sys.executable, '-m', 'estrnn_jax.convert', '--torch_checkpoint',
                         str(testdata / 'fake_ckpt_C4B2.pth.tar'), '--output', str(output)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_convert_to_a_full_disk(capsys, testdata, mounts):
  """Too small for the weights: refused before writing. Room for the weights but not Orbax's files: the write
  fails midway, named by --output (not the temporary), with no traceback (Orbax logged dozens) and no temporary."""
  weights = 59_737 * 4
  small = mounts.tiny('16k')
  line = _guarded(capsys, 'convert', lambda: convert.convert(str(testdata / 'fake_ckpt_C4B2.pth.tar'),
                                                             str(small / 'converted')))
  assert line.startswith(f'convert: error: --output {small / "converted"}: needs about 0.24 MB and {small} has ')
  between = mounts.tiny(str(-(-weights // 4096) * 4096))   # room for the weights, not for Orbax's metadata too
  result = _convert_in_subprocess(testdata, between / 'converted')
  assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == (
      f'convert: error: --output {between / "converted"}: cannot write it (No space left on device); nothing was '
      'written there.')
  assert os.listdir(small) == [] and os.listdir(between) == []


def test_export_to_a_full_disk_is_not_called_a_failed_conversion(tmp_path, capsys, checkpoint, mounts):
  disk = mounts.tiny('100k')   # the ONNX file of C4B2 is ~0.25 MB
  line = _guarded(capsys, 'export', lambda: export.export(checkpoint, 'onnx', 32, 32, str(disk / 'onnx'),
                                                          log=lambda *_: None))
  assert line == (f'export: error: --output {disk / "onnx"}: cannot write it (No space left on device); nothing '
                  'was written there.')
  assert os.listdir(disk) == []


def test_failed_dataset_build_leaves_nothing_behind(tmp_path):
  release = tmp_path / 'release' / 'BSD_2ms16ms' / 'train' / '000' / 'Blur' / 'RGB'
  _frames(release, 1)   # no Sharp folder: the build fails after TFDS made its folders
  data_dir = tmp_path / 'tfds'
  (data_dir / 'other_dataset').mkdir(parents=True)
  (data_dir / 'other_dataset' / 'kept.txt').write_text('the user\'s')
  before = conftest.tree_digest(data_dir)
  with pytest.raises(datasets_common.InvalidDatasetError, match='Sharp/RGB is not a folder'):
    build_lib.build('bsd/2ms16ms', data_dir, manual_dir=tmp_path / 'release')
  assert conftest.tree_digest(data_dir) == before
  with pytest.raises(datasets_common.InvalidDatasetError):
    build_lib.build('bsd/2ms16ms', tmp_path / 'new_tfds', manual_dir=tmp_path / 'release')
  assert not (tmp_path / 'new_tfds').exists()


# ---- temporaries of killed runs ------------------------------------------------------------------------------


def _dead_pid() -> int:
  proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True,
                        check=True)
  return int(proc.stdout)


def test_temporaries_of_dead_processes_are_removed_others_kept(tmp_path):
  target = tmp_path / 'results.json'
  mine = atomic.temporary_path(target)   # this (live) process's
  host = mine.name.split('-')[2]
  dead = tmp_path / f'.results.tmp-{_dead_pid()}-{host}-0123abcd.json'
  dead_dir = tmp_path / f'.results.json.old-{_dead_pid()}-{host}-89abcdef'
  elsewhere = tmp_path / f'.results.tmp-{_dead_pid()}-ffffff-0123abcd.json'   # another machine's: maybe alive
  legacy = tmp_path / '.results.tmp-0123abcd.json'                           # no owner: not ours to judge
  other = tmp_path / f'.other.tmp-{_dead_pid()}-{host}-0123abcd.json'
  for path in (mine, dead, elsewhere, legacy, other):
    path.write_text('x')
  dead_dir.mkdir()
  (dead_dir / 'f').write_text('x')
  assert host != 'ffffff'
  assert sorted(p.name for p in atomic.stale_temporaries(target)) == sorted([dead.name, dead_dir.name])
  atomic.write_json(target, {'a': 1})
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
      ['results.json', mine.name, elsewhere.name, legacy.name, other.name])


# ---- damaged checkpoints -------------------------------------------------------------------------------------


def test_damaged_orbax_checkpoint_is_one_line_for_evaluate_deblur_and_export(tmp_path, capsys):
  """A data file of an Orbax checkpoint truncated (what a full disk or an interrupted copy leaves): TensorStore's
  error under Orbax's becomes one line naming the checkpoint, for every command that reads one; nothing is
  written, and the damaged checkpoint is not deleted."""
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  model = model_lib.ESTRNN(n_features=4, n_blocks=2)
  saved = pathlib.Path(checkpoints.save_model(tmp_path / 'model', model, model_lib.init_params(model, 0)))
  data = [p for p in (saved / checkpoints.STATE_ITEM).rglob('*') if p.is_file() and p.parent.name == 'd']
  largest = max(data, key=lambda p: p.stat().st_size)
  assert largest.stat().st_size > 10_000   # the parameters' bytes (~0.24 MB), not a small index file
  largest.write_bytes(largest.read_bytes()[:1000])
  frames = _frames(tmp_path / 'frames', 6)
  config = test_config.get_config()
  config.dataset.data_dir = str(tmp_path / 'no_dataset')   # never reached: the checkpoint is read first
  before = conftest.tree_digest(tmp_path)
  commands = {
      'evaluate': lambda: evaluate.run(config, str(saved), output_dir=str(tmp_path / 'results')),
      'deblur': lambda: deblur.run(deblur.build_parser().parse_args(
          ['--checkpoint', str(saved), '--input', str(frames), '--output', str(tmp_path / 'sharp.mp4')])),
      'export': lambda: export.export(str(saved), 'onnx', 32, 32, str(tmp_path / 'onnx'), log=lambda *_: None),
  }
  for command, fn in commands.items():
    line = _guarded(capsys, command, fn)
    assert f'{saved} is damaged or incomplete and cannot be read (' in line, line
    assert line.endswith('Choose another checkpoint step, or restore this one from a copy.'), line
    assert conftest.tree_digest(tmp_path) == before
