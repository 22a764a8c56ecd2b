"""Writes the builders' `dummy_data/` trees: tiny PNG frames in each release's real folder layout.

  python -m datasets.make_dummy_data          # rewrites datasets/{bsd,gopro,reds,dvd,paired_folders}/dummy_data/

Frames are 48x32 (W x H), smooth (so they compress to ~1 KB), distinct per file and deterministic. The
layouts, frame counts and frame numbers are what the builder tests expect:
  bsd    BSD_2ms16ms/{train: 000 (3 frames), 001 (4); valid: 000 (3); test: 000 (3)}, frames from 0, each as
         {Blur,Sharp}/RGB/%08d.png and as a 16-bit RAW frame {Blur,Sharp}/RAW/%08d.tiff (`dummy_mosaic`: Blur
         uncompressed, Sharp LZW-compressed as OpenCV writes them)
  gopro  GOPRO_Large/{train: GOPR0372_07_00 (3, from 47), GOPR0374_11_00 (4, from 1); test:
         GOPR0384_11_00 (3, from 98: 98, 99, 100)}, with blur, blur_gamma and sharp
  reds   {train/train_blur + train/train_sharp: 000 (3), 001 (3); val/val_blur + val/val_sharp: 000 (3)}
  dvd    DeepVideoDeblurring_Dataset/quantitative_datasets/{IMG_0002 (3), 720p_240fps_1 (2) (train);
         IMG_0003 (3), 720p_240fps_2 (2) (test)}/{input,GT}/%05d.jpg, frames from 0 (JPEG, quality 90); and
         the same sequences pre-split as presplit/{train,test}/<sequence>/{input,GT}/
  paired_folders  {train: clip_a (3, frame_0001.png ..), clip_b (2, 7.jpg, 8.jpg); test: clip_c (2, from 0)}
         with blur/ and sharp/ frame folders
"""

from collections.abc import Sequence
import pathlib
import shutil
import zlib

from absl import app
import numpy as np
from PIL import Image

HEIGHT, WIDTH = 32, 48
_HERE = pathlib.Path(__file__).parent


