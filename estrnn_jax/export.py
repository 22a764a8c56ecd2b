r"""Exports a trained or converted ESTRNN to run outside JAX: ONNX, TFLite (LiteRT), TF SavedModel or StableHLO.

  python -m estrnn_jax.export --checkpoint CK --format onnx|tflite|savedmodel|stablehlo \
      --height H --width W --output DIR [--mode clip|stream] [--dtype float32|float16|bfloat16|int8] [--frames 10]

`CK` is anything `checkpoints.restore_model` loads (a workdir, a converted checkpoint, an official `.pth.tar`).
`DIR` (must not exist) receives the artifact (`export_formats.ARTIFACT_NAMES`) and `metadata.json`: the model
config, the input and output names, shapes and ranges, the colour order, the stream delay and the measured error.
The inputs and outputs of both modes are described in `estrnn_jax.export_functions`. H and W are multiples of
4: fixed at export time for ONNX and TFLite; any multiple of 4 for SavedModel and StableHLO (checked at the
given size).

Every export is checked when written: the artifact runs in its own runtime on a random input, next to the
float32 JAX model; the largest absolute difference is printed, and above the tolerance
(`export_formats.TOLERANCES`, 1e-4 for float32) the export is refused. A refused or failed export (unknown
format, bad size, existing output, failed conversion, failed check) is a one-line `export: error: ...` and leaves
no `DIR` behind (it is written under a temporary name and moved into place when complete). `DIR` is checked to be
writable before the checkpoint is read; a disk that fills during the export names `DIR` and the cause.
"""

from __future__ import annotations

import os
import time
from typing import Any

from absl import app
from absl import flags
from etils import epath
import jax

from estrnn_jax import atomic
from estrnn_jax import checkpoints
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import export_formats
from estrnn_jax import export_functions


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_string('checkpoint', None, 'Workdir, converted checkpoint or official .pth.tar file.')
  flags.DEFINE_string('format', None, f'One of {export_formats.FORMATS}.')
  flags.DEFINE_integer('height', None, 'Frame height (a multiple of 4), fixed in the artifact.')
  flags.DEFINE_integer('width', None, 'Frame width (a multiple of 4), fixed in the artifact.')
  flags.DEFINE_string('output', None, 'Directory to create for the artifact and metadata.json (must not exist).')
  flags.DEFINE_string('mode', 'clip', f'One of {export_functions.MODES}: a whole clip per call, or one frame '
                      'per call with explicit state.')
  flags.DEFINE_string('dtype', 'float32', f'One of {export_formats.DTYPES} (see export_formats for which format '
                      'takes which).')
  flags.DEFINE_integer('frames', 10, 'Clip mode: frames per call (T), fixed in the artifact.')


def _metadata(model, fn: export_functions.ExportFunction, fmt: str, dtype: str, artifact: str,
              check: export_formats.Check, checkpoint: str) -> dict[str, Any]:
  meta = {
      'format': fmt, 'artifact': artifact, 'runtime': export_formats.RUNTIMES[fmt], 'mode': fn.mode,
      'dtype': dtype, 'model_config': model.to_config(), 'checkpoint': str(checkpoint),
      'colour_order': 'RGB' if model.channels == 3 else 'RAW Bayer mosaic (1 channel)',
      'layout': 'channels last (N, [T,] H, W, C)',
      'input_range': [-0.5, 0.5],
      'size': {'height': fn.inputs[0].shape[-3], 'width': fn.inputs[0].shape[-2],
               'dynamic': fmt in export_formats.DYNAMIC_SIZE,
               'note': ('H and W may be any multiples of 4; the shapes below are at the size checked at export '
                        '(features at H/4 x W/4)') if fmt in export_formats.DYNAMIC_SIZE else
                       'H and W are fixed at these values (multiples of 4): pad or crop frames to fit'},
      'output_range': 'about [-0.5, 0.5], not clipped: clip to [-0.5, 0.5] before converting to 8 bits',
      'inputs': [s.to_json() for s in fn.inputs], 'outputs': [s.to_json() for s in fn.outputs],
      'check': {'max_abs_error': check.max_abs_error, 'per_output': check.per_output, 'tolerance': check.tolerance,
                'reference': 'float32 JAX model on a random input', 'jax_version': jax.__version__},
  }
  if fn.mode == 'stream':
    meta['stream'] = {
        'delay_frames': model.future_frames,
        'usage': (f'Start with every state input at zeros. Call once per frame with is_real=1 and feed the *_out '
                  f'outputs back as the next inputs. The output of call t is frame t - {model.future_frames}: '
                  f'drop the first {model.future_frames} outputs; after the last frame make '
                  f'{model.future_frames} more calls with a zero frame and is_real=0 to get the last frames.'),
    }
  else:
    meta['clip'] = {'first_output_frame': model.past_frames,
                    'outputs_per_call': fn.outputs[0].shape[1],
                    'frames_per_call': fn.inputs[0].shape[1]}
  return meta


