"""Train a resolved architecture: `python -m tfnas.bin.train --config=... --workdir=DIR`.

Writes DIR/arch.json, DIR/data.json, DIR/metrics.json (with test_accuracy),
DIR/model.weights.h5 and DIR/model.tflite; rerun the same command to resume.
"""

from tfnas.bin import common

if __name__ == "__main__":
  common.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

from absl import app

_CONFIG, _WORKDIR = common.define_config_and_workdir("configs/train_cifar10.py:quick")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from tfnas import train
  metrics = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(f"test_accuracy={metrics['test_accuracy']:.4f} params={metrics['params']} "
        f"workdir={_WORKDIR.value}")


if __name__ == "__main__":
  common.run_main(main)
