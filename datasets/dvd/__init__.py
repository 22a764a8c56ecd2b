"""DVD (Su et al. CVPR 2017, DeepVideoDeblurring) TFDS builder; importing this package registers `dvd`."""

from datasets.dvd.dvd_dataset_builder import Builder
