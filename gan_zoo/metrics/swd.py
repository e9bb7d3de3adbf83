"""Sliced Wasserstein distance on Laplacian-pyramid patches. ProGAN §5 (spec stylegan2_and_progan.md
Part C), following the official `metrics/sliced_wasserstein.py`.

1. Laplacian pyramid from full resolution down to 16x16 (5x5 binomial filter, mirror borders, as
   cv2.pyrDown/pyrUp); the 16x16 level is the Gaussian residual.
2. Per level, 128 random 7x7x3 neighbourhoods per image -> 147-d descriptors.
3. Each colour channel of the descriptors normalised to zero mean, unit std (per set).
4. SWD = mean over 4 repeats x 128 random unit directions of the mean |sorted proj A - sorted
   proj B|; reported x 1e3 per level and averaged.
Images are uint8 NHWC in [0, 255]; both sets must have the same number of images.
"""

import numpy as np
import scipy.ndimage

from gan_zoo.metrics import _checks

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16
_GAUSS = np.float32([[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6],
                     [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]]) / 256.0


def pyr_down(x):
    """cv2.pyrDown on NCHW float32."""
    return scipy.ndimage.convolve(x, _GAUSS[None, None], mode="mirror")[:, :, ::2, ::2]


def pyr_up(x):
    """cv2.pyrUp on NCHW float32."""
    n, c, h, w = x.shape
    res = np.zeros((n, c, h * 2, w * 2), x.dtype)
    res[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(res, _GAUSS[None, None] * 4.0, mode="mirror")


def laplacian_pyramid(x, num_levels: int) -> list:
    """NCHW float32 -> [band-pass levels..., Gaussian residual], finest first."""
    pyramid = [np.array(x, np.float32)]  # a copy: levels are updated in place
    for _ in range(1, num_levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] -= pyr_up(pyramid[-1])
    return pyramid


def descriptors(level, rng, nhoods_per_image: int = NHOODS_PER_IMAGE):
    """Random 7x7 neighbourhoods of an NCHW level -> [N * nhoods, C, 7, 7] (official indexing)."""
    n, c, h, w = level.shape
    count, half = nhoods_per_image * n, NHOOD_SIZE // 2
    nhood, chan, x, y = np.ogrid[0:count, 0:c, -half:half + 1, -half:half + 1]
    img = nhood // nhoods_per_image
    x = x + rng.integers(half, w - half, size=(count, 1, 1, 1))
    y = y + rng.integers(half, h - half, size=(count, 1, 1, 1))
    return level.flat[((img * c + chan) * h + y) * w + x]


def _normalize(desc):
    desc = desc - np.mean(desc, axis=(0, 2, 3), keepdims=True)  # per colour channel
    std = np.std(desc, axis=(0, 2, 3), keepdims=True)
    desc = desc / np.where(std > 0, std, 1.0)  # a constant channel stays 0 rather than NaN
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein(a, b, rng, dir_repeats: int = DIR_REPEATS,
                       dirs_per_repeat: int = DIRS_PER_REPEAT) -> float:
    """Mean over random unit directions of mean |sort(a @ d) - sort(b @ d)|. a, b: [M, D]."""
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat))
        dirs = (dirs / np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))).astype(np.float32)
        proj_a, proj_b = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
        results.append(np.mean(np.abs(proj_a - proj_b)))
    return float(np.mean(results))


def resolutions(size: int) -> list:
    """Pyramid level resolutions from `size` down to 16."""
    res = []
    while size >= MIN_RESOLUTION:
        res.append(size)
        size //= 2
    return res


class Descriptors:
    """Steps 1-2 for one image set, streamed: update(batch) adds each level's descriptors (the
    images are not kept); `normalized()` gives step 3. rng: the set's random neighbourhoods."""

    def __init__(self, rng: np.random.Generator, name: str = "swd"):
        self.rng, self.name, self.levels, self.count, self.shape = rng, name, None, 0, None

    def update(self, images) -> "Descriptors":
        _checks.images(images, self.name, min_count=1, min_size=MIN_RESOLUTION)
        h, w = images.shape[1:3]
        res = resolutions(h)
        if self.shape is None:
            if h != w or h % 2 ** (len(res) - 1):
                raise ValueError(f"{self.name}: images must be square with a size divisible by "
                                 f"{2 ** (len(res) - 1)}, got {h}x{w}")
            self.shape, self.levels = images.shape[1:], [[] for _ in res]
        elif images.shape[1:] != self.shape:
            raise ValueError(f"{self.name}: images {images.shape[1:]} differ from the first "
                             f"batch's {self.shape}")
        batch = images.transpose(0, 3, 1, 2).astype(np.float32)  # NCHW
        for lod, level in enumerate(laplacian_pyramid(batch, len(res))):
            self.levels[lod].append(descriptors(level, self.rng))
        self.count += len(images)
        return self

    def normalized(self) -> list:
        return [_normalize(np.concatenate(d)) for d in self.levels]


def distances(real: Descriptors, fake: Descriptors, rng: np.random.Generator) -> dict:
    """Step 4 per level: {'<res>': SWD x 1e3, 'avg': their mean}; both sets equally large."""
    if real.count != fake.count or real.shape != fake.shape:
        raise ValueError(f"swd: both sets need the same shape, got {real.count} images "
                         f"{real.shape} and {fake.count} images {fake.shape}")
    dists = [sliced_wasserstein(a, b, rng) * 1e3
             for a, b in zip(real.normalized(), fake.normalized())]
    out = {str(r): d for r, d in zip(resolutions(real.shape[0]), dists)}
    out["avg"] = float(np.mean(dists))
    return out


def swd(real_images, fake_images, seed: int = 0, batch_size: int = 256) -> dict:
    """{'<res>': SWD x 1e3 per level, 'avg': their mean} between two equal-size uint8 sets."""
    _checks.images(real_images, "swd: real images", min_count=1, min_size=MIN_RESOLUTION)
    _checks.images(fake_images, "swd: fake images", min_count=1, min_size=MIN_RESOLUTION)
    if real_images.shape != fake_images.shape:
        raise ValueError(f"swd: both sets need the same shape, got {real_images.shape} and "
                         f"{fake_images.shape}")
    rng = np.random.default_rng(seed)
    sets = []
    for images, name in ((real_images, "swd: real images"), (fake_images, "swd: fake images")):
        d = Descriptors(rng, name)
        for i in range(0, len(images), batch_size):
            d.update(images[i:i + batch_size])
        sets.append(d)
    return distances(*sets, rng)
