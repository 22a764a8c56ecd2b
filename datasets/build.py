r"""Prepares one of the project's datasets as ArrayRecord files, single process (no apache-beam).

  python -m datasets.build --dataset bsd/2ms16ms --manual_dir ~/data --data_dir ~/tensorflow_datasets
  python -m datasets.build --dataset gopro/blur_gamma_960x540 --manual_dir ~/data --data_dir gs://bucket/tfds
  python -m datasets.build --dataset reds --manual_dir ~/data/REDS
  python -m datasets.build --dataset dvd --manual_dir ~/data
  python -m datasets.build --dataset synthetic_blur/small
  python -m datasets.build --dataset paired_folders/my_videos --manual_dir ~/my_videos --blur_dir blurry
  python -m datasets.build --dataset reds --manual_dir ~/data/REDS --frame_format png   # smaller, slower to read

`--dataset` is `<name>[/<config>]` with name one of bsd, gopro, reds, dvd, synthetic_blur, paired_folders
(the default config when omitted). For `paired_folders` (your own videos) the config is the name you give
your dataset, and `--blur_dir` / `--sharp_dir` name the frame folders inside each sequence folder. `--manual_dir` is where the release was unzipped (each builder's
MANUAL_DOWNLOAD_INSTRUCTIONS say how; not needed for synthetic_blur). The result lands in
`<data_dir>/<name>/<config>/<version>/` and is read with
`tfds.data_source('<name>/<config>', data_dir=<data_dir>, split=...)`. An existing, complete dataset is
reused unless `--overwrite`; `--data_dir` is checked to be writable first; a failed or interrupted build
leaves nothing behind: TFDS writes into a temporary folder and renames it when done, and the folders it made
before failing (`downloads/`, `<name>/<config>/`, `<name>/.config/`) are removed again.
`--frame_format` is how frames are stored (`estrnn_jax.frame_storage`): 'raw' (default: a training window
reads at memory speed) or 'png' (smaller, every read decodes whole frames); the choice is recorded in the
dataset's metadata.
"""

from collections.abc import Iterator, Sequence
import contextlib
import os

from absl import app
from absl import flags
from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from datasets import common
from datasets.bsd import bsd_dataset_builder
from datasets.dvd import dvd_dataset_builder
from datasets.gopro import gopro_dataset_builder
from datasets.paired_folders import paired_folders_dataset_builder
from datasets.reds import reds_dataset_builder
from datasets.synthetic_blur import synthetic_blur_dataset_builder
from estrnn_jax import atomic
from estrnn_jax import cli
from estrnn_jax import destinations
from estrnn_jax import frame_storage
from estrnn_jax import records

BUILDER_CLASSES: tuple[type[tfds.core.GeneratorBasedBuilder], ...] = (
    bsd_dataset_builder.Builder,
    dvd_dataset_builder.Builder,
    gopro_dataset_builder.Builder,
    paired_folders_dataset_builder.Builder,
    reds_dataset_builder.Builder,
    synthetic_blur_dataset_builder.Builder,
)


def make_builder(name: str, data_dir: epath.PathLike | None = None, *, blur_dir: str | None = None,
                 sharp_dir: str | None = None, frame_format: str | None = None) -> common.FrameDatasetBuilder:
  """`'<name>[/<config>]'` -> an (unprepared or prepared) builder of one of this project's datasets.

  For `paired_folders/<your name>`, `blur_dir` / `sharp_dir` (default blur, sharp) name the frame folders.
  A new build stores frames in `frame_format` (None: the default, 'raw'); files are ArrayRecord.
  """
  options = {'data_dir': _expand(data_dir), 'frame_format': frame_format,
             'file_format': tfds.core.FileFormat.ARRAY_RECORD}
  base, _, config = name.partition('/')
  classes = {cls.name: cls for cls in BUILDER_CLASSES}
  if base not in classes:
    raise ValueError(f'Unknown dataset {name!r}; expected one of {sorted(classes)} (with an optional /<config>).')
  cls = classes[base]
  if cls is paired_folders_dataset_builder.Builder:
    folders = {k: v for k, v in (('blur_dir', blur_dir), ('sharp_dir', sharp_dir)) if v is not None}
    return cls(config=paired_folders_dataset_builder.PairedFoldersConfig(name=config or 'default', **folders),
               **options)
  if blur_dir is not None or sharp_dir is not None:
    raise ValueError(f'blur_dir and sharp_dir apply only to paired_folders datasets, not {name!r}.')
  if config and config not in cls.builder_configs:
    raise ValueError(f'Unknown config {config!r} of {base}; expected one of {sorted(cls.builder_configs)}.')
  if not config and cls.BUILDER_CONFIGS and '/' in name:
    raise ValueError(f'Empty config in {name!r}.')
  return cls(config=config or None, **options)


