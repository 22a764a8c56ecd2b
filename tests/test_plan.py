"""`python -m estrnn_jax.plan`: targets, real TPU / GPU compiles of the tiny config, fixes, errors, isolation.

The compilers (`requirements-plan.txt`) are installed in their own folder (`estrnn_jax.aot.compilers_dir()`; CI
installs them); tests that compile skip when they are absent. Nothing here uses a TPU or a GPU: XLA compiles for
them ahead of time on this CPU machine.
"""

import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from estrnn_jax import accelerators
from estrnn_jax import aot
from estrnn_jax import model as model_lib
from estrnn_jax import plan
from estrnn_jax import planning
from estrnn_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILERS = aot.compilers_dir()
needs_tpu_compiler = pytest.mark.skipif(not (COMPILERS / 'libtpu').is_dir(),
                                        reason=f'libtpu is not installed in {COMPILERS} (requirements-plan.txt)')
needs_gpu_compiler = pytest.mark.skipif(not (COMPILERS / 'jax_plugins' / 'xla_cuda12').is_dir(),
                                        reason=f'the CUDA plugin is not installed in {COMPILERS} '
                                               '(requirements-plan.txt)')


def _tiny_config(**overrides):
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  config.model.unroll = False   # the accelerator form: scans
  config.update_from_flattened_dict(overrides)
  return config


def _plan(*args, env=None, timeout=600):
  return subprocess.run([sys.executable, '-m', 'estrnn_jax.plan', '--config=configs/test.py',
                         '--config.model.unroll=False', *args], cwd=REPO, capture_output=True, text=True,
                        timeout=timeout, env={**os.environ, 'JAX_PLATFORMS': 'cpu', **(env or {})})


def test_targets_resolve_as_sold():
  v5e = accelerators.target('v5litepod-16')
  assert (v5e.chips, v5e.hosts, v5e.topology, v5e.chip.hbm_bytes) == (16, 4, 'v5e:4x4', 16 * 2**30)
  v4 = accelerators.target('v4-8')   # gcloud counts v4 TensorCores: 4 chips
  assert (v4.chips, v4.hosts, v4.topology) == (4, 1, 'v4:2x2x1')
  gpus = accelerators.target('h100x8x2')
  assert (gpus.chips, gpus.hosts, gpus.budget_bytes) == (16, 2, int(0.75 * 80e9))
  assert accelerators.target('h100x8', memory_fraction=0.5).budget_bytes == int(0.5 * 80e9)
  with pytest.raises(ValueError, match='unknown target .v9-8.*v5litepod-8'):
    accelerators.target('v9-8')
  with pytest.raises(ValueError, match=r'memory fraction must be in \(0, 1\]'):
    accelerators.target('v4-8', memory_fraction=1.5)


def test_a_batch_that_does_not_split_is_named():
  v5e = accelerators.target('v5litepod-8')
  assert planning.train_problem(_tiny_config(batch_size=8), v5e) is None
  assert 'batch_size=4 does not split over the 8 chips' in planning.train_problem(_tiny_config(batch_size=4), v5e)
  assert 'multiple of 16' in planning.train_problem(_tiny_config(batch_size=8, grad_accum_steps=2), v5e)


def _fake_compiler(per_window: int, fixed: int, log: list):
  """A stand-in for `planning.train_program`: memory = fixed + per_window x (windows per chip / accumulation),
  halved by remat; records each config it is asked to compile."""
  def compile_train(config, target):
    log.append(config.batch_size)
    per_chip = config.batch_size // target.chips // config.grad_accum_steps
    total = fixed + per_window * per_chip // (2 if config.model.remat else 1)
    memory = aot.CompiledProgram(compile_s=0.0, arguments=0, outputs=0, aliased=0, temporaries=total, code=0)
    return planning.Program('train', '', target, target.chips, memory)
  return compile_train


