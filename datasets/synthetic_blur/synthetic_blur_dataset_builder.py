"""Synthetic blur: procedural blurry/sharp videos rendered by `estrnn_jax.synthetic` (nothing to download).

One builder config per preset of `estrnn_jax.synthetic.PRESETS`. Sequence `i` of split `s` is rendered
with seed `synthetic.sequence_seed(s, i)`, so a build is reproducible. One record per frame, same
features and order as the real datasets; the rendering parameters are stored in the metadata.
"""

from collections.abc import Iterator, Mapping
import dataclasses
import contextlib
from typing import Any

import tensorflow_datasets as tfds
import tqdm

from datasets import common
from estrnn_jax import frame_storage
from estrnn_jax import records
from estrnn_jax import synthetic

CONFIG_METADATA_KEY = 'synthetic_config'


@dataclasses.dataclass(eq=False)
class SyntheticBlurConfig(tfds.core.BuilderConfig):
  """A builder config wrapping the `synthetic.SyntheticConfig` to render."""
  synthetic_config: synthetic.SyntheticConfig = dataclasses.field(default_factory=synthetic.SyntheticConfig)


def config_to_json(config: synthetic.SyntheticConfig) -> dict[str, Any]:
  """The rendering parameters as plain JSON values (tuples as lists, `num_sequences` as a dict)."""
  out = {}
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if isinstance(value, Mapping):
      value = dict(value)
    elif isinstance(value, tuple):
      value = list(value)
    out[field.name] = value
  return out


def _describe(config: synthetic.SyntheticConfig) -> str:
  counts = ', '.join(f'{n} {split}' for split, n in config.num_sequences.items())
  return (f'{config.width}x{config.height}, {config.num_frames} frames per sequence, exposure '
          f'{config.exposure:g} of the frame interval; sequences: {counts}.')


def _render_frames(config: synthetic.SyntheticConfig, seed: int, frame_format: str) -> list[tuple[bytes, bytes]]:
  """Renders one sequence -> [(blur, sharp)] per frame in `frame_format`, checking the generator's output."""
  blur, sharp = synthetic.render_sequence(config, seed)
  shape = (config.num_frames, config.height, config.width, 3)
  for what, frames in (('blur', blur), ('sharp', sharp)):
    if frames.shape != shape or frames.dtype != 'uint8':
      raise ValueError(f'synthetic.render_sequence(seed={seed}) returned {what} {frames.dtype}{frames.shape}, '
                       f'expected uint8{shape}')
  return [(frame_storage.encode(b, frame_format), frame_storage.encode(s, frame_format))
          for b, s in zip(blur, sharp)]


class Builder(common.FrameDatasetBuilder):
  """Procedural blurry/sharp videos; the default config is the project's default training set."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': 'Initial release: one record per frame pair, ArrayRecord, (sequence, frame) order.',
  }
  BUILDER_CONFIGS = [
      SyntheticBlurConfig(name=name, synthetic_config=config, description=_describe(config))
      for name, config in synthetic.PRESETS.items()
  ]
  DEFAULT_BUILDER_CONFIG_NAME = 'small'

  def _info(self) -> tfds.core.DatasetInfo:
    return common.frame_dataset_info(self, homepage='')

  def stale_reason(self) -> str | None:
    """Why the prepared dataset no longer matches this config's rendering parameters, or None."""
    try:
      stored = self.info.metadata[CONFIG_METADATA_KEY]
    except KeyError:
      return f'{self.data_dir} has no {CONFIG_METADATA_KEY!r} metadata'
    current = config_to_json(self.builder_config.synthetic_config)
    if stored != current:
      changed = sorted(k for k in current.keys() | stored.keys() if stored.get(k) != current.get(k))
      return f'{self.data_dir} was rendered with other parameters ({", ".join(changed)} changed)'
    return None

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # nothing to download
    config = self.builder_config.synthetic_config
    counts = {split: n for split, n in config.num_sequences.items() if n > 0}
    records.set_sequence_tables(self.info, {
        split: records.build_sequence_table((f'{i:04d}', config.num_frames) for i in range(n))
        for split, n in counts.items()
    })
    self.info.metadata[CONFIG_METADATA_KEY] = config_to_json(config)
    self._record_frame_format()
    return {split: self._generate_examples(split, n) for split, n in counts.items()}

  def _generate_examples(self, split: str, num_sequences: int) -> Iterator[tuple[int, dict[str, Any]]]:
    config = self.builder_config.synthetic_config
    total = num_sequences * config.num_frames
    jobs = ((config, synthetic.sequence_seed(split, i), self.frame_format) for i in range(num_sequences))
    index = 0
    with contextlib.closing(common.ordered_prefetch(_render_frames, jobs, common.default_workers())) as rendered, \
         tqdm.tqdm(total=total, desc=f'{self.name}/{self.builder_config.name} {split}', unit=' frames',
                   mininterval=1.0) as progress:
      for i, frames in enumerate(rendered):
        for k, (blur, sharp) in enumerate(frames):
          yield common.record_key(index, total), records.make_example(f'{i:04d}', k, len(frames), blur, sharp)
          index += 1
          progress.update(1)
