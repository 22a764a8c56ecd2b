"""Streaming and offline inference: parity with the model and the reference, edges, memory, sizes, tiling."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estrnn_jax import images
from estrnn_jax import inference
from estrnn_jax import model as model_lib


@pytest.fixture(scope='module')
def tiny(testdata):
  """The fake official C4B2 checkpoint (converted to RGB on the fly) and the golden clip, in RGB."""
  model, variables = inference.load_model(str(testdata / 'fake_ckpt_C4B2.pth.tar'))
  golden = np.load(testdata / 'estrnn_C4B2_n2T7H32W48.npz')
  to_rgb_nhwc = lambda x: np.ascontiguousarray(np.moveaxis(x, -3, -1)[..., ::-1])  # NCHW BGR -> NHWC RGB
  hs = np.moveaxis(golden['hs'], -3, -1)  # the cell's features h; the colour order does not reach them
  return model, variables, to_rgb_nhwc(golden['input']), to_rgb_nhwc(golden['output']), hs


@functools.cache
def _jitted(model, method=None):
  return jax.jit(functools.partial(model.apply, method=method))


def _deblur_video(model, variables, clip, **kwargs):
  """inference.deblur_video; float clips here are in the model's range [-0.5, 0.5]."""
  if np.asarray(clip).dtype.kind == 'f':
    kwargs.setdefault('value_range', images.MODEL_RANGE)
  return inference.deblur_video(model, variables, clip, **kwargs)


def _streaming(model, variables, **kwargs):
  """inference.StreamingDeblurrer for float frames in the model's range [-0.5, 0.5]."""
  return inference.StreamingDeblurrer(model, variables, value_range=images.MODEL_RANGE, **kwargs)


def _random_clip(shape, seed=0):
  return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


def test_load_model_reads_official_checkpoint(tiny):
  model, variables, _, _, _ = tiny
  assert (model.n_features, model.n_blocks, model.past_frames, model.future_frames) == (4, 2, 2, 2)
  assert variables['params']['cell']['F_B0']['kernel'].shape == (5, 5, 3, 4)


def test_offline_interior_frames_equal_the_reference(tiny):
  """Frames past..T-future-1 are exactly ESTRNN.__call__ (golden outputs of the official PyTorch model)."""
  model, variables, clips, golden_out, _ = tiny
  for clip, expected in zip(clips, golden_out):
    out = _deblur_video(model, variables, clip)
    assert out.shape == clip.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[2:-2], expected, atol=1e-5, rtol=0)


def test_streaming_equals_offline_with_future_frames_delay(tiny):
  model, variables, clips, _, _ = tiny
  clip = clips[0]
  offline = _deblur_video(model, variables, clip, group_size=4)
  deblurrer = _streaming(model, variables)
  assert deblurrer.delay == 2
  counts, outputs = [], []
  for frame in clip:
    out = deblurrer.push(frame)
    counts.append(len(out))
    outputs.append(out)
  tail = deblurrer.flush()
  assert counts == [0, 0, 1, 1, 1, 1, 1] and len(tail) == 2
  streamed = np.concatenate(outputs + [tail])
  np.testing.assert_allclose(streamed, offline, atol=1e-5, rtol=0)


def test_edge_frames_repeat_the_nearest_features(tiny):
  """Frame 0 uses the window [h0, h0, h0, h1, h2]; frame T-1 uses [h4, h5, h6, h6, h6] (T = 7)."""
  model, variables, clips, _, golden_hs = tiny
  out = _deblur_video(model, variables, clips[1])
  hs = golden_hs[1:]
  decode = _jitted(model, model_lib.ESTRNN.decode)
  first = decode(variables, np.concatenate([hs[:, :1], hs[:, :1], hs[:, :3]], axis=1))
  last = decode(variables, np.concatenate([hs[:, 4:], hs[:, 6:], hs[:, 6:]], axis=1))
  np.testing.assert_allclose(out[0], first[0, 0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out[-1], last[0, 0], atol=1e-5, rtol=0)


def test_long_stream_has_constant_memory_and_compiles_once(tiny):
  model, variables, _, _, _ = tiny
  clip = _random_clip((50, 16, 16, 3), seed=1)
  deblurrer = _streaming(model, variables)
  deblurrer.push(clip[0])
  traces_after_first = inference.num_traces()
  shapes = jax.tree.map(lambda x: (x.shape, x.dtype), deblurrer.carry)
  assert shapes[1][0] == (1, 4, 4, 4, 20)   # ring buffer: past + future features h, nothing more
  emitted = 0
  for frame in clip[1:]:
    emitted += len(deblurrer.push(frame))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), deblurrer.carry) == shapes
    assert deblurrer._streams[0].pending == 0  # pylint: disable=protected-access
  emitted += len(deblurrer.flush())
  assert emitted == 50
  assert inference.num_traces() == traces_after_first   # every later push and the flush reused the compilation


