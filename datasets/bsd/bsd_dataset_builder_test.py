"""TFDS's standard builder test for BSD on dummy_data/ (the real `BSD_2ms16ms/...` layout, passed as the
release folder's parent): the RGB frames (config 2ms16ms) and the 16-bit RAW frames next to them (2ms16ms_raw)."""

import tensorflow_datasets as tfds

from datasets.bsd import bsd_dataset_builder


class BsdTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = bsd_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['2ms16ms']
  SPLITS = {'train': 7, 'validation': 3, 'test': 3}  # frames: train 000 (3) + 001 (4)


class BsdRawTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = bsd_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['2ms16ms_raw']
  SPLITS = {'train': 7, 'validation': 3, 'test': 3}


if __name__ == '__main__':
  tfds.testing.test_main()
