"""tf.data sources: TFDS datasets by name and image folders (labels from sub-folders).

Preprocessing (BigGAN App. C / spec §2.14): centre crop along the long edge to a square, area
resize to the target resolution, optional random flip, scale to [-1, 1]. Each host reads its own
shard (tfds.split_for_jax_process; every process_count-th file of a folder). Resuming re-seeds the
shuffle with the start step: deterministic, but not the exact stream of an uninterrupted run.
"""

import dataclasses
import os
from typing import Iterator

import numpy as np

from gan_zoo.data.sources import Layout

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def _preprocess(image, label, resolution: int, flip: bool, seed):
    """uint8 [h, w, c] -> float32 [r, r, 3] in [-1, 1]: centre crop, area resize, flip."""
    import tensorflow as tf  # noqa: PLC0415

    image = image[..., :3] if image.shape[-1] != 1 else tf.image.grayscale_to_rgb(image)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    image = tf.image.resize(image, (resolution, resolution), method="area", antialias=True)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed)
    return {"image": tf.cast(image, tf.float32) / 127.5 - 1.0, "label": tf.cast(label, tf.int32)}


def _batched(ds, data_cfg, resolution: int, seed: int, layout: Layout, start_step: int):
    import tensorflow as tf  # noqa: PLC0415

    layout.check()
    ds = ds.repeat().shuffle(data_cfg.shuffle_buffer, seed=seed + 7919 * start_step)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed + start_step).batch(2)))
    ds = ds.map(lambda ex, s: _preprocess(ex[0], ex[1], resolution, data_cfg.flip, s),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(layout.local_batch, drop_remainder=True).batch(layout.accum)
    ds = ds.batch(layout.sub_batches).prefetch(tf.data.AUTOTUNE)
    return ds.as_numpy_iterator()


@dataclasses.dataclass
class TFSource:
    """A tf.data source; make_ds() builds the host-local (image uint8, label) dataset."""

    make_ds: object
    n_classes: int
    data_cfg: object
    resolution: int
    seed: int

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        return _batched(self.make_ds(layout), self.data_cfg, self.resolution, self.seed, layout,
                        start_step)


def _tfds_missing(name: str, data_dir: str) -> FileNotFoundError:
    manual = (f" {name} needs a manual download: put the archives in "
              f"{os.path.join(data_dir or '~/tensorflow_datasets', 'downloads', 'manual')} first."
              if name.startswith("imagenet") else "")
    return FileNotFoundError(
        f"data.name={name!r}: the TFDS dataset is not prepared in data.data_dir={data_dir!r}. "
        f"Prepare it on a machine with internet access with `tfds build {name} "
        f"--data_dir={data_dir or '~/tensorflow_datasets'}`, then point data.data_dir at it."
        + manual)


def tfds_source(data_cfg, resolution: int, seed: int) -> TFSource:
    """A TFDS dataset by name (e.g. imagenet2012, cifar10) from data_cfg.data_dir."""
    import tensorflow_datasets as tfds  # noqa: PLC0415

    name, data_dir = data_cfg.name, data_cfg.data_dir or None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"data.name={name!r} is neither a built-in ('digits', 'photos'), "
                         f"'folder', nor a TFDS dataset") from e
    if not builder.is_prepared():
        raise _tfds_missing(name, data_cfg.data_dir)
    label_key = "label" if "label" in builder.info.features else None
    n_classes = builder.info.features["label"].num_classes if label_key else 1

    def make_ds(layout: Layout):
        import tensorflow as tf  # noqa: PLC0415

        split = tfds.split_for_jax_process(data_cfg.split, process_index=layout.process_index,
                                           process_count=layout.process_count)
        ds = builder.as_dataset(split=split, shuffle_files=True,
                                read_config=tfds.ReadConfig(shuffle_seed=seed))
        return ds.map(lambda ex: (ex["image"], ex[label_key] if label_key else tf.constant(0)))
    return TFSource(make_ds, n_classes, data_cfg, resolution, seed)


def list_folder(root: str) -> tuple[list, list, list]:
    """Image files under root, labels from the first-level sub-folder (sorted names -> 0..K-1).

    Images directly in root (no sub-folders) are one unconditional class. Returns
    (paths, labels, class names).
    """
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(
            f"data.data_dir={root!r}: image folder not found. For data.name='folder' point "
            "data.data_dir at a folder of images, or of one sub-folder of images per class.")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for label, sub in enumerate(classes or [""]):
        for dirpath, _, files in sorted(os.walk(os.path.join(root, sub))):
            if not classes and dirpath != root:
                continue
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTS):
                    paths.append(os.path.join(dirpath, f))
                    labels.append(label)
    if not paths:
        raise FileNotFoundError(f"data.data_dir={root!r}: no images ({', '.join(IMAGE_EXTS)})")
    return paths, labels, classes or ["all"]


def folder_source(data_cfg, resolution: int, seed: int) -> TFSource:
    """Images under data_cfg.data_dir; host p reads every process_count-th file."""
    paths, labels, classes = list_folder(data_cfg.data_dir)

    def make_ds(layout: Layout):
        import tensorflow as tf  # noqa: PLC0415

        p = np.asarray(paths)[layout.process_index::layout.process_count]
        y = np.asarray(labels, np.int32)[layout.process_index::layout.process_count]
        ds = tf.data.Dataset.from_tensor_slices((p, y))
        return ds.map(lambda f, lab: (tf.io.decode_image(tf.io.read_file(f), channels=3,
                                                         expand_animations=False), lab))
    return TFSource(make_ds, len(classes), data_cfg, resolution, seed)
