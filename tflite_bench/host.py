"""Host runner: the LiteRT interpreter on this machine's CPU (XNNPACK by default)."""

from __future__ import annotations

import os
import platform
import socket
import time

import numpy as np

from tflite_bench.protocol import FIXED, Protocol


class BenchError(ValueError):
  """A model or runner problem with a one-line explanation."""


def check_threads(threads) -> int:
  """`threads` if it is a usable interpreter thread count (>= 1), else a BenchError."""
  if not isinstance(threads, int) or threads < 1:
    raise BenchError(f"threads {threads!r} must be an integer >= 1")
  return threads


def cpu_model() -> str:
  """The host CPU's model name from /proc/cpuinfo (else the platform's processor name)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _cpu_times() -> list[int] | None:
  """Aggregate CPU time counters from /proc/stat (user nice system idle iowait irq softirq
  steal), or None where there is no /proc/stat."""
  try:
    with open("/proc/stat") as f:
      fields = f.readline().split()
  except OSError:
    return None
  if not fields or fields[0] != "cpu" or len(fields) < 9:
    return None
  return [int(v) for v in fields[1:9]]


class HostLoad:
  """What else the machine did while a measurement ran, as fractions of all cores' time.

  `steal`: time the hypervisor gave this VM's CPUs to other guests (a loaded cloud
  host; at 33 % steal this project's dataset run went ~5x slower (2 s vs 0.42 s per arch), see
  BENCHMARKS.md). It misses contention the VM cannot see (shared memory bandwidth and
  caches), so a quiet reading is necessary, not sufficient. `other_busy`: CPU time
  spent by everything except this process. Both None without /proc/stat (not Linux).

  Example:
    >>> with HostLoad() as load:
    ...   run_something()
    >>> load.result()   # {"steal": 0.01, "other_busy": 0.02}
  """

  def __enter__(self):
    self._t0, self._p0, self._w0 = _cpu_times(), time.process_time(), time.monotonic()
    return self

  def __exit__(self, *exc):
    self._t1, self._p1, self._w1 = _cpu_times(), time.process_time(), time.monotonic()
    return False

  def result(self) -> dict:
    """{"steal", "other_busy"}: fractions (0-1) of the machine's CPU time over the block
    that the hypervisor stole and that other processes used (None before the block)."""
    if self._t0 is None or self._t1 is None:
      return {"steal": None, "other_busy": None}
    d = [b - a for a, b in zip(self._t0, self._t1)]
    total = sum(d)
    if total <= 0:
      return {"steal": 0.0, "other_busy": 0.0}
    user, nice, system, idle, iowait, irq, softirq, steal = d
    busy = (user + nice + system + irq + softirq) / total
    cores = os.cpu_count() or 1
    own = (self._p1 - self._p0) / max(1e-9, (self._w1 - self._w0) * cores)
    return {"steal": round(steal / total, 4), "other_busy": round(max(0.0, busy - own), 4)}


def runtime_version() -> str:
  """The LiteRT runtime that times models, e.g. "ai-edge-litert 2.1.0"."""
  from importlib.metadata import version
  return f"ai-edge-litert {version('ai-edge-litert')}"


class HostRunner:
  """Times `.tflite` models with `ai_edge_litert.interpreter.Interpreter`.

  Example:
    >>> runner = HostRunner(threads=1)
    >>> stats, info = runner.measure(open("model.tflite", "rb").read())

  Args:
    threads: Interpreter threads (1 is the steadiest on small shared hosts).
    xnnpack: Use the default XNNPACK delegate (False: reference kernels only).
    cpus: Pin this process to these CPU ids while measuring (None: no pinning).
    protocol: Default `Protocol` for `measure`.
  """

  kind = "host"

  def __init__(self, threads: int = 1, xnnpack: bool = True, cpus=None,
               protocol: Protocol = FIXED):
    self.threads = check_threads(threads)
    self.xnnpack = xnnpack
    try:
      self.cpus = tuple(int(c) for c in cpus) if cpus else None
    except ValueError:
      raise BenchError(f"cpus {list(cpus)!r} must be CPU ids (integers, e.g. 0,1)") from None
    if self.cpus and not set(self.cpus) <= set(os.sched_getaffinity(0)):
      raise BenchError(f"cpus {list(self.cpus)} are not all available to this process "
                       f"(available: {sorted(os.sched_getaffinity(0))})")
    self.protocol = protocol

  @property
  def delegate(self) -> str:
    """The delegate records name: "xnnpack" or "none"."""
    return "xnnpack" if self.xnnpack else "none"

  def device(self) -> dict:
    """The record's `device`: kind "host", CPU model, cores, hostname, pinned CPUs."""
    return {"kind": "host", "cpu_model": cpu_model(), "cores": os.cpu_count(),
            "hostname": socket.gethostname(), "pinned_cpus": list(self.cpus or [])}

  def load(self, model: bytes | str):
    """A ready interpreter with a random input set; raises BenchError on a bad file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kwargs = {"num_threads": self.threads}
    if not self.xnnpack:
      kwargs["experimental_op_resolver_type"] = (
          OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
      if isinstance(model, (bytes, bytearray)):
        interp = Interpreter(model_content=bytes(model), **kwargs)
      else:
        if not os.path.exists(model):
          raise BenchError(f"model file {model!r} does not exist")
        interp = Interpreter(model_path=model, **kwargs)
      interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
      where = "model bytes" if isinstance(model, (bytes, bytearray)) else repr(model)
      raise BenchError(f"cannot load {where} as a .tflite model: "
                       f"{str(e).splitlines()[0]}") from None
    rng = np.random.default_rng(0)
    for d in interp.get_input_details():
      if np.issubdtype(d["dtype"], np.floating):
        x = rng.normal(size=d["shape"]).astype(d["dtype"])
      else:
        info = np.iinfo(d["dtype"])
        x = rng.integers(info.min, info.max, size=d["shape"], dtype=d["dtype"])
      interp.set_tensor(d["index"], x)
    return interp

  @staticmethod
  def delegate_partitions(interp) -> int:
    """How many delegate kernels the graph was split into (1: fully delegated)."""
    return sum(1 for op in interp._get_ops_details() if op["op_name"] == "DELEGATE")

  @staticmethod
  def undelegated_ops(interp) -> list[str]:
    """Names of the ops that run on LiteRT's own kernels, not inside a delegate.

    The interpreter lists every original node plus one DELEGATE node per
    partition; an original op runs outside the delegates exactly when a tensor
    the delegates or the graph outputs need is computed by it (or by an op it
    feeds), so walk back from those tensors.
    """
    details = interp._get_ops_details()
    delegates = [d for d in details if d["op_name"] == "DELEGATE"]
    ops = [d for d in details if d["op_name"] != "DELEGATE"]
    if not delegates:
      return [d["op_name"] for d in ops]
    producer = {int(t): d for d in ops for t in d["outputs"]}
    from_delegate = {int(t) for d in delegates for t in d["outputs"]}
    stack = [int(t) for d in delegates for t in d["inputs"]]
    stack += [int(d["index"]) for d in interp.get_output_details()]
    seen, names = set(), []
    while stack:
      t = stack.pop()
      if t in from_delegate or t not in producer or producer[t]["index"] in seen:
        continue  # computed by a delegate, a constant or graph input, or already counted
      op = producer[t]
      seen.add(op["index"])
      names.append(op["op_name"])
      stack.extend(int(i) for i in op["inputs"] if i >= 0)
    return names

  def measure(self, model: bytes | str, protocol: Protocol | None = None):
    """Times one model; returns (Stats, info dict with partitions etc.)."""
    interp = self.load(model)
    old = None
    if self.cpus:
      old = os.sched_getaffinity(0)
      os.sched_setaffinity(0, self.cpus)
    try:
      with HostLoad() as load:
        stats = (protocol or self.protocol).run(interp.invoke)
    finally:
      if old is not None:
        os.sched_setaffinity(0, old)
    info = {"delegate_partitions": self.delegate_partitions(interp),
            "nodes": len(interp._get_ops_details()), "host_load": load.result()}
    return stats, info
