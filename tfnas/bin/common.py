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
    name, line = _unknown_field(e)
    fail(line + ("" if "Did you mean" in line else _moved_field(argv, name)))
  except (flags.Error, OSError, ValueError, TypeError) as e:
    fail(str(e))


def _unknown_field(e: Exception) -> tuple[str, str]:
  """(field, one line) from ml_collections' error for an unknown field, whose text can be
  the repr of "'name'\\nDid you mean \"other\" instead of \"name\"?"."""
  import ast
  text = str(e.args[0]) if e.args else str(e)
  for _ in range(2):  # unquote the repr (of a repr) ml_collections passes on
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" and "\\" in text:
      try:
        text = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        break
  name, _, hint = text.strip().strip('"').partition("\n")
  return name.strip("'\""), (f"unknown config field {name}; it is not a field of the "
                             "--config file" + (f" ({hint.strip()})" if hint.strip() else ""))


# Fields renamed or moved since a release of the flat configs: where they are now.
_RENAMED = {"target_ms": "search.target"}


def _moved_field(argv, name: str) -> str:
  """"; did you mean --config.data.dataset?" when the unknown field `name` is a field of
  another section of the --config file (configs were flat before their sections) or was
  renamed (`_RENAMED`), else ""."""
  from tfnas import configs
  if name in _RENAMED:
    return f"; did you mean --config.{_RENAMED[name]}? (it was renamed)"
  args = list(argv)
  path = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
  if path is None and "--config" in args[:-1]:
    path = args[args.index("--config") + 1]
  if not path:
    return ""
  path, _, variant = path.partition(":")
  try:
    config = configs.load_file(path, variant)
  except Exception:  # the config file's own errors are reported when flags parse it
    return ""
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
