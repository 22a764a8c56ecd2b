"""Tests for estrnn_jax.torch_pickle: torch-free, code-free loading of torch.save checkpoints.

Real-torch fixtures come from tests/testdata/make_torch_pickle_cases.py; the other checkpoints are assembled
here opcode by opcode, so that odd layouts and hostile pickles can be tested without torch.
"""

import collections
import pathlib
import pickle
import re
import struct
import tracemalloc
import zipfile

import ml_dtypes
import numpy as np
import pytest

from estrnn_jax import torch_pickle

# --------------------------------------------------------------------------------------------------
# A tiny pickle (protocol 2) assembler.


def _str(s: str) -> bytes:
  data = s.encode()
  return b'X' + struct.pack('<I', len(data)) + data


def _int(i: int) -> bytes:
  return b'J' + struct.pack('<i', i)


def _tuple(*items: bytes) -> bytes:
  return b'(' + b''.join(items) + b't'


def _dict(**items: bytes) -> bytes:
  return b'}(' + b''.join(_str(k) + v for k, v in items.items()) + b'u'


def _global(module: str, name: str) -> bytes:
  return b'c' + f'{module}\n{name}\n'.encode()


def _call(module: str, name: str, *args: bytes) -> bytes:
  """GLOBAL + REDUCE: module.name(*args)."""
  return _global(module, name) + _tuple(*args) + b'R'


def _tensor(storage_type: str, key: str, numel: int, offset: int, size, stride) -> bytes:
  """What torch.save writes for a tensor viewing storage `key` (as in the fixture's data.pkl)."""
  storage = _tuple(_str('storage'), _global('torch', storage_type), _str(key), _str('cpu'), _int(numel))
  return _call('torch._utils', '_rebuild_tensor_v2',
               storage + b'Q', _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)),
               b'\x89', _call('collections', 'OrderedDict'))


def _pickle(body: bytes) -> bytes:
  return b'\x80\x02' + body + b'.'


def _write_checkpoint(path: pathlib.Path, data_pkl: bytes, records: dict[str, bytes] | None = None,
                      byteorder: bytes | None = b'little') -> pathlib.Path:
  """Writes a zip laid out like torch.save's: <archive>/data.pkl, <archive>/data/<key>, byteorder."""
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('archive/data.pkl', data_pkl)
    if byteorder is not None:
      archive.writestr('archive/byteorder', byteorder)
    for key, raw in (records or {}).items():
      archive.writestr(f'archive/data/{key}', raw)
    archive.writestr('archive/version', b'3\n')
  return path


# --------------------------------------------------------------------------------------------------
# Real checkpoints.


def test_fake_official_checkpoint_matches_golden_params_bit_exactly(testdata):
  ckpt = torch_pickle.load(testdata / 'fake_ckpt_C4B2.pth.tar')
  golden = np.load(testdata / 'estrnn_C4B2_n2T7H32W48.npz')
  param_keys = [k for k in golden.files if k.startswith('param/')]
  state_dict = ckpt['state_dict']
  assert isinstance(state_dict, collections.OrderedDict)
  assert len(param_keys) == len(state_dict) == 72
  for key in param_keys:
    got = state_dict['module.model.' + key[len('param/'):]]
    want = golden[key]
    assert got.dtype == want.dtype == np.float32, key
    assert got.shape == want.shape, key
    assert got.tobytes() == want.tobytes(), key
  assert state_dict['module.model.cell.F_B0.weight'].shape == (4, 3, 5, 5)


def test_fake_official_checkpoint_top_level_entries(testdata):
  ckpt = torch_pickle.load(str(testdata / 'fake_ckpt_C4B2.pth.tar'))
  assert list(ckpt) == ['epoch', 'model', 'state_dict', 'register_dict', 'optimizer', 'scheduler']
  assert ckpt['epoch'] == 1 and ckpt['model'] == 'ESTRNN'
  assert ckpt['register_dict'] == {} and ckpt['optimizer'] is None and ckpt['scheduler'] is None
  # The state dict's `_metadata` attribute (module versions) survives, as with torch.load.
  assert ckpt['state_dict']._metadata['module.model'] == {'version': 1}


