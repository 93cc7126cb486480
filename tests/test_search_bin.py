"""The search binary end to end on tiny real CIFAR-10 data (ProxylessNAS, two-path)."""

import json

import numpy as np

from conftest import run_bin


def test_proxyless_search_end_to_end_and_resume(searched):
  workdir, first, second, history, report = searched
  arch = json.load(open(workdir / "arch.json"))
  assert report["arch"].startswith("proxyless_cifar:") and arch["space"] == "proxyless_cifar"
  assert "measured_ms" not in report  # the first run had measure_host off
  assert report["replicas"] == 2
  assert [h["step"] for h in history] == [2, 4]
  assert np.allclose(history[-1]["alpha"][0], 0.0)  # warm-up only: weights, no arch steps
  assert (workdir / "child.weights.h5").exists() and (workdir / "child.tflite").exists()
  report = json.load(open(workdir / "search_report.json"))
  for key in ("target_ms", "predicted_ms", "measured_ms"):
    assert key in report
  assert report["measured_ms"] > 0 and report["latency_model_kind"] == "macs"
  # The rerun with more steps resumed from the step-4 checkpoint.
  assert "step 6/6" in second.stdout and "step 2/6" not in second.stdout
  history = [json.loads(l) for l in open(workdir / "alpha_history.jsonl")]
  assert [h["step"] for h in history] == [2, 4, 6]
  assert not np.allclose(history[-1]["alpha"][0], 0.0)  # architecture steps 5 and 6 happened
  final = json.load(open(workdir / "search_report.json"))
  assert final["arch"] == arch["canonical"] and final["replicas"] == 1


def test_search_bad_config(tmp_path):
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.arch_mode=three_path")
  assert r.returncode == 2 and "unknown arch_mode 'three_path'" in r.stderr
  assert not (tmp_path / "w").exists()
