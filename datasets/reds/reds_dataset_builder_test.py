"""TFDS's standard builder test for REDS on dummy_data/ (the zips' `train/train_blur/...` layout)."""

import tensorflow_datasets as tfds

from datasets.reds import reds_dataset_builder


class RedsTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = reds_dataset_builder.Builder
  SPLITS = {'train': 6, 'validation': 3}


if __name__ == '__main__':
  tfds.testing.test_main()
