"""Build a latency dataset: sample architectures, generate `.tflite`, measure, append records.

  python -m tflite_bench.bin.profile --space=proxyless_mobile --num_archs=5000 \
      --resolution=224 --seed=0 [--precision=int8] --out=runs/lat/proxyless_mobile_224.jsonl

--precision picks the form of the generated files (float32; float16 weights; int8
full-integer post-training quantization with float I/O, the export's default); every
record carries it ("quantization") and a records file holds one precision.

Resumable: kill it at any moment (kill -9 included) and rerun the same command;
it skips the records already written (a half-written last line is cut) and
continues. A fixed reference model is measured every --reference_every archs;
each record keeps its raw statistics and a drift-corrected median (raw median
divided by the reference's latency relative to the file's first reference).
--retest of the archs are measured a second time, each about a tenth of the run
after its first measurement (test-retest noise floor).

This binary is where tflite_bench meets tfnas: it uses tfnas's spaces and fast
piece-stitching generator; the runners and the record schema do not.
"""

from tflite_bench import cli

if __name__ == "__main__":
  cli.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

import os
import sys
import time

from absl import app, flags


_SPACE = flags.DEFINE_string("space", None, "Search space name (python -m tfnas.bin.spaces).")
_NUM = flags.DEFINE_integer("num_archs", 100, "Architectures to sample and measure.")
_RES = flags.DEFINE_integer("resolution", None, "Input resolution (default: the space's).")
_WIDTH = flags.DEFINE_float("width", 1.0, "Width multiplier of the space.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "float16", "int8"],
                               "Precision of the generated .tflite files (the records' "
                               "quantization).")
_OUT = flags.DEFINE_string("out", None, "Records file (JSONL); appended to, resumable.")
_RUNNER = flags.DEFINE_enum("runner", "host", ["host", "adb"], "Where to measure.")
_SERIAL = flags.DEFINE_string("serial", None, "adb device serial (runner=adb).")
_BINARY = flags.DEFINE_string("benchmark_binary", None,
                              "Local benchmark_model to push (runner=adb).")
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads.")
_CPUS = flags.DEFINE_list("cpus", None, "Host CPU ids to pin to (runner=host).")
_PROTOCOL = flags.DEFINE_enum("protocol", "adaptive", ["adaptive", "fixed"],
                              "adaptive: until the median is known to +-1% (or a cap).")
_REF_EVERY = flags.DEFINE_integer("reference_every", 10,
                                  "Measure the reference model every N archs (0: never).")
_REFERENCE = flags.DEFINE_string("reference", None,
                                 "Reference arch for drift correction (default: all_k3_e3 "
                                 "where the space has it, else its first reference).")
_RETEST = flags.DEFINE_integer("retest", 0, "Re-measure this many archs (each ~N/10 archs "
                               "after its first measurement).")
_CACHE = flags.DEFINE_string("piece_cache", None, "Folder for converted pieces "
                             "(default: ~/.cache/tfnas/pieces).")
