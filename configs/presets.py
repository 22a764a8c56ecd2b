r"""The paper's model variants (Tables 2-6) as config-argument tokens; not a config itself.

Each preset is a function whose docstring gives the paper's table, cost and scores for that row and the command
that trains it (`help(presets.MODEL_PRESETS['b9c60'])`); it returns the model fields (`ModelPreset`). The rows are
written once, as tables, below. Dataset configs take a preset as an argument token
(`configs/gopro.py:b9c60`, `configs/reds.py:p1f0`, `configs/bsd.py:2ms16ms,b9c80`, `configs/dvd.py:b15c80`);
the Table 4 ablation rows are `configs/ablation.py:<row>`. Print a preset's cost with

  python -m estrnn_jax.profile --config configs/gopro.py:b9c60

(thop GMACs per 720x1280 frame, the paper's convention; the paper's own figures also counted biases, ~0.2% more).
Scores are the paper's, GOPRO (and REDS where the paper gives them), reference protocol; "C" in a name is the
paper's channel count, 5 x n_features. Tables 4-6 are GOPRO experiments (B9, 2 past + 2 future frames unless
the row changes them).
"""

from collections.abc import Callable, Mapping
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


_Preset = Callable[[], ModelPreset]


def _preset(name: str, fields: ModelPreset, row: str, command: str) -> _Preset:
  """A preset named `name`: returns `fields`; its docstring is the paper's `row` and the `command` that trains it."""
  def preset() -> ModelPreset:
    return fields

  preset.__name__ = preset.__qualname__ = name
  preset.__doc__ = f'{row}\n\n  {command}\n  '
  return preset


def _presets(rows: Mapping[str, tuple[ModelPreset, str]], config: str, *, also: str = '', prefix: str = ''
             ) -> dict[str, _Preset]:
  """Presets from table rows {name: (fields, the paper's row)}, trained with `configs/<config>.py:<name>`; `also`
  names the other configs that take them ('{name}' is replaced)."""
  def command(name: str) -> str:
    alternative = f'   (or {also.format(name=name)})' if also else ''
    return f'python -m estrnn_jax.main --config configs/{config}.py:{name} --workdir WORKDIR{alternative}'
  return {name: _preset(prefix + name, fields, row, command(name)) for name, (fields, row) in rows.items()}


# Table 2: B9 with 60 ... 90 channels (GOPRO and REDS).
_TABLE_2 = {
    'b9c60': (ModelPreset(12, 9), 'Table 2, B9C60, 92.57 GMACs: GOPRO 30.12 / 0.8837, REDS 31.64 / 0.8930 (Table 3: '
                                  '0.99 M parameters).'),
    'b9c65': (ModelPreset(13, 9), 'Table 2, B9C65, 108.20 GMACs: GOPRO 30.30 / 0.8892, REDS 31.63 / 0.8965.'),
    'b9c70': (ModelPreset(14, 9), 'Table 2, B9C70, 125.55 GMACs: GOPRO 30.45 / 0.8909, REDS 31.94 / 0.8968.'),
    'b9c75': (ModelPreset(15, 9), 'Table 2, B9C75, 143.71 GMACs: GOPRO 30.58 / 0.8923, REDS 32.06 / 0.9022.'),
    'b9c80': (ModelPreset(16, 9), 'Table 2, B9C80, 163.61 GMACs: GOPRO 30.79 / 0.9016, REDS 32.33 / 0.9060. Also '
                                  "Table 5's B9 row (163.31 GMACs, GOPRO 30.79), Table 6's (2 past, 2 future) row and "
                                  "Table 4's full model."),
    'b9c85': (ModelPreset(17, 9), 'Table 2, B9C85, 184.25 GMACs: GOPRO 31.01 / 0.9013, REDS 32.34 / 0.9074.'),
    'b9c90': (ModelPreset(18, 9), 'Table 2, B9C90, 206.70 GMACs: GOPRO 31.07 / 0.9023, REDS 32.63 / 0.9110.'),
}
# Table 5: C80 with 3 ... 15 blocks (GOPRO); its B9 row is b9c80 above.
_TABLE_5 = {
    'b3c80': (ModelPreset(16, 3), 'Table 5, B3C80, 123.03 GMACs: GOPRO 29.74 dB.'),
    'b6c80': (ModelPreset(16, 6), 'Table 5, B6C80, 143.32 GMACs: GOPRO 30.31 dB.'),
    'b12c80': (ModelPreset(16, 12), 'Table 5, B12C80, 183.90 GMACs: GOPRO 31.03 dB.'),
}
_MAIN_MODEL = {
    'b15c80': (ModelPreset(16, 15), "The paper's main model, B15C80 (the released BSD weights), 203.74 GMACs (Table "
                                    '3; 204.19 in Table 5): GOPRO 31.27 / 0.903, REDS 32.82 / 0.915 (Tables 3, 5, 8); '
                                    'BSD (Table 7) 1ms8ms 33.36 / 0.937, 2ms16ms 31.95 / 0.925, 3ms24ms 31.39 / 0.926; '
                                    'DVD 30.68 / 0.897 (Table 8).'),
}
# Table 6: B9C80 with other windows of past / future frames (GOPRO): (past, future, GMACs, GOPRO PSNR).
_WINDOWS = ((1, 0, 119.93, 30.54), (2, 0, 133.75, 30.57), (3, 0, 148.31, 30.69), (1, 1, 133.75, 30.58),
            (2, 2, 163.61, 30.79), (3, 3, 196.42, 30.82))


