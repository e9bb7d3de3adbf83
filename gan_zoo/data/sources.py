"""Data sources. Each yields host-local batches for consecutive train steps:
{"image": float32 [S, A, b, H, W, 3] in [-1, 1], "label": int32 [S, A, b]}, where b is this
host's share of the global batch. In-memory sources are indexed by (seed, step): the same step
always gives the same batch, so a resumed run reads exactly what an uninterrupted one would.
"""

import dataclasses
import logging
from typing import Callable, Iterator

import numpy as np

from gan_zoo.data import builtin

log = logging.getLogger("gan_zoo.data")

# data.max_bad_records when a config has none: below 1 a fraction of the dataset's records,
# from 1 on a count.
DEFAULT_MAX_BAD_RECORDS = 0.001


@dataclasses.dataclass(frozen=True)
class Layout:
    """Batch layout of one train step and this host's slice of it."""

    sub_batches: int  # S: real sub-batches per step (one per phase that uses real data)
    accum: int  # A: gradient-accumulation micro-batches
    batch: int  # B: global samples per micro-batch
    process_index: int = 0
    process_count: int = 1

    @property
    def local_batch(self) -> int:
        return self.batch // self.process_count

    def check(self) -> None:
        if self.batch % self.process_count:
            raise ValueError(f"train.batch_size / train.grad_accum = {self.batch} must be "
                             f"divisible by the number of hosts {self.process_count}")


def to_float(images_u8: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] -> float32 in [-1, 1]."""
    return images_u8.astype(np.float32) / 127.5 - 1.0


@dataclasses.dataclass
class InMemorySource:
    """Samples with replacement from in-memory data, one RNG stream per step (resumable).

    draw(rng, n, keep) returns (uint8 images [sum(keep), r, r, 3], int32 labels [sum(keep)]).
    """

    draw: Callable
    n_classes: int
    flip: bool
    seed: int

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        layout.check()
        step = start_step
        while True:
            yield self.step_batch(layout, step)
            step += 1

    def step_batch(self, layout: Layout, step: int) -> dict:
        """This host's batch of train step `step` (a pure function of seed and step)."""
        shape = (layout.sub_batches, layout.accum, layout.batch)
        n = int(np.prod(shape))
        # Deterministic per-host sharding: host p takes samples [p*b, (p+1)*b) of each micro-batch.
        owner = np.arange(layout.batch) // layout.local_batch
        keep = np.broadcast_to(owner == layout.process_index, shape).reshape(-1)
        local = shape[:2] + (layout.local_batch,)
        rng = np.random.default_rng([self.seed, step])
        images, labels = self.draw(rng, n, keep)
        flips = rng.random(n)[keep] < 0.5 if self.flip else np.zeros(keep.sum(), bool)
        images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
        return {"image": to_float(images).reshape(local + images.shape[1:]),
                "label": labels.astype(np.int32).reshape(local)}


class IndexedSource:
    """A dataset read by record index, in the one order all indexed sources share (the
    data.path archives, archive.ArchiveSource, and TFDS ArrayRecord, tf_sources.TFDSIndexSource;
    both loaders, grain_source): host p of P reads records p, p + P, ...; epoch e visits them in
    a permutation seeded by (seed, p, e); flips are seeded by (seed, p, step). A subclass sets
    num_records, resolution, seed, data_cfg (flip, max_bad_records), where (names the data in
    messages) and n_classes, and defines read_into and record_name."""

    num_records: int
    resolution: int
    seed: int
    data_cfg: object
    where: str

    def host_images(self, layout: Layout) -> int:
        """How many records host layout.process_index reads (every process_count-th)."""
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
        """Whether each of the n examples of step `step` is x-flipped (seed, host, step)."""
        if not self.data_cfg.flip:
            return np.zeros(n, bool)
        return np.random.default_rng([self.seed, layout.process_index, step]).random(n) < 0.5

    def read_into(self, out: np.ndarray, index: int, flip: bool) -> tuple[bool, int]:
        """Decodes record `index` into out (float32 [r, r, 3] in [-1, 1]): (ok, label)."""
        raise NotImplementedError

    def record_name(self, index: int) -> str:
        raise NotImplementedError


