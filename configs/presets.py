r"""The paper's model variants (Tables 2-6) as config-argument tokens; not a config itself.

Each preset is a function whose docstring gives the paper's table, cost and scores for that row and the command
that trains it; it returns the model fields (`ModelPreset`). Dataset configs take a preset as an argument token
(`configs/gopro.py:b9c60`, `configs/reds.py:p1f0`, `configs/bsd.py:2ms16ms,b9c80`, `configs/dvd.py:b15c80`);
the Table 4 ablation rows are `configs/ablation.py:<row>`. Print a preset's cost with

  python -m estrnn_jax.profile --config configs/gopro.py:b9c60

(thop GMACs per 720x1280 frame, the paper's convention; the paper's own figures also counted biases, ~0.2% more).
Scores are the paper's, GOPRO (and REDS where the paper gives them), reference protocol; "C" in a name is the
paper's channel count, 5 x n_features. Tables 4-6 are GOPRO experiments (B9, 2 past + 2 future frames unless
the row changes them).
"""

from collections.abc import Callable
import dataclasses

import ml_collections


@dataclasses.dataclass(frozen=True)
class ModelPreset:
  """The `config.model` fields a preset sets (every other model field keeps the config's value)."""
  n_features: int
  n_blocks: int
  past_frames: int = 2
  future_frames: int = 2
  cell: str = 'rdb'
  fusion: str = 'gsa'

  def apply(self, config: ml_collections.ConfigDict) -> None:
    """Sets the preset's model on `config.model` (the paper's model has no input skip: residual=False)."""
    for field in dataclasses.fields(self):
      config.model[field.name] = getattr(self, field.name)
    config.model.residual = False


# --- Table 2: B9 with 60 ... 90 channels (GOPRO and REDS). -------------------------------------------------------

def b9c60() -> ModelPreset:
  """Table 2, B9C60, 92.57 GMACs: GOPRO 30.12 / 0.8837, REDS 31.64 / 0.8930 (Table 3: 0.99 M parameters).

  python -m estrnn_jax.main --config configs/gopro.py:b9c60 --workdir WORKDIR   (or configs/reds.py:b9c60)
  """
  return ModelPreset(12, 9)


def b9c65() -> ModelPreset:
  """Table 2, B9C65, 108.20 GMACs: GOPRO 30.30 / 0.8892, REDS 31.63 / 0.8965.

  python -m estrnn_jax.main --config configs/gopro.py:b9c65 --workdir WORKDIR   (or configs/reds.py:b9c65)
  """
  return ModelPreset(13, 9)


def b9c70() -> ModelPreset:
  """Table 2, B9C70, 125.55 GMACs: GOPRO 30.45 / 0.8909, REDS 31.94 / 0.8968.

  python -m estrnn_jax.main --config configs/gopro.py:b9c70 --workdir WORKDIR   (or configs/reds.py:b9c70)
  """
  return ModelPreset(14, 9)


def b9c75() -> ModelPreset:
  """Table 2, B9C75, 143.71 GMACs: GOPRO 30.58 / 0.8923, REDS 32.06 / 0.9022.

  python -m estrnn_jax.main --config configs/gopro.py:b9c75 --workdir WORKDIR   (or configs/reds.py:b9c75)
  """
  return ModelPreset(15, 9)


def b9c80() -> ModelPreset:
  """Table 2, B9C80, 163.61 GMACs: GOPRO 30.79 / 0.9016, REDS 32.33 / 0.9060. Also Table 5's B9 row (163.31
  GMACs, GOPRO 30.79), Table 6's (2 past, 2 future) row and Table 4's full model.

  python -m estrnn_jax.main --config configs/gopro.py:b9c80 --workdir WORKDIR   (or configs/reds.py:b9c80)
  """
  return ModelPreset(16, 9)


def b9c85() -> ModelPreset:
  """Table 2, B9C85, 184.25 GMACs: GOPRO 31.01 / 0.9013, REDS 32.34 / 0.9074.

  python -m estrnn_jax.main --config configs/gopro.py:b9c85 --workdir WORKDIR   (or configs/reds.py:b9c85)
  """
  return ModelPreset(17, 9)


def b9c90() -> ModelPreset:
  """Table 2, B9C90, 206.70 GMACs: GOPRO 31.07 / 0.9023, REDS 32.63 / 0.9110.

  python -m estrnn_jax.main --config configs/gopro.py:b9c90 --workdir WORKDIR   (or configs/reds.py:b9c90)
  """
  return ModelPreset(18, 9)


# --- Table 5: C80 with 3 ... 15 blocks (GOPRO). -------------------------------------------------------------------

def b3c80() -> ModelPreset:
  """Table 5, B3C80, 123.03 GMACs: GOPRO 29.74 dB.

  python -m estrnn_jax.main --config configs/gopro.py:b3c80 --workdir WORKDIR
  """
  return ModelPreset(16, 3)


def b6c80() -> ModelPreset:
  """Table 5, B6C80, 143.32 GMACs: GOPRO 30.31 dB.

  python -m estrnn_jax.main --config configs/gopro.py:b6c80 --workdir WORKDIR
  """
  return ModelPreset(16, 6)


def b12c80() -> ModelPreset:
  """Table 5, B12C80, 183.90 GMACs: GOPRO 31.03 dB.

  python -m estrnn_jax.main --config configs/gopro.py:b12c80 --workdir WORKDIR
  """
  return ModelPreset(16, 12)


