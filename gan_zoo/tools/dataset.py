"""Dataset tool: a folder or zip of images -> a training dataset (NVlabs dataset_tool.py semantics).

    python -m gan_zoo.tools.dataset --source=~/downloads/ffhq/images1024x1024 \
        --dest=~/datasets/ffhq-1024x1024.zip --resolution=1024
    python experiments/main.py --config=configs/stylegan2.py:ffhq1024 --workdir=/tmp/ffhq \
        --config.data.path=~/datasets/ffhq-1024x1024.zip

Input: every image PIL can open under --source (a folder, recursively, or a zip), in sorted
name order; labels from --labels or, without it, the source's root dataset.json
(`{"labels": [[name, label], ...]}`, names relative to the source with '/'). Each image is
converted to RGB (grayscale and palette images are expanded), then:
  no --transform       the image must be square; resized to R x R,
  center-crop          the central square (side = the short edge), resized to R x R,
  center-crop-wide     (--resolution=WxH, W >= H) the central rows of the image's aspect W:H,
                       resized to W x H and centred on a black W x W canvas (LSUN cars);
resizing is PIL Lanczos, as NVlabs. An image whose crop is smaller than the output is not
upscaled: it is a bad file.

Output: the NVlabs layout (`00000/img00000000.png`, uncompressed PNGs, and `dataset.json` with
the labels or `"labels": null`), in a zip (--dest ending in .zip, stored uncompressed) or a
folder. Why this format rather than ArrayRecord shards: zips prepared by the official
StyleGAN2-ADA / StyleGAN3 tool are then read by gan_zoo unchanged and ours by the official code,
a zip member is read by offset (random access, which is all exact resume needs), and it adds no
dependency. Numbering is continuous over the written images.

Bad files are never dropped silently: undecodable, wrong mode (e.g. CMYK, RGBA, 16-bit), not
square (without --transform), too small, and unreadable or missing labels are each listed on
stderr as they are met and again in the summary, and counted. The exit status is 0 when at least
one image was written.
"""

import argparse
import concurrent.futures
import dataclasses
import io
import json
import os
import sys
import time
import zipfile
from typing import Optional

import numpy as np

from gan_zoo.data.archive import LABELS_FILE, ImageArchive, WrongMode, decode_rgb, read_labels

TRANSFORMS = ("none", "center-crop", "center-crop-wide")
PROGRESS_EVERY_S = 0.5


class BadFile(Exception):
    """An input image that is not written; the message is the reason."""


@dataclasses.dataclass
class Summary:
    count: int  # images written
    resolution: tuple  # (W, H) of the written images
    num_classes: int  # 0: no labels written
    bad: list  # [(source name, reason)], in source order

    def text(self, dest: str) -> str:
        labels = f"{self.num_classes} classes" if self.num_classes else "none"
        lines = [f"Wrote {self.count} images, {self.resolution[0]}x{self.resolution[1]} RGB, to "
                 f"{dest}; labels: {labels}; bad files: {len(self.bad)}"]
        return "\n".join(lines + [f"  bad: {name}: {why}" for name, why in self.bad])


# ----- Transforms (NVlabs dataset_tool.py make_transform) -----

def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    if img.shape[:2] == (height, width):
        return img
    return np.asarray(Image.fromarray(img).resize((width, height), Image.LANCZOS))


