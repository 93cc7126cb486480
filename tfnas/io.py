"""Small file helpers: atomic writes so no half-written output is ever left."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` via a temp file in the same folder and a rename."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def read_json(path: str, what: str) -> Any:
  """Parsed JSON at `path`; a missing or malformed file is a one-line TfnasError naming `what`."""
  from tfnas.errors import TfnasError
  if not os.path.exists(path):
    raise TfnasError(f"{what} {path!r} does not exist")
  with open(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise TfnasError(f"{what} {path!r} is not valid JSON: {e}") from None


def atomic_write_json(path: str, obj: Any) -> None:
  atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
