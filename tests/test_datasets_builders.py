"""Runs the builders' own TFDS tests (`datasets/<name>/<name>_dataset_builder_test.py`) under `pytest tests`.

The builder tests stay next to their builders, as in TFDS's own tree (and run alone with
`python -m datasets.bsd.bsd_dataset_builder_test`); importing their TestCase classes here lets
`python -m pytest tests` collect them without a second copy.
"""

from datasets.bsd.bsd_dataset_builder_test import BsdRawTest  # noqa: F401
from datasets.bsd.bsd_dataset_builder_test import BsdTest  # noqa: F401
from datasets.dvd.dvd_dataset_builder_test import DvdTest  # noqa: F401
from datasets.dvd.dvd_dataset_builder_test import DvdPresplitTest  # noqa: F401
from datasets.gopro.gopro_dataset_builder_test import GoproTest  # noqa: F401
from datasets.paired_folders.paired_folders_dataset_builder_test import PairedFoldersTest  # noqa: F401
from datasets.reds.reds_dataset_builder_test import RedsTest  # noqa: F401
from datasets.synthetic_blur.synthetic_blur_dataset_builder_test import SyntheticBlurTest  # noqa: F401
