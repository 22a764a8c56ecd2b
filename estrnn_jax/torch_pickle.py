"""Reads PyTorch checkpoints (`torch.save` zip format) without torch, and without running their code.

A `torch.save` file (torch >= 1.6) is a zip archive:

  <archive>/data.pkl      a pickle of the saved object; tensors refer to storages by persistent id
  <archive>/data/<key>    one raw little- or big-endian byte record per storage
  <archive>/byteorder     b'little' or b'big' (absent in old files: little-endian, as torch assumes on x86)

`load` unpickles `data.pkl` with a restricted unpickler that resolves only the globals needed to rebuild
tensors and ordered dicts (`ALLOWED_GLOBALS`); any other global (`os.system`, `builtins.eval`, ...) raises
`UnsafeCheckpointError` when the pickle names it, before it could be called. Tensors come back as numpy arrays
with torch's dtype, shape and values (read through torch's strides and storage offset); storages shared by
several tensors are read once, and each tensor is an independent, C-contiguous, writable copy.

Memory is bounded by the file, not by what the pickle claims (limits generous for real models, each stated in
the error that enforces it):
  * a zip record is read only if its declared size is at most `MAX_RECORD_BYTES` (`MAX_PICKLE_BYTES` for
    data.pkl) and at most `MAX_COMPRESSION_RATIO` times its compressed size (torch.save stores records
    uncompressed, so only a zip bomb gets near it); the bytes actually read are checked against the declared size;
  * the tensors built from the storages may total at most `MAX_EXPANSION` times the bytes of the storage
    records plus `EXPANSION_ALLOWANCE_BYTES`, so a view that broadcasts a small storage (stride 0) into a huge
    tensor, or many views of one storage, are refused before anything is allocated.

Example:
  ckpt = torch_pickle.load('ESTRNN_C80B15_BSD_2ms16ms.pth.tar')
  weights = ckpt['state_dict']      # OrderedDict: 'module.model.cell.F_B0.weight' -> float32 (80, 3, 5, 5)
"""

import collections
import errno
import io
import math
import os
import pickle
import types
import zipfile
import zlib
from typing import Any, Callable, Mapping, Sequence

from etils import epath
import ml_dtypes
import numpy as np


class CheckpointError(ValueError):
  """The file is not a readable `torch.save` checkpoint (wrong format, corrupt, missing records)."""


class UnsafeCheckpointError(CheckpointError):
  """The checkpoint's pickle names a global outside `ALLOWED_GLOBALS`; nothing it names was called."""


class CheckpointTooLargeError(CheckpointError):
  """A record or the tensors the pickle asks for exceed the memory limits above; nothing was allocated."""


# Limits (see the module docstring). The largest official ESTRNN checkpoint is ~10 MB with a ~30 KB data.pkl.
MAX_RECORD_BYTES = 8 << 30
MAX_PICKLE_BYTES = 64 << 20
MAX_COMPRESSION_RATIO = 50
MAX_EXPANSION = 4
EXPANSION_ALLOWANCE_BYTES = 256 << 20


# torch storage class name -> element dtype. `UntypedStorage` holds raw bytes.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    'DoubleStorage': np.dtype(np.float64),
    'FloatStorage': np.dtype(np.float32),
    'HalfStorage': np.dtype(np.float16),
    'BFloat16Storage': np.dtype(ml_dtypes.bfloat16),
    'LongStorage': np.dtype(np.int64),
    'IntStorage': np.dtype(np.int32),
    'ShortStorage': np.dtype(np.int16),
    'CharStorage': np.dtype(np.int8),
    'ByteStorage': np.dtype(np.uint8),
    'BoolStorage': np.dtype(np.bool_),
    'ComplexFloatStorage': np.dtype(np.complex64),
    'ComplexDoubleStorage': np.dtype(np.complex128),
    'UntypedStorage': np.dtype(np.uint8),
}

# Pickle prefix of the magic number that starts a legacy (torch < 1.6, non-zip) `torch.save` file.
_LEGACY_MAGIC = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
_RESAVE_HINT = ('re-save it with torch >= 1.6 (zip format), e.g. python -c "import torch; '
                "torch.save(torch.load('OLD', map_location='cpu', weights_only=True), 'NEW')\"")


