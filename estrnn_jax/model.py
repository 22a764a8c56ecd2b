"""ESTRNN (Zhong et al., "Real-world Video Deblurring: A Benchmark Dataset and an Efficient Recurrent Neural
Network", IJCV 2022; ECCV 2020) in Flax linen.

Layout is channels-last throughout: frames are (N, T, H, W, 3) RGB in [-0.5, 0.5]. With `C = n_features`:

  RDBCell (paper Sec. 3.1, Fig. 3)   frame_t (N,H,W,3), s_{t-1} (N,H/4,W/4,C) -> h_t (N,H/4,W/4,5C), s_t
  GSA     (paper Sec. 3.2, Fig. 4)   h_{t-past} ... h_{t+future}            -> (N,H/4,W/4,5FC), F = past+future+1
  Reconstructor (paper Sec. 3.3)     (N,H/4,W/4,5FC)                       -> (N,H,W,3)

`ESTRNN(input='raw')` is the official ESTRNN-RAW: the same network on 16-bit Bayer frames (N, T, H, W, 1), its cell
front `RawRDBCell` (space-to-depth and strided-conv branches, CBAM) and a 1-channel reconstructor.

The recurrent cell runs as one `nn.scan` over time. GSA and the reconstructor run on every output frame at once
(frames folded into the batch). Outputs exist for input frames `past ... T-future-1`, as in the reference.
`residual=True` (not in the paper, off by default) adds each centre input frame to its output.

Parameters are exactly the reference's (same count, same initialisation distribution as PyTorch's defaults);
`estrnn_jax.convert` maps official checkpoints onto them. Three rewrites change how they are applied, never what
is computed (all checked against the official model's golden outputs):
  * the dense layers of an RDB convolve each concatenated part once (the block input's share of all three layers
    is one wider conv) instead of re-convolving the growing concatenation;
  * GSA is folded: everything after the sigmoid channel weights is linear, so per output frame the whole module
    is one (5FC x 5FC) matmul over the concatenated h window, with weights built from the pooled vectors;
  * the stride-2 transposed convs are sub-pixel convs (a 2x2 conv to 4x channels, then depth-to-space).
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from estrnn_jax import jit_utils

Array = jax.Array
Dtype = Any


def _torch_default_init(fan_in: int):
  """PyTorch's default init for conv/linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def gelu(x: Array) -> Array:
  """GELU in its exact erf form, as the reference (`nn.GELU()`); flax's default is the tanh approximation."""
  return jax.nn.gelu(x, approximate=False)


