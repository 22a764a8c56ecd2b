"""Parameter and MAC counts of an ESTRNN configuration.

  python -m estrnn_jax.profile --n_features 16 --n_blocks 15 --height 720 --width 1280
  python -m estrnn_jax.profile --config configs/gopro.py:b9c60     # the model of a config (a paper preset)

"Per frame" is one cell step + one GSA + one reconstruction (what each output frame costs in a stream), as the
paper reports it. Three MAC counts are printed:
  * thop:     the paper's convention (the `thop` profiler): every conv/linear layer's multiply-accumulates, with a
              stride-2 transposed conv counted over its *output* pixels (4x its real work). Paper B15C80: 203.74 G.
  * true:     the same layers, transposed convs counted over their input pixels (what the reference computes).
  * executed: read off this implementation's jaxpr (conv and dot ops): folded GSA, sub-pixel upsampling and all.
Counts come from the layers as the model runs them (module calls intercepted during `jax.eval_shape`) and from
the traced program, not from a table, so they follow any configuration.
"""

import dataclasses
import math

from absl import app
from absl import flags
import flax.linen as nn
from ml_collections import config_flags
import jax
from jax.extend import core as jex_core
import jax.numpy as jnp

from estrnn_jax import cli
from estrnn_jax import model as model_lib


@dataclasses.dataclass(frozen=True)
class Profile:
  """Counts for one configuration; MACs are per frame at the given size."""
  n_features: int
  n_blocks: int
  height: int
  width: int
  past_frames: int
  future_frames: int
  cell: str
  fusion: str
  params: int
  thop_macs: int
  true_macs: int
  executed_macs: int
  true_macs_by_module: dict[str, int]
  input: str = 'rgb'   # 'raw': ESTRNN-RAW (1-channel Bayer frames)


def count_params(model: model_lib.ESTRNN) -> int:
  """Number of parameters, from shapes only (`model.abstract_params`, nothing is initialised)."""
  return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(model_lib.abstract_params(model)))


