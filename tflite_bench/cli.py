"""What every binary (tflite_bench's and tfnas's) shares: bad input is one line.

A binary's `main` runs under `run(main, errors)`: absl flag parsing errors, the
listed user-facing error types and the operating system's refusals (a read-only
or full disk, a missing folder) each become a single `error: ...` line on stderr
and exit code 2, never absl's `FATAL` or a traceback. Nothing here changes a
process-wide setting at import.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, Sequence


def fail(message: str) -> NoReturn:
  """Prints `error: <first line of message>` to stderr and exits with code 2."""
  print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
  sys.exit(2)


def one_line(text) -> str:
  """`text` as a single line: the lines of a multi-line message (YAML, tar and flag
  errors span several) joined with spaces, so none of what they name is lost."""
  lines = [l.strip() for l in str(text).splitlines() if l.strip()]
  return " ".join(lines) if lines else repr(text)


def os_error(e: OSError) -> str:
  """`OSError` as one line naming the file: 'cannot write ...: No space left on device'."""
  where = e.filename if e.filename is not None else ""
  reason = e.strerror or str(e)
  return f"{reason}: {where!r}" if where else reason


def verbose(argv: Sequence[str]) -> bool:
  """Whether `argv` asks for absl's `--verbosity` (or `-v`) of 1 or more (debug logs)."""
  args = list(argv)
  for i, a in enumerate(args):
    for name in ("--verbosity", "-v", "--v"):
      value = None
      if a.startswith(name + "="):
        value = a.split("=", 1)[1]
      elif a == name and i + 1 < len(args):
        value = args[i + 1]
      if value is not None:
        try:
          return int(value) >= 1
        except ValueError:
          return False  # absl's parser reports the bad value
  return False


def quiet_tensorflow(argv: Sequence[str] | None = None) -> None:
  """Silences TensorFlow's C++ start-up log lines (`TF_CPP_MIN_LOG_LEVEL=2`) for a
  binary's process, unless `--verbosity=1` (or more) is among `argv` (default
  `sys.argv`) or the variable is already set. A binary calls it first thing under
  `if __name__ == "__main__":`, before TensorFlow loads; importing a module never does."""
  import os
  if not verbose(sys.argv if argv is None else argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_flags(argv: Sequence[str]) -> list[str]:
  """Parses absl flags; a bad flag is one line and exit 2 (absl prints FATAL, exit 1).
  `--help`, `--helpshort` and `--helpfull` print the flags' help and exit 0."""
  from absl import app, flags
  app.define_help_flags()
  try:
    return flags.FLAGS(list(argv))
  except flags.Error as e:
    fail(str(e))


def run(main: Callable[[list[str]], int | None], errors: tuple[type, ...] = (),
        parse: Callable[[list[str]], list[str]] = parse_flags) -> NoReturn:
  """Parses flags with `parse`, runs `main(argv)`; `errors` and `OSError` -> one line, exit 2."""
  from absl import app, logging
  argv = parse(sys.argv)
  if not verbose(sys.argv):  # --verbosity=1 keeps absl's INFO/DEBUG lines
    logging.set_verbosity(logging.WARNING)
  try:
    code = main(argv)
  except (app.UsageError, *errors) as e:
    fail(str(e))
  except OSError as e:
    fail(os_error(e))
  sys.exit(code or 0)