@pytest.mark.parametrize('num_frames', [1, 5])
def test_any_length_gets_every_frame_and_group_sizes_agree(tiny, num_frames):
  model, variables, _, _, _ = tiny
  clip = _random_clip((num_frames, 16, 16, 3), seed=num_frames)
  one_by_one = _streaming(model, variables)
  streamed = np.concatenate([one_by_one.push(clip), one_by_one.flush()])
  grouped = _deblur_video(model, variables, clip, group_size=2)
  assert streamed.shape == grouped.shape == clip.shape
  np.testing.assert_allclose(grouped, streamed, atol=1e-5, rtol=0)
  assert np.all(np.isfinite(streamed))


def test_odd_frame_size_is_padded_and_cropped_back(tiny):
  model, variables, _, _, _ = tiny
  clip = _random_clip((6, 17, 23, 3), seed=2)
  out = _deblur_video(model, variables, clip)
  assert out.shape == clip.shape
  np.testing.assert_allclose(out[2:-2], _jitted(model)(variables, clip[None])[0], atol=1e-5, rtol=0)


def test_uint8_in_uint8_out(tiny):
  model, variables, _, _, _ = tiny
  clip_u8 = np.random.default_rng(3).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  out = _deblur_video(model, variables, clip_u8, group_size=1)
  assert out.dtype == np.uint8 and out.shape == clip_u8.shape
  expected = images.to_uint8(_deblur_video(model, variables, images.from_uint8(clip_u8), group_size=1))
  np.testing.assert_array_equal(out, expected)


def test_tile_covering_the_frame_equals_untiled(tiny):
  model, variables, clips, _, _ = tiny
  untiled = _deblur_video(model, variables, clips[0])
  tiled = _deblur_video(model, variables, clips[0], tile=48, tile_overlap=8)
  np.testing.assert_array_equal(tiled, untiled)


@pytest.mark.parametrize('group_size,tile', [(1, None), (3, None), (2, 16)])
def test_residual_model_adds_each_input_frame_to_its_output(tiny, group_size, tile):
  """Streaming buffers the `future` frames whose outputs are pending: every output gets its own input frame."""
  model, variables, _, _, _ = tiny
  clip = _random_clip((7, 22, 30, 3), seed=4)
  residual = model.clone(residual=True)
  plain = _deblur_video(model, variables, clip, group_size=group_size, tile=tile, tile_overlap=4)
  out = _deblur_video(residual, variables, clip, group_size=group_size, tile=tile, tile_overlap=4)
  np.testing.assert_allclose(out, plain + clip, atol=1e-5, rtol=0)   # edge frames included
  if tile is None:   # tiles see less context than the whole frame
    np.testing.assert_allclose(out[2:-2], _jitted(residual)(variables, clip[None])[0], atol=1e-5, rtol=0)
  deblurrer = _streaming(residual, variables, tile=tile, tile_overlap=4)
  streamed = np.concatenate([deblurrer.push(frame) for frame in clip] + [deblurrer.flush()])
  np.testing.assert_allclose(streamed, out, atol=1e-5, rtol=0)


