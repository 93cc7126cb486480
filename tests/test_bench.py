"""tflite_bench: records, protocols, the host runner, the adb runner (against a
stand-in adb), and fast generation by stitching pieces."""

import json
import os
import sys
import time

import numpy as np
import pytest

from tflite_bench import record as rec_lib
from tflite_bench.android import AdbRunner, parse_benchmark_output
from tflite_bench.host import BenchError, HostRunner
from tflite_bench.protocol import ADAPTIVE, FIXED, Protocol
from tflite_bench.stitch import StitchError, op_signature, stitch
from tfnas.spaces import list_spaces

HERE = os.path.dirname(__file__)
OUTPUTS = os.path.join(HERE, "data", "benchmark_model")


# --- benchmark_model output parsing --------------------------------------------------------
# The files under tests/data/benchmark_model are transcriptions of benchmark_model's stdout in
# its current, older (TF 1.x) and newer "INFO: Timings (microseconds)" formats; no phone is
# attached to these machines, so they are not captured from a device by this project.

def test_parse_current_format_takes_timed_line_not_warmup():
  p = parse_benchmark_output(open(os.path.join(OUTPUTS, "current.txt")).read())
  assert p["timed"]["count"] == 50 and p["timed"]["avg"] == 69634.3 and p["timed"]["std"] == 420
  assert p["warmup"]["count"] == 10
  assert p["summary"]["Inference (avg)"] == 69634.3 and p["summary"]["Init"] == 35213


def test_parse_older_format():
  p = parse_benchmark_output(open(os.path.join(OUTPUTS, "older.txt")).read())
  assert p["timed"]["count"] == 50 and p["timed"]["avg"] == 86781.6
  assert p["warmup"]["avg"] == 91034.2
  assert p["summary"]["no stats"] == 86781.6 and p["summary"]["Warmup"] == 91034.2


def test_parse_newer_prefixed_format_with_percentiles():
  p = parse_benchmark_output(open(os.path.join(OUTPUTS, "newer_prefixed.txt")).read())
  assert p["timed"]["count"] == 50 and p["timed"]["median"] == 60011
  assert p["warmup"]["count"] == 12


def test_parse_garbage_is_a_clear_error():
  with pytest.raises(BenchError, match="no timing line"):
    parse_benchmark_output("ERROR: Could not open '/data/local/tmp/x.tflite'.\nAborted")


# Failed runs: the current-format transcription cut where the run stopped, with the error
# lines benchmark_model prints (`TFLITE_LOG(ERROR) << "Benchmarking failed."` in its main when
# Run() fails). Each has the warm-up's statistics, which must not pass for the timed run's.
@pytest.mark.parametrize("name,match", [
    ("died_after_warmup.txt", "no statistics after its last 'Running benchmark' block"),
    ("stopped_in_warmup.txt", "only one 'Running benchmark' block"),
    ("benchmarking_failed.txt", r"benchmark_model failed: ERROR: Node number 41 \(CONV_2D\) "
                                r"failed to invoke. \| ERROR: Benchmarking failed."),
])
def test_parse_rejects_a_run_that_stopped_after_warmup(name, match):
  text = open(os.path.join(OUTPUTS, name)).read()
  assert "count=10 " in text  # the warm-up's line is there
  with pytest.raises(BenchError, match=match):
    parse_benchmark_output(text)


# --- the adb runner against a stand-in adb (conftest's `fake_adb`) ---------------------------

def test_adb_runner_runs_benchmark_model_under_taskset(fake_adb):
  model = fake_adb / "model.tflite"
  model.write_bytes(b"x")
  runner = AdbRunner(serial="PIXEL1", threads=1, cpu_mask="f0", num_runs=50, min_secs=1.0)
  stats, info = runner.measure(str(model))
  assert stats.runs == 50 and abs(stats.mean_ms - 69.6343) < 1e-9 and stats.warmup_runs == 10
  assert abs(stats.min_ms - 68.937) < 1e-9 and info["median_is_avg"]
  assert runner.device() == {"kind": "android", "model": "Pixel 1", "serial": "PIXEL1",
                             "abi": "arm64-v8a", "cpu_mask": "f0"}
  log = open(fake_adb / "adb.log").read()
  assert "push" in log and "taskset f0 /data/local/tmp/benchmark_model --graph=" in log
  assert "--num_threads=1 --warmup_runs=10 --num_runs=50 --min_secs=1.0" in log


