"""Data: folder and archive sources, splits, augmentation, the real datasets."""

import os
import tarfile

import numpy as np
import pytest

from conftest import CIFAR_TAR, IMAGENETTE_TAR, require
from tfnas import data
from tfnas.data import sources
from tfnas.errors import TfnasError


def test_real_cifar10_loads_through_folder(cifar_root):
  ds = sources.load_folder(require(CIFAR_TAR))
  assert len(ds.class_names) == 10 and ds.class_names[0] == "airplane"
  assert len(ds.train) == 50000 and len(ds.test) == 10000
  assert np.bincount(ds.train.labels).tolist() == [5000] * 10


def test_real_imagenette_loads_through_folder():
  ds = sources.load_folder(require(IMAGENETTE_TAR))
  assert len(ds.class_names) == 10 and ds.class_names[0].startswith("n0")
  assert len(ds.train) == 9469 and len(ds.test) == 3925


def test_pipelines_shapes_normalization_and_disjoint_validation(tiny_cifar):
  d = data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, val_size=40, seed=3)
  assert d.sizes == {"train": 120, "val": 40, "test": 40}
  assert not set(d.index["train"]) & set(d.index["val"])
  assert len(set(d.index["train"]) | set(d.index["val"])) == 160
  again = data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, val_size=40, seed=3)
  assert np.array_equal(again.index["val"], d.index["val"])
  other = data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, val_size=40, seed=4)
  assert not np.array_equal(other.index["val"], d.index["val"])
  x, y = next(iter(d.train))
  assert x.shape == (8, 32, 32, 3) and x.dtype.name == "float32" and y.shape == (8,)
  assert -3 < float(np.mean(x)) < 3 and 0.3 < float(np.std(x)) < 3
  test = np.concatenate([y.numpy() for _, y in d.test])
  # Test and validation come in a fixed shuffled order, so any prefix mixes the classes.
  assert sorted(test.tolist()) == sorted([c for c in range(10) for _ in range(4)])
  assert test.tolist() != sorted(test.tolist()) and len(set(test[:10].tolist())) >= 5
  again = np.concatenate([y.numpy() for _, y in again.test])
  assert again.tolist() == test.tolist()
  val = np.concatenate([y.numpy() for _, y in d.val])
  assert len(set(val[:10].tolist())) >= 5
  limited = data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, val_size=16,
                      test_limit=12)
  sub = np.concatenate([y.numpy() for _, y in limited.test])
  assert len(sub) == 12 and len(set(sub.tolist())) >= 5
  assert d.preprocess.to_json()["image_size"] == 32
  assert d.preprocess.crop_fraction == 1.0  # cifar: the whole image resized


def test_small_shuffle_buffer_still_mixes_classes(tiny_cifar):
  # Folder trees list files class by class; a buffer smaller than the split must not
  # feed batches of a few classes (the training files are put in a seeded random order
  # first). An epoch still holds every training example once.
  d = data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, val_size=40, seed=3,
                shuffle_buffer=8)
  labels = np.concatenate([y.numpy() for _, y in d.train.take(15)])
  assert len(set(labels[:16].tolist())) >= 5, labels[:16]
  assert np.bincount(labels, minlength=10).tolist() == np.bincount(
      sources.load_folder(tiny_cifar).train.labels[d.index["train"]], minlength=10).tolist()
  with pytest.raises(TfnasError, match="shuffle_buffer 0"):
    data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, shuffle_buffer=0)


def test_imagenet_style_augmentation_resizes(tiny_cifar):
  d = data.load(f"folder:{tiny_cifar}", image_size=24, batch_size=4, augment="imagenet")
  x, _ = next(iter(d.train))
  xt, _ = next(iter(d.test))
  assert x.shape == (4, 24, 24, 3) and xt.shape[1:] == (24, 24, 3)
  # The eval crop an app must reproduce is in data.json / the export's sidecar.
  pre = d.preprocess.to_json()
  assert pre["crop_fraction"] == 0.875 and "centred square" in pre["crop"]


def test_archive_of_a_tree_is_unpacked_once(tiny_cifar, tmp_path, monkeypatch):
  monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
  archive = tmp_path / "tiny.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(tiny_cifar, arcname="top")
  first = sources.load_folder(str(archive))
  second = sources.load_folder(str(archive))
  assert first.root == second.root and len(first.train) == 160
  assert len(os.listdir(tmp_path / "cache" / "datasets")) == 1


