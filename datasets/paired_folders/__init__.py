"""Your own paired videos as a TFDS dataset; importing this package registers `paired_folders`."""

from datasets.paired_folders.paired_folders_dataset_builder import Builder