def test_every_measuring_binary_runs_on_a_phone_through_adb(fake_adb):
  # Issue 18, item 2: the benchmark binary, the profile binary and the per-op table
  # measure on a phone through the adb runner (here the stand-in `adb`, replaying a real
  # benchmark_model output: 69.63 ms mean, 50 runs, for every model; no phone is
  # attached to CI machines). The export's --adb_serial: test_export.py.
  from conftest import run_bin
  env = {"TFNAS_CACHE": str(fake_adb / "cache")}
  model = fake_adb / "model.tflite"
  model.write_bytes(b"x")
  r = run_bin("tflite_bench.bin.benchmark", f"--model={model}", "--runner=adb",
              "--serial=PIXEL1")
  assert r.returncode == 0, r.stderr[-2000:]
  out = json.loads(r.stdout)
  assert out["runner"] == "android" and out["device"]["model"] == "Pixel 1"
  assert out["mean_ms"] == pytest.approx(69.6343)
  records = fake_adb / "phone.jsonl"
  r = run_bin("tflite_bench.bin.profile", "--runner=adb", "--serial=PIXEL1",
              "--space=nasbench_macro", "--width=0.25", "--num_archs=3", "--precision=int8",
              "--reference_every=0", f"--out={records}", env=env)
  assert r.returncode == 0, r.stderr[-2000:]
  recs = rec_lib.read_records(str(records))
  assert len(recs) == 3 and {x["quantization"] for x in recs} == {"int8"}
  assert {x["device"]["serial"] for x in recs} == {"PIXEL1"}
  assert {x["runtime"] for x in recs} == {"benchmark_model"}
  assert all(x["stats"]["mean_ms"] == pytest.approx(69.6343) for x in recs)
  log = open(fake_adb / "adb.log").read()
  assert log.count("push ") >= 4  # one model each (and the benchmark binary's model)
  lut_dir = fake_adb / "lut"
  r = run_bin("tfnas.bin.latency_fit", "--measure_lut", "--runner=adb", "--serial=PIXEL1",
              "--space=nasbench_macro", "--width=0.25", "--precision=int8", f"--out={lut_dir}",
              env=env)
  assert r.returncode == 0, r.stderr[-2000:]
  lut = json.load(open(lut_dir / "latency_model.json"))
  assert lut["precision"] == "int8" and lut["meta"]["device"]["kind"] == "android"
  entries = [v for row in lut["table"].values() for v in row.values() if v > 0]
  assert entries and all(v == pytest.approx(69.6343) for v in entries)
  # No device attached: one line, nothing written.
  r = run_bin("tfnas.bin.latency_fit", "--measure_lut", "--runner=adb",
              "--space=nasbench_macro", f"--out={fake_adb / 'none'}",
              env={**env, "FAKE_ADB_DEVICES": ""})
  assert r.returncode == 2 and "no Android device attached" in r.stderr
  assert not (fake_adb / "none" / "latency_model.json").exists()


