"""GOPRO TFDS builder; importing this package registers `gopro`."""

from datasets.gopro.gopro_dataset_builder import Builder
