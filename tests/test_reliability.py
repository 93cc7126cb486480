"""Nothing lost, nothing silently wrong: atomic writes and their file modes, torn JSONL
logs, workdirs that belong to one binary and one run, and one-line errors from every
binary (flags, damaged files, a disk that refuses writes)."""

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from conftest import PIXEL1_LUT, ROOT, run_bin

from tfnas.errors import TfnasError
from tfnas.io import append_jsonl, atomic_path, atomic_write_bytes, read_jsonl


# --- atomic writes ---------------------------------------------------------------------------

def test_atomic_writes_get_the_umask_mode_not_0600(tmp_path):
  old = os.umask(0o022)
  try:
    atomic_write_bytes(str(tmp_path / "a.bin"), b"x")
    with atomic_path(str(tmp_path / "b.weights.h5")) as tmp:
      open(tmp, "wb").write(b"y")
  finally:
    os.umask(old)
  for name in ("a.bin", "b.weights.h5"):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
  # A real process dies (SIGKILL) half-way through writing a weights file: the file
  # keeps its previous content (a 96-byte stub once reached export).
  target = tmp_path / "model.weights.h5"
  target.write_bytes(b"previous weights")
  code = textwrap.dedent(f"""
      import os, signal
      from tfnas.io import atomic_path
      with atomic_path({str(target)!r}) as tmp:
        with open(tmp, "wb") as f:
          f.write(b"half of the new wei")
          f.flush()
          os.kill(os.getpid(), signal.SIGKILL)
  """)
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
  assert proc.returncode == -signal.SIGKILL
  assert target.read_bytes() == b"previous weights"


def test_jsonl_log_repairs_a_torn_last_line(tmp_path):
  path = str(tmp_path / "candidates.jsonl")
  append_jsonl(path, [{"key": "a", "accuracy": 0.5}])
  with open(path, "ab") as f:
    f.write(b'{"key": "b", "accur')  # a kill mid-line
  assert read_jsonl(path, "log") == [{"key": "a", "accuracy": 0.5}]
  append_jsonl(path, [{"key": "c", "accuracy": 0.7}])  # not glued onto the torn line
  assert read_jsonl(path, "log") == [{"key": "a", "accuracy": 0.5}, {"key": "c", "accuracy": 0.7}]
  with open(path, "ab") as f:
    f.write(b"[1, 2]\n{}\n")
  with pytest.raises(TfnasError, match="line 3 is not a JSON object"):
    read_jsonl(path, "log")
  assert read_jsonl(str(tmp_path / "absent.jsonl"), "log") == []


# --- workdirs belong to one binary and one run ------------------------------------------------

def _made_by(workdir, kind, **identity):
  workdir.mkdir(parents=True)
  (workdir / "workdir.json").write_text(json.dumps({"made_by": kind, "identity": identity}))
  (workdir / "config.json").write_text("{}")
  return sorted(os.listdir(workdir))


def test_search_refuses_a_training_workdir_and_writes_nothing(tmp_path):
  workdir = tmp_path / "train_run"
  before = _made_by(workdir, "train", space="proxyless_cifar")
  (workdir / "metrics.json").write_text("{}")
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={workdir}", "--config.data.dataset=folder:/nonexistent")
  assert r.returncode == 2, r.stderr[-2000:]
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "holds the output of tfnas.bin.train" in last
  assert sorted(os.listdir(workdir)) == sorted(before + ["metrics.json"])
  assert (workdir / "config.json").read_text() == "{}"


def test_train_refuses_a_search_workdir_and_another_dataset(tmp_path):
  # A search workdir from before workdir.json existed is recognised by its files.
  search = tmp_path / "search_run"
  search.mkdir()
  (search / "search_space.json").write_text(json.dumps({"space": "proxyless_cifar"}))
  r = run_bin("tfnas.bin.train", "--config=configs/train_cifar10.py:quick",
              f"--workdir={search}", "--config.data.dataset=folder:/nonexistent")
  assert r.returncode == 2 and "holds the output of tfnas.bin.search" in r.stderr, r.stderr
  assert os.listdir(search) == ["search_space.json"]
  run = tmp_path / "train_run"
  _made_by(run, "train", space="proxyless_cifar", dataset="folder:/elsewhere")
  r = run_bin("tfnas.bin.train", "--config=configs/train_cifar10.py:quick",
              f"--workdir={run}", "--config.data.dataset=folder:/nonexistent")
  assert r.returncode == 2 and "holds a run with dataset='folder:/elsewhere'" in r.stderr