def test_profile_refuses_devices_of_two_phone_models(fake_adb):
  # One latency dataset is one phone model: two attached devices of different models
  # (the stand-in adb reports OTHER as a Pixel 7) are refused in one line before any
  # file is pushed or record written.
  from conftest import run_bin
  out = fake_adb / "mixed.jsonl"
  r = run_bin("tflite_bench.bin.profile", "--runner=adb", "--serials=all",
              "--space=nasbench_macro", "--width=0.25", "--num_archs=2", "--precision=int8",
              f"--out={out}", env={"FAKE_ADB_MODELS": "OTHER=Pixel 7"})
  assert r.returncode == 2
  assert r.stderr.splitlines()[-1].startswith("error: ") and "mix phone models " \
      "['Pixel 1', 'Pixel 7']: profile one model per records file" in r.stderr.splitlines()[-1]
  assert not out.exists()
  log = open(fake_adb / "adb.log").read().splitlines()
  assert not any(" push " in l for l in log)  # nothing pushed, nothing run
  assert not any(l.startswith("exec: ") and json.loads(l[6:])[0].endswith("benchmark_model")
                 for l in log)


def test_profile_measures_several_phones_in_parallel_through_disconnects_and_heat(fake_adb):
  # Issue 18, item 2, on two stand-in devices (conftest's `fake_adb`; no phone is attached
  # to CI machines): each takes a share of the archs and its own references; OTHER heats
  # up after its 3rd run (its timings x1.25, 10 degrees warmer), so its later records are
  # flagged; then it disconnects and returns, then disconnects for good and its share is
  # measured by a rerun.
  from conftest import run_bin
  out = fake_adb / "phones.jsonl"
  env = {"TFNAS_CACHE": str(fake_adb / "cache"), "FAKE_ADB_HEAT": "OTHER@3*1.25",
         "FAKE_ADB_DROP": "OTHER@5+2"}
  args = ["--runner=adb", "--serials=all", "--space=nasbench_macro", "--width=0.25",
          "--num_archs=8", "--retest=2", "--precision=int8", "--reference_every=2",
          f"--out={out}"]
  r = run_bin("tflite_bench.bin.profile", *args, "--reconnect_wait=60", env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "10 to go on 2 devices in parallel" in r.stderr
  assert "device OTHER disconnected" in r.stderr and "device OTHER is back" in r.stderr
  recs = rec_lib.read_records(str(out))
  measured = [x for x in recs if not x["extra"].get("reference")]
  archs = [x for x in measured if not x["extra"]["retest"]]
  assert sorted(x["id"] for x in archs) == sorted(f"nasbench_macro/32/w0.25/s0/i{i}"
                                                  for i in range(8))
  serial_of = {x["id"]: x["device"]["serial"] for x in measured}
  retests = [x["id"] for x in measured if x["extra"]["retest"]]
  assert len(retests) == 2  # each on the phone that measured the arch first
  assert all(serial_of[i] == serial_of[i[:-len("/retest")]] for i in retests)
  by_device = {s: [x for x in archs if x["device"]["serial"] == s] for s in ("PIXEL1", "OTHER")}
  assert len(by_device["PIXEL1"]) == len(by_device["OTHER"]) == 4
  refs = [x for x in recs if x["extra"].get("reference")]
  assert {x["id"].split("/")[-2] for x in refs} == {"PIXEL1", "OTHER"}
  assert not any(x["drift"]["flagged"] for x in by_device["PIXEL1"])
  flagged = [x for x in by_device["OTHER"] if x["drift"]["flagged"]]
  assert flagged and all(x["drift"]["factor"] == pytest.approx(1.25) for x in flagged)
  assert all(x["thermal"]["battery_c"] == 41.2 for x in flagged)
  # Every thermal zone the shell can read, by type (zone 2's files are unreadable; a
  # type seen twice carries its zone number).
  assert by_device["PIXEL1"][0]["thermal"] == {
      "battery_c": 31.2, "thermal_zone0_c": 41.0,
      "zones_c": {"cpu-0-0": 41.0, "gpu": 38.5, "cpu-0-0@3": 40.0}, "at": "ref0"}
  assert all(x["thermal"]["zones_c"]["cpu-0-0"] == 51.0 for x in flagged)
  # A device gone for good: the other finishes its share, the run ends in one line and a
  # rerun measures the rest; nothing is measured twice.
  out2 = fake_adb / "phones2.jsonl"
  args2 = [a if not a.startswith("--out=") else f"--out={out2}" for a in args]
  os.remove(fake_adb / "fake_adb_state.json")
  r = run_bin("tflite_bench.bin.profile", *args2, "--reconnect_wait=1",
              env={**env, "FAKE_ADB_DROP": "OTHER@2+100000"})
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 2 and lines[-1].startswith("error: devices disconnected and did not "
                                                    "return"), r.stderr[-2000:]
  assert "OTHER (" in lines[-1] and "rerun the same command" in lines[-1]
  partial = [x for x in rec_lib.read_records(str(out2)) if not x["extra"].get("reference")]
  assert 4 <= len(partial) < 10
  os.remove(fake_adb / "fake_adb_state.json")  # OTHER is back
  r = run_bin("tflite_bench.bin.profile", *args2, env={**env, "FAKE_ADB_DROP": ""})
  assert r.returncode == 0, r.stderr[-2000:]
  done = [x["id"] for x in rec_lib.read_records(str(out2)) if not x["extra"].get("reference")]
  assert sorted(done) == sorted(x["id"] for x in measured)


def test_adb_runner_errors(fake_adb, monkeypatch):
  with pytest.raises(BenchError, match="several devices attached"):
    AdbRunner()
  with pytest.raises(BenchError, match="device serial 'NOPE' is not attached"):
    AdbRunner(serial="NOPE")
  monkeypatch.setenv("FAKE_ADB_BINARY", "")
  with pytest.raises(BenchError, match="benchmark_model not found on device PIXEL1"):
    AdbRunner(serial="PIXEL1")
  monkeypatch.setenv("FAKE_ADB_DEVICES", "")
  with pytest.raises(BenchError, match="no Android device attached"):
    AdbRunner()
  with pytest.raises(BenchError, match="adb executable 'adb-missing' not found on PATH"):
    AdbRunner(adb="adb-missing")


def test_adb_runner_quotes_what_reaches_the_device_shell(fake_adb):
  # A file name holding shell syntax stays one argument: the device runs benchmark_model
  # and nothing else (the stand-in adb logs every command a shell line would run).
  model = fake_adb / "m;touch pwned;x.tflite"
  model.write_bytes(b"x")
  runner = AdbRunner(serial="PIXEL1", cpu_mask="f0")
  runner.measure(str(model))
  execs = [json.loads(l[6:]) for l in open(fake_adb / "adb.log") if l.startswith("exec: ")]
  assert not any(argv[0] == "touch" for argv in execs), execs
  run = next(argv for argv in execs if argv[0] == "taskset")
  assert run[:3] == ["taskset", "f0", "/data/local/tmp/benchmark_model"]
  assert run[3] == "--graph=/data/local/tmp/tfnas_m;touch pwned;x.tflite"


def test_adb_runner_measures_model_bytes(fake_adb):
  # Fast generation hands stitched models over as bytes (the profile binary does).
  stats, _ = AdbRunner(serial="PIXEL1").measure(b"tflite bytes")
  assert stats.runs == 50
  assert "push" in open(fake_adb / "adb.log").read()


@pytest.mark.parametrize("threads", [0, -1])
def test_runners_refuse_a_thread_count_below_one(fake_adb, threads):
  with pytest.raises(BenchError, match=f"threads {threads} must be an integer >= 1"):
    HostRunner(threads=threads)
  with pytest.raises(BenchError, match=f"threads {threads} must be an integer >= 1"):
    AdbRunner(serial="PIXEL1", threads=threads)
  with pytest.raises(BenchError, match="must be CPU ids"):
    HostRunner(cpus=["x"])


def test_adb_runner_pushes_a_local_binary(fake_adb):
  local = fake_adb / "benchmark_model"
  local.write_bytes(b"\x7fELF")
  AdbRunner(serial="OTHER", local_binary=str(local))
  log = open(fake_adb / "adb.log").read()
  assert f"-s OTHER push {local} /data/local/tmp/benchmark_model" in log
  assert "chmod +x /data/local/tmp/benchmark_model" in log


# --- protocols -----------------------------------------------------------------------------

def test_fixed_protocol_meets_run_and_time_minimums():
  stats = Protocol(warmup_runs=10, warmup_secs=0.5, min_runs=50, min_secs=0.2).run(
      lambda: time.sleep(0.001))
  assert stats.runs >= 50 and stats.warmup_runs >= 1
  assert stats.runs * stats.mean_ms >= 200 * 0.95
  assert stats.p10_ms <= stats.median_ms <= stats.p90_ms
  assert FIXED.min_runs == 50 and FIXED.min_secs == 1.0 and FIXED.warmup_runs == 10


def test_adaptive_protocol_stops_when_median_is_known_or_at_cap():
  steady = ADAPTIVE.run(lambda: time.sleep(0.002))
  assert steady.runs < ADAPTIVE.max_runs and steady.ci_rel <= 0.01
  rng = np.random.default_rng(0)
  noisy = ADAPTIVE.run(lambda: time.sleep(float(rng.uniform(0.0005, 0.004))))
  assert noisy.runs == ADAPTIVE.max_runs


# --- records -------------------------------------------------------------------------------

def _record(i):
  stats = rec_lib.Stats.from_samples([1.0, 1.1, 0.9, 1.0, 1.2, 1.0, 0.95], 2)
  return rec_lib.make_record(id=f"x/i{i}", space="s", arch="s:a", resolution=32,
                             quantization="float32", runtime="litert-python",
                             runtime_version="v", threads=1, delegate="xnnpack",
                             device={"kind": "host"}, stats=stats)


def test_records_survive_a_writer_killed_mid_line(tmp_path):
  path = str(tmp_path / "r.jsonl")
  with rec_lib.RecordWriter(path) as w:
    w.append(_record(0))
    w.append(_record(1))
  with open(path, "ab") as f:
    f.write(json.dumps(_record(2)).encode()[:40])  # a kill -9 in the middle of a line
  assert [r["id"] for r in rec_lib.read_records(path)] == ["x/i0", "x/i1"]
  with rec_lib.RecordWriter(path) as w:  # reopening cuts the partial line, then appends
    w.append(_record(2))
  assert [r["id"] for r in rec_lib.read_records(path)] == ["x/i0", "x/i1", "x/i2"]
  assert rec_lib.read_records(path)[0]["stats"]["median_ms"] == 1.0


def test_record_schema_is_checked():
  with pytest.raises(rec_lib.RecordError, match="lacks fields"):
    rec_lib.make_record(id="a", space="s")
  bad = dict(_record(0), schema=99)
  with pytest.raises(rec_lib.RecordError, match="schema 99"):
    rec_lib.validate(bad)


# --- host runner and stitching -------------------------------------------------------------

def test_host_runner_rejects_a_corrupt_file(tmp_path):
  bad = tmp_path / "bad.tflite"
  bad.write_bytes(b"this is not a flatbuffer")
  with pytest.raises(BenchError, match="cannot load .*bad.tflite"):
    HostRunner().measure(str(bad))
  with pytest.raises(BenchError, match="does not exist"):
    HostRunner().measure(str(tmp_path / "missing.tflite"))


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="HostLoad reads /proc/stat")
def test_host_load_sees_another_process_busy():
  import subprocess
  from tflite_bench.host import HostLoad
  with HostLoad() as idle:
    time.sleep(0.3)
  burner = subprocess.Popen([sys.executable, "-c",
                             "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"])
  try:
    time.sleep(0.3)  # let it start
    with HostLoad() as busy:
      time.sleep(1.0)
  finally:
    burner.wait()
  for load in (idle.result(), busy.result()):
    assert 0.0 <= load["steal"] <= 1.0 and 0.0 <= load["other_busy"] <= 1.0
  # One busy core out of os.cpu_count(): its share of all cores' time (what steal leaves).
  assert busy.result()["other_busy"] >= 0.5 / (os.cpu_count() or 1) - busy.result()["steal"]


