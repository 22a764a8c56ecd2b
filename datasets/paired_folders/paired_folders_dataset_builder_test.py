"""TFDS's standard builder test for paired folders on dummy_data/ (train and test split folders, PNG and
JPEG frames with and without a name prefix)."""

import tensorflow_datasets as tfds

from datasets.paired_folders import paired_folders_dataset_builder


class PairedFoldersTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = paired_folders_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['default']
  SPLITS = {'train': 5, 'test': 2}


if __name__ == '__main__':
  tfds.testing.test_main()
