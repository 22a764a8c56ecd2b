"""GOPRO (Nah et al. CVPR 2017): synthetic motion blur from averaged 240 fps GoPro frames.

22 train / 11 test sequences (2103 / 1111 frames) at 1280x720. Configs:
  blur                the release's `blur` frames (averaged in gamma-encoded values), 1280x720;
  blur_gamma          the release's `blur_gamma` frames (averaged in linear intensity), 1280x720;
  blur_gamma_960x540  `blur_gamma` and `sharp` both downsampled to 960x540 -- the version ESTRNN (and
                      IFI-RNN before it) report results on.
One record per frame.
"""

import dataclasses

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from datasets import common


def _area_3_4(values: np.ndarray, axis: int) -> np.ndarray:
  """Integer area weights of a 3/4 downsampling along `axis` (length a multiple of 4), times 4.

  Each output pixel covers 4/3 input pixels; per group of 4 inputs (a, b, c, d) the outputs are
  (3a + b, 2b + 2c, c + 3d) / 4 -- exactly the overlap of the pixel footprints.
  """
  values = np.moveaxis(values, axis, -1)
  a, b, c, d = (values.reshape(values.shape[:-1] + (-1, 4))[..., k] for k in range(4))
  out = np.stack([3 * a + b, 2 * (b + c), c + 3 * d], axis=-1).reshape(values.shape[:-1] + (-1,))
  return np.moveaxis(out, -1, axis)


def downsample_3_4(frame: np.ndarray) -> np.ndarray:
  """uint8 (H, W, C) -> uint8 (3H/4, 3W/4, C) by exact area averaging (1280x720 -> 960x540).

  Every output pixel is the mean of the input pixels under its footprint, weighted by overlap (the weights
  of OpenCV's `INTER_AREA`), computed in integers and rounded half up. Pillow's `Image.Resampling.BOX`
  is not this at a 4/3 scale: it gives each input pixel whose centre lies under the footprint weight 1.
  """
  height, width = frame.shape[:2]
  if height % 4 or width % 4:
    raise ValueError(f'frame is {width}x{height}; 3/4 area downsampling needs sides that are multiples of 4')
  sums = _area_3_4(_area_3_4(frame.astype(np.int32), 0), 1)  # weights total 16
  return ((sums + 8) // 16).astype(np.uint8)


@dataclasses.dataclass(eq=False)
class GoproConfig(tfds.core.BuilderConfig):
  """blur_folder: the release's folder of blurry frames.

  downsample_from: None keeps the release's frames as they are; (width, height) downsamples both images
  by 3/4 (exact area average) and requires the release's frames to have that size, so an already
  downsampled copy (e.g. a 960x540 "GOPRO-DS") is refused rather than shrunk again.
  """
  blur_folder: str = 'blur'
  downsample_from: tuple[int, int] | None = None


class Builder(common.PairedFramesBuilder):
  """GOPRO frame pairs from the release's `GOPRO_Large/{train,test}/<seq>/{blur,blur_gamma,sharp}/*.png`."""

  HOMEPAGE = 'https://seungjunnah.github.io/Datasets/gopro'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: one record per frame pair, ArrayRecord, (sequence, frame) order.',
  }
  BUILDER_CONFIGS = [
      GoproConfig(name='blur', description='`blur` frames (gamma-space average), 1280x720.'),
      GoproConfig(name='blur_gamma', blur_folder='blur_gamma',
                  description='`blur_gamma` frames (linear-space average), 1280x720.'),
      GoproConfig(name='blur_gamma_960x540', blur_folder='blur_gamma', downsample_from=(1280, 720),
                  description='`blur_gamma` and `sharp` downsampled to 960x540 by exact area averaging '
                              '(the ESTRNN / IFI-RNN protocol).'),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = 'blur_gamma_960x540'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  GOPRO cannot be downloaded automatically. Download GOPRO_Large.zip (the "GOPRO_Large" version with
  blur, blur_gamma and sharp frames) from https://seungjunnah.github.io/Datasets/gopro and unzip it so
  that the frames sit at

    <manual_dir>/GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/<frame number>.png

  and pass --manual_dir <manual_dir> (or the GOPRO_Large folder itself). Every config (including
  blur_gamma_960x540, which downsamples on the fly) reads this same folder.
  """

  def _find_sequences(self, manual_dir: epath.Path) -> dict[str, list[common.FrameSequence]]:
    root = common.find_release_dir(manual_dir, 'GOPRO_Large', markers=('train', 'test'))
    splits = {}
    for split in ('train', 'test'):
      split_dir = common.require_dir(root / split, f'GOPRO {split} split folder')
      splits[split] = [
          common.paired_sequence(seq_dir.name, seq_dir / self.builder_config.blur_folder, seq_dir / 'sharp')
          for seq_dir in common.list_sequence_dirs(split_dir)
      ]
    return splits

  def _pixel_transform(self) -> common.PixelTransform | None:
    if self.builder_config.downsample_from is None:
      return None
    width, height = self.builder_config.downsample_from

    def transform(frame: np.ndarray) -> np.ndarray:
      if frame.shape[:2] != (height, width):
        raise ValueError(f'frame is {frame.shape[1]}x{frame.shape[0]}; config {self.builder_config.name} '
                         f'downsamples {width}x{height} frames')
      return downsample_3_4(frame)

    return transform