def test_largest_batch_search_compiles_a_few_batches():
  target = accelerators.target('v5litepod-8')            # 16 GiB per chip
  log = []
  found = planning.max_batch(_tiny_config(batch_size=8), target,
                             compile_train=_fake_compiler(3 * 2**30, 2**30, log))
  assert found.batch_size == 5 * 8                       # 1 + 3 x 5 = 16 GiB fits; 6 windows per chip do not
  assert found.above.memory.total == 19 * 2**30 and found.compiles == len(log) <= 4
  assert found.bytes_by_batch[40] == 16 * 2**30
  known = _fake_compiler(3 * 2**30, 2**30, [])(_tiny_config(batch_size=8), target)
  log.clear()
  again = planning.max_batch(_tiny_config(batch_size=8), target, known=known,
                             compile_train=_fake_compiler(3 * 2**30, 2**30, log))
  assert again.batch_size == 40 and 8 not in log         # the config's own batch is not compiled again


def test_fix_search_tries_the_same_numbers_first():
  """grad_accum_steps keeps the numbers; a batch that does not split over the chips is rounded up first."""
  target = accelerators.target('v5litepod-8')
  log = []
  fix = planning.find_fix(_tiny_config(batch_size=32), target, compile_train=_fake_compiler(5 * 2**30, 0, log))
  assert fix.overrides == {'grad_accum_steps': 2} and fix.program.fits   # 4 windows per chip, 2 at a time: 10 GiB
  log.clear()
  fix = planning.find_fix(_tiny_config(batch_size=4), target, compile_train=_fake_compiler(2**30, 0, log))
  assert fix.overrides == {'batch_size': 8} and log == [8]


@needs_tpu_compiler
def test_multi_host_rows_match_the_input_pipeline():
  target = accelerators.target('v5litepod-16')
  aot.prepare_process()
  assert sorted({d.process_index for d in aot.target_devices(target)}) == [0, 1, 2, 3]
  rows = planning.process_rows(planning.train_mesh(target), 32)
  # The input pipeline gives process p rows [8p, 8p + 8) of a batch of 32 (create_train_iterator's shard).
  assert rows == {p: range(8 * p, 8 * p + 8) for p in range(4)}


