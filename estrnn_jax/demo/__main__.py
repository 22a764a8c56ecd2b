r"""The web demo: upload a blurry video (or pick a built-in example) and see it deblurred, in a browser.

  python -m estrnn_jax.demo                                   # the default run's model (README, step 2)
  python -m estrnn_jax.demo --checkpoint CKPT [--port 7860] [--share]

CKPT is anything `deblur` takes: a training workdir (`--which latest|best`), a converted directory or an
official `.pth.tar`. Without it the page uses `/tmp/estrnn_default` if it holds a checkpoint, and otherwise says
how to train one (it never deblurs with an untrained model). The limits (`--max_*`) are stated in the page and
enforced; `--share` asks Gradio for a public link. A checkpoint that cannot be loaded is a start-up error
(`estrnn_jax.cli` style: one line, exit status 1).
"""

from absl import app
from absl import flags

from estrnn_jax import cli
from estrnn_jax import inference
from estrnn_jax import synthetic
from estrnn_jax.demo import examples
from estrnn_jax.demo import limits as limits_lib
from estrnn_jax.demo import page
from estrnn_jax.demo import weights as weights_lib

_LIMITS = limits_lib.Limits()


def define_flags() -> dict[str, flags.FlagHolder]:
  """The CLI's flags; defined only when this module runs as a program, so importing it never touches FLAGS."""
  return {
      'checkpoint': flags.DEFINE_string('checkpoint', None, 'Training workdir, converted directory or .pth.tar '
                                        f'(default: {weights_lib.DEFAULT_WORKDIR} if it has a checkpoint).'),
      'which': flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'For a workdir: latest or best-PSNR step.'),
      'port': flags.DEFINE_integer('port', 7860, 'Port to serve the page on.'),
      'host': flags.DEFINE_string('host', None, 'Address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME; '
                                  '0.0.0.0: every interface).'),
      'share': flags.DEFINE_bool('share', False, 'Also serve the page on a public gradio.live link (72 hours).'),
      'workdir': flags.DEFINE_string('workdir', None, "Folder for the requests' files (default: a temporary one)."),
      'tile': flags.DEFINE_integer('tile', 0, "As deblur's --tile: deblur frames in tiles of this size (0: whole "
                                   'frames), for devices too small for the largest frames allowed.'),
      'max_upload_mb': flags.DEFINE_float('max_upload_mb', _LIMITS.max_upload_mb, 'Largest upload, MB.'),
      'max_seconds': flags.DEFINE_float('max_seconds', _LIMITS.max_seconds, 'Longest clip, seconds.'),
      'max_frames': flags.DEFINE_integer('max_frames', _LIMITS.max_frames, 'Most frames of a clip.'),
      'max_frame_size': flags.DEFINE_string('max_frame_size', f'{_LIMITS.max_long_side}x{_LIMITS.max_short_side}',
                                            'Largest frame, LONGxSHORT pixels (either orientation).'),
      'example_preset': flags.DEFINE_enum('example_preset', examples.DEFAULT_PRESET, list(synthetic.PRESETS),
                                          'Synthetic preset whose test clips are the examples.'),
      'num_examples': flags.DEFINE_integer('num_examples', 3, 'How many examples the page offers.', lower_bound=1),
  }


def _limits(fv: dict[str, flags.FlagHolder]) -> limits_lib.Limits:
  try:
    long_side, short_side = sorted((int(n) for n in fv['max_frame_size'].value.lower().split('x')), reverse=True)
  except ValueError:
    raise cli.UserError(f'--max_frame_size: expected LONGxSHORT, e.g. 1280x720, got '
                        f'{fv["max_frame_size"].value!r}.') from None
  return limits_lib.Limits(fv['max_upload_mb'].value, fv['max_seconds'].value, fv['max_frames'].value, long_side,
                           short_side)


def main(argv: list[str], fv: dict[str, flags.FlagHolder]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  limits = _limits(fv)
  if fv['tile'].value:
    inference.check_tiling(fv['tile'].value, 32)
  checkpoint = fv['checkpoint'].value
  try:
    weights = weights_lib.load(checkpoint, fv['which'].value)
  except Exception as e:  # pylint: disable=broad-except  # Orbax, the converter, JSON: all fatal at start-up
    raise cli.UserError(f'cannot load the checkpoint {checkpoint}: {cli.error_message(e)}') from None
  print(f'Model: {weights.describe()}' if isinstance(weights, weights_lib.Weights) else weights, flush=True)
  page.serve(weights, limits, workdir=fv['workdir'].value, tile=fv['tile'].value,
             example_preset=fv['example_preset'].value, num_examples=fv['num_examples'].value,
             host=fv['host'].value, port=fv['port'].value, share=fv['share'].value)


if __name__ == '__main__':
  _flags = define_flags()
  cli.run_absl('demo', lambda argv: main(argv, _flags))
