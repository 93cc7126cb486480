"""Dataset sources: `folder:<path>` (a tree or a .tar.gz of one) and `tfds:<name>`.

A folder source is a tree with split folders (`train/` and `test/` or `val/`)
of class folders, possibly under one top folder. Archives are unpacked once
into a cache folder (atomically: a killed unpack leaves nothing half-done).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tarfile
import tempfile

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
    return FileSplit(tuple(self.paths[i] for i in index), self.labels[index])


@dataclasses.dataclass(frozen=True)
class FolderDataset:
  """A folder dataset: class names and file lists for train and test."""
  root: str
  class_names: tuple[str, ...]
  train: FileSplit
  test: FileSplit


def cache_dir() -> str:
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
  except tarfile.TarError as e:
    shutil.rmtree(tmp, ignore_errors=True)
    raise TfnasError(f"cannot unpack dataset archive {archive!r}: {e}") from None
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
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise TfnasError(
          f"class folder {folder!r} has no images (expected files ending in "
          f"{', '.join(IMAGE_EXTENSIONS)})")
    paths.extend(os.path.join(folder, f) for f in files)
    labels.extend([label] * len(files))
  return tuple(classes), FileSplit(tuple(paths), np.asarray(labels, np.int64))


def load_folder(path: str) -> FolderDataset:
  """Lists a folder dataset (unpacking an archive into the cache first)."""
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
