"""Image-caption sources for text-to-image training (StyleGAN-T, spec stylegan_xl_and_t.md §2.6,
§5 "WebDataset-style streaming"). Each yields host-local batches for consecutive train steps:
{"image": float32 [S, A, b, r, r, 3] in [-1, 1], "tokens": int32 [S, A, b, context_length]}
(CLIP BPE ids, tokenised here on the host; feature_nets.clip_tokenizer).

Sources (data.name):
- "digits_captions": scikit-learn digits with captions such as "a handwritten digit seven"; the
  phrasing is PHRASINGS[record % len(PHRASINGS)], so a record always has the same caption.
- "caption_folder": data.data_dir holds images (any depth) and same-named .txt captions
  (`a/b.jpg` + `a/b.txt`).
- "caption_tar": WebDataset-style .tar shards (data.data_dir: a folder of *.tar or a glob); a
  sample is the members sharing a key (`000123.jpg` + `000123.txt`).
- "coco_captions" (or "tfds_captions" + data.tfds_name, data.caption_key): a prepared TFDS
  dataset in data.data_dir, one of each example's captions per visit.

Resume and sharding (step s always gets the same batch, from step 0 or resumed at s):
- digits: in memory, sampled with replacement per (seed, step) as the built-in image sources
  (gan_zoo.data.sources); host p keeps samples [p b, (p + 1) b) of every micro-batch.
- folder and tar: each host reads its own records (disjoint, together complete) as a stream;
  step s consumes stream records [s n, (s + 1) n) (n = S A b on this host). Folder: host p's
  files are p, p + P, ..., visited per epoch e in the order rng(seed, e, p) (random access, so
  resuming costs nothing). Tar: host p's shards are p, p + P, ..., visited per epoch in the order
  rng(seed, e, p), each shard's samples in the order rng(seed, e, p, shard); on resume whole
  shards are skipped by their header counts (a shard is read into memory when visited).

Images: decoded with PIL to RGB, centre-cropped to a square, resized to r (box filter when
shrinking, bicubic when enlarging). Bad records (undecodable image, missing or empty caption)
keep their place in the stream, are logged once with their path and counted, and are replaced in
their batch by the batch's good examples (sources.BadRecords; data.max_bad_records).
"""

import dataclasses
import glob
import io
import os
import tarfile
from typing import Callable, Iterator, Optional

import numpy as np

from gan_zoo.data import builtin
from gan_zoo.data.sources import BadRecords, Layout, bad_record_limit, to_float
from gan_zoo.feature_nets import clip_tokenizer

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PHRASINGS = ("a handwritten digit {}", "a photo of the number {}", "the digit {} written by hand",
             "a white {} on a black background")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
Record = tuple  # (uint8 image [r, r, 3] | None, caption | None, record id: path or path:key)


def digit_caption(label: int, record: int) -> str:
    """The caption of digits record `record` with class `label`."""
    return PHRASINGS[record % len(PHRASINGS)].format(DIGIT_WORDS[label])


