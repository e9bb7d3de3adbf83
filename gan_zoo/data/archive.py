"""NVlabs-layout image datasets (a zip or a folder, optional dataset.json labels) read by index.

The layout is the one NVlabs' dataset_tool.py writes and the official StyleGAN2-ADA / StyleGAN3
training code reads, and the one gan_zoo.tools.dataset writes: images (any name, in any
sub-folder; the tool writes `00000/img00000000.png`) plus an optional `dataset.json` at the root,
`{"labels": [["00000/img00000000.png", 6], ...]}` (or `"labels": null`). Image order is the
sorted list of image names, as in the official ImageFolderDataset. Selected by `data.path`.

Exact O(1) resume. Host p reads every process_count-th image; its example stream visits them
epoch by epoch, epoch e in a permutation seeded by (seed, host, e), and step k's batch is
stream examples [k * E, (k + 1) * E) (E = examples per step on this host). Starting at step k
only computes the permutation of epoch k * E // n: nothing is read or skipped. Flips are seeded
by (seed, host, step). Undecodable images and images of another size are replaced in their
batch and counted (sources.BadRecords, data.max_bad_records).
"""

import collections
import concurrent.futures
import io
import itertools
import json
import os
import zipfile
from typing import Iterator, Optional

import numpy as np

from gan_zoo.data.sources import BadRecords, IndexedSource, Layout, bad_record_limit, to_float

LABELS_FILE = "dataset.json"
DECODE_THREADS = 8  # PIL decodes outside the GIL
PREFETCH_STEPS = 1  # steps decoded ahead of the one being consumed


def image_extensions() -> set:
    """Lower-case extensions PIL can open (as NVlabs' is_image_ext: PIL.Image.EXTENSION)."""
    from PIL import Image  # noqa: PLC0415

    return {ext.lower() for ext in Image.registered_extensions()}


class ImageArchive:
    """A zip file or a folder of images: sorted '/'-separated names, bytes by name, labels."""

    def __init__(self, path: str, what: str = "data.path"):
        self.what = what
        self.path = path = os.path.expanduser(path)  # '--x=~/...': the shell leaves the ~
        if os.path.isdir(path):
            self._zip = None
            names = [os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
                     for d, _, files in os.walk(path) for f in files]
        elif os.path.isfile(path) and zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)  # readable from several threads (Python >= 3.5)
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
        else:
            raise FileNotFoundError(f"{what}={path!r}: not a folder or a zip file of images")
        exts = image_extensions()
        self.names = sorted(n for n in names if os.path.splitext(n)[1].lower() in exts)
        self._all = set(names)

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        with open(os.path.join(self.path, name), "rb") as f:
            return f.read()

    def labels(self) -> Optional[dict]:
        """{image name: label} from the root dataset.json, or None (no file, or labels null)."""
        if LABELS_FILE not in self._all:
            return None
        return read_labels(self.read(LABELS_FILE), f"{self.path}/{LABELS_FILE}")