@pytest.mark.parametrize("make, pattern", [
    (lambda p: "folder:" + str(p / "missing"), r"dataset path .*missing' does not exist"),
    (lambda p: "nope:x", r"unknown dataset 'nope:x'"),
    (lambda p: "folder:" + str(p), r"has no 'train/' split folder"),
])
def test_bad_dataset_sources(tmp_path, make, pattern):
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  with pytest.raises(TfnasError, match=pattern):
    data.load(make(tmp_path), image_size=32, batch_size=2)


def test_class_folder_without_images(tiny_cifar, tmp_path):
  import shutil
  root = tmp_path / "ds"
  shutil.copytree(tiny_cifar, root)
  for f in os.listdir(root / "train" / "cat"):
    os.unlink(root / "train" / "cat" / f)
  with pytest.raises(TfnasError, match=r"class folder .*train/cat' has no images"):
    data.load(f"folder:{root}", image_size=32, batch_size=2)


def test_validation_size_out_of_range(tiny_cifar):
  with pytest.raises(TfnasError, match=r"validation size 500 must be in \[0, 160\)"):
    data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=2, val_size=500)


def test_tfds_source_reads_a_prepared_tfds_dataset(tiny_cifar, tmp_path):
  """`tfds:<name>` through real TFDS: the tiny real CIFAR tree stored as a TFDS dataset."""
  import tensorflow as tf
  import tensorflow_datasets as tfds
  ds = sources.load_folder(tiny_cifar)

  def split(files):
    images = np.stack([tf.io.decode_jpeg(tf.io.read_file(p)).numpy() for p in files.paths])
    return tf.data.Dataset.from_tensor_slices({"image": images, "label": files.labels})
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(32, 32, 3)),
      "label": tfds.features.ClassLabel(names=list(ds.class_names))})
  tfds.dataset_builders.store_as_tfds_dataset(
      name="tiny_cifar_tfds", version="1.0.0", features=features,
      split_datasets={"train": split(ds.train), "test": split(ds.test)},
      data_dir=str(tmp_path))
  d = data.load("tfds:tiny_cifar_tfds", data_dir=str(tmp_path), image_size=32, batch_size=8,
                val_size=40, seed=0)
  assert d.sizes == {"train": 120, "val": 40, "test": 40} and d.class_names == ds.class_names
  x, y = next(iter(d.train))
  assert x.shape == (8, 32, 32, 3)
  test_labels = np.concatenate([y.numpy() for _, y in d.test])
  assert sorted(test_labels.tolist()) == sorted(ds.test.labels.tolist())
  with pytest.raises(TfnasError, match="cannot load TFDS dataset 'no_such_ds'"):
    data.load("tfds:no_such_ds", data_dir=str(tmp_path), image_size=32, batch_size=8)


def test_grayscale_tfds_dataset_is_repeated_to_rgb(tmp_path):
  # A grayscale TFDS dataset (MNIST-like, (H, W, 1)) stored through real TFDS: the
  # spaces take RGB, so the channel is repeated instead of failing mid-training.
  import tensorflow as tf
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(28, 28, 1)),
      "label": tfds.features.ClassLabel(names=["a", "b"])})
  make = lambda n: tf.data.Dataset.from_tensor_slices(
      {"image": rng.integers(0, 255, (n, 28, 28, 1), dtype=np.uint8),
       "label": np.arange(n) % 2})
  tfds.dataset_builders.store_as_tfds_dataset(
      name="tiny_gray_tfds", version="1.0.0", features=features,
      split_datasets={"train": make(16), "test": make(4)}, data_dir=str(tmp_path))
  d = data.load("tfds:tiny_gray_tfds", data_dir=str(tmp_path), image_size=32, batch_size=4)
  x, _ = next(iter(d.train))
  xt, _ = next(iter(d.test))
  assert x.shape == (4, 32, 32, 3) and xt.shape == (4, 32, 32, 3)
  assert np.allclose(xt[..., 0] * 0.229 + 0.485, xt[..., 1] * 0.224 + 0.456, atol=1e-5)


