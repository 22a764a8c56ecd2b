"""Your own videos: any tree of paired blurry/sharp frame folders, as a dataset named by you.

  <manual_dir>/[<split>/]<sequence>/<blur dir>/<frames>   and   .../<sequence>/<sharp dir>/<frames>

* Splits are optional: if the folders under `manual_dir` are sequences (they hold `<blur dir>` and
  `<sharp dir>`), every sequence goes to the `train` split; otherwise each folder under `manual_dir` is a
  split (`train`, `validation`, `test` or any other name made of letters, digits and `_`).
* Frames are PNG or JPEG files whose names end in their frame number (`00001.png`, `frame_17.jpg`); a blurry
  frame is paired with the sharp frame of the same number. Any frame size, constant within a sequence.
  JPEG frames are stored as the pixels Pillow decodes them to.
* Each dataset is a builder config named by you: `python -m datasets.build --dataset paired_folders/<name>
  --manual_dir <tree> [--blur_dir blur --sharp_dir sharp]` writes `<data_dir>/paired_folders/<name>/`, so
  several of your datasets live side by side in one data dir; training and evaluation read it as
  `paired_folders/<name>`.
"""

import dataclasses
import re

from etils import epath
import tensorflow_datasets as tfds

from datasets import common

# `<anything><number>.png|jpg|jpeg` (any case): group 1 is the frame number (the last run of digits).
FRAME_NAME = re.compile(r'.*?(\d+)\.(?:png|jpe?g)', re.IGNORECASE)
_FRAME_NAME_DESCRIPTION = '<name ending in a number>.png/.jpg'
_DATASET_NAME = re.compile(r'[a-z0-9][a-z0-9_]*')
_SPLIT_NAME = re.compile(r'\w+')
# Key of the folder names in `DatasetInfo.metadata`: {'blur_dir': ..., 'sharp_dir': ...}.
FOLDERS_METADATA_KEY = 'folders'


@dataclasses.dataclass(eq=False)
class PairedFoldersConfig(tfds.core.BuilderConfig):
  """name: your dataset's name (lower-case letters, digits, `_`); blur_dir / sharp_dir: the names of the
  blurry and sharp frame folders inside each sequence folder."""
  blur_dir: str = 'blur'
  sharp_dir: str = 'sharp'

  def __post_init__(self):
    if not _DATASET_NAME.fullmatch(self.name):
      raise ValueError(f'Bad dataset name {self.name!r}: use lower-case letters, digits and _ (starting with a '
                       'letter or digit).')
    for field, value in (('blur_dir', self.blur_dir), ('sharp_dir', self.sharp_dir)):
      if not value or '/' in value or value.startswith('.'):
        raise ValueError(f'Bad {field} {value!r}: the name of a folder inside each sequence folder.')
    if self.blur_dir == self.sharp_dir:
      raise ValueError(f'blur_dir and sharp_dir are both {self.blur_dir!r}.')

  def folders(self) -> dict[str, str]:
    return {'blur_dir': self.blur_dir, 'sharp_dir': self.sharp_dir}


class Builder(common.PairedFramesBuilder):
  """Blurry/sharp frame pairs from `[<split>/]<sequence>/{<blur dir>,<sharp dir>}/<frames>`."""

  HOMEPAGE = 'https://github.com/zzh-tech/ESTRNN'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: one record per frame pair, ArrayRecord, (sequence, frame) order.',
  }
  BUILDER_CONFIGS = [PairedFoldersConfig(name='default', description='`blur` and `sharp` frame folders.')]
  DEFAULT_BUILDER_CONFIG_NAME = 'default'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Put your videos' frames in a folder tree

    <manual_dir>/[<split>/]<sequence>/<blur dir>/<frames>   and   <manual_dir>/[<split>/]<sequence>/<sharp dir>/<frames>

  (PNG or JPEG, names ending in the frame number; without split folders every sequence is `train`) and
  pass --manual_dir <manual_dir>; --blur_dir and --sharp_dir name the frame folders (default blur, sharp).
  """

  def _find_sequences(self, manual_dir: epath.Path) -> dict[str, list[common.FrameSequence]]:
    config = self.builder_config
    common.require_dir(manual_dir, 'paired-folder tree (--manual_dir)')
    top = common.list_sequence_dirs(manual_dir)
    is_sequence = [self._is_sequence_dir(p) for p in top]
    if all(is_sequence):
      split_dirs = {'train': manual_dir}
    elif not any(is_sequence):
      split_dirs = {}
      for split_dir in top:
        if not _SPLIT_NAME.fullmatch(split_dir.name):
          raise common.InvalidDatasetError(
              f'Bad split folder name {split_dir}: use letters, digits and _ (train, validation, test, ...).')
        split_dirs[split_dir.name] = split_dir
    else:
      sequence, other = top[is_sequence.index(True)], top[is_sequence.index(False)]
      raise common.InvalidDatasetError(
          f'{manual_dir} mixes sequence folders (such as {sequence}, with {config.blur_dir}/ or {config.sharp_dir}/) '
          f'with other folders (such as {other}); put sequences either all directly in it or all in split folders.')
    splits = {}
    for split, split_dir in split_dirs.items():
      sequences = []
      for seq_dir in common.list_sequence_dirs(split_dir):
        if not self._is_sequence_dir(seq_dir):
          raise common.InvalidDatasetError(
              f'{seq_dir} is not a sequence folder: it should hold the frame folders {config.blur_dir}/ and '
              f'{config.sharp_dir}/ (set their names with --blur_dir / --sharp_dir).')
        sequences.append(common.paired_sequence(seq_dir.name, seq_dir / config.blur_dir,
                                                seq_dir / config.sharp_dir, FRAME_NAME, _FRAME_NAME_DESCRIPTION))
      splits[split] = sequences
    self.info.metadata[FOLDERS_METADATA_KEY] = config.folders()
    return splits

  def _is_sequence_dir(self, path: epath.Path) -> bool:
    return (path / self.builder_config.blur_dir).is_dir() or (path / self.builder_config.sharp_dir).is_dir()

  def stale_reason(self) -> str | None:
    """Why the prepared dataset was built with other folder names than this config's, or None."""
    stored = self.info.metadata.get(FOLDERS_METADATA_KEY)
    if stored != self.builder_config.folders():
      return (f'{self.data_dir} was built from folders {stored}, not {self.builder_config.folders()}')
    return None
