"""REDS (Nah et al. CVPRW 2019, NTIRE 2019 video deblurring): synthetic blur from 120 fps -> 24 fps.

240 train / 30 validation sequences of 100 frames, 1280x720 (results are reported on validation; the
test set's ground truth is not public). One record per frame.
"""

from etils import epath
import tensorflow_datasets as tfds

from datasets import common

_SPLIT_PREFIXES = {'train': 'train', 'validation': 'val'}


def _release_folder(root: epath.Path, prefix: str, kind: str) -> epath.Path:
  """`<root>/<prefix>/<prefix>_<kind>` (the zips' own layout) or `<root>/<prefix>_<kind>` (flat)."""
  nested = root / prefix / f'{prefix}_{kind}'
  flat = root / f'{prefix}_{kind}'
  if nested.is_dir() and flat.is_dir():
    raise common.InvalidDatasetError(f'Both {nested} and {flat} exist; keep one of them.')
  if nested.is_dir():
    return nested
  if flat.is_dir():
    return flat
  raise common.InvalidDatasetError(
      f'Missing REDS folder {nested} (or {flat}): unzip {prefix}_{kind}.zip into {root}.')


class Builder(common.PairedFramesBuilder):
  """REDS frame pairs from `{train,val}/{train,val}_{blur,sharp}/<seq>/*.png` (or without the split folder)."""

  HOMEPAGE = 'https://seungjunnah.github.io/Datasets/reds.html'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: one record per frame pair, ArrayRecord, (sequence, frame) order.',
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  REDS cannot be downloaded automatically. Download train_blur.zip, train_sharp.zip, val_blur.zip and
  val_sharp.zip from https://seungjunnah.github.io/Datasets/reds.html (Google Drive or the SNU server)
  and unzip them all into one folder, which gives

    <manual_dir>/train/train_blur/<sequence>/<frame number>.png   (and train/train_sharp/...)
    <manual_dir>/val/val_blur/<sequence>/<frame number>.png       (and val/val_sharp/...)

  The flat form <manual_dir>/train_blur/<sequence>/... is accepted too, and so is the parent of a
  folder named REDS holding either form. Pass --manual_dir <manual_dir>.
  """

  def _find_sequences(self, manual_dir: epath.Path) -> dict[str, list[common.FrameSequence]]:
    markers = [f'{p}_{k}' for p in _SPLIT_PREFIXES.values() for k in ('blur', 'sharp')]
    root = common.find_release_dir(manual_dir, 'REDS', markers=list(_SPLIT_PREFIXES.values()) + markers)
    splits = {}
    for split, prefix in _SPLIT_PREFIXES.items():
      blur_root = _release_folder(root, prefix, 'blur')
      sharp_root = _release_folder(root, prefix, 'sharp')
      blur_names = [p.name for p in common.list_sequence_dirs(blur_root)]
      sharp_names = {p.name for p in common.list_sequence_dirs(sharp_root)}
      for name in blur_names:
        if name not in sharp_names:
          raise common.InvalidDatasetError(f'Sequence {blur_root / name} has no sharp counterpart in {sharp_root}.')
      extra = sorted(sharp_names - set(blur_names))
      if extra:
        raise common.InvalidDatasetError(f'Sequence {sharp_root / extra[0]} has no blurry counterpart in {blur_root}.')
      splits[split] = [common.paired_sequence(name, blur_root / name, sharp_root / name) for name in blur_names]
    return splits
