"""The search binary end to end on tiny real CIFAR-10 data (ProxylessNAS, two-path)."""

import json
import os

import numpy as np
import pytest

from conftest import run_bin


def test_proxyless_search_end_to_end_and_resume(searched):
  workdir, first, second, history, report = searched
  arch = json.load(open(workdir / "arch.json"))
  assert report["arch"].startswith("nasbench_macro:") and arch["space"] == "nasbench_macro"
  assert report["measured_latency"] is None  # the first run had measure_host off
  assert report["replicas"] == 2
  assert [h["step"] for h in history] == [2, 4]
  assert np.allclose(history[-1]["alpha"][0], 0.0)  # warm-up only: weights, no arch steps
  assert (workdir / "child.weights.h5").exists() and (workdir / "child.tflite").exists()
  report = json.load(open(workdir / "search_report.json"))
  # One schema for both methods (test_spos_bin.py): every cost with its unit.
  assert report["target"] == {"value": 3.0, "unit": "MMACs"}
  assert report["predicted"]["unit"] == "MMACs" and report["predicted"]["value"] > 0
  assert report["cost_model"] == {"spec": "macs", "kind": "macs", "unit": "MMACs",
                                  "derived_entries": {}}
  assert report["expected_latency_final"]["unit"] == "MMACs"
  assert report["argmax_predicted"]["unit"] == "MMACs"
  # The rerun with more steps resumed from the step-4 checkpoint.
  assert "step 6/6" in second.stdout and "step 2/6" not in second.stdout
  history = [json.loads(l) for l in open(workdir / "alpha_history.jsonl")]
  assert [h["step"] for h in history] == [2, 4, 6]
  assert not np.allclose(history[-1]["alpha"][0], 0.0)  # architecture steps 5 and 6 happened
  final = json.load(open(workdir / "search_report.json"))
  assert final["arch"] == arch["canonical"] and final["replicas"] == 1
  # The default derivation lands within 5 % of the target; the argmax one is reported.
  assert final["derive"] == "target" and abs(final["predicted_over_target"] - 1) <= 0.05
  assert final["argmax_over_target"] > 0 and "derive=target: predicted/target=" in second.stdout
  measured = final["measured_latency"]
  assert measured["value"] > 0 and measured["unit"] == "ms"
  # The precision the search is for (config.search.precision, int8 by default): the export's form.
  assert measured["of"] == "child.tflite (int8)" and measured["on"].startswith("host LiteRT")
  from tfnas.export.quantize import inspect
  child = inspect((workdir / "child.tflite").read_bytes())
  assert child["ops"]["QUANTIZE"] == child["ops"]["DEQUANTIZE"] == 1  # int8 inside, float I/O
  assert child["inputs"][0]["dtype"] == "float32"
  assert f"measured_host={measured['value']:.3f} ms" in second.stdout
  assert final["ground_truth"] is None  # width 0.25 is not the benchmark's network
  assert (workdir / "arch.png").stat().st_size > 5000  # the pictures of the search
  assert (workdir / "alpha_history.png").stat().st_size > 5000
  from tfnas.workdir import Workdir  # every file the search left is one Workdir describes
  assert [Workdir(workdir, "search").file(n) for n in os.listdir(workdir)]


def test_search_bad_config(tmp_path):
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.search.arch_mode=three_path")
  assert r.returncode == 2 and "unknown arch_mode 'three_path'" in r.stderr
  assert not (tmp_path / "w").exists()
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.search.derive=best")
  assert r.returncode == 2 and "unknown derive 'best'" in r.stderr.splitlines()[-1]
  assert not (tmp_path / "w").exists()
  # The target is in the cost model's unit (MMACs here): the old name, which said ms
  # whatever the unit, is refused with a pointer to the new one.
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.search.target_ms=3")
  assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
      "error: unknown config field 'target_ms'; it is not a field of the --config file "
      "(Did you mean \"target\" instead of \"target_ms\"?)")
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.target_ms=3")  # flat, as it was
  assert r.returncode == 2 and r.stderr.splitlines()[-1].endswith(
      "did you mean --config.search.target? (it was renamed)")
  assert not (tmp_path / "w").exists()
  for config in ("proxyless_cifar10.py:quick", "spos_cifar10.py:quick"):
    r = run_bin("tfnas.bin.search", f"--config=configs/{config}", f"--workdir={tmp_path / 'w'}",
                "--config.train.supernet_step=graph")
    last = r.stderr.splitlines()[-1]
    assert r.returncode == 2 and "supernet_step 'graph' is not one of eager, traced" in last
    assert not (tmp_path / "w").exists()


