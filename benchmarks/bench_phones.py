"""Profiling several phones at once: wall time of one device vs two in parallel.

  .venv/bin/python benchmarks/bench_phones.py [--num_archs=40] [--sleep_scale=0.1]

No phone is attached here: both "phones" are the stand-in `adb` of the tests
(tests/data/fake_adb.py), which replays a real `benchmark_model` output (a Pixel 1 run:
50 timed runs, 69.6 ms mean) and sleeps for --sleep_scale of that run's time (0.1: 0.35 s
per measurement), so a device takes wall time as a phone would while the host generates
the models. `tflite_bench.bin.profile --runner=adb` measures --num_archs int8
`nasbench_macro` archs on one device, then the same archs (a fresh file) on two devices
with --serials=A,B; runs alternate (1, 2, 1, 2, ...) for --rounds and the medians are
compared: the binary's whole wall time (TensorFlow's start-up included), and the
measuring span (first record's start to last record's end). Writes
benchmarks/results/phones_parallel.json.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_N = flags.DEFINE_integer("num_archs", 40, "Archs per run.")
_SCALE = flags.DEFINE_float("sleep_scale", 0.1, "Fraction of the recorded run's time the "
                            "stand-in sleeps per measurement.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternated rounds of (one device, two devices).")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
  del argv
  tmp = tempfile.mkdtemp(prefix="bench_phones-")
  bindir = os.path.join(tmp, "bin")
  os.makedirs(bindir)
  with open(os.path.join(ROOT, "tests", "data", "fake_adb.py")) as f:
    stand_in = f.read()
  adb = os.path.join(bindir, "adb")
  with open(adb, "w") as f:
    f.write(f"#!{sys.executable}\n" + stand_in)
  os.chmod(adb, 0o755)
  env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
         "FAKE_ADB_LOG": os.path.join(tmp, "adb.log"),
         "FAKE_ADB_OUTPUT": os.path.join(ROOT, "tests", "data", "benchmark_model",
                                         "current.txt"),
         "FAKE_ADB_DEVICES": "PHONE_A PHONE_B",
         "FAKE_ADB_BINARY": "/data/local/tmp/benchmark_model",
         "FAKE_ADB_SLEEP_SCALE": str(_SCALE.value), "TF_CPP_MIN_LOG_LEVEL": "2",
         "TFNAS_CACHE": os.path.join(tmp, "cache")}
  common = ["--space=nasbench_macro", "--resolution=32", f"--num_archs={_N.value}",
            "--precision=int8", "--runner=adb", "--reference_every=10"]

  def profile(tag, devices, k):
    """(wall seconds of the binary, seconds from the first record's start to the last's end)."""
    import datetime

    from tflite_bench.record import read_records
    out = os.path.join(tmp, f"{tag}_{k}.jsonl")
    t = time.time()
    subprocess.run([sys.executable, "-m", "tflite_bench.bin.profile", *common, f"--out={out}",
                    f"--serials={devices}"], check=True, cwd=ROOT, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.time() - t
    recs = read_records(out)
    when = datetime.datetime.fromisoformat
    span = (max(when(r["finished_at"]) for r in recs)
            - min(when(r["started_at"]) for r in recs)).total_seconds()
    return wall, span

  profile("warm", "PHONE_A", 0)  # converts the pieces once (cached for every run after)
  one, two = [], []
  for k in range(_ROUNDS.value):
    one.append(profile("one", "PHONE_A", k))
    two.append(profile("two", "PHONE_A,PHONE_B", k))
    print(f"round {k}: one device {one[-1][0]:.1f} s (measuring {one[-1][1]:.1f} s), two "
          f"devices {two[-1][0]:.1f} s (measuring {two[-1][1]:.1f} s)", flush=True)
  ratio = lambda i: statistics.median(t[i] / o[i] for t, o in zip(two, one))
  results = {"num_archs": _N.value, "sleep_scale": _SCALE.value,
             "per_measurement_sleep_s": 50 * 69.6343e-3 * _SCALE.value,
             "one_device_wall_s": [w for w, _ in one], "two_devices_wall_s": [w for w, _ in two],
             "one_device_span_s": [s for _, s in one], "two_devices_span_s": [s for _, s in two],
             "two_over_one_wall": ratio(0), "two_over_one_span": ratio(1),
             "command": "python benchmarks/bench_phones.py " + " ".join(sys.argv[1:])}
  print(f"two devices in parallel: {results['two_over_one_span']:.2f}x one device's measuring "
        f"time, {results['two_over_one_wall']:.2f}x its wall time (TensorFlow's start-up "
        "included)")
  out = os.path.join(ROOT, "benchmarks", "results", "phones_parallel.json")
  with open(out, "w") as fh:
    json.dump(results, fh, indent=2)
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
