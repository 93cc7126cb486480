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

Phones: --runner=adb measures on one device (--serial), or on several in parallel
(--serials=A,B or --serials=all), each taking a share of the archs and its own reference
measurements; every record names its device. A device that disconnects is reported, waited
for (--reconnect_wait), and its share resumes when it returns, or on a rerun. Each
device's reference model is re-measured every --reference_every archs: records taken while
it is more than --drift_threshold off its first measurement are flagged (drift.flagged),
and the battery and thermal-zone temperatures the device exposes are recorded (thermal).

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
_SERIAL = flags.DEFINE_string("serial", None, "adb device serial (runner=adb; default: the "
                              "only attached device).")
_SERIALS = flags.DEFINE_list("serials", None, "Several adb devices measured in parallel "
                             "(runner=adb), each a share of the archs; 'all': every "
                             "attached device.")
_RECONNECT = flags.DEFINE_float("reconnect_wait", 120.0, "Seconds to wait for a device that "
                                "disconnects before leaving its share to a rerun.")
_DRIFT = flags.DEFINE_float("drift_threshold", 0.05, "Flag records measured while the "
                            "device's reference model is more than this fraction off its "
                            "first measurement (thermal throttling, a busy host).")
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
  import concurrent.futures
  import threading

  import numpy as np

  from tflite_bench.host import BenchError
  from tfnas.export.fastgen import PieceCache
  from tfnas.spaces import Arch, get_space, parse_arch
  space = get_space(_SPACE.value, _RES.value, _WIDTH.value)
  res = space.input_shape[0]
  if _NUM.value < 1:
    raise rec_lib.RecordError(f"--num_archs={_NUM.value} must be >= 1")
  if _RETEST.value < 0:
    raise rec_lib.RecordError(f"--retest={_RETEST.value} must be >= 0")
  if not 0 < _DRIFT.value < 1:
    raise BenchError(f"--drift_threshold={_DRIFT.value} must be in (0, 1), e.g. 0.05")
  protocol = PROTOCOLS[_PROTOCOL.value]
  runtime = "litert-python" if _RUNNER.value == "host" else "benchmark_model"
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
  runners = _runners(HostRunner, BenchError)  # after the file's check: nothing pushed first
  models = {r["device"].get("model") for r in done.values()} | {
      runner.device().get("model") for runner in runners}
  if len(models) > 1:  # one latency dataset is one phone model (and one host)
    raise BenchError(f"{_OUT.value} and the devices to measure on mix phone models "
                     f"{sorted(map(str, models))}: profile one model per records file")
  version = runtime_version() if _RUNNER.value == "host" else "benchmark_model"
  cache = PieceCache(space, _CACHE.value, _PRECISION.value)
  cache_lock = threading.Lock()  # devices in parallel share the cache; conversions once
  ref_names = [name for name, _ in space.references]
  ref_arch = parse_arch(space, _REFERENCE.value or (
      "all_k3_e3" if "all_k3_e3" in ref_names else ref_names[0]))
  # Each re-measured arch is measured again about a tenth of the run after its first
  # measurement, so the re-measurements spread over the run and the noise floor covers
  # its conditions (all at the end, they saw only the last minutes' load).
  gap = max(1, len(archs) // 10)
  n_retest = min(_RETEST.value, len(archs))
  order = np.random.default_rng(_SEED.value + 7).permutation(len(archs))
  retest_idx = sorted(order[:n_retest])
  again = {}
  for i in retest_idx:
    again.setdefault(min(len(archs) - 1, i + gap), []).append(i)
  todo = []  # (id, arch, retest, arch index)
  for i, a in enumerate(archs):
    todo.append((f"{prefix}/i{i}", a, False, i))
    todo += [(f"{prefix}/i{j}/retest", archs[j], True, j) for j in again.get(i, [])]
  pending = [t for t in todo if t[0] not in done]
  print(f"{space.name} at {res}: {len(todo) - len(pending)} of {len(todo)} measurements "
        f"already in {_OUT.value}; {len(pending)} to go"
        + (f" on {len(runners)} devices in parallel" if len(runners) > 1 else ""),
        file=sys.stderr)
  if not pending:
    return
  # Each device gets the archs whose index is its own modulo the device count: its share,
  # an arch's re-measurement included (a retest on another phone would measure the
  # difference between phones). A rerun splits what is missing among the devices then
  # attached (all of one phone model), so a share resumes on any of them.
  shares = {d: [t for t in pending if t[3] % len(runners) == d] for d in range(len(runners))}
  write_lock = threading.Lock()
  stop = threading.Event()  # set when any device fails or the run is interrupted

  def measure(runner, arch):
    with cache_lock:
      data = cache.model(arch)
    started = rec_lib.now_iso()
    stats, info = runner.measure(data, protocol)
    return stats, info, started

  def base_fields(runner, device, arch, stats, info, started):
    return dict(space=space.name, arch=arch.to_string(space), resolution=res, width=_WIDTH.value,
                quantization=_PRECISION.value, runtime=runtime, runtime_version=version,
                threads=_THREADS.value, delegate=runner.delegate,
                delegate_partitions=info.get("delegate_partitions"), device=device,
                started_at=started, finished_at=rec_lib.now_iso(), stats=stats,
                **({"host_load": info["host_load"]} if info.get("host_load") else {}))

  def same_device(record, device):
    return record["device"].get("serial") == device.get("serial")

  def work(index, writer):
    """Measures this device's share; returns the measurements it could not make (a
    device that disconnected and did not return)."""
    runner = runners[index]
    device = runner.device()
    serial = device.get("serial")
    tag = f"[{serial}] " if len(runners) > 1 else ""
    ref_prefix = f"{prefix}/{serial}" if serial else prefix
    refs = [r for r in done.values() if r.get("extra", {}).get("reference")
            and same_device(r, device)]
    baseline = refs[0]["stats"]["median_ms"] if refs else None
    current_ref = refs[-1]["stats"]["median_ms"] if refs else None
    thermal = refs[-1].get("thermal") if refs else None
    n_refs = len(refs)
    items = shares[index]
    start, steals, k, retried = time.time(), [], 0, False
    while k < len(items):
      if stop.is_set():
        return len(items) - k
      rid, arch, retest, _ = items[k]
      try:
        if _REF_EVERY.value and (current_ref is None or k % _REF_EVERY.value == 0):
          stats, info, started = measure(runner, ref_arch)
          if hasattr(runner, "thermal"):
            thermal = {**runner.thermal(), "at": f"ref{n_refs}"}
          with write_lock:
            writer.append(rec_lib.make_record(
                id=f"{ref_prefix}/ref{n_refs}",
                **base_fields(runner, device, ref_arch, stats, info, started),
                **({"thermal": thermal} if thermal else {}), extra={"reference": True}))
          n_refs += 1
          current_ref = stats.median_ms
          baseline = baseline or current_ref
        stats, info, started = measure(runner, arch)
      except BenchError as e:
        if not hasattr(runner, "attached"):
          raise
        if runner.attached():  # still there: a failure of its own, or a blip; one retry
          if retried:
            raise
          retried = True
          continue
        left = len(items) - k
        print(f"{tag}device {serial} disconnected ({e}); {k} of its {len(items)} "
              f"measurements done; waiting up to {_RECONNECT.value:.0f} s for it",
              file=sys.stderr, flush=True)
        if not runner.wait_for(_RECONNECT.value):
          print(f"{tag}device {serial} did not return: its {left} remaining measurements "
                "are left for a rerun of the same command", file=sys.stderr, flush=True)
          return left
        print(f"{tag}device {serial} is back; resuming its share", file=sys.stderr,
              flush=True)
        current_ref = None  # re-measure the reference first: it may have rebooted or cooled
        continue
      drift = None
      if baseline:
        factor = current_ref / baseline
        drift = {"reference_ms": current_ref, "baseline_ms": baseline, "factor": factor,
                 "corrected_median_ms": stats.median_ms / factor,
                 "flagged": abs(factor - 1) > _DRIFT.value}
      with write_lock:
        writer.append(rec_lib.make_record(
            id=rid, **base_fields(runner, device, arch, stats, info, started), drift=drift,
            **({"thermal": thermal} if thermal else {}),
            extra={"seed": _SEED.value, "retest": retest, "generator": "stitched-pieces",
                   "arch_key": arch.key()}))
      k, retried = k + 1, False
      steal = (info.get("host_load") or {}).get("steal")
      if steal is not None:
        steals.append(steal)
      if k % 10 == 0 or k == len(items):
        rate = (time.time() - start) / k
        eta = rate * (len(items) - k)
        load = ""
        if steals:  # a busy cloud host slows and scatters every measurement
          load = f"  host steal {100 * sum(steals) / len(steals):.0f}%"
          if sum(steals) / len(steals) > 0.05:
            load += " (a loaded host: figures will be noisy)"
          steals.clear()
        if drift and drift["flagged"]:
          load += f"  drift x{drift['factor']:.3f} (records flagged)"
        print(f"  {tag}{k}/{len(items)}  {rate:.2f} s/arch  ETA {eta / 60:.1f} min  "
              f"last {stats.median_ms:.2f} ms ({stats.runs} runs){load}", file=sys.stderr,
              flush=True)
    return 0

  with rec_lib.RecordWriter(_OUT.value) as writer:
    if len(runners) == 1:
      missing = {0: work(0, writer)}
    else:
      with concurrent.futures.ThreadPoolExecutor(len(runners)) as pool:
        futures = {i: pool.submit(work, i, writer) for i in range(len(runners))}
        try:  # the first error (or Ctrl-C) stops the others after their measurement
          concurrent.futures.wait(futures.values(),
                                  return_when=concurrent.futures.FIRST_EXCEPTION)
        finally:
          if any(f.done() and f.exception() for f in futures.values()):
            stop.set()
          elif not all(f.done() for f in futures.values()):
            stop.set()  # interrupted
        missing = {i: f.result() for i, f in futures.items()}
  lost = {runners[i].serial: n for i, n in missing.items() if n}
  if lost:
    raise BenchError(
        "devices disconnected and did not return within --reconnect_wait: " + ", ".join(
            f"{s} ({n} measurements left)" for s, n in lost.items())
        + f"; reconnect and rerun the same command to measure them (done ones are kept in "
        f"{_OUT.value})")


def _runners(HostRunner, BenchError):
  """The runners to measure on: this host, one adb device, or several in parallel."""
  if _RUNNER.value == "host":
    if _SERIALS.value:
      raise BenchError("--serials applies to --runner=adb")
    return [HostRunner(threads=_THREADS.value, cpus=_CPUS.value)]
  from tflite_bench.android import AdbRunner, attached_devices
  if _SERIALS.value and _SERIAL.value:
    raise BenchError("give --serial (one device) or --serials (several), not both")
  serials = [_SERIAL.value] if not _SERIALS.value else _SERIALS.value
  if serials == ["all"]:
    serials = attached_devices()
    if not serials:
      raise BenchError("--serials=all: no Android device attached (adb devices lists none "
                       "in state 'device')")
  if len(set(serials)) != len(serials):
    raise BenchError(f"--serials={','.join(serials)} names a device twice")
  return [AdbRunner(serial=s, local_binary=_BINARY.value, threads=_THREADS.value)
          for s in serials]


if __name__ == "__main__":
  from tflite_bench.host import BenchError
  from tflite_bench.record import RecordError
  from tfnas.errors import TfnasError
  cli.run(main, (TfnasError, BenchError, RecordError))
