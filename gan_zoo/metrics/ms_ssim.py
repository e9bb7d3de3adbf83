"""MS-SSIM (Wang, Simoncelli, Bovik 2003), as used for diversity by Odena et al. 2017 and ProGAN
(spec stylegan2_and_progan.md Part C; ProGAN `metrics/ms_ssim.py`).

5 scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); 11x11 Gaussian window, sigma 1.5
(shrunk to the image when smaller); K1 = 0.01, K2 = 0.03, L = 255; valid filtering; 2x box
downsampling between scales; per-scale ssim/cs clipped at 0 before the weighted product.
Images uint8 NHWC, pairs compared element-wise; each image's value is averaged over channels.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gan_zoo.metrics import _checks

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FILTER_SIZE, FILTER_SIGMA, K1, K2, MAX_VAL = 11, 1.5, 0.01, 0.03, 255.0


def _gaussian(size: int, sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian window [size, size] (ProGAN _FSpecialGauss)."""
    radius = size // 2
    offset, start, stop = (0.5, -radius, radius) if size % 2 == 0 else (0.0, -radius, radius + 1)
    x, y = np.mgrid[offset + start:stop, offset + start:stop]
    g = np.exp(-((x ** 2 + y ** 2) / (2.0 * sigma ** 2)))
    return (g / g.sum()).astype(np.float32)


def _filter(x, window):
    """Valid depthwise filtering of [N, H, W, C] with a [k, k] window."""
    c = x.shape[-1]
    kernel = jnp.tile(jnp.asarray(window)[:, :, None, None], (1, 1, 1, c))  # [k, k, 1, C]
    return lax.conv_general_dilated(x, kernel, (1, 1), "VALID", feature_group_count=c,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)


def _ssim_cs(a, b):
    """(ssim, cs) per image [N] at one scale (Wang 2003 eqs. 6-13, means over H, W, C)."""
    size = min(FILTER_SIZE, a.shape[1], a.shape[2])
    window = _gaussian(size, size * FILTER_SIGMA / FILTER_SIZE)
    mu1, mu2 = _filter(a, window), _filter(b, window)
    s11 = _filter(a * a, window) - mu1 * mu1
    s22 = _filter(b * b, window) - mu2 * mu2
    s12 = _filter(a * b, window) - mu1 * mu2
    c1, c2 = (K1 * MAX_VAL) ** 2, (K2 * MAX_VAL) ** 2
    v1, v2 = 2.0 * s12 + c2, s11 + s22 + c2
    ssim = jnp.mean((2.0 * mu1 * mu2 + c1) * v1 / ((mu1 * mu1 + mu2 * mu2 + c1) * v2), (1, 2, 3))
    return ssim, jnp.mean(v1 / v2, axis=(1, 2, 3))


def _box_down(x):
    return (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]) * 0.25


@jax.jit
def _ms_ssim(a, b):
    weights = jnp.asarray(WEIGHTS, jnp.float32)
    ssims, css = [], []
    for _ in range(len(WEIGHTS)):
        s, c = _ssim_cs(a, b)
        ssims.append(s)
        css.append(c)
        a, b = _box_down(a), _box_down(b)
    ssim = jnp.maximum(jnp.stack(ssims), 0.0)  # clipped: otherwise NaNs
    cs = jnp.maximum(jnp.stack(css), 0.0)
    return jnp.prod(cs[:-1] ** weights[:-1, None], axis=0) * ssim[-1] ** weights[-1]


def ms_ssim(images_a, images_b) -> np.ndarray:
    """MS-SSIM of each pair (images_a[i], images_b[i]) -> [N] in [0, 1]; 1 for identical images."""
    for x, n in ((images_a, "ms_ssim: images_a"), (images_b, "ms_ssim: images_b")):
        _checks.images(x, n, channels=(1, 3), min_size=16)
    if images_a.shape != images_b.shape:
        raise ValueError(f"ms_ssim: shapes differ, {images_a.shape} vs {images_b.shape}")
    if images_a.shape[1] % 16 or images_a.shape[2] % 16:
        raise ValueError(f"ms_ssim: height and width must be multiples of 16 (5 scales), got "
                         f"{images_a.shape[1]}x{images_a.shape[2]}")
    f = functools.partial(jnp.asarray, dtype=jnp.float32)
    return np.asarray(_ms_ssim(f(images_a), f(images_b)), np.float64)


def random_pairs(images, num_pairs: int, rng: np.random.Generator,
                 batch_size: int = 256) -> np.ndarray:
    """MS-SSIM of `num_pairs` random pairs (i, j != i) of `images` -> [num_pairs]."""
    i = rng.integers(0, len(images), num_pairs)
    j = (i + rng.integers(1, len(images), num_pairs)) % len(images)  # j != i
    values = [ms_ssim(images[i[k:k + batch_size]], images[j[k:k + batch_size]])
              for k in range(0, num_pairs, batch_size)]
    return np.concatenate(values)


def ms_ssim_diversity(images, num_pairs: int = 10_000, seed: int = 0,
                      batch_size: int = 256) -> float:
    """Mean MS-SSIM over `num_pairs` random pairs of distinct images (ProGAN: 10,000 pairs)."""
    _checks.images(images, "ms_ssim_diversity", channels=(1, 3), min_count=2, min_size=16)
    num_pairs = _checks.positive_int(num_pairs, "ms_ssim_diversity: num_pairs")
    rng = np.random.default_rng(seed)
    return float(np.mean(random_pairs(images, num_pairs, rng, batch_size)))