def conv2d(x: Array, kernel: Array, bias: Array | None = None, *, stride: int = 1,
           padding: Sequence[tuple[int, int]] | None = None) -> Array:
  """NHWC x HWIO convolution in `x.dtype`; default padding is `k // 2` on every side (the reference's)."""
  if padding is None:
    padding = [(kernel.shape[0] // 2,) * 2, (kernel.shape[1] // 2,) * 2]
  y = lax.conv_general_dilated(
      x, kernel.astype(x.dtype), window_strides=(stride, stride), padding=padding,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  if bias is not None:
    y = y + bias.astype(y.dtype)
  return y


class Conv(nn.Module):
  """A 2-D convolution with bias; kernel (k, k, in_features, features), padding k//2 (explicit, as the reference).

  `weights()` returns the raw (kernel, bias) for blocks that apply them in a rearranged form.
  """
  features: int
  kernel_size: int
  in_features: int
  stride: int = 1

  def setup(self):
    k = self.kernel_size
    init = _torch_default_init(k * k * self.in_features)
    self.kernel = self.param('kernel', init, (k, k, self.in_features, self.features))
    self.bias = self.param('bias', init, (self.features,))

  def weights(self) -> tuple[Array, Array]:
    return self.kernel, self.bias

  def __call__(self, x: Array) -> Array:
    return conv2d(x, self.kernel, self.bias, stride=self.stride)


class Dense(nn.Module):
  """A linear layer with PyTorch's default init; kernel (in_features, features)."""
  features: int
  in_features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    init = _torch_default_init(self.in_features)
    kernel = self.param('kernel', init, (self.in_features, self.features))
    bias = self.param('bias', init, (self.features,))
    return x @ kernel.astype(x.dtype) + bias.astype(x.dtype)


class SubPixelUpsample(nn.Module):
  """ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1): (N,H,W,Cin) -> (N,2H,2W,features).

  The kernel is stored in the transposed conv's own "scatter" form, (3, 3, in_features, features):
  input pixel (i, j) adds `x[i, j] @ kernel[a, b]` to output pixel (2i + a - 1, 2j + b - 1). It is applied as a
  2x2 conv to 4*features channels (one per output sub-pixel) followed by depth-to-space, which is the same sum.
  """
  features: int
  in_features: int

  def setup(self):
    # PyTorch computes a transposed conv's fan-in from weight.size(1) = out channels.
    init = _torch_default_init(9 * self.features)
    self.kernel = self.param('kernel', init, (3, 3, self.in_features, self.features))
    self.bias = self.param('bias', init, (self.features,))

  def __call__(self, x: Array) -> Array:
    n, h, w, _ = x.shape
    # Output row 2m + a reads input rows m + d (d = 0, 1) through kernel row a - 2d + 1 (when it is in 0..2).
    zeros = jnp.zeros_like(self.kernel[0, 0])
    tap = lambda a, d: a - 2 * d + 1
    sub_kernels = [[[[self.kernel[tap(a, di), tap(b, dj)]
                      if 0 <= tap(a, di) <= 2 and 0 <= tap(b, dj) <= 2 else zeros
                      for b in range(2)] for a in range(2)] for dj in range(2)] for di in range(2)]
    # (di, dj, a, b, Cin, Cout) -> (di, dj, Cin, a, b, Cout) -> (2, 2, Cin, 4*Cout)
    kernel = jnp.array(sub_kernels).transpose(0, 1, 4, 2, 3, 5).reshape(2, 2, self.in_features, 4 * self.features)
    y = conv2d(x, kernel, padding=[(0, 1), (0, 1)])
    y = y.reshape(n, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, self.features)
    return y + self.bias.astype(y.dtype)


def _dense_features(dense: Sequence[tuple[Array, Array]], x: Array) -> Array:
  """An RDB's three dense layers: `concat[x, y_0, y_1, y_2]`, with `y_j = gelu(conv3x3(concat[x, y_0 .. y_{j-1}]))`.

  `dense[j]` is layer j's (kernel, bias), its kernel reading concat[x, y_0 .. y_{j-1}]. Applied part by part: `x`
  is convolved once for all layers (one conv with 3*growth outputs) and each new `y_j` once for all later layers.
  """
  n_layers, c = len(dense), x.shape[-1]
  g = dense[0][0].shape[-1]
  # pre[j]: the running pre-activation of dense layer j, accumulated one input part at a time.
  x_part = jnp.concatenate([k[:, :, :c] for k, _ in dense], axis=-1)
  x_bias = jnp.concatenate([b for _, b in dense])
  pre = jnp.split(conv2d(x, x_part, x_bias), n_layers, axis=-1)
  ys = []
  for j in range(n_layers):
    y = gelu(pre[j])
    ys.append(y)
    if j + 1 < n_layers:
      part = slice(c + j * g, c + (j + 1) * g)
      y_part = jnp.concatenate([dense[m][0][:, :, part] for m in range(j + 1, n_layers)], axis=-1)
      for m, contribution in zip(range(j + 1, n_layers), jnp.split(conv2d(y, y_part), n_layers - j - 1, -1)):
        pre[m] = pre[m] + contribution
  return jnp.concatenate([x, *ys], axis=-1)


class RDB(nn.Module):
  """Residual dense block (paper Sec. 3.1): three dense layers `z = concat[z, gelu(conv3x3(z))]`, a 1x1 fusion
  back to `in_features` channels, plus the input. (N,H,W,in_features) -> same shape.

  `weights()` gives its tensors as a pytree for `rdb_forward`, the same block as a pure function (run by
  `BlockChain` over stacked weights).
  """
  in_features: int
  growth: int
  num_layers: int = 3

  def setup(self):
    c, g = self.in_features, self.growth
    self.dense = [Conv(g, 3, c + j * g) for j in range(self.num_layers)]   # parameters dense_0 .. dense_2
    self.fuse = Conv(c, 1, c + self.num_layers * g)

  def weights(self) -> dict[str, Any]:
    return {'dense': [d.weights() for d in self.dense], 'fuse': self.fuse.weights()}

  def __call__(self, x: Array) -> Array:
    return self.fuse(_dense_features([d.weights() for d in self.dense], x)) + x


def rdb_forward(weights: Mapping[str, Any], x: Array) -> Array:
  """`RDB.__call__` as a pure function of `RDB.weights()`."""
  return conv2d(_dense_features(weights['dense'], x), *weights['fuse']) + x


class ResBlock(nn.Module):
  """Residual block without normalisation (Nah et al. 2017; the paper's "w/o RDB cell" ablation, Sec. 4.4):
  `x + conv3x3(relu(conv3x3(x)))`. (N,H,W,features) -> same shape. `weights()` / `resblock_forward` as `RDB`'s."""
  features: int

  def setup(self):
    self.conv_0 = Conv(self.features, 3, self.features)
    self.conv_1 = Conv(self.features, 3, self.features)

  def weights(self) -> dict[str, Any]:
    return {'conv_0': self.conv_0.weights(), 'conv_1': self.conv_1.weights()}

  def __call__(self, x: Array) -> Array:
    return self.conv_1(jax.nn.relu(self.conv_0(x))) + x


def resblock_forward(weights: Mapping[str, Any], x: Array) -> Array:
  """`ResBlock.__call__` as a pure function of `ResBlock.weights()`."""
  return conv2d(jax.nn.relu(conv2d(x, *weights['conv_0'])), *weights['conv_1']) + x


def run_chain(blocks: Sequence[nn.Module], forward: Callable[[Any, Array], Array], x: Array, *, unroll: bool
              ) -> tuple[Array, Array]:
  """Runs identical blocks one after another: x -> blocks[0] -> ... -> blocks[-1].

  Returns the last output and every block's output stacked on a new leading axis, (len(blocks), *x.shape).
  `unroll=False` runs one `lax.scan` over the blocks' stacked weights, with `forward(weights, x)` the block as a
  pure function: the compiler sees one block instead of `len(blocks)` (a B15C80 train step compiles for TPU
  several times faster, with a fraction of the code). `unroll=True` calls each block in straight-line code
  (XLA's CPU backend runs convolution gradients inside loops much slower). Same parameters, same values.
  """
  if unroll:
    outputs = []
    for block in blocks:
      x = block(x)
      outputs.append(x)
    return x, jnp.stack(outputs)
  stacked = jax.tree.map(lambda *w: jnp.stack(w), *[block.weights() for block in blocks])

  def body(carry: Array, weights: Any) -> tuple[Array, Array]:
    y = forward(weights, carry)
    return y, y

  return lax.scan(body, x, stacked)


class DownsampleStage(nn.Module):
  """F_B1 / F_B2 of the cell: RDB(in_features, growth) (or a ResBlock when `resblock`) then a 5x5 stride-2 conv to
  2*in_features. Halves H, W."""
  in_features: int
  growth: int = 0  # RDB only
  resblock: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.resblock:
      x = ResBlock(self.in_features, name='resblock')(x)
    else:
      x = RDB(self.in_features, self.growth, name='rdb')(x)
    return Conv(2 * self.in_features, 5, self.in_features, stride=2, name='down')(x)


class RDBNet(nn.Module):
  """F_R of the cell: `n_blocks` chained RDB(5C, 2C); all their outputs concatenated, 1x1 conv to 5C, 3x3 conv.

  (N,h,w,5C) -> (N,h,w,5C). No activation and no global residual, as the reference. The blocks run as one scan
  unless `unroll` (`run_chain`).
  """
  features: int
  growth: int
  n_blocks: int
  unroll: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    blocks = [RDB(self.features, self.growth, name=f'rdb_{i}') for i in range(self.n_blocks)]
    _, outputs = run_chain(blocks, rdb_forward, x, unroll=self.unroll)          # (B, N, h, w, 5C)
    concat = jnp.moveaxis(outputs, 0, -2).reshape(*x.shape[:-1], self.n_blocks * self.features)  # in block order
    x = Conv(self.features, 1, self.n_blocks * self.features, name='fuse')(concat)
    return Conv(self.features, 3, self.features, name='conv')(x)


class RDBCell(nn.Module):
  """The recurrent RDB cell (paper Sec. 3.1, Fig. 3): one time step.

  Args of `__call__`:
    state: s_{t-1}, (N, H/4, W/4, C).
    frame: x_t, (N, H, W, 3), H and W multiples of 4.
  Returns:
    (s_t, h_t): the next hidden state (N, H/4, W/4, C) and the frame's features (N, H/4, W/4, 5C).

  `unroll`: F_R's blocks in straight-line code rather than one scan (`run_chain`).
  """
  n_features: int
  n_blocks: int
  unroll: bool = False

  @nn.compact
  def __call__(self, state: Array, frame: Array) -> tuple[Array, Array]:
    c = self.n_features
    x = Conv(c, 5, 3, name='F_B0')(frame)                          # H
    x = DownsampleStage(c, c, name='F_B1')(x)                        # H/2, 2C
    x = DownsampleStage(2 * c, 3 * c // 2, name='F_B2')(x)           # H/4, 4C
    return self._recurrent_part(x, state)

  def _recurrent_part(self, x: Array, state: Array) -> tuple[Array, Array]:
    """F_R and F_h on the frame's features x (N, H/4, W/4, 4C) and s_{t-1}: returns (s_t, h_t). Called from a
    compact `__call__` (its submodules are that method's)."""
    c = self.n_features
    h = RDBNet(5 * c, 2 * c, self.n_blocks, self.unroll, name='F_R')(jnp.concatenate([x, state], axis=-1))
    s = Conv(c, 3, 5 * c, name='F_h_in')(h)                          # F_h: conv3x3, RDB, conv3x3
    s = RDB(c, c, name='F_h_rdb')(s)
    s = Conv(c, 3, c, name='F_h_out')(s)
    return s, h


def space_to_depth(x: Array, block: int = 2) -> Array:
  """(N, H, W, C) -> (N, H/block, W/block, block*block*C), channel `(dy * block + dx) * C + c` for the pixel at
  offset (dy, dx) of each block (the official `SpaceToDepth`'s order). H and W multiples of `block`."""
  n, height, width, channels = x.shape
  x = x.reshape(n, height // block, block, width // block, block, channels).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, height // block, width // block, block * block * channels)


# BatchNorm's epsilon in the official CBAM (PyTorch's default).
BATCH_NORM_EPS = 1e-5


class CBAM(nn.Module):
  """Convolutional block attention (Woo et al., ECCV 2018) as the official ESTRNN-RAW uses it (`model/attention.py`
  of zzh-tech/ESTRNN, reduction 4, average and max pooling). (N, H, W, features) -> same.

    channel gate: x * sigmoid(mlp(avg_{x,y} x) + mlp(max_{x,y} x)), mlp = Linear(C -> C//r), ReLU, Linear(-> C)
    spatial gate: x * sigmoid(BN(conv7x7([max_c x, mean_c x])))   (2 -> 1 channel, no conv bias)

  The spatial gate's BatchNorm (one channel) is kept in its inference form, `y * scale + shift` with
  scale = gamma / sqrt(var + eps) and shift = beta - mean * scale: the same two parameters as the official BN's
  affine ones (so the same parameter count), its official initialisation (scale = 1/sqrt(1 + eps), shift = 0),
  and exactly the official model in eval mode (converted checkpoints fold their running statistics in). Training
  learns scale and shift directly; the official training normalised this map with each batch's statistics.
  The project's models hold parameters only (no mutable statistics), and a one-frame stream has no batch.
  """
  features: int
  reduction: int = 4

  @nn.compact
  def __call__(self, x: Array) -> Array:
    hidden = self.features // self.reduction
    mlp_in = Dense(hidden, self.features, name='mlp_in')
    mlp_out = Dense(self.features, hidden, name='mlp_out')
    mlp = lambda v: mlp_out(jax.nn.relu(mlp_in(v)))
    x = x * jax.nn.sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))[:, None, None, :]
    pooled = jnp.concatenate([x.max(axis=-1, keepdims=True), x.mean(axis=-1, keepdims=True)], axis=-1)
    kernel = self.param('spatial_kernel', _torch_default_init(7 * 7 * 2), (7, 7, 2, 1))
    scale = self.param('spatial_scale', nn.initializers.constant(1.0 / math.sqrt(1.0 + BATCH_NORM_EPS)), (1,))
    shift = self.param('spatial_shift', nn.initializers.zeros, (1,))
    logits = conv2d(pooled, kernel) * scale.astype(x.dtype) + shift.astype(x.dtype)
    return x * jax.nn.sigmoid(logits)


class RawRDBCell(RDBCell):
  """The RDB cell of the official ESTRNN-RAW (`model/ESTRNN-RAW.py`): one time step on a 1-channel Bayer frame.

  Front (replacing the RGB cell's F_B0 .. F_B2), with C = n_features and GELU activations:
    front_down: conv5x5 stride 2, 1 -> 4, GELU                   (H/2)
    front_unshuffle: space-to-depth by 2, conv1x1 4 -> 4, GELU    (H/2); the two concatenated: 8 channels
    F_B0: conv5x5 8 -> 2C, GELU; cbam: CBAM(2C, reduction 4)
    F_B1_0, F_B1_1: RDB(2C, growth C), RDB(2C, growth floor(3C/2))
    F_B2: RDB(2C, growth 2C) then conv5x5 stride 2 -> 4C          (H/4)
  then F_R and F_h as the RGB cell. frame (N, H, W, 1), H and W multiples of 4; same state and outputs as
  `RDBCell`.
  """

  @nn.compact
  def __call__(self, state: Array, frame: Array) -> tuple[Array, Array]:
    c = self.n_features
    down = gelu(Conv(4, 5, 1, stride=2, name='front_down')(frame))
    unshuffled = gelu(Conv(4, 1, 4, name='front_unshuffle')(space_to_depth(frame, 2)))
    x = gelu(Conv(2 * c, 5, 8, name='F_B0')(jnp.concatenate([down, unshuffled], axis=-1)))   # H/2, 2C
    x = CBAM(2 * c, 4, name='cbam')(x)
    x = RDB(2 * c, c, name='F_B1_0')(x)
    x = RDB(2 * c, int(c * 3 / 2), name='F_B1_1')(x)
    x = DownsampleStage(2 * c, 2 * c, name='F_B2')(x)                # H/4, 4C
    return self._recurrent_part(x, state)


class ResBlockCell(RDBCell):
  """The paper's "w/o RDB cell" ablation (Sec. 4.4, Table 4): the RDB cell with every RDB replaced by a ResBlock
  and F_R a plain chain of `n_blocks` ResBlocks (5C), as Nah et al. 2017 stack them (no concatenation of the
  block outputs, no fusion convs). Same interface as `RDBCell`.

  This is the structure whose thop cost meets all three Table 4 rows without the RDB cell (163.48, 168.56,
  162.69 GMACs) with integer widths (C = 110, 100, 85; 0.14-0.22% under the paper's bias-counting figures, like
  every other row); see configs/ablation.py. Fields as `RDBCell`'s.
  """

  @nn.compact
  def __call__(self, state: Array, frame: Array) -> tuple[Array, Array]:
    c = self.n_features
    x = Conv(c, 5, 3, name='F_B0')(frame)                          # H
    x = DownsampleStage(c, c, resblock=True, name='F_B1')(x)         # H/2, 2C
    x = DownsampleStage(2 * c, resblock=True, name='F_B2')(x)        # H/4, 4C
    blocks = [ResBlock(5 * c, name=f'F_R_{i}') for i in range(self.n_blocks)]  # F_R
    h, _ = run_chain(blocks, resblock_forward, jnp.concatenate([x, state], axis=-1), unroll=self.unroll)
    s = Conv(c, 3, 5 * c, name='F_h_in')(h)                          # F_h: conv3x3, ResBlock, conv3x3
    s = ResBlock(c, name='F_h_resblock')(s)
    s = Conv(c, 3, c, name='F_h_out')(s)
    return s, h


class GSA(nn.Module):
  """Global spatio-temporal attention fusion (paper Sec. 3.2, Fig. 4).

  For output frame t with reference `ref = h_t` and each neighbour `h_i` (i != t, temporal order):
    cor_i = concat[ref, h_i]                                           (10C)
    w_i   = sigmoid(mlp_out(gelu(mlp_in(mean_{x,y} cor_i))))            (10C channel weights, "F_f")
    c_i   = condense(w_i * proj_out(proj_in(cor_i)))                   (5C; proj_* are 1x1 convs, "F_p")
  output  = fuse(concat[c_(first) ... c_(last), ref])                  (5FC; ref last)

  `__call__` maps hs (N, T, h, w, 5C) to (N, T - past - future, h, w, 5FC), one output per full window.
  `folded=True` computes the same thing as one (5FC x 5FC) matmul per output frame (see module docstring).
  """
  n_features: int
  past_frames: int
  future_frames: int
  folded: bool = True

  @property
  def num_frames(self) -> int:
    return self.past_frames + self.future_frames + 1

  def setup(self):
    c5, c10, c20 = 5 * self.n_features, 10 * self.n_features, 20 * self.n_features
    self.mlp_in = Dense(c20, c10)
    self.mlp_out = Dense(c10, c20)
    self.proj_in = Conv(c20, 1, c10)
    self.proj_out = Conv(c10, 1, c20)
    self.condense = Conv(c5, 1, c10)
    self.fuse = Conv(self.num_frames * c5, 1, self.num_frames * c5)

  def _neighbours(self) -> list[int]:
    return [k for k in range(self.num_frames) if k != self.past_frames]

  def __call__(self, hs: Array) -> Array:
    n_frames = hs.shape[1] - self.num_frames + 1
    if n_frames < 1:
      raise ValueError(f'GSA needs at least {self.num_frames} frames of features, got {hs.shape[1]}.')
    # window[k]: the k-th frame of every output frame's window, (N, T', h, w, 5C).
    window = [hs[:, k:k + n_frames] for k in range(self.num_frames)]
    return self._folded(window) if self.folded else self._direct(window)

  def _channel_weights(self, pooled_ref: Array, pooled_nb: Array) -> Array:
    pooled = jnp.concatenate([pooled_ref, pooled_nb], axis=-1)
    return jax.nn.sigmoid(self.mlp_out(gelu(self.mlp_in(pooled))))

  def _direct(self, window: list[Array]) -> Array:
    """The reference's computation, term by term (used to check the folded form)."""
    ref = window[self.past_frames]
    condensed = []
    for k in self._neighbours():
      cor = jnp.concatenate([ref, window[k]], axis=-1)
      w = self._channel_weights(ref.mean(axis=(2, 3)), window[k].mean(axis=(2, 3)))
      proj = conv2d_batched(self.proj_out, conv2d_batched(self.proj_in, cor))
      condensed.append(conv2d_batched(self.condense, w[:, :, None, None, :] * proj))
    return conv2d_batched(self.fuse, jnp.concatenate([*condensed, ref], axis=-1))

  def _folded(self, window: list[Array]) -> Array:
    """fused = concat(window) @ W + b, with W (N, T', 5FC, 5FC) and b (N, T', 5FC) built per output frame."""
    dtype = window[0].dtype
    c5 = 5 * self.n_features
    p_in, p_in_b = (a.astype(dtype) for a in self.proj_in.weights())
    p_out, p_out_b = (a.astype(dtype) for a in self.proj_out.weights())
    cond, cond_b = (a.astype(dtype) for a in self.condense.weights())
    fuse, fuse_b = (a.astype(dtype) for a in self.fuse.weights())
    proj = p_in[0, 0] @ p_out[0, 0]                       # (10C, 10C): proj_out(proj_in(.)) = . @ proj + proj_b
    proj_b = p_in_b @ p_out[0, 0] + p_out_b
    cond, fuse = cond[0, 0], fuse[0, 0]                   # (10C, 5C), (5FC, 5FC)
    fuse_rows = jnp.split(fuse, self.num_frames, axis=0)  # slot s of the fusion concat -> (5C, 5FC)

    ref = self.past_frames
    pooled = [x.mean(axis=(2, 3)) for x in window]        # (N, T', 5C) each
    blocks = [None] * self.num_frames                     # weight applied to window[k], (N, T', 5C, 5FC)
    blocks[ref] = jnp.broadcast_to(fuse_rows[-1], pooled[ref].shape[:2] + fuse_rows[-1].shape)
    bias = fuse_b
    for slot, k in enumerate(self._neighbours()):
      w = self._channel_weights(pooled[ref], pooled[k])  # (N, T', 10C)
      # c_k = cor_k @ (proj * w) @ cond + (proj_b * w) @ cond + cond_b; then c_k @ fuse_rows[slot].
      mixed = jnp.einsum('ij,ntj,jk->ntik', proj, w, cond @ fuse_rows[slot])  # (N, T', 10C, 5FC)
      blocks[ref] = blocks[ref] + mixed[:, :, :c5]
      blocks[k] = mixed[:, :, c5:]
      bias = bias + jnp.einsum('j,ntj,jk->ntk', proj_b, w, cond @ fuse_rows[slot]) + cond_b @ fuse_rows[slot]
    weight = jnp.concatenate(blocks, axis=2)              # (N, T', 5FC, 5FC)
    stacked = jnp.concatenate(window, axis=-1)            # (N, T', h, w, 5FC)
    return jnp.einsum('nthwi,ntio->nthwo', stacked, weight) + bias[:, :, None, None, :]


def conv2d_batched(conv: Conv, x: Array) -> Array:
  """Applies `conv` to (N, T, H, W, C) by folding T into the batch."""
  n, t = x.shape[:2]
  y = conv(x.reshape(n * t, *x.shape[2:]))
  return y.reshape(n, t, *y.shape[1:])


class ConcatFusion(nn.Module):
  """The paper's "w/o GSA" ablation (Sec. 4.4, Table 4): the window's h features concatenated in channels, in
  temporal order. hs (N, T, h, w, 5C) -> (N, T - past - future, h, w, 5FC). No parameters."""
  past_frames: int
  future_frames: int

  def __call__(self, hs: Array) -> Array:
    num_frames = self.past_frames + self.future_frames + 1
    n_frames = hs.shape[1] - num_frames + 1
    if n_frames < 1:
      raise ValueError(f'Fusion needs at least {num_frames} frames of features, got {hs.shape[1]}.')
    return jnp.concatenate([hs[:, k:k + n_frames] for k in range(num_frames)], axis=-1)


class NoFusion(nn.Module):
  """The paper's "w/o fusion" ablation (Sec. 4.4, Table 4): each frame is reconstructed from its own h features
  only. hs (N, T, h, w, 5C) -> the same. No parameters."""

  def __call__(self, hs: Array) -> Array:
    return hs


class Reconstructor(nn.Module):
  """Reconstruction module (paper Sec. 3.3): two stride-2 transposed convs and a 5x5 conv.

  (N, H/4, W/4, 5FC) -> (N, H, W, out_features). No activation and no skip from the input: it predicts the sharp frame
  (`ESTRNN.residual` adds the skip outside this module).
  """
  n_features: int
  num_frames: int
  out_features: int = 3   # 1 for ESTRNN-RAW's Bayer frames

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = self.n_features
    x = SubPixelUpsample(2 * c, 5 * self.num_frames * c, name='up_0')(x)
    x = SubPixelUpsample(c, 2 * c, name='up_1')(x)
    return Conv(self.out_features, 5, c, name='out')(x)


def pad_to_multiple(frames: Array, multiple: int = 4) -> tuple[Array, tuple[int, int]]:
  """Edge-pads the spatial axes (-3, -2) at bottom/right to multiples of `multiple`.

  Returns the padded array and the original (H, W); crop back with `[..., :H, :W, :]`. No-op when aligned.
  """
  height, width = frames.shape[-3], frames.shape[-2]
  pad_h, pad_w = -height % multiple, -width % multiple
  if pad_h or pad_w:
    pads = [(0, 0)] * (frames.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
    frames = jnp.pad(frames, pads, mode='edge')
  return frames, (height, width)


class ESTRNN(nn.Module):
  """Efficient spatio-temporal RNN for video deblurring.

  `ESTRNN()(frames)`: frames (N, T, H, W, 3) RGB in [-0.5, 0.5], T >= past_frames + future_frames + 1, any H and W
  -> (N, T - past_frames - future_frames, H, W, 3) float32: the deblurred frames `past_frames ... T-future_frames-1`,
  the hidden state starting at zeros, exactly as the reference.

  Attributes:
    n_features: C. The paper's channel count is 5C: B15C80 is (16, 15), B9C60 is (12, 9).
    n_blocks: B, the number of RDBs in the cell's F_R.
    past_frames, future_frames: the GSA window around each output frame.
    dtype: compute dtype (e.g. jnp.bfloat16); parameters stay float32 and outputs are float32.
    remat: rematerialise each cell step in the backward pass (less memory for long clips, ~30% more compute).
    unroll: straight-line code instead of loops: the cell once per frame instead of one `nn.scan` over time, and
      F_R's blocks one by one instead of one scan over their stacked weights (same parameters, same outputs).
      XLA's CPU backend runs convolution gradients inside a loop body many times slower than outside one, so
      CPU training unrolls its short windows (T <= ~10); accelerators keep the loops, which the compiler sees
      once (benchmarks/CPU_XLA.md, README "Will it fit?").
    fold_gsa: use the folded GSA (same outputs, 4-8x less compute); False runs the reference's form.
    residual: add each centre input frame to its output, so the network predicts a correction rather than the
      sharp frame. Not in the paper (its model and the official weights have no such skip, so False is the
      default and what every paper config uses); it adds no parameters and lets a small model beat the blurry
      input after minutes of training from scratch instead of hours (`configs/default.py`).
    cell: 'rdb' (the paper's RDB cell) or 'resblock' (Table 4's "w/o RDB cell": `ResBlockCell`).
    fusion: 'gsa' (the paper's GSA), 'concat' (Table 4's "w/o GSA": the window's h features concatenated) or
      'none' (Table 4's "w/o fusion": each frame reconstructed from its own features; needs past_frames =
      future_frames = 0). The defaults are the paper's model, the only variant of the official weights.
    input: 'rgb' (frames (N, T, H, W, 3)) or 'raw': the official ESTRNN-RAW (`RawRDBCell`, a 1-channel
      reconstructor) on 16-bit Bayer frames (N, T, H, W, 1), `x / 65535 - 0.5`, deblurred in RAW space.
  """
  n_features: int = 16
  n_blocks: int = 15
  past_frames: int = 2
  future_frames: int = 2
  dtype: Dtype = jnp.float32
  remat: bool = False
  unroll: bool = False
  fold_gsa: bool = True
  residual: bool = False
  cell: str = 'rdb'
  fusion: str = 'gsa'
  input: str = 'rgb'

  @property
  def num_frames(self) -> int:
    return self.past_frames + self.future_frames + 1

  def to_config(self) -> dict[str, Any]:
    """The fields as JSON-able values, dtype by name: {'n_features': 16, ..., 'dtype': 'float32', ...}."""
    fields = {name: getattr(self, name) for name in _config_fields()}
    fields['dtype'] = jnp.dtype(fields['dtype']).name
    return fields

  @classmethod
  def from_config(cls, fields: Mapping[str, Any], *, source: str = 'model config') -> 'ESTRNN':
    """The model `to_config` described (missing fields take the defaults). `source` names it in errors.

    Raises ValueError for an unknown field or a dtype name that is not a dtype.
    """
    known = _config_fields()
    unknown = sorted(set(fields) - set(known))
    if unknown:
      raise ValueError(f'{source}: unknown ESTRNN field(s) {unknown}; known: {list(known)}.')
    kwargs = dict(fields)
    if 'dtype' in kwargs:
      try:
        kwargs['dtype'] = jnp.dtype(kwargs['dtype'])
      except TypeError:
        raise ValueError(f'{source}: dtype {fields["dtype"]!r} is not a dtype name.') from None
    return cls(**kwargs)
  @property
  def channels(self) -> int:
    """Channels of the frames in and out: 3 (RGB) or 1 ('raw' Bayer frames)."""
    return 1 if self.input == 'raw' else 3

  @property
  def reconstructed_frames(self) -> int:
    """Frames whose h features the reconstructor reads (F; 1 without fusion)."""
    return 1 if self.fusion == 'none' else self.num_frames

  def setup(self):
    check_variant(self)
    # Submodule attributes differ from the `cell` / `fusion` fields; their names keep the parameter tree's keys.
    if self.input == 'raw':
      self.cell_module = RawRDBCell(self.n_features, self.n_blocks, self.unroll, name='cell')
    elif self.cell == 'rdb':
      self.cell_module = RDBCell(self.n_features, self.n_blocks, self.unroll, name='cell')
    else:
      self.cell_module = ResBlockCell(self.n_features, self.n_blocks, self.unroll, name='cell')
    if self.fusion == 'gsa':
      self.fusion_module = GSA(self.n_features, self.past_frames, self.future_frames, folded=self.fold_gsa,
                               name='fusion')
    elif self.fusion == 'concat':
      self.fusion_module = ConcatFusion(self.past_frames, self.future_frames, name='fusion')
    else:
      self.fusion_module = NoFusion(name='fusion')
    self.reconstructor = Reconstructor(self.n_features, self.reconstructed_frames, self.channels)

  def __call__(self, frames: Array) -> Array:
    if frames.ndim != 5 or frames.shape[-1] != self.channels:
      raise ValueError(f'ESTRNN(input={self.input!r}) expects frames of shape (N, T, H, W, {self.channels}), got '
                       f'{frames.shape}.')
    if frames.shape[1] < self.num_frames:
      raise ValueError(f'ESTRNN with past_frames={self.past_frames}, future_frames={self.future_frames} needs at '
                       f'least {self.num_frames} frames, got {frames.shape[1]}.')
    padded, (height, width) = pad_to_multiple(frames, 4)
    hs, _ = self.encode(padded)
    return self.decode(hs, self.centre_frames(padded))[:, :, :height, :width, :]

  def centre_frames(self, frames: Array) -> Array:
    """The frames that get outputs, `past ... T-future-1`: (N, T, ...) -> (N, T - past - future, ...)."""
    return frames[:, self.past_frames:frames.shape[1] - self.future_frames]

  def initial_state(self, batch: int, height: int, width: int) -> Array:
    """The zero hidden state s_0, (batch, height/4, width/4, n_features) float32."""
    return jnp.zeros((batch, height // 4, width // 4, self.n_features), jnp.float32)

  def encode(self, frames: Array, state: Array | None = None) -> tuple[Array, Array]:
    """Runs the cell over time (one `nn.scan`, or a Python loop when `unroll`).

    Args:
      frames: (N, T, H, W, 3), H and W multiples of 4.
      state: s before the first frame, (N, H/4, W/4, C); None for zeros.
    Returns:
      hs (N, T, H/4, W/4, 5C) in the compute dtype, and the state after the last frame.
    """
    n, _, height, width, _ = frames.shape
    _check_multiple_of_4(height, width)
    if state is None:
      state = self.initial_state(n, height, width)

    def body(cell, carry, frame):
      return cell(carry, frame)

    if self.remat:
      body = nn.remat(body, prevent_cse=False)
    if self.unroll:
      state, hs = state.astype(self.dtype), []
      for t in range(frames.shape[1]):
        state, h = body(self.cell_module, state, frames[:, t].astype(self.dtype))
        hs.append(h)
      return jnp.stack(hs, axis=1), state
    scan = nn.scan(body, variable_broadcast='params', split_rngs={'params': False}, in_axes=1, out_axes=1)
    state, hs = scan(self.cell_module, state.astype(self.dtype), frames.astype(self.dtype))
    return hs, state

  def step(self, state: Array, frame: Array) -> tuple[Array, Array]:
    """One cell step: frame (N, H, W, 3), state (N, H/4, W/4, C) -> (new state, h (N, H/4, W/4, 5C))."""
    _check_multiple_of_4(frame.shape[-3], frame.shape[-2])
    return self.cell_module(state.astype(self.dtype), frame.astype(self.dtype))

  def decode(self, hs: Array, centre_frames: Array | None = None) -> Array:
    """GSA fusion + reconstruction of every full window: hs (N, T, h, w, 5C) -> (N, T - past - future, 4h, 4w, 3).

    `centre_frames`: the input frames at the windows' centres, (N, T - past - future, 4h, 4w, 3) in [-0.5, 0.5];
    needed when `residual` (they are added to the outputs), ignored otherwise.
    """
    fused = self.fusion_module(hs.astype(self.dtype))
    n, t = fused.shape[:2]
    out = self.reconstructor(fused.reshape(n * t, *fused.shape[2:]))
    out = out.reshape(n, t, *out.shape[1:]).astype(jnp.float32)
    if not self.residual:
      return out
    if centre_frames is None:
      raise ValueError('ESTRNN(residual=True).decode needs the centre input frames (centre_frames=...).')
    if centre_frames.shape != out.shape:
      raise ValueError(f'centre_frames has shape {centre_frames.shape}; expected {out.shape} (the input frames '
                       f'{self.past_frames} ... T-{self.future_frames + 1}, padded to multiples of 4).')
    return out + centre_frames.astype(jnp.float32)


def _config_fields() -> tuple[str, ...]:
  """ESTRNN's own dataclass fields (flax's `parent` and `name` excluded)."""
  return tuple(f.name for f in dataclasses.fields(ESTRNN) if f.name not in ('parent', 'name'))


def init_key(seed: int) -> jax.Array:
  """The key every parameter initialisation in the project uses: `seed` on JAX's 'rbg' generator.

  RBG (XLA's RngBitGenerator) rather than the default threefry: ESTRNN has ~200 parameter tensors, and threefry
  unrolls a hash per tensor, which makes `model.init` compile 3-4x slower on CPU (~30 s vs ~8 s for B15C80 on 2
  cores). Values are deterministic for a seed on a given backend (they may differ between backends) and do not
  depend on the number of devices the parameters are placed on.
  """
  return jax.random.key(seed, impl='rbg')


def abstract_params(model: ESTRNN) -> dict[str, Any]:
  """`model`'s parameters as shapes only (a pytree of float32 `jax.ShapeDtypeStruct`); nothing is computed."""
  return jax.eval_shape(functools.partial(_init, model), jax.random.key(0))


def init_params(model: ESTRNN, seed: int | jax.Array = 0) -> dict[str, Any]:
  """Initialises `model`'s parameters (the `params` collection), float32, PyTorch's default distributions.

  `seed`: an int (drawn with `init_key(seed)`) or a key. Parameters do not depend on the frame size, so this runs
  `model.init` on a tiny dummy clip. Jitted; also callable inside a jitted function (e.g. with `out_shardings`).
  """
  key = init_key(seed) if isinstance(seed, int) else seed
  return _jitted_init(model, key)


def _init(model: ESTRNN, key: jax.Array) -> dict[str, Any]:
  return model.init(key, jnp.zeros((1, model.num_frames, 4, 4, model.channels), jnp.float32))['params']


_jitted_init = jax.jit(_init, static_argnums=0)


CELLS = ('rdb', 'resblock')
FUSIONS = ('gsa', 'concat', 'none')
INPUTS = ('rgb', 'raw')


def check_variant(model: ESTRNN) -> None:
  """Raises ValueError naming the field for an unknown `cell` / `fusion` or a window that does not fit it."""
  if model.cell not in CELLS:
    raise ValueError(f'ESTRNN cell {model.cell!r} is not one of {CELLS}.')
  if model.fusion not in FUSIONS:
    raise ValueError(f'ESTRNN fusion {model.fusion!r} is not one of {FUSIONS}.')
  if model.input not in INPUTS:
    raise ValueError(f'ESTRNN input {model.input!r} is not one of {INPUTS}.')
  if model.input == 'raw' and model.cell != 'rdb':
    raise ValueError(f"ESTRNN input='raw' (ESTRNN-RAW) has the RDB cell only; got cell={model.cell!r}.")
  if model.past_frames < 0 or model.future_frames < 0:
    raise ValueError(f'ESTRNN past_frames={model.past_frames}, future_frames={model.future_frames}: both must be '
                     '>= 0.')
  if model.fusion == 'none' and (model.past_frames or model.future_frames):
    raise ValueError(f"ESTRNN fusion='none' reconstructs each frame from its own features only: set "
                     f'past_frames=0 and future_frames=0 (got {model.past_frames} and {model.future_frames}).')


def _check_multiple_of_4(height: int, width: int) -> None:
  if height % 4 or width % 4:
    raise ValueError(f'Frame size {height}x{width} is not a multiple of 4; pad it first (model.pad_to_multiple) '
                     'or call the model directly, which pads and crops back.')


def jit_apply(model: ESTRNN, **jit_kwargs: Any) -> Callable[..., Any]:
  """The fast way to run `model`: `model.apply` jitted with the backend's XLA compile options.

  `jit_apply(model)(variables, frames)` returns what `model.apply(variables, frames)` returns (same shapes, same
  values: the options change how XLA schedules the convolutions and matmuls, not what they compute). On CPU the
  options are `jit_utils.cpu_compiler_options()`; other backends get none. They are passed per computation, so
  nothing else in the process changes. Extra keyword arguments go to `jax.jit` (e.g. `donate_argnums`).
  """
  return jax.jit(model.apply, compiler_options=jit_utils.cpu_compiler_options(), **jit_kwargs)
