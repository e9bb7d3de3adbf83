"""tf.data sources: TFDS datasets by name and image folders (labels from sub-folders).

Preprocessing (BigGAN App. C / spec §2.14): centre crop along the long edge to a square, area
resize to the target resolution, optional random flip, scale to [-1, 1].

Exact resume. Each host reads its own shard (tfds.split_for_jax_process; every
process_count-th file of a folder) as a stream of n examples per epoch, in an order fixed by
(seed, epoch, host), and step k's batch is examples [k * E, (k + 1) * E) of that stream
(E = examples per step on this host). The flip of stream example i is seeded by (seed, host, i).
So the batches from step k are the same whether the iterator started at 0 or at k:
- folders are index-based: epoch e reads file index_shuffle(i mod n; seed, e, host), a stateless
  permutation of the host's files, so starting at step k costs nothing;
- TFDS splits (tfrecord files, no random access) are read in their stored order (TFDS shuffles
  examples when it prepares a dataset) through a shuffle buffer seeded by (seed, e) and not
  reshuffled; starting at step k skips the first k * E mod n records of the epoch, still
  encoded (images are decoded after the skip), i.e. it reads at most one epoch of raw records.
- TFDS splits prepared as ArrayRecord (`tfds build NAME --file_format=array_record`) with
  data.loader='grain' are read by index instead (TFDSIndexSource, as_data_source), through
  Grain in the order of the data.path archives (grain_source.IndexedSource: host p reads
  records p, p + P, ...; per-epoch permutations by (seed, host, epoch); flips by (seed, host,
  step)): starting at step k reads nothing before it. Same preprocessing as the stream.

Bad input. An example whose image does not decode (empty, not an image, truncated) is flagged
rather than failing the pipeline, then counted, logged with its path (folders) or TFDS record
id, and replaced in its batch by the batch's good examples (sources.BadRecords), up to
data.max_bad_records.
"""

import dataclasses
import logging
import os
from typing import Callable, Iterator

import numpy as np

from gan_zoo.data import grain_source
from gan_zoo.data.sources import BadRecords, Layout, bad_record_limit

log = logging.getLogger("gan_zoo.data")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_END = 2**62  # "forever" for tf.data ranges


def _preprocess(encoded, label, resolution: int, flip: bool, seed):
    """Encoded image -> float32 [r, r, 3] in [-1, 1]: decode, centre crop, area resize, flip."""
    import tensorflow as tf  # noqa: PLC0415

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    image = tf.image.resize(image, (resolution, resolution), method="area", antialias=True)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed)
    return {"image": tf.cast(image, tf.float32) / 127.5 - 1.0, "label": tf.cast(label, tf.int32)}


def _decoded_or_flagged(record, resolution: int, flip: bool, seed):
    """(encoded, label, id) -> a one-example dataset: the preprocessed example with ok=True, or,
    when decoding fails, a zero image with ok=False (decode errors cannot be caught inside a
    graph function; ignore_errors on a one-element dataset can)."""
    import tensorflow as tf  # noqa: PLC0415

    encoded, label, record_id = record
    good = tf.data.Dataset.from_tensors((encoded, label)).map(
        lambda e, y: dict(_preprocess(e, y, resolution, flip, seed), ok=True, id=record_id))
    bad = tf.data.Dataset.from_tensors(dict(
        image=tf.zeros([resolution, resolution, 3], tf.float32), label=tf.cast(label, tf.int32),
        ok=False, id=record_id))
    return good.ignore_errors().concatenate(bad).take(1)


@dataclasses.dataclass
class TFSource:
    """A tf.data source read by example index (see the module docstring).

    records(layout, start) -> tf.data.Dataset of (encoded image, label, record id): this
    host's example stream from stream index `start` on.
    """

    records: Callable
    n_classes: int
    data_cfg: object
    resolution: int
    seed: int
    num_records: int = 0  # the dataset's size (data.max_bad_records may be a fraction of it)
    where: str = "data"  # names the dataset in messages

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        import tensorflow as tf  # noqa: PLC0415

        layout.check()
        start = start_step * layout.sub_batches * layout.accum * layout.local_batch
        ds = tf.data.Dataset.zip(self.records(layout, start), tf.data.Dataset.range(start, _END))
        flip_key = self.seed * 65_536 + layout.process_index  # (seed, host); i is the stream index
        # One-example datasets in, one example out each: deterministic interleave keeps the order.
        ds = ds.interleave(lambda ex, i: _decoded_or_flagged(
            ex, self.resolution, self.data_cfg.flip, tf.stack([tf.constant(flip_key, tf.int64),
                                                               i])),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(layout.local_batch, drop_remainder=True).batch(layout.accum)
        ds = ds.batch(layout.sub_batches).prefetch(tf.data.AUTOTUNE)
        bad = BadRecords(bad_record_limit(self.data_cfg, self.num_records), self.where)
        for batch in ds.as_numpy_iterator():
            ok, ids = batch.pop("ok"), batch.pop("id")
            yield bad.fill(batch, ok, ids, lead=3)  # [S, A, b, ...]


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
                         f"'folder', nor a TFDS dataset; for your own images prepare them "
                         f"with `python -m gan_zoo.tools.dataset` and set data.path") from e
    if not builder.is_prepared():
        raise _tfds_missing(name, data_cfg.data_dir)
    label_key = "label" if "label" in builder.info.features else None
    n_classes = builder.info.features["label"].num_classes if label_key else 1
    indexed = _by_index(builder, data_cfg, resolution, seed, label_key, n_classes)
    if indexed is not None:
        return indexed

    def records(layout: Layout, start: int):
        import tensorflow as tf  # noqa: PLC0415

        split = tfds.split_for_jax_process(data_cfg.split, process_index=layout.process_index,
                                           process_count=layout.process_count)
        n = builder.info.splits[split].num_examples
        if n == 0:
            raise ValueError(f"data.split={data_cfg.split!r} of {name!r}: host "
                             f"{layout.process_index}/{layout.process_count} has no examples")
        # Encoded images in the stored order (deterministic: files and records not shuffled).
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()},
                                read_config=tfds.ReadConfig(add_tfds_id=True))
        ds = ds.map(lambda ex: (ex["image"], ex[label_key] if label_key else tf.constant(0),
                                ex["tfds_id"]))
        buffer = max(min(data_cfg.shuffle_buffer, n), 1)

        def epoch(e):  # the epoch's order: a shuffle buffer seeded by (seed, e), not reshuffled
            return ds.shuffle(buffer, seed=seed * 1_000_003 + e, reshuffle_each_iteration=False)
        first, skip = divmod(start, n)
        return tf.data.Dataset.range(first, _END).flat_map(epoch).skip(skip)
    total = builder.info.splits[data_cfg.split].num_examples
    return TFSource(records, n_classes, data_cfg, resolution, seed, total,
                    f"data.name={name!r} split {data_cfg.split!r}")


