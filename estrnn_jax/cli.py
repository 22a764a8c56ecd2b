"""One style for every command-line entry point (`main`, `evaluate`, `deblur`, `convert`, `export`, ...).

  * A user error (a missing or unreadable file, a bad flag or config value, a refused checkpoint) prints one line,
    `<command>: error: <what and where>`, and exits with status 1. User errors are `UserError` and the standard
    exceptions for bad values and files (`USER_ERRORS`); the message names the file or field.
  * Ctrl-C prints `<command>: interrupted` and exits with status 130. Commands write their outputs under
    temporary names and move them into place when complete, so an interrupted run leaves nothing that looks
    complete.
  * `--verbosity=1` (or more), or the environment variable `ESTRNN_TRACEBACK=1`, prints the traceback before the
    error line, for bug reports.
  * Anything else (a bug) propagates with its traceback.

absl entry points:   `if __name__ == '__main__': cli.run_absl('convert', main)`
argparse entry points: `parser = cli.ArgumentParser('deblur', ...)`, then
  `return cli.guarded('deblur', lambda: run(args), verbosity=args.verbosity)`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

TRACEBACK_ENV = 'ESTRNN_TRACEBACK'
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


class UserError(Exception):
  """Something the user can fix (a path, a flag, a config field); the message names it and what is wrong."""


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
  """Runs `fn()` and returns the exit status: its int result (0 for None), 1 for a user error, 130 for Ctrl-C."""
  try:
    status = fn()
  except KeyboardInterrupt:
    print(f'\n{command}: interrupted', file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
  except USER_ERRORS as e:
    report_error(command, e, verbosity=verbosity)
    return EXIT_ERROR
  return EXIT_OK if status is None else int(status)


def run_absl(command: str, main: Callable[[list[str]], Any]) -> NoReturn:
  """`absl.app.run(main)` in this style; flag parsing errors are user errors too."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top

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
    sys.exit(guarded(command, lambda: main(argv), verbosity=logging.get_verbosity()))

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
  """True for XLA's out-of-memory error: a `jax.errors.JaxRuntimeError` (XlaRuntimeError) with RESOURCE_EXHAUSTED."""
  jax_errors = sys.modules.get('jax.errors')
  runtime_error = getattr(jax_errors, 'JaxRuntimeError', None)
  is_xla_error = (isinstance(error, runtime_error) if runtime_error is not None
                  else type(error).__name__ in ('XlaRuntimeError', 'JaxRuntimeError'))
  return is_xla_error and 'RESOURCE_EXHAUSTED' in str(error)
