r"""What reduced precision costs an exported model: PSNR on the synthetic test split, per format and dtype.

  python -m benchmarks.export_precision --checkpoint /tmp/estrnn_default
  python -m benchmarks.export_precision --checkpoint CK --preset small --exports onnx:float32,tflite:int8

Renders the test split of a synthetic preset (`synthetic.render_sequence` with the dataset builder's seeds, so
the same sequences as `synthetic_blur/<preset>`'s test split), deblurs every sequence with the JAX model
(`inference.deblur_video`, float32) and with each exported stream model in its own runtime
(`export_functions.run_stream`: every frame gets an output, edges as the streaming deblurrer), rounds the outputs
to 8 bits as `deblur` writes them, and prints the mean per-frame PSNR against the sharp frames, its change from
the JAX model's, and how far the 8-bit outputs are from the JAX model's (largest difference, share of values
that differ).
"""

import os
import tempfile

from absl import app
from absl import flags
import numpy as np

from estrnn_jax import export_formats
from estrnn_jax import export_functions
from estrnn_jax import inference
from estrnn_jax import synthetic

_CHECKPOINT = flags.DEFINE_string('checkpoint', None, 'Trained model (anything load_model takes).', required=True)
_PRESET = flags.DEFINE_string('preset', 'small_3ms24ms', 'Synthetic preset (the default config trains on '
                              'small_3ms24ms).')
_SEQUENCES = flags.DEFINE_integer('sequences', None, 'Test sequences to use (default: the whole test split).')
_EXPORTS = flags.DEFINE_list('exports', 'onnx:float32,onnx:float16,tflite:float32,tflite:float16,tflite:int8',
                             'format:dtype pairs to measure.')


def _to_u8(frames: np.ndarray) -> np.ndarray:
  return np.clip(np.rint((frames + 0.5) * 255.0), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Per-frame PSNR (dB) of uint8 frames (T, H, W, 3)."""
  mse = np.mean(np.square(a.astype(np.float64) - b.astype(np.float64)), axis=(1, 2, 3))
  return 10.0 * np.log10(255.0 ** 2 / mse)


def main(argv):
  del argv
  preset = synthetic.PRESETS[_PRESET.value]
  count = _SEQUENCES.value or preset.num_sequences['test']
  sequences = [synthetic.render_sequence(preset, synthetic.sequence_seed('test', i)) for i in range(count)]
  model, variables = inference.load_model(os.path.abspath(_CHECKPOINT.value))
  height, width = preset.height, preset.width
  print(f'checkpoint {_CHECKPOINT.value}: {model.to_config()}')
  print(f'synthetic_blur/{_PRESET.value} test split: {count} sequences of {preset.num_frames} frames, '
        f'{height}x{width}; every frame scored (8-bit outputs, PSNR against the sharp frame)')
  reference = [inference.deblur_video(model, variables, blur) for blur, _ in sequences]
  blur_psnr = np.concatenate([_psnr(blur, sharp) for blur, sharp in sequences]).mean()
  base = np.concatenate([_psnr(out, sharp) for out, (_, sharp) in zip(reference, sequences)]).mean()
  print(f'{"runtime":<22} {"PSNR dB":>8} {"change dB":>10} {"max 8-bit diff vs JAX":>22} {"values differing":>17}')
  print(f'{"blurry input":<22} {blur_psnr:8.3f}')
  print(f'{"jax float32":<22} {base:8.3f} {0.0:+10.4f} {0:>22} {0.0:16.3%}')
  with tempfile.TemporaryDirectory() as scratch:
    for item in _EXPORTS.value:
      fmt, dtype = item.split(':')
      export_formats.check_format(fmt, dtype)
      traced = model.clone(dtype=export_formats.compute_dtype(fmt, dtype))
      fn = export_functions.stream_function(traced, variables, height, width)
      directory = os.path.join(scratch, f'{fmt}_{dtype}')
      os.makedirs(directory)
      runner = export_formats.LOADERS[fmt](export_formats.WRITERS[fmt](fn, directory, dtype), fn)
      scores, worst, differing, total = [], 0, 0, 0
      for (blur, sharp), ref in zip(sequences, reference):
        video = blur.astype(np.float32) / 255.0 - 0.5
        out = _to_u8(export_functions.run_stream(runner, fn, video, model.future_frames))
        scores.append(_psnr(out, sharp))
        worst = max(worst, int(np.abs(out.astype(int) - ref).max()))
        differing, total = differing + int(np.count_nonzero(out != ref)), total + out.size
      value = np.concatenate(scores).mean()
      print(f'{fmt + " " + dtype:<22} {value:8.3f} {value - base:+10.4f} {worst:>22} {differing / total:16.3%}',
            flush=True)


if __name__ == '__main__':
  app.run(main)
