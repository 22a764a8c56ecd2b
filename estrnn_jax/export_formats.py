"""Writes an `export_functions.ExportFunction` in one deployment format and runs the result in its own runtime.

  format      file in the output directory   runtime that checks it
  onnx        estrnn.onnx                    onnxruntime (CPU)
  tflite      estrnn.tflite                  LiteRT interpreter (`ai_edge_litert`)
  savedmodel  saved_model/                   TensorFlow (`tf.saved_model.load`), signature 'serving_default'
  stablehlo   estrnn.stablehlo               `jax.export.deserialize(...).call`

Routes (chosen by measurement, see README "Deploying"): ONNX through our own jaxpr translator (`export_onnx`);
SavedModel through `jax2tf` (native serialisation: a StableHLO module inside an XlaCallModule op); TFLite by the
TFLite converter on that SavedModel, which legalises the StableHLO ops to TFLite builtins (CONV_2D,
BATCH_MATMUL, ...); StableHLO by `jax.export`. SavedModel and StableHLO take any H and W that are multiples of
4 (symbolic shapes, `ExportFunction.shape_specs`); the ONNX translator and the TFLite converter need them fixed.

Reduced precision (`dtype`): float16 / bfloat16 run the model's compute in that dtype (inputs, outputs and
states stay float32) for onnx (float16 only), savedmodel and stablehlo; for tflite, float16 is the converter's
float16 weight quantisation (weights stored as float16, computed in float32 where the CPU has no float16 path),
and int8 its dynamic-range quantisation (int8 weights, activations quantised on the fly).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from estrnn_jax import export_functions

FORMATS = ('onnx', 'tflite', 'savedmodel', 'stablehlo')
DTYPES = ('float32', 'float16', 'bfloat16', 'int8')
ARTIFACT_NAMES = {'onnx': 'estrnn.onnx', 'tflite': 'estrnn.tflite', 'savedmodel': 'saved_model',
                  'stablehlo': 'estrnn.stablehlo'}
# Formats whose artifact takes any H and W that are multiples of 4 (the others are fixed at the exported size).
DYNAMIC_SIZE = ('savedmodel', 'stablehlo')
RUNTIMES = {'onnx': 'onnxruntime', 'tflite': 'ai_edge_litert (LiteRT)', 'savedmodel': 'tensorflow',
            'stablehlo': 'jax.export'}
# Which --dtype each format takes (see the module docstring).
SUPPORTED_DTYPES = {'onnx': ('float32', 'float16'), 'tflite': ('float32', 'float16', 'int8'),
                    'savedmodel': ('float32', 'float16', 'bfloat16'),
                    'stablehlo': ('float32', 'float16', 'bfloat16')}
# Largest max-abs difference from the float32 JAX model that an export may have (outputs are in about
# [-0.5, 0.5]); reduced precision is measured on random inputs with random states, a harsh case.
TOLERANCES = {'float32': 1e-4, 'float16': 5e-2, 'bfloat16': 2e-1, 'int8': 2e-1}

Runner = Callable[..., Sequence[np.ndarray]]


class ExportCheckError(ValueError):
  """The written artifact's outputs differ from the JAX model's by more than the tolerance."""


def check_format(fmt: str, dtype: str) -> None:
  """Raises ValueError for an unknown format or dtype, or a dtype the format does not take."""
  if fmt not in FORMATS:
    raise ValueError(f'--format {fmt!r} is not one of {FORMATS}.')
  if dtype not in DTYPES:
    raise ValueError(f'--dtype {dtype!r} is not one of {DTYPES}.')
  if dtype not in SUPPORTED_DTYPES[fmt]:
    raise ValueError(f'--dtype {dtype} is not available for --format {fmt} (it takes {SUPPORTED_DTYPES[fmt]}).')


def compute_dtype(fmt: str, dtype: str) -> Any:
  """The JAX compute dtype to trace the model in: the reduced dtype where the graph itself carries it."""
  if fmt == 'tflite' or dtype in ('float32', 'int8'):
    return jnp.float32
  return jnp.dtype(dtype)


# --------------------------------------------------------------------------------------------------------------
# Writers: (function, directory) -> path of the artifact inside `directory`.


def write_onnx(fn: export_functions.ExportFunction, directory: str, dtype: str) -> str:
  from estrnn_jax import export_onnx  # pylint: disable=g-import-not-at-top  (onnx is only needed here)
  del dtype  # carried by the traced graph
  proto = export_onnx.to_onnx(fn.fn, fn.example_inputs(), [s.name for s in fn.inputs],
                              [s.name for s in fn.outputs], doc=f'ESTRNN {fn.mode} mode, exported by estrnn_jax')
  path = os.path.join(directory, ARTIFACT_NAMES['onnx'])
  with open(path, 'wb') as f:
    f.write(proto.SerializeToString())
  return path


def _tf_module(fn: export_functions.ExportFunction, dynamic_size: bool):
  """A tf.Module whose `serve` is `fn` through jax2tf, with named inputs and a dict of named outputs; with
  `dynamic_size`, H and W are unknown in the signature (any multiple of 4)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  polymorphic = fn.shape_specs() if dynamic_size else None
  converted = jax2tf.convert(fn.fn, polymorphic_shapes=polymorphic, native_serialization_platforms=('cpu',),
                             with_gradient=False)
  signature = []
  for spec, shape in zip(fn.inputs, polymorphic or [None] * len(fn.inputs)):
    dims = spec.shape if shape is None else [None if 'h' in d or 'w' in d else int(d) for d in shape.split(', ')]
    signature.append(tf.TensorSpec(dims, tf.float32, name=spec.name))

  def serve(*inputs):
    return {s.name: out for s, out in zip(fn.outputs, converted(*inputs))}

  module = tf.Module()
  module.serve = tf.function(serve, input_signature=signature, autograph=False)
  return module


