"""Writes the real-torch fixtures of tests/test_torch_pickle.py (needs torch; the tests do not).

  python tests/testdata/make_torch_pickle_cases.py tests/testdata

Outputs (a few KB):
  torch_pickle_cases.pt         torch.save (zip format) of `cases()`: every storage dtype, views with
                                strides / offsets / shared storages, a Parameter, a torch.Size, an Adam state dict
  torch_pickle_cases_expected.npz   the same tensors as numpy arrays, key = path joined by '/'
                                (bfloat16 as its uint16 bit pattern, key suffix ':bf16bits')
  torch_pickle_legacy.pt        a tensor saved in the legacy (torch < 1.6) non-zip format
"""

import collections
import os
import sys

import numpy as np
import torch


def cases() -> dict:
  torch.manual_seed(0)
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  linear = torch.nn.Linear(3, 2)
  adam = torch.optim.Adam(linear.parameters(), lr=1e-3, betas=(0.9, 0.999))
  linear(torch.randn(5, 3)).square().sum().backward()
  adam.step()
  return {
      'dtypes': collections.OrderedDict(
          float32=torch.randn(2, 3),
          float16=torch.randn(3, 2).half(),
          bfloat16=torch.randn(5).bfloat16(),
          float64=torch.randn(2, 2, dtype=torch.float64),
          int64=torch.tensor([-(2**40), 0, 7]),
          int32=torch.tensor([[-3, 4]], dtype=torch.int32),
          int16=torch.tensor([-300, 300], dtype=torch.int16),
          int8=torch.tensor([-128, 127], dtype=torch.int8),
          uint8=torch.tensor([0, 255, 17], dtype=torch.uint8),
          bool=torch.tensor([True, False, True]),
          complex64=torch.tensor([1 + 2j, -3.5j], dtype=torch.complex64),
      ),
      # base and all views share one storage.
      'views': {
          'base': base,
          'transposed': base.t(),
          'offset_slice': base[1:, 2:5],
          'strided': base[::2, 1::3],
          'expanded': base[0, :1].expand(3, 4),
          'scalar': base[2, 3],
          'empty': base[:0, 1:],
      },
      'parameter': torch.nn.Parameter(torch.ones(2, 2) * 0.25),
      'size': torch.Size([2, 3]),
      'model': linear.state_dict(),
      'optimizer': adam.state_dict(),
      'untyped_storage': torch.tensor([1, 258], dtype=torch.int16).untyped_storage(),
      'misc': [1, 2.5, 'text', None, True, (3, 'x')],
  }


def flatten(obj, prefix=''):
  """Yields (key, numpy array) for every tensor in `obj`."""
  if isinstance(obj, torch.Tensor):
    tensor = obj.detach()
    if tensor.dtype == torch.bfloat16:
      yield prefix + ':bf16bits', tensor.contiguous().view(torch.int16).numpy().view(np.uint16)
    else:
      yield prefix, tensor.numpy()
  elif isinstance(obj, torch.UntypedStorage):
    yield prefix, np.frombuffer(bytes(obj), np.uint8)
  elif isinstance(obj, dict):
    for key, value in obj.items():
      yield from flatten(value, f'{prefix}/{key}' if prefix else str(key))
  elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
    for i, value in enumerate(obj):
      yield from flatten(value, f'{prefix}/{i}')


def main(out_dir: str) -> None:
  obj = cases()
  torch.save(obj, os.path.join(out_dir, 'torch_pickle_cases.pt'))
  np.savez(os.path.join(out_dir, 'torch_pickle_cases_expected.npz'), **dict(flatten(obj)))
  torch.save({'w': torch.arange(3.0)}, os.path.join(out_dir, 'torch_pickle_legacy.pt'),
             _use_new_zipfile_serialization=False)


if __name__ == '__main__':
  main(sys.argv[1])
