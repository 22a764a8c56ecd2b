"""TFDS's standard builder test for the synthetic set, on a config small enough to render in a blink."""

import pathlib

import tensorflow_datasets as tfds

from datasets.synthetic_blur import synthetic_blur_dataset_builder
from estrnn_jax import synthetic


class SyntheticBlurTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = synthetic_blur_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = [
      synthetic_blur_dataset_builder.SyntheticBlurConfig(
          name='test_32x32',
          synthetic_config=synthetic.SyntheticConfig(
              height=32, width=32, num_frames=3, subframes=3,
              num_sequences={'train': 2, 'validation': 1, 'test': 1})),
  ]
  SPLITS = {'train': 6, 'validation': 3, 'test': 3}
  # Nothing is downloaded; the test case still wants an existing folder to stand for the downloads.
  EXAMPLE_DIR = str(pathlib.Path(__file__).parent)


if __name__ == '__main__':
  tfds.testing.test_main()
