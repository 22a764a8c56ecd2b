"""BSD: the Beam-Splitter Deblurring dataset (ESTRNN, Zhong et al. ECCV 2020 / IJCV 2022).

Real blurry/sharp video pairs captured through a beam splitter at 640x480, 15 fps, in three exposure
settings (sharp exposure - blurry exposure): 1ms8ms, 2ms16ms, 3ms24ms. Per setting 60 train and 20
validation sequences of 100 frames, 20 test sequences of 150 frames. One record per frame.

Configs `<setting>` read the 8-bit RGB frames; `<setting>_raw` the 16-bit RAW (Bayer) frames of the full release,
`{Blur,Sharp}/RAW/%08d.tiff`, stored bit for bit as 'raw16' (for ESTRNN-RAW, `ESTRNN(input='raw')`).
"""

from etils import epath
import tensorflow_datasets as tfds

from datasets import common

_SPLIT_FOLDERS = {'train': 'train', 'validation': 'valid', 'test': 'test'}
SETTINGS = ('1ms8ms', '2ms16ms', '3ms24ms')
RAW_SUFFIX = '_raw'


class Builder(common.PairedFramesBuilder):
  """BSD frame pairs from the release's `BSD_<setting>/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/*.png` (configs
  `<setting>`) or `.../{Blur,Sharp}/RAW/*.tiff` (configs `<setting>_raw`)."""

  HOMEPAGE = 'https://github.com/zzh-tech/ESTRNN'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: one record per frame pair, ArrayRecord, (sequence, frame) order.',
  }
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name='1ms8ms', description='Sharp exposure 1 ms, blurry exposure 8 ms.'),
      tfds.core.BuilderConfig(name='2ms16ms', description='Sharp exposure 2 ms, blurry exposure 16 ms.'),
      tfds.core.BuilderConfig(name='3ms24ms', description='Sharp exposure 3 ms, blurry exposure 24 ms.'),
  ] + [
      tfds.core.BuilderConfig(name=f'{setting}{RAW_SUFFIX}', description=f'{setting}, 16-bit RAW (Bayer) frames of '
                              'the full release, stored bit for bit (frame format raw16).')
      for setting in SETTINGS
  ]
  DEFAULT_BUILDER_CONFIG_NAME = '2ms16ms'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  BSD cannot be downloaded automatically. Download the setting you need (or all three) from the links
  in https://github.com/zzh-tech/ESTRNN#downloading-datasets :
    Google Drive: https://drive.google.com/drive/folders/1LKLCE_RqPF5chqWgmh3pj7cg-t9KM2Hd
      (the full release with RAW frames also works: the RGB configs ignore the RAW folders, the *_raw
      configs read only them)
    Baidu: BSD_1ms8ms https://pan.baidu.com/s/1i7iMOZVOvBWmNYi8zkQIpw (password bsd1),
           BSD_2ms16ms https://pan.baidu.com/s/1ur-XHeNoSTPFQJwBVfbofQ (password bsd2),
           BSD_3ms24ms https://pan.baidu.com/s/1QNJlxiduwbQzCypy-7Mlbw (password bsd3)
  Unzip so that the frames sit at

    <manual_dir>/BSD_2ms16ms/{train,valid,test}/<sequence number>/{Blur,Sharp}/RGB/<frame number>.png

  (for the <setting>_raw configs: <manual_dir>/BSD_2ms16ms/.../{Blur,Sharp}/RAW/<frame number>.tiff, 16-bit)
  and pass --manual_dir <manual_dir> (or the BSD_2ms16ms folder itself).
  """

  def holds_raw_frames(self) -> bool:
    return self.builder_config.name.endswith(RAW_SUFFIX)

  def _find_sequences(self, manual_dir: epath.Path) -> dict[str, list[common.FrameSequence]]:
    release = f'BSD_{self.builder_config.name.removesuffix(RAW_SUFFIX)}'
    root = common.find_release_dir(manual_dir, release, markers=tuple(_SPLIT_FOLDERS.values()))
    if root.name.startswith('BSD_') and root.name != release:
      raise common.InvalidDatasetError(
          f'{root} is another BSD setting; config {self.builder_config.name} reads {release}.')
    raw = self.holds_raw_frames()
    kind, name_pattern, expected = (('RAW', common.TIFF_FRAME_NAME, '<number>.tiff') if raw
                                    else ('RGB', common.PNG_FRAME_NAME, '<number>.png'))
    splits = {}
    for split, folder in _SPLIT_FOLDERS.items():
      split_dir = common.require_dir(root / folder, f'BSD {split} split folder')
      sequences = []
      for seq_dir in common.list_sequence_dirs(split_dir):
        if not seq_dir.name.isdigit():
          raise common.InvalidDatasetError(
              f'Unexpected folder {seq_dir}: BSD sequence folders are named by integers (000, 001, ...).')
        sequences.append(common.paired_sequence(
            seq_dir.name, seq_dir / 'Blur' / kind, seq_dir / 'Sharp' / kind, name_pattern, expected))
      splits[split] = sequences
    return splits
