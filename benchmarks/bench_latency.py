"""Latency-model figures: the sampled-arch dataset, the fitted model, fast generation.

  .venv/bin/python benchmarks/bench_latency.py --num_archs=5000 --resolution=224
  .venv/bin/python benchmarks/bench_latency.py --num_archs=300 --resolution=96   # smaller
  .venv/bin/python benchmarks/bench_latency.py --precision=int8 ...  # the file that ships

Steps (each resumable; rerun the same command after an interruption):
  1. fast generation vs TFLiteConverter on a few archs at --precision (speed-up; same
     ops, order, shapes, types and quantization axes checked; both files' latencies on
     this host, interleaved run by run);
  2. micro-benchmark LUT on this host (every (block, op) in isolation);
  3. `tflite_bench.bin.profile` over --num_archs uniformly sampled archs, with
     --retest of them re-measured (test-retest noise floor), timed wall-clock;
  4. `tfnas.bin.latency_fit` (4k/1k split at 5k) with the LUT as prior and baseline.
Prints the figures and writes benchmarks/results/latency_<space>_<res>.json.
"""

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

_SPACE = flags.DEFINE_string("space", "proxyless_mobile", "Search space.")
_N = flags.DEFINE_integer("num_archs", 5000, "Archs to measure.")
_RES = flags.DEFINE_integer("resolution", 224, "Input resolution.")
_RETEST = flags.DEFINE_integer("retest", 200, "Archs re-measured for the noise floor.")
_WORK = flags.DEFINE_string("workdir", "runs/bench_latency", "Where records and models go.")
_FASTGEN = flags.DEFINE_integer("fastgen_archs", 5, "Archs for the fast-generation timing.")
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "float16", "int8"],
                               "Precision of the generated and measured files.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layout(signature):
  """A float16 model's weight DEQUANTIZEs (first, in the converter's own order) as a set."""
  k = 0
  while k < len(signature) and signature[k][0] == "DEQUANTIZE":
    k += 1
  return sorted(signature[:k]), signature[k:]


def _interleaved_ms(a_bytes, b_bytes, runs=100, warmup=5):
  """Median invoke time (ms) of two models, alternated run by run (which goes first swaps
  every pair), so load from other processes hits both alike."""
  from tflite_bench.host import HostRunner
  runner = HostRunner()
  interps = (runner.load(a_bytes), runner.load(b_bytes))
  times = ([], [])
  for i in range(warmup + runs):
    for k in ((0, 1) if i % 2 else (1, 0)):
      t = time.perf_counter()
      interps[k].invoke()
      if i >= warmup:
        times[k].append((time.perf_counter() - t) * 1e3)
  return statistics.median(times[0]), statistics.median(times[1])


def fastgen(space, n, precision):
  import numpy as np

  from tflite_bench.stitch import op_signature
  from tfnas.export.fastgen import PieceCache, convert_piece, randomize_batchnorm
  from tfnas.models import build_child
  from tfnas.spaces import Arch
  cache = PieceCache(space, precision=precision)
  rng = np.random.default_rng(123)
  archs = [Arch.create(space, [int(rng.integers(len(b.ops))) for b in space.choice_blocks])
           for _ in range(n)]
  t = time.perf_counter()
  for a in archs:
    cache.pieces(a)  # one-off piece conversions (cached on disk afterwards)
  first = time.perf_counter() - t
  conv, fast, same, ratio = [], [], [], []
  for a in archs:  # interleaved
    t = time.perf_counter()
    slow_bytes = convert_piece(randomize_batchnorm(build_child(space, a)), precision,
                               int8_input=False, int8_output=False)
    conv.append(time.perf_counter() - t)
    t = time.perf_counter()
    fast_bytes = cache.model(a)
    fast.append(time.perf_counter() - t)
    same.append(_layout(op_signature(fast_bytes)) == _layout(op_signature(slow_bytes)))
    f_ms, s_ms = _interleaved_ms(fast_bytes, slow_bytes)
    ratio.append(f_ms / s_ms)
  return {"archs": n, "precision": precision, "converter_median_s": statistics.median(conv),
          "stitched_median_s": statistics.median(fast),
          "speedup": statistics.median(conv) / statistics.median(fast),
          "same_ops_order_shapes_types": all(same),
          "stitched_over_converter_latency": {"median": statistics.median(ratio),
                                              "min": min(ratio), "max": max(ratio)},
          "piece_conversions_s_for_these_archs": first,
          "pieces_total": sum(len(b.ops) for b in space.choice_blocks) + 2
          + len(space.fixed_blocks)}


