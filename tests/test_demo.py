"""The web demo (`python -m estrnn_jax.demo`): its outputs equal `deblur`'s, its refusals, its model choice, and
the page itself: a real Gradio server on a free port, driven by a real headless Chromium."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
from PIL import Image
import pytest

from estrnn_jax import checkpoints
from estrnn_jax import deblur
from estrnn_jax import video_io
from estrnn_jax.demo import examples
from estrnn_jax.demo import jobs
from estrnn_jax.demo import limits as limits_lib
from estrnn_jax.demo import weights as weights_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium')   # Debian's package (.ci/run installs it)
PRESET = 'tiny'   # 12 frames of 64x64


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Per-frame PSNR (dB) of uint8 clips (T, H, W, 3), in float64: the reference's formula, written out."""
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
  return 10 * np.log10(255.0 ** 2 / mse)


def _write_clip(path: pathlib.Path, num_frames: int = 6, fps: int = 24, height: int = 48,
                width: int = 64) -> np.ndarray:
  """A moving colour pattern written as a video (the writer picks the codec by the suffix); returns its frames."""
  y, x = np.mgrid[0:height, 0:width]
  frames = np.stack([np.stack([(x * 4 + t * 9) % 256, (y * 5 + t * 3) % 256, (x + y + 20 * t) % 256], axis=-1)
                     for t in range(num_frames)]).astype(np.uint8)
  writer = video_io.VideoWriter(path, height=height, width=width, fps=fps)
  for frame in frames:
    writer.write(frame)
  writer.commit()
  return frames


def _deblur_cli(checkpoint: str, source, output) -> None:
  """`python -m estrnn_jax.deblur --input source --output output` (in this process: the same entry point)."""
  assert deblur.main(['--checkpoint', checkpoint, '--input', str(source), '--output', str(output)]) == 0


def _read_pngs(folder: pathlib.Path) -> np.ndarray:
  return np.stack([np.asarray(Image.open(f)) for f in sorted(folder.glob('*.png'))])


@pytest.fixture(scope='module')
def checkpoint(testdata) -> str:
  """The fake official C4B2 weights (n_features 4, n_blocks 2), which `deblur` and the demo both take."""
  return str(testdata / 'fake_ckpt_C4B2.pth.tar')


def test_example_outputs_equal_deblur_and_psnr_is_right(tmp_path, checkpoint):
  weights = weights_lib.load(checkpoint)
  sharp = examples.write_blurry(PRESET, 0, tmp_path / 'example')
  calls = []
  result = jobs.deblur_clip(weights, str(tmp_path / 'example'), tmp_path / 'out', limits_lib.Limits(),
                            sharp=sharp, progress=lambda *args: calls.append(args))
  blurry, sharp_again = examples.clip(PRESET, 0)
  np.testing.assert_array_equal(sharp, sharp_again)
  assert (result.num_frames, result.height, result.width, result.fps) == (12, 64, 64, 30.0)
  assert [c[:2] for c in calls] == [(i, 12) for i in range(1, 13)] and calls[-1][2] > 0

  _deblur_cli(checkpoint, tmp_path / 'example', tmp_path / 'cli_frames')
  deblurred = _read_pngs(tmp_path / 'cli_frames')
  np.testing.assert_array_equal(_read_pngs(result.folder / jobs.FRAMES['deblurred']), deblurred)
  np.testing.assert_array_equal(_read_pngs(result.folder / jobs.FRAMES['blurry']), blurry)
  assert deblur.main(['--checkpoint', checkpoint, '--input', str(tmp_path / 'example'), '--output',
                      str(tmp_path / 'cli.mp4'), '--compare', str(tmp_path / 'cli_compare.mp4')]) == 0
  for ours, theirs in ((result.video, 'cli.mp4'), (result.side_by_side, 'cli_compare.mp4')):
    ours, _ = video_io.read_frames(ours)
    theirs, _ = video_io.read_frames(tmp_path / theirs)
    assert ours.shape[0] == 12
    np.testing.assert_array_equal(ours, theirs)

  np.testing.assert_allclose(result.psnr_blurry, _psnr(blurry, sharp), atol=1e-4)
  np.testing.assert_allclose(result.psnr_deblurred, _psnr(deblurred, sharp), atol=1e-4)
  assert 26 < np.mean(result.psnr_blurry) < 40   # the tiny preset's blur (synthetic.py: ~30-36 dB)


