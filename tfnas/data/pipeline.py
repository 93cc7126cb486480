"""tf.data pipelines: train (augmented), held-out validation and test splits.

One normalization (`Preprocess`) is used in training, evaluation and export,
and is written into every work directory so it travels with the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tfnas.data import sources
from tfnas.errors import TfnasError

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
AUGMENTS = ("cifar", "imagenet", "none")
# The evaluation crop per augment: a centred square of this fraction of the shorter side
# ("imagenet": the standard ImageNet evaluation), then a bilinear resize to the input
# size; 1.0: the whole image resized (its aspect ratio not kept).
EVAL_CROP = {"cifar": 1.0, "imagenet": 0.875, "none": 1.0}


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """How raw RGB uint8 pixels become model input, as the evaluation transform made them:
  a centred square crop of `crop_fraction` of the shorter side (1.0: none), a bilinear
  resize to `image_size` (TensorFlow's `tf.image.resize`, no antialiasing), then
  (x - mean) / std per channel, NHWC. The exported model does none of it: the app does."""
  image_size: int
  mean: tuple[float, float, float] = IMAGENET_MEAN
  std: tuple[float, float, float] = IMAGENET_STD
  crop_fraction: float = 1.0

  def normalize(self, image):
    """(..., H, W, 3) uint8 or float RGB in 0..255 -> float32 (x - mean) / std."""
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(self.mean)) / tf.constant(self.std)

  def to_json(self) -> dict:
    """What an app must do to an image before the model (data.json, sidecars)."""
    crop = ("none: the whole image" if self.crop_fraction == 1.0 else
            f"a centred square of {self.crop_fraction} of the shorter side")
    return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std),
            "layout": "NHWC", "channels": "RGB", "input_range": "uint8 0..255",
            "crop": crop, "crop_fraction": self.crop_fraction,
            "resize": "bilinear to image_size x image_size, no antialiasing",
            "normalized_by": "the app: (pixel - mean) / std per channel, before the model"}


@dataclasses.dataclass
class Data:
  """The three splits as batched datasets, plus what describes them."""
  train: tf.data.Dataset
  val: tf.data.Dataset | None
  test: tf.data.Dataset
  num_classes: int
  class_names: tuple[str, ...]
  sizes: dict
  preprocess: Preprocess
  train_eval: tf.data.Dataset | None = None  # train split, eval transform
  calib: tf.data.Dataset | None = None  # a fixed random train subset, eval transform (BN)
  index: dict | None = None  # example indices of train/val within the source's train split

  def info(self) -> dict:
    """Classes, split sizes and preprocessing, as written to data.json."""
    return {"num_classes": self.num_classes, "class_names": list(self.class_names),
            "sizes": self.sizes, "preprocess": self.preprocess.to_json()}


def _decode(path):
  data = tf.io.read_file(path)
  image = tf.io.decode_image(data, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


# Augmentation uses stateless random ops with a seed per example (drawn from a seeded
# stream that differs every epoch): stateful ops inside a parallel `map` share state
# across threads, so the same seed gave different batches in different processes.

def _augment_cifar(image, size, seed):
  image = tf.image.resize(image, (size, size)) if image.shape[0] != size else tf.cast(image, tf.float32)
  pad = max(1, size // 8)
  image = tf.image.pad_to_bounding_box(image, pad, pad, size + 2 * pad, size + 2 * pad)
  crop, flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  image = tf.image.stateless_random_crop(image, (size, size, 3), seed=crop)
  return tf.image.stateless_random_flip_left_right(image, seed=flip)


def _augment_imagenet(image, size, seed):
  box, flip = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.zeros((1, 0, 4)), seed=box, min_object_covered=0.0,
      aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  image = tf.slice(image, begin, extent)
  image = tf.image.resize(image, (size, size))
  return tf.image.stateless_random_flip_left_right(image, seed=flip)


def _eval_transform(image, size, augment):
  fraction = EVAL_CROP[augment]
  if fraction < 1.0:  # a centred square crop, then resize (Preprocess says so to apps)
    shape = tf.shape(image)
    crop = tf.cast(tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) * fraction, tf.int32)
    image = tf.image.resize_with_crop_or_pad(image, crop, crop)
  return tf.image.resize(image, (size, size))


def _pipeline(ds, pre: Preprocess, augment: str, train: bool, batch_size: int, seed: int,
              cache: bool, shuffle_buffer: int, drop_remainder: bool):
  ds = ds.map(lambda p, l: (_decode(p) if p.dtype == tf.string else p, l),
              num_parallel_calls=tf.data.AUTOTUNE)
  channels = ds.element_spec[0].shape[-1]
  if channels == 1:  # grayscale TFDS datasets (e.g. MNIST): the spaces take RGB
    ds = ds.map(lambda image, label: (tf.image.grayscale_to_rgb(image), label))
  elif channels not in (3, None):
    raise TfnasError(f"images have {channels} channels; expected 3 (RGB) or 1 (grayscale, "
                     "repeated to RGB)")
  if cache:
    ds = ds.cache()
  if train:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # One [2] seed per example, another stream each pass over the data.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip(ds, seeds).map(lambda pair, s: (*pair, s))
  else:
    ds = ds.map(lambda image, label: (image, label, tf.zeros([2], tf.int64)))
  size = pre.image_size

  def transform(image, label, example_seed):
    if train and augment == "cifar":
      image = _augment_cifar(image, size, example_seed)
    elif train and augment == "imagenet":
      image = _augment_imagenet(image, size, example_seed)
    else:
      image = _eval_transform(image, size, augment)
    return pre.normalize(image), label

  ds = ds.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  return ds.prefetch(tf.data.AUTOTUNE)


def _limit(n: int, limit: int | None, seed: int) -> np.ndarray:
  index = np.arange(n)
  if limit and limit < n:
    index = np.sort(np.random.default_rng(seed + 1).permutation(n)[:limit])
  return index


def load(dataset: str, *, image_size: int, batch_size: int, val_size: int | float = 0,
         seed: int = 0, augment: str = "cifar", data_dir: str | None = None,
         train_limit: int | None = None, test_limit: int | None = None, cache: bool = True,
         eval_batch_size: int | None = None, drop_remainder: bool = True,
         calib_size: int = 0, shuffle_buffer: int = 20000, bad_images: str = "skip") -> Data:
  """Builds train / validation / test pipelines for `dataset`.

  Args:
    dataset: "folder:<path>" (a tree or an archive of one) or "tfds:<name>".
    image_size: Side of the square model input.
    batch_size: Training batch size (global, across replicas).
    val_size: Examples (int) or fraction (float < 1) carved from train as the
      held-out validation split; seeded and disjoint from the training split.
    seed: Seed for the split and the shuffling.
    augment: "cifar" (pad-crop + flip), "imagenet" (random-resized-crop + flip)
      or "none".
    data_dir: TFDS data dir (tfds sources only).
    train_limit: Use a seeded subset of this many training examples.
    test_limit: Use a fixed random subset of this many test examples.

  Validation and test examples come in a fixed shuffled order (folder trees list
  files class by class, so any prefix of them, e.g. the first N validation images
  a search scores on, would hold a few classes only).
    cache: Cache decoded images in memory.
    eval_batch_size: Batch size for validation and test (default batch_size).
    drop_remainder: Drop the last partial training batch.
    calib_size: Also build `Data.calib`: this many training examples (a fixed
      random subset in a fixed shuffled order, evaluation transform) for BatchNorm
      recalibration; 0 for none.
    bad_images: Folder datasets: "skip" empty, truncated or non-image files with a
      warning naming them, or "error" (`sources.load_folder`); checked before
      anything is trained or written.
    shuffle_buffer: Training shuffle buffer (capped at the split's size). The
      training files are put in a seeded random order first, so a buffer smaller
      than the split still mixes every class (folder trees list them class by
      class; without that, a 20,000 buffer over CIFAR-10's 45,000 training
      images fed batches of four classes at a time).
  """
  if augment not in AUGMENTS:
    raise TfnasError(f"unknown augmentation {augment!r}; expected one of {AUGMENTS}")
  if batch_size < 1:
    raise TfnasError(f"batch_size {batch_size} must be >= 1")
  kind, _, arg = dataset.partition(":")
  if kind == "folder" and arg:
    folder = sources.load_folder(arg, bad_images)
    train_files, test_files, classes = folder.train, folder.test, folder.class_names
    n_train = len(train_files)
    make = lambda split, idx: tf.data.Dataset.from_tensor_slices(
        (list(split.paths[i] for i in idx), split.labels[idx]))
  elif kind == "tfds" and arg:
    train_files = test_files = None
    import tensorflow_datasets as tfds
    try:
      builder = tfds.builder(arg, data_dir=data_dir)
      builder.download_and_prepare()
    except Exception as e:  # tfds raises many types; the message is what matters
      raise TfnasError(f"cannot load TFDS dataset {arg!r}: {str(e).splitlines()[0]}") from None
    info = builder.info
    classes = tuple(info.features["label"].names)
    test_split = next((s for s in ("test", "validation") if s in info.splits), None)
    if test_split is None:
      raise TfnasError(f"TFDS dataset {arg!r} has no test or validation split")
    n_train = info.splits["train"].num_examples
    keys = info.supervised_keys or ("image", "label")
    as_pair = lambda ex: (ex[keys[0]], ex[keys[1]])
    full = {"train": builder.as_dataset(split="train", shuffle_files=False).map(as_pair),
            "test": builder.as_dataset(split=test_split, shuffle_files=False).map(as_pair)}

    def make(split_name, idx):
      mask = np.zeros(info.splits["train" if split_name == "train" else test_split].num_examples,
                      bool)
      mask[idx] = True
      mask = tf.constant(mask)
      ds = full[split_name].enumerate().filter(lambda i, ex: tf.gather(mask, i))
      return ds.map(lambda i, ex: ex)
    train_files, test_files = "train", "test"
  else:
    raise TfnasError(
        f"unknown dataset {dataset!r}; expected 'folder:<path to a tree or .tar.gz>' or "
        f"'tfds:<name>'")
  train_idx, val_idx = sources.split_validation(n_train, val_size, seed)
  train_idx = train_idx[_limit(len(train_idx), train_limit, seed)]
  n_test = (len(test_files) if not isinstance(test_files, str)
            else builder.info.splits[test_split].num_examples)
  test_idx = np.random.default_rng(0).permutation(n_test)[:test_limit or n_test]
  val_idx = np.random.default_rng(seed + 1).permutation(val_idx)
  pre = Preprocess(image_size, crop_fraction=EVAL_CROP[augment])
  eval_bs = eval_batch_size or batch_size
  common = dict(pre=pre, augment=augment, seed=seed, cache=cache)
  if len(train_idx) < batch_size and drop_remainder:
    raise TfnasError(f"training split has {len(train_idx)} examples, fewer than one batch "
                     f"of {batch_size}")
  if shuffle_buffer < 1:
    raise TfnasError(f"shuffle_buffer {shuffle_buffer} must be >= 1")
  train_order = np.random.default_rng(seed + 3).permutation(train_idx)
  train = _pipeline(make(train_files, train_order), train=True, batch_size=batch_size,
                    shuffle_buffer=min(len(train_idx), shuffle_buffer),
                    drop_remainder=drop_remainder, **common)
  train_eval = _pipeline(make(train_files, train_idx), train=False, batch_size=eval_bs,
                         shuffle_buffer=0, drop_remainder=False, **{**common, "cache": False})
  calib = None
  if calib_size:
    if calib_size > len(train_idx):
      raise TfnasError(f"a calibration subset of {calib_size} images is more than the "
                       f"{len(train_idx)} training examples")
    calib_idx = np.random.default_rng(seed + 2).permutation(train_idx)[:calib_size]
    calib = _pipeline(make(train_files, calib_idx), train=False, batch_size=eval_bs,
                      shuffle_buffer=0, drop_remainder=False, **common)
  val = None
  if len(val_idx):
    val = _pipeline(make(train_files, val_idx), train=False, batch_size=eval_bs,
                    shuffle_buffer=0, drop_remainder=False, **common)
  test = _pipeline(make(test_files, test_idx), train=False, batch_size=eval_bs,
                   shuffle_buffer=0, drop_remainder=False, **common)
  sizes = {"train": int(len(train_idx)), "val": int(len(val_idx)), "test": int(len(test_idx))}
  return Data(train, val, test, len(classes), tuple(classes), sizes, pre, train_eval, calib,
              index={"train": train_idx, "val": val_idx})


def load_from_config(config) -> Data:
  """`load` with the data fields every training/search config shares."""
  d = config.data
  return load(d.dataset, image_size=d.resolution, batch_size=d.batch_size,
              val_size=d.val_size, seed=config.seed, augment=d.augment,
              data_dir=d.data_dir, train_limit=d.train_limit, test_limit=d.test_limit,
              cache=d.cache, eval_batch_size=d.eval_batch_size, calib_size=d.calib_images,
              bad_images=d.bad_images)


def single_images(dataset: tf.data.Dataset, n: int) -> list[np.ndarray]:
  """The first `n` images of a batched `dataset` of (images, labels), each as a
  (1, H, W, C) array: calibration samples for the TFLite converter."""
  out = []
  for images, _ in dataset:
    out.extend(np.asarray(images)[i:i + 1] for i in range(len(images)))
    if len(out) >= n:
      break
  return out[:n]