def decode_image(data: bytes, resolution: int) -> np.ndarray:
    """Encoded image -> uint8 [r, r, 3]: RGB, centre square crop, resize. Raises on bad data."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        filt = Image.Resampling.BOX if s >= resolution else Image.Resampling.BICUBIC
        return np.asarray(im.resize((resolution, resolution), filt), np.uint8)


def make_record(image_bytes: Optional[bytes], text: Optional[str], rid: str,
                resolution: int) -> Record:
    """A record with None for an undecodable image or a missing/empty caption; the id says why."""
    caption = text.strip() if text is not None else None
    if not caption:
        return None, None, f"{rid} ({'empty' if text is not None else 'missing'} caption)"
    if image_bytes is None:
        return None, None, f"{rid} (no image)"
    try:
        return decode_image(image_bytes, resolution), caption, rid
    except Exception as e:  # noqa: BLE001 (PIL raises many types for bad files)
        return None, None, f"{rid} (undecodable image: {type(e).__name__})"


def assemble(records: list, flips: np.ndarray, layout: Layout, resolution: int,
             context_length: int, bad: BadRecords) -> dict:
    """Host-local records (S * A * b of them, in order) -> the batch dict; bad ones replaced."""
    ok = np.array([r[0] is not None for r in records])
    images = np.zeros((len(records), resolution, resolution, 3), np.uint8)
    for i, (im, _, _) in enumerate(records):
        if im is not None:
            images[i] = im[:, ::-1] if flips[i] else im
    tokens = clip_tokenizer.tokenize([r[1] or "" for r in records], context_length)
    local = (layout.sub_batches, layout.accum, layout.local_batch)
    batch = {"image": to_float(images).reshape(local + images.shape[1:]),
             "tokens": tokens.astype(np.int32).reshape(local + tokens.shape[1:])}
    ids = np.array([r[2] for r in records], dtype=object)
    return bad.fill(batch, ok.reshape(local), ids.reshape(local), 3)


@dataclasses.dataclass
class IndexedCaptionSource:
    """Random-access records load(i) -> Record, sampled with replacement per (seed, step)."""

    load: Callable[[int], Record]
    num_records: int
    resolution: int
    flip: bool
    seed: int
    bad_limit: int
    where: str  # names the source in bad-record messages
    context_length: int = clip_tokenizer.CONTEXT_LENGTH
    bad: Optional[BadRecords] = None  # set by batches(): the bad records seen so far

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        layout.check()
        shape = (layout.sub_batches, layout.accum, layout.batch)
        n = int(np.prod(shape))
        owner = np.arange(layout.batch) // layout.local_batch  # host p: [p b, (p + 1) b)
        keep = np.broadcast_to(owner == layout.process_index, shape).reshape(-1)
        self.bad = BadRecords(self.bad_limit, self.where)
        step = start_step
        while True:
            rng = np.random.default_rng([self.seed, step])
            idx = rng.integers(0, self.num_records, n)[keep]
            flips = (rng.random(n) < 0.5)[keep] if self.flip else np.zeros(len(idx), bool)
            records = [self.load(int(i)) for i in idx]
            yield assemble(records, flips, layout, self.resolution, self.context_length,
                           self.bad)
            step += 1


def _context_length(data_cfg) -> int:
    return int(data_cfg.get("context_length", clip_tokenizer.CONTEXT_LENGTH))


def _stream_fields(data_cfg, resolution: int, seed: int) -> dict:
    """The StreamBatches fields of a source built from config.data."""
    return dict(resolution=resolution, flip=data_cfg.flip, seed=seed, data_cfg=data_cfg,
                context_length=_context_length(data_cfg))


def digits_captions_source(data_cfg, resolution: int, seed: int) -> IndexedCaptionSource:
    images, labels = builtin.load_digits(resolution)

    def load(i: int) -> Record:
        return images[i], digit_caption(int(labels[i]), i), f"digits[{i}]"
    return IndexedCaptionSource(load, len(images), resolution, data_cfg.flip, seed,
                                bad_limit=0, where="data.name='digits_captions'",
                                context_length=_context_length(data_cfg))


def list_folder(root: str) -> list:
    """Image paths under root (relative, sorted), each a record whose caption is <stem>.txt."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data.data_dir={root!r}: no such folder (caption_folder)")
    out = [os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root)
           for f in files if f.lower().endswith(IMAGE_EXTS)]
    if not out:
        raise FileNotFoundError(f"data.data_dir={root!r}: no images ({', '.join(IMAGE_EXTS)})")
    return sorted(out)


def _read(path: str, mode: str = "rb"):
    if not os.path.isfile(path):
        return None
    with open(path, mode, encoding=None if "b" in mode else "utf-8") as f:
        return f.read()


@dataclasses.dataclass(kw_only=True)
class StreamBatches:
    """Batches of a host record stream: step s takes stream records [s n, (s + 1) n), n = S A b;
    the flips are drawn from (seed, step, host). Subclasses define records(layout, start), which
    sets `bad`; the fields below are common to every stream source (keyword-only)."""

    resolution: int
    flip: bool
    seed: int
    data_cfg: object  # data.max_bad_records (and each source's own data.* fields)
    context_length: int = clip_tokenizer.CONTEXT_LENGTH
    bad: Optional[BadRecords] = None  # set by records(): the bad records seen so far

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        layout.check()
        n = layout.sub_batches * layout.accum * layout.local_batch
        self.bad = None
        stream = self.records(layout, start_step * n)
        step = start_step
        while True:
            records = [next(stream) for _ in range(n)]
            rng = np.random.default_rng([self.seed, step, layout.process_index])
            flips = rng.random(n) < 0.5 if self.flip else np.zeros(n, bool)
            yield assemble(records, flips, layout, self.resolution, self.context_length,
                           self.bad)
            step += 1