def test_latency_fit_refuses_a_training_workdir(tmp_path):
  workdir = tmp_path / "train_run"
  before = _made_by(workdir, "train", space="proxyless_cifar")
  r = run_bin("tfnas.bin.latency_fit", f"--import_lut={PIXEL1_LUT}", "--space=proxyless_mobile",
              f"--out={workdir}")
  assert r.returncode == 2 and "holds the output of tfnas.bin.train" in r.stderr, r.stderr
  assert sorted(os.listdir(workdir)) == before


def test_a_damaged_workdir_file_is_one_line(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "workdir.json").write_text('{"made_by": "tra')
  r = run_bin("tfnas.bin.train", "--config=configs/train_cifar10.py:quick",
              f"--workdir={workdir}", "--config.data.dataset=folder:/nonexistent")
  assert r.returncode == 2 and "workdir file" in r.stderr and "not valid JSON" in r.stderr
  assert "Traceback" not in r.stderr


# --- one line, exit 2, from every binary -----------------------------------------------------

def _one_line(r, pattern):
  lines = r.stderr.strip().splitlines()
  assert r.returncode == 2, r.stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], r.stderr
  return lines[0]


def _record(i: int, precision: str) -> dict:
  from tflite_bench.record import make_record
  from tflite_bench.record import Stats
  return make_record(
      id=f"nasbench_macro/32/s0/i{i}", space="nasbench_macro", arch="nasbench_macro:11111111",
      resolution=32, quantization=precision, runtime="litert-python", runtime_version="x",
      threads=1, delegate="xnnpack", device={"kind": "host"},
      stats=Stats(1.0, 0.9, 1.1, 1.0, 0.1, 0.9, 1.1, 10, 2), extra={})


@pytest.mark.parametrize("module, args, pattern", [
    ("tflite_bench.bin.benchmark", ["--model=x.tflite", "--threads=x"], "--threads=x"),
    ("tflite_bench.bin.benchmark", ["--model=x.tflite", "--threads=0"], "threads 0 must be"),
    ("tflite_bench.bin.benchmark", ["--model=x.tflite", "--cpus=a"], "must be CPU ids"),
    ("tflite_bench.bin.profile", ["--space=proxyless_cifar"], "--out"),
    ("tflite_bench.bin.profile", ["--space=proxyless_cifar", "--out=OUT", "--resolution=0"],
     "resolution 0 for space 'proxyless_cifar' is too small"),
    ("tflite_bench.bin.profile", ["--space=proxyless_cifar", "--out=OUT", "--threads=0"],
     "threads 0 must be an integer >= 1"),
    ("tfnas.bin.spaces", ["proxyless_mobile", "all_k3_e6", "--resolution=0"],
     "resolution 0 for space 'proxyless_mobile' is too small"),
    ("tfnas.bin.train", ["--config=configs/train_cifar10.py:quick", "--workdir=OUT",
                         "--config.train.epochs=0"], "epochs 0 must be an integer >= 1"),
    ("tfnas.bin.train", ["--config=configs/train_cifar10.py:quick", "--workdir=OUT",
                         "--config.data.resolution=0"], "resolution 0 for space"),
    ("tfnas.bin.train", ["--config=configs/train_cifar10.py:quick", "--workdir=OUT",
                         "--config.model.arch=ARCH_JSON"], "arch file"),
    ("tfnas.bin.search", ["--config=configs/proxyless_cifar10.py:quick", "--workdir=OUT",
                          "--config.search.precision=int4"], "--config.search.precision='int4' is not one of"),
    ("tfnas.bin.search", ["--config=configs/proxyless_cifar10.py:quick", "--workdir=OUT",
                          "--config.search.latency_model=FLOAT_MODEL"],
     "predicts float32 files, but --config.search.precision is int8: measure one at int8"),
    ("tfnas.bin.export", ["--workdir=OUT", "--bake_normalization", "--int8_io"],
     "--bake_normalization (uint8 pixels in) applies to"),
    ("tfnas.bin.latency_fit", ["--records=MIXED", "--out=OUT"],
     "records mix precisions ['float32', 'int8']"),
])
def test_bad_values_are_one_line_and_write_nothing(tmp_path, module, args, pattern):
  out = tmp_path / "out"
  arch_json = tmp_path / "arch.json"
  arch_json.write_text('{"space": "proxyless_cifar", "canon')  # a damaged arch.json
  # A float32 latency model where the search ships int8 (the config's default), and
  # records of two precisions.
  from tfnas.latency import CostModel, load
  from tfnas.spaces import get_space
  space = get_space("nasbench_macro")
  macs = load("macs", space)
  float_model = tmp_path / "float32.json"
  CostModel(space, "lut", "ms", 0.1, macs.table, {"source": "test"}, "float32").save(
      str(float_model))
  mixed = tmp_path / "mixed.jsonl"
  mixed.write_text("".join(json.dumps(_record(i, "int8" if i % 2 else "float32")) + "\n"
                           for i in range(12)))
  args = [a.replace("OUT", str(out)).replace("ARCH_JSON", str(arch_json))
          .replace("FLOAT_MODEL", str(float_model)).replace("MIXED", str(mixed)) for a in args]
  _one_line(run_bin(module, *args), pattern)
  assert not out.exists()


