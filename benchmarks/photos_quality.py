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
Beside SWD it prints improved precision and recall (k = 3, gan_zoo.metrics.precision_recall)
and the Frechet distance (gan_zoo.metrics.frechet) of each set against the real set in a per-
image feature space built from the same pyramid (texture energies per scale and a coarse colour
layout; see feature_space): precision is the share of a set's images that look like some real
crop, recall the share of real crops the set covers (a G that repeats a few images covers
little). The real (floor) row is their ceiling (for FD: the floor) at this N.
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
PR_SEED = 0  # which real neighbourhoods fit the feature space's principal components
FIT_PATCHES = 4096  # real 7x7x3 neighbourhoods per pyramid level for the components
# Octave bands of the principal components (ranks 1-2, 3-4, 5-8, ..., 65-147 of 147).
BANDS = (0, 2, 4, 8, 16, 32, 64, 147)
NHOOD = 7  # neighbourhood size (SWD's)
LAYOUT = 4  # the coarsest level box-pooled to LAYOUT x LAYOUT x 3
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


def _patch_windows(level: np.ndarray) -> np.ndarray:
    """Every 7x7 neighbourhood of an NCHW level (a view): [N, C, H - 6, W - 6, 7, 7]."""
    return np.lib.stride_tricks.sliding_window_view(level, (NHOOD, NHOOD), axis=(2, 3))


def _pca(level: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Principal axes [147, 147] (largest variance first) of FIT_PATCHES random neighbourhoods."""
    win = _patch_windows(level)
    n, c, h, w = win.shape[:4]
    pick = [rng.integers(0, size, FIT_PATCHES) for size in (n, h, w)]
    patches = win[pick[0], :, pick[1], pick[2]].reshape(FIT_PATCHES, c * NHOOD * NHOOD)
    _, eigvec = np.linalg.eigh(np.cov(patches, rowvar=False))  # ascending eigenvalues
    return eigvec[:, ::-1]


def _level_stats(level: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Per image and octave band of components, log(1 + RMS std of the responses): [N, 7]."""
    import jax  # noqa: PLC0415

    n, c = level.shape[:2]
    kernel = basis.T.reshape(-1, c, NHOOD, NHOOD)  # [m, C, 7, 7] (OIHW)
    resp = np.asarray(jax.lax.conv_general_dilated(
        level, kernel.astype(np.float32), (1, 1), "VALID",
        precision=jax.lax.Precision.HIGHEST))  # [N, 147, H - 6, W - 6]
    var = resp.reshape(n, len(kernel), -1).var(2)  # over positions
    bands = [var[:, a:b].mean(1) for a, b in zip(BANDS[:-1], BANDS[1:])]
    return np.log1p(np.sqrt(np.stack(bands, 1)))  # 1 grey level and below: "flat"


def _pyramid(images: np.ndarray) -> list:
    """SWD's Laplacian pyramid of uint8 NHWC images: NCHW float32 levels, finest first."""
    swd = importlib.import_module("gan_zoo.metrics.swd")  # the module (the package exports swd())
    x = images.transpose(0, 3, 1, 2).astype(np.float32)  # NCHW
    return swd.laplacian_pyramid(x, len(swd.resolutions(images.shape[1])))


def _raw_features(images: np.ndarray, bases: list) -> list:
    """Blocks [N, 7] per pyramid level, then the coarsest level pooled to LAYOUT^2 x 3."""
    levels = _pyramid(images)
    blocks = [_level_stats(lv, basis) for lv, basis in zip(levels, bases)]
    n, c, h, _ = levels[-1].shape
    f = h // LAYOUT
    layout = levels[-1].reshape(n, c, LAYOUT, f, LAYOUT, f).mean((3, 5))  # [N, C, 4, 4]
    return blocks + [layout.reshape(n, -1)]


def feature_space(real: np.ndarray):
    """Per-image features fitted to the real set: a function uint8 [N, R, R, 3] -> [N, D].

    Why this space (no downloaded weights, no random-init network): an image is described by
    the statistics a texture model keeps, plus its coarse colour layout. On each level of SWD's
    Laplacian pyramid (at R = 32: the 32x32 band-pass and the 16x16 Gaussian residual) every
    7x7x3 neighbourhood is projected on the principal axes of the real set's neighbourhoods
    (blob, edge, bar and colour-opponent filters learned from the photos, smooth ones first).
    Per image, the response energy in octave bands of those axes (BANDS) is the image's local
    spectrum at that scale, kept as log(1 + RMS) (1 grey level and below reads as flat). The
    residual box-pooled to LAYOUT x LAYOUT x 3 gives the colour layout. Each dimension is
    standardised by the real set's mean and std and each block scaled by 1/sqrt(its size), so
    both scales and the layout weigh the same. Unlike SWD, nothing is normalised per set: a
    colour shift counts. A G that repeats a few images gives a few points (recall near 0);
    noise puts as much energy in the last bands as in the first, which no photo does
    (precision near 0); blur empties the fine bands.
    """
    rng = np.random.default_rng(PR_SEED)
    bases = [_pca(lv, rng) for lv in _pyramid(real)]
    ref = _raw_features(real, bases)
    shift = [b.mean(0) for b in ref]
    scale = [np.where(b.std(0) > 0, b.std(0), 1.0) * np.sqrt(b.shape[1]) for b in ref]

    def features(images: np.ndarray) -> np.ndarray:
        blocks = _raw_features(images, bases)
        return np.concatenate([(b - m) / s for b, m, s in zip(blocks, shift, scale)], axis=1)

    return features


def diversity_table(sets: dict, real: np.ndarray) -> dict:
    """{name: {precision, recall, fd}} of each set's per-image features against real's."""
    from gan_zoo.metrics.frechet import fid_from_features  # noqa: PLC0415
    from gan_zoo.metrics.precision_recall import precision_recall  # noqa: PLC0415

    features = feature_space(real)
    ref = features(real)
    out = {}
    for name, images in sets.items():
        f = features(images)
        p, r = precision_recall(ref, f, k=K)
        out[name] = dict(precision=p, recall=r, fd=fid_from_features(ref, f))
    return out


def print_diversity(div: dict, n: int) -> None:
    print(f"per-image texture features vs {n} real crops: precision, recall (k = {K}; higher is "
          f"better), Frechet distance (lower is better)")
    print(f"{'':>14} {'precision':>9} {'recall':>9} {'FD':>9}")
    for name, res in div.items():
        print(f"{name:>14} {res['precision']:9.3f} {res['recall']:9.3f} {res['fd']:9.3f}")


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
    div = diversity_table(sets, real)
    print_diversity(div, n)
    return {name: dict(swd=res["avg"], **div[name]) for name, res in results.items()}


if __name__ == "__main__":
    main()
