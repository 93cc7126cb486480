"""Quantized export on CIFAR-10: accuracy in LiteRT, size and host latency per precision.

  .venv/bin/python benchmarks/bench_export.py [--workdir=runs/quickstart] [--qat_steps=300]
      [--rounds=7] [--test_limit=N]

Takes a trained workdir (default: the old quick-start training, `tfnas.bin.train
--config=configs/train_cifar10.py:quick`, trained first if missing), exports it as
float32, float16, int8 post-training, int8 quantization-aware and a uniform-int8 recipe
through the per-layer path (`tfnas.bin.export`'s pipeline), then times the five files on the
host LiteRT runner interleaved (A B C D E, A B C D E, ...) and reports per-file medians and the median of per-round ratios to
float32. Writes benchmarks/results/export_cifar10.json.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "A trained workdir.")
_DATASET = flags.DEFINE_string("dataset", "folder:../shared/data/cifar10-jpg.tar.gz",
                               "Dataset (for training a missing workdir).")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", 300, "QAT fine-tuning steps.")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved latency rounds.")
_TEST_LIMIT = flags.DEFINE_integer("test_limit", None, "Test images (default all 10,000).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# "mixed" is the per-layer recipe path (litert-quantizer) with a uniform int8 recipe: it
# must match the converter's int8 post-training file (the mixed-precision search's baseline).
VARIANTS = (("float32", "ptq"), ("float16", "ptq"), ("int8", "ptq"), ("int8", "qat"),
            ("mixed", "ptq"))


def main(_):
  os.chdir(ROOT)
  workdir = _WORKDIR.value
  if not os.path.exists(os.path.join(workdir, "model.weights.h5")):
    subprocess.run([sys.executable, "-m", "tfnas.bin.train",
                    "--config=configs/train_cifar10.py:quick", f"--workdir={workdir}",
                    f"--config.data.dataset={_DATASET.value}"], check=True)
  from tflite_bench.host import HostRunner, cpu_model, runtime_version
  from tflite_bench.protocol import FIXED
  from tfnas.export.pipeline import ExportOptions, export
  results, files = {}, {}
  recipe = os.path.join(workdir, "uniform_int8_recipe.json")
  with open(recipe, "w") as f:
    json.dump({"default": "int8", "layers": {}}, f)
  for precision, quant in VARIANTS:
    name = {"int8": f"int8_{quant}", "mixed": "recipe_uniform_int8"}.get(precision, precision)
    start = time.time()
    rep = export(workdir, ExportOptions(precision=precision, quantization=quant,
                                        recipe=recipe if precision == "mixed" else None,
                                        qat_steps=_QAT_STEPS.value, measure=False,
                                        test_limit=_TEST_LIMIT.value))
    path = os.path.join(workdir, rep["tflite"])
    files[name] = open(path, "rb").read()
    results[name] = {k: rep.get(k) for k in (
        "size_bytes", "tflite_test_accuracy", "keras_test_accuracy", "keras_qat_test_accuracy",
        "delegate_partitions", "undelegated_ops", "test_examples", "ops", "min_runtime_version")}
    results[name]["export_seconds"] = time.time() - start
    print(f"{name}: {results[name]}", flush=True)
  runner = HostRunner()
  times = {n: [] for n in files}
  for _ in range(_ROUNDS.value):
    for n, data in files.items():
      stats, _ = runner.measure(data, FIXED)
      times[n].append(stats.median_ms)
  for n in files:
    r = results[n]
    r["latency_ms_median"] = statistics.median(times[n])
    r["latency_ratio_to_float32"] = statistics.median(
        a / b for a, b in zip(times[n], times["float32"]))
    r["size_ratio_to_float32"] = r["size_bytes"] / results["float32"]["size_bytes"]
    r["accuracy_minus_float32"] = (r["tflite_test_accuracy"]
                                   - results["float32"]["tflite_test_accuracy"])
  out = {"workdir": workdir, "arch": json.load(open(os.path.join(workdir, "arch.json")))
         ["canonical"], "qat_steps": _QAT_STEPS.value, "rounds": _ROUNDS.value,
         "cpu": cpu_model(), "runtime": runtime_version(), "results": results}
  os.makedirs("benchmarks/results", exist_ok=True)
  with open("benchmarks/results/export_cifar10.json", "w") as f:
    json.dump(out, f, indent=2)
  print(f"{'file':10} {'size':>9} {'size÷f32':>9} {'LiteRT acc':>10} {'Δ vs f32':>9} "
        f"{'ms':>7} {'ms÷f32':>7} partitions")
  for n, r in results.items():
    print(f"{n:10} {r['size_bytes']:9d} {r['size_ratio_to_float32']:9.3f} "
          f"{r['tflite_test_accuracy']:10.4f} {r['accuracy_minus_float32']:+9.4f} "
          f"{r['latency_ms_median']:7.3f} {r['latency_ratio_to_float32']:7.3f} "
          f"{r['delegate_partitions']}")


if __name__ == "__main__":
  app.run(main)
