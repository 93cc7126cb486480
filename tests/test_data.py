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
