"""Train a resolved architecture: `python -m tfnas.bin.train --config=... --workdir=DIR`.

Writes DIR/arch.json, DIR/data.json, DIR/metrics.json (with test_accuracy),
DIR/model.weights.h5 and DIR/model.tflite; rerun the same command to resume.
"""

from tfnas.bin import common  # noqa: F401  (sets log level before TF loads)

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Python config file (e.g. configs/train_cifar10.py:quick); override "
    "fields with --config.<field>=value.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs; "
                               "rerunning with the same workdir resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from tfnas import train
  metrics = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(f"test_accuracy={metrics['test_accuracy']:.4f} params={metrics['params']} "
        f"workdir={_WORKDIR.value}")


if __name__ == "__main__":
  common.run_main(main)
