"""The random-access sources served by Grain (`data.loader='grain'`, issue #17 item 1).

Which sources. The built-in in-memory datasets (sources.InMemorySource: `digits`, `photos`),
the `data.path` archives (archive.ArchiveSource: the dataset tool's output, NVlabs zips and
folders) and TFDS datasets prepared as ArrayRecord (tf_sources.TFDSIndexSource: read by index
through `tfds.data_source`). TFDS datasets prepared as tfrecord (tf_sources.TFSource),
`data.name='folder'` (tf.data) and the caption streams (captions: webdataset tars / TFDS captions
read in order) stay on their present code: they are read as sequential record streams, not by
index, so Grain's random-access MapDataset cannot serve them.

What Grain does. A `grain.MapDataset` indexes the host's example stream (archives) or its steps
(in-memory: one element is one step's batch, since those sources sample with replacement per
step); `.map` decodes (and flips) each element, `to_iter_dataset(ReadOptions)` runs the maps in
Grain's thread pool with a bounded prefetch buffer, and `IterDataset.batch` stacks one step's
examples. The device transfer stays in pipeline.prefetch_to_devices (all sources share it).

Order, sharding, shuffling: the same as the native loaders, so both loaders give identical
batches for a seed and step (tested). Host p of P (Layout.process_index/count, which the trainer
fills from jax.process_index()/process_count(), i.e. what grain.ShardByJaxProcess reads) reads
archive images p, p + P, ...; each epoch visits them in a permutation seeded by (seed, p, epoch);
flips are seeded by (seed, p, step). Grain's own `MapDataset.shuffle` would give another order,
so a run switched between loaders, or resumed from a checkpoint of the native one, would not
continue the same stream.

Resume: the iterator is positioned from the step, not restored from a saved Grain iterator
state. Every batch is a pure function of (seed, layout, step) and the Orbax checkpoint already
holds the step, so `MapDataset.range(start_step * E, ...)` starts exactly where the
uninterrupted run would be, in O(1) (nothing is read or skipped). A saved Grain state would only
repeat that number, and it would count examples of one layout: staged runs (ProGAN) reopen the
stream with another batch size at a stage boundary, where a step-based position stays right.

Grain is imported when a loader is built, so `import gan_zoo` does not import it.
"""

import functools
import sys
from typing import Iterator

import numpy as np

from gan_zoo.data.archive import ArchiveSource
from gan_zoo.data.sources import BadRecords, InMemorySource, Layout, bad_record_limit

LOADERS = ("native", "grain")
IN_MEMORY_THREADS = 2  # steps computed ahead in parallel (each is one whole batch)
ARCHIVE_THREADS = 8  # images decoded in parallel (PIL decodes outside the GIL)
PREFETCH_STEPS = 1  # archive steps decoded ahead of the one being consumed (as the native one)


def check_loader(data_cfg) -> str:
    """data.loader ('native' when the config has none), checked."""
    loader = data_cfg.get("loader", "grain")
    if loader not in LOADERS:
        raise ValueError(f"data.loader={loader!r}: expected one of {LOADERS}")
    return loader


class IndexedSource:
    """A dataset read by record index, in the order of archive.ArchiveSource (module docstring):
    host p of P reads records p, p + P, ...; epoch e visits them in a permutation seeded by
    (seed, p, e); flips are seeded by (seed, p, step). A subclass sets num_records, resolution,
    seed, data_cfg (flip, max_bad_records), where (names the data in messages) and n_classes,
    and defines read_into and record_name."""

    num_records: int
    resolution: int
    seed: int
    data_cfg: object
    where: str

    def host_images(self, layout: Layout) -> int:
        n_host = len(range(layout.process_index, self.num_records, layout.process_count))
        if not n_host:
            raise ValueError(f"{self.where}: {self.num_records} records, fewer than the "
                             f"{layout.process_count} hosts")
        return n_host

    def order(self, layout: Layout, epoch: int) -> np.ndarray:
        """Record indices of this host's records in epoch `epoch`'s order."""
        own = np.arange(layout.process_index, self.num_records, layout.process_count)
        return own[np.random.default_rng([self.seed, layout.process_index, epoch])
                   .permutation(len(own))]

    def flips(self, layout: Layout, step: int, n: int) -> np.ndarray:
        if not self.data_cfg.flip:
            return np.zeros(n, bool)
        return np.random.default_rng([self.seed, layout.process_index, step]).random(n) < 0.5

    def read_into(self, out: np.ndarray, index: int, flip: bool) -> tuple[bool, int]:
        """Decodes record `index` into out (float32 [r, r, 3] in [-1, 1]): (ok, label)."""
        raise NotImplementedError

    def record_name(self, index: int) -> str:
        raise NotImplementedError


