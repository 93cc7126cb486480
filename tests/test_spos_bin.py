"""The SPOS search binary end to end on real CIFAR-10 images (two replicas, resume, bad
input).

The end-to-end run is on `nasbench_macro` at the benchmark's own size (width 1.0): 8 choice
blocks of 3 ops, so tracing takes a fraction of the 20-block channel-search `spos_cifar`
(15 min of CI for this one test), and the report's ground-truth block is exercised for
real. Channel search itself (sliced weights, recalibration, gradients, inherited child) is
tested in test_spos.py on `spos_cifar` (its op and width genes in the sampling tests).

A module of its own so that, with `--dist loadscope`, it runs on one worker while the
rest of the SPOS tests run on another."""

import json
import os

import numpy as np
import pytest
from conftest import run_bin

from tfnas.spaces import groundtruth
from tfnas.spaces.arch import parse_arch
from tfnas.spaces.registry import get_space


SPOS_ARGS = ["--config=configs/spos_cifar10.py:quick", "--config.data.train_limit=64",
             "--config.train.supernet_step=eager",  # the traced step: test_spos.py
             "--config.data.val_size=32", "--config.data.batch_size=8", "--config.data.eval_batch_size=8",
             "--config.train.steps=4", "--config.log_every=2", "--config.checkpoint_every=2",
             "--config.model.width=0.25", "--config.search.population=4", "--config.search.generations=2",
             "--config.search.top_k=2", "--config.search.crossovers=1", "--config.search.mutations=1",
             "--config.data.calib_images=16", "--config.search.val_images=16",
             "--config.search.searches=macs_m<=9;macs_m<=10.5"]
# float32: the proxyless end-to-end test covers the default int8 child.tflite.
E2E_ARGS = [*SPOS_ARGS, "--config.model.space=nasbench_macro", "--config.model.width=1.0",
            "--config.search.searches=macs_m<=45;macs_m<=55", "--config.search.precision=float32"]


