"""The `nasbench_macro` space is exactly NAS-Bench-Macro's network (params and MACs of all
6,561 entries), its 8-digit codes parse, and the ground-truth oracle ranks archs among
those that meet a constraint."""

import json
import os

import numpy as np
import pytest

from conftest import SHARED_DATA, require

from tfnas.errors import TfnasError
from tfnas.spaces import get_space, parse_arch, total, trainable_params
from tfnas.spaces import groundtruth

NASBENCH = os.path.join(SHARED_DATA, "nasbench", "nas-bench-macro_cifar10.json")


@pytest.fixture(scope="module")
def table():
  return json.load(open(require(NASBENCH)))


@pytest.fixture(scope="module")
def gt():
  return groundtruth.load(get_space("nasbench_macro"), require(NASBENCH))


def test_spec_params_and_macs_equal_the_benchmark_for_all_entries(gt, table):
  assert len(gt.archs) == len(table) == 6561
  codes = [groundtruth.code(a) for a in gt.archs]
  assert set(codes) == set(table)
  params = np.array([table[c]["params"] for c in codes])
  flops = np.array([table[c]["flops"] for c in codes])  # conv + linear multiply-accumulates
  assert np.array_equal(gt.params, params), np.flatnonzero(gt.params != params)[:5]
  assert np.array_equal(gt.macs, flops), np.flatnonzero(gt.macs != flops)[:5]


def test_keras_child_trains_the_benchmarks_parameters():
  from tfnas.models import build_child
  space = get_space("nasbench_macro")
  for code in ("00000000", "22212220", "10201021"):
    arch = parse_arch(space, code)
    model = build_child(space, arch)
    trained = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trained == trainable_params(space, arch)
    assert model.count_params() == total(space, arch).params  # plus BN moving statistics


def test_codes_parse_and_bad_codes_are_clear():
  space = get_space("nasbench_macro")
  arch = parse_arch(space, "22212220")
  assert arch.ops == (2, 2, 2, 1, 2, 2, 2, 0) and arch == parse_arch(space, "best_cifar10")
  assert arch.to_string(space) == "nasbench_macro:" + ",".join(
      ["k5_e6"] * 3 + ["k3_e3"] + ["k5_e6"] * 3 + ["id"])
  assert groundtruth.code(arch) == "22212220"
  with pytest.raises(TfnasError, match="arch code '2221222' has 7 digits; .* expects 8"):
    parse_arch(space, "2221222")
  with pytest.raises(TfnasError, match="b07"):
    parse_arch(space, "22212223")  # op index 3 does not exist


def test_identity_is_a_projection_where_shape_changes():
  space = get_space("nasbench_macro")
  first = space.choice_blocks[0].graph(space.choice_blocks[0].ops[0], "relu")
  assert [l.type for l in first.main] == ["conv", "bn"] and first.main[0].stride == 2
  inner = space.choice_blocks[1].graph(space.choice_blocks[1].ops[0], "relu")
  assert inner.main == () and inner.residual


def test_oracle_accuracy_rank_percentile_and_best(gt, table):
  space = gt.space
  best = parse_arch(space, "22212220")
  assert gt.accuracy_of(best) == pytest.approx(table["22212220"]["mean_acc"])
  assert gt.best()[1] == pytest.approx(93.1266, abs=1e-3)
  assert np.median(gt.accuracy) == pytest.approx(90.99, abs=0.01)
  whole = gt.standing(best)
  assert whole["rank"] == 1 and whole["percentile"] == 100.0 and whole["gap"] == 0.0
  # Under a MACs limit the best arch is another one, and ranks are among feasible archs.
  limit = np.percentile(gt.macs, 25)
  feasible = gt.macs <= limit
  arch, acc = gt.best(feasible)
  assert gt.macs[gt.index(arch)] <= limit and acc == gt.accuracy[feasible].max()
  worst = gt.archs[int(np.flatnonzero(feasible)[np.argmin(gt.accuracy[feasible])])]
  s = gt.standing(worst, feasible)
  assert s["feasible"] and s["rank"] == s["of"] == int(feasible.sum())
  assert s["gap"] == pytest.approx(acc - gt.accuracy[feasible].min())
  assert not gt.standing(best, feasible)["feasible"]
  # A latency model's predictions give masks the same way.
  lat = gt.predict(lambda a: float(sum(a.ops)))
  assert lat.shape == (6561,) and gt.best(lat <= 2)[1] <= gt.best()[1]
  with pytest.raises(TfnasError, match="no architecture of the benchmark meets"):
    gt.best(gt.macs < 0)