def main(argv):
  del argv
  from tfnas.spaces import get_space
  space = get_space(_SPACE.value, _RES.value)
  tag = f"{space.name}_{_RES.value}" + ("" if _PRECISION.value == "float32"
                                         else f"_{_PRECISION.value}")
  work = os.path.join(_WORK.value, tag)
  os.makedirs(work, exist_ok=True)
  py = sys.executable
  results = {"space": space.name, "resolution": _RES.value, "num_archs": _N.value,
             "precision": _PRECISION.value,
             "command": "python benchmarks/bench_latency.py " + " ".join(sys.argv[1:])}
  results["fastgen"] = fastgen(space, _FASTGEN.value, _PRECISION.value)
  f = results["fastgen"]
  lat = f["stitched_over_converter_latency"]
  print(f"fast generation ({_PRECISION.value}): {f['stitched_median_s'] * 1e3:.0f} ms vs "
        f"converter {f['converter_median_s']:.2f} s per model -> {f['speedup']:.0f}x, same "
        f"ops/order/shapes/types: {f['same_ops_order_shapes_types']}; stitched/converter "
        f"latency median {lat['median']:.3f} ({lat['min']:.3f}-{lat['max']:.3f})", flush=True)
  lut_dir = os.path.join(work, "lut")
  if not os.path.exists(os.path.join(lut_dir, "latency_model.json")):
    t = time.time()
    subprocess.run([py, "-m", "tfnas.bin.latency_fit", "--measure_lut", f"--space={space.name}",
                    f"--resolution={_RES.value}", f"--precision={_PRECISION.value}",
                    f"--out={lut_dir}"], check=True, cwd=ROOT)
    results["lut_measure_s"] = time.time() - t
  records = os.path.join(work, "records.jsonl")
  t = time.time()
  subprocess.run([py, "-m", "tflite_bench.bin.profile", f"--space={space.name}",
                  f"--num_archs={_N.value}", f"--resolution={_RES.value}", "--seed=0",
                  f"--precision={_PRECISION.value}",
                  f"--out={records}", f"--retest={_RETEST.value}"], check=True, cwd=ROOT)
  results["profile_wall_s_this_session"] = time.time() - t
  from tflite_bench.record import read_records
  recs = read_records(records)
  start = min(r["started_at"] for r in recs)
  end = max(r["finished_at"] for r in recs)
  import datetime
  span = (datetime.datetime.fromisoformat(end) - datetime.datetime.fromisoformat(start))
  results["profile_span_s"] = span.total_seconds()
  results["records"] = len(recs)
  import numpy as np
  steal = np.array([r["host_load"]["steal"] for r in recs
                    if (r.get("host_load") or {}).get("steal") is not None])
  # How quiet the host was. Records at the adaptive protocol's cap never got their median
  # to +-1 %; on this VM they were the sign of noisy neighbours even with no steal.
  from tflite_bench.protocol import ADAPTIVE
  results["capped_share"] = float(np.mean([r["stats"]["runs"] >= ADAPTIVE.max_runs
                                           for r in recs]))
  if len(steal):  # the hypervisor's share of the CPUs
    results["host_steal"] = {"records": int(len(steal)), "median": float(np.median(steal)),
                             "p90": float(np.percentile(steal, 90)),
                             "share_over_5pct": float(np.mean(steal > 0.05))}
  fit_dir = os.path.join(work, "fit")
  subprocess.run([py, "-m", "tfnas.bin.latency_fit", f"--records={records}", f"--out={fit_dir}",
                  f"--lut={os.path.join(lut_dir, 'latency_model.json')}"], check=True, cwd=ROOT)
  results["fit"] = json.load(open(os.path.join(fit_dir, "report.json")))
  r = results["fit"]
  print(f"dataset: {len(recs)} records in {results['profile_span_s'] / 60:.1f} min "
        f"(first to last record)")
  print(f"records that hit the {ADAPTIVE.max_runs}-run cap: "
        f"{results['capped_share'] * 100:.1f}%")
  if "host_steal" in results:
    h = results["host_steal"]
    print(f"host steal during the measurements: median {h['median'] * 100:.1f}%, p90 "
          f"{h['p90'] * 100:.1f}%, {h['share_over_5pct'] * 100:.0f}% of records over 5%")
  print(f"fitted model on {r['n_test']} held-out: RMSE {r['rmse_ms']:.3f} ms, RMSPE "
        f"{r['rmspe'] * 100:.2f}%, within 5% {r['within_5pct'] * 100:.1f}%, within 10% "
        f"{r['within_10pct'] * 100:.1f}%, Spearman {r['spearman']:.4f}, Kendall "
        f"{r['kendall']:.4f}")
  if "test_retest" in r:
    by = ", ".join(f"{t} {v * 100:.2f}%" for t, v in r["test_retest_by_target"].items())
    print(f"test-retest RMSPE {r['test_retest']['rmspe'] * 100:.2f}% "
          f"(fit / noise = {r['rmspe_over_noise_floor']:.2f}); fitted {r['target']} medians "
          f"(test-retest by target: {by})")
  if "lut" in r:
    print(f"micro-benchmark LUT on the same split: RMSPE {r['lut']['rmspe'] * 100:.2f}%, "
          f"with fitted overhead {r['lut_plus_overhead']['rmspe'] * 100:.2f}%")
  out = os.path.join(ROOT, "benchmarks", "results", f"latency_{tag}.json")
  with open(out, "w") as fh:
    json.dump(results, fh, indent=2)
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
