"""A small JAX -> ONNX (opset 18) translator for the functions ESTRNN exports (`export_functions`).

The function is traced with `jax.make_jaxpr` at fixed shapes; nested jaxprs (`jit`, `closed_call`, custom
derivative rules) are inlined and `scan` is unrolled (its length is fixed at export time). Every equation whose
inputs are all known constants (the parameters and what is computed from them only, e.g. the folded GSA weights
and the sub-pixel kernels) is evaluated here and stored as an initializer, so the graph holds only the work that
depends on the inputs. Convolutions are channels-last in JAX and channels-first in ONNX: each `Conv` is wrapped
in Transposes (onnxruntime's optimiser removes the pairs that cancel) and its kernel is stored as OIHW.

Only the primitives ESTRNN's functions contain are mapped (`_RULES`); anything else raises
`UnsupportedPrimitiveError` naming it.

Why our own translator: jax2onnx needs an older orbax-checkpoint than the project pins, and tf2onnx does not
convert jax2tf's XlaCallModule (StableHLO) ops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import hashlib
from typing import Any

import jax
from jax.extend import core as jax_core
import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper

OPSET = 18
# Constant-folded results larger than this many elements (and larger than their inputs) are computed in the
# graph instead, so a folded broadcast cannot bloat the file.
_MAX_FOLDED_ELEMENTS = 1 << 20


class UnsupportedPrimitiveError(ValueError):
  """The traced function uses a JAX primitive the translator does not map."""


def _onnx_dtype(dtype: Any) -> int:
  return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class _Const:
  """A value known at export time."""

  def __init__(self, value: Any):
    self.value = np.asarray(value)


class _Graph:
  """Nodes and initializers being built; `env` maps jaxpr variables to tensor names or `_Const`s."""

  def __init__(self):
    self.nodes: list[onnx.NodeProto] = []
    self.initializers: list[onnx.TensorProto] = []
    self._count = 0
    self._const_names: dict[tuple[Any, ...], str] = {}

  def fresh(self, hint: str) -> str:
    self._count += 1
    return f'{hint}_{self._count}'

  def const(self, value: Any, dtype: Any = None) -> str:
    """An initializer holding `value`; equal values share one (an unrolled scan reuses its step's weights)."""
    array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
    key = (array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
    if key not in self._const_names:
      self._const_names[key] = self.fresh('const')
      self.initializers.append(numpy_helper.from_array(array, self._const_names[key]))
    return self._const_names[key]

  def ints(self, values: Sequence[int]) -> str:
    return self.const(np.asarray(list(values), np.int64))

  def op(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
    out = self.fresh(op_type.lower())
    self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
    return out

  def op_multi(self, op_type: str, inputs: Sequence[str], n_out: int, **attrs: Any) -> list[str]:
    outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
    self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
    return outs


# --------------------------------------------------------------------------------------------------------------
# Primitive rules: (graph, input tensor names, input avals, output avals, params) -> output tensor names.


def _same(op_type: str) -> Callable[..., list[str]]:
  """A primitive that is one ONNX op on the same inputs (elementwise; ONNX broadcasts JAX's rank-0 literals)."""
  return lambda g, xs, avals, outs, params: [g.op(op_type, xs)]


def _erfc(g, xs, avals, outs, params):
  one = g.const(np.ones((), avals[0].dtype))
  return [g.op('Sub', [one, g.op('Erf', xs)])]


def _rsqrt(g, xs, avals, outs, params):
  return [g.op('Reciprocal', [g.op('Sqrt', xs)])]


def _integer_pow(g, xs, avals, outs, params):
  y = params['y']
  if y == 2:
    return [g.op('Mul', [xs[0], xs[0]])]
  return [g.op('Pow', [xs[0], g.const(np.asarray(y, avals[0].dtype))])]


def _convert(g, xs, avals, outs, params):
  return [g.op('Cast', xs, to=_onnx_dtype(outs[0].dtype))]


def _reshape(g, xs, avals, outs, params):
  if params.get('dimensions') is not None:
    raise UnsupportedPrimitiveError('reshape with dimensions is not supported by the ONNX export.')
  return [g.op('Reshape', [xs[0], g.ints(outs[0].shape)])]


def _transpose(g, xs, avals, outs, params):
  return [g.op('Transpose', xs, perm=list(params['permutation']))]


def _squeeze(g, xs, avals, outs, params):
  return [g.op('Squeeze', [xs[0], g.ints(params['dimensions'])])]


def _expand_dims(g, xs, avals, outs, params):
  return [g.op('Reshape', [xs[0], g.ints(outs[0].shape)])]


def _broadcast_in_dim(g, xs, avals, outs, params):
  shape, dims = outs[0].shape, params['broadcast_dimensions']
  aligned = [1] * len(shape)
  for src, dst in enumerate(dims):
    aligned[dst] = avals[0].shape[src]
  x = xs[0]
  if tuple(aligned) != tuple(avals[0].shape):
    x = g.op('Reshape', [x, g.ints(aligned)])
  if tuple(aligned) == tuple(shape):
    return [x if x != xs[0] else g.op('Identity', [x])]
  return [g.op('Expand', [x, g.ints(shape)])]


def _slice(g, xs, avals, outs, params):
  starts, limits = params['start_indices'], params['limit_indices']
  strides = params['strides'] or (1,) * len(starts)
  axes = [a for a in range(len(starts)) if (starts[a], limits[a], strides[a]) != (0, avals[0].shape[a], 1)]
  if not axes:
    return [g.op('Identity', xs)]
  return [g.op('Slice', [xs[0], g.ints([starts[a] for a in axes]), g.ints([limits[a] for a in axes]),
                         g.ints(axes), g.ints([strides[a] for a in axes])])]


def _concatenate(g, xs, avals, outs, params):
  return [g.op('Concat', xs, axis=params['dimension'])]


def _split(g, xs, avals, outs, params):
  return g.op_multi('Split', [xs[0], g.ints(params['sizes'])], len(params['sizes']), axis=params['axis'])


def _reduce(op_type: str) -> Callable[..., list[str]]:
  def rule(g, xs, avals, outs, params):
    return [g.op(op_type, [xs[0], g.ints(params['axes'])], keepdims=0)]
  return rule


def _select_n(g, xs, avals, outs, params):
  if len(xs) != 3 or avals[0].dtype != np.bool_:
    raise UnsupportedPrimitiveError('select_n with an integer selector or more than two cases is not supported.')
  return [g.op('Where', [xs[0], xs[2], xs[1]])]   # select_n(p, a, b) = b where p else a


def _clamp(g, xs, avals, outs, params):
  lo, x, hi = xs
  return [g.op('Min', [g.op('Max', [x, lo]), hi])]


def _dot_general(g, xs, avals, outs, params):
  """Any dot_general as one batched MatMul: (B, M, K) @ (B, K, N), with transposes and reshapes around it."""
  (lc, rc), (lb, rb) = params['dimension_numbers']
  lhs, rhs = avals
  lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
  rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
  size = lambda shape, dims: int(np.prod([shape[d] for d in dims], dtype=np.int64))
  b, m, k, n = size(lhs.shape, lb), size(lhs.shape, lf), size(lhs.shape, lc), size(rhs.shape, rf)

  def arrange(x, aval, perm, shape):
    if list(perm) != list(range(aval.ndim)):
      x = g.op('Transpose', [x], perm=list(perm))
    return g.op('Reshape', [x, g.ints(shape)])

  batch = [b] if lb else []
  left = arrange(xs[0], lhs, [*lb, *lf, *lc], [*batch, m, k])
  right = arrange(xs[1], rhs, [*rb, *rc, *rf], [*batch, k, n])
  product = g.op('MatMul', [left, right])
  return [g.op('Reshape', [product, g.ints(outs[0].shape)])]


def _conv(g, xs, avals, outs, params):
  dn = params['dimension_numbers']
  if any(d != 1 for d in params['lhs_dilation']) or params['batch_group_count'] != 1:
    raise UnsupportedPrimitiveError('conv_general_dilated with lhs_dilation or batch_group_count is not supported.')
  lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  x = xs[0]
  if list(lhs_spec) != list(range(len(lhs_spec))):
    x = g.op('Transpose', [x], perm=list(lhs_spec))
  w = g.op('Transpose', [xs[1]], perm=list(rhs_spec)) if list(rhs_spec) != list(range(len(rhs_spec))) else xs[1]
  pads = [p[0] for p in params['padding']] + [p[1] for p in params['padding']]
  y = g.op('Conv', [x, w], strides=list(params['window_strides']), pads=pads,
           dilations=list(params['rhs_dilation']), group=params['feature_group_count'])
  perm = list(np.argsort(out_spec))
  if perm != list(range(len(perm))):
    y = g.op('Transpose', [y], perm=perm)
  return [y]


def _pad(g, xs, avals, outs, params):
  config = params['padding_config']
  if any(interior for _, _, interior in config) or any(lo < 0 or hi < 0 for lo, hi, _ in config):
    raise UnsupportedPrimitiveError('pad with interior or negative padding is not supported.')
  pads = [lo for lo, _, _ in config] + [hi for _, hi, _ in config]
  return [g.op('Pad', [xs[0], g.ints(pads), xs[1]], mode='constant')]


_RULES: dict[str, Callable[..., list[str]]] = {
    'add': _same('Add'), 'sub': _same('Sub'), 'mul': _same('Mul'), 'div': _same('Div'),
    'max': _same('Max'), 'min': _same('Min'), 'pow': _same('Pow'),
    'gt': _same('Greater'), 'lt': _same('Less'), 'ge': _same('GreaterOrEqual'),
    'le': _same('LessOrEqual'), 'eq': _same('Equal'), 'and': _same('And'), 'or': _same('Or'),
    'neg': _same('Neg'), 'exp': _same('Exp'), 'log': _same('Log'), 'tanh': _same('Tanh'),
    'logistic': _same('Sigmoid'), 'erf': _same('Erf'), 'sqrt': _same('Sqrt'), 'abs': _same('Abs'),
    'copy': _same('Identity'), 'copy_p': _same('Identity'), 'not': _same('Not'),
    'erfc': _erfc, 'rsqrt': _rsqrt, 'integer_pow': _integer_pow, 'convert_element_type': _convert,
    'reshape': _reshape, 'transpose': _transpose, 'squeeze': _squeeze, 'expand_dims': _expand_dims,
    'broadcast_in_dim': _broadcast_in_dim, 'slice': _slice, 'concatenate': _concatenate, 'split': _split,
    'reduce_sum': _reduce('ReduceSum'), 'reduce_max': _reduce('ReduceMax'), 'reduce_min': _reduce('ReduceMin'),
    'select_n': _select_n, 'clamp': _clamp, 'dot_general': _dot_general, 'conv_general_dilated': _conv,
    'pad': _pad,
}
_INLINED = ('jit', 'pjit', 'closed_call', 'core_call', 'custom_jvp_call', 'custom_vjp_call', 'remat', 'checkpoint')


# --------------------------------------------------------------------------------------------------------------
# Jaxpr walking.


def _sub_jaxpr(eqn) -> jax_core.ClosedJaxpr:
  for key in ('jaxpr', 'call_jaxpr', 'fun_jaxpr'):
    if key in eqn.params:
      sub = eqn.params[key]
      return sub if isinstance(sub, jax_core.ClosedJaxpr) else jax_core.ClosedJaxpr(sub, ())
  raise UnsupportedPrimitiveError(f'{eqn.primitive.name}: no inner jaxpr found.')


def _fold(eqn, values: list[np.ndarray]) -> list[np.ndarray] | None:
  """Evaluates `eqn` on constant inputs; None when the result would be a large constant better computed."""
  out_size = sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.outvars)
  in_size = sum(v.size for v in values)
  if out_size > _MAX_FOLDED_ELEMENTS and out_size > in_size:
    return None
  result = eqn.primitive.bind(*values, **eqn.params)
  result = result if eqn.primitive.multiple_results else [result]
  return [np.asarray(r) for r in result]


def _translate(g: _Graph, jaxpr: jax_core.Jaxpr, consts: Sequence[Any], args: Sequence[Any]) -> list[Any]:
  """Emits `jaxpr` applied to `args` (tensor names or `_Const`s); returns its outputs likewise."""
  env: dict[Any, Any] = {}

  def read(v):
    if isinstance(v, jax_core.Literal):
      return _Const(np.asarray(v.val, dtype=v.aval.dtype))
    return env[v]

  def name_of(x, aval):
    if isinstance(x, _Const):
      return g.const(x.value.astype(aval.dtype))
    return x

  for v, c in zip(jaxpr.constvars, consts):
    env[v] = _Const(c)
  for v, a in zip(jaxpr.invars, args):
    env[v] = a
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    ins = [read(v) for v in eqn.invars]
    if name in _INLINED:
      sub = _sub_jaxpr(eqn)
      outs = _translate(g, sub.jaxpr, sub.consts, ins)
    elif name == 'scan':
      outs = _scan(g, eqn, ins)
    else:
      outs = None
      if all(isinstance(x, _Const) for x in ins):
        folded = _fold(eqn, [x.value for x in ins])
        outs = None if folded is None else [_Const(r) for r in folded]
      if outs is None:
        if name not in _RULES:
          raise UnsupportedPrimitiveError(f'the ONNX export does not support the JAX primitive {name!r}.')
        avals = [v.aval for v in eqn.invars]
        outs = _RULES[name](g, [name_of(x, a) for x, a in zip(ins, avals)], avals,
                            [v.aval for v in eqn.outvars], eqn.params)
    for v, o in zip(eqn.outvars, outs):
      env[v] = o
  return [read(v) for v in jaxpr.outvars]


def _scan(g: _Graph, eqn, ins: list[Any]) -> list[Any]:
  """Unrolls a scan: `length` copies of its body, the per-step slices of xs in, the ys stacked out."""
  p = eqn.params
  if p['reverse']:
    raise UnsupportedPrimitiveError('reverse scan is not supported by the ONNX export.')
  body: jax_core.ClosedJaxpr = p['jaxpr']
  n_consts, n_carry, length = p['num_consts'], p['num_carry'], p['length']
  consts, carry, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
  x_avals = [v.aval for v in eqn.invars[n_consts + n_carry:]]
  ys_steps = []
  for t in range(length):
    x_t = []
    for x, aval in zip(xs, x_avals):
      if isinstance(x, _Const):
        x_t.append(_Const(x.value[t]))
      else:
        piece = g.op('Slice', [x, g.ints([t]), g.ints([t + 1]), g.ints([0])])
        x_t.append(g.op('Squeeze', [piece, g.ints([0])]))
    outs = _translate(g, body.jaxpr, body.consts, [*consts, *carry, *x_t])
    carry, ys = outs[:n_carry], outs[n_carry:]
    ys_steps.append(ys)
  y_avals = [v.aval for v in eqn.outvars[n_carry:]]
  stacked = []
  for k, aval in enumerate(y_avals):
    parts = []
    for t in range(length):
      y = ys_steps[t][k]
      y = g.const(y.value.astype(aval.dtype)) if isinstance(y, _Const) else y
      parts.append(g.op('Unsqueeze', [y, g.ints([0])]))
    stacked.append(g.op('Concat', parts, axis=0) if length > 1 else parts[0])
  return [*carry, *stacked]


def to_onnx(fn: Callable[..., Any], example_args: Sequence[np.ndarray], input_names: Sequence[str],
            output_names: Sequence[str], *, doc: str = '') -> onnx.ModelProto:
  """Traces `fn(*example_args) -> tuple of arrays` and returns the ONNX model (opset 18), checked.

  Shapes and dtypes are those of `example_args`. Raises UnsupportedPrimitiveError naming a primitive it cannot map.
  """
  closed = jax.make_jaxpr(fn)(*example_args)
  g = _Graph()
  outs = _translate(g, closed.jaxpr, closed.consts, list(input_names))
  out_avals = [v.aval for v in closed.jaxpr.outvars]
  if len(outs) != len(output_names):
    raise ValueError(f'the function returns {len(outs)} outputs, but {len(output_names)} names were given.')
  for out, aval, name in zip(outs, out_avals, output_names):
    source = g.const(out.value.astype(aval.dtype)) if isinstance(out, _Const) else out
    g.nodes.append(helper.make_node('Identity', [source], [name]))
  inputs = [helper.make_tensor_value_info(n, _onnx_dtype(a.dtype), a.shape)
            for n, a in zip(input_names, (np.asarray(x) for x in example_args))]
  outputs = [helper.make_tensor_value_info(n, _onnx_dtype(a.dtype), a.shape) for n, a in zip(output_names, out_avals)]
  graph = helper.make_graph(g.nodes, 'estrnn', inputs, outputs, g.initializers)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='estrnn_jax',
                            doc_string=doc)
  model.ir_version = 9
  onnx.checker.check_model(model)
  return model
