"""TFDS builders for the video-deblurring datasets: BSD, GOPRO, REDS and the built-in synthetic blur set.

Each builder lives in its own folder in TFDS's layout (`<name>/<name>_dataset_builder.py` with
`class Builder`, its test, `dummy_data/`, `README.md`, `CITATIONS.bib`, `checksums.tsv`); importing the
folder's package (`import datasets.bsd`) registers the TFDS name (`bsd`). Every dataset is stored as
ArrayRecord, one record per frame, in (sequence, frame) order; `estrnn_jax.records.sequence_table` lists the
sequences of a split without reading any image. `python -m datasets.build` (or `datasets.build.build`)
prepares a dataset.

This package is deliberately not installable: it is importable only from the repository root (which
`python -m ...` puts on `sys.path`), so it never shadows Hugging Face's `datasets` in an environment.
Importing it is cheap: the builders are imported only by their own sub-packages.
"""
