"""Small file helpers: atomic writes so no half-written output is ever left, and
append-only JSONL logs that survive a kill mid-line.

Every file tfnas writes goes through here: a temp file in the same folder, fsync,
then a rename, with the permissions an ordinary `open(path, "w")` would give (the
process umask applied to 0666; `mkstemp` alone leaves 0600, which an app build or a
teammate cannot read).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator

from tflite_bench.record import repair_tail


def _umask() -> int:
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temp path beside `path` (same suffix); renames it onto `path` on success.

  For writers that need a file name (Keras `save_weights` wants `.weights.h5`,
  matplotlib's `savefig`): a kill during the write leaves `path` as it was.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  os.close(fd)
  try:
    yield tmp
    with open(tmp, "rb+") as f:
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except OSError as e:
    if e.filename not in (None, tmp):
      raise
    # Name the file the user asked for (a full disk fails the temp file's write).
    raise OSError(e.errno, e.strerror, path) from None
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` via a temp file in the same folder and a rename."""
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def new_figure(**kwargs):
  """A matplotlib `Figure` outside pyplot (`Figure(**kwargs)`, e.g. figsize=(6, 4)): drawing
  and saving it picks no backend and leaves no open figure, so a notebook's inline plots
  keep working around a search that writes its pictures."""
  from matplotlib.figure import Figure
  return Figure(**kwargs)


def write_png(fig, path: str, dpi: int = 120) -> None:
  """`fig` as a PNG at `path`, written atomically (`atomic_write_bytes`)."""
  import io
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi)
  atomic_write_bytes(path, buf.getvalue())


def read_json(path: str, what: str) -> Any:
  """Parsed JSON at `path`; a missing or malformed file is a one-line TfnasError naming `what`."""
  from tfnas.errors import TfnasError
  if not os.path.exists(path):
    raise TfnasError(f"{what} {path!r} does not exist")
  with open(path) as f:
    try:
      return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise TfnasError(f"{what} {path!r} is not valid JSON: {e}") from None


def atomic_write_json(path: str, obj: Any) -> None:
  """`obj` as indented, key-sorted JSON at `path`, written atomically (a kill leaves
  the old file or the new one, never a torn one)."""
  atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def append_jsonl(path: str, rows: list[dict]) -> None:
  """Appends `rows` as durable JSON lines, first cutting a torn last line.

  Without the cut, the first row appended after a kill mid-line would be glued to
  the torn fragment and lost with it.
  """
  if os.path.exists(path):
    repair_tail(path)
  else:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "ab") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows).encode())
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path: str, what: str) -> list[dict]:
  """The whole rows of a JSONL log (a torn last line is skipped; [] when absent).

  Raises:
    TfnasError: a line other than the last is not a JSON object.
  """
  from tfnas.errors import TfnasError
  if not os.path.exists(path):
    return []
  with open(path, "rb") as f:
    data = f.read()
  lines = data.split(b"\n")
  if not data.endswith(b"\n"):
    lines = lines[:-1]  # torn by a kill: that row is redone by whoever wrote it
  rows = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
      row = None
    if not isinstance(row, dict):
      raise TfnasError(f"{what} {path!r} line {i + 1} is not a JSON object")
    rows.append(row)
  return rows
