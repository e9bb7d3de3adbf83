"""Unconditional quality of a `photos` preset: SWD between samples and real photo crops.

    python experiments/main.py --config=configs/stylegan3.py:photos --workdir=/tmp/p3
    python experiments/main.py --config=configs/stylegan3.py:photos --workdir=/tmp/p3 \
        --mode=sample --sample_out=/tmp/p3/s.npz          # 1,000 EMA samples
    python experiments/main.py --config=configs/stylegan3.py:photos --workdir=/tmp/p3_init \
        --config.train.num_steps=1                        # the (almost) untrained G
    python experiments/main.py --config=configs/stylegan3.py:photos --workdir=/tmp/p3_init \
        --mode=sample --sample_out=/tmp/p3_init/s.npz
    python benchmarks/photos_quality.py /tmp/p3/s.npz --init=/tmp/p3_init/s.npz

Draws N real crops from the built-in `photos` data (scikit-image's bundled photographs, the same
random-crop + box-resize + horizontal-flip recipe the GAN trained on, a fixed seed) and prints
ProGAN's SWD (gan_zoo.metrics.swd, x 1e3, per pyramid level and averaged; lower is better) of:
the samples, the optional init samples, a second independent set of real crops (the floor: what a
perfect G would score at this N) and uniform noise (for scale), each against the same real set.
SWD normalises each set's descriptors per colour channel, so it sees edges, texture and colour
structure rather than a global colour shift (flat-colour images score worse than noise).
In the same feature space (SWD's normalised 7x7x3 Laplacian-pyramid neighbourhoods, per level) it
also prints improved precision and recall (k = 3, gan_zoo.metrics.precision_recall) of each set
against the real set, on PR_PATCHES neighbourhoods per set drawn with a fixed seed: precision is
the share of a set's patches that look like real patches, recall the share of real patches the
set covers (a G that repeats a few images covers little). The real (floor) row is the ceiling.
"""

import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout

import numpy as np  # noqa: E402

REAL_SEED = 0  # the reference crops
FLOOR_SEED = 1  # the second real set (real vs real)
SWD_SEED = 0  # SWD's neighbourhoods and directions
PR_SEED = 0  # which neighbourhoods precision/recall uses
PR_PATCHES = 2048  # neighbourhoods per set and level for precision/recall
K = 3  # improved P&R neighbourhood (StyleGAN2/3 protocol)


def real_crops(n: int, resolution: int, seed: int) -> np.ndarray:
    """n uint8 [R, R, 3] crops of the built-in photos, half of them flipped left-right."""
    from gan_zoo.data import builtin  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    crops = builtin.photo_crops(builtin.load_photos(), rng, n, resolution, np.ones(n, bool))
    flip = rng.random(n) < 0.5
    crops[flip] = crops[flip, :, ::-1]
    return crops


def load_images(path: str) -> np.ndarray:
    """uint8 [N, R, R, 3] from a --mode=sample .npz."""
    data = np.load(path)
    if "images" not in data.files:
        raise ValueError(f"{path}: expected an array 'images' (from experiments/main.py "
                         f"--mode=sample), found {sorted(data.files)}")
    images = data["images"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or \
            images.shape[1] != images.shape[2]:
        raise ValueError(f"{path}: expected uint8 images [N, R, R, 3], got {images.dtype} "
                         f"{images.shape}")
    return images


def score(sets: dict, real: np.ndarray) -> dict:
    """{name: SWD dict} of each uint8 set (same shape as `real`) against `real`."""
    from gan_zoo.metrics.swd import swd  # noqa: PLC0415

    return {name: swd(real, images, seed=SWD_SEED) for name, images in sets.items()}


def patch_features(images: np.ndarray, count: int = 0) -> list:
    """SWD's per-set normalised descriptors, `count` (0: PR_PATCHES) per level: [[count, 147]]."""
    count = count or PR_PATCHES
    swd = importlib.import_module("gan_zoo.metrics.swd")  # the module (the package exports swd())

    rng = np.random.default_rng(PR_SEED)
    per_image = -(-count // len(images))  # ceil
    x = images.transpose(0, 3, 1, 2).astype(np.float32)  # NCHW
    levels = swd.laplacian_pyramid(x, len(swd.resolutions(images.shape[1])))
    # swd._normalize: the same per-colour-channel normalisation as SWD itself.
    return [swd._normalize(swd.descriptors(lv, rng, per_image))[rng.permutation(
        per_image * len(images))[:count]] for lv in levels]


def precision_recall_table(sets: dict, real: np.ndarray, count: int = 0) -> dict:
    """{name: {level index: (precision, recall)}} of each set's patches against real's."""
    from gan_zoo.metrics.precision_recall import precision_recall  # noqa: PLC0415

    ref = patch_features(real, count)
    return {name: {i: precision_recall(r, f, k=K) for i, (r, f) in
                   enumerate(zip(ref, patch_features(images, count)))}
            for name, images in sets.items()}


def print_pr(pr: dict, levels: list) -> None:
    print(f"precision / recall (k = {K}) of {PR_PATCHES} SWD neighbourhoods per level vs real's "
          f"(higher is better)")
    print(f"{'':>14} " + " ".join(f"{lv:>11}" for lv in levels) + f" {'avg':>11}")
    for name, res in pr.items():
        avg = np.mean(list(res.values()), axis=0)
        print(f"{name:>14} " + " ".join(f"{p:5.2f} {r:5.2f}" for p, r in
                                        list(res.values()) + [avg]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", help=".npz from --mode=sample (uint8 images)")
    parser.add_argument("--init", help="optional .npz of the untrained (step-1) G's samples")
    args = parser.parse_args(argv)
    sets = {"samples": load_images(args.samples)}
    if args.init:
        sets["init"] = load_images(args.init)
    n, r = sets["samples"].shape[:2]
    for name, images in sets.items():
        if images.shape != sets["samples"].shape:
            raise ValueError(f"--{name}: expected the samples' shape {sets['samples'].shape}, "
                             f"got {images.shape}")
    sets["real (floor)"] = real_crops(n, r, FLOOR_SEED)
    sets["noise"] = np.random.default_rng(FLOOR_SEED).integers(0, 256, (n, r, r, 3), np.uint8)
    real = real_crops(n, r, REAL_SEED)
    results = score(sets, real)
    levels = [k for k in results["samples"] if k != "avg"]
    print(f"SWD x1e3 vs {n} real {r}x{r} photo crops (lower is better)")
    print(f"{'':>14} " + " ".join(f"{lv:>8}" for lv in levels) + f" {'avg':>8}")
    for name, res in results.items():
        print(f"{name:>14} " + " ".join(f"{res[k]:8.1f}" for k in levels + ["avg"]))
    pr = precision_recall_table(sets, real)
    print_pr(pr, levels)
    return {name: dict(swd=res["avg"], precision=float(np.mean([p for p, _ in pr[name].values()])),
                       recall=float(np.mean([r for _, r in pr[name].values()])))
            for name, res in results.items()}


if __name__ == "__main__":
    main()