class _Immutable:
  """Base of the objects the unpickler hands out: no pickle opcode (BUILD) can change them."""
  __slots__ = ()

  def __init__(self, **fields: Any):
    for name, value in fields.items():
      object.__setattr__(self, name, value)

  def __setattr__(self, name: str, value: Any) -> None:
    raise AttributeError(f'{type(self).__name__} is immutable')

  def __setstate__(self, state: Any) -> None:
    raise CheckpointError(f'data.pkl tries to set the state of {self!r}; torch.save never does that')

  def __repr__(self) -> str:
    return f'{type(self).__name__}({self.name!r})'


class _StorageType(_Immutable):
  """Stand-in for a `torch.*Storage` class named by the pickle; never callable."""
  __slots__ = ('name', 'dtype')

  def __init__(self, name: str, dtype: np.dtype):
    super().__init__(name=name, dtype=dtype)


def _format_bytes(n: int) -> str:
  for unit in ('bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
    if n < 1024 or unit == 'PiB':
      return f'{n:,} bytes' if unit == 'bytes' else f'{n:,.1f} {unit}'
    n /= 1024
  raise AssertionError('unreachable')


class _Budget:
  """Bytes the tensors of one load may still allocate: `MAX_EXPANSION` x storage bytes + the allowance."""

  def __init__(self):
    self.storage_bytes = 0
    self.allocated_bytes = 0

  @property
  def limit(self) -> int:
    return MAX_EXPANSION * self.storage_bytes + EXPANSION_ALLOWANCE_BYTES

  def add_storage(self, num_bytes: int) -> None:
    self.storage_bytes += num_bytes

  def take(self, num_bytes: int, what: str) -> None:
    """Reserves `num_bytes` for `what`, or raises CheckpointTooLargeError naming it and the limit."""
    if self.allocated_bytes + num_bytes > self.limit:
      raise CheckpointTooLargeError(
          f'refusing to allocate {what}: {_format_bytes(num_bytes)}, with {_format_bytes(self.allocated_bytes)} '
          f'already built, exceeds the limit for this checkpoint of {_format_bytes(self.limit)} '
          f'({MAX_EXPANSION} x its {_format_bytes(self.storage_bytes)} of storage records + '
          f'{_format_bytes(EXPANSION_ALLOWANCE_BYTES)}); a real checkpoint never asks for this, a memory '
          'bomb (e.g. a stride-0 view broadcasting a small storage) does')
    self.allocated_bytes += num_bytes


class _Storage(_Immutable):
  """One storage record: `data` is a 1-D native-endian array of `dtype` with the record's elements.

  `budget` is the load's `_Budget`, charged for every tensor built from this storage.
  """
  __slots__ = ('name', 'data', 'budget')

  def __init__(self, key: str, data: np.ndarray, budget: _Budget):
    super().__init__(name=key, data=data, budget=budget)


class _Rebuild(_Immutable):
  """Stand-in for an allowed torch function: calls our numpy version of it."""
  __slots__ = ('name', 'fn')

  def __init__(self, name: str, fn: Callable[..., Any]):
    super().__init__(name=name, fn=fn)

  def __call__(self, *args: Any) -> Any:
    return self.fn(*args)


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
  if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool)
                                              for v in value):
    raise CheckpointError(f'tensor {what} must be a tuple of ints, got {value!r}')
  return value