def _tiled_bytes(aval: jax.ShapeDtypeStruct, layout, sharding) -> int:
  """Bytes of one device's shard of `aval` in `layout`: dims in major-to-minor order, the minor ones padded to
  the layout's tile (TPU tiles the last two to (8, 128) for float32, ...)."""
  shard = sharding.shard_shape(aval.shape)
  dims = [shard[i] for i in layout.major_to_minor] or [1]
  tile = layout.tiling[0] if layout.tiling else ()
  dims = [1] * (len(tile) - len(dims)) + dims
  for k, t in enumerate(tile, start=len(dims) - len(tile)):
    dims[k] = -(-dims[k] // t) * t
  return math.prod(dims) * np.dtype(aval.dtype).itemsize


@needs_tpu_compiler
def test_two_host_train_step_arguments_to_the_byte():
  """The per-process program of a 2-host TPU v4 slice: its arguments are the train state (parameters, Adam's two
  moments, the step counters) and this chip's shard of the uint8 batch, byte for byte at the layouts the
  executable takes them in."""
  config = _tiny_config(batch_size=16)
  target = accelerators.target('v4-16')          # 8 chips, 2 hosts of 4
  aot.prepare_process()
  lowered = planning.lower_train(config, target)
  assert {d.process_index for d in aot.target_devices(target)} == {0, 1}
  compiled = lowered.compile()
  memory = compiled.memory_analysis()
  state_and_batch = jax.tree.leaves(lowered.args_info)
  formats = jax.tree.leaves(compiled.input_formats)
  assert len(state_and_batch) == len(formats)
  expected = sum(_tiled_bytes(a, f.layout, f.sharding) for a, f in zip(state_and_batch, formats))
  assert memory.argument_size_in_bytes == expected
  # What the state holds: float32 parameters and Adam's mu and nu, plus int32 counters.
  params = jax.tree.leaves(model_lib.abstract_params(train.create_model(config)))
  state = jax.tree.leaves(train.abstract_train_state(train.create_model(config), train.create_optimizer(
      config, train.create_learning_rate_schedule(config)), planning.train_mesh(target))[0])
  floats = [x for x in state if x.dtype == np.float32]
  assert sum(x.size for x in floats) == 3 * sum(x.size for x in params)
  assert all(x.dtype == np.int32 and x.shape == () for x in state if x.dtype != np.float32)
  assert memory.alias_size_in_bytes >= 3 * 4 * sum(x.size for x in params)   # the donated state, reused


@needs_tpu_compiler
def test_too_big_a_batch_gets_a_fix_that_fits(tmp_path):
  """A batch that does not fit the memory allowed is reported, with overrides found by compiling; the plan with
  those overrides then fits (--must_fit exits 0 instead of 3)."""
  config = _tiny_config(batch_size=32)
  target = accelerators.target('v5litepod-4')
  aot.prepare_process()
  total = planning.train_program(config, target).memory.total
  fraction = f'{0.8 * total / target.chip.hbm_bytes:.6g}'   # 80% of what batch 32 needs
  result = _plan('--target=v5litepod-4', '--programs=train', '--config.batch_size=32', '--must_fit',
                 f'--memory_fraction={fraction}', f'--json={tmp_path / "plan.json"}')
  assert result.returncode == 3, result.stderr
  assert 'DOES NOT FIT' in result.stdout and 'fix: --config.' in result.stdout, result.stdout
  plan = json.loads((tmp_path / 'plan.json').read_text())
  (record,) = plan['targets']
  assert not record['fits'] and record['programs'][0]['bytes_per_chip']['total'] == total
  flags = record['fix']['flags'].split()
  assert record['fix']['program']['fits']
  again = _plan('--target=v5litepod-4', '--programs=train', '--config.batch_size=32', *flags, '--must_fit',
                f'--memory_fraction={fraction}')
  assert again.returncode == 0, again.stdout + again.stderr
  assert 'fits,' in again.stdout and 'DOES NOT FIT' not in again.stdout


@needs_gpu_compiler
def test_gpu_plan_of_the_tiny_config(tmp_path):
  """h100x8: a GPU has no tiled layouts, so the train step's arguments are exactly parameters + Adam's moments
  (float32) + the int32 counters + this GPU's rows of the uint8 batch."""
  result = _plan('--target=h100x8', '--programs=train', f'--json={tmp_path / "plan.json"}')
  assert result.returncode == 0, result.stderr
  (record,) = json.loads((tmp_path / 'plan.json').read_text())['targets']
  (train_record,) = record['programs']
  config = _tiny_config()
  model = train.create_model(config)
  params = sum(math.prod(x.shape) for x in jax.tree.leaves(model_lib.abstract_params(model)))
  tx = train.create_optimizer(config, train.create_learning_rate_schedule(config))
  state = jax.tree.leaves(jax.eval_shape(lambda: tx.init(model_lib.init_params(model, 0))))
  counters = 1 + sum(1 for x in state if x.dtype == np.int32 and x.shape == ())  # the step, the optimiser's counts
  t, crop = config.dataset.window_frames, config.dataset.crop_size
  rows = config.batch_size // 8
  batch = rows * (t + t - 4) * crop * crop * 3   # uint8: t blurry frames, t - 4 sharp
  assert train_record['bytes_per_chip']['arguments'] == 3 * 4 * params + 4 * counters + batch
  assert train_record['fits'] and record['budget_bytes_per_chip'] == int(0.75 * 80e9)


@pytest.mark.parametrize('args, message', [
    (['--target=v9-8'], "unknown target 'v9-8'"),
    (['--target=v5litepod-4', '--deblur_size=720'], '--deblur_size must be HEIGHTxWIDTH'),
    (['--target=v5litepod-3'], 'no v5litepod slice has 3 chips'),
    (['--target=v5litepod-4', '--config.model.n_blockz=2'], 'no such field'),
    (['--target=v5litepod-4', '--memory_fraction=0'], 'memory fraction must be in (0, 1]'),
    (['--target=v5litepod-4', '--json=README.md/plan.json'], '--json README.md/plan.json: cannot be created, '),
])
def test_bad_input_is_a_one_line_error(args, message):
  result = _plan(*args, timeout=300)
  assert result.returncode == 1, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('plan: error:') and message in last, result.stderr
  assert 'Traceback' not in result.stderr


def test_a_missing_config_file_or_compiler_is_a_one_line_error(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'estrnn_jax.plan', '--config=configs/no_such.py',
                           '--target=v4-8'], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith('plan: error:')
  assert 'no_such.py' in result.stderr and 'Traceback' not in result.stderr
  empty = tmp_path / 'no_compilers'
  empty.mkdir()
  result = _plan('--target=v5litepod-4', '--programs=train', env={aot.COMPILERS_ENV: str(empty)})
  assert result.returncode == 1, result.stdout + result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('plan: error: cannot compile for v5litepod-4: libtpu is not installed in')
  assert f'pip install --no-deps --target {empty} -r requirements-plan.txt' in last
  assert 'Traceback' not in result.stderr


@needs_tpu_compiler
def test_installed_compilers_change_nothing_for_other_commands(tmp_path):
  """With the planning compilers installed, every other JAX process sees the same devices, prints the same (no
  libtpu or CUDA-plugin messages) and never loads them (so its start-up costs the same)."""
  probe = ('import jax; from estrnn_jax import model; print(jax.devices()); '
           'print(sorted({m for m in ("libtpu", "cuda") if m in open("/proc/self/maps").read()}))')
  empty = tmp_path / 'no_compilers'
  empty.mkdir()
  runs = {}
  for name, folder in (('installed', COMPILERS), ('absent', empty)):
    env = {k: v for k, v in os.environ.items() if k not in ('JAX_PLATFORMS', 'XLA_FLAGS')}
    runs[name] = subprocess.run([sys.executable, '-c', probe], cwd=REPO, capture_output=True, text=True,
                                timeout=300, env={**env, aot.COMPILERS_ENV: str(folder)})
  installed, absent = runs['installed'], runs['absent']
  assert installed.returncode == absent.returncode == 0, installed.stderr
  assert installed.stdout == absent.stdout == '[CpuDevice(id=0)]\n[]\n'
  assert installed.stderr == absent.stderr


class _RefusedByCompiler:
  """A lowered program whose compile fails as libtpu's does for a program bigger than the chip (its message
  verbatim, from the v4-8 largest-batch search of configs/bsd.py:2ms16ms at batch 32)."""

  def __init__(self, message):
    self.message = message

  def compile(self):
    raise jax.errors.JaxRuntimeError(self.message)


def test_a_program_the_compiler_refuses_for_memory_does_not_fit():
  message = ('RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO temporaries (31.45G) '
             'exceeds available HBM (30.75G).')
  memory = aot.compile_program(_RefusedByCompiler(message))
  assert memory.temporaries == int(31.45 * 2**30) and memory.total == memory.temporaries
  assert memory.refused.startswith('RESOURCE_EXHAUSTED: Ran out of memory on HBM')
  target = accelerators.target('v4-8')                   # 32 GiB per chip
  program = planning.Program('train', 'batch 32', target, target.chips, memory)
  assert not program.fits   # 31.45 GiB is under the 32 GiB data-sheet figure, but not under what libtpu leaves
  text = plan.format_program(program, None)
  assert 'temporaries alone 31.45 GiB of 32.00 GiB: DOES NOT FIT' in text and 'compiler refused it' in text
  assert plan.program_json(program, None)['refused_by_compiler'] == memory.refused
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):   # any other compile error stays an error
    aot.compile_program(_RefusedByCompiler('INTERNAL: something else'))


def test_largest_batch_search_stops_where_the_compiler_refuses():
  """libtpu leaves less than the data sheet's HBM: a refused program is over, whatever its temporaries."""
  target = accelerators.target('v4-8')                   # 4 chips of 32 GiB
  def compile_train(config, target):
    per_chip = config.batch_size // target.chips
    memory = aot.CompiledProgram(compile_s=0.0, arguments=0, outputs=0, aliased=0, temporaries=per_chip * 2**30,
                                 code=0, refused='RESOURCE_EXHAUSTED: Ran out of memory' if per_chip > 3 else None)
    return planning.Program('train', '', target, target.chips, memory)
  found = planning.max_batch(_tiny_config(batch_size=8), target, compile_train=compile_train)
  assert found.batch_size == 12 and found.above.memory.refused