def test_tiling_is_close_to_untiled(tiny):
  model, variables, clips, _, _ = tiny
  clip = clips[0]   # 32x48 -> 6 tiles of 24x24
  untiled = _deblur_video(model, variables, clip)
  tiled = _deblur_video(model, variables, clip, tile=24, tile_overlap=8)
  diff = np.abs(tiled - untiled)
  assert tiled.shape == clip.shape
  assert diff.mean() < 0.1 * np.abs(untiled).mean() and diff.max() < 0.05, (diff.mean(), diff.max())
  assert diff.max() > 0   # tiles really were processed separately
  deblurrer = _streaming(model, variables, tile=24, tile_overlap=8, group_size=4)
  first = deblurrer.push(clip)
  state, context, pending, _ = deblurrer.carry
  assert state.shape == (6, 6, 6, 4) and context.shape == (6, 4, 6, 6, 20)   # one stream per tile
  assert pending.shape == (6, 0, 24, 24, 3)   # no frame buffer without the residual skip
  np.testing.assert_allclose(np.concatenate([first, deblurrer.flush()]), tiled, atol=1e-6, rtol=0)


def test_tile_grid_and_blend_weights():
  grid = inference.tile_grid(40, 52, 24, 8)
  assert (grid.tile_height, grid.tile_width) == (24, 24)
  assert grid.origins == tuple((y, x) for y in (0, 16) for x in (0, 16, 28))
  weights = inference.blend_weights(grid, 8)
  total = np.zeros((40, 52))
  for (y, x), w in zip(grid.origins, weights[..., 0]):
    total[y:y + 24, x:x + 24] += w
  np.testing.assert_allclose(total, 1.0, atol=1e-6)
  assert weights.min() > 0
  assert inference.tile_grid(40, 52, 64, 8).origins == ((0, 0),)
  for tile, overlap in [(30, 8), (8, 0), (32, 17), (32, -1)]:
    with pytest.raises(ValueError, match='tile'):
      inference.tile_grid(64, 64, tile, overlap)


def test_bfloat16_is_close_to_float32(tiny):
  model, variables, _, _, _ = tiny
  clip = _random_clip((3, 16, 16, 3), seed=5)
  f32 = _deblur_video(model, variables, clip, group_size=1)
  bf16 = _deblur_video(model, variables, clip, dtype=jnp.bfloat16, group_size=1)
  assert bf16.dtype == np.float32
  assert np.abs(bf16 - f32).max() < 0.03, np.abs(bf16 - f32).max()
  assert np.abs(bf16 - f32).max() > 0


def test_bad_frames_raise_clear_errors(tiny):
  model, variables, _, _, _ = tiny
  deblurrer = _streaming(model, variables)
  with pytest.raises(ValueError, match='shape'):
    deblurrer.push(np.zeros((16, 16, 2), np.float32))
  deblurrer.push(np.zeros((16, 16, 3), np.float32))
  with pytest.raises(ValueError, match='frame size changed'):
    deblurrer.push(np.zeros((20, 16, 3), np.float32))
  with pytest.raises(ValueError, match='T >= 1'):
    _deblur_video(model, variables, np.zeros((0, 16, 16, 3), np.float32))
  with pytest.raises(ValueError, match='group_size'):
    _streaming(model, variables, group_size=0)


@pytest.mark.parametrize('overlap', [0, 8])
def test_tiles_are_independent_streams_blended_by_raised_cosine(tiny, overlap):
  """A real multi-tile run (40x40 frames, 24-px tiles at 0 and 16) against an expectation built without the
  tiling code: ESTRNN.__call__ on each tile's crop, blended with the documented weights.

  Why not "equal to untiled away from the borders": ESTRNN has no finite receptive field to tile under. GSA's
  channel attention pools over the whole frame (paper Sec. 3.2), and the hidden state spreads context by the
  cell's receptive field at every frame, so every output pixel depends on every input pixel.
  """
  model, variables, _, _, _ = tiny
  size = 40 if overlap else 48
  clip = _random_clip((7, size, size, 3), seed=11)
  tiled = _deblur_video(model, variables, clip, tile=24, tile_overlap=overlap)
  starts = (0, 16) if overlap else (0, 24)   # 40 = 24 + 16, overlapping by 8; 48 = 24 + 24, abutting
  if overlap:
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(8) + 0.5) / 8)   # the second tile's share across the overlap
    second = np.concatenate([np.zeros(16), rise, np.ones(16)])
  else:
    second = np.concatenate([np.zeros(24), np.ones(24)])
  share = {0: 1 - second, starts[1]: second}   # per start: weight of that tile along one axis, frame coordinates
  expected = np.zeros((3, size, size, 3), np.float64)
  for y in starts:
    for x in starts:
      crop_out = np.asarray(_jitted(model)(variables, clip[None, :, y:y + 24, x:x + 24]))[0]   # frames 2..4
      weight = np.outer(share[y], share[x])[y:y + 24, x:x + 24, None]
      expected[:, y:y + 24, x:x + 24] += crop_out * weight
  np.testing.assert_allclose(tiled[2:-2], expected, atol=1e-5, rtol=0)
  untiled = _deblur_video(model, variables, clip)
  assert np.abs(tiled - untiled).max() > 1e-3   # the tiles really ran separately