@pytest.fixture(scope="session")
def piece_caches(tmp_path_factory):
  from tfnas.export.fastgen import PieceCache
  from tfnas.spaces import get_space
  root = tmp_path_factory.mktemp("pieces")
  return {name: PieceCache(get_space(name, resolution=32), str(root / name))
          for name in ("proxyless_cifar", "spos_shufflenet", "fbnet_cifar")}


# float32 on one space by default (the int8 sweep below stitches every space's pieces).
@pytest.mark.parametrize("space_name, seed", [
    ("proxyless_cifar", 0), pytest.param("spos_shufflenet", 0, marks=pytest.mark.slow),
    pytest.param("fbnet_cifar", 0, marks=pytest.mark.slow)])
def test_stitched_model_has_the_converters_ops_order_and_shapes(piece_caches, space_name, seed):
  from tfnas.export.tflite import convert_float
  from tfnas.models import build_child
  from tfnas.spaces import Arch
  cache = piece_caches[space_name]
  space = cache.space
  rng = np.random.default_rng(seed)
  arch = Arch.create(space, [int(rng.integers(len(b.ops))) for b in space.choice_blocks],
                     [int(rng.integers(len(b.mid_scales))) for b in space.choice_blocks]
                     if space.has_channel_choices else None)
  fast = cache.model(arch)
  slow = convert_float(build_child(space, arch))
  assert op_signature(fast) == op_signature(slow)
  # Both run, fully delegated. (Their latencies, interleaved, are compared in
  # benchmarks/bench_latency.py: a timing bound here failed under a loaded machine.)
  runner = HostRunner()
  assert runner.delegate_partitions(runner.load(fast)) == 1
  assert runner.delegate_partitions(runner.load(slow)) == 1


