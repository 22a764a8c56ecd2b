r"""Throughput of ESTRNN inference (offline clips and streaming) and of the training step.

  python -m benchmarks.model_benchmark                                   # a backend-appropriate default subset
  python -m benchmarks.model_benchmark --models B15C80 --sizes 256x256 --dtypes float32 --modes offline
  python -m benchmarks.model_benchmark --models B15C80,B9C60 --sizes 256x256,480x640,720x1280 \
      --dtypes float32,bfloat16 --modes offline,streaming,train --json results.jsonl

Modes (all on one device):
  offline    `ESTRNN.__call__` on `--batch` clips of `--frames` frames (the reference's protocol: a 10-frame clip
             gives 6 output frames); per *output* frame.
  streaming  `inference.StreamingDeblurrer` (one frame per call, `--group_size` frames per jitted call); per
             frame, in steady state (the first `future + group_size` pushes are warm-up).
  video      `inference.deblur_video` on a `--frames` clip: every frame out (edges padded), 4 frames per jitted
             call; per frame.
  train      one `train.train_step` (forward, backward, Adam) on `--train_batch` windows of `--train_frames`
             frames; per output frame of the batch, and steps/s.
  host       the host's own cost of streaming (`StreamingDeblurrer.stream`) at `--host_sizes` (default 720p): the
             model is replaced by an identity of the same shapes (the real parameter tree is still passed), so
             what is left is the Python loop, frame checks, copies, transfers and dispatch. Reported per frame as
             CPU time of the calling thread (the host overhead), with process CPU and wall time beside it (on a
             CPU backend XLA's threads also run the "device" side: conversions, selects, buffers). uint8 frames
             (converted on the device) and float32 frames in [0, 1] (converted on the host) are both shown.

Timing: the jitted function is compiled ahead of time (reported as compile time), run `--warmup` times, then
`--repeats` times with `block_until_ready`; the median is reported. FLOP/s counts 2 x the true MACs of
`estrnn_jax.profile` (the paper's layers, transposed convs at their real cost; a training step counts 3x the
forward) of the work actually executed: the RDB cell on every frame slot it runs on (an offline 10-frame clip
runs it 10 times for 6 outputs; `video` also on the end padding), GSA + reconstruction on every decoded slot.
Utilisation is against the device's peak where it is known (accelerators; not CPUs).

A case that fails (out of device memory, unsupported on the backend) is reported in its row (and as an `error`
record in --json) and the others still run.

Defaults: on CPU, B15C80 and B9C60 at 256x256, float32, offline + streaming + host (the full matrix at 720p on a
small CPU takes hours); on GPU/TPU, all modes at 256x256, 480x640 and 720x1280 in float32 and bfloat16, except
training, which runs at its crop size 256x256 only (8 windows of 8 frames at 720p need more than an H200's
141 GB); pass --sizes to train at other sizes.

Against PyTorch (`--vs_torch`, needs torch; skipped with a message without it):
  python -m benchmarks.model_benchmark --vs_torch --models B15C80 --sizes 256x256 --dtypes float32,bfloat16

runs the official architecture in PyTorch (`benchmarks/torch_estrnn.py`, float32, and `torch.autocast('cpu',
torch.bfloat16)` for bfloat16) and this model (`model.jit_apply`, plus plain `jax.jit(model.apply)` in float32)
on the same offline clip with the same weights (the PyTorch model's, converted), checks their outputs agree, then
times them interleaved (one repeat of each in turn, `--repeats` rounds) and reports medians and the ratio
PyTorch time / JAX time per dtype (> 1: JAX is faster). Both run on `--threads` cores (default 2): the process
is pinned to that many CPUs and PyTorch uses that many threads. PyTorch's OpenMP threads wait passively
(`OMP_WAIT_POLICY=PASSIVE` unless set): spinning threads that wait for a descheduled peer made PyTorch up to 10x
slower on a loaded shared machine (measured: 61 s against 6.5 s per B15C80 clip).
"""

