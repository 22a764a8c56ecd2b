"""One style for every command-line entry point (`main`, `evaluate`, `deblur`, `convert`, `export`, ...).

  * A user error (a missing or unreadable file, a bad flag or config value, a refused checkpoint) prints one line,
    `<command>: error: <what and where>`, and exits with status 1. User errors are `UserError` and the standard
    exceptions for bad values and files (`USER_ERRORS`); the message names the file or field.
  * Ctrl-C (SIGINT) prints `<command>: interrupted` and exits with status 130; SIGTERM (what batch schedulers
    and `kill` send) unwinds the same way, prints `<command>: terminated (SIGTERM)` and exits with status 143.
    Both unwind through every `finally`, so commands, which write their outputs under temporary names and move
    them into place when complete (`estrnn_jax.atomic`), remove their temporaries and leave nothing that looks
    complete. (Training handles SIGTERM itself: it saves a checkpoint first, `estrnn_jax.train`.)
  * Errors that background threads and abandoned coroutines report while the command fails (Orbax and
    TensorStore log one per array) are the same failure again: they print only with a traceback request.
  * `--verbosity=1` (or more), or the environment variable `ESTRNN_TRACEBACK=1`, prints the traceback before the
    error line, for bug reports.
  * Anything else (a bug) propagates with its traceback.

absl entry points:   `if __name__ == '__main__': cli.run_absl('convert', main)`
argparse entry points: `parser = cli.ArgumentParser('deblur', ...)`, then
  `return cli.guarded('deblur', lambda: run(args), verbosity=args.verbosity)`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

TRACEBACK_ENV = 'ESTRNN_TRACEBACK'
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 130, 128 + signal.SIGTERM


class UserError(Exception):
  """Something the user can fix (a path, a flag, a config field); the message names it and what is wrong."""


class Terminated(BaseException):
  """Raised in the main thread when SIGTERM arrives (like KeyboardInterrupt for SIGINT), so cleanups run."""


def _raise_terminated(signum, frame):
  del signum, frame
  raise Terminated()


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
  """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere it keeps its handler).

  A handler installed inside the block (training's checkpoint-then-stop) takes precedence while it is installed.
  """
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def _user_errors() -> tuple[type[BaseException], ...]:
  errors: list[type[BaseException]] = [UserError, OSError, ValueError, FloatingPointError]
  try:
    from absl import app  # pylint: disable=g-import-not-at-top
    from absl import flags  # pylint: disable=g-import-not-at-top
    errors += [app.UsageError, flags.Error]
  except ImportError:  # absl is a dependency; this only keeps the module importable without it
    pass
  return tuple(errors)


USER_ERRORS = _user_errors()


def wants_traceback(verbosity: int = 0) -> bool:
  """True for `--verbosity >= 1` or a non-empty, non-'0' `ESTRNN_TRACEBACK`."""
  return verbosity >= 1 or os.environ.get(TRACEBACK_ENV, '0') not in ('', '0')


def error_message(error: BaseException) -> str:
  """The one-line message of `error`: `path: reason` for file errors, otherwise its text on one line."""
  if isinstance(error, OSError) and error.filename and error.strerror:
    text = f'{os.fspath(error.filename)}: {error.strerror}'
  else:
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:
      text = str(error.args[0])
  text = ' '.join(line.strip() for line in text.splitlines() if line.strip())
  return text or type(error).__name__


def report_error(command: str, error: BaseException, *, verbosity: int = 0) -> None:
  """Prints `<command>: error: <message>` (after the traceback when asked for) to stderr."""
  if wants_traceback(verbosity):
    traceback.print_exception(error, file=sys.stderr)
  sys.stderr.flush()
  print(f'{command}: error: {error_message(error)}', file=sys.stderr, flush=True)


def guarded(command: str, fn: Callable[[], Any], *, verbosity: int = 0) -> int:
  """Runs `fn()` and returns the exit status: its int result (0 for None), 1 for a user error, 130 for Ctrl-C,
  143 for SIGTERM (see the module docstring)."""
  try:
    with sigterm_unwinds():
      status = fn()
  except KeyboardInterrupt:
    print(f'\n{command}: interrupted', file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
  except Terminated:
    print(f'\n{command}: terminated (SIGTERM)', file=sys.stderr, flush=True)
    return EXIT_TERMINATED
  except USER_ERRORS as e:
    report_error(command, e, verbosity=verbosity)
    return EXIT_ERROR
  return EXIT_OK if status is None else int(status)


class _DropTracebacksOfLibraries(logging.Filter):
  """Keeps Orbax's and TensorStore's error records but drops the traceback they attach (one per array)."""

  def filter(self, record: logging.LogRecord) -> bool:
    path = record.pathname.replace('\\', '/')
    if record.exc_info and ('/orbax/' in path or '/tensorstore/' in path):
      record.exc_info, record.exc_text = None, None
    return True


def quiet_background_errors(verbosity: int = 0) -> None:
  """For a command-line process: background threads' and abandoned coroutines' errors, and the tracebacks that
  Orbax logs, print only when a traceback was asked for (`wants_traceback`). Process-wide and never undone, as
  abandoned coroutines report at interpreter exit."""
  if wants_traceback(verbosity):
    return
  sys.unraisablehook = lambda unraisable: None
  threading.excepthook = lambda args: None
  logging.getLogger('absl').addFilter(_DropTracebacksOfLibraries())


def run_absl(command: str, main: Callable[[list[str]], Any]) -> NoReturn:
  """`absl.app.run(main)` in this style; flag parsing errors are user errors too."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  def parse_flags(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except (AttributeError, KeyError) as e:   # ml_collections: a `--config.<field>` override of no such field
      report_error(command, UserError(f'a --config override names no such field: {str(e).strip(chr(34))}'))
      sys.exit(EXIT_ERROR)
    except USER_ERRORS as e:   # flags.Error, a config file that is missing or fails to load, ...
      report_error(command, e)
      sys.exit(EXIT_ERROR)

  def run_main(argv: list[str]) -> NoReturn:
    quiet_background_errors(absl_logging.get_verbosity())
    sys.exit(guarded(command, lambda: main(argv), verbosity=absl_logging.get_verbosity()))

  app.run(run_main, flags_parser=parse_flags)
  raise AssertionError('absl.app.run returned')   # it always exits


class ArgumentParser(argparse.ArgumentParser):
  """argparse in this style: a bad argument is `<command>: error: ...` with exit status 1; adds --verbosity."""

  def __init__(self, command: str, **kwargs: Any):
    kwargs.setdefault('prog', f'python -m estrnn_jax.{command}')
    super().__init__(**kwargs)
    self.command = command
    self.add_argument('-v', '--verbosity', type=int, default=0,
                      help=f'1 or more: print the traceback of an error (or set {TRACEBACK_ENV}=1).')

  def error(self, message: str) -> NoReturn:
    print(f'{self.command}: error: {message} (see --help)', file=sys.stderr)
    sys.exit(EXIT_ERROR)


def is_device_out_of_memory(error: BaseException) -> bool:
  """True for XLA's out-of-memory error: a `jax.errors.JaxRuntimeError` (XlaRuntimeError) with RESOURCE_EXHAUSTED,
  or, when the allocation fails in an asynchronously dispatched computation, `INTERNAL: Error dispatching
  computation: ... Out of memory allocating N bytes` (what the CPU backend raises when the result is fetched)."""
  jax_errors = sys.modules.get('jax.errors')
  runtime_error = getattr(jax_errors, 'JaxRuntimeError', None)
  is_xla_error = (isinstance(error, runtime_error) if runtime_error is not None
                  else type(error).__name__ in ('XlaRuntimeError', 'JaxRuntimeError'))
  text = str(error)
  return is_xla_error and ('RESOURCE_EXHAUSTED' in text or 'out of memory' in text.lower())
