"""TFDS's standard builder test for GOPRO on dummy_data/ (the real `GOPRO_Large/...` layout, 48x32 frames)."""

import tensorflow_datasets as tfds

from datasets.gopro import gopro_dataset_builder


class GoproTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = gopro_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [
      'blur',
      # blur_gamma_960x540's code path on the dummy frames' size: 48x32 -> 36x24.
      gopro_dataset_builder.GoproConfig(name='blur_gamma_36x24', blur_folder='blur_gamma',
                                        downsample_from=(48, 32)),
  ]
  SPLITS = {'train': 7, 'test': 3}


if __name__ == '__main__':
  tfds.testing.test_main()