import contextlib
import functools
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Iterator

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import accelerators
from configs import default as default_config
from estrnn_jax import cli
from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import jit_utils
from estrnn_jax import losses
from estrnn_jax import model as model_lib
from estrnn_jax import official_weights
from estrnn_jax import profile
from estrnn_jax import sharding
from estrnn_jax import train

# The paper's names -> (n_features, n_blocks); the paper's channel count is 5 * n_features.
MODELS = {'B15C80': (16, 15), 'B9C60': (12, 9), 'B9C80': (16, 9), 'tiny': (4, 2)}

_MODELS = flags.DEFINE_list('models', None, f'Models to run, from {sorted(MODELS)}. Default: B15C80,B9C60.')
_SIZES = flags.DEFINE_list('sizes', None, 'Frame sizes HxW. Default: 256x256 on CPU; 256x256,480x640,720x1280 '
                           'on accelerators.')
_DTYPES = flags.DEFINE_list('dtypes', None, 'Compute dtypes. Default: float32 on CPU; float32,bfloat16 else.')
_MODES = flags.DEFINE_list('modes', None, 'offline, streaming, video, train, host. Default: offline,streaming,'
                           'host on CPU; all five on accelerators (train only at 256x256 unless --sizes is given).')
_FRAMES = flags.DEFINE_integer('frames', 10, 'Offline: frames per clip.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Offline: clips per call.')
_STREAM_FRAMES = flags.DEFINE_integer('stream_frames', 8, 'Streaming: timed frames per repeat.')
_GROUP = flags.DEFINE_integer('group_size', 1, 'Streaming: frames per jitted call.')
_TRAIN_BATCH = flags.DEFINE_integer('train_batch', None, 'Train: windows per step (default 1 on CPU, 8 else).')
_TRAIN_FRAMES = flags.DEFINE_integer('train_frames', 8, 'Train: frames per window (the reference: 8).')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Untimed runs after compilation.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed runs; the median is reported.')
_VS_TORCH = flags.DEFINE_bool('vs_torch', False, 'Instead of the table: offline clips against the official '
                               'architecture in PyTorch, interleaved in one run (needs torch).')
_THREADS = flags.DEFINE_integer('threads', None, 'Pin the process to this many CPU cores and give PyTorch as many '
                                'threads. Default: 2 with --vs_torch, else no pinning.')
_HOST_SIZES = flags.DEFINE_list('host_sizes', ['720x1280'], 'Host mode: frame sizes HxW.')
_HOST_FRAMES = flags.DEFINE_integer('host_frames', 64, 'Host mode: frames streamed per repeat.')
_HOST_GROUPS = flags.DEFINE_list('host_group_sizes', ['1', '4'], 'Host mode: group sizes (frames per device call).')
_JSON = flags.DEFINE_string('json', None, 'Also append one JSON line per result to this file ("-": stdout).')


def machine_info() -> dict[str, Any]:
  """The machine, backend and software versions, for the report."""
  device = jax.devices()[0]
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return {
      'backend': jax.default_backend(), 'device': device.device_kind, 'num_devices': jax.device_count(),
      'cpu': cpu, 'cpu_count': os.cpu_count(), 'jax': jax.__version__, 'python': platform.python_version(),
      'xla_cpu_options': jit_utils.cpu_compiler_options(),
  }