def _every_frame_reference(model, variables, clip):
  """The documented every-frame rule built from the model's own scanned cell (`ESTRNN.encode`) and decoder:
  frame t fuses h_{t-past} .. h_{t+future}, indices clamped to [0, T-1]."""
  hs, _ = model.apply(variables, clip[None], method=model_lib.ESTRNN.encode)
  hs = np.asarray(hs)
  num_frames = len(clip)
  windows = [np.clip(np.arange(t - model.past_frames, t + model.future_frames + 1), 0, num_frames - 1)
             for t in range(num_frames)]
  decode = _jitted(model, model_lib.ESTRNN.decode)
  return np.concatenate([np.asarray(decode(variables, hs[:, w]))[0] for w in windows])


@pytest.mark.parametrize('num_frames', [1, 2, 4, 5])
def test_short_clips_against_the_model(tiny, num_frames):
  """Clips shorter than one window still get every frame; the centre of a 5-frame clip is ESTRNN.__call__."""
  model, variables, _, _, _ = tiny
  clip = _random_clip((num_frames, 16, 20, 3), seed=20 + num_frames)
  out = _deblur_video(model, variables, clip)
  assert out.shape == clip.shape
  np.testing.assert_allclose(out, _every_frame_reference(model, variables, clip), atol=1e-5, rtol=0)
  if num_frames == 5:
    np.testing.assert_allclose(out[2:3], np.asarray(_jitted(model)(variables, clip[None]))[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------
# Frame formats: each input type maps to the model's range by its own rule, and comes back in its format.


@pytest.fixture(scope='module')
def format_case(tiny):
  """A uint8 clip and the model's float output for it (frames x / 255 - 0.5)."""
  model, variables, _, _, _ = tiny
  clip_u8 = np.random.default_rng(30).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  as_model = clip_u8.astype(np.float32) / 255 - 0.5
  return clip_u8, inference.deblur_video(model, variables, as_model, value_range=(-0.5, 0.5), group_size=1)


def test_uint16_frames_use_their_full_range(tiny, format_case):
  model, variables, _, _, _ = tiny
  clip_u8, expected = format_case
  out = inference.deblur_video(model, variables, clip_u8.astype(np.uint16) * 257, group_size=1)   # same values
  assert out.dtype == np.uint16 and out.shape == clip_u8.shape
  want = np.clip(np.rint((expected.astype(np.float64) + 0.5) * 65535), 0, 65535)
  assert np.abs(out - want).max() <= 1   # float32 rounding of x * 257 / 65535 vs x / 255: within one level


@pytest.mark.parametrize('value_range', [(0.0, 1.0), (0.0, 255.0), (-1.0, 1.0)])
def test_float_frames_use_the_stated_range(tiny, format_case, value_range):
  model, variables, _, _, _ = tiny
  clip_u8, expected = format_case
  low, high = value_range
  clip = (clip_u8.astype(np.float64) / 255 * (high - low) + low).astype(np.float32)
  out = inference.deblur_video(model, variables, clip, value_range=value_range, group_size=1)
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, (expected + 0.5) * (high - low) + low, atol=2e-5 * (high - low), rtol=0)


def test_grey_is_expanded_and_opaque_rgba_accepted(tiny):
  model, variables, _, _, _ = tiny
  grey = np.random.default_rng(31).integers(0, 256, (3, 16, 16), dtype=np.uint8)
  as_rgb = inference.deblur_video(model, variables, np.repeat(grey[..., None], 3, -1), group_size=1)
  np.testing.assert_array_equal(inference.deblur_video(model, variables, grey, group_size=1), as_rgb)
  np.testing.assert_array_equal(inference.deblur_video(model, variables, grey[..., None], group_size=1), as_rgb)
  rgba = np.concatenate([np.repeat(grey[..., None], 3, -1), np.full((3, 16, 16, 1), 255, np.uint8)], -1)
  np.testing.assert_array_equal(inference.deblur_video(model, variables, rgba, group_size=1), as_rgb)
  deblurrer = inference.StreamingDeblurrer(model, variables)
  streamed = np.concatenate([deblurrer.push(frame) for frame in grey] + [deblurrer.flush()])   # (H, W) frames
  np.testing.assert_array_equal(streamed, as_rgb)


def test_bad_frame_formats_are_refused(tiny):
  model, variables, _, _, _ = tiny
  floats = np.zeros((2, 16, 16, 3), np.float32)
  with pytest.raises(ValueError, match=r'float32 frames need their value range: pass value_range='):
    inference.deblur_video(model, variables, floats)
  with pytest.raises(ValueError, match=r'float32 frames need their value range'):
    inference.StreamingDeblurrer(model, variables).push(floats[0])
  with pytest.raises(ValueError, match='must be uint8, uint16 or float, got int32'):
    inference.deblur_video(model, variables, np.zeros((2, 16, 16, 3), np.int32))
  with pytest.raises(ValueError, match='black < white'):
    inference.deblur_video(model, variables, floats, value_range=(1, 0))
  with pytest.raises(ValueError, match=r'uint8 frames always use their full range'):
    inference.deblur_video(model, variables, np.zeros((2, 16, 16, 3), np.uint8), value_range=(0, 1))
  rgba = np.full((2, 16, 16, 4), 255, np.uint8)
  rgba[1, 3, 4, 3] = 254
  with pytest.raises(ValueError, match=r'frame 1: RGBA with 1 pixel\(s\) not fully opaque'):
    inference.deblur_video(model, variables, rgba)
  floats[0, 5, 5, 1] = np.nan
  with pytest.raises(ValueError, match='frame 0: contains NaN or infinite values'):
    inference.deblur_video(model, variables, floats, value_range=(0, 1))
  with pytest.raises(ValueError, match='C = 1, 3 or 4'):
    inference.deblur_video(model, variables, np.zeros((2, 16, 16, 2), np.uint8))


# --------------------------------------------------------------------------------------------------------------
# Device speed: several videos per call, batched tiles, uint8 on the device, no branches, groups in flight.


def test_several_videos_equal_each_deblurred_alone(tiny):
  model, variables, _, _, _ = tiny
  clips = [_random_clip((n, 16, 16, 3), seed=40 + n) for n in (7, 3, 2)]   # different lengths
  together = _deblur_video_many(model, variables, clips, group_size=2)
  for clip, out in zip(clips, together):
    alone = _deblur_video(model, variables, clip, group_size=2)
    assert out.shape == clip.shape
    np.testing.assert_allclose(out, alone, atol=1e-6, rtol=0)
  rng = np.random.default_rng(41)   # uint8, tiled, residual: the frame buffer and blending per video too
  residual = model.clone(residual=True)
  clips_u8 = [rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8) for n in (3, 5)]
  together = inference.deblur_videos(residual, variables, clips_u8, tile=24, tile_overlap=8, group_size=3)
  for clip, out in zip(clips_u8, together):
    alone = inference.deblur_video(residual, variables, clip, tile=24, tile_overlap=8, group_size=3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, alone)
  with pytest.raises(ValueError, match='video 1 frame 0: frame size .* must share one frame size'):
    inference.deblur_videos(model, variables, [clips_u8[0], clips_u8[1][:, :36]])