def _expand(path: epath.PathLike | None) -> str | None:
  """`~` expanded (flags like `--data_dir=~/x` reach us unexpanded); None and gs:// paths unchanged."""
  return None if path is None else os.fspath(epath.Path(path).expanduser())


def build(name: str, data_dir: epath.PathLike | None = None, manual_dir: epath.PathLike | None = None, *,
          overwrite: bool = False, blur_dir: str | None = None, sharp_dir: str | None = None,
          frame_format: str | None = None) -> common.FrameDatasetBuilder:
  """Prepares dataset `name` ('bsd/2ms16ms', 'synthetic_blur/small', ...) under `data_dir` as ArrayRecord.

  Returns the prepared builder (`builder.as_data_source(split)`, `records.sequence_table(builder, split)`).
  Reuses a complete dataset already there unless `overwrite`. `data_dir` None: TFDS's default
  (`$TFDS_DATA_DIR` or ~/tensorflow_datasets). `manual_dir`: the unzipped release (required except for
  synthetic_blur). `blur_dir` / `sharp_dir`: see `make_builder`. `frame_format`: 'raw' or 'png' for a new
  build (None: 'raw'); given, an existing dataset in another format is refused rather than reused (None
  reuses any). Not safe to call from several processes on the same `data_dir` at once: on
  multi-host, build on one process and wait for it.

  Raises:
    ValueError: an unknown name/config, a missing `manual_dir`, or an existing dataset that cannot be
      reused (stored in another file or frame format, a synthetic set rendered with other parameters, or a
      paired-folder set built from other folder names than those given).
    common.InvalidDatasetError: the release under `manual_dir` is incomplete or damaged.
  """
  builder = make_builder(name, data_dir, blur_dir=blur_dir, sharp_dir=sharp_dir, frame_format=frame_format)
  if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and manual_dir is None and not builder.is_prepared():
    raise ValueError(f'{name} needs manual_dir (--manual_dir), the folder where the release was unzipped:\n'
                     f'{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}')
  if manual_dir is not None and not builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    logging.warning('%s needs no manual_dir; ignoring %s', name, manual_dir)
    manual_dir = None
  if manual_dir is not None and (overwrite or not builder.is_prepared()):
    folder = epath.Path(_expand(manual_dir))
    if not folder.is_dir() or not any(folder.iterdir()):
      problem = 'is empty' if folder.is_dir() else 'is not a folder' if folder.exists() else 'does not exist'
      raise ValueError(f'manual_dir {manual_dir} {problem}; expected the folder where the {name} release was '
                       'unzipped (run without --manual_dir to see how to get it).')
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  download_config = tfds.download.DownloadConfig(
      manual_dir=_expand(manual_dir),
      download_mode=mode,
      compute_stats=tfds.download.ComputeStatsMode.SKIP,
  )
  if overwrite or not builder.is_prepared():
    destinations.check_writable(builder.data_dir_root, flag='--data_dir', into=True)
  with _removed_on_failure(epath.Path(builder.data_dir_root)):
    builder.download_and_prepare(download_config=download_config)  # ArrayRecord: set by make_builder
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise ValueError(f'{builder.data_dir} holds {builder.info.file_format.value} files, not ArrayRecord; '
                     'rebuild it with overwrite=True (--overwrite).')
  stored = builder.stored_frame_format()
  if frame_format is not None and stored != frame_format:
    raise ValueError(f'{builder.data_dir} holds frames stored as {stored}, not {frame_format}; rebuild it with '
                     f'overwrite=True (`python -m datasets.build --dataset {name} --frame_format {frame_format} '
                     '--overwrite`) or use it as it is.')
  check_stale = (isinstance(builder, synthetic_blur_dataset_builder.Builder)
                 or blur_dir is not None or sharp_dir is not None)
  if check_stale:
    stale = builder.stale_reason()
    if stale:
      raise ValueError(f'{stale}; rebuild it with overwrite=True (--overwrite).')
  return builder