def _timed(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return times


def _compile(fn, *args, **jit_kwargs):
  """AOT-compiles `fn` for `args`; returns (compiled, seconds)."""
  start = time.perf_counter()
  compiled = jax.jit(fn, compiler_options=jit_utils.cpu_compiler_options(), **jit_kwargs).lower(*args).compile()
  return compiled, time.perf_counter() - start


def bench_offline(model, variables, height, width, rng):
  frames = jnp.asarray(rng.uniform(-0.5, 0.5, (_BATCH.value, _FRAMES.value, height, width, 3)), jnp.float32)
  compiled, compile_s = _compile(model.apply, variables, frames)
  times = _timed(lambda: compiled(variables, frames), _WARMUP.value, _REPEATS.value)
  outputs = _BATCH.value * (_FRAMES.value - model.past_frames - model.future_frames)
  return statistics.median(times) / outputs, compile_s, {
      'clip_frames': _FRAMES.value, 'batch': _BATCH.value, 'output_frames_per_call': outputs,
      'cell_steps_per_frame': _FRAMES.value * _BATCH.value / outputs, 'decodes_per_frame': 1.0}


def bench_streaming(model, variables, height, width, rng):
  group = _GROUP.value
  frames = rng.uniform(-0.5, 0.5, (_STREAM_FRAMES.value, height, width, 3)).astype(np.float32)
  deblurrer = inference.StreamingDeblurrer(model, variables, group_size=group, value_range=images.MODEL_RANGE)
  start = time.perf_counter()
  deblurrer.push(frames[:group])  # compiles
  compile_s = time.perf_counter() - start
  for _ in range(model.future_frames + _WARMUP.value * group):   # fill the window; outputs flow from here on
    deblurrer.push(frames[0])

  def run():
    return deblurrer.push(frames)   # push() returns host arrays, so the work has finished

  times = _timed(run, 0, _REPEATS.value)
  deblurrer.flush()
  return statistics.median(times) / len(frames), compile_s, {'group_size': group, 'cell_steps_per_frame': 1.0,
                                                             'decodes_per_frame': 1.0,
                                                             'note': 'compile_s includes the first call'}


def bench_video(model, variables, height, width, rng):
  frames = rng.uniform(-0.5, 0.5, (_FRAMES.value, height, width, 3)).astype(np.float32)
  group = min(4, len(frames))
  start = time.perf_counter()
  inference.deblur_video(model, variables, frames[:group], group_size=group,
                         value_range=images.MODEL_RANGE)   # compiles
  compile_s = time.perf_counter() - start
  times = _timed(lambda: inference.deblur_video(model, variables, frames, group_size=group,
                                                value_range=images.MODEL_RANGE),
                 _WARMUP.value, _REPEATS.value)
  # Slots run: groups of `group` until every output is out, i.e. up to frame T - 1 + future (no branch skips
  # the padding slots; see `inference._stream_step`).
  slots = group * -(-(len(frames) + model.future_frames) // group)
  return statistics.median(times) / len(frames), compile_s, {'clip_frames': len(frames), 'group_size': group,
                                                             'cell_steps_per_frame': slots / len(frames),
                                                             'decodes_per_frame': slots / len(frames),
                                                             'note': 'compile_s includes the first call'}


def bench_train(model, variables, height, width, rng):
  del variables
  config = default_config.get_config()
  batch_size = _TRAIN_BATCH.value or (1 if jax.default_backend() == 'cpu' else 8)
  frames = _TRAIN_FRAMES.value
  schedule = train.create_learning_rate_schedule(config)
  tx = train.create_optimizer(config, schedule)
  mesh = sharding.make_mesh(jax.devices()[:1])
  state, _ = train.create_train_state(model, tx, mesh, model_lib.init_key(0))
  outputs = frames - model.past_frames - model.future_frames
  batch = {'blur': jnp.asarray(rng.uniform(-0.5, 0.5, (batch_size, frames, height, width, 3)), jnp.float32),
           'sharp': jnp.asarray(rng.uniform(-0.5, 0.5, (batch_size, outputs, height, width, 3)), jnp.float32)}
  step = lambda s, b: train.train_step(s, b, model=model, tx=tx, loss_fn=losses.get_loss_fn(config.loss),
                                       schedule=schedule)
  compiled, compile_s = _compile(step, state, batch, donate_argnums=(0,))
  holder = {'state': state}

  def run():
    holder['state'], metrics = compiled(holder['state'], batch)
    return metrics

  times = _timed(run, _WARMUP.value, _REPEATS.value)
  step_s = statistics.median(times)
  return step_s / (batch_size * outputs), compile_s, {'train_batch': batch_size, 'train_frames': frames,
                                                      'steps_per_s': 1.0 / step_s,
                                                      'cell_steps_per_frame': frames / outputs,
                                                      'decodes_per_frame': 1.0}


class IdentityESTRNN(model_lib.ESTRNN):
  """ESTRNN's shapes without its compute, for measuring the host's share of streaming: the cell returns zero
  features h (N, H/4, W/4, 5C) and keeps the state; decoding returns the centre input frames (set residual=True,
  so the streaming step hands them over), so every output frame equals its input."""

  def step(self, state, frame):
    n, height, width, _ = frame.shape
    return state, jnp.zeros((n, height // 4, width // 4, 5 * self.n_features), self.dtype)

  def decode(self, hs, centre_frames=None):
    del hs
    return centre_frames.astype(jnp.float32)


def bench_host(name: str, variables, height: int, width: int, input_dtype: str, group: int,
               rng: np.random.Generator) -> dict[str, Any]:
  """Per-frame host cost of `StreamingDeblurrer.stream` with the identity model (see the module docstring)."""
  n_features, n_blocks = MODELS[name]
  model = IdentityESTRNN(n_features=n_features, n_blocks=n_blocks, residual=True)
  distinct = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(8)]
  value_range = None
  if input_dtype == 'float32':   # frames in [0, 1]: converted on the host both ways, as uint8 frames once were
    distinct = [frame.astype(np.float32) / 255 for frame in distinct]
    value_range = (0.0, 1.0)
  deblurrer = inference.StreamingDeblurrer(model, variables, group_size=group, value_range=value_range)
  frames = [distinct[i % len(distinct)] for i in range(_HOST_FRAMES.value)]
  start = time.perf_counter()
  warm = list(deblurrer.stream(frames[:2 * group + model.future_frames]))   # compiles
  compile_s = time.perf_counter() - start
  for out, frame in zip(warm, frames):   # the identity really is one: the outputs are the inputs (uint8: exactly)
    if not np.allclose(out, frame, rtol=0, atol=0 if input_dtype == 'uint8' else 1e-6):
      raise AssertionError('the identity model changed a frame: the host path is broken.')
  thread, process, wall = [], [], []
  for _ in range(_REPEATS.value):
    start_wall, start_process, start_thread = time.perf_counter(), time.process_time(), time.thread_time()
    count = sum(1 for _ in deblurrer.stream(frames))
    thread.append((time.thread_time() - start_thread) / count)
    process.append((time.process_time() - start_process) / count)
    wall.append((time.perf_counter() - start_wall) / count)
  return {'model': name, 'height': height, 'width': width, 'mode': 'host', 'input_dtype': input_dtype,
          'group_size': group, 'frames': len(frames), 'repeats': _REPEATS.value, 'compile_s': compile_s,
          'host_cpu_ms_per_frame': 1e3 * statistics.median(thread),
          'process_cpu_ms_per_frame': 1e3 * statistics.median(process),
          'wall_ms_per_frame': 1e3 * statistics.median(wall), 'host_cpu_ms_per_frame_min': 1e3 * min(thread)}


def run_host(models: list[str], rng: np.random.Generator, write: Callable[[dict[str, Any]], None],
             info: dict[str, Any]) -> None:
  """The host table: per model (its parameter tree), size, input dtype and group size."""
  print(f'\nHost overhead of StreamingDeblurrer.stream, the model replaced by an identity of the same shapes '
        f'({_HOST_FRAMES.value} frames per repeat, median of {_REPEATS.value}); host = CPU time of the calling '
        'thread, process = all threads (on a CPU backend that includes XLA running the "device" side).')
  header = (f"{'model':8} {'size':>9} {'input':8} {'group':>5} {'host ms/frame':>13} {'process ms':>10} "
            f"{'wall ms':>8}")
  print(header)
  print('-' * len(header))
  for name in models:
    n_features, n_blocks = MODELS[name]
    variables = {'params': model_lib.init_params(model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks), 0)}
    for height, width in (_parse_size(size) for size in _HOST_SIZES.value):
      for input_dtype in ('uint8', 'float32'):   # float32: in [0, 1], converted on the host
        for group in (int(g) for g in _HOST_GROUPS.value):
          record = bench_host(name, variables, height, width, input_dtype, group, rng)
          print(f'{name:8} {f"{height}x{width}":>9} {input_dtype:8} {group:5d} '
                f'{record["host_cpu_ms_per_frame"]:13.2f} {record["process_cpu_ms_per_frame"]:10.1f} '
                f'{record["wall_ms_per_frame"]:8.1f}', flush=True)
          write({**info, **record})


def _failure(error: Exception) -> str:
  """One line for a case that failed."""
  if cli.is_device_out_of_memory(error):
    return 'out of device memory'
  first_line = (str(error).strip().splitlines() or [''])[0]
  return f'{type(error).__name__}: {first_line[:160]}'


def compare_with_torch(name: str, height: int, width: int, dtypes: list[str], threads: int,
                       rng: np.random.Generator) -> list[dict[str, Any]]:
  """Offline clips through this model and the official architecture in PyTorch, timed interleaved.

  Returns one record per contender (median seconds per clip, max abs difference to PyTorch float32, ratio
  PyTorch / JAX for the JAX ones); an empty list (after a message) when torch is not installed.
  """
  os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # read when torch loads its OpenMP runtime
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    print('--vs_torch: PyTorch is not installed, skipping the comparison (pip install torch to run it).')
    return []
  from benchmarks import torch_estrnn  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  n_features, n_blocks = MODELS[name]
  torch.manual_seed(0)
  reference = torch_estrnn.ESTRNN(n_features, n_blocks).eval()
  base, variables = official_weights.convert_state_dict(
      {k: v.numpy() for k, v in reference.state_dict().items()}, rgb=False)
  frames = rng.uniform(-0.5, 0.5, (_BATCH.value, _FRAMES.value, height, width, 3)).astype(np.float32)
  frames_jax = jnp.asarray(frames)
  frames_torch = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 1, 4, 2, 3)))

  def run_torch(autocast):
    with torch.inference_mode(), torch.autocast('cpu', torch.bfloat16, enabled=autocast):
      return reference(frames_torch)

  # label -> (dtype, framework, function returning the output (N, T', H, W, 3) or its torch NCHW form)
  contenders: dict[str, tuple[str, str, Callable[[], Any]]] = {}
  for dtype in dtypes:
    model = base.clone(dtype=jnp.dtype(dtype))
    fast = model_lib.jit_apply(model).lower(variables, frames_jax).compile()
    contenders[f'JAX {dtype}, model.jit_apply'] = (dtype, 'jax', lambda c=fast: c(variables, frames_jax))
    if dtype == 'float32' and jit_utils.cpu_compiler_options():
      plain = jax.jit(model.apply).lower(variables, frames_jax).compile()
      contenders[f'JAX {dtype}, jax.jit(model.apply)'] = (dtype, 'jax', lambda c=plain: c(variables, frames_jax))
    contenders[f'PyTorch {dtype}' + (' autocast' if dtype == 'bfloat16' else '')] = (
        dtype, 'torch', functools.partial(run_torch, dtype == 'bfloat16'))

  def as_nhwc(out):
    return np.asarray(out.float().numpy().transpose(0, 1, 3, 4, 2) if isinstance(out, torch.Tensor) else out)

  expected = as_nhwc(run_torch(False))
  max_diff = {label: float(np.abs(as_nhwc(fn()) - expected).max()) for label, (_, _, fn) in contenders.items()}
  times: dict[str, list[float]] = {label: [] for label in contenders}
  cpu_times: dict[str, list[float]] = {label: [] for label in contenders}
  for _ in range(_REPEATS.value):
    for label, (_, _, fn) in contenders.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      jax.block_until_ready(fn())
      times[label].append(time.perf_counter() - start)
      cpu_times[label].append(time.process_time() - start_cpu)

  outputs = _BATCH.value * (_FRAMES.value - base.past_frames - base.future_frames)
  median = {label: statistics.median(t) for label, t in times.items()}
  cpu_median = {label: statistics.median(t) for label, t in cpu_times.items()}
  torch_label = {dtype: label for label, (dtype, kind, _) in contenders.items() if kind == 'torch'}
  print(f'{name} offline, {_BATCH.value}x{_FRAMES.value}x{height}x{width} ({outputs} output frames), {threads} '
        f'threads, OMP_WAIT_POLICY={os.environ["OMP_WAIT_POLICY"]}, {_REPEATS.value} interleaved repeats; '
        f'torch {torch.__version__}')
  print('Wall: median seconds per clip; CPU: median process CPU seconds per clip (both threads). PyTorch/JAX: '
        'ratio of the medians, same dtype (> 1: JAX faster).')
  header = (f"{'contender':36} {'wall s':>7} {'min s':>7} {'CPU s':>7} {'max abs vs PyTorch f32':>23} "
            f"{'PyTorch/JAX wall':>17} {'CPU':>6}")
  print(header)
  print('-' * len(header))
  records = []
  for label, (dtype, kind, _) in contenders.items():
    ratio = median[torch_label[dtype]] / median[label] if kind == 'jax' else None
    cpu_ratio = cpu_median[torch_label[dtype]] / cpu_median[label] if kind == 'jax' else None
    print(f'{label:36} {median[label]:7.3f} {min(times[label]):7.3f} {cpu_median[label]:7.3f} '
          f'{max_diff[label]:23.1e} {f"{ratio:.2f}x" if ratio else "":>17} '
          f'{f"{cpu_ratio:.2f}x" if cpu_ratio else "":>6}', flush=True)
    records.append({'model': name, 'height': height, 'width': width, 'dtype': dtype, 'contender': label,
                    'median_s': median[label], 'times_s': times[label], 'cpu_median_s': cpu_median[label],
                    'cpu_times_s': cpu_times[label], 'max_abs_vs_torch_f32': max_diff[label],
                    'torch_over_jax': ratio, 'torch_over_jax_cpu': cpu_ratio, 'threads': threads,
                    'clip_frames': _FRAMES.value, 'batch': _BATCH.value, 'torch': torch.__version__})
  return records