def _tensor_from_storage(storage: Any, storage_offset: Any, size: Any, stride: Any) -> np.ndarray:
  """Reads the tensor torch would view as `storage[offset]` with `size` and `stride` (in elements)."""
  if not isinstance(storage, _Storage):
    raise CheckpointError(f'tensor storage must be a storage record, got {type(storage).__name__}')
  if not isinstance(storage_offset, int) or storage_offset < 0:
    raise CheckpointError(f'tensor storage offset must be an int >= 0, got {storage_offset!r}')
  size = _int_tuple(size, 'size')
  stride = _int_tuple(stride, 'stride')
  if (len(size) != len(stride) or len(size) > 32 or any(s < 0 for s in size)
      or any(s < 0 for s in stride)):
    raise CheckpointError(f'invalid tensor size {size} / stride {stride}')
  data = storage.data
  if 0 in size:
    return np.zeros(size, data.dtype)
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= data.size:
    raise CheckpointError(
        f'tensor (offset {storage_offset}, size {size}, stride {stride}) reads element {last} of '
        f'storage record data/{storage.name}, which has only {data.size} elements')
  numel = math.prod(size)
  storage.budget.take(
      numel * data.itemsize,
      f'a tensor of size {size} ({numel:,} {data.dtype} elements) viewing storage record '
      f'data/{storage.name} ({data.size:,} elements)')
  view = np.lib.stride_tricks.as_strided(
      data[storage_offset:], shape=size, strides=tuple(s * data.itemsize for s in stride),
      writeable=False)
  return np.array(view, copy=True, order='C')