flags.mark_flags_as_required(["space", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from tflite_bench import record as rec_lib
  from tflite_bench.host import HostRunner, runtime_version
  from tflite_bench.protocol import PROTOCOLS
  run(rec_lib, HostRunner, runtime_version, PROTOCOLS)


def run(rec_lib, HostRunner, runtime_version, PROTOCOLS):
  import numpy as np

  from tfnas.export.fastgen import PieceCache
  from tfnas.spaces import Arch, get_space, parse_arch
  space = get_space(_SPACE.value, _RES.value, _WIDTH.value)
  res = space.input_shape[0]
  if _NUM.value < 1:
    raise rec_lib.RecordError(f"--num_archs={_NUM.value} must be >= 1")
  protocol = PROTOCOLS[_PROTOCOL.value]
  if _RUNNER.value == "host":
    runner = HostRunner(threads=_THREADS.value, cpus=_CPUS.value)
    version = runtime_version()
    runtime = "litert-python"
  else:
    from tflite_bench.android import AdbRunner
    runner = AdbRunner(serial=_SERIAL.value, local_binary=_BINARY.value, threads=_THREADS.value)
    version, runtime = "benchmark_model", "benchmark_model"
  device = runner.device()
  rng = np.random.default_rng(_SEED.value)
  archs = [Arch.create(space, [int(rng.integers(len(b.ops))) for b in space.choice_blocks],
                       [int(rng.integers(len(b.mid_scales))) for b in space.choice_blocks]
                       if space.has_channel_choices else None)
           for _ in range(_NUM.value)]
  prefix = f"{space.name}/{res}/s{_SEED.value}"
  if _WIDTH.value != 1.0:
    prefix = f"{space.name}/{res}/w{_WIDTH.value:g}/s{_SEED.value}"
  done = {}
  if os.path.exists(_OUT.value):
    for r in rec_lib.read_records(_OUT.value, repair=True):
      if (r["space"] != space.name or r["resolution"] != res
          or r.get("width", 1.0) != _WIDTH.value or r["quantization"] != _PRECISION.value):
        raise rec_lib.RecordError(
            f"{_OUT.value} holds {r['quantization']} records of {r['space']} at "
            f"{r['resolution']} px, width {r.get('width', 1.0)}; expected {_PRECISION.value} "
            f"{space.name} at {res} px, width {_WIDTH.value} (use another --out)")
      done[r["id"]] = r
  refs = [r for r in done.values() if r.get("extra", {}).get("reference")]
  baseline = refs[0]["stats"]["median_ms"] if refs else None
  current_ref = refs[-1]["stats"]["median_ms"] if refs else None
  cache = PieceCache(space, _CACHE.value, _PRECISION.value)
  ref_names = [name for name, _ in space.references]
  ref_arch = parse_arch(space, _REFERENCE.value or (
      "all_k3_e3" if "all_k3_e3" in ref_names else ref_names[0]))
  # Each re-measured arch is measured again about a tenth of the run after its first
  # measurement, so the re-measurements spread over the run and the noise floor covers
  # its conditions (all at the end, they saw only the last minutes' load).
  gap = max(1, len(archs) // 10)
  if _RETEST.value < 0:
    raise rec_lib.RecordError(f"--retest={_RETEST.value} must be >= 0")
  n_retest = min(_RETEST.value, len(archs))
  order = np.random.default_rng(_SEED.value + 7).permutation(len(archs))
  retest_idx = sorted(order[:n_retest])
  again = {}
  for i in retest_idx:
    again.setdefault(min(len(archs) - 1, i + gap), []).append(i)
  todo = []
  for i, a in enumerate(archs):
    todo.append((f"{prefix}/i{i}", a, False))
    todo += [(f"{prefix}/i{j}/retest", archs[j], True) for j in again.get(i, [])]
  pending = [t for t in todo if t[0] not in done]
  print(f"{space.name} at {res}: {len(todo) - len(pending)} of {len(todo)} measurements "
        f"already in {_OUT.value}; {len(pending)} to go", file=sys.stderr)
  if not pending:
    return
  n_refs = len(refs)

  def measure(arch):
    data = cache.model(arch)
    started = rec_lib.now_iso()
    stats, info = runner.measure(data, protocol)
    return stats, info, started

  def base_fields(arch, stats, info, started):
    return dict(space=space.name, arch=arch.to_string(space), resolution=res, width=_WIDTH.value,
                quantization=_PRECISION.value, runtime=runtime, runtime_version=version,
                threads=_THREADS.value, delegate=runner.delegate,
                delegate_partitions=info.get("delegate_partitions"), device=device,
                started_at=started, finished_at=rec_lib.now_iso(), stats=stats,
                **({"host_load": info["host_load"]} if info.get("host_load") else {}))

  start = time.time()
  steals = []
  with rec_lib.RecordWriter(_OUT.value) as writer:
    for k, (rid, arch, retest) in enumerate(pending):
      if _REF_EVERY.value and (current_ref is None or k % _REF_EVERY.value == 0):
        stats, info, started = measure(ref_arch)
        writer.append(rec_lib.make_record(
            id=f"{prefix}/ref{n_refs}", **base_fields(ref_arch, stats, info, started),
            extra={"reference": True}))
        n_refs += 1
        current_ref = stats.median_ms
        baseline = baseline or current_ref
      stats, info, started = measure(arch)
      drift = None
      if baseline:
        factor = current_ref / baseline
        drift = {"reference_ms": current_ref, "baseline_ms": baseline, "factor": factor,
                 "corrected_median_ms": stats.median_ms / factor}
      writer.append(rec_lib.make_record(
          id=rid, **base_fields(arch, stats, info, started), drift=drift,
          extra={"seed": _SEED.value, "retest": retest, "generator": "stitched-pieces",
                 "arch_key": arch.key()}))
      steal = (info.get("host_load") or {}).get("steal")
      if steal is not None:
        steals.append(steal)
      if (k + 1) % 10 == 0 or k + 1 == len(pending):
        rate = (time.time() - start) / (k + 1)
        eta = rate * (len(pending) - k - 1)
        load = ""
        if steals:  # a busy cloud host slows and scatters every measurement
          load = f"  host steal {100 * sum(steals) / len(steals):.0f}%"
          if sum(steals) / len(steals) > 0.05:
            load += " (a loaded host: figures will be noisy)"
          steals.clear()
        print(f"  {k + 1}/{len(pending)}  {rate:.2f} s/arch  ETA {eta / 60:.1f} min  "
              f"last {stats.median_ms:.2f} ms ({stats.runs} runs){load}", file=sys.stderr)


if __name__ == "__main__":
  from tflite_bench.host import BenchError
  from tflite_bench.record import RecordError
  from tfnas.errors import TfnasError
  cli.run(main, (TfnasError, BenchError, RecordError))
