"""ProxylessNAS on CIFAR-10 for a host-latency target, end to end with the real binaries.

  .venv/bin/python benchmarks/bench_proxyless_target.py [--width=0.35] [--num_archs=600]
      [--target=all_k3_e6] [--search_steps=300] [--train_epochs=3]

1. `tflite_bench.bin.profile`: measure --num_archs random `proxyless_cifar` archs (32 px,
   this width) on the host LiteRT runner (resumable records in runs/bench_target/).
2. `tfnas.bin.latency_fit`: fit the additive latency model on them, and measure the
   per-op lookup table (each block's op alone); the search uses --latency_source.
3. `tfnas.bin.search` (configs/proxyless_cifar10.py:quick) with that model and a target
   equal to the predicted latency of the --target reference (default all_k3_e6, the
   MobileNetV2-like arch), so the comparison is at equal latency; the latency loss is
   the absolute form CE + lambda * |E[lat] / T - 1| (pulls towards the target).
4. Retrain the derived arch and the all_k3_e3 / all_k3_e6 references briefly
   (configs/train_cifar10.py:quick) and time their float `.tflite` files interleaved.
Writes benchmarks/results/proxyless_target_cifar10_<source>_<target>[_derive_target].json.
Every step resumes.
"""

import json
import os
import statistics
import subprocess
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_WIDTH = flags.DEFINE_float("width", 0.35, "Width multiplier (as the quick search config).")
_NUM = flags.DEFINE_integer("num_archs", 600, "Archs to measure for the latency model.")
_TARGET = flags.DEFINE_string("target", "all_k3_e6", "Reference whose predicted latency is "
                              "the target.")
_STEPS = flags.DEFINE_integer("search_steps", 300, "Search steps (quick config: 300).")
_EPOCHS = flags.DEFINE_integer("train_epochs", 3, "Retrain epochs (quick config: 3).")
_SOURCE = flags.DEFINE_enum("latency_source", "lut", ["lut", "fit"],
                            "Search with the measured per-op table (lut) or the model fitted "
                            "on the sampled archs (fit).")
_FORM = flags.DEFINE_string("latency_form", "abs", "Latency loss form (abs pulls to the target).")
_LAMBDA = flags.DEFINE_float("latency_lambda", 1.0, "Latency loss weight.")
_DERIVE = flags.DEFINE_enum("derive", "argmax", ["argmax", "target"],
                            "How the search derives its arch: argmax per block (the paper), or "
                            "the most probable arch within 5 % of the target (same trained "
                            "supernet: the argmax run's checkpoint is reused).")
