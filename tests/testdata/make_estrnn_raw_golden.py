"""Writes the golden vectors of the official ESTRNN-RAW (needs torch and a checkout of zzh-tech/ESTRNN; the tests
need neither).

  python tests/testdata/make_estrnn_raw_golden.py /path/to/zzh-tech/ESTRNN tests/testdata

Runs the official `model/ESTRNN-RAW.py` (with `model/attention.py` and `model/arches.py`, imported from the
checkout, never copied here) on CPU in eval mode, n_features=4, n_blocks=2, past = future = 2, with PyTorch's
default random initialisation and random BatchNorm statistics and affine parameters (so that folding them into
the inference form is tested). Outputs (~0.5 MB):

  estrnn_raw_C4B2_n2T7H32W48.npz  `param/<key>`: every state-dict entry in torch layout (BatchNorm buffers
                                  included); `input` (2, 7, 1, 32, 48) in [-0.5, 0.5]; `output` (2, 3, 1, 32, 48);
                                  `hs` (2, 7, 20, 8, 12): the cell's h per frame; `s_last`: the final hidden state
  fake_ckpt_raw_C4B2.pth.tar      the same weights as the reference's trainer saves them (`module.model.` keys)
"""

import importlib.util
import os
import sys
import types

import numpy as np
import torch


def load_official(checkout: str):
  """The official ESTRNN-RAW module; `thop` (imported at its top, used only for profiling) is stubbed."""
  sys.modules.setdefault('thop', types.SimpleNamespace(profile=None))
  package = types.ModuleType('model')
  package.__path__ = [os.path.join(checkout, 'model')]
  sys.modules['model'] = package
  spec = importlib.util.spec_from_file_location('model.estrnn_raw', os.path.join(checkout, 'model', 'ESTRNN-RAW.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def main(checkout: str, out_dir: str) -> None:
  torch.manual_seed(20)
  official = load_official(checkout)
  para = types.SimpleNamespace(n_features=4, n_blocks=2, future_frames=2, past_frames=2, activation='gelu')
  model = official.Model(para)
  model.device = torch.device('cpu')   # the reference hard-codes CUDA for its zero hidden state
  bn = model.cell.cbam.SpatialGate.spatial.bn
  with torch.no_grad():
    bn.weight.uniform_(0.5, 1.5)
    bn.bias.uniform_(-0.3, 0.3)
    bn.running_mean.uniform_(-0.3, 0.3)
    bn.running_var.uniform_(0.5, 2.0)
    bn.num_batches_tracked.fill_(7)
  model.eval()

  hs = []
  model.cell.register_forward_hook(lambda module, args, result: hs.append(result))
  frames = torch.rand(2, 7, 1, 32, 48) - 0.5
  with torch.no_grad():
    output = model(frames)
  state = model.state_dict()
  arrays = {f'param/{k}': v.numpy() for k, v in state.items()}
  arrays.update(input=frames.numpy(), output=output.numpy(),
                hs=torch.stack([h for h, _ in hs], dim=1).numpy(), s_last=hs[-1][1].numpy())
  np.savez_compressed(os.path.join(out_dir, 'estrnn_raw_C4B2_n2T7H32W48.npz'), **arrays)
  torch.save({'epoch': 1, 'state_dict': {f'module.model.{k}': v for k, v in state.items()}},
             os.path.join(out_dir, 'fake_ckpt_raw_C4B2.pth.tar'))
  print(f'output {tuple(output.shape)}, {sum(p.numel() for p in model.parameters())} parameters, '
        f'{len(state)} state-dict entries')


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])