def test_search_target_out_of_reach_fails_before_training(tiny_cifar, tmp_path):
  # The quick space (nasbench_macro at width 1.0) predicts 7.71 to 105.7 MMACs: 2 MMACs
  # cannot be met.
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", f"--config.data.dataset=folder:{tiny_cifar}",
              "--config.search.target=2", "--config.data.val_size=32")
  assert r.returncode == 2, r.stderr[-2000:]
  assert r.stderr.splitlines()[-1] == (
      "error: target 2 MMACs is out of reach: the space's architectures predict 7.713 to "
      "105.7 MMACs (derive='target' needs one within 5 %)")
  assert not (tmp_path / "w" / "ckpt").exists()
  # The multiplicative loss (the official code's mul#log) takes log E[lat]: on a space whose
  # cheapest archs predict 1 or less in the model's unit (here 0.39 to 2.96 M params; a
  # host budget of a few ms is the same case) it would turn NaN mid-search.
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", f"--config.data.dataset=folder:{tiny_cifar}",
              "--config.search.latency_model=params", "--config.search.target=2", "--config.search.derive=argmax",
              "--config.search.latency_form=mul", "--config.data.val_size=32")
  assert r.returncode == 2, r.stderr[-2000:]
  assert r.stderr.splitlines()[-1] == (
      "error: latency_form 'mul' needs every architecture's predicted latency above 1 Mparams "
      "(it takes its log): the space's architectures predict 0.3914 to 2.963 Mparams; use "
      "--config.search.latency_form=abs (or add)")
  assert not (tmp_path / "w" / "ckpt").exists()


def test_eager_and_traced_steps_train_the_same_supernet(tiny_cifar, tmp_path):
  """`config.train.supernet_step`: the eager steps and the whole-step graph (the configs'
  default) train the same supernet: one weight-only step, then three weight + two-path
  architecture steps, on the same seed and data, give the same alphas and E[lat] at steps
  2 and 4, the same derived arch, and the same inherited child weights."""
  import keras

  from conftest import ROOT
  from tfnas import configs
  from tfnas.models.child import build_child
  from tfnas.search import proxyless
  from tfnas.spaces import get_space
  path = os.path.join(ROOT, "configs", "proxyless_cifar10.py")
  runs = {}
  for form in ("eager", "traced"):
    c = configs.override(configs.load_file(path, "quick"), {
        "model.space": "nasbench_macro", "model.width": 0.25,
        "data.dataset": f"folder:{tiny_cifar}", "search.target": 3.0, "data.val_size": 32,
        "data.batch_size": 8, "train.steps": 4, "search.warmup_steps": 1, "log_every": 2,
        "checkpoint_every": 4, "search.measure_host": False, "train.supernet_step": form})
    report = proxyless.search(c, str(tmp_path / form))
    rows = [json.loads(l) for l in open(tmp_path / form / "alpha_history.jsonl")]
    runs[form] = (report, rows)
  (eager, eager_rows), (traced, traced_rows) = runs["eager"], runs["traced"]
  assert eager["arch"] == traced["arch"] and [r["step"] for r in eager_rows] == [2, 4]
  for a, b in zip(eager_rows, traced_rows):
    assert not np.allclose(a["alpha"], 0.0)  # architecture steps happened
    np.testing.assert_allclose(a["alpha"], b["alpha"], atol=1e-4)
    assert a["expected_latency"] == pytest.approx(b["expected_latency"], rel=1e-5)
  space = get_space("nasbench_macro", width=0.25)
  children = []
  for form in ("eager", "traced"):
    child = build_child(space, eager["arch"])
    child.load_weights(str(tmp_path / form / "child.weights.h5"))
    children.append(child)
  for a, b in zip(*(c.weights for c in children)):
    np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                               rtol=1e-4, atol=1e-5, err_msg=a.path)


