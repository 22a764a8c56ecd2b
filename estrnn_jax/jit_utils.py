"""XLA compile options that depend on the backend, shared by every jitted model computation.

`model.jit_apply`, the train step, the evaluator and the streaming deblurrer pass `cpu_compiler_options()` to
`jax.jit(..., compiler_options=...)`, so an option set here reaches all of them at once and nothing else in the
process (unlike `XLA_FLAGS`). A test checks that the options leave the model's outputs at golden parity.

No backend needs an option with jaxlib 0.10.2: its XLA CPU backend already hands each convolution and matmul to
YNNPACK (the default `xla_cpu_experimental_ynn_fusion_type` list holds INDIVIDUAL_CONVOLUTION and
INDIVIDUAL_DOT). The option this project set before, `LIBRARY_FUSION_TYPE_DOT`, *replaces* that list: matmuls get
fused, but convolutions go back to XLA's Eigen path, and B15C80 ran 1.1-1.8x slower (measured in
`benchmarks/CPU_XLA.md`, which also covers the oneDNN and bfloat16 options). So plain `jax.jit(model.apply)` is as
fast as `model.jit_apply(model)` on CPU.
"""

from typing import Any

import jax

# Backend name -> options for `jax.jit(..., compiler_options=...)`. Empty: none measured faster than XLA's defaults.
BACKEND_OPTIONS: dict[str, dict[str, Any]] = {}


def cpu_compiler_options(backend: str | None = None) -> dict[str, Any]:
  """The compile options for `backend` (default: JAX's default backend); {} where none are set."""
  return dict(BACKEND_OPTIONS.get(backend or jax.default_backend(), {}))
