#!/usr/bin/env bash
# One command: set up, then train a reference architecture quickly on CIFAR-10
# from ../shared/data (or DATASET=folder:<your tree or .tar.gz>), export it to
# .tflite, and print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
DATASET=${DATASET:-folder:../shared/data/cifar10-jpg.tar.gz}
WORKDIR=${WORKDIR:-runs/quickstart}
.venv/bin/python -m tfnas.bin.train --config=configs/train_cifar10.py:quick \
    --workdir="$WORKDIR" --config.dataset="$DATASET"
.venv/bin/python - "$WORKDIR" <<'PY'
import json, os, sys
w = sys.argv[1]
m = json.load(open(os.path.join(w, "metrics.json")))
print(f"arch:          {m['arch']}")
print(f"params:        {m['params']}")
print(f"test accuracy: {m['test_accuracy']:.4f} (Keras)")
print(f"tflite:        {os.path.join(w, 'model.tflite')} ({m['tflite_bytes']} bytes)")
PY