def b15c80() -> ModelPreset:
  """The paper's main model, B15C80 (the released BSD weights), 203.74 GMACs (Table 3; 204.19 in Table 5):
  GOPRO 31.27 / 0.903, REDS 32.82 / 0.915 (Tables 3, 5, 8); BSD (Table 7) 1ms8ms 33.36 / 0.937, 2ms16ms
  31.95 / 0.925, 3ms24ms 31.39 / 0.926; DVD 30.68 / 0.897 (Table 8).

  python -m estrnn_jax.main --config configs/gopro.py:b15c80 --workdir WORKDIR   (or reds, bsd, dvd)
  """
  return ModelPreset(16, 15)


# --- Table 6: B9C80 with other windows of past / future frames (GOPRO). ---------------------------------------------

def p1f0() -> ModelPreset:
  """Table 6, B9C80 with 1 past and no future frame (causal: zero latency), 119.93 GMACs: GOPRO 30.54 dB.

  python -m estrnn_jax.main --config configs/gopro.py:p1f0 --workdir WORKDIR
  """
  return ModelPreset(16, 9, past_frames=1, future_frames=0)


def p2f0() -> ModelPreset:
  """Table 6, B9C80 with 2 past and no future frames (causal: zero latency), 133.75 GMACs: GOPRO 30.57 dB.

  python -m estrnn_jax.main --config configs/gopro.py:p2f0 --workdir WORKDIR
  """
  return ModelPreset(16, 9, past_frames=2, future_frames=0)


def p3f0() -> ModelPreset:
  """Table 6, B9C80 with 3 past and no future frames (causal: zero latency), 148.31 GMACs: GOPRO 30.69 dB.

  python -m estrnn_jax.main --config configs/gopro.py:p3f0 --workdir WORKDIR
  """
  return ModelPreset(16, 9, past_frames=3, future_frames=0)


def p1f1() -> ModelPreset:
  """Table 6, B9C80 with 1 past and 1 future frame, 133.75 GMACs: GOPRO 30.58 dB.

  python -m estrnn_jax.main --config configs/gopro.py:p1f1 --workdir WORKDIR
  """
  return ModelPreset(16, 9, past_frames=1, future_frames=1)


def p2f2() -> ModelPreset:
  """Table 6, B9C80 with 2 past and 2 future frames (= b9c80), 163.61 GMACs: GOPRO 30.79 dB.

  python -m estrnn_jax.main --config configs/gopro.py:p2f2 --workdir WORKDIR
  """
  return ModelPreset(16, 9, past_frames=2, future_frames=2)


def p3f3() -> ModelPreset:
  """Table 6, B9C80 with 3 past and 3 future frames, 196.42 GMACs: GOPRO 30.82 dB.

  python -m estrnn_jax.main --config configs/gopro.py:p3f3 --workdir WORKDIR
  """
  return ModelPreset(16, 9, past_frames=3, future_frames=3)


# --- Table 4: the ablation (GOPRO, B9; channels adjusted to keep the cost). See configs/ablation.py. ---------------

def ablation_base() -> ModelPreset:
  """Table 4, no fusion, no RDB cell, no GSA: ResBlock cell, each frame from its own features, B9C110,
  163.48 GMACs: GOPRO 30.29 dB.

  python -m estrnn_jax.main --config configs/ablation.py:base --workdir WORKDIR
  """
  return ModelPreset(22, 9, past_frames=0, future_frames=0, cell='resblock', fusion='none')


def ablation_fusion() -> ModelPreset:
  """Table 4, fusion only: ResBlock cell, the window's features concatenated (no GSA), B9C100, 168.56 GMACs:
  GOPRO 30.51 dB.

  python -m estrnn_jax.main --config configs/ablation.py:fusion --workdir WORKDIR
  """
  return ModelPreset(20, 9, cell='resblock', fusion='concat')


def ablation_rdb() -> ModelPreset:
  """Table 4, RDB cell only: each frame from its own features, B9C100, 165.59 GMACs: GOPRO 30.46 dB.

  python -m estrnn_jax.main --config configs/ablation.py:rdb --workdir WORKDIR
  """
  return ModelPreset(20, 9, past_frames=0, future_frames=0, fusion='none')


def ablation_fusion_rdb() -> ModelPreset:
  """Table 4, fusion and RDB cell, no GSA (features concatenated), B9C90, 161.28 GMACs: GOPRO 30.55 dB.

  python -m estrnn_jax.main --config configs/ablation.py:fusion_rdb --workdir WORKDIR
  """
  return ModelPreset(18, 9, fusion='concat')


def ablation_fusion_gsa() -> ModelPreset:
  """Table 4, fusion with GSA, no RDB cell (ResBlock cell), B9C85, 162.69 GMACs: GOPRO 30.69 dB.

  python -m estrnn_jax.main --config configs/ablation.py:fusion_gsa --workdir WORKDIR
  """
  return ModelPreset(17, 9, cell='resblock')


def ablation_full() -> ModelPreset:
  """Table 4, the full model (fusion, RDB cell, GSA) = B9C80, 163.61 GMACs: GOPRO 30.79 dB.

  python -m estrnn_jax.main --config configs/ablation.py:full --workdir WORKDIR
  """
  return ModelPreset(16, 9)


_Preset = Callable[[], ModelPreset]

# The tokens dataset configs accept (Tables 2, 3, 5 and 6).
MODEL_PRESETS: dict[str, _Preset] = {f.__name__: f for f in (
    b9c60, b9c65, b9c70, b9c75, b9c80, b9c85, b9c90, b3c80, b6c80, b12c80, b15c80,
    p1f0, p2f0, p3f0, p1f1, p2f2, p3f3)}
# Table 4's rows, by the names configs/ablation.py accepts.
ABLATION_PRESETS: dict[str, _Preset] = {f.__name__.removeprefix('ablation_'): f for f in (
    ablation_base, ablation_fusion, ablation_rdb, ablation_fusion_rdb, ablation_fusion_gsa, ablation_full)}