@pytest.fixture(scope='module')
def torch_cases(testdata):
  return (torch_pickle.load(testdata / 'torch_pickle_cases.pt'),
          np.load(testdata / 'torch_pickle_cases_expected.npz'))


def _lookup(obj, key: str):
  """obj['a/0/b'] -> obj['a'][0]['b'] (int keys for lists and the optimizer's per-parameter state)."""
  for part in key.split('/'):
    obj = obj[part] if isinstance(obj, dict) and part in obj else obj[int(part)]
  return obj


def test_torch_written_tensors_of_every_dtype_and_layout_match(torch_cases):
  loaded, expected = torch_cases
  assert len(expected.files) == 28
  for key in expected.files:
    want = expected[key]
    if key.endswith(':bf16bits'):
      got = _lookup(loaded, key[:-len(':bf16bits')])
      assert got.dtype == ml_dtypes.bfloat16, key
      got = got.view(np.uint16)
    else:
      got = _lookup(loaded, key)
      assert got.dtype == want.dtype, key
    assert got.shape == want.shape, key
    assert got.tobytes() == np.ascontiguousarray(want).tobytes(), key


def test_torch_written_views_shared_storage_and_containers(torch_cases):
  loaded, _ = torch_cases
  views = loaded['views']
  base = np.arange(24, dtype=np.float32).reshape(4, 6)
  np.testing.assert_array_equal(views['base'], base)
  np.testing.assert_array_equal(views['transposed'], base.T)
  np.testing.assert_array_equal(views['offset_slice'], base[1:, 2:5])
  np.testing.assert_array_equal(views['strided'], base[::2, 1::3])
  np.testing.assert_array_equal(views['expanded'], np.zeros((3, 4), np.float32))
  assert views['scalar'].shape == () and views['scalar'] == 15.0
  assert views['empty'].shape == (0, 5)
  # Tensors sharing a storage come back as independent, writable, C-contiguous arrays.
  views['base'][0, 0] = -1.0
  assert views['transposed'][0, 0] == 0.0
  assert all(v.flags.c_contiguous and v.flags.writeable for v in views.values())
  assert loaded['size'] == (2, 3)
  assert loaded['parameter'].dtype == np.float32 and np.all(loaded['parameter'] == 0.25)
  assert loaded['misc'] == [1, 2.5, 'text', None, True, (3, 'x')]
  assert loaded['untyped_storage'].dtype == np.uint8
  assert list(loaded['model']) == ['weight', 'bias']
  group, = loaded['optimizer']['param_groups']
  assert group['lr'] == 1e-3 and group['betas'] == (0.9, 0.999) and group['params'] == [0, 1]
  assert loaded['optimizer']['state'][0]['step'] == 1.0
  assert loaded['optimizer']['state'][0]['exp_avg'].shape == (2, 3)


def test_legacy_format_is_named_with_resave_instructions(testdata):
  path = testdata / 'torch_pickle_legacy.pt'
  with pytest.raises(torch_pickle.CheckpointError, match=r'legacy \(torch < 1\.6\)') as info:
    torch_pickle.load(path)
  assert str(path) in str(info.value) and 'torch.save(torch.load(' in str(info.value)


# --------------------------------------------------------------------------------------------------
# Hand-written layouts.


