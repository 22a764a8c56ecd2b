"""DVD (Su et al. CVPR 2017, "DeepVideoDeblurring"): hand-held videos with blur from averaged 240 fps frames.

Its quantitative set has 71 sequences of JPEG frames (`input` blurry, `GT` sharp), mostly 1280x720. The test
split is the DBN authors' ten sequences (`TEST_SEQUENCES`), every other sequence is train: the split ESTRNN's
cross-dataset Table 8 (and most video-deblurring papers) use. JPEG frames are stored as the pixels Pillow
decodes them to (lossless from there on). One record per frame.
"""

import re

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from datasets import common

# The DBN authors' (Su et al. 2017) test sequences of the quantitative set.
TEST_SEQUENCES = ('720p_240fps_2', 'IMG_0003', 'IMG_0021', 'IMG_0030', 'IMG_0031', 'IMG_0032', 'IMG_0033',
                  'IMG_0037', 'IMG_0039', 'IMG_0049')
_RELEASE = 'DeepVideoDeblurring_Dataset'
_QUANTITATIVE = 'quantitative_datasets'
_JPEG_FRAME_NAME = re.compile(r'(\d+)\.jpg', re.IGNORECASE)
_BLUR, _SHARP = 'input', 'GT'


def _sequence(seq_dir: epath.Path) -> common.FrameSequence:
  return common.paired_sequence(seq_dir.name, seq_dir / _BLUR, seq_dir / _SHARP, _JPEG_FRAME_NAME,
                                '<number>.jpg')


def _is_sequence_dir(path: epath.Path) -> bool:
  return (path / _BLUR).is_dir() and (path / _SHARP).is_dir()


def find_quantitative_dir(manual_dir: epath.Path) -> epath.Path | None:
  """The `quantitative_datasets` folder given it, the release folder or the release's parent; else None."""
  for candidate in (manual_dir / _RELEASE / _QUANTITATIVE, manual_dir / _QUANTITATIVE, manual_dir):
    if candidate.is_dir() and candidate.name == _QUANTITATIVE:
      return candidate
  return None


def split_by_dbn_test_list(quantitative_dir: epath.Path) -> dict[str, list[common.FrameSequence]]:
  """All sequences of `quantitative_dir`: the ten of `TEST_SEQUENCES` -> test, the others -> train."""
  seq_dirs = common.list_sequence_dirs(quantitative_dir)
  names = {p.name for p in seq_dirs}
  missing = [name for name in TEST_SEQUENCES if name not in names]
  if len(missing) == len(TEST_SEQUENCES):
    raise common.InvalidDatasetError(
        f'{quantitative_dir} has none of DVD\'s test sequences ({", ".join(TEST_SEQUENCES)}); found '
        f'{sorted(names)[:10]}. Is it the quantitative set of the DeepVideoDeblurring release?')
  if missing:
    logging.warning('DVD: test sequences %s are missing from %s; the test split has the other %d.',
                    missing, quantitative_dir, len(TEST_SEQUENCES) - len(missing))
  splits = {'train': [], 'test': []}
  for seq_dir in seq_dirs:
    splits['test' if seq_dir.name in TEST_SEQUENCES else 'train'].append(_sequence(seq_dir))
  if not splits['train']:
    raise common.InvalidDatasetError(f'{quantitative_dir} has only test sequences; no train sequence found.')
  return splits


class Builder(common.PairedFramesBuilder):
  """DVD frame pairs from `quantitative_datasets/<seq>/{input,GT}/*.jpg` or `{train,test}/<seq>/{input,GT}/`."""

  HOMEPAGE = 'https://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: one record per frame pair (decoded JPEG pixels), ArrayRecord, (sequence, '
               'frame) order; test = the DBN authors\' ten sequences.',
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  DVD cannot be downloaded automatically. Download DeepVideoDeblurring_Dataset.zip from
  https://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/ and unzip it, which gives

    <manual_dir>/DeepVideoDeblurring_Dataset/quantitative_datasets/<sequence>/{input,GT}/<number>.jpg

  Pass --manual_dir <manual_dir>, the DeepVideoDeblurring_Dataset folder or its quantitative_datasets
  folder. The ten test sequences are those of the DBN paper; all others are train. A copy already split
  as <manual_dir>/{train,test}/<sequence>/{input,GT}/<number>.jpg is accepted too, and its split is kept.
  """

  def _find_sequences(self, manual_dir: epath.Path) -> dict[str, list[common.FrameSequence]]:
    quantitative = find_quantitative_dir(manual_dir)
    if quantitative is not None:
      return split_by_dbn_test_list(quantitative)
    if (manual_dir / 'train').is_dir() or (manual_dir / 'test').is_dir():
      return self._presplit(manual_dir)
    found = sorted(p.name for p in manual_dir.iterdir())[:10] if manual_dir.is_dir() else []
    raise common.InvalidDatasetError(
        f'{manual_dir} holds neither {_RELEASE}/{_QUANTITATIVE}/ (or that folder, or its parent) nor '
        f'train/ and test/ split folders; found {found if found else "nothing"}. See the DVD manual '
        'download instructions.')

  def _presplit(self, root: epath.Path) -> dict[str, list[common.FrameSequence]]:
    splits = {}
    for split in ('train', 'test'):
      split_dir = common.require_dir(root / split, f'DVD {split} split folder')
      splits[split] = [_sequence(seq_dir) for seq_dir in common.list_sequence_dirs(split_dir)]
    test_names = sorted(s.name for s in splits['test'])
    if test_names != sorted(TEST_SEQUENCES):
      logging.warning('DVD: %s/test holds %s, not the DBN test sequences %s; keeping the split as given.',
                      root, test_names, list(TEST_SEQUENCES))
    return splits
