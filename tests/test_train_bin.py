"""The training binary end to end on tiny real CIFAR-10 data: outputs, resume,
kill -9, two-replica MirroredStrategy, and one-line errors for bad input."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_bin, without_tf_notices

from tfnas.spaces import get_space, groundtruth

CONFIG = "configs/train_cifar10.py:quick"


def tiny_args(tiny_cifar, workdir, *extra):
  # nasbench_macro (8 choice blocks): the binary's whole flow at a fraction of the 21-block
  # proxyless_cifar's tracing and conversion time; every space's child trains (eager,
  # traced, fit) in test_child.py.
  return ["--config=" + CONFIG, f"--workdir={workdir}", f"--config.data.dataset=folder:{tiny_cifar}",
          "--config.model.space=nasbench_macro", "--config.data.val_size=16", "--config.data.batch_size=8",
          "--config.train.epochs=1", "--config.model.width=0.25", "--config.verbose=0", *extra]


def test_train_writes_outputs_and_tflite_matches_keras(tiny_cifar, tmp_path):
  workdir = tmp_path / "run"
  r = run_bin("tfnas.bin.train", *tiny_args(tiny_cifar, workdir))
  assert r.returncode == 0, r.stderr[-3000:]
  assert "test_accuracy=" in r.stdout
  metrics = json.load(open(workdir / "metrics.json"))
  assert 0 <= metrics["test_accuracy"] <= 1 and metrics["sizes"]["train"] == 144
  arch = json.load(open(workdir / "arch.json"))
  assert arch["space"] == "nasbench_macro"
  assert arch["canonical"].startswith("nasbench_macro:k3_e3")
  assert json.load(open(workdir / "data.json"))["preprocess"]["image_size"] == 32
  assert os.listdir(workdir / "tb")
  # The .tflite is the trained model: same logits as Keras with the saved weights.
  from tfnas.export.tflite import run_tflite
  from tfnas.models import build_child
  model = build_child("nasbench_macro", arch["canonical"], width=0.25)
  model.load_weights(workdir / "model.weights.h5")
  x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
  np.testing.assert_allclose(run_tflite(str(workdir / "model.tflite"), x),
                             model(x, training=False).numpy(), atol=1e-4)
  assert stat.S_IMODE(os.stat(workdir / "model.tflite").st_mode) == 0o644  # umask 022, not 0600
  first_loss = metrics["history"]["loss"]
  # Rerunning with more epochs resumes from the backup instead of starting over, and the
  # history keeps the epoch trained before.
  r = run_bin("tfnas.bin.train", *tiny_args(tiny_cifar, workdir, "--config.train.epochs=2"))
  assert r.returncode == 0, r.stderr[-3000:]
  metrics = json.load(open(workdir / "metrics.json"))
  assert metrics["epochs"] == 2 and metrics["steps"] == 2 * metrics["steps_per_epoch"]
  assert len(metrics["history"]["loss"]) == 2 and metrics["history"]["loss"][0] == first_loss[0]
  # Rerunning the finished command trains nothing and keeps the history.
  r = run_bin("tfnas.bin.train", *tiny_args(tiny_cifar, workdir, "--config.train.epochs=2"))
  assert r.returncode == 0, r.stderr[-3000:]
  again = json.load(open(workdir / "metrics.json"))
  assert again["history"] == metrics["history"] and again["steps"] == metrics["steps"]
  from tfnas.workdir import Workdir  # every file the training left is one Workdir describes
  assert [Workdir(workdir, "train").file(n) for n in os.listdir(workdir)]


def test_kill_9_mid_epoch_then_rerun_resumes_at_the_step(tiny_cifar, tmp_path):
  # 18 steps per epoch, a backup every 4 steps: killed mid-epoch, the rerun runs exactly
  # the steps left (Keras's BackupAndRestore restarted the epoch: 103 steps for 60).
  workdir = tmp_path / "run"
  args = tiny_args(tiny_cifar, workdir, "--config.train.epochs=4", "--config.train.backup_steps=4")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
  proc = subprocess.Popen([sys.executable, "-m", "tfnas.bin.train", *args], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  state = workdir / "backup" / "state.json"
  deadline = time.time() + 1200  # far above a quiet run: waits only, never the verdict
  step = 0
  while time.time() < deadline and proc.poll() is None:
    try:
      step = json.loads(state.read_text())["step"]
    except (OSError, ValueError, KeyError):
      pass
    if step > 18 and step % 18:  # backed up in the middle of the second epoch
      break
    time.sleep(0.02)
  assert proc.poll() is None, "training finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (workdir / "metrics.json").exists()
  r = run_bin("tfnas.bin.train", *args)
  assert r.returncode == 0, r.stderr[-3000:]
  metrics = json.load(open(workdir / "metrics.json"))
  assert metrics["steps_per_epoch"] == 18 and metrics["steps"] == 4 * 18
  assert len(metrics["history"]["loss"]) == 4  # the epochs before the kill are kept


def test_two_replica_mirrored_strategy(tiny_cifar, tmp_path):
  r = run_bin("tfnas.bin.train", *tiny_args(
      tiny_cifar, tmp_path / "run", "--config.strategy=mirrored", "--config.logical_cpus=2"))
  assert r.returncode == 0, r.stderr[-3000:]
  metrics = json.load(open(tmp_path / "run" / "metrics.json"))
  assert metrics["replicas"] == 2 and np.isfinite(metrics["test_loss"])


@pytest.mark.parametrize("extra, pattern", [
    (["--config.model.space=nope"], "unknown search space 'nope'"),
    (["--config.nope=1"], "unknown config field 'nope'"),
    # A field given flat, as before the config's sections: pointed to its section.
    (["--config.epochs=3"], "'epochs'; it is not a field of the --config file; did you mean "
     "--config.train.epochs?"),
    (["--config.model.arch=k3_e3,id"], "has 2 choices; expected 8"),
    (["--config.data.dataset=folder:/does/not/exist"], "dataset path '/does/not/exist' does not exist"),
    (["--config.data.dataset=imagenet"], "unknown dataset 'imagenet'"),
    (["--config.train.epochs=abc"], "--config.train.epochs=abc"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_cifar, tmp_path, extra, pattern):
  workdir = tmp_path / "run"
  r = run_bin("tfnas.bin.train", *tiny_args(tiny_cifar, workdir, *extra))
  assert r.returncode == 2
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and pattern in last, r.stderr[-2000:]
  assert "Traceback" not in r.stderr
  assert not workdir.exists()


def test_workdir_of_another_space_is_refused(tiny_cifar, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "arch.json").write_text(json.dumps(
      {"space": "fbnet_cifar", "canonical": "fbnet_cifar:" + ",".join(["skip"] * 22)}))
  r = run_bin("tfnas.bin.train", *tiny_args(tiny_cifar, workdir))
  assert r.returncode == 2
  assert "holds a run of 'fbnet_cifar:skip" in r.stderr and "Traceback" not in r.stderr
  assert sorted(os.listdir(workdir)) == ["arch.json"]


def test_spaces_binary_lists_and_describes():
  r = run_bin("tfnas.bin.spaces")
  assert r.returncode == 0 and "proxyless_mobile:" in r.stdout and "spos_shufflenet" in r.stdout
  r = run_bin("tfnas.bin.spaces", "proxyless_mobile", "all_k3_e6", "--json")
  out = json.loads(r.stdout)
  assert out["params"] == 4733448 and out["macs"] == 472620800
  # Budgets: over every arch of nasbench_macro, the benchmark's own MACs distribution.
  r = run_bin("tfnas.bin.spaces", "nasbench_macro", "--json")
  assert r.returncode == 0, r.stderr[-2000:]
  out = json.loads(r.stdout)
  macs = groundtruth.load(get_space("nasbench_macro")).macs / 1e6
  assert out["percentiles_over"] == "all" and set(out["metrics"]) == {"macs_m", "params_m"}
  m = out["metrics"]["macs_m"]
  assert m["min"] == pytest.approx(macs.min()) and m["max"] == pytest.approx(macs.max())
  assert m["p50"] == pytest.approx(np.percentile(macs, 50))
  r = run_bin("tfnas.bin.spaces", "proxyless_mobile", "--samples=0")
  assert r.returncode == 2 and "samples 0 must be an integer >= 1" in r.stderr
  r = run_bin("tfnas.bin.spaces", "proxyless_mobile", "zero" + ",k3_e3" * 20)
  assert r.returncode == 2 and "block b00: op 'zero' is not allowed" in r.stderr


def test_binaries_quiet_tensorflow_unless_verbosity_and_imports_change_nothing(monkeypatch,
                                                                               tmp_path):
  from tflite_bench.cli import quiet_tensorflow
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  # Importing tfnas and binary modules, as a notebook would, changes no variable (two whose
  # absl flags do not clash in one process; every binary starts the same way). TensorFlow
  # sets variables of its own at import (TF2_BEHAVIOR, ...): it is imported first.
  code = ("import os, tensorflow; before = dict(os.environ); import tfnas, tfnas.bin.common, "
          "tfnas.bin.export, tflite_bench.bin.benchmark; print(dict(os.environ) == before)")
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                     env=env)
  assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]
  # A binary silences TensorFlow's C++ log lines unless --verbosity=1 (absl's flag) is given.
  monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
  quiet_tensorflow(["x", "--verbosity=1"])
  quiet_tensorflow(["x", "-v", "2"])
  assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
  quiet_tensorflow(["x", "--verbosity=0"])
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
  # The search binary loads TensorFlow before it checks the config (tfnas.bin.spaces no
  # longer loads it at all for an arch's params and MACs); a bad value ends both runs.
  runs = {v: subprocess.run([sys.executable, "-m", "tfnas.bin.search",
                             "--config=configs/spos_cifar10.py:quick",
                             f"--workdir={tmp_path / 'w'}", "--config.search.score=top1", *v],
                            cwd=ROOT, capture_output=True, text=True, env=env)
          for v in ((), ("--verbosity=1",))}
  quiet, loud = runs[()], runs[("--verbosity=1",)]
  assert quiet.returncode == loud.returncode == 2, (quiet.stderr[-2000:], loud.stderr[-2000:])
  assert quiet.stderr.splitlines()[-1] == loud.stderr.splitlines()[-1] == (
      "error: score 'top1' is not one of accuracy, loss (what evolution maximizes: minus the "
      "validation loss, or top-1)")
  # But for TensorFlow's oneDNN notice on AVX-512 / AMX hosts, which no setting silences
  # (conftest.TF_NOTICES), the quiet run prints only its error.
  assert without_tf_notices(quiet.stderr).splitlines() == quiet.stderr.splitlines()[-1:]
  assert "cpu_feature_guard" in loud.stderr or "absl::InitializeLog" in loud.stderr
  assert not (tmp_path / "w").exists()
  # Params and MACs of an arch come from the spec alone: no TensorFlow, no log lines.
  spaces = subprocess.run([sys.executable, "-m", "tfnas.bin.spaces", "nasbench_macro",
                           "12012012", "--verbosity=1"], cwd=ROOT, capture_output=True,
                          text=True, env=env)
  assert spaces.returncode == 0 and "macs=67092992" in spaces.stdout, spaces.stderr[-2000:]
  assert "cpu_feature_guard" not in spaces.stderr