def transform_image(img: np.ndarray, transform: str, width: int, height: int) -> np.ndarray:
    """uint8 [h, w, 3] -> uint8 [W', W', 3] per --transform (see the module docstring)."""
    h, w = img.shape[:2]
    if transform == "none":
        if h != w:
            raise BadFile(f"not square ({w}x{h}); use --transform=center-crop")
    elif transform == "center-crop":
        side = min(h, w)
        img = img[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
    else:  # center-crop-wide: rows of the output's aspect ratio, letterboxed on a square
        rows = int(np.round(width * h / w))
        if w < width or rows < height:
            raise BadFile(f"too small ({w}x{h}) for {width}x{height}")
        img = _resize(img[(h - rows) // 2:(h + rows) // 2], width, height)
        canvas = np.zeros((width, width, 3), np.uint8)
        canvas[(width - height) // 2:(width + height) // 2] = img
        return canvas
    if img.shape[0] < height:
        raise BadFile(f"too small ({w}x{h}) for {width}x{height}")
    return _resize(img, width, height)


def check_label(label):
    """A class index (int >= 0) or a vector of numbers, as NVlabs' dataset.json holds."""
    if label is None:
        raise BadFile("no label (no entry in the labels file)")
    if isinstance(label, int) and not isinstance(label, bool) and label >= 0:
        return label
    if isinstance(label, list) and label and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in label):
        return label
    raise BadFile(f"unreadable label {label!r} (expected a class index >= 0 or a list of "
                  "numbers)")


# ----- Reading -----

def _prepare(archive: ImageArchive, name: str, labels: Optional[dict], transform: str,
             size: tuple):
    """(png bytes, label) of one source image, or BadFile(reason)."""
    try:
        try:
            img = decode_rgb(archive.read(name))
        except WrongMode as e:
            raise BadFile(f"wrong {e}") from e
        except Exception as e:  # noqa: BLE001 (PIL raises many types on broken files)
            why = str(e).split(" <_io.")[0]  # PIL names the in-memory file object
            raise BadFile(f"undecodable ({type(e).__name__}: {why})") from e
        out = transform_image(img, transform, *size)
        label = check_label(labels.get(name)) if labels is not None else None
        return _png(out), label
    except BadFile as e:
        return e


def _png(img: np.ndarray) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="png", compress_level=0, optimize=False)
    return buf.getvalue()


# ----- Writing -----

class _Dest:
    """A zip (ZIP_STORED) or a new / empty folder."""

    def __init__(self, dest: str):
        dest = os.path.expanduser(dest)
        self.zip = None
        if dest.lower().endswith(".zip"):
            os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
            self.zip = zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED)
        elif os.path.isdir(dest) and os.listdir(dest):
            raise FileExistsError(f"--dest={dest!r}: the folder is not empty")
        self.root = dest

    def write(self, name: str, data: bytes) -> None:
        if self.zip is not None:
            self.zip.writestr(name, data)
            return
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _progress(done: int, total: int, bad: int, final: bool = False) -> None:
    sys.stderr.write(f"\r{done}/{total} images read, {bad} bad" + ("\n" if final else ""))
    sys.stderr.flush()


def convert(source: str, dest: str, resolution: tuple, transform: str = "none",
            labels_path: str = "", threads: int = 0) -> Summary:
    """Writes the dataset (see the module docstring); resolution = (W, H)."""
    archive = ImageArchive(source, what="--source")
    if not archive.names:
        raise FileNotFoundError(f"--source={source!r}: no images")
    if labels_path:
        with open(os.path.expanduser(labels_path), "rb") as f:
            labels = read_labels(f.read(), labels_path)
    else:
        labels = archive.labels()
    out, written, bad, last = _Dest(dest), [], [], 0.0

    def work(name):
        return _prepare(archive, name, labels, transform, resolution)
    with concurrent.futures.ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        for i, (name, result) in enumerate(zip(archive.names, pool.map(work, archive.names))):
            if isinstance(result, BadFile):
                bad.append((name, str(result)))
                sys.stderr.write(f"\rbad: {name}: {result}\n")
            else:
                idx = f"{len(written):08d}"
                fname = f"{idx[:5]}/img{idx}.png"
                out.write(fname, result[0])
                written.append([fname, result[1]])
            if time.monotonic() - last > PROGRESS_EVERY_S:
                _progress(i + 1, len(archive.names), len(bad))
                last = time.monotonic()
    _progress(len(archive.names), len(archive.names), len(bad), final=True)
    out.write(LABELS_FILE, json.dumps({"labels": written if labels is not None else None})
              .encode())
    out.close()
    classes = [y for _, y in written if isinstance(y, int)]
    num_classes = (max(classes) + 1 if classes else 0) if labels is not None else 0
    return Summary(len(written), (resolution[0], resolution[0]), num_classes, bad)


def parse_resolution(text: str, transform: str) -> tuple:
    """'R' or 'WxH' -> (W, H): a power of two >= 4; H < W only for center-crop-wide."""
    parts = text.lower().split("x")
    try:
        width, height = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        width = height = 0
    if width < 4 or width & (width - 1) or not 0 < height <= width:
        raise ValueError(f"--resolution={text!r}: expected R or WxH with W a power of two >= 4 "
                         "and 0 < H <= W")
    if height != width and transform != "center-crop-wide":
        raise ValueError(f"--resolution={text!r}: WxH with H < W needs "
                         "--transform=center-crop-wide (the output is square)")
    return width, height


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="folder or zip of images")
    parser.add_argument("--dest", required=True, help="output .zip or (empty) folder")
    parser.add_argument("--resolution", required=True, help="R (square) or WxH (center-crop-wide)")
    parser.add_argument("--transform", default="none", choices=TRANSFORMS)
    parser.add_argument("--labels", default="", help="dataset.json with [name, label] pairs")
    parser.add_argument("--threads", type=int, default=0, help="decode threads (0: up to 8)")
    args = parser.parse_args(argv)
    size = parse_resolution(args.resolution, args.transform)
    summary = convert(args.source, args.dest, size, args.transform, args.labels, args.threads)
    print(summary.text(args.dest))
    return 0 if summary.count else 1


if __name__ == "__main__":
    sys.exit(main())
