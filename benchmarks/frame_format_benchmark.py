r"""Frame storage formats: disk size and host CPU cost of reading one frame, at BSD, GOPRO and REDS sizes.

For each frame size it makes blurry and sharp frames of two kinds of content and times, in CPU seconds of
this process (`time.process_time`, so other jobs on a shared machine do not count), how long one read of a
stored frame takes in each candidate format:

  full      bytes -> the whole uint8 (H, W, 3) frame, owned by the caller
  crop 256  bytes -> a 256x256 crop, owned by the caller (what a training window needs per frame)
  record    reading the frame's record from an ArrayRecord file as the builders write it (uncompressed,
            one record per chunk; file in the page cache) + the 256 crop: a training read of one frame

Content: `texture` is the input-pipeline benchmark's photo-like 1/f colour texture (sharp frame; the
blurry one is a 4-pixel box blur of it), the hard case for compression; `rendered` is a frame pair of
`estrnn_jax.synthetic` (textured scene, objects, motion blur, sensor noise).

Candidates: the dataset formats of `estrnn_jax.frame_storage` (`raw`, `png` = Pillow level 6, what the
builders write), and, for the choice, PNG decoded with pyspng, PNG at zlib level 1, raw pixels compressed
with zstd (levels 1, 3) or lz4, and JPEG q95 via simplejpeg (lossy: shown for scale, cannot be used).
Lossless candidates are checked bit-exact before they are timed.

  python -m benchmarks.frame_format_benchmark                 # BSD 480x640, GOPRO 540x960, REDS 720x1280
  python -m benchmarks.frame_format_benchmark --sizes 480x640 --contents texture --json
"""

from collections.abc import Callable
import dataclasses
import io
import json
import os
import platform
import tempfile
import time

from absl import app
from absl import flags
import lz4.frame
import numpy as np
from PIL import Image
import pyspng
import simplejpeg
import zstandard

from array_record.python import array_record_module
from benchmarks import photo_frames
from datasets import common
from estrnn_jax import frame_storage
from estrnn_jax import synthetic

_SIZES = flags.DEFINE_list('sizes', ['480x640', '540x960', '720x1280'], 'Frame sizes HxW (BSD, GOPRO as '
                           'ESTRNN uses it, REDS).')
_CONTENTS = flags.DEFINE_list('contents', ['texture', 'rendered'], 'Frame content: texture and/or rendered.')
_CROP = flags.DEFINE_integer('crop', 256, 'Side of the crop read per frame by a training window.')
_MIN_SECONDS = flags.DEFINE_float('min_seconds', 0.3, 'CPU seconds per timing (repeated, best of 3).')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON line per (size, content, candidate).')

# Datasets and their frame counts (blurry + sharp images = 2x), for the disk column.
DATASET_OF_SIZE = {(480, 640): ('BSD 2ms16ms', 11_000), (540, 960): ('GOPRO', 3_214), (720, 1280): ('REDS', 27_000)}


@dataclasses.dataclass(frozen=True)
class Candidate:
  name: str
  encode: Callable[[np.ndarray], bytes]
  decode: Callable[[bytes], np.ndarray]       # -> (H, W, 3) uint8 (may be a view)
  lossless: bool = True
  in_builders: bool = False                    # a `frame_format` the dataset builders write


def _png(level: int) -> Callable[[np.ndarray], bytes]:
  def encode(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format='PNG', compress_level=level)
    return buffer.getvalue()
  return encode


def _pillow_png(data: bytes) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image)


def _compressed_raw(compress: Callable[[bytes], bytes], decompress: Callable[[bytes], bytes],
                    shape: tuple[int, int, int]) -> tuple[Callable, Callable]:
  return (lambda pixels: compress(pixels.tobytes()),
          lambda data: np.frombuffer(decompress(data), np.uint8).reshape(shape))


def candidates(shape: tuple[int, int, int]) -> list[Candidate]:
  zstd_decompressor = zstandard.ZstdDecompressor()
  out = [
      Candidate('raw', lambda p: frame_storage.encode(p, 'raw'), lambda d: frame_storage.decode(d, 'raw'),
                in_builders=True),
      Candidate('png (Pillow, level 6)', lambda p: frame_storage.encode(p, 'png'),
                lambda d: frame_storage.decode(d, 'png'), in_builders=True),
      Candidate('png, pyspng decode', lambda p: frame_storage.encode(p, 'png'), pyspng.load),
      Candidate('png level 1 (Pillow)', _png(1), _pillow_png),
  ]
  for level in (1, 3):
    compressor = zstandard.ZstdCompressor(level=level)
    out.append(Candidate(f'raw + zstd {level}',
                         *_compressed_raw(compressor.compress, zstd_decompressor.decompress, shape)))
  out.append(Candidate('raw + lz4', *_compressed_raw(lz4.frame.compress, lz4.frame.decompress, shape)))
  out.append(Candidate('jpeg q95 (simplejpeg)', lambda p: simplejpeg.encode_jpeg(p, quality=95),
                       simplejpeg.decode_jpeg, lossless=False))
  return out


