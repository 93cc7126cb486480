#!/usr/bin/env bash
# One command: set up, run a quick ProxylessNAS search on CIFAR-10 from
# ../shared/data (or DATASET=folder:<your tree or .tar.gz>), retrain the searched
# child briefly, export it to an int8 .tflite verified in LiteRT, and print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATASET=${DATASET:-folder:../shared/data/cifar10-jpg.tar.gz}
WORKDIR=${WORKDIR:-runs/quickstart_search}
.venv/bin/python -m tfnas.bin.search --config=configs/proxyless_cifar10.py:quick \
    --workdir="$WORKDIR" --config.dataset="$DATASET"
.venv/bin/python -m tfnas.bin.train --config=configs/train_cifar10.py:quick \
    --workdir="$WORKDIR/retrain" --config.dataset="$DATASET" \
    --config.arch="$WORKDIR/arch.json" --config.width=0.35 --config.verbose=0
.venv/bin/python -m tfnas.bin.export --workdir="$WORKDIR/retrain" --precision=int8
.venv/bin/python - "$WORKDIR" <<'PY'
import json, os, sys
w = sys.argv[1]
r = os.path.join(w, "retrain")
s = json.load(open(os.path.join(w, "search_report.json")))
e = json.load(open(os.path.join(r, "export", "export_report.json")))["exports"]["int8"]
print(f"searched arch:      {s['arch']}")
print(f"latency target:     {s['target_ms']} {s['latency_unit']} ({s['latency_model']}); "
      f"derived arch predicted {s['predicted_ms']:.1f} ({s['predicted_over_target']:.2f}x; "
      f"the argmax arch {s['argmax_over_target']:.2f}x)")
print(f"int8 .tflite:       {os.path.join(r, e['tflite'])} ({e['size_bytes']} bytes, "
      f"{e['delegate_partitions']} XNNPACK partition(s))")
print(f"test accuracy:      {e['tflite_test_accuracy']:.4f} in LiteRT, "
      f"{e['keras_test_accuracy']:.4f} float Keras ({e['test_examples']} images)")
print(f"host latency:       {e['latency_ms_measured']:.3f} ms (int8), float "
      f"{s.get('measured_ms', float('nan')):.3f} ms")
print(f"for the app:        {os.path.join(r, e['sidecar'])}")
PY
