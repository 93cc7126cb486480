"""Shared fixtures: where ../shared/data is, and tiny trees of real images."""

import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(
    os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")))
CIFAR_TAR = os.path.join(SHARED_DATA, "cifar10-jpg.tar.gz")
IMAGENETTE_TAR = os.path.join(SHARED_DATA, "imagenette2-160.tgz")
PIXEL1_LUT = os.path.join(SHARED_DATA, "latency", "proxylessnas_mobile_trim.yaml")
NOTE10_LUT = os.path.join(SHARED_DATA, "latency", "ofa_note10_224_lookup_table.yaml")


# Modules that take longest, longest first (`--durations` in the CI log). The run uses
# `--dist loadscope --no-loadscope-reorder`: each module goes whole to one worker, in this
# order, so the long binary tests start at once instead of running alone at the end (the
# default reorder puts modules with few tests, like these, last; CI took 30 min).
LONGEST_FIRST = ("test_spos_bin.py", "test_search_bin.py", "test_spos.py", "test_train_bin.py",
                 "test_colab.py", "test_packaging.py")  # the last: mostly waits on PyPI


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(os.path.basename(str(item.path)), len(rank)))


def require(path):
  if not os.path.exists(path):
    pytest.fail(f"shared data {path} is missing; set TFNAS_SHARED_DATA to ../shared/data")
  return path


@pytest.fixture(scope="session")
def cifar_root():
  """The unpacked real CIFAR-10 JPEG tree (unpacked once into the cache)."""
  from tfnas.data import sources
  return sources.load_folder(require(CIFAR_TAR)).root


@pytest.fixture(scope="session")
def tiny_cifar(cifar_root, tmp_path_factory):
  """A tiny real CIFAR-10 tree: 16 train and 4 test JPEGs for each of 10 classes."""
  out = tmp_path_factory.mktemp("tiny_cifar") / "cifar_tiny"
  for split, n in (("train", 16), ("test", 4)):
    for cls in sorted(os.listdir(os.path.join(cifar_root, split))):
      src = os.path.join(cifar_root, split, cls)
      dst = out / split / cls
      dst.mkdir(parents=True)
      for f in sorted(os.listdir(src))[:n]:
        shutil.copy(os.path.join(src, f), dst / f)
  return str(out)


def run_bin(module, *args, env=None, timeout=2400):
  """Runs `python -m module args...` from the repo root; returns CompletedProcess.

  The timeout only catches a hang: the end-to-end searches take 5-10 min on a quiet
  2-core host and ran past 10 min on a loaded one (mostly graph tracing), so the limit
  sits far above any normal run, inside CI's 90-minute budget."""
  full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
  r = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT,
                     capture_output=True, text=True, env=full_env, timeout=timeout)
  r.stderr = without_tf_notices(r.stderr)
  return r


# On CPUs where TensorFlow turns oneDNN on (AVX-512 / AMX hosts), TF 2.21 logs this notice
# through absl before any log level applies (TF_CPP_MIN_LOG_LEVEL=3 does not silence it,
# measured on such a host); elsewhere it never appears. Tests read the binaries' own lines.
TF_NOTICES = ("All log messages before absl::InitializeLog() is called are written to STDERR",
              "oneDNN custom operations are on")


def without_tf_notices(stderr: str) -> str:
  """`stderr` without the lines of TensorFlow's start-up notice that no setting silences."""
  return "".join(l for l in stderr.splitlines(keepends=True)
                 if not any(n in l for n in TF_NOTICES))


# The binary's whole flow (flags, workdir, two replicas, resume, report, conversion, host
# measurement) on the smallest space, `nasbench_macro` at width 0.25: 8 choice blocks of
# 3 ops, so tracing takes a fraction of `proxyless_cifar`'s 21 x 7 (that supernet's own
# steps are tested in test_mixed.py).
SEARCH_ARGS = ["--config=configs/proxyless_cifar10.py:quick", "--config.model.space=nasbench_macro",
               "--config.search.target=3", "--config.data.val_size=32",
               "--config.data.batch_size=8", "--config.search.warmup_steps=4", "--config.log_every=2",
               "--config.checkpoint_every=2", "--config.model.width=0.25"]


@pytest.fixture(scope="session")
def searched(tiny_cifar, tmp_path_factory):
  """A quick ProxylessNAS search on tiny CIFAR-10: 4 warm-up (weight-only) steps under
  MirroredStrategy (two logical CPUs), then a rerun to 6 steps (default strategy) that
  resumes and runs the architecture steps 5 and 6 with eager steps (each process traces
  what it runs, once per replica).

  Returns (workdir, first run, second run, alpha history after the first run, report
  after the first run). Shared by the search tests and the export tests (export from a
  search workdir); under pytest-xdist it runs once for all workers (a file lock in the
  session's shared temp folder), the others wait for it and reuse its results.
  """
  import fcntl
  import json
  import pickle
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    shared = shared.parent  # common to all workers of this session
  workdir = shared / "searched" / "search"
  done = shared / "searched.pickle"
  with open(shared / "searched.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if done.exists():
      return (workdir, *pickle.loads(done.read_bytes()))
    workdir.parent.mkdir(exist_ok=True)
    args = [*SEARCH_ARGS, f"--workdir={workdir}", f"--config.data.dataset=folder:{tiny_cifar}"]
    # The first run on two replicas (MirroredStrategy over two logical CPUs): each replica
    # runs the step with its own copies of the variables (BatchNorm updates included).
    # Traced steps (the configs' default) there; the rerun takes the eager ones (the same
    # supernet either way: test_search_bin.py).
    first = run_bin("tfnas.bin.search", *args, "--config.train.steps=4", "--config.search.measure_host=false",
                    "--config.strategy=mirrored", "--config.logical_cpus=2",
                    "--config.train.supernet_step=traced")
    assert first.returncode == 0, first.stderr[-3000:]
    history = [json.loads(l) for l in open(workdir / "alpha_history.jsonl")]
    report = json.load(open(workdir / "search_report.json"))
    # The rerun on one replica resumes the same checkpoint.
    second = run_bin("tfnas.bin.search", *args, "--config.train.steps=6",
                     "--config.train.supernet_step=eager")
    assert second.returncode == 0, second.stderr[-3000:]
    result = (first, second, history, report)
    done.write_bytes(pickle.dumps(result))
    return (workdir, *result)


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
  """A stand-in `adb` first on PATH (tests/data/fake_adb.py): no phone is attached to CI
  machines. It lists devices PIXEL1 and OTHER and replays a real `benchmark_model`
  output (tests/data/benchmark_model/current.txt: 69.63 ms mean over 50 runs) for every
  model; its log of invocations is `tmp_path`/adb.log. Returns `tmp_path`."""
  bindir = tmp_path / "bin"
  bindir.mkdir()
  adb = bindir / "adb"
  stand_in = os.path.join(ROOT, "tests", "data", "fake_adb.py")
  adb.write_text(f"#!{sys.executable}\n" + open(stand_in).read())
  adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
  monkeypatch.setenv("FAKE_ADB_OUTPUT",
                     os.path.join(ROOT, "tests", "data", "benchmark_model", "current.txt"))
  monkeypatch.setenv("FAKE_ADB_DEVICES", "PIXEL1 OTHER")
  monkeypatch.setenv("FAKE_ADB_BINARY", "/data/local/tmp/benchmark_model")
  return tmp_path