def _rebuild_tensor(storage, storage_offset, size, stride):
  """`torch._utils._rebuild_tensor`."""
  return _tensor_from_storage(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  """`torch._utils._rebuild_tensor_v2`; autograd flags, hooks and metadata do not apply to arrays."""
  del requires_grad, backward_hooks, metadata
  return _tensor_from_storage(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None):
  """`torch._utils._rebuild_parameter`: an `nn.Parameter` is its data."""
  del requires_grad, backward_hooks
  if not isinstance(data, np.ndarray):
    raise CheckpointError(f'parameter data must be a tensor, got {type(data).__name__}')
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  """`torch._utils._rebuild_parameter_with_state`; Python attributes set on the parameter are dropped."""
  del state
  return _rebuild_parameter(data, requires_grad, backward_hooks)


def _size(dims=()):
  """`torch.Size` -> tuple of ints."""
  return _int_tuple(tuple(dims), 'torch.Size')


# (module, name) -> what the unpickler gets instead. Nothing else is resolvable.
ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType({
    ('collections', 'OrderedDict'): collections.OrderedDict,
    **{('torch._utils', fn.__name__): _Rebuild(fn.__name__, fn)
       for fn in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter, _rebuild_parameter_with_state)},
    ('torch', 'Size'): _Rebuild('Size', _size),
    **{('torch', name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
    ('torch.storage', 'UntypedStorage'): _StorageType('UntypedStorage', _STORAGE_DTYPES['UntypedStorage']),
})


def _to_native(raw: bytes, dtype: np.dtype, big_endian: bool) -> np.ndarray:
  """Raw record bytes -> 1-D read-only array of `dtype` in native byte order."""
  byte_view = np.frombuffer(raw, np.uint8)
  if big_endian and dtype.itemsize > 1:
    # Reverse the bytes of every scalar (each half of a complex number is one scalar).
    width = dtype.itemsize // 2 if dtype.kind == 'c' else dtype.itemsize
    byte_view = byte_view.reshape(-1, width)[:, ::-1].copy().reshape(-1)
  return byte_view.view(dtype)


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles `data.pkl`, resolving only `ALLOWED_GLOBALS` and reading storages from the archive."""

  def __init__(self, file: io.BufferedIOBase, read_record: Callable[[str], bytes], big_endian: bool,
               path: str, budget: _Budget):
    super().__init__(file)
    self._read_record = read_record
    self._big_endian = big_endian
    self._path = path
    self._budget = budget
    self._storages: dict[str, _Storage] = {}

  def find_class(self, module: str, name: str) -> Any:
    target = ALLOWED_GLOBALS.get((module, name))
    if target is None:
      raise UnsafeCheckpointError(
          f'{self._path}: refusing to load: data.pkl names the global {module}.{name}, which is not '
          'needed to rebuild tensors or state dicts and could run arbitrary code (only '
          'estrnn_jax.torch_pickle.ALLOWED_GLOBALS are resolved). If you trust this file, open it with '
          'torch.load instead.')
    return target

  def persistent_load(self, pid: Any) -> _Storage:
    if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != 'storage'
        or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)
        or not isinstance(pid[4], int) or isinstance(pid[4], bool) or pid[4] < 0):
      raise CheckpointError(f'{self._path}: unsupported persistent id {pid!r} in data.pkl')
    _, storage_type, key, _, numel = pid  # The location (e.g. 'cuda:0') does not matter to numpy.
    dtype = storage_type.dtype
    cached = self._storages.get(key)
    if cached is not None and cached.data.dtype == dtype and cached.data.size >= numel:
      return cached
    raw = self._read_record(f'data/{key}')
    if len(raw) < numel * dtype.itemsize:
      raise CheckpointError(
          f'{self._path}: storage record data/{key} has {len(raw)} bytes; the pickle expects {numel} '
          f'{storage_type.name} elements ({numel * dtype.itemsize} bytes). The file is truncated or corrupt.')
    if key not in self._storages:
      self._budget.add_storage(len(raw))
    storage = _Storage(key, _to_native(raw[:numel * dtype.itemsize], dtype, self._big_endian), self._budget)
    self._storages[key] = storage
    return storage


def _replace_storages(obj: Any, seen: set[int]) -> Any:
  """Replaces storages saved on their own (not inside a tensor) by 1-D array copies, in place."""
  if isinstance(obj, _Storage):
    obj.budget.take(obj.data.nbytes, f'a copy of storage record data/{obj.name}')
    return obj.data.copy()
  if id(obj) in seen:
    return obj
  seen.add(id(obj))
  if isinstance(obj, dict):
    for key, value in obj.items():
      obj[key] = _replace_storages(value, seen)
  elif isinstance(obj, list):
    obj[:] = [_replace_storages(value, seen) for value in obj]
  elif isinstance(obj, tuple) and any(isinstance(value, (_Storage, dict, list, tuple)) for value in obj):
    return tuple(_replace_storages(value, seen) for value in obj)
  return obj


def _not_a_zip_error(path: str, head: bytes) -> CheckpointError:
  """Explains what a file that is not a zip archive looks like instead."""
  if not head:
    return CheckpointError(f'{path}: the file is empty, not a PyTorch checkpoint')
  if head.startswith(b'PK'):
    return CheckpointError(f'{path}: corrupt or truncated zip archive (torch.save checkpoint); '
                           're-download or re-save it')
  if head.startswith(_LEGACY_MAGIC):
    return CheckpointError(f'{path}: legacy (torch < 1.6) torch.save format, which is not supported '
                           f'without torch; {_RESAVE_HINT}')
  if head[257:262] == b'ustar':
    return CheckpointError(f'{path}: legacy tar torch.save format (torch <= 0.3), which is not supported '
                           f'without torch; {_RESAVE_HINT}')
  if head[:1] == b'\x80':
    return CheckpointError(f'{path}: a plain pickle file, not a torch.save zip checkpoint')
  return CheckpointError(f'{path}: not a PyTorch checkpoint: expected a zip archive written by torch.save '
                         f'(torch >= 1.6), but the file starts with {head[:16]!r}')


def _data_pkl_name(names: Sequence[str], path: str) -> str:
  """Finds `<archive>/data.pkl`; torch names the archive folder after the file, so it varies."""
  candidates = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
  if 'data.pkl' in names:
    candidates.append('data.pkl')
  if len(candidates) != 1:
    found = ', '.join(list(names)[:8]) + (', ...' if len(names) > 8 else '')
    raise CheckpointError(f'{path}: a zip archive but not a torch.save checkpoint: expected one '
                          f"'<name>/data.pkl' record, found {len(candidates)} among: {found}")
  return candidates[0]


def load(path: str | os.PathLike[str]) -> Any:
  """Loads a `torch.save` checkpoint into plain Python containers and numpy arrays.

  Args:
    path: a `.pth` / `.pth.tar` / `.pt` file written by `torch.save` (zip format, torch >= 1.6); local
      or any `etils.epath` location (`gs://...`).

  Returns:
    The saved object, with every tensor (and `nn.Parameter`) as a numpy array of the same dtype, shape and
    values (bfloat16 as `ml_dtypes.bfloat16`), every `torch.Size` as a tuple; dicts, `OrderedDict`s
    (including a state dict's `_metadata` attribute), lists, tuples, ints, floats, bools, strings and None
    as they were.

  Raises:
    FileNotFoundError: `path` does not exist.
    UnsafeCheckpointError: the pickle names a global outside `ALLOWED_GLOBALS` (nothing it names is called).
    CheckpointTooLargeError: a record or the tensors asked for exceed the limits in the module docstring.
    CheckpointError: the file is not a zip `torch.save` checkpoint (e.g. an image, text, the legacy
      format), or it is corrupt or truncated, or a storage record is missing or short.
  """
  path = epath.Path(path)
  where = os.fspath(path)
  if not path.exists():
    raise FileNotFoundError(errno.ENOENT, 'No such checkpoint file', where)
  if path.is_dir():
    raise CheckpointError(f'{where}: is a directory, expected a torch.save checkpoint file')
  with path.open('rb') as f:
    head = f.read(512)
    f.seek(0)
    if not zipfile.is_zipfile(f):
      raise _not_a_zip_error(where, head)
    f.seek(0)
    try:
      with zipfile.ZipFile(f) as archive:
        return _load_archive(archive, where)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
      raise CheckpointError(f'{where}: corrupt or truncated zip archive: {e}') from e


def _load_archive(archive: zipfile.ZipFile, path: str) -> Any:
  """Unpickles `data.pkl` of an open torch.save archive."""
  names = archive.namelist()
  pkl_name = _data_pkl_name(names, path)
  prefix = pkl_name[:-len('data.pkl')]

  def read_record(name: str, limit: int = MAX_RECORD_BYTES) -> bytes:
    try:
      info = archive.getinfo(prefix + name)
    except KeyError:
      raise CheckpointError(f'{path}: the checkpoint refers to record {prefix + name}, which is missing '
                            'from the archive (truncated or corrupt file)') from None
    return _read_member(archive, info, limit, path)

  big_endian = False
  if prefix + 'byteorder' in names:
    byteorder = read_record('byteorder', limit=16).strip()
    if byteorder not in (b'little', b'big'):
      raise CheckpointError(f"{path}: byteorder record must be 'little' or 'big', got {byteorder!r}")
    big_endian = byteorder == b'big'

  budget = _Budget()
  unpickler = _RestrictedUnpickler(io.BytesIO(read_record('data.pkl', limit=MAX_PICKLE_BYTES)), read_record,
                                   big_endian, path, budget)
  try:
    obj = unpickler.load()
  except CheckpointError as e:
    if str(e).startswith(path):
      raise
    raise type(e)(f'{path}: {e}') from e
  except (zipfile.BadZipFile, zlib.error, OSError):
    raise
  except Exception as e:  # A malformed pickle raises almost anything (UnpicklingError, TypeError, ...).
    raise CheckpointError(f'{path}: malformed data.pkl in the checkpoint: {type(e).__name__}: {e}') from e
  try:
    return _replace_storages(obj, set())
  except CheckpointError as e:
    raise type(e)(f'{path}: {e}') from None
  except RecursionError:
    raise CheckpointError(f'{path}: data.pkl nests containers too deeply to be a checkpoint') from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path: str) -> bytes:
  """Reads one zip record, refusing (before reading) one whose declared size exceeds the limits."""
  declared = info.file_size
  if declared > limit:
    raise CheckpointTooLargeError(
        f'{path}: record {info.filename} declares {_format_bytes(declared)}, over the limit of '
        f'{_format_bytes(limit)} for this record')
  if declared > (1 << 20) and declared > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
    raise CheckpointTooLargeError(
        f'{path}: record {info.filename} declares {_format_bytes(declared)} from '
        f'{_format_bytes(info.compress_size)} compressed, a ratio over the limit of {MAX_COMPRESSION_RATIO} '
        '(torch.save stores records uncompressed; this looks like a zip bomb)')
  with archive.open(info) as member:
    data = member.read(declared + 1)
  if len(data) != declared:
    raise CheckpointError(f'{path}: record {info.filename} holds {len(data):,} bytes, but the archive '
                          f'declares {declared:,} (corrupt file)')
  return data
