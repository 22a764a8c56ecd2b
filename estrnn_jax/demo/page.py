"""The demo's Gradio page: upload or example in; deblurred video, side-by-side video, frame viewer and PSNR out.

Device work runs through Gradio's queue one request at a time (`concurrency_id='device'`); the frame viewer only
reads PNGs and is not held up by it. A refused request (`limits.DemoError`) is shown in the page as its message;
anything else as a one-line error naming the problem, never a traceback (that goes to the server's log).
"""

from __future__ import annotations

import itertools
import logging
import os
import pathlib
import shutil
import tempfile
import threading

import gradio as gr
import pandas as pd

from estrnn_jax import cli
from estrnn_jax.demo import examples as examples_lib
from estrnn_jax.demo import jobs
from estrnn_jax.demo import limits as limits_lib
from estrnn_jax.demo import weights as weights_lib

KEEP_JOBS = 16   # finished requests whose files stay on disk (older ones are deleted)
VIDEO_HEIGHT = 320   # px of the page the two videos take
INTRO = ('# ESTRNN video deblurring\n'
         'Upload a blurry video (any format FFmpeg reads: mp4, mov, mkv, webm, avi, ...) or the PNG/JPEG frames of '
         'one clip, or pick a built-in example. You get the deblurred video, the two side by side, a frame viewer '
         'at full resolution and, for the examples (whose sharp frames are known), the PSNR of every frame. The '
         'videos are what `python -m estrnn_jax.deblur` writes for the same clip and model.')


class _Handlers:
  """The page's event handlers; each request gets a folder under `workdir`."""

  def __init__(self, weights: weights_lib.Weights | str, limits: limits_lib.Limits, tile: int, preset: str,
               example_names: list[str], workdir: pathlib.Path):
    self.weights, self.limits, self.tile = weights, limits, tile
    self.preset, self.example_names, self.workdir = preset, example_names, workdir
    self._numbers, self._lock = itertools.count(), threading.Lock()

  def _new_folder(self) -> pathlib.Path:
    with self._lock:
      number = next(self._numbers)
    for old in sorted(self.workdir.glob('job*'))[:-KEEP_JOBS]:
      shutil.rmtree(old, ignore_errors=True)
    return self.workdir / f'job{number:06d}'

  def deblur_upload(self, files: list[str] | None, progress=gr.Progress()):
    return self._run(lambda folder: (jobs.collect_upload(files or [], folder / 'upload', self.limits), None),
                     progress)

  def deblur_example(self, name: str, progress=gr.Progress()):
    def source(folder):
      if name not in self.example_names:
        raise limits_lib.DemoError('Pick one of the listed examples.')
      index = self.example_names.index(name)
      sharp = examples_lib.write_blurry(self.preset, index, folder / 'example')
      return str(folder / 'example'), sharp
    return self._run(source, progress)

  def _run(self, make_source, progress):
    if isinstance(self.weights, str):
      raise gr.Error(self.weights, title='No model', print_exception=False)
    folder = self._new_folder()
    try:
      source, sharp = make_source(folder)
      progress((0, None), desc='reading', unit='frames')
      device = jobs.describe_device()

      def report(done: int, total: int | None, rate: float | None) -> None:
        count = f'{done}/{total}' if total else f'{done}'
        speed = f', {rate:.1f} frames/s' if rate else ''
        progress((done, total), desc=f'{count} frames deblurred on {device}{speed}', unit='frames')

      result = jobs.deblur_clip(self.weights, source, folder / 'output', self.limits, tile=self.tile,
                                sharp=sharp, progress=report)
    except limits_lib.DemoError as e:
      shutil.rmtree(folder, ignore_errors=True)
      raise gr.Error(str(e), title='Cannot deblur this', duration=None, print_exception=False) from None
    except Exception as e:  # pylint: disable=broad-except  # a bug: one line in the page, the traceback in the log
      shutil.rmtree(folder, ignore_errors=True)
      logging.exception('demo request failed')
      raise gr.Error(f'Internal error ({type(e).__name__}: {cli.error_message(e)}); the server log has the details.',
                     title='Error', duration=None, print_exception=False) from None
    return self._show(result)

  def _show(self, result: jobs.Result) -> tuple:
    status = (f'**Deblurred {result.num_frames} frames** ({result.width}x{result.height}, '
              f'{result.fps:g} frames/s) in {result.seconds:.1f} s on {result.device}: '
              f'**{result.frames_per_second:.1f} frames/s** after the first frame '
              f'({result.first_frame_seconds:.1f} s, compilation included).')
    slider = gr.update(minimum=1, maximum=max(result.num_frames, 2), value=1, interactive=result.num_frames > 1)
    scores = [gr.update(visible=False), None, '']
    if result.psnr_blurry is not None:
      scores = [gr.update(visible=True), _psnr_table(result), _psnr_mean(result)]
    return (status, str(result.video), str(result.side_by_side), slider, self.frame(1, result), *scores, result)

  def frame(self, number: int, result: jobs.Result | None):
    """The frame viewer's pair for frame `number` (1 = first) of the last result."""
    if result is None:
      return gr.update()
    index = int(min(max(number, 1), result.num_frames)) - 1
    pair = (str(result.frame('blurry', index)), str(result.frame('deblurred', index)))
    if not all(pathlib.Path(p).exists() for p in pair):
      raise gr.Error('These frames were deleted to make room for newer requests; deblur the clip again.')
    return gr.update(value=pair, label=f'Frame {index + 1} of {result.num_frames}: blurry | deblurred, full '
                                       f'resolution (drag the divider)')


