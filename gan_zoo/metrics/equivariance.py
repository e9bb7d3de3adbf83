"""StyleGAN3 equivariance metrics (StyleGAN3 §3 / App. E; official `metrics/equivariance.py`).

EQ-T: PSNR (dB, signal range 2 for images in [-1, 1]) between G with its input grid translated by
-t (the input-layer transform M, M[:2, 2] = -t) and G's original output translated by t, over the
pixels valid after the shift. Integer variant: t in [-0.125, 0.125] of the image size, rounded to
whole pixels, one t per batch. PSNR = 20 log10(2) - 10 log10(MSE); +inf when MSE = 0.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gan_zoo.metrics import _checks

TRANSLATE_MAX = 0.125  # fraction of the image size


def integer_translation(x, tx, ty):
    """Shift NHWC images by (round(tx * W), round(ty * H)) pixels, zero fill -> (shifted, mask)."""
    _, h, w, _ = x.shape
    ix, iy = int(np.round(np.float32(tx * w))), int(np.round(np.float32(ty * h)))
    z, m = np.zeros_like(x), np.zeros_like(x)
    if abs(ix) < w and abs(iy) < h:
        src = x[:, max(-iy, 0):h + min(-iy, 0), max(-ix, 0):w + min(-ix, 0)]
        z[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = src
        m[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = 1
    return z, m


def psnr(sq_err_sum: float, mask_sum: float) -> float:
    """20 log10(2) - 10 log10(MSE) over masked pixels; +inf for MSE = 0."""
    if mask_sum <= 0:
        raise ValueError("equivariance: no valid pixels after the transform")
    mse = sq_err_sum / mask_sum
    return float("inf") if mse == 0 else float(20 * np.log10(2) - 10 * np.log10(mse))


def eqt_int(synthesize: Callable, sample_latents: Callable, key, num_samples: int,
            batch_size: int = 16, translate_max: float = TRANSLATE_MAX) -> float:
    """EQ-T (integer translation) in dB.

    synthesize: (latents, transform [3, 3]) -> images NHWC float in [-1, 1], where `transform`
    is the input layer's transform (StyleGAN3 `synthesis.input.transform`); identity = no-op.
    sample_latents: (key, n) -> latents passed to synthesize (e.g. ws).
    """
    num_samples = _checks.positive_int(num_samples, "eqt_int: num_samples")
    err = mask = 0.0
    for i, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        k_lat, k_t = jax.random.split(jax.random.fold_in(key, i))
        latents = sample_latents(k_lat, n)
        orig = np.asarray(synthesize(latents, jnp.eye(3)), np.float64)
        res = orig.shape[2]
        t = (np.asarray(jax.random.uniform(k_t, (2,)), np.float64) * 2 - 1) * translate_max
        t = np.round(t * res) / res
        transform = np.eye(3)
        transform[:2, 2] = -t
        img = np.asarray(synthesize(latents, jnp.asarray(transform, jnp.float32)), np.float64)
        if not (np.all(np.isfinite(orig)) and np.all(np.isfinite(img))):
            raise ValueError("eqt_int: generated images contain NaN or Inf")
        ref, m = integer_translation(orig, t[0], t[1])
        err += float(np.sum(np.square(ref - img) * m))
        mask += float(np.sum(m))
    return psnr(err, mask)