_ROUNDS = flags.DEFINE_integer("rounds", 7, "Interleaved latency rounds.")
_DATASET = flags.DEFINE_string("dataset", "folder:../shared/data/cifar10-jpg.tar.gz", "Data.")
_OUT = flags.DEFINE_string("out", "runs/bench_target", "Work folder.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*args):
  print("$", " ".join(args), flush=True)
  subprocess.run([sys.executable, "-m", *args], check=True, cwd=ROOT)


def main(_):
  os.chdir(ROOT)
  out, w = _OUT.value, _WIDTH.value
  records = os.path.join(out, "records.jsonl")
  sh("tflite_bench.bin.profile", "--space=proxyless_cifar", "--resolution=32", f"--width={w}",
     f"--num_archs={_NUM.value}", "--retest=50", f"--out={records}")
  sh("tfnas.bin.latency_fit", f"--records={records}", f"--out={out}/fit")
  sh("tfnas.bin.latency_fit", "--measure_lut", "--space=proxyless_cifar", "--resolution=32",
     f"--width={w}", f"--out={out}/lut")
  model_path = f"{out}/{_SOURCE.value}/latency_model.json"
  from tfnas.latency import load
  from tfnas.spaces import get_space
  space = get_space("proxyless_cifar", 32, w)
  lat = load(model_path, space)
  target = lat.predict(_TARGET.value)
  search = f"{out}/search_{_SOURCE.value}_{_TARGET.value}"
  if _DERIVE.value != "argmax":
    import shutil
    trained = search
    search = f"{search}_derive_{_DERIVE.value}"
    if not os.path.exists(search) and os.path.exists(f"{trained}/search_report.json"):
      shutil.copytree(trained, search, ignore=shutil.ignore_patterns("tb"))
  sh("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick", f"--workdir={search}",
     "--config.model.space=proxyless_cifar", f"--config.model.width={w}", "--config.data.train_limit=6000",
     "--config.search.warmup_steps=100", f"--config.search.derive={_DERIVE.value}",
     f"--config.data.dataset={_DATASET.value}", f"--config.search.latency_model={model_path}",
     f"--config.search.target={target}", f"--config.train.steps={_STEPS.value}",
     f"--config.search.latency_form={_FORM.value}", f"--config.search.latency_lambda={_LAMBDA.value}",
     # float32: the datasets above and the trained model.tflite timed below are float32
     "--config.search.precision=float32")
  report = json.load(open(f"{search}/search_report.json"))
  runs = {"searched": f"{search}/arch.json", "all_k3_e3": "all_k3_e3", "all_k3_e6": "all_k3_e6"}
  results = {}
  for name, arch in runs.items():
    workdir = f"{out}/train_{name}" if name != "searched" else f"{search}_retrain"
    sh("tfnas.bin.train", "--config=configs/train_cifar10.py:quick", f"--workdir={workdir}",
       f"--config.data.dataset={_DATASET.value}", f"--config.model.arch={arch}", f"--config.model.width={w}",
       f"--config.train.epochs={_EPOCHS.value}", "--config.verbose=0")
    m = json.load(open(f"{workdir}/metrics.json"))
    results[name] = {"arch": m["arch"], "test_accuracy": m["test_accuracy"],
                     "predicted_ms": lat.predict(m["arch"]),
                     "tflite": f"{workdir}/model.tflite"}
  from tflite_bench.host import HostRunner, cpu_model
  from tflite_bench.protocol import FIXED
  runner = HostRunner()
  times = {n: [] for n in results}
  for _ in range(_ROUNDS.value):
    for n, r in results.items():
      times[n].append(runner.measure(r["tflite"], FIXED)[0].median_ms)
  for n, r in results.items():
    r["measured_ms"] = statistics.median(times[n])
    r["measured_over_target"] = r["measured_ms"] / target
    r["predicted_over_target"] = r["predicted_ms"] / target
  fit_report = json.load(open(f"{out}/fit/report.json"))
  others = {}
  for other in ("lut", "fit"):
    m = load(f"{out}/{other}/latency_model.json", space)
    others[other] = {n: m.predict(r["arch"]) for n, r in results.items()}
  summary = {
      "width": w, "latency_source": _SOURCE.value, "predicted_by_each_model": others, "target_reference": _TARGET.value, "target_ms": target,
      "search": {k: report.get(k) for k in ("arch", "predicted", "measured_latency",
                                            "val_accuracy_inherited", "steps", "arch_mode",
                                            "derive", "argmax_arch", "argmax_predicted")},
      "latency_model": {k: fit_report.get(k) for k in ("n_fit", "n_test", "rmspe", "within_5pct",
                                                       "spearman", "test_retest")},
      "latency_form": _FORM.value, "latency_lambda": _LAMBDA.value,
      "retrain_epochs": _EPOCHS.value, "results": results, "cpu": cpu_model(),
  }
  os.makedirs("benchmarks/results", exist_ok=True)
  suffix = "" if _DERIVE.value == "argmax" else f"_derive_{_DERIVE.value}"
  path = (f"benchmarks/results/proxyless_target_cifar10_{_SOURCE.value}_{_TARGET.value}"
          f"{suffix}.json")
  with open(path, "w") as f:
    json.dump(summary, f, indent=2)
  print(f"target {target:.3f} ms ({_TARGET.value} predicted)")
  for n, r in results.items():
    print(f"{n:10} acc {r['test_accuracy']:.4f}  predicted {r['predicted_ms']:.3f} ms "
          f"({r['predicted_over_target']:.3f}x target)  measured {r['measured_ms']:.3f} ms "
          f"({r['measured_over_target']:.3f}x)")
  print(f"-> {path}")


if __name__ == "__main__":
  app.run(main)