def read_labels(raw: bytes, where: str) -> Optional[dict]:
    """dataset.json bytes -> {name: label} or None when "labels" is null."""
    try:
        meta = json.loads(raw)
        labels = meta["labels"]
        return None if labels is None else {str(k): v for k, v in labels}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{where}: expected {{\"labels\": [[name, label], ...] or null}} "
                         f"({type(e).__name__}: {e})") from e


class WrongMode(ValueError):
    """An image that decodes but is neither RGB nor grayscale (e.g. RGBA, CMYK, 16-bit)."""


def decode_rgb(raw: bytes) -> np.ndarray:
    """Encoded image -> uint8 [H, W, 3] (grayscale and palette images expanded to RGB)."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(raw)) as img:
        if img.mode not in ("RGB", "L", "P", "1"):
            raise WrongMode(f"mode {img.mode} (expected RGB or grayscale)")
        return np.asarray(img.convert("RGB"))


def class_labels(archive: ImageArchive) -> tuple[np.ndarray, int]:
    """(int32 class index per image, number of classes) from dataset.json; (zeros, 1) without."""
    labels = archive.labels()
    if labels is None:
        return np.zeros(len(archive.names), np.int32), 1
    where = f"{archive.what}={archive.path!r} {LABELS_FILE}"
    missing = [n for n in archive.names if n not in labels]
    if missing:
        raise ValueError(f"{where}: no label for {len(missing)} images, e.g. {missing[:3]}")
    values = [labels[n] for n in archive.names]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise ValueError(f"{where}: labels must be class indices >= 0 (gan_zoo's conditional "
                         f"models take classes, not label vectors), got e.g. {bad[0]!r}")
    y = np.asarray(values, np.int32)
    return y, int(y.max()) + 1 if len(y) else 1


class ArchiveSource(IndexedSource):
    """Batches {"image": float32 [S, A, b, r, r, 3], "label": int32 [S, A, b]} from an
    ImageArchive; the order, sharding and flips are sources.IndexedSource's (see the module
    docstring for the resume)."""

    def __init__(self, data_cfg, resolution: int, seed: int):
        self.archive = ImageArchive(data_cfg.path)
        if not self.archive.names:
            raise FileNotFoundError(f"data.path={data_cfg.path!r}: no images")
        self.labels, self.n_classes = class_labels(self.archive)
        self.num_records = len(self.archive.names)
        self.data_cfg, self.resolution, self.seed = data_cfg, resolution, seed
        self.where = f"data.path={data_cfg.path!r}"
        self._check_resolution()

    def _check_resolution(self) -> None:
        """The first decodable image has the model's resolution (else stop with the fix)."""
        for name in self.archive.names[:16]:
            try:
                shape = decode_rgb(self.archive.read(name)).shape
            except Exception:  # noqa: BLE001 (bad files are counted when read for training)
                continue
            if shape[:2] != (self.resolution, self.resolution):
                raise ValueError(
                    f"{self.where}: images are {shape[1]}x{shape[0]} ({name}) but "
                    f"config.model.resolution={self.resolution}. Prepare the data at that "
                    f"resolution: python -m gan_zoo.tools.dataset --source=<images> "
                    f"--dest=<out.zip> --resolution={self.resolution}")
            return

    def load_into(self, out: np.ndarray, index: int, flip: bool) -> bool:
        """Decodes image `index` into out (float32 [r, r, 3] in [-1, 1], x-flipped if `flip`);
        False when it does not decode or has another size (out left as is)."""
        try:
            img = decode_rgb(self.archive.read(self.archive.names[index]))
        except Exception:  # noqa: BLE001 (counted by BadRecords)
            return False
        if img.shape != (self.resolution, self.resolution, 3):
            return False
        out[...] = to_float(img[:, ::-1] if flip else img)
        return True

    def read_into(self, out: np.ndarray, index: int, flip: bool) -> tuple[bool, int]:
        return self.load_into(out, index, flip), int(self.labels[index])

    def record_name(self, index: int) -> str:
        return self.archive.names[index]

    def batches(self, layout: Layout, start_step: int = 0) -> Iterator[dict]:
        """Step after step from start_step; the next PREFETCH_STEPS steps decode meanwhile."""
        layout.check()
        n_host = self.host_images(layout)
        shape = (layout.sub_batches, layout.accum, layout.local_batch)
        bad = BadRecords(bad_record_limit(self.data_cfg, self.num_records), self.where)
        orders = {}  # epoch -> this host's order (the live ones only)

        def indices(step: int) -> np.ndarray:  # archive index of each example of `step`
            per_step = int(np.prod(shape))
            stream = np.arange(step * per_step, (step + 1) * per_step)
            epochs = stream // n_host
            for e in set(epochs.tolist()) - set(orders):
                orders[e] = self.order(layout, e)
            idx = np.array([orders[e][i % n_host] for e, i in zip(epochs, stream)])
            for e in [e for e in orders if e < epochs[0]]:
                del orders[e]
            return idx

        pool = concurrent.futures.ThreadPoolExecutor(DECODE_THREADS)
        pending = collections.deque()
        try:
            for step in itertools.count(start_step):
                while len(pending) <= PREFETCH_STEPS:
                    ahead = step + len(pending)
                    pending.append(self._submit(pool, indices(ahead), ahead, layout))
                yield self._batch(*pending.popleft(), shape, bad)
        finally:  # no join: a generator closed at interpreter exit must not wait on threads
            pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, pool, idx: np.ndarray, step: int, layout: Layout) -> tuple:
        """Starts decoding step `step`'s images: (idx, float32 [n, r, r, 3], futures)."""
        r = self.resolution
        flips = self.flips(layout, step, len(idx))
        images = np.zeros((len(idx), r, r, 3), np.float32)
        futures = [pool.submit(self.load_into, images[j], i, f)
                   for j, (i, f) in enumerate(zip(idx, flips))]
        return idx, images, futures

    def _batch(self, idx, images, futures, shape, bad: BadRecords) -> dict:
        ok = np.array([f.result() for f in futures])
        r = self.resolution
        batch = {"image": images.reshape(shape + (r, r, 3)),
                 "label": self.labels[idx].reshape(shape)}
        names = np.array([self.archive.names[i] for i in idx])
        return bad.fill(batch, ok.reshape(shape), names.reshape(shape), lead=3)


def archive_source(data_cfg, resolution: int, seed: int) -> ArchiveSource:
    """The dataset at data_cfg.path (the dataset tool's output, or an NVlabs zip/folder)."""
    return ArchiveSource(data_cfg, resolution, seed)
