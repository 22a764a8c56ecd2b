"""The official ESTRNN architecture in PyTorch, as a speed baseline for `benchmarks.model_benchmark`.

Written from the facts in the project's ESTRNN reference notes (the official code is `zzh-tech/ESTRNN`), not
copied: NCHW, every conv with a bias and `k // 2` padding, exact-erf GELU, the cell run frame by frame, then
GSA + reconstructor once per output frame, term by term as the reference computes them (no folded GSA, real
transposed convs). State-dict keys are the official ones (without `module.model.`), so
`estrnn_jax.convert.convert_state_dict(..., rgb=False)` maps this model's weights onto the Flax model; the
benchmark uses that to check both compute the same outputs before timing them.

Needs torch (not a project requirement: `pip install torch` to run the comparison).
"""

import torch
from torch import nn


class RDB(nn.Module):
  """Three dense layers `z = cat[z, gelu(conv3x3(z))]`, a 1x1 conv back to `channels`, plus the input."""

  def __init__(self, channels: int, growth: int, num_layers: int = 3):
    super().__init__()
    self.dense_layers = nn.ModuleList()
    for j in range(num_layers):
      layer = nn.Module()
      layer.conv = nn.Conv2d(channels + j * growth, growth, 3, padding=1)
      self.dense_layers.append(layer)
    self.conv1x1 = nn.Conv2d(channels + num_layers * growth, channels, 1)

  def forward(self, x):
    z = x
    for layer in self.dense_layers:
      z = torch.cat([z, nn.functional.gelu(layer.conv(z))], dim=1)
    return self.conv1x1(z) + x


class DownStage(nn.Module):
  """F_B1 / F_B2: an RDB, then a 5x5 stride-2 conv (padding 2) doubling the channels."""

  def __init__(self, channels: int, growth: int):
    super().__init__()
    self.rdb = RDB(channels, growth)
    self.down_sampling = nn.Conv2d(channels, 2 * channels, 5, stride=2, padding=2)

  def forward(self, x):
    return self.down_sampling(self.rdb(x))


class RDBNet(nn.Module):
  """F_R: chained RDB(5C, 2C); all outputs concatenated, 1x1 conv, 3x3 conv."""

  def __init__(self, channels: int, growth: int, n_blocks: int):
    super().__init__()
    self.RDBs = nn.ModuleList(RDB(channels, growth) for _ in range(n_blocks))  # pylint: disable=invalid-name
    self.conv1x1 = nn.Conv2d(n_blocks * channels, channels, 1)
    self.conv3x3 = nn.Conv2d(channels, channels, 3, padding=1)

  def forward(self, x):
    outputs = []
    for rdb in self.RDBs:
      x = rdb(x)
      outputs.append(x)
    return self.conv3x3(self.conv1x1(torch.cat(outputs, dim=1)))


class Cell(nn.Module):
  """One recurrent step: (frame (N,3,H,W), s (N,C,H/4,W/4)) -> (h (N,5C,H/4,W/4), next s)."""

  def __init__(self, n_features: int, n_blocks: int):
    super().__init__()
    c = n_features
    self.F_B0 = nn.Conv2d(3, c, 5, padding=2)  # pylint: disable=invalid-name
    self.F_B1 = DownStage(c, c)  # pylint: disable=invalid-name
    self.F_B2 = DownStage(2 * c, 3 * c // 2)  # pylint: disable=invalid-name
    self.F_R = RDBNet(5 * c, 2 * c, n_blocks)  # pylint: disable=invalid-name
    self.F_h = nn.Sequential(nn.Conv2d(5 * c, c, 3, padding=1), RDB(c, c),  # pylint: disable=invalid-name
                             nn.Conv2d(c, c, 3, padding=1))

  def forward(self, frame, state):
    x = self.F_B2(self.F_B1(self.F_B0(frame)))
    h = self.F_R(torch.cat([x, state], dim=1))
    return h, self.F_h(h)


class GSA(nn.Module):
  """Global spatio-temporal attention over a window of F feature maps (each (N,5C,h,w)), centre = reference."""

  def __init__(self, n_features: int, num_frames: int):
    super().__init__()
    c5, c10, c20 = 5 * n_features, 10 * n_features, 20 * n_features
    self.F_f = nn.Sequential(nn.Linear(c10, c20), nn.GELU(), nn.Linear(c20, c10), nn.Sigmoid())  # pylint: disable=invalid-name
    self.F_p = nn.Sequential(nn.Conv2d(c10, c20, 1), nn.Conv2d(c20, c10, 1))  # pylint: disable=invalid-name
    self.condense = nn.Conv2d(c10, c5, 1)
    self.fusion = nn.Conv2d(num_frames * c5, num_frames * c5, 1)

  def forward(self, hs):
    centre = len(hs) // 2
    ref = hs[centre]
    condensed = []
    for i, h in enumerate(hs):
      if i == centre:
        continue
      cor = torch.cat([ref, h], dim=1)
      weights = self.F_f(cor.mean(dim=(2, 3)))[:, :, None, None]
      condensed.append(self.condense(weights * self.F_p(cor)))
    return self.fusion(torch.cat([*condensed, ref], dim=1))


class Reconstructor(nn.Module):
  """Two stride-2 transposed convs (k3, p1, output_padding 1) and a 5x5 conv to 3 channels."""

  def __init__(self, n_features: int, num_frames: int):
    super().__init__()
    c = n_features
    self.model = nn.Sequential(
        nn.ConvTranspose2d(5 * num_frames * c, 2 * c, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1),
        nn.Conv2d(c, 3, 5, padding=2))

  def forward(self, x):
    return self.model(x)


class ESTRNN(nn.Module):
  """frames (N, T, 3, H, W), H and W multiples of 4 -> (N, T - past - future, 3, H, W)."""

  def __init__(self, n_features: int = 16, n_blocks: int = 15, past_frames: int = 2, future_frames: int = 2):
    super().__init__()
    self.n_features, self.past, self.future = n_features, past_frames, future_frames
    num_frames = past_frames + future_frames + 1
    self.cell = Cell(n_features, n_blocks)
    self.fusion = GSA(n_features, num_frames)
    self.recons = Reconstructor(n_features, num_frames)

  def forward(self, frames):
    n, t, _, height, width = frames.shape
    state = frames.new_zeros(n, self.n_features, height // 4, width // 4)
    hs = []
    for i in range(t):
      h, state = self.cell(frames[:, i], state)
      hs.append(h)
    outputs = [self.recons(self.fusion(hs[i - self.past:i + self.future + 1]))
               for i in range(self.past, t - self.future)]
    return torch.stack(outputs, dim=1)
