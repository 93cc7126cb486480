"""Android runner: `benchmark_model` on a phone over `adb`.

Pushes the `.tflite` (and, if given, a local `benchmark_model` binary), runs it
under `taskset` with the measurement flags, and parses its output in both the
current and the older formats.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

from tflite_bench.host import BenchError, check_threads
from tflite_bench.record import Stats

DEVICE_DIR = "/data/local/tmp"
_STATS = re.compile(r"count=(\d+)((?:\s+\w+=[-\d.e+]+)+)")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_SUMMARY = re.compile(r"(?:Average )?[Ii]nference timings in us:\s*(.*)")


def _kv(text: str) -> dict[str, float]:
  return {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e+]+)", text)}


def parse_benchmark_output(text: str) -> dict:
  """Parses benchmark_model's stdout.

  Returns {"timed": {count, first, curr, min, max, avg, std[, median, p5, p95]}
  (microseconds), "warmup": {...} or None, "summary": {name: microseconds}}.
  The timed run is the stats line after the last "Running benchmark for at
  least N iterations" line; the warm-up one comes after the first. Lines may
  carry an "INFO: " or "Timings (microseconds): " prefix (newer LiteRT builds).

  Raises:
    BenchError: no statistics line; "Benchmarking failed" (benchmark_model's own error
      line, printed when its run returns an error); or a run that stopped after warm-up
      (a "Running benchmark" header without statistics after it, or only one such block):
      the warm-up's numbers are never reported as the timed run's.
  """
  failed = [l.strip() for l in text.splitlines() if "Benchmarking failed" in l
            or l.lstrip().startswith("ERROR:")]
  if any("Benchmarking failed" in l for l in failed):
    raise BenchError("benchmark_model failed: " + " | ".join(failed[-3:]))
  blocks: list[list[dict]] = []
  loose: list[dict] = []
  summary: dict[str, float] = {}
  for line in text.splitlines():
    if _RUNNING.search(line):
      blocks.append([])
      continue
    m = _STATS.search(line)
    if m and "count=" in line and "avg=" in line:
      stats = _kv(line[m.start():])
      (blocks[-1] if blocks else loose).append(stats)
      continue
    s = _SUMMARY.search(line)
    if s:
      for part in s.group(1).split(","):
        if ":" in part:
          key, _, val = part.partition(":")
          try:
            summary[key.strip()] = float(val.strip())
          except ValueError:
            pass
  if blocks and (len(blocks) < 2 or not blocks[-1]):
    what = "no statistics after its last" if not blocks[-1] else "only one"
    raise BenchError(
        f"benchmark_model output has {what} 'Running benchmark' block (warm-up, then the timed "
        f"run, expected): the run stopped before its timed statistics; last lines: "
        + " | ".join(text.strip().splitlines()[-2:]))
  runs = [b[-1] for b in blocks if b] or loose
  if not runs:
    raise BenchError("benchmark_model output has no timing line (count=... avg=...); "
                     "first lines: " + " | ".join(text.strip().splitlines()[:3]))
  return {"timed": runs[-1], "warmup": runs[0] if len(runs) > 1 else None, "summary": summary}


def attached_devices(adb: str = "adb") -> list[str]:
  """Serials of the devices `adb devices` lists in state "device".

  Raises:
    BenchError: no `adb` on PATH, or `adb devices` failing.
  """
  path = shutil.which(adb)
  if path is None:
    raise BenchError(f"adb executable {adb!r} not found on PATH; install Android platform "
                     f"tools or pass adb=/path/to/adb")
  try:
    out = subprocess.run([path, "devices"], capture_output=True, text=True, timeout=60)
  except subprocess.TimeoutExpired:
    raise BenchError("adb devices timed out") from None
  if out.returncode != 0:
    raise BenchError(f"adb devices failed ({out.returncode}): {out.stderr.strip()[-200:]}")
  serials = []
  for line in out.stdout.splitlines()[1:]:
    parts = line.split()
    if len(parts) >= 2 and parts[1] == "device":
      serials.append(parts[0])
  return serials


class AdbRunner:
  """Runs `benchmark_model` on an Android device.

  Example:
    >>> runner = AdbRunner(serial="0123456789ABCDEF", local_binary="./benchmark_model")
    >>> stats, info = runner.measure("model.tflite")

  Args:
    serial: Device serial (`adb devices`); None: the only attached device.
    adb: The adb executable (looked up on PATH).
    binary: benchmark_model path on the device.
    local_binary: A local benchmark_model to push to `binary` first.
    threads: --num_threads.
    cpu_mask: taskset mask (hex string, e.g. "f0" for the big cores); None: no taskset.
    warmup_runs, num_runs, min_secs: benchmark_model's flags.
    xnnpack: --use_xnnpack.
  """

  kind = "android"

  def __init__(self, serial: str | None = None, adb: str = "adb",
               binary: str = f"{DEVICE_DIR}/benchmark_model", local_binary: str | None = None,
               threads: int = 1, cpu_mask: str | None = None, warmup_runs: int = 10,
               num_runs: int = 50, min_secs: float = 1.0, xnnpack: bool = True):
    self.adb = shutil.which(adb)
    if self.adb is None:
      raise BenchError(f"adb executable {adb!r} not found on PATH; install Android platform "
                       f"tools or pass adb=/path/to/adb")
    self.binary, self.local_binary = binary, local_binary
    self.threads, self.cpu_mask = check_threads(threads), cpu_mask
    self.warmup_runs, self.num_runs, self.min_secs = warmup_runs, num_runs, min_secs
    self.xnnpack = xnnpack
    devices = self.devices()
    if not devices:
      raise BenchError("no Android device attached (adb devices lists none in state "
                       "'device'); connect one and enable USB debugging")
    if serial is None:
      if len(devices) > 1:
        raise BenchError(f"several devices attached {devices}; choose one with serial=")
      serial = devices[0]
    elif serial not in devices:
      raise BenchError(f"device serial {serial!r} is not attached; attached: {devices}")
    self.serial = serial
    self._ensure_binary()

  @property
  def delegate(self) -> str:
    """The delegate records name: "xnnpack" or "none"."""
    return "xnnpack" if self.xnnpack else "none"

  def _run(self, *args, check=True) -> str:
    cmd = [self.adb, *args]
    try:
      out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
      raise BenchError(f"adb timed out: {' '.join(args)}") from None
    if check and out.returncode != 0:
      raise BenchError(f"adb {' '.join(args[:4])} failed ({out.returncode}): "
                       f"{(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    return out.stdout

  def _shell(self, *argv: str, check=True) -> str:
    """Runs `argv` in the device shell, each argument quoted (a file name holding `;` or a
    space stays one argument and runs nothing)."""
    return self._run("-s", self.serial, "shell", shlex.join(argv), check=check)

  def devices(self) -> list[str]:
    """Serials of the attached devices in state "device" (`adb devices`)."""
    return attached_devices(self.adb)

  def attached(self) -> bool:
    """Whether this runner's device is still attached."""
    return self.serial in self.devices()

  def wait_for(self, seconds: float, poll: float = 1.0) -> bool:
    """Waits up to `seconds` for this runner's device to be attached again; returns
    whether it is."""
    deadline = time.monotonic() + seconds
    while True:
      if self.attached():
        return True
      if time.monotonic() >= deadline:
        return False
      time.sleep(poll)

  def thermal(self) -> dict:
    """Temperatures the device exposes, in degrees Celsius, None where it does not:
    {"battery_c": from `dumpsys battery` (tenths of a degree), "thermal_zone0_c": zone 0's,
    "zones_c": {zone type: degrees} for every /sys/class/thermal/thermal_zoneN whose type
    and temp (millidegrees) the shell can read, in zone order (a type seen twice is
    named "<type>@<N>")}. Two shell calls for the zones: `ls`, then one `grep -H` over
    their files (a file it cannot read is left out, not misaligned)."""
    battery = re.search(r"temperature:\s*(-?\d+)", self._shell("dumpsys", "battery",
                                                               check=False))
    root = "/sys/class/thermal"
    listing = self._shell("ls", root, check=False).split()
    numbers = sorted(int(m.group(1)) for m in
                     (re.fullmatch(r"thermal_zone(\d+)", x) for x in listing) if m)
    found: dict[int, dict[str, str]] = {}
    if numbers:
      paths = [f"{root}/thermal_zone{n}/{f}" for n in numbers for f in ("type", "temp")]
      for line in self._shell("grep", "-H", ".", *paths, check=False).splitlines():
        m = re.fullmatch(rf"{root}/thermal_zone(\d+)/(type|temp):(.*)", line.strip())
        if m:
          found.setdefault(int(m.group(1)), {})[m.group(2)] = m.group(3).strip()
    zones: dict[str, float] = {}
    for n in sorted(found):
      temp = found[n].get("temp", "")
      if re.fullmatch(r"-?\d+", temp):
        name = found[n].get("type") or f"thermal_zone{n}"
        zones[f"{name}@{n}" if name in zones else name] = int(temp) / 1000
    zone0 = found.get(0, {}).get("temp", "")
    return {"battery_c": int(battery.group(1)) / 10 if battery else None,
            "thermal_zone0_c": int(zone0) / 1000 if re.fullmatch(r"-?\d+", zone0) else None,
            "zones_c": zones}

  def _ensure_binary(self):
    if self.local_binary:
      if not os.path.exists(self.local_binary):
        raise BenchError(f"local benchmark_model {self.local_binary!r} does not exist")
      self._run("-s", self.serial, "push", self.local_binary, self.binary)
      self._shell("chmod", "+x", self.binary)
    listing = self._shell("ls", self.binary, check=False)
    if "No such file" in listing or self.binary not in listing:
      raise BenchError(f"benchmark_model not found on device {self.serial} at {self.binary}; "
                       f"push one (local_binary=...) or give its path (binary=...)")

  def device(self) -> dict:
    """The record's `device`: kind "android", model, serial, ABI, CPU mask (from
    `getprop` on the device)."""
    prop = lambda p: self._shell("getprop", p).strip()
    return {"kind": "android", "model": prop("ro.product.model"), "serial": self.serial,
            "abi": prop("ro.product.cpu.abi"), "cpu_mask": self.cpu_mask}

  def measure(self, model, protocol=None):
    """Times one `.tflite` (a file path, or the model's bytes); returns (Stats, info)."""
    del protocol  # benchmark_model applies its own (warmup_runs/num_runs/min_secs)
    if isinstance(model, (bytes, bytearray)):
      with tempfile.TemporaryDirectory(prefix="tfnas-adb-") as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
          f.write(model)
        return self.measure(path)
    model_path = str(model)
    if not os.path.exists(model_path):
      raise BenchError(f"model file {model_path!r} does not exist")
    remote = f"{DEVICE_DIR}/tfnas_{os.path.basename(model_path)}"
    self._run("-s", self.serial, "push", model_path, remote)
    cmd = [self.binary, f"--graph={remote}", f"--num_threads={self.threads}",
           f"--warmup_runs={self.warmup_runs}", f"--num_runs={self.num_runs}",
           f"--min_secs={self.min_secs}", f"--use_xnnpack={'true' if self.xnnpack else 'false'}"]
    if self.cpu_mask:
      cmd = ["taskset", self.cpu_mask, *cmd]
    text = self._shell(*cmd)
    parsed = parse_benchmark_output(text)
    t = parsed["timed"]
    us = 1e-3
    # benchmark_model reports no percentiles in the older format: median falls back to avg.
    median = t.get("median", t["avg"]) * us
    stats = Stats(median_ms=median, p10_ms=t.get("p10", t.get("p5", t["min"])) * us,
                  p90_ms=t.get("p90", t.get("p95", t["max"])) * us, mean_ms=t["avg"] * us,
                  std_ms=t["std"] * us, min_ms=t["min"] * us, max_ms=t["max"] * us,
                  runs=int(t["count"]),
                  warmup_runs=int(parsed["warmup"]["count"]) if parsed["warmup"] else 0)
    info = {"summary_us": parsed["summary"], "first_us": t.get("first"),
            "median_is_avg": "median" not in t}
    return stats, info