def _deblur_video_many(model, variables, clips, **kwargs):
  return inference.deblur_videos(model, variables, clips, value_range=images.MODEL_RANGE, **kwargs)


def test_stream_many_interleaves_videos_in_order(tiny):
  model, variables, _, _, _ = tiny
  clips = [_random_clip((n, 16, 16, 3), seed=50 + n) for n in (4, 2)]
  deblurrer = _streaming(model, variables, group_size=2)
  got = {0: [], 1: []}
  for index, frame in deblurrer.stream_many(clips):
    got[index].append(frame)
  for index, clip in enumerate(clips):
    np.testing.assert_allclose(np.stack(got[index]), _deblur_video(model, variables, clip, group_size=2),
                               atol=1e-6, rtol=0)
  assert deblurrer.carry is None   # reset: ready for the next videos


def test_tiles_in_chunks_equal_all_tiles_batched(tiny):
  model, variables, _, _, _ = tiny
  tile_batch = 4
  clip = _random_clip((3, 32, 32, 3), seed=60)   # 9 tiles of 16 px: chunks of 4 leave a remainder of 1
  batched = _deblur_video(model, variables, clip, tile=16, tile_overlap=4, group_size=2)
  chunked = _deblur_video(model, variables, clip, tile=16, tile_overlap=4, group_size=2, tile_batch=tile_batch)
  np.testing.assert_allclose(chunked, batched, atol=1e-6, rtol=0)


