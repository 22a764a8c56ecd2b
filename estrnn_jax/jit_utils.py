"""XLA compile options that depend on the backend.

On CPU, XLA's YNNPACK path for dot-like fusions (`xla_cpu_experimental_ynn_fusion_type`) runs NHWC convolutions
at oneDNN speed, the largest single speed-up measured for ESTRNN on CPU (see PERF_NOTES in the project docs).
It is experimental, so it is a CPU-only default that can be switched off with `ESTRNN_CPU_YNN=0`; the test suite
checks that it leaves the model's outputs unchanged. Other backends get no extra options.
"""

import os
from typing import Any

import jax

CPU_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_DOT'}


def cpu_compiler_options(backend: str | None = None) -> dict[str, Any]:
  """Options for `jax.jit(..., compiler_options=...)`: the YNNPACK flag on CPU unless ESTRNN_CPU_YNN=0, else {}."""
  backend = backend or jax.default_backend()
  if backend != 'cpu' or os.environ.get('ESTRNN_CPU_YNN', '1') == '0':
    return {}
  return dict(CPU_OPTIONS)
