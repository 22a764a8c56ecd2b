"""Official ESTRNN checkpoints (PyTorch, `zzh-tech/ESTRNN`) -> Flax parameters for `estrnn_jax.model.ESTRNN`.

No torch is needed: `.pth.tar` files are read by `estrnn_jax.torch_pickle`, which refuses anything but tensors.

Colour order: the official model reads frames with OpenCV, so its checkpoints expect **BGR** input and produce BGR
output. The converted model takes and returns **RGB** (like the rest of this project): the first conv's input
channels and the last conv's output channels (and bias) are permuted. Pass `rgb=False` to keep BGR.

ESTRNN-RAW (`model/ESTRNN-RAW.py`; no weights were released) converts too, to `ESTRNN(input='raw')`: recognised by its
CBAM tensors, its BatchNorm folded into the inference form `model.CBAM` keeps (eval mode, exact), no colour order.

`estrnn_jax.checkpoints.restore_model` reads official files through this module; the `python -m estrnn_jax.convert`
command converts one once and saves it in the project's own format.
"""

from collections.abc import Mapping
import re
from typing import Any

from etils import epath
import jax
import numpy as np

from estrnn_jax import model as model_lib
from estrnn_jax import torch_pickle

_PREFIXES = ('module.model.', 'model.', 'module.')

# (torch key pattern, flax path template, kind). Kinds: conv (OIHW -> HWIO), deconv (IOHW -> HW,I,O scatter form),
# linear ((out, in) -> (in, out)).
_RULES: tuple[tuple[str, str, str], ...] = (
    (r'cell\.F_B0', 'cell/F_B0', 'conv'),
    (r'cell\.F_B([12])\.rdb\.dense_layers\.(\d+)\.conv', 'cell/F_B{0}/rdb/dense_{1}', 'conv'),
    (r'cell\.F_B([12])\.rdb\.conv1x1', 'cell/F_B{0}/rdb/fuse', 'conv'),
    (r'cell\.F_B([12])\.down_sampling', 'cell/F_B{0}/down', 'conv'),
    (r'cell\.F_R\.RDBs\.(\d+)\.dense_layers\.(\d+)\.conv', 'cell/F_R/rdb_{0}/dense_{1}', 'conv'),
    (r'cell\.F_R\.RDBs\.(\d+)\.conv1x1', 'cell/F_R/rdb_{0}/fuse', 'conv'),
    (r'cell\.F_R\.conv1x1', 'cell/F_R/fuse', 'conv'),
    (r'cell\.F_R\.conv3x3', 'cell/F_R/conv', 'conv'),
    (r'cell\.F_h\.0', 'cell/F_h_in', 'conv'),
    (r'cell\.F_h\.1\.dense_layers\.(\d+)\.conv', 'cell/F_h_rdb/dense_{0}', 'conv'),
    (r'cell\.F_h\.1\.conv1x1', 'cell/F_h_rdb/fuse', 'conv'),
    (r'cell\.F_h\.2', 'cell/F_h_out', 'conv'),
    (r'fusion\.F_f\.0', 'fusion/mlp_in', 'linear'),
    (r'fusion\.F_f\.2', 'fusion/mlp_out', 'linear'),
    (r'fusion\.F_p\.0', 'fusion/proj_in', 'conv'),
    (r'fusion\.F_p\.1', 'fusion/proj_out', 'conv'),
    (r'fusion\.condense', 'fusion/condense', 'conv'),
    (r'fusion\.fusion', 'fusion/fuse', 'conv'),
    (r'recons\.model\.([01])', 'reconstructor/up_{0}', 'deconv'),
    (r'recons\.model\.2', 'reconstructor/out', 'conv'),
)
# ESTRNN-RAW (`model/ESTRNN-RAW.py`): its own cell front (`model.RawRDBCell`), then the rules above, from F_B2 on (its
# F_B0 and F_B1 keys, `cell.F_B0.0` and `cell.F_B1.<i>.`, match none of the RGB rules, which are full matches).
_RAW_RULES: tuple[tuple[str, str, str], ...] = (
    (r'cell\.downsampling\.0', 'cell/front_down', 'conv'),
    (r'cell\.pixel_unshuffle\.1', 'cell/front_unshuffle', 'conv'),
    (r'cell\.F_B0\.0', 'cell/F_B0', 'conv'),
    (r'cell\.cbam\.ChannelGate\.mlp\.1', 'cell/cbam/mlp_in', 'linear'),
    (r'cell\.cbam\.ChannelGate\.mlp\.3', 'cell/cbam/mlp_out', 'linear'),
    (r'cell\.F_B1\.([01])\.dense_layers\.(\d+)\.conv', 'cell/F_B1_{0}/dense_{1}', 'conv'),
    (r'cell\.F_B1\.([01])\.conv1x1', 'cell/F_B1_{0}/fuse', 'conv'),
) + _RULES
# ESTRNN-RAW's CBAM spatial gate: its conv (no bias), and its BatchNorm folded into the inference form of
# `model.CBAM` under the names `_fold_raw_batch_norm` gives it.
_RAW_SPATIAL_CONV = 'cell.cbam.SpatialGate.spatial.conv.weight'
_RAW_BATCH_NORM = 'cell.cbam.SpatialGate.spatial.bn.'
_RAW_DIRECT = {
    _RAW_SPATIAL_CONV: (('cell', 'cbam', 'spatial_kernel'), 'conv'),
    'cell.cbam.spatial_scale': (('cell', 'cbam', 'spatial_scale'), 'vector'),
    'cell.cbam.spatial_shift': (('cell', 'cbam', 'spatial_shift'), 'vector'),
}
_KERNEL_LAYOUT = {'conv': (2, 3, 1, 0), 'deconv': (2, 3, 0, 1), 'linear': (1, 0)}