def test_offset_strided_views_of_big_endian_storages(tmp_path):
  data_f32 = np.arange(12, dtype='>f4')
  data_i64 = np.array([1, -2, 2**40], dtype='>i8')
  data_bf16 = np.array([1.5, -2.0, 3.25], dtype=ml_dtypes.bfloat16)
  data_c64 = np.array([1 + 2j, -3j], dtype='>c8')
  pkl = _pickle(_dict(
      view=_tensor('FloatStorage', '0', 12, 1, (2, 3), (1, 4)),
      tail=_tensor('FloatStorage', '0', 12, 10, (2,), (1,)),
      i64=_tensor('LongStorage', '1', 3, 0, (3,), (1,)),
      bf16=_tensor('BFloat16Storage', '2', 3, 1, (2,), (1,)),
      c64=_tensor('ComplexFloatStorage', '3', 2, 0, (2,), (1,)),
  ))
  bf16_big = data_bf16.view(np.uint16).astype('>u2').tobytes()
  path = _write_checkpoint(tmp_path / 'big.pth', pkl, {
      '0': data_f32.tobytes(), '1': data_i64.tobytes(), '2': bf16_big, '3': data_c64.tobytes()},
      byteorder=b'big')
  loaded = torch_pickle.load(path)
  flat = np.arange(12, dtype=np.float32)
  want_view = np.array([[flat[1 + i + 4 * j] for j in range(3)] for i in range(2)], np.float32)
  assert loaded['view'].dtype == np.float32 and loaded['view'].dtype.isnative
  np.testing.assert_array_equal(loaded['view'], want_view)  # [[1, 5, 9], [2, 6, 10]]
  np.testing.assert_array_equal(loaded['tail'], [10.0, 11.0])
  np.testing.assert_array_equal(loaded['i64'], [1, -2, 2**40])
  assert loaded['bf16'].dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(loaded['bf16'].astype(np.float32), [-2.0, 3.25])
  np.testing.assert_array_equal(loaded['c64'], np.array([1 + 2j, -3j], np.complex64))


def test_missing_byteorder_record_means_little_endian(tmp_path):
  pkl = _pickle(_dict(w=_tensor('HalfStorage', '0', 2, 0, (2,), (1,))))
  path = _write_checkpoint(tmp_path / 'old.pth', pkl, {'0': np.array([0.5, -1], '<f2').tobytes()},
                           byteorder=None)
  np.testing.assert_array_equal(torch_pickle.load(path)['w'], np.array([0.5, -1], np.float16))


# --------------------------------------------------------------------------------------------------
# Hostile pickles: refused, and the payload never runs.

_PAYLOADS = {
    'os.system': lambda marker: _call('os', 'system', _str(f'touch {marker}')),
    'posix.system': lambda marker: _call('posix', 'system', _str(f'touch {marker}')),
    'builtins.eval': lambda marker: _call('builtins', 'eval', _str(f'open({str(marker)!r}, "w").close()')),
    # Protocol 4 STACK_GLOBAL: module and name come from the stack, not from the opcode.
    'builtins.exec': lambda marker: (b'\x8c\x08builtins\x8c\x04exec\x93'
                                     + _tuple(_str(f'open({str(marker)!r}, "w").close()')) + b'R'),
    # Protocol 0 INST: find the class, then call it with the marked arguments.
    'subprocess.getoutput': lambda marker: b'(' + _str(f'touch {marker}') + b'isubprocess\ngetoutput\n',
}


@pytest.mark.parametrize('refused', sorted(_PAYLOADS))
def test_payload_is_live_under_plain_pickle(tmp_path, refused):
  """Control: without the restriction each payload really runs (so the next test can fail)."""
  marker = tmp_path / 'pwned'
  pickle.loads(_pickle(_PAYLOADS[refused](marker)))
  assert marker.exists()


@pytest.mark.parametrize('refused', sorted(_PAYLOADS))
def test_code_running_globals_are_refused_before_anything_runs(tmp_path, refused):
  marker = tmp_path / 'pwned'
  pkl = _pickle(_dict(
      state_dict=_dict(w=_tensor('FloatStorage', '0', 2, 0, (2,), (1,))),
      optimizer=_dict(evil=_PAYLOADS[refused](marker)),
  ))
  path = _write_checkpoint(tmp_path / 'evil.pth.tar', pkl, {'0': np.zeros(2, '<f4').tobytes()})
  with pytest.raises(torch_pickle.UnsafeCheckpointError) as info:
    torch_pickle.load(path)
  assert isinstance(info.value, ValueError)
  assert str(path) in str(info.value) and f'global {refused}, which' in str(info.value)
  assert not marker.exists()