def test_search_binary_spos_end_to_end_and_resume(tiny_cifar, tmp_path):
  workdir = tmp_path / "spos"
  args = [*E2E_ARGS, f"--workdir={workdir}", f"--config.data.dataset=folder:{tiny_cifar}"]
  # Trained on two replicas (MirroredStrategy over two logical CPUs): each updates its own
  # copy of the BN statistics inside switch_case.
  r = run_bin("tfnas.bin.search", *args, "--config.strategy=mirrored", "--config.logical_cpus=2")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "search macs_m<=45: best" in r.stdout and "random search, same" in r.stdout
  report = json.load(open(workdir / "search_report.json"))
  assert report["method"] == "spos" and report["space"] == "nasbench_macro"
  assert report["supernet"]["resumed_at"] == 0
  # The schema both methods share (tfnas.search.finish; test_search_bin.py): the first
  # search's limit is the target, in the cost model's unit, and the measured latency is
  # the real child file's.
  assert report["target"] == {"value": 45.0, "unit": "MMACs"}
  assert report["predicted"]["unit"] == "MMACs" and report["predicted"]["value"] <= 45
  assert report["cost_model"]["unit"] == "MMACs" and report["constraints"] == ["macs_m<=45"]
  measured = report["measured_latency"]
  assert measured["value"] > 0 and measured["unit"] == "ms"
  assert measured["of"] == "child.tflite (float32)"
  assert report["ground_truth"] == report["searches"][0]["ground_truth"]
  assert [s["constraints"] for s in report["searches"]] == [["macs_m<=45"], ["macs_m<=55"]]
  gt = groundtruth.load(get_space("nasbench_macro"))
  for s, limit in zip(report["searches"], (45, 55)):
    assert s["top"] and all(c["macs_m"] <= limit for c in s["top"])
    assert {"accuracy", "latency_MMACs", "macs_m", "params_m", "arch"} <= set(s["best"])
    assert s["random"]["evaluations"] == s["evolution"]["evaluations"]
    # The benchmark's verdict on the found arch, among the archs under the same limit.
    g, best = s["ground_truth"], parse_arch(get_space("nasbench_macro"), s["best"]["arch"])
    assert g["benchmark"] == "nasbench_macro" and g["feasible"] is True
    assert g["arch"] == groundtruth.code(best) and g["accuracy"] == gt.accuracy_of(best)
    assert g["of"] == int(np.sum(gt.macs / 1e6 <= limit)) and 1 <= g["rank"] <= g["of"]
    assert g["gap"] == pytest.approx(g["best_accuracy"] - g["accuracy"]) and g["gap"] >= 0
  assert "ground truth (nasbench_macro)" in r.stdout
  assert (workdir / "arch.png").stat().st_size > 5000  # the found arch's picture
  from tfnas.workdir import Workdir  # every file the search left is one Workdir describes
  assert [Workdir(workdir, "search").file(n) for n in os.listdir(workdir)]
  results = json.load(open(workdir / "search_results.json"))
  for s, limit in zip(results, (45, 55)):  # every evaluated candidate met its limit
    assert all(c["macs_m"] <= limit for c in s["all"] + s["all_random"])
  arch = json.load(open(workdir / "arch.json"))
  assert arch["canonical"] == report["arch"] and "channels" not in arch
  assert os.path.getsize(workdir / "search_progress.png") > 10000
  assert (workdir / "child.tflite").exists() and (workdir / "child.weights.h5").exists()
  # Four training steps cannot teach it anything: the report and the log say so.
  check = report["supernet_check"]
  assert check["candidates"] >= 4 and check["chance"] == 0.1
  assert check["learned"] is False and "warning: the supernet scores candidates at chance" \
      in r.stdout
  rows = [json.loads(l) for l in open(workdir / "candidates.jsonl")]
  assert {r["supernet_step"] for r in rows} == {4}
  # Rerun on one replica with one more generation: the step-4 checkpoint is restored (no
  # training step), each evolution resumes from its saved population, every candidate
  # already scored comes from candidates.jsonl, and the random baseline grows to the new
  # evaluation count.
  again = run_bin("tfnas.bin.search", *args, "--config.search.generations=3",
                  "--config.search.measure_host=false")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "[supernet] step" not in again.stdout
  assert "generation 3/3" in again.stdout and "generation 1/3" not in again.stdout
  report2 = json.load(open(workdir / "search_report.json"))
  assert report2["supernet"]["resumed_at"] == 4
  for s1, s2 in zip(report["searches"], report2["searches"]):
    assert s2["evolution"]["best_per_generation"][:2] == s1["evolution"]["best_per_generation"]
    assert len(s2["evolution"]["best_per_generation"]) == 3
    assert s2["evolution"]["new_evaluations_this_run"] < s2["evolution"]["evaluations"]
    assert s2["random"]["evaluations"] == s2["evolution"]["evaluations"]
  assert report2["searches"][0]["evolution"]["new_evaluations_this_run"] > 0
  rows2 = [json.loads(l) for l in open(workdir / "candidates.jsonl")]
  assert rows2[:len(rows)] == rows and len(rows2) > len(rows)
  assert {r["supernet_step"] for r in rows2} == {4}


def test_search_binary_spos_bad_input(tiny_cifar, tmp_path):
  r = run_bin("tfnas.bin.search", *SPOS_ARGS, f"--workdir={tmp_path / 'w'}",
              "--config.data.dataset=folder:/nonexistent", "--config.search.searches=flops<=3")
  last = r.stderr.strip().splitlines()[-1]
  assert r.returncode == 2 and last.startswith("error: ") and "unknown metric 'flops'" in last
  assert "Traceback" not in r.stderr
  r = run_bin("tfnas.bin.search", *SPOS_ARGS, f"--workdir={tmp_path / 'w'}",
              "--config.data.dataset=folder:/nonexistent", "--config.search.searches=latency_ms<=3")
  assert r.returncode == 2 and "needs a latency model in ms" in r.stderr, r.stderr
  r = run_bin("tfnas.bin.search", *SPOS_ARGS, f"--workdir={tmp_path / 'w'}",
              "--config.data.dataset=folder:/nonexistent")
  assert r.returncode == 2 and "/nonexistent" in r.stderr, r.stderr
  # A limit no architecture meets is refused before the supernet trains (from the exact
  # minimum of the additive costs), not after 40,000 steps; nothing is written.
  r = run_bin("tfnas.bin.search", *SPOS_ARGS, f"--workdir={tmp_path / 'w'}",
              f"--config.data.dataset=folder:{tiny_cifar}", "--config.search.searches=macs_m<=12;macs_m<=1")
  last = r.stderr.strip().splitlines()[-1]
  assert r.returncode == 2 and "constraint macs_m<=1: no architecture of spos_cifar" in last, \
      r.stderr[-2000:]
  assert "Traceback" not in r.stderr and "step 2/4" not in r.stdout
  assert not (tmp_path / "w").exists()