class CheckpointMismatchError(ValueError):
  """The checkpoint is readable but is not an ESTRNN of a shape this module can build."""


def strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Drops the reference's `module.model.` (or `model.` / `module.`) key prefix."""
  out = {}
  for key, value in state_dict.items():
    for prefix in _PREFIXES:
      if key.startswith(prefix):
        key = key[len(prefix):]
        break
    out[key] = value
  return out


def _flax_location(torch_key: str, raw: bool = False) -> tuple[tuple[str, ...], str] | None:
  """'cell.F_B0.weight' -> (('cell', 'F_B0', 'kernel'), 'conv'); None for an unknown key. `raw`: ESTRNN-RAW's keys."""
  if raw and torch_key in _RAW_DIRECT:
    return _RAW_DIRECT[torch_key]
  module, _, leaf = torch_key.rpartition('.')
  if leaf not in ('weight', 'bias'):
    return None
  for pattern, template, kind in (_RAW_RULES if raw else _RULES):
    match = re.fullmatch(pattern, module)
    if match:
      path = template.format(*match.groups()).split('/')
      return (*path, 'kernel' if leaf == 'weight' else 'bias'), kind
  return None


def is_raw(state_dict: Mapping[str, Any]) -> bool:
  """Whether a (prefix-free) state dict is the official ESTRNN-RAW's (its cell has a CBAM)."""
  return _RAW_SPATIAL_CONV in state_dict