@pytest.mark.parametrize('target', [('torch', 'FloatStorage'), ('torch._utils', '_rebuild_tensor_v2')])
def test_build_cannot_mutate_allowed_objects(tmp_path, target):
  """BUILD (set state) on an allowed global would change it for every later load in the process."""
  evil = _global(*target) + _dict(dtype=_str('f2'), fn=_global('torch', 'Size')) + b'b'
  path = _write_checkpoint(tmp_path / 'build.pth', _pickle(_dict(x=evil)))
  with pytest.raises(torch_pickle.CheckpointError,
                     match=f'^{re.escape(str(path))}: data.pkl tries to set the state of'):
    torch_pickle.load(path)
  # Still intact: a float32 tensor still reads as float32.
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', 1, 0, (1,), (1,))))
  path = _write_checkpoint(tmp_path / 'ok.pth', pkl, {'0': np.float32(1.5).tobytes()})
  w = torch_pickle.load(path)['w']
  assert w.dtype == np.float32 and w[0] == 1.5


def test_allowed_storage_name_cannot_be_called(tmp_path):
  pkl = _pickle(_call('torch', 'FloatStorage', _int(10)))
  with pytest.raises(torch_pickle.CheckpointError, match='malformed data.pkl'):
    torch_pickle.load(_write_checkpoint(tmp_path / 'odd.pth', pkl))


# --------------------------------------------------------------------------------------------------
# Bad files.


def test_missing_file(tmp_path):
  path = tmp_path / 'nope.pth.tar'
  with pytest.raises(FileNotFoundError, match='nope.pth.tar') as info:
    torch_pickle.load(path)
  assert info.value.filename == str(path)


@pytest.mark.parametrize('content', [b'just some text\n', b'\x89PNG\r\n\x1a\n' + bytes(64)],
                         ids=['text', 'png'])
def test_not_a_checkpoint(tmp_path, content):
  path = tmp_path / 'file.pth'
  path.write_bytes(content)
  with pytest.raises(torch_pickle.CheckpointError, match='not a PyTorch checkpoint') as info:
    torch_pickle.load(path)
  assert str(path) in str(info.value) and repr(content[:8])[2:-1] in str(info.value)


def test_empty_file(tmp_path):
  path = tmp_path / 'empty.pth'
  path.write_bytes(b'')
  with pytest.raises(torch_pickle.CheckpointError, match='empty.pth: the file is empty'):
    torch_pickle.load(path)


def test_plain_pickle_and_directory(tmp_path):
  path = tmp_path / 'plain.pkl'
  path.write_bytes(pickle.dumps({'a': 1}, protocol=2))
  with pytest.raises(torch_pickle.CheckpointError, match='plain pickle'):
    torch_pickle.load(path)
  with pytest.raises(torch_pickle.CheckpointError, match='is a directory'):
    torch_pickle.load(tmp_path)


def test_truncated_archive(tmp_path, testdata):
  raw = (testdata / 'fake_ckpt_C4B2.pth.tar').read_bytes()
  path = tmp_path / 'cut.pth.tar'
  path.write_bytes(raw[:len(raw) // 2])
  with pytest.raises(torch_pickle.CheckpointError, match='corrupt or truncated zip') as info:
    torch_pickle.load(path)
  assert str(path) in str(info.value)


def test_corrupted_record_fails_its_checksum(tmp_path, testdata):
  raw = bytearray((testdata / 'fake_ckpt_C4B2.pth.tar').read_bytes())
  start = raw.index(b'module.model.cell.F_B0.weight')  # Inside the stored (uncompressed) data.pkl.
  raw[start:start + 6] = b'XXXXXX'
  path = tmp_path / 'flipped.pth.tar'
  path.write_bytes(bytes(raw))
  with pytest.raises(torch_pickle.CheckpointError, match='corrupt or truncated zip archive: Bad CRC-32'):
    torch_pickle.load(path)


def test_zip_that_is_not_a_checkpoint(tmp_path):
  path = tmp_path / 'other.zip'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('readme.txt', 'hello')
  with pytest.raises(torch_pickle.CheckpointError,
                     match=r"expected one '<name>/data.pkl' record.*readme.txt"):
    torch_pickle.load(path)


def test_missing_storage_record(tmp_path):
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '7', 4, 0, (4,), (1,))))
  path = _write_checkpoint(tmp_path / 'partial.pth', pkl, {'0': bytes(16)})
  with pytest.raises(torch_pickle.CheckpointError, match='record archive/data/7, which is missing') as info:
    torch_pickle.load(path)
  assert str(path) in str(info.value)