@dataclasses.dataclass
class FolderCaptionSource(StreamBatches):
    """Images + same-named .txt under root; host p streams files p, p + P, ... in the order
    rng(seed, epoch, p) per epoch (random access: resuming costs nothing)."""

    root: str
    files: list  # relative image paths (list_folder)

    def load(self, rel: str) -> Record:
        path = os.path.join(self.root, rel)
        text = _read(os.path.splitext(path)[0] + ".txt", "r")
        return make_record(_read(path), text, path, self.resolution)

    def records(self, layout: Layout, start: int = 0) -> Iterator[Record]:
        """This host's infinite record stream from position `start`."""
        mine = self.files[layout.process_index::layout.process_count]
        if not mine:
            raise ValueError(f"data.data_dir={self.root!r}: {len(self.files)} images, fewer "
                             f"than the {layout.process_count} hosts")
        self.bad = self.bad or BadRecords(bad_record_limit(self.data_cfg, len(self.files)),
                                          f"data.data_dir={self.root!r}")
        epoch, skip = divmod(start, len(mine))
        while True:
            order = np.random.default_rng([self.seed, epoch, layout.process_index]).permutation(
                len(mine))
            for j in order[skip:]:
                yield self.load(mine[j])
            skip = 0
            epoch += 1


def caption_folder_source(data_cfg, resolution: int, seed: int) -> FolderCaptionSource:
    return FolderCaptionSource(data_cfg.data_dir, list_folder(data_cfg.data_dir),
                               **_stream_fields(data_cfg, resolution, seed))


# ----------------------------------------------------------------------------------------------
# WebDataset-style tar shards.

def sample_key(member_name: str) -> tuple[str, str]:
    """WebDataset key and extension: 'd/000123.seg.jpg' -> ('d/000123', 'seg.jpg')."""
    folder, base = os.path.split(member_name)
    stem, _, ext = base.partition(".")
    return os.path.join(folder, stem), ext.lower()


def shard_keys(path: str) -> list:
    """The sample keys of a shard in member order (reads headers only)."""
    with tarfile.open(path) as tar:
        keys = dict.fromkeys(sample_key(m.name)[0] for m in tar if m.isfile())
    return list(keys)


def read_shard(path: str, resolution: int) -> list:
    """All samples of a shard as Records, in member order."""
    samples: dict = {}
    with tarfile.open(path) as tar:
        for m in tar:
            if m.isfile():
                key, ext = sample_key(m.name)
                samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    records = []
    for key, parts in samples.items():
        image = next((parts[e] for e in parts if "." + e.rsplit(".", 1)[-1] in IMAGE_EXTS), None)
        text = parts["txt"].decode("utf-8", errors="replace") if "txt" in parts else None
        records.append(make_record(image, text, f"{path}:{key}", resolution))
    return records


def list_shards(spec: str) -> list:
    """Shard paths: every *.tar in a folder, or the matches of a glob, sorted."""
    paths = sorted(glob.glob(os.path.join(spec, "*.tar")) if os.path.isdir(spec)
                   else glob.glob(spec))
    if not paths:
        raise FileNotFoundError(f"data.data_dir={spec!r}: no .tar shards found (caption_tar)")
    return paths


@dataclasses.dataclass
class TarShardSource(StreamBatches):
    """Streams WebDataset-style shards; per-host shards, exactly resumable (module docstring)."""

    shards: list

    def host_shards(self, layout: Layout) -> list:
        if len(self.shards) < layout.process_count:
            raise ValueError(f"caption_tar: {len(self.shards)} shards for "
                             f"{layout.process_count} hosts; every host needs at least one")
        return self.shards[layout.process_index::layout.process_count]

    def records(self, layout: Layout, start: int = 0) -> Iterator[Record]:
        """This host's infinite record stream from position `start`."""
        shards = self.host_shards(layout)
        counts = [len(shard_keys(s)) for s in shards]
        total = sum(counts)
        if not total:
            raise ValueError(f"caption_tar: the shards of host {layout.process_index} are empty: "
                             f"{shards[:3]}")
        self.bad = self.bad or BadRecords(bad_record_limit(self.data_cfg, total),
                                          f"data.data_dir={self.data_cfg.data_dir!r}")
        epoch, skip = divmod(start, total)
        while True:
            order = np.random.default_rng([self.seed, epoch, layout.process_index]).permutation(
                len(shards))
            for j in order:
                if skip >= counts[j]:  # whole shard before the start: not read
                    skip -= counts[j]
                    continue
                recs = read_shard(shards[j], self.resolution)
                perm = np.random.default_rng([self.seed, epoch, layout.process_index, j])
                for i in perm.permutation(len(recs))[skip:]:
                    yield recs[i]
                skip = 0
            epoch += 1


