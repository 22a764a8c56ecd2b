"""The benchmark's PyTorch baseline (`benchmarks/torch_estrnn.py`) is the official architecture: it loads an official
state dict key for key and reproduces the official model's golden outputs. Skipped without torch (CI has none)."""

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from benchmarks import torch_estrnn  # noqa: E402  pylint: disable=g-import-not-at-top


def test_torch_baseline_reproduces_the_official_outputs(testdata):
  data = np.load(testdata / 'estrnn_C4B2_n2T7H32W48.npz')
  state_dict = {k[len('param/'):]: torch.from_numpy(data[k]) for k in data.files if k.startswith('param/')}
  model = torch_estrnn.ESTRNN(n_features=4, n_blocks=2).eval()
  model.load_state_dict(state_dict, strict=True)   # every official key, nothing else
  with torch.inference_mode():
    out = model(torch.from_numpy(data['input'])).numpy()
  assert out.shape == (2, 3, 3, 32, 48)
  np.testing.assert_allclose(out, data['output'], atol=1e-6, rtol=0)
