"""Non-finite weights are refused, naming the checkpoint and the tensors."""

import numpy as np
import pytest

from estrnn_jax import finite_weights


def test_finite_weights_pass():
  finite_weights.check({'a': {'kernel': np.ones((2, 2), np.float32)}, 'step': np.int32(3)}, 'ckpt')


def test_nan_and_inf_are_named_with_counts():
  params = {'cell': {'F_B0': {'kernel': np.array([[np.nan, 1.0], [np.inf, -np.inf]], np.float32),
                              'bias': np.zeros(2, np.float32)}},
            'out': {'bias': np.array([np.nan], np.float32)}}
  with pytest.raises(finite_weights.NonFiniteWeightsError,
                     match=r'^/runs/x: the weights hold NaN or infinite values, in cell/F_B0/kernel \(3 of 4\), '
                     r'out/bias \(1 of 1\); .*Use an earlier or another checkpoint'):
    finite_weights.check(params, '/runs/x')


def test_many_bad_tensors_are_summarised():
  params = {f'layer{i}': np.full(3, np.nan, np.float32) for i in range(7)}
  with pytest.raises(finite_weights.NonFiniteWeightsError, match=r'layer3 \(3 of 3\) and 3 more tensors;'):
    finite_weights.check(params, 'p')