def test_short_storage_record(tmp_path):
  pkl = _pickle(_dict(w=_tensor('DoubleStorage', '0', 100, 0, (100,), (1,))))
  path = _write_checkpoint(tmp_path / 'short.pth', pkl, {'0': bytes(16)})
  with pytest.raises(torch_pickle.CheckpointError,
                     match='has 16 bytes; the pickle expects 100 DoubleStorage'):
    torch_pickle.load(path)


def test_tensor_reaching_past_its_storage(tmp_path):
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', 4, 2, (2, 2), (2, 1))))
  path = _write_checkpoint(tmp_path / 'oob.pth', pkl, {'0': bytes(16)})
  with pytest.raises(torch_pickle.CheckpointError,
                     match=f'^{re.escape(str(path))}: .* reads element 5 of storage record data/0'):
    torch_pickle.load(path)


def test_malformed_pickle_and_byteorder(tmp_path):
  with pytest.raises(torch_pickle.CheckpointError, match='malformed data.pkl'):
    torch_pickle.load(_write_checkpoint(tmp_path / 'a.pth', b'\x80\x02}(X\x05\x00\x00\x00'))
  with pytest.raises(torch_pickle.CheckpointError, match="byteorder record must be 'little' or 'big'"):
    torch_pickle.load(_write_checkpoint(tmp_path / 'b.pth', _pickle(b'N'), byteorder=b'middle'))


# --------------------------------------------------------------------------------------------------
# Memory bombs: refused with the limit in the message, before anything large is allocated.


def _peak_bytes_of(fn):
  """Runs fn() under tracemalloc (numpy reports its buffers there); returns (result or exception, peak)."""
  tracemalloc.start()
  try:
    try:
      result = fn()
    except Exception as e:  # pylint: disable=broad-except
      result = e
    return result, tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()


def test_stride_zero_broadcast_of_a_tiny_storage_is_refused_without_allocating(tmp_path):
  """(2^21, 2^21) float32 over one element: 16 TiB if materialised."""
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', 1, 0, (2**21, 2**21), (0, 0))))
  path = _write_checkpoint(tmp_path / 'bomb.pth', pkl, {'0': np.float32(1).tobytes()})
  error, peak = _peak_bytes_of(lambda: torch_pickle.load(path))
  assert isinstance(error, torch_pickle.CheckpointTooLargeError), error
  message = str(error)
  assert message.startswith(f'{path}: refusing to allocate a tensor of size (2097152, 2097152)')
  assert '16.0 TiB' in message and 'storage record data/0 (1 elements)' in message
  assert 'limit for this checkpoint of 256.0 MiB' in message
  assert peak < 4 << 20, peak


def test_small_broadcasts_and_full_views_within_the_limit_still_load(tmp_path, monkeypatch):
  """The limit counts bytes built: 4 x the storages' bytes + the allowance (0 here, to keep the test small)."""
  monkeypatch.setattr(torch_pickle, 'EXPANSION_ALLOWANCE_BYTES', 0)
  storage = np.arange(256, dtype='<f4')   # 1 KiB
  views = {f'v{i}': _tensor('FloatStorage', '0', 256, 0, (16, 16), (16, 1)) for i in range(4)}
  path = _write_checkpoint(tmp_path / 'ok.pth', _pickle(_dict(**views)), {'0': storage.tobytes()})
  loaded = torch_pickle.load(path)
  for i in range(4):
    np.testing.assert_array_equal(loaded[f'v{i}'], storage.reshape(16, 16))
  views['v4'] = _tensor('FloatStorage', '0', 256, 0, (16, 16), (16, 1))   # a fifth full view: 5 KiB > 4 KiB
  path = _write_checkpoint(tmp_path / 'many.pth', _pickle(_dict(**views)), {'0': storage.tobytes()})
  with pytest.raises(torch_pickle.CheckpointTooLargeError,
                     match=r': 1\.0 KiB, with 4\.0 KiB already built, exceeds the limit for this '
                     r'checkpoint of 4\.0 KiB \(4 x its 1\.0 KiB of storage records \+ 0 bytes\)'):
    torch_pickle.load(path)