@contextlib.contextmanager
def _removed_on_failure(root: epath.Path) -> Iterator[None]:
  """Deletes what a failed (or interrupted) build created under `root`: the folders TFDS makes before it
  writes (`downloads/`, `<name>/<config>/`, `<name>/.config/`, `root` itself), never what was there before."""
  before = _entries(root)
  try:
    yield
  except BaseException:
    for path in sorted(_entries(root) - before, key=lambda p: len(p.parts)):
      atomic.remove(path)   # shallowest first: a new folder takes its contents with it
    raise


def _entries(root: epath.Path, depth: int = 3) -> set[epath.Path]:
  """`root` and what lies at most `depth` levels below it (TFDS's layout: <name>/<config>/<version>)."""
  if not root.exists():
    return set()
  found, level = {root}, [root]
  for _ in range(depth):
    level = [child for folder in level if folder.is_dir() for child in folder.iterdir()]
    found.update(level)
  return found


def describe(builder: tfds.core.DatasetBuilder) -> str:
  """A short summary: where the dataset is, and per split its frames and sequences."""
  lines = [f'{builder.info.full_name} at {builder.data_dir}, frames stored as {builder.stored_frame_format()}']
  for split in builder.info.splits:
    table = records.sequence_table(builder, split)
    lines.append(f'  {split}: {builder.info.splits[split].num_examples} frames in {len(table)} sequences')
  return '\n'.join(lines)


def define_flags() -> None:
  """CLI flags; defined only when run as a program, so importing this module never touches absl's FLAGS."""
  flags.DEFINE_string('dataset', None, '<name>[/<config>]: bsd/2ms16ms, gopro/blur_gamma_960x540, '
                      'reds, dvd, synthetic_blur/small, paired_folders/<your name>, ...', required=True)
  flags.DEFINE_string('data_dir', None, 'Where to write the dataset (default: $TFDS_DATA_DIR or '
                      '~/tensorflow_datasets). May be gs://.')
  flags.DEFINE_string('manual_dir', None, 'Folder with the unzipped release (see the builder\'s '
                      'manual download instructions).')
  flags.DEFINE_bool('overwrite', False, 'Rebuild even if a complete dataset exists.')
  flags.DEFINE_string('blur_dir', None, 'paired_folders only: the blurry frame folder in each sequence folder '
                      '(default blur).')
  flags.DEFINE_string('sharp_dir', None, 'paired_folders only: the sharp frame folder in each sequence folder '
                      '(default sharp).')
  flags.DEFINE_enum('frame_format', None, list(frame_storage.FORMATS), 'How frames are stored: raw (default '
                    'for a new build; reads at memory speed) or png (smaller, decoded on every read). Given, '
                    'an existing dataset in the other format is refused instead of reused.')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  f = flags.FLAGS
  builder = build(f.dataset, f.data_dir, f.manual_dir, overwrite=f.overwrite, blur_dir=f.blur_dir,
                  sharp_dir=f.sharp_dir, frame_format=f.frame_format)
  print(describe(builder))


if __name__ == '__main__':
  define_flags()
  cli.run_absl('datasets.build', main)