def _save_tf(fn: export_functions.ExportFunction, path: str, dynamic_size: bool) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  module = _tf_module(fn, dynamic_size)
  tf.saved_model.save(module, path, signatures={'serving_default': module.serve.get_concrete_function()})


def write_savedmodel(fn: export_functions.ExportFunction, directory: str, dtype: str) -> str:
  del dtype  # carried by the traced graph
  path = os.path.join(directory, ARTIFACT_NAMES['savedmodel'])
  _save_tf(fn, path, dynamic_size=True)
  return path


def write_tflite(fn: export_functions.ExportFunction, directory: str, dtype: str) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as scratch:
    saved = os.path.join(scratch, 'saved_model')
    _save_tf(fn, saved, dynamic_size=False)   # the TFLite converter needs static shapes
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if dtype in ('float16', 'int8'):
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if dtype == 'float16':
      converter.target_spec.supported_types = [tf.float16]
    flatbuffer = converter.convert()
  path = os.path.join(directory, ARTIFACT_NAMES['tflite'])
  with open(path, 'wb') as f:
    f.write(flatbuffer)
  return path


def write_stablehlo(fn: export_functions.ExportFunction, directory: str, dtype: str) -> str:
  del dtype  # carried by the traced graph
  specs = jax.export.symbolic_args_specs([jax.ShapeDtypeStruct(s.shape, jnp.float32) for s in fn.inputs],
                                         fn.shape_specs())
  exported = jax.export.export(jax.jit(fn.fn), platforms=('cpu', 'cuda', 'tpu'))(*specs)
  path = os.path.join(directory, ARTIFACT_NAMES['stablehlo'])
  with open(path, 'wb') as f:
    f.write(exported.serialize())
  return path


WRITERS = {'onnx': write_onnx, 'tflite': write_tflite, 'savedmodel': write_savedmodel,
           'stablehlo': write_stablehlo}


# --------------------------------------------------------------------------------------------------------------
# Runners: load an artifact in its own runtime; `runner(*inputs) -> outputs` in `fn.inputs` / `fn.outputs` order.


def load_onnx(path: str, fn: export_functions.ExportFunction, threads: int = 0) -> Runner:
  """onnxruntime on the CPU, `threads` threads (0: its default), idle threads sleeping instead of spinning
  (measured: spinning made a B9C60 step 2x slower, 344 against 166 ms, on a 2-core machine shared with other jobs)."""
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  options = ort.SessionOptions()
  options.intra_op_num_threads = threads
  options.add_session_config_entry('session.intra_op.allow_spinning', '0')
  session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
  names = [s.name for s in fn.inputs]
  return lambda *inputs: session.run(None, dict(zip(names, inputs)))


def load_tflite(path: str, fn: export_functions.ExportFunction, threads: int | None = None) -> Runner:
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  interpreter = Interpreter(model_path=path, num_threads=threads)
  runner = interpreter.get_signature_runner('serving_default')
  names, out_names = [s.name for s in fn.inputs], [s.name for s in fn.outputs]

  def run(*inputs):
    result = runner(**dict(zip(names, inputs)))
    return [result[n] for n in out_names]

  return run


def load_savedmodel(path: str, fn: export_functions.ExportFunction) -> Runner:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  signature = tf.saved_model.load(path).signatures['serving_default']
  names, out_names = [s.name for s in fn.inputs], [s.name for s in fn.outputs]

  def run(*inputs):
    result = signature(**{n: tf.constant(x) for n, x in zip(names, inputs)})
    return [result[n].numpy() for n in out_names]

  return run


def load_stablehlo(path: str, fn: export_functions.ExportFunction) -> Runner:
  del fn
  with open(path, 'rb') as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  call = jax.jit(exported.call)
  return lambda *inputs: [np.asarray(x) for x in call(*inputs)]


LOADERS: dict[str, Callable[..., Runner]] = {'onnx': load_onnx, 'tflite': load_tflite,
                                             'savedmodel': load_savedmodel, 'stablehlo': load_stablehlo}


# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
  """The result of running an artifact next to the JAX model on one random input."""
  max_abs_error: float
  per_output: dict[str, float]
  tolerance: float

  @property
  def passed(self) -> bool:
    return bool(np.isfinite(self.max_abs_error)) and self.max_abs_error <= self.tolerance


def verify(runner: Runner, reference: export_functions.ExportFunction, dtype: str, seed: int = 0) -> Check:
  """Runs `runner` and the float32 JAX `reference` on the same random inputs; max |difference| per output."""
  inputs = reference.example_inputs(seed)
  want = jax.jit(reference.fn)(*inputs)
  got = runner(*inputs)
  per_output = {}
  for spec, g, w in zip(reference.outputs, got, want):
    g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
    if g.shape != w.shape:
      raise ExportCheckError(f'output {spec.name!r} has shape {g.shape}, expected {w.shape}.')
    error = float(np.max(np.abs(g - w))) if g.size else 0.0
    per_output[spec.name] = error if np.isfinite(error) else float('inf')   # NaN / Inf outputs fail the check
  return Check(max(per_output.values()), per_output, TOLERANCES[dtype])
