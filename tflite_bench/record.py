"""The latency record: the only contract between tflite_bench and tfnas.

One JSON object per line (JSONL). Schema version 1 fields:

  schema            1
  id                unique key within a dataset file (e.g. "proxyless_mobile/224/s0/i17")
  space             search space name
  arch              canonical arch string ("<space>:<op>,<op>,...")
  resolution        input side in pixels
  quantization      "float32" | "float16" | "int8" | ...
  runtime           "litert-python" (host interpreter) | "benchmark_model" (adb)
  runtime_version   e.g. ai-edge-litert 2.3.0
  threads           interpreter threads
  delegate          "xnnpack" | "none" | ...
  delegate_partitions  partitions the delegate took (1 = fully delegated)
  device            {"kind": "host", "cpu_model", "cores", "hostname"} or
                    {"kind": "android", "model", "serial", "abi"}
  started_at, finished_at  ISO-8601 UTC
  stats             {"median_ms", "p10_ms", "p90_ms", "mean_ms", "std_ms", "min_ms",
                     "max_ms", "runs", "warmup_runs", "ci_rel"}
  drift             {"reference_ms", "baseline_ms", "factor", "corrected_median_ms",
                    "flagged"} (raw values stay in "stats"; corrected = median / factor;
                    flagged: the device's reference was more than the run's threshold off
                    its first measurement, e.g. a phone throttling as it heats up)
  thermal           optional (adb runner): {"battery_c", "thermal_zone0_c", "zones_c"
                    ({zone type: degrees}, every readable thermal zone), "at"}, degrees
                    Celsius (None where the device does not expose one), read at the
                    reference measurement "at" names
  host_load         optional (host runner): {"steal", "other_busy"}, fractions of all
                    cores' time during the measurement taken by the hypervisor's other
                    guests and by other processes (see `tflite_bench.host.HostLoad`)
  extra             free-form (sampler seed, generation method, ...)

Appends are one `write` of a whole line followed by fsync; readers drop a
trailing partial line (a writer killed mid-line), so a dataset file is always
a list of whole records.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import statistics

SCHEMA_VERSION = 1
REQUIRED = ("schema", "id", "space", "arch", "resolution", "quantization", "runtime",
            "runtime_version", "threads", "delegate", "device", "stats")


class RecordError(ValueError):
  """A records file or record that does not follow the schema."""


def now_iso() -> str:
  """The current UTC time in ISO 8601 with milliseconds (records' `time`)."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclasses.dataclass
class Stats:
  """Summary statistics of one measurement, in milliseconds."""
  median_ms: float
  p10_ms: float
  p90_ms: float
  mean_ms: float
  std_ms: float
  min_ms: float
  max_ms: float
  runs: int
  warmup_runs: int
  ci_rel: float | None = None  # relative half-width of the 95% CI of the median

  @classmethod
  def from_samples(cls, samples_ms, warmup_runs: int) -> "Stats":
    """Statistics of the timed runs `samples_ms` (ms, warm-up excluded; `warmup_runs`
    is recorded). Raises ValueError for no samples."""
    import numpy as np
    x = np.sort(np.asarray(samples_ms, dtype=np.float64))
    if not len(x):
      raise ValueError("no samples")
    return cls(float(np.median(x)), float(np.percentile(x, 10)), float(np.percentile(x, 90)),
               float(x.mean()), float(x.std()), float(x[0]), float(x[-1]), int(len(x)),
               int(warmup_runs), median_ci_rel(x))


def median_ci_rel(sorted_samples) -> float | None:
  """Distribution-free 95% CI of the median (order statistics), as a fraction of it."""
  import math
  x = sorted_samples
  n = len(x)
  if n < 6:
    return None
  half = 1.96 * math.sqrt(n) / 2
  lo = max(0, int(math.floor(n / 2 - half)))
  hi = min(n - 1, int(math.ceil(n / 2 + half)))
  med = float(x[n // 2])
  return float((x[hi] - x[lo]) / 2 / med) if med > 0 else None


def make_record(**fields) -> dict:
  """A record of the current schema from `fields` (a `Stats` becomes its dict),
  validated; raises RecordError naming a missing or malformed field."""
  rec = {"schema": SCHEMA_VERSION, **fields}
  if isinstance(rec.get("stats"), Stats):
    rec["stats"] = dataclasses.asdict(rec["stats"])
  validate(rec)
  return rec


def validate(rec: dict) -> None:
  """Raises RecordError unless `rec` is a schema-1 record with a finite median >= 0 in ms."""
  if not isinstance(rec, dict):
    raise RecordError(f"a record must be a JSON object, not {type(rec).__name__} "
                      f"{str(rec)[:40]!r}")
  missing = [k for k in REQUIRED if k not in rec]
  if missing:
    raise RecordError(f"record {rec.get('id', '?')!r} lacks fields {missing}")
  if rec["schema"] != SCHEMA_VERSION:
    raise RecordError(f"record {rec['id']!r} has schema {rec['schema']!r}; this reader "
                      f"understands {SCHEMA_VERSION}")
  stats = rec["stats"]
  if not isinstance(stats, dict) or "median_ms" not in stats:
    raise RecordError(f"record {rec['id']!r} has no stats.median_ms")
  median = stats["median_ms"]
  if (isinstance(median, bool) or not isinstance(median, (int, float))
      or not math.isfinite(median) or median < 0):
    raise RecordError(f"record {rec['id']!r} has stats.median_ms {median!r}; expected a "
                      "finite latency in ms >= 0")


def latency_ms(rec: dict, corrected: bool = True) -> float:
  """The record's latency: drift-corrected median when present, else raw median."""
  if corrected and rec.get("drift") and rec["drift"].get("corrected_median_ms"):
    return float(rec["drift"]["corrected_median_ms"])
  return float(rec["stats"]["median_ms"])


TARGETS = ("raw", "corrected", "smoothed")


def smoothed_latencies(records: list[dict], half_window: int = 1) -> dict[str, float]:
  """Raw medians corrected by a smoothed reference: id -> ms, for non-reference records.

  The write-time correction (`drift.corrected_median_ms`) divides by the single
  reference measured last, so that reference's own noise enters every record
  after it. This divides by the median of the references around each record
  (`half_window` before and after the gap it was measured in; file order), relative
  to the median of all references in the file. On the three 1,000- and 5,000-arch
  datasets measured so far its test-retest error was lower than the single-reference
  correction's (BENCHMARKS.md). Without references the raw medians are returned. Records
  of several devices (a parallel profile, `device.serial`) are corrected by their own
  device's references only.
  """
  out = {}
  by_device: dict = {}
  for r in records:
    by_device.setdefault(r.get("device", {}).get("serial"), []).append(r)
  for group in by_device.values():
    out.update(_smoothed_one_device(group, half_window))
  return out


def _smoothed_one_device(records: list[dict], half_window: int) -> dict[str, float]:
  refs, slot = [], {}
  for r in records:
    if r.get("extra", {}).get("reference"):
      refs.append(float(r["stats"]["median_ms"]))
    else:
      slot[r["id"]] = len(refs) - 1  # the last reference before it (-1: none yet)
  out = {}
  base = statistics.median(refs) if refs else None
  for r in records:
    if r["id"] not in slot:
      continue
    raw = float(r["stats"]["median_ms"])
    if base is None:
      out[r["id"]] = raw
      continue
    i = max(0, slot[r["id"]])
    near = refs[max(0, i - half_window):i + half_window + 2]
    out[r["id"]] = raw / (statistics.median(near) / base)
  return out


def latencies(records: list[dict], target: str) -> dict[str, float]:
  """id -> latency (ms) of the non-reference records under `target` (one of TARGETS):
  the raw median, the write-time drift-corrected median, or `smoothed_latencies`."""
  if target not in TARGETS:
    raise RecordError(f"latency target {target!r} is not one of {', '.join(TARGETS)}")
  if target == "smoothed":
    return smoothed_latencies(records)
  return {r["id"]: latency_ms(r, corrected=target == "corrected") for r in records
          if not r.get("extra", {}).get("reference")}


def repair_tail(path: str) -> None:
  """Cuts a trailing partial line left by a writer killed mid-write (any JSONL file)."""
  with open(path, "rb+") as f:
    data = f.read()
    if not data or data.endswith(b"\n"):
      return
    cut = data.rfind(b"\n") + 1
    f.truncate(cut)


def read_records(path: str, repair: bool = False) -> list[dict]:
  """All whole records of a JSONL file (a trailing partial line is ignored or cut)."""
  if not os.path.exists(path):
    raise RecordError(f"records file {path!r} does not exist")
  if repair:
    repair_tail(path)
  out = []
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  last = len(lines) - 1
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      rec = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
      if i == last:  # partial final line: a writer was killed mid-line
        break
      raise RecordError(f"{path}:{i + 1}: not a JSON record") from None
    try:
      validate(rec)
    except RecordError as e:
      raise RecordError(f"{path}:{i + 1}: {e}") from None
    out.append(rec)
  return out


class RecordWriter:
  """Appends records to a JSONL file, one durable line at a time."""

  def __init__(self, path: str):
    self.path = path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if os.path.exists(path):
      repair_tail(path)
    self._f = open(path, "ab")

  def append(self, rec: dict) -> None:
    """Validates `rec` and appends it as one JSON line, flushed and fsynced, so a kill
    loses at most the line being written."""
    validate(rec)
    line = (json.dumps(rec, sort_keys=True) + "\n").encode()
    self._f.write(line)
    self._f.flush()
    os.fsync(self._f.fileno())

  def close(self):
    """Closes the file."""
    self._f.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