def test_upload_of_frames_is_read_in_numeric_order(tmp_path):
  frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
  uploaded = []
  for name, frame in zip(['f2.png', 'f10.png', 'f1.png'], frames[[1, 2, 0]]):
    Image.fromarray(frame).save(tmp_path / name)
    uploaded.append(str(tmp_path / name))
  source = jobs.collect_upload(uploaded, tmp_path / 'upload', limits_lib.Limits())
  np.testing.assert_array_equal(video_io.read_frames(source)[0], frames)


def test_refusals_are_clear_and_leave_nothing_behind(tmp_path, checkpoint):
  weights = weights_lib.load(checkpoint)
  _write_clip(tmp_path / 'clip.mp4', num_frames=6, fps=24)
  _write_clip(tmp_path / 'clip.mkv', num_frames=6, fps=24)   # Matroska does not store a frame count
  assert video_io.FrameReader(tmp_path / 'clip.mkv').info.num_frames is None
  (tmp_path / 'corrupt.mp4').write_bytes(np.random.default_rng(1).bytes(3000))
  (tmp_path / 'notes.txt').write_text('not a video')
  (tmp_path / 'frame.png').write_bytes(b'')

  def refusal(source, limits=limits_lib.Limits()) -> str:
    with pytest.raises(limits_lib.DemoError) as error:
      jobs.deblur_clip(weights, str(source), tmp_path / 'out', limits)
    assert not (tmp_path / 'out').exists()
    return str(error.value)

  assert refusal(tmp_path / 'clip.mp4', limits_lib.Limits(max_frames=5)) == (
      'The clip is too long (6 frames, 0.2 s at 24 frames/s); this demo takes at most 10 s and 5 frames. Trim '
      'it, or use the command line: python -m estrnn_jax.deblur ...')
  # 0.2 s at 24 frames/s is 4 frames; the Matroska clip is found too long while it is read.
  assert 'too long (more than 4 frames at 24 frames/s); this demo takes at most 0.2 s' in refusal(
      tmp_path / 'clip.mkv', limits_lib.Limits(max_seconds=0.2))
  assert refusal(tmp_path / 'clip.mp4', limits_lib.Limits(max_long_side=48)).startswith(
      'The frames are 64x48 pixels; this demo takes at most 48x720 (either orientation).')
  for name in ('corrupt.mp4', 'notes.txt'):
    message = refusal(tmp_path / name)
    assert message.startswith(f'{name}: cannot open as a video') and str(tmp_path) not in message
    assert message.endswith('Upload a video FFmpeg reads (mp4, mov, mkv, webm, avi, ...) or PNG/JPEG frames.')

  def upload_refusal(paths, limits=limits_lib.Limits()) -> str:
    with pytest.raises(limits_lib.DemoError) as error:
      jobs.collect_upload([str(tmp_path / p) for p in paths], tmp_path / 'upload', limits)
    return str(error.value)

  assert upload_refusal([]).startswith('Upload a video')
  assert upload_refusal(['clip.mp4', 'clip.mkv']).startswith('2 files were uploaded; upload one video')
  assert upload_refusal(['frame.png', 'clip.mp4']) == 'clip.mp4: upload either one video or PNG/JPEG frames, not both.'
  size_mb = os.path.getsize(tmp_path / 'clip.mp4') / 1e6
  assert upload_refusal(['clip.mp4'], limits_lib.Limits(max_upload_mb=size_mb / 2)) == (
      f'The upload is {size_mb:.1f} MB; this demo takes at most {size_mb / 2:g} MB.')


def test_without_a_checkpoint_the_default_run_or_the_readme_commands(tmp_path, monkeypatch, checkpoint):
  readme = (REPO / 'README.md').read_text()
  assert all(command in readme for command in weights_lib.SETUP_COMMANDS)

  monkeypatch.setattr(weights_lib, 'DEFAULT_WORKDIR', str(tmp_path / 'missing'))
  message = weights_lib.load(None)
  assert isinstance(message, str) and 'does not exist' in message
  assert all(command in message for command in weights_lib.SETUP_COMMANDS)

  (tmp_path / 'empty').mkdir()   # e.g. a run that has not written its first checkpoint yet
  monkeypatch.setattr(weights_lib, 'DEFAULT_WORKDIR', str(tmp_path / 'empty'))
  message = weights_lib.load(None)
  assert isinstance(message, str) and 'holds no usable checkpoint' in message
  assert all(command in message for command in weights_lib.SETUP_COMMANDS)

  weights = weights_lib.load(checkpoint)
  checkpoints.save_model(tmp_path / 'run', weights.model, weights.variables['params'])
  monkeypatch.setattr(weights_lib, 'DEFAULT_WORKDIR', str(tmp_path / 'run'))
  loaded = weights_lib.load(None)
  assert isinstance(loaded, weights_lib.Weights) and loaded.source == str(tmp_path / 'run')
  assert (loaded.model.n_features, loaded.model.n_blocks) == (4, 2)