def infer_config(state_dict: Mapping[str, Any]) -> dict[str, int]:
  """Reads n_features, n_blocks and the GSA window size (past+future+1) off the tensors' shapes."""
  raw = is_raw(state_dict)
  first = 'cell.F_B0.0.weight' if raw else 'cell.F_B0.weight'   # ESTRNN-RAW's F_B0: conv5x5 8 -> 2C, GELU
  if first not in state_dict:
    raise CheckpointMismatchError(f"not an ESTRNN{'-RAW' if raw else ''} state dict: no tensor {first!r}")
  variant = [what for what, present in (('GSA tensors (fusion.*)', 'fusion.fusion.weight' in state_dict),
                                        ('RDB cell tensors (cell.F_R.RDBs.*)',
                                         any(k.startswith('cell.F_R.RDBs.') for k in state_dict))) if not present]
  if variant:
    raise CheckpointMismatchError(
        f"it has no {' and no '.join(variant)}: the official converter reads only the paper's model (cell='rdb', "
        "fusion='gsa'), the only one with released weights; an ablation variant (cell='resblock', "
        "fusion='concat' or 'none') or another network cannot be converted")
  n_features = int(state_dict[first].shape[0]) // (2 if raw else 1)
  fuse_channels = int(state_dict['fusion.fusion.weight'].shape[0])
  blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r'cell\.F_R\.RDBs\.(\d+)\.', k))}
  if blocks != set(range(len(blocks))):
    raise CheckpointMismatchError(f'not an ESTRNN state dict: F_R RDB indices are {sorted(blocks)}')
  if fuse_channels % (5 * n_features):
    raise CheckpointMismatchError(
        f'fusion.fusion has {fuse_channels} channels, not a multiple of 5 * n_features = {5 * n_features}')
  return {'n_features': n_features, 'n_blocks': len(blocks), 'num_frames': fuse_channels // (5 * n_features)}


def convert_state_dict(state_dict: Mapping[str, Any], *, past_frames: int = 2, future_frames: int = 2,
                       rgb: bool = True) -> tuple[model_lib.ESTRNN, dict[str, Any]]:
  """Converts an official state dict (torch layouts, numpy arrays) to `(ESTRNN, {'params': ...})`.

  Args:
    state_dict: tensor name -> array, with or without the `module.model.` prefix.
    past_frames, future_frames: the GSA window; must add up with the checkpoint's fusion width.
    rgb: permute the colour channels so the model takes and returns RGB (official checkpoints are BGR).
  Raises:
    CheckpointMismatchError: missing, unexpected or wrongly shaped tensors, naming each.
  """
  state_dict = {k: np.asarray(v) for k, v in strip_prefix(state_dict).items()}
  config = infer_config(state_dict)
  if past_frames + future_frames + 1 != config['num_frames']:
    raise CheckpointMismatchError(
        f"the checkpoint's GSA fuses {config['num_frames']} frames, but past_frames={past_frames} + "
        f'future_frames={future_frames} + 1 = {past_frames + future_frames + 1}')
  raw = is_raw(state_dict)
  model = model_lib.ESTRNN(n_features=config['n_features'], n_blocks=config['n_blocks'],
                           past_frames=past_frames, future_frames=future_frames, input='raw' if raw else 'rgb')
  expected = _expected_shapes(model)

  params: dict[str, Any] = {}
  unexpected, wrong_shape = [], []
  if raw:
    state_dict = _fold_raw_batch_norm(state_dict)
  for key, value in state_dict.items():
    location = _flax_location(key, raw)
    if location is None or location[0] not in expected:
      unexpected.append(key)
      continue
    path, kind = location
    if value.ndim > 1:
      value = value.transpose(_KERNEL_LAYOUT[kind])
    if value.shape != expected[path]:
      wrong_shape.append(f'{key}: {value.shape} (as {"/".join(path)}), expected {expected[path]}')
      continue
    node = params
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = value.astype(np.float32)
  missing = sorted('/'.join(p) for p in expected if not _has(params, p))
  problems = []
  if missing:
    problems.append(f'missing {len(missing)} tensor(s) for: {", ".join(missing[:8])}' + (' …' if len(missing) > 8 else ''))
  if unexpected:
    problems.append(f'unexpected tensor(s): {", ".join(sorted(unexpected)[:8])}' + (' …' if len(unexpected) > 8 else ''))
  if wrong_shape:
    problems.append('wrong shape: ' + '; '.join(wrong_shape[:8]))
  if problems:
    raise CheckpointMismatchError(
        f"not an ESTRNN(n_features={config['n_features']}, n_blocks={config['n_blocks']}) checkpoint: "
        + ' | '.join(problems))
  if rgb and not raw:   # a Bayer frame has no colour order to permute
    params['cell']['F_B0']['kernel'] = params['cell']['F_B0']['kernel'][:, :, ::-1, :].copy()
    out = params['reconstructor']['out']
    out['kernel'], out['bias'] = out['kernel'][..., ::-1].copy(), out['bias'][::-1].copy()
  return model, {'params': params}


def _fold_raw_batch_norm(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """ESTRNN-RAW's CBAM BatchNorm (eval mode) -> `model.CBAM`'s inference form, under the keys of `_RAW_DIRECT`:
  scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale (float64, then float32). A state
  dict without the four one-channel BatchNorm tensors is returned unchanged (the caller reports what is wrong)."""
  parts = {name: state_dict.get(_RAW_BATCH_NORM + name) for name in ('weight', 'bias', 'running_mean', 'running_var')}
  if not all(v is not None and v.shape == (1,) for v in parts.values()):
    return state_dict
  folded = {k: v for k, v in state_dict.items() if not k.startswith(_RAW_BATCH_NORM)}
  weight, bias, mean, var = (parts[k].astype(np.float64) for k in ('weight', 'bias', 'running_mean', 'running_var'))
  scale = weight / np.sqrt(var + model_lib.BATCH_NORM_EPS)
  folded['cell.cbam.spatial_scale'] = scale
  folded['cell.cbam.spatial_shift'] = bias - mean * scale
  return folded


def _expected_shapes(model: model_lib.ESTRNN) -> dict[tuple[str, ...], tuple[int, ...]]:
  flat = jax.tree_util.tree_flatten_with_path(model_lib.abstract_params(model))[0]
  return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def _has(tree: Mapping[str, Any], path: tuple[str, ...]) -> bool:
  for name in path:
    if not isinstance(tree, Mapping) or name not in tree:
      return False
    tree = tree[name]
  return True


def read_state_dict(path: str | epath.PathLike) -> dict[str, np.ndarray]:
  """Reads an official checkpoint file: a `.pth.tar` dict with `state_dict`, or a bare state dict."""
  path = epath.Path(path)
  obj = torch_pickle.load(path)
  if isinstance(obj, Mapping) and 'state_dict' in obj:
    obj = obj['state_dict']
  if not isinstance(obj, Mapping) or not all(isinstance(v, np.ndarray) for v in obj.values()):
    raise CheckpointMismatchError(f'{path}: holds neither a state dict nor a dict with a "state_dict" entry '
                                  f'(found {type(obj).__name__}).')
  return dict(obj)


def load_torch_checkpoint(path: str | epath.PathLike, past_frames: int = 2, future_frames: int = 2,
                          rgb: bool = True) -> tuple[model_lib.ESTRNN, dict[str, Any]]:
  """Official `.pth.tar` (or bare state dict) -> `(ESTRNN, {'params': ...})`, RGB by default. No torch needed."""
  state_dict = read_state_dict(path)
  try:
    return convert_state_dict(state_dict, past_frames=past_frames, future_frames=future_frames, rgb=rgb)
  except CheckpointMismatchError as e:
    raise CheckpointMismatchError(f'{path}: {e}') from None