class _ArchiveRecords(IndexedSource):
    """An ArchiveSource as an IndexedSource (its own order, flips and decoding)."""

    def __init__(self, source: ArchiveSource):
        self.source, self.num_records = source, len(source.archive.names)
        self.host_images, self.order, self.flips = source.host_images, source.order, source.flips
        self.resolution, self.data_cfg = source.resolution, source.data_cfg
        self.where = source.where

    def read_into(self, out: np.ndarray, index: int, flip: bool) -> tuple[bool, int]:
        return self.source.load_into(out, index, flip), int(self.source.labels[index])

    def record_name(self, index: int) -> str:
        return self.source.archive.names[index]


class GrainSource:
    """A random-access source read through Grain: the wrapped source's attributes (n_classes,
    labels, archive, ...) and the same `batches(layout, start_step)` stream."""

    def __init__(self, source):
        if not isinstance(source, (InMemorySource, ArchiveSource, IndexedSource)):
            raise TypeError(f"GrainSource serves InMemorySource, ArchiveSource and "
                            f"IndexedSource, got {type(source).__name__}")
        self.source = source

    def __getattr__(self, name):  # only for names GrainSource itself lacks
        if name == "source":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        layout.check()
        if isinstance(self.source, InMemorySource):
            return _in_memory_batches(self.source, layout, start_step)
        if isinstance(self.source, ArchiveSource):
            return _indexed_batches(_ArchiveRecords(self.source), layout, start_step)
        return _indexed_batches(self.source, layout, start_step)


def _read_options(threads: int, buffer: int):
    import grain  # noqa: PLC0415 (lazy: import gan_zoo stays light)

    return grain, grain.ReadOptions(num_threads=threads, prefetch_buffer_size=buffer)


def _in_memory_batches(source: InMemorySource, layout: Layout, start: int) -> Iterator[dict]:
    """Element k of the MapDataset is step start + k's batch (sources.InMemorySource)."""
    grain, options = _read_options(IN_MEMORY_THREADS, IN_MEMORY_THREADS)
    steps = grain.MapDataset.range(start, sys.maxsize)
    return iter(steps.map(functools.partial(source.step_batch, layout)).to_iter_dataset(options))


def _indexed_batches(source: IndexedSource, layout: Layout, start: int) -> Iterator[dict]:
    """Element j of the MapDataset is example start * E + j of this host's stream (E examples
    a step, see the module docstring); batches of E with bad records replaced."""
    shape = (layout.sub_batches, layout.accum, layout.local_batch)
    per_step, n_host, r = int(np.prod(shape)), source.host_images(layout), source.resolution
    order = functools.lru_cache(maxsize=4)(functools.partial(source.order, layout))
    flips = functools.lru_cache(maxsize=2 * (PREFETCH_STEPS + 1))(
        lambda step: source.flips(layout, step, per_step))

    def example(position: int) -> dict:
        step, j = divmod(position, per_step)
        epoch, i = divmod(position, n_host)
        index = int(order(epoch)[i])
        image = np.zeros((r, r, 3), np.float32)
        ok, label = source.read_into(image, index, bool(flips(step)[j]))
        return {"image": image, "label": np.int32(label), "ok": np.bool_(ok),
                "index": np.int64(index)}

    grain, options = _read_options(ARCHIVE_THREADS, (PREFETCH_STEPS + 1) * per_step)
    examples = grain.MapDataset.range(start * per_step, sys.maxsize).map(example)
    stream = examples.to_iter_dataset(options).batch(per_step)
    bad = BadRecords(bad_record_limit(source.data_cfg, source.num_records), source.where)
    for b in stream:
        batch = {"image": b["image"].reshape(shape + (r, r, 3)),
                 "label": b["label"].reshape(shape)}
        if not b["ok"].all():  # name the bad ones only (record_name may build a string)
            names = np.array([source.record_name(int(k)) for k in b["index"]])
            batch = bad.fill(batch, b["ok"].reshape(shape), names.reshape(shape), lead=3)
        yield batch


def wrap(data_cfg, source):
    """source read by the loader data.loader names: Grain for the random-access sources."""
    if check_loader(data_cfg) == "grain" and isinstance(
            source, (InMemorySource, ArchiveSource, IndexedSource)):
        return GrainSource(source)
    return source
