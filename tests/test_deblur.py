"""The `deblur` command and video I/O: mp4 and PNG round trips, odd sizes, bad inputs and outputs."""

import fractions
import os
import pathlib
import re
import subprocess
import sys

import av
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from estrnn_jax import checkpoints
from estrnn_jax import deblur
from estrnn_jax import inference
from estrnn_jax import video_io

HEIGHT, WIDTH = 37, 51     # odd on purpose: H.264 4:2:0 cannot store it, the output must still keep it
RATE = fractions.Fraction(24000, 1001)
REPO = pathlib.Path(__file__).resolve().parents[1]


def _clip(num_frames: int = 7) -> np.ndarray:
  """A smooth moving pattern (codec friendly), uint8 (T, H, W, 3)."""
  y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
  frames = [np.stack([128 + 100 * np.sin((x + 3 * t) / 6), 128 + 100 * np.cos(y / 5 - t / 3),
                      (x + y + 10 * t) % 256], axis=-1) for t in range(num_frames)]
  return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _write_mp4(path: pathlib.Path, frames: np.ndarray) -> None:
  container = av.open(str(path), mode='w')
  stream = container.add_stream('libx264', rate=RATE)
  stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], 'yuv444p'
  stream.options = {'crf': '0'}   # lossless, so the test knows the decoded input exactly
  for frame in frames:
    for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
      container.mux(packet)
  for packet in stream.encode():
    container.mux(packet)
  container.close()


def _probe(path: pathlib.Path) -> tuple[int, int, int, fractions.Fraction]:
  with av.open(str(path)) as container:
    stream = container.streams.video[0]
    frames = list(container.decode(stream))
    return len(frames), frames[0].height, frames[0].width, stream.average_rate


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, testdata) -> str:
  """A save_model directory holding the fake official C4B2 weights."""
  model, variables = inference.load_model(str(testdata / 'fake_ckpt_C4B2.pth.tar'))
  directory = tmp_path_factory.mktemp('ckpt') / 'c4b2'
  checkpoints.save_model(directory, model, variables['params'])
  return str(directory)


@pytest.fixture(scope='module')
def input_mp4(tmp_path_factory) -> pathlib.Path:
  path = tmp_path_factory.mktemp('videos') / 'blurry.mp4'
  _write_mp4(path, _clip())
  return path


def _run(capsys, *argv) -> tuple[int, str]:
  status = deblur.main([str(a) for a in argv])
  return status, capsys.readouterr().err


def test_mp4_in_mp4_out_keeps_count_size_and_rate(tmp_path, capsys, checkpoint, input_mp4):
  output, compare = tmp_path / 'out' / 'sharp.mp4', tmp_path / 'compare.mp4'
  status, err = _run(capsys, '--checkpoint', checkpoint, '--input', input_mp4, '--output', output,
                     '--compare', compare, '--crf', 12)
  assert status == 0, err
  assert 'frame/s' in err   # the progress bar
  assert _probe(output) == (7, HEIGHT, WIDTH, RATE)
  assert _probe(compare) == (7, HEIGHT, 2 * WIDTH, RATE)
  # The video holds the model's output, up to H.264 (crf 12, 4:4:4) quantisation.
  model, variables = inference.load_model(checkpoint)
  decoded_input, _ = video_io.read_frames(input_mp4)
  expected = inference.deblur_video(model, variables, decoded_input, group_size=1)
  written, _ = video_io.read_frames(output)
  codec_error = np.abs(written.astype(int) - expected).mean()
  assert codec_error < 4.0 and codec_error < 0.2 * np.abs(decoded_input.astype(int) - expected).mean()
  side_by_side, _ = video_io.read_frames(compare)
  left = slice(0, WIDTH - 8)   # the input half, away from the seam (coding blocks straddle it)
  assert np.abs(side_by_side[:, :, left].astype(int) - decoded_input[:, :, left]).mean() < 4.0
  assert sorted(p.name for p in tmp_path.rglob('*')) == ['compare.mp4', 'out', 'sharp.mp4']


def test_png_folder_round_trip_is_lossless_and_keeps_names(tmp_path, capsys, testdata):
  frames = _clip(5)
  source = tmp_path / 'frames'
  source.mkdir()
  names = ['f1.png', 'f2.png', 'f9.png', 'f10.png', 'f11.png']   # numeric, not lexicographic, order
  for name, frame in zip(names, frames):
    Image.fromarray(frame).save(source / name)
  output = tmp_path / 'sharp'
  status, err = _run(capsys, '--checkpoint', testdata / 'fake_ckpt_C4B2.pth.tar', '--input', source,
                     '--output', output, '--max_frames', 4)
  assert status == 0, err
  assert sorted(os.listdir(output)) == sorted(names[:4])
  model, variables = inference.load_model(str(testdata / 'fake_ckpt_C4B2.pth.tar'))
  expected = inference.deblur_video(model, variables, frames[:4], group_size=1)
  for name, frame in zip(names, expected):
    np.testing.assert_array_equal(np.asarray(Image.open(output / name)), frame)
  assert sorted(os.listdir(tmp_path)) == ['frames', 'sharp']   # no temporary folder left


