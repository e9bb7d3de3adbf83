"""Perceptual path length (StyleGAN §4.2; StyleGAN2 §3.2, spec stylegan2_and_progan.md Part C).

PPL = E[ d(g(lerp(w1, w2; t)), g(lerp(w1, w2; t + eps))) / eps^2 ], eps = 1e-4, in W space with
end-point sampling (t = 0) by default ('full': t ~ U(0, 1)). As in the official code, images are
optionally cropped (StyleGAN1 faces), box-downsampled to 256 when larger, scaled to [0, 255]
before `distance`, and values outside the 1st-99th percentiles are discarded before the mean.
`distance` is LPIPS-VGG16 in the protocol; any (a, b) -> [N] function of NHWC float images works.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.metrics import _checks

EPSILON = 1e-4


def squared_l2(a, b):
    """sum((a - b)^2) per image: a simple `distance` (PPL is then a squared-gradient norm)."""
    return jnp.sum(jnp.square(a - b), axis=(1, 2, 3))


def _prepare(images, crop: bool):
    """[-1, 1] NHWC -> [0, 255], cropped and box-downsampled to at most 256 (official PPL)."""
    if crop:  # StyleGAN1 face crop: rows 3/8..7/8, cols 2/8..6/8
        c = images.shape[1] // 8
        images = images[:, c * 3:c * 7, c * 2:c * 6]
    factor = images.shape[1] // 256
    if factor > 1:
        n, h, w, ch = images.shape
        images = images.reshape(n, h // factor, factor, w // factor, factor, ch).mean((2, 4))
    return (images + 1) * (255 / 2)


def path_lengths(synthesize: Callable, sample_w: Callable, distance: Callable, key,
                 num_samples: int, batch_size: int = 32, epsilon: float = EPSILON,
                 sampling: str = "end", crop: bool = False) -> np.ndarray:
    """Per-sample d(...) / eps^2 values [num_samples] (before percentile filtering).

    synthesize: w -> images NHWC float in [-1, 1] (deterministic: fixed noise);
    sample_w: (key, 2n) -> 2n W-space latents (any trailing shape): rows i and n + i are the two
      end points of pair i (a conditional sampler gives them the same label, as the official
      code does).
    """
    if sampling not in ("end", "full"):
        raise ValueError(f"ppl: sampling must be 'end' or 'full', got {sampling!r}")
    num_samples = _checks.positive_int(num_samples, "ppl: num_samples")
    out = []
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        k_w, k_t = jax.random.split(jax.random.fold_in(key, i))
        w = jnp.asarray(sample_w(k_w, 2 * n))
        if w.shape[0] != 2 * n:
            raise ValueError(f"ppl: sample_w(key, {2 * n}) returned shape {w.shape}; expected "
                             f"{2 * n} latents on axis 0")
        w0, w1 = w[:n], w[n:]
        t = (jnp.zeros((n,)) if sampling == "end" else jax.random.uniform(k_t, (n,)))
        t = t.reshape((n,) + (1,) * (w0.ndim - 1))
        wa, wb = w0 + (w1 - w0) * t, w0 + (w1 - w0) * (t + epsilon)  # lerp in W
        img = _prepare(jnp.asarray(synthesize(jnp.concatenate([wa, wb]))), crop)
        d = np.asarray(distance(img[:n], img[n:]), np.float64) / epsilon ** 2
        if not np.all(np.isfinite(d)):
            raise ValueError("ppl: non-finite distances (NaN/Inf in the generated images?)")
        out.append(d)
    return np.concatenate(out)


def filtered_mean(dist) -> float:
    """Mean of the values within the [1st, 99th] percentiles (official: 'lower' / 'higher')."""
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(np.mean(dist[(dist >= lo) & (dist <= hi)]))


def ppl(synthesize: Callable, sample_w: Callable, distance: Callable, key, num_samples: int,
        **kwargs) -> float:
    """PPL: `filtered_mean(path_lengths(...))` (kwargs as `path_lengths`)."""
    if distance is None:
        raise ValueError("ppl: needs a `distance` (LPIPS-VGG16 in the protocol, or squared_l2)")
    return filtered_mean(path_lengths(synthesize, sample_w, distance, key, num_samples, **kwargs))