def _window_row(past: int, future: int, gmacs: float, psnr: float) -> tuple[ModelPreset, str]:
  frames = 'frames' if max(past, future) > 1 else 'frame'
  later = f'{future} future' if future else 'no future'
  note = ' (causal: zero latency)' if not future else (' (= b9c80)' if (past, future) == (2, 2) else '')
  return (ModelPreset(16, 9, past_frames=past, future_frames=future),
          f'Table 6, B9C80 with {past} past and {later} {frames}{note}, {gmacs:.2f} GMACs: GOPRO {psnr:.2f} dB.')


_TABLE_6 = {f'p{row[0]}f{row[1]}': _window_row(*row) for row in _WINDOWS}
# Table 4: the ablation (GOPRO, B9; channels adjusted to keep the cost). See configs/ablation.py.
_TABLE_4 = {
    'base': (ModelPreset(22, 9, past_frames=0, future_frames=0, cell='resblock', fusion='none'),
             'Table 4, no fusion, no RDB cell, no GSA: ResBlock cell, each frame from its own features, B9C110, '
             '163.48 GMACs: GOPRO 30.29 dB.'),
    'fusion': (ModelPreset(20, 9, cell='resblock', fusion='concat'),
               "Table 4, fusion only: ResBlock cell, the window's features concatenated (no GSA), B9C100, 168.56 "
               'GMACs: GOPRO 30.51 dB.'),
    'rdb': (ModelPreset(20, 9, past_frames=0, future_frames=0, fusion='none'),
            'Table 4, RDB cell only: each frame from its own features, B9C100, 165.59 GMACs: GOPRO 30.46 dB.'),
    'fusion_rdb': (ModelPreset(18, 9, fusion='concat'),
                   'Table 4, fusion and RDB cell, no GSA (features concatenated), B9C90, 161.28 GMACs: GOPRO 30.55 '
                   'dB.'),
    'fusion_gsa': (ModelPreset(17, 9, cell='resblock'),
                   'Table 4, fusion with GSA, no RDB cell (ResBlock cell), B9C85, 162.69 GMACs: GOPRO 30.69 dB.'),
    'full': (ModelPreset(16, 9),
             'Table 4, the full model (fusion, RDB cell, GSA) = B9C80, 163.61 GMACs: GOPRO 30.79 dB.'),
}

# The tokens dataset configs accept (Tables 2, 3, 5 and 6).
MODEL_PRESETS: dict[str, _Preset] = {
    **_presets(_TABLE_2, 'gopro', also='configs/reds.py:{name}'), **_presets(_TABLE_5, 'gopro'),
    **_presets(_MAIN_MODEL, 'gopro', also='reds, bsd, dvd'), **_presets(_TABLE_6, 'gopro')}
# Table 4's rows, by the names configs/ablation.py accepts.
ABLATION_PRESETS: dict[str, _Preset] = _presets(_TABLE_4, 'ablation', prefix='ablation_')
