"""The losses against the reference's definitions, written out in numpy."""

import jax
import numpy as np
import pytest

from estrnn_jax import losses


@pytest.fixture(scope='module')
def pair():
  rng = np.random.default_rng(0)
  pred = rng.uniform(-0.5, 0.5, (2, 3, 8, 10, 3)).astype(np.float32)
  target = rng.uniform(-0.5, 0.5, (2, 3, 8, 10, 3)).astype(np.float32)
  return pred, target


def test_charbonnier_color_matches_definition(pair):
  pred, target = pair
  d = pred.astype(np.float64) - target
  expected = np.mean(np.sqrt(np.mean(d * d, axis=-1) + 1e-6))
  np.testing.assert_allclose(float(jax.jit(losses.charbonnier_color)(pred, target)), expected, rtol=1e-6)


def test_charbonnier_matches_definition(pair):
  pred, target = pair
  d = pred.astype(np.float64) - target
  np.testing.assert_allclose(float(losses.charbonnier(pred, target)), np.mean(np.sqrt(d * d + 1e-6)), rtol=1e-6)


def test_mse_matches_definition(pair):
  pred, target = pair
  d = pred.astype(np.float64) - target
  np.testing.assert_allclose(float(losses.mse(pred, target)), np.mean(d * d), rtol=1e-6)


def test_colour_variant_differs_from_plain_and_floors_at_eps():
  pred = np.zeros((1, 4, 4, 3), np.float32)
  target = np.zeros((1, 4, 4, 3), np.float32)
  target[..., 0] = 0.3  # an error in one channel only
  # Colour: sqrt(0.09 / 3 + eps^2); plain: mean over channels of sqrt(d^2 + eps^2).
  np.testing.assert_allclose(float(losses.charbonnier_color(pred, target)), np.sqrt(0.03 + 1e-6), rtol=1e-5)
  np.testing.assert_allclose(float(losses.charbonnier(pred, target)), (np.sqrt(0.09 + 1e-6) + 2e-3) / 3, rtol=1e-5)
  np.testing.assert_allclose(float(losses.charbonnier_color(pred, pred)), 1e-3, rtol=1e-5)


def test_get_loss_fn():
  assert losses.get_loss_fn('charbonnier_color') is losses.charbonnier_color
  assert losses.get_loss_fn('charbonnier') is losses.charbonnier
  assert losses.get_loss_fn('mse') is losses.mse
  with pytest.raises(ValueError, match="Unknown loss 'l1'"):
    losses.get_loss_fn('l1')
