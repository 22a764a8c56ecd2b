"""Synthetic blur TFDS builder (rendered by `estrnn_jax.synthetic`); importing this package registers `synthetic_blur`."""

from datasets.synthetic_blur.synthetic_blur_dataset_builder import Builder
