"""Training losses of the reference (`train/loss.py` of zzh-tech/ESTRNN).

All take predictions and targets of the same shape, channels-last (..., H, W, 3), values in [-0.5, 0.5], and
return a float32 scalar: the mean over every element (every pixel for the colour variant), as the reference.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

CHARBONNIER_EPS = 1e-3


def charbonnier_color(pred: jax.Array, target: jax.Array, eps: float = CHARBONNIER_EPS) -> jax.Array:
  """`L1_Charbonnier_loss_color` (the reference's default): per pixel `sqrt(mean_c (pred-target)^2 + eps^2)`,
  averaged over pixels."""
  diff = pred.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(diff), axis=-1) + eps * eps))


def charbonnier(pred: jax.Array, target: jax.Array, eps: float = CHARBONNIER_EPS) -> jax.Array:
  """`L1_Charbonnier_loss`: elementwise `sqrt((pred-target)^2 + eps^2)`, averaged over every element."""
  diff = pred.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.sqrt(jnp.square(diff) + eps * eps))


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """`MSE` (`nn.MSELoss()`): mean squared error over every element (the paper's GOPRO/REDS loss)."""
  diff = pred.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.square(diff))


def get_loss_fn(name: str) -> LossFn:
  """Maps a config's `loss` field ('charbonnier_color' | 'charbonnier' | 'mse') to its function."""
  if name == 'charbonnier_color':
    return charbonnier_color
  if name == 'charbonnier':
    return charbonnier
  if name == 'mse':
    return mse
  raise ValueError(f"Unknown loss {name!r}; expected 'charbonnier_color', 'charbonnier' or 'mse'.")
