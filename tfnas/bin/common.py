"""What every binary shares: one-line errors instead of tracebacks, quiet logs.

Importing it changes no process-wide setting: a binary calls `quiet_tensorflow()` under
`if __name__ == "__main__":` before TensorFlow loads (`--verbosity=1` keeps its logs)."""

from __future__ import annotations

import os

from tflite_bench.cli import quiet_tensorflow  # noqa: F401  (re-exported for the binaries)


def parse_flags_or_exit(argv: list[str]) -> list[str]:
  """Parses absl flags (incl. ml_collections config files); bad ones -> one line, exit 2."""
  from absl import app, flags

  from tflite_bench.cli import fail
  app.define_help_flags()
  for arg in argv[1:]:
    if arg.startswith("--config=") and not arg.startswith("--config=/dev"):
      path = arg.split("=", 1)[1].split(":", 1)[0]
      if not os.path.isfile(path):
        fail(f"config file {path!r} does not exist (expected e.g. configs/<name>.py[:variant])")
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:  # ml_collections: --config.<unknown>=...
    fail(_unknown_field(e) + _moved_field(argv))
  except (flags.Error, OSError, ValueError, TypeError) as e:
    fail(str(e))


def _unknown_field(e: Exception) -> str:
  """One line from ml_collections' error for an unknown field, whose text can be the
  repr of "'name'\\nDid you mean \"other\" instead of \"name\"?"."""
  import ast
  text = str(e.args[0]) if e.args else str(e)
  for _ in range(2):  # unquote the repr (of a repr) ml_collections passes on
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" and "\\" in text:
      try:
        text = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        break
  name, _, hint = text.strip().strip('"').partition("\n")
  return (f"unknown config field {name}; it is not a field of the --config file"
          + (f" ({hint.strip()})" if hint.strip() else ""))


def _moved_field(argv) -> str:
  """"; did you mean --config.data.dataset?" when a `--config.<field>` flag names a field
  that lives in a section of the --config file (configs were flat before their sections),
  else ""."""
  from tfnas import configs
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if not path:
    return ""
  path, _, variant = path.partition(":")
  try:
    config = configs.load_file(path, variant)
  except Exception:  # the config file's own errors are reported when flags parse it
    return ""
  for arg in argv:
    name = arg[len("--config."):].split("=", 1)[0] if arg.startswith("--config.") else ""
    if name and "." not in name and name not in config:
      for section in configs.SECTIONS:
        if name in config.get(section, {}):
          return f"; did you mean --config.{section}.{name}?"
  return ""


def run_main(main):
  """Runs `main(argv)` after parsing flags; tfnas's and tflite_bench's user errors and the
  operating system's refusals (read-only or full disk) -> one line and exit code 2."""
  from tflite_bench import cli
  from tflite_bench.host import BenchError
  from tflite_bench.record import RecordError
  from tfnas.errors import TfnasError
  cli.run(main, (TfnasError, BenchError, RecordError), parse=parse_flags_or_exit)


def define_config_and_workdir(example: str):
  """The `--config` (ml_collections config file) and `--workdir` flags of a binary."""
  from absl import flags
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_file(
      "config", None, f"Python config file (e.g. {example}); override fields with "
      "--config.<section>.<field>=value (sections: data, model, train, search; "
      "e.g. --config.data.dataset=folder:PATH).", lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and "
                                "outputs; rerunning with the same workdir resumes.")
  flags.mark_flags_as_required(["config", "workdir"])
  return config, workdir
