"""Foundation figures: training images/s of the reference child on real CIFAR-10,
and TFLite conversion seconds per model.

  .venv/bin/python benchmarks/bench_foundation.py [--steps=30] [--convert=5]

Prints the figures and writes benchmarks/results/foundation.json.
"""

import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

_STEPS = flags.DEFINE_integer("steps", 30, "Timed training steps per configuration.")
_CONVERT = flags.DEFINE_integer("convert", 5, "Models to convert for the conversion timing.")
_DATA = flags.DEFINE_string(
    "data", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                         "cifar10-jpg.tar.gz"), "CIFAR-10 tree or archive.")
_OUT = flags.DEFINE_string("out", os.path.join(os.path.dirname(__file__), "results",
                                               "foundation.json"), "Results file.")


def train_throughput(width, batch, steps, data_path):
  import keras
  import tensorflow as tf

  from tfnas import data as data_lib
  from tfnas.models import build_child
  d = data_lib.load(f"folder:{data_path}", image_size=32, batch_size=batch, val_size=0,
                    train_limit=batch * (steps + 10), seed=0)
  ds = d.train.map(lambda x, y: (x, tf.one_hot(y, 10))).repeat()
  model = build_child("proxyless_cifar", "all_k3_e3", width=width)
  model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                loss=keras.losses.CategoricalCrossentropy(from_logits=True))
  times = []

  class Timer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
      self.t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
      times.append(time.perf_counter() - self.t)

  model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace + warm-up
  times.clear()
  model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[Timer()])
  med = statistics.median(times)
  return {"width": width, "batch": batch, "steps": steps, "median_step_s": med,
          "images_per_s": batch / med, "params": model.count_params()}


def conversion_seconds(n):
  import numpy as np

  from tfnas.export.tflite import convert_float
  from tfnas.models import build_child
  from tfnas.spaces import Arch, get_space
  space = get_space("proxyless_mobile")
  rng = np.random.default_rng(0)
  secs = []
  for _ in range(n):
    arch = Arch.create(space, [int(rng.integers(len(b.ops))) for b in space.choice_blocks])
    model = build_child(space, arch)
    t = time.perf_counter()
    convert_float(model)
    secs.append(time.perf_counter() - t)
  return {"space": "proxyless_mobile", "resolution": 224, "models": n,
          "median_s": statistics.median(secs), "min_s": min(secs), "max_s": max(secs)}


def main(argv):
  del argv
  import tensorflow as tf
  results = {
      "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "tensorflow": tf.__version__},
      "train_proxyless_cifar_all_k3_e3": [
          train_throughput(w, 128, _STEPS.value, _DATA.value) for w in (0.5, 1.0)],
      "tflite_conversion": conversion_seconds(_CONVERT.value),
      "command": "python benchmarks/bench_foundation.py " + " ".join(sys.argv[1:]),
  }
  for r in results["train_proxyless_cifar_all_k3_e3"]:
    print(f"train proxyless_cifar all_k3_e3 width={r['width']} batch={r['batch']}: "
          f"{r['images_per_s']:.0f} images/s (median step {r['median_step_s'] * 1e3:.0f} ms)")
  c = results["tflite_conversion"]
  print(f"TFLiteConverter proxyless_mobile 224: median {c['median_s']:.2f} s/model "
        f"(min {c['min_s']:.2f}, max {c['max_s']:.2f}, n={c['models']})")
  os.makedirs(os.path.dirname(_OUT.value), exist_ok=True)
  with open(_OUT.value, "w") as f:
    json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