def _converter_layout(signature):
  """The converter puts a float16 model's weight DEQUANTIZEs (constant inputs only, run
  once when the interpreter prepares) first, in an order of its own: compared as a set;
  every other operator in order."""
  k = 0
  while k < len(signature) and signature[k][0] == "DEQUANTIZE":
    k += 1
  return sorted(signature[:k]), signature[k:]


# proxyless_mobile and ofa_mbv3 at 64 px: at 32 their last stage is 1x1, where the converter turns a
# lone piece's residual ADD into RESHAPE + ADD (a degenerate size no one ships).
_SWEEP_RES = {"proxyless_mobile": 64, "ofa_mbv3": 64}


# int8 (what ships) on one space of each block family by default (MBConv, FBNet's, the
# ShuffleNet blocks, NAS-Bench-Macro's), every space in the slow run; float16 (its own
# step: the weight DEQUANTIZEs moved first) on one space by default. Each piece is a
# converter run (~1.5 s of CPU), so the default cases take the space's first 10 blocks (a
# complete network: its head follows block 9; every op of the space, stride 1 and 2) with
# every op used; the slow run takes every space whole, a random arch.
_INT8_DEFAULT = ("proxyless_cifar", "fbnet_cifar", "spos_shufflenet", "nasbench_macro")
_FLOAT16_DEFAULT = ("nasbench_macro",)
_DEFAULT_BLOCKS = 10