def caption_tar_source(data_cfg, resolution: int, seed: int) -> TarShardSource:
    return TarShardSource(list_shards(data_cfg.data_dir),
                          **_stream_fields(data_cfg, resolution, seed))


# ----------------------------------------------------------------------------------------------
# TFDS (coco_captions and other image-text datasets).

@dataclasses.dataclass
class TFDSCaptionSource(StreamBatches):
    """A prepared TFDS dataset with an image and a list of captions per example. Host p reads
    tfds.split_for_jax_process(split); epoch e in the order of a shuffle buffer seeded by
    (seed, e); the caption of stream record i is drawn from rng(seed, host, i) among the
    example's captions. Resuming skips the epoch's first records still encoded."""

    builder: object  # a prepared tfds builder
    split: str
    caption_key: str  # '/'-path of the captions feature ("captions/text" in coco_captions)

    def _dataset(self, layout: Layout):
        import tensorflow_datasets as tfds  # noqa: PLC0415

        split = tfds.split_for_jax_process(self.split, process_index=layout.process_index,
                                           process_count=layout.process_count)
        n = self.builder.info.splits[split].num_examples
        if n == 0:
            raise ValueError(f"data.split={self.split!r}: host {layout.process_index}/"
                             f"{layout.process_count} has no examples")
        ds = self.builder.as_dataset(split=split, shuffle_files=False,
                                     decoders={"image": tfds.decode.SkipDecoding()},
                                     read_config=tfds.ReadConfig(add_tfds_id=True))

        def pick(ex):
            texts = ex
            for k in self.caption_key.split("/"):
                texts = texts[k]
            return ex["image"], texts, ex["tfds_id"]
        return ds.map(pick), n

    def records(self, layout: Layout, start: int = 0) -> Iterator[Record]:
        ds, n = self._dataset(layout)
        total = self.builder.info.splits[self.split].num_examples
        self.bad = self.bad or BadRecords(bad_record_limit(self.data_cfg, total),
                                          f"data.name={self.data_cfg.name!r} split {self.split!r}")
        buffer = max(min(int(self.data_cfg.get("shuffle_buffer", 1000)), n), 1)
        (epoch, skip), i = divmod(start, n), start
        while True:
            order = ds.shuffle(buffer, seed=self.seed * 1_000_003 + epoch,
                               reshuffle_each_iteration=False).skip(skip)
            for image, texts, rid in order.as_numpy_iterator():
                texts = [t.decode("utf-8", errors="replace") for t in np.atleast_1d(texts)]
                pick = np.random.default_rng([self.seed, layout.process_index, i])
                text = texts[pick.integers(len(texts))] if texts else None
                yield make_record(image, text, rid.decode(), self.resolution)
                i += 1
            skip, epoch = 0, epoch + 1


def tfds_captions_source(data_cfg, resolution: int, seed: int) -> TFDSCaptionSource:
    """data.name 'coco_captions' (or 'tfds_captions' with data.tfds_name) from data.data_dir."""
    import tensorflow_datasets as tfds  # noqa: PLC0415

    name = data_cfg.get("tfds_name") or "coco_captions"
    builder = tfds.builder(name, data_dir=data_cfg.data_dir or None)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"data.name={data_cfg.name!r}: TFDS {name!r} is not prepared in data.data_dir="
            f"{data_cfg.data_dir!r}; run `tfds build {name} --data_dir=...` where there is "
            "internet access, then point data.data_dir at it")
    return TFDSCaptionSource(builder, data_cfg.get("split", "train"),
                             data_cfg.get("caption_key", "captions/text"),
                             **_stream_fields(data_cfg, resolution, seed))


SOURCES = {
    "digits_captions": digits_captions_source,
    "caption_folder": caption_folder_source,
    "caption_tar": caption_tar_source,
    "coco_captions": tfds_captions_source,
    "tfds_captions": tfds_captions_source,
}
