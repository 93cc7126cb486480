#!/usr/bin/env bash
# One command: set up; measure this CPU's per-op latency table for NAS-Bench-Macro's
# space; run a quick ProxylessNAS search on CIFAR-10 (../shared/data, or
# DATASET=folder:<your tree or .tar.gz>) for a latency budget in ms on this CPU
# (BUDGET_MS, default: the space's median); retrain the searched child briefly; export
# it to an int8 .tflite verified in LiteRT; print the report with the benchmark's
# verdict on the searched arch (its trained accuracy and rank among the archs that meet
# the same budget). Rerunning resumes each finished or interrupted step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATASET=${DATASET:-folder:../shared/data/cifar10-jpg.tar.gz}
WORKDIR=${WORKDIR:-runs/quickstart}
SPACE=nasbench_macro
LUT="$WORKDIR/lut-int8/latency_model.json"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
# 1. This CPU's latency table: each distinct op of the space converted to an int8
#    .tflite (the precision step 5 ships) and timed in LiteRT (1 thread, XNNPACK); about a
#    minute, measured once per workdir.
if [ ! -f "$LUT" ]; then
  .venv/bin/python -m tfnas.bin.latency_fit --measure_lut --space=$SPACE --precision=int8 \
      --out="$WORKDIR/lut-int8"
fi
# 2. The budget: what the space's 6,561 archs are predicted to take on this CPU.
.venv/bin/python -m tfnas.bin.spaces $SPACE --latency_model="$LUT" --json \
    > "$WORKDIR/budgets.json"
BUDGET_MS=${BUDGET_MS:-$(.venv/bin/python -c 'import json, sys
print(round(json.load(open(sys.argv[1]))["metrics"]["latency_ms"]["p50"], 3))' \
    "$WORKDIR/budgets.json")}
.venv/bin/python - "$WORKDIR/budgets.json" "$BUDGET_MS" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]["latency_ms"]
print(f"predicted latency of {json.load(open(sys.argv[1]))['archs']} archs on this CPU: "
      f"{m['min']:.2f} to {m['max']:.2f} ms (median {m['p50']:.2f}); budget {sys.argv[2]} ms",
      flush=True)
PY
# 3. Search (configs/proxyless_cifar10.py:quick), 4. retrain, 5. export int8.
.venv/bin/python -m tfnas.bin.search --config=configs/proxyless_cifar10.py:quick \
    --workdir="$WORKDIR/search" --config.data.dataset="$DATASET" \
    --config.search.latency_model="$LUT" --config.search.target="$BUDGET_MS"
.venv/bin/python -m tfnas.bin.train --config=configs/train_cifar10.py:quick \
    --workdir="$WORKDIR/retrain" --config.data.dataset="$DATASET" --config.model.space=$SPACE \
    --config.model.arch="$WORKDIR/search/arch.json" --config.model.width=1.0 --config.verbose=0
.venv/bin/python -m tfnas.bin.export --workdir="$WORKDIR/retrain" --precision=int8 \
    --latency_model="$LUT"
.venv/bin/python - "$WORKDIR" <<'PY'
import json, os, sys
w = sys.argv[1]
r = os.path.join(w, "retrain")
s = json.load(open(os.path.join(w, "search", "search_report.json")))
e = json.load(open(os.path.join(r, "export", "export_report.json")))["exports"]["int8"]
print(f"searched arch:      {s['arch']}")
t, p, m = s["target"], s["predicted"], s["measured_latency"]
print(f"latency budget:     {t['value']:.3f} {t['unit']} on this CPU; searched arch "
      f"predicted {p['value']:.3f} {p['unit']} ({s['predicted_over_target']:.2f}x; the argmax "
      f"arch {s['argmax_over_target']:.2f}x), measured {m['value']:.3f} {m['unit']} "
      f"({m['of']})")
g = s.get("ground_truth")
if g and "unavailable" not in g:
  print(f"ground truth:       NAS-Bench-Macro trained it to {g['accuracy']:.2f} % (CIFAR-10, "
        f"50 epochs): rank {g['rank']} of the {g['of']} archs within the budget (as accurate "
        f"as {g['percentile']:.0f} % of them or more); the best of them, {g['best_arch']}, "
        f"{g['best_accuracy']:.2f} % (gap {g['gap']:.2f} pt)")
elif g:
  print(f"ground truth:       not checked ({g['unavailable']})")
print(f"int8 .tflite:       {os.path.join(r, e['tflite'])} ({e['size_bytes']} bytes, "
      f"{e['delegate_partitions']} XNNPACK partition(s))")
print(f"test accuracy:      {e['tflite_test_accuracy']:.4f} in LiteRT, "
      f"{e['keras_test_accuracy']:.4f} float Keras ({e['test_examples']} images; "
      "3 epochs of retraining, not the benchmark's 50)")
print(f"host latency:       {e['latency_ms_measured']:.3f} ms measured (int8 file), "
      f"{e['latency_ms_predicted']:.3f} ms predicted by this CPU's int8 table")
print(f"for the app:        {os.path.join(r, e['sidecar'])}")
PY
