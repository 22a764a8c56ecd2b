"""BSD (Beam-Splitter Deblurring dataset) TFDS builder; importing this package registers `bsd`."""

from datasets.bsd.bsd_dataset_builder import Builder