def _by_index(builder, data_cfg, resolution, seed, label_key, n_classes):
    """A split prepared as ArrayRecord, served by Grain (tf.data cannot read it: TFDS has no
    as_dataset for ArrayRecord files); None for other formats (streamed: logged)."""
    loader, file_format = grain_source.check_loader(data_cfg), builder.info.file_format.value
    if file_format != "array_record":
        log.info("data.name=%r is read as a record stream (%s, data.loader=%r): a resumed run "
                 "skips up to one epoch of records; for exact O(1) resume prepare it as "
                 "ArrayRecord (`tfds build %s --file_format=array_record --data_dir=...`) with "
                 "data.loader='grain'", data_cfg.name, file_format, loader, data_cfg.name)
        return None
    if loader != "grain":
        raise ValueError(f"data.name={data_cfg.name!r} is prepared as ArrayRecord, which only "
                         f"data.loader='grain' reads (got data.loader='native')")
    return grain_source.GrainSource(
        TFDSIndexSource(builder, data_cfg, resolution, seed, label_key, n_classes))


class TFDSIndexSource(grain_source.IndexedSource):
    """A TFDS split prepared as ArrayRecord, read by record index (see the module docstring)."""

    def __init__(self, builder, data_cfg, resolution: int, seed: int, label_key, n_classes):
        import tensorflow_datasets as tfds  # noqa: PLC0415

        split = data_cfg.split
        self.records = builder.as_data_source(
            split=split, decoders={"image": tfds.decode.SkipDecoding()})
        self.num_records, self.label_key, self.n_classes = len(self.records), label_key, n_classes
        self.data_cfg, self.resolution, self.seed = data_cfg, resolution, seed
        self.where = f"data.name={data_cfg.name!r} split {split!r}"
        import tensorflow as tf  # noqa: PLC0415

        # The stream's preprocessing without its flip (seeded by step here), traced once here
        # (not by each of Grain's threads); eager TensorFlow costs ~8x more per image.
        self._decode = tf.function(
            lambda raw: _preprocess(raw, 0, resolution, False, None)["image"]
        ).get_concrete_function(tf.TensorSpec([], tf.string))

    def read_into(self, out: np.ndarray, index: int, flip: bool) -> tuple[bool, int]:
        import tensorflow as tf  # noqa: PLC0415

        record = self.records[index]
        label = int(record[self.label_key]) if self.label_key else 0
        try:
            image = self._decode(tf.constant(record["image"]))
        except Exception:  # noqa: BLE001 (counted by BadRecords)
            return False, label
        out[...] = image.numpy()[:, ::-1] if flip else image.numpy()
        return True, label

    def record_name(self, index: int) -> str:
        return f"{self.data_cfg.split}[{index}]"


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
            if not classes and os.path.normpath(dirpath) != os.path.normpath(root):
                continue
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTS):
                    paths.append(os.path.join(dirpath, f))
                    labels.append(label)
    if not paths:
        raise FileNotFoundError(f"data.data_dir={root!r}: no images ({', '.join(IMAGE_EXTS)})")
    return paths, labels, classes or ["all"]


def folder_source(data_cfg, resolution: int, seed: int) -> TFSource:
    """Images under data_cfg.data_dir; host p reads every process_count-th file, in a
    per-epoch permutation index_shuffle(seed, epoch, host) (random access: exact resume)."""
    paths, labels, classes = list_folder(data_cfg.data_dir)

    def records(layout: Layout, start: int):
        import tensorflow as tf  # noqa: PLC0415

        p = np.asarray(paths)[layout.process_index::layout.process_count]
        y = np.asarray(labels, np.int32)[layout.process_index::layout.process_count]
        if not len(p):
            raise ValueError(f"data.data_dir={data_cfg.data_dir!r}: {len(paths)} images, fewer "
                             f"than the {layout.process_count} hosts")
        p, y, n = tf.constant(p), tf.constant(y), len(p)

        def pick(i):  # stream index i -> file index_shuffle(i mod n) of epoch i // n
            key = tf.stack([tf.constant(seed * 65_536 + layout.process_index, tf.int64), i // n])
            j = tf.random.experimental.index_shuffle(i % n, key, n - 1)
            return tf.io.read_file(p[j]), y[j], p[j]
        return tf.data.Dataset.range(start, _END).map(
            pick, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return TFSource(records, len(classes), data_cfg, resolution, seed, len(paths),
                    f"data.data_dir={data_cfg.data_dir!r}")