def test_page_without_a_model_deblurs_nothing(tmp_path):
  import gradio as gr   # pylint: disable=g-import-not-at-top
  from estrnn_jax.demo import page   # pylint: disable=g-import-not-at-top
  message = weights_lib.how_to_get_weights('none here.')
  blocks = page.build(message, limits_lib.Limits(), tmp_path, example_preset=PRESET, num_examples=1)
  by_id = {b.elem_id: b for b in blocks.blocks.values() if getattr(b, 'elem_id', None)}
  assert by_id['model'].value == message
  assert by_id['run-upload'].interactive is False and by_id['run-example'].interactive is False
  deblur_example = next(f.fn for f in blocks.fns.values() if f.name == 'deblur_example')
  with pytest.raises(gr.Error) as error:
    deblur_example(examples.names(PRESET, 1)[0])
  assert error.value.message == message
  assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------------------
# The page in a real browser.

_RECORD_PROGRESS = """
  window.progressTexts = [];
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('.progress-level')) window.progressTexts.push(el.textContent);
  }).observe(document, {subtree: true, childList: true, characterData: true});
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _wait_for_server(server: subprocess.Popen, url: str, log: pathlib.Path, timeout: float = 240) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if server.poll() is not None:
      pytest.fail(f'the demo exited with status {server.returncode}:\n{log.read_text()}')
    try:
      with urllib.request.urlopen(url, timeout=5):
        return
    except OSError:
      time.sleep(0.5)
  pytest.fail(f'the demo did not answer at {url} within {timeout} s:\n{log.read_text()}')


def _fetch(url: str, path: pathlib.Path) -> pathlib.Path:
  with urllib.request.urlopen(url, timeout=30) as response:
    path.write_bytes(response.read())
  return path


@pytest.mark.skipif(CHROMIUM is None, reason='no chromium on PATH (Debian: apt-get install chromium; .ci/run '
                    'installs it)')
@pytest.mark.timeout(900)
def test_page_in_a_real_browser(tmp_path, checkpoint):
  from playwright.sync_api import sync_playwright   # pylint: disable=g-import-not-at-top
  shots = tmp_path / 'screenshots'
  shots.mkdir()
  clip = _write_clip(tmp_path / 'clip.mp4', num_frames=6)
  (tmp_path / 'corrupt.mp4').write_bytes(np.random.default_rng(1).bytes(3000))
  port, log = _free_port(), tmp_path / 'server.log'
  url = f'http://127.0.0.1:{port}/'
  env = dict(os.environ, JAX_PLATFORMS='cpu', GRADIO_ANALYTICS_ENABLED='False')
  with open(log, 'w') as log_file:
    server = subprocess.Popen(
        [sys.executable, '-m', 'estrnn_jax.demo', '--checkpoint', checkpoint, '--port', str(port),
         '--example_preset', PRESET, '--num_examples', '1', '--workdir', str(tmp_path / 'work')],
        cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
  try:
    # What `deblur` writes for the same inputs, computed while the server starts.
    _deblur_cli(checkpoint, tmp_path / 'clip.mp4', tmp_path / 'cli.mp4')
    _deblur_cli(checkpoint, tmp_path / 'clip.mp4', tmp_path / 'cli_frames')
    examples.write_blurry(PRESET, 0, tmp_path / 'example')
    _deblur_cli(checkpoint, tmp_path / 'example', tmp_path / 'cli_example')
    _wait_for_server(server, url, log)
    with sync_playwright() as playwright:
      browser = playwright.chromium.launch(executable_path=CHROMIUM)
      page = browser.new_page(viewport={'width': 1280, 'height': 1400})
      page.set_default_timeout(120_000)   # CI's 2 cores may be busy with other tests
      page.add_init_script(_RECORD_PROGRESS)
      page.goto(url)
      page.wait_for_selector('#upload input[type=file]', state='attached')
      assert 'n_features=4 n_blocks=2' in page.locator('#model').inner_text()
      assert 'clips up to 10 s and 300 frames' in page.locator('#limits').inner_text()
      page.screenshot(path=shots / '0_start.png', full_page=True)

      # Upload a clip; the progress bar counts its frames to the end; the video is deblur's.
      page.locator('#upload input[type=file]').set_input_files(tmp_path / 'clip.mp4')
      page.locator('#upload').get_by_text('clip.mp4').wait_for()
      page.click('#run-upload')
      page.locator('#status').get_by_text('Deblurred 6 frames').wait_for(timeout=240_000)
      progress = page.evaluate('window.progressTexts')
      assert any(text.strip().startswith('6/6 frames deblurred on CPU') for text in progress), sorted(set(progress))
      assert page.locator('.progress-level').count() == 0   # finished: no progress bar left
      assert 'frames/s' in page.locator('#status').inner_text()
      page.screenshot(path=shots / '1_upload_deblurred.png', full_page=True)
      video, _ = video_io.read_frames(_fetch(page.locator('#video video').get_attribute('src'), tmp_path / 'p.mp4'))
      assert video.shape == (6, 48, 64, 3)
      np.testing.assert_array_equal(video, video_io.read_frames(tmp_path / 'cli.mp4')[0])
      side, _ = video_io.read_frames(_fetch(page.locator('#side-by-side video').get_attribute('src'),
                                            tmp_path / 's.mp4'))
      assert side.shape == (6, 48, 128, 3)

      # The frame viewer: frame 3, blurry (the decoded upload) | deblurred (deblur's PNG), full resolution.
      number = page.locator('#frame input[type=number]')
      number.fill('3')
      number.press('Enter')
      page.locator('#viewer').get_by_text('Frame 3 of 6').wait_for()
      sources = page.locator('#viewer img').evaluate_all('images => images.map(image => image.src)')
      pair = [np.asarray(Image.open(_fetch(s, tmp_path / f'viewer{i}.png'))) for i, s in enumerate(sources)]
      np.testing.assert_array_equal(pair[0], video_io.read_frames(tmp_path / 'clip.mp4')[0][2])
      np.testing.assert_array_equal(pair[1], _read_pngs(tmp_path / 'cli_frames')[2])
      assert np.abs(pair[0].astype(int) - clip[2]).mean() < 8   # the upload, up to its H.264 coding
      page.screenshot(path=shots / '2_frame_viewer.png', full_page=True)

      # An example: the PSNR plot (two lines) and the means, as recomputed here from deblur's frames.
      page.click('#run-example')
      page.locator('#psnr-mean').get_by_text('Mean PSNR').wait_for(timeout=240_000)
      lines = page.locator('#psnr-plot svg g.mark-line path')   # Vega's line mark: one path per clip
      lines.nth(1).wait_for()
      assert lines.count() == 2
      assert page.locator('#psnr-plot svg .role-legend-label').all_text_contents() == ['blurry', 'deblurred']
      blurry, sharp = examples.clip(PRESET, 0)
      deblurred = _read_pngs(tmp_path / 'cli_example')
      expected = (f'blurry {_psnr(blurry, sharp).mean():.2f} dB, deblurred {_psnr(deblurred, sharp).mean():.2f} dB')
      assert expected in page.locator('#psnr-mean').inner_text()
      page.screenshot(path=shots / '3_example_psnr.png', full_page=True)

      # A corrupt file: a clear message in the page, no traceback.
      page.reload()
      page.locator('#upload input[type=file]').set_input_files(tmp_path / 'corrupt.mp4')
      page.locator('#upload').get_by_text('corrupt.mp4').wait_for()
      page.click('#run-upload')
      toast = page.locator('.toast-body').filter(has_text='corrupt.mp4: cannot open as a video')
      toast.wait_for(timeout=60_000)
      assert 'Traceback' not in page.content() and str(tmp_path) not in toast.inner_text()
      page.wait_for_timeout(1000)   # the toast's fade-in
      page.screenshot(path=shots / '4_corrupt_upload.png')
      browser.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        '0_start.png', '1_upload_deblurred.png', '2_frame_viewer.png', '3_example_psnr.png', '4_corrupt_upload.png']
  finally:
    server.terminate()
    server.wait(timeout=30)