def test_damaged_lookup_tables_and_records_are_one_line(tmp_path):
  import yaml
  table = yaml.safe_load(open(PIXEL1_LUT))
  key = next(k for k in table if k.startswith("expanded_conv"))
  for bad, shown in (({"avg": 1.0}, "None"), ({"mean": "fast"}, "'fast'"),
                     ({"mean": -1.0}, "-1.0"), ({"mean": float("inf")}, "inf")):
    path = tmp_path / "lut.yaml"
    path.write_text(yaml.safe_dump({**table, key: bad}))
    r = run_bin("tfnas.bin.latency_fit", f"--import_lut={path}", "--space=proxyless_mobile",
                f"--out={tmp_path / 'fit'}")
    line = _one_line(r, f"entry {key!r} has mean {shown}")
    assert "expected a finite latency in ms >= 0" in line
  path.write_text("a: [1, 2\nb: {")
  _one_line(run_bin("tfnas.bin.latency_fit", f"--import_lut={path}",
                    "--space=proxyless_mobile", f"--out={tmp_path / 'fit'}"), "is not YAML")
  records = tmp_path / "records.jsonl"
  record = {"schema": 1, "id": "a", "space": "proxyless_cifar", "arch": "x", "resolution": 32,
            "quantization": "float32", "runtime": "litert-python", "runtime_version": "x",
            "threads": 1, "delegate": "xnnpack", "device": {}, "stats": {"median_ms": "1.2"}}
  for line, pattern in (("[1, 2]", "must be a JSON object"),
                        (json.dumps(record), "has stats.median_ms '1.2'")):
    records.write_text(line + "\n{}\n")
    r = run_bin("tfnas.bin.latency_fit", f"--records={records}", f"--out={tmp_path / 'fit'}")
    _one_line(r, pattern)
  assert not (tmp_path / "fit").exists()


def test_a_disk_that_refuses_writes_is_one_line_naming_the_file(tmp_path):
  # A file-size limit of 0 makes every write fail (EFBIG), like a full disk (ENOSPC) or
  # a read-only folder would: the binary names the file, no traceback.
  def no_writes():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
  out = tmp_path / "lut"
  r = subprocess.run([sys.executable, "-m", "tfnas.bin.latency_fit", f"--import_lut={PIXEL1_LUT}",
                      "--space=proxyless_mobile", f"--out={out}"], cwd=ROOT, capture_output=True,
                     text=True, preexec_fn=no_writes,
                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  line = _one_line(r, "File too large")
  assert str(out) in line
  assert not out.exists() or os.listdir(out) == []  # no temp file left either
