"""Resume checks (estrnn_jax.resume): which config changes a resumed run may make."""

import pytest

from configs import test as test_config
from estrnn_jax import resume

MODEL = {'n_features': 4, 'n_blocks': 2, 'past_frames': 2, 'future_frames': 2, 'dtype': 'float32',
         'remat': False, 'residual': True}


def _check(new_config, new_model=None, saved_model=MODEL):
  return resume.check('/runs/a', saved_config=test_config.get_config().to_dict(), saved_model=saved_model,
                      new_config=new_config.to_dict(), new_model=dict(MODEL, **(new_model or {})))


def test_unchanged_config_resumes_silently():
  assert _check(test_config.get_config()) == []


def test_training_fields_may_change_and_are_reported():
  config = test_config.get_config()
  config.num_train_steps = 50
  config.optimizer.learning_rate = 1e-4
  config.eval_every_steps = 10
  config.eval.max_sequences = 2
  config.dataset.data_dir = '/elsewhere'
  config.model.remat = True
  changes = _check(config, {'remat': True})
  assert changes == [
      'model.remat: False in the workdir, True now',
      "dataset.data_dir: None in the workdir, '/elsewhere' now",
      'eval.max_sequences: 1 in the workdir, 2 now',
      'eval_every_steps: 0 in the workdir, 10 now',
      'num_train_steps: 3 in the workdir, 50 now',
      'optimizer.learning_rate: 0.003 in the workdir, 0.0001 now',
  ]


def test_model_changes_are_refused_naming_each_field_and_both_values():
  config = test_config.get_config()
  config.model.n_features = 8
  config.model.residual = False
  with pytest.raises(resume.ResumeMismatchError) as info:
    _check(config, {'n_features': 8, 'residual': False, 'dtype': 'bfloat16'})
  message = str(info.value)
  assert message.startswith('/runs/a holds checkpoints of a different run; refusing to resume it (the workdir is '
                            'unchanged). Changed: ')
  assert ("model.dtype: 'float32' in the workdir, 'bfloat16' now; model.n_features: 4 in the workdir, 8 now; "
          'model.residual: True in the workdir, False now.') in message
  assert 'start a fresh --workdir' in message and '--config.init_from=/runs/a' in message


def test_other_run_fields_are_refused_too():
  config = test_config.get_config()
  config.batch_size = 16
  config.dataset.name = 'synthetic_blur/small'
  with pytest.raises(resume.ResumeMismatchError,
                     match=r"Changed: batch_size: 8 in the workdir, 16 now; dataset.name: 'synthetic_blur/tiny' in "
                     r"the workdir, 'synthetic_blur/small' now\."):
    _check(config)


def test_without_model_config_json_the_config_model_section_is_compared():
  config = test_config.get_config()
  config.model.n_blocks = 3
  with pytest.raises(resume.ResumeMismatchError, match='model.n_blocks: 2 in the workdir, 3 now'):
    _check(config, saved_model=None)


def test_fields_added_or_removed_by_a_newer_version_are_reported_not_refused():
  config = test_config.get_config()
  config.brand_new_option = 7
  saved = test_config.get_config().to_dict()
  saved['retired_option'] = 'x'
  changes = resume.check('/w', saved_config=saved, saved_model=MODEL, new_config=config.to_dict(), new_model=MODEL)
  assert changes == ["brand_new_option: new field (not in the workdir's config), 7",
                     "retired_option: no longer in the config (was 'x')"]


def test_workdirs_written_under_old_field_names_compare_as_the_new_names():
  """A workdir from before `dataset.frames` became `dataset.window_frames` (and `unroll_time` `model.unroll`)."""
  old = test_config.get_config().to_dict()
  old['dataset']['frames'] = old['dataset'].pop('window_frames')
  old['unroll_time'] = old['model'].pop('unroll')
  new = test_config.get_config()
  assert resume.check('/w', saved_config=old, saved_model=MODEL, new_config=new.to_dict(), new_model=MODEL) == []
  new.dataset.window_frames = 7
  with pytest.raises(resume.ResumeMismatchError, match='dataset.window_frames: 5 in the workdir, 7 now'):
    resume.check('/w', saved_config=old, saved_model=MODEL, new_config=new.to_dict(), new_model=MODEL)