@pytest.mark.parametrize("space_name, precision, blocks", [
    *[pytest.param(n, p, _DEFAULT_BLOCKS) for p, names in
      (("int8", _INT8_DEFAULT), ("float16", _FLOAT16_DEFAULT)) for n in names],
    *[pytest.param(n, p, None, marks=pytest.mark.slow)
      for p in ("int8", "float16") for n in list_spaces()]])
def test_stitched_quantized_model_matches_the_converters_op_for_op(tmp_path, space_name,
                                                                   precision, blocks):
  # Issue 18, item 1: the fast int8 (full-integer PTQ, float I/O: the export's form) and
  # float16 models of a sampled arch of every space have the converter's operators, in
  # its order, with the same shapes, element types and per-channel quantization axes.
  import dataclasses

  from tfnas.export.fastgen import PieceCache, convert_piece, randomize_batchnorm
  from tfnas.models import build_child
  from tfnas.spaces import Arch, get_space
  space = get_space(space_name, resolution=_SWEEP_RES.get(space_name, 32))
  rng = np.random.default_rng(1)
  if blocks:  # the first blocks, every op of the space used (a block without it: cycled)
    space = dataclasses.replace(space, blocks=space.blocks[:blocks], references=())
    n_ops = max(len(b.ops) for b in space.choice_blocks)
    order = np.concatenate([rng.permutation(n_ops) for _ in range(len(space.blocks))])
    ops = [int(order[i]) % len(b.ops) for i, b in enumerate(space.choice_blocks)]
    assert ({b.ops[o].name for b, o in zip(space.choice_blocks, ops)}
            == {op.name for b in space.choice_blocks for op in b.ops})
  else:
    ops = [int(rng.integers(len(b.ops))) for b in space.choice_blocks]
  arch = Arch.create(space, ops, [int(rng.integers(len(b.mid_scales)))
                                  for b in space.choice_blocks]
                     if space.has_channel_choices else None)
  fast = PieceCache(space, "", precision).model(arch)
  slow = convert_piece(randomize_batchnorm(build_child(space, arch)), precision,
                       int8_input=False, int8_output=False)
  signature = op_signature(fast)
  assert _converter_layout(signature) == _converter_layout(op_signature(slow))
  types = {t[1] for op in signature for t in op[1] + op[2] if t}
  if precision == "int8":
    assert [op[0] for op in signature][::len(signature) - 1] == ["QUANTIZE", "DEQUANTIZE"]
    assert {"int8", "int32", "float32"} >= types >= {"int8", "int32"}
    axes = {t[2] for op in signature if op[0] in ("CONV_2D", "DEPTHWISE_CONV_2D")
            for t in op[1][1:2]}
    assert axes <= {0, 3} and axes  # per-channel: output channels (conv 0, depthwise 3)
  else:
    assert "float16" in types
  # The same delegation as the converter's model (for the ShuffleNet spaces' int8 channel
  # shuffle this needs the joints' quantization adopted: tflite_bench.stitch).
  runner = HostRunner()
  assert (runner.delegate_partitions(runner.load(fast))
          == runner.delegate_partitions(runner.load(slow)))


