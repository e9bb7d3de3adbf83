"""FID between two image sets with the FID Inception-v3 (TF 2015-12-05 graph, torch-fidelity port).

    python -m gan_zoo.tools.fid A B --inception=pt_inception-2015-12-05-6726825d.pth
    python -m gan_zoo.tools.fid A B --rfid=inception_rand.npz   # rFID, saved random Inception
    python -m gan_zoo.tools.fid A B --rfid --rfid_seed=0       # rFID, random init from a seed

A and B are folders of images (png/jpg/webp/bmp, converted to RGB) or `.npz` files with key
`images` (uint8 [N, H, W, 3]). The last line printed is `FID: x` (or `rFID: x`).

rFID (StyleGAN-XL §4.1) is only comparable between runs that use the same random weights: pass
the saved file (a torch-named state dict .npz/.pth like --inception; write one with
`gan_zoo.convert.inception.save_rfid_weights`). A bare `--rfid` draws them from --rfid_seed,
which is not comparable with published rFID numbers.
"""

import argparse
import pathlib
import sys

import numpy as np

from gan_zoo.convert.inception import WEIGHTS_FILENAME

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def load_images(path) -> list:
    """uint8 [H, W, 3] arrays from a folder of images or an .npz with key 'images'."""
    path = pathlib.Path(path)
    if path.suffix == ".npz" and path.is_file():
        with np.load(path) as data:
            if "images" not in data.files:
                raise ValueError(f"{path}: expected key 'images' (uint8 [N, H, W, 3]), found "
                                 f"{data.files}")
            images = data["images"]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{path}: 'images' must be uint8 [N, H, W, 3], got {images.dtype} "
                             f"{images.shape}")
        return list(images)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a folder of images or an .npz file")
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return [np.asarray(Image.open(f).convert("RGB"), np.uint8) for f in files]


def batches(images: list, batch_size: int):
    """Consecutive runs of same-size images, at most batch_size each, stacked to [n, H, W, 3]."""
    i = 0
    while i < len(images):
        j = i + 1
        while j < len(images) and j - i < batch_size and images[j].shape == images[i].shape:
            j += 1
        yield np.stack(images[i:j])
        i = j


def set_stats(extract, images: list, batch_size: int):
    from gan_zoo.metrics.features import accumulate

    return accumulate(extract, batches(images, batch_size), stats=("pool3",))[0]["pool3"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="folder of images or .npz with key 'images'")
    parser.add_argument("b", help="folder of images or .npz with key 'images'")
    parser.add_argument("--inception", help=f"local FID Inception weights ({WEIGHTS_FILENAME}, "
                        "or the same state dict as .npz)")
    parser.add_argument("--rfid", nargs="?", const="", default=None, metavar="FILE",
                        help="rFID: a saved random Inception (--rfid=FILE, .npz/.pth); bare "
                        "--rfid draws one from --rfid_seed (not comparable with published rFID)")
    parser.add_argument("--rfid_seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--num_devices", type=int, default=None,
                        help="shard batches over the first N devices (default: all)")
    args = parser.parse_args(argv)
    rfid = args.rfid is not None
    if not args.inception and not rfid:
        print(f"error: FID needs the Inception weights file {WEIGHTS_FILENAME} (published with the "
              "pytorch-fid and torch-fidelity releases); pass --inception=PATH (.pth needs torch, "
              "or the same state dict saved as .npz), or use --rfid for a randomly initialised "
              "Inception (rFID).", file=sys.stderr)
        return 2
    import jax

    from gan_zoo.convert import inception
    from gan_zoo.metrics.features import InceptionFeatures, data_mesh
    from gan_zoo.metrics.frechet import fid_from_stats

    try:
        if rfid and not args.rfid:
            print(f"warning: rFID from a random Inception drawn from --rfid_seed="
                  f"{args.rfid_seed}: not comparable with published rFID (pass --rfid=FILE)",
                  file=sys.stderr)
            variables = inception.rfid_variables(args.rfid_seed)
        else:
            variables = inception.load_inception(args.rfid or args.inception)
        mesh = data_mesh(jax.devices()[:args.num_devices])
        extract = InceptionFeatures(variables, ("pool3",), mesh)
        stats = [set_stats(extract, load_images(p), args.batch_size) for p in (args.a, args.b)]
        value = fid_from_stats(*stats)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{'rFID' if rfid else 'FID'}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
