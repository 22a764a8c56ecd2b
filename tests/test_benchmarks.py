"""The model benchmark keeps going past a failing case and says so (a real run on a tiny model, 32x32)."""

import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_model_benchmark_reports_a_failing_case_and_runs_the_rest():
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  proc = subprocess.run(
      [sys.executable, '-m', 'benchmarks.model_benchmark', '--models=tiny', '--sizes=32x32',
       '--modes=offline,streaming', '--frames=3', '--repeats=1', '--warmup=0', '--json=-'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
  records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
  by_mode = {r['mode']: r for r in records}
  # 3 frames cannot fill a 5-frame window offline: that case fails with the model's own message ...
  assert by_mode['offline']['error_type'] == 'ValueError'
  assert 'needs at least 5 frames, got 3' in by_mode['offline']['error']
  # ... and streaming (one frame per call) still runs, one cell step and one decode per frame.
  streaming = by_mode['streaming']
  assert streaming['frames_per_s'] > 0 and 'error' not in streaming
  assert streaming['cell_steps_per_frame'] == 1.0 and streaming['decodes_per_frame'] == 1.0
  assert streaming['executed_macs_per_frame'] == streaming['true_macs_per_frame'] > 0
  assert '1 case(s) failed, the others ran:' in proc.stdout
  assert 'tiny 32x32 float32 offline: ValueError' in proc.stdout
