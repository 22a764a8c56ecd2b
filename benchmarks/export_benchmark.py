r"""Frames/s of the exported stream model in onnxruntime and LiteRT, next to the JAX model's, in one run.

  python -m benchmarks.export_benchmark                                  # B9C60, 256x256, onnx + tflite, fp32 + fp16
  python -m benchmarks.export_benchmark --model B15C80 --size 480x640 --formats onnx --dtypes float32

Exports the stream step (`export_functions.stream_function`: one frame per call, state fed back) of a randomly
initialised model (speed does not depend on the weights) with `export_formats`, checks each artifact against the
JAX model (max abs error printed), then times, per frame in steady state:
  jax          `inference.StreamingDeblurrer.push` (group_size 1, float frames), the project's own streaming;
  <fmt> <dtype> the artifact's runner (`export_formats.LOADERS`) called once per frame, outputs fed back.
Each timed round runs `--frames` frames per contender, contenders interleaved round by round (a shared machine's
load hits all of them alike); the median round is reported. onnxruntime and LiteRT use `--threads` threads
(default: all cores); JAX uses all cores.
"""

import os
import platform
import statistics
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

from estrnn_jax import export_formats
from estrnn_jax import export_functions
from estrnn_jax import inference
from estrnn_jax import model as model_lib

MODELS = {'B15C80': (16, 15), 'B9C60': (12, 9), 'tiny': (4, 2)}

_MODEL = flags.DEFINE_enum('model', 'B9C60', list(MODELS), 'Model size (the paper\'s names).')
_SIZE = flags.DEFINE_string('size', '256x256', 'Frame size HxW (multiples of 4).')
_FORMATS = flags.DEFINE_list('formats', 'onnx,tflite', 'Formats to time: onnx, tflite.')
_DTYPES = flags.DEFINE_list('dtypes', 'float32,float16', 'Export dtypes (see export_formats.SUPPORTED_DTYPES).')
_FRAMES = flags.DEFINE_integer('frames', 10, 'Frames per timed round.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed rounds (median reported).')
_THREADS = flags.DEFINE_integer('threads', None, 'Threads for onnxruntime and LiteRT (default: all cores).')

LOADER_THREADS = {'onnx': lambda path, fn, n: export_formats.load_onnx(path, fn, threads=n),
                  'tflite': lambda path, fn, n: export_formats.load_tflite(path, fn, threads=n)}


def _cpu_name() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown CPU'


def _stream_timer(runner, fn: export_functions.ExportFunction, video: np.ndarray):
  """A function that streams `video` through `runner` (state carried across calls) and returns seconds."""
  names = [s.name for s in fn.inputs]
  state = fn.zero_state()

  def run() -> float:
    nonlocal state
    start = time.perf_counter()
    for frame in video:
      feed = dict(state, frame=frame[None], is_real=np.ones((1,), np.float32))
      result = runner(*[feed[n] for n in names])
      state = {spec.name[:-len('_out')]: np.asarray(r) for spec, r in zip(fn.outputs[1:], result[1:])}
    return time.perf_counter() - start

  return run


def _jax_timer(model, variables, video: np.ndarray):
  deblurrer = inference.StreamingDeblurrer(model, variables, value_range=(-0.5, 0.5))

  def run() -> float:
    start = time.perf_counter()
    for frame in video:
      deblurrer.push(frame)
    return time.perf_counter() - start

  return run


def main(argv):
  del argv
  n_features, n_blocks = MODELS[_MODEL.value]
  height, width = (int(v) for v in _SIZE.value.lower().split('x'))
  threads = _THREADS.value or os.cpu_count()
  model = model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks)
  variables = {'params': model_lib.init_params(model, 0)}
  video = np.random.default_rng(0).uniform(-0.5, 0.5, (_FRAMES.value, height, width, 3)).astype(np.float32)
  print(f'machine: {_cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__} ({jax.default_backend()}); '
        f'model {_MODEL.value} (n_features={n_features}, n_blocks={n_blocks}), stream mode, {height}x{width}, '
        f'{_FRAMES.value} frames x {_ROUNDS.value} rounds (median), {threads} threads for onnxruntime/LiteRT')
  reference = export_functions.stream_function(model, variables, height, width)
  timers = {'jax float32': _jax_timer(model, variables, video)}
  with tempfile.TemporaryDirectory() as scratch:
    for fmt in _FORMATS.value:
      for dtype in _DTYPES.value:
        export_formats.check_format(fmt, dtype)
        traced = model.clone(dtype=export_formats.compute_dtype(fmt, dtype))
        fn = export_functions.stream_function(traced, variables, height, width)
        directory = os.path.join(scratch, f'{fmt}_{dtype}')
        os.makedirs(directory)
        start = time.perf_counter()
        path = export_formats.WRITERS[fmt](fn, directory, dtype)
        runner = LOADER_THREADS[fmt](path, fn, threads)
        check = export_formats.verify(runner, reference, dtype)
        print(f'exported {fmt} {dtype} in {time.perf_counter() - start:.0f} s, {os.path.getsize(path) / 1e6:.1f} MB, '
              f'max abs error vs float32 JAX {check.max_abs_error:.2g}')
        timers[f'{fmt} {dtype}'] = _stream_timer(runner, fn, video)
    for run in timers.values():   # warm-up (compilation, first-call allocations)
      run()
    seconds = {name: [] for name in timers}
    for _ in range(_ROUNDS.value):
      for name, run in timers.items():
        seconds[name].append(run())
  base = statistics.median(seconds['jax float32'])
  print(f'{"runtime":<18} {"frames/s":>9} {"ms/frame":>9} {"vs jax":>7}')
  for name, values in seconds.items():
    median = statistics.median(values)
    print(f'{name:<18} {_FRAMES.value / median:9.2f} {1e3 * median / _FRAMES.value:9.1f} {base / median:6.2f}x')


if __name__ == '__main__':
  app.run(main)