def export(checkpoint: str, fmt: str, height: int, width: int, output: str, *, mode: str = 'clip',
           dtype: str = 'float32', frames: int = 10, log=print) -> dict[str, Any]:
  """Exports, checks and writes `output/`; returns the metadata written. See the module docstring.

  Raises:
    ValueError: a bad format, dtype, mode or size, or a check above the tolerance (`ExportCheckError`).
    FileExistsError: `output` exists. cli.UserError: the conversion itself failed.
  """
  export_formats.check_format(fmt, dtype)
  if mode not in export_functions.MODES:
    raise ValueError(f'--mode {mode!r} is not one of {export_functions.MODES}.')
  export_functions.check_size(height, width)
  if epath.Path(output).exists():
    raise FileExistsError(f'--output {output} already exists; choose a new directory.')
  destinations.check_writable(output, flag='--output')
  if '://' not in checkpoint:
    checkpoint = os.path.abspath(checkpoint)   # Orbax restores absolute paths only
  model, variables = checkpoints.restore_model(checkpoint)
  model = model.clone(dtype=jax.numpy.float32)
  reference = export_functions.build(model, variables, mode, height, width, frames)
  traced = model.clone(dtype=export_formats.compute_dtype(fmt, dtype))
  fn = export_functions.build(traced, variables, mode, height, width, frames)
  start = time.perf_counter()
  try:
    with atomic.directory(output) as temporary:
      os.makedirs(temporary)
      try:
        path = export_formats.WRITERS[fmt](fn, os.fspath(temporary), dtype)
        runner = export_formats.LOADERS[fmt](path, fn)
        check = export_formats.verify(runner, reference, dtype)
      except export_formats.ExportCheckError:
        raise
      except Exception as e:  # converters raise their own exception types; a failed conversion is not a crash
        if destinations.cause(e) is not None:
          raise   # the destination failed, not the conversion (below)
        kind = '' if isinstance(e, (ValueError, OSError)) else f'{type(e).__name__}: '
        raise cli.UserError(f'--format {fmt}: conversion failed: {kind}{cli.error_message(e)}') from e
      log(f'{fmt} {mode} {dtype}: max abs error vs the float32 JAX model {check.max_abs_error:.3g} '
          f'(tolerance {check.tolerance:g}) in {export_formats.RUNTIMES[fmt]}.')
      if not check.passed:
        raise export_formats.ExportCheckError(
            f'{fmt} export refused: its outputs differ from the JAX model by {check.max_abs_error:.3g} '
            f'(per output {check.per_output}), above the tolerance {check.tolerance:g}; nothing was written.')
      meta = _metadata(model, fn, fmt, dtype, os.path.basename(path), check, checkpoint)
      atomic.write_json(temporary / 'metadata.json', meta)
  except (cli.UserError, export_formats.ExportCheckError):
    raise
  except Exception as e:  # a full disk or failed write while writing the artifact or its metadata
    failure = destinations.write_failure('--output', output, e)
    if failure is None:
      raise
    raise failure from None
  log(f'Wrote {output} ({export_formats.ARTIFACT_NAMES[fmt]} + metadata.json) in {time.perf_counter() - start:.0f} s.')
  return meta


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  missing = [name for name in ('checkpoint', 'format', 'height', 'width', 'output') if getattr(f, name) is None]
  if missing:
    raise app.UsageError(f'missing required flag(s): {", ".join("--" + m for m in missing)}.')
  export(f.checkpoint, f.format, f.height, f.width, f.output, mode=f.mode, dtype=f.dtype, frames=f.frames)


if __name__ == '__main__':
  define_flags()
  cli.run_absl('export', main)