def _per_frame_calls(model: model_lib.ESTRNN, height: int, width: int):
  """The two pieces of one frame's work as (function, abstract args): one cell step, one GSA+reconstruction."""
  variables = {'params': model_lib.abstract_params(model)}
  c = model.n_features
  state = jax.ShapeDtypeStruct((1, height // 4, width // 4, c), jnp.float32)
  frame = jax.ShapeDtypeStruct((1, height, width, model.channels), jnp.float32)
  hs = jax.ShapeDtypeStruct((1, model.num_frames, height // 4, width // 4, 5 * c), jnp.float32)
  centre = jax.ShapeDtypeStruct((1, 1, height, width, model.channels), jnp.float32)
  step = lambda v, s, x: model.apply(v, s, x, method=model_lib.ESTRNN.step)
  decode = lambda v, h, x: model.apply(v, h, x, method=model_lib.ESTRNN.decode)
  return [(step, (variables, state, frame)), (decode, (variables, hs, centre))]


def layer_macs(model: model_lib.ESTRNN, height: int, width: int) -> tuple[int, int, dict[str, int]]:
  """(thop MACs, true MACs, true MACs per top-level module) of one frame, counted layer by layer.

  Uses the reference's GSA form (fold_gsa=False) and straight-line code (unroll=True) so every layer of the
  paper's network is seen.
  """
  model = model.clone(fold_gsa=False, unroll=True)   # every layer a module call (no scans) for the interceptor
  totals = {'thop': 0, 'true': 0}
  by_module: dict[str, int] = {}

  def record(context, true, thop):
    totals['true'] += true
    totals['thop'] += thop
    top = context.module.path[0] if context.module.path else type(context.module).__name__
    by_module[top] = by_module.get(top, 0) + true

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name != '__call__':
      return out
    if isinstance(module, model_lib.Conv):
      macs = math.prod(out.shape[1:-1]) * module.kernel_size ** 2 * module.in_features * module.features
      record(context, macs, macs)
    elif isinstance(module, model_lib.Dense):
      macs = math.prod(out.shape[1:-1]) * module.in_features * module.features
      record(context, macs, macs)
    elif isinstance(module, model_lib.SubPixelUpsample):
      per_pixel = 9 * module.in_features * module.features
      record(context, math.prod(args[0].shape[1:-1]) * per_pixel, math.prod(out.shape[1:-1]) * per_pixel)
    elif isinstance(module, model_lib.CBAM):   # ESTRNN-RAW: its 7x7 spatial conv (2 -> 1); its MLP is Dense calls
      pixels = math.prod(out.shape[1:-1])
      macs = pixels * 7 * 7 * 2
      record(context, macs, macs + 4 * pixels)   # thop also counts the BatchNorm, 4 per element of its map
    elif isinstance(module, model_lib.RDB):   # its dense layers (the 1x1 fuse is a Conv call, counted above)
      c, g = module.in_features, module.growth
      macs = math.prod(args[0].shape[1:-1]) * 9 * g * sum(c + j * g for j in range(module.num_layers))
      record(context, macs, macs)
    return out

  calls = _per_frame_calls(model, height, width)  # (its abstract init must not be counted)
  with nn.intercept_methods(interceptor):
    for fn, args in calls:
      jax.eval_shape(fn, *args)
  return totals['thop'], totals['true'], by_module


def _jaxpr_macs(jaxpr: jex_core.Jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      out = eqn.outvars[0].aval.shape
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, *spatial) positions
      total += math.prod(out) * rhs[spec[1]] * math.prod(rhs[i] for i in spec[2:])  # rhs in-dim is Cin/groups
    elif name == 'dot_general':
      (lhs_contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in lhs_contract)
    repeat = eqn.params.get('length', 1) if name == 'scan' else 1
    for sub in _subjaxprs(eqn):
      total += repeat * _jaxpr_macs(sub)
  return total


def _subjaxprs(eqn) -> list[jex_core.Jaxpr]:
  subs = []
  for value in eqn.params.values():
    for v in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(v, jex_core.ClosedJaxpr):
        subs.append(v.jaxpr)
      elif isinstance(v, jex_core.Jaxpr):
        subs.append(v)
  return subs


def executed_macs(model: model_lib.ESTRNN, height: int, width: int) -> int:
  """MACs of one frame as this implementation runs it (conv and dot ops of the traced program)."""
  return sum(_jaxpr_macs(jax.make_jaxpr(fn)(*args).jaxpr) for fn, args in _per_frame_calls(model, height, width))


def profile(n_features: int = 16, n_blocks: int = 15, height: int = 720, width: int = 1280,
            past_frames: int = 2, future_frames: int = 2, cell: str = 'rdb', fusion: str = 'gsa') -> Profile:
  """Counts for ESTRNN(n_features, n_blocks, ...) on height x width frames (multiples of 4)."""
  return profile_model(model_lib.ESTRNN(n_features=n_features, n_blocks=n_blocks, past_frames=past_frames,
                                        future_frames=future_frames, cell=cell, fusion=fusion), height, width)


def profile_model(model: model_lib.ESTRNN, height: int = 720, width: int = 1280) -> Profile:
  """Counts for `model` (any variant) on height x width frames (multiples of 4)."""
  if height % 4 or width % 4:
    raise ValueError(f'height and width must be multiples of 4 (the model pads to them), got {height}x{width}.')
  model_lib.check_variant(model)
  thop, true, by_module = layer_macs(model, height, width)
  return Profile(model.n_features, model.n_blocks, height, width, model.past_frames, model.future_frames,
                 model.cell, model.fusion, count_params(model), thop, true, executed_macs(model, height, width),
                 by_module, model.input)


def format_profile(p: Profile) -> str:
  g = lambda macs: f'{macs / 1e9:9.2f} G'
  lines = [
      f'ESTRNN n_features={p.n_features} n_blocks={p.n_blocks} (paper: B{p.n_blocks}C{5 * p.n_features}), '
      f'past_frames={p.past_frames} future_frames={p.future_frames} cell={p.cell} fusion={p.fusion}'
      + (f' input={p.input}' if p.input != 'rgb' else '') + f', frames {p.height}x{p.width}',
      f'  parameters           {p.params:>12,}',
      f'  MACs/frame, thop     {g(p.thop_macs)}   (the paper\'s convention)',
      f'  MACs/frame, true     {g(p.true_macs)}   (transposed convs over their input pixels)',
      f'  MACs/frame, executed {g(p.executed_macs)}   (this implementation: folded GSA, sub-pixel upsampling)',
      '  true MACs by module: ' + ', '.join(f'{k} {v / 1e9:.2f} G' for k, v in sorted(p.true_macs_by_module.items())),
  ]
  return '\n'.join(lines)




def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_integer('n_features', 16, 'C (paper channels = 5C).')
  flags.DEFINE_integer('n_blocks', 15, 'Number of RDBs in F_R.')
  flags.DEFINE_integer('height', 720, 'Frame height (multiple of 4).')
  flags.DEFINE_integer('width', 1280, 'Frame width (multiple of 4).')
  flags.DEFINE_integer('past_frames', 2, 'GSA past frames.')
  flags.DEFINE_integer('future_frames', 2, 'GSA future frames.')
  flags.DEFINE_enum('cell', 'rdb', model_lib.CELLS, 'The cell (Table 4 ablation).')
  flags.DEFINE_enum('fusion', 'gsa', model_lib.FUSIONS, 'The fusion (Table 4 ablation).')
  config_flags.DEFINE_config_file('config', None, 'A training config (`<file>[:<arg>]`); profiles its model '
                                  '(config.model) instead of the model flags.', lock_config=True)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  if f.config is not None:
    model = model_lib.ESTRNN(**{k: v for k, v in f.config.model.items() if k != 'dtype'})
    p = profile_model(model, f.height, f.width)
  else:
    for name in ('n_features', 'n_blocks', 'height', 'width'):
      if f[name].value < 1:
        raise cli.UserError(f'--{name} must be >= 1, got {f[name].value}.')
    for name in ('past_frames', 'future_frames'):
      if f[name].value < 0:
        raise cli.UserError(f'--{name} must be >= 0, got {f[name].value}.')
    p = profile(f.n_features, f.n_blocks, f.height, f.width, f.past_frames, f.future_frames, f.cell, f.fusion)
  print(format_profile(p))


if __name__ == '__main__':
  define_flags()
  cli.run_absl('profile', main)