def test_stitch_rejects_mismatched_pieces(piece_caches):
  cache = piece_caches["proxyless_cifar"]
  with pytest.raises(StitchError, match="expects input shape"):
    stitch([cache.stem_piece(), cache.head_piece()])
  with pytest.raises(StitchError, match="nothing to stitch"):
    stitch([])


def test_piece_cache_folder_is_keyed_by_space_and_tensorflow(tmp_path, monkeypatch):
  # One --piece_cache folder serves several spaces, resolutions and widths, and pieces
  # converted by another TensorFlow version are never reused.
  import tensorflow as tf
  from tfnas.export.fastgen import PieceCache
  from tfnas.spaces import get_space
  root = str(tmp_path)
  dirs = {PieceCache(get_space(n, r, w), root).directory
          for n, r, w in (("proxyless_cifar", 32, 1.0), ("proxyless_cifar", 64, 1.0),
                          ("proxyless_cifar", 32, 0.5), ("fbnet_cifar", 32, 1.0))}
  assert len(dirs) == 4 and all(os.path.dirname(d) == root for d in dirs)
  before = PieceCache(get_space("proxyless_cifar", 32), root).directory
  monkeypatch.setattr(tf, "__version__", "9.99.0")
  assert PieceCache(get_space("proxyless_cifar", 32), root).directory != before
  assert PieceCache(get_space("proxyless_cifar", 32), "").directory == ""  # memory only