def test_standalone_storage_copies_count_towards_the_limit(tmp_path, monkeypatch):
  monkeypatch.setattr(torch_pickle, 'EXPANSION_ALLOWANCE_BYTES', 0)
  storage = _tuple(_str('storage'), _global('torch', 'FloatStorage'), _str('0'), _str('cpu'), _int(4))
  pkl = _pickle(b'(' + (storage + b'Q') * 5 + b'l')   # the same 16-byte storage listed 5 times
  path = _write_checkpoint(tmp_path / 'storages.pth', pkl, {'0': bytes(16)})
  with pytest.raises(torch_pickle.CheckpointTooLargeError, match='a copy of storage record data/0'):
    torch_pickle.load(path)


def test_zip_bomb_record_is_refused_by_its_compression_ratio(tmp_path):
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', 2**21, 0, (2**21,), (1,))))
  path = tmp_path / 'zipbomb.pth'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('archive/data.pkl', pkl)
    archive.writestr('archive/data/0', bytes(8 << 20), compress_type=zipfile.ZIP_DEFLATED)
  assert path.stat().st_size < 64 << 10
  error, peak = _peak_bytes_of(lambda: torch_pickle.load(path))
  assert isinstance(error, torch_pickle.CheckpointTooLargeError), error
  assert re.fullmatch(
      rf'{re.escape(str(path))}: record archive/data/0 declares 8\.0 MiB from [\d.]+ KiB compressed, '
      r'a ratio over the limit of 50 .*zip bomb\)', str(error)), str(error)
  assert peak < 2 << 20, peak


def test_record_over_the_size_limit_is_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(torch_pickle, 'MAX_RECORD_BYTES', 1000)
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', 500, 0, (500,), (1,))))
  path = _write_checkpoint(tmp_path / 'big.pth', pkl, {'0': bytes(2000)})
  with pytest.raises(torch_pickle.CheckpointTooLargeError,
                     match=r'record archive/data/0 declares 2\.0 KiB, over the limit of 1,000 bytes'):
    torch_pickle.load(path)
  monkeypatch.setattr(torch_pickle, 'MAX_PICKLE_BYTES', 10)
  with pytest.raises(torch_pickle.CheckpointTooLargeError, match='record archive/data.pkl declares'):
    torch_pickle.load(path)


def test_record_shorter_than_declared_is_refused(tmp_path):
  """The central directory claims more bytes than the (stored) record holds."""
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', 4, 0, (4,), (1,))))
  path = _write_checkpoint(tmp_path / 'lying.pth', pkl, {'0': bytes(16)})
  raw = bytearray(path.read_bytes())
  name = b'archive/data/0'
  entry = raw.index(b'PK\x01\x02')   # the central directory's first entry
  while raw[entry + 46:entry + 46 + len(name)] != name:
    entry = raw.index(b'PK\x01\x02', entry + 4)
  struct.pack_into('<I', raw, entry + 24, 1 << 20)   # uncompressed size: 1 MiB instead of 16 bytes
  path.write_bytes(bytes(raw))
  with pytest.raises(torch_pickle.CheckpointError,
                     match=f'^{re.escape(str(path))}: record archive/data/0 holds 16 bytes, but the archive '
                     'declares 1,048,576 '):
    torch_pickle.load(path)


def test_negative_storage_size_and_deep_nesting_are_refused(tmp_path):
  pkl = _pickle(_dict(w=_tensor('FloatStorage', '0', -4, 0, (1,), (1,))))
  with pytest.raises(torch_pickle.CheckpointError, match='unsupported persistent id'):
    torch_pickle.load(_write_checkpoint(tmp_path / 'neg.pth', pkl, {'0': bytes(16)}))
  depth = 200_000
  pkl = _pickle(b']' * depth + b'a' * (depth - 1))   # a list in a list in ... 200,000 deep
  with pytest.raises(torch_pickle.CheckpointError, match='nests containers too deeply'):
    torch_pickle.load(_write_checkpoint(tmp_path / 'deep.pth', pkl))
