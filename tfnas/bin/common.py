"""What every binary shares: one-line errors instead of tracebacks, quiet logs."""

from __future__ import annotations

import os
import sys

# Keep TensorFlow's C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _fail(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def _last_line(text: str) -> str:
  lines = [l.strip() for l in str(text).splitlines() if l.strip()]
  useful = [l for l in lines if "Error" in l or "error" in l] or lines or [repr(text)]
  return useful[-1]


def parse_flags_or_exit(argv: list[str]) -> list[str]:
  """Parses absl flags (incl. ml_collections config files); bad ones -> one line, exit 2."""
  from absl import flags
  for arg in argv[1:]:
    if arg.startswith("--config=") and not arg.startswith("--config=/dev"):
      path = arg.split("=", 1)[1].split(":", 1)[0]
      if not os.path.isfile(path):
        _fail(f"config file {path!r} does not exist (expected e.g. configs/<name>.py[:variant])")
  try:
    return flags.FLAGS(argv)
  except AttributeError as e:  # ml_collections: --config.<unknown>=...
    _fail(f"unknown config field {str(e).strip(chr(34))}; it is not a field of the --config file")
  except KeyError as e:
    _fail(f"unknown config field {e}; it is not a field of the --config file")
  except (flags.Error, OSError, ValueError, TypeError) as e:
    _fail(_last_line(e))


def run_main(main):
  """Runs `main(argv)` after parsing flags; `TfnasError` -> one line and exit code 2."""
  from absl import app, logging

  from tfnas.errors import TfnasError
  argv = parse_flags_or_exit(sys.argv)
  logging.set_verbosity(logging.WARNING)
  try:
    code = main(argv)
  except TfnasError as e:
    _fail(str(e))
  except app.UsageError as e:
    _fail(str(e))
  sys.exit(code or 0)


def define_config_and_workdir(example: str):
  """The `--config` (ml_collections config file) and `--workdir` flags of a binary."""
  from absl import flags
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_file(
      "config", None, f"Python config file (e.g. {example}); override fields with "
      "--config.<field>=value.", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and "
                                "outputs; rerunning with the same workdir resumes.")
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir
