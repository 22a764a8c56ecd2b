"""Device-side frame conversions agree bit for bit with the host's."""

import jax
import numpy as np

from estrnn_jax import images


def _around_every_rounding_boundary(ulps: int = 40) -> np.ndarray:
  """float32 values within `ulps` steps of every x where x * 255 + 127.5 is a half-integer (k - 128) / 255,
  k = -2 .. 258 (so also just outside the clipped range), the ends of the model range, and the value 0."""
  centres = np.concatenate([(np.arange(-2, 259) - 128) / 255.0, [-0.5, 0.5, 0.0]]).astype(np.float32)
  values = [centres]
  up, down = centres.copy(), centres.copy()
  for _ in range(ulps):
    up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(-np.inf))
    values += [up, down]
  return np.concatenate(values)


def test_to_uint8_on_device_equals_to_uint8():
  rng = np.random.default_rng(0)
  values = np.concatenate([
      _around_every_rounding_boundary(),
      rng.uniform(-0.6, 0.6, 2_000_000).astype(np.float32),
      np.array([-np.inf, np.inf, -1e30, 1e30, -0.0, 1e-40, -1e-40, -0.5000001, 0.5000001], np.float32),
  ])
  with np.errstate(invalid='ignore'):
    expected = images.to_uint8(values)
  got = np.asarray(jax.jit(images.to_uint8_on_device)(values))
  assert got.dtype == np.uint8
  mismatched = np.flatnonzero(got != expected)
  assert mismatched.size == 0, [(values[i], got[i], expected[i]) for i in mismatched[:5]]
  # The boundaries are exercised: every level occurs, and the naive device formula (x * 255 + 127.5, rounded;
  # measured on CPU) differs from the host on 125 of the boundary values; the thresholds correct those.
  assert set(np.unique(expected)) == set(range(256))


def test_uint8_round_trip_through_the_device_is_the_identity():
  levels = np.arange(256, dtype=np.uint8)
  round_trip = jax.jit(lambda x: images.to_uint8_on_device(images.normalise_on_device(x)))(levels)
  np.testing.assert_array_equal(np.asarray(round_trip), levels)
  np.testing.assert_array_equal(np.asarray(jax.jit(images.normalise_on_device)(levels)), images.from_uint8(levels))