class BadRecordsError(ValueError):
    """More undecodable records than data.max_bad_records allows."""


class BadRecords:
    """Undecodable records of one host's stream: each is logged once (with its path or record
    id) and replaced in its batch by the batch's good examples, taken in turn (so a batch's
    content depends only on its step: resume stays exact). More than `limit` distinct bad
    records, or a batch with no good one, stop the run naming the first bad ones."""

    SHOWN = 5  # bad ids named in the error

    def __init__(self, limit: int, where: str):
        self.limit, self.where, self.ids = limit, where, {}  # ids: first-seen order

    def _error(self, why: str) -> BadRecordsError:
        first = ", ".join(list(self.ids)[:self.SHOWN])
        more = f" and {len(self.ids) - self.SHOWN} more" if len(self.ids) > self.SHOWN else ""
        return BadRecordsError(f"{self.where}: {why}; undecodable: {first}{more}. Remove or "
                               "fix them, or raise data.max_bad_records")

    def add(self, record_id: str) -> None:
        if record_id in self.ids:
            return
        self.ids[record_id] = None
        log.warning("%s: undecodable record skipped (%d so far, data.max_bad_records allows "
                    "%d): %s", self.where, len(self.ids), self.limit, record_id)
        if len(self.ids) > self.limit:
            raise self._error(f"{len(self.ids)} undecodable records, more than "
                              f"data.max_bad_records allows ({self.limit})")

    def fill(self, batch: dict, ok: np.ndarray, ids: np.ndarray, lead: int) -> dict:
        """batch with its bad examples (ok False) replaced; `lead` batch axes (e.g. S, A, b)."""
        flat_ok = ok.reshape(-1)
        if flat_ok.all():
            return batch
        for i in np.flatnonzero(~flat_ok):
            rid = ids.reshape(-1)[i]
            self.add(rid.decode(errors="replace") if isinstance(rid, bytes) else str(rid))
        good, bad = np.flatnonzero(flat_ok), np.flatnonzero(~flat_ok)
        if not len(good):
            raise self._error("a whole batch is undecodable")
        out = {}
        for k, v in batch.items():
            flat = v.reshape((-1,) + v.shape[lead:]).copy()
            flat[bad] = flat[good[np.arange(len(bad)) % len(good)]]
            out[k] = flat.reshape(v.shape)
        return out


def bad_record_limit(data_cfg, num_records: int) -> int:
    """data.max_bad_records as a count: a value below 1 is a fraction of num_records."""
    value = data_cfg.get("max_bad_records", DEFAULT_MAX_BAD_RECORDS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"data.max_bad_records={value!r}: expected a count (>= 1), a fraction "
                         "of the dataset (< 1), or 0")
    return int(value) if value >= 1 else int(value * num_records)


def digits_source(data_cfg, resolution: int, seed: int) -> InMemorySource:
    images, labels = builtin.load_digits(resolution)

    def draw(rng, n, keep):
        idx = rng.integers(0, len(images), n)[keep]
        return images[idx], labels[idx]
    return InMemorySource(draw, 10, data_cfg.flip, seed)


def photos_source(data_cfg, resolution: int, seed: int) -> InMemorySource:
    if not 32 <= resolution <= 256:
        raise ValueError(f"data.name='photos' supports resolutions 32 to 256, got {resolution}")
    photos = builtin.load_photos()

    def draw(rng, n, keep):
        images = builtin.photo_crops(photos, rng, n, resolution, keep)
        return images, np.zeros(len(images), np.int32)
    return InMemorySource(draw, 1, data_cfg.flip, seed)


BUILTIN = {"digits": digits_source, "photos": photos_source}