def test_existing_output_needs_overwrite(tmp_path, capsys, checkpoint, input_mp4):
  output = tmp_path / 'sharp.mp4'
  output.write_bytes(b'keep me')
  status, err = _run(capsys, '--checkpoint', checkpoint, '--input', input_mp4, '--output', output)
  assert status == 1 and 'already exists' in err and '--overwrite' in err
  assert output.read_bytes() == b'keep me'
  status, err = _run(capsys, '--checkpoint', checkpoint, '--input', input_mp4, '--output', output,
                     '--max_frames', 3, '--overwrite')
  assert status == 0, err
  assert _probe(output)[:3] == (3, HEIGHT, WIDTH)


def _empty_mp4(path: pathlib.Path) -> None:
  container = av.open(str(path), mode='w')
  stream = container.add_stream('libx264', rate=25)
  stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
  container.start_encoding()
  container.close()


@pytest.mark.parametrize('case', ['missing_input', 'corrupt_video', 'truncated_video', 'empty_video',
                                  'empty_folder', 'unreadable_frame', 'unwritable_output', 'missing_checkpoint',
                                  'bad_checkpoint', 'not_a_checkpoint_dir'])
def test_bad_inputs_fail_cleanly(tmp_path, capsys, checkpoint, input_mp4, case):
  workdir = tmp_path / 'work'
  workdir.mkdir()
  inputs, ckpt, output = input_mp4, checkpoint, workdir / 'out.mp4'
  expected = {'missing_input': 'no such file', 'corrupt_video': 'cannot open as a video',
              'truncated_video': 'cannot open as a video|no video stream', 'empty_video': 'no video stream',
              'empty_folder': 'no frames', 'unreadable_frame': 'cannot read as an image',
              'unwritable_output': r'--output .*out\.mp4: cannot be created, .*a_file is a file',
              'missing_checkpoint': 'no such checkpoint',
              'bad_checkpoint': 'cannot load the checkpoint', 'not_a_checkpoint_dir': 'not a checkpoint'}[case]
  if case == 'missing_input':
    inputs = tmp_path / 'nowhere.mp4'
  elif case == 'corrupt_video':
    inputs = tmp_path / 'corrupt.mp4'
    inputs.write_bytes(b'\x00not a video' * 64)
  elif case == 'truncated_video':
    inputs = tmp_path / 'truncated.mp4'
    data = input_mp4.read_bytes()
    inputs.write_bytes(data[:len(data) // 2])
  elif case == 'empty_video':
    inputs = tmp_path / 'empty.mp4'
    _empty_mp4(inputs)
  elif case == 'empty_folder':
    inputs = tmp_path / 'no_frames'
    inputs.mkdir()
    (inputs / 'notes.txt').write_text('no images here')
  elif case == 'unreadable_frame':
    inputs = tmp_path / 'frames'
    inputs.mkdir()
    Image.fromarray(_clip(1)[0]).save(inputs / '0.png')
    (inputs / '1.png').write_bytes(b'not a png')
  elif case == 'unwritable_output':
    (workdir / 'a_file').write_text('')
    output = workdir / 'a_file' / 'out.mp4'   # its parent is a file
  elif case == 'missing_checkpoint':
    ckpt = tmp_path / 'no_checkpoint'
  elif case == 'bad_checkpoint':
    ckpt = tmp_path / 'garbage.pth.tar'
    ckpt.write_bytes(b'this is not a checkpoint')
  elif case == 'not_a_checkpoint_dir':
    ckpt = tmp_path / 'empty_dir'
    ckpt.mkdir()
  status, err = _run(capsys, '--checkpoint', ckpt, '--input', inputs, '--output', output)
  assert status == 1
  message = err.strip().splitlines()[-1]   # (after the progress bar, when reading failed mid-way)
  assert message.startswith('deblur: error:') and re.search(expected, message), err
  assert 'Traceback' not in err
  leftovers = [p for p in workdir.rglob('*') if p.name != 'a_file']
  assert not leftovers, leftovers   # neither the output nor a temporary


def test_command_line_entry_point_reports_errors_without_traceback(tmp_path, input_mp4):
  result = subprocess.run(
      [sys.executable, '-m', 'estrnn_jax.deblur', '--checkpoint', str(tmp_path / 'missing'), '--input',
       str(input_mp4), '--output', str(tmp_path / 'out.mp4')],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert 'deblur: error: cannot load the checkpoint' in result.stderr and 'Traceback' not in result.stderr
  assert not (tmp_path / 'out.mp4').exists()


def test_bad_flags_are_one_line_errors(capsys):
  with pytest.raises(SystemExit) as exit_info:
    deblur.main(['--checkpoint', 'c', '--input', 'i', '--output', 'o', '--max_frames', '0'])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith('deblur: error: argument --max_frames: must be >= 1') and err.count('\n') == 1
  status = deblur.main(['--checkpoint', 'c', '--input', 'i', '--output', 'o', '--tile', '30'])
  assert status == 1 and 'multiple of 4' in capsys.readouterr().err


@pytest.fixture
def exhausting_device_step(monkeypatch):
  """The streaming step, jitted as `deblur` runs it, with one impossible (1 TiB) intermediate inside: XLA's own
  out-of-memory error, raised while the jitted call executes."""
  original = inference._group_step  # pylint: disable=protected-access

  def exhausting(*args, **kwargs):
    carry, out = original(*args, **kwargs)
    waste = jnp.cumsum(jnp.broadcast_to(out.ravel()[0].astype(jnp.float32), (2**38,)))[-1]
    return carry, out + (waste * 0).astype(out.dtype)

  monkeypatch.setattr(inference, '_group_step', exhausting)
  inference._compiled_group_step.cache_clear()  # pylint: disable=protected-access
  yield
  inference._compiled_group_step.cache_clear()  # pylint: disable=protected-access


@pytest.mark.parametrize('tile,group_size,hint', [
    (0, 1, r'--tile 256'), (16, 4, r'a smaller --tile than 16 .*, or a smaller --group_size than 4')])
def test_device_out_of_memory_names_the_frame_size_and_tiling(tmp_path, capsys, exhausting_device_step, checkpoint,
                                                              input_mp4, tile, group_size, hint):
  status, err = _run(capsys, '--checkpoint', checkpoint, '--input', input_mp4, '--output', tmp_path / 'out.mp4',
                     '--tile', tile, '--tile_overlap', 4, '--group_size', group_size)
  assert status == 1
  message = err.strip().splitlines()[-1]
  assert message.startswith(f'deblur: error: out of device memory deblurring {WIDTH}x{HEIGHT} frames of '
                            f'{input_mp4}'), message
  assert re.search(hint, message), message
  assert 'Traceback' not in err and os.listdir(tmp_path) == []


def test_other_device_errors_are_not_disguised(tmp_path, capsys, monkeypatch, checkpoint, input_mp4):
  def compiled_step():
    def step(*args, **kwargs):
      raise jax.errors.JaxRuntimeError('INTERNAL: something else broke')
    return step
  monkeypatch.setattr(inference, '_compiled_group_step', compiled_step)
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):
    deblur.main(['--checkpoint', checkpoint, '--input', str(input_mp4), '--output', str(tmp_path / 'out.mp4')])
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('how', ['flag', 'env'])
def test_traceback_on_request(tmp_path, capsys, monkeypatch, checkpoint, input_mp4, how):
  extra = []
  if how == 'flag':
    extra = ['--verbosity', 1]
  else:
    monkeypatch.setenv('ESTRNN_TRACEBACK', '1')
  status, err = _run(capsys, '--checkpoint', tmp_path / 'missing', '--input', input_mp4, '--output',
                     tmp_path / 'out.mp4', *extra)
  assert status == 1 and 'Traceback (most recent call last)' in err
  assert err.strip().splitlines()[-1].startswith('deblur: error: cannot load the checkpoint')


# ---- video_io -------------------------------------------------------------------------------------------------


def test_natural_sort_orders_numbers_numerically():
  names = ['f10.png', 'f9.png', 'f1.png', 'g.png', 'f2.jpg']
  assert sorted(names, key=video_io.natural_sort_key) == ['f1.png', 'f2.jpg', 'f9.png', 'f10.png', 'g.png']


@pytest.mark.parametrize('suffix', ['.mp4', '.mkv'])
def test_video_writer_keeps_odd_sizes_rate_and_rotation(tmp_path, suffix):
  frames = _clip(4)
  path = tmp_path / f'clip{suffix}'
  with video_io.VideoWriter(path, height=HEIGHT, width=WIDTH, fps=RATE, rotation=90, crf=10) as writer:
    for frame in frames:
      writer.write(frame)
  assert (writer.codec, writer.pix_fmt) == ('libx264', 'yuv444p')
  with video_io.FrameReader(path) as reader:
    decoded = np.stack(list(reader))
  assert decoded.shape == frames.shape
  assert reader.info.fps == RATE and reader.info.rotation == 90
  assert np.abs(decoded.astype(int) - frames).mean() < 2.5
  assert os.listdir(tmp_path) == [path.name]


def test_writers_leave_nothing_behind_on_failure(tmp_path):
  for path in (tmp_path / 'clip.mp4', tmp_path / 'pngs'):
    with pytest.raises(RuntimeError):
      with video_io.open_writer(path, video_io.VideoInfo(HEIGHT, WIDTH, RATE, None)) as writer:
        writer.write(_clip(1)[0])
        raise RuntimeError('interrupted')
  assert not os.listdir(tmp_path)


def _frame_folder(path: pathlib.Path, frames: np.ndarray) -> pathlib.Path:
  path.mkdir(parents=True)
  for index, frame in enumerate(frames):
    Image.fromarray(frame).save(path / f'{index:03d}.png')
  return path


def test_several_inputs_each_get_their_own_output(tmp_path, capsys, checkpoint, input_mp4):
  """Two frame folders of one size (batched together, different lengths), one of another size (its own call) and
  a video found by a glob: each output equals that input deblurred alone (the model's output, losslessly for PNG)."""
  clips = {'a': _clip(6), 'b': _clip(3)[:, ::-1], 'small': _clip(4)[:, :20, :24]}
  inputs = tmp_path / 'in'
  for name, frames in clips.items():
    _frame_folder(inputs / name, frames)
  videos = tmp_path / 'videos'
  videos.mkdir()
  (videos / 'blurry.mp4').write_bytes(input_mp4.read_bytes())
  output, compare = tmp_path / 'out', tmp_path / 'cmp'
  status, err = _run(capsys, '--checkpoint', checkpoint, '--input', inputs / 'a', '--input', inputs / 'b',
                     '--input', inputs / 'small', '--input', videos / '*.mp4', '--output', output,
                     '--compare', compare, '--videos_per_call', 2, '--group_size', 2)
  assert status == 0, err
  assert sorted(os.listdir(output)) == sorted(os.listdir(compare)) == ['a', 'b', 'blurry.mp4', 'small']
  model, variables = inference.load_model(checkpoint)
  for name, frames in clips.items():
    expected = inference.deblur_video(model, variables, frames, group_size=2)
    written = np.stack([np.asarray(Image.open(output / name / f'{i:03d}.png')) for i in range(len(frames))])
    np.testing.assert_array_equal(written, expected)
    side_by_side = np.asarray(Image.open(compare / name / '000.png'))
    np.testing.assert_array_equal(side_by_side, np.concatenate([frames[0], expected[0]], axis=1))
  assert _probe(output / 'blurry.mp4')[:3] == (7, HEIGHT, WIDTH)


@pytest.mark.parametrize('case', ['no_match', 'same_name', 'output_is_a_video', 'exists', 'input_is_output'])
def test_several_inputs_refuse_bad_paths(tmp_path, capsys, checkpoint, input_mp4, case):
  first, second = _frame_folder(tmp_path / 'x' / 'clip', _clip(2)), _frame_folder(tmp_path / 'y' / 'clip', _clip(2))
  other = _frame_folder(tmp_path / 'other', _clip(2))
  inputs, output = [first, other], tmp_path / 'out'
  expected = {'no_match': r'--input .*nothing\*: no file or folder matches', 'same_name': r'would both be written',
              'output_is_a_video': r'--output .*out\.mp4: with several inputs this must be a folder',
              'exists': r'out/clip: already exists \(pass --overwrite', 'input_is_output': 'must be different paths'}
  if case == 'no_match':
    inputs = [first, tmp_path / 'nothing*']
  elif case == 'same_name':
    inputs = [first, second]
  elif case == 'output_is_a_video':
    output = tmp_path / 'out.mp4'
  elif case == 'exists':
    _frame_folder(output / 'clip', _clip(1))
  elif case == 'input_is_output':
    output = tmp_path / 'x'   # would write x/clip over the input x/clip
  before = sorted(str(p) for p in tmp_path.rglob('*'))
  status, err = _run(capsys, '--checkpoint', checkpoint, *[a for i in inputs for a in ('--input', i)],
                     '--output', output)
  assert status == 1 and re.search(expected[case], err.strip().splitlines()[-1]), err
  assert sorted(str(p) for p in tmp_path.rglob('*')) == before   # nothing written
