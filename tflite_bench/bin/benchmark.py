"""Time one `.tflite` file: `python -m tflite_bench.bin.benchmark --model=FILE`.

Host (LiteRT, XNNPACK) by default, with benchmark_model's protocol (warm-up >= 10
runs and >= 0.5 s, then >= 50 runs and >= 1 s); --runner=adb runs
benchmark_model on an attached device. Prints one JSON line: the statistics,
the XNNPACK partition count and the device.
"""

from tflite_bench import cli

if __name__ == "__main__":
  cli.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

import json

from absl import app, flags


_MODEL = flags.DEFINE_string("model", None, "The .tflite file.")
_RUNNER = flags.DEFINE_enum("runner", "host", ["host", "adb"], "Where to measure.")
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads.")
_CPUS = flags.DEFINE_list("cpus", None, "Host CPU ids to pin to (runner=host).")
_SERIAL = flags.DEFINE_string("serial", None, "adb device serial (runner=adb).")
_BINARY = flags.DEFINE_string("benchmark_binary", None,
                              "Local benchmark_model to push (runner=adb).")
flags.mark_flags_as_required(["model"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from tflite_bench.host import HostRunner
  if _RUNNER.value == "host":
    runner = HostRunner(threads=_THREADS.value, cpus=_CPUS.value)
  else:
    from tflite_bench.android import AdbRunner
    runner = AdbRunner(serial=_SERIAL.value, local_binary=_BINARY.value,
                       threads=_THREADS.value)
  stats, info = runner.measure(_MODEL.value)
  print(json.dumps({"model": _MODEL.value, "runner": runner.kind, **vars(stats), **info,
                    "device": runner.device()}))


if __name__ == "__main__":
  from tflite_bench.host import BenchError
  cli.run(main, (BenchError,))