def _psnr_table(result: jobs.Result) -> pd.DataFrame:
  rows = [{'frame': i + 1, 'PSNR (dB)': v, 'clip': kind}
          for kind, values in (('blurry', result.psnr_blurry), ('deblurred', result.psnr_deblurred))
          for i, v in enumerate(values)]
  return pd.DataFrame(rows)


def _psnr_mean(result: jobs.Result) -> str:
  blurry = sum(result.psnr_blurry) / result.num_frames
  deblurred = sum(result.psnr_deblurred) / result.num_frames
  return (f'**Mean PSNR** over {result.num_frames} frames against the sharp frames: blurry **{blurry:.2f} dB**, '
          f'deblurred **{deblurred:.2f} dB** ({deblurred - blurry:+.2f} dB).')


def build(weights: weights_lib.Weights | str, limits: limits_lib.Limits, workdir: pathlib.Path, *, tile: int = 0,
          example_preset: str = examples_lib.DEFAULT_PRESET, num_examples: int = 3) -> gr.Blocks:
  """The page. `weights` is a model, or Markdown saying how to get one (then nothing can be deblurred)."""
  names = examples_lib.names(example_preset, num_examples)
  handlers = _Handlers(weights, limits, tile, example_preset, names, workdir)
  ready = not isinstance(weights, str)
  with gr.Blocks(title='ESTRNN video deblurring', analytics_enabled=False) as page:
    gr.Markdown(INTRO)
    gr.Markdown(f'Model: {weights.describe()}.' if ready else weights, elem_id='model')
    gr.Markdown(limits.describe(), elem_id='limits')
    with gr.Row():
      with gr.Column():
        upload = gr.File(label='Blurry video, or the frames of one clip (PNG/JPEG)', file_count='multiple',
                         elem_id='upload')
        upload_button = gr.Button('Deblur the upload', variant='primary', interactive=ready, elem_id='run-upload')
      with gr.Column():
        example = gr.Dropdown(names, value=names[0], label='Or a built-in example (sharp frames known)',
                              elem_id='example')
        example_button = gr.Button('Deblur the example', interactive=ready, elem_id='run-example')
    status = gr.Markdown(elem_id='status')
    with gr.Row():
      video = gr.Video(label='Deblurred', interactive=False, height=VIDEO_HEIGHT, elem_id='video')
      side_by_side = gr.Video(label='Blurry | deblurred', interactive=False, height=VIDEO_HEIGHT,
                              elem_id='side-by-side')
    frame = gr.Slider(1, 2, value=1, step=1, label='Frame', interactive=False, elem_id='frame')
    viewer = gr.ImageSlider(label='Blurry | deblurred, full resolution (drag the divider)', type='filepath',
                            interactive=False, elem_id='viewer')
    with gr.Column(visible=False) as scores:
      plot = gr.LinePlot(x='frame', y='PSNR (dB)', color='clip', title='PSNR of every frame against the sharp frame',
                         elem_id='psnr-plot')
      mean = gr.Markdown(elem_id='psnr-mean')
    result = gr.State()
    outputs = [status, video, side_by_side, frame, viewer, scores, plot, mean, result]
    for button, handler, inputs in ((upload_button, handlers.deblur_upload, [upload]),
                                    (example_button, handlers.deblur_example, [example])):
      button.click(handler, inputs, outputs, concurrency_limit=1, concurrency_id='device', api_visibility='private')
    frame.input(handlers.frame, [frame, result], [viewer], trigger_mode='always_last', show_progress='hidden',
                concurrency_limit=None, api_visibility='private')
  return page


def serve(weights: weights_lib.Weights | str, limits: limits_lib.Limits, *, workdir: str | None = None,
          tile: int = 0, example_preset: str = examples_lib.DEFAULT_PRESET, num_examples: int = 3,
          host: str | None = None, port: int | None = None, share: bool = False) -> None:
  """Builds the page and serves it until interrupted: Gradio's queue, the upload size limit, request folders
  in a new folder inside `workdir` (default: the system's temporary folder). `host`/`port` None: Gradio's defaults
  (127.0.0.1:7860, or $GRADIO_SERVER_NAME / $GRADIO_SERVER_PORT, which Hugging Face Spaces set)."""
  if workdir:
    os.makedirs(workdir, exist_ok=True)
  folder = pathlib.Path(tempfile.mkdtemp(prefix='estrnn_demo_', dir=workdir))
  page = build(weights, limits, folder, tile=tile, example_preset=example_preset, num_examples=num_examples)
  page.queue(default_concurrency_limit=1).launch(
      server_name=host, server_port=port, share=share, max_file_size=f'{limits.max_upload_mb:g}mb',
      allowed_paths=[str(folder)], footer_links=[])
