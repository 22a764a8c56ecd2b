"""REDS TFDS builder; importing this package registers `reds`."""

from datasets.reds.reds_dataset_builder import Builder
