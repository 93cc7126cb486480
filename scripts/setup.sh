#!/usr/bin/env bash
# Creates .venv and installs tfnas: first the exact, tested versions of every dependency
# (requirements-lock.txt: TensorFlow's CPU wheel, pytest), then tfnas itself in editable
# mode without letting pip re-resolve them (setup.cfg's ranges name `tensorflow`, the wheel
# a user's pip or Colab provides; tensorflow-cpu serves the same module here).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-lock.txt
.venv/bin/python -m pip install -q --no-deps -e .
