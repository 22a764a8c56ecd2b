"""The Colab notebooks run top to bottom (tiny settings: ESTRNN_NOTEBOOK_SMOKE=1) and print real numbers."""

import pathlib
import re

import nbclient
import nbformat
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / 'notebooks'


def _execute(name: str) -> str:
  """Runs notebooks/<name> in a fresh kernel (cwd: notebooks/); returns all its text output."""
  notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
  nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                          resources={'metadata': {'path': str(NOTEBOOKS)}}).execute()
  texts = []
  for cell in notebook.cells:
    for output in cell.get('outputs', []):
      texts.append(output.get('text', '') or output.get('data', {}).get('text/plain', ''))
  return '\n'.join(texts)


def _number(pattern: str, text: str) -> float:
  match = re.search(pattern, text)
  assert match, f'{pattern!r} not found in the notebook output:\n{text[-3000:]}'
  return float(match.group(1))


@pytest.mark.timeout(1800)   # two notebooks, each training a model on 2 CPU cores
def test_notebooks_run_and_report_psnr(tmp_path, monkeypatch):
  """train_synthetic.ipynb trains and plots; deblur_demo.ipynb then deblurs with the model it trained.

  One test (not two sharing a fixture), so that pytest-xdist never trains twice on two workers.
  """
  monkeypatch.setenv('ESTRNN_NOTEBOOK_SMOKE', '1')
  monkeypatch.setenv('ESTRNN_NOTEBOOK_WORKDIR', str(tmp_path))
  text = _execute('train_synthetic.ipynb')
  assert 'Trained to step 80' in text
  # 80 steps of the default model already beat the blurry input (validation, and a test sequence).
  val_psnr = _number(r'Validation PSNR: (-?[\d.]+) dB', text)
  blur_psnr = _number(r'blurry input: (-?[\d.]+) dB', text)
  assert 20 < blur_psnr < val_psnr - 0.1 < 40, (val_psnr, blur_psnr)
  assert _number(r'deblurred (-?[\d.]+) dB', text) > _number(r'frames: blurry (-?[\d.]+) dB', text) + 0.1
  assert (tmp_path / 'train' / 'model_config.json').is_file()

  monkeypatch.setenv('ESTRNN_NOTEBOOK_WORKDIR', str(tmp_path / 'demo'))
  monkeypatch.setenv('ESTRNN_DEMO_CHECKPOINT', str(tmp_path / 'train'))   # "a freshly trained one"
  text = _execute('deblur_demo.ipynb')
  assert _number(r'-> deblurred (-?[\d.]+) dB', text) > _number(r'PSNR: blurry (-?[\d.]+) dB', text) + 0.1
  assert _number(r'Deblurred \d+ frames in [\d.]+ s \(([\d.]+) frames/s\)', text) > 0
  assert (tmp_path / 'demo' / 'clips' / 'side_by_side.mp4').is_file()
