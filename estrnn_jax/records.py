"""The record format of the project's frame datasets: what the TFDS builders write and the pipeline reads.

Every dataset is a set of videos, each a sequence of (blurry, sharp) uint8 RGB frame pairs, stored as
**one record per frame** in (sequence, frame) order with the features of `frame_features()`:

  blur, sharp      bytes: uint8 (H, W, 3) RGB in the dataset's frame format (`estrnn_jax.frame_storage`:
                   'raw' pixels by default, or lossless PNG), recorded in the metadata
  sequence         the sequence's name (its folder name in the release)
  frame_index      int32, 0-based position of the frame in its sequence
  sequence_length  int32, frames in the sequence

The per-split sequence table -- (name, index of the sequence's first record, length) in record order --
is stored in the dataset's metadata (`metadata.json`, key `SEQUENCES_METADATA_KEY`), so the input pipeline
enumerates T-frame windows with `sequence_table()` without reading any image.

`datasets/` (the builders) and `estrnn_jax.input_pipeline` both import this module; it imports neither.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

# A sequence table row: (name, index of its first record in the split, number of frames).
SequenceRow = tuple[str, int, int]

# Key of the sequence tables in `DatasetInfo.metadata`: {split: [[name, first_record, length], ...]}.
SEQUENCES_METADATA_KEY = 'sequences'


def frame_features() -> tfds.features.FeaturesDict:
  """The features of one record (one frame pair); see the module docstring."""
  # Frames are plain bytes whatever the format (TFDS serialises its PNG `Image` feature the same way, so
  # datasets built with that feature read back unchanged); `frame_storage.decode` turns them into pixels.
  frame_doc = 'uint8 (H, W, 3) RGB frame in the dataset\'s frame format (estrnn_jax.frame_storage)'
  return tfds.features.FeaturesDict({
      'blur': tfds.features.Tensor(shape=(), dtype=np.object_, doc=frame_doc),
      'sharp': tfds.features.Tensor(shape=(), dtype=np.object_, doc=frame_doc),
      'sequence': tfds.features.Text(),
      'frame_index': tfds.features.Scalar(dtype=np.int32),
      'sequence_length': tfds.features.Scalar(dtype=np.int32),
  })


def make_example(sequence: str, frame_index: int, sequence_length: int, blur: bytes,
                 sharp: bytes) -> dict[str, Any]:
  """One record; `blur`, `sharp`: the frames' bytes in the dataset's frame format."""
  return {
      'blur': blur,
      'sharp': sharp,
      'sequence': sequence,
      'frame_index': np.int32(frame_index),
      'sequence_length': np.int32(sequence_length),
  }


def build_sequence_table(names_and_lengths: Iterable[tuple[str, int]]) -> list[SequenceRow]:
  """[(name, length), ...] in record order -> [(name, first_record_index, length), ...]."""
  table, first = [], 0
  for name, length in names_and_lengths:
    table.append((name, first, length))
    first += length
  return table


def set_sequence_tables(info: tfds.core.DatasetInfo, tables: Mapping[str, Sequence[SequenceRow]]):
  """Stores the per-split sequence tables in `info.metadata` (written to `metadata.json`)."""
  info.metadata[SEQUENCES_METADATA_KEY] = {
      split: [[name, int(first), int(length)] for name, first, length in table]
      for split, table in tables.items()
  }


def sequence_table(builder_or_info: Any, split: str | None = None) -> list[SequenceRow]:
  """The sequences of a split, in record order: [(name, first_record_index, length), ...].

  Records `first .. first + length - 1` of the split's ArrayRecord data source are frames 0 .. length-1
  of sequence `name`.

  Args:
    builder_or_info: a prepared `tfds.core.DatasetBuilder`, its `DatasetInfo`, or a data source from
      `tfds.data_source` / `builder.as_data_source` (then `split` defaults to the source's split).
    split: a whole split's name ('train', 'validation', 'test'); slices such as 'train[:10]' have no
      table.

  Raises:
    ValueError: no table in the metadata, an unknown split, or a table that disagrees with the split's
      number of records.
  """
  if isinstance(builder_or_info, tfds.core.DatasetInfo):
    info = builder_or_info
  elif hasattr(builder_or_info, 'dataset_info'):  # ArrayRecordDataSource
    info = builder_or_info.dataset_info
    if split is None and getattr(builder_or_info, 'split', None) is not None:
      split = str(builder_or_info.split)
  elif hasattr(builder_or_info, 'info'):
    info = builder_or_info.info
  else:
    raise TypeError(f'Expected a DatasetBuilder, DatasetInfo or data source, got {type(builder_or_info)}')
  if split is None:
    raise ValueError('sequence_table needs a split name')
  split = str(split)
  metadata = info.metadata
  try:
    tables = metadata[SEQUENCES_METADATA_KEY]
  except (KeyError, TypeError):
    raise ValueError(
        f'Dataset {info.full_name} at {info.data_dir} has no sequence table in its metadata '
        f'(metadata.json); prepare it with `python -m datasets.build`.') from None
  if split not in tables:
    raise ValueError(f'Dataset {info.full_name} has no sequence table for split {split!r}; '
                     f'tables exist for {sorted(tables)} (slices of a split have none).')
  table = [(str(name), int(first), int(length)) for name, first, length in tables[split]]
  total = sum(length for _, _, length in table)
  if split in info.splits and info.splits[split].num_examples != total:
    raise ValueError(f'Dataset {info.full_name} split {split!r}: the sequence table covers {total} frames '
                     f'but the split has {info.splits[split].num_examples} records.')
  return table
