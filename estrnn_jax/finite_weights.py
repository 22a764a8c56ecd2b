"""Refusing non-finite weights: a diverged or corrupt checkpoint must not be evaluated, deblurred or exported.

A NaN or Inf weight makes every output NaN, which then quantises to black frames and a plausible-looking score.
`check` names the first tensors holding such values and how many, so the user knows the checkpoint is broken.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np


class NonFiniteWeightsError(ValueError):
  """Some weights are NaN or infinite."""


def _leaves(tree: Any, prefix: str = ''):
  if isinstance(tree, Mapping):
    for key, value in tree.items():
      yield from _leaves(value, f'{prefix}/{key}' if prefix else str(key))
  else:
    yield prefix, tree


def check(params: Any, source: str) -> None:
  """Raises NonFiniteWeightsError, naming `source` and the tensors, unless every weight in `params` is finite.

  Args:
    params: a nested mapping of arrays (a Flax `params` tree; device arrays are copied to the host).
    source: the checkpoint's path, named in the error.
  """
  bad = []
  for name, value in _leaves(params):
    if not getattr(value, 'is_fully_addressable', True):   # a replicated array on several hosts: check ours
      value = value.addressable_data(0)
    array = np.asarray(value)
    if array.dtype.kind in 'fc':
      count = array.size - int(np.count_nonzero(np.isfinite(array)))
      if count:
        bad.append(f'{name} ({count:,} of {array.size:,})')
  if bad:
    listed = ', '.join(bad[:4]) + (f' and {len(bad) - 4} more tensors' if len(bad) > 4 else '')
    raise NonFiniteWeightsError(
        f'{source}: the weights hold NaN or infinite values, in {listed}; the checkpoint is from a diverged run '
        'or corrupt, and every output would be NaN. Use an earlier or another checkpoint.')
