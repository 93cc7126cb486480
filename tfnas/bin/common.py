"""What every binary shares: one-line errors instead of tracebacks, quiet logs."""

from __future__ import annotations

import os
import sys

# Keep TensorFlow's C++ start-up chatter out of the user's terminal.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run_main(main):
  """`absl.app.run(main)` that turns user errors into one line and exit code 2."""
  from absl import app

  from tfnas.errors import TfnasError

  def wrapped(argv):
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except TfnasError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  try:
    app.run(wrapped)
  except ValueError as e:
    # config_flags reports unknown keys / bad config files as ValueError/KeyError.
    print(f"error: {e}".splitlines()[0], file=sys.stderr)
    sys.exit(2)