def make_frames(content: str, height: int, width: int) -> dict[str, np.ndarray]:
  """{'sharp', 'blur'}: uint8 (height, width, 3) frames of `content`."""
  if content == 'texture':
    canvas = photo_frames.texture(np.random.default_rng(0), height, width + 4)
    sharp = np.ascontiguousarray(canvas[:, :width])
    blur = np.mean([canvas[:, dx:dx + width].astype(np.float32) for dx in range(4)], axis=0).astype(np.uint8)
    return {'sharp': sharp, 'blur': blur}
  if content == 'rendered':
    config = dataclasses.replace(synthetic.PRESETS['large'], height=height, width=width, num_frames=1,
                                 subframes=5)
    blur, sharp = synthetic.render_sequence(config, seed=0)
    return {'sharp': sharp[0], 'blur': blur[0]}
  raise ValueError(f'Unknown content {content!r}; expected texture or rendered.')


def cpu_ms(fn: Callable[[], object]) -> float:
  """Best of 3 of the mean CPU time of `fn()` over at least --min_seconds, in ms."""
  fn()
  calls, start = 0, time.process_time()
  while time.process_time() - start < _MIN_SECONDS.value / 3 or calls < 3:
    fn()
    calls += 1
  best = float('inf')
  for _ in range(3):
    start = time.process_time()
    for _ in range(calls):
      fn()
    best = min(best, (time.process_time() - start) / calls)
  return best * 1e3


def measure(candidate: Candidate, frames: dict[str, np.ndarray], crop: int, tmp_dir: str) -> dict[str, float]:
  """Mean over the blurry and sharp frame: stored KB, full read ms, crop read ms, record read + crop ms."""
  kb, full, cropped, record = [], [], [], []
  for pixels in frames.values():
    data = candidate.encode(pixels)
    decoded = candidate.decode(data)
    if candidate.lossless and not np.array_equal(decoded, pixels):
      raise AssertionError(f'{candidate.name} is not bit-exact')
    top, left = (pixels.shape[0] - crop) // 2, (pixels.shape[1] - crop) // 2
    kb.append(len(data) / 1e3)
    full.append(cpu_ms(lambda: np.array(candidate.decode(data))))
    cropped.append(cpu_ms(lambda: np.array(candidate.decode(data)[top:top + crop, left:left + crop])))
    path = os.path.join(tmp_dir, 'frames.array_record')
    writer = array_record_module.ArrayRecordWriter(path, common.ARRAY_RECORD_OPTIONS)
    copies = 8  # reading them in turn, as a window does
    for _ in range(copies):
      writer.write(data)
    writer.close()
    reader = array_record_module.ArrayRecordReader(path, 'readahead_buffer_size:0')
    turn = iter(range(10**9))
    record.append(cpu_ms(lambda: np.array(
        candidate.decode(reader.read([next(turn) % copies])[0])[top:top + crop, left:left + crop])))
    reader.close()
  return {'kb_per_frame': float(np.mean(kb)), 'full_ms': float(np.mean(full)), 'crop_ms': float(np.mean(cropped)),
          'record_ms': float(np.mean(record))}


def main(argv):
  del argv
  cpu = platform.processor() or platform.machine()
  print(f'# machine: {os.cpu_count()} CPUs, {cpu}, {platform.platform()}; CPU ms of this process, best of 3')
  for size in _SIZES.value:
    height, width = (int(v) for v in size.split('x'))
    dataset, frame_count = DATASET_OF_SIZE.get((height, width), (f'{height}x{width}', 0))
    raw_kb = height * width * 3 / 1e3
    for content in _CONTENTS.value:
      frames = make_frames(content, height, width)
      if not _JSON.value:
        print(f'\n{dataset}, {width}x{height}, {content} frames (raw {raw_kb:.0f} KB; mean of blurry and sharp)')
        print(f'  {"format":24s} {"KB/frame":>9s} {"vs raw":>7s} {"dataset GB":>10s} {"read full, ms":>13s} '
              f'{"read " + str(_CROP.value) + " crop, ms":>18s} {"record + crop, ms":>17s}')
      for candidate in candidates((height, width, 3)):
        with tempfile.TemporaryDirectory(prefix='frame_format_benchmark_') as tmp_dir:
          result = measure(candidate, frames, _CROP.value, tmp_dir)
        dataset_gb = result['kb_per_frame'] * 2 * frame_count / 1e6
        if _JSON.value:
          print(json.dumps({'size': [height, width], 'dataset': dataset, 'content': content,
                            'format': candidate.name, 'lossless': candidate.lossless,
                            'in_builders': candidate.in_builders, 'dataset_gb': round(dataset_gb, 2),
                            **{k: round(v, 4) for k, v in result.items()}}))
        else:
          note = '' if candidate.lossless else '  (lossy: not usable)'
          mark = '*' if candidate.in_builders else ' '
          print(f' {mark}{candidate.name:24s} {result["kb_per_frame"]:9.0f} {result["kb_per_frame"] / raw_kb:7.2f} '
                f'{dataset_gb:10.1f} {result["full_ms"]:13.2f} {result["crop_ms"]:18.3f} '
                f'{result["record_ms"]:17.3f}{note}')
  if not _JSON.value:
    print('\n* = a --frame_format of `python -m datasets.build`. dataset GB: blurry + sharp images of all frames '
          '(BSD 2ms16ms 11,000 frames, GOPRO 3,214, REDS train+val 27,000) at this content\'s size per frame.')


if __name__ == '__main__':
  app.run(main)
