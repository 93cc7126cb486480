"""Dataset sources: `folder:<path>` (a tree or a .tar.gz of one) and `tfds:<name>`.

A folder source is a tree with split folders (`train/` and `test/` or `val/`)
of class folders, possibly under one top folder. Archives are unpacked once
into a cache folder (atomically: a killed unpack leaves nothing half-done).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zlib

import numpy as np

from tfnas.errors import TfnasError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEST_SPLIT_NAMES = ("test", "val", "validation")


@dataclasses.dataclass(frozen=True)
class FileSplit:
  """Image files of one split with integer labels."""
  paths: tuple[str, ...]
  labels: np.ndarray

  def __len__(self):
    return len(self.paths)

  def subset(self, index: np.ndarray) -> "FileSplit":
    """The files (and labels) at positions `index`, in that order."""
    return FileSplit(tuple(self.paths[i] for i in index), self.labels[index])


@dataclasses.dataclass(frozen=True)
class FolderDataset:
  """A folder dataset: class names and file lists for train and test."""
  root: str
  class_names: tuple[str, ...]
  train: FileSplit
  test: FileSplit


BAD_IMAGE_POLICIES = ("skip", "error")


def image_problem(path: str) -> str | None:
  """Why `path` cannot be a whole image file, or None when it looks whole.

  Checks what can be checked without decoding (milliseconds for 60,000 files): a
  non-empty file, a known format's signature, and its end marker (JPEG EOI, PNG IEND,
  GIF trailer; a BMP at least as long as its header says), which is what a truncated
  download or copy loses.
  """
  try:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
      head = f.read(16)
      f.seek(max(0, size - 1024))
      tail = f.read()
  except OSError as e:
    return f"unreadable ({e.strerror})"
  if size == 0:
    return "empty (0 bytes)"
  if head.startswith(b"\xff\xd8\xff"):
    return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
  if head.startswith(b"\x89PNG\r\n\x1a\n"):
    return None if b"IEND" in tail[-64:] else "truncated PNG (no IEND chunk)"
  if head.startswith((b"GIF87a", b"GIF89a")):
    return None if b"\x3b" in tail[-16:] else "truncated GIF (no trailer)"
  if head.startswith(b"BM") and len(head) >= 6:
    declared = int.from_bytes(head[2:6], "little")
    return None if declared <= size else f"truncated BMP ({size} of {declared} bytes)"
  return "not a JPEG, PNG, GIF or BMP image (unknown signature)"


def cache_dir() -> str:
  """Where archives are unpacked: $TFNAS_CACHE, else ~/.cache/tfnas."""
  return os.environ.get("TFNAS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "tfnas"))


def _unpack(archive: str) -> str:
  st = os.stat(archive)
  key = hashlib.sha1(f"{os.path.abspath(archive)}|{st.st_size}|{st.st_mtime_ns}".encode())
  base = os.path.basename(archive).split(".")[0]
  target = os.path.join(cache_dir(), "datasets", f"{base}-{key.hexdigest()[:12]}")
  if os.path.isdir(target):
    return target
  os.makedirs(os.path.dirname(target), exist_ok=True)
  tmp = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".unpack-")
  try:
    with tarfile.open(archive) as tar:
      tar.extractall(tmp, filter="data")
    try:
      os.rename(tmp, target)
    except OSError:  # another process unpacked it first
      if not os.path.isdir(target):
        raise
      shutil.rmtree(tmp, ignore_errors=True)
  except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
    # A truncated or damaged download: EOFError / zlib / gzip errors, not TarError.
    shutil.rmtree(tmp, ignore_errors=True)
    raise TfnasError(f"cannot unpack dataset archive {archive!r} (truncated or damaged? "
                     f"download it again): {' '.join(str(e).split())}") from None
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return target


def _find_split_root(path: str, original: str) -> str:
  """The folder that holds `train/` (the path itself or its single subfolder)."""
  for _ in range(3):
    entries = [e for e in os.listdir(path) if not e.startswith(".")]
    if "train" in entries and os.path.isdir(os.path.join(path, "train")):
      return path
    subdirs = [e for e in entries if os.path.isdir(os.path.join(path, e))]
    if len(subdirs) != 1:
      break
    path = os.path.join(path, subdirs[0])
  raise TfnasError(
      f"dataset folder {original!r} has no 'train/' split folder (expected train/ and "
      f"test/ or val/, each holding one folder per class, possibly under one top folder)")


def _is_image_name(name: str) -> bool:
  # "._x.jpg" are macOS resource forks (AppleDouble) that archives made on a Mac carry.
  return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("._")


def _list_split(split_dir: str, class_names: tuple[str, ...] | None):
  classes = sorted(e for e in os.listdir(split_dir)
                   if os.path.isdir(os.path.join(split_dir, e)) and not e.startswith("."))
  if not classes:
    raise TfnasError(f"split folder {split_dir!r} holds no class folders")
  if class_names is not None and tuple(classes) != class_names:
    missing = sorted(set(class_names) ^ set(classes))
    raise TfnasError(
        f"split folder {split_dir!r} has classes that differ from train's: {missing[:5]}")
  paths, labels = [], []
  for label, name in enumerate(classes):
    folder = os.path.join(split_dir, name)
    files = sorted(f for f in os.listdir(folder) if _is_image_name(f))
    if not files:
      raise TfnasError(
          f"class folder {folder!r} has no images (expected files ending in "
          f"{', '.join(IMAGE_EXTENSIONS)})")
    paths.extend(os.path.join(folder, f) for f in files)
    labels.extend([label] * len(files))
  return tuple(classes), FileSplit(tuple(paths), np.asarray(labels, np.int64))


def _drop_bad(split: FileSplit, policy: str, warn) -> FileSplit:
  bad = [(i, why) for i, p in enumerate(split.paths) if (why := image_problem(p))]
  if not bad:
    return split
  named = "; ".join(f"{split.paths[i]} ({why})" for i, why in bad[:3])
  more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
  if policy == "error":
    raise TfnasError(f"{len(bad)} image file(s) cannot be read: {named}{more} (remove them, "
                     "or set bad_images='skip' to leave them out)")
  warn(f"warning: leaving out {len(bad)} image file(s) that cannot be read: {named}{more}")
  keep = np.setdiff1d(np.arange(len(split)), [i for i, _ in bad])
  if not len(keep):
    raise TfnasError(f"no readable image among {len(split)} files, e.g. {named}")
  return split.subset(keep)


def load_folder(path: str, bad_images: str = "skip", warn=None) -> FolderDataset:
  """Lists a folder dataset (unpacking an archive into the cache first).

  Args:
    path: A tree (train/ and test/ or val/ of class folders, possibly under one top
      folder) or a .tar.gz/.tgz/.tar of one.
    bad_images: What to do with empty, truncated or non-image files: "skip" them
      with a warning that names them (`warn`, default stderr), or "error".

  Raises:
    TfnasError: a missing path, a damaged archive, a tree without the expected
      folders, or (bad_images="error") an unreadable image, naming it.
  """
  if bad_images not in BAD_IMAGE_POLICIES:
    raise TfnasError(f"bad_images {bad_images!r} is not one of {list(BAD_IMAGE_POLICIES)}")
  warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
  original = path
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise TfnasError(f"dataset path {original!r} does not exist")
  if os.path.isfile(path):
    if not path.endswith((".tar.gz", ".tgz", ".tar")):
      raise TfnasError(f"dataset file {original!r} is not a .tar.gz/.tgz/.tar archive or folder")
    path = _unpack(path)
  root = _find_split_root(path, original)
  test_name = next((n for n in TEST_SPLIT_NAMES if os.path.isdir(os.path.join(root, n))), None)
  if test_name is None:
    raise TfnasError(f"dataset folder {root!r} has train/ but no test/ or val/ split folder")
  classes, train = _list_split(os.path.join(root, "train"), None)
  _, test = _list_split(os.path.join(root, test_name), classes)
  train, test = (_drop_bad(split, bad_images, warn) for split in (train, test))
  return FolderDataset(root, classes, train, test)


def split_validation(n_train: int, val_size: int | float, seed: int):
  """Seeded, disjoint (train_index, val_index) carved from `n_train` examples."""
  if isinstance(val_size, float) and 0 < val_size < 1:
    val_size = int(round(val_size * n_train))
  val_size = int(val_size)
  if not 0 <= val_size < n_train:
    raise TfnasError(f"validation size {val_size} must be in [0, {n_train}) for this dataset")
  perm = np.random.default_rng(seed).permutation(n_train)
  return np.sort(perm[val_size:]), np.sort(perm[:val_size])
