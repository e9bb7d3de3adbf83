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

Order, sharding, shuffling (sources.IndexedSource holds the rules): the same as the native
loaders, so both loaders give identical batches for a seed and step (tested). Host p of P
(Layout.process_index/count, which the trainer fills from jax.process_index()/process_count(),
i.e. what grain.ShardByJaxProcess reads) reads archive images p, p + P, ...; each epoch
visits them in a permutation seeded by (seed, p, epoch); flips are seeded by (seed, p, step).
Grain's own `MapDataset.shuffle` would give another order, so a run switched between loaders,
or resumed from a checkpoint of the native one, would not continue the same stream.

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

from gan_zoo.data.sources import BadRecords, IndexedSource, InMemorySource, Layout, bad_record_limit

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


class GrainSource:
    """A random-access source read through Grain: the wrapped source's attributes (n_classes,
    labels, archive, ...) and the same `batches(layout, start_step)` stream."""

    def __init__(self, source):
        if not isinstance(source, (InMemorySource, IndexedSource)):
            raise TypeError(f"GrainSource serves InMemorySource and IndexedSource (e.g. "
                            f"ArchiveSource), got {type(source).__name__}")
        self.source = source

    def __getattr__(self, name):  # only for names GrainSource itself lacks
        if name == "source":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        layout.check()
        if isinstance(self.source, InMemorySource):
            return _in_memory_batches(self.source, layout, start_step)
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
            source, (InMemorySource, IndexedSource)):
        return GrainSource(source)
    return source
