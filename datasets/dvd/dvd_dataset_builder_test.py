"""TFDS's standard builder test for DVD on dummy_data/ (the release's `quantitative_datasets` layout and the
pre-split `train|test/` form, 48x32 JPEG frames)."""

import pathlib

import tensorflow_datasets as tfds

from datasets.dvd import dvd_dataset_builder


class DvdTest(tfds.testing.DatasetBuilderTestCase):
  """The release folder's parent as manual_dir: IMG_0003 and 720p_240fps_2 are test, the others train."""
  DATASET_CLASS = dvd_dataset_builder.Builder
  SPLITS = {'train': 5, 'test': 5}


class DvdPresplitTest(tfds.testing.DatasetBuilderTestCase):
  """The pre-split `train|test/<sequence>/{input,GT}/` form as manual_dir."""
  DATASET_CLASS = dvd_dataset_builder.Builder
  EXAMPLE_DIR = str(pathlib.Path(dvd_dataset_builder.__file__).parent / 'dummy_data' / 'presplit')
  SPLITS = {'train': 5, 'test': 5}


if __name__ == '__main__':
  tfds.testing.test_main()
