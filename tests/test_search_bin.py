"""The search binary end to end on tiny real CIFAR-10 data (ProxylessNAS, two-path)."""

import json

import numpy as np

from conftest import run_bin


def test_proxyless_search_end_to_end_and_resume(tiny_cifar, tmp_path):
  workdir = tmp_path / "search"
  args = ["--config=configs/proxyless_cifar10.py:quick", f"--workdir={workdir}",
          f"--config.dataset=folder:{tiny_cifar}", "--config.val_size=32",
          "--config.batch_size=8", "--config.steps=4", "--config.warmup_steps=1",
          "--config.log_every=2", "--config.checkpoint_every=2", "--config.width=0.25"]
  r = run_bin("tfnas.bin.search", *args)
  assert r.returncode == 0, r.stderr[-3000:]
  report = json.load(open(workdir / "search_report.json"))
  arch = json.load(open(workdir / "arch.json"))
  assert report["arch"] == arch["canonical"] and arch["space"] == "proxyless_cifar"
  for key in ("target_ms", "predicted_ms", "measured_ms"):
    assert key in report
  assert report["measured_ms"] > 0 and report["latency_model_kind"] == "macs"
  history = [json.loads(l) for l in open(workdir / "alpha_history.jsonl")]
  assert [h["step"] for h in history] == [2, 4]
  assert not np.allclose(history[-1]["alpha"][0], 0.0)  # architecture steps happened
  assert (workdir / "child.weights.h5").exists() and (workdir / "child.tflite").exists()
  # Rerun with more steps: it resumes from the step-4 checkpoint.
  r = run_bin("tfnas.bin.search", *args[:-5], "--config.steps=6", "--config.warmup_steps=1",
              "--config.log_every=2", "--config.checkpoint_every=2", "--config.width=0.25")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "step 6/6" in r.stdout and "step 2/6" not in r.stdout
  history = [json.loads(l) for l in open(workdir / "alpha_history.jsonl")]
  assert [h["step"] for h in history] == [2, 4, 6]


def test_search_bad_config(tmp_path):
  r = run_bin("tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
              f"--workdir={tmp_path / 'w'}", "--config.arch_mode=three_path")
  assert r.returncode == 2 and "unknown arch_mode 'three_path'" in r.stderr
  assert not (tmp_path / "w").exists()