def test_spaces_without_ground_truth_are_one_line_errors():
  with pytest.raises(TfnasError, match="space 'proxyless_cifar' has no ground truth"):
    groundtruth.load(get_space("proxyless_cifar"))
  with pytest.raises(TfnasError, match="at its default size"):
    groundtruth.load(get_space("nasbench_macro", width=0.5), NASBENCH)
  with pytest.raises(TfnasError, match="does not exist"):
    groundtruth.load(get_space("nasbench_macro"), "/nonexistent.json")


def test_search_standing_for_reports(gt):
  space = gt.space
  arch = parse_arch(space, "10201021")
  limit = gt.macs[gt.index(arch)]
  got = groundtruth.search_standing(space, arch, lambda a: gt.macs[gt.index(a)] <= limit,
                                    NASBENCH)
  assert got == {**gt.standing(arch, gt.macs <= limit), "benchmark": "nasbench_macro",
                 "metric": gt.benchmark.metric}
  assert got["feasible"] and got["of"] == int((gt.macs <= limit).sum())
  # No benchmark for the space, or not at its size: the report has nothing to add.
  assert groundtruth.search_standing(get_space("proxyless_cifar"), None, bool) is None
  assert groundtruth.search_standing(get_space("nasbench_macro", width=0.5), None, bool) is None
  # A missing file or an empty budget does not fail a finished search; it says why.
  missing = groundtruth.search_standing(space, arch, bool, "/nonexistent.json")
  assert "does not exist" in missing["unavailable"]
  none = groundtruth.search_standing(space, arch, lambda a: False, NASBENCH)
  assert "no architecture of the benchmark meets" in none["unavailable"]


def test_noise_ceiling_and_one_run_oracle_from_the_benchmarks_runs(gt, table):
  from scipy import stats
  assert gt.runs.shape == (6561, 3)
  i = gt.index(parse_arch(gt.space, "11111221"))
  assert list(gt.runs[i]) == pytest.approx(table["11111221"]["test_acc"])
  assert gt.runs.mean(axis=1) == pytest.approx(gt.accuracy, abs=1e-4)
  top = np.argsort(-gt.accuracy)[:200]
  c = gt.noise_ceiling(top)
  runs = np.array([table[groundtruth.code(gt.archs[j])]["test_acc"] for j in top])
  assert c["archs"] == 200 and c["runs"] == 3
  assert c["kendall_tau_run_vs_run"] == pytest.approx(np.mean(
      [stats.kendalltau(runs[:, p], runs[:, q]).statistic for p, q in ((0, 1), (0, 2), (1, 2))]))
  assert c["kendall_tau_run_vs_mean_of_others"] == pytest.approx(
      stats.kendalltau(runs[:, 2], runs[:, :2].mean(1)).statistic / 3 + sum(
          stats.kendalltau(runs[:, k], np.delete(runs, k, 1).mean(1)).statistic / 3
          for k in (0, 1)))
  # Among the 200 best archs, two trainings of the same archs barely agree on the order
  # (measured: tau 0.06); over the whole space they agree well (0.88).
  assert c["kendall_tau_run_vs_run"] < 0.2
  assert gt.noise_ceiling(np.arange(6561))["kendall_tau_run_vs_run"] > 0.8
  feasible = gt.macs <= np.percentile(gt.macs, 50)
  found = gt.one_run_oracle(feasible)
  assert len(found) == 3
  for run, s in enumerate(found):
    assert s["feasible"] and s["gap"] >= 0
    where = np.flatnonzero(feasible)
    assert s["arch"] == groundtruth.code(gt.archs[where[np.argmax(gt.runs[feasible, run])]])
  no_runs = groundtruth.GroundTruth(gt.space, gt.benchmark, gt.archs, gt.accuracy, gt.macs,
                                    gt.params)
  with pytest.raises(TfnasError, match="gives no per-run accuracies"):
    no_runs.noise_ceiling(top)