def _free_ports(n):
  import socket
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _workers(args, n=2):
  """`start(i)`: `python -m tfnas.bin.search args` as worker i of n on 127.0.0.1 (its own
  TF_CONFIG, as on a cluster); `wait(proc)`: (exit code, stdout, stderr)."""
  import subprocess
  import sys

  from conftest import ROOT, without_tf_notices
  hosts = [f"127.0.0.1:{p}" for p in _free_ports(n)]

  def start(i):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                    "task": {"type": "worker", "index": i}})}
    return subprocess.Popen([sys.executable, "-m", "tfnas.bin.search", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

  def wait(proc, timeout=900):  # a hang's guard only: far above a normal run
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, without_tf_notices(err)
  return start, wait


def test_multi_worker_search_resumes_after_a_worker_is_killed(tiny_cifar, tmp_path):
  """Issue 20, item 1: the search runner under MultiWorkerMirroredStrategy, two worker
  processes on 127.0.0.1. Worker 1 is killed (-9) after the chief's step-4 checkpoint:
  the chief stops with one line saying how to resume; both started again resume from the
  chief's last checkpoint (no step run twice in the alpha history) and finish in
  lockstep: the chief's workdir holds the run, worker 1's scratch copy its own (nothing
  measured on the host)."""
  import signal
  import time

  from conftest import SEARCH_ARGS
  workdir = tmp_path / "mw"
  start, wait = _workers([
      *SEARCH_ARGS, f"--workdir={workdir}", f"--config.data.dataset=folder:{tiny_cifar}",
      "--config.strategy=multi_worker", "--config.train.supernet_step=eager",
      "--config.train.steps=24", "--config.checkpoint_every=4", "--config.log_every=1",
      "--config.search.measure_host=false"])
  workers = [start(0), start(1)]
  deadline = time.time() + 900
  while not (workdir / "ckpt" / "ckpt-4.index").exists():
    assert time.time() < deadline and workers[0].poll() is None, wait(workers[0], 60)
    time.sleep(0.5)
  workers[1].send_signal(signal.SIGKILL)
  wait(workers[1])
  code, out, err = wait(workers[0])
  assert code == 2, (out[-2000:], err[-3000:])
  last = err.splitlines()[-1]
  assert last.startswith("error: a worker of the cluster stopped or cannot be reached"), last
  assert "start every worker again with the same command" in last
  assert not (workdir / "search_report.json").exists()

  workers = [start(0), start(1)]
  (code0, out0, err0), (code1, out1, err1) = wait(workers[0]), wait(workers[1])
  assert code0 == 0 and code1 == 0, (err0[-3000:], err1[-3000:])
  steps = [int(l.split()[2].split("/")[0]) for l in out0.splitlines()
           if l.startswith("[supernet] step ")]
  assert steps[0] > 4 and steps[-1] == 24, steps  # resumed, not restarted
  report = json.load(open(workdir / "search_report.json"))
  assert report["replicas"] == 2 and report["arch"].startswith("nasbench_macro:")
  rows = [json.loads(l)["step"] for l in open(workdir / "alpha_history.jsonl")]
  assert rows == sorted(set(rows)) and rows[-1] == 24
  assert "worker 1: done; the search's files are in the chief's workdir" in out1
  scratch = json.load(open(workdir / "worker1" / "search_report.json"))
  assert scratch["worker"] == 1 and "worker" not in report
  assert scratch["arch"] == report["arch"] and scratch["measured_latency"] is None


def test_multi_worker_spos_searches_in_lockstep(tiny_cifar, tmp_path):
  """SPOS under MultiWorkerMirroredStrategy: its cross-replica BatchNorm statistics are
  all-reduced in training, recalibration and evaluation, so both workers run the whole
  search (supernet, evolution, random search, the child) and find the same archs."""
  from test_spos_bin import SPOS_ARGS
  workdir = tmp_path / "spos"
  start, wait = _workers([
      *SPOS_ARGS, f"--workdir={workdir}", f"--config.data.dataset=folder:{tiny_cifar}",
      "--config.model.space=nasbench_macro", "--config.search.searches=macs_m<=3",
      "--config.search.precision=float32", "--config.strategy=multi_worker",
      "--config.search.generations=1"])
  workers = [start(0), start(1)]
  (code0, out0, err0), (code1, out1, err1) = wait(workers[0]), wait(workers[1])
  assert code0 == 0 and code1 == 0, (err0[-3000:], err1[-3000:])
  chief = json.load(open(workdir / "search_report.json"))
  scratch = json.load(open(workdir / "worker1" / "search_report.json"))
  assert chief["replicas"] == 2 and scratch["worker"] == 1
  assert [s["best"]["arch"] for s in chief["searches"]] == \
      [s["best"]["arch"] for s in scratch["searches"]]
  assert chief["measured_latency"] is not None and scratch["measured_latency"] is None


def test_multi_worker_needs_a_valid_tf_config(tmp_path):
  from tfnas.errors import TfnasError
  from tfnas.runtime import check_tf_config
  good = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
          "task": {"type": "worker", "index": 1}}
  assert check_tf_config(json.dumps(good)) == good
  for bad, pattern in (
      (None, "needs the TF_CONFIG environment variable"),
      ("{", "is not a cluster description"),
      ('{"cluster": {}}', "is not a cluster description"),
      (json.dumps({**good, "task": {"type": "worker", "index": 2}}), "index in \\[0, 2\\)"),
      (json.dumps({**good, "task": {"type": "ps", "index": 0}}), "must be a worker"),
      (json.dumps({**good, "cluster": {"worker": []}}), "must list host:port")):
    with pytest.raises(TfnasError, match=pattern):
      check_tf_config(bad)
  # The binary: one line, nothing written (the workdir check and cost model come first).
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.strategy=multi_worker",
              env={"TF_CONFIG": ""})
  assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith(
      "error: --config.strategy=multi_worker needs the TF_CONFIG environment variable")
  assert not (tmp_path / "w").exists()