def test_same_seed_same_batches_in_two_processes(tiny_cifar):
  # Augmentation draws stateless per-example seeds: two processes with one seed feed
  # the same batches (stateful random ops inside the parallel map did not).
  import subprocess
  import sys
  from conftest import ROOT
  code = (
      "import sys, numpy as np, keras\n"
      "from tfnas.data import pipeline\n"
      "keras.utils.set_random_seed(0)\n"
      f"d = pipeline.load('folder:{tiny_cifar}', image_size=32, batch_size=16, seed=3, "
      "augment=sys.argv[1])\n"
      "it = iter(d.train.repeat())\n"
      "print([float(np.asarray(next(it)[0]).sum()) for _ in range(12)])\n")
  for augment in ("cifar", "imagenet"):
    runs = [subprocess.run([sys.executable, "-c", code, augment], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            for _ in range(2)]
    for r in runs:
      assert r.returncode == 0, r.stderr[-2000:]
    sums = [r.stdout.strip().splitlines()[-1] for r in runs]
    assert sums[0] == sums[1], augment
    first = eval(sums[0])  # noqa: S307 - our own printed list of floats
    assert first[:2] != first[10:12]  # the second epoch is augmented (and shuffled) anew


def test_calibration_subset_mixes_classes(tiny_cifar):
  # Calibration (int8, QAT, precision search) takes a seeded random subset: the first
  # N training images of a class-sorted tree were all airplanes.
  from tfnas.export.pipeline import calibration_images
  d = data.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, val_size=16, calib_size=16)
  labels = np.concatenate([y.numpy() for _, y in d.calib])
  assert len(labels) == 16 and len(set(labels.tolist())) >= 5, labels
  images = calibration_images(d, 16)
  assert len(images) == 16 and images[0].shape == (1, 32, 32, 3)
  first = np.concatenate([x.numpy() for x, _ in d.calib])
  assert np.array_equal(np.concatenate(images), first)


def _tree_with_bad_files(tiny_cifar, root):
  import shutil
  shutil.copytree(tiny_cifar, root)
  cat = root / "train" / "cat"
  good = sorted(os.listdir(cat))
  (cat / "empty.jpg").write_bytes(b"")
  data_ = (cat / good[0]).read_bytes()
  (cat / "truncated.jpg").write_bytes(data_[:len(data_) // 2])
  (cat / "text.png").write_bytes(b"not an image at all")
  (cat / ("._" + good[1])).write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS resource fork
  return {str(cat / n) for n in ("empty.jpg", "truncated.jpg", "text.png")}


def test_unreadable_images_are_skipped_by_name_or_refused(tiny_cifar, tmp_path):
  bad = _tree_with_bad_files(tiny_cifar, tmp_path / "ds")
  warnings = []
  ds = sources.load_folder(str(tmp_path / "ds"), warn=warnings.append)
  assert len(ds.train) == 160 and not bad & set(ds.train.paths)
  assert not any("/._" in p for p in ds.train.paths)
  assert len(warnings) == 1 and "leaving out 3 image file(s)" in warnings[0]
  assert "empty.jpg (empty (0 bytes))" in warnings[0]
  assert "truncated.jpg (truncated JPEG" in warnings[0] and "text.png (not a JPEG" in warnings[0]
  with pytest.raises(TfnasError, match=r"3 image file\(s\) cannot be read: .*empty.jpg"):
    sources.load_folder(str(tmp_path / "ds"), bad_images="error")
  with pytest.raises(TfnasError, match="bad_images 'ignore' is not one of"):
    sources.load_folder(str(tmp_path / "ds"), bad_images="ignore")
  # (test_real_cifar10_loads_through_folder: all 60,000 real JPEGs pass the check.)


def test_truncated_archive_is_one_clear_error(tiny_cifar, tmp_path, monkeypatch):
  monkeypatch.setenv("TFNAS_CACHE", str(tmp_path / "cache"))
  archive = tmp_path / "tiny.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(tiny_cifar, arcname="top")
  cut = tmp_path / "cut.tar.gz"
  cut.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
  with pytest.raises(TfnasError, match=r"cannot unpack dataset archive .*cut.tar.gz' "
                                       r"\(truncated or damaged"):
    sources.load_folder(str(cut))
  assert [d for d in os.listdir(tmp_path / "cache" / "datasets")] == []  # nothing half-done