def dummy_frame(key: str, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
  """A smooth, deterministic uint8 (height, width, 3) image (ramps plus a wave) that differs for every `key`."""
  rng = np.random.default_rng(zlib.crc32(key.encode()))
  y = np.linspace(0.0, 1.0, height)[:, None, None]
  x = np.linspace(0.0, 1.0, width)[None, :, None]
  base, ramp_y, ramp_x = rng.uniform(60, 195, 3), rng.uniform(-40, 40, 3), rng.uniform(-40, 40, 3)
  frequency, phase = rng.uniform(1, 3, 3), rng.uniform(0, 2 * np.pi, 3)
  image = base + ramp_y * y + ramp_x * x + 20 * np.sin(2 * np.pi * frequency * (x + y) + phase)
  return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def dummy_mosaic(key: str, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
  """A deterministic uint16 (height, width) RAW frame: `dummy_frame`'s RGGB Bayer samples scaled to 16 bits plus
  a per-pixel offset of 0..256 (a fixed pattern), so that every bit of the 16 (both bytes, values above 32767) is exercised."""
  rgb = dummy_frame(key, height, width).astype(np.uint32) * 257
  rows, cols = np.indices((height, width))
  channel = np.where(rows % 2 == 0, np.where(cols % 2 == 0, 0, 1), np.where(cols % 2 == 0, 1, 2))   # R G / G B
  mosaic = np.take_along_axis(rgb, channel[..., None], axis=-1)[..., 0]
  offset = (rows * 37 + cols * 11 + zlib.crc32(key.encode())) % 257   # a pattern: LZW compresses it
  return np.minimum(mosaic + offset, 65535).astype(np.uint16)


def _write_mosaic(path: pathlib.Path, key: str, compression: str | None) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(dummy_mosaic(key)).save(path, format='TIFF', compression=compression)
  return path


def _write(path: pathlib.Path, key: str) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  if path.suffix == '.jpg':
    Image.fromarray(dummy_frame(key), 'RGB').save(path, format='JPEG', quality=90)
  else:
    Image.fromarray(dummy_frame(key), 'RGB').save(path, format='PNG', optimize=True)
  return path


def write_bsd(root: pathlib.Path) -> list[pathlib.Path]:
  layout = {'train': {'000': 3, '001': 4}, 'valid': {'000': 3}, 'test': {'000': 3}}
  release = root / 'BSD_2ms16ms'
  rgb = [_write(release / split / seq / kind / 'RGB' / f'{i:08d}.png', f'bsd/{split}/{seq}/{kind}/{i}')
         for split, seqs in layout.items() for seq, n in seqs.items()
         for kind in ('Blur', 'Sharp') for i in range(n)]
  raw = [_write_mosaic(release / split / seq / kind / 'RAW' / f'{i:08d}.tiff', bsd_raw_key(split, seq, kind, i),
                       None if kind == 'Blur' else 'tiff_lzw')
         for split, seqs in layout.items() for seq, n in seqs.items()
         for kind in ('Blur', 'Sharp') for i in range(n)]
  return rgb + raw


def bsd_raw_key(split: str, seq: str, kind: str, index: int) -> str:
  """The `dummy_mosaic` key of a BSD dummy RAW frame (its builder test recomputes the pixels from it)."""
  return f'bsd-raw/{split}/{seq}/{kind}/{index}'


def write_gopro(root: pathlib.Path) -> list[pathlib.Path]:
  layout = {'train': {'GOPR0372_07_00': (47, 3), 'GOPR0374_11_00': (1, 4)}, 'test': {'GOPR0384_11_00': (98, 3)}}
  release = root / 'GOPRO_Large'
  return [_write(release / split / seq / kind / f'{i:06d}.png', f'gopro/{split}/{seq}/{kind}/{i}')
          for split, seqs in layout.items() for seq, (start, n) in seqs.items()
          for kind in ('blur', 'blur_gamma', 'sharp') for i in range(start, start + n)]


def write_reds(root: pathlib.Path) -> list[pathlib.Path]:
  layout = {'train': {'000': 3, '001': 3}, 'val': {'000': 3}}
  return [_write(root / split / f'{split}_{kind}' / seq / f'{i:08d}.png', f'reds/{split}/{seq}/{kind}/{i}')
          for split, seqs in layout.items() for seq, n in seqs.items()
          for kind in ('blur', 'sharp') for i in range(n)]


DVD_LAYOUT = {'train': {'IMG_0002': 3, '720p_240fps_1': 2}, 'test': {'IMG_0003': 3, '720p_240fps_2': 2}}


def write_dvd(root: pathlib.Path) -> list[pathlib.Path]:
  quantitative = root / 'DeepVideoDeblurring_Dataset' / 'quantitative_datasets'
  files = []
  for split, seqs in DVD_LAYOUT.items():
    for seq, n in seqs.items():
      for kind in ('input', 'GT'):
        for i in range(n):
          key = f'dvd/{seq}/{kind}/{i}'
          files.append(_write(quantitative / seq / kind / f'{i:05d}.jpg', key))
          files.append(_write(root / 'presplit' / split / seq / kind / f'{i:05d}.jpg', key))
  return files


def write_paired_folders(root: pathlib.Path) -> list[pathlib.Path]:
  layout = {'train': {'clip_a': [f'frame_{i:04d}.png' for i in (1, 2, 3)], 'clip_b': ['7.jpg', '8.jpg']},
            'test': {'clip_c': ['0.png', '1.png']}}
  return [_write(root / split / seq / kind / name, f'paired/{split}/{seq}/{kind}/{name}')
          for split, seqs in layout.items() for seq, names in seqs.items()
          for kind in ('blur', 'sharp') for name in names]


WRITERS = {'bsd': write_bsd, 'gopro': write_gopro, 'reds': write_reds, 'dvd': write_dvd,
           'paired_folders': write_paired_folders}


def main(argv: Sequence[str]) -> None:
  """Rewrites every builder's dummy_data/, or only those of the builders named as arguments."""
  for name, writer in WRITERS.items():
    if argv[1:] and name not in argv[1:]:
      continue
    root = _HERE / name / 'dummy_data'
    shutil.rmtree(root, ignore_errors=True)
    files = writer(root)
    print(f'{root}: {len(files)} files, {sum(f.stat().st_size for f in files) / 1024:.0f} KiB')


if __name__ == '__main__':
  app.run(main)