def test_the_device_step_has_no_branch_and_moves_uint8(tiny):
  model, variables, _, _, _ = tiny
  grid = inference.tile_grid(16, 16, None, 0)
  deblurrer = inference.StreamingDeblurrer(model, variables, group_size=2)
  deblurrer.push(np.zeros((1, 16, 16, 3), np.uint8))   # starts the stream; one frame pending
  step = functools.partial(inference._group_step, model=model, grid=grid)  # pylint: disable=protected-access
  jaxpr = str(jax.make_jaxpr(step)(variables, deblurrer.carry, np.zeros((1, 2, 16, 16, 3), np.uint8),
                                   np.array([[True, False]]), None))
  assert 'cond[' not in jaxpr and 'scan[' in jaxpr   # the scan over slots, but no per-frame conditional
  deblurrer.reset()
  seen = []
  real = inference._compiled_group_step()  # pylint: disable=protected-access

  def recording(*args, **kwargs):
    carry, out = real(*args, **kwargs)
    seen.append((args[2].dtype, out.dtype))
    return carry, out

  clip = np.random.default_rng(61).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(inference, '_compiled_group_step', lambda: recording)
    out = inference.deblur_video(model, variables, clip, group_size=2)
  assert seen and all(dtypes == (np.uint8, np.uint8) for dtypes in seen)   # uint8 both ways over the bus
  expected = images.to_uint8(_deblur_video(model, variables, images.from_uint8(clip), group_size=2))
  np.testing.assert_array_equal(out, expected)


def test_stream_submits_two_groups_before_fetching(tiny):
  """When output frame k comes out, the groups holding input frames k + future + 1 and k + future + 2 have been
  submitted: the device has the next two groups queued while the host handles frame k."""
  model, variables, _, _, _ = tiny
  clip = _random_clip((8, 16, 16, 3), seed=62)
  read = []

  def frames():
    for index, frame in enumerate(clip):
      read.append(index)
      yield frame

  reads_at_output = [len(read) for _ in _streaming(model, variables).stream(frames())]
  assert reads_at_output == [5, 6, 7, 8, 8, 8, 8, 8]   # frame k + 2 (future) + 2 (groups in flight) read
  one_deep = inference.StreamingDeblurrer(model, variables, value_range=images.MODEL_RANGE, max_in_flight=1)
  read.clear()
  assert [len(read) for _ in one_deep.stream(frames())][:4] == [4, 5, 6, 7]


def test_stream_copies_frames_so_callers_may_reuse_their_buffer(tiny):
  model, variables, _, _, _ = tiny
  clip = _random_clip((5, 16, 16, 3), seed=63)
  buffer = np.empty_like(clip[0])

  def reused():   # a camera-style reader: the same array, overwritten with each new frame
    for frame in clip:
      buffer[...] = frame
      yield buffer

  streamed = np.stack(list(_streaming(model, variables, group_size=2).stream(reused())))
  np.testing.assert_allclose(streamed, _deblur_video(model, variables, clip, group_size=2), atol=1e-6, rtol=0)