def pin_threads(threads: int) -> None:
  """Pins this process to `threads` CPUs (before JAX starts its CPU client, which sizes its pool from them)."""
  available = sorted(os.sched_getaffinity(0))
  if threads > len(available):
    raise app.UsageError(f'--threads={threads}: only {len(available)} CPUs are available.')
  os.sched_setaffinity(0, available[:threads])


BENCHES = {'offline': bench_offline, 'streaming': bench_streaming, 'video': bench_video, 'train': bench_train}


def _parse_size(text: str) -> tuple[int, int]:
  try:
    height, width = (int(v) for v in text.lower().split('x'))
  except ValueError:
    raise app.UsageError(f'--sizes: expected HxW such as 480x640, got {text!r}.') from None
  return height, width


def main(argv: list[str]) -> None:
  del argv
  threads = _THREADS.value or (2 if _VS_TORCH.value else None)
  if threads:
    pin_threads(threads)
  on_cpu = jax.default_backend() == 'cpu'
  models = _MODELS.value or ['B15C80', 'B9C60']
  sizes = [_parse_size(s) for s in (_SIZES.value or (['256x256'] if on_cpu else
                                                     ['256x256', '480x640', '720x1280']))]
  dtypes = _DTYPES.value or (['float32'] if on_cpu else ['float32', 'bfloat16'])
  modes = _MODES.value or (['offline', 'streaming', 'host'] if on_cpu else [*BENCHES, 'host'])
  for name, known in (('models', MODELS), ('modes', [*BENCHES, 'host']), ('dtypes', ('float32', 'bfloat16'))):
    unknown = [v for v in {'models': models, 'modes': modes, 'dtypes': dtypes}[name] if v not in known]
    if unknown:
      raise app.UsageError(f'--{name}: unknown {unknown}; choose from {sorted(known)}.')
  for size in _HOST_SIZES.value:
    _parse_size(size)

  def runs(mode: str, height: int, width: int) -> bool:
    # Default sizes on an accelerator: training only at its crop size (8x8 frames at 720p exceed 141 GB).
    return not (mode == 'train' and not _SIZES.value and height * width > 256 * 256)

  info = machine_info()
  print(f"Machine: {info['device']} x{info['num_devices']} ({info['backend']}); CPU {info['cpu']}, "
        f"{info['cpu_count']} cores; jax {info['jax']}; XLA CPU options {info['xla_cpu_options'] or 'none'}")
  if on_cpu and not _MODELS.value and not _SIZES.value:
    print('(CPU: default subset B15C80/B9C60 at 256x256, float32, offline + streaming + host; pass --sizes/'
          '--dtypes/--modes for more.)')
  if not on_cpu and not _SIZES.value and 'train' in modes:
    print('(Default sizes: train runs at 256x256 only; pass --sizes to train at others.)')
  if _VS_TORCH.value:
    rng = np.random.default_rng(0)
    with _json_output() as write:
      for name in models:
        for height, width in sizes:
          for record in compare_with_torch(name, height, width, dtypes, threads, rng):
            write({**info, **record})
    return
  table_modes = [m for m in modes if m != 'host']
  header = f"{'model':8} {'size':>9} {'dtype':8} {'mode':9} {'frames/s':>9} {'ms/frame':>9} {'compile s':>9} " \
           f"{'GFLOP/s':>9} {'util':>6}"
  rng = np.random.default_rng(0)
  failures = []
  with _json_output() as write:
    if table_modes:
      print(header)
      print('-' * len(header))
    for name in models if table_modes else []:
      n_features, n_blocks = MODELS[name]
      for height, width in sizes:
        base = model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks)
        variables = {'params': model_lib.init_params(base, 0)}
        _, true_macs, by_module = profile.layer_macs(base, height + (-height % 4), width + (-width % 4))
        cell_macs = by_module['cell']
        for dtype in dtypes:
          model = base.clone(dtype=jnp.dtype(dtype))
          for mode in (m for m in table_modes if runs(m, height, width)):
            case = {'model': name, 'n_features': n_features, 'n_blocks': n_blocks, 'height': height,
                    'width': width, 'dtype': dtype, 'mode': mode}
            try:
              seconds, compile_s, extra = BENCHES[mode](model, variables, height, width, rng)
            except Exception as e:  # pylint: disable=broad-except
              # One case failing (out of memory, unsupported) must not stop the others.
              reason = _failure(e)
              failures.append(f'{name} {height}x{width} {dtype} {mode}: {reason}')
              print(f'{name:8} {f"{height}x{width}":>9} {dtype:8} {mode:9} failed: {reason}', flush=True)
              write({**info, **case, 'error': reason, 'error_type': type(e).__name__})
              gc.collect()
              continue
            # The work executed per reported frame: cell steps and decoded slots (see the module docstring).
            executed_macs = (cell_macs * extra['cell_steps_per_frame']
                             + (true_macs - cell_macs) * extra['decodes_per_frame'])
            flops = 2 * executed_macs * (3 if mode == 'train' else 1) / seconds
            peak = accelerators.peak_flops(info['device'], dtype)
            util = flops / peak if peak else None
            print(f'{name:8} {f"{height}x{width}":>9} {dtype:8} {mode:9} {1 / seconds:9.2f} {1e3 * seconds:9.1f} '
                  f'{compile_s:9.1f} {flops / 1e9:9.1f} {f"{100 * util:.1f}%" if util else "n/a":>6}', flush=True)
            write({**info, **case, 'frames_per_s': 1 / seconds,
                   'ms_per_frame': 1e3 * seconds, 'compile_s': compile_s, 'true_macs_per_frame': true_macs,
                   'executed_macs_per_frame': executed_macs,
                   'flops_per_s': flops, 'peak_flops_per_s': peak, 'utilization': util,
                   'repeats': _REPEATS.value, **extra})
    if 'host' in modes:
      run_host(models, rng, write, info)
  if failures:
    print(f'\n{len(failures)} case(s) failed, the others ran:\n  ' + '\n  '.join(failures))


@contextlib.contextmanager
def _json_output() -> Iterator[Callable[[dict[str, Any]], None]]:
  """Yields `write(record)`: one JSON line to --json (a file, appended; "-": stdout), or nothing without it."""
  if not _JSON.value:
    yield lambda record: None
  elif _JSON.value == '-':
    yield lambda record: print(json.dumps(record))
  else:
    with open(_JSON.value, 'a') as f:
      yield lambda record: f.write(json.dumps(record) + '\n')

if __name__ == '__main__':
  sys.exit(app.run(main))
